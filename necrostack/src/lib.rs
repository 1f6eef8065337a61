//! # necrostack
//!
//! Event-driven programs in Rust. Declare **events** (plain structs with
//! `#[derive(Event)]`), **organs** (functions or types with `#[organ(listens_to = ...)]`
//! that handle one event type and may emit new events), and hand them to a [`Spine`], the
//! dispatcher loop that pulls events from a [`Backend`], routes each one to every organ
//! that listens to it, and enqueues what the organs return.
//!
//! ```
//! use necrostack::{organ, Event, Spine};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
//! #[event(name = "SUMMON_RITUAL")]
//! struct SummonRitual { spirit: String }
//!
//! #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
//! #[event(name = "SPIRIT_APPEARED")]
//! struct SpiritAppeared { spirit: String }
//!
//! #[organ(listens_to = SummonRitual)]
//! fn summon(ritual: &SummonRitual) -> SpiritAppeared {
//!     SpiritAppeared { spirit: ritual.spirit.clone() }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), necrostack::Error> {
//! let spine = Spine::builder().organ(summon).build()?;
//! spine.emit(SummonRitual { spirit: "Ada".into() }).await?;
//! let report = spine.run_until_idle().await?;
//! assert_eq!(report.steps, 2); // the ritual, then the spirit (which nobody listens to)
//! # Ok(())
//! # }
//! ```
//!
//! The modules follow the concepts: [`event`](Event), [`envelope`](Envelope),
//! [`organ`](Organ), [`spine`](Spine), [`backend`], [`partition`] (keys that keep events
//! in order across workers), [`testing`] and [`topology`]. Every error type is in
//! [`error`] (and at the root).
#![warn(missing_docs, missing_debug_implementations)]

pub mod backend;
mod box_error;
mod emit;
mod envelope;
pub mod error;
mod event;
mod identity;
mod organ;
pub mod partition;
mod policy;
pub mod spine;
pub mod telemetry;
pub mod testing;
pub mod topology;
mod wire;

pub use backend::memory::InMemoryBackend;
#[cfg(feature = "nats")]
pub use backend::nats::NatsBackend;
#[cfg(feature = "redis")]
pub use backend::redis::RedisBackend;
pub use backend::{Backend, DeadLetter, DeadLetterReason, Scheduled};
pub use emit::{Delayed, Emit, IntoEmit, IntoOutcome};
pub use envelope::{AnyEnvelope, Envelope};
#[cfg(feature = "redis")]
pub use error::RedisBackendError;
pub use error::{
    BackendError, BoxError, BuildError, DecodeError, EncodeError, Error, Permanent, TopologyProblem,
};
pub use event::Event;
pub use organ::{Handling, Organ};
pub use spine::{
    Failure, FailureKind, FailurePolicy, RetryPolicy, RunReport, Spine, SpineBuilder, StopHandle,
};
pub use topology::{Emits, Topology};

/// `#[derive(Event)]`: implements [`Event`] for a struct or enum.
///
/// The event name defaults to the type's name; `#[event(name = "...")]` sets it. Names
/// must be non-empty and contain no whitespace; this is checked at compile time. The type
/// must also be `Serialize + Deserialize` (the wire format), `Send + Sync` and not
/// generic (one fixed name on the wire).
///
/// ```
/// use necrostack::Event;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct OrderPlaced { order: u64 }
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// #[event(name = "billing.invoice_sent")] // a name shared with producers in other languages
/// enum InvoiceSent { Email { to: String }, Post }
///
/// assert_eq!(OrderPlaced::NAME, "OrderPlaced");
/// assert_eq!(InvoiceSent::NAME, "billing.invoice_sent");
/// ```
///
/// A name with whitespace does not compile:
///
/// ```compile_fail
/// # use necrostack::Event;
/// # use serde::{Deserialize, Serialize};
/// #[derive(Event, Serialize, Deserialize)]
/// #[event(name = "ORDER PLACED")]
/// struct OrderPlaced;
/// ```
pub use necrostack_macros::Event;

/// `#[organ(listens_to = EventType)]`: turns a function or an `impl` block into an
/// [`Organ`].
///
/// On a function, the function becomes a unit struct of the same name that implements
/// [`Organ`], so it registers as `.organ(name)`; the original function stays callable as
/// `name::handle(...)` for unit tests. On an `impl` block, the block must have one
/// `handle(&self, event)` method; the type implements [`Organ`] and keeps its state.
///
/// The parameter is the event as `E`, `&E`, `Envelope<E>` or `&Envelope<E>`. The return
/// type is `()`, an event, `Option<E>`, `Vec<E>`, [`Emit`], a tuple of those, or a
/// `Result` of any of them whose error is `std::error::Error + Send + Sync + 'static`,
/// [`BoxError`] (`Box<dyn Error + Send + Sync>`) or a type that wraps one the way
/// `anyhow::Error` does.
/// The handler may be `async`; its future must be `Send`. The optional key `name = "..."`
/// sets the organ name used in logs (default: the function or type name).
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// use necrostack::{organ, testing, Envelope, Event, Organ};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct Deposit { cents: u64 }
/// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct Receipt { cents: u64 }
///
/// // A sync function organ: `issue_receipt` becomes a unit struct implementing `Organ`.
/// #[organ(listens_to = Deposit)]
/// fn issue_receipt(deposit: &Deposit) -> Receipt {
///     Receipt { cents: deposit.cents }
/// }
///
/// // An async organ that sees the envelope, may fail, and has its own log name.
/// #[organ(listens_to = Deposit, name = "fraud-check")]
/// async fn check(deposit: Envelope<Deposit>) -> Result<(), std::io::Error> {
///     if deposit.cents > 1_000_000 {
///         return Err(std::io::Error::other(format!("event {} looks odd", deposit.id())));
///     }
///     Ok(())
/// }
///
/// // A stateful organ: the attribute goes on the `impl` block with one `handle` method.
/// #[derive(Default)]
/// struct Ledger { total: AtomicU64 }
///
/// #[organ(listens_to = Deposit)]
/// impl Ledger {
///     fn handle(&self, deposit: &Deposit) {
///         self.total.fetch_add(deposit.cents, Ordering::Relaxed);
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(issue_receipt::handle(&Deposit { cents: 5 }), Receipt { cents: 5 });
/// assert_eq!(<check as Organ>::NAME, "fraud-check");
/// assert!(testing::call(&check, Deposit { cents: 2_000_000 }).await.is_err());
/// let ledger = Ledger::default();
/// testing::call(&ledger, Deposit { cents: 7 }).await.unwrap();
/// assert_eq!(ledger.total.load(Ordering::Relaxed), 7);
/// # }
/// ```
///
/// The event types an organ can emit are found from its return type
/// ([`Organ::emits`], drawn by [`Spine::topology`]). An [`Emit`] may hold events of any
/// types, so an organ that returns one lists them with the optional key
/// `emits = [EventA, EventB]` (each checked to be an event); without it, its outputs are
/// [unknown](topology::Emits::Unknown). The listed types are added to those the return
/// type names, e.g. for `-> (Receipt, Emit)`.
///
/// ```
/// use necrostack::{organ, Emit, Emits, Event, Organ};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct Order { cents: u64 }
/// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct Accepted;
/// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct Refused;
///
/// #[organ(listens_to = Order, emits = [Accepted, Refused])]
/// fn decide(order: &Order) -> Emit {
///     if order.cents > 0 { Emit::new().with(Accepted) } else { Emit::new().with(Refused) }
/// }
///
/// assert_eq!(decide::emits(), Emits::known(["Accepted", "Refused"]));
/// ```
pub use necrostack_macros::organ;

/// The UUID type used for event ids, re-exported so users need no extra dependency.
pub use uuid::Uuid;

/// Paths used by the code that the macros generate. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::emit::{
        output_of, output_of_async, output_of_async_method, output_of_method, DynError,
        EmittedEvent, ErrorType, Fallible, KnownEmits, OutputOf, Plain, StdError, UnknownEmits,
    };
    pub use crate::event::RejectedEvent;
    pub use crate::organ::{pending, EventParam, NoEvent, OwnedParam};
    pub use crate::topology::Emits;
    pub use crate::{BoxError, Emit, Envelope, Event, Handling, IntoEmit, IntoOutcome, Organ};
}
