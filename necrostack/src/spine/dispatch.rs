//! Running the organs of one event: in registration order, each with panic catching,
//! the handler timeout and the failure policy.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::policy::{Failure, FailureKind, FailurePolicy};
use super::report::RunReport;
use super::routing::DynOrgan;
use crate::backend::{Batch, DeadLetter, DeadLetterReason};
use crate::emit::Emit;
use crate::envelope::{AnyEnvelope, Envelope};
use crate::event::Event;
use crate::organ::{Handling, Permanent};

pub(crate) type FailureHook = Arc<dyn Fn(&Failure) + Send + Sync>;

/// The settings every handling needs.
impl std::fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatch")
            .field("handler_timeout", &self.handler_timeout)
            .field("policy", &self.policy)
            .field("depth_limit", &self.depth_limit)
            .field("on_failure", &self.on_failure.as_ref().map(|_| "<hook>"))
            .finish()
    }
}

pub(crate) struct Dispatch {
    pub(crate) handler_timeout: Option<Duration>,
    pub(crate) policy: FailurePolicy,
    pub(crate) depth_limit: Option<u32>,
    pub(crate) on_failure: Option<FailureHook>,
}

/// What handling one event produced.
#[derive(Default)]
pub(crate) struct EventOutcome {
    pub(crate) emitted: Batch<AnyEnvelope>,
    pub(crate) dead_letters: Vec<DeadLetter>,
    pub(crate) counts: RunReport,
}

impl EventOutcome {
    pub(crate) fn dead(envelope: AnyEnvelope, reason: DeadLetterReason) -> Self {
        EventOutcome {
            emitted: Batch::new(),
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

/// The work of handling one event: finished already (every organ was sync), or a future
/// to await (an async organ, or a failure policy that waits).
pub(crate) enum Prepared<'a> {
    Done(EventOutcome),
    Pending(BoxFuture<'a, EventOutcome>),
}

/// Runs every organ on `event` in order and collects what they emitted.
///
/// Sync organs that succeed are run right here, so an event whose organs are all sync
/// costs no future and no allocation for the work itself; from the first organ that
/// needs waiting (an async handler, a failure under the policy), the rest continues in a
/// boxed future. `envelope` is the delivered event holding `event`, for dead letters.
pub(crate) fn run_organs<'a, E: Event>(
    organs: &'a [Box<dyn DynOrgan<E>>],
    envelope: &'a AnyEnvelope,
    event: &'a Envelope<E>,
    ctx: &'a Dispatch,
) -> Prepared<'a> {
    let mut progress = Progress::default();
    for (index, organ) in organs.iter().enumerate() {
        match start(organ.as_ref(), event) {
            Ok(Handling::Ready(Ok(emit))) => progress.record(event, Ok(emit)),
            first => {
                let rest = finish_organs(&organs[index..], first, envelope, event, ctx, progress);
                return Prepared::Pending(Box::pin(rest));
            }
        }
    }
    Prepared::Done(progress.finish(envelope))
}

/// Continues [`run_organs`] from `organs[0]`, whose first call gave `first`.
async fn finish_organs<'a, E: Event>(
    organs: &'a [Box<dyn DynOrgan<E>>],
    first: Result<Handling<'a>, CallFailure>,
    envelope: &'a AnyEnvelope,
    event: &'a Envelope<E>,
    ctx: &'a Dispatch,
    mut progress: Progress,
) -> EventOutcome {
    let mut first = Some(first);
    for organ in organs {
        let organ = organ.as_ref();
        let called = match first.take() {
            Some(called) => called,
            None => start(organ, event),
        };
        let result = match called {
            Ok(Handling::Ready(Ok(emit))) => Ok(emit),
            called => run_one(organ, event, ctx, &mut progress.outcome.counts, called).await,
        };
        progress.record(event, result);
    }
    progress.finish(envelope)
}

/// What the organs of one event did so far.
#[derive(Default)]
struct Progress {
    outcome: EventOutcome,
    /// Dead-letter reasons, one per organ that failed under a dead-lettering policy.
    reasons: Vec<DeadLetterReason>,
}

impl Progress {
    fn record<E: Event>(
        &mut self,
        event: &Envelope<E>,
        result: Result<Emit, Option<DeadLetterReason>>,
    ) {
        match result {
            Ok(emit) => {
                let outcome = &mut self.outcome;
                outcome.counts.succeeded += 1;
                outcome.counts.emitted += emit.len();
                for emitted in emit.events {
                    outcome
                        .emitted
                        .push(AnyEnvelope::stamped(event.meta.child(), emitted));
                }
            }
            Err(Some(reason)) => self.reasons.push(reason),
            Err(None) => {}
        }
    }

    fn finish(self, envelope: &AnyEnvelope) -> EventOutcome {
        let Progress {
            mut outcome,
            reasons,
        } = self;
        if !reasons.is_empty() {
            let at = chrono::Utc::now();
            outcome.counts.dead_lettered += reasons.len();
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
}

/// A failure of one call: what kind, and the message.
type CallFailure = (FailureKind, String);

/// Runs one organ under the failure policy, given the outcome of its first call.
/// `Err(Some(reason))` asks for a dead letter.
async fn run_one<'a, E: Event>(
    organ: &'a dyn DynOrgan<E>,
    event: &'a Envelope<E>,
    ctx: &Dispatch,
    counts: &mut RunReport,
    first: Result<Handling<'a>, CallFailure>,
) -> Result<Emit, Option<DeadLetterReason>> {
    let mut attempt = 1;
    let mut first = Some(first);
    loop {
        let result = match first.take() {
            Some(Ok(handling)) => finish(handling, ctx.handler_timeout).await,
            Some(Err(failure)) => Err(failure),
            None => call_once(organ, event, ctx.handler_timeout).await,
        };
        let (kind, error) = match result {
            Ok(emit) => return Ok(emit),
            Err(failure) => failure,
        };
        let retry = match &ctx.policy {
            FailurePolicy::Retry(retry)
                if attempt < retry.max_attempts() && kind != FailureKind::Permanent =>
            {
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
) -> Result<Emit, CallFailure> {
    finish(start(organ, event)?, timeout).await
}

/// Calls the organ: a sync handler runs to the end here, an async one returns its
/// future. A panic becomes a failure.
fn start<'a, E: Event>(
    organ: &'a dyn DynOrgan<E>,
    event: &'a Envelope<E>,
) -> Result<Handling<'a>, CallFailure> {
    std::panic::catch_unwind(AssertUnwindSafe(|| organ.call(event)))
        .map_err(|panic| (FailureKind::Panic, panic_message(&*panic)))
}

/// Waits for an async handler (under the timeout) and turns errors and panics into a
/// failure.
async fn finish(handling: Handling<'_>, timeout: Option<Duration>) -> Result<Emit, CallFailure> {
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
    result.map_err(|error| {
        let kind = if Permanent::is_in_chain(&*error) {
            FailureKind::Permanent
        } else {
            FailureKind::Error
        };
        (kind, error_chain(&*error))
    })
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
