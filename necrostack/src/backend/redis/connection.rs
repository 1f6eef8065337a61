//! [`Link`]: one Redis connection that reconnects when it breaks.
//!
//! The backend keeps two: one for the blocking read, so that a read waiting for events
//! never delays acknowledgements and emitted events, and one for everything else. A
//! command that fails because the connection is unusable drops it; the next command
//! connects again. [`Link::retrying`] reconnects with backoff (exponential, with full
//! jitter so that a fleet does not reconnect in lockstep) until the reconnect timeout,
//! counted from when the link first failed: every operation of a backend whose Redis is
//! gone gives up at about the same moment, instead of each one waiting out a timeout of
//! its own.
//!
//! A link's [`Connection`] is either one multiplexed connection to a single Redis or a
//! redis-rs cluster connection to a Redis Cluster ([`cluster`] finds out which the URL
//! points at). Both run the same commands, pipelines and scripts: the cluster connection
//! sends each to the master of its key's slot and follows redirections itself, so the
//! rest of the backend does not know which one it talks to. Each link of a clustered
//! backend is a cluster connection of its own, so the blocking read still never delays
//! the other commands.

pub(crate) mod cluster;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, Pipeline, RedisFuture, RedisResult, Value};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::counters::Counters;
use super::error::{is_connection_error, RedisBackendError};
use super::secret::Secrets;

/// The first wait between reconnection attempts; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The connection every command runs on: to a single Redis, or to a Redis Cluster. It is
/// a [`ConnectionLike`] either way, so commands, pipelines and scripts run on it
/// unchanged; cloning it is cheap (both kinds are handles to a shared connection).
#[derive(Clone)]
pub(crate) enum Connection {
    /// One multiplexed connection to a standalone Redis (or a primary).
    Single(MultiplexedConnection),
    /// Connections to every master of a Redis Cluster, each command sent to its slot's.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(connection) => connection.req_packed_command(cmd),
            Connection::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            Connection::Cluster(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(connection) => connection.get_db(),
            Connection::Cluster(connection) => connection.get_db(),
        }
    }
}

/// How a [`Link`] makes a new connection: the client and the timeouts of one link.
#[derive(Clone)]
pub(crate) enum Connector {
    /// A standalone Redis.
    Single {
        /// The client of the URL.
        client: Client,
        /// Response and connection timeouts.
        options: AsyncConnectionConfig,
    },
    /// A Redis Cluster; the client carries the timeouts and retries.
    Cluster(ClusterClient),
}

impl Connector {
    /// A new connection.
    async fn connect(&self) -> RedisResult<Connection> {
        match self {
            Connector::Single { client, options } => client
                .get_multiplexed_async_connection_with_config(options)
                .await
                .map(Connection::Single),
            Connector::Cluster(client) => {
                client.get_async_connection().await.map(Connection::Cluster)
            }
        }
    }

    /// Whether it connects to a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Connector::Cluster(_))
    }
}

/// A connection that is re-established on demand after it breaks.
pub(crate) struct Link {
    connector: Connector,
    slot: Mutex<Slot>,
    secrets: Secrets,
    url: String,
    counters: Arc<Counters>,
    /// When the link first failed since it last worked; `None` while it works.
    down_since: std::sync::Mutex<Option<Instant>>,
}

#[derive(Default)]
struct Slot {
    connection: Option<Connection>,
    /// Incremented on every successful connect; tells a stale failure from a fresh link.
    generation: u64,
}

/// A connection handed out by [`Link::get`], with the generation it belongs to.
pub(crate) struct Conn {
    pub(crate) connection: Connection,
    generation: u64,
}

/// How a failed command ended, for [`Link::retrying`].
pub(crate) enum Failure {
    /// The connection is unusable: reconnect, and retry if the operation allows it.
    Connection(redis::RedisError),
    /// Redis or the reply was wrong: do not retry.
    Fatal(RedisBackendError),
}

impl Link {
    pub(crate) fn new(
        connector: Connector,
        secrets: Secrets,
        url: String,
        counters: Arc<Counters>,
    ) -> Self {
        Link {
            connector,
            slot: Mutex::new(Slot::default()),
            secrets,
            url,
            counters,
            down_since: std::sync::Mutex::new(None),
        }
    }

    /// Whether the link connects to a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        self.connector.is_cluster()
    }

    fn down_since(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        // Nothing panics while holding it; recover rather than propagate.
        self.down_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records that a command went through: the link is up.
    pub(crate) fn mark_up(&self) {
        *self.down_since() = None;
    }

    /// Records that the link failed; the reconnect timeout counts from the first failure.
    pub(crate) fn mark_down(&self) {
        self.down_since().get_or_insert_with(Instant::now);
    }

    /// Whether the link has been failing for `timeout` or longer.
    pub(crate) fn down_for(&self, timeout: Duration) -> bool {
        self.down_since()
            .is_some_and(|since| since.elapsed() >= timeout)
    }

    /// When an operation started at `started` gives up: `timeout` after its start or
    /// after the link first failed, whichever is earlier.
    fn give_up_at(&self, started: Instant, timeout: Duration) -> Instant {
        let since = self.down_since().unwrap_or(started).min(started);
        since + timeout
    }

    /// The current connection, connecting first if there is none.
    pub(crate) async fn get(&self) -> Result<Conn, RedisBackendError> {
        let mut slot = self.slot.lock().await;
        if let Some(connection) = &slot.connection {
            return Ok(Conn {
                connection: connection.clone(),
                generation: slot.generation,
            });
        }
        let connection = self
            .connector
            .connect()
            .await
            .map_err(|error| self.connection_error(&error))?;
        if slot.generation > 0 {
            self.counters.reconnections.fetch_add(1, Ordering::Relaxed);
            tracing::info!(url = %self.url, cluster = self.is_cluster(), "reconnected to Redis");
        }
        slot.generation += 1;
        slot.connection = Some(connection.clone());
        Ok(Conn {
            connection,
            generation: slot.generation,
        })
    }

    /// Drops `conn`'s connection if it is still the current one, so the next
    /// [`get`](Self::get) reconnects.
    pub(crate) async fn invalidate(&self, conn: &Conn) {
        let mut slot = self.slot.lock().await;
        if slot.generation == conn.generation && slot.connection.is_some() {
            slot.connection = None;
            tracing::warn!(url = %self.url, "connection to Redis lost; will reconnect");
        }
    }

    /// Drops the connection for good (until the next `get`).
    pub(crate) async fn disconnect(&self) {
        self.slot.lock().await.connection = None;
    }

    /// A connection error, password scrubbed.
    pub(crate) fn connection_error(&self, error: &redis::RedisError) -> RedisBackendError {
        RedisBackendError::Connection {
            url: self.url.clone(),
            message: self.secrets.scrub(&error.to_string()),
        }
    }

    /// A command error, password scrubbed.
    pub(crate) fn command_error(
        &self,
        command: &'static str,
        error: &redis::RedisError,
    ) -> RedisBackendError {
        let message = self.secrets.scrub(&error.to_string());
        if error.code() == Some("NOGROUP") {
            return RedisBackendError::GroupMissing { command, message };
        }
        RedisBackendError::Command { command, message }
    }

    /// Classifies a redis-rs error of `command`.
    pub(crate) fn classify(&self, command: &'static str, error: redis::RedisError) -> Failure {
        if is_connection_error(&error) {
            Failure::Connection(error)
        } else {
            Failure::Fatal(self.command_error(command, &error))
        }
    }

    /// Runs `op` on a connection, reconnecting with backoff until `timeout` has passed.
    /// When `idempotent` is false, a connection failure after the command may have been
    /// sent is not retried but reported as [`RedisBackendError::Ambiguous`].
    pub(crate) async fn retrying<T, F, Fut>(
        &self,
        command: &'static str,
        timeout: Duration,
        idempotent: bool,
        mut op: F,
    ) -> Result<T, RedisBackendError>
    where
        F: FnMut(Connection) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let started = Instant::now();
        let mut backoff = FIRST_BACKOFF;
        loop {
            let error = match self.get().await {
                Ok(conn) => match op(conn.connection.clone()).await {
                    Ok(value) => {
                        self.mark_up();
                        return Ok(value);
                    }
                    Err(Failure::Fatal(error)) => {
                        // Redis answered: the link works, the command did not.
                        self.mark_up();
                        return Err(error);
                    }
                    Err(Failure::Connection(error)) => {
                        self.invalidate(&conn).await;
                        if !idempotent {
                            return Err(RedisBackendError::Ambiguous {
                                command,
                                url: self.url.clone(),
                                message: self.secrets.scrub(&error.to_string()),
                            });
                        }
                        self.connection_error(&error)
                    }
                },
                Err(error) => error,
            };
            self.mark_down();
            let left = self
                .give_up_at(started, timeout)
                .saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(error);
            }
            // The last wait is cut to the time left, so the link is tried for the whole
            // reconnect timeout, not given up early.
            let wait = jittered(backoff).min(left);
            tracing::debug!(%error, retry_in = ?wait, command, "Redis unavailable; retrying");
            tokio::time::sleep(wait).await;
            backoff = next_backoff(backoff);
        }
    }
}

/// The backoff after `backoff`: doubled, up to [`MAX_BACKOFF`].
pub(crate) fn next_backoff(backoff: Duration) -> Duration {
    (backoff * 2).min(MAX_BACKOFF)
}

/// The first backoff of a reconnection sequence.
pub(crate) fn first_backoff() -> Duration {
    FIRST_BACKOFF
}

/// "Equal jitter": a random wait from half of `backoff` to all of it, so that the workers
/// of a fleet that lost Redis together do not reconnect in lockstep. (Half rather than
/// zero, so that a dead server is not hammered by back-to-back attempts.)
pub(crate) fn jittered(backoff: Duration) -> Duration {
    let nanos = u64::try_from(backoff.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(nanos / 2..=nanos.max(1)))
}
