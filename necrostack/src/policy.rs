//! What happens when an organ fails: [`FailurePolicy`], [`RetryPolicy`], [`Failure`].

use std::time::Duration;

use uuid::Uuid;

/// What the spine does when an organ returns `Err`, panics or exceeds its timeout.
///
/// Whatever the policy, the failure is logged (with event id, type, organ and correlation
/// id), counted in the [`RunReport`](crate::RunReport), passed to the
/// [`on_failure`](crate::SpineBuilder::on_failure) hook, and the other organs of the same
/// event still run. Events the failing organ would have emitted are not emitted.
///
/// ```
/// use std::time::Duration;
/// use necrostack::{organ, DeadLetterReason, Event, FailurePolicy, RetryPolicy, Spine};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct Send;
///
/// #[organ(listens_to = Send)]
/// fn flaky(_: &Send) -> Result<(), std::io::Error> {
///     Err(std::io::Error::other("provider down"))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), necrostack::Error> {
/// let retry = RetryPolicy::new(3).backoff(Duration::from_millis(1), Duration::from_millis(5));
/// let spine = Spine::builder().organ(flaky).failure_policy(FailurePolicy::Retry(retry)).build()?;
/// spine.emit(Send).await?;
/// let report = spine.run_until_idle().await?;
/// assert_eq!((report.retried, report.failed, report.dead_lettered), (2, 1, 1));
/// let letter = &spine.backend().dead_letters()[0];
/// assert!(matches!(letter.reason, DeadLetterReason::HandlerFailed { attempts: 3, .. }));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Log the failure and go on (the default): the event counts as handled.
    #[default]
    LogAndContinue,
    /// Run the failing organ again later, with backoff; once the attempts are used up,
    /// move the event to the dead-letter store so that nothing is silently lost.
    ///
    /// A retry goes through the backend as a *scheduled* copy of the event, addressed to
    /// the failing organ only and carrying the next attempt number
    /// ([`Envelope::attempt`](crate::Envelope::attempt)): the worker moves on at once, the
    /// other organs of the event are not run again, and on a shared backend (Redis) the
    /// retry survives a crash of this worker and may run on another one.
    Retry(RetryPolicy),
    /// Move the event to the dead-letter store at once, with the reason.
    DeadLetter,
}

/// How often and how patiently to retry a failing organ.
///
/// ```
/// use necrostack::RetryPolicy;
/// use std::time::Duration;
///
/// let policy = RetryPolicy::new(4).backoff(Duration::from_millis(10), Duration::from_secs(1));
/// assert_eq!(policy.delay_before(2), Duration::from_millis(10));
/// assert_eq!(policy.delay_before(3), Duration::from_millis(20));
/// assert_eq!(policy.max_attempts(), 4);
/// // Full jitter (the default): the actual wait is drawn from 0..=delay_before(n), so
/// // a fleet whose events failed together does not retry in lockstep.
/// assert!(policy.jittered_delay_before(3) <= Duration::from_millis(20));
/// // Without jitter the wait is exactly delay_before(n).
/// let exact = policy.clone().jitter(false);
/// assert_eq!(exact.jittered_delay_before(3), Duration::from_millis(20));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    jitter: bool,
}

impl RetryPolicy {
    /// At most `max_attempts` tries in all (the first one included; 0 counts as 1), with
    /// exponential backoff from 50 ms, doubling, capped at 5 s, with full jitter.
    pub fn new(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts: max_attempts.max(1),
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            jitter: true,
        }
    }

    /// Whether each wait is drawn at random from zero to [`delay_before`](Self::delay_before)
    /// ("full jitter", the default) or is exactly that delay. Jitter spreads the retries
    /// of events that failed together (a dependency that went down for everyone), so a
    /// fleet does not hammer it in lockstep when it comes back.
    pub fn jitter(mut self, enabled: bool) -> Self {
        self.jitter = enabled;
        self
    }

    /// Sets the first delay and the cap; each later delay doubles the one before.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// The total number of tries.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The delay before try number `attempt` (2 for the first retry).
    pub fn delay_before(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(2).min(31);
        self.initial_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff)
    }

    /// The wait actually used before try number `attempt`: [`delay_before`](Self::delay_before),
    /// or with jitter a uniformly random duration from zero to it.
    pub fn jittered_delay_before(&self, attempt: u32) -> Duration {
        let cap = self.delay_before(attempt);
        if !self.jitter || cap.is_zero() {
            return cap;
        }
        let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }
}

impl Default for RetryPolicy {
    /// Three tries, 50 ms then 100 ms apart.
    fn default() -> Self {
        RetryPolicy::new(3)
    }
}

/// How an organ failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// The handler returned `Err`.
    Error,
    /// The handler panicked; the panic was caught.
    Panic,
    /// The handler did not finish within the handler timeout.
    Timeout,
    /// The handler returned an error marked [`Permanent`](crate::Permanent): it is not
    /// retried.
    Permanent,
}

/// One failed handling, after the retries the policy allowed. Given to the
/// [`on_failure`](crate::SpineBuilder::on_failure) hook.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The id of the event being handled.
    pub event_id: Uuid,
    /// Its type name.
    pub event_type: String,
    /// Its correlation id.
    pub correlation_id: Uuid,
    /// The organ that failed.
    pub organ: &'static str,
    /// How it failed (the last attempt).
    pub kind: FailureKind,
    /// The error or panic message of the last attempt.
    pub error: String,
    /// How many times the organ was tried.
    pub attempts: u32,
}
