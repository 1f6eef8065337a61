//! Replaying dead letters: each one's event goes back into the stream and leaves the
//! dead-letter stream exactly once, even if a replay is cut short anywhere and run again.
//!
//! On an unpartitioned stream one Lua script does both (the stream and its dead-letter
//! stream share a slot). On a partitioned stream the event's partition may live in
//! another Redis Cluster slot than the dead-letter stream, and a script may touch one
//! slot only, so the replay takes two single-slot steps: the first adds the entry to the
//! partition only if the partition's *replay mark* for that dead letter is absent, and
//! sets it (both in the partition's slot); the second deletes the dead letter. A replay
//! interrupted between the steps and run again finds the mark and only deletes.
//!
//! The event is put back as it was first handled: same id, payload and lineage, attempt
//! 1 and no retry organ (every organ handles it again), in an entry with a second field
//! `replayed_from` naming the dead letter, which the worker's reader accepts next to
//! `envelope`.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use redis::{Script, Value};
use serde_json::value::RawValue;

use super::admin::{check_id, AdminError, RedisAdmin};
use super::dead_letter::RedisDeadLetter;
use super::fetch::{ENVELOPE_FIELD, REPLAYED_FROM_FIELD};
use super::reply;
use crate::envelope::AnyEnvelope;

/// `KEYS[1]` dead-letter stream, `KEYS[2]` event stream. `ARGV`: dead-letter id, the
/// field holding the envelope, the envelope as stored there, the envelope to add,
/// MAXLEN (0 = none).
///
/// Adds the envelope to the stream and deletes the dead letter, only if the dead letter
/// is still there and still holds that envelope. Returns the new entry id; 0 when the
/// dead letter is gone (replayed or purged meanwhile); -1 when it changed.
const REPLAY: &str = r"
local entry = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #entry == 0 then return 0 end
local fields = entry[1][2]
local stored = nil
for i = 1, #fields, 2 do
  if fields[i] == ARGV[2] then stored = fields[i + 1] end
end
if stored ~= ARGV[3] then return -1 end
local id
if tonumber(ARGV[5]) > 0 then
  id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'envelope', ARGV[4], 'replayed_from', ARGV[1])
else
  id = redis.call('XADD', KEYS[2], '*', 'envelope', ARGV[4], 'replayed_from', ARGV[1])
end
redis.call('XDEL', KEYS[1], ARGV[1])
return id
";

/// `KEYS[1]` partition stream, `KEYS[2]` the partition's replay mark for this dead
/// letter (same slot). `ARGV`: the envelope to add, the dead-letter id, MAXLEN (0 =
/// none), the mark's TTL in seconds.
///
/// Adds the envelope unless the mark says this dead letter was already put back, and
/// sets the mark to the new entry's id. Returns the entry id, new or recorded.
const REPLAY_INTO_PARTITION: &str = r"
local done = redis.call('GET', KEYS[2])
if done then return done end
local id
if tonumber(ARGV[3]) > 0 then
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'envelope', ARGV[1], 'replayed_from', ARGV[2])
else
  id = redis.call('XADD', KEYS[1], '*', 'envelope', ARGV[1], 'replayed_from', ARGV[2])
end
redis.call('SET', KEYS[2], id, 'EX', ARGV[4])
return id
";

/// `KEYS[1]` dead-letter stream. `ARGV`: dead-letter id, the field holding the envelope,
/// the envelope as stored there.
///
/// Deletes the dead letter if it still holds that envelope. Returns 1 when deleted, 0
/// when it is gone, -1 when it changed.
const DELETE_REPLAYED: &str = r"
local entry = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #entry == 0 then return 0 end
local fields = entry[1][2]
local stored = nil
for i = 1, #fields, 2 do
  if fields[i] == ARGV[2] then stored = fields[i + 1] end
end
if stored ~= ARGV[3] then return -1 end
redis.call('XDEL', KEYS[1], ARGV[1])
return 1
";

/// How long a partition keeps the mark of a dead letter it took back: a replay
/// interrupted between its two steps must be run again within this time, or the event
/// goes back a second time. A day covers any retry an operator makes of a failed replay,
/// and the marks do not pile up for ever.
const REPLAY_MARK_TTL_SECS: u64 = 24 * 60 * 60;

/// The replay mark of dead letter `dead_letter_id` in partition stream `partition`: in
/// the partition's slot.
fn replay_mark(partition: &str, dead_letter_id: &str) -> String {
    format!("{{{partition}}}:replayed:{dead_letter_id}")
}

/// How many dead letters `replay_all` reads at a time.
const REPLAY_CHUNK: usize = 100;

/// What became of one dead letter in a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayOutcome {
    /// Back in the stream as entry `stream_id`, and gone from the dead-letter stream.
    Replayed {
        /// The dead letter's id.
        dead_letter_id: String,
        /// The event's id (unchanged by the replay).
        event_id: String,
        /// The event type.
        event_type: String,
        /// The id of the new entry in the event stream.
        stream_id: String,
    },
    /// A dry run: this one would be replayed.
    WouldReplay {
        /// The dead letter's id.
        dead_letter_id: String,
        /// The event's id.
        event_id: String,
        /// The event type.
        event_type: String,
    },
    /// It stays a dead letter: there is no event to put back, or it is unusable.
    NotReplayable {
        /// The dead letter's id.
        dead_letter_id: String,
        /// Why, as a sentence.
        reason: String,
    },
    /// There is no such dead letter (already replayed or purged).
    NotFound {
        /// The id asked for.
        dead_letter_id: String,
    },
}

impl ReplayOutcome {
    /// The dead letter this is about.
    pub fn dead_letter_id(&self) -> &str {
        match self {
            ReplayOutcome::Replayed { dead_letter_id, .. }
            | ReplayOutcome::WouldReplay { dead_letter_id, .. }
            | ReplayOutcome::NotReplayable { dead_letter_id, .. }
            | ReplayOutcome::NotFound { dead_letter_id } => dead_letter_id,
        }
    }
}

/// How to replay: for real or as a dry run, and how fast.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    dry_run: bool,
    pause: Option<Duration>,
}

impl ReplayOptions {
    /// Replays for real, as fast as Redis allows.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only says what would be replayed; changes nothing.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// At most `per_second` replays a second, so that a large replay does not flood the
    /// workers (or a dependency that just recovered). `0` means no limit.
    pub fn rate(mut self, per_second: u32) -> Self {
        self.pause = (per_second > 0).then(|| Duration::from_secs(1) / per_second);
        self
    }
}

/// The event of a dead letter, ready to go back: the JSON as stored, and as it goes back.
struct Prepared {
    field: String,
    stored: Vec<u8>,
    replay: Vec<u8>,
    /// `replay`, decoded: it picks the partition the event goes back to.
    reset: AnyEnvelope,
    event_id: String,
    event_type: String,
}

/// The envelope to put back, or why there is none.
fn prepare(letter: &RedisDeadLetter, max_bytes: usize) -> Result<Prepared, String> {
    if !letter.original_is_replayable() {
        return Err(format!(
            "no event to put back ({}): the dead letter holds no envelope",
            letter.reason_kind
        ));
    }
    let Some(stored) = letter.original_envelope() else {
        return Err("no event to put back: the dead letter holds no envelope".to_owned());
    };
    let envelope = AnyEnvelope::from_json(stored)
        .map_err(|error| format!("its envelope does not decode: {error}"))?;
    let replay = first_attempt(stored)?;
    let reset = AnyEnvelope::from_json(&replay)
        .map_err(|error| format!("its envelope does not decode once reset: {error}"))?;
    let size = replay.len() + ENVELOPE_FIELD.len() + REPLAYED_FROM_FIELD.len() + 24;
    if size > max_bytes {
        return Err(format!(
            "its envelope is {size} bytes, over max_payload_bytes ({max_bytes}): the workers would dead-letter it again"
        ));
    }
    Ok(Prepared {
        field: letter.envelope_field(),
        stored: stored.to_vec(),
        replay,
        reset,
        event_id: envelope.id().to_string(),
        event_type: envelope.event_type().to_owned(),
    })
}

/// The envelope JSON without `attempt` and `organ`: a first handling, by every organ.
/// The other fields keep their exact bytes (the payload is not re-encoded).
fn first_attempt(stored: &[u8]) -> Result<Vec<u8>, String> {
    let mut fields: BTreeMap<String, Box<RawValue>> = serde_json::from_slice(stored)
        .map_err(|error| format!("its envelope is not a JSON object: {error}"))?;
    fields.remove("attempt");
    fields.remove("organ");
    let json = serde_json::to_vec(&fields)
        .map_err(|error| format!("its envelope cannot be re-encoded: {error}"))?;
    AnyEnvelope::from_json(&json)
        .map_err(|error| format!("its envelope does not decode once reset: {error}"))?;
    Ok(json)
}

impl RedisAdmin {
    /// Replays these dead letters, in the order given: each event goes back into the
    /// stream (same id and lineage, attempt 1, for every organ, marked `replayed_from`)
    /// and its dead letter is deleted, atomically per entry. A dead letter that cannot
    /// be replayed is reported as such; the others go on.
    ///
    /// ```no_run
    /// use necrostack::backend::redis::{ReplayOptions, ReplayOutcome};
    /// # async fn run(admin: necrostack::backend::redis::RedisAdmin) -> Result<(), necrostack::backend::redis::AdminError> {
    /// let ids = vec!["1733062000000-0".to_owned()];
    /// for outcome in admin.replay(&ids, &ReplayOptions::new()).await? {
    ///     if let ReplayOutcome::NotReplayable { dead_letter_id, reason } = outcome {
    ///         eprintln!("{dead_letter_id}: {reason}");
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn replay(
        &self,
        ids: &[String],
        options: &ReplayOptions,
    ) -> Result<Vec<ReplayOutcome>, AdminError> {
        for id in ids {
            check_id(id)?;
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let outcome = match self.dead_letter(id).await? {
                None => ReplayOutcome::NotFound {
                    dead_letter_id: id.clone(),
                },
                Some(letter) => self.replay_one(&letter, options).await?,
            };
            out.push(outcome);
        }
        Ok(out)
    }

    /// Replays every dead letter there is when it starts, oldest first, calling
    /// `on_each` after each one (to show progress). Dead letters written while it runs
    /// (an event failing again) are left for the next replay, so it always ends.
    ///
    /// ```no_run
    /// use necrostack::backend::redis::ReplayOptions;
    /// # async fn run(admin: necrostack::backend::redis::RedisAdmin) -> Result<(), necrostack::backend::redis::AdminError> {
    /// let outcomes = admin
    ///     .replay_all(&ReplayOptions::new().rate(500), |o| println!("{o:?}"))
    ///     .await?;
    /// println!("{} dead letters looked at", outcomes);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn replay_all(
        &self,
        options: &ReplayOptions,
        mut on_each: impl FnMut(&ReplayOutcome),
    ) -> Result<u64, AdminError> {
        let Some(last) = self.last_dead_letter_id().await? else {
            return Ok(0);
        };
        let mut cursor: Option<String> = None;
        let mut seen = 0;
        loop {
            let entries = self.range(cursor.as_deref(), &last, REPLAY_CHUNK).await?;
            let at_end = entries.len() < REPLAY_CHUNK;
            for entry in entries {
                cursor = Some(entry.id.clone());
                let letter =
                    RedisDeadLetter::from_entry(entry.id, entry.fields.unwrap_or_default());
                let outcome = self.replay_one(&letter, options).await?;
                on_each(&outcome);
                seen += 1;
            }
            if at_end {
                return Ok(seen);
            }
        }
    }

    async fn replay_one(
        &self,
        letter: &RedisDeadLetter,
        options: &ReplayOptions,
    ) -> Result<ReplayOutcome, AdminError> {
        let dead_letter_id = letter.id.clone();
        let prepared = match prepare(letter, self.core.config.max_payload_bytes) {
            Ok(prepared) => prepared,
            Err(reason) => {
                return Ok(ReplayOutcome::NotReplayable {
                    dead_letter_id,
                    reason,
                })
            }
        };
        if options.dry_run {
            return Ok(ReplayOutcome::WouldReplay {
                dead_letter_id,
                event_id: prepared.event_id,
                event_type: prepared.event_type,
            });
        }
        if let Some(pause) = options.pause {
            tokio::time::sleep(pause).await;
        }
        let value = self.run_script(&dead_letter_id, &prepared).await?;
        Ok(match value {
            Value::Int(0) => ReplayOutcome::NotFound { dead_letter_id },
            Value::Int(_) => ReplayOutcome::NotReplayable {
                dead_letter_id,
                reason: "it changed while being replayed".to_owned(),
            },
            other => ReplayOutcome::Replayed {
                dead_letter_id,
                event_id: prepared.event_id,
                event_type: prepared.event_type,
                stream_id: reply::text(&other).unwrap_or_default(),
            },
        })
    }

    /// Runs the replay. It is safe to run again after a broken connection: on an
    /// unpartitioned stream a second run finds the dead letter gone and writes nothing;
    /// on a partitioned one it finds the replay mark and only deletes the dead letter.
    /// (If the single script went through and only its reply was lost, the entry is then
    /// reported as not found, although it was replayed, once.)
    async fn run_script(&self, id: &str, prepared: &Prepared) -> Result<Value, AdminError> {
        let core = &*self.core;
        if core.parts.is_none() {
            return self.replay_in_one_script(id, prepared).await;
        }
        // The event goes back to its partition.
        let partition = super::partition::partition_for(&core.config, &prepared.reset);
        let target = core.config.partition_stream_key(partition);
        let stream_id = self.replay_into_partition(id, prepared, &target).await?;
        let deleted = self.delete_replayed(id, prepared).await?;
        if deleted == Value::Int(-1) {
            // Dead letters are never rewritten; should one differ now, the event is back
            // once all the same, and the entry is kept for a human to look at.
            tracing::warn!(
                dead_letter_id = id,
                "a replayed dead letter changed meanwhile; it was kept"
            );
        }
        Ok(stream_id)
    }

    /// Step 1 on a partitioned stream, in the partition's slot: adds the event unless
    /// its replay mark is there. Returns the entry's id.
    async fn replay_into_partition(
        &self,
        id: &str,
        prepared: &Prepared,
        target: &str,
    ) -> Result<Value, AdminError> {
        let core = &*self.core;
        static SCRIPT: OnceLock<Script> = OnceLock::new();
        let script = SCRIPT.get_or_init(|| Script::new(REPLAY_INTO_PARTITION));
        let max_len = core.config.max_len.unwrap_or(0);
        let mark = replay_mark(target, id);
        let (mark, target) = (&mark, target);
        let value = core
            .cmd
            .retrying(
                "EVALSHA (replay into partition)",
                core.config.reconnect_timeout,
                true,
                |mut conn| async move {
                    script
                        .key(target)
                        .key(mark)
                        .arg(prepared.replay.as_slice())
                        .arg(id)
                        .arg(max_len)
                        .arg(REPLAY_MARK_TTL_SECS)
                        .invoke_async::<Value>(&mut conn)
                        .await
                        .map_err(|error| {
                            core.cmd.classify("EVALSHA (replay into partition)", error)
                        })
                },
            )
            .await?;
        Ok(value)
    }

    /// Step 2 on a partitioned stream, in the dead-letter stream's slot: deletes the
    /// dead letter if it is unchanged.
    async fn delete_replayed(&self, id: &str, prepared: &Prepared) -> Result<Value, AdminError> {
        let core = &*self.core;
        static SCRIPT: OnceLock<Script> = OnceLock::new();
        let script = SCRIPT.get_or_init(|| Script::new(DELETE_REPLAYED));
        let value = core
            .cmd
            .retrying(
                "EVALSHA (delete replayed)",
                core.config.reconnect_timeout,
                true,
                |mut conn| async move {
                    script
                        .key(&core.dlq)
                        .arg(id)
                        .arg(&prepared.field)
                        .arg(prepared.stored.as_slice())
                        .invoke_async::<Value>(&mut conn)
                        .await
                        .map_err(|error| core.cmd.classify("EVALSHA (delete replayed)", error))
                },
            )
            .await?;
        Ok(value)
    }

    /// The replay of an unpartitioned stream: one script, the stream and the
    /// dead-letter stream sharing a slot.
    async fn replay_in_one_script(
        &self,
        id: &str,
        prepared: &Prepared,
    ) -> Result<Value, AdminError> {
        let core = &*self.core;
        static SCRIPT: OnceLock<Script> = OnceLock::new();
        let script = SCRIPT.get_or_init(|| Script::new(REPLAY));
        let max_len = core.config.max_len.unwrap_or(0);
        let value = core
            .cmd
            .retrying(
                "EVALSHA (replay)",
                core.config.reconnect_timeout,
                true,
                |mut conn| async move {
                    script
                        .key(&core.dlq)
                        .key(&core.stream)
                        .arg(id)
                        .arg(&prepared.field)
                        .arg(prepared.stored.as_slice())
                        .arg(prepared.replay.as_slice())
                        .arg(max_len)
                        .invoke_async::<Value>(&mut conn)
                        .await
                        .map_err(|error| core.cmd.classify("EVALSHA (replay)", error))
                },
            )
            .await?;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_is_a_first_attempt_for_every_organ_with_the_same_bytes_otherwise() {
        let stored = br#"{"id":"0190a0a0-0000-7000-8000-000000000001","timestamp":"2024-07-01T00:00:00Z","event_type":"T","payload":{"x":1.10},"correlation_id":"0190a0a0-0000-7000-8000-000000000001","causation_id":null,"depth":0,"attempt":3,"organ":"o"}"#;
        let reset = first_attempt(stored).unwrap();
        let text = String::from_utf8(reset.clone()).unwrap();
        assert!(
            !text.contains("attempt") && !text.contains("organ"),
            "{text}"
        );
        assert!(text.contains(r#""payload":{"x":1.10}"#), "{text}");
        let envelope = AnyEnvelope::from_json(&reset).unwrap();
        assert_eq!(envelope.attempt(), 1);
        assert_eq!(envelope.retry_organ(), None);
    }
}
