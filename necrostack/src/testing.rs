//! Helpers for testing organs and flows: run organs on events and look at what they
//! emitted and what failed.
//!
//! ```
//! use necrostack::{organ, testing, Event};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
//! struct Ping(u32);
//! #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
//! struct Pong(u32);
//!
//! #[organ(listens_to = Ping)]
//! fn answer(ping: &Ping) -> Pong {
//!     Pong(ping.0 + 1)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // One organ, one event, no spine:
//! let emit = testing::call(&answer, Ping(1)).await.unwrap();
//! assert_eq!(emit.events::<Pong>().collect::<Vec<_>>(), [&Pong(2)]);
//!
//! // A whole flow, followed until idle:
//! let outcome = testing::Flow::new().organ(answer).emit(Ping(41)).run().await.unwrap();
//! assert_eq!(outcome.events::<Pong>(), [&Pong(42)]);
//! assert!(outcome.failures().is_empty());
//! # }
//! ```

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::backend::memory::MemoryReceipt;
use crate::backend::{Backend, BackendError, Batch, Completion, DeadLetter, Delivery, Scheduled};
use crate::box_error::BoxError;
use crate::emit::Emit;
use crate::envelope::{AnyEnvelope, Envelope};
use crate::error::Error;
use crate::event::Event;
use crate::organ::{Handling, Organ};
use crate::spine::{Failure, FailurePolicy, RootEvent, RunReport, SpineBuilder};
use crate::InMemoryBackend;

/// Calls one organ on one event (as a root envelope) and returns what it emitted, or its
/// error. No spine, no backend, no retries: the handler itself.
///
/// ```
/// use necrostack::{organ, testing, Event};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct Order { cents: i64 }
/// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct Invoice { cents: i64 }
///
/// #[organ(listens_to = Order)]
/// fn bill(order: &Order) -> Result<Invoice, std::io::Error> {
///     if order.cents < 0 {
///         return Err(std::io::Error::other("negative"));
///     }
///     Ok(Invoice { cents: order.cents })
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let emitted = testing::call(&bill, Order { cents: 250 }).await.unwrap();
/// assert_eq!(emitted.events::<Invoice>().collect::<Vec<_>>(), [&Invoice { cents: 250 }]);
///
/// let error = testing::call(&bill, Order { cents: -1 }).await.unwrap_err();
/// assert_eq!(error.to_string(), "negative");
/// # }
/// ```
pub async fn call<O: Organ>(organ: &O, event: O::Event) -> Result<Emit, BoxError> {
    call_envelope(organ, &Envelope::new(event)).await
}

/// Like [`call`], with an envelope built by the test (e.g. to check lineage handling).
pub async fn call_envelope<O: Organ>(
    organ: &O,
    envelope: &Envelope<O::Event>,
) -> Result<Emit, BoxError> {
    match organ.call(envelope) {
        Handling::Ready(result) => result,
        Handling::Pending(future) => future.await,
    }
}

/// A flow under test: organs and root events, run on an in-memory spine until idle,
/// recording every event the organs emitted and every failure.
///
/// ```
/// use necrostack::{organ, testing::Flow, Event, FailurePolicy};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct Signup { email: String }
/// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct Welcome { email: String }
///
/// #[organ(listens_to = Signup)]
/// fn greet(signup: &Signup) -> Result<Welcome, std::io::Error> {
///     if !signup.email.contains('@') {
///         return Err(std::io::Error::other("not an address"));
///     }
///     Ok(Welcome { email: signup.email.clone() })
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), necrostack::Error> {
/// let outcome = Flow::new()
///     .organ(greet)
///     .failure_policy(FailurePolicy::DeadLetter)
///     .emit(Signup { email: "ada@example.org".into() })
///     .emit(Signup { email: "nobody".into() })
///     .run()
///     .await?;
/// assert_eq!(outcome.events::<Welcome>(), [&Welcome { email: "ada@example.org".into() }]);
/// assert_eq!(outcome.failures().len(), 1);
/// assert_eq!(outcome.dead_letters().len(), 1);
/// // Lineage: the welcome was caused by the first signup.
/// assert!(outcome.emitted()[0].causation_id().is_some());
/// assert_eq!(outcome.report.steps, 3);
/// # Ok(())
/// # }
/// ```
#[must_use = "a flow does nothing until `.run()`"]
pub struct Flow {
    builder: SpineBuilder<InMemoryBackend>,
    roots: Vec<AnyEnvelope>,
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flow")
            .field("spine", &self.builder)
            .field("roots", &self.roots.len())
            .finish()
    }
}

impl Default for Flow {
    fn default() -> Self {
        Self::new()
    }
}

impl Flow {
    /// An empty flow on a default spine.
    pub fn new() -> Self {
        Flow {
            builder: crate::Spine::builder(),
            roots: Vec::new(),
        }
    }

    /// Adds an organ.
    pub fn organ<O: Organ>(mut self, organ: O) -> Self {
        self.builder = self.builder.organ(organ);
        self
    }

    /// Sets the failure policy (default: log and continue).
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.builder = self.builder.failure_policy(policy);
        self
    }

    /// Sets the step bound of the run (default 10 000); see
    /// [`SpineBuilder::max_steps`].
    pub fn max_steps(mut self, max_steps: usize) -> Self {
        self.builder = self.builder.max_steps(max_steps);
        self
    }

    /// Adds a root event, by value (one call per event).
    pub fn emit<E: RootEvent>(mut self, event: E) -> Self {
        self.roots.push(event.into_root());
        self
    }

    /// Runs until idle and returns what happened.
    pub async fn run(self) -> Result<FlowOutcome, Error> {
        let failures = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&failures);
        let backend = Recording::default();
        let spine = self
            .builder
            .on_failure(move |failure| {
                recorded
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(failure.clone());
            })
            .backend(backend.clone())
            .build()?;
        spine.backend().inner.enqueue(self.roots).await?;
        let report = spine.run_until_idle().await?;
        let failures =
            std::mem::take(&mut *failures.lock().unwrap_or_else(PoisonError::into_inner));
        let emitted = std::mem::take(
            &mut *backend
                .emitted
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        Ok(FlowOutcome {
            report,
            emitted,
            failures,
            dead_letters: backend.inner.take_dead_letters(),
        })
    }
}

/// What a [`Flow`] did.
#[derive(Debug)]
pub struct FlowOutcome {
    /// The run's counts.
    pub report: RunReport,
    emitted: Vec<AnyEnvelope>,
    failures: Vec<Failure>,
    dead_letters: Vec<DeadLetter>,
}

impl FlowOutcome {
    /// The events of type `E` that organs emitted, in the order they were emitted.
    pub fn events<E: Event>(&self) -> Vec<&E> {
        self.emitted
            .iter()
            .filter_map(|e| e.downcast_ref::<E>())
            .collect()
    }

    /// Every emitted event, in order, with its lineage.
    pub fn emitted(&self) -> &[AnyEnvelope] {
        &self.emitted
    }

    /// Every failed handling, in order.
    pub fn failures(&self) -> &[Failure] {
        &self.failures
    }

    /// The dead letters written.
    pub fn dead_letters(&self) -> &[DeadLetter] {
        &self.dead_letters
    }
}

/// An in-memory backend that also keeps a copy of every emitted event.
#[derive(Clone, Default)]
struct Recording {
    inner: InMemoryBackend,
    emitted: Arc<Mutex<Vec<AnyEnvelope>>>,
}

impl Backend for Recording {
    type Receipt = MemoryReceipt;

    async fn enqueue(&self, events: Vec<AnyEnvelope>) -> Result<(), BackendError> {
        self.inner.enqueue(events).await
    }

    async fn pull(
        &self,
        max: usize,
        timeout: Duration,
    ) -> Result<Batch<Delivery<MemoryReceipt>>, BackendError> {
        self.inner.pull(max, timeout).await
    }

    async fn complete(
        &self,
        receipt: MemoryReceipt,
        completion: Completion,
    ) -> Result<(), BackendError> {
        // Emitted events, with those emitted after a delay; retries are not emissions.
        let delayed = completion
            .scheduled
            .iter()
            .filter(|s| s.envelope.retry_organ().is_none())
            .map(|s| s.envelope.clone());
        self.emitted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(completion.emitted.iter().cloned().chain(delayed));
        self.inner.complete(receipt, completion).await
    }

    async fn release(&self, deliveries: Vec<Delivery<MemoryReceipt>>) -> Result<(), BackendError> {
        self.inner.release(deliveries).await
    }

    async fn schedule(&self, events: Vec<Scheduled>) -> Result<(), BackendError> {
        self.inner.schedule(events).await
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, BackendError> {
        self.inner.next_due().await
    }

    async fn close(&self) -> Result<(), BackendError> {
        self.inner.close().await
    }
}
