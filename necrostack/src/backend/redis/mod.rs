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
//! See the crate README ("Running on Redis") for the guarantees in plain words.

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
    DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_METRICS_INTERVAL, DEFAULT_RECONNECT_TIMEOUT,
    DEFAULT_RESPONSE_TIMEOUT, DEFAULT_SCHEDULE_INTERVAL, DEFAULT_STREAM,
};
pub use self::counters::RedisMetrics;
pub use self::dead_letter::{RedisDeadLetter, ORIGINAL_FIELD_PREFIX};
pub use self::error::RedisBackendError;
pub use self::fetch::{ENVELOPE_FIELD, REPLAYED_FROM_FIELD};
pub use self::health::RedisHealth;
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
        let value = self
            .core
            .command("XPENDING", |c| {
                c.arg(&self.core.stream).arg(&self.core.config.group);
            })
            .await?;
        Ok(reply::pending_total(&value).unwrap_or(0))
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
        let mut reader = self.reader.lock().await;
        reader.pull(&self.core, max, timeout).await
    }

    async fn complete(
        &self,
        receipt: RedisReceipt,
        completion: Completion,
    ) -> Result<(), BackendError> {
        let (entry_id, deliveries) = receipt.into_parts();
        complete::complete(&self.core, &entry_id, deliveries, completion).await
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
        heartbeat::spawn(&core);
        schedule::spawn_mover(&core);
        #[cfg(feature = "metrics")]
        gauges::spawn(&core);
        Ok(RedisBackend {
            core,
            reader: Arc::new(tokio::sync::Mutex::new(Reader::default())),
        })
    }
}
