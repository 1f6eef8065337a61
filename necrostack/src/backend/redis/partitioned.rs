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
use std::sync::atomic::{AtomicUsize, Ordering};
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
use super::partition;
use super::receipt::RedisReceipt;
use crate::backend::{BackendError, Batch, Delivery};

/// How many entries one read of a partition takes at most.
const LANE_BATCH: usize = 32;
/// How many deliveries a partition's queue holds before its reader waits for `pull`.
const READ_AHEAD: usize = 64;

type Queue = VecDeque<Delivery<RedisReceipt>>;

/// The partitions of a partitioned backend.
pub(crate) struct Parts {
    lanes: Vec<Arc<Core>>,
    members_key: String,
    queues: Mutex<Vec<Queue>>,
    readers: Mutex<Vec<Option<AbortHandle>>>,
    /// Deliveries were queued (or a reader failed).
    arrived: Notify,
    /// `pull` took deliveries: readers waiting for room may read again.
    room: Notify,
    /// A reader's error that ends the run, reported by the next `pull`.
    failure: Mutex<Option<RedisBackendError>>,
    /// Where the next `pull` starts taking, so that no partition starves.
    next: AtomicUsize,
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
            room: Notify::new(),
            failure: Mutex::new(None),
            next: AtomicUsize::new(0),
        }
    }

    /// The partitions' cores, by index.
    pub(crate) fn lanes(&self) -> &[Arc<Core>] {
        &self.lanes
    }

    pub(crate) fn members_key(&self) -> &str {
        &self.members_key
    }

    /// Up to `max` deliveries, waiting up to `timeout` for the first.
    pub(crate) async fn pull(
        &self,
        main: &Core,
        max: usize,
        timeout: Duration,
    ) -> Result<Batch<Delivery<RedisReceipt>>, BackendError> {
        let deadline = Instant::now().checked_add(timeout);
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
                self.room.notify_waiters();
                return Ok(batch);
            }
            match deadline {
                Some(deadline) if Instant::now() >= deadline => return Ok(Batch::new()),
                Some(deadline) => {
                    let _ = tokio::time::timeout_at(deadline, arrival).await;
                }
                None => arrival.await,
            }
        }
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
            let token = self.lanes[index].lane.as_ref().and_then(|l| l.token());
            let queue = &mut queues[index];
            while out.len() < max {
                let Some(delivery) = queue.pop_front() else {
                    break;
                };
                if delivery.receipt.fence().map(|(_, t)| t) == token {
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

/// A partition's reader: fetches in stream order into the partition's queue while this
/// worker holds lease `token`, waiting while the queue is full.
async fn read_lane(main: Weak<Core>, lane: Arc<Core>, token: u64) {
    let Some(index) = lane.lane.as_ref().map(|l| l.index() as usize) else {
        return;
    };
    let mut backoff = connection::first_backoff();
    loop {
        let Some(core) = main.upgrade() else {
            return;
        };
        let Some(parts) = &core.parts else {
            return;
        };
        if core.is_closed() || lane.lane.as_ref().and_then(|l| l.token()) != Some(token) {
            return;
        }
        if parts.queued(index) >= READ_AHEAD {
            let room = parts.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if parts.queued(index) >= READ_AHEAD {
                let _ = tokio::time::timeout(core.config.block_time, room).await;
                continue;
            }
        }
        let block = Some(core.config.block_time);
        drop(core);
        match fetch::fetch(Arc::clone(&lane), LANE_BATCH, block).await {
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
