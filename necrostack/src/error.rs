//! The crate's top-level [`Error`].

use crate::backend::BackendError;
use crate::spine::BuildError;
use crate::wire::{DecodeError, EncodeError};

/// A boxed error that can cross threads.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong when building or running a spine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The run took more than `max_steps` events from the backend. The event that would
    /// have been step `max_steps + 1` is returned to the backend, not lost.
    #[error("run exceeded max_steps ({max_steps}); a flow that emits forever is the usual cause")]
    MaxStepsExceeded {
        /// The configured limit.
        max_steps: u64,
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
