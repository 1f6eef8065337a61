//! Storing new events: one `MULTI`/`EXEC` of `XADD`s per batch, so a batch is stored
//! whole or not at all.
//!
//! A write is not idempotent, so when the connection breaks after the batch was sent
//! (for instance on a connection that went stale while Redis restarted) the backend does
//! not blindly send it again. It reconnects and looks: the batch, if it was applied, is
//! among the entries added since it was sent, recognisable by the id of its first event.
//! Found: the enqueue succeeded. Not found: it was not applied and is sent again. Only if
//! Redis cannot be asked does `enqueue` report that the outcome is unknown.

use std::time::Duration;

use redis::Value;
use tokio::time::Instant;
use uuid::Uuid;

use super::core::Core;
use super::error::RedisBackendError;
use super::fetch::ENVELOPE_FIELD;
use super::reply;

/// Slack for the server's clock when looking for a batch by time: entries older than the
/// send minus this cannot be the batch.
const CLOCK_SLACK: Duration = Duration::from_secs(2);

/// Stores `encoded` (envelope JSON, in order; the first has id `first_id`).
pub(crate) async fn store(
    core: &Core,
    encoded: &[Vec<u8>],
    first_id: Uuid,
) -> Result<(), RedisBackendError> {
    let deadline = Instant::now() + core.config.reconnect_timeout;
    loop {
        let sent_at = Instant::now();
        let left = deadline.saturating_duration_since(sent_at);
        let result = core
            .cmd
            .retrying("XADD", left, false, |mut conn| async move {
                let mut pipe = redis::pipe();
                if encoded.len() > 1 {
                    // One XADD is atomic by itself: MULTI/EXEC would cost Redis two more
                    // commands for every single-event emit.
                    pipe.atomic();
                }
                for json in encoded {
                    let cmd = pipe.cmd("XADD").arg(&core.stream);
                    if let Some(max_len) = core.config.max_len {
                        cmd.arg("MAXLEN").arg("~").arg(max_len);
                    }
                    cmd.arg("*")
                        .arg(ENVELOPE_FIELD)
                        .arg(json.as_slice())
                        .ignore();
                }
                pipe.query_async::<()>(&mut conn)
                    .await
                    .map_err(|error| core.cmd.classify("XADD", error))
            })
            .await;
        let ambiguous = match result {
            Err(error @ RedisBackendError::Ambiguous { .. }) => error,
            other => return other,
        };
        match landed(core, first_id, sent_at).await {
            Ok(true) => {
                tracing::info!(event_id = %first_id, "the connection broke during an enqueue, but the batch was stored");
                return Ok(());
            }
            Ok(false) if Instant::now() < deadline => {
                tracing::info!(event_id = %first_id, "the connection broke during an enqueue; the batch was not stored, sending it again");
            }
            Ok(false) => return Err(ambiguous_to_connection(ambiguous)),
            Err(error) => {
                tracing::warn!(%error, "could not check whether an interrupted enqueue was stored");
                return Err(ambiguous);
            }
        }
    }
}

/// The batch was checked and not stored: a plain connection failure.
fn ambiguous_to_connection(error: RedisBackendError) -> RedisBackendError {
    match error {
        RedisBackendError::Ambiguous { url, message, .. } => {
            RedisBackendError::Connection { url, message }
        }
        other => other,
    }
}

/// Whether an entry holding the event `id` was added since `sent_at`.
async fn landed(core: &Core, id: Uuid, sent_at: Instant) -> Result<bool, RedisBackendError> {
    let prefix = format!("{{\"id\":\"{}\"", id.hyphenated());
    let time = core.command("TIME", |_| {}).await?;
    let server_ms = server_millis(&time).ok_or_else(|| RedisBackendError::Protocol {
        command: "TIME",
        detail: "not [seconds, microseconds]".to_owned(),
    })?;
    let floor = server_ms
        .saturating_sub(sent_at.elapsed().as_millis() as u64)
        .saturating_sub(CLOCK_SLACK.as_millis() as u64);
    let mut end = "+".to_owned();
    loop {
        let value = core
            .command("XREVRANGE", |cmd| {
                cmd.arg(&core.stream)
                    .arg(&end)
                    .arg("-")
                    .arg("COUNT")
                    .arg(500);
            })
            .await?;
        let wrapped = Value::Array(vec![Value::Array(vec![Value::Nil, value])]);
        let entries =
            reply::read_group(&wrapped).map_err(|detail| RedisBackendError::Protocol {
                command: "XREVRANGE",
                detail,
            })?;
        let Some(last) = entries.last().map(|e| e.id.clone()) else {
            return Ok(false);
        };
        for entry in &entries {
            let ours = entry.fields.iter().flatten().any(|(name, value)| {
                name == ENVELOPE_FIELD.as_bytes() && value.starts_with(prefix.as_bytes())
            });
            if ours {
                return Ok(true);
            }
            let ms = entry
                .id
                .split('-')
                .next()
                .and_then(|ms| ms.parse::<u64>().ok());
            if ms.is_some_and(|ms| ms < floor) {
                return Ok(false);
            }
        }
        end = format!("({last}");
    }
}

/// Milliseconds from a `TIME` reply (`[seconds, microseconds]`).
fn server_millis(value: &Value) -> Option<u64> {
    let Value::Array(parts) = value else {
        return None;
    };
    let seconds = u64::try_from(reply::integer(parts.first()?)?).ok()?;
    let micros = u64::try_from(reply::integer(parts.get(1)?)?).ok()?;
    Some(seconds * 1000 + micros / 1000)
}
