//! [`InMemoryBackend`]: a FIFO queue inside the process, which hands out one event per
//! partition key at a time.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
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
/// Cloning gives another handle to the same queue, e.g. to inspect it while a spine runs,
/// or to run several spines on it. Events with a [partition
/// key](crate::Envelope::partition_key) keep their order across all of them: an event is
/// not handed out while another with its key is held by a consumer (pulled, and neither
/// completed nor released; dropping the [`MemoryReceipt`] counts as completing), it keeps
/// its place in the queue and goes out once that one is done. Unkeyed events are never
/// held back, and when no keys are in use this costs nothing.
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
    /// Events in order (of `seq`), except those parked in `keys`.
    queue: VecDeque<Waiting>,
    /// The place the next event added at the end of the queue gets.
    next_back: i64,
    /// The place the last event given back got, at the front (below every other).
    last_front: i64,
    /// The partition keys held by consumers and the events waiting for them.
    keys: Keys,
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

/// An event in the queue.
struct Waiting {
    envelope: AnyEnvelope,
    /// How many times it was delivered before.
    delivered: u32,
    /// Its place in the queue: an event let out after waiting for its key goes back
    /// there. Added at the end, an event gets a place after all others; given back, one
    /// before all others.
    seq: i64,
}

/// Puts `waiting` back at its place in `queue` (which is in order of `seq`). It is older
/// than most of the queue, so the place is near the front.
fn reinsert(queue: &mut VecDeque<Waiting>, waiting: Waiting) {
    let at = queue.partition_point(|other| other.seq < waiting.seq);
    queue.insert(at, waiting);
}

/// The partition keys in use: which are held by a consumer, and the events that wait
/// for one to be free, in order.
///
/// An event whose key is held is moved from the queue to `parked` when a pull comes to
/// it, so a pull never looks at it twice; when its key is done, the oldest one parked
/// goes back to its place in the queue, and the others stay parked behind it. So each
/// event is parked and let out at most once per delivery, whatever the number of keys
/// and consumers, and the queue hands out, in order, the oldest event of each free key.
#[derive(Default)]
struct Keys {
    held: HashSet<u64>,
    parked: HashMap<u64, VecDeque<Waiting>>,
    parked_len: usize,
}

impl Keys {
    /// Whether the event `seq` with `key` may be handed out now: its key is free and no
    /// older event with it is waiting.
    fn may_go(&self, key: u64, seq: i64) -> bool {
        !self.held.contains(&key)
            && self
                .parked
                .get(&key)
                .and_then(VecDeque::front)
                .is_none_or(|older| older.seq > seq)
    }

    /// Keeps `waiting` until `key` is free, in order with the events already parked there.
    fn park(&mut self, key: u64, waiting: Waiting) {
        reinsert(self.parked.entry(key).or_default(), waiting);
        self.parked_len += 1;
    }

    /// The delivery holding `key` is done: the oldest event parked under it goes back to
    /// its place in `queue`.
    fn done(&mut self, key: u64, queue: &mut VecDeque<Waiting>) {
        self.held.remove(&key);
        if let Entry::Occupied(mut parked) = self.parked.entry(key) {
            if let Some(oldest) = parked.get_mut().pop_front() {
                self.parked_len -= 1;
                reinsert(queue, oldest);
            }
            if parked.get().is_empty() {
                parked.remove();
            }
        }
    }

    fn clear(&mut self) {
        *self = Keys::default();
    }
}

/// What [`InMemoryBackend`] needs to acknowledge a delivery: the partition key it holds,
/// if it has one.
///
/// Dropping it without [`complete`](Backend::complete) or [`release`](Backend::release)
/// frees the key as completing does (the event itself is gone: nothing in memory outlives
/// its holder), so that a lost delivery never blocks its key. `MemoryReceipt::default()`
/// holds no key: completing with it stores the completion's output and acknowledges
/// nothing, like completing an unkeyed delivery.
#[derive(Debug, Default)]
pub struct MemoryReceipt {
    hold: Option<KeyHold>,
}

impl MemoryReceipt {
    /// Takes the key out, so that dropping the receipt no longer frees it: the caller
    /// does, under the lock it holds anyway.
    fn disarm(mut self) -> Disarmed {
        let hold = self.hold.take()?;
        hold.disarm()
    }
}

/// A key taken out of a receipt (see [`MemoryReceipt::disarm`]): the key and the backend
/// it is held in, if the receipt held one.
type Disarmed = Option<(u64, Arc<Shared>)>;

/// A partition key held by a delivery; frees it when dropped.
struct KeyHold {
    key: u64,
    /// The backend the key is held in; `None` once disarmed.
    shared: Option<Arc<Shared>>,
}

impl KeyHold {
    fn disarm(mut self) -> Disarmed {
        Some((self.key, self.shared.take()?))
    }
}

impl Drop for KeyHold {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            let backend = InMemoryBackend { shared };
            let mut state = backend.lock();
            let State { keys, queue, .. } = &mut *state;
            keys.done(self.key, queue);
            backend.wake_pullers(&state);
        }
    }
}

impl std::fmt::Debug for KeyHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyHold").field("key", &self.key).finish()
    }
}

impl std::fmt::Debug for InMemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("InMemoryBackend")
            .field("pending", &state.waiting())
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

    /// How many events are waiting (due ones, including those waiting for their
    /// partition key; see [`scheduled_len`](Self::scheduled_len) for those that are not
    /// due yet).
    pub fn len(&self) -> usize {
        self.lock().waiting()
    }

    /// Whether no events are waiting (scheduled ones not counted).
    pub fn is_empty(&self) -> bool {
        self.lock().waiting() == 0
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

    /// Takes up to `max` waiting events, in order, skipping (and parking) those whose
    /// partition key is held, and wakes producers waiting for room.
    fn take(&self, state: &mut State, max: usize) -> Batch<Delivery<MemoryReceipt>> {
        // One allocation for a batch of many (a batch of one needs none).
        let expected = max.min(state.queue.len());
        let mut many = (expected > 1).then(|| Vec::with_capacity(expected));
        let mut one = Batch::new();
        let mut taken = 0;
        while taken < max {
            let Some(waiting) = state.queue.pop_front() else {
                break;
            };
            let hold = match waiting.envelope.partition_key() {
                None => None,
                Some(key) if state.keys.may_go(key, waiting.seq) => {
                    state.keys.held.insert(key);
                    Some(KeyHold {
                        key,
                        shared: Some(Arc::clone(&self.shared)),
                    })
                }
                Some(key) => {
                    state.keys.park(key, waiting);
                    continue;
                }
            };
            let delivery = Delivery {
                envelope: waiting.envelope,
                receipt: MemoryReceipt { hold },
                attempt: waiting.delivered + 1,
            };
            match &mut many {
                Some(many) => many.push(delivery),
                None => one.push(delivery),
            }
            taken += 1;
        }
        if taken > 0 && state.sleeping_producers > 0 {
            self.shared.writable.notify_waiters();
        }
        many.map_or(one, Batch::from)
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
            state.push_back(envelope);
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

    /// Frees the key a finished delivery held (see [`MemoryReceipt`]) in this backend's
    /// state. A receipt of another backend comes back as a hold to drop once this
    /// backend's lock is released (dropping it locks the other backend).
    fn finish_hold(&self, state: &mut State, hold: Disarmed) -> Option<KeyHold> {
        let (key, shared) = hold?;
        if Arc::ptr_eq(&shared, &self.shared) {
            state.keys.done(key, &mut state.queue);
            return None;
        }
        Some(KeyHold {
            key,
            shared: Some(shared),
        })
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

impl State {
    /// Events waiting: in the queue, and parked behind their key.
    fn waiting(&self) -> usize {
        self.queue.len() + self.keys.parked_len
    }

    /// Adds a new event at the end of the queue.
    fn push_back(&mut self, envelope: AnyEnvelope) {
        let seq = self.next_back;
        self.next_back += 1;
        self.queue.push_back(Waiting {
            envelope,
            delivered: 0,
            seq,
        });
    }

    /// Puts a delivery given back at the front of the queue. If it holds a key, it is
    /// the oldest event with that key: its place before all others keeps their order.
    fn push_front(&mut self, envelope: AnyEnvelope, delivered: u32) {
        self.last_front -= 1;
        self.queue.push_front(Waiting {
            envelope,
            delivered,
            seq: self.last_front,
        });
    }
}

impl Backend for InMemoryBackend {
    type Receipt = MemoryReceipt;

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
                        let waiting = state.waiting();
                        waiting == 0 || waiting + events.len() <= capacity
                    }
                };
                if fits {
                    for envelope in events {
                        state.push_back(envelope);
                    }
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
    ) -> Result<Batch<Delivery<MemoryReceipt>>, BackendError> {
        // Fast path, the common case under load: events are waiting. No registration
        // with `readable` and no clock reading.
        {
            let mut state = self.lock();
            if state.closed {
                return Err(BackendError::Closed);
            }
            Self::promote_due(&mut state);
            let batch = self.take(&mut state, max);
            if !batch.is_empty() || timeout.is_zero() {
                return Ok(batch);
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
                // Events whose key is held stay parked: the consumer finishing with the
                // key wakes this pull up.
                let batch = self.take(&mut state, max);
                if !batch.is_empty() {
                    return Ok(batch);
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

    async fn complete(
        &self,
        receipt: MemoryReceipt,
        completion: Completion,
    ) -> Result<(), BackendError> {
        // Taken out before locking: a receipt dropped under the lock would lock again.
        let hold = receipt.disarm();
        let mut state = self.lock();
        if state.closed {
            return Err(BackendError::Closed);
        }
        for envelope in completion.emitted {
            state.push_back(envelope);
        }
        Self::add_scheduled(&mut state, completion.scheduled);
        state.dead_letters.extend(completion.dead_letters);
        let foreign = self.finish_hold(&mut state, hold);
        self.wake_pullers(&state);
        drop(state);
        drop(foreign);
        Ok(())
    }

    async fn release(&self, deliveries: Vec<Delivery<MemoryReceipt>>) -> Result<(), BackendError> {
        let given_back: Vec<(AnyEnvelope, u32, Disarmed)> = deliveries
            .into_iter()
            .map(|delivery| {
                let hold = delivery.receipt.disarm();
                (delivery.envelope, delivery.attempt, hold)
            })
            .collect();
        let mut state = self.lock();
        if state.closed {
            return Err(BackendError::Closed);
        }
        let mut other_backends = Vec::new();
        // First in the queue, in the order pulled.
        for (envelope, delivered, hold) in given_back.into_iter().rev() {
            state.push_front(envelope, delivered);
            match hold {
                // Free, with nothing let out: the delivery given back is the oldest.
                Some((key, shared)) if Arc::ptr_eq(&shared, &self.shared) => {
                    state.keys.held.remove(&key);
                }
                Some((key, shared)) => other_backends.push(KeyHold {
                    key,
                    shared: Some(shared),
                }),
                None => {}
            }
        }
        self.wake_pullers(&state);
        drop(state);
        drop(other_backends);
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
        state.keys.clear();
        state.scheduled.clear();
        self.shared.readable.notify_waiters();
        self.shared.writable.notify_waiters();
        Ok(())
    }
}
