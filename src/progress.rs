//! The progress bar of `yingji replay` on a terminal (indicatif): bytes read of the
//! scenario files, messages per second, and the virtual time reached.

use std::cell::Cell;
use std::io::IsTerminal;
use std::path::PathBuf;

use indicatif::{HumanCount, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::replay::{Progress, Tick};
use crate::time::Ts;

/// Lines between two updates of the bar (a replay reads ~300k lines/s; indicatif redraws
/// at most 20 times a second anyway).
const EVERY: u64 = 1024;

pub struct ReplayProgress {
    bar: ProgressBar,
    lines: Cell<u64>,
    bytes: Cell<u64>,
    messages: Cell<u64>,
    at: Cell<Option<Ts>>,
}

impl ReplayProgress {
    /// The bar of a replay of `files` (their total size), or `None` when stderr is not a
    /// terminal (a pipe, a file, a CI log get nothing extra) or when the notices go to
    /// stdout and stdout is a terminal (they are progress enough, and would tear the bar).
    pub fn for_replay(files: &[PathBuf], notices_to_stdout: bool) -> Option<ReplayProgress> {
        if !std::io::stderr().is_terminal()
            || (notices_to_stdout && std::io::stdout().is_terminal())
        {
            return None;
        }
        let total_bytes = files
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        let bar = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} {wide_bar:.cyan/blue} {bytes}/{total_bytes} {msg}",
            )
            .expect("valid template")
            .progress_chars("█▉▊▋▌▍▎▏ "),
        );
        Some(ReplayProgress {
            bar,
            lines: Cell::new(0),
            bytes: Cell::new(0),
            messages: Cell::new(0),
            at: Cell::new(None),
        })
    }

    fn update(&self) {
        self.bar.set_position(self.bytes.get());
        let secs = self.bar.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            (self.messages.get() as f64 / secs) as u64
        } else {
            0
        };
        let at = self
            .at
            .get()
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default();
        self.bar
            .set_message(format!("{} msg/s  virtual time {at}", HumanCount(rate)));
    }

    /// Shows the final counts and leaves the bar on screen.
    pub fn finish(&self) {
        self.update();
        self.bar.abandon();
    }
}

impl Progress for ReplayProgress {
    fn tick(&self, t: Tick) {
        self.bytes.set(self.bytes.get() + t.bytes as u64);
        self.messages
            .set(self.messages.get() + u64::from(t.message));
        if t.at.is_some() {
            self.at.set(t.at);
        }
        let n = self.lines.get() + 1;
        self.lines.set(n);
        if n % EVERY == 0 {
            self.update();
        }
    }

    fn log(&self, line: &str) {
        self.bar.suspend(|| eprintln!("{line}"));
    }
}
