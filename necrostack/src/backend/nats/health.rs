//! Counters of what one backend did ([`NatsMetrics`]).

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters, shared by every clone of a backend.
#[derive(Default, Debug)]
pub(crate) struct Counters {
    pub(crate) enqueued: AtomicU64,
    pub(crate) pulled: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) emitted: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    pub(crate) redelivered: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) released: AtomicU64,
    pub(crate) scheduled: AtomicU64,
    pub(crate) moved: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> NatsMetrics {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NatsMetrics {
            enqueued: get(&self.enqueued),
            pulled: get(&self.pulled),
            acked: get(&self.acked),
            emitted: get(&self.emitted),
            duplicates: get(&self.duplicates),
            redelivered: get(&self.redelivered),
            dead_lettered: get(&self.dead_lettered),
            released: get(&self.released),
            scheduled: get(&self.scheduled),
            moved: get(&self.moved),
        }
    }
}

/// What one backend has done since it was built; counters only grow.
///
/// Read with [`NatsBackend::metrics`](super::NatsBackend::metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NatsMetrics {
    /// Events published by `enqueue`.
    pub enqueued: u64,
    /// Deliveries handed to the spine.
    pub pulled: u64,
    /// Messages acknowledged (completed) or terminated (dead-lettered by the backend).
    pub acked: u64,
    /// Events organs emitted, published before the ack of their input.
    pub emitted: u64,
    /// Publishes the server dropped as duplicates (same `Nats-Msg-Id` within the window):
    /// output of a handling repeated after a crash, or a retried publish.
    pub duplicates: u64,
    /// Deliveries that were not the first of their message.
    pub redelivered: u64,
    /// Messages written to the dead-letter stream.
    pub dead_lettered: u64,
    /// Deliveries given back unhandled (stop, `max_steps`, close).
    pub released: u64,
    /// Events stored in the scheduled stream.
    pub scheduled: u64,
    /// Scheduled events this worker moved into the events stream once due.
    pub moved: u64,
}

/// The state of the streams and the consumer, from
/// [`NatsBackend::health`](super::NatsBackend::health).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NatsHealth {
    /// Round trip of the first API request.
    pub round_trip: std::time::Duration,
    /// Messages in the events stream, handled or not.
    pub stream_messages: u64,
    /// Messages of the events stream not yet delivered to this consumer.
    pub pending: u64,
    /// Messages delivered to some worker of this consumer and not yet acknowledged.
    pub ack_pending: u64,
    /// Events waiting in the scheduled stream.
    pub scheduled: u64,
    /// Messages in the dead-letter stream.
    pub dead_letters: u64,
}
