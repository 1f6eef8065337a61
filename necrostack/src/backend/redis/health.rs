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
    /// One row per partition (empty without partitions); the totals above sum them.
    pub partitions: Vec<PartitionHealth>,
}

/// The state of one partition, in [`RedisHealth::partitions`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionHealth {
    /// The partition's index.
    pub index: u32,
    /// The consumer holding its lease, if any.
    pub owner: Option<String>,
    /// The fencing token of that lease.
    pub lease_token: Option<u64>,
    /// Entries in its stream.
    pub stream_length: u64,
    /// Entries delivered to the group and not yet acknowledged.
    pub pending: u64,
    /// Entries not yet delivered to the group (`None` when Redis cannot tell).
    pub lag: Option<u64>,
    /// Outbox entries not yet forwarded.
    pub outbox: u64,
}

/// Reads [`RedisHealth`] with one `PING`, two `XLEN`s, a `ZCARD` and `XINFO GROUPS`.
pub(crate) async fn read(core: &Core) -> Result<RedisHealth, RedisBackendError> {
    let started = Instant::now();
    core.command("PING", |_| {}).await?;
    let ping = started.elapsed();
    let dead_letters = number(
        core.command("XLEN", |c| {
            c.arg(&core.dlq);
        })
        .await?,
    );
    let Some(parts) = &core.parts else {
        let (stream_length, pending, lag, consumers) = stream_state(core).await?;
        let scheduled = number(
            core.command("ZCARD", |c| {
                c.arg(&core.scheduled);
            })
            .await?,
        );
        return Ok(RedisHealth {
            ping,
            stream_length,
            pending,
            lag,
            consumers,
            dead_letters,
            scheduled,
            partitions: Vec::new(),
        });
    };
    let mut health = RedisHealth {
        ping,
        stream_length: 0,
        pending: 0,
        lag: Some(0),
        consumers: 0,
        dead_letters,
        scheduled: 0,
        partitions: Vec::with_capacity(parts.lanes().len()),
    };
    for lane_core in parts.lanes() {
        let Some(lane) = &lane_core.lane else {
            continue;
        };
        let (stream_length, pending, lag, consumers) = stream_state(lane_core).await?;
        let holder = super::lease::holder(core, lane).await?;
        let outbox = number(
            core.command("XLEN", |c| {
                c.arg(&lane.keys.outbox);
            })
            .await?,
        );
        health.scheduled += number(
            core.command("ZCARD", |c| {
                c.arg(&lane.keys.scheduled);
            })
            .await?,
        );
        health.stream_length += stream_length;
        health.pending += pending;
        health.lag = health.lag.zip(lag).map(|(a, b)| a + b);
        health.consumers = health.consumers.max(consumers);
        health.partitions.push(PartitionHealth {
            index: lane.index(),
            owner: holder.as_ref().map(|(owner, _)| owner.clone()),
            lease_token: holder.map(|(_, token)| token),
            stream_length,
            pending,
            lag,
            outbox,
        });
    }
    Ok(health)
}

fn number(value: redis::Value) -> u64 {
    reply::integer(&value)
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0)
}

/// (length, pending, lag, consumers) of `core`'s stream and group.
async fn stream_state(core: &Core) -> Result<(u64, u64, Option<u64>, u64), RedisBackendError> {
    let stream_length = number(
        core.command("XLEN", |c| {
            c.arg(&core.stream);
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
    Ok((stream_length, pending, lag, consumers))
}
