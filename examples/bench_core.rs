//! The daemon's core alone, without a broker (docs/performance.md, "Live ingest and round
//! trip"): the stock readings of `bench_live fill` (100 plants, healthy stock) through
//! `Core::ingest` in batches of 512, the drain's batch size, on a fresh store.
//!
//!     bench_core CONFIG [N] [--raw] [--sync-here]
//!
//! - `N`: readings (100,000).
//! - `--raw`: the core parses each payload, as before inbound.rs parsed them on arrival.
//! - `--sync-here`: every commit is synced on the core's thread with SQLite's automatic
//!   checkpoints (`synchronous = FULL`), instead of durable.rs's sync and checkpoint
//!   threads with each batch synced while the next one is handled, as the daemon drains.
//!
//! Prints the wall time of the batches and of their commits, then the time a restart
//! takes to replay the journal after the latest snapshot. Under
//! `valgrind --tool=callgrind --toggle-collect='*Core::ingest*'` it counts the core's
//! instructions, which the load of the machine does not change.

#![warn(clippy::too_many_lines)]
// A benchmark reads the clock to time itself; clippy.toml keeps the core off the clock.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use yingji::daemon::core::{restore_engine, Core, Incoming};
use yingji::daemon::durable::Synced;
use yingji::daemon::store::Store;
use yingji::time::{fmt_ts, parse_ts};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    let mut plain = args.iter().filter(|a| !a.starts_with("--"));
    let Some(config) = plain.next() else {
        anyhow::bail!("usage: bench_core CONFIG [N] [--raw] [--sync-here]");
    };
    let n: usize = plain.next().map_or(Ok(100_000), |a| a.parse())?;
    let cfg = yingji::config::Config::from_toml(&std::fs::read_to_string(config)?)
        .map_err(|errors| anyhow::anyhow!("{config}: {errors:?}"))?;
    let cfg = Arc::new(cfg.config);
    let dir = std::env::temp_dir().join(format!("yingji-bench-core-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("yingji.db");
    let mut store = Store::open_checked(&path, true)?;
    if !flag("--sync-here") {
        store.sync_off_thread(&path)?;
    }
    let t0 = parse_ts("2026-11-30T10:00:00+08:00").map_err(anyhow::Error::msg)?;
    let mut core = Core::recover(Arc::clone(&cfg), store, t0)?;
    let inputs = readings(&cfg, t0, n, !flag("--raw"));
    let (start, mut commits, mut rejected) = (Instant::now(), Duration::ZERO, 0);
    let mut pending = Synced::done();
    let mut rest = inputs.into_iter();
    loop {
        let batch: Vec<_> = rest.by_ref().take(512).collect();
        let Some(now) = batch.last().and_then(|m| m.arrived) else {
            break;
        };
        let (fx, synced) = core.ingest_sync_later(batch, now)?;
        commits += core.last_commit();
        rejected += fx.rejections.len();
        // As the daemon's drain: the batch before is released once synced.
        std::mem::replace(&mut pending, synced).wait()?;
    }
    pending.wait()?;
    let took = start.elapsed();
    println!(
        "{n} readings: {:.3} s ({:.2} us each), commits {:.3} s, rejected {rejected}",
        took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / n as f64,
        commits.as_secs_f64()
    );
    drop(core);
    let store = Store::open_checked(&path, false)?;
    let t = Instant::now();
    let r = restore_engine(&store, &cfg)?;
    println!(
        "restart: {} journal rows replayed after the snapshot at seq {} in {:.1} ms",
        r.replayed,
        r.snapshot_seq,
        t.elapsed().as_secs_f64() * 1e3
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// `n` stock readings of 100 plants, ten a millisecond from `t0`; `parsed`: as inbound.rs
/// hands them over, parsed on arrival.
fn readings(
    cfg: &yingji::config::Config,
    t0: yingji::time::Ts,
    n: usize,
    parsed: bool,
) -> Vec<Incoming<()>> {
    let topic = format!("{}/{}/coal/stock", cfg.topic_root, cfg.regions[0].id);
    let mut inputs: Vec<Incoming<()>> = (0..n)
        .map(|i| {
            let ts = t0 + chrono::Duration::seconds((i / 100) as i64 - 600);
            let payload = format!(
                r#"{{"burn_t_per_day":10000,"plant":"plant-{:02}","stock_t":250000,"ts":"{}"}}"#,
                i % 100,
                fmt_ts(ts)
            );
            Incoming {
                topic: topic.clone(),
                payload: payload.into_bytes(),
                pkid: (i % 65_535 + 1) as u16,
                dup: false,
                retained: false,
                // Ten a millisecond, as they come off the network in a drain.
                arrived: Some(t0 + chrono::Duration::microseconds(i as i64 * 100 + 1000)),
                parsed: None,
                token: (),
            }
        })
        .collect();
    if parsed {
        for m in &mut inputs {
            let at = m.arrived.expect("set above");
            m.parsed = Some(yingji::input::parse(cfg, &m.topic, &m.payload, at));
        }
    }
    inputs
}
