//! Pull requests and what becomes of the messages they bring.
//!
//! A pull asks first without waiting (`no_wait`: whatever is there, up to the batch); if
//! nothing is there, it asks for one message, waiting up to the pull's timeout, then tops
//! up without waiting. So every request the backend sends is over when the pull returns:
//! no request stays on the server to deliver messages to a worker that stopped listening.
//! Every message is checked before the spine sees it: past `max_deliveries`, oversize or
//! not an envelope, it goes to the dead-letter stream and is terminated.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_nats::{Message, StatusCode, Subject};
use futures_util::StreamExt;
use tokio::time::Instant;

use super::core::{jittered, Core, Failure};
use super::dead_letter::{self, MessageProblem, Source};
use super::error::NatsBackendError;
use super::health::Counters;
use super::publish::{self, output_id};
use super::receipt::NatsReceipt;
use crate::backend::Delivery;
use crate::envelope::AnyEnvelope;

/// Waits shorter than this are not worth a waiting request.
const MIN_WAIT: Duration = Duration::from_millis(10);
/// How often a waiting pull request checks that its connection is still the one it was
/// sent on.
const CONNECTION_CHECK: Duration = Duration::from_millis(100);

/// A message from a pull request, with what its ack subject says.
pub(crate) struct Raw {
    pub(crate) message: Message,
    pub(crate) reply: Subject,
    pub(crate) sequence: u64,
    pub(crate) deliveries: u32,
}

/// Stream sequence and delivery count from a `$JS.ACK...` subject (both formats).
fn ack_info(reply: &str) -> Option<(u64, u32)> {
    let tokens: Vec<&str> = reply.split('.').collect();
    if tokens.len() < 9 || tokens[0] != "$JS" || tokens[1] != "ACK" {
        return None;
    }
    let (delivered, sequence) = if tokens.len() == 9 {
        (tokens[4], tokens[5])
    } else {
        (tokens[6], tokens[7])
    };
    Some((sequence.parse().ok()?, delivered.parse().ok()?))
}

/// One pull request for up to `batch` messages of the consumer at `next_subject`,
/// waiting up to `expires` (`None`: answer at once).
pub(crate) async fn request(
    core: &Core,
    next_subject: &str,
    batch: usize,
    expires: Option<Duration>,
) -> Result<Vec<Raw>, Failure> {
    if !core.connected() {
        return Err(Failure::Transient("not connected".to_owned()));
    }
    let body = match expires {
        None => serde_json::json!({ "batch": batch, "no_wait": true }),
        Some(wait) => serde_json::json!({ "batch": batch, "expires": wait.as_nanos() as u64 }),
    };
    let inbox = Subject::from(core.client.new_inbox());
    let mut subscription = core
        .client
        .subscribe(inbox.clone())
        .await
        .map_err(|error| Failure::Transient(core.scrub(&error)))?;
    core.client
        .publish_with_reply(next_subject.to_owned(), inbox, body.to_string().into())
        .await
        .map_err(|error| Failure::Transient(core.scrub(&error)))?;
    let deadline = Instant::now() + expires.unwrap_or_default() + core.config.response_timeout;
    let statistics = core.client.statistics();
    let connects = statistics.connects.load(Ordering::Relaxed);
    let mut out = Vec::new();
    while out.len() < batch {
        let now = Instant::now();
        if now >= deadline {
            if out.is_empty() {
                return Err(unanswered(core, "no answer to a pull request in time").await);
            }
            break;
        }
        let check = (now + CONNECTION_CHECK).min(deadline);
        let message = match tokio::time::timeout_at(check, subscription.next()).await {
            Ok(Some(message)) => message,
            Ok(None) => break,
            Err(_) => {
                // A request sent before the connection was lost (or to a server that
                // restarted) will not be answered: stop waiting for it.
                let reconnected = statistics.connects.load(Ordering::Relaxed) != connects;
                if !core.connected() || reconnected {
                    if out.is_empty() {
                        return Err(Failure::Transient(
                            "the connection was lost during a pull request".to_owned(),
                        ));
                    }
                    break;
                }
                continue;
            }
        };
        match message.status {
            None | Some(StatusCode::OK) => {
                if let Some(raw) = raw(message) {
                    out.push(raw);
                }
            }
            Some(StatusCode::IDLE_HEARTBEAT) => {}
            Some(StatusCode::NOT_FOUND | StatusCode::TIMEOUT) => break,
            Some(StatusCode::NO_RESPONDERS) => {
                return Err(unanswered(core, "no responders for pull requests").await)
            }
            Some(status) => {
                let text = message.description.unwrap_or_default();
                if text.to_lowercase().contains("consumer deleted") {
                    return Err(Failure::Fatal(core.consumer_missing(text)));
                }
                if text.contains("MaxAckPending") {
                    // Nothing deliverable until this or another worker acknowledges.
                    break;
                }
                if out.is_empty() {
                    return Err(Failure::Transient(format!(
                        "pull request ended: {status} {text}"
                    )));
                }
                break;
            }
        }
    }
    let _ = subscription.unsubscribe().await;
    Ok(out)
}

fn raw(message: Message) -> Option<Raw> {
    let reply = message.reply.clone()?;
    let (sequence, deliveries) = ack_info(reply.as_str())?;
    Some(Raw {
        message,
        reply,
        sequence,
        deliveries,
    })
}

/// No one answers pull requests: the consumer is gone (a server that lost its data
/// swallows requests for unknown consumers without a word), or its server is away or
/// electing a leader. Only the first is fatal.
async fn unanswered(core: &Core, what: &str) -> Failure {
    match core.consumer_exists().await {
        Ok(false) => Failure::Fatal(
            core.consumer_missing(format!("{what}, and CONSUMER.INFO does not know it")),
        ),
        _ => Failure::Transient(what.to_owned()),
    }
}

/// Up to `max` messages, waiting up to `wait` for the first: no-wait, then a waiting
/// request for one, then a no-wait top-up.
pub(crate) async fn take(
    core: &Core,
    next_subject: &str,
    max: usize,
    wait: Duration,
) -> Result<Vec<Raw>, Failure> {
    let mut got = request(core, next_subject, max, None).await?;
    if !got.is_empty() || wait < MIN_WAIT {
        return Ok(got);
    }
    got = request(core, next_subject, 1, Some(wait)).await?;
    if !got.is_empty() && max > 1 && !core.is_closed() {
        match request(core, next_subject, max - 1, None).await {
            Ok(more) => got.extend(more),
            Err(Failure::Fatal(error)) => return Err(Failure::Fatal(error)),
            // What we have is good; the rest comes with the next pull.
            Err(Failure::Transient(_)) => {}
        }
    }
    Ok(got)
}

/// One fetch for the spine: up to `max` deliveries, waiting up to `wait`. Transient
/// failures are retried until `wait` is over (then nothing is returned) or until the
/// reconnect timeout, counted from the first failure, has passed (then an error is).
pub(crate) async fn fetch(
    core: Arc<Core>,
    max: usize,
    wait: Duration,
) -> Result<Vec<Delivery<NatsReceipt>>, NatsBackendError> {
    let _fetching = core.fetching.lock().await;
    let deadline = Instant::now() + wait;
    let mut backoff = Duration::from_millis(50);
    loop {
        if core.is_closed() {
            return Ok(Vec::new());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match take(&core, &core.next_subject, max, left).await {
            Ok(raws) => {
                core.mark_up();
                let out = admit(&core, raws).await?;
                if !out.is_empty() || Instant::now() >= deadline {
                    return Ok(out);
                }
            }
            Err(Failure::Fatal(error)) => return Err(error),
            Err(Failure::Transient(message)) => {
                core.mark_down();
                if core.gave_up() {
                    return Err(core.unavailable("pull", message));
                }
                tracing::debug!(%message, "pulling from NATS failed; retrying");
                if Instant::now() >= deadline {
                    return Ok(Vec::new());
                }
                let pause =
                    jittered(backoff).min(deadline.saturating_duration_since(Instant::now()));
                tokio::time::sleep(pause).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Turns messages into deliveries, dead-lettering the ones the spine must not see.
async fn admit(
    core: &Arc<Core>,
    raws: Vec<Raw>,
) -> Result<Vec<Delivery<NatsReceipt>>, NatsBackendError> {
    let mut out = Vec::with_capacity(raws.len());
    for raw in raws {
        match check(core, &raw) {
            Ok(envelope) => {
                core.held().insert(raw.sequence, raw.reply.clone());
                if raw.deliveries > 1 {
                    Counters::add(&core.counters.redelivered, 1);
                }
                out.push(Delivery {
                    envelope,
                    receipt: NatsReceipt::new(
                        raw.sequence,
                        raw.reply,
                        raw.deliveries,
                        Arc::downgrade(core),
                    ),
                    attempt: raw.deliveries,
                });
            }
            // On failure, dropping `out` gives back what was admitted (receipt guard).
            Err(problem) => dead_letter_message(core, &raw, problem).await?,
        }
    }
    Ok(out)
}

/// The envelope of a message, or why the spine must not see it.
fn check(core: &Core, raw: &Raw) -> Result<AnyEnvelope, MessageProblem> {
    let limit = core.config.max_deliveries;
    if raw.deliveries > limit {
        return Err(MessageProblem::TooManyDeliveries {
            deliveries: raw.deliveries,
            limit,
        });
    }
    let size = raw.message.payload.len();
    let max = core.config.max_payload_bytes;
    if size > max {
        return Err(MessageProblem::Oversize { size, limit: max });
    }
    AnyEnvelope::from_json(&raw.message.payload).map_err(|error| MessageProblem::Undecodable {
        error: error.to_string(),
    })
}

/// Publishes the message to the dead-letter stream with the reason, then terminates it.
async fn dead_letter_message(
    core: &Core,
    raw: &Raw,
    problem: MessageProblem,
) -> Result<(), NatsBackendError> {
    let source = Source {
        stream: &core.config.stream,
        sequence: raw.sequence,
        consumer: &core.config.consumer,
        deliveries: raw.deliveries,
    };
    let letter = dead_letter::for_message(
        core.config.dead_letter_subject(),
        output_id(raw.sequence, 'x', 0),
        &source,
        &problem,
        raw.message.headers.as_ref(),
        raw.message.payload.clone(),
    );
    publish::publish_all(core, "dead-letter", std::slice::from_ref(&letter)).await?;
    core.ack(&raw.reply, "+TERM").await?;
    Counters::add(&core.counters.dead_lettered, 1);
    Counters::add(&core.counters.acked, 1);
    tracing::warn!(
        stream = %core.config.stream,
        sequence = raw.sequence,
        deliveries = raw.deliveries,
        reason = ?problem,
        "message dead-lettered by the NATS backend"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ack_info;

    #[test]
    fn both_ack_subject_formats_parse() {
        assert_eq!(ack_info("$JS.ACK.S.C.3.42.40.1700000000.0"), Some((42, 3)));
        assert_eq!(
            ack_info("$JS.ACK.dom.hash.S.C.2.7.5.1700000000.0.xyz"),
            Some((7, 2))
        );
        assert_eq!(ack_info("_INBOX.abc"), None);
    }
}
