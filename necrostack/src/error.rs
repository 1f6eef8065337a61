//! Every public error type, in one place: the crate's [`Error`] and the errors it wraps.
//!
//! Each is also at the crate root (`necrostack::DecodeError`), and some where they are
//! used (`necrostack::backend::BackendError`); those are the same types, not aliases.
//!
//! | type | what failed |
//! |---|---|
//! | [`Error`] | building or running a spine; wraps the ones below |
//! | [`BuildError`] | the spine's configuration |
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
}
