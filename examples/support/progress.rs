//! A progress bar on stderr for long runs, shared by the examples that read or generate
//! many entries (each includes this file with `#[path = "../support/progress.rs"] mod
//! progress;`).
//!
//! It appears only after two seconds, only when stderr is a terminal and `--quiet` was
//! not given, so short runs, pipes and log files see nothing of it; stdout is untouched.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How long a run goes before its progress is shown.
const SHOW_AFTER: Duration = Duration::from_secs(2);

/// Progress through `total` units (bytes of a file, or generated entries) when known.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar counting `unit`s ("bytes" shows sizes); hidden when `quiet` or not a terminal.
    pub fn new(quiet: bool, total: Option<u64>, unit: &'static str) -> Self {
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::hidden());
        let template = match (total.is_some(), unit) {
            (true, "bytes") => "{elapsed} [{bar:20}] {bytes}/{total_bytes} read, {eta} left; {msg}",
            (true, _) => "{elapsed} [{bar:20}] {human_pos}/{human_len} {prefix}, {eta} left; {msg}",
            (false, _) => "{elapsed} {human_pos} {prefix}; {msg}",
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(unit);
        if !quiet && std::io::stderr().is_terminal() {
            let later = bar.clone();
            tokio::spawn(async move {
                tokio::time::sleep(SHOW_AFTER).await;
                if !later.is_finished() {
                    later.set_draw_target(ProgressDrawTarget::stderr());
                    later.enable_steady_tick(Duration::from_millis(200));
                }
            });
        }
        Progress { bar }
    }

    /// Moves the bar to `position`, with a note such as "1200 orders".
    pub fn set(&self, position: u64, note: impl Fn() -> String) {
        self.bar.set_position(position);
        if !self.bar.is_hidden() {
            self.bar.set_message(note());
        }
    }

    /// Removes the bar before the summary is printed.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
