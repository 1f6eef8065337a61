//! [`InMemoryBackend`]: a FIFO queue inside the process.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use chrono::{DateTime, Utc};

use super::{Backend, BackendError, Batch, Completion, DeadLetter, Delivery, Scheduled};
use crate::envelope::AnyEnvelope;

/// A FIFO queue in the memory of one process; the default backend of a spine.
///
/// Events stay typed: nothing is serialized on this path. [`pull`](Backend::pull) waits
/// up to its timeout for an event. An optional capacity bounds the queue: `enqueue` then
/// waits for room (backpressure), while the events organs emit are always accepted, since
/// the spine that would make room is the one emitting. [`close`](Backend::close) discards
/// what is pending. Dead letters are kept and can be read back with
/// [`dead_letters`](InMemoryBackend::dead_letters). Scheduled events (retries,
/// `emit_after`) wait in a timer queue and join the end of the queue when due; they are
/// lost with the process, like everything else here.
///
/// Cloning gives another handle to the same queue, e.g. to inspect it while a spine runs.
///
/// ```
/// use necrostack::{Backend, Envelope, Event, InMemoryBackend};
/// use serde::{Deserialize, Serialize};
/// use std::time::Duration;
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct Knock;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), necrostack::backend::BackendError> {
/// let backend = InMemoryBackend::new();
/// backend.enqueue(vec![Envelope::new(Knock).into()]).await?;
/// let batch = backend.pull(10, Duration::ZERO).await?;
/// assert_eq!(batch.len(), 1);
/// assert!(backend.pull(10, Duration::from_millis(5)).await?.is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Default)]
pub struct InMemoryBackend {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when events arrive or the backend closes.
    readable: Notify,
    /// Signalled when room frees up or the backend closes.
    writable: Notify,
    capacity: Option<usize>,
}

#[derive(Default)]
struct State {
    /// Events with the number of times each was delivered before.
    queue: VecDeque<(AnyEnvelope, u32)>,
    /// Events not yet due, by due time and then in the order scheduled.
    scheduled: BTreeMap<(Instant, u64), AnyEnvelope>,
    /// Tie-breaker for `scheduled`: events due at one instant keep their order.
    scheduled_seq: u64,
    dead_letters: Vec<DeadLetter>,
    closed: bool,
    /// Pullers asleep on `readable`: enqueuing skips the wake-up when there are none.
    sleeping_pullers: usize,
    /// Producers asleep on `writable`.
    sleeping_producers: usize,
}

impl std::fmt::Debug for InMemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("InMemoryBackend")
            .field("pending", &state.queue.len())
            .field("scheduled", &state.scheduled.len())
            .field("capacity", &self.shared.capacity)
            .field("dead_letters", &state.dead_letters.len())
            .field("closed", &state.closed)
            .finish()
    }
}

impl InMemoryBackend {
    /// An unbounded queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// A queue holding at most `capacity` events enqueued from outside the spine; a
    /// batch larger than the capacity is accepted only into an empty queue.
    ///
    /// # Panics
    /// If `capacity` is 0.
    pub fn bounded(capacity: usize) -> Self {
        assert!(
            capacity > 0,
            "InMemoryBackend::bounded: capacity must be at least 1"
        );
        InMemoryBackend {
            shared: Arc::new(Shared {
                capacity: Some(capacity),
                ..Shared::default()
            }),
        }
    }

    /// How many events are waiting (due ones; see [`scheduled_len`](Self::scheduled_len)
    /// for those that are not due yet).
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Whether no events are waiting (scheduled ones not counted).
    pub fn is_empty(&self) -> bool {
        self.lock().queue.is_empty()
    }

    /// How many scheduled events are not due yet.
    pub fn scheduled_len(&self) -> usize {
        self.lock().scheduled.len()
    }

    /// A copy of the dead letters stored so far, oldest first.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.lock().dead_letters.clone()
    }

    /// Removes and returns the dead letters stored so far, oldest first.
    pub fn take_dead_letters(&self) -> Vec<DeadLetter> {
        std::mem::take(&mut self.lock().dead_letters)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No code path panics while holding the lock; recover rather than propagate.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes up to `max` waiting events (the queue is not empty) and wakes producers
    /// waiting for room.
    fn take(&self, state: &mut State, max: usize) -> Batch<Delivery<()>> {
        let take = max.min(state.queue.len());
        let batch = state
            .queue
            .drain(..take)
            .map(|(envelope, delivered)| Delivery {
                envelope,
                receipt: (),
                attempt: delivered + 1,
            })
            .collect();
        if state.sleeping_producers > 0 {
            self.shared.writable.notify_waiters();
        }
        batch
    }

    /// Moves the scheduled events that are due to the end of the queue, in due order.
    /// Returns when the next one is due, if any.
    fn promote_due(state: &mut State) -> Option<Instant> {
        if state.scheduled.is_empty() {
            return None;
        }
        let now = Instant::now();
        while let Some(entry) = state.scheduled.first_entry() {
            if entry.key().0 > now {
                return Some(entry.key().0);
            }
            let envelope = entry.remove();
            state.queue.push_back((envelope, 0));
        }
        None
    }

    fn add_scheduled(state: &mut State, events: Vec<Scheduled>) {
        if events.is_empty() {
            // The common case (every completion without retries): no clock reading.
            return;
        }
        let (now, utc_now) = (Instant::now(), Utc::now());
        for Scheduled { envelope, due } in events {
            let wait = (due - utc_now).to_std().unwrap_or_default();
            let at = now
                .checked_add(wait)
                .unwrap_or(now + Duration::from_secs(86_400 * 365));
            state.scheduled_seq += 1;
            let seq = state.scheduled_seq;
            state.scheduled.insert((at, seq), envelope);
        }
    }

    fn wake_pullers(&self, state: &State) {
        if state.sleeping_pullers > 0 {
            self.shared.readable.notify_waiters();
        }
    }
}

/// Decrements a sleeper count when a waiting future finishes or is dropped.
struct Sleeping<'a> {
    backend: &'a InMemoryBackend,
    count: fn(&mut State) -> &mut usize,
}

impl<'a> Sleeping<'a> {
    fn register(
        backend: &'a InMemoryBackend,
        state: &mut State,
        count: fn(&mut State) -> &mut usize,
    ) -> Self {
        *count(state) += 1;
        Sleeping { backend, count }
    }
}

impl Drop for Sleeping<'_> {
    fn drop(&mut self) {
        let mut state = self.backend.lock();
        *(self.count)(&mut state) -= 1;
    }
}

impl Backend for InMemoryBackend {
    type Receipt = ();

    async fn enqueue(&self, events: Vec<AnyEnvelope>) -> Result<(), BackendError> {
        loop {
            let room = self.shared.writable.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            let _sleeping = {
                let mut state = self.lock();
                if state.closed {
                    return Err(BackendError::Closed);
                }
                let fits = match self.shared.capacity {
                    None => true,
                    Some(capacity) => {
                        state.queue.is_empty() || state.queue.len() + events.len() <= capacity
                    }
                };
                if fits {
                    state.queue.extend(events.into_iter().map(|e| (e, 0)));
                    self.wake_pullers(&state);
                    return Ok(());
                }
                Sleeping::register(self, &mut state, |s| &mut s.sleeping_producers)
            };
            room.await;
        }
    }

    async fn pull(
        &self,
        max: usize,
        timeout: Duration,
    ) -> Result<Batch<Delivery<()>>, BackendError> {
        // Fast path, the common case under load: events are waiting. No registration
        // with `readable` and no clock reading.
        {
            let mut state = self.lock();
            if state.closed {
                return Err(BackendError::Closed);
            }
            Self::promote_due(&mut state);
            if !state.queue.is_empty() {
                return Ok(self.take(&mut state, max));
            }
            if timeout.is_zero() {
                return Ok(Batch::new());
            }
        }
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let arrival = self.shared.readable.notified();
            tokio::pin!(arrival);
            arrival.as_mut().enable();
            let (_sleeping, next_due) = {
                let mut state = self.lock();
                if state.closed {
                    return Err(BackendError::Closed);
                }
                let next_due = Self::promote_due(&mut state);
                if !state.queue.is_empty() {
                    return Ok(self.take(&mut state, max));
                }
                if timeout.is_zero() || deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(Batch::new());
                }
                let sleeping = Sleeping::register(self, &mut state, |s| &mut s.sleeping_pullers);
                (sleeping, next_due)
            };
            // Wake up for the next scheduled event as well as for arrivals.
            let deadline = match (deadline, next_due) {
                (Some(deadline), Some(due)) => Some(deadline.min(due)),
                (deadline, due) => deadline.or(due),
            };
            match deadline {
                Some(deadline) => {
                    // On expiry, loop once more: the check above returns what arrived
                    // in the meantime, or an empty batch.
                    let _ = tokio::time::timeout_at(deadline, arrival).await;
                }
                None => arrival.await,
            }
        }
    }

    async fn complete(&self, _receipt: (), completion: Completion) -> Result<(), BackendError> {
        let mut state = self.lock();
        if state.closed {
            return Err(BackendError::Closed);
        }
        state
            .queue
            .extend(completion.emitted.into_iter().map(|e| (e, 0)));
        Self::add_scheduled(&mut state, completion.scheduled);
        state.dead_letters.extend(completion.dead_letters);
        self.wake_pullers(&state);
        Ok(())
    }

    async fn release(&self, deliveries: Vec<Delivery<()>>) -> Result<(), BackendError> {
        let mut state = self.lock();
        if state.closed {
            return Err(BackendError::Closed);
        }
        for delivery in deliveries.into_iter().rev() {
            state
                .queue
                .push_front((delivery.envelope, delivery.attempt));
        }
        self.wake_pullers(&state);
        Ok(())
    }

    async fn schedule(&self, events: Vec<Scheduled>) -> Result<(), BackendError> {
        let mut state = self.lock();
        if state.closed {
            return Err(BackendError::Closed);
        }
        Self::add_scheduled(&mut state, events);
        // A sleeping puller must recompute when to wake up.
        self.wake_pullers(&state);
        Ok(())
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, BackendError> {
        let state = self.lock();
        if state.closed {
            return Err(BackendError::Closed);
        }
        let due = state.scheduled.keys().next().map(|(at, _)| {
            let wait = at.saturating_duration_since(Instant::now());
            Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default()
        });
        Ok(due)
    }

    async fn close(&self) -> Result<(), BackendError> {
        let mut state = self.lock();
        state.closed = true;
        state.queue.clear();
        state.scheduled.clear();
        self.shared.readable.notify_waiters();
        self.shared.writable.notify_waiters();
        Ok(())
    }
}
