//! The `yingji` command line: parses arguments and calls into the library. Exit codes:
//! 0 success, 1 a check or comparison failed, 2 bad usage, config or scenario.

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
        #[arg(long)]
        config: Option<PathBuf>,
        /// Log JSON lines instead of text.
        #[arg(long)]
        json_logs: bool,
        /// Accept an empty (zero-byte) store file and start a new store in it.
        #[arg(long)]
        init: bool,
    },
    /// Replay scenario files on virtual time; notices as JSONL.
    Replay {
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
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
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// AQI of one set of hourly concentrations, e.g. `yingji aqi pm25=37 pm10=55`.
    Aqi {
        /// `pollutant=value` pairs: pm25 pm10 so2 no2 co o3 (µg/m³; co in mg/m³).
        #[arg(required = true)]
        values: Vec<String>,
        #[arg(long, default_value = "2026")]
        standard: String,
        #[arg(long)]
        json: bool,
    },
    /// The call register.
    Calls {
        #[command(subcommand)]
        cmd: CallsCmd,
    },
}

#[derive(Subcommand)]
enum CallsCmd {
    /// The call register of one event (warning id) as CSV.
    Export {
        #[arg(long)]
        event: String,
        #[arg(long)]
        config: Option<PathBuf>,
        /// Replay these scenarios on one fresh engine, in order, and export from its state
        /// (instead of the daemon's store).
        #[arg(long, num_args = 1..)]
        replay: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run {
            config,
            json_logs,
            init,
        } => run(config, json_logs, init),
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
        Cmd::Calls {
            cmd:
                CallsCmd::Export {
                    event,
                    config,
                    replay,
                },
        } => calls_export(&event, config, &replay),
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

fn run(config: Option<PathBuf>, json_logs: bool, init: bool) -> ExitCode {
    yingji::daemon::init_logging(json_logs);
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
            ExitCode::from(1)
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
    if let Some(t) = &timeline {
        if !t.extension().is_some_and(|e| e.eq_ignore_ascii_case("svg")) {
            eprintln!("--timeline needs a file name ending in .svg (its CSV goes beside it)");
            return ExitCode::from(2);
        }
        if scenarios.len() != 1 {
            eprintln!(
                "--timeline draws one scenario file (several files run on fresh engines, \
                 so their levels are not one history)"
            );
            return ExitCode::from(2);
        }
    }
    let loaded = match load_config(config.as_ref()) {
        Ok(l) => l,
        Err(c) => return c,
    };
    for k in &loaded.unknown_keys {
        eprintln!("config warning: unknown key {k} is ignored");
    }
    let cfg = Arc::new(loaded.config);
    let expected = match &expect {
        None => None,
        Some(p) => {
            let text = match std::fs::read_to_string(p) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("{}: {e}", p.display());
                    return ExitCode::from(2);
                }
            };
            match yingji::expect::parse_expected(&text) {
                Ok(x) => Some(x),
                Err(e) => {
                    eprintln!("{}: {e}", p.display());
                    return ExitCode::from(2);
                }
            }
        }
    };
    let mut writer: Box<dyn Write> = match &out {
        Some(p) => match std::fs::File::create(p) {
            Ok(f) => Box::new(std::io::BufWriter::new(f)),
            Err(e) => {
                eprintln!("{}: {e}", p.display());
                return ExitCode::from(2);
            }
        },
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut collected = Vec::new();
    let collect = expected.as_ref().map(|_| &mut collected);
    let progress = if quiet {
        None
    } else {
        ReplayProgress::for_replay(&scenarios, out.is_none())
    };
    let mut recorder = timeline.as_ref().map(|_| Recorder::new(&cfg));
    let mut watch = Watch {
        progress: progress.as_ref().map(|p| p as &dyn Progress),
        timeline: recorder.as_mut(),
    };
    let result = yingji::replay::run_files_watched(
        &cfg,
        &scenarios,
        &mut writer,
        collect,
        !quiet,
        &mut watch,
    );
    if let Some(p) = &progress {
        p.finish();
    }
    if let Err(e) = writer.flush() {
        eprintln!("writing notices: {e}");
        return ExitCode::from(2);
    }
    drop(writer);
    if let Err(e) = result {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    if let (Some(path), Some(rec)) = (&timeline, &recorder) {
        if let Err(e) = yingji::timeline::write_files(&cfg, path, rec) {
            eprintln!("--timeline: {e}");
            return ExitCode::from(2);
        }
    }
    if let Some(exp) = expected {
        if let Err(diff) = yingji::expect::compare(&exp, &collected) {
            eprint!("{diff}");
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
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
        ps.push(yingji::check::Problem {
            key: "webhook".into(),
            message: e.to_string(),
        });
    }
    // The broker and SMTP URLs as `run` reads them; the messages never show a secret.
    if let Some(m) = &loaded.config.mqtt {
        if let Err(e) = yingji::daemon::mqtt::Settings::from_config(m, "check") {
            ps.push(yingji::check::Problem {
                key: "mqtt.url".into(),
                message: e.to_string(),
            });
        }
    }
    if let Err(e) = yingji::daemon::email::validate(&loaded.config) {
        ps.push(yingji::check::Problem {
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

/// `yingji calls export --event ID`: the call register of one event (PLANS.md §3 "The
/// register") as CSV on stdout. With `--replay`, the scenarios run one after another on one
/// fresh engine (like a daemon's history) and the register comes from its state.
/// The daemon's engine as of now: the store's snapshot + journal, advanced to the clock.
fn engine_from_store(cfg: &Arc<Config>) -> Result<yingji::Engine, String> {
    let path = &cfg.store.path;
    if !path.exists() {
        return Err(format!(
            "no store at {} (has the daemon run with this config? use --replay SCENARIO... \
             to export from scenarios)",
            path.display()
        ));
    }
    let store =
        yingji::daemon::store::Store::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut engine = store
        .restore_engine(cfg)
        .map_err(|e| format!("{}: {e}", path.display()))?
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

fn calls_export(event: &str, config: Option<PathBuf>, replay: &[PathBuf]) -> ExitCode {
    let loaded = match load_config(config.as_ref()) {
        Ok(l) => l,
        Err(c) => return c,
    };
    let cfg = Arc::new(loaded.config);
    let engine = if replay.is_empty() {
        engine_from_store(&cfg)
    } else {
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
    print!("{csv}");
    ExitCode::SUCCESS
}
