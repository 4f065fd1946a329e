//! Retention (`[store] retain_days`, `[store] archive_dir`): the journal, the outbox and
//! the call register keep `retain_days` of history. Older journal rows, once a snapshot
//! includes them, are archived to a compressed scenario file and deleted (history.rs).

use super::*;
use crate::daemon::history::{self, Archived};

impl Core {
    /// Applies retention as of wall time `now`: the register entries before the cutoff
    /// are dropped, a snapshot is taken (it then includes every journal row), and the
    /// older journal rows and notices are archived and deleted.
    pub fn retain(&mut self, now: Ts) -> anyhow::Result<(usize, Archived)> {
        let cutoff = now - chrono::Duration::days(i64::from(self.cfg.store.retain_days));
        let register = self.engine.forget_register_before(cutoff);
        self.snapshot(now)?;
        let archived = history::archive(&self.store, &self.cfg.store.archive_dir, cutoff)?;
        Ok((register, archived))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_ts;
    use std::io::Read;

    /// A core on a fresh store in `dir` keeping 30 days, archiving beside it.
    fn core_keeping_30_days(dir: &std::path::Path, t0: Ts) -> (Arc<Config>, Core) {
        let _ = std::fs::remove_dir_all(dir);
        let toml = format!(
            "[store]\nretain_days = 30\narchive_dir = {:?}\n\n[[contact]]\nid = \"duty\"\n\
             name = \"值班室\"\nunit = \"市应急管理局\"\ntier = \"A\"\nwechat = \"duty\"\n",
            dir.join("archive")
        );
        let cfg = Arc::new(Config::from_toml(&toml).unwrap().config);
        let store = Store::open(&dir.join("y.db")).unwrap();
        let core = Core::recover(Arc::clone(&cfg), store, t0).unwrap();
        (cfg, core)
    }

    /// A rainstorm warning input: `tail` is `"action": "issue", "color": "red"` or the like.
    fn warning(at: Ts, id: &str, tail: &str) -> Incoming<()> {
        let payload = format!(
            r#"{{"ts": "{}", "id": "{id}", "hazard": "rainstorm", {tail}}}"#,
            fmt_ts(at)
        );
        Incoming {
            topic: "ers/shuozhou/weather/warning".into(),
            payload: payload.into_bytes(),
            pkid: 0,
            dup: false,
            retained: false,
            arrived: Some(at),
            parsed: None,
            token: (),
        }
    }

    /// An old storm at `old`, lifted two hours later, and a recent one at `recent`.
    fn two_storms(core: &mut Core, old: Ts, recent: Ts) {
        let issue = r#""action": "issue", "color": "red""#;
        core.ingest(vec![warning(old, "old-rain", issue)], old)
            .unwrap();
        core.tick::<()>(old + chrono::Duration::hours(1)).unwrap();
        let lift = old + chrono::Duration::hours(2);
        let lifted = warning(lift, "old-rain", r#""action": "lift""#);
        core.ingest(vec![lifted], lift).unwrap();
        core.ingest(vec![warning(recent, "new-rain", issue)], recent)
            .unwrap();
        core.tick::<()>(recent + chrono::Duration::hours(1))
            .unwrap();
    }

    /// The scenario lines of a gzipped archive, comments left out.
    fn archive_lines(file: &std::path::Path) -> Vec<String> {
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(file).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        text.lines()
            .filter(|l| !l.starts_with("//"))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn retention_archives_old_journal_rows_and_drops_old_notices_and_register_entries() {
        let dir = std::env::temp_dir().join(format!("yingji-retain-{}", std::process::id()));
        let t0 = parse_ts("2024-07-01T08:00:00+08:00").unwrap();
        let (cfg, mut core) = core_keeping_30_days(&dir, t0);
        // An old storm (40 days before `now`) and a recent one (10 days before).
        let now = t0 + chrono::Duration::days(40);
        two_storms(&mut core, t0, t0 + chrono::Duration::days(30));
        let notices_before = core.store().notices().unwrap();
        assert!(notices_before
            .iter()
            .any(|n| n.at < now - chrono::Duration::days(30)));
        let journal_before = core.store().journal_after(0).unwrap();
        assert_eq!(journal_before.len(), 3);

        let (register, archived) = core.retain(now).unwrap();
        assert!(register > 0, "old register entries dropped");
        let cutoff = now - chrono::Duration::days(30);
        let weather = &core.engine().state().regions[0].weather;
        assert!(!weather.register.is_empty() && weather.register.iter().all(|e| e.at >= cutoff));
        // The old row is in the archive, as a scenario line, and gone from the journal.
        assert_eq!(archived.journal_rows, 2);
        let left = core.store().journal_after(0).unwrap();
        assert_eq!(left, journal_before[2..].to_vec());
        let lines = archive_lines(archived.file.as_deref().unwrap());
        let want: Vec<String> = journal_before[..2]
            .iter()
            .map(history::scenario_line)
            .collect();
        assert_eq!(lines, want);
        assert!(crate::replay::parse_line(&lines[0]).is_ok());
        // Notices: the old ones are gone, the recent ones kept.
        let kept = core.store().notices().unwrap();
        assert_eq!(archived.notices, notices_before.len() - kept.len());
        assert!(archived.notices > 0);
        assert!(!kept.is_empty() && kept.iter().all(|n| n.at >= cutoff));
        // A retained copy of an archived input is still ignored: the lazy index of
        // handled inputs took the rows in before they were deleted.
        let old_issue = Incoming {
            retained: true,
            ..warning(t0, "old-rain", r#""action": "issue", "color": "red""#)
        };
        let fx = core.ingest(vec![old_issue], now).unwrap();
        assert!(fx.notices.is_empty() && fx.rejections.is_empty());
        assert_eq!(core.store().journal_after(0).unwrap(), left);
        // Recovery from the store still works (snapshot + what is left of the journal).
        let store = Store::open(&dir.join("y.db")).unwrap();
        let again = Core::recover(cfg, store, now).unwrap();
        let register = |c: &Core| c.engine().state().regions[0].weather.register.clone();
        assert_eq!(register(&again), register(&core));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// When every journal row is old, the newest stays: seqs are rowids, and an emptied
    /// journal would give the next input seq 1, which recovery (snapshot at the old last
    /// seq, then the rows after it) would skip although it was acknowledged.
    #[test]
    fn retention_never_empties_the_journal_so_seqs_keep_growing() {
        let dir = std::env::temp_dir().join(format!("yingji-retain-all-{}", std::process::id()));
        let t0 = parse_ts("2024-07-01T08:00:00+08:00").unwrap();
        let (cfg, mut core) = core_keeping_30_days(&dir, t0);
        let issue = r#""action": "issue", "color": "red""#;
        core.ingest(vec![warning(t0, "old-rain", issue)], t0)
            .unwrap();
        let lift = t0 + chrono::Duration::hours(2);
        core.ingest(vec![warning(lift, "old-rain", r#""action": "lift""#)], lift)
            .unwrap();
        let last = core.store().last_seq().unwrap();
        let now = t0 + chrono::Duration::days(40);
        let (_, archived) = core.retain(now).unwrap();
        assert_eq!(archived.journal_rows, 1, "all but the newest row archived");
        core.ingest(vec![warning(now, "new-rain", issue)], now)
            .unwrap();
        assert!(
            core.store().last_seq().unwrap() > last,
            "the next seq follows the old ones"
        );
        // Recovery replays the new input after the snapshot.
        let store = Store::open(&dir.join("y.db")).unwrap();
        let again = Core::recover(cfg, store, now).unwrap();
        let warnings = |c: &Core| {
            serde_json::to_string(&c.engine().state().regions[0].weather.tracks).unwrap()
        };
        assert_eq!(warnings(&again), warnings(&core));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
