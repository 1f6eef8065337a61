//! The [`Spine`]: the dispatcher loop that pulls events from a backend, routes each one
//! to the organs listening to it, and enqueues what they emit.

mod builder;
mod dispatch;
mod emit;
mod report;
mod routing;
mod run_loop;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

/// Re-exported from [`crate::error`], where every error type lives.
pub use crate::error::BuildError;
pub use crate::policy::{Failure, FailureKind, FailurePolicy, RetryPolicy};
#[doc(hidden)]
pub use builder::NotYetABackend;
pub use builder::{DepthLimit, IntoBackend, SpineBuilder, DEFAULT_DEPTH_LIMIT, DEFAULT_MAX_STEPS};
pub use emit::{Emitting, RootEvent, RootEvents};
pub use report::RunReport;

pub(crate) use dispatch::due_after;

use crate::backend::memory::InMemoryBackend;
use crate::backend::Backend;
use crate::error::Error;
use crate::topology::Topology;
use dispatch::Dispatch;
use routing::RouteTable;

/// The dispatcher: organs, a routing table built once, and a backend.
///
/// Build one with [`Spine::builder`]. Cloning is cheap and gives another handle to the
/// same spine, e.g. to [`emit`](Spine::emit) from other tasks while one task
/// [`run`](Spine::run)s it.
///
/// ```
/// use necrostack::{organ, Event, Spine};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct Tick { n: u32 }
///
/// #[organ(listens_to = Tick)]
/// fn count_down(tick: &Tick) -> Option<Tick> {
///     (tick.n > 0).then(|| Tick { n: tick.n - 1 })
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), necrostack::Error> {
/// let spine = Spine::builder().organ(count_down).build()?;
/// spine.emit(Tick { n: 3 }).await?;
/// let report = spine.run_until_idle().await?;
/// assert_eq!((report.steps, report.emitted), (4, 3));
/// # Ok(())
/// # }
/// ```
pub struct Spine<B: Backend = InMemoryBackend> {
    inner: Arc<Inner<B>>,
}

impl<B: Backend> Clone for Spine<B> {
    fn clone(&self) -> Self {
        Spine {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<B> {
    backend: B,
    routes: RouteTable,
    topology: Topology,
    config: Config,
    dispatch: Dispatch,
    stop: Arc<StopState>,
    /// Runs of one spine take turns: two loops over one routing table would break the
    /// FIFO and step-count guarantees.
    run_lock: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct Config {
    max_steps: usize,
    max_steps_explicit: bool,
    concurrency: usize,
    batch_size: usize,
    poll_interval: Duration,
    stop_on_signals: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_steps: DEFAULT_MAX_STEPS,
            max_steps_explicit: false,
            concurrency: 1,
            batch_size: 64,
            poll_interval: Duration::from_secs(1),
            stop_on_signals: false,
        }
    }
}

impl Spine<InMemoryBackend> {
    /// Starts building a spine. The backend defaults to a new [`InMemoryBackend`].
    pub fn builder() -> SpineBuilder<InMemoryBackend> {
        SpineBuilder::new()
    }
}

impl<B: Backend> Spine<B> {
    /// Handles events until the backend has nothing left and nothing is in flight, then
    /// returns what this run did. Events scheduled for later (retries, `emit_after`) count
    /// as left: the run waits for them. Fails with [`Error::MaxStepsExceeded`] after
    /// [`max_steps`](SpineBuilder::max_steps) events (default 10 000).
    pub async fn run_until_idle(&self) -> Result<RunReport, Error> {
        self.drive(run_loop::Mode::UntilIdle).await
    }

    /// Handles events until stopped by a [`StopHandle`] (or Ctrl-C/SIGTERM with
    /// [`stop_on_signals`](SpineBuilder::stop_on_signals)), then stops pulling, finishes
    /// the events in flight, gives back the ones pulled but not started, and returns.
    ///
    /// Not bounded by a step count unless [`max_steps`](SpineBuilder::max_steps) was
    /// called on the builder: then it fails with [`Error::MaxStepsExceeded`] like
    /// [`run_until_idle`](Spine::run_until_idle).
    pub async fn run(&self) -> Result<RunReport, Error> {
        self.drive(run_loop::Mode::Serve).await
    }

    /// A handle that stops a running [`run`](Spine::run) (or `run_until_idle`).
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            state: Arc::clone(&self.inner.stop),
        }
    }

    /// The backend, e.g. to read an [`InMemoryBackend`]'s dead letters.
    pub fn backend(&self) -> &B {
        &self.inner.backend
    }

    /// The organs and the event types between them, found from the organs' types: draw
    /// it with [`Topology::to_mermaid`]. See [`Topology`] for an example.
    pub fn topology(&self) -> &Topology {
        &self.inner.topology
    }

    /// The event type names that have organs, for diagnostics.
    pub fn routed_event_types(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.inner.routes.names()
    }
}

impl<B: Backend> std::fmt::Debug for Spine<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spine")
            .field("backend", &std::any::type_name::<B>())
            .field(
                "routed_event_types",
                &self.inner.routes.names().collect::<Vec<_>>(),
            )
            .field("config", &self.inner.config)
            .field("dispatch", &self.inner.dispatch)
            .finish_non_exhaustive()
    }
}

/// Stops a running spine; cheap to clone and send to another task.
///
/// ```
/// # use necrostack::Spine;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), necrostack::Error> {
/// let spine = Spine::builder().build()?;
/// let stop = spine.stop_handle();
/// tokio::spawn(async move { stop.stop() });
/// let report = spine.run().await?; // returns once stopped
/// assert_eq!(report.steps, 0);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct StopHandle {
    state: Arc<StopState>,
}

impl std::fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StopHandle")
            .field("requested", &self.state.requested.load(Ordering::SeqCst))
            .finish()
    }
}

impl StopHandle {
    /// Asks the spine to stop. The current run drains its in-flight events and returns;
    /// a stop asked for while no run is going ends the next run at once.
    pub fn stop(&self) {
        self.state.requested.store(true, Ordering::SeqCst);
        self.state.notify.notify_waiters();
    }
}

#[derive(Default)]
struct StopState {
    requested: AtomicBool,
    notify: Notify,
}

impl StopState {
    async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.requested.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}
