//! One daemon per store: an exclusive lock (`flock(2)`, through rustix)
//! on `{store}.lock`, held for the life of the process. The holder writes its pid into
//! the file, so that a second daemon can say who holds it. The kernel drops the lock
//! when the process ends, however it ends (a stale file is harmless).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
    pub path: PathBuf,
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it (its pid, when it wrote one).
    #[error("the store {store} is in use by another yingji (pid {}; lock file {lock})", holder.map_or("unknown".to_string(), |p| p.to_string()))]
    Held {
        store: String,
        lock: String,
        holder: Option<u32>,
    },
    #[error("cannot lock the store: {0}")]
    Io(#[from] std::io::Error),
}

/// The lock file of a store.
pub fn lock_path(store: &Path) -> PathBuf {
    let mut s = store.as_os_str().to_os_string();
    s.push(".lock");
    PathBuf::from(s)
}

/// Takes the store's lock without waiting (creating the file and its directory).
pub fn acquire(store: &Path) -> Result<StoreLock, LockError> {
    let path = lock_path(store);
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    use rustix::fs::{flock, FlockOperation};
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(LockError::Held {
                store: store.display().to_string(),
                lock: path.display().to_string(),
                holder: text.trim().parse().ok(),
            });
        }
        Err(e) => return Err(LockError::Io(e.into())),
    }
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    writeln!(file, "{}", std::process::id())?;
    file.flush()?;
    Ok(StoreLock { _file: file, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_store_is_refused_with_the_holders_pid() {
        let dir = std::env::temp_dir().join(format!("yingji-lock-{}", std::process::id()));
        let store = dir.join("var").join("yingji.db");
        let first = acquire(&store).unwrap();
        assert_eq!(first.path, dir.join("var").join("yingji.db.lock"));
        // flock locks belong to the open file description: a second open in this
        // process conflicts just as another process would.
        match acquire(&store) {
            Err(LockError::Held { holder, .. }) => assert_eq!(holder, Some(std::process::id())),
            other => panic!("expected Held, got {other:?}"),
        }
        drop(first);
        let again = acquire(&store).expect("free once dropped");
        drop(again);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
