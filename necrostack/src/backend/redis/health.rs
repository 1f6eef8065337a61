//! Counters ([`RedisMetrics`]) and the state of the stream and group ([`RedisHealth`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::core::Core;
use super::error::RedisBackendError;
use super::reply;

/// Live counters, shared by every clone of a backend.
#[derive(Default, Debug)]
pub(crate) struct Counters {
    pub(crate) enqueued: AtomicU64,
    pub(crate) pulled: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) emitted: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) reclaimed: AtomicU64,
    pub(crate) reconnections: AtomicU64,
    pub(crate) released: AtomicU64,
    pub(crate) stale_completions: AtomicU64,
    pub(crate) trimmed: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> RedisMetrics {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RedisMetrics {
            enqueued: get(&self.enqueued),
            pulled: get(&self.pulled),
            acked: get(&self.acked),
            emitted: get(&self.emitted),
            retried: get(&self.retried),
            dead_lettered: get(&self.dead_lettered),
            reclaimed: get(&self.reclaimed),
            reconnections: get(&self.reconnections),
            released: get(&self.released),
            stale_completions: get(&self.stale_completions),
            trimmed: get(&self.trimmed),
        }
    }
}

/// What one backend (this process's consumer) has done since it was built.
///
/// Read with [`RedisBackend::metrics`](super::RedisBackend::metrics); counters only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisMetrics {
    /// Events added by `enqueue` (producers and `Spine::emit`).
    pub enqueued: u64,
    /// Deliveries handed to the spine.
    pub pulled: u64,
    /// Entries acknowledged (completed, or dead-lettered by the backend itself).
    pub acked: u64,
    /// Events organs emitted, stored with the ack of their input.
    pub emitted: u64,
    /// Deliveries that were not the first of their entry (after a crash or a release).
    pub retried: u64,
    /// Entries written to the dead-letter stream.
    pub dead_lettered: u64,
    /// Entries taken over from other consumers with `XAUTOCLAIM`.
    pub reclaimed: u64,
    /// Times a lost connection was re-established.
    pub reconnections: u64,
    /// Deliveries given back unhandled (stop, `max_steps`, close).
    pub released: u64,
    /// Completions discarded because the entry was no longer this consumer's (another
    /// consumer took it over after `claim_idle`, or it was already acknowledged).
    pub stale_completions: u64,
    /// Pending entries found deleted from the stream (trimmed) before they were handled.
    pub trimmed: u64,
}

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
