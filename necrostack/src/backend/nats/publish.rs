//! Publishing to JetStream with a deterministic `Nats-Msg-Id`, awaiting every PubAck, and
//! the ids themselves.
//!
//! A publish whose acknowledgement is lost is sent again with the same id; within the
//! stream's duplicate window the server drops the second copy, so a retried publish, or
//! the output of a handling repeated after a crash, is stored once.

use async_nats::jetstream::message::PublishMessage;
use async_nats::HeaderMap;
use bytes::Bytes;

use super::core::{Core, Failure};
use super::error::NatsBackendError;
use super::health::Counters;

/// Publishes in flight at once: the client refuses more than its in-flight limit, and a
/// window this size already keeps the connection busy.
const WINDOW: usize = 256;

/// One message to publish.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub(crate) subject: String,
    pub(crate) msg_id: String,
    pub(crate) headers: HeaderMap,
    pub(crate) payload: Bytes,
}

impl Outgoing {
    pub(crate) fn new(subject: String, msg_id: String, payload: impl Into<Bytes>) -> Self {
        Outgoing {
            subject,
            msg_id,
            headers: HeaderMap::new(),
            payload: payload.into(),
        }
    }
}

/// The id of an event published by `enqueue`: the event's id.
pub(crate) fn enqueued_id(event_id: uuid::Uuid) -> String {
    event_id.to_string()
}

/// The id of the `position`-th output of kind `kind` (`e` emitted, `s` scheduled, `d`
/// dead letter) of the handling of the message at stream sequence `seq`: the same for
/// every delivery of that message, so a repeated handling publishes the same ids.
pub(crate) fn output_id(seq: u64, kind: char, position: usize) -> String {
    format!("{seq}:{kind}{position}")
}

/// Publishes `items` in order and awaits every PubAck, retrying the whole set on a
/// transient failure (the ids make it idempotent).
pub(crate) async fn publish_all(
    core: &Core,
    operation: &'static str,
    items: &[Outgoing],
) -> Result<(), NatsBackendError> {
    if items.is_empty() {
        return Ok(());
    }
    let duplicates = core
        .retrying(operation, || async {
            let mut duplicates = 0;
            for window in items.chunks(WINDOW) {
                duplicates += publish_window(core, window).await?;
            }
            Ok(duplicates)
        })
        .await?;
    Counters::add(&core.counters.duplicates, duplicates);
    Ok(())
}

async fn publish_window(core: &Core, items: &[Outgoing]) -> Result<u64, Failure> {
    let mut acks = Vec::with_capacity(items.len());
    for item in items {
        let message = PublishMessage::build()
            .payload(item.payload.clone())
            .headers(item.headers.clone())
            .message_id(&item.msg_id);
        let ack = core
            .js
            .send_publish(item.subject.clone(), message)
            .await
            .map_err(|error| Failure::Transient(core.scrub(&error)))?;
        acks.push(ack);
    }
    let mut duplicates = 0;
    for ack in acks {
        let ack = ack
            .await
            .map_err(|error| Failure::Transient(core.scrub(&error)))?;
        if ack.duplicate {
            duplicates += 1;
        }
    }
    Ok(duplicates)
}

/// A header value without the line breaks NATS headers cannot carry.
pub(crate) fn header_value(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
