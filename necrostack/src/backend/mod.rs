//! The [`Backend`] trait: where events wait between organs.
//!
//! A backend stores envelopes, hands them to a spine in batches, and learns what became
//! of each one. The spine needs five operations:
//!
//! * [`enqueue`](Backend::enqueue): store new events (from `Spine::emit` and producers);
//! * [`pull`](Backend::pull): take up to `max` events, waiting at most `timeout`;
//! * [`complete`](Backend::complete): the handling of one delivery is over; store what it
//!   emitted and its dead letters, and acknowledge it, **in one step** where the backend
//!   can (so a crash never leaves half of the output, nor output without the ack);
//! * [`release`](Backend::release): give back deliveries that were pulled but never
//!   started (on shutdown or when a run stops at `max_steps`), so they are delivered again;
//! * [`schedule`](Backend::schedule): store events that must not be delivered before a
//!   given time (`Spine::emit_after`, `emit_at`); [`Completion::scheduled`] does the same
//!   for what a handling schedules (retries, delayed emits), atomically with its ack;
//! * [`next_due`](Backend::next_due): when the earliest scheduled event falls due, so
//!   that a run until idle waits for it;
//! * [`close`](Backend::close): stop; later calls fail with [`BackendError::Closed`].
//!
//! Delivery is at least once: a delivery that is neither completed nor released (the
//! process died) must eventually be delivered again. `pull` must be cancel-safe: if its
//! future is dropped, nothing it took may be lost. A scheduled event becomes deliverable
//! once due, like an enqueued one, and never before.
//!
//! **Errors end the run.** A backend retries transient failures (a broken connection)
//! itself, for as long as its own reconnect timeout allows. An error returned by `pull`
//! or `complete` therefore means it gave up, and the spine's run returns it at once:
//! it starts no new handlings and leaves what it pulled but did not complete to be
//! delivered again. An event that cannot be stored (e.g. too large) is not such an
//! error: `complete` dead-letters it with its reason.
//!
//! **Partition keys.** An envelope may carry a partition key
//! ([`AnyEnvelope::partition_key`]): it must be stored with the event (the JSON wire
//! format carries it) and come back on delivery. A backend that keeps per-key order
//! across consumers does not hand out an event while another with its key is held by a
//! consumer ([`InMemoryBackend`](memory::InMemoryBackend) does so for all the spines
//! sharing it; a partitioned stream does it by giving each partition one owner).
//!
//! The conformance suite in the repository's `tests/` runs every backend through the
//! same tests; run it against a new backend before relying on it.

mod batch;
pub mod memory;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(feature = "redis", feature = "nats"))]
mod secrets;

pub use batch::{Batch, IntoIter as BatchIntoIter};

use std::fmt;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::box_error::BoxError;
use crate::envelope::AnyEnvelope;
use crate::wire::EncodeError;

/// One event handed to a spine, with the token the backend needs to acknowledge it.
#[derive(Debug)]
pub struct Delivery<R> {
    /// The event.
    pub envelope: AnyEnvelope,
    /// Backend-specific acknowledgement token (a stream entry id, or a
    /// [`MemoryReceipt`](memory::MemoryReceipt) in memory).
    pub receipt: R,
    /// Which delivery of this event this is, starting at 1. More than 1 means an earlier
    /// handling did not complete (a crash, or the event was released).
    pub attempt: u32,
}

/// The outcome of handling one delivery, passed to [`Backend::complete`].
#[derive(Debug, Default)]
pub struct Completion {
    /// Events the organs emitted, in order, lineage filled in.
    pub emitted: Batch<AnyEnvelope>,
    /// Events to deliver later: retries of failed organs, and events the organs emitted
    /// with a delay.
    pub scheduled: Vec<Scheduled>,
    /// Events to move to the dead-letter store (usually the delivered event itself).
    pub dead_letters: Vec<DeadLetter>,
}

/// An event that must not be delivered before `due`.
#[derive(Debug, Clone)]
pub struct Scheduled {
    /// The event.
    pub envelope: AnyEnvelope,
    /// The earliest time it may be delivered.
    pub due: DateTime<Utc>,
}

/// An event that could not be handled, with the reason, kept for inspection or replay.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The event as it was delivered.
    pub envelope: AnyEnvelope,
    /// Why it was dead-lettered.
    pub reason: DeadLetterReason,
    /// When.
    pub at: DateTime<Utc>,
}

/// Why an event was moved to the dead-letter store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeadLetterReason {
    /// An organ failed (error, panic or timeout) and the failure policy dead-letters.
    HandlerFailed {
        /// The organ's name.
        organ: String,
        /// The last error, as text.
        error: String,
        /// How many times the organ was tried.
        attempts: u32,
    },
    /// The payload does not decode as the type listening to its name.
    Undecodable {
        /// The decoding error, as text.
        error: String,
    },
    /// The event is deeper in its causal chain than the spine's depth limit allows:
    /// probably a loop of organs emitting each other forever.
    ProbableLoop {
        /// The event's depth.
        depth: u32,
        /// The configured limit.
        limit: u32,
    },
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeadLetterReason::HandlerFailed {
                organ,
                error,
                attempts,
            } => write!(
                f,
                "organ {organ} failed after {attempts} attempt(s): {error}"
            ),
            DeadLetterReason::Undecodable { error } => write!(f, "undecodable event: {error}"),
            DeadLetterReason::ProbableLoop { depth, limit } => write!(
                f,
                "probable loop: depth {depth} is past the limit of {limit} hops from the root event"
            ),
        }
    }
}

/// A backend operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The backend was closed.
    #[error("the backend is closed")]
    Closed,
    /// The backend cannot be reached (connection refused or lost, timeout).
    #[error("backend unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// An event could not be encoded for storage.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// Anything else the backend reports.
    #[error("backend error: {0}")]
    Other(#[source] BoxError),
}

/// Where a spine's events wait: see the [module documentation](self) for the contract.
///
/// Methods return `Send` futures; implement them with `async fn`.
///
/// A complete backend: a queue behind a mutex, with a [`Notify`](tokio::sync::Notify) so
/// that `pull` can wait. It runs a spine, then passes a few of the checks the repository's
/// conformance suite (`tests/conformance.rs`) makes of every backend; run that suite on
/// yours before relying on it.
///
/// ```
/// use std::collections::VecDeque;
/// use std::sync::{Mutex, MutexGuard};
/// use std::time::Duration;
///
/// use chrono::{DateTime, Utc};
/// use necrostack::backend::{
///     Backend, BackendError, Batch, Completion, DeadLetter, Delivery, Scheduled,
/// };
/// use necrostack::{organ, AnyEnvelope, Envelope, Event, Spine};
/// use serde::{Deserialize, Serialize};
/// use tokio::sync::Notify;
/// use tokio::time::{timeout_at, Instant};
///
/// #[derive(Default)]
/// struct QueueBackend {
///     state: Mutex<State>,
///     arrived: Notify,
/// }
///
/// #[derive(Default)]
/// struct State {
///     queue: VecDeque<(AnyEnvelope, u32)>, // each event with its earlier deliveries
///     scheduled: Vec<Scheduled>,            // not due yet (retries, emit_after)
///     dead_letters: Vec<DeadLetter>,
///     closed: bool,
/// }
///
/// impl QueueBackend {
///     fn open(&self) -> Result<MutexGuard<'_, State>, BackendError> {
///         let state = self.state.lock().unwrap();
///         if state.closed { Err(BackendError::Closed) } else { Ok(state) }
///     }
/// }
///
/// impl State {
///     /// Moves what is due to the queue, earliest first; returns when the next is due.
///     fn promote_due(&mut self) -> Option<Instant> {
///         self.scheduled.sort_by_key(|s| s.due);
///         let now = Utc::now();
///         let due = self.scheduled.iter().take_while(|s| s.due <= now).count();
///         self.queue.extend(self.scheduled.drain(..due).map(|s| (s.envelope, 0)));
///         let next = self.scheduled.first()?;
///         Some(Instant::now() + (next.due - now).to_std().unwrap_or_default())
///     }
/// }
///
/// impl Backend for QueueBackend {
///     type Receipt = (); // nothing to acknowledge: a pulled event has left the queue
///
///     async fn enqueue(&self, events: Vec<AnyEnvelope>) -> Result<(), BackendError> {
///         self.open()?.queue.extend(events.into_iter().map(|e| (e, 0)));
///         self.arrived.notify_waiters();
///         Ok(())
///     }
///
///     async fn pull(&self, max: usize, timeout: Duration)
///         -> Result<Batch<Delivery<()>>, BackendError> {
///         let deadline = Instant::now().checked_add(timeout);
///         loop {
///             // Register for a wake-up before looking, so none is missed in between.
///             let arrival = self.arrived.notified();
///             tokio::pin!(arrival);
///             arrival.as_mut().enable();
///             let next_due = {
///                 let mut state = self.open()?;
///                 let next_due = state.promote_due();
///                 let expired = deadline.is_some_and(|d| Instant::now() >= d);
///                 if !state.queue.is_empty() || expired {
///                     // Taken only here, all at once: a dropped `pull` loses nothing.
///                     let n = max.min(state.queue.len());
///                     return Ok(state.queue.drain(..n).map(|(envelope, delivered)| {
///                         Delivery { envelope, receipt: (), attempt: delivered + 1 }
///                     }).collect());
///                 }
///                 next_due
///             };
///             // Wake up for an arrival, the timeout, or the next scheduled event.
///             let deadline = match (deadline, next_due) {
///                 (Some(d), Some(n)) => Some(d.min(n)),
///                 (d, n) => d.or(n),
///             };
///             match deadline {
///                 Some(deadline) => { let _ = timeout_at(deadline, arrival).await; }
///                 None => arrival.await,
///             }
///         }
///     }
///
///     async fn complete(&self, _: (), completion: Completion) -> Result<(), BackendError> {
///         let mut state = self.open()?; // one lock: output and dead letters together
///         state.queue.extend(completion.emitted.into_iter().map(|e| (e, 0)));
///         state.scheduled.extend(completion.scheduled);
///         state.dead_letters.extend(completion.dead_letters);
///         drop(state);
///         self.arrived.notify_waiters();
///         Ok(())
///     }
///
///     async fn release(&self, deliveries: Vec<Delivery<()>>) -> Result<(), BackendError> {
///         let mut state = self.open()?;
///         for delivery in deliveries.into_iter().rev() {
///             state.queue.push_front((delivery.envelope, delivery.attempt)); // first again
///         }
///         drop(state);
///         self.arrived.notify_waiters();
///         Ok(())
///     }
///
///     async fn schedule(&self, events: Vec<Scheduled>) -> Result<(), BackendError> {
///         self.open()?.scheduled.extend(events);
///         self.arrived.notify_waiters(); // a waiting pull recomputes when to wake up
///         Ok(())
///     }
///
///     async fn next_due(&self) -> Result<Option<DateTime<Utc>>, BackendError> {
///         Ok(self.open()?.scheduled.iter().map(|s| s.due).min())
///     }
///
///     async fn close(&self) -> Result<(), BackendError> {
///         let mut state = self.state.lock().unwrap();
///         state.closed = true;
///         state.queue.clear();
///         drop(state);
///         self.arrived.notify_waiters();
///         Ok(())
///     }
/// }
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct Tick(u32);
///
/// #[organ(listens_to = Tick)]
/// fn count_down(tick: &Tick) -> Option<Tick> {
///     (tick.0 > 0).then(|| Tick(tick.0 - 1))
/// }
///
/// fn ticks(batch: &[Delivery<()>]) -> Vec<(u32, u32)> {
///     batch.iter().map(|d| (d.envelope.downcast_ref::<Tick>().unwrap().0, d.attempt)).collect()
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let spine = Spine::builder().organ(count_down).backend(QueueBackend::default()).build()?;
///
/// // A spine runs on it: 3, 2, 1, 0.
/// spine.emit(Tick(3)).await?;
/// let report = spine.run_until_idle().await?;
/// assert_eq!((report.steps, report.emitted), (4, 3));
///
/// let backend = spine.backend();
/// // FIFO, first delivery is attempt 1; `Duration::ZERO` never waits.
/// backend.enqueue(vec![Envelope::new(Tick(1)).into(), Envelope::new(Tick(2)).into()]).await?;
/// let pulled = backend.pull(10, Duration::ZERO).await?;
/// assert_eq!(ticks(&pulled), [(1, 1), (2, 1)]);
/// assert!(backend.pull(10, Duration::ZERO).await?.is_empty());
///
/// // Released deliveries come back first, in order, as the next attempt.
/// backend.release(pulled.into_vec()).await?;
/// assert_eq!(ticks(&backend.pull(10, Duration::ZERO).await?), [(1, 2), (2, 2)]);
///
/// // `pull` waits up to its timeout, and wakes as soon as an event arrives.
/// let started = Instant::now();
/// assert!(backend.pull(1, Duration::from_millis(20)).await?.is_empty());
/// assert!(started.elapsed() >= Duration::from_millis(20));
/// let (pulled, _) = tokio::join!(backend.pull(1, Duration::from_secs(30)), async {
///     tokio::time::sleep(Duration::from_millis(10)).await;
///     backend.enqueue(vec![Envelope::new(Tick(7)).into()]).await
/// });
/// assert_eq!(ticks(&pulled?), [(7, 1)]);
///
/// // A scheduled event comes when due, not before; a waiting pull wakes up for it.
/// let due = Utc::now() + chrono::Duration::milliseconds(30);
/// backend.schedule(vec![Scheduled { envelope: Envelope::new(Tick(9)).into(), due }]).await?;
/// assert_eq!(backend.next_due().await?, Some(due));
/// assert!(backend.pull(1, Duration::ZERO).await?.is_empty());
/// assert_eq!(ticks(&backend.pull(1, Duration::from_secs(5)).await?), [(9, 1)]);
/// assert!(Utc::now() >= due);
/// assert_eq!(backend.next_due().await?, None);
///
/// // Closed means closed.
/// backend.close().await?;
/// assert!(matches!(backend.pull(1, Duration::ZERO).await, Err(BackendError::Closed)));
/// assert!(matches!(backend.enqueue(vec![]).await, Err(BackendError::Closed)));
/// # Ok(())
/// # }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a necrostack backend",
    note = "use `necrostack::InMemoryBackend`, `necrostack::RedisBackend`, or implement `necrostack::Backend`"
)]
pub trait Backend: Send + Sync + 'static {
    /// What the backend needs to acknowledge a delivery.
    type Receipt: Send + 'static;

    /// Stores `events` at the end of the queue, in order. May wait for room
    /// (backpressure); fails rather than dropping anything.
    fn enqueue(
        &self,
        events: Vec<AnyEnvelope>,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Takes up to `max` events in order, waiting up to `timeout` for the first one.
    /// Returns an empty batch when the timeout expires; `Duration::ZERO` never waits.
    fn pull(
        &self,
        max: usize,
        timeout: Duration,
    ) -> impl Future<Output = Result<Batch<Delivery<Self::Receipt>>, BackendError>> + Send;

    /// Records the outcome of one delivery and acknowledges it, atomically where possible.
    /// Emitted events never wait for room: the spine that would free it is the caller.
    fn complete(
        &self,
        receipt: Self::Receipt,
        completion: Completion,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Gives back deliveries that were pulled but not handled, in the order pulled, so
    /// that they are delivered again (first, where the backend can).
    fn release(
        &self,
        deliveries: Vec<Delivery<Self::Receipt>>,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Called by the spine when a run ends normally (stopped, idle, or at `max_steps`),
    /// with nothing of that run in flight: gives back whatever the backend still holds
    /// for this consumer (read ahead, or left by a read cut short), so that other workers
    /// get it at once instead of after a takeover timeout. The default does nothing,
    /// which is right for a backend that holds nothing between pulls.
    fn release_held(&self) -> impl Future<Output = Result<(), BackendError>> + Send {
        async { Ok(()) }
    }

    /// Stores events to be delivered once due (each at or after its `due`), durably
    /// where the backend is durable. Events already due are delivered as soon as
    /// possible, after those enqueued before them.
    fn schedule(
        &self,
        events: Vec<Scheduled>,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// When the earliest scheduled event is due, or `None` if none is scheduled.
    fn next_due(&self) -> impl Future<Output = Result<Option<DateTime<Utc>>, BackendError>> + Send;

    /// Closes the backend. What this means for stored events is the backend's to say.
    fn close(&self) -> impl Future<Output = Result<(), BackendError>> + Send;
}
