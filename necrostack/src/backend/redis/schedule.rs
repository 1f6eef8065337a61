//! Scheduled events on Redis: a sorted set beside the stream (score: due time in Unix
//! milliseconds, member: the envelope), and the task that moves due events into the
//! stream.
//!
//! Every worker runs the mover every `schedule_interval`; the move is one Lua script
//! (`ZRANGEBYSCORE` by the server's clock, `XADD`, `ZREM`), so whichever worker sees an
//! event due adds it to the stream exactly once, and the schedule survives restarts of
//! any worker (and of Redis, with persistence) because it lives in Redis.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use redis::Value;

use super::core::Core;
use super::error::RedisBackendError;
use super::periodic::{self, First};
use super::reply;
use crate::backend::Scheduled;

/// How many due events one script call moves at most; the mover calls again at once
/// while it moves full batches.
const MOVE_BATCH: usize = 256;

/// A due time as the sorted set's score: Unix milliseconds, rounded *up*, so that an event
/// the mover takes at a whole millisecond `now` (≥ score) is never taken before it is due.
pub(crate) fn score(due: DateTime<Utc>) -> i64 {
    let millis = due.timestamp_millis();
    if due.timestamp_subsec_nanos().is_multiple_of(1_000_000) {
        millis
    } else {
        millis.saturating_add(1)
    }
}

/// Adds encoded events to the schedule (`ZADD`, one command: all or nothing).
pub(crate) async fn add(core: &Core, events: &[(i64, Vec<u8>)]) -> Result<(), RedisBackendError> {
    if events.is_empty() {
        return Ok(());
    }
    core.command("ZADD", |cmd| {
        cmd.arg(&core.scheduled);
        for (due_ms, envelope) in events {
            cmd.arg(*due_ms).arg(envelope.as_slice());
        }
    })
    .await
    .map(drop)
}

/// When the earliest scheduled event is due (of any partition, when partitioned).
pub(crate) async fn next_due(core: &Core) -> Result<Option<DateTime<Utc>>, RedisBackendError> {
    let Some(parts) = &core.parts else {
        return next_due_of(core).await;
    };
    let mut earliest = None;
    for lane in parts.lanes() {
        if let Some(due) = next_due_of(lane).await? {
            earliest = Some(earliest.map_or(due, |e: DateTime<Utc>| e.min(due)));
        }
    }
    Ok(earliest)
}

/// When the earliest event of `core`'s own scheduled set is due.
async fn next_due_of(core: &Core) -> Result<Option<DateTime<Utc>>, RedisBackendError> {
    let value = core
        .command("ZRANGE", |cmd| {
            cmd.arg(&core.scheduled).arg(0).arg(0).arg("WITHSCORES");
        })
        .await?;
    let score = match &value {
        Value::Array(items) if items.is_empty() => return Ok(None),
        Value::Array(items) if items.len() == 2 => reply::score(&items[1]),
        _ => None,
    };
    let Some(score) = score else {
        return Err(RedisBackendError::Protocol {
            command: "ZRANGE",
            detail: format!("expected [member, score], got {value:?}"),
        });
    };
    Ok(Some(
        Utc.timestamp_millis_opt(score as i64)
            .single()
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
    ))
}

/// The scheduled events of a completion or a `schedule` call, encoded.
pub(crate) fn encode(
    events: &[Scheduled],
) -> Result<Vec<(i64, Vec<u8>)>, crate::wire::EncodeError> {
    events
        .iter()
        .map(|event| Ok((score(event.due), event.envelope.to_json()?)))
        .collect()
}

/// Starts the mover; it ends when the backend is closed or dropped.
pub(crate) fn spawn_mover(core: &Arc<Core>) {
    let period = core.config.schedule_interval;
    periodic::spawn(core, period, First::Now, move_due);
}

/// Moves what is due, a batch at a time.
pub(crate) async fn move_due(core: Arc<Core>) {
    loop {
        match run_move(&core).await {
            Ok(moved) if moved >= MOVE_BATCH as i64 => continue,
            Ok(moved) => {
                if moved > 0 {
                    tracing::debug!(moved, "scheduled events due: added to the stream");
                }
                return;
            }
            Err(error) => {
                // Harmless: the next tick tries again; nothing leaves the set unless moved.
                tracing::debug!(%error, "could not move due scheduled events");
                return;
            }
        }
    }
}

/// One call of the move script (no retry loop: the mover runs again next tick).
async fn run_move(core: &Core) -> Result<i64, RedisBackendError> {
    let conn = core.cmd.get().await?;
    let mut connection = conn.connection.clone();
    let mut invocation = core.scripts.move_due.prepare_invoke();
    invocation
        .key(&core.stream)
        .key(&core.scheduled)
        .arg(MOVE_BATCH)
        .arg(core.config.max_len.unwrap_or(0));
    match invocation.invoke_async::<i64>(&mut connection).await {
        Ok(moved) => Ok(moved),
        Err(error) => {
            if super::error::is_connection_error(&error) {
                core.cmd.invalidate(&conn).await;
            }
            Err(core.cmd.command_error("EVALSHA (move due)", &error))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_score_never_falls_before_the_due_time() {
        let whole = Utc.timestamp_millis_opt(1_700_000_000_123).unwrap();
        assert_eq!(score(whole), 1_700_000_000_123);
        let just_after = whole + chrono::Duration::nanoseconds(1);
        assert_eq!(score(just_after), 1_700_000_000_124);
        let half = whole + chrono::Duration::microseconds(500);
        assert_eq!(score(half), 1_700_000_000_124);
    }
}
