//! The core's commits made durable off the core's thread where it can wait.
//!
//! With `synchronous = FULL` SQLite syncs its log (the `-wal` file) inside every commit,
//! and every thousand pages or so a commit also copies the log into the database file
//! and syncs both (a checkpoint). In a drain of a backlog both were a third of the core's
//! time, on the thread every input waits for (docs/performance.md). So the core's
//! connection commits with `synchronous = NORMAL` (the commit is written to the log, which
//! survives a crash of the process but not yet a power loss) and no automatic
//! checkpoints, and [`Durable`] does the rest:
//! - [`Durable::sync`]: `fdatasync` of the log on the calling thread, right after the
//!   commit: what `FULL` did inside it. A core commit does this before it releases
//!   anything (an ack, a notice), except a batch of the drain, which asks for
//! - [`Durable::sync_later`]: the same `fdatasync` on the sync thread; the core handles
//!   its next batch meanwhile and releases this batch's acks and notices only once
//!   [`Synced::wait`] returned. One sync covers every commit written before it.
//! - a checkpoint thread with a connection of its own copies the log into the database
//!   (`PRAGMA wal_checkpoint(PASSIVE)`, which syncs the log before and the database
//!   after), at most every [`CHECKPOINT_EVERY`] while the core commits.
//!
//! The log file is opened once, when the core's store starts syncing this way, and synced
//! through that handle: the kernel reports a failed write-back of the file to every handle
//! open at the time, but to a handle opened later only if no other handle saw it first
//! (the checkpoint thread's and the sinks' connections sync the same file). SQLite keeps
//! the file (the same inode, truncated at most) while the core's connection is open. Its
//! directory is synced once then, so that the file's name survives a power loss too.
//!
//! [`Store::sync_off_thread`]: crate::daemon::store::Store::sync_off_thread

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// The least time between two checkpoints while commits come (they are coalesced).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// The path of SQLite's log of the database at `db`.
pub fn wal_path(db: &Path) -> PathBuf {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// The log's syncs and checkpoints for the core's store ([`Store::sync_off_thread`]).
/// Dropped, it lets its threads end (they are not waited for: the sync thread at once,
/// the checkpoint thread after its current pause).
pub struct Durable {
    log: Arc<File>,
    later: mpsc::Sender<mpsc::SyncSender<io::Result<()>>>,
    checkpoint: mpsc::SyncSender<()>,
}

/// A sync asked for with [`Durable::sync_later`].
pub struct Synced(Option<mpsc::Receiver<io::Result<()>>>);

impl Synced {
    /// Already durable (a store that syncs inside its commits).
    pub fn done() -> Synced {
        Synced(None)
    }

    /// Waits until the sync is done. An error (the sync failed, or its thread is gone) is
    /// the core's: nothing of that commit may be released, so the daemon stops and the
    /// broker redelivers what it did not acknowledge.
    pub fn wait(self) -> anyhow::Result<()> {
        let Some(rx) = self.0 else { return Ok(()) };
        match rx.recv() {
            Ok(r) => Ok(r.map_err(|e| anyhow::anyhow!("syncing the store's log: {e}"))?),
            Err(_) => anyhow::bail!("the store's sync thread is gone"),
        }
    }
}

impl Durable {
    /// Starts the sync and checkpoint threads for the store at `db`.
    pub fn start(db: &Path) -> anyhow::Result<Durable> {
        let log = Arc::new(File::open(wal_path(db))?);
        match db.parent() {
            Some(d) if !d.as_os_str().is_empty() => File::open(d)?.sync_all()?,
            _ => File::open(".")?.sync_all()?,
        }
        let (later, asks) = mpsc::channel::<mpsc::SyncSender<io::Result<()>>>();
        let sync_log = Arc::clone(&log);
        std::thread::Builder::new()
            .name("yingji-sync".into())
            .spawn(move || {
                // Every ask waiting when a sync starts is answered by it.
                while let Ok(first) = asks.recv() {
                    let waiting: Vec<_> = std::iter::once(first).chain(asks.try_iter()).collect();
                    let r = sync_log.sync_data();
                    for w in waiting {
                        let _ = w.send(r.as_ref().map(|_| ()).map_err(copy_err));
                    }
                }
            })?;
        let (checkpoint, nudges) = mpsc::sync_channel::<()>(1);
        let conn = rusqlite::Connection::open(db)?;
        std::thread::Builder::new()
            .name("yingji-checkpoint".into())
            .spawn(move || {
                while nudges.recv().is_ok() {
                    // PASSIVE: as far as no reader needs the log, without waiting for
                    // anyone; `busy` = 1 when another checkpoint was running.
                    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                        r.get::<_, i64>(0)
                    });
                    match done {
                        Ok(0) => {}
                        Ok(_) => tracing::debug!("checkpoint: another one was running"),
                        Err(e) => tracing::warn!(error = %e, "checkpoint of the store's log failed (tried again after the next commit)"),
                    }
                    std::thread::sleep(CHECKPOINT_EVERY);
                }
            })?;
        Ok(Durable {
            log,
            later,
            checkpoint,
        })
    }

    /// Makes every commit written so far durable, on this thread.
    pub fn sync(&self) -> io::Result<()> {
        self.log.sync_data()?;
        self.nudge_checkpoint();
        Ok(())
    }

    /// Makes every commit written so far durable, on the sync thread.
    pub fn sync_later(&self) -> Synced {
        let (tx, rx) = mpsc::sync_channel(1);
        // A thread that is gone drops `tx`: `wait` says so.
        let _ = self.later.send(tx);
        self.nudge_checkpoint();
        Synced(Some(rx))
    }

    /// Asks for a checkpoint (one already asked for and not started yet covers it).
    fn nudge_checkpoint(&self) {
        let _ = self.checkpoint.try_send(());
    }
}

fn copy_err(e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::store::Store;

    fn tmp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("yingji-durable-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("y.db")
    }

    /// Commits through a store that syncs off its thread: a sync asked for later is
    /// answered, and the checkpoint thread copies the log into the database file (with
    /// automatic checkpoints off on the core's connection, nothing else would).
    #[test]
    fn commits_are_synced_and_checkpointed_off_the_core_connection() {
        let path = tmp("ckpt");
        let mut store = Store::open(&path).unwrap();
        store.sync_off_thread(&path).unwrap();
        let db_len = || std::fs::metadata(&path).unwrap().len();
        let before = db_len();
        let payload = vec![b'x'; 3000];
        for i in 0..200 {
            let tx = store.begin().unwrap();
            tx.journal(
                crate::time::parse_ts("2023-12-01T08:00:00+08:00").unwrap(),
                "t",
                &payload,
            )
            .unwrap();
            if i % 2 == 0 {
                tx.commit().unwrap();
            } else {
                tx.commit_sync_later().unwrap().wait().unwrap();
            }
        }
        // Up to 30 s for the checkpoint thread.
        for _ in 0..1_500 {
            if db_len() > before + 200 * 3000 / 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            db_len() > before + 200 * 3000 / 2,
            "the log was not checkpointed into the database: {} bytes",
            db_len()
        );
        assert_eq!(store.journal_after(0).unwrap().len(), 200);
    }

    /// A sync whose thread is gone fails the wait, and a log that cannot be synced is
    /// refused at the start: the core never releases a commit it could not make durable.
    #[test]
    fn a_sync_that_cannot_happen_fails_the_wait() {
        let (_, rx) = mpsc::sync_channel(1);
        assert!(Synced(Some(rx)).wait().is_err());
        let path = tmp("gone");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        assert!(
            Durable::start(&path).is_err(),
            "no log file: the sync fails, it is not skipped"
        );
    }
}
