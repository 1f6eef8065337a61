//! The dispatcher loop behind [`Spine::run`] and [`Spine::run_until_idle`].
//!
//! One task pulls batches, keeps up to `concurrency` events in flight (one at a time, in
//! order, by default), holds back an event while another with its ordering key is in
//! flight, and hands each finished handling to [`Backend::complete`]. Stopping gives the
//! pulled-but-unstarted events back to the backend and waits for the ones in flight. An
//! error from the backend (which retries transient failures itself) ends the run at
//! once: nothing new starts, and what was pulled but not completed is left to the
//! backend to deliver again.

use std::collections::{HashSet, VecDeque};
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::dispatch::{EventOutcome, Prepared};
use super::report::Tally;
use super::{RunReport, Spine};
use crate::backend::{Backend, BackendError, Completion, Delivery};
use crate::envelope::AnyEnvelope;
use crate::error::Error;
use crate::telemetry;

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
type Done = (Option<u64>, Result<Tally, BackendError>);

/// What the loop does after a pull.
enum Next {
    /// Go round again.
    Continue,
    /// Nothing is left: the run until idle is over.
    Idle,
}

/// The state of one run: what it counted, what it holds, and whether it is ending.
struct Run<'s, B: Backend> {
    spine: &'s Spine<B>,
    mode: Mode,
    /// The step bound, if this run has one.
    limit: Option<usize>,
    /// Whether Ctrl-C/SIGTERM stop this run.
    signals: bool,
    report: RunReport,
    /// Pulled, counted as steps, not started yet; with each one's ordering key.
    buffer: VecDeque<(Delivery<B::Receipt>, Option<u64>)>,
    /// Ordering keys of the events in flight.
    busy_keys: HashSet<u64>,
    ending: Option<Ending>,
    /// How long the next pull of a run until idle may wait: set when only scheduled
    /// events are left, so that the run waits for them instead of ending.
    idle_wait: Option<Duration>,
}

impl<B: Backend> Spine<B> {
    pub(super) async fn drive(&self, mode: Mode) -> Result<RunReport, Error> {
        let _exclusive = self.inner.run_lock.lock().await;
        let mut run = Run::new(self, mode);
        let handle = |delivery, key| self.handle(delivery, key);
        let mut in_flight = FuturesUnordered::new();
        let mut stop = pin!(stop_requested(self.inner.stop.wait(), run.signals));
        loop {
            run.start_ready(&mut in_flight, handle).await;
            if run.ending.is_some() {
                if run.wind_down(&mut in_flight).await {
                    break;
                }
                continue;
            }
            if run.is_full(in_flight.len()) {
                // Everything buffered waits on in-flight work.
                tokio::select! {
                    biased;
                    _ = &mut stop => run.ending = Some(Ending::Stopped),
                    Some(done) = in_flight.next() => run.absorb(done),
                }
                continue;
            }
            match run.pull(&mut in_flight, stop.as_mut()).await {
                Next::Continue => {}
                Next::Idle => break,
            }
        }
        self.inner.stop.requested.store(false, Ordering::SeqCst);
        run.release_held().await;
        run.finish()
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
                telemetry::unrouted(envelope.event_type());
                Prepared::Done(EventOutcome {
                    counts: Tally {
                        unrouted: 1,
                        ..Tally::default()
                    },
                    ..EventOutcome::default()
                })
            }
        }
    }

    /// Hands what one handling produced to the backend, acknowledging the delivery.
    /// Emitted and scheduled events get the partition key of their type's `order_key`
    /// here, on their way into the backend.
    async fn complete(&self, receipt: B::Receipt, key: Option<u64>, outcome: EventOutcome) -> Done {
        let mut completion = Completion {
            emitted: outcome.emitted,
            scheduled: outcome.scheduled,
            dead_letters: outcome.dead_letters,
        };
        let routes = &self.inner.routes;
        routes.stamp(completion.emitted.iter_mut());
        routes.stamp(
            completion
                .scheduled
                .iter_mut()
                .map(|later| &mut later.envelope),
        );
        let result = self.inner.backend.complete(receipt, completion).await;
        (key, result.map(|()| outcome.counts))
    }
}

impl<'s, B: Backend> Run<'s, B> {
    fn new(spine: &'s Spine<B>, mode: Mode) -> Self {
        let config = &spine.inner.config;
        Run {
            spine,
            mode,
            limit: (mode == Mode::UntilIdle || config.max_steps_explicit)
                .then_some(config.max_steps),
            signals: config.stop_on_signals && mode == Mode::Serve,
            report: RunReport::default(),
            buffer: VecDeque::new(),
            busy_keys: HashSet::new(),
            ending: None,
            idle_wait: None,
        }
    }

    fn concurrency(&self) -> usize {
        self.spine.inner.config.concurrency
    }

    /// Whether buffered events may still start. Events already counted as steps still
    /// run when the step bound is reached; a stop or a backend failure leaves them.
    fn may_start(&self) -> bool {
        matches!(self.ending, None | Some(Ending::MaxSteps(_)))
    }

    /// Whether nothing more should be pulled until a handling finishes.
    fn is_full(&self, in_flight: usize) -> bool {
        let concurrency = self.concurrency();
        !self.buffer.is_empty() && (in_flight >= concurrency || self.buffer.len() >= concurrency)
    }

    /// The next buffered event that may start: in order, skipping events whose ordering
    /// key is busy.
    fn next_startable(&mut self) -> Option<(Delivery<B::Receipt>, Option<u64>)> {
        let next = if self.busy_keys.is_empty() {
            self.buffer.pop_front()
        } else {
            let busy = &self.busy_keys;
            let index = self
                .buffer
                .iter()
                .position(|(_, key)| key.is_none_or(|k| !busy.contains(&k)))?;
            self.buffer.remove(index)
        };
        if let Some((_, Some(key))) = &next {
            self.busy_keys.insert(*key);
        }
        next
    }

    /// Starts what may start. At concurrency 1 the event runs right here, without the
    /// `FuturesUnordered` machinery nor a boxed future (when its organs are sync, `route`
    /// has finished the work when it returns). Whether it may start is checked before
    /// every event, so that a failure of the backend stops the batch at once.
    /// `handle` is [`Spine::handle`], passed in so that `in_flight` can hold its futures.
    async fn start_ready<F: Future<Output = Done>>(
        &mut self,
        in_flight: &mut FuturesUnordered<F>,
        handle: impl Fn(Delivery<B::Receipt>, Option<u64>) -> F,
    ) {
        while self.may_start() && in_flight.len() < self.concurrency() {
            let Some((delivery, key)) = self.next_startable() else {
                break;
            };
            let handling = handle(delivery, key);
            if self.concurrency() == 1 {
                let done = handling.await;
                self.absorb(done);
            } else {
                in_flight.push(handling);
            }
        }
    }

    /// One step of winding down: gives back (or, after a backend failure, leaves) what
    /// did not start, and waits for one handling in flight. `true` when all is done.
    async fn wind_down<F: Future<Output = Done>>(
        &mut self,
        in_flight: &mut FuturesUnordered<F>,
    ) -> bool {
        if !self.may_start() && !self.buffer.is_empty() {
            let unstarted: Vec<_> = self
                .buffer
                .drain(..)
                .map(|(delivery, _)| delivery)
                .collect();
            telemetry::in_flight(-(unstarted.len() as f64));
            self.busy_keys.clear();
            self.give_back(unstarted).await;
        }
        match in_flight.next().await {
            Some(done) => {
                self.absorb(done);
                false
            }
            None => self.buffer.is_empty(),
        }
    }

    /// Hands deliveries that will not be handled in this run back to the backend. After
    /// the backend failed there is no one to hand them to: they are dropped, which leaves
    /// them with the backend to be delivered again (a Redis entry stays pending for this
    /// consumer and is taken over, or re-read on restart).
    async fn give_back(&mut self, deliveries: Vec<Delivery<B::Receipt>>) {
        if let Some(Ending::Failed(_)) = self.ending {
            tracing::warn!(
                count = deliveries.len(),
                "the backend failed: events pulled but not started are left to be delivered again"
            );
            return;
        }
        if let Err(error) = self.spine.inner.backend.release(deliveries).await {
            tracing::error!(%error, "could not give unstarted events back to the backend; they will be redelivered if the backend supports it");
        }
    }

    /// Pulls the next batch (or waits for a handling, or a stop, whichever comes first).
    async fn pull<F: Future<Output = Done>>(
        &mut self,
        in_flight: &mut FuturesUnordered<F>,
        mut stop: Pin<&mut impl Future<Output = ()>>,
    ) -> Next {
        let inner = &*self.spine.inner;
        let config = &inner.config;
        let max = match self.limit {
            Some(limit) => config
                .batch_size
                .min(limit.saturating_sub(self.report.steps).saturating_add(1)),
            None => config.batch_size,
        };
        let idle_here = in_flight.is_empty() && self.buffer.is_empty();
        // A run until idle never waits in a pull while work is in flight: new events can
        // only come from the handlings in flight (or other producers), and a blocking
        // read left running beside them would delay noticing that everything is done. It
        // waits only when nothing but scheduled events is left.
        let timeout = match self.mode {
            Mode::UntilIdle => self
                .idle_wait
                .take()
                .filter(|_| idle_here)
                .unwrap_or(Duration::ZERO),
            Mode::Serve => config.poll_interval,
        };
        let mut pull = pin!(inner.backend.pull(max, timeout));
        let mut ready = None;
        if !self.signals && in_flight.is_empty() {
            // The fast path when events keep coming: without signals, `stop` is ready
            // exactly when the flag is set, so check the flag and try the pull once
            // before paying for the select (which still waits when the pull must).
            if inner.stop.requested.load(Ordering::SeqCst) {
                self.ending = Some(Ending::Stopped);
                return Next::Continue;
            }
            if let Poll::Ready(pulled) = poll_fn(|cx| Poll::Ready(pull.as_mut().poll(cx))).await {
                ready = Some(pulled);
            }
        }
        let pulled = match ready {
            Some(pulled) => pulled,
            None => tokio::select! {
                biased;
                _ = &mut stop => {
                    self.ending = Some(Ending::Stopped);
                    return Next::Continue;
                }
                Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                    self.absorb(done);
                    return Next::Continue;
                }
                pulled = &mut pull => pulled,
            },
        };
        match pulled {
            Ok(batch) if batch.is_empty() && self.mode == Mode::UntilIdle => {
                if idle_here {
                    return self.after_empty_pull().await;
                }
                // Nothing new yet: wait for a handling in flight, which may emit.
                tokio::select! {
                    biased;
                    _ = &mut stop => self.ending = Some(Ending::Stopped),
                    Some(done) = in_flight.next() => self.absorb(done),
                }
            }
            Ok(batch) => self.take_batch(batch).await,
            Err(error) => {
                tracing::error!(%error, "pulling from the backend failed; the run ends");
                self.fail(error);
            }
        }
        Next::Continue
    }

    /// A run until idle found nothing ready and nothing in flight: it is over, unless
    /// scheduled events (retries, delayed emits) are still to come; then it waits for
    /// the next one.
    async fn after_empty_pull(&mut self) -> Next {
        let backend = &self.spine.inner.backend;
        match backend.next_due().await {
            Ok(None) => Next::Idle,
            Ok(Some(due)) => {
                let wait = (due - chrono::Utc::now()).to_std().unwrap_or_default();
                let cap = self.spine.inner.config.poll_interval;
                self.idle_wait = Some(wait.clamp(Duration::from_millis(1), cap));
                Next::Continue
            }
            Err(error) => {
                self.fail(error);
                Next::Continue
            }
        }
    }

    /// Counts a pulled batch as steps and buffers it; what is past the step bound goes
    /// back to the backend and ends the run.
    async fn take_batch(&mut self, batch: crate::backend::Batch<Delivery<B::Receipt>>) {
        let inner = &*self.spine.inner;
        let buffered_before = self.buffer.len();
        let mut over = Vec::new();
        for delivery in batch {
            if self.limit.is_some_and(|limit| self.report.steps >= limit) || !over.is_empty() {
                over.push(delivery);
                continue;
            }
            self.report.steps += 1;
            let key = inner.routes.key(&delivery.envelope);
            self.buffer.push_back((delivery, key));
        }
        let taken = self.buffer.len() - buffered_before;
        telemetry::pulled(taken);
        telemetry::in_flight(taken as f64);
        if !over.is_empty() {
            if let Err(error) = inner.backend.release(over).await {
                tracing::error!(%error, "could not give events past max_steps back to the backend");
            }
            self.ending = Some(Ending::MaxSteps(self.limit.unwrap_or_default()));
        }
    }

    /// Folds a finished handling into the report.
    fn absorb(&mut self, (key, result): Done) {
        telemetry::in_flight(-1.0);
        if let Some(key) = key {
            self.busy_keys.remove(&key);
        }
        match result {
            Ok(counts) => self.report.add(counts),
            Err(error) => {
                tracing::error!(%error, "could not complete an event with the backend; the run ends, and the event will be delivered again");
                self.fail(error);
            }
        }
    }

    /// The backend gave up (see the `Backend` contract): the run ends with its error.
    /// The first error is kept: it names the cause.
    fn fail(&mut self, error: BackendError) {
        if !matches!(self.ending, Some(Ending::Failed(_))) {
            self.ending = Some(Ending::Failed(error));
        }
    }

    /// At the end of a run that did not fail, lets the backend give back what it still
    /// holds (see [`Backend::release_held`]), so a worker that stops (and maybe never
    /// comes back under the same name) leaves nothing waiting for a takeover timeout.
    async fn release_held(&self) {
        if matches!(self.ending, Some(Ending::Failed(_))) {
            return;
        }
        match self.spine.inner.backend.release_held().await {
            Ok(()) | Err(BackendError::Closed) => {}
            Err(error) => {
                tracing::warn!(%error, "could not give back what the backend holds for this worker; it is taken over after the claim timeout")
            }
        }
    }

    fn finish(self) -> Result<RunReport, Error> {
        match self.ending {
            None | Some(Ending::Stopped) => Ok(self.report),
            Some(Ending::MaxSteps(max_steps)) => Err(Error::MaxStepsExceeded { max_steps }),
            Some(Ending::Failed(error)) => Err(error.into()),
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
