//! [`NatsReceipt`]: the ack subject of a delivery, and a guard for deliveries dropped
//! without being completed or released.
//!
//! While this worker holds a message, its heartbeat keeps the server from redelivering
//! it. A delivery dropped on the floor (a cancelled `Spine::run`, a bug in a custom loop)
//! would then be held until the process ends. So dropping a receipt that was never passed
//! to `complete` or `release` gives the message back with a negative ack.

use std::fmt;
use std::sync::Weak;

use async_nats::Subject;

use super::core::Core;

/// The acknowledgement token of a NATS delivery.
///
/// Not `Clone`: each delivery has one receipt, consumed by
/// [`complete`](crate::Backend::complete) or [`release`](crate::Backend::release).
/// Dropping it unused makes the message deliverable again at once.
pub struct NatsReceipt {
    sequence: u64,
    reply: Subject,
    deliveries: u32,
    /// Set while the receipt is armed: dropping it then gives the message back.
    core: Weak<Core>,
}

impl NatsReceipt {
    pub(crate) fn new(sequence: u64, reply: Subject, deliveries: u32, core: Weak<Core>) -> Self {
        NatsReceipt {
            sequence,
            reply,
            deliveries,
            core,
        }
    }

    /// The message's sequence in the events stream.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// How many times the message had been delivered, this delivery included.
    pub fn deliveries(&self) -> u32 {
        self.deliveries
    }

    /// The sequence, the ack subject and the delivery count, disarming the drop guard.
    pub(crate) fn into_parts(mut self) -> (u64, Subject, u32) {
        self.core = Weak::new();
        let reply = std::mem::replace(&mut self.reply, Subject::from_static(""));
        (self.sequence, reply, self.deliveries)
    }
}

impl Drop for NatsReceipt {
    fn drop(&mut self) {
        let Some(core) = self.core.upgrade() else {
            return;
        };
        if core.held().remove(&self.sequence).is_none() {
            return;
        }
        tracing::debug!(
            sequence = self.sequence,
            "a delivery was dropped unhandled; it will be delivered again"
        );
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let reply = self.reply.clone();
            let client = core.client.clone();
            runtime.spawn(async move {
                // Best effort: without it, the message comes back after AckWait.
                let _ = client.publish(reply, "-NAK".into()).await;
            });
        }
    }
}

impl fmt::Debug for NatsReceipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsReceipt")
            .field("sequence", &self.sequence)
            .field("deliveries", &self.deliveries)
            .finish()
    }
}
