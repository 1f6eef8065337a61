//! What the spine records about its work: metrics through the [`metrics`] facade (cargo
//! feature `metrics`), and the span of each handling.
//!
//! The library only records; the application installs the exporter it wants (for
//! Prometheus, `metrics-exporter-prometheus`). Without the feature every function here is
//! an empty inline function, so a build that does not want metrics pays nothing for them.
//! The names follow Prometheus conventions and are listed in the README ("Operating").
//!
//! [`metrics`]: https://docs.rs/metrics

use std::time::Duration;

/// Counter: organ runs, successful or not (`organ`, `event_type`).
pub const HANDLINGS: &str = "necrostack_handlings_total";
/// Counter: organ runs that failed, retried or not (`organ`, `event_type`, `kind`).
pub const FAILURES: &str = "necrostack_handling_failures_total";
/// Counter: retries scheduled after a failure (`organ`, `event_type`).
pub const RETRIES: &str = "necrostack_retries_total";
/// Counter: events moved to the dead-letter store by the spine (`event_type`, `reason`).
pub const DEAD_LETTERS: &str = "necrostack_dead_letters_total";
/// Histogram: how long one organ run took, in seconds (`organ`, `event_type`).
pub const HANDLING_DURATION: &str = "necrostack_handling_duration_seconds";
/// Counter: events taken from the backend.
pub const PULLED: &str = "necrostack_events_pulled_total";
/// Gauge: events taken from the backend and not yet completed.
pub const IN_FLIGHT: &str = "necrostack_events_in_flight";
/// Counter: events no organ listens to (`event_type`).
pub const UNROUTED: &str = "necrostack_events_unrouted_total";

/// The outcome of one organ run, for the metrics.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(
    not(feature = "metrics"),
    expect(dead_code, reason = "the failure kind is a metrics label only")
)]
pub(crate) enum Ran {
    Succeeded,
    Failed(crate::FailureKind),
}

/// One organ run finished.
#[inline]
pub(crate) fn handling(organ: &'static str, event_type: &'static str, ran: Ran, took: Duration) {
    #[cfg(feature = "metrics")]
    {
        let labels = [("organ", organ), ("event_type", event_type)];
        metrics::counter!(HANDLINGS, &labels).increment(1);
        metrics::histogram!(HANDLING_DURATION, &labels).record(took.as_secs_f64());
        if let Ran::Failed(kind) = ran {
            let kind = match kind {
                crate::FailureKind::Error => "error",
                crate::FailureKind::Panic => "panic",
                crate::FailureKind::Timeout => "timeout",
                crate::FailureKind::Permanent => "permanent",
            };
            metrics::counter!(FAILURES, "organ" => organ, "event_type" => event_type, "kind" => kind)
                .increment(1);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (organ, event_type, ran, took);
}

/// A retry was scheduled.
#[inline]
pub(crate) fn retry(organ: &'static str, event_type: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(RETRIES, "organ" => organ, "event_type" => event_type).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (organ, event_type);
}

/// The spine dead-lettered an event.
#[inline]
pub(crate) fn dead_letter(event_type: &str, reason: &crate::DeadLetterReason) {
    #[cfg(feature = "metrics")]
    {
        let reason = match reason {
            crate::DeadLetterReason::HandlerFailed { .. } => "handler_failed",
            crate::DeadLetterReason::Undecodable { .. } => "undecodable",
            crate::DeadLetterReason::ProbableLoop { .. } => "probable_loop",
        };
        metrics::counter!(DEAD_LETTERS, "event_type" => event_type.to_owned(), "reason" => reason)
            .increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (event_type, reason);
}

/// Events were taken from the backend.
#[inline]
pub(crate) fn pulled(count: usize) {
    #[cfg(feature = "metrics")]
    metrics::counter!(PULLED).increment(count as u64);
    #[cfg(not(feature = "metrics"))]
    let _ = count;
}

/// The number of events taken and not yet completed changed by `change`.
#[inline]
pub(crate) fn in_flight(change: f64) {
    #[cfg(feature = "metrics")]
    metrics::gauge!(IN_FLIGHT).increment(change);
    #[cfg(not(feature = "metrics"))]
    let _ = change;
}

/// An event nobody listens to was acknowledged.
#[inline]
pub(crate) fn unrouted(event_type: &str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(UNROUTED, "event_type" => event_type.to_owned()).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = event_type;
}

/// Whether the clock should be read around each organ run (only to record durations).
#[inline]
pub(crate) const fn timed() -> bool {
    cfg!(feature = "metrics")
}
