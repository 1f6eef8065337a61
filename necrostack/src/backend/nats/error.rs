//! [`NatsBackendError`]: what can go wrong talking to NATS, with credentials masked.

use crate::backend::BackendError;

/// An error of the NATS backend. Converted into [`BackendError`]: `Unavailable` for
/// connection problems, `Other` for the rest. Every text has passwords and tokens masked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsBackendError {
    /// A setting is invalid.
    #[error("invalid NATS backend setting: {0}")]
    Config(String),
    /// The server could not be reached, or stayed unreachable for the whole reconnect
    /// timeout.
    #[error("NATS at {url} is unavailable during {operation}: {message}")]
    Unavailable {
        /// What the backend was doing.
        operation: &'static str,
        /// The server URLs, credentials masked.
        url: String,
        /// What went wrong last.
        message: String,
    },
    /// The JetStream API refused a request.
    #[error("NATS JetStream refused {operation}: {message}")]
    JetStream {
        /// What the backend was doing.
        operation: &'static str,
        /// The server's answer.
        message: String,
    },
    /// The durable consumer (or its stream) no longer exists: the server lost its data
    /// (memory storage and a restart) or someone deleted it. Events it had not handled
    /// are gone; the backend does not quietly create an empty one again, so that the loss
    /// is seen.
    #[error("the NATS consumer {consumer} of stream {stream} no longer exists (server data lost, or deleted); build the backend again to create it: {message}")]
    ConsumerMissing {
        /// The stream.
        stream: String,
        /// The consumer.
        consumer: String,
        /// The server's answer.
        message: String,
    },
    /// An event is larger than the configured limit and was not stored.
    #[error("event {event_id} encodes to {size} bytes, over the limit of {limit} bytes (see `NatsBackendBuilder::max_payload_bytes`)")]
    PayloadTooLarge {
        /// The event's id.
        event_id: uuid::Uuid,
        /// Its encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

impl NatsBackendError {
    /// Whether the error is about reaching NATS rather than about a request.
    pub fn is_connection(&self) -> bool {
        matches!(self, NatsBackendError::Unavailable { .. })
    }
}

impl From<NatsBackendError> for BackendError {
    fn from(error: NatsBackendError) -> Self {
        if error.is_connection() {
            BackendError::Unavailable(Box::new(error))
        } else {
            BackendError::Other(Box::new(error))
        }
    }
}
