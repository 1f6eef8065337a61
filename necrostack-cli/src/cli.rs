//! The command line: every command, argument and option, declared with clap.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Operate necrostack streams on Redis: dead letters and stats.
#[derive(Debug, Parser)]
#[command(name = "necrostack", version, about, long_about = None)]
pub struct Cli {
    /// The Redis URL, like redis://:password@host:6379/0 (rediss:// for TLS).
    #[arg(
        long = "redis",
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true,
        global = true
    )]
    pub redis: String,

    /// The stream, as given to `RedisBackend::builder(..).stream(..)`.
    #[arg(long, default_value = necrostack::backend::redis::DEFAULT_STREAM, global = true)]
    pub stream: String,

    /// The dead-letter stream, when the workers set one (default `{stream}:dlq`).
    #[arg(long, global = true)]
    pub dead_letter_stream: Option<String>,

    /// A prefix the workers put before the keys, if any.
    #[arg(long, global = true)]
    pub key_prefix: Option<String>,

    /// How the output looks.
    #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
    pub format: Format,

    /// Seconds to wait for Redis before giving up.
    #[arg(long, default_value_t = 5, global = true)]
    pub timeout: u64,

    #[command(subcommand)]
    pub command: Command,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns, for people.
    Table,
    /// One JSON document, for programs.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Dead letters: list, show, replay, purge.
    #[command(subcommand)]
    Dlq(Dlq),
    /// The stream: length, groups, consumers, pending, lag, dead letters, schedule.
    Stats,
}

#[derive(Debug, Subcommand)]
pub enum Dlq {
    /// Lists dead letters, oldest first, a page at a time.
    List(ListArgs),
    /// Shows one dead letter with its reason and original envelope.
    Show {
        /// The dead letter's id (the ID column of `dlq list`).
        #[arg(value_parser = entry_id)]
        id: String,
    },
    /// Puts dead letters' events back into the stream (same id and lineage, attempt 1)
    /// and removes them from the dead-letter stream, atomically per entry.
    Replay(ReplayArgs),
    /// Deletes dead letters for good.
    Purge(PurgeArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// At most this many dead letters.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub limit: u64,
    /// Only dead letters after this id (the previous page's last one).
    #[arg(long, value_parser = entry_id)]
    pub after: Option<String>,
    /// Only dead letters of events of this type.
    #[arg(long)]
    pub event_type: Option<String>,
    /// Only dead letters written because this organ failed.
    #[arg(long)]
    pub organ: Option<String>,
}

/// Which dead letters: these ids, or all of them.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Selection {
    /// Dead-letter ids.
    #[arg(value_parser = entry_id)]
    pub ids: Vec<String>,
    /// Every dead letter there is now.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Only say what would be replayed.
    #[arg(long)]
    pub dry_run: bool,
    /// At most this many replays a second (0: no limit), not to flood the workers.
    #[arg(long, default_value_t = 0)]
    pub rate: u32,
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Really delete (purged dead letters are gone for good).
    #[arg(long)]
    pub yes: bool,
}

/// A stream entry id, `<milliseconds>-<sequence>` (or just `<milliseconds>`): checked
/// here so that a typo is a usage error, before anything connects.
fn entry_id(text: &str) -> Result<String, String> {
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    let ok = match text.split_once('-') {
        Some((ms, seq)) => digits(ms) && digits(seq),
        None => digits(text),
    };
    if ok {
        Ok(text.to_owned())
    } else {
        Err("expected a stream entry id, <milliseconds>-<sequence> (the ID column of `necrostack dlq list`)".to_owned())
    }
}
