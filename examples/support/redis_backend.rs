//! The Redis side of `--redis URL [--stream NAME]`, shared by the examples that can run
//! their flow either in memory or on a Redis stream (each includes this file with
//! `#[path = "../support/redis_backend.rs"] mod redis_backend;`).

use necrostack::{RedisBackend, Uuid};

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
