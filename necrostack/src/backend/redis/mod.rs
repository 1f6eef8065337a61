//! [`RedisBackend`]: events in a Redis stream, shared by every worker of a consumer group.
//!
//! # How it maps onto Redis Streams
//!
//! * `enqueue` adds each event as one entry `{envelope: <JSON>}` with `XADD` (in one
//!   `MULTI`/`EXEC`, so a batch is stored whole or not at all), optionally trimmed with
//!   `MAXLEN ~`. If the connection breaks mid-write, it checks whether the batch landed
//!   before sending it again, so a retry never stores it twice.
//! * `build` creates the consumer group with `XGROUP CREATE ... MKSTREAM` (an existing
//!   group is used as it is).
//! * `pull` reads with `XREADGROUP` on a connection of its own, so a blocking read never
//!   delays acknowledgements. It first re-reads this consumer's own pending entries (a
//!   worker restarted under the same name finishes what it left), then, every
//!   `claim_interval`, takes over entries idle for `claim_idle` from other consumers
//!   with `XAUTOCLAIM`, then reads new entries, blocking at most `block_time` (never
//!   `BLOCK 0`). `pull` is cancel-safe: the read runs in a task, and what it returns after
//!   the caller went away is kept for the next `pull`.
//! * `complete` runs one Lua script that checks the entry is still pending for this
//!   consumer, adds the emitted events and dead letters, and `XACK`s the entry:
//!   atomically, and idempotently, so it is retried across reconnects without ever
//!   duplicating output.
//! * The delivery count of an entry is its [`Delivery::attempt`]; past `max_deliveries`
//!   the entry goes to the dead-letter stream and is acknowledged. Entries that are not
//!   a single `envelope` field (or `envelope` and `replayed_from`, written by a replay),
//!   are larger than `max_payload_bytes` or do not decode go there too, with the reason;
//!   the worker goes on.
//! * While the backend holds entries (pulled, not yet completed), a heartbeat resets
//!   their idle time every third of `claim_idle`, so a slow batch is not taken over by
//!   another consumer while this one still works on it.
//! * `release` and `close` hand this consumer's unhandled entries over: they are marked
//!   idle so that the next `XAUTOCLAIM` of any consumer takes them at once. As with the
//!   in-memory backend, the next delivery of a released entry has the next `attempt`
//!   (and counts toward `max_deliveries`).
//! * [`RedisAdmin`] (from [`RedisBackendBuilder::build_admin`]) is the operator's side:
//!   paged dead-letter listing, replay (one Lua script per entry), purge, and
//!   [`stats`](RedisAdmin::stats); the `necrostack` command-line tool is built on it.
//!
//! # Partitions
//!
//! With [`RedisBackendBuilder::partitions`] the events live in `n` streams
//! (`{stream}:p0` ...), each owned by one worker of the group at a time, so that events
//! with one partition key are handled in order across the whole fleet:
//!
//! * ownership: members heartbeat into a sorted set (server clock), every worker computes
//!   the same owner per partition by rendezvous hashing, and the owner holds a lease with
//!   a fencing token (`ownership`, `lease`);
//! * reading: one reader per owned partition on a connection of its own; a new owner
//!   takes over everything pending on the partition and delivers it in stream order
//!   before anything new; new entries are read only while the lease is the reader's
//!   (`partitioned`, `fetch`);
//! * completing: one script on the partition's slot checks the lease (fencing), writes
//!   the output for the partition itself and appends the rest to the partition's outbox,
//!   and acknowledges; a forwarder moves outbox entries to their destination exactly
//!   once, in order (`outbox`). **Each completed handling's output appears exactly
//!   once**, and a worker that lost its lease writes nothing.
//!
//! See the crate README ("Running on Redis", "Partitions and Redis Cluster") for the
//! guarantees in plain words.

mod admin;
mod batcher;
mod complete;
mod config;
mod connection;
mod core;
mod counters;
mod dead_letter;
mod enqueue;
mod error;
mod fetch;
#[cfg(feature = "metrics")]
mod gauges;
mod health;
mod heartbeat;
mod lease;
mod outbox;
mod ownership;
mod partition;
mod partitioned;
mod periodic;
mod producer;
mod reader;
mod receipt;
mod replay;
mod reply;
mod schedule;
mod script;
mod secret;
mod stats;

use std::sync::Arc;
use std::time::Duration;

pub use self::admin::{AdminError, DeadLetterPage, DeadLetterQuery, PurgeOutcome, RedisAdmin};
pub use self::config::{
    GroupStart, RedisBackendBuilder, RedisConfig, DEFAULT_BLOCK_TIME, DEFAULT_CLAIM_IDLE,
    DEFAULT_CLAIM_INTERVAL, DEFAULT_CONNECT_TIMEOUT, DEFAULT_GROUP, DEFAULT_MAX_DELIVERIES,
    DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_METRICS_INTERVAL, DEFAULT_PARTITION_LEASE,
    DEFAULT_RECONNECT_TIMEOUT, DEFAULT_RESPONSE_TIMEOUT, DEFAULT_SCHEDULE_INTERVAL, DEFAULT_STREAM,
    MIN_PARTITION_LEASE,
};
pub use self::counters::RedisMetrics;
pub use self::dead_letter::{RedisDeadLetter, ORIGINAL_FIELD_PREFIX};
pub use self::error::RedisBackendError;
pub use self::fetch::{ENVELOPE_FIELD, REPLAYED_FROM_FIELD};
pub use self::health::{PartitionHealth, RedisHealth};
pub use self::producer::RedisProducer;
pub use self::receipt::RedisReceipt;
pub use self::replay::{ReplayOptions, ReplayOutcome};
pub use self::secret::RedactedUrl;
pub use self::stats::{ConsumerStats, GroupStats, PendingEntry, RedisStats, StreamStats};

use self::core::Core;
use self::counters::Counters;
use self::reader::Reader;
use crate::backend::{Backend, BackendError, Batch, Completion, Delivery, Scheduled};
use crate::envelope::AnyEnvelope;

/// A [`Backend`] on Redis Streams: many processes on many machines share the events of
/// one stream through a consumer group, with at-least-once delivery.
///
/// ```no_run
/// use necrostack::{RedisBackend, Spine};
///
/// # async fn run() -> Result<(), necrostack::Error> {
/// let backend = RedisBackend::builder("redis://127.0.0.1:6379")
///     .stream("orders")        // default "necrostack:events"
///     .group("billing")        // default "necrostack"
///     .consumer("worker-1")    // default: unique per process
///     .build()
///     .await?;
/// let spine = Spine::builder().backend(backend).build()?;
/// spine.run().await?;
/// # Ok(())
/// # }
/// ```
///
/// Cloning gives another handle to the same consumer (same connections, counters and
/// state), e.g. to read [`health`](Self::health) while a spine runs. See the
/// [module documentation](self) for how each operation maps onto Redis.
///
/// [`close`](Backend::close) keeps every stored event (they live in Redis) and hands the
/// entries this consumer still holds over to the other consumers of the group; call it
/// after [`Spine::run`](crate::Spine::run) returns. A standalone Redis (or a primary
/// with replicas) is supported, not Redis Cluster.
#[derive(Clone)]
pub struct RedisBackend {
    core: Arc<Core>,
    reader: Arc<tokio::sync::Mutex<Reader>>,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("config", &self.core.config)
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// Starts configuring a backend for the Redis at `url`: `redis://[user:password@]host
    /// [:port][/db]`, or `rediss://` for TLS. The password never appears in logs or errors.
    pub fn builder(url: impl Into<String>) -> RedisBackendBuilder {
        RedisBackendBuilder::new(url.into())
    }

    /// The settings.
    pub fn config(&self) -> &RedisConfig {
        &self.core.config
    }

    /// What this backend has done so far.
    pub fn metrics(&self) -> RedisMetrics {
        self.core.counters.snapshot()
    }

    /// Pings Redis and reads the state of the stream and the group.
    pub async fn health(&self) -> Result<RedisHealth, BackendError> {
        Ok(health::read(&self.core).await?)
    }

    /// The oldest `count` entries of the dead-letter stream.
    pub async fn dead_letters(&self, count: usize) -> Result<Vec<RedisDeadLetter>, BackendError> {
        let value = self
            .core
            .command("XRANGE", |c| {
                c.arg(&self.core.dlq)
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    .arg(count);
            })
            .await?;
        let wrapped =
            redis::Value::Array(vec![redis::Value::Array(vec![redis::Value::Nil, value])]);
        let entries = reply::read_group(&wrapped).map_err(|detail| {
            BackendError::from(RedisBackendError::Protocol {
                command: "XRANGE",
                detail,
            })
        })?;
        Ok(entries
            .into_iter()
            .map(|e| RedisDeadLetter::from_entry(e.id, e.fields.unwrap_or_default()))
            .collect())
    }

    /// Entries delivered to this group and not yet acknowledged (all consumers).
    pub async fn pending_count(&self) -> Result<u64, BackendError> {
        let streams: Vec<&Arc<Core>> = match &self.core.parts {
            None => vec![&self.core],
            Some(parts) => parts.lanes().iter().collect(),
        };
        let mut total = 0;
        for core in streams {
            let value = core
                .command("XPENDING", |c| {
                    c.arg(&core.stream).arg(&core.config.group);
                })
                .await?;
            total += reply::pending_total(&value).unwrap_or(0);
        }
        Ok(total)
    }

    fn check_open(&self) -> Result<(), BackendError> {
        self.core.check_open()
    }
}

impl Backend for RedisBackend {
    type Receipt = RedisReceipt;

    async fn enqueue(&self, events: Vec<AnyEnvelope>) -> Result<(), BackendError> {
        self.check_open()?;
        producer::enqueue(&self.core, events).await
    }

    async fn pull(
        &self,
        max: usize,
        timeout: Duration,
    ) -> Result<Batch<Delivery<RedisReceipt>>, BackendError> {
        self.check_open()?;
        if let Some(parts) = &self.core.parts {
            if parts.join() {
                // The periodic heartbeat first (so that a pull dropped during the inline
                // beat leaves it running), then the first beat right here, so that this
                // pull already reads the partitions it is given.
                ownership::spawn(&self.core);
                ownership::beat(Arc::clone(&self.core)).await;
            }
            return parts.pull(&self.core, max, timeout).await;
        }
        let mut reader = self.reader.lock().await;
        reader.pull(&self.core, max, timeout).await
    }

    async fn complete(
        &self,
        receipt: RedisReceipt,
        completion: Completion,
    ) -> Result<(), BackendError> {
        let fence = receipt.fence();
        let (entry_id, deliveries) = receipt.into_parts();
        match (fence, &self.core.parts) {
            (Some((index, token)), Some(parts)) => {
                self.check_open()?;
                let Some(lane) = parts.lanes().get(index as usize) else {
                    return Err(BackendError::Other(
                        format!("a receipt of partition {index}, which this backend does not have")
                            .into(),
                    ));
                };
                complete::complete_fenced(lane, &entry_id, deliveries, token, completion).await
            }
            _ => complete::complete(&self.core, &entry_id, deliveries, completion).await,
        }
    }

    async fn schedule(&self, events: Vec<Scheduled>) -> Result<(), BackendError> {
        self.check_open()?;
        producer::schedule(&self.core, events).await
    }

    async fn next_due(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>, BackendError> {
        self.check_open()?;
        Ok(schedule::next_due(&self.core).await?)
    }

    async fn release(&self, deliveries: Vec<Delivery<RedisReceipt>>) -> Result<(), BackendError> {
        if let Some(parts) = &self.core.parts {
            // Back to the front of their partitions' queues: delivered again first, in
            // order, by this worker (the owner).
            self.check_open()?;
            let count = parts.release(deliveries);
            Counters::add(&self.core.counters.released, count as u64);
            return Ok(());
        }
        let ids: Vec<String> = deliveries
            .into_iter()
            .map(|d| d.receipt.into_entry_id())
            .collect();
        {
            let mut held = self.core.held();
            for id in &ids {
                held.remove(id);
            }
        }
        self.check_open()?;
        self.core.recover_pending();
        Counters::add(&self.core.counters.released, ids.len() as u64);
        self.core.hand_over(&ids).await?;
        Ok(())
    }

    async fn release_held(&self) -> Result<(), BackendError> {
        self.check_open()?;
        if self.core.parts.is_some() {
            // Only this worker may read its partitions: what it read ahead stays queued,
            // in order, for its next run (or for the next owner, after `close`).
            return Ok(());
        }
        {
            // Nothing of the spine's is in flight: stop the read ahead and drop what it
            // fetched (their receipts give them up), then hand over everything still
            // pending for this consumer.
            self.reader.lock().await.drop_held();
        }
        self.core.held().clear();
        let pending = self.core.own_pending(100_000).await?;
        if !pending.is_empty() {
            tracing::debug!(
                count = pending.len(),
                "run ended: entries still pending for this consumer handed over"
            );
            Counters::add(&self.core.counters.released, pending.len() as u64);
            self.core.hand_over(&pending).await?;
        }
        Ok(())
    }

    async fn close(&self) -> Result<(), BackendError> {
        if !self.core.close() {
            return Ok(());
        }
        if let Some(parts) = &self.core.parts {
            parts.wake();
            let result = ownership::leave(&self.core).await;
            for lane in parts.lanes() {
                lane.close();
                lane.held().clear();
                lane.read.disconnect().await;
            }
            self.core.cmd.disconnect().await;
            return result.map_err(Into::into);
        }
        // Everything still pending for this consumer (buffered, in flight or left by a
        // read cut short) goes to whichever consumer claims next.
        let result = async {
            let pending = self.core.own_pending(100_000).await?;
            if !pending.is_empty() {
                Counters::add(&self.core.counters.released, pending.len() as u64);
                self.core.hand_over(&pending).await?;
            }
            Ok::<_, RedisBackendError>(())
        }
        .await;
        self.core.held().clear();
        self.core.read.disconnect().await;
        self.core.cmd.disconnect().await;
        result.map_err(Into::into)
    }
}

impl RedisBackendBuilder {
    /// Connects to Redis, creates the consumer group if it does not exist, and returns
    /// the backend. Fails if Redis cannot be reached within the connect timeout or a
    /// setting is invalid.
    pub async fn build(self) -> Result<RedisBackend, BackendError> {
        let core = Arc::new(Core::connect(self, core::Role::Consumer).await?);
        tracing::info!(config = %core.config, "Redis backend ready");
        // Partitions have no idle-time heartbeat (nobody `XAUTOCLAIM`s them); their
        // ownership heartbeat starts with the first `pull`.
        if core.parts.is_none() {
            heartbeat::spawn(&core);
            schedule::spawn_mover(&core);
        }
        #[cfg(feature = "metrics")]
        gauges::spawn(&core);
        Ok(RedisBackend {
            core,
            reader: Arc::new(tokio::sync::Mutex::new(Reader::default())),
        })
    }
}
