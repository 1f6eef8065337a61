//! Scheduled events on NATS: a second stream, `{stream}_SCHEDULED`, whose subjects carry
//! the due time (`{subject}.scheduled.{Unix ms}`), and the mover every worker runs.
//!
//! JetStream 2.9 cannot hold a message back until a given time, but a consumer can give
//! one back with a delay (a negative ack with `delay`), and the server keeps that delay
//! in the consumer's state, across crashes of any worker and restarts of the server. So
//! the mover pulls from the shared consumer `necrostack-mover`; a message that is due is
//! published to the events stream (with the id `moved:{sequence}`, so a move repeated
//! after a crash is stored once within the duplicate window) and then acknowledged,
//! which removes it (work-queue retention); one that is not due yet is given back with
//! the time left as its delay, and the server hands it out again then.
//!
//! `next_due` asks the server for the subjects of the scheduled stream (one
//! `STREAM.INFO` with a subject filter) and reads the earliest due time from them.

use std::sync::{Arc, Weak};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::core::{jittered, Core, Failure};
use super::error::NatsBackendError;
use super::fetch::{self, Raw};
use super::health::Counters;
use super::publish::{self, Outgoing};
use super::setup::MOVER_CONSUMER;
use crate::backend::Scheduled;

/// Messages one mover pull takes at most.
const MOVE_BATCH: usize = 64;

/// A due time as it appears in the subject: Unix milliseconds, rounded up, so that an
/// event is never moved before its due time (truncating would move it up to a
/// millisecond early).
pub(crate) fn due_ms(due: DateTime<Utc>) -> i64 {
    let ms = due.timestamp_millis();
    if due.timestamp_subsec_nanos().is_multiple_of(1_000_000) {
        ms
    } else {
        ms.saturating_add(1)
    }
}

/// The message that stores one scheduled event.
pub(crate) fn outgoing(core: &Core, event: &Scheduled, msg_id: String, json: Vec<u8>) -> Outgoing {
    Outgoing::new(
        core.config.scheduled_subject(due_ms(event.due)),
        msg_id,
        json,
    )
}

/// The id of an event scheduled with `schedule` (not by a handling): unique per event
/// and attempt, so a retried `schedule` call stores it once.
pub(crate) fn scheduled_id(event: &Scheduled) -> String {
    let envelope = &event.envelope;
    format!(
        "sched:{}:{}:{}",
        envelope.id(),
        envelope.attempt(),
        envelope.retry_organ().unwrap_or("")
    )
}

/// When the earliest scheduled event is due; now, when an event was moved into the
/// events stream and not yet delivered (so that a run until idle pulls again rather than
/// ending between a move and the pull that would have seen it).
pub(crate) async fn next_due(core: &Core) -> Result<Option<DateTime<Utc>>, NatsBackendError> {
    // A move in progress in this worker ends first, so that an event it already moved
    // is not reported as still scheduled.
    let _moving = core.moving.lock().await;
    if undelivered(core).await? > 0 {
        return Ok(Some(Utc::now()));
    }
    let stream = core.config.scheduled_stream();
    let filter = format!("{}.scheduled.*", core.subject);
    let info = core
        .retrying("next due", || {
            core.api(
                "next due",
                format!("STREAM.INFO.{stream}"),
                serde_json::json!({ "subjects_filter": filter }),
            )
        })
        .await?;
    let earliest = info
        .pointer("/state/subjects")
        .and_then(|subjects| subjects.as_object())
        .into_iter()
        .flat_map(|subjects| subjects.keys())
        .filter_map(|subject| subject.rsplit('.').next()?.parse::<i64>().ok())
        .min();
    Ok(earliest.map(|ms| {
        Utc.timestamp_millis_opt(ms)
            .single()
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }))
}

/// Messages of the events stream not yet delivered to this consumer.
async fn undelivered(core: &Core) -> Result<u64, NatsBackendError> {
    let subject = format!(
        "CONSUMER.INFO.{}.{}",
        core.config.stream, core.config.consumer
    );
    let info = core
        .retrying("next due", || {
            core.api("next due", subject.clone(), serde_json::json!({}))
        })
        .await?;
    Ok(info
        .get("num_pending")
        .and_then(|n| n.as_u64())
        .unwrap_or(0))
}

/// Starts the mover; it ends when the backend is closed or dropped.
pub(crate) fn spawn_mover(core: &Arc<Core>) {
    let weak = Arc::downgrade(core);
    let next_subject = format!(
        "$JS.API.CONSUMER.MSG.NEXT.{}.{MOVER_CONSUMER}",
        core.config.scheduled_stream()
    );
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(50);
        loop {
            match move_once(&weak, &next_subject).await {
                None => return,
                Some(true) => backoff = Duration::from_millis(50),
                Some(false) => {
                    tokio::time::sleep(jittered(backoff)).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    });
}

/// One pull of the mover: `None` when the backend is gone or closed, `Some(false)` after
/// a failure (harmless: whatever was not moved is delivered again).
async fn move_once(weak: &Weak<Core>, next_subject: &str) -> Option<bool> {
    let core = weak.upgrade()?;
    if core.is_closed() {
        return None;
    }
    let raws = match fetch::take(&core, next_subject, MOVE_BATCH, core.config.max_wait).await {
        Ok(raws) => raws,
        Err(Failure::Transient(message)) => {
            tracing::debug!(%message, "the scheduled-event mover could not pull");
            return Some(false);
        }
        Err(Failure::Fatal(error)) => {
            tracing::warn!(%error, "the scheduled-event mover could not pull");
            return Some(false);
        }
    };
    for raw in raws {
        if core.is_closed() {
            return None;
        }
        if let Err(error) = move_one(&core, &raw).await {
            tracing::debug!(%error, "could not move a scheduled event; it comes back");
            return Some(false);
        }
    }
    Some(true)
}

/// Moves one message if due, or gives it back with the time left as its delay.
async fn move_one(core: &Core, raw: &Raw) -> Result<(), NatsBackendError> {
    let _moving = core.moving.lock().await;
    let due = raw
        .message
        .subject
        .as_str()
        .rsplit('.')
        .next()
        .and_then(|ms| ms.parse::<i64>().ok())
        .unwrap_or(0);
    let left = due - Utc::now().timestamp_millis();
    if left > 0 {
        let delay = Duration::from_millis(left as u64);
        let body = format!("-NAK {{\"delay\": {}}}", delay.as_nanos());
        core.client
            .publish(raw.reply.clone(), body.into())
            .await
            .map_err(|error| core.unavailable("schedule", core.scrub(&error)))?;
        return Ok(());
    }
    let moved = Outgoing::new(
        core.subject.clone(),
        format!("moved:{}", raw.sequence),
        raw.message.payload.clone(),
    );
    publish::publish_all(core, "move scheduled event", std::slice::from_ref(&moved)).await?;
    core.ack(&raw.reply, "+ACK").await?;
    Counters::add(&core.counters.moved, 1);
    Ok(())
}
