//! What a year of one city's feeds costs on disk (docs/daemon.md "Retention"). Not run by
//! default: generate the year, then run it by name:
//!
//! ```text
//! python3 scripts/gen_scenario.py --days 365 > /tmp/year.jsonl
//! YINGJI_YEAR_SCENARIO=/tmp/year.jsonl cargo test --release --test retention_size -- --ignored --nocapture
//! ```

use std::io::BufRead;
use std::sync::Arc;

use yingji::daemon::core::{Core, Incoming};
use yingji::daemon::history;
use yingji::daemon::store::Store;
use yingji::replay::{parse_line, Event};

fn size(p: &std::path::Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

#[test]
#[ignore]
fn a_year_of_feeds_on_disk() {
    let scen = std::env::var("YINGJI_YEAR_SCENARIO").expect("YINGJI_YEAR_SCENARIO=FILE");
    let dir = std::env::temp_dir().join(format!("yingji-year-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/yingji.toml"),
    )
    .unwrap();
    let cfg = Arc::new(yingji::Config::from_toml(&text).unwrap().config);
    let db = dir.join("yingji.db");
    let store = Store::open(&db).unwrap();
    let mut core: Option<Core> = None;
    let mut batch = Vec::new();
    let mut last = None;
    let (mut inputs, mut notices) = (0usize, 0usize);
    let file = std::io::BufReader::new(std::fs::File::open(&scen).unwrap());
    let mut store = Some(store);
    for line in file.lines() {
        let line = line.unwrap();
        if line.trim().is_empty() || line.starts_with("//") {
            continue;
        }
        let Ok(Event::Message { at, topic, payload }) = parse_line(&line) else {
            continue;
        };
        let c = core.get_or_insert_with(|| {
            Core::recover(Arc::clone(&cfg), store.take().unwrap(), at).unwrap()
        });
        if batch.len() == 256 || last.is_some_and(|l| l != at) {
            let now = last.unwrap();
            let fx = c.ingest(std::mem::take(&mut batch), now).unwrap();
            notices += fx.notices.len();
        }
        inputs += 1;
        last = Some(at);
        batch.push(Incoming {
            topic: topic.into_owned(),
            payload: payload.into_owned(),
            pkid: 0,
            dup: false,
            retained: false,
            arrived: Some(at),
            parsed: None,
            token: (),
        });
    }
    let mut core = core.unwrap();
    let end = last.unwrap();
    notices += core.ingest(batch, end).unwrap().notices.len();
    core.snapshot(end).unwrap();
    let journal = core.store().last_seq().unwrap();
    let conn = core.store().conn();
    conn.pragma_update(None, "wal_checkpoint", "TRUNCATE").ok();
    let store_bytes = size(&db) + size(&dir.join("yingji.db-wal"));
    // Everything archived: the compressed scenario file of the whole year.
    let a = history::archive(
        core.store(),
        &dir.join("archive"),
        end + chrono::Duration::days(1),
    )
    .unwrap();
    let archive_bytes = a.file.as_deref().map(size).unwrap_or(0);
    println!(
        "scenario {scen}: {inputs} inputs, {journal} journaled, {notices} notices; \
         store {store_bytes} bytes ({:.1} MB); archive of the year {archive_bytes} bytes ({:.1} MB)",
        store_bytes as f64 / 1e6,
        archive_bytes as f64 / 1e6
    );
    let _ = std::fs::remove_dir_all(&dir);
}
