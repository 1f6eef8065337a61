//! Running the organs of one event: in registration order, each with panic catching,
//! the handler timeout and the failure policy.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;

use super::policy::{Failure, FailureKind, FailurePolicy};
use super::report::RunReport;
use super::routing::DynOrgan;
use crate::backend::{DeadLetter, DeadLetterReason};
use crate::emit::Emit;
use crate::envelope::{AnyEnvelope, Envelope};
use crate::event::Event;
use crate::organ::Handling;

pub(crate) type FailureHook = Arc<dyn Fn(&Failure) + Send + Sync>;

/// The settings every handling needs.
pub(crate) struct Dispatch {
    pub(crate) handler_timeout: Option<Duration>,
    pub(crate) policy: FailurePolicy,
    pub(crate) depth_limit: Option<u32>,
    pub(crate) on_failure: Option<FailureHook>,
}

/// What handling one event produced.
#[derive(Default)]
pub(crate) struct EventOutcome {
    pub(crate) emitted: Vec<AnyEnvelope>,
    pub(crate) dead_letters: Vec<DeadLetter>,
    pub(crate) counts: RunReport,
}

impl EventOutcome {
    pub(crate) fn dead(envelope: AnyEnvelope, reason: DeadLetterReason) -> Self {
        EventOutcome {
            emitted: Vec::new(),
            dead_letters: vec![DeadLetter {
                envelope,
                reason,
                at: chrono::Utc::now(),
            }],
            counts: RunReport {
                dead_lettered: 1,
                ..RunReport::default()
            },
        }
    }
}

impl Dispatch {
    /// A dead-letter outcome when `envelope` is past the depth limit: a probable loop.
    pub(crate) fn check_depth(&self, envelope: &AnyEnvelope) -> Option<EventOutcome> {
        let limit = self.depth_limit?;
        if envelope.depth() <= limit {
            return None;
        }
        tracing::warn!(
            event_id = %envelope.id(),
            event_type = %envelope.event_type(),
            correlation_id = %envelope.correlation_id(),
            depth = envelope.depth(),
            limit,
            "event past the depth limit: dead-lettered as a probable loop"
        );
        let reason = DeadLetterReason::ProbableLoop {
            depth: envelope.depth(),
            limit,
        };
        Some(EventOutcome::dead(envelope.clone(), reason))
    }
}

/// Runs every organ on `event` in order and collects what they emitted.
pub(crate) async fn run_organs<E: Event>(
    organs: &[Box<dyn DynOrgan<E>>],
    event: Envelope<E>,
    ctx: &Dispatch,
) -> EventOutcome {
    let mut outcome = EventOutcome::default();
    let mut reasons = Vec::new();
    for organ in organs {
        match run_one(organ.as_ref(), &event, ctx, &mut outcome.counts).await {
            Ok(emit) => {
                outcome.counts.handled += 1;
                outcome.counts.emitted += emit.len() as u64;
                outcome.emitted.reserve(emit.len());
                for payload in emit.events {
                    outcome
                        .emitted
                        .push(AnyEnvelope::typed(event.meta.child(), payload));
                }
            }
            Err(Some(reason)) => reasons.push(reason),
            Err(None) => {}
        }
    }
    if !reasons.is_empty() {
        let envelope = AnyEnvelope::from(event);
        let at = chrono::Utc::now();
        outcome.counts.dead_lettered += reasons.len() as u64;
        outcome
            .dead_letters
            .extend(reasons.into_iter().map(|reason| DeadLetter {
                envelope: envelope.clone(),
                reason,
                at,
            }));
    }
    outcome
}

/// Runs one organ under the failure policy. `Err(Some(reason))` asks for a dead letter.
async fn run_one<E: Event>(
    organ: &dyn DynOrgan<E>,
    event: &Envelope<E>,
    ctx: &Dispatch,
    counts: &mut RunReport,
) -> Result<Emit, Option<DeadLetterReason>> {
    let mut attempt = 1;
    loop {
        let (kind, error) = match call_once(organ, event, ctx.handler_timeout).await {
            Ok(emit) => return Ok(emit),
            Err(failure) => failure,
        };
        let retry = match &ctx.policy {
            FailurePolicy::Retry(retry) if attempt < retry.max_attempts() => {
                Some(retry.delay_before(attempt + 1))
            }
            _ => None,
        };
        tracing::warn!(
            event_id = %event.id(),
            event_type = E::NAME,
            organ = organ.name(),
            correlation_id = %event.correlation_id(),
            attempt,
            kind = ?kind,
            %error,
            "organ failed{}",
            if retry.is_some() { "; retrying" } else { "" }
        );
        if let Some(delay) = retry {
            counts.retried += 1;
            attempt += 1;
            tokio::time::sleep(delay).await;
            continue;
        }
        counts.failed += 1;
        if let Some(hook) = &ctx.on_failure {
            hook(&Failure {
                event_id: event.id(),
                event_type: E::NAME.to_owned(),
                correlation_id: event.correlation_id(),
                organ: organ.name(),
                kind,
                error: error.clone(),
                attempts: attempt,
            });
        }
        return Err(match ctx.policy {
            FailurePolicy::LogAndContinue => None,
            _ => Some(DeadLetterReason::HandlerFailed {
                organ: organ.name().to_owned(),
                error,
                attempts: attempt,
            }),
        });
    }
}

/// Calls the organ once, turning errors, panics and timeouts into a failure.
async fn call_once<E: Event>(
    organ: &dyn DynOrgan<E>,
    event: &Envelope<E>,
    timeout: Option<Duration>,
) -> Result<Emit, (FailureKind, String)> {
    let handling = std::panic::catch_unwind(AssertUnwindSafe(|| organ.call(event)))
        .map_err(|panic| (FailureKind::Panic, panic_message(&*panic)))?;
    let result = match handling {
        Handling::Ready(result) => result,
        Handling::Pending(future) => {
            let future = AssertUnwindSafe(future).catch_unwind();
            let finished = match timeout {
                Some(limit) => tokio::time::timeout(limit, future).await.map_err(|_| {
                    (
                        FailureKind::Timeout,
                        format!("handler did not finish within {limit:?}"),
                    )
                })?,
                None => future.await,
            };
            finished.map_err(|panic| (FailureKind::Panic, panic_message(&*panic)))?
        }
    };
    result.map_err(|error| (FailureKind::Error, error_chain(&*error)))
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    let message = if let Some(text) = panic.downcast_ref::<&str>() {
        text
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.as_str()
    } else {
        "non-string panic payload"
    };
    format!("panicked: {message}")
}

/// The error and its sources, joined with ": ".
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
