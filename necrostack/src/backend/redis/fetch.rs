//! Fetching entries for this consumer (what the [`Reader`](super::reader::Reader) runs in a
//! task): first its own pending entries (left by an earlier
//! run under the same name, or by a failed completion), then entries of dead consumers
//! (`XAUTOCLAIM`, at most every `claim_interval`), then new entries (blocking
//! `XREADGROUP`; on a partition, a fenced read, see [`read_new_fenced`]). Every entry is checked before the spine sees it: too many deliveries,
//! wrong fields, oversize or undecodable entries go to the dead-letter stream.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::core::Core;
use super::counters::Counters;
use super::dead_letter::EntryProblem;
use super::error::RedisBackendError;
use super::receipt::RedisReceipt;
use super::reply::{self, RawEntry};
use crate::backend::Delivery;
use crate::envelope::AnyEnvelope;

/// The field/value pairs of a stream entry.
type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// The one field of a stream entry written by this backend.
pub const ENVELOPE_FIELD: &str = "envelope";

/// The second field of an entry put back from the dead-letter stream by a replay: the id
/// of the dead letter it came from. The only field accepted besides the envelope.
pub const REPLAYED_FROM_FIELD: &str = "replayed_from";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// This consumer's own pending entries.
    Recovered,
    /// Taken over from another consumer.
    Claimed,
    /// Never delivered before.
    New,
}

/// One fetch: up to `max` deliveries, blocking up to `block` for new entries (`None`
/// does not block).
pub(crate) async fn fetch(
    core: Arc<Core>,
    max: usize,
    block: Option<Duration>,
) -> Result<Vec<Delivery<RedisReceipt>>, RedisBackendError> {
    // 1. Own pending entries.
    loop {
        let Some(from) = core.scan().recover_from.clone() else {
            break;
        };
        let entries = core.read_group(max, None, &from).await?;
        core.scan().recover_from = entries.last().map(|e| e.id.clone());
        if entries.is_empty() {
            break;
        }
        let out = admit(&core, entries, Origin::Recovered).await?;
        if !out.is_empty() {
            return Ok(out);
        }
    }

    // A partition: no `XAUTOCLAIM` (its owner took over every pending entry when it took
    // the lease), and new entries only while the lease is ours.
    if core.lane.is_some() {
        let entries = read_new_fenced(&core, max, block).await?;
        return admit(&core, entries, Origin::New).await;
    }

    // 2. Entries of consumers that stopped acknowledging.
    let claim = {
        let scan = core.scan();
        (Instant::now() >= scan.next_claim).then(|| scan.claim_cursor.clone())
    };
    if let Some(cursor) = claim {
        let (next, claimed, deleted) = core.autoclaim(max, &cursor).await?;
        {
            let mut scan = core.scan();
            if next == "0-0" {
                scan.next_claim = Instant::now() + core.config.claim_interval;
            }
            scan.claim_cursor = next;
        }
        if !deleted.is_empty() {
            // XAUTOCLAIM already removed them from the pending list.
            Counters::add(&core.counters.trimmed, deleted.len() as u64);
            tracing::warn!(count = deleted.len(), "pending entries of another consumer were deleted from the stream before being handled");
        }
        if !claimed.is_empty() {
            let ids: Vec<&str> = claimed.iter().map(|e| e.id.as_str()).collect();
            tracing::info!(
                count = claimed.len(),
                first = ids[0],
                "took over entries left pending by other consumers"
            );
            Counters::add(&core.counters.reclaimed, claimed.len() as u64);
        }
        let out = admit(&core, claimed, Origin::Claimed).await?;
        if !out.is_empty() {
            return Ok(out);
        }
    }

    // 3. New entries.
    let entries = core.read_group(max, block, ">").await?;
    admit(&core, entries, Origin::New).await
}

/// New entries of a partition, read only while this worker's lease on it is the one it
/// holds (a script checks it atomically with the `XREADGROUP`); when there are none, waits
/// up to `block` with a plain `XREAD` and reads once more.
async fn read_new_fenced(
    core: &Core,
    max: usize,
    block: Option<Duration>,
) -> Result<Vec<RawEntry>, RedisBackendError> {
    let Some(lane) = &core.lane else {
        return Ok(Vec::new());
    };
    let Some(token) = lane.token() else {
        return Ok(Vec::new());
    };
    let lease = super::lease::value(&core.config.consumer, token);
    let mut waited = false;
    loop {
        let value = core
            .cmd
            .retrying(
                "EVALSHA (fenced read)",
                core.config.reconnect_timeout,
                true,
                |mut conn| {
                    let lease = &lease;
                    async move {
                        let mut invocation = core.scripts.fenced_read.prepare_invoke();
                        invocation
                            .key(&lane.keys.stream)
                            .key(&lane.keys.lease)
                            .arg(&core.config.group)
                            .arg(&core.config.consumer)
                            .arg(lease)
                            .arg(max);
                        invocation
                            .invoke_async::<redis::Value>(&mut conn)
                            .await
                            .map_err(|error| core.cmd.classify("EVALSHA (fenced read)", error))
                    }
                },
            )
            .await?;
        let parts = reply::items(&value).unwrap_or_default();
        match parts.first().and_then(|v| reply::integer(v)) {
            Some(1) => {
                let entries = parts
                    .get(1)
                    .map_or_else(|| Ok(Vec::new()), |v| reply::entries(v));
                return entries.map_err(|detail| RedisBackendError::Protocol {
                    command: "EVALSHA (fenced read)",
                    detail,
                });
            }
            Some(2) => {
                let (Some(block), false) = (block, waited) else {
                    return Ok(Vec::new());
                };
                let after = parts
                    .get(1)
                    .and_then(|v| reply::text(v))
                    .unwrap_or_default();
                core.wait_for_entries(&after, block).await?;
                waited = true;
            }
            _ => {
                // The lease is not ours any more: stop reading this partition.
                if lane.drop_token(token) {
                    tracing::info!(
                        partition = lane.index(),
                        "partition lease lost: stopped reading it"
                    );
                }
                return Ok(Vec::new());
            }
        }
    }
}

/// Turns raw entries into deliveries, dead-lettering the ones the spine must not see.
async fn admit(
    core: &Arc<Core>,
    entries: Vec<RawEntry>,
    origin: Origin,
) -> Result<Vec<Delivery<RedisReceipt>>, RedisBackendError> {
    let mut deleted = Vec::new();
    let mut live = Vec::with_capacity(entries.len());
    {
        let held = core.held();
        for entry in entries {
            if held.contains(&entry.id) {
                continue;
            }
            match entry.fields {
                Some(fields) => live.push((entry.id, fields)),
                None => deleted.push(entry.id),
            }
        }
    }
    core.ack_deleted(&deleted).await?;
    if live.is_empty() {
        return Ok(Vec::new());
    }

    let counts = match origin {
        Origin::New => None,
        Origin::Recovered | Origin::Claimed => {
            let ids: Vec<&str> = live.iter().map(|(id, _)| id.as_str()).collect();
            Some(core.delivery_counts(&ids).await?)
        }
    };

    let mut out = Vec::with_capacity(live.len());
    // On failure, dropping `out` gives the entries admitted so far up again (their
    // receipts' drop guard): they stay pending for this consumer and are re-read.
    check_each(core, live, counts.as_ref(), &mut out).await?;
    Ok(out)
}

/// Admits each live entry into `out` or dead-letters it.
async fn check_each(
    core: &Arc<Core>,
    live: Vec<(String, Fields)>,
    counts: Option<&std::collections::HashMap<String, u32>>,
    out: &mut Vec<Delivery<RedisReceipt>>,
) -> Result<(), RedisBackendError> {
    for (id, fields) in live {
        let attempt = match counts {
            None => 1,
            Some(counts) => match counts.get(&id) {
                Some(count) => (*count).max(1),
                // Acknowledged or taken over since it was read: not ours to deliver.
                None => continue,
            },
        };
        if attempt > core.config.max_deliveries {
            let problem = EntryProblem::TooManyDeliveries {
                deliveries: attempt,
                limit: core.config.max_deliveries,
            };
            core.dead_letter_entry(&id, &fields, attempt, problem)
                .await?;
            continue;
        }
        match decode(&fields, core.config.max_payload_bytes) {
            Ok(envelope) => {
                core.held().insert(id.clone());
                if attempt > 1 {
                    Counters::add(&core.counters.retried, 1);
                }
                let mut receipt = RedisReceipt::new(id, attempt, Arc::downgrade(core));
                if let Some(lane) = &core.lane {
                    let Some(token) = lane.token() else {
                        // Lost the partition meanwhile: the new owner delivers it.
                        continue;
                    };
                    receipt = receipt.fenced(lane.index(), token);
                }
                out.push(Delivery {
                    envelope,
                    receipt,
                    attempt,
                });
            }
            Err(problem) => {
                core.dead_letter_entry(&id, &fields, attempt, problem)
                    .await?
            }
        }
    }
    Ok(())
}

/// The envelope of an entry, or why there is none.
fn decode(fields: &[(Vec<u8>, Vec<u8>)], max_bytes: usize) -> Result<AnyEnvelope, EntryProblem> {
    let size: usize = fields.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > max_bytes {
        return Err(EntryProblem::Oversize {
            size,
            limit: max_bytes,
        });
    }
    match envelope_of(fields) {
        Some(value) => AnyEnvelope::from_json(value).map_err(|error| EntryProblem::Undecodable {
            error: error.to_string(),
        }),
        None => {
            let names: Vec<String> = fields
                .iter()
                .map(|(k, _)| format!("{:?}", String::from_utf8_lossy(k)))
                .collect();
            Err(EntryProblem::WrongFields {
                detail: format!(
                    "expected exactly one field \"{ENVELOPE_FIELD}\" (or it and \"{REPLAYED_FROM_FIELD}\"), found [{}]",
                    names.join(", ")
                ),
            })
        }
    }
}

/// The envelope of an entry that has exactly the field `envelope`, or `envelope` and
/// `replayed_from` (in either order); `None` for any other set of fields.
pub(crate) fn envelope_of(fields: &[(Vec<u8>, Vec<u8>)]) -> Option<&[u8]> {
    let is = |name: &[u8], expected: &str| name == expected.as_bytes();
    match fields {
        [(name, value)] if is(name, ENVELOPE_FIELD) => Some(value),
        [(a, value), (b, _)] | [(b, _), (a, value)]
            if is(a, ENVELOPE_FIELD) && is(b, REPLAYED_FROM_FIELD) =>
        {
            Some(value)
        }
        _ => None,
    }
}
