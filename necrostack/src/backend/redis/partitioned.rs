//! [`Parts`]: the partitions of a partitioned backend as this worker holds them: one
//! core per partition, one reader task per owned partition, and the read-ahead queues
//! `pull` takes from.
//!
//! Each owned partition has a reader task on a connection of its own (a blocking read on
//! one partition never delays another) that fetches in stream order into the partition's
//! queue; `pull` takes from the queues, in order within each partition, without waiting
//! on anything while it takes, so a dropped `pull` loses nothing (cancel-safe). A
//! delivery read under a lease this worker no longer holds is dropped instead of handed
//! out: the partition's new owner delivers it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::config::RedisConfig;
use super::connection;
use super::core::Core;
use super::counters::Counters;
use super::error::RedisBackendError;
use super::fetch;
use super::receipt::RedisReceipt;
use super::{partition, reply};
use crate::backend::{BackendError, Batch, Delivery};

/// How many entries one read of a partition takes at most.
const LANE_BATCH: usize = 32;
/// How many times a `pull` at its deadline waits (a block time each) for work on its way
/// before it answers empty anyway.
const MAX_SETTLE_ROUNDS: u32 = 10;

type Queue = VecDeque<Delivery<RedisReceipt>>;

/// The partitions of a partitioned backend.
pub(crate) struct Parts {
    lanes: Vec<Arc<Core>>,
    members_key: String,
    queues: Mutex<Vec<Queue>>,
    readers: Mutex<Vec<Option<AbortHandle>>>,
    /// Deliveries were queued (or a reader failed).
    arrived: Notify,
    /// A reader's error that ends the run, reported by the next `pull`.
    failure: Mutex<Option<RedisBackendError>>,
    /// Where the next `pull` starts taking, so that no partition starves.
    next: AtomicUsize,
    /// Whether this worker has joined the group's members (on its first `pull`).
    joined: AtomicBool,
    /// How many deliveries the `pull` waiting now wants (0: none waits). Readers read
    /// only for a waiting `pull`, and no more than it wants, so that entries are not
    /// counted as delivered in Redis long before anyone handles them.
    wanted: AtomicUsize,
    /// A `pull` started waiting (shared with the readers, which must not hold the
    /// backend while they wait).
    want: Arc<Notify>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; recover rather than propagate.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Parts {
    pub(crate) fn new(lanes: Vec<Arc<Core>>, config: &RedisConfig) -> Self {
        let n = lanes.len();
        Parts {
            lanes,
            members_key: partition::members_key(&config.stream_key(), &config.group),
            queues: Mutex::new((0..n).map(|_| Queue::new()).collect()),
            readers: Mutex::new(vec![None; n]),
            arrived: Notify::new(),
            failure: Mutex::new(None),
            next: AtomicUsize::new(0),
            joined: AtomicBool::new(false),
            wanted: AtomicUsize::new(0),
            want: Arc::new(Notify::new()),
        }
    }

    /// The partitions' cores, by index.
    pub(crate) fn lanes(&self) -> &[Arc<Core>] {
        &self.lanes
    }

    pub(crate) fn members_key(&self) -> &str {
        &self.members_key
    }

    /// Marks this worker as a member; `true` the first time. A backend joins on its
    /// first `pull`, not when built: one that only enqueues (a web handler emitting
    /// events) must not be given partitions it would never read.
    pub(crate) fn join(&self) -> bool {
        !self.joined.swap(true, Ordering::SeqCst)
    }

    /// Whether this worker joined the members.
    pub(crate) fn joined(&self) -> bool {
        self.joined.load(Ordering::SeqCst)
    }

    /// Up to `max` deliveries, waiting up to `timeout` for the first.
    pub(crate) async fn pull(
        &self,
        main: &Core,
        max: usize,
        timeout: Duration,
    ) -> Result<Batch<Delivery<RedisReceipt>>, BackendError> {
        let deadline = Instant::now().checked_add(timeout);
        let mut settled_rounds = 0;
        let _wanting = Wanting::new(self, max);
        loop {
            main.check_open()?;
            let arrival = self.arrived.notified();
            tokio::pin!(arrival);
            arrival.as_mut().enable();
            if let Some(error) = lock(&self.failure).take() {
                return Err(error.into());
            }
            let batch = self.take(max);
            if !batch.is_empty() || max == 0 {
                Counters::add(&main.counters.pulled, batch.len() as u64);
                return Ok(batch);
            }
            match deadline {
                Some(deadline) if Instant::now() >= deadline => {
                    if settled_rounds >= MAX_SETTLE_ROUNDS || self.settled(main).await? {
                        return Ok(Batch::new());
                    }
                    // Work is on its way (unread entries, entries to re-read, outbox
                    // entries just forwarded): an empty answer now would make a run
                    // until idle end early. Wait for the readers a little.
                    settled_rounds += 1;
                    let _ = tokio::time::timeout(main.config.block_time, arrival).await;
                }
                Some(deadline) => {
                    let _ = tokio::time::timeout_at(deadline, arrival).await;
                }
                None => arrival.await,
            }
        }
    }

    /// Whether nothing is on its way to this worker's queues: every owned partition's
    /// outbox forwarded, nothing unread and nothing pending that this worker does
    /// not hold. Only asked when a `pull` is about to return empty at its deadline.
    async fn settled(&self, main: &Core) -> Result<bool, RedisBackendError> {
        let mut settled = true;
        for lane_core in &self.lanes {
            let Some(lane) = &lane_core.lane else {
                continue;
            };
            if lane.token().is_none() {
                continue;
            }
            if super::outbox::forward_all(lane_core).await? > 0 {
                settled = false;
            }
            let groups = lane_core
                .command("XINFO", |c| {
                    c.arg("GROUPS").arg(&lane_core.stream);
                })
                .await?;
            let (_, pending, _) =
                reply::group_info(&groups, &main.config.group).unwrap_or((0, 0, None));
            let delivered = reply::last_delivered(&groups, &main.config.group);
            let last = lane_core
                .command("XREVRANGE", |c| {
                    c.arg(&lane_core.stream)
                        .arg("+")
                        .arg("-")
                        .arg("COUNT")
                        .arg(1);
                })
                .await?;
            let last = reply::entries(&last)
                .ok()
                .and_then(|entries| entries.into_iter().next())
                .map(|entry| entry.id);
            // Unread: the stream's last entry is after the group's last delivered one.
            let unread = match (last, delivered) {
                (Some(last), Some(delivered)) => {
                    super::core::cmp_ids(&last, &delivered) == std::cmp::Ordering::Greater
                }
                (Some(_), None) => true,
                (None, _) => false,
            };
            // Scheduled events due (or about to be) are moved into the stream soon: an
            // empty answer now would let a run until idle miss them between its empty
            // pull and its look at the schedule.
            // (A second of slack: the caller looks at the schedule some time after this
            // answer, and the mover must not have emptied it into the stream meanwhile.)
            let soon = chrono::Utc::now().timestamp_millis()
                + i64::try_from(main.config.schedule_interval.as_millis()).unwrap_or(i64::MAX)
                + 1000;
            let due = lane_core
                .command("ZRANGEBYSCORE", |c| {
                    c.arg(&lane.keys.scheduled)
                        .arg("-inf")
                        .arg(soon)
                        .arg("LIMIT")
                        .arg(0)
                        .arg(1);
                })
                .await?;
            let due_soon = reply::items(&due).is_some_and(|items| !items.is_empty());
            // Pending beyond what the caller has in hand: being read into the queue, or
            // to be re-read.
            if unread || due_soon || pending > lane.handed() {
                settled = false;
            }
        }
        Ok(settled)
    }

    /// Wakes every waiting `pull` (on close, so that it ends with `Closed`).
    pub(crate) fn wake(&self) {
        self.arrived.notify_waiters();
    }

    /// Takes up to `max` queued deliveries, partition after partition, in order within
    /// each; drops those read under a lease this worker no longer holds.
    fn take(&self, max: usize) -> Batch<Delivery<RedisReceipt>> {
        let mut out = Batch::new();
        let mut queues = lock(&self.queues);
        let n = queues.len();
        if n == 0 {
            return out;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        for k in 0..n {
            let index = (start + k) % n;
            let lane = self.lanes[index].lane.as_ref();
            let token = lane.and_then(|l| l.token());
            let queue = &mut queues[index];
            while out.len() < max {
                let Some(mut delivery) = queue.pop_front() else {
                    break;
                };
                if delivery.receipt.fence().map(|(_, t)| t) == token {
                    if let Some(lane) = lane {
                        lane.hand_out(1);
                    }
                    delivery.receipt.set_handed(true);
                    out.push(delivery);
                }
            }
        }
        out
    }

    /// Puts released deliveries back at the front of their partitions' queues, in order,
    /// as their next attempt; those of partitions this worker lost are dropped (the new
    /// owner has them).
    pub(crate) fn release(&self, deliveries: Vec<Delivery<RedisReceipt>>) -> usize {
        let mut queues = lock(&self.queues);
        let mut count = 0;
        for mut delivery in deliveries.into_iter().rev() {
            let Some((index, token)) = delivery.receipt.fence() else {
                continue;
            };
            let Some(lane) = self.lanes.get(index as usize) else {
                continue;
            };
            if let Some(lane) = &lane.lane {
                lane.hand_back();
            }
            delivery.receipt.set_handed(false);
            if lane.lane.as_ref().and_then(|l| l.token()) == Some(token) {
                delivery.attempt += 1;
                queues[index as usize].push_front(delivery);
                count += 1;
            }
        }
        drop(queues);
        self.arrived.notify_waiters();
        count
    }

    /// Starts reading partition `index` under lease `token` (after its takeover).
    pub(crate) fn start_reader(&self, main: &Arc<Core>, index: u32, token: u64) {
        let Some(lane) = self.lanes.get(index as usize) else {
            return;
        };
        let task = tokio::spawn(read_lane(Arc::downgrade(main), Arc::clone(lane), token));
        if let Some(old) = lock(&self.readers)[index as usize].replace(task.abort_handle()) {
            old.abort();
        }
    }

    /// Stops reading partition `index` and drops what was read ahead of it (still pending
    /// in Redis, for whoever owns the partition next).
    pub(crate) fn stop_reader(&self, index: u32) {
        if let Some(task) = lock(&self.readers)
            .get_mut(index as usize)
            .and_then(Option::take)
        {
            task.abort();
        }
        let dropped = lock(&self.queues)
            .get_mut(index as usize)
            .map(std::mem::take);
        drop(dropped);
    }

    fn queued(&self, index: usize) -> usize {
        lock(&self.queues).get(index).map_or(0, VecDeque::len)
    }

    /// Queues deliveries of partition `index` read under `token`, unless the lease
    /// changed meanwhile.
    fn push(&self, index: usize, token: u64, batch: Vec<Delivery<RedisReceipt>>) -> bool {
        let current = self.lanes[index].lane.as_ref().and_then(|l| l.token());
        if current != Some(token) {
            return false;
        }
        if !batch.is_empty() {
            lock(&self.queues)[index].extend(batch);
            self.arrived.notify_waiters();
        }
        true
    }

    fn fail(&self, error: RedisBackendError) {
        *lock(&self.failure) = Some(error);
        self.arrived.notify_waiters();
    }
}

/// Announces a waiting `pull` to the readers for as long as it lives (also when the
/// `pull` is dropped).
struct Wanting<'a>(&'a Parts);

impl<'a> Wanting<'a> {
    fn new(parts: &'a Parts, max: usize) -> Self {
        parts.wanted.store(max, Ordering::SeqCst);
        parts.want.notify_waiters();
        Wanting(parts)
    }
}

impl Drop for Wanting<'_> {
    fn drop(&mut self) {
        self.0.wanted.store(0, Ordering::SeqCst);
    }
}

/// A partition's reader: fetches in stream order into the partition's queue while this
/// worker holds lease `token`, waiting while the queue is full.
async fn read_lane(main: Weak<Core>, lane: Arc<Core>, token: u64) {
    let Some(index) = lane.lane.as_ref().map(|l| l.index() as usize) else {
        return;
    };
    let mut backoff = connection::first_backoff();
    loop {
        // Never hold the backend while waiting: dropping every handle must end it.
        let want = {
            let Some(core) = main.upgrade() else {
                return;
            };
            let Some(parts) = &core.parts else {
                return;
            };
            Arc::clone(&parts.want)
        };
        let notified = want.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (wanted, queued, block) = {
            let Some(core) = main.upgrade() else {
                return;
            };
            let Some(parts) = &core.parts else {
                return;
            };
            if core.is_closed() || lane.lane.as_ref().and_then(|l| l.token()) != Some(token) {
                return;
            }
            (
                parts.wanted.load(Ordering::SeqCst),
                parts.queued(index),
                core.config.block_time,
            )
        };
        // Read only for a waiting pull, and only when this partition has nothing queued.
        if wanted == 0 || queued > 0 {
            let _ = tokio::time::timeout(block, notified).await;
            continue;
        }
        match fetch::fetch(Arc::clone(&lane), wanted.min(LANE_BATCH), Some(block)).await {
            Ok(batch) => {
                backoff = connection::first_backoff();
                let Some(core) = main.upgrade() else {
                    return;
                };
                let Some(parts) = &core.parts else {
                    return;
                };
                if !parts.push(index, token, batch) {
                    return;
                }
            }
            Err(error) if error.is_connection() && !lane.gave_up() => {
                tracing::debug!(%error, partition = index, retry_in = ?backoff, "reading a partition failed; retrying");
                tokio::time::sleep(connection::jittered(backoff)).await;
                backoff = connection::next_backoff(backoff);
            }
            Err(error) => {
                tracing::warn!(%error, partition = index, "reading a partition failed");
                if let Some(core) = main.upgrade() {
                    if let Some(parts) = &core.parts {
                        parts.fail(error);
                    }
                }
                return;
            }
        }
    }
}
