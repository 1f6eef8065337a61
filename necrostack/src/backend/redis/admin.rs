//! [`RedisAdmin`]: the operator's handle on a stream — reading, purging (and, in
//! [`replay`](super::replay), replaying) dead letters, and the stream's stats — without
//! joining a consumer group, so that looking never changes what the workers see.

use std::sync::Arc;

use redis::Value;
use serde::Deserialize;

use super::config::{RedisBackendBuilder, RedisConfig};
use super::core::{Core, Role};
use super::dead_letter::{RedisDeadLetter, ORIGINAL_FIELD_PREFIX};
use super::error::RedisBackendError;
use super::fetch::ENVELOPE_FIELD;
use super::reply::{self, RawEntry};
use crate::backend::BackendError;

/// How many dead-letter entries one `XRANGE` reads while a filtered listing looks for
/// matches.
const SCAN_CHUNK: usize = 256;

/// What an admin operation reports when it fails.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// An argument is not a stream entry id (`<ms>` or `<ms>-<seq>`).
    #[error(
        "{0:?} is not a stream entry id (expected <milliseconds>-<sequence>, e.g. 1733062000000-0)"
    )]
    InvalidId(String),
    /// A key that should be a stream (or the schedule's sorted set) is something else.
    #[error("key {key:?} holds a Redis {found}, not a {expected}: is --stream right?")]
    WrongType {
        /// The key.
        key: String,
        /// What it should be.
        expected: &'static str,
        /// What Redis says it is.
        found: String,
    },
    /// Redis could not be reached, refused a command or answered strangely.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl From<RedisBackendError> for AdminError {
    fn from(error: RedisBackendError) -> Self {
        AdminError::Backend(error.into())
    }
}

/// An operator's connection to one stream, its dead letters and its schedule: for tools
/// and UIs. It creates no consumer group and reads nothing as a consumer.
///
/// Build it with [`RedisBackendBuilder::build_admin`], with the same `stream`,
/// `key_prefix` and `dead_letter_stream` as the workers. Cloning shares the connection.
///
/// ```no_run
/// use necrostack::backend::redis::DeadLetterQuery;
/// use necrostack::RedisBackend;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let admin = RedisBackend::builder("redis://127.0.0.1:6379")
///     .stream("orders")
///     .build_admin()
///     .await?;
/// let page = admin
///     .dead_letter_page(&DeadLetterQuery::new().limit(20).organ("charge"))
///     .await?;
/// for letter in &page.letters {
///     println!("{} {}", letter.id, letter.reason);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisAdmin {
    pub(crate) core: Arc<Core>,
}

impl std::fmt::Debug for RedisAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisAdmin")
            .field("stream", &self.core.stream)
            .field("url", self.core.config.url())
            .finish_non_exhaustive()
    }
}

impl RedisBackendBuilder {
    /// Connects for administration: a [`RedisAdmin`]. Like
    /// [`build_producer`](Self::build_producer), it creates no consumer group, so an
    /// operator looking at a stream never adds a group the workers would not know about.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), necrostack::Error> {
    /// let admin = necrostack::RedisBackend::builder("redis://127.0.0.1:6379")
    ///     .stream("orders")
    ///     .build_admin()
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn build_admin(self) -> Result<RedisAdmin, BackendError> {
        let core = Arc::new(Core::connect(self, Role::Producer).await?);
        Ok(RedisAdmin { core })
    }
}

/// Which dead letters to list: a page of at most `limit`, after an entry id, optionally
/// only those of one event type or one organ.
#[derive(Debug, Clone)]
pub struct DeadLetterQuery {
    after: Option<String>,
    limit: usize,
    event_type: Option<String>,
    organ: Option<String>,
}

impl Default for DeadLetterQuery {
    fn default() -> Self {
        Self::new()
    }
}

impl DeadLetterQuery {
    /// The first 50 dead letters, oldest first, of any type and organ.
    pub fn new() -> Self {
        DeadLetterQuery {
            after: None,
            limit: 50,
            event_type: None,
            organ: None,
        }
    }

    /// Only entries after this dead-letter id: pass the previous page's
    /// [`next_after`](DeadLetterPage::next_after) to get the next page.
    pub fn after(mut self, id: impl Into<String>) -> Self {
        self.after = Some(id.into());
        self
    }

    /// At most this many entries (at least 1).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit.max(1);
        self
    }

    /// Only dead letters of events of this type.
    pub fn event_type(mut self, event_type: impl Into<String>) -> Self {
        self.event_type = Some(event_type.into());
        self
    }

    /// Only dead letters written because this organ failed.
    pub fn organ(mut self, organ: impl Into<String>) -> Self {
        self.organ = Some(organ.into());
        self
    }

    fn matches(&self, letter: &RedisDeadLetter) -> bool {
        let type_ok = self
            .event_type
            .as_deref()
            .is_none_or(|t| letter.event_type().as_deref() == Some(t));
        let organ_ok = self
            .organ
            .as_deref()
            .is_none_or(|o| letter.organ.as_deref() == Some(o));
        type_ok && organ_ok
    }

    fn filtered(&self) -> bool {
        self.event_type.is_some() || self.organ.is_some()
    }
}

/// One page of dead letters, oldest first.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeadLetterPage {
    /// The dead letters of this page.
    pub letters: Vec<RedisDeadLetter>,
    /// Where the next page starts ([`DeadLetterQuery::after`]); `None` when this is the
    /// last page.
    pub next_after: Option<String>,
}

/// What became of one id passed to [`RedisAdmin::purge`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PurgeOutcome {
    /// The dead-letter id.
    pub id: String,
    /// Whether it was there and is now deleted (`false`: there was no such entry).
    pub deleted: bool,
}

/// Just enough of an envelope to filter by its type and show its id, read leniently so
/// that an envelope the strict decoder refuses still lists with its type.
#[derive(Deserialize)]
struct EnvelopeHead {
    id: Option<String>,
    event_type: Option<String>,
}

impl RedisDeadLetter {
    /// The event's JSON as it was last in the stream: the `envelope` field, or for an
    /// entry the backend dead-lettered before decoding it (too many deliveries, wrong
    /// fields), the original entry's `envelope` field. `None` when there is neither.
    pub fn original_envelope(&self) -> Option<&[u8]> {
        self.envelope.as_deref().or_else(|| {
            self.original
                .iter()
                .find(|(name, _)| name == ENVELOPE_FIELD)
                .map(|(_, value)| value.as_slice())
        })
    }

    fn head(&self) -> Option<EnvelopeHead> {
        serde_json::from_slice(self.original_envelope()?).ok()
    }

    /// The event type, from the envelope (or the `event_type` field of a dead letter for
    /// an event that could not be encoded).
    pub fn event_type(&self) -> Option<String> {
        self.head()
            .and_then(|h| h.event_type)
            .or_else(|| self.field("event_type"))
    }

    /// The event id, from the envelope (or the `event_id` field).
    pub fn event_id(&self) -> Option<String> {
        self.head()
            .and_then(|h| h.id)
            .or_else(|| self.field("event_id"))
    }

    /// When the entry was dead-lettered (RFC 3339), as stored.
    pub fn dead_lettered_at(&self) -> Option<String> {
        self.field("dead_lettered_at")
    }

    /// A field of the dead-letter entry, as text.
    pub fn field(&self, name: &str) -> Option<String> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// Whether the fields copied from the original entry are exactly what a replay can
    /// put back (the envelope and nothing else unknown).
    pub(crate) fn original_is_replayable(&self) -> bool {
        let original_ok =
            self.original.iter().all(|(name, _)| {
                name == ENVELOPE_FIELD || name == super::fetch::REPLAYED_FROM_FIELD
            }) && self.original.iter().any(|(name, _)| name == ENVELOPE_FIELD);
        self.envelope.is_some() || original_ok
    }

    /// The name of the field holding the replayable envelope.
    pub(crate) fn envelope_field(&self) -> String {
        if self.envelope.is_some() {
            ENVELOPE_FIELD.to_owned()
        } else {
            format!("{ORIGINAL_FIELD_PREFIX}{ENVELOPE_FIELD}")
        }
    }
}

/// Refuses anything but `<ms>` or `<ms>-<seq>` before it reaches Redis.
pub(crate) fn check_id(id: &str) -> Result<(), AdminError> {
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    let ok = match id.split_once('-') {
        Some((ms, seq)) => digits(ms) && digits(seq),
        None => digits(id),
    };
    if ok {
        Ok(())
    } else {
        Err(AdminError::InvalidId(id.to_owned()))
    }
}

/// The id right after `id` (`ms-(seq+1)`), for exclusive bounds.
fn next_id(id: &str) -> String {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    let ms: u64 = ms.parse().unwrap_or(0);
    match seq.parse::<u64>().unwrap_or(0).checked_add(1) {
        Some(seq) => format!("{ms}-{seq}"),
        None => format!("{}-0", ms.saturating_add(1)),
    }
}

impl RedisAdmin {
    /// The settings (stream, dead-letter and schedule keys, URL with password masked).
    pub fn config(&self) -> &RedisConfig {
        &self.core.config
    }

    /// The dead-letter stream's key.
    pub fn dead_letter_key(&self) -> &str {
        &self.core.dlq
    }

    /// The event stream's key.
    pub fn stream_key(&self) -> &str {
        &self.core.stream
    }

    /// One page of dead letters, oldest first. A missing dead-letter stream is an empty
    /// page. With filters, it reads on until it has a full page or reaches the end.
    ///
    /// ```no_run
    /// # use necrostack::backend::redis::{DeadLetterQuery, RedisAdmin};
    /// # async fn run(admin: RedisAdmin) -> Result<(), necrostack::backend::redis::AdminError> {
    /// let mut query = DeadLetterQuery::new().limit(100);
    /// loop {
    ///     let page = admin.dead_letter_page(&query).await?;
    ///     for letter in &page.letters {
    ///         println!("{} {:?} {}", letter.id, letter.event_type(), letter.reason);
    ///     }
    ///     match page.next_after {
    ///         Some(after) => query = query.after(after),
    ///         None => break,
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn dead_letter_page(
        &self,
        query: &DeadLetterQuery,
    ) -> Result<DeadLetterPage, AdminError> {
        if let Some(after) = &query.after {
            check_id(after)?;
        }
        // One more than a page, to know whether there is a next page.
        let wanted = query.limit + 1;
        let mut cursor = query.after.clone();
        let mut letters = Vec::new();
        'scan: loop {
            let chunk = if query.filtered() {
                SCAN_CHUNK
            } else {
                wanted - letters.len()
            };
            let entries = self.range(cursor.as_deref(), "+", chunk).await?;
            let at_end = entries.len() < chunk;
            for entry in entries {
                cursor = Some(entry.id.clone());
                let letter =
                    RedisDeadLetter::from_entry(entry.id, entry.fields.unwrap_or_default());
                if query.matches(&letter) {
                    letters.push(letter);
                    if letters.len() == wanted {
                        break 'scan;
                    }
                }
            }
            if at_end {
                break;
            }
        }
        let more = letters.len() > query.limit;
        letters.truncate(query.limit);
        let next_after = more.then(|| letters.last().map(|l| l.id.clone())).flatten();
        Ok(DeadLetterPage {
            letters,
            next_after,
        })
    }

    /// The dead letter with this id; `None` when there is none.
    ///
    /// ```no_run
    /// # async fn run(admin: necrostack::backend::redis::RedisAdmin) -> Result<(), necrostack::backend::redis::AdminError> {
    /// if let Some(letter) = admin.dead_letter("1733062000000-0").await? {
    ///     println!("{}: {}", letter.reason_kind, letter.reason);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn dead_letter(&self, id: &str) -> Result<Option<RedisDeadLetter>, AdminError> {
        check_id(id)?;
        let value = self
            .core
            .command("XRANGE", |c| {
                c.arg(&self.core.dlq).arg(id).arg(id).arg("COUNT").arg(1);
            })
            .await?;
        let mut entries = parse_entries(&value, "XRANGE")?;
        Ok(entries
            .pop()
            .map(|e| RedisDeadLetter::from_entry(e.id, e.fields.unwrap_or_default())))
    }

    /// Deletes these dead letters; says of each whether it was there.
    ///
    /// ```no_run
    /// # async fn run(admin: necrostack::backend::redis::RedisAdmin) -> Result<(), necrostack::backend::redis::AdminError> {
    /// for outcome in admin.purge(&["1733062000000-0".to_owned()]).await? {
    ///     println!("{} deleted: {}", outcome.id, outcome.deleted);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn purge(&self, ids: &[String]) -> Result<Vec<PurgeOutcome>, AdminError> {
        for id in ids {
            check_id(id)?;
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let value = self
                .core
                .command("XDEL", |c| {
                    c.arg(&self.core.dlq).arg(id);
                })
                .await?;
            out.push(PurgeOutcome {
                id: id.clone(),
                deleted: reply::integer(&value).unwrap_or(0) > 0,
            });
        }
        Ok(out)
    }

    /// Deletes every dead letter there is now, in one `XTRIM ... MINID`: one written
    /// while this runs (by a worker) is kept, so nothing is deleted unseen. Returns how
    /// many were deleted (0 for an empty or missing dead-letter stream).
    ///
    /// ```no_run
    /// # async fn run(admin: necrostack::backend::redis::RedisAdmin) -> Result<(), necrostack::backend::redis::AdminError> {
    /// let deleted = admin.purge_all().await?;
    /// println!("{deleted} dead letters deleted");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn purge_all(&self) -> Result<u64, AdminError> {
        let Some(last) = self.last_dead_letter_id().await? else {
            return Ok(0);
        };
        let value = self
            .core
            .command("XTRIM", |c| {
                c.arg(&self.core.dlq).arg("MINID").arg(next_id(&last));
            })
            .await?;
        Ok(reply::integer(&value)
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0))
    }

    /// The id of the newest dead letter, if any.
    pub(crate) async fn last_dead_letter_id(&self) -> Result<Option<String>, AdminError> {
        let value = self
            .core
            .command("XREVRANGE", |c| {
                c.arg(&self.core.dlq).arg("+").arg("-").arg("COUNT").arg(1);
            })
            .await?;
        Ok(parse_entries(&value, "XREVRANGE")?.pop().map(|e| e.id))
    }

    /// Up to `count` dead-letter entries after `after` (from the start when `None`) up to
    /// `end` inclusive.
    pub(crate) async fn range(
        &self,
        after: Option<&str>,
        end: &str,
        count: usize,
    ) -> Result<Vec<RawEntry>, AdminError> {
        let start = match after {
            None => "-".to_owned(),
            Some(id) => format!("({id}"),
        };
        let value = self
            .core
            .command("XRANGE", |c| {
                c.arg(&self.core.dlq)
                    .arg(&start)
                    .arg(end)
                    .arg("COUNT")
                    .arg(count);
            })
            .await?;
        parse_entries(&value, "XRANGE")
    }
}

/// Entries of an `XRANGE`/`XREVRANGE` reply.
pub(crate) fn parse_entries(
    value: &Value,
    command: &'static str,
) -> Result<Vec<RawEntry>, AdminError> {
    reply::entries(value).map_err(|detail| RedisBackendError::Protocol { command, detail }.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_before_they_reach_redis() {
        assert!(check_id("1733062000000-0").is_ok());
        assert!(check_id("17").is_ok());
        for bad in ["", "-", "1-", "-1", "a-1", "1-2-3", "+", "(1-0", "1 -0"] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn next_id_is_just_after() {
        assert_eq!(next_id("5-3"), "5-4");
        assert_eq!(next_id("5"), "5-1");
        assert_eq!(next_id(&format!("5-{}", u64::MAX)), "6-0");
    }
}
