//! [`RedisStats`]: what an operator asks of a stream — how long it is, which groups read
//! it, who holds what and for how long, how far behind, how many dead letters and
//! scheduled events — read with [`RedisAdmin::stats`].
//!
//! The result is a list of streams (one per partition) so that partitioned streams can
//! be reported without changing its shape; today a stream has one, unpartitioned.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use redis::Value;

use super::admin::{AdminError, RedisAdmin};
use super::error::RedisBackendError;
use super::reply;

/// The state of everything a [`RedisAdmin`] looks after.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RedisStats {
    /// The Redis server's clock when the stats were read (ages are measured on it).
    pub server_time: DateTime<Utc>,
    /// One entry per partition of the stream (one today: streams are not partitioned).
    pub streams: Vec<StreamStats>,
}

/// One stream (or partition), its groups, dead letters and schedule.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StreamStats {
    /// The stream key.
    pub stream: String,
    /// The partition number; `None` for an unpartitioned stream.
    pub partition: Option<u32>,
    /// Whether the stream exists at all (no event was ever added, or it was deleted).
    pub exists: bool,
    /// Entries in the stream (`XLEN`), handled or not.
    pub length: u64,
    /// The consumer groups reading it.
    pub groups: Vec<GroupStats>,
    /// The dead-letter stream key.
    pub dead_letter_stream: String,
    /// Entries in the dead-letter stream.
    pub dead_letters: u64,
    /// The key of the sorted set of scheduled events (retries, `emit_after`).
    pub scheduled_key: String,
    /// Events scheduled and not yet due (or due and not yet moved).
    pub scheduled: u64,
    /// When the earliest scheduled event is due.
    pub next_due: Option<DateTime<Utc>>,
}

/// One consumer group of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupStats {
    /// The group's name.
    pub name: String,
    /// Entries delivered to a consumer of the group and not yet acknowledged.
    pub pending: u64,
    /// Entries not yet delivered to the group; `None` when Redis cannot tell (before
    /// Redis 7, or after deletions in the stream).
    pub lag: Option<u64>,
    /// The id of the last entry delivered to the group.
    pub last_delivered_id: String,
    /// The oldest entry still pending, if any.
    pub oldest_pending: Option<PendingEntry>,
    /// The group's consumers, live or not.
    pub consumers: Vec<ConsumerStats>,
}

/// One consumer of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerStats {
    /// The consumer's name (by default host-pid-random).
    pub name: String,
    /// Entries it holds, delivered and not acknowledged.
    pub pending: u64,
    /// Since its last attempted interaction (read, claim, ack).
    pub idle: Duration,
    /// Since its last successful interaction; `None` before Redis 7.2.
    pub inactive: Option<Duration>,
}

/// A pending entry: who holds it, since when.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PendingEntry {
    /// The entry id.
    pub id: String,
    /// The consumer holding it.
    pub consumer: String,
    /// How long ago the entry was added to the stream (from its id).
    pub age: Duration,
    /// How long since it was last delivered.
    pub idle: Duration,
    /// How many times it has been delivered.
    pub deliveries: u64,
}

/// A flat field/value reply (`XINFO` rows) as a map.
fn fields(value: &Value) -> HashMap<String, &Value> {
    let mut out = HashMap::new();
    for pair in reply::items(value).unwrap_or_default().chunks(2) {
        if let (Some(key), Some(value)) = (pair.first().and_then(|k| reply::text(k)), pair.get(1)) {
            out.insert(key, *value);
        }
    }
    out
}

fn number(map: &HashMap<String, &Value>, key: &str) -> Option<u64> {
    map.get(key)
        .and_then(|v| reply::integer(v))
        .and_then(|n| u64::try_from(n).ok())
}

fn millis(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The millisecond part of a stream id.
fn id_millis(id: &str) -> u64 {
    id.split('-')
        .next()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(0)
}

impl RedisAdmin {
    /// Reads the state of the stream, its groups and consumers, its dead letters and its
    /// schedule. A stream that does not exist is reported as such (`exists: false`,
    /// everything zero), not as an error.
    ///
    /// ```no_run
    /// # async fn run(admin: necrostack::backend::redis::RedisAdmin) -> Result<(), necrostack::backend::redis::AdminError> {
    /// let stats = admin.stats().await?;
    /// for stream in &stats.streams {
    ///     for group in &stream.groups {
    ///         println!("{} {}: {} pending, lag {:?}", stream.stream, group.name, group.pending, group.lag);
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn stats(&self) -> Result<RedisStats, AdminError> {
        let server_time = self.server_time().await?;
        let stream = self.stream_stats(server_time).await?;
        Ok(RedisStats {
            server_time,
            streams: vec![stream],
        })
    }

    async fn stream_stats(&self, now: DateTime<Utc>) -> Result<StreamStats, AdminError> {
        let core = &self.core;
        let exists = self.check_type(&core.stream, "stream").await?;
        self.check_type(&core.dlq, "stream").await?;
        self.check_type(&core.scheduled, "zset").await?;
        let (length, groups) = if exists {
            (
                self.count("XLEN", &core.stream).await?,
                self.groups(now).await?,
            )
        } else {
            (0, Vec::new())
        };
        Ok(StreamStats {
            stream: core.stream.clone(),
            partition: None,
            exists,
            length,
            groups,
            dead_letter_stream: core.dlq.clone(),
            dead_letters: self.count("XLEN", &core.dlq).await?,
            scheduled_key: core.scheduled.clone(),
            scheduled: self.count("ZCARD", &core.scheduled).await?,
            next_due: super::schedule::next_due(core).await?,
        })
    }

    /// Whether `key` exists; an error when it holds something else than `expected`.
    async fn check_type(&self, key: &str, expected: &'static str) -> Result<bool, AdminError> {
        let value = self
            .core
            .command("TYPE", |c| {
                c.arg(key);
            })
            .await?;
        let found = reply::text(&value).unwrap_or_default();
        match found.as_str() {
            "none" => Ok(false),
            t if t == expected => Ok(true),
            _ => Err(AdminError::WrongType {
                key: key.to_owned(),
                expected,
                found,
            }),
        }
    }

    async fn count(&self, command: &'static str, key: &str) -> Result<u64, AdminError> {
        let value = self
            .core
            .command(command, |c| {
                c.arg(key);
            })
            .await?;
        Ok(reply::integer(&value)
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0))
    }

    async fn server_time(&self) -> Result<DateTime<Utc>, AdminError> {
        let value = self.core.command("TIME", |_| {}).await?;
        let parts = reply::items(&value).unwrap_or_default();
        let secs = parts.first().and_then(|v| reply::integer(v));
        let micros = parts.get(1).and_then(|v| reply::integer(v));
        match (secs, micros) {
            (Some(secs), Some(micros)) => Ok(Utc
                .timestamp_micros(secs.saturating_mul(1_000_000).saturating_add(micros))
                .single()
                .unwrap_or_else(Utc::now)),
            _ => Err(RedisBackendError::Protocol {
                command: "TIME",
                detail: format!("expected [seconds, microseconds], got {value:?}"),
            }
            .into()),
        }
    }

    async fn groups(&self, now: DateTime<Utc>) -> Result<Vec<GroupStats>, AdminError> {
        let value = self
            .core
            .command("XINFO", |c| {
                c.arg("GROUPS").arg(&self.core.stream);
            })
            .await?;
        let mut out = Vec::new();
        for row in reply::items(&value).unwrap_or_default() {
            let info = fields(row);
            let Some(name) = info.get("name").and_then(|v| reply::text(v)) else {
                continue;
            };
            out.push(GroupStats {
                pending: number(&info, "pending").unwrap_or(0),
                lag: number(&info, "lag"),
                last_delivered_id: info
                    .get("last-delivered-id")
                    .and_then(|v| reply::text(v))
                    .unwrap_or_default(),
                oldest_pending: self.oldest_pending(&name, now).await?,
                consumers: self.consumers(&name).await?,
                name,
            });
        }
        Ok(out)
    }

    async fn consumers(&self, group: &str) -> Result<Vec<ConsumerStats>, AdminError> {
        let value = self
            .core
            .command("XINFO", |c| {
                c.arg("CONSUMERS").arg(&self.core.stream).arg(group);
            })
            .await?;
        Ok(reply::items(&value)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|row| {
                let info = fields(row);
                Some(ConsumerStats {
                    name: info.get("name").and_then(|v| reply::text(v))?,
                    pending: number(&info, "pending").unwrap_or(0),
                    idle: millis(number(&info, "idle").unwrap_or(0)),
                    inactive: number(&info, "inactive").map(millis),
                })
            })
            .collect())
    }

    async fn oldest_pending(
        &self,
        group: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<PendingEntry>, AdminError> {
        let value = self
            .core
            .command("XPENDING", |c| {
                c.arg(&self.core.stream).arg(group).arg("-").arg("+").arg(1);
            })
            .await?;
        let rows = reply::items(&value).unwrap_or_default();
        let Some(parts) = rows.first().and_then(|row| reply::items(row)) else {
            return Ok(None);
        };
        let text = |i: usize| parts.get(i).and_then(|v| reply::text(v));
        let int = |i: usize| {
            parts
                .get(i)
                .and_then(|v| reply::integer(v))
                .and_then(|n| u64::try_from(n).ok())
        };
        let Some(id) = text(0) else {
            return Ok(None);
        };
        let now_ms = u64::try_from(now.timestamp_millis()).unwrap_or(0);
        Ok(Some(PendingEntry {
            age: millis(now_ms.saturating_sub(id_millis(&id))),
            consumer: text(1).unwrap_or_default(),
            idle: millis(int(2).unwrap_or(0)),
            deliveries: int(3).unwrap_or(0),
            id,
        }))
    }
}
