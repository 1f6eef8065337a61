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
use super::{enqueue, partition, schedule};
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
    match &core.parts {
        None => enqueue::store(core, &encoded, first.id()).await?,
        Some(parts) => {
            // One MULTI/EXEC per partition (one slot each): atomic per partition.
            let lanes = parts.lanes();
            let mut per_lane: Vec<(Vec<Vec<u8>>, Option<Uuid>)> =
                (0..lanes.len()).map(|_| (Vec::new(), None)).collect();
            for (envelope, json) in events.iter().zip(encoded) {
                let slot = &mut per_lane[partition::partition_for(&core.config, envelope) as usize];
                slot.1.get_or_insert(envelope.id());
                slot.0.push(json);
            }
            for (lane, (batch, first_id)) in lanes.iter().zip(per_lane) {
                if let Some(first_id) = first_id {
                    enqueue::store(lane, &batch, first_id).await?;
                }
            }
        }
    }
    Counters::add(&core.counters.enqueued, events.len() as u64);
    Ok(())
}

/// Encodes, checks and schedules events (shared with `RedisBackend`).
pub(crate) async fn schedule(core: &Core, events: Vec<Scheduled>) -> Result<(), BackendError> {
    let encoded = schedule::encode(&events)?;
    for ((_, json), event) in encoded.iter().zip(&events) {
        check_size(core, event.envelope.id(), json)?;
    }
    match &core.parts {
        None => schedule::add(core, &encoded).await?,
        Some(parts) => {
            let lanes = parts.lanes();
            let mut per_lane: Vec<Vec<(i64, Vec<u8>)>> = vec![Vec::new(); lanes.len()];
            for (item, event) in encoded.into_iter().zip(&events) {
                per_lane[partition::partition_for(&core.config, &event.envelope) as usize]
                    .push(item);
            }
            for (lane, batch) in lanes.iter().zip(per_lane) {
                schedule::add(lane, &batch).await?;
            }
        }
    }
    Ok(())
}
