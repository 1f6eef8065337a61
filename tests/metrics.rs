//! The metrics a known flow records through the `metrics` facade (cargo feature
//! `metrics`; CI builds with every feature), read back with a debugging recorder.
//!
//! One test function: the recorder is global to this test binary.

#[cfg(not(feature = "metrics"))]
#[test]
#[ignore = "needs `--features metrics` (CI runs every test with --all-features)"]
fn metrics_of_a_known_flow() {}

#[cfg(feature = "metrics")]
#[test]
fn metrics_of_a_known_flow() {
    flow::check();
}

#[cfg(feature = "metrics")]
mod flow {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::Duration;

    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use metrics_util::MetricKind;
    use necrostack::telemetry::{
        DEAD_LETTERS, FAILURES, HANDLINGS, HANDLING_DURATION, IN_FLIGHT, PULLED, RETRIES, UNROUTED,
    };
    use necrostack::{organ, Backend, Envelope, Event, FailurePolicy, RetryPolicy, Spine};
    use serde::{Deserialize, Serialize};
    use tokio::sync::Semaphore;

    #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
    struct Ping {
        n: u32,
    }

    #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
    struct Unheard;

    #[organ(listens_to = Ping)]
    fn steady(_: &Ping) {}

    /// Fails the first try of every event.
    #[organ(listens_to = Ping)]
    fn flaky(ping: &Envelope<Ping>) -> Result<(), std::io::Error> {
        if ping.attempt() == 1 {
            return Err(std::io::Error::other("first try"));
        }
        Ok(())
    }

    #[organ(listens_to = Ping)]
    fn doomed(_: &Ping) -> Result<(), std::io::Error> {
        Err(std::io::Error::other("never works"))
    }

    /// (name, labels sorted) → value.
    type Readings = HashMap<(String, Vec<(String, String)>), (MetricKind, DebugValue)>;

    fn read(snapshot: metrics_util::debugging::Snapshot) -> Readings {
        snapshot
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let (kind, key) = key.into_parts();
                let mut labels: Vec<(String, String)> = key
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                labels.sort();
                ((key.name().to_owned(), labels), (kind, value))
            })
            .collect()
    }

    fn get<'a>(readings: &'a Readings, name: &str, labels: &[(&str, &str)]) -> &'a DebugValue {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        labels.sort();
        &readings
            .get(&(name.to_owned(), labels.clone()))
            .unwrap_or_else(|| panic!("no metric {name} {labels:?}; have {:#?}", readings.keys()))
            .1
    }

    fn counter(readings: &Readings, name: &str, labels: &[(&str, &str)]) -> u64 {
        match get(readings, name, labels) {
            DebugValue::Counter(value) => *value,
            other => panic!("{name} is not a counter: {other:?}"),
        }
    }

    pub(super) fn check() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("the only recorder of this test binary");

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let report = runtime.block_on(async {
            let retry =
                RetryPolicy::new(2).backoff(Duration::from_millis(5), Duration::from_millis(5));
            let spine = Spine::builder()
                .organ(steady)
                .organ_with_policy(flaky, FailurePolicy::Retry(retry))
                .organ_with_policy(doomed, FailurePolicy::DeadLetter)
                .build()
                .unwrap();
            spine.emit_all((0..3).map(|n| Ping { n })).await.unwrap();
            spine.emit(Unheard).await.unwrap();
            spine.run_until_idle().await.unwrap()
        });
        // 3 pings + 3 retries of `flaky` + 1 unheard event.
        assert_eq!(
            (report.steps, report.retried, report.dead_lettered),
            (7, 3, 3)
        );

        let readings = read(snapshotter.snapshot());
        let ping = |organ: &'static str| [("organ", organ), ("event_type", "Ping")];
        assert_eq!(counter(&readings, HANDLINGS, &ping("steady")), 3);
        assert_eq!(
            counter(&readings, HANDLINGS, &ping("flaky")),
            6,
            "3 failed + 3 retried"
        );
        assert_eq!(counter(&readings, HANDLINGS, &ping("doomed")), 3);
        let failed = |organ| [("organ", organ), ("event_type", "Ping"), ("kind", "error")];
        assert_eq!(counter(&readings, FAILURES, &failed("flaky")), 3);
        assert_eq!(counter(&readings, FAILURES, &failed("doomed")), 3);
        assert!(
            !readings.keys().any(|(name, labels)| name == FAILURES
                && labels.contains(&("organ".to_owned(), "steady".to_owned()))),
            "no failure recorded for an organ that never failed"
        );
        assert_eq!(counter(&readings, RETRIES, &ping("flaky")), 3);
        let dead = [("event_type", "Ping"), ("reason", "handler_failed")];
        assert_eq!(counter(&readings, DEAD_LETTERS, &dead), 3);
        assert_eq!(counter(&readings, PULLED, &[]), 7);
        assert_eq!(
            counter(&readings, UNROUTED, &[("event_type", "Unheard")]),
            1
        );
        match get(&readings, IN_FLIGHT, &[]) {
            DebugValue::Gauge(value) => assert_eq!(value.into_inner(), 0.0, "all completed"),
            other => panic!("{IN_FLIGHT} is not a gauge: {other:?}"),
        }
        for organ in ["steady", "flaky", "doomed"] {
            match get(&readings, HANDLING_DURATION, &ping(organ)) {
                DebugValue::Histogram(seconds) => {
                    let expected = if organ == "flaky" { 6 } else { 3 };
                    assert_eq!(seconds.len(), expected, "{organ}: one observation per run");
                    assert!(seconds
                        .iter()
                        .all(|s| s.into_inner() >= 0.0 && s.into_inner() < 5.0));
                }
                other => panic!("{HANDLING_DURATION} is not a histogram: {other:?}"),
            }
        }

        // A stop gives back what was pulled but not started: no longer in flight.
        let left = runtime.block_on(stopped_with_events_buffered());
        assert_eq!(left, 9, "4 never pulled + 5 pulled and given back");
        match get(&read(snapshotter.snapshot()), IN_FLIGHT, &[]) {
            DebugValue::Gauge(value) => {
                assert_eq!(
                    value.into_inner(),
                    0.0,
                    "the given-back events are not in flight"
                );
            }
            other => panic!("{IN_FLIGHT} is not a gauge: {other:?}"),
        }
    }

    #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
    struct Slow {
        n: u32,
    }

    /// Blocks every handling until the test opens the gate.
    struct Gated {
        gate: Arc<Semaphore>,
    }

    #[organ(listens_to = Slow)]
    impl Gated {
        async fn handle(&self, _: &Slow) -> Result<(), std::io::Error> {
            let permit = self.gate.acquire().await.map_err(std::io::Error::other)?;
            permit.forget();
            Ok(())
        }
    }

    /// Stops a run while one handling blocks and five pulled events wait for it (one
    /// ordering key, concurrency 4, batches of 2: three pulls, the later ones with events
    /// already waiting); returns how many events the backend holds after.
    async fn stopped_with_events_buffered() -> usize {
        let gate = Arc::new(Semaphore::new(0));
        let spine = Spine::builder()
            .organ(Gated {
                gate: Arc::clone(&gate),
            })
            .order_key(|_: &Slow| 0_u8)
            .concurrency(4)
            .batch_size(2)
            .build()
            .unwrap();
        // Straight into the backend, without a partition key, so that the backend hands
        // them out and the spine's ordering key alone holds them back.
        let events = (0..10).map(|n| Envelope::new(Slow { n }).into()).collect();
        spine.backend().enqueue(events).await.unwrap();
        let running = tokio::spawn({
            let spine = spine.clone();
            async move { spine.run().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        spine.stop_handle().stop();
        tokio::time::sleep(Duration::from_millis(20)).await;
        gate.add_permits(10);
        let report = running.await.unwrap().unwrap();
        assert_eq!(report.succeeded, 1, "only the one begun before the stop");
        spine.backend().len()
    }
}
