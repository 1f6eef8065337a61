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
//! [`organ`](Organ), [`spine`](Spine), [`backend`] and [`testing`].
#![warn(missing_docs, missing_debug_implementations)]

pub mod backend;
mod emit;
mod envelope;
mod error;
mod event;
mod identity;
mod organ;
mod policy;
pub mod spine;
pub mod testing;
mod wire;

pub use backend::memory::InMemoryBackend;
#[cfg(feature = "nats")]
pub use backend::nats::NatsBackend;
#[cfg(feature = "redis")]
pub use backend::redis::RedisBackend;
pub use backend::Backend;
pub use emit::{Delayed, Emit, IntoEmit, IntoOutcome};
pub use envelope::{AnyEnvelope, Envelope};
pub use error::{BoxError, Error};
pub use event::Event;
pub use organ::{Handling, Organ, OrganError, Permanent};
pub use spine::{
    Failure, FailureKind, FailurePolicy, RetryPolicy, RunReport, Spine, SpineBuilder, StopHandle,
};
pub use wire::{DecodeError, EncodeError};

/// `#[derive(Event)]`: implements [`Event`] for a struct or enum.
///
/// The event name defaults to the type's name; `#[event(name = "...")]` sets it. Names
/// must be non-empty and contain no whitespace; this is checked at compile time.
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
/// `Result` of any of them whose error is `std::error::Error + Send + Sync + 'static`.
/// The handler may be `async`; its future must be `Send`. The optional key `name = "..."`
/// sets the organ name used in logs (default: the function or type name).
pub use necrostack_macros::organ;

/// The UUID type used for event ids, re-exported so users need no extra dependency.
pub use uuid::Uuid;

/// Paths used by the code that the macros generate. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::emit::ErrorType;
    pub use crate::organ::{pending, EventParam, NoEvent, OwnedParam};
    pub use crate::{Emit, Envelope, Event, Handling, IntoEmit, IntoOutcome, Organ, OrganError};
}
