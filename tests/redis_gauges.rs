//! The Redis gauges of a partitioned stream (cargo feature `metrics`): per partition
//! pending, lag and ownership, read back with a debugging recorder from a real
//! `redis-server`.
//!
//! One test function: the recorder is global to this test binary.

#[cfg(not(feature = "metrics"))]
#[test]
#[ignore = "needs `--features metrics` (CI runs every test with --all-features)"]
fn partition_gauges() {}

#[cfg(feature = "metrics")]
#[test]
fn partition_gauges() {
    gauges::check();
}

#[path = "support/redis_server.rs"]
mod redis_server;

#[path = "support/partition_events.rs"]
mod partition_events;

#[cfg(feature = "metrics")]
mod gauges {
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
    use necrostack::backend::redis::RedisBackendBuilder;
    use necrostack::{Backend, RedisBackend};

    use super::partition_events::Step;
    use super::redis_server::RedisServer;

    const PARTITIONS: u32 = 4;
    const EVENTS: u32 = 8;

    fn builder(url: &str, consumer: &str) -> RedisBackendBuilder {
        RedisBackend::builder(url)
            .stream("gauged")
            .consumer(consumer)
            .partitions(PARTITIONS)
            .partition_lease(Duration::from_millis(600))
            .block_time(Duration::from_millis(100))
            .metrics_interval(Duration::from_millis(100))
    }

    /// One snapshot: (name, labels) → value. The debugging recorder sets each gauge
    /// back to 0 when it is read, so a snapshot is taken only after a pause longer than
    /// `metrics_interval`, and every check reads one snapshot.
    type Readings = Vec<(String, Vec<(String, String)>, f64)>;

    fn readings(snapshotter: &Snapshotter) -> Readings {
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter_map(|(key, _, _, value)| {
                let DebugValue::Gauge(value) = value else {
                    return None;
                };
                let key = key.key();
                let labels = key
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                Some((key.name().to_owned(), labels, value.into_inner()))
            })
            .collect()
    }

    /// The gauge `name`'s values by partition, for the readings whose labels include
    /// all of `labels`.
    fn by_partition(
        readings: &Readings,
        name: &str,
        labels: &[(&str, &str)],
    ) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for (n, have, value) in readings {
            let has = |k: &str, v: &str| have.iter().any(|(hk, hv)| hk == k && hv == v);
            if n != name || !labels.iter().all(|(k, v)| has(k, v)) {
                continue;
            }
            if let Some((_, partition)) = have.iter().find(|(k, _)| k == "partition") {
                out.insert(partition.clone(), *value);
            }
        }
        out
    }

    /// Takes a fresh snapshot (after a pause of three readings) until `done` holds for
    /// it, or gives up after `limit`; returns the last snapshot and whether it held.
    async fn eventually(
        snapshotter: &Snapshotter,
        limit: Duration,
        done: impl Fn(&Readings) -> bool,
    ) -> (Readings, bool) {
        let started = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = readings(snapshotter);
            if done(&now) || started.elapsed() > limit {
                let held = done(&now);
                return (now, held);
            }
        }
    }

    pub(super) fn check() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("the only recorder of this test binary");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(run(&server.url(), &snapshotter));
    }

    async fn run(url: &str, snapshotter: &Snapshotter) {
        let producer = RedisBackend::builder(url)
            .stream("gauged")
            .partitions(PARTITIONS)
            .build_producer()
            .await
            .unwrap();
        for n in 0..EVENTS {
            producer.emit(Step { key: n, seq: 0 }).await.unwrap();
        }
        let first = builder(url, "g1").build().await.unwrap();
        let pulled = first.pull(3, Duration::from_secs(5)).await.unwrap().len();
        assert!(pulled > 0, "the first pull joins and reads");
        let total = |r: &Readings, name: &str| -> f64 { by_partition(r, name, &[]).values().sum() };
        let (now, settled) = eventually(snapshotter, Duration::from_secs(10), |r| {
            let pending = total(r, "necrostack_redis_partition_pending");
            by_partition(r, "necrostack_redis_partition_pending", &[]).len() == PARTITIONS as usize
                && pending >= pulled as f64
                && pending + total(r, "necrostack_redis_partition_lag") == f64::from(EVENTS)
                && total(r, "necrostack_redis_partition_owned") == f64::from(PARTITIONS)
        })
        .await;
        assert!(
            settled,
            "one row per partition: at least {pulled} pending, the rest lag, all owned by g1; have {now:?}"
        );

        // A second worker joins: each partition is then owned by exactly one of them,
        // as each one's gauges say.
        let second = builder(url, "g2").build().await.unwrap();
        let _ = second.pull(1, Duration::from_millis(300)).await.unwrap();
        let owned = |r: &Readings, consumer: &str| {
            by_partition(
                r,
                "necrostack_redis_partition_owned",
                &[("consumer", consumer)],
            )
        };
        let (now, split) = eventually(snapshotter, Duration::from_secs(10), |r| {
            let (one, two) = (owned(r, "g1"), owned(r, "g2"));
            two.len() == PARTITIONS as usize
                && (0..PARTITIONS).all(|p| {
                    let p = p.to_string();
                    one.get(&p).copied().unwrap_or(0.0) + two.get(&p).copied().unwrap_or(0.0) == 1.0
                })
        })
        .await;
        assert!(split, "every partition owned once after the join: {now:?}");
        second.close().await.unwrap();
        first.close().await.unwrap();
    }
}
