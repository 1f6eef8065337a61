//! Keeping held entries from looking abandoned.
//!
//! Other consumers take over an entry once it has been pending for `claim_idle`. An
//! entry this worker pulled is pending from the moment it was read, also while it waits
//! in the spine's batch behind slower events; without care, a batch that takes longer
//! than `claim_idle` would be handled twice. So while the backend holds entries, a task
//! resets their idle time every third of `claim_idle` (a script that only touches
//! entries still owned by this consumer, and does not count a delivery).

use std::sync::Arc;
use std::time::Duration;

use super::core::Core;
use super::periodic::{self, First};

/// Starts the heartbeat; it ends when the backend is closed or dropped.
pub(crate) fn spawn(core: &Arc<Core>) {
    let period = (core.config.claim_idle / 3).max(Duration::from_millis(10));
    periodic::spawn(core, period, First::AfterOnePeriod, beat);
}

/// One beat.
async fn beat(core: Arc<Core>) {
    let held: Vec<String> = core.held().iter().cloned().collect();
    if held.is_empty() {
        return;
    }
    for chunk in held.chunks(500) {
        let result = async {
            let conn = core.cmd.get().await?;
            let mut connection = conn.connection.clone();
            let mut invocation = core.scripts.touch.prepare_invoke();
            invocation
                .key(&core.stream)
                .arg(&core.config.group)
                .arg(&core.config.consumer);
            for id in chunk {
                invocation.arg(id);
            }
            match invocation.invoke_async::<i64>(&mut connection).await {
                Ok(_) => Ok(()),
                Err(error) => {
                    if super::error::is_connection_error(&error) {
                        core.cmd.invalidate(&conn).await;
                    }
                    Err(core.cmd.command_error("EVALSHA (touch)", &error))
                }
            }
        }
        .await;
        if let Err(error) = result {
            // Harmless once: the next beat tries again well before `claim_idle`.
            tracing::debug!(%error, "could not refresh held entries");
            break;
        }
    }
}
