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
mod config;
mod connection;
mod core;
mod dead_letter;
mod enqueue;
mod error;
mod health;
mod heartbeat;
mod producer;
mod reader;
mod receipt;
mod replay;
mod reply;
mod schedule;
mod script;
mod secret;
mod stats;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use self::admin::{AdminError, DeadLetterPage, DeadLetterQuery, PurgeOutcome, RedisAdmin};
pub use self::config::{
    GroupStart, RedisBackendBuilder, RedisConfig, DEFAULT_BLOCK_TIME, DEFAULT_CLAIM_IDLE,
    DEFAULT_CLAIM_INTERVAL, DEFAULT_CONNECT_TIMEOUT, DEFAULT_GROUP, DEFAULT_MAX_DELIVERIES,
    DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_RECONNECT_TIMEOUT, DEFAULT_RESPONSE_TIMEOUT,
    DEFAULT_SCHEDULE_INTERVAL, DEFAULT_STREAM,
};
pub use self::dead_letter::{RedisDeadLetter, ORIGINAL_FIELD_PREFIX};
pub use self::error::RedisBackendError;
pub use self::health::{RedisHealth, RedisMetrics};
pub use self::producer::RedisProducer;
pub use self::reader::{ENVELOPE_FIELD, REPLAYED_FROM_FIELD};
pub use self::receipt::RedisReceipt;
pub use self::replay::{ReplayOptions, ReplayOutcome};
pub use self::secret::RedactedUrl;
pub use self::stats::{ConsumerStats, GroupStats, PendingEntry, RedisStats, StreamStats};

use self::core::Core;
use self::dead_letter::{Fields, Source};
use self::health::Counters;
use self::script::{Applied, CompleteArgs, Writes};
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

/// Deliveries fetched but not yet handed out, and the fetch in progress.
#[derive(Default)]
struct Reader {
    ready: VecDeque<Delivery<RedisReceipt>>,
    task: Option<JoinHandle<Result<Vec<Delivery<RedisReceipt>>, RedisBackendError>>>,
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
        let started = Instant::now();
        self.core.command("PING", |_| {}).await?;
        let ping = started.elapsed();
        let number = |value: redis::Value| {
            reply::integer(&value)
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0)
        };
        let stream_length = number(
            self.core
                .command("XLEN", |c| {
                    c.arg(&self.core.stream);
                })
                .await?,
        );
        let dead_letters = number(
            self.core
                .command("XLEN", |c| {
                    c.arg(&self.core.dlq);
                })
                .await?,
        );
        let groups = self
            .core
            .command("XINFO", |c| {
                c.arg("GROUPS").arg(&self.core.stream);
            })
            .await?;
        let (consumers, pending, lag) =
            reply::group_info(&groups, &self.core.config.group).unwrap_or((0, 0, None));
        Ok(RedisHealth {
            ping,
            stream_length,
            pending,
            lag,
            consumers,
            dead_letters,
        })
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
        if self.core.is_closed() {
            Err(BackendError::Closed)
        } else {
            Ok(())
        }
    }

    /// How long the next read may block: `None` for a non-blocking read.
    fn block_for(&self, deadline: Option<Instant>) -> Option<Duration> {
        let cap = self.core.config.block_time;
        match deadline {
            None => Some(cap),
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                (!left.is_zero()).then(|| left.min(cap))
            }
        }
    }

    /// What a completion writes. An emitted or scheduled event that cannot be stored
    /// (too large, or not encodable) becomes a dead letter with the reason instead of
    /// failing the completion: the handling is over either way, and nothing is lost.
    fn writes(&self, source: &Source<'_>, completion: Completion) -> Writes {
        let mut writes = Writes::default();
        for envelope in &completion.emitted {
            match self.storable(source, envelope) {
                Ok(json) => writes.emitted.push(json),
                Err(fields) => writes.dead_letters.push(fields),
            }
        }
        for event in &completion.scheduled {
            match self.storable(source, &event.envelope) {
                Ok(json) => writes.scheduled.push((schedule::score(event.due), json)),
                Err(fields) => writes.dead_letters.push(fields),
            }
        }
        for letter in &completion.dead_letters {
            writes
                .dead_letters
                .push(dead_letter::for_spine(source, letter));
        }
        writes
    }

    /// The event encoded for the stream, or the dead letter it becomes.
    fn storable(&self, source: &Source<'_>, envelope: &AnyEnvelope) -> Result<Vec<u8>, Fields> {
        let limit = self.core.config.max_payload_bytes;
        match envelope.to_json() {
            Err(error) => {
                tracing::warn!(event_id = %envelope.id(), %error, "emitted event cannot be encoded: dead-lettered");
                Err(dead_letter::for_unencodable_emitted(
                    source, envelope, &error,
                ))
            }
            Ok(json) if json.len() + ENVELOPE_FIELD.len() > limit => {
                tracing::warn!(event_id = %envelope.id(), size = json.len(), limit, "emitted event over max_payload_bytes: dead-lettered");
                Err(dead_letter::for_oversize_emitted(source, json, limit))
            }
            Ok(json) => Ok(json),
        }
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
        let deadline = Instant::now().checked_add(timeout);
        let mut reader = self.reader.lock().await;
        let mut read_backoff = connection::first_backoff();
        loop {
            self.check_open()?;
            if !reader.ready.is_empty() || max == 0 {
                let take = max.min(reader.ready.len());
                let batch: Batch<_> = reader.ready.drain(..take).collect();
                Counters::add(&self.core.counters.pulled, batch.len() as u64);
                return Ok(batch);
            }
            let block = self.block_for(deadline);
            let task = match reader.task.as_mut() {
                Some(task) => task,
                None => {
                    let core = Arc::clone(&self.core);
                    let task = tokio::spawn(reader::fetch(core, max, block));
                    *self
                        .core
                        .fetch_abort
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some(task.abort_handle());
                    reader.task.insert(task)
                }
            };
            // If this future is dropped here, the task keeps running and its deliveries
            // are picked up by the next pull: nothing taken is lost.
            let joined = task.await;
            reader.task = None;
            match joined {
                Ok(Ok(batch)) => reader.ready.extend(batch),
                Ok(Err(error)) if error.is_connection() => {
                    // Redis is away: keep trying (the read reconnects) until the reconnect
                    // timeout, counted from the first failure, has passed.
                    if self.core.gave_up() {
                        return Err(error.into());
                    }
                    tracing::debug!(%error, retry_in = ?read_backoff, "reading from Redis failed; retrying");
                    tokio::time::sleep(connection::jittered(read_backoff)).await;
                    read_backoff = connection::next_backoff(read_backoff);
                    continue;
                }
                Ok(Err(error)) => return Err(error.into()),
                Err(join) if join.is_cancelled() => return Err(BackendError::Closed),
                Err(join) => {
                    return Err(BackendError::Other(
                        format!("the Redis read task failed: {join}").into(),
                    ))
                }
            }
            if reader.ready.is_empty() && block.is_none() {
                return Ok(Batch::new());
            }
        }
    }

    async fn complete(
        &self,
        receipt: RedisReceipt,
        completion: Completion,
    ) -> Result<(), BackendError> {
        let core = &*self.core;
        let (entry_id, deliveries) = receipt.into_parts();
        core.held().remove(&entry_id);
        self.check_open()?;
        let writes = self.writes(&core.source(&entry_id, deliveries), completion);
        let (n_emitted, n_dead) = (
            writes.emitted.len() as u64,
            writes.dead_letters.len() as u64,
        );
        let args = CompleteArgs::new(
            &core.keys(),
            &core.entry(&entry_id),
            core.config.max_len,
            writes,
        );
        match core.run_complete(&args).await {
            Ok(Applied::Done) => {
                Counters::add(&core.counters.acked, 1);
                Counters::add(&core.counters.emitted, n_emitted);
                Counters::add(&core.counters.dead_lettered, n_dead);
                Ok(())
            }
            Ok(applied) => {
                Counters::add(&core.counters.stale_completions, 1);
                tracing::warn!(
                    entry_id = %entry_id,
                    ?applied,
                    "completion discarded: the entry is no longer pending for this consumer (taken over after claim_idle, or already acknowledged); its handling by the current owner counts"
                );
                Ok(())
            }
            Err(error) => {
                // Still pending for us: the next pull re-reads it.
                core.recover_pending();
                Err(error.into())
            }
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
            let mut reader = self.reader.lock().await;
            if let Some(task) = reader.task.take() {
                task.abort();
            }
            reader.ready.clear();
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
        use std::sync::atomic::Ordering;
        if self.core.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        if let Some(abort) = self
            .core
            .fetch_abort
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            abort.abort();
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
        Ok(RedisBackend {
            core,
            reader: Arc::new(tokio::sync::Mutex::new(Reader::default())),
        })
    }
}
