//! [`Reader`]: what this consumer has read ahead and the read in progress; `pull` takes
//! from it, fetching more (in a task, so that a dropped `pull` loses nothing) when empty.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::connection;
use super::core::Core;
use super::counters::Counters;
use super::error::RedisBackendError;
use super::fetch;
use super::receipt::RedisReceipt;
use crate::backend::{BackendError, Batch, Delivery};

/// A fetch running in its own task.
type Fetch = JoinHandle<Result<Vec<Delivery<RedisReceipt>>, RedisBackendError>>;

/// Deliveries fetched but not yet handed out, and the fetch in progress.
#[derive(Default)]
pub(crate) struct Reader {
    ready: VecDeque<Delivery<RedisReceipt>>,
    task: Option<Fetch>,
}

impl Reader {
    /// Up to `max` deliveries, waiting up to `timeout` for the first. While Redis is away
    /// it keeps trying until the reconnect timeout (from the first failure) has passed.
    pub(crate) async fn pull(
        &mut self,
        core: &Arc<Core>,
        max: usize,
        timeout: Duration,
    ) -> Result<Batch<Delivery<RedisReceipt>>, BackendError> {
        let deadline = Instant::now().checked_add(timeout);
        let mut backoff = connection::first_backoff();
        loop {
            core.check_open()?;
            if !self.ready.is_empty() || max == 0 {
                let take = max.min(self.ready.len());
                let batch: Batch<_> = self.ready.drain(..take).collect();
                Counters::add(&core.counters.pulled, batch.len() as u64);
                return Ok(batch);
            }
            let block = block_for(core, deadline);
            let task = self.task.get_or_insert_with(|| {
                let task = tokio::spawn(fetch::fetch(Arc::clone(core), max, block));
                core.fetching(task.abort_handle());
                task
            });
            // If this future is dropped here, the task keeps running and its deliveries
            // are picked up by the next pull: nothing taken is lost.
            let joined = task.await;
            self.task = None;
            match joined {
                Ok(Ok(batch)) => self.ready.extend(batch),
                Ok(Err(error)) if error.is_connection() && !core.gave_up() => {
                    tracing::debug!(%error, retry_in = ?backoff, "reading from Redis failed; retrying");
                    tokio::time::sleep(connection::jittered(backoff)).await;
                    backoff = connection::next_backoff(backoff);
                    continue;
                }
                Ok(Err(error)) => return Err(error.into()),
                Err(join) if join.is_cancelled() => return Err(BackendError::Closed),
                Err(join) => {
                    return Err(BackendError::Other(
                        format!("the Redis read task failed: {join}").into(),
                    ))
                }
            }
            if self.ready.is_empty() && block.is_none() {
                return Ok(Batch::new());
            }
        }
    }

    /// Stops the read in progress and drops what was read ahead: their receipts give the
    /// entries up (they stay pending for this consumer, to be handed over or re-read).
    pub(crate) fn drop_held(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.ready.clear();
    }
}

/// How long the next read may block: `None` for a non-blocking read.
fn block_for(core: &Core, deadline: Option<Instant>) -> Option<Duration> {
    let cap = core.config.block_time;
    match deadline {
        None => Some(cap),
        Some(deadline) => {
            let left = deadline.saturating_duration_since(Instant::now());
            (!left.is_zero()).then(|| left.min(cap))
        }
    }
}
