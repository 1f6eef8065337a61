//! A partition's outbox: what a completion writes for other slots (events and scheduled
//! events for other partitions, dead letters), and the forwarder that moves it there.
//!
//! A script touches one slot only (so that it runs on Redis Cluster), but a handling's
//! output may be bound for any partition. So the completion script appends that output
//! to the partition's outbox stream, atomically with the ack, and the forwarder moves
//! each outbox entry, in order, with a script on the destination's slot that adds it
//! only if its outbox id is above the high-water mark `{destination}:fwd:<source>` and
//! raises the mark, and then deletes it from the outbox. A forwarder that dies between
//! the two steps leaves an entry the next one skips (its id is not above the mark) and
//! deletes: **each completed handling's output appears exactly once**, in the order the
//! completions wrote it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use redis::Value;

use super::core::Core;
use super::counters::Counters;
use super::dead_letter::Fields;
use super::error::RedisBackendError;
use super::fetch::ENVELOPE_FIELD;
use super::partition::{forward_mark, PartitionKeys};
use super::reply::{self, RawEntry};

/// How many outbox entries one pass reads.
const FORWARD_BATCH: usize = 128;
/// The destination field of a dead letter.
const DEAD_LETTERS: &str = "dlq";

/// An outbox entry for partition `dest`'s stream.
pub(crate) fn event(dest: u32, envelope: Vec<u8>) -> Fields {
    entry(&dest.to_string(), "event", 0, ENVELOPE_FIELD, envelope)
}

/// An outbox entry for partition `dest`'s schedule, due at `due_ms`.
pub(crate) fn scheduled(dest: u32, due_ms: i64, envelope: Vec<u8>) -> Fields {
    entry(
        &dest.to_string(),
        "scheduled",
        due_ms,
        ENVELOPE_FIELD,
        envelope,
    )
}

/// An outbox entry for the dead-letter stream.
pub(crate) fn dead_letter(fields: Fields) -> Fields {
    let mut out = header(DEAD_LETTERS, "dead", 0);
    out.extend(fields);
    out
}

fn header(dest: &str, kind: &str, due_ms: i64) -> Fields {
    vec![
        ("dest".to_owned(), dest.as_bytes().to_vec()),
        ("kind".to_owned(), kind.as_bytes().to_vec()),
        ("due".to_owned(), due_ms.to_string().into_bytes()),
    ]
}

fn entry(dest: &str, kind: &str, due_ms: i64, field: &str, value: Vec<u8>) -> Fields {
    let mut out = header(dest, kind, due_ms);
    out.push((field.to_owned(), value));
    out
}

/// Makes sure a forwarder runs for `lane` (a partition's core) soon: one task per
/// partition at a time, which goes on while completions keep adding to the outbox.
pub(crate) fn kick(lane_core: &Arc<Core>) {
    let Some(lane) = &lane_core.lane else {
        return;
    };
    lane.forward_due.store(true, Ordering::SeqCst);
    if lane.forwarding.swap(true, Ordering::SeqCst) {
        return;
    }
    let core = Arc::clone(lane_core);
    tokio::spawn(async move {
        let Some(lane) = &core.lane else {
            return;
        };
        loop {
            while lane.forward_due.swap(false, Ordering::SeqCst) {
                if let Err(error) = forward_all(&core).await {
                    // Harmless: the outbox keeps the entries; the heartbeat kicks again.
                    tracing::debug!(%error, partition = lane.index(), "could not forward the outbox");
                    break;
                }
            }
            lane.forwarding.store(false, Ordering::SeqCst);
            // A kick between the loop's end and the store above found the flag set and
            // left: look once more.
            if !lane.forward_due.load(Ordering::SeqCst)
                || lane.forwarding.swap(true, Ordering::SeqCst)
            {
                return;
            }
        }
    });
}

/// Forwards everything in the outbox, oldest first; returns how many entries it added.
pub(crate) async fn forward_all(core: &Core) -> Result<u64, RedisBackendError> {
    let Some(lane) = &core.lane else {
        return Ok(0);
    };
    let mut added = 0;
    loop {
        let value = core
            .command("XRANGE", |cmd| {
                cmd.arg(&lane.keys.outbox)
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    .arg(FORWARD_BATCH);
            })
            .await?;
        let entries = reply::entries(&value).map_err(|detail| RedisBackendError::Protocol {
            command: "XRANGE",
            detail,
        })?;
        if entries.is_empty() {
            return Ok(added);
        }
        let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
        for entry in entries {
            added += forward_one(core, lane.index(), entry).await?;
        }
        core.command("XDEL", |cmd| {
            cmd.arg(&lane.keys.outbox).arg(&ids);
        })
        .await?;
        Counters::add(&core.counters.forwarded, added);
        if ids.len() < FORWARD_BATCH {
            return Ok(added);
        }
    }
}

/// Forwards one outbox entry; 1 if it was added, 0 if an earlier forwarder had.
async fn forward_one(core: &Core, source: u32, entry: RawEntry) -> Result<u64, RedisBackendError> {
    let fields = entry.fields.unwrap_or_default();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let (Some(dest), Some(kind), Some(due)) = (field("dest"), field("kind"), field("due")) else {
        tracing::warn!(id = %entry.id, "outbox entry without destination dropped");
        return Ok(0);
    };
    let payload = fields.get(3..).unwrap_or_default();
    let (target, mark) = if dest == DEAD_LETTERS {
        (core.dlq.clone(), forward_mark(&core.dlq, source))
    } else {
        let index: u32 = dest.parse().unwrap_or(0);
        let stream = core.config.partition_stream_key(index);
        let mark = forward_mark(&stream, source);
        let keys = PartitionKeys::new(stream, index, &core.config.group);
        let target = if kind == "scheduled" {
            keys.scheduled
        } else {
            keys.stream
        };
        (target, mark)
    };
    let result = core
        .cmd
        .retrying(
            "EVALSHA (forward)",
            core.config.reconnect_timeout,
            true,
            |mut conn| {
                let (target, mark, kind, due, id) = (&target, &mark, &kind, &due, &entry.id);
                async move {
                    let mut invocation = core.scripts.forward.prepare_invoke();
                    invocation
                        .key(mark)
                        .key(target)
                        .arg(id)
                        .arg(kind)
                        .arg(core.config.max_len.unwrap_or(0))
                        .arg(due);
                    for (name, value) in payload {
                        invocation.arg(name.as_slice()).arg(value.as_slice());
                    }
                    invocation
                        .invoke_async::<Value>(&mut conn)
                        .await
                        .map_err(|error| core.cmd.classify("EVALSHA (forward)", error))
                }
            },
        )
        .await?;
    Ok(u64::from(reply::integer(&result) == Some(1)))
}
