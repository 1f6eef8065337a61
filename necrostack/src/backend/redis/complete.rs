//! Completing a delivery: what the completion writes (emitted events, scheduled events,
//! dead letters) and the one script call that writes it with the acknowledgement.

use std::sync::Arc;

use super::batcher::Batcher;
use super::core::Core;
use super::counters::Counters;
use super::dead_letter::{self, Fields, Source};
use super::fetch::ENVELOPE_FIELD;
use super::schedule;
use super::script::{Applied, CompleteArgs, FencedWrites, Writes};
use super::{lease, outbox, partition};
use crate::backend::{BackendError, Completion};
use crate::envelope::AnyEnvelope;

/// Completes the delivery of `entry_id` (delivered `deliveries` times) with `completion`,
/// in one script call with the completions queued beside it (see `batcher.rs`).
pub(crate) async fn complete(
    core: &Arc<Core>,
    entry_id: &str,
    deliveries: u32,
    completion: Completion,
) -> Result<(), BackendError> {
    core.held().remove(entry_id);
    core.check_open()?;
    let writes = writes(core, &core.source(entry_id, deliveries), completion);
    let (n_emitted, n_dead) = (
        writes.emitted.len() as u64,
        writes.dead_letters.len() as u64,
    );
    let args = CompleteArgs::new(
        &core.keys(),
        &core.entry(entry_id),
        core.config.max_len,
        writes,
    );
    match Batcher::complete(core, args).await {
        Ok(Applied::Done) => {
            Counters::add(&core.counters.acked, 1);
            Counters::add(&core.counters.emitted, n_emitted);
            Counters::add(&core.counters.dead_lettered, n_dead);
            Ok(())
        }
        Ok(applied) => {
            Counters::add(&core.counters.stale_completions, 1);
            tracing::warn!(
                entry_id = %entry_id,
                ?applied,
                "completion discarded: the entry is no longer pending for this consumer (taken over after claim_idle, or already acknowledged); its handling by the current owner counts"
            );
            Ok(())
        }
        Err(error) => {
            // Still pending for us: the next pull re-reads it.
            core.recover_pending();
            Err(error.into())
        }
    }
}

/// Completes the delivery of `entry_id` of a partition (`lane`), read under lease
/// `token`: fenced, so nothing is written if the lease changed hands since.
pub(crate) async fn complete_fenced(
    lane: &Arc<Core>,
    entry_id: &str,
    deliveries: u32,
    token: u64,
    completion: Completion,
) -> Result<(), BackendError> {
    lane.held().remove(entry_id);
    let Some(partition) = &lane.lane else {
        return Err(BackendError::Other("not a partition".into()));
    };
    partition.hand_back();
    lane.check_open()?;
    let writes = fenced_writes(
        lane,
        partition.index(),
        &lane.source(entry_id, deliveries),
        completion,
    );
    let (n_emitted, n_outbox) = (writes.emitted.len() as u64, writes.outbox.len());
    let lease = lease::value(&lane.config.consumer, token);
    let args = CompleteArgs::fenced(
        &partition.keys,
        &lane.entry(entry_id),
        lane.config.max_len,
        &lease,
        writes,
    );
    match lane.run_complete(&args).await {
        Ok(Applied::Done) => {
            Counters::add(&lane.counters.acked, 1);
            Counters::add(&lane.counters.emitted, n_emitted);
            if n_outbox > 0 {
                outbox::kick(lane);
            }
            Ok(())
        }
        Ok(Applied::Fenced) => {
            Counters::add(&lane.counters.stale_completions, 1);
            Counters::add(&lane.counters.fenced, 1);
            tracing::warn!(
                entry_id = %entry_id,
                partition = partition.index(),
                token,
                "completion discarded: this worker's lease on the partition ended (another worker owns it now and handles the entry again); nothing was written"
            );
            Ok(())
        }
        Ok(applied) => {
            Counters::add(&lane.counters.stale_completions, 1);
            tracing::warn!(entry_id = %entry_id, ?applied, "completion discarded: the entry is no longer pending for this consumer");
            Ok(())
        }
        Err(error) => {
            lane.recover_pending();
            Err(error.into())
        }
    }
}

/// What a completion on partition `own` writes: output for this partition directly,
/// output for other partitions and dead letters through the outbox.
fn fenced_writes(
    core: &Core,
    own: u32,
    source: &Source<'_>,
    completion: Completion,
) -> FencedWrites {
    let mut writes = FencedWrites::default();
    for envelope in &completion.emitted {
        let dest = partition::partition_for(&core.config, envelope);
        match storable(core, source, envelope) {
            Ok(json) if dest == own => writes.emitted.push(json),
            Ok(json) => writes.outbox.push(outbox::event(dest, json)),
            Err(fields) => writes.outbox.push(outbox::dead_letter(fields)),
        }
    }
    for event in &completion.scheduled {
        let dest = partition::partition_for(&core.config, &event.envelope);
        let due = schedule::score(event.due);
        match storable(core, source, &event.envelope) {
            Ok(json) if dest == own => writes.scheduled.push((due, json)),
            Ok(json) => writes.outbox.push(outbox::scheduled(dest, due, json)),
            Err(fields) => writes.outbox.push(outbox::dead_letter(fields)),
        }
    }
    for letter in &completion.dead_letters {
        writes
            .outbox
            .push(outbox::dead_letter(dead_letter::for_spine(source, letter)));
    }
    writes
}

/// What a completion writes. An emitted or scheduled event that cannot be stored (too
/// large, or not encodable) becomes a dead letter with the reason instead of failing the
/// completion: the handling is over either way, and nothing is lost.
fn writes(core: &Core, source: &Source<'_>, completion: Completion) -> Writes {
    let mut writes = Writes::default();
    for envelope in &completion.emitted {
        match storable(core, source, envelope) {
            Ok(json) => writes.emitted.push(json),
            Err(fields) => writes.dead_letters.push(fields),
        }
    }
    for event in &completion.scheduled {
        match storable(core, source, &event.envelope) {
            Ok(json) => writes.scheduled.push((schedule::score(event.due), json)),
            Err(fields) => writes.dead_letters.push(fields),
        }
    }
    for letter in &completion.dead_letters {
        writes
            .dead_letters
            .push(dead_letter::for_spine(source, letter));
    }
    writes
}

/// The event encoded for the stream, or the dead letter it becomes.
fn storable(core: &Core, source: &Source<'_>, envelope: &AnyEnvelope) -> Result<Vec<u8>, Fields> {
    let limit = core.config.max_payload_bytes;
    match envelope.to_json() {
        Err(error) => {
            tracing::warn!(event_id = %envelope.id(), %error, "emitted event cannot be encoded: dead-lettered");
            Err(dead_letter::for_unencodable_emitted(
                source, envelope, &error,
            ))
        }
        Ok(json) if json.len() + ENVELOPE_FIELD.len() > limit => {
            tracing::warn!(event_id = %envelope.id(), size = json.len(), limit, "emitted event over max_payload_bytes: dead-lettered");
            Err(dead_letter::for_oversize_emitted(source, json, limit))
        }
        Ok(json) => Ok(json),
    }
}
