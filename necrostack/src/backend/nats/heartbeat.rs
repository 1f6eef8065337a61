//! Keeping held messages from being redelivered while this worker still has them.
//!
//! The server redelivers a message not acknowledged within `AckWait`. A message this
//! worker pulled is unacknowledged from the moment it was delivered, also while it waits
//! in the spine's batch behind slower events; so while the backend holds messages, a task
//! sends an in-progress ack (`+WPI`, which resets the timer without counting a delivery)
//! for each of them every third of `AckWait`.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::core::Core;

/// Starts the heartbeat; it ends when the backend is closed or dropped.
pub(crate) fn spawn(core: &Arc<Core>) {
    let period = (core.ack_wait() / 3).max(Duration::from_millis(10));
    let weak = Arc::downgrade(core);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            if !beat(&weak).await {
                return;
            }
        }
    });
}

/// One beat; `false` when the backend is gone or closed.
async fn beat(weak: &Weak<Core>) -> bool {
    let Some(core) = weak.upgrade() else {
        return false;
    };
    if core.is_closed() {
        return false;
    }
    let held: Vec<_> = core.held().values().cloned().collect();
    for reply in held {
        if let Err(error) = core.client.publish(reply, "+WPI".into()).await {
            // Harmless once: the next beat comes well before AckWait runs out.
            tracing::debug!(error = %core.scrub(&error), "could not refresh held messages");
            break;
        }
    }
    true
}
