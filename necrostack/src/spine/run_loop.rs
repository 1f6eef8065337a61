//! The dispatcher loop behind [`Spine::run`] and [`Spine::run_until_idle`].
//!
//! One task pulls batches, keeps up to `concurrency` events in flight (one at a time, in
//! order, by default), holds back an event while another with its ordering key is in
//! flight, and hands each finished handling to [`Backend::complete`]. Stopping gives the
//! pulled-but-unstarted events back to the backend and waits for the ones in flight.

use std::collections::{HashSet, VecDeque};
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::dispatch::{EventOutcome, Prepared};
use super::{RunReport, Spine};
use crate::backend::{Backend, BackendError, Completion, Delivery};
use crate::envelope::AnyEnvelope;
use crate::error::Error;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Return when there is nothing left to do.
    UntilIdle,
    /// Serve until stopped.
    Serve,
}

/// Why the loop is winding down.
enum Ending {
    Stopped,
    MaxSteps(usize),
    Failed(BackendError),
}

/// A finished handling: its ordering key and what it counted, or the backend's error.
type Done = (Option<u64>, Result<RunReport, BackendError>);

/// The longest a serving spine waits before pulling again after a backend error.
const MAX_PULL_BACKOFF: Duration = Duration::from_secs(5);

impl<B: Backend> Spine<B> {
    pub(super) async fn drive(&self, mode: Mode) -> Result<RunReport, Error> {
        let inner = &*self.inner;
        let _exclusive = inner.run_lock.lock().await;
        let config = &inner.config;
        let limit =
            (mode == Mode::UntilIdle || config.max_steps_explicit).then_some(config.max_steps);
        let signals = config.stop_on_signals && mode == Mode::Serve;

        let mut report = RunReport::default();
        let mut buffer: VecDeque<(Delivery<B::Receipt>, Option<u64>)> = VecDeque::new();
        let mut in_flight = FuturesUnordered::new();
        let mut busy_keys: HashSet<u64> = HashSet::new();
        let mut ending: Option<Ending> = None;
        let mut pull_errors: u32 = 0;
        let mut stop = pin!(stop_requested(inner.stop.wait(), signals));

        loop {
            // Start what may start: in order, skipping events whose key is busy.
            // Events already counted as steps still run when the step bound is reached;
            // a stop or a backend failure gives them back instead.
            let may_start = matches!(ending, None | Some(Ending::MaxSteps(_)));
            while may_start && in_flight.len() < config.concurrency {
                let next = if busy_keys.is_empty() {
                    // No key is held: the first buffered event may start.
                    buffer.pop_front()
                } else {
                    buffer
                        .iter()
                        .position(|(_, key)| key.is_none_or(|k| !busy_keys.contains(&k)))
                        .and_then(|index| buffer.remove(index))
                };
                let Some((delivery, key)) = next else {
                    break;
                };
                if let Some(key) = key {
                    busy_keys.insert(key);
                }
                if config.concurrency == 1 {
                    // Nothing else can be in flight: run it right here, without the
                    // FuturesUnordered machinery nor a boxed future per event (when its
                    // organs are sync, `route` has finished the work when it returns).
                    let done = self.handle(delivery, key).await;
                    absorb(done, mode, &mut report, &mut busy_keys, &mut ending);
                } else {
                    in_flight.push(self.handle(delivery, key));
                }
            }

            if ending.is_some() {
                if !may_start && !buffer.is_empty() {
                    let unstarted: Vec<_> =
                        buffer.drain(..).map(|(delivery, _)| delivery).collect();
                    if let Err(error) = inner.backend.release(unstarted).await {
                        tracing::error!(%error, "could not give unstarted events back to the backend; they will be redelivered if the backend supports it");
                    }
                }
                match in_flight.next().await {
                    Some(done) => absorb(done, mode, &mut report, &mut busy_keys, &mut ending),
                    None if buffer.is_empty() => break,
                    None => {}
                }
                continue;
            }

            let room = in_flight.len() < config.concurrency && buffer.len() < config.concurrency;
            if !buffer.is_empty() && !room {
                // Everything buffered waits on in-flight work.
                tokio::select! {
                    biased;
                    _ = &mut stop => ending = Some(Ending::Stopped),
                    Some(done) = in_flight.next() => absorb(done, mode, &mut report, &mut busy_keys, &mut ending),
                }
                continue;
            }

            let max = match limit {
                Some(limit) => config
                    .batch_size
                    .min(limit.saturating_sub(report.steps).saturating_add(1)),
                None => config.batch_size,
            };
            let idle_here = in_flight.is_empty() && buffer.is_empty();
            // A run until idle never waits in a pull: new events can only come from the
            // handlings in flight (or other producers), and a blocking read left running
            // beside them would delay noticing that everything is done.
            let timeout = if mode == Mode::UntilIdle {
                Duration::ZERO
            } else {
                config.poll_interval
            };
            let mut pull = pin!(inner.backend.pull(max, timeout));
            let mut ready = None;
            if !signals && in_flight.is_empty() {
                // The fast path when events keep coming: without signals, `stop` is ready
                // exactly when the flag is set, so check the flag and try the pull once
                // before paying for the select (which still waits when the pull must).
                if inner.stop.requested.load(Ordering::SeqCst) {
                    ending = Some(Ending::Stopped);
                    continue;
                }
                if let Poll::Ready(pulled) = poll_fn(|cx| Poll::Ready(pull.as_mut().poll(cx))).await
                {
                    ready = Some(pulled);
                }
            }
            let pulled = match ready {
                Some(pulled) => pulled,
                None => tokio::select! {
                    biased;
                    _ = &mut stop => {
                        ending = Some(Ending::Stopped);
                        continue;
                    }
                    Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                        absorb(done, mode, &mut report, &mut busy_keys, &mut ending);
                        continue;
                    }
                    pulled = &mut pull => pulled,
                },
            };

            match pulled {
                Ok(batch) => {
                    pull_errors = 0;
                    if batch.is_empty() && mode == Mode::UntilIdle {
                        if idle_here {
                            break;
                        }
                        // Nothing new yet: wait for a handling in flight, which may emit.
                        tokio::select! {
                            biased;
                            _ = &mut stop => ending = Some(Ending::Stopped),
                            Some(done) = in_flight.next() => absorb(done, mode, &mut report, &mut busy_keys, &mut ending),
                        }
                        continue;
                    }
                    let mut over = Vec::new();
                    for delivery in batch {
                        if limit.is_some_and(|limit| report.steps >= limit) || !over.is_empty() {
                            over.push(delivery);
                            continue;
                        }
                        report.steps += 1;
                        let key = inner.routes.key(&delivery.envelope);
                        buffer.push_back((delivery, key));
                    }
                    if !over.is_empty() {
                        if let Err(error) = inner.backend.release(over).await {
                            tracing::error!(%error, "could not give events past max_steps back to the backend");
                        }
                        ending = Some(Ending::MaxSteps(limit.unwrap_or_default()));
                    }
                }
                Err(error) => {
                    let fatal = mode == Mode::UntilIdle || matches!(error, BackendError::Closed);
                    if fatal {
                        ending = Some(Ending::Failed(error));
                        continue;
                    }
                    pull_errors = pull_errors.saturating_add(1);
                    let delay = Duration::from_millis(100)
                        .saturating_mul(1 << pull_errors.min(6))
                        .min(MAX_PULL_BACKOFF);
                    tracing::error!(%error, retry_in = ?delay, "pulling from the backend failed");
                    tokio::select! {
                        _ = &mut stop => ending = Some(Ending::Stopped),
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }

        inner.stop.requested.store(false, Ordering::SeqCst);
        match ending {
            None | Some(Ending::Stopped) => Ok(report),
            Some(Ending::MaxSteps(max_steps)) => Err(Error::MaxStepsExceeded { max_steps }),
            Some(Ending::Failed(error)) => Err(error.into()),
        }
    }

    /// Runs the organs for one delivery and completes it with the backend.
    async fn handle(&self, delivery: Delivery<B::Receipt>, key: Option<u64>) -> Done {
        let Delivery {
            envelope, receipt, ..
        } = delivery;
        let mut held = None;
        let outcome = match self.route(envelope, &mut held) {
            Prepared::Done(outcome) => outcome,
            Prepared::Pending(work) => work.await,
        };
        self.complete(receipt, key, outcome).await
    }

    /// Runs the organs listening to `envelope`, or returns the work left when one must be
    /// awaited. `held` is where the decoded event stays while organs borrow it.
    fn route<'a>(
        &'a self,
        envelope: AnyEnvelope,
        held: &'a mut Option<AnyEnvelope>,
    ) -> Prepared<'a> {
        let inner = &*self.inner;
        match inner.routes.get(envelope.event_type()) {
            Some(route) if !route.is_empty() => route.prepare(envelope, held, &inner.dispatch),
            _ => {
                tracing::debug!(
                    event_id = %envelope.id(),
                    event_type = %envelope.event_type(),
                    "no organ listens to this event type; acknowledged"
                );
                Prepared::Done(EventOutcome {
                    counts: RunReport {
                        unrouted: 1,
                        ..RunReport::default()
                    },
                    ..EventOutcome::default()
                })
            }
        }
    }

    /// Hands what one handling produced to the backend, acknowledging the delivery.
    async fn complete(&self, receipt: B::Receipt, key: Option<u64>, outcome: EventOutcome) -> Done {
        let completion = Completion {
            emitted: outcome.emitted,
            dead_letters: outcome.dead_letters,
        };
        let result = self.inner.backend.complete(receipt, completion).await;
        (key, result.map(|()| outcome.counts))
    }
}

/// Folds a finished handling into the report.
fn absorb(
    (key, result): Done,
    mode: Mode,
    report: &mut RunReport,
    busy_keys: &mut HashSet<u64>,
    ending: &mut Option<Ending>,
) {
    if let Some(key) = key {
        busy_keys.remove(&key);
    }
    match result {
        Ok(counts) => report.add(&counts),
        Err(error) => {
            tracing::error!(%error, "could not complete an event with the backend; it will be delivered again if the backend keeps it");
            if (mode == Mode::UntilIdle || matches!(error, BackendError::Closed))
                && ending.is_none()
            {
                *ending = Some(Ending::Failed(error));
            }
        }
    }
}

/// Resolves when a stop is requested, or on Ctrl-C/SIGTERM when `signals` is set.
async fn stop_requested(requested: impl Future<Output = ()>, signals: bool) {
    if !signals {
        return requested.await;
    }
    tokio::select! {
        () = requested => {}
        () = termination_signal() => tracing::info!("termination signal received; draining"),
    }
}

async fn termination_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    result = tokio::signal::ctrl_c() => if result.is_err() { std::future::pending::<()>().await },
                    _ = terminate.recv() => {}
                }
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the spine")
            }
        }
    }
    if let Err(error) = tokio::signal::ctrl_c().await {
        tracing::warn!(%error, "cannot listen for Ctrl-C; only a stop handle stops the spine");
        std::future::pending::<()>().await;
    }
}
