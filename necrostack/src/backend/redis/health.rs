//! [`RedisHealth`]: the state of the stream and the consumer group, read from Redis.

use std::time::Duration;

use tokio::time::Instant;

use super::core::Core;
use super::error::RedisBackendError;
use super::reply;

/// The state of the stream and the consumer group, from
/// [`RedisBackend::health`](super::RedisBackend::health).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisHealth {
    /// Round trip of a `PING`.
    pub ping: Duration,
    /// Entries in the stream (`XLEN`), handled or not.
    pub stream_length: u64,
    /// Entries delivered to some consumer of the group and not yet acknowledged.
    pub pending: u64,
    /// Entries not yet delivered to the group (`XINFO GROUPS` lag, Redis 7+); `None` when
    /// Redis cannot tell (older servers, or after deletions in the stream).
    pub lag: Option<u64>,
    /// Consumers known to the group, live or not.
    pub consumers: u64,
    /// Entries in the dead-letter stream.
    pub dead_letters: u64,
    /// Events scheduled for later (retries, `emit_after`), not yet due or not yet moved
    /// into the stream.
    pub scheduled: u64,
}

/// Reads [`RedisHealth`] with one `PING`, two `XLEN`s, a `ZCARD` and `XINFO GROUPS`.
pub(crate) async fn read(core: &Core) -> Result<RedisHealth, RedisBackendError> {
    let started = Instant::now();
    core.command("PING", |_| {}).await?;
    let ping = started.elapsed();
    let number = |value: redis::Value| {
        reply::integer(&value)
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0)
    };
    let stream_length = number(
        core.command("XLEN", |c| {
            c.arg(&core.stream);
        })
        .await?,
    );
    let dead_letters = number(
        core.command("XLEN", |c| {
            c.arg(&core.dlq);
        })
        .await?,
    );
    let scheduled = number(
        core.command("ZCARD", |c| {
            c.arg(&core.scheduled);
        })
        .await?,
    );
    let groups = core
        .command("XINFO", |c| {
            c.arg("GROUPS").arg(&core.stream);
        })
        .await?;
    let (consumers, pending, lag) =
        reply::group_info(&groups, &core.config.group).unwrap_or((0, 0, None));
    Ok(RedisHealth {
        ping,
        stream_length,
        pending,
        lag,
        consumers,
        dead_letters,
        scheduled,
    })
}
