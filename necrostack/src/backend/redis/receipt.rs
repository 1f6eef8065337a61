//! [`RedisReceipt`]: the entry id of a delivery, and a guard for deliveries that are
//! dropped without being completed or released.
//!
//! While this consumer holds an entry, its heartbeat keeps the entry from being taken
//! over. A delivery dropped on the floor (a cancelled `Spine::run`, a bug in a custom
//! loop) would then be held, and stuck, for the life of the process. So dropping a
//! receipt that was never passed to `complete` or `release` gives the entry up: it is no
//! longer held, and the next pull of this consumer re-reads it (as the next attempt).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Weak;

use super::core::Core;

/// The acknowledgement token of a Redis delivery: the stream entry id.
///
/// Not `Clone`: each delivery has one receipt, consumed by
/// [`complete`](crate::Backend::complete) or [`release`](crate::Backend::release).
/// Dropping it unused makes the entry deliverable again.
pub struct RedisReceipt {
    entry_id: String,
    /// The entry's delivery count when it was read.
    deliveries: u32,
    /// Set while the receipt is armed: dropping it then gives the entry up.
    core: Weak<Core>,
    /// On a partition: its index and the fencing token the entry was read under.
    fence: Option<(u32, u64)>,
    /// Whether `pull` handed it to the caller (partitions count those in flight).
    handed: bool,
}

impl RedisReceipt {
    pub(crate) fn new(entry_id: String, deliveries: u32, core: Weak<Core>) -> Self {
        RedisReceipt {
            entry_id,
            deliveries,
            core,
            fence: None,
            handed: false,
        }
    }

    /// Marks the delivery as handed to the caller of `pull`.
    pub(crate) fn set_handed(&mut self, handed: bool) {
        self.handed = handed;
    }

    /// The receipt of an entry of partition `partition` read under lease `token`.
    pub(crate) fn fenced(mut self, partition: u32, token: u64) -> Self {
        self.fence = Some((partition, token));
        self
    }

    /// The partition of the entry (partitioned streams only).
    pub fn partition(&self) -> Option<u32> {
        self.fence.map(|(partition, _)| partition)
    }

    /// The partition and fencing token the entry was read under.
    pub(crate) fn fence(&self) -> Option<(u32, u64)> {
        self.fence
    }

    /// How many times the entry had been delivered when it was read (this delivery
    /// included).
    pub fn deliveries(&self) -> u32 {
        self.deliveries
    }

    /// The id of the stream entry (`<ms>-<seq>`).
    pub fn entry_id(&self) -> &str {
        &self.entry_id
    }

    /// Takes the id out, disarming the drop guard (the caller now owns the outcome).
    pub(crate) fn into_entry_id(mut self) -> String {
        self.core = Weak::new();
        std::mem::take(&mut self.entry_id)
    }

    /// The id and the delivery count, disarming the drop guard.
    pub(crate) fn into_parts(self) -> (String, u32) {
        let deliveries = self.deliveries;
        (self.into_entry_id(), deliveries)
    }
}

impl Drop for RedisReceipt {
    fn drop(&mut self) {
        if let Some(core) = self.core.upgrade() {
            if self.handed {
                if let Some(lane) = &core.lane {
                    lane.hand_back();
                }
            }
            if core.held().remove(&self.entry_id) {
                core.recover_pending();
                tracing::debug!(entry_id = %self.entry_id, "a delivery was dropped unhandled; it will be delivered again");
            }
        }
    }
}

impl fmt::Debug for RedisReceipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReceipt")
            .field("entry_id", &self.entry_id)
            .field("deliveries", &self.deliveries)
            .finish()
    }
}

impl PartialEq for RedisReceipt {
    fn eq(&self, other: &Self) -> bool {
        self.entry_id == other.entry_id
    }
}

impl Eq for RedisReceipt {}

impl Hash for RedisReceipt {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.entry_id.hash(state);
    }
}
