//! [`SpineBuilder`]: configuration, checked once at [`build`](SpineBuilder::build).

use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use super::dispatch::Dispatch;
use super::routing::RouteTableBuilder;
use super::{Config, Inner, Spine, StopState};
use crate::backend::memory::InMemoryBackend;
use crate::backend::Backend;
use crate::error::{BuildError, Error, TopologyProblem};
use crate::event::Event;
use crate::organ::Organ;
use crate::policy::{Failure, FailurePolicy};

/// The default bound on the steps of one run (see [`SpineBuilder::max_steps`]).
pub const DEFAULT_MAX_STEPS: usize = 10_000;
/// The default depth limit (see [`SpineBuilder::depth_limit`]).
pub const DEFAULT_DEPTH_LIMIT: u32 = 10_000;

/// What [`SpineBuilder::backend`] accepts: a [`Backend`].
///
/// Implemented for every backend. A trait of its own so that passing something that is
/// not a backend yet (a backend's builder, the future its `build()` returns, the `Result`
/// of awaiting it) gets a message saying how to finish it. For a `RedisBackendBuilder`
/// and a `Result` that is the only error: with a plain `Backend` bound the builder's next
/// method call would fail too.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a necrostack backend",
    label = "not a backend",
    note = "a backend's builder becomes a backend with `.build().await?` (`build` is async and returns a `Result`): `.backend(RedisBackend::builder(url).build().await?)`",
    note = "pass the backend itself, not a reference: to keep a handle, clone it first (a backend is a cheap handle), or use `spine.backend()`",
    note = "backends are `necrostack::InMemoryBackend`, `necrostack::RedisBackend` and your own types that implement `necrostack::Backend`"
)]
pub trait IntoBackend {
    /// The backend.
    type Backend: Backend;

    /// Gives the backend.
    fn into_backend(self) -> Self::Backend;
}

#[diagnostic::do_not_recommend]
impl<B: Backend> IntoBackend for B {
    type Backend = B;

    fn into_backend(self) -> B {
        self
    }
}

/// Implemented for no type: the unmeetable bound of the [`IntoBackend`] impls for things
/// that are not backends yet, a [`RedisBackendBuilder`](crate::backend::redis::RedisBackendBuilder)
/// and the `Result` of building one. With those impls the mistake is reported by
/// `IntoBackend`'s message (they are `do_not_recommend`), and the spine builder keeps a
/// backend type (`SpineBuilder<RedisBackend>`), which spares the calls after `.backend(..)`
/// errors of their own. The lifetime keeps the bound from being trivially false, which
/// the compiler would reject where it is declared.
#[doc(hidden)]
pub trait NotYetABackend<'a> {}

#[cfg(feature = "redis")]
#[diagnostic::do_not_recommend]
impl<'a> IntoBackend for crate::backend::redis::RedisBackendBuilder
where
    Self: NotYetABackend<'a>,
{
    type Backend = crate::backend::redis::RedisBackend;

    fn into_backend(self) -> Self::Backend {
        unreachable!("`NotYetABackend` is implemented for no type")
    }
}

#[diagnostic::do_not_recommend]
impl<'a, B: Backend, E> IntoBackend for Result<B, E>
where
    Self: NotYetABackend<'a>,
{
    type Backend = B;

    fn into_backend(self) -> B {
        unreachable!("`NotYetABackend` is implemented for no type")
    }
}

/// What [`SpineBuilder::depth_limit`] accepts: a number of hops (`u32`), or `None` to
/// switch the check off.
///
/// A trait of its own (rather than `impl Into<Option<u32>>`) so that another integer type
/// gets a message that says what to write, not a list of `From` impls.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a depth limit",
    label = "expected a `u32` number of hops, or `None`",
    note = "write `.depth_limit(100)` (a `u32`; convert with `u32::try_from(n)?` if needed), `.depth_limit(Some(100))`, or `.depth_limit(None)` to switch the check off"
)]
pub trait DepthLimit {
    /// The limit in hops; `None` for no limit.
    fn hops(self) -> Option<u32>;
}

#[diagnostic::do_not_recommend]
impl DepthLimit for u32 {
    fn hops(self) -> Option<u32> {
        Some(self)
    }
}

#[diagnostic::do_not_recommend]
impl DepthLimit for Option<u32> {
    fn hops(self) -> Option<u32> {
        self
    }
}

/// Builds a [`Spine`]: organs, backend and settings. Start with [`Spine::builder`].
///
/// Every setting has a default chosen for a single process that runs a flow to
/// completion; the ones a long-running worker may want to change say so.
///
/// ```
/// use std::time::Duration;
///
/// use necrostack::{organ, Event, FailurePolicy, InMemoryBackend, RetryPolicy, Spine};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct Payment { account: u32, cents: i64 }
///
/// #[organ(listens_to = Payment)]
/// async fn post(payment: &Payment) {
///     let _ = payment.cents; // talk to the ledger service...
/// }
///
/// let spine = Spine::builder()
///     .organ(post)
///     .backend(InMemoryBackend::bounded(10_000))
///     .concurrency(32)                                   // posts wait on I/O
///     .order_key(|payment: &Payment| payment.account)    // one account's payments in order
///     .failure_policy(FailurePolicy::Retry(RetryPolicy::new(3)))
///     .handler_timeout(Duration::from_secs(10))
///     .on_failure(|failure| eprintln!("{} failed: {}", failure.organ, failure.error))
///     .build()?;
/// # let _ = spine;
/// # Ok::<(), necrostack::Error>(())
/// ```
#[must_use = "a builder does nothing until `.build()`"]
pub struct SpineBuilder<B = InMemoryBackend> {
    routes: RouteTableBuilder,
    backend: B,
    config: Config,
    dispatch: Dispatch,
    strict_topology: bool,
}

impl<B> std::fmt::Debug for SpineBuilder<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpineBuilder")
            .field("backend", &std::any::type_name::<B>())
            .field("config", &self.config)
            .field("dispatch", &self.dispatch)
            .field("strict_topology", &self.strict_topology)
            .finish_non_exhaustive()
    }
}

impl SpineBuilder<InMemoryBackend> {
    pub(crate) fn new() -> Self {
        SpineBuilder {
            routes: RouteTableBuilder::default(),
            backend: InMemoryBackend::new(),
            config: Config::default(),
            dispatch: Dispatch {
                handler_timeout: None,
                policy: FailurePolicy::default(),
                depth_limit: Some(DEFAULT_DEPTH_LIMIT),
                on_failure: None,
            },
            strict_topology: false,
        }
    }
}

impl<B: Backend> SpineBuilder<B> {
    /// Registers an organ. An event goes to every organ that listens to its type, in the
    /// order they were registered.
    ///
    /// ```
    /// # use necrostack::{organ, Event, Spine};
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
    /// # struct Ping;
    /// #[organ(listens_to = Ping)]
    /// fn first(_: &Ping) {}
    ///
    /// #[organ(listens_to = Ping)]
    /// fn second(_: &Ping) {} // runs after `first` for every Ping
    ///
    /// let spine = Spine::builder().organ(first).organ(second).build()?;
    /// assert_eq!(spine.routed_event_types().collect::<Vec<_>>(), ["Ping"]);
    /// # Ok::<(), necrostack::Error>(())
    /// ```
    pub fn organ<O: Organ>(mut self, organ: O) -> Self {
        self.routes.add_organ(organ, None);
        self
    }

    /// Registers an organ with a failure policy of its own, which overrides the spine's
    /// [`failure_policy`](Self::failure_policy) for this organ's failures.
    ///
    /// ```
    /// use necrostack::{organ, Event, FailurePolicy, RetryPolicy, Spine};
    /// use serde::{Deserialize, Serialize};
    /// use std::time::Duration;
    ///
    /// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
    /// struct Invoice { cents: u64 }
    ///
    /// #[organ(listens_to = Invoice)]
    /// fn archive(_: &Invoice) {}
    ///
    /// #[organ(listens_to = Invoice)]
    /// async fn charge(_: &Invoice) -> Result<(), std::io::Error> {
    ///     Ok(()) // talks to a payment provider that fails now and then
    /// }
    ///
    /// let retry = RetryPolicy::new(5).backoff(Duration::from_millis(200), Duration::from_secs(30));
    /// let spine = Spine::builder()
    ///     .failure_policy(FailurePolicy::DeadLetter) // the spine's default for its organs
    ///     .organ(archive)
    ///     .organ_with_policy(charge, FailurePolicy::Retry(retry)) // this one retries
    ///     .build()?;
    /// # Ok::<(), necrostack::Error>(())
    /// ```
    pub fn organ_with_policy<O: Organ>(mut self, organ: O, policy: FailurePolicy) -> Self {
        self.routes.add_organ(organ, Some(policy));
        self
    }

    /// Sets the backend (default: a new [`InMemoryBackend`]).
    ///
    /// ```
    /// use necrostack::{InMemoryBackend, Spine};
    ///
    /// let spine = Spine::builder().backend(InMemoryBackend::bounded(1_000)).build()?;
    /// assert!(spine.backend().is_empty());
    /// # Ok::<(), necrostack::Error>(())
    /// ```
    ///
    /// A backend with a builder is built first: `.backend(RedisBackend::builder(url)
    /// .build().await?)`.
    pub fn backend<B2: IntoBackend>(self, backend: B2) -> SpineBuilder<B2::Backend> {
        SpineBuilder {
            routes: self.routes,
            backend: backend.into_backend(),
            config: self.config,
            dispatch: self.dispatch,
            strict_topology: self.strict_topology,
        }
    }

    /// The most events one run may take from the backend. Taking one more fails the run
    /// with [`Error::MaxStepsExceeded`] and gives that event back to the backend.
    ///
    /// **Calling this also bounds [`run`](Spine::run)**, even with the default value.
    /// Without it, [`run_until_idle`](Spine::run_until_idle) (meant to finish) is bounded
    /// by [`DEFAULT_MAX_STEPS`] (10 000) and `run` (meant to serve for weeks) is not
    /// bounded at all: loops there are caught by the [depth limit](Self::depth_limit). So
    /// a long-running worker should not call `.max_steps(..)`.
    ///
    /// ```
    /// use necrostack::{organ, Error, Event, Spine};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
    /// struct Echo;
    ///
    /// #[organ(listens_to = Echo)]
    /// fn echo(_: &Echo) -> Echo {
    ///     Echo // forever
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Error> {
    /// let spine = Spine::builder().organ(echo).max_steps(5).build()?;
    /// spine.emit(Echo).await?;
    /// // `run` would serve forever; the explicit bound ends it after 5 events.
    /// let error = spine.run().await.unwrap_err();
    /// assert!(matches!(error, Error::MaxStepsExceeded { max_steps: 5 }));
    /// # Ok(())
    /// # }
    /// ```
    pub fn max_steps(mut self, max_steps: usize) -> Self {
        self.config.max_steps = max_steps;
        self.config.max_steps_explicit = true;
        self
    }

    /// The most hops an event may be from its root event before it is dead-lettered as a
    /// probable loop (default 10 000). `None` switches the check off. Unlike
    /// [`max_steps`](Self::max_steps), it stops one runaway chain without ending the run,
    /// which is what a long-running worker wants.
    ///
    /// ```
    /// # use necrostack::{organ, Event, Spine};
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
    /// # struct Ping;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), necrostack::Error> {
    /// use necrostack::DeadLetterReason;
    ///
    /// #[organ(listens_to = Ping)]
    /// fn echo(_: &Ping) -> Ping {
    ///     Ping // a loop
    /// }
    ///
    /// let spine = Spine::builder().organ(echo).depth_limit(3).build()?;
    /// spine.emit(Ping).await?;
    /// let report = spine.run_until_idle().await?;
    /// assert_eq!((report.steps, report.dead_lettered), (5, 1)); // depths 0..=3 ran; 4 did not
    /// let reason = &spine.backend().dead_letters()[0].reason;
    /// assert_eq!(reason, &DeadLetterReason::ProbableLoop { depth: 4, limit: 3 });
    /// # Ok(())
    /// # }
    /// ```
    pub fn depth_limit(mut self, limit: impl DepthLimit) -> Self {
        self.dispatch.depth_limit = limit.hops();
        self
    }

    /// How many events may be handled at once (default 1: strict FIFO). The organs of one
    /// event still run one after another, in registration order. Raise it when organs
    /// wait on I/O. 0 is a [`BuildError`].
    ///
    /// ```
    /// use necrostack::Spine;
    ///
    /// let spine = Spine::builder().concurrency(64).build()?;
    /// assert!(Spine::builder().concurrency(0).build().is_err());
    /// # let _ = spine;
    /// # Ok::<(), necrostack::Error>(())
    /// ```
    pub fn concurrency(mut self, events_in_flight: usize) -> Self {
        self.config.concurrency = events_in_flight;
        self
    }

    /// Keeps events of type `E` with the same key in order when
    /// [`concurrency`](Self::concurrency) is above 1: an event waits while another with
    /// its key is in flight. Keys are compared by hash.
    ///
    /// It also sets the event's **partition key**: every `E` this spine enqueues (emitted
    /// with [`Spine::emit`] and its siblings, returned by organs, scheduled or retried)
    /// carries [`key_hash`](crate::partition::key_hash)`(&key)` on the wire, unless the
    /// envelope was given a key of its own with
    /// [`Envelope::with_partition_key`](crate::Envelope::with_partition_key). So the
    /// order holds across processes too: a backend that shares its queue among
    /// consumers hands out one event per key at a time ([`InMemoryBackend`] shared by
    /// several spines does), and a partitioned one puts a key's events in one partition.
    /// A delivered event that carries a key is ordered by it, whatever its type.
    ///
    /// The key is owned (`order.id`, `order.account.clone()`), not borrowed from the
    /// event: `|order: &Order| &order.account` does not compile.
    ///
    /// ```
    /// # use necrostack::{Event, Spine};
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
    /// struct Withdrawal { account: String, cents: u64 }
    ///
    /// let spine = Spine::builder()
    ///     .concurrency(16)
    ///     .order_key(|w: &Withdrawal| w.account.clone()) // one account's withdrawals in order
    ///     .build()?;
    /// # let _ = spine;
    /// # Ok::<(), necrostack::Error>(())
    /// ```
    pub fn order_key<E: Event, K: Hash>(
        mut self,
        key: impl Fn(&E) -> K + Send + Sync + 'static,
    ) -> Self {
        self.routes.set_key(key);
        self
    }

    /// How many events to take from the backend in one pull (default 64). Larger batches
    /// mean fewer round trips to a remote backend. 0 is a [`BuildError`].
    ///
    /// ```
    /// use necrostack::Spine;
    ///
    /// // On Redis, many events in flight share round trips.
    /// let spine = Spine::builder().concurrency(256).batch_size(256).build()?;
    /// # let _ = spine;
    /// # Ok::<(), necrostack::Error>(())
    /// ```
    pub fn batch_size(mut self, events: usize) -> Self {
        self.config.batch_size = events;
        self
    }

    /// What to do when an organ fails (default [`FailurePolicy::LogAndContinue`]), for
    /// every organ registered without a policy of its own
    /// ([`organ_with_policy`](Self::organ_with_policy)).
    ///
    /// Under the default an error is logged and the event acknowledged: on a durable
    /// backend it is *not* delivered again. Choose [`FailurePolicy::Retry`] (retries,
    /// then a dead letter) or [`FailurePolicy::DeadLetter`] when a failed event must not
    /// be lost.
    ///
    /// ```
    /// use std::time::Duration;
    /// use necrostack::{FailurePolicy, RetryPolicy, Spine};
    ///
    /// let retry = RetryPolicy::new(5).backoff(Duration::from_millis(100), Duration::from_secs(10));
    /// let spine = Spine::builder().failure_policy(FailurePolicy::Retry(retry)).build()?;
    /// # let _ = spine;
    /// # Ok::<(), necrostack::Error>(())
    /// ```
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.dispatch.policy = policy;
        self
    }

    /// The longest an async handler may take before it counts as failed (default: no
    /// limit). A sync handler cannot be interrupted and is not timed.
    ///
    /// ```
    /// # use necrostack::{organ, Event, Spine};
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
    /// # struct Ping;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), necrostack::Error> {
    /// use std::time::Duration;
    ///
    /// #[organ(listens_to = Ping)]
    /// async fn stuck(_: &Ping) {
    ///     tokio::time::sleep(Duration::from_secs(3600)).await;
    /// }
    ///
    /// let spine = Spine::builder()
    ///     .organ(stuck)
    ///     .handler_timeout(Duration::from_millis(10))
    ///     .build()?;
    /// spine.emit(Ping).await?;
    /// let report = spine.run_until_idle().await?;
    /// assert_eq!(report.failed, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.dispatch.handler_timeout = Some(timeout);
        self
    }

    /// Called once for every failed handling that will not be retried (the last
    /// attempt), e.g. for metrics. It runs on the spine's task: keep it short and do not
    /// block.
    ///
    /// ```
    /// # use necrostack::{organ, Event, Spine};
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
    /// # struct Ping;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), necrostack::Error> {
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use necrostack::FailureKind;
    ///
    /// #[organ(listens_to = Ping)]
    /// fn refuse(_: &Ping) -> Result<(), std::io::Error> {
    ///     Err(std::io::Error::other("no"))
    /// }
    ///
    /// let failures = Arc::new(AtomicUsize::new(0));
    /// let counted = Arc::clone(&failures);
    /// let spine = Spine::builder()
    ///     .organ(refuse)
    ///     .on_failure(move |failure| {
    ///         assert_eq!((failure.organ, failure.kind), ("refuse", FailureKind::Error));
    ///         counted.fetch_add(1, Ordering::Relaxed);
    ///     })
    ///     .build()?;
    /// spine.emit_all([Ping, Ping]).await?;
    /// spine.run_until_idle().await?;
    /// assert_eq!(failures.load(Ordering::Relaxed), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_failure(mut self, hook: impl Fn(&Failure) + Send + Sync + 'static) -> Self {
        self.dispatch.on_failure = Some(Arc::new(hook));
        self
    }

    /// Makes [`run`](Spine::run) stop on Ctrl-C and SIGTERM, as a stop handle would
    /// (default: off, so that a library never takes over a program's signals).
    ///
    /// ```no_run
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), necrostack::Error> {
    /// use necrostack::Spine;
    ///
    /// let spine = Spine::builder().stop_on_signals(true).build()?;
    /// let report = spine.run().await?; // until Ctrl-C or SIGTERM, then drains
    /// println!("handled {} events", report.steps);
    /// # Ok(())
    /// # }
    /// ```
    pub fn stop_on_signals(mut self, enabled: bool) -> Self {
        self.config.stop_on_signals = enabled;
        self
    }

    /// How long one pull waits for events while [`run`](Spine::run) is idle (default
    /// 1 s). Stopping does not wait for it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use necrostack::Spine;
    ///
    /// let spine = Spine::builder().poll_interval(Duration::from_millis(200)).build()?;
    /// # let _ = spine;
    /// # Ok::<(), necrostack::Error>(())
    /// ```
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.config.poll_interval = interval;
        self
    }

    /// Makes [`build`](Self::build) check the [topology](Spine::topology): it fails with
    /// [`BuildError::Topology`] when an organ can emit an event type that no organ of
    /// this spine listens to, or when an organ's outputs are unknown (it returns `Emit`
    /// without `#[organ(emits = [..])]`), listing every such case. Default: off, since
    /// a flow may end in events meant for another process.
    ///
    /// ```
    /// use necrostack::error::{BuildError, Error, TopologyProblem};
    /// use necrostack::{organ, Event, Spine};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
    /// struct Ping;
    /// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
    /// struct Pong;
    ///
    /// #[organ(listens_to = Ping)]
    /// fn answer(_: &Ping) -> Pong {
    ///     Pong
    /// }
    ///
    /// let error = Spine::builder().organ(answer).strict_topology().build().unwrap_err();
    /// let Error::Build(BuildError::Topology { problems }) = error else { panic!() };
    /// assert_eq!(problems, [TopologyProblem::Unheard { organ: "answer", event_type: "Pong" }]);
    /// ```
    pub fn strict_topology(mut self) -> Self {
        self.strict_topology = true;
        self
    }

    /// Checks the configuration and builds the routing table. Fails with a
    /// [`BuildError`] when two organs listen to different types with one event name, or
    /// when [`concurrency`](Self::concurrency) or [`batch_size`](Self::batch_size) is 0,
    /// or, with [`strict_topology`](Self::strict_topology), when an organ's outputs go
    /// nowhere or are unknown.
    ///
    /// ```
    /// use necrostack::error::{BuildError, Error};
    /// use necrostack::Spine;
    ///
    /// let error = Spine::builder().batch_size(0).build().unwrap_err();
    /// assert!(matches!(error, Error::Build(BuildError::Zero { setting: "batch_size" })));
    /// # Ok::<(), necrostack::Error>(())
    /// ```
    pub fn build(mut self) -> Result<Spine<B>, Error> {
        if let Some(error) = self.routes.errors.first() {
            return Err(error.clone().into());
        }
        if self.config.concurrency == 0 {
            return Err(BuildError::Zero {
                setting: "concurrency",
            }
            .into());
        }
        if self.config.batch_size == 0 {
            return Err(BuildError::Zero {
                setting: "batch_size",
            }
            .into());
        }
        let topology = std::mem::take(&mut self.routes.topology);
        if self.strict_topology {
            let mut problems: Vec<TopologyProblem> = topology
                .unheard_edges()
                .into_iter()
                .map(|(organ, event_type)| TopologyProblem::Unheard { organ, event_type })
                .collect();
            problems.extend(topology.unknown_outputs().map(|organ| {
                TopologyProblem::UnknownEmits {
                    organ: organ.name(),
                }
            }));
            if !problems.is_empty() {
                return Err(BuildError::Topology { problems }.into());
            }
        }
        Ok(Spine {
            inner: Arc::new(Inner {
                backend: self.backend,
                routes: self.routes.finish(),
                topology,
                config: self.config,
                dispatch: self.dispatch,
                stop: Arc::new(StopState::default()),
                run_lock: tokio::sync::Mutex::new(()),
            }),
        })
    }
}
