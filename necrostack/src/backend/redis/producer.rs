//! [`RedisProducer`]: enqueuing and scheduling events on a Redis stream without a spine
//! or a consumer group, e.g. from a web handler or a cron job.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::config::RedisBackendBuilder;
use super::core::{Core, Role};
use super::counters::Counters;
use super::error::RedisBackendError;
use super::fetch::ENVELOPE_FIELD;
use super::{enqueue, schedule};
use crate::backend::{BackendError, Scheduled};
use crate::envelope::{AnyEnvelope, Envelope};
use crate::event::Event;

/// Writes events to a Redis stream (and its schedule) for the workers of any group to
/// handle; it reads nothing and creates no consumer group.
///
/// Build it with [`RedisBackendBuilder::build_producer`], with the same `stream` (and
/// `key_prefix`) as the workers. Cloning is cheap and shares the connection.
///
/// ```no_run
/// use necrostack::{Event, RedisBackend};
/// use serde::{Deserialize, Serialize};
/// use std::time::Duration;
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct OrderPlaced { id: u64 }
///
/// # async fn run() -> Result<(), necrostack::Error> {
/// let producer = RedisBackend::builder("redis://127.0.0.1:6379")
///     .stream("orders")
///     .build_producer()
///     .await?;
/// producer.emit(OrderPlaced { id: 1 }).await?;
/// producer.emit_after(Duration::from_secs(60), OrderPlaced { id: 2 }).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisProducer {
    core: Arc<Core>,
}

impl std::fmt::Debug for RedisProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisProducer")
            .field("stream", &self.core.stream)
            .field("url", self.core.config.url())
            .finish_non_exhaustive()
    }
}

impl RedisBackendBuilder {
    /// Connects for writing only: a [`RedisProducer`]. The group, consumer and read
    /// settings are not used, and no consumer group is created.
    pub async fn build_producer(self) -> Result<RedisProducer, BackendError> {
        let core = Arc::new(Core::connect(self, Role::Producer).await?);
        Ok(RedisProducer { core })
    }
}

impl RedisProducer {
    /// Adds `event` to the stream as a root event; returns its id.
    pub async fn emit<E: Event>(&self, event: E) -> Result<Uuid, BackendError> {
        let envelope = Envelope::new(event);
        let id = envelope.id();
        self.enqueue(vec![envelope.into()]).await?;
        Ok(id)
    }

    /// Schedules `event` as a root event, to be delivered `delay` from now.
    pub async fn emit_after<E: Event>(
        &self,
        delay: Duration,
        event: E,
    ) -> Result<Uuid, BackendError> {
        let due = crate::spine::due_after(Utc::now(), delay);
        self.emit_at(due, event).await
    }

    /// Schedules `event` as a root event, to be delivered at `due` (at once if past).
    pub async fn emit_at<E: Event>(
        &self,
        due: DateTime<Utc>,
        event: E,
    ) -> Result<Uuid, BackendError> {
        let envelope = Envelope::new(event);
        let id = envelope.id();
        let scheduled = Scheduled {
            envelope: envelope.into(),
            due,
        };
        self.schedule(vec![scheduled]).await?;
        Ok(id)
    }

    /// Adds envelopes to the stream, in order, in one `MULTI`/`EXEC`: all or nothing.
    pub async fn enqueue(&self, events: Vec<AnyEnvelope>) -> Result<(), BackendError> {
        enqueue(&self.core, events).await
    }

    /// Adds events to the schedule, in one command: all or nothing.
    pub async fn schedule(&self, events: Vec<Scheduled>) -> Result<(), BackendError> {
        schedule(&self.core, events).await
    }
}

/// Refuses an encoded event over `max_payload_bytes`.
fn check_size(core: &Core, event_id: Uuid, json: &[u8]) -> Result<(), RedisBackendError> {
    let limit = core.config.max_payload_bytes;
    let size = json.len() + ENVELOPE_FIELD.len();
    if size > limit {
        return Err(RedisBackendError::PayloadTooLarge {
            event_id,
            size,
            limit,
        });
    }
    Ok(())
}

/// Encodes, checks and stores a batch of new events (shared with `RedisBackend`).
pub(crate) async fn enqueue(core: &Core, events: Vec<AnyEnvelope>) -> Result<(), BackendError> {
    let Some(first) = events.first() else {
        return Ok(());
    };
    let mut encoded = Vec::with_capacity(events.len());
    for envelope in &events {
        let json = envelope.to_json()?;
        check_size(core, envelope.id(), &json)?;
        encoded.push(json);
    }
    enqueue::store(core, &encoded, first.id()).await?;
    Counters::add(&core.counters.enqueued, events.len() as u64);
    Ok(())
}

/// Encodes, checks and schedules events (shared with `RedisBackend`).
pub(crate) async fn schedule(core: &Core, events: Vec<Scheduled>) -> Result<(), BackendError> {
    let encoded = schedule::encode(&events)?;
    for ((_, json), event) in encoded.iter().zip(&events) {
        check_size(core, event.envelope.id(), json)?;
    }
    schedule::add(core, &encoded).await?;
    Ok(())
}
