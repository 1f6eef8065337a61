//! [`RedisBackendError`]: what the Redis backend reports, with passwords scrubbed.

use crate::backend::BackendError;

/// A failure of the Redis backend. Every text in it has had the URL's password removed.
///
/// It reaches callers inside a [`BackendError`]: connection problems as
/// [`BackendError::Unavailable`], everything else as [`BackendError::Other`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisBackendError {
    /// The URL or another setting is invalid.
    #[error("invalid Redis backend configuration: {0}")]
    Config(String),
    /// Redis could not be reached, or the connection broke during a command.
    #[error("cannot reach Redis at {url}: {message}")]
    Connection {
        /// The URL, password masked.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// Redis answered a command with an error.
    #[error("Redis command {command} failed: {message}")]
    Command {
        /// The command.
        command: &'static str,
        /// The error Redis or the client reported.
        message: String,
    },
    /// The consumer group (or the stream) no longer exists: Redis lost its data (a
    /// restart without persistence, a failover to an empty replica) or someone deleted
    /// it. Events the group had not handled are gone; the backend does not quietly
    /// create an empty group again, so that the loss is seen.
    #[error("Redis command {command} failed: the consumer group no longer exists (NOGROUP): Redis lost its data (restarted without persistence?) or the group was deleted; build the backend again to create a new group: {message}")]
    GroupMissing {
        /// The command.
        command: &'static str,
        /// The error Redis reported.
        message: String,
    },
    /// Redis answered with a reply this backend does not understand.
    #[error("unexpected reply to {command}: {detail}")]
    Protocol {
        /// The command.
        command: &'static str,
        /// What was wrong with the reply.
        detail: String,
    },
    /// An event is larger than the configured limit and was not stored.
    #[error("event {event_id} encodes to {size} bytes, over the limit of {limit} bytes (see `RedisBackendBuilder::max_payload_bytes`)")]
    PayloadTooLarge {
        /// The event's id.
        event_id: uuid::Uuid,
        /// Its encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A write was sent but the connection broke before Redis confirmed it: the events
    /// may or may not have been stored.
    #[error("the connection to Redis at {url} broke during {command}; the write may or may not have been applied: {message}")]
    Ambiguous {
        /// The command.
        command: &'static str,
        /// The URL, password masked.
        url: String,
        /// What went wrong.
        message: String,
    },
}

impl RedisBackendError {
    /// Whether the error is about reaching Redis rather than about a command.
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            RedisBackendError::Connection { .. } | RedisBackendError::Ambiguous { .. }
        )
    }
}

impl From<RedisBackendError> for BackendError {
    fn from(error: RedisBackendError) -> Self {
        if error.is_connection() {
            BackendError::Unavailable(Box::new(error))
        } else {
            BackendError::Other(Box::new(error))
        }
    }
}

/// Whether a redis-rs error means the connection is unusable (reconnect and maybe retry).
pub(crate) fn is_connection_error(error: &redis::RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
        || error.is_unrecoverable_error()
}
