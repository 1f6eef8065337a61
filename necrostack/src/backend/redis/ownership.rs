//! Who reads which partition: the heartbeat of a partitioned backend.
//!
//! Every third of the partition lease each worker records itself in the group's members
//! set (expiry by the server's clock) and reads the live members; from that list every
//! worker computes the same owner for every partition (rendezvous hashing, so a join or
//! a leave moves only the partitions that must move). Then, per partition:
//!
//! * assigned to this worker and not held: take the lease (free, or expired after a
//!   crash); on success, take over every entry pending in the group on that stream (any
//!   consumer: the lease makes that safe) and start its reader, which delivers them in
//!   stream order before anything new;
//! * assigned and held: renew the lease; if it was lost (this worker was paused past it),
//!   stop reading the partition;
//! * held but assigned to another worker now: stop reading, drop what was read ahead,
//!   let the deliveries in flight finish (at most half a lease), then delete the lease so
//!   the new owner takes the partition at once.
//!
//! It also moves the due scheduled events of the partitions this worker owns, and kicks
//! their outbox forwarders (which normally run right after a completion that wrote to
//! the outbox; the heartbeat retries what a failed forward left).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::core::Core;
use super::counters::Counters;
use super::error::RedisBackendError;
use super::periodic::{self, First};
use super::{lease, outbox, partition, reply, schedule};

/// How often a handoff looks whether the deliveries in flight have finished.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// Starts the heartbeat and the mover of due scheduled events of owned partitions; both
/// end when the backend is closed or dropped.
pub(crate) fn spawn(main: &Arc<Core>) {
    let period = (main.config.partition_lease / 3).max(Duration::from_millis(10));
    periodic::spawn(main, period, First::AfterOnePeriod, beat);
    periodic::spawn(main, main.config.schedule_interval, First::Now, move_due);
}

/// One heartbeat.
pub(crate) async fn beat(main: Arc<Core>) {
    let Some(parts) = &main.parts else {
        return;
    };
    let members = match lease::members(&main, parts.members_key(), false).await {
        Ok(members) => members,
        Err(error) => {
            tracing::debug!(%error, "partition heartbeat failed; leases are renewed next beat");
            return;
        }
    };
    for lane_core in parts.lanes() {
        let Some(lane) = &lane_core.lane else {
            continue;
        };
        let assigned =
            partition::owner_of(&members, lane.index()) == Some(main.config.consumer.as_str());
        let result = match (assigned, lane.token()) {
            (true, None) => acquire(&main, lane_core).await,
            (true, Some(token)) => keep(&main, lane_core, token).await,
            (false, Some(token)) => hand_off(&main, lane_core, token).await,
            (false, None) => Ok(()),
        };
        if let Err(error) = result {
            tracing::debug!(%error, partition = lane.index(), "partition lease step failed; retried next beat");
        }
        if lane.token().is_some() {
            outbox::kick(lane_core);
        }
    }
}

/// Takes the lease of a partition assigned to this worker, takes over what is pending on
/// it, and starts its reader.
async fn acquire(main: &Arc<Core>, lane_core: &Arc<Core>) -> Result<(), RedisBackendError> {
    let (Some(lane), Some(parts)) = (&lane_core.lane, &main.parts) else {
        return Ok(());
    };
    let Some(token) = lease::acquire(main, lane).await? else {
        return Ok(());
    };
    let taken = take_over(lane_core).await?;
    lane.set_token(Some(token));
    parts.start_reader(main, lane.index(), token);
    Counters::add(&main.counters.takeovers, 1);
    tracing::info!(
        partition = lane.index(),
        token,
        pending_taken_over = taken,
        "took the lease of a partition"
    );
    Ok(())
}

/// Claims every entry pending in the group on the partition's stream, whoever's, for
/// this consumer (the lease makes that safe at once: min-idle 0), and makes its reader
/// deliver this consumer's pending entries first, in stream order. Returns how many.
async fn take_over(lane_core: &Core) -> Result<usize, RedisBackendError> {
    let value = lane_core
        .command("XPENDING", |cmd| {
            cmd.arg(&lane_core.stream)
                .arg(&lane_core.config.group)
                .arg("-")
                .arg("+")
                .arg(1_000_000);
        })
        .await?;
    let ids = reply::pending_ids(&value).map_err(|detail| RedisBackendError::Protocol {
        command: "XPENDING",
        detail,
    })?;
    for chunk in ids.chunks(500) {
        // JUSTID: the delivery count is raised once, when the reader reads the entry
        // again from this consumer's pending list.
        lane_core
            .command("XCLAIM", |cmd| {
                cmd.arg(&lane_core.stream)
                    .arg(&lane_core.config.group)
                    .arg(&lane_core.config.consumer)
                    .arg(0)
                    .arg(chunk)
                    .arg("JUSTID");
            })
            .await?;
    }
    // Whatever this worker held of the partition from an earlier lease is delivered
    // again (its completion would be fenced).
    lane_core.held().clear();
    lane_core.recover_pending();
    if !ids.is_empty() {
        Counters::add(&lane_core.counters.reclaimed, ids.len() as u64);
    }
    Ok(ids.len())
}

/// Renews the lease of a partition this worker owns; stops reading it if lost.
async fn keep(
    main: &Arc<Core>,
    lane_core: &Arc<Core>,
    token: u64,
) -> Result<(), RedisBackendError> {
    let (Some(lane), Some(parts)) = (&lane_core.lane, &main.parts) else {
        return Ok(());
    };
    if !lease::renew(main, lane, token).await? && lane.drop_token(token) {
        parts.stop_reader(lane.index());
        tracing::warn!(
            partition = lane.index(),
            token,
            "lost the lease of a partition (this worker missed its renewals): stopped reading it"
        );
    }
    Ok(())
}

/// Gives a partition that is now another worker's back: stops reading it, lets the
/// deliveries in flight finish (bounded), then deletes the lease.
async fn hand_off(
    main: &Arc<Core>,
    lane_core: &Arc<Core>,
    token: u64,
) -> Result<(), RedisBackendError> {
    let (Some(lane), Some(parts)) = (&lane_core.lane, &main.parts) else {
        return Ok(());
    };
    // Renewed first, so the lease outlasts the bounded wait below.
    lease::renew(main, lane, token).await?;
    if !lane.drop_token(token) {
        return Ok(());
    }
    parts.stop_reader(lane.index());
    let main = Arc::clone(main);
    let lane_core = Arc::clone(lane_core);
    tokio::spawn(async move {
        let deadline = Instant::now() + main.config.partition_lease / 2;
        while !lane_core.held().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(DRAIN_POLL).await;
        }
        if let Some(lane) = &lane_core.lane {
            // The outbox is the new owner's to forward from now on, but what is there
            // already goes now rather than a heartbeat later.
            let _ = outbox::forward_all(&lane_core).await;
            match lease::release(&main, lane, token).await {
                Ok(()) => tracing::info!(
                    partition = lane.index(),
                    token,
                    "handed a partition over to its new owner"
                ),
                Err(error) => {
                    tracing::debug!(%error, partition = lane.index(), "could not delete a lease; it expires by itself");
                }
            }
        }
    });
    Ok(())
}

/// Gives every partition up (on close): stops the readers, deletes the leases, leaves
/// the members set, so the other workers take the partitions at once.
pub(crate) async fn leave(main: &Core) -> Result<(), RedisBackendError> {
    let Some(parts) = &main.parts else {
        return Ok(());
    };
    if !parts.joined() {
        return Ok(());
    }
    for lane_core in parts.lanes() {
        let Some(lane) = &lane_core.lane else {
            continue;
        };
        let Some(token) = lane.token() else {
            continue;
        };
        parts.stop_reader(lane.index());
        lane.drop_token(token);
        let _ = outbox::forward_all(lane_core).await;
        lease::release(main, lane, token).await?;
    }
    lease::members(main, parts.members_key(), true).await?;
    Ok(())
}

/// Moves due scheduled events of the partitions this worker owns.
async fn move_due(main: Arc<Core>) {
    let Some(parts) = &main.parts else {
        return;
    };
    for lane_core in parts.lanes() {
        if lane_core.lane.as_ref().and_then(|l| l.token()).is_some() {
            schedule::move_due(Arc::clone(lane_core)).await;
        }
    }
}
