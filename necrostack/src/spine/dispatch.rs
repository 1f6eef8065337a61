//! Running the organs of one event: in registration order, each with panic catching,
//! the handler timeout and the failure policy (whose retries are scheduled through the
//! backend, never waited for here).

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tracing::Instrument;

use super::report::{count, Tally};
use crate::backend::{Batch, DeadLetter, DeadLetterReason, Scheduled};
use crate::emit::Emit;
use crate::envelope::{AnyEnvelope, Envelope};
use crate::event::Event;
use crate::organ::{DynOrgan, Handling, Permanent};
use crate::policy::{Failure, FailureKind, FailurePolicy};
use crate::telemetry::{self, Ran};
use crate::wire::DecodeError;

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
    /// Retries of failed organs and events emitted with a delay.
    pub(crate) scheduled: Vec<Scheduled>,
    pub(crate) dead_letters: Vec<DeadLetter>,
    pub(crate) counts: Tally,
}

impl EventOutcome {
    pub(crate) fn dead(envelope: AnyEnvelope, reason: DeadLetterReason) -> Self {
        telemetry::dead_letter(envelope.event_type(), &reason);
        EventOutcome {
            emitted: Batch::new(),
            scheduled: Vec::new(),
            dead_letters: vec![DeadLetter {
                envelope,
                reason,
                at: chrono::Utc::now(),
            }],
            counts: Tally {
                dead_lettered: 1,
                ..Tally::default()
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

/// Decodes `envelope` into `slot` (where the caller keeps it while organs borrow it) and
/// runs `organs` on it, or returns the work left when an organ must be awaited. An event
/// past the depth limit, or whose payload does not decode, is dead-lettered.
pub(crate) fn prepare<'a, E: Event>(
    organs: &'a [Box<dyn DynOrgan<E>>],
    envelope: AnyEnvelope,
    slot: &'a mut Option<AnyEnvelope>,
    ctx: &'a Dispatch,
) -> Prepared<'a> {
    if let Some(outcome) = ctx.check_depth(&envelope) {
        return Prepared::Done(outcome);
    }
    let (envelope, error) = match envelope.hold::<E>() {
        Ok(held) => {
            let held: &'a AnyEnvelope = slot.insert(held);
            match held.held::<E>() {
                Some(event) => return run_organs(organs, held, event, ctx),
                // `hold` just made it an `Envelope<E>`; kept as an error, never a panic.
                None => (
                    held.clone(),
                    DecodeError::WrongEventType {
                        expected: E::NAME,
                        found: held.event_type().to_owned(),
                    },
                ),
            }
        }
        Err(failed) => *failed,
    };
    tracing::warn!(
        event_id = %envelope.id(),
        event_type = %envelope.event_type(),
        correlation_id = %envelope.correlation_id(),
        %error,
        "undecodable event: dead-lettered"
    );
    let reason = DeadLetterReason::Undecodable {
        error: error.to_string(),
    };
    Prepared::Done(EventOutcome::dead(envelope, reason))
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
    let organs = match event.retry_organ() {
        None => organs,
        // A retry is for the one organ that failed; the others handled the event already.
        Some(name) => match organs.iter().position(|organ| organ.name() == name) {
            Some(at) => &organs[at..=at],
            None => return Prepared::Done(organ_gone(envelope, name)),
        },
    };
    tracing::trace!(
        event_id = %event.id(),
        event_type = E::NAME,
        organs = organs.len(),
        "dispatching"
    );
    let mut progress = Progress::default();
    for (index, organ) in organs.iter().enumerate() {
        let (called, trace) = start(organ.as_ref(), event);
        match called {
            Ok(Handling::Ready(Ok(emit))) => {
                trace.finished(organ.name(), E::NAME, Ran::Succeeded);
                progress.record(event, Ok(emit));
            }
            first => {
                let first = (first, trace);
                let rest = finish_organs(&organs[index..], first, envelope, event, ctx, progress);
                return Prepared::Pending(Box::pin(rest));
            }
        }
    }
    Prepared::Done(progress.finish(envelope))
}

/// A retry for an organ that this spine does not have. A retry goes back into the shared
/// stream, so the other consumer groups of that stream see it too: for them it is not
/// theirs, and it is acknowledged and counted as unrouted, like an event nobody here
/// listens to (dead-lettering it would fill every other group's dead letters with the
/// first group's retries). The same happens to a retry for an organ renamed or removed
/// since it was scheduled, which is why the log line says so.
fn organ_gone(envelope: &AnyEnvelope, organ: &str) -> EventOutcome {
    tracing::debug!(
        event_id = %envelope.id(),
        event_type = %envelope.event_type(),
        organ,
        attempt = envelope.attempt(),
        "retry for an organ this spine does not have (another group's, or renamed): acknowledged as unrouted"
    );
    telemetry::unrouted(envelope.event_type());
    EventOutcome {
        counts: Tally {
            unrouted: 1,
            ..Tally::default()
        },
        ..EventOutcome::default()
    }
}

/// Continues [`run_organs`] from `organs[0]`, whose first call gave `first`.
async fn finish_organs<'a, E: Event>(
    organs: &'a [Box<dyn DynOrgan<E>>],
    first: (Result<Handling<'a>, CallFailure>, Trace),
    envelope: &'a AnyEnvelope,
    event: &'a Envelope<E>,
    ctx: &'a Dispatch,
    mut progress: Progress,
) -> EventOutcome {
    let mut first = Some(first);
    for organ in organs {
        let organ = organ.as_ref();
        let (called, trace) = match first.take() {
            Some(first) => first,
            None => start(organ, event),
        };
        let result = match called {
            Ok(Handling::Ready(Ok(emit))) => {
                trace.finished(organ.name(), E::NAME, Ran::Succeeded);
                Ok(emit)
            }
            called => {
                let counts = &mut progress.outcome.counts;
                run_one(organ, event, ctx, counts, called, trace).await
            }
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
    /// Retries to schedule: the organ, its next attempt and the wait before it.
    retries: Vec<(&'static str, u32, Duration)>,
}

/// How one organ's failure ends, after the failure policy decided.
enum Failed {
    /// Logged and counted; nothing else (`LogAndContinue`).
    Dropped,
    /// The event goes to the dead-letter store with this reason.
    DeadLetter(DeadLetterReason),
    /// The organ gets another try later.
    Retry {
        organ: &'static str,
        attempt: u32,
        delay: Duration,
    },
}

impl Progress {
    fn record<E: Event>(&mut self, event: &Envelope<E>, result: Result<Emit, Failed>) {
        match result {
            Ok(emit) => {
                let outcome = &mut self.outcome;
                outcome.counts.succeeded += 1;
                outcome.counts.emitted += count(emit.len());
                for emitted in emit.events {
                    outcome
                        .emitted
                        .push(AnyEnvelope::stamped(event.meta.child(), emitted));
                }
                if let Some(later) = emit.delayed {
                    let now = chrono::Utc::now();
                    outcome
                        .scheduled
                        .extend(later.into_iter().map(|(delay, emitted)| Scheduled {
                            envelope: AnyEnvelope::stamped(event.meta.child(), emitted),
                            due: due_after(now, delay),
                        }));
                }
            }
            Err(Failed::DeadLetter(reason)) => self.reasons.push(reason),
            Err(Failed::Retry {
                organ,
                attempt,
                delay,
            }) => self.retries.push((organ, attempt, delay)),
            Err(Failed::Dropped) => {}
        }
    }

    fn finish(self, envelope: &AnyEnvelope) -> EventOutcome {
        let Progress {
            mut outcome,
            reasons,
            retries,
        } = self;
        if !retries.is_empty() {
            let now = chrono::Utc::now();
            outcome
                .scheduled
                .extend(
                    retries
                        .into_iter()
                        .map(|(organ, attempt, delay)| Scheduled {
                            envelope: envelope.retry(attempt, organ),
                            due: due_after(now, delay),
                        }),
                );
        }
        if !reasons.is_empty() {
            let at = chrono::Utc::now();
            for reason in &reasons {
                telemetry::dead_letter(envelope.event_type(), reason);
            }
            outcome.counts.dead_lettered += count(reasons.len());
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

/// `now + delay`, saturating far in the future instead of overflowing.
pub(crate) fn due_after(
    now: chrono::DateTime<chrono::Utc>,
    delay: Duration,
) -> chrono::DateTime<chrono::Utc> {
    chrono::Duration::from_std(delay)
        .ok()
        .and_then(|delay| now.checked_add_signed(delay))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

/// A failure of one call: what kind, and the message.
type CallFailure = (FailureKind, String);

/// Runs one organ under the failure policy (the organ's own, else the spine's), given
/// the outcome of its first call.
async fn run_one<'a, E: Event>(
    organ: &'a dyn DynOrgan<E>,
    event: &'a Envelope<E>,
    ctx: &Dispatch,
    counts: &mut Tally,
    first: Result<Handling<'a>, CallFailure>,
    trace: Trace,
) -> Result<Emit, Failed> {
    let result = match first {
        Ok(handling) => finish(handling, ctx.handler_timeout, &trace.span).await,
        Err(failure) => Err(failure),
    };
    let (kind, error) = match result {
        Ok(emit) => {
            trace.finished(organ.name(), E::NAME, Ran::Succeeded);
            return Ok(emit);
        }
        Err(failure) => failure,
    };
    trace.finished(organ.name(), E::NAME, Ran::Failed(kind));
    let policy = organ.policy().unwrap_or(&ctx.policy);
    let attempt = event.attempt();
    let retry = match policy {
        FailurePolicy::Retry(retry)
            if attempt < retry.max_attempts() && kind != FailureKind::Permanent =>
        {
            Some(retry.jittered_delay_before(attempt + 1))
        }
        _ => None,
    };
    if let Some(delay) = retry {
        // Expected and handled: not a warning (a flaky dependency must not flood the logs).
        tracing::info!(
            event_id = %event.id(),
            event_type = E::NAME,
            organ = organ.name(),
            correlation_id = %event.correlation_id(),
            attempt,
            kind = ?kind,
            %error,
            retry_in = ?delay,
            "organ failed; retry scheduled"
        );
        counts.retried += 1;
        telemetry::retry(organ.name(), E::NAME);
        return Err(Failed::Retry {
            organ: organ.name(),
            attempt: attempt + 1,
            delay,
        });
    }
    tracing::warn!(
        event_id = %event.id(),
        event_type = E::NAME,
        organ = organ.name(),
        correlation_id = %event.correlation_id(),
        attempt,
        kind = ?kind,
        %error,
        "organ failed"
    );
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
    Err(match policy {
        FailurePolicy::LogAndContinue => Failed::Dropped,
        _ => Failed::DeadLetter(DeadLetterReason::HandlerFailed {
            organ: organ.name().to_owned(),
            error,
            attempts: attempt,
        }),
    })
}

/// Calls the organ: a sync handler runs to the end here, an async one returns its
/// future. A panic becomes a failure.
fn start<'a, E: Event>(
    organ: &'a dyn DynOrgan<E>,
    event: &'a Envelope<E>,
) -> (Result<Handling<'a>, CallFailure>, Trace) {
    let trace = Trace::start(organ.name(), event);
    let call = || {
        std::panic::catch_unwind(AssertUnwindSafe(|| organ.call(event)))
            .map_err(|panic| (FailureKind::Panic, panic_message(&*panic)))
    };
    let called = match &trace.span {
        Some(span) => span.in_scope(call),
        None => call(),
    };
    (called, trace)
}

/// The span one organ run happens in, and when it started (for its duration metric).
struct Trace {
    /// `None` when nothing listens at `info`: then a handling costs no span at all.
    span: Option<tracing::Span>,
    started: Option<Instant>,
}

impl Trace {
    /// One span per handling, so that every log line of the handler carries the event
    /// and the organ.
    fn start<E: Event>(organ: &'static str, event: &Envelope<E>) -> Self {
        let span = tracing::level_enabled!(tracing::Level::INFO).then(|| {
            tracing::info_span!(
                "handle",
                organ,
                event_type = E::NAME,
                event_id = %event.id(),
                correlation_id = %event.correlation_id(),
                causation_id = %Cause(event.causation_id()),
                depth = event.depth(),
                attempt = event.attempt(),
            )
        });
        let started = telemetry::timed().then(Instant::now);
        Trace { span, started }
    }

    /// Records the run's outcome and duration.
    fn finished(self, organ: &'static str, event_type: &'static str, ran: Ran) {
        let took = self.started.map(|at| at.elapsed()).unwrap_or_default();
        telemetry::handling(organ, event_type, ran, took);
    }
}

/// A causation id for a log field: the id, or `none` for a root event.
struct Cause(Option<uuid::Uuid>);

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(id) => id.fmt(f),
            None => f.write_str("none"),
        }
    }
}

/// Waits for an async handler (under the timeout) and turns errors and panics into a
/// failure.
async fn finish(
    handling: Handling<'_>,
    timeout: Option<Duration>,
    span: &Option<tracing::Span>,
) -> Result<Emit, CallFailure> {
    let result = match handling {
        Handling::Ready(result) => result,
        Handling::Pending(future) => {
            let span = span.clone().unwrap_or_else(tracing::Span::none);
            let future = AssertUnwindSafe(future.instrument(span)).catch_unwind();
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
