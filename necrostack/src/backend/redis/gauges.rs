//! Redis gauges for the metrics exporter (cargo feature `metrics`): the state of the
//! stream and the group, read every `metrics_interval` by each backend; on a partitioned
//! stream also per partition (label `partition`), from the same reading.
//!
//! Gauges hold the last reading, so a scrape never waits for Redis; a reading that fails
//! (Redis away) leaves the last values and is retried at the next tick.

use std::sync::Arc;

use super::core::Core;
use super::health::{self, PartitionHealth};
use super::periodic::{self, First};

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
/// Gauge: entries of one partition delivered and not yet acknowledged (`stream`,
/// `group`, `partition`). Its own name, not [`PENDING`] with one more label, so that a
/// `sum` over either never counts an entry twice.
pub const PARTITION_PENDING: &str = "necrostack_redis_partition_pending";
/// Gauge: entries of one partition not yet delivered to the group (`stream`, `group`,
/// `partition`); absent while Redis cannot tell.
pub const PARTITION_LAG: &str = "necrostack_redis_partition_lag";
/// Gauge: 1 when this backend's consumer holds the partition's lease, else 0 (`stream`,
/// `group`, `partition`, `consumer`): summed over a fleet it shows partitions with no
/// owner (0) or, briefly during a handover, seen as owned twice.
pub const PARTITION_OWNED: &str = "necrostack_redis_partition_owned";
/// Counter: times this backend re-established a lost connection (`stream`).
pub const RECONNECTIONS: &str = "necrostack_redis_reconnections_total";

/// Starts the reader; it ends when the backend is closed or dropped.
pub(crate) fn spawn(core: &Arc<Core>) {
    let period = core.config.metrics_interval;
    periodic::spawn(core, period, First::Now, refresh);
}

/// One reading.
async fn refresh(core: Arc<Core>) {
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
            record_partitions(&core, &health.partitions);
        }
        Err(error) => tracing::debug!(%error, "could not read the Redis gauges"),
    }
}

/// The per-partition gauges, from the rows [`health::read`] returned.
fn record_partitions(core: &Core, partitions: &[PartitionHealth]) {
    let stream = &core.stream;
    let group = &core.config.group;
    let consumer = &core.config.consumer;
    for row in partitions {
        let gauge = |name: &'static str, value: f64| {
            metrics::gauge!(
                name,
                "stream" => stream.clone(),
                "group" => group.clone(),
                "partition" => row.index.to_string()
            )
            .set(value);
        };
        gauge(PARTITION_PENDING, row.pending as f64);
        if let Some(lag) = row.lag {
            gauge(PARTITION_LAG, lag as f64);
        }
        let owned = row.owner.as_deref() == Some(consumer.as_str());
        metrics::gauge!(
            PARTITION_OWNED,
            "stream" => stream.clone(),
            "group" => group.clone(),
            "partition" => row.index.to_string(),
            "consumer" => consumer.clone()
        )
        .set(if owned { 1.0 } else { 0.0 });
    }
}
