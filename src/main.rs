//! The `yingji` command line: parses arguments and calls into the library. Exit codes:
//! 0 success, 1 a check or comparison failed, 2 bad usage, config or scenario.

#![warn(clippy::too_many_lines)]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use yingji::aqi::{self, Concentrations, Pollutant, Standard};
use yingji::config::{Config, Loaded};
use yingji::progress::ReplayProgress;
use yingji::replay::{Progress, Watch};
use yingji::timeline::Recorder;

#[derive(Parser)]
#[command(
    name = "yingji",
    version,
    about = "应急 — Shuozhou's emergency plans as a service"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the long-running daemon.
    Run {
        /// Config file; default config/yingji.toml when it exists, else built-in defaults.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Log JSON lines instead of text.
        #[arg(long)]
        json_logs: bool,
        /// Log times in UTC instead of +08:00 (the notices' time zone).
        #[arg(long)]
        utc_logs: bool,
        /// Accept an empty (zero-byte) store file and start a new store in it.
        #[arg(long)]
        init: bool,
    },
    /// Replay scenario files on virtual time; notices as JSONL.
    Replay {
        /// Scenario files (JSON lines), each replayed on a fresh engine, in order.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Config file; default config/yingji.toml when it exists, else built-in defaults.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Write notices here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Compare the notices with this expected file; exit 1 with a diff when they differ.
        #[arg(long)]
        expect: Option<PathBuf>,
        /// Print nothing on stderr but errors: no rejected inputs, no progress bar (the
        /// bar is only shown when stderr is a terminal).
        #[arg(long)]
        quiet: bool,
        /// Draw the run as a timeline picture (SVG) with its data beside it (CSV); with
        /// several regions configured, one FILE-{region}.svg each. One scenario file.
        #[arg(long, value_name = "FILE.svg")]
        timeline: Option<PathBuf>,
    },
    /// Validate the configuration and contact coverage; exit 1 on problems.
    Check {
        /// Config file; default config/yingji.toml when it exists, else built-in defaults.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// AQI of one set of hourly concentrations, e.g. `yingji aqi pm25=37 pm10=55`.
    Aqi {
        /// `pollutant=value` pairs: pm25 pm10 so2 no2 co o3 (µg/m³; co in mg/m³).
        #[arg(required = true)]
        values: Vec<String>,
        /// The AQI standard: 2026 (HJ 633-2026) or 2012 (HJ 633-2012).
        #[arg(long, default_value = "2026")]
        standard: String,
        /// Print JSON: {"aqi": .., "iaqi": {..}, "primary": [..]}.
        #[arg(long)]
        json: bool,
    },
    /// Print the argon2 hash of a password read from stdin, for `[[operator]]
    /// password_hash` (the console's logins).
    Passwd,
    /// The call register.
    Calls {
        #[command(subcommand)]
        cmd: CallsCmd,
    },
    /// The daemon's input journal.
    Journal {
        #[command(subcommand)]
        cmd: JournalCmd,
    },
}

#[derive(Subcommand)]
enum JournalCmd {
    /// Write the journal as a scenario file, for `yingji replay` (after-action review).
    /// A whole export replayed with the stored config (`--config-out`) gives the stored
    /// notices, id for id.
    Export {
        /// Config file naming the store ([store] path); default config/yingji.toml.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The store to read, instead of the config's [store] path.
        #[arg(long)]
        store: Option<PathBuf>,
        /// Only inputs handled at or after this time (RFC 3339).
        #[arg(long, value_parser = parse_time)]
        from: Option<yingji::Ts>,
        /// Only inputs handled at or before this time (RFC 3339); the scenario ends there.
        #[arg(long, value_parser = parse_time)]
        to: Option<yingji::Ts>,
        /// Only inputs of this region.
        #[arg(long)]
        region: Option<String>,
        /// Write the scenario here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write the config the daemon ran with (secrets redacted) here.
        #[arg(long)]
        config_out: Option<PathBuf>,
    },
}

fn parse_time(s: &str) -> Result<yingji::Ts, String> {
    yingji::time::parse_ts(s).map_err(|e| format!("{e} (e.g. 2026-01-31T08:00:00+08:00)"))
}

#[derive(Subcommand)]
enum CallsCmd {
    /// The call register of one event (warning id) as CSV.
    Export {
        /// The event: the warning id its calls were made for.
        #[arg(long)]
        event: String,
        /// Config file; default: the config the daemon's last start stored (with
        /// --replay: config/yingji.toml, else built-in defaults).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The daemon's store, instead of the config's [store] path.
        #[arg(long, conflicts_with = "replay")]
        store: Option<PathBuf>,
        /// Replay these scenarios on one fresh engine, in order, and export from its state
        /// (instead of the daemon's store).
        #[arg(long, num_args = 1..)]
        replay: Vec<PathBuf>,
    },
}

/// `yingji passwd`: reads one line (the password) from stdin, prints its argon2 hash.
fn passwd_cmd() -> ExitCode {
    use std::io::{BufRead, IsTerminal};
    let tty = std::io::stdin().is_terminal();
    // Best effort: no echo while typing on a terminal.
    let stty = |arg: &str| {
        let _ = std::process::Command::new("stty")
            .arg(arg)
            .stdin(std::process::Stdio::inherit())
            .status();
    };
    if tty {
        eprint!("Password: ");
        stty("-echo");
    }
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if tty {
        stty("echo");
        eprintln!();
    }
    let pw = line.trim_end_matches(['\r', '\n']);
    if read.is_err() || pw.is_empty() {
        eprintln!("yingji passwd: no password given on stdin");
        return ExitCode::from(2);
    }
    match yingji::daemon::http::session::hash_password(pw) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("yingji passwd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run {
            config,
            json_logs,
            utc_logs,
            init,
        } => run(config, json_logs, utc_logs, init),
        Cmd::Replay {
            scenarios,
            config,
            out,
            expect,
            quiet,
            timeline,
        } => replay(scenarios, config, out, expect, quiet, timeline),
        Cmd::Check { config } => check(config),
        Cmd::Aqi {
            values,
            standard,
            json,
        } => aqi_cmd(&values, &standard, json),
        Cmd::Passwd => passwd_cmd(),
        Cmd::Calls {
            cmd:
                CallsCmd::Export {
                    event,
                    config,
                    store,
                    replay,
                },
        } => calls_export(&event, config, store, &replay),
        Cmd::Journal {
            cmd:
                JournalCmd::Export {
                    config,
                    store,
                    from,
                    to,
                    region,
                    out,
                    config_out,
                },
        } => journal_export(
            config,
            store,
            yingji::daemon::history::Filter { from, to, region },
            out,
            config_out,
        ),
    }
}

/// `--out FILE`, or stdout; buffered.
fn output(out: Option<&PathBuf>) -> Result<Box<dyn Write>, ExitCode> {
    match out {
        Some(p) => match std::fs::File::create(p) {
            Ok(f) => Ok(Box::new(std::io::BufWriter::new(f))),
            Err(e) => {
                eprintln!("{}: {e}", p.display());
                Err(ExitCode::from(2))
            }
        },
        None => Ok(Box::new(std::io::BufWriter::new(std::io::stdout().lock()))),
    }
}

fn load_config(path: Option<&PathBuf>) -> Result<Loaded, ExitCode> {
    Config::load(path.map(|p| p.as_path())).map_err(|errs| {
        for e in errs {
            eprintln!("config error: {e}");
        }
        ExitCode::from(2)
    })
}

fn run(config: Option<PathBuf>, json_logs: bool, utc_logs: bool, init: bool) -> ExitCode {
    yingji::daemon::init_logging(json_logs, utc_logs);
    let loaded = match load_config(config.as_ref()) {
        Ok(l) => l,
        Err(c) => return c,
    };
    for k in &loaded.unknown_keys {
        tracing::warn!(key = %k, "unknown config key is ignored");
    }
    let source = loaded
        .source
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "built-in defaults".into());
    tracing::info!(config = %source, "starting yingji {}", env!("CARGO_PKG_VERSION"));
    match yingji::daemon::run(Arc::new(loaded.config), init) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("yingji run: {e:#}");
            ExitCode::from(yingji::daemon::exit_code(&e))
        }
    }
}

fn replay(
    scenarios: Vec<PathBuf>,
    config: Option<PathBuf>,
    out: Option<PathBuf>,
    expect: Option<PathBuf>,
    quiet: bool,
    timeline: Option<PathBuf>,
) -> ExitCode {
    match replay_checked(&scenarios, config, out, expect, quiet, timeline) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

/// `yingji replay`; `Err` carries the exit code once the reason is printed.
fn replay_checked(
    scenarios: &[PathBuf],
    config: Option<PathBuf>,
    out: Option<PathBuf>,
    expect: Option<PathBuf>,
    quiet: bool,
    timeline: Option<PathBuf>,
) -> Result<(), ExitCode> {
    if let Some(t) = &timeline {
        timeline_usage(t, scenarios.len())?;
    }
    let loaded = load_config(config.as_ref())?;
    for k in &loaded.unknown_keys {
        eprintln!("config warning: unknown key {k} is ignored");
    }
    let cfg = Arc::new(loaded.config);
    let expected = expect.as_deref().map(read_expected).transpose()?;
    let mut writer = output(out.as_ref())?;
    let mut collected = Vec::new();
    let collect = expected.as_ref().map(|_| &mut collected);
    let progress = if quiet {
        None
    } else {
        ReplayProgress::for_replay(scenarios, out.is_none())
    };
    let mut recorder = timeline.as_ref().map(|_| Recorder::new(&cfg));
    let mut watch = Watch {
        progress: progress.as_ref().map(|p| p as &dyn Progress),
        timeline: recorder.as_mut(),
    };
    let result = yingji::replay::run_files_watched(
        &cfg,
        scenarios,
        &mut writer,
        collect,
        !quiet,
        &mut watch,
    );
    if let Some(p) = &progress {
        p.finish();
    }
    if !notices_written(&result, writer)? {
        return Ok(());
    }
    if let Err(e) = result {
        eprintln!("{e}");
        return Err(ExitCode::from(2));
    }
    if let (Some(path), Some(rec)) = (&timeline, &recorder) {
        if let Err(e) = yingji::timeline::write_files(&cfg, path, rec) {
            eprintln!("--timeline: {e}");
            return Err(ExitCode::from(2));
        }
    }
    if let Some(exp) = expected {
        if let Err(diff) = yingji::expect::compare(&exp, &collected) {
            eprint!("{diff}");
            return Err(ExitCode::from(1));
        }
    }
    Ok(())
}

/// `--timeline` draws one scenario file into an `.svg`.
fn timeline_usage(t: &std::path::Path, files: usize) -> Result<(), ExitCode> {
    if !t.extension().is_some_and(|e| e.eq_ignore_ascii_case("svg")) {
        eprintln!("--timeline needs a file name ending in .svg (its CSV goes beside it)");
        return Err(ExitCode::from(2));
    }
    if files != 1 {
        eprintln!(
            "--timeline draws one scenario file (several files run on fresh engines, \
             so their levels are not one history)"
        );
        return Err(ExitCode::from(2));
    }
    Ok(())
}

/// The notices `--expect` names.
fn read_expected(p: &std::path::Path) -> Result<Vec<yingji::expect::Expected>, ExitCode> {
    let text = std::fs::read_to_string(p).map_err(|e| {
        eprintln!("{}: {e}", p.display());
        ExitCode::from(2)
    })?;
    yingji::expect::parse_expected(&text).map_err(|e| {
        eprintln!("{}: {e}", p.display());
        ExitCode::from(2)
    })
}

/// Flushes the notices written; `Ok(false)` when the reader went away
/// (`yingji replay ... | head`: stop quietly, as ripgrep does).
fn notices_written<T>(
    result: &Result<T, yingji::replay::ScenarioError>,
    mut writer: Box<dyn Write>,
) -> Result<bool, ExitCode> {
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::BrokenPipe;
    if let Err(yingji::replay::ScenarioError::Io { source, .. }) = result {
        if gone(source) {
            return Ok(false);
        }
    }
    if let Err(e) = writer.flush() {
        if gone(&e) {
            return Ok(false);
        }
        eprintln!("writing notices: {e}");
        return Err(ExitCode::from(2));
    }
    Ok(true)
}

fn check(config: Option<PathBuf>) -> ExitCode {
    let loaded = match Config::load(config.as_deref()) {
        Ok(l) => l,
        Err(errs) => {
            for e in errs {
                println!("error: {e}");
            }
            return ExitCode::from(1);
        }
    };
    let source = loaded
        .source
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "built-in defaults".into());
    let mut ps = yingji::check::problems(&loaded);
    // Webhooks are resolved as the daemon would (key files, ${ENV} references).
    if let Err(e) = yingji::daemon::webhook::validate(&loaded.config) {
        ps.push(yingji::config::ConfigError {
            key: "webhook".into(),
            message: e.to_string(),
        });
    }
    // The broker and SMTP URLs as `run` reads them; the messages never show a secret.
    if let Some(m) = &loaded.config.mqtt {
        if let Err(e) = yingji::daemon::mqtt::Settings::from_config(m, "check") {
            ps.push(yingji::config::ConfigError {
                key: "mqtt.url".into(),
                message: e.to_string(),
            });
        }
    }
    if let Err(e) = yingji::daemon::email::validate(&loaded.config) {
        ps.push(yingji::config::ConfigError {
            key: "email.smtp_url".into(),
            message: e.to_string(),
        });
    }
    if ps.is_empty() {
        println!("{source}: OK");
        ExitCode::SUCCESS
    } else {
        for p in &ps {
            println!("problem: {p}");
        }
        println!("{source}: {} problem(s)", ps.len());
        ExitCode::from(1)
    }
}

fn aqi_cmd(values: &[String], standard: &str, json: bool) -> ExitCode {
    let Some(std) = Standard::parse(standard) else {
        eprintln!("--standard must be 2026 or 2012, got {standard:?}");
        return ExitCode::from(2);
    };
    let mut c = Concentrations::default();
    for v in values {
        let Some((k, x)) = v.split_once('=') else {
            eprintln!("expected pollutant=value, got {v:?}");
            return ExitCode::from(2);
        };
        let x: f64 = match x.trim().parse() {
            Ok(x) if f64::is_finite(x) && x >= 0.0 => x,
            _ => {
                eprintln!("{k}: not a non-negative number: {x:?}");
                return ExitCode::from(2);
            }
        };
        let slot = match k.trim().to_ascii_lowercase().as_str() {
            "pm25" | "pm2.5" => &mut c.pm25,
            "pm10" => &mut c.pm10,
            "so2" => &mut c.so2,
            "no2" => &mut c.no2,
            "co" => &mut c.co,
            "o3" => &mut c.o3,
            "so2_24h" => &mut c.so2_24h,
            other => {
                eprintln!("unknown pollutant {other:?} (pm25 pm10 so2 no2 co o3)");
                return ExitCode::from(2);
            }
        };
        *slot = Some(x);
    }
    let Some(r) = aqi::compute(&c, std) else {
        eprintln!("no pollutant given");
        return ExitCode::from(2);
    };
    let primary: Vec<&str> = r.primary.iter().map(|p| p.as_str()).collect();
    if json {
        let iaqi: serde_json::Map<String, serde_json::Value> = r
            .iaqi
            .iter()
            .map(|(p, v)| (p.key().to_string(), (*v).into()))
            .collect();
        println!(
            "{}",
            serde_json::json!({"aqi": r.aqi, "iaqi": iaqi, "primary": primary})
        );
    } else {
        println!(
            "AQI {} ({}), primary: {}",
            r.aqi,
            aqi::category_zh(f64::from(r.aqi)),
            if primary.is_empty() {
                "none".to_string()
            } else {
                primary.join(" ")
            }
        );
        for p in Pollutant::ALL {
            if let Some(v) = r.iaqi.get(&p) {
                println!("  IAQI {:<5} {v}", p.as_str());
            }
        }
    }
    ExitCode::SUCCESS
}

/// The daemon's engine as of now: the store's snapshot + journal, advanced to the clock.
fn engine_from_store(
    cfg: &Arc<Config>,
    store: &yingji::daemon::store::Store,
) -> Result<yingji::Engine, String> {
    let mut engine = yingji::daemon::core::restore_engine(store, cfg)
        .map_err(|e| e.to_string())?
        .engine;
    // Calls made by timers since the last input are part of the register too.
    drop(engine.advance_to(yingji::clock::now()));
    Ok(engine)
}

/// Scenarios fed one after another into one fresh engine, like a daemon's history.
fn engine_from_scenarios(cfg: &Arc<Config>, files: &[PathBuf]) -> Result<yingji::Engine, String> {
    let mut engine = yingji::Engine::new(Arc::clone(cfg));
    for f in files {
        let file = std::fs::File::open(f).map_err(|e| format!("{}: {e}", f.display()))?;
        yingji::replay::feed_scenario(
            &mut engine,
            &f.display().to_string(),
            std::io::BufReader::new(file),
            &mut |_| {},
            &mut |_, _| {},
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(engine)
}

/// `yingji calls export --event ID`: the call register of one event (PLANS.md §3 "The
/// register") as CSV on stdout. From the daemon's store, with the config its last start
/// stored unless `--config` is given; with `--replay`, the scenarios run one after another
/// on one fresh engine (like a daemon's history) and the register comes from its state.
fn calls_export(
    event: &str,
    config: Option<PathBuf>,
    store: Option<PathBuf>,
    replay: &[PathBuf],
) -> ExitCode {
    let engine = if replay.is_empty() {
        let (cfg, store) = match open_store(config.as_ref(), store) {
            Ok(x) => x,
            Err(c) => return c,
        };
        let cfg = match (&config, yingji::daemon::history::latest_config(&store)) {
            (None, Ok(Some(stored))) => match Config::from_toml(&stored.toml) {
                Ok(l) => l.config,
                Err(errs) => {
                    for e in errs {
                        eprintln!("stored config: {e}");
                    }
                    return ExitCode::from(2);
                }
            },
            (_, Err(e)) => {
                eprintln!("reading the stored configs: {e}");
                return ExitCode::from(2);
            }
            _ => cfg,
        };
        engine_from_store(&Arc::new(cfg), &store)
    } else {
        let cfg = match load_config(config.as_ref()) {
            Ok(l) => Arc::new(l.config),
            Err(c) => return c,
        };
        engine_from_scenarios(&cfg, replay)
    };
    let engine = match engine {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut csv = String::new();
    for r in &engine.state().regions {
        if let Some(c) = r.weather.register_csv(event) {
            // One header for all regions.
            let body = if csv.is_empty() {
                c.as_str()
            } else {
                c.split_once('\n').map_or("", |x| x.1)
            };
            csv.push_str(body);
        }
    }
    if csv.is_empty() {
        eprintln!("no call was made for event {event:?}");
        return ExitCode::from(1);
    }
    if csv.lines().count() < 2 {
        eprintln!("event {event:?} called nobody (no contact matched)");
        return ExitCode::from(1);
    }
    print!("{csv}");
    ExitCode::SUCCESS
}

/// Opens the daemon's store (`store`, else the config's `[store] path`) read-only-ish:
/// the tools never write to it.
fn open_store(
    config: Option<&PathBuf>,
    store: Option<PathBuf>,
) -> Result<(Config, yingji::daemon::store::Store), ExitCode> {
    let cfg = load_config(config)?.config;
    let path = store.unwrap_or_else(|| cfg.store.path.clone());
    if !path.exists() {
        eprintln!(
            "no store at {} (has the daemon run with this config? --store PATH names another)",
            path.display()
        );
        return Err(ExitCode::from(2));
    }
    match yingji::daemon::store::Store::open(&path) {
        Ok(s) => Ok((cfg, s)),
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            Err(ExitCode::from(2))
        }
    }
}

fn journal_export(
    config: Option<PathBuf>,
    store: Option<PathBuf>,
    filter: yingji::daemon::history::Filter,
    out: Option<PathBuf>,
    config_out: Option<PathBuf>,
) -> ExitCode {
    use yingji::daemon::history;
    let (cfg, store) = match open_store(config.as_ref(), store) {
        Ok(x) => x,
        Err(c) => return c,
    };
    let stored = match history::config_at(&store, filter.to) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("reading the stored configs: {e}");
            return ExitCode::from(2);
        }
    };
    let root = stored
        .as_ref()
        .and_then(|c| yingji::Config::from_toml(&c.toml).ok())
        .map_or(cfg.topic_root.clone(), |l| l.config.topic_root);
    if let Some(p) = &config_out {
        let Some(c) = &stored else {
            eprintln!("the store has no stored config (the daemon stores it at each start)");
            return ExitCode::from(2);
        };
        let text = format!(
            "# The config yingji ran with from {} (fingerprint {}); secrets redacted.\n{}",
            yingji::time::fmt_ts(c.started_at),
            c.fingerprint,
            c.toml
        );
        if let Err(e) = std::fs::write(p, text) {
            eprintln!("{}: {e}", p.display());
            return ExitCode::from(2);
        }
    }
    let mut writer = match output(out.as_ref()) {
        Ok(w) => w,
        Err(c) => return c,
    };
    let r = history::export(&store, &root, &filter, &mut writer).and_then(|x| {
        writer.flush()?;
        Ok(x)
    });
    match r {
        Ok(x) => {
            eprintln!("{} journaled inputs exported", x.rows);
            ExitCode::SUCCESS
        }
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("journal export: {e}");
            ExitCode::from(2)
        }
    }
}

/// A reader (`| head`) that went away: not an error (as ripgrep does).
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
