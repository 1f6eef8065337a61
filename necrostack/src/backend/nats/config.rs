//! [`NatsBackendBuilder`] and [`NatsConfig`]: every setting, with its default and the
//! reason for it.

use std::fmt;
use std::time::Duration;

use super::error::NatsBackendError;
use super::secret::RedactedUrls;

/// Default stream name. JetStream stream names are global to an account, so it is
/// namespaced; it may not contain `.`, `*`, `>` or whitespace.
pub const DEFAULT_STREAM: &str = "NECROSTACK";
/// Default durable consumer (the group of workers sharing the events).
pub const DEFAULT_CONSUMER: &str = "necrostack";
/// Default `AckWait`: how long a delivery may stay unacknowledged before the server
/// gives it to another worker. The backend sends an in-progress ack every third of it for
/// every message it holds, so a slow handling is not redelivered while alive; the value
/// bounds how long a crashed worker's messages wait. Same reasoning as Redis's claim idle.
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);
/// Default number of deliveries after which a message is dead-lettered: one delivered
/// five times without completing has crashed or stalled its workers four times.
pub const DEFAULT_MAX_DELIVERIES: u32 = 5;
/// Default `MaxAckPending` of a consumer this backend creates: messages delivered and not
/// yet acknowledged, over all workers. The server's default (1000) stalls a fleet of a
/// dozen workers reading ahead a spine batch each plus their scheduled retries.
pub const DEFAULT_MAX_ACK_PENDING: i64 = 10_000;
/// Default largest encoded event accepted: events are messages, and a multi-megabyte
/// one is almost always a bug. The server's own default `max_payload` is 1 MiB too.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
/// Default time to establish the connection in `build`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time a JetStream API call, a publish acknowledgement or an ack confirmation
/// may take: long enough for a busy server or a leader election, short enough to notice a
/// dead one.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time the backend keeps trying to reach a server that went away before an
/// operation fails: covers a restart or a cluster leader election.
pub const DEFAULT_RECONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default cap on one waiting pull request: an idle worker costs the server one request
/// per this period, and a pull cut short never leaves a request behind for longer.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(2);
/// Default duplicate window of a stream this backend creates (the server's default):
/// a repeated publish with the same `Nats-Msg-Id` within it is dropped. It must cover
/// the time from a handling to its redelivery after a crash (`ack_wait` plus the
/// reconnect timeout), or the output of a repeated handling is stored twice.
pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Where a stream created by this backend keeps its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Storage {
    /// On disk (the default): events survive a server restart.
    #[default]
    File,
    /// In memory: faster, lost when the server stops.
    Memory,
}

/// The settings of a [`NatsBackend`](super::NatsBackend); read them back with
/// [`NatsBackend::config`](super::NatsBackend::config). `Debug` and `Display` hide
/// passwords and tokens in the URLs.
#[derive(Clone, Debug)]
pub struct NatsConfig {
    pub(crate) urls: RedactedUrls,
    pub(crate) stream: String,
    pub(crate) subject: Option<String>,
    pub(crate) consumer: String,
    pub(crate) storage: Storage,
    pub(crate) replicas: usize,
    pub(crate) duplicate_window: Duration,
    pub(crate) max_age: Option<Duration>,
    pub(crate) ack_wait: Duration,
    pub(crate) max_deliveries: u32,
    pub(crate) max_ack_pending: i64,
    pub(crate) max_payload_bytes: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) reconnect_timeout: Duration,
    pub(crate) max_wait: Duration,
}

impl NatsConfig {
    /// The server URLs, credentials masked when formatted.
    pub fn urls(&self) -> &RedactedUrls {
        &self.urls
    }

    /// The events stream.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The subject events are published to (default `necrostack.{stream}`).
    pub fn subject(&self) -> String {
        self.subject
            .clone()
            .unwrap_or_else(|| format!("necrostack.{}", self.stream))
    }

    /// The stream of scheduled events (`{stream}_SCHEDULED`).
    pub fn scheduled_stream(&self) -> String {
        format!("{}_SCHEDULED", self.stream)
    }

    /// The subjects of scheduled events: `{subject}.scheduled.{due in Unix ms}`.
    pub fn scheduled_subject(&self, due_ms: i64) -> String {
        format!("{}.scheduled.{due_ms}", self.subject())
    }

    /// The dead-letter stream (`{stream}_DLQ`).
    pub fn dead_letter_stream(&self) -> String {
        format!("{}_DLQ", self.stream)
    }

    /// The subject of dead letters (`{subject}.dead`).
    pub fn dead_letter_subject(&self) -> String {
        format!("{}.dead", self.subject())
    }

    /// The durable consumer: the group of workers.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Deliveries after which a message is dead-lettered.
    pub fn max_deliveries(&self) -> u32 {
        self.max_deliveries
    }

    /// The largest encoded event accepted, in bytes.
    pub fn max_payload_bytes(&self) -> usize {
        self.max_payload_bytes
    }

    /// The `AckWait` asked for a consumer this backend creates.
    pub fn ack_wait(&self) -> Duration {
        self.ack_wait
    }
}

impl fmt::Display for NatsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} stream={} subject={} consumer={}",
            self.urls,
            self.stream,
            self.subject(),
            self.consumer
        )
    }
}

/// Builds a [`NatsBackend`](super::NatsBackend): start with
/// [`NatsBackend::builder`](super::NatsBackend::builder), finish with
/// [`build`](Self::build), which connects and creates the streams and the consumer.
#[must_use = "a builder does nothing until `.build().await`"]
#[derive(Debug, Clone)]
pub struct NatsBackendBuilder {
    pub(crate) config: NatsConfig,
}

impl NatsBackendBuilder {
    pub(crate) fn new(urls: String) -> Self {
        NatsBackendBuilder {
            config: NatsConfig {
                urls: RedactedUrls::new(urls),
                stream: DEFAULT_STREAM.to_owned(),
                subject: None,
                consumer: DEFAULT_CONSUMER.to_owned(),
                storage: Storage::File,
                replicas: 1,
                duplicate_window: DEFAULT_DUPLICATE_WINDOW,
                max_age: None,
                ack_wait: DEFAULT_ACK_WAIT,
                max_deliveries: DEFAULT_MAX_DELIVERIES,
                max_ack_pending: DEFAULT_MAX_ACK_PENDING,
                max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                response_timeout: DEFAULT_RESPONSE_TIMEOUT,
                reconnect_timeout: DEFAULT_RECONNECT_TIMEOUT,
                max_wait: DEFAULT_MAX_WAIT,
            },
        }
    }

    /// The JetStream stream of events (default [`DEFAULT_STREAM`]); created if missing,
    /// with `{stream}_SCHEDULED` and `{stream}_DLQ` beside it. An existing stream is used
    /// as it is (its storage, replicas and window are not changed).
    pub fn stream(mut self, name: impl Into<String>) -> Self {
        self.config.stream = name.into();
        self
    }

    /// The subject events are published to (default `necrostack.{stream}`, so that two
    /// streams never claim the same subject).
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.config.subject = Some(subject.into());
        self
    }

    /// The durable pull consumer (default [`DEFAULT_CONSUMER`]): the workers of one
    /// consumer share its events; each consumer gets every event.
    pub fn consumer(mut self, name: impl Into<String>) -> Self {
        self.config.consumer = name.into();
        self
    }

    /// Storage of streams this backend creates (default [`Storage::File`], so events
    /// survive a server restart).
    pub fn storage(mut self, storage: Storage) -> Self {
        self.config.storage = storage;
        self
    }

    /// Replicas of streams this backend creates (default 1, what a single server can
    /// hold; use 3 on a cluster so that losing a node loses nothing).
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.config.replicas = replicas;
        self
    }

    /// The duplicate window of the events stream, when this backend creates it (default
    /// [`DEFAULT_DUPLICATE_WINDOW`]).
    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.config.duplicate_window = window;
        self
    }

    /// Discards events older than this from a stream this backend creates (default:
    /// never, because a discarded event is gone even if no worker handled it).
    pub fn max_age(mut self, age: Duration) -> Self {
        self.config.max_age = Some(age);
        self
    }

    /// `AckWait` of a consumer this backend creates (default [`DEFAULT_ACK_WAIT`]). An
    /// existing consumer keeps its own, and the backend uses that.
    pub fn ack_wait(mut self, wait: Duration) -> Self {
        self.config.ack_wait = wait;
        self
    }

    /// The most deliveries of one message (default [`DEFAULT_MAX_DELIVERIES`]); past it
    /// the message goes to the dead-letter stream and is terminated.
    pub fn max_deliveries(mut self, deliveries: u32) -> Self {
        self.config.max_deliveries = deliveries;
        self
    }

    /// `MaxAckPending` of a consumer this backend creates (default
    /// [`DEFAULT_MAX_ACK_PENDING`]).
    pub fn max_ack_pending(mut self, pending: i64) -> Self {
        self.config.max_ack_pending = pending;
        self
    }

    /// The largest encoded event accepted (default [`DEFAULT_MAX_PAYLOAD_BYTES`]):
    /// `enqueue` refuses larger events; larger messages found in the stream and larger
    /// emitted events are dead-lettered.
    pub fn max_payload_bytes(mut self, bytes: usize) -> Self {
        self.config.max_payload_bytes = bytes;
        self
    }

    /// How long `build` may take to connect (default [`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// How long one API call or confirmation may take (default
    /// [`DEFAULT_RESPONSE_TIMEOUT`]).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.config.response_timeout = timeout;
        self
    }

    /// How long the backend keeps trying to reach a server that went away before an
    /// operation returns an error (default [`DEFAULT_RECONNECT_TIMEOUT`]). The time counts
    /// from the first failure, so a spine whose server is gone for good ends its run with
    /// the error about this long after the server went away.
    pub fn reconnect_timeout(mut self, timeout: Duration) -> Self {
        self.config.reconnect_timeout = timeout;
        self
    }

    /// The longest one waiting pull request lasts (default [`DEFAULT_MAX_WAIT`]); a pull
    /// with a longer timeout asks again.
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.config.max_wait = wait;
        self
    }

    /// The settings so far.
    pub fn config(&self) -> &NatsConfig {
        &self.config
    }

    pub(crate) fn validate(&self) -> Result<(), NatsBackendError> {
        let c = &self.config;
        let bad_name = |name: &str| {
            name.is_empty() || name.contains(['.', '*', '>', ' ', '\t', '\n', '\r', '/', '\\'])
        };
        let problem = if c.urls.expose().is_empty() {
            Some("no server URL")
        } else if bad_name(&c.stream) {
            Some("the stream name is empty or contains '.', '*', '>', a slash or whitespace")
        } else if bad_name(&c.consumer) {
            Some("the consumer name is empty or contains '.', '*', '>', a slash or whitespace")
        } else if c.subject().is_empty() || c.subject().contains(['*', '>', ' ']) {
            Some("the subject is empty or contains a wildcard or a space")
        } else if c.replicas == 0 || c.replicas > 5 {
            Some("replicas must be between 1 and 5")
        } else if c.ack_wait < Duration::from_millis(100) {
            Some("ack_wait must be at least 100 ms")
        } else if c.max_deliveries == 0 {
            Some("max_deliveries must be at least 1")
        } else if c.max_payload_bytes == 0 {
            Some("max_payload_bytes must be at least 1")
        } else if c.response_timeout.is_zero() {
            Some("response_timeout must not be zero")
        } else if c.max_wait < Duration::from_millis(10) {
            Some("max_wait must be at least 10 ms")
        } else {
            None
        };
        match problem {
            Some(problem) => Err(NatsBackendError::Config(problem.to_owned())),
            None => Ok(()),
        }
    }
}
