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
///
/// Besides broken, refused and timed-out connections, that includes the replies of a
/// Redis that is changing hands: a cluster whose slot has no master for a moment
/// (`CLUSTERDOWN`, `TRYAGAIN`, `MASTERDOWN`), a redirection the cluster client could not
/// follow within its retries (`MOVED`, `ASK`), no connection to the node of a slot, a
/// former master now a replica (`READONLY`) and a server still loading its data after a
/// restart (`LOADING`). None of these means the command was wrong: they pass when the
/// failover is over, so the backend reconnects and retries them within its reconnect
/// timeout, as it does for a restart of a single Redis.
pub(crate) fn is_connection_error(error: &redis::RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
        || error.is_unrecoverable_error()
        || error.kind() == redis::ErrorKind::ClusterConnectionNotFound
        || is_failover_reply(error)
}

/// The codes of [`is_connection_error`]'s transient replies.
const FAILOVER_CODES: [&str; 7] = [
    "CLUSTERDOWN",
    "TRYAGAIN",
    "MASTERDOWN",
    "MOVED",
    "ASK",
    "READONLY",
    "LOADING",
];

/// Whether Redis answered with a failover reply, also inside a transaction or pipeline:
/// a `MULTI`/`EXEC` whose commands were refused that way ends in `EXECABORT` with the
/// commands' own errors inside.
fn is_failover_reply(error: &redis::RedisError) -> bool {
    if error
        .code()
        .is_some_and(|code| FAILOVER_CODES.contains(&code))
    {
        return true;
    }
    error.clone().into_server_errors().is_some_and(|errors| {
        errors
            .iter()
            .any(|(_, server)| FAILOVER_CODES.contains(&server.code()))
    })
}

#[cfg(test)]
mod tests {
    use super::is_connection_error;

    fn server_error(reply: &str) -> redis::RedisError {
        redis::parse_redis_value(format!("-{reply}\r\n").as_bytes())
            .expect("an error reply parses")
            .extract_error()
            .expect_err("an error reply is an error")
    }

    #[test]
    fn failover_replies_are_connection_errors() {
        for reply in [
            "CLUSTERDOWN The cluster is down",
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "MASTERDOWN Link with MASTER is down",
            "MOVED 3999 127.0.0.1:6381",
            "ASK 3999 127.0.0.1:6381",
            "READONLY You can't write against a read only replica.",
            "LOADING Redis is loading the dataset in memory",
        ] {
            assert!(is_connection_error(&server_error(reply)), "{reply}");
        }
    }

    #[test]
    fn command_errors_are_not() {
        for reply in [
            "ERR wrong number of arguments",
            "NOGROUP No such key or consumer group",
            "WRONGTYPE Operation against a key holding the wrong kind of value",
            "CROSSSLOT Keys in request don't hash to the same slot",
            "NOSCRIPT No matching script",
        ] {
            assert!(!is_connection_error(&server_error(reply)), "{reply}");
        }
    }
}
