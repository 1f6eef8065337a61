//! [`RedisMetrics`]: what one backend has done, counted as it happens.

use std::sync::atomic::{AtomicU64, Ordering};

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
    pub(crate) fenced: AtomicU64,
    pub(crate) takeovers: AtomicU64,
    pub(crate) forwarded: AtomicU64,
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
            fenced_completions: get(&self.fenced),
            partition_takeovers: get(&self.takeovers),
            forwarded: get(&self.forwarded),
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
    /// Completions on a partition refused by the fencing check: this worker's lease had
    /// ended (counted in `stale_completions` too). Partitioned streams only.
    pub fenced_completions: u64,
    /// Partitions this worker took the lease of (each taking over what was pending).
    pub partition_takeovers: u64,
    /// Outbox entries forwarded to another partition or to the dead-letter stream.
    pub forwarded: u64,
}
