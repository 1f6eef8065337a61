//! Logging setup shared by the examples (each includes this file with
//! `#[path = "support/logs.rs"] mod logs;`).
//!
//! Logs go to stderr so that stdout stays the program's output. `RUST_LOG` filters them
//! (default `warn`), `NECROSTACK_LOG=json` writes one JSON object per line instead of
//! text, and colours are used only when stderr is a terminal, so a redirected log file
//! holds no escape codes.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global `tracing` subscriber; call once, first thing in `main`.
pub fn init() {
    let json = std::env::var("NECROSTACK_LOG").is_ok_and(|v| v == "json");
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
}
