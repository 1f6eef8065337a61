//! `necrostack`: the operator's command-line tool for necrostack streams on Redis — dead
//! letters (list, show, replay, purge) and stream stats. Every operation is a library
//! function of [`necrostack::backend::redis::RedisAdmin`]; this is a thin shell on them.

mod cli;
mod dlq;
mod error;
mod output;
mod stats;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use necrostack::backend::redis::RedisAdmin;
use necrostack::RedisBackend;

use crate::cli::{Cli, Command};
use crate::error::CliError;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // Usage errors end here with clap's message and exit code 2.
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let mut told = error.to_string();
            eprintln!("error: {told}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                let text = cause.to_string();
                // Wrappers often repeat their cause's text: print only what is new.
                if !told.contains(&text) {
                    eprintln!("  caused by: {text}");
                    told = text;
                }
                source = cause.source();
            }
            ExitCode::from(error.exit_code())
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    if let Command::Dlq(command) = &cli.command {
        dlq::check(command)?;
    }
    let admin = connect(&cli).await?;
    match cli.command {
        Command::Dlq(command) => dlq::run(&admin, command, cli.format).await,
        Command::Stats => stats::run(&admin, cli.format).await,
    }
}

/// Connects without creating a consumer group. Operations give up on a Redis that is
/// away after `--timeout`, rather than the workers' patient 30 s.
async fn connect(cli: &Cli) -> Result<RedisAdmin, CliError> {
    let timeout = Duration::from_secs(cli.timeout.max(1));
    let mut builder = RedisBackend::builder(cli.redis.clone())
        .stream(cli.stream.clone())
        .connect_timeout(timeout)
        .response_timeout(timeout)
        .reconnect_timeout(timeout);
    if let Some(dlq) = &cli.dead_letter_stream {
        builder = builder.dead_letter_stream(dlq.clone());
    }
    if let Some(prefix) = &cli.key_prefix {
        builder = builder.key_prefix(prefix.clone());
    }
    Ok(builder.build_admin().await?)
}
