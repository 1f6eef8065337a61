//! Every public error type, in one place: the crate's [`Error`] and the errors it wraps.
//!
//! Each is also at the crate root (`necrostack::DecodeError`), and some where they are
//! used (`necrostack::backend::BackendError`); those are the same types, not aliases.
//!
//! | type | what failed |
//! |---|---|
//! | [`Error`] | building or running a spine; wraps the ones below |
//! | [`BuildError`] | the spine's configuration |
//! | [`TopologyProblem`] | one reason a strict topology check failed (in [`BuildError::Topology`]) |
//! | [`BackendError`] | a backend operation |
//! | [`DecodeError`] / [`EncodeError`] | reading / writing the JSON wire format |
//! | [`BoxError`] | any error, boxed: an organ's, or a backend's cause |
//! | [`Permanent`] | an organ error that must not be retried |
#![cfg_attr(
    feature = "redis",
    doc = "| [`RedisBackendError`] | the Redis backend; reaches callers inside a [`BackendError`] |"
)]
//!
//! ```
//! use necrostack::error::{BuildError, Error};
//! use necrostack::Spine;
//!
//! let error = Spine::builder().concurrency(0).build().unwrap_err();
//! assert!(matches!(error, Error::Build(BuildError::Zero { setting: "concurrency" })));
//! ```

#[cfg(feature = "redis")]
pub use crate::backend::redis::RedisBackendError;
pub use crate::backend::BackendError;
pub use crate::box_error::BoxError;
pub use crate::organ::Permanent;
pub use crate::wire::{DecodeError, EncodeError};

/// What can go wrong when building or running a spine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The run took more than `max_steps` events from the backend. The event that would
    /// have been step `max_steps + 1` is returned to the backend, not lost.
    #[error("run exceeded max_steps ({max_steps}); a flow that emits forever is the usual cause")]
    MaxStepsExceeded {
        /// The configured limit.
        max_steps: usize,
    },
    /// The spine's configuration is invalid.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// An event could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// An event could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// The spine's configuration is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Two Rust types registered in one spine have the same event name, so events of
    /// that name could not be routed to the right one.
    #[error("two event types are named {name:?}: `{first}` and `{second}`; give one of them another `#[event(name = \"...\")]`")]
    DuplicateEventName {
        /// The shared name.
        name: &'static str,
        /// The type registered first.
        first: &'static str,
        /// The type registered second.
        second: &'static str,
    },
    /// `concurrency(0)` or `batch_size(0)`.
    #[error("{setting} must be at least 1")]
    Zero {
        /// The setting.
        setting: &'static str,
    },
    /// With [`strict_topology`](crate::SpineBuilder::strict_topology): organs can emit
    /// event types no organ listens to, or their outputs are unknown. Every case is
    /// listed, edges to unheard event types first.
    #[error("strict topology: {}", problem_list(problems))]
    Topology {
        /// Every problem, in registration order.
        problems: Vec<TopologyProblem>,
    },
}

/// One reason why [`strict_topology`](crate::SpineBuilder::strict_topology) rejects a
/// spine (in [`BuildError::Topology`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopologyProblem {
    /// `organ` can emit `event_type`, and no organ of the spine listens to it.
    #[error("organ `{organ}` emits {event_type}, which no organ listens to")]
    Unheard {
        /// The organ's name.
        organ: &'static str,
        /// The event type's name.
        event_type: &'static str,
    },
    /// What `organ` emits is unknown: it returns `Emit` without listing the types.
    #[error("organ `{organ}` returns `Emit`, whose event types are unknown: list them with `#[organ(..., emits = [EventA, EventB])]` (a hand-written `Organ` impl implements `Organ::emits`)")]
    UnknownEmits {
        /// The organ's name.
        organ: &'static str,
    },
}

fn problem_list(problems: &[TopologyProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
