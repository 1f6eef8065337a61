//! [`Core`]: the state every clone of a [`RedisBackend`](super::RedisBackend) shares, and
//! the stream operations on it: creating the group, running the completion script,
//! dead-lettering, releasing and handing entries over.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use redis::Value;
use tokio::time::Instant;

use super::batcher::Batcher;
use super::config::{GroupStart, RedisBackendBuilder, RedisConfig};
use super::connection::cluster::{check_same_slot, Target};
use super::connection::{Connection, Link};
use super::counters::Counters;
use super::dead_letter::{self, EntryProblem, Source};
use super::error::RedisBackendError;
use super::lease::Lane;
use super::partition::PartitionKeys;
use super::partitioned::Parts;
use super::reply::{self, RawEntry};
use super::script::{Applied, CompleteArgs, Entry, FencedWrites, Keys, Scripts, Writes};
use crate::backend::BackendError;

/// How idle an entry handed over on release or close is made to look, so that any
/// consumer's next `XAUTOCLAIM` takes it at once: a day, more than any sane claim idle.
const HANDOVER_IDLE: Duration = Duration::from_secs(24 * 60 * 60);

/// Where the reader stands in its three sources of entries.
pub(crate) struct Scan {
    /// Re-read this consumer's own pending entries from this id first (`Some("0")` at
    /// start, after a reconnect and after a release); `None` once they are all read.
    pub(crate) recover_from: Option<String>,
    /// `XAUTOCLAIM` cursor; `0-0` starts a new pass.
    pub(crate) claim_cursor: String,
    /// When the next `XAUTOCLAIM` pass may start.
    pub(crate) next_claim: Instant,
}

/// What a connection to Redis is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A worker of the consumer group: reads, acknowledges, writes.
    Consumer,
    /// Only writes events (enqueue, schedule): no group, no read link.
    Producer,
}

/// The settings, keys, connections, scripts and counters (set once in
/// [`connect`](Self::connect), read by every module), and behind methods the state that
/// changes: what this consumer holds, where its reads stand, whether it is closed.
pub(crate) struct Core {
    pub(crate) config: RedisConfig,
    pub(crate) stream: String,
    pub(crate) dlq: String,
    /// The sorted set of scheduled events.
    pub(crate) scheduled: String,
    /// Every command except the blocking read (shared with the partitions' cores).
    pub(crate) cmd: Arc<Link>,
    /// The blocking `XREADGROUP` only.
    pub(crate) read: Link,
    pub(crate) scripts: Scripts,
    /// Completions waiting to be sent together.
    pub(crate) batcher: Batcher,
    pub(crate) counters: Arc<Counters>,
    /// Entry ids this consumer holds: fetched and not yet completed or released. Re-reads
    /// of the pending list skip them, so nothing in flight is delivered twice.
    held: Mutex<HashSet<String>>,
    scan: Mutex<Scan>,
    closed: AtomicBool,
    /// Aborts the running fetch task on close.
    fetch_abort: Mutex<Option<tokio::task::AbortHandle>>,
    /// On the core of one partition: its keys and this worker's lease on it.
    pub(crate) lane: Option<Lane>,
    /// On the main core of a partitioned backend: the partitions.
    pub(crate) parts: Option<Parts>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code path panics while holding these locks; recover rather than propagate.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Core {
    /// Connects and, for a consumer, creates the group and connects the read link.
    pub(crate) async fn connect(
        builder: RedisBackendBuilder,
        role: Role,
    ) -> Result<Core, RedisBackendError> {
        builder.validate()?;
        let config = builder.config;
        let secrets = config.url.secrets();
        let target = Target::discover(&config).await?;
        // A partitioned stream keeps each partition's keys in one slot by construction
        // (hash tags on the partition stream); the single stream needs the user's tag.
        if target.is_cluster() && config.partitions.is_none() {
            check_same_slot(
                &config.stream,
                &[
                    &config.stream_key(),
                    &config.dead_letter_key(),
                    &config.scheduled_key(),
                ],
            )?;
        }
        let counters = Arc::new(Counters::default());
        let url = config.url.to_string();
        let link = |response_timeout: Duration| -> Result<Link, RedisBackendError> {
            Ok(Link::new(
                target.connector(response_timeout, config.connect_timeout)?,
                secrets.clone(),
                url.clone(),
                Arc::clone(&counters),
            ))
        };
        let cmd = Arc::new(link(config.response_timeout)?);
        let read_timeout = config.response_timeout + config.block_time;
        // One core per partition, each with a read link of its own: a blocking read on
        // one partition never delays another (and, on a cluster, each may be on another
        // node). Only the partitions this worker owns ever connect theirs.
        let lanes = (0..config.partitions.unwrap_or(0))
            .map(|index| {
                let stream = config.partition_stream_key(index);
                let keys = PartitionKeys::new(stream, index, &config.group);
                Ok(Arc::new(Core::new(
                    config.clone(),
                    Arc::clone(&cmd),
                    link(read_timeout)?,
                    Arc::clone(&counters),
                    Some(Lane::new(keys)),
                    None,
                )))
            })
            .collect::<Result<Vec<Arc<Core>>, RedisBackendError>>()?;
        let parts = config
            .partitions
            .is_some()
            .then(|| Parts::new(lanes, &config));
        let read = link(read_timeout)?;
        let core = Core::new(config, cmd, read, counters, None, parts);
        core.cmd.get().await?;
        core.check_partition_count().await?;
        if role == Role::Consumer {
            match &core.parts {
                None => {
                    core.ensure_group().await?;
                    core.read.get().await?;
                }
                Some(parts) => {
                    for lane in parts.lanes() {
                        lane.ensure_group().await?;
                    }
                }
            }
        }
        Ok(core)
    }

    /// Records the number of partitions in Redis the first time (`{stream}:partitions`),
    /// and refuses a worker or producer configured with another number: events of one
    /// key would land in different partitions, and their order would be lost.
    async fn check_partition_count(&self) -> Result<(), RedisBackendError> {
        let Some(partitions) = self.config.partitions else {
            return Ok(());
        };
        let key = format!("{{{}}}:partitions", self.config.stream_key());
        self.command("SET", |cmd| {
            cmd.arg(&key).arg(partitions).arg("NX");
        })
        .await?;
        let stored = self
            .command("GET", |cmd| {
                cmd.arg(&key);
            })
            .await?;
        match reply::integer(&stored) {
            Some(n) if n == i64::from(partitions) => Ok(()),
            other => Err(RedisBackendError::Config(format!(
                "the stream {} has {} partitions in Redis ({key}), but this backend is configured with {partitions}; every worker and producer must use the same number",
                self.config.stream_key(),
                other.map_or_else(|| "an unreadable number of".to_owned(), |n| n.to_string())
            ))),
        }
    }

    /// A core on `config`'s keys (the partition's, for a lane).
    fn new(
        config: RedisConfig,
        cmd: Arc<Link>,
        read: Link,
        counters: Arc<Counters>,
        lane: Option<Lane>,
        parts: Option<Parts>,
    ) -> Core {
        let (stream, scheduled) = match &lane {
            Some(lane) => (lane.keys.stream.clone(), lane.keys.scheduled.clone()),
            None => (config.stream_key(), config.scheduled_key()),
        };
        Core {
            stream,
            dlq: config.dead_letter_key(),
            scheduled,
            config,
            cmd,
            read,
            scripts: Scripts::new(),
            batcher: Batcher::default(),
            counters,
            held: Mutex::new(HashSet::new()),
            scan: Mutex::new(Scan {
                recover_from: Some("0".to_owned()),
                claim_cursor: "0-0".to_owned(),
                next_claim: Instant::now(),
            }),
            closed: AtomicBool::new(false),
            fetch_abort: Mutex::new(None),
            lane,
            parts,
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// `Err(Closed)` once the backend is closed.
    pub(crate) fn check_open(&self) -> Result<(), BackendError> {
        if self.is_closed() {
            Err(BackendError::Closed)
        } else {
            Ok(())
        }
    }

    /// Marks the backend closed and stops the fetch in progress; `false` if it was
    /// closed already.
    pub(crate) fn close(&self) -> bool {
        if self.closed.swap(true, Ordering::SeqCst) {
            return false;
        }
        if let Some(abort) = lock(&self.fetch_abort).take() {
            abort.abort();
        }
        true
    }

    /// Remembers the fetch task in progress, so that `close` can stop it.
    pub(crate) fn fetching(&self, task: tokio::task::AbortHandle) {
        *lock(&self.fetch_abort) = Some(task);
    }

    pub(crate) fn held(&self) -> MutexGuard<'_, HashSet<String>> {
        lock(&self.held)
    }

    pub(crate) fn scan(&self) -> MutexGuard<'_, Scan> {
        lock(&self.scan)
    }

    /// Whether a connection has been failing for the whole reconnect timeout: then the
    /// backend gives up and reports the error instead of trying again.
    pub(crate) fn gave_up(&self) -> bool {
        let timeout = self.config.reconnect_timeout;
        self.read.down_for(timeout) || self.cmd.down_for(timeout)
    }

    /// Makes the next fetch re-read this consumer's pending entries first.
    pub(crate) fn recover_pending(&self) {
        self.scan().recover_from = Some("0".to_owned());
    }

    /// `XGROUP CREATE ... MKSTREAM`; an existing group is fine.
    pub(crate) async fn ensure_group(&self) -> Result<(), RedisBackendError> {
        let start = match self.config.group_start {
            GroupStart::Beginning => "0",
            GroupStart::End => "$",
        };
        let result = self
            .cmd
            .retrying(
                "XGROUP CREATE",
                self.config.reconnect_timeout,
                true,
                |mut conn| async move {
                    let reply: redis::RedisResult<Value> = redis::cmd("XGROUP")
                        .arg("CREATE")
                        .arg(&self.stream)
                        .arg(&self.config.group)
                        .arg(start)
                        .arg("MKSTREAM")
                        .query_async(&mut conn)
                        .await;
                    match reply {
                        Ok(_) => Ok(()),
                        Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
                        Err(error) => Err(self.cmd.classify("XGROUP CREATE", error)),
                    }
                },
            )
            .await;
        if result.is_ok() {
            tracing::debug!(stream = %self.stream, group = %self.config.group, "consumer group ready");
        }
        result
    }

    /// Runs the complete script, reconnecting and retrying (it is idempotent).
    pub(crate) async fn run_complete(
        &self,
        args: &CompleteArgs,
    ) -> Result<Applied, RedisBackendError> {
        let scripts = &self.scripts;
        self.cmd
            .retrying(
                "EVALSHA (complete)",
                self.config.reconnect_timeout,
                true,
                |mut conn: Connection| async move {
                    args.run(scripts, &mut conn)
                        .await
                        .map_err(|error| self.cmd.classify("EVALSHA (complete)", error))
                },
            )
            .await
    }

    /// The keys a completion writes to.
    pub(crate) fn keys(&self) -> Keys<'_> {
        Keys {
            stream: &self.stream,
            dead_letters: &self.dlq,
            scheduled: &self.scheduled,
        }
    }

    /// The delivery of `entry_id` to this consumer.
    pub(crate) fn entry<'a>(&'a self, entry_id: &'a str) -> Entry<'a> {
        Entry {
            group: &self.config.group,
            consumer: &self.config.consumer,
            id: entry_id,
        }
    }

    pub(crate) fn source<'a>(&'a self, entry_id: &'a str, deliveries: u32) -> Source<'a> {
        Source {
            stream: &self.stream,
            entry_id,
            group: &self.config.group,
            consumer: &self.config.consumer,
            deliveries,
        }
    }

    /// Moves an entry the spine will never see to the dead-letter stream and acks it.
    pub(crate) async fn dead_letter_entry(
        self: &Arc<Self>,
        entry_id: &str,
        original: &[(Vec<u8>, Vec<u8>)],
        deliveries: u32,
        problem: EntryProblem,
    ) -> Result<(), RedisBackendError> {
        let fields = dead_letter::for_entry(&self.source(entry_id, deliveries), &problem, original);
        let args = match &self.lane {
            None => {
                let writes = Writes {
                    dead_letters: vec![fields],
                    ..Writes::default()
                };
                CompleteArgs::new(
                    &self.keys(),
                    &self.entry(entry_id),
                    self.config.max_len,
                    writes,
                )
            }
            Some(lane) => {
                let writes = FencedWrites {
                    outbox: vec![super::outbox::dead_letter(fields)],
                    ..FencedWrites::default()
                };
                let Some(lease) = lane.lease_value(&self.config.consumer) else {
                    return Ok(());
                };
                CompleteArgs::fenced(
                    &lane.keys,
                    &self.entry(entry_id),
                    self.config.max_len,
                    &lease,
                    writes,
                )
            }
        };
        let applied = self.run_complete(&args).await?;
        if applied == Applied::Done && self.lane.is_some() {
            super::outbox::kick(self);
        }
        if applied == Applied::Done {
            Counters::add(&self.counters.dead_lettered, 1);
            Counters::add(&self.counters.acked, 1);
            tracing::warn!(
                stream = %self.stream,
                entry_id,
                deliveries,
                reason = ?problem,
                "stream entry dead-lettered by the Redis backend"
            );
        }
        Ok(())
    }

    /// Acknowledges entries that were deleted from the stream while pending.
    pub(crate) async fn ack_deleted(&self, ids: &[String]) -> Result<(), RedisBackendError> {
        if ids.is_empty() {
            return Ok(());
        }
        tracing::warn!(
            stream = %self.stream,
            count = ids.len(),
            "pending entries were deleted from the stream (trimmed?) before being handled"
        );
        Counters::add(&self.counters.trimmed, ids.len() as u64);
        self.command("XACK", |cmd| {
            cmd.arg(&self.stream).arg(&self.config.group).arg(ids);
        })
        .await
        .map(drop)
    }

    /// Runs one command on the command link, reconnecting and retrying (only for
    /// commands that are safe to repeat).
    pub(crate) async fn command(
        &self,
        name: &'static str,
        build: impl Fn(&mut redis::Cmd),
    ) -> Result<Value, RedisBackendError> {
        let build = &build;
        self.cmd
            .retrying(
                name,
                self.config.reconnect_timeout,
                true,
                |mut conn| async move {
                    let mut cmd = redis::cmd(name);
                    build(&mut cmd);
                    cmd.query_async::<Value>(&mut conn)
                        .await
                        .map_err(|error| self.cmd.classify(name, error))
                },
            )
            .await
    }

    /// Delivery counts of this consumer's pending entries among `ids`.
    pub(crate) async fn delivery_counts(
        &self,
        ids: &[&str],
    ) -> Result<std::collections::HashMap<String, u32>, RedisBackendError> {
        let (Some(first), Some(last)) = (
            ids.iter().min_by(|a, b| cmp_ids(a, b)),
            ids.iter().max_by(|a, b| cmp_ids(a, b)),
        ) else {
            return Ok(Default::default());
        };
        let count = ids.len() + self.held().len() + 16;
        let value = self
            .command("XPENDING", |cmd| {
                cmd.arg(&self.stream)
                    .arg(&self.config.group)
                    .arg(*first)
                    .arg(*last)
                    .arg(count)
                    .arg(&self.config.consumer);
            })
            .await?;
        reply::pending_counts(&value).map_err(|detail| RedisBackendError::Protocol {
            command: "XPENDING",
            detail,
        })
    }

    /// Makes entries of this consumer look idle for a day, so that any consumer's next
    /// `XAUTOCLAIM` takes them over; this consumer's own re-read of its pending entries
    /// gets them too, whichever comes first. Delivery counts are kept.
    pub(crate) async fn hand_over(&self, ids: &[String]) -> Result<(), RedisBackendError> {
        for chunk in ids.chunks(500) {
            self.command("XCLAIM", |cmd| {
                cmd.arg(&self.stream)
                    .arg(&self.config.group)
                    .arg(&self.config.consumer)
                    .arg(0)
                    .arg(chunk)
                    .arg("IDLE")
                    .arg(HANDOVER_IDLE.as_millis() as u64)
                    .arg("JUSTID");
            })
            .await?;
        }
        Ok(())
    }

    /// All entries pending for this consumer (up to `limit`).
    pub(crate) async fn own_pending(&self, limit: usize) -> Result<Vec<String>, RedisBackendError> {
        let value = self
            .command("XPENDING", |cmd| {
                cmd.arg(&self.stream)
                    .arg(&self.config.group)
                    .arg("-")
                    .arg("+")
                    .arg(limit)
                    .arg(&self.config.consumer);
            })
            .await?;
        reply::pending_ids(&value).map_err(|detail| RedisBackendError::Protocol {
            command: "XPENDING",
            detail,
        })
    }

    /// Reads entries for this consumer on the read link: new ones with `from = ">"`
    /// (blocking up to `block`), or its own pending ones after `from`.
    pub(crate) async fn read_group(
        &self,
        max: usize,
        block: Option<Duration>,
        from: &str,
    ) -> Result<Vec<RawEntry>, RedisBackendError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.config.group)
            .arg(&self.config.consumer)
            .arg("COUNT")
            .arg(max);
        if let Some(block) = block {
            // Never `BLOCK 0`: that waits forever.
            cmd.arg("BLOCK").arg((block.as_millis() as u64).max(1));
        }
        cmd.arg("STREAMS").arg(&self.stream).arg(from);
        let value = self.on_read_link("XREADGROUP", &cmd).await?;
        reply::read_group(&value).map_err(|detail| RedisBackendError::Protocol {
            command: "XREADGROUP",
            detail,
        })
    }

    /// Waits up to `block` for an entry after `after` with a plain `XREAD` (which changes
    /// nothing in the group) on the read link.
    pub(crate) async fn wait_for_entries(
        &self,
        after: &str,
        block: Duration,
    ) -> Result<(), RedisBackendError> {
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg((block.as_millis() as u64).max(1))
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(after);
        self.on_read_link("XREAD", &cmd).await.map(drop)
    }

    /// Runs a read on the read link; a broken connection makes the next fetch re-read
    /// this consumer's pending entries first.
    async fn on_read_link(
        &self,
        name: &'static str,
        cmd: &redis::Cmd,
    ) -> Result<Value, RedisBackendError> {
        let conn = self.read.get().await.inspect_err(|_| {
            self.read.mark_down();
            self.recover_pending();
        })?;
        let mut connection = conn.connection.clone();
        let reply = cmd.query_async::<Value>(&mut connection).await;
        match &reply {
            Err(error) if super::error::is_connection_error(error) => self.read.mark_down(),
            _ => self.read.mark_up(),
        }
        match reply {
            Ok(value) => Ok(value),
            Err(error) if super::error::is_connection_error(&error) => {
                self.read.invalidate(&conn).await;
                self.recover_pending();
                Err(self.read.connection_error(&error))
            }
            Err(error) => Err(self.read.command_error(name, &error)),
        }
    }

    /// One `XAUTOCLAIM` step: (next cursor, claimed entries, ids deleted meanwhile).
    pub(crate) async fn autoclaim(
        &self,
        max: usize,
        cursor: &str,
    ) -> Result<(String, Vec<RawEntry>, Vec<String>), RedisBackendError> {
        let value = self
            .command("XAUTOCLAIM", |cmd| {
                cmd.arg(&self.stream)
                    .arg(&self.config.group)
                    .arg(&self.config.consumer)
                    .arg(self.config.claim_idle.as_millis() as u64)
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(max);
            })
            .await?;
        reply::autoclaim(&value).map_err(|detail| RedisBackendError::Protocol {
            command: "XAUTOCLAIM",
            detail,
        })
    }
}

/// Orders stream ids (`ms-seq`) numerically.
pub(crate) fn cmp_ids(a: &str, b: &str) -> std::cmp::Ordering {
    fn parts(id: &str) -> (u64, u64) {
        let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
        (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
    }
    parts(a).cmp(&parts(b))
}
