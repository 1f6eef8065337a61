//! [`Meta`], an event's identity, time, lineage and partition key, and the fresh
//! identities it is made of: a time-ordered (v7) UUID and the creation time.
//!
//! This runs once for every event a spine enqueues, so it is built for speed: one clock
//! reading serves both the id and the timestamp, and the id's counter is one atomic
//! word instead of a lock.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use std::cell::Cell;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use uuid::{Builder, Uuid};

/// Identity, time, lineage and partition key of one event. Shared by the typed and the
/// erased envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) id: Uuid,
    pub(crate) timestamp: DateTime<Utc>,
    pub(crate) correlation_id: Uuid,
    pub(crate) causation_id: Option<Uuid>,
    pub(crate) depth: u32,
    /// Set on a scheduled retry only; one pointer wide, so that the metadata every
    /// emitted event copies stays small.
    pub(crate) retry: Option<Arc<Retry>>,
    /// The partition key ([`key_hash`](crate::partition::key_hash) of the event's key):
    /// events with one key are handled in order, one at a time, across every consumer.
    /// Set explicitly or by the spine from the type's `order_key`; kept by retries and
    /// dead letters (they are the same event), not inherited by the events it causes
    /// (each has its own type and key).
    pub(crate) key: Option<u64>,
}

/// Which try of the failure policy a delivery is, and for which organ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Retry {
    /// 2 for the first retry, and so on.
    pub(crate) attempt: u32,
    /// The one organ it is for (the others already handled the event); `None` for every
    /// organ (an envelope from another producer that gave only an attempt).
    pub(crate) organ: Option<String>,
}

impl Meta {
    /// Placeholder metadata for an event that is not enqueued yet (inside an
    /// [`Emit`](crate::Emit)); the spine stamps the real one when it enqueues the event.
    pub(crate) fn unstamped() -> Self {
        Meta {
            id: Uuid::nil(),
            timestamp: DateTime::<Utc>::UNIX_EPOCH,
            correlation_id: Uuid::nil(),
            causation_id: None,
            depth: 0,
            retry: None,
            key: None,
        }
    }

    /// Metadata for a root event: it correlates with itself and has no cause.
    pub(crate) fn root() -> Self {
        let (id, timestamp) = fresh_identity();
        Meta {
            id,
            timestamp,
            correlation_id: id,
            causation_id: None,
            depth: 0,
            retry: None,
            key: None,
        }
    }

    /// Metadata for an event emitted while handling the event described by `self`.
    pub(crate) fn child(&self) -> Self {
        let (id, timestamp) = fresh_identity();
        Meta {
            id,
            timestamp,
            correlation_id: self.correlation_id,
            causation_id: Some(self.id),
            depth: self.depth.saturating_add(1),
            retry: None,
            key: None,
        }
    }

    /// The same event again, as try number `attempt` of `organ` only: same id, lineage
    /// and partition key.
    pub(crate) fn retry(&self, attempt: u32, organ: &str) -> Self {
        Meta {
            retry: Some(Arc::new(Retry {
                attempt,
                organ: Some(organ.to_owned()),
            })),
            ..self.clone()
        }
    }

    /// Which try this is: 1 unless it is a retry.
    pub(crate) fn attempt(&self) -> u32 {
        self.retry.as_ref().map_or(1, |retry| retry.attempt)
    }

    /// The organ a retry is for.
    pub(crate) fn organ(&self) -> Option<&str> {
        self.retry.as_ref().and_then(|retry| retry.organ.as_deref())
    }
}

/// The last creation time handed out, in nanoseconds since the Unix epoch.
static LAST_NANOS: AtomicI64 = AtomicI64::new(i64::MIN);

/// The millisecond and the counter of the last id handed out: `millis << 16 | counter`.
static LAST_ID: AtomicU64 = AtomicU64::new(0);

/// Counter values past this one are left for increments within one millisecond: a new
/// millisecond starts the counter at a random value at most this (as `Uuid::now_v7` does
/// with its own counter), so that at least 32 768 ids fit in each millisecond.
const COUNTER_SEED_MASK: u64 = 0x7FFF;
const COUNTER_MAX: u64 = 0xFFFF;

/// A fresh time-ordered (v7) id and the creation time, from a single clock reading.
///
/// The time is never earlier than one this process handed out before: the wall clock can
/// step backwards (NTP), and envelopes created one after another must not, so that
/// timestamps are non-decreasing in emit order. Ids are strictly increasing in the order
/// they are handed out in this process (RFC 9562, method 1: a 16-bit counter after the
/// millisecond, reseeded at random each millisecond, then 58 random bits).
pub(crate) fn fresh_identity() -> (Uuid, DateTime<Utc>) {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|since| i64::try_from(since.as_nanos()).ok());
    let Some(nanos) = nanos else {
        // Before 1970 or after 2262: outside what the fast path represents.
        return (Uuid::now_v7(), Utc::now());
    };
    let nanos = LAST_NANOS.fetch_max(nanos, Ordering::AcqRel).max(nanos);
    // `nanos` is not negative here: it comes from a time after the epoch.
    let millis = (nanos / 1_000_000) as u64;
    (v7_id(&LAST_ID, millis), utc_from_nanos(nanos))
}

thread_local! {
    /// The last day converted to a calendar date, and that date: the date changes once a
    /// day, the calendar arithmetic would run for every event.
    static LAST_DAY: Cell<(i64, NaiveDate)> = const { Cell::new((i64::MIN, NaiveDate::MIN)) };
}

/// `DateTime::from_timestamp_nanos`, with the calendar date cached per thread.
fn utc_from_nanos(nanos: i64) -> DateTime<Utc> {
    const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;
    let day = nanos.div_euclid(NANOS_PER_DAY);
    let in_day = nanos.rem_euclid(NANOS_PER_DAY);
    let (cached_day, cached_date) = LAST_DAY.get();
    let date = if cached_day == day {
        cached_date
    } else {
        let date = DateTime::from_timestamp_nanos(day * NANOS_PER_DAY).date_naive();
        LAST_DAY.set((day, date));
        date
    };
    let seconds = (in_day / 1_000_000_000) as u32;
    let subsec = (in_day % 1_000_000_000) as u32;
    match NaiveTime::from_num_seconds_from_midnight_opt(seconds, subsec) {
        Some(time) => date.and_time(time).and_utc(),
        None => DateTime::from_timestamp_nanos(nanos),
    }
}

/// The next v7 id at `millis` (or later, if `last`, the state of the ids handed out so
/// far, already went past it).
fn v7_id(last_id: &AtomicU64, millis: u64) -> Uuid {
    // 122 random bits from the same generator `Uuid::now_v7` uses.
    let random = Uuid::new_v4().as_u128();
    let seed = (random as u64) & COUNTER_SEED_MASK;
    let mut last = last_id.load(Ordering::Relaxed);
    let next = loop {
        let last_millis = last >> 16;
        let next = if millis > last_millis {
            (millis << 16) | seed
        } else if last & COUNTER_MAX == COUNTER_MAX {
            // The counter is used up in this millisecond: move on to the next one.
            ((last_millis + 1) << 16) | seed
        } else {
            last + 1
        };
        match last_id.compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => break next,
            Err(current) => last = current,
        }
    };
    let counter = (next & COUNTER_MAX) as u16;
    let random = (random >> 64) as u64;
    let mut bytes = [0u8; 10];
    // The counter's top 12 bits are `rand_a`; its low 4 bits follow the variant bits.
    bytes[0] = (counter >> 12) as u8;
    bytes[1] = (counter >> 4) as u8;
    bytes[2] = (((counter & 0xF) as u8) << 2) | (random as u8 & 0b11);
    bytes[3..].copy_from_slice(&random.to_be_bytes()[1..]);
    Builder::from_unix_timestamp_millis(next >> 16, &bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_match_chrono_across_days_and_before_the_epoch() {
        let day = 86_400 * 1_000_000_000i64;
        for nanos in [
            0,
            1,
            day - 1,
            day,
            day + 123_456_789,
            1_764_230_400_000_000_000,
            1_764_230_400_000_000_000 + day - 1,
            -1,
            -day,
            -day - 5,
        ] {
            // Twice: the second call reads the cached date.
            assert_eq!(utc_from_nanos(nanos), DateTime::from_timestamp_nanos(nanos));
            assert_eq!(utc_from_nanos(nanos), DateTime::from_timestamp_nanos(nanos));
        }
    }

    #[test]
    fn ids_are_v7_and_strictly_increasing_with_non_decreasing_times() {
        let mut previous = fresh_identity();
        for _ in 0..100_000 {
            let next = fresh_identity();
            assert_eq!(next.0.get_version_num(), 7);
            assert_eq!(next.0.get_variant(), uuid::Variant::RFC4122);
            assert!(next.0 > previous.0, "{} then {}", previous.0, next.0);
            assert!(next.1 >= previous.1);
            previous = next;
        }
    }

    #[test]
    fn the_id_carries_the_millisecond_of_its_timestamp_or_later() {
        for _ in 0..1_000 {
            let (id, at) = fresh_identity();
            let (seconds, nanos) = id.get_timestamp().expect("a v7 id").to_unix();
            let id_millis = seconds * 1000 + u64::from(nanos) / 1_000_000;
            assert!(id_millis >= at.timestamp_millis() as u64);
            // Only a used-up counter moves the id ahead, by a millisecond at a time.
            assert!(id_millis - (at.timestamp_millis() as u64) < 1_000);
        }
    }

    #[test]
    fn a_used_up_counter_moves_to_the_next_millisecond() {
        let state = AtomicU64::new(0);
        let millis = 1_700_000_000_000;
        let mut previous = v7_id(&state, millis);
        for _ in 0..70_000 {
            let next = v7_id(&state, millis);
            assert!(next > previous);
            previous = next;
        }
        let (seconds, nanos) = previous.get_timestamp().expect("a v7 id").to_unix();
        assert!(seconds * 1000 + u64::from(nanos) / 1_000_000 > millis);
    }
}
