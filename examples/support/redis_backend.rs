//! The Redis side of `--redis URL [--stream NAME] [--keep]`, shared by the examples that
//! can run their flow either in memory or on a Redis stream (each includes this file with
//! `#[path = "../support/redis_backend.rs"] mod redis_backend;`).

use necrostack::{RedisBackend, Uuid};

/// The Redis options, flattened into an example's command line.
#[derive(Debug, Clone, clap::Args)]
pub struct RedisArgs {
    /// Run the flow on a Redis stream at URL (e.g. redis://127.0.0.1:6379) instead of in memory
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// Use the stream NAME (left in Redis after the run) instead of a fresh one per run
    #[arg(long, value_name = "NAME", requires = "redis")]
    pub stream: Option<String>,
    /// Keep the fresh per-run stream and its dead-letter stream after the run
    #[arg(long, requires = "redis", conflicts_with = "stream")]
    pub keep: bool,
}

/// Connects to Redis at `url` for the example called `example`: on `stream` when one is
/// named, else on a fresh stream `<example>:<uuid>`, so that a rerun never sees the
/// events of an earlier one. The consumer group is `example`, the consumer `example`.
pub async fn connect(
    example: &str,
    url: &str,
    stream: Option<&str>,
) -> Result<RedisBackend, necrostack::Error> {
    let stream = stream
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{example}:{}", Uuid::now_v7()));
    tracing::info!(%stream, "running on Redis");
    let backend = RedisBackend::builder(url)
        .stream(stream)
        .group(example)
        .consumer("example")
        .build()
        .await?;
    Ok(backend)
}

/// After the run: deletes the per-run stream and its dead-letter stream, unless the user
/// named the stream or asked to keep it. A failure here is logged, not fatal: the run's
/// results are already out.
pub async fn clean_up(backend: &RedisBackend, args: &RedisArgs) {
    if args.keep || args.stream.is_some() {
        return;
    }
    let (Some(url), config) = (args.redis.as_deref(), backend.config()) else {
        return;
    };
    let keys = [config.stream_key(), config.dead_letter_key()];
    let deleted = async {
        let client = redis::Client::open(url)?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        redis::cmd("DEL")
            .arg(&keys)
            .query_async::<u64>(&mut connection)
            .await
    };
    match deleted.await {
        Ok(_) => tracing::info!(?keys, "deleted the run's streams"),
        Err(error) => tracing::warn!(?keys, %error, "could not delete the run's streams"),
    }
}
