//! Redis gauges for the metrics exporter (cargo feature `metrics`): the state of the
//! stream and the group, read every `metrics_interval` by each backend.
//!
//! Gauges hold the last reading, so a scrape never waits for Redis; a reading that fails
//! (Redis away) leaves the last values and is retried at the next tick.

use std::sync::{Arc, Weak};

use super::core::Core;
use super::health;

/// Gauge: entries in the stream (`stream`).
pub const STREAM_LENGTH: &str = "necrostack_redis_stream_length";
/// Gauge: entries delivered to the group and not yet acknowledged (`stream`, `group`).
pub const PENDING: &str = "necrostack_redis_pending";
/// Gauge: entries not yet delivered to the group (`stream`, `group`).
pub const LAG: &str = "necrostack_redis_lag";
/// Gauge: entries in the dead-letter stream (`stream`).
pub const DEAD_LETTERS: &str = "necrostack_redis_dead_letters";
/// Gauge: scheduled events not yet moved into the stream (`stream`).
pub const SCHEDULED: &str = "necrostack_redis_scheduled";
/// Counter: times this backend re-established a lost connection (`stream`).
pub const RECONNECTIONS: &str = "necrostack_redis_reconnections_total";

/// Starts the reader; it ends when the backend is closed or dropped.
pub(crate) fn spawn(core: &Arc<Core>) {
    let period = core.config.metrics_interval;
    let weak = Arc::downgrade(core);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if !refresh(&weak).await {
                return;
            }
        }
    });
}

/// One reading; `false` when the backend is gone or closed.
async fn refresh(weak: &Weak<Core>) -> bool {
    let Some(core) = weak.upgrade() else {
        return false;
    };
    if core.is_closed() {
        return false;
    }
    let stream = core.stream.clone();
    let group = core.config.group.clone();
    let reconnections = core.counters.snapshot().reconnections;
    metrics::counter!(RECONNECTIONS, "stream" => stream.clone()).absolute(reconnections);
    match health::read(&core).await {
        Ok(health) => {
            let gauge = |name: &'static str, value: u64| {
                metrics::gauge!(name, "stream" => stream.clone()).set(value as f64);
            };
            gauge(STREAM_LENGTH, health.stream_length);
            gauge(DEAD_LETTERS, health.dead_letters);
            gauge(SCHEDULED, health.scheduled);
            let by_group = |name: &'static str, value: u64| {
                metrics::gauge!(name, "stream" => stream.clone(), "group" => group.clone())
                    .set(value as f64);
            };
            by_group(PENDING, health.pending);
            if let Some(lag) = health.lag {
                by_group(LAG, lag);
            }
        }
        Err(error) => tracing::debug!(%error, "could not read the Redis gauges"),
    }
    true
}
