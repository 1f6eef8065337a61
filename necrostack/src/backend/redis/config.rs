//! [`RedisBackendBuilder`] and [`RedisConfig`]: every setting, with its default and the
//! reason for it.

use std::fmt;
use std::time::Duration;

use super::error::RedisBackendError;
use super::secret::RedactedUrl;

/// Default stream name: namespaced so it does not collide with an application's keys.
pub const DEFAULT_STREAM: &str = "necrostack:events";
/// Default consumer group name.
pub const DEFAULT_GROUP: &str = "necrostack";
/// Default cap on one blocking read: an idle worker costs Redis one command per this
/// period, and a read cut short by a stop or close never holds a connection longer.
pub const DEFAULT_BLOCK_TIME: Duration = Duration::from_secs(2);
/// Default response timeout for commands other than the blocking read (which gets this
/// plus its block time): long enough for a busy server, short enough to notice a dead one.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time to establish a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default idle time after which another consumer takes over a pending entry: it must be
/// longer than the slowest handling of a whole pulled batch, or live work is duplicated;
/// a minute covers ordinary handlers while bounding how long a crashed worker's entries wait.
pub const DEFAULT_CLAIM_IDLE: Duration = Duration::from_secs(60);
/// Default period of the scan for entries left by dead consumers: a scan costs one
/// command, and entries only become claimable after [`DEFAULT_CLAIM_IDLE`] anyway.
pub const DEFAULT_CLAIM_INTERVAL: Duration = Duration::from_secs(10);
/// Default number of deliveries after which an entry is dead-lettered. An entry that was
/// delivered five times without completing has crashed or stalled its workers four times:
/// it is almost surely what kills them, and retrying it forever would stop the group.
pub const DEFAULT_MAX_DELIVERIES: u32 = 5;
/// Default largest encoded event accepted: events are meant to be messages, and a
/// multi-megabyte one is almost always a bug (an unbounded list) that would slow every
/// consumer. Redis itself allows 512 MiB.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
/// Default time `enqueue` and `complete` keep trying to reach a Redis that went away
/// before giving up with an error: covers a restart or a failover.
pub const DEFAULT_RECONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Default period of the scan that moves due scheduled events (retries, `emit_after`)
/// into the stream: it bounds how late a scheduled event is delivered, and costs one
/// short script call per period and worker.
pub const DEFAULT_SCHEDULE_INTERVAL: Duration = Duration::from_millis(100);

/// Default period between two readings of the Redis gauges (cargo feature `metrics`):
/// often enough for a dashboard, and five light commands per period and worker.
pub const DEFAULT_METRICS_INTERVAL: Duration = Duration::from_secs(5);

/// Default lease of a partition (with [`RedisBackendBuilder::partitions`]): a worker
/// renews it every third of this, so a live owner survives two lost heartbeats in a row,
/// while the partitions of a crashed worker wait at most this long for a new owner. Ten
/// seconds keeps the renewal traffic negligible (one script per owned partition every
/// 3.3 s) and a failover short next to the time a crashed process takes to restart.
pub const DEFAULT_PARTITION_LEASE: Duration = Duration::from_secs(10);

/// The shortest partition lease accepted: the heartbeat runs every third of it, and below
/// this a busy machine would miss renewals and pass partitions back and forth.
pub const MIN_PARTITION_LEASE: Duration = Duration::from_millis(300);

/// Where a consumer group created by this backend starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupStart {
    /// From the first entry still in the stream (the default), so that events enqueued
    /// before any worker started are handled, not skipped.
    #[default]
    Beginning,
    /// Only entries added after the group is created.
    End,
}

/// The settings of a [`RedisBackend`](super::RedisBackend); read them back with
/// [`RedisBackend::config`](super::RedisBackend::config). `Debug` and `Display` hide the
/// URL's password.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    pub(crate) url: RedactedUrl,
    pub(crate) stream: String,
    pub(crate) group: String,
    pub(crate) consumer: String,
    pub(crate) dead_letter_stream: Option<String>,
    pub(crate) key_prefix: String,
    pub(crate) block_time: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) claim_idle: Duration,
    pub(crate) claim_interval: Duration,
    pub(crate) max_deliveries: u32,
    pub(crate) max_payload_bytes: usize,
    pub(crate) max_len: Option<usize>,
    pub(crate) reconnect_timeout: Duration,
    pub(crate) schedule_interval: Duration,
    pub(crate) metrics_interval: Duration,
    pub(crate) group_start: GroupStart,
    pub(crate) tls_root_certificate: Option<Vec<u8>>,
    pub(crate) partitions: Option<u32>,
    pub(crate) partition_lease: Duration,
}

impl RedisConfig {
    /// The Redis URL, password masked when formatted.
    pub fn url(&self) -> &RedactedUrl {
        &self.url
    }

    /// The stream key, prefix included.
    pub fn stream_key(&self) -> String {
        format!("{}{}", self.key_prefix, self.stream)
    }

    /// The dead-letter stream key, prefix included (default `{stream}:dlq`).
    pub fn dead_letter_key(&self) -> String {
        match &self.dead_letter_stream {
            Some(name) => format!("{}{}", self.key_prefix, name),
            None => format!("{}:dlq", self.stream_key()),
        }
    }

    /// The key of the sorted set holding scheduled events (`{stream}:scheduled`).
    pub fn scheduled_key(&self) -> String {
        format!("{}:scheduled", self.stream_key())
    }

    /// The number of partitions, `None` for the single stream of an unpartitioned
    /// backend.
    pub fn partitions(&self) -> Option<u32> {
        self.partitions
    }

    /// The lease of a partition (see [`RedisBackendBuilder::partition_lease`]).
    pub fn partition_lease(&self) -> Duration {
        self.partition_lease
    }

    /// The stream key of partition `index` (`{prefix}{stream}:p{index}`), when
    /// partitioned. Its sibling keys (schedule, outbox, lease, fence) put this key in a
    /// hash tag, `{<stream key>}:lease`, so that a partition lives in one Redis Cluster
    /// slot and every script on it touches that slot only.
    ///
    /// ```
    /// use necrostack::RedisBackend;
    ///
    /// let builder = RedisBackend::builder("redis://127.0.0.1").stream("orders").partitions(16);
    /// assert_eq!(builder.config().partition_stream_key(3), "orders:p3");
    /// ```
    pub fn partition_stream_key(&self, index: u32) -> String {
        format!("{}:p{index}", self.stream_key())
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// This process's consumer name within the group.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Deliveries after which an entry is dead-lettered.
    pub fn max_deliveries(&self) -> u32 {
        self.max_deliveries
    }

    /// The largest encoded event accepted, in bytes.
    pub fn max_payload_bytes(&self) -> usize {
        self.max_payload_bytes
    }

    /// The idle time after which a pending entry may be taken over.
    pub fn claim_idle(&self) -> Duration {
        self.claim_idle
    }
}

impl fmt::Display for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} stream={} group={} consumer={}",
            self.url,
            self.stream_key(),
            self.group,
            self.consumer
        )
    }
}

/// Builds a [`RedisBackend`](super::RedisBackend): start with
/// [`RedisBackend::builder`](super::RedisBackend::builder), finish with
/// [`build`](Self::build), which connects and creates the consumer group.
///
/// ```no_run
/// use std::time::Duration;
/// use necrostack::RedisBackend;
///
/// # async fn connect() -> Result<(), necrostack::BackendError> {
/// let backend = RedisBackend::builder("rediss://worker:secret@redis.internal:6380")
///     .key_prefix("staging:")                   // one Redis shared by environments
///     .stream("orders")
///     .group("billing")
///     .consumer("billing-0")                    // stable (pod name): resumes its own entries
///     .claim_idle(Duration::from_secs(120))     // longer than the slowest batch
///     .max_deliveries(3)
///     .max_len(1_000_000)                       // trim old entries (approximately)
///     .build()
///     .await?;
/// assert_eq!(backend.config().stream_key(), "staging:orders");
/// # Ok(())
/// # }
/// ```
#[must_use = "a builder does nothing until `.build().await`"]
#[derive(Debug, Clone)]
pub struct RedisBackendBuilder {
    pub(crate) config: RedisConfig,
}

impl RedisBackendBuilder {
    pub(crate) fn new(url: String) -> Self {
        RedisBackendBuilder {
            config: RedisConfig {
                url: RedactedUrl::new(url),
                stream: DEFAULT_STREAM.to_owned(),
                group: DEFAULT_GROUP.to_owned(),
                consumer: default_consumer_name(),
                dead_letter_stream: None,
                key_prefix: String::new(),
                block_time: DEFAULT_BLOCK_TIME,
                response_timeout: DEFAULT_RESPONSE_TIMEOUT,
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                claim_idle: DEFAULT_CLAIM_IDLE,
                claim_interval: DEFAULT_CLAIM_INTERVAL,
                max_deliveries: DEFAULT_MAX_DELIVERIES,
                max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
                max_len: None,
                reconnect_timeout: DEFAULT_RECONNECT_TIMEOUT,
                schedule_interval: DEFAULT_SCHEDULE_INTERVAL,
                metrics_interval: DEFAULT_METRICS_INTERVAL,
                group_start: GroupStart::Beginning,
                tls_root_certificate: None,
                partitions: None,
                partition_lease: DEFAULT_PARTITION_LEASE,
            },
        }
    }

    /// The stream events are added to and read from (default [`DEFAULT_STREAM`]).
    pub fn stream(mut self, name: impl Into<String>) -> Self {
        self.config.stream = name.into();
        self
    }

    /// The consumer group (default [`DEFAULT_GROUP`]). Each group gets every event once;
    /// the consumers of one group share them.
    pub fn group(mut self, name: impl Into<String>) -> Self {
        self.config.group = name.into();
        self
    }

    /// This worker's name within the group (default: unique per process, from host name,
    /// process id and a random part). Give a stable name (e.g. the pod name) so that a
    /// restarted worker first finishes the entries it left pending, at once, instead of
    /// another worker taking them over after [`claim_idle`](Self::claim_idle).
    pub fn consumer(mut self, name: impl Into<String>) -> Self {
        self.config.consumer = name.into();
        self
    }

    /// The stream dead letters go to (default `{stream}:dlq`).
    pub fn dead_letter_stream(mut self, name: impl Into<String>) -> Self {
        self.config.dead_letter_stream = Some(name.into());
        self
    }

    /// A prefix put before the stream and dead-letter keys (default none), e.g. to share
    /// one Redis between environments.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.key_prefix = prefix.into();
        self
    }

    /// The longest one blocking read waits (default [`DEFAULT_BLOCK_TIME`]); a pull with a
    /// longer timeout reads again. Never 0: `BLOCK 0` would wait forever.
    pub fn block_time(mut self, block: Duration) -> Self {
        self.config.block_time = block;
        self
    }

    /// How long a command may wait for its reply (default [`DEFAULT_RESPONSE_TIMEOUT`]);
    /// the blocking read gets its block time on top.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.config.response_timeout = timeout;
        self
    }

    /// How long establishing a connection may take (default [`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// How long an entry must stay pending, unacknowledged, before another consumer takes
    /// it over with `XAUTOCLAIM` (default [`DEFAULT_CLAIM_IDLE`]).
    pub fn claim_idle(mut self, idle: Duration) -> Self {
        self.config.claim_idle = idle;
        self
    }

    /// How often this worker looks for entries to take over (default
    /// [`DEFAULT_CLAIM_INTERVAL`]).
    pub fn claim_interval(mut self, interval: Duration) -> Self {
        self.config.claim_interval = interval;
        self
    }

    /// The most deliveries of one entry (default [`DEFAULT_MAX_DELIVERIES`]); past it the
    /// entry goes to the dead-letter stream and is acknowledged.
    pub fn max_deliveries(mut self, deliveries: u32) -> Self {
        self.config.max_deliveries = deliveries;
        self
    }

    /// The largest encoded event accepted (default [`DEFAULT_MAX_PAYLOAD_BYTES`]).
    /// `enqueue` refuses larger events with an error; larger entries found in the stream
    /// (from other producers) and larger emitted events are dead-lettered.
    pub fn max_payload_bytes(mut self, bytes: usize) -> Self {
        self.config.max_payload_bytes = bytes;
        self
    }

    /// Trims the stream to about `entries` with `XADD MAXLEN ~` (default: no trimming,
    /// because a trimmed entry is gone even if a group has not read it yet).
    pub fn max_len(mut self, entries: usize) -> Self {
        self.config.max_len = Some(entries);
        self
    }

    /// How long the backend keeps trying to reach a Redis that went away before an
    /// operation (`pull`, `complete`, `enqueue`, ...) returns an error (default
    /// [`DEFAULT_RECONNECT_TIMEOUT`]). The time counts from the first failure, for every
    /// operation alike, so a spine whose Redis is gone for good ends its run with the
    /// error about this long after Redis went away.
    pub fn reconnect_timeout(mut self, timeout: Duration) -> Self {
        self.config.reconnect_timeout = timeout;
        self
    }

    /// How often the Redis gauges (`necrostack_redis_*`, cargo feature `metrics`) are read
    /// (default [`DEFAULT_METRICS_INTERVAL`]).
    pub fn metrics_interval(mut self, interval: Duration) -> Self {
        self.config.metrics_interval = interval;
        self
    }

    /// How often this worker moves scheduled events that are due into the stream
    /// (default [`DEFAULT_SCHEDULE_INTERVAL`]): a scheduled event is delivered no earlier
    /// than due (by the Redis server's clock) and typically within this period after.
    pub fn schedule_interval(mut self, interval: Duration) -> Self {
        self.config.schedule_interval = interval;
        self
    }

    /// Where a group created by [`build`](Self::build) starts (default
    /// [`GroupStart::Beginning`]). An existing group keeps its position.
    pub fn group_start(mut self, start: GroupStart) -> Self {
        self.config.group_start = start;
        self
    }

    /// A PEM root certificate to trust for `rediss://` (default: the system's roots).
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.config.tls_root_certificate = Some(pem.into());
        self
    }

    /// Splits the stream into `partitions` streams (`{stream}:p0` ...), each read by one
    /// worker of the group at a time: events with the same partition key are handled in
    /// enqueue order by one worker at a time across the whole fleet (see the module
    /// documentation, "Partitions"). Without this call the backend uses the single stream
    /// exactly as before; with it the partitioned layout is used, also for `1`. `0` is a
    /// configuration error, and so are stream, prefix or dead-letter names containing `{`
    /// or `}` (they would break the hash tags that keep a partition in one cluster slot).
    ///
    /// ```no_run
    /// use necrostack::RedisBackend;
    ///
    /// # async fn connect() -> Result<(), necrostack::BackendError> {
    /// let backend = RedisBackend::builder("redis://127.0.0.1:6379")
    ///     .stream("orders")
    ///     .partitions(16)
    ///     .build()
    ///     .await?;
    /// assert_eq!(backend.config().partitions(), Some(16));
    /// # Ok(())
    /// # }
    /// ```
    pub fn partitions(mut self, partitions: u32) -> Self {
        self.config.partitions = Some(partitions);
        self
    }

    /// How long a worker's lease on a partition lasts without renewal (default
    /// [`DEFAULT_PARTITION_LEASE`], at least [`MIN_PARTITION_LEASE`]). It bounds how long
    /// the partitions of a crashed or paused worker wait for a new owner; the heartbeat
    /// renews it every third of this.
    pub fn partition_lease(mut self, lease: Duration) -> Self {
        self.config.partition_lease = lease;
        self
    }

    /// The settings so far.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    pub(crate) fn validate(&self) -> Result<(), RedisBackendError> {
        let c = &self.config;
        let problem = if c.stream.is_empty() {
            Some("the stream name is empty")
        } else if c.group.is_empty() {
            Some("the group name is empty")
        } else if c.consumer.is_empty() {
            Some("the consumer name is empty")
        } else if c.block_time < Duration::from_millis(1) {
            Some("block_time must be at least 1 ms (BLOCK 0 would wait forever)")
        } else if c.response_timeout.is_zero() {
            Some("response_timeout must not be zero")
        } else if c.max_deliveries == 0 {
            Some("max_deliveries must be at least 1")
        } else if c.max_payload_bytes == 0 {
            Some("max_payload_bytes must be at least 1")
        } else if c.max_len == Some(0) {
            Some("max_len must be at least 1")
        } else if c.claim_interval.is_zero() {
            Some("claim_interval must not be zero")
        } else if c.schedule_interval.is_zero() {
            Some("schedule_interval must not be zero")
        } else if c.metrics_interval.is_zero() {
            Some("metrics_interval must not be zero")
        } else {
            partition_problem(c)
        };
        match problem {
            Some(problem) => Err(RedisBackendError::Config(problem.to_owned())),
            None => Ok(()),
        }
    }
}

/// What is wrong with the partition settings, if anything.
fn partition_problem(c: &RedisConfig) -> Option<&'static str> {
    let partitions = c.partitions?;
    let braced = |name: &str| name.contains('{') || name.contains('}');
    if partitions == 0 {
        Some("partitions must be at least 1")
    } else if braced(&c.stream) || braced(&c.key_prefix) {
        Some("with partitions, the stream name and key prefix must not contain '{' or '}' (they would break the hash tags that keep a partition in one cluster slot)")
    } else if c.dead_letter_stream.as_deref().is_some_and(braced) {
        Some("with partitions, the dead-letter stream name must not contain '{' or '}'")
    } else if c.partition_lease < MIN_PARTITION_LEASE {
        Some("partition_lease must be at least 300 ms")
    } else {
        None
    }
}

/// `{host}-{pid}-{random}`: unique per process, readable in `XINFO CONSUMERS`.
fn default_consumer_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let random = uuid::Uuid::now_v7().simple().to_string();
    // The last hex digits of a v7 UUID are random.
    let suffix = &random[random.len() - 8..];
    format!("{host}-{}-{suffix}", std::process::id())
}
