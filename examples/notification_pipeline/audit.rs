//! The audit organ: counts every event of the flow, per type and per channel.
//!
//! An organ listens to one event type, so auditing eight types takes eight small organs;
//! a `macro_rules!` writes them, each an `#[organ]` `impl` block over one shared
//! [`Audit`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use necrostack::{organ, Event};

use crate::events::*;

/// Counts by event type, and by event type and channel.
#[derive(Debug, Default)]
pub struct Audit {
    counts: Mutex<BTreeMap<(&'static str, Option<Channel>), u64>>,
}

impl Audit {
    fn record(&self, event_type: &'static str, channel: Option<Channel>) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        *counts.entry((event_type, None)).or_insert(0) += 1;
        if channel.is_some() {
            *counts.entry((event_type, channel)).or_insert(0) += 1;
        }
    }

    /// Events of type `E` seen so far.
    pub fn count<E: Event>(&self) -> u64 {
        self.get(E::NAME, None)
    }

    /// Events of type `E` on `channel` seen so far.
    pub fn count_on<E: Event>(&self, channel: Channel) -> u64 {
        self.get(E::NAME, Some(channel))
    }

    /// Events of every type seen so far.
    pub fn total(&self) -> u64 {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts
            .iter()
            .filter(|((_, channel), _)| channel.is_none())
            .map(|(_, count)| count)
            .sum()
    }

    fn get(&self, event_type: &'static str, channel: Option<Channel>) -> u64 {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.get(&(event_type, channel)).copied().unwrap_or(0)
    }
}

/// `audit!(OrganName, EventType, |event| channel expression)`.
macro_rules! audit {
    ($organ:ident, $event:ty, |$e:ident| $channel:expr) => {
        #[doc = concat!("Counts `", stringify!($event), "` events.")]
        pub struct $organ(pub Arc<Audit>);

        #[organ(listens_to = $event, name = "Audit")]
        impl $organ {
            fn handle(&self, $e: &$event) {
                self.0.record(<$event as Event>::NAME, $channel);
            }
        }
    };
}

audit!(AuditRequested, NotificationRequested, |_e| None);
audit!(AuditValidated, NotificationValidated, |_e| None);
audit!(AuditRejected, NotificationRejected, |_e| None);
audit!(AuditEmail, EmailQueued, |_e| Some(Channel::Email));
audit!(AuditSms, SmsQueued, |_e| Some(Channel::Sms));
audit!(AuditPush, PushQueued, |_e| Some(Channel::Push));
audit!(AuditSent, NotificationSent, |e| Some(e.channel));
audit!(AuditFailed, NotificationFailed, |e| Some(e.channel));
