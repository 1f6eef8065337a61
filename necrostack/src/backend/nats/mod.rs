//! [`NatsBackend`]: events in a NATS JetStream stream, shared by the workers of a durable
//! pull consumer.
//!
//! # How it maps onto JetStream
//!
//! * `build` creates, when missing, the events stream (`{stream}`, subject
//!   `necrostack.{stream}` by default, file storage, the configured replicas and
//!   duplicate window), `{stream}_SCHEDULED` and `{stream}_DLQ`, the durable pull
//!   consumer (explicit acks, `AckWait`, no server-side `MaxDeliver`) and the mover's
//!   consumer. Existing ones are used as they are.
//! * `enqueue` publishes each event with `Nats-Msg-Id` = its id and awaits every PubAck;
//!   a retry after a lost acknowledgement is dropped by the server as a duplicate.
//! * `pull` sends pull requests that are all over when it returns (see `fetch`), in a
//!   task, so it is cancel-safe: what a dropped pull fetched is kept for the next one.
//!   The delivery count of a message is its [`Delivery::attempt`]; past
//!   `max_deliveries`, or when it is oversize or not an envelope, it goes to the
//!   dead-letter stream with the reason and is terminated; the worker goes on.
//! * `complete` publishes the emitted events, the scheduled ones and the dead letters,
//!   each with a `Nats-Msg-Id` derived from the input message's stream sequence and the
//!   output's position, awaits their PubAcks, then acknowledges the input and awaits the
//!   server's confirmation. A handling repeated after a crash (before the ack) publishes
//!   the same ids, and the server drops them within the duplicate window.
//! * While the backend holds messages, a heartbeat sends in-progress acks every third of
//!   `AckWait`, so a slow handling is not redelivered meanwhile.
//! * `release` and `close` give held messages back with a negative ack: they are
//!   delivered again at once, to any worker, as the next attempt.
//! * Scheduled events (retries, `emit_after`) wait in `{stream}_SCHEDULED`; see the
//!   `schedule` module for how they are moved when due.
//!
//! Partitioned, per-key ordered consumption is not yet supported on NATS. See the crate
//! README ("Running on NATS") for the guarantees in plain words.

mod config;
mod core;
mod dead_letter;
mod error;
mod fetch;
mod health;
mod heartbeat;
mod publish;
mod receipt;
mod schedule;
mod secret;
mod setup;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use self::config::{
    NatsBackendBuilder, NatsConfig, Storage, DEFAULT_ACK_WAIT, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_CONSUMER, DEFAULT_DUPLICATE_WINDOW, DEFAULT_MAX_ACK_PENDING, DEFAULT_MAX_DELIVERIES,
    DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_MAX_WAIT, DEFAULT_RECONNECT_TIMEOUT,
    DEFAULT_RESPONSE_TIMEOUT, DEFAULT_STREAM,
};
pub use self::dead_letter::{NatsDeadLetter, ORIGINAL_HEADER_PREFIX};
pub use self::error::NatsBackendError;
pub use self::health::{NatsHealth, NatsMetrics};
pub use self::receipt::NatsReceipt;
pub use self::secret::RedactedUrls;

use self::core::Core;
use self::dead_letter::{MessageProblem, Source};
use self::health::Counters;
use self::publish::{output_id, Outgoing};
use crate::backend::{Backend, BackendError, Batch, Completion, Delivery, Scheduled};
use crate::envelope::AnyEnvelope;

/// A [`Backend`] on NATS JetStream: many processes on many machines share the events of
/// one stream through a durable pull consumer, with at-least-once delivery.
///
/// ```no_run
/// use necrostack::{NatsBackend, Spine};
///
/// # async fn run() -> Result<(), necrostack::Error> {
/// let backend = NatsBackend::builder("nats://127.0.0.1:4222")
///     .stream("ORDERS")        // default "NECROSTACK"; created if missing
///     .consumer("billing")     // default "necrostack": the group of workers
///     .build()
///     .await?;
/// let spine = Spine::builder().backend(backend).build()?;
/// spine.run().await?;
/// # Ok(())
/// # }
/// ```
///
/// Cloning gives another handle to the same worker (same connection, counters and
/// state). [`close`](Backend::close) keeps every stored event (they live in the stream)
/// and gives the messages this worker still holds back to the other workers; call it
/// after [`Spine::run`](crate::Spine::run) returns.
#[derive(Clone)]
pub struct NatsBackend {
    core: Arc<Core>,
    reader: Arc<tokio::sync::Mutex<Reader>>,
}

/// Deliveries fetched but not yet handed out, and the fetch in progress.
#[derive(Default)]
struct Reader {
    ready: VecDeque<Delivery<NatsReceipt>>,
    task: Option<JoinHandle<Result<Vec<Delivery<NatsReceipt>>, NatsBackendError>>>,
}

impl std::fmt::Debug for NatsBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBackend")
            .field("config", &self.core.config)
            .finish_non_exhaustive()
    }
}

impl NatsBackend {
    /// Starts configuring a backend for the NATS server(s) at `urls`:
    /// `nats://[user:password@]host[:port]` or `nats://token@host`, several separated by
    /// commas for a cluster. Credentials never appear in logs or errors.
    pub fn builder(urls: impl Into<String>) -> NatsBackendBuilder {
        NatsBackendBuilder::new(urls.into())
    }

    /// The settings.
    pub fn config(&self) -> &NatsConfig {
        &self.core.config
    }

    /// What this backend has done so far.
    pub fn metrics(&self) -> NatsMetrics {
        self.core.counters.snapshot()
    }

    /// Reads the state of the streams and of the consumer.
    pub async fn health(&self) -> Result<NatsHealth, BackendError> {
        let core = &*self.core;
        let started = Instant::now();
        let info = |subject: String| {
            core.retrying("health", move || {
                core.api("health", subject.clone(), serde_json::json!({}))
            })
        };
        let consumer = info(format!(
            "CONSUMER.INFO.{}.{}",
            core.config.stream, core.config.consumer
        ))
        .await?;
        let round_trip = started.elapsed();
        let events = info(format!("STREAM.INFO.{}", core.config.stream)).await?;
        let scheduled = info(format!("STREAM.INFO.{}", core.config.scheduled_stream())).await?;
        let dead = info(format!("STREAM.INFO.{}", core.config.dead_letter_stream())).await?;
        let number = |value: &serde_json::Value, path: &str| {
            value.pointer(path).and_then(|v| v.as_u64()).unwrap_or(0)
        };
        Ok(NatsHealth {
            round_trip,
            stream_messages: number(&events, "/state/messages"),
            pending: number(&consumer, "/num_pending"),
            ack_pending: number(&consumer, "/num_ack_pending"),
            scheduled: number(&scheduled, "/state/messages"),
            dead_letters: number(&dead, "/state/messages"),
        })
    }

    /// The oldest `count` messages of the dead-letter stream.
    pub async fn dead_letters(&self, count: usize) -> Result<Vec<NatsDeadLetter>, BackendError> {
        let core = &*self.core;
        let stream = core.config.dead_letter_stream();
        let info = core
            .retrying("dead letters", || {
                core.api(
                    "dead letters",
                    format!("STREAM.INFO.{stream}"),
                    serde_json::json!({}),
                )
            })
            .await?;
        let number = |path: &str| info.pointer(path).and_then(|v| v.as_u64()).unwrap_or(0);
        let (first, last, messages) = (
            number("/state/first_seq"),
            number("/state/last_seq"),
            number("/state/messages"),
        );
        let mut out = Vec::new();
        if messages == 0 {
            return Ok(out);
        }
        let handle = core
            .js
            .get_stream(&stream)
            .await
            .map_err(|error| BackendError::Other(core.scrub(&error).into()))?;
        for sequence in first..=last {
            if out.len() >= count {
                break;
            }
            match handle.get_raw_message(sequence).await {
                Ok(message) => out.push(NatsDeadLetter::from_message(
                    sequence,
                    &message.headers,
                    &message.payload,
                )),
                // Deleted from the dead-letter stream: skip.
                Err(error) => {
                    tracing::debug!(sequence, error = %core.scrub(&error), "dead letter not readable")
                }
            }
        }
        Ok(out)
    }

    fn check_open(&self) -> Result<(), BackendError> {
        if self.core.is_closed() {
            Err(BackendError::Closed)
        } else {
            Ok(())
        }
    }

    /// What a completion publishes, in order: emitted events, scheduled events, dead
    /// letters. An output that cannot be stored (too large, not encodable) becomes a dead
    /// letter with the reason instead of failing the completion.
    fn outputs(&self, source: &Source<'_>, completion: &Completion) -> (Vec<Outgoing>, u64, u64) {
        let core = &*self.core;
        let mut emitted = Vec::new();
        let mut scheduled = Vec::new();
        let mut dead = Vec::new();
        for (position, envelope) in completion.emitted.iter().enumerate() {
            let id = output_id(source.sequence, 'e', position);
            match self.storable(envelope) {
                Ok(json) => emitted.push(Outgoing::new(core.subject.clone(), id, json)),
                Err(problem) => dead.push(self.unstorable(source, id, &problem)),
            }
        }
        for (position, event) in completion.scheduled.iter().enumerate() {
            let id = output_id(source.sequence, 's', position);
            match self.storable(&event.envelope) {
                Ok(json) => scheduled.push(schedule::outgoing(core, event, id, json)),
                Err(problem) => dead.push(self.unstorable(source, id, &problem)),
            }
        }
        for (position, letter) in completion.dead_letters.iter().enumerate() {
            let id = output_id(source.sequence, 'd', position);
            dead.push(dead_letter::for_spine(
                core.config.dead_letter_subject(),
                id,
                source,
                letter,
            ));
        }
        let counts = (emitted.len() as u64, dead.len() as u64);
        let mut all = emitted;
        all.append(&mut scheduled);
        all.append(&mut dead);
        (all, counts.0, counts.1)
    }

    /// The event encoded for the stream, or why it cannot be stored.
    fn storable(&self, envelope: &AnyEnvelope) -> Result<Vec<u8>, MessageProblem> {
        let limit = self.core.config.max_payload_bytes;
        match envelope.to_json() {
            Err(error) => Err(MessageProblem::UnencodableEmitted {
                error: error.to_string(),
            }),
            Ok(json) if json.len() > limit => Err(MessageProblem::OversizeEmitted {
                size: json.len(),
                limit,
            }),
            Ok(json) => Ok(json),
        }
    }

    fn unstorable(&self, source: &Source<'_>, id: String, problem: &MessageProblem) -> Outgoing {
        tracing::warn!(
            sequence = source.sequence,
            ?problem,
            "an output of a handling cannot be stored: dead-lettered"
        );
        dead_letter::for_message(
            self.core.config.dead_letter_subject(),
            id,
            source,
            problem,
            None,
            bytes::Bytes::new(),
        )
    }

    /// Encodes and size-checks events for `enqueue` and `schedule`.
    fn encode(&self, envelope: &AnyEnvelope) -> Result<Vec<u8>, BackendError> {
        let json = envelope.to_json()?;
        let limit = self.core.config.max_payload_bytes;
        if json.len() > limit {
            return Err(NatsBackendError::PayloadTooLarge {
                event_id: envelope.id(),
                size: json.len(),
                limit,
            }
            .into());
        }
        Ok(json)
    }

    /// Gives messages back with a negative ack, sent in order, confirmations awaited
    /// together.
    async fn give_back(&self, replies: Vec<async_nats::Subject>) -> Result<(), BackendError> {
        Counters::add(&self.core.counters.released, replies.len() as u64);
        for chunk in replies.chunks(256) {
            let naks = chunk.iter().map(|reply| self.core.ack(reply, "-NAK"));
            for result in futures_util::future::join_all(naks).await {
                result?;
            }
        }
        Ok(())
    }
}

impl Backend for NatsBackend {
    type Receipt = NatsReceipt;

    async fn enqueue(&self, events: Vec<AnyEnvelope>) -> Result<(), BackendError> {
        self.check_open()?;
        let mut items = Vec::with_capacity(events.len());
        for envelope in &events {
            let json = self.encode(envelope)?;
            let id = publish::enqueued_id(envelope.id());
            items.push(Outgoing::new(self.core.subject.clone(), id, json));
        }
        publish::publish_all(&self.core, "enqueue", &items).await?;
        Counters::add(&self.core.counters.enqueued, items.len() as u64);
        Ok(())
    }

    async fn pull(
        &self,
        max: usize,
        timeout: Duration,
    ) -> Result<Batch<Delivery<NatsReceipt>>, BackendError> {
        self.check_open()?;
        let deadline = Instant::now().checked_add(timeout);
        let mut reader = self.reader.lock().await;
        loop {
            self.check_open()?;
            if !reader.ready.is_empty() || max == 0 {
                let take = max.min(reader.ready.len());
                let batch: Batch<_> = reader.ready.drain(..take).collect();
                Counters::add(&self.core.counters.pulled, batch.len() as u64);
                return Ok(batch);
            }
            let left = deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            });
            let wait = left.min(self.core.config.max_wait);
            let task = match reader.task.as_mut() {
                Some(task) => task,
                None => {
                    let core = Arc::clone(&self.core);
                    reader
                        .task
                        .insert(tokio::spawn(fetch::fetch(core, max, wait)))
                }
            };
            // If this future is dropped here, the task keeps running and its deliveries
            // are picked up by the next pull: nothing taken is lost.
            let joined = task.await;
            reader.task = None;
            match joined {
                Ok(Ok(batch)) => reader.ready.extend(batch),
                Ok(Err(error)) => return Err(error.into()),
                Err(join) if join.is_cancelled() => return Err(BackendError::Closed),
                Err(join) => {
                    return Err(BackendError::Other(
                        format!("the NATS fetch task failed: {join}").into(),
                    ))
                }
            }
            let over = deadline.is_some_and(|d| Instant::now() >= d);
            if reader.ready.is_empty() && over {
                return Ok(Batch::new());
            }
        }
    }

    async fn complete(
        &self,
        receipt: NatsReceipt,
        completion: Completion,
    ) -> Result<(), BackendError> {
        let core = &*self.core;
        let (sequence, reply, deliveries) = receipt.into_parts();
        core.held().remove(&sequence);
        self.check_open()?;
        let source = Source {
            stream: &core.config.stream,
            sequence,
            consumer: &core.config.consumer,
            deliveries,
        };
        let (outputs, n_emitted, n_dead) = self.outputs(&source, &completion);
        publish::publish_all(core, "complete", &outputs).await?;
        core.ack(&reply, "+ACK").await?;
        Counters::add(&core.counters.acked, 1);
        Counters::add(&core.counters.emitted, n_emitted);
        Counters::add(&core.counters.dead_lettered, n_dead);
        Counters::add(&core.counters.scheduled, completion.scheduled.len() as u64);
        Ok(())
    }

    async fn release(&self, deliveries: Vec<Delivery<NatsReceipt>>) -> Result<(), BackendError> {
        let replies: Vec<_> = deliveries
            .into_iter()
            .map(|d| {
                let (sequence, reply, _) = d.receipt.into_parts();
                self.core.held().remove(&sequence);
                reply
            })
            .collect();
        self.check_open()?;
        self.give_back(replies).await
    }

    async fn release_held(&self) -> Result<(), BackendError> {
        self.check_open()?;
        // Nothing of the spine's is in flight: let a fetch in progress finish (its
        // requests are short), then give back everything it and earlier ones read ahead.
        let ready: Vec<_> = {
            let mut reader = self.reader.lock().await;
            if let Some(task) = reader.task.take() {
                if let Ok(Ok(batch)) = task.await {
                    reader.ready.extend(batch);
                }
            }
            reader.ready.drain(..).collect()
        };
        if ready.is_empty() {
            return Ok(());
        }
        tracing::debug!(
            count = ready.len(),
            "run ended: messages read ahead given back"
        );
        self.release(ready).await
    }

    async fn schedule(&self, events: Vec<Scheduled>) -> Result<(), BackendError> {
        self.check_open()?;
        let mut items = Vec::with_capacity(events.len());
        for event in &events {
            let json = self.encode(&event.envelope)?;
            items.push(schedule::outgoing(
                &self.core,
                event,
                schedule::scheduled_id(event),
                json,
            ));
        }
        publish::publish_all(&self.core, "schedule", &items).await?;
        Counters::add(&self.core.counters.scheduled, items.len() as u64);
        Ok(())
    }

    async fn next_due(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>, BackendError> {
        self.check_open()?;
        Ok(schedule::next_due(&self.core).await?)
    }

    async fn close(&self) -> Result<(), BackendError> {
        use std::sync::atomic::Ordering;
        if self.core.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        // A fetch in progress ends first (its waiting request lasts at most `max_wait`),
        // then every message this worker still holds goes back to the other workers.
        let _fetching = self.core.fetching.lock().await;
        let held: Vec<_> = self.core.held().drain().map(|(_, reply)| reply).collect();
        let result = self.give_back(held).await;
        let _ =
            tokio::time::timeout(self.core.config.response_timeout, self.core.client.drain()).await;
        result
    }
}

impl NatsBackendBuilder {
    /// Connects, creates the streams and the consumer if they do not exist, and returns
    /// the backend. Fails if NATS cannot be reached within the connect timeout or a
    /// setting is invalid.
    pub async fn build(self) -> Result<NatsBackend, BackendError> {
        let core = Arc::new(Core::connect(self).await?);
        tracing::info!(config = %core.config, "NATS backend ready");
        heartbeat::spawn(&core);
        schedule::spawn_mover(&core);
        Ok(NatsBackend {
            core,
            reader: Arc::new(tokio::sync::Mutex::new(Reader::default())),
        })
    }
}
