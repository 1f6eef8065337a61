//! The NATS JetStream workloads and their baseline: raw async-nats JetStream publishes of
//! the same JSON messages the workload writes, to a stream of the same kind (file
//! storage, one replica), 256 in flight on one connection, every PubAck awaited. That is
//! about the fastest way to store those events in JetStream, before anyone pulls or
//! acknowledges them, so the ratio says what share of raw publish speed the whole
//! framework keeps.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use necrostack::{organ, Envelope, Event, NatsBackend, Spine};

use super::memory::{bill, order, price, validate, Omen, Record, Tick, Watcher, FANOUT_ORGANS};
use super::Timed;

/// Hops in the chain.
pub const CHAIN_N: u64 = 5_000;
/// Orders pre-loaded for the pipeline (4 events each).
pub const PIPELINE_N: u64 = 10_000;
/// Events in the fan-out.
pub const FANOUT_N: u64 = 20_000;
/// Events handled at once by one spine in the pipeline and fan-out workloads, as for
/// Redis: the publishes and acks of the events in flight share round trips.
pub const CONCURRENCY: usize = 256;
/// Messages per pull in those workloads (the spine's default is 64).
pub const BATCH_SIZE: usize = 256;
/// Publishes in flight in the baseline.
const BASELINE_WINDOW: usize = 256;
/// Where the harness passes the server's URL to the child processes.
pub const URL_ENV: &str = "NECROSTACK_BENCH_NATS_URL";

const BASELINE: &str = "jetstream_publish_256";

/// Runs the named workload after its baseline; `reset_peak` is called between the two.
pub async fn run(workload: &str, workers: u32, scale: f64, reset_peak: fn()) -> Timed {
    let url = std::env::var(URL_ENV).expect("the harness passes the NATS URL");
    let scaled = |n: u64| ((n as f64 * scale) as u64).max(1);
    let stream = format!("BENCH_{workload}_{workers}_{}", std::process::id());
    let timed = match workload {
        "chain" => {
            let n = scaled(CHAIN_N);
            let entries = (0..n).map(|n| json(Envelope::new(Tick { n }))).collect();
            let baseline = publish_baseline(&url, &stream, entries).await;
            reset_peak();
            chain(&url, &stream, n, baseline).await
        }
        "pipeline" => {
            let n = scaled(PIPELINE_N);
            let baseline = publish_baseline(&url, &stream, pipeline_entries(n)).await;
            reset_peak();
            pipeline(&url, &stream, n, workers, baseline).await
        }
        "fanout" => {
            let n = scaled(FANOUT_N);
            let entries = (0..n).map(|n| json(Envelope::new(Omen { n }))).collect();
            let baseline = publish_baseline(&url, &stream, entries).await;
            reset_peak();
            fanout(&url, &stream, n, baseline).await
        }
        other => panic!("unknown nats workload {other}"),
    };
    delete_streams(&url, &stream).await;
    timed
}

fn json<E: Event>(envelope: Envelope<E>) -> Vec<u8> {
    envelope.to_json().expect("bench events encode")
}

/// The JSON of every event the pipeline writes: each order at its four stages.
fn pipeline_entries(n: u64) -> Vec<Vec<u8>> {
    let mut entries = Vec::with_capacity(4 * n as usize);
    for placed in (0..n).map(order) {
        let validated = validate::handle(&placed).expect("bench orders are valid");
        let priced = price::handle(&validated);
        let billed = bill::handle(&priced);
        entries.push(json(Envelope::new(placed)));
        entries.push(json(Envelope::new(validated)));
        entries.push(json(Envelope::new(priced)));
        entries.push(json(Envelope::new(billed)));
    }
    entries
}

/// Messages per second published to a stream of the baseline's own, every PubAck awaited.
async fn publish_baseline(url: &str, stream: &str, entries: Vec<Vec<u8>>) -> f64 {
    let name = format!("{stream}_BASELINE");
    let subject = format!("baseline.{stream}");
    let client = async_nats::connect(url).await.expect("connect to NATS");
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name,
        subjects: vec![subject.clone()],
        storage: async_nats::jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .expect("create the baseline stream");
    let start = Instant::now();
    let mut written = 0;
    for window in entries.chunks(BASELINE_WINDOW) {
        let mut acks = Vec::with_capacity(window.len());
        for entry in window {
            let ack = js
                .publish(subject.clone(), entry.clone().into())
                .await
                .expect("publish");
            acks.push(ack);
        }
        for ack in acks {
            ack.await.expect("PubAck");
            written += 1;
        }
    }
    let per_sec = entries.len() as f64 / start.elapsed().as_secs_f64();
    assert_eq!(written, entries.len(), "every baseline message stored");
    per_sec
}

/// Removes the workload's streams, so that runs against a shared server leave nothing.
async fn delete_streams(url: &str, stream: &str) {
    let client = async_nats::connect(url).await.expect("connect to NATS");
    let js = async_nats::jetstream::new(client);
    for suffix in ["", "_SCHEDULED", "_DLQ", "_BASELINE"] {
        let _ = js.delete_stream(format!("{stream}{suffix}")).await;
    }
}

async fn backend(url: &str, stream: &str, _consumer: &str) -> NatsBackend {
    // Every worker of a workload shares the one durable consumer.
    NatsBackend::builder(url)
        .stream(stream)
        .consumer("bench")
        .build()
        .await
        .expect("connect the NATS backend")
}

// ---- chain -------------------------------------------------------------------------

/// The chain's organ, recording when each hop was handled.
struct TimedChain {
    until: u64,
    handled_at: Arc<Mutex<Vec<Instant>>>,
}

#[organ(listens_to = Tick)]
impl TimedChain {
    fn handle(&self, tick: &Tick) -> Option<Tick> {
        self.handled_at
            .lock()
            .expect("not poisoned")
            .push(Instant::now());
        let next = tick.n + 1;
        (next < self.until).then_some(Tick { n: next })
    }
}

async fn chain(url: &str, stream: &str, n: u64, baseline_per_sec: f64) -> Timed {
    let handled_at = Arc::new(Mutex::new(Vec::with_capacity(n as usize)));
    let spine = Spine::builder()
        .organ(TimedChain {
            until: n,
            handled_at: Arc::clone(&handled_at),
        })
        .backend(backend(url, stream, "chain").await)
        .max_steps(n as usize)
        .depth_limit(None)
        .build()
        .expect("valid spine");
    let start = Instant::now();
    spine.emit(Tick { n: 0 }).await.expect("emit");
    let report = spine.run_until_idle().await.expect("run");
    let elapsed = start.elapsed();
    assert_eq!(
        (report.steps as u64, report.succeeded as u64, report.failed),
        (n, n, 0)
    );

    let times = handled_at.lock().expect("not poisoned");
    let mut hops: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    hops.sort_unstable();
    let percentile = |p: f64| {
        let at = ((hops.len() as f64 * p) as usize).min(hops.len().saturating_sub(1));
        hops.get(at).map_or(f64::NAN, |d| d.as_secs_f64() * 1e6)
    };
    Timed {
        workers: 1,
        events: n,
        elapsed,
        baseline: BASELINE,
        baseline_per_sec,
        p50_hop_us: Some(percentile(0.50)),
        p99_hop_us: Some(percentile(0.99)),
    }
}

// ---- pipeline ----------------------------------------------------------------------

async fn pipeline(url: &str, stream: &str, n: u64, workers: u32, baseline_per_sec: f64) -> Timed {
    let record = Record::default();
    let mut spines = Vec::new();
    for worker in 0..workers {
        let spine = Spine::builder()
            .organ(validate)
            .organ(price)
            .organ(bill)
            .organ(record.clone())
            .backend(backend(url, stream, &format!("worker-{worker}")).await)
            .concurrency(CONCURRENCY)
            .batch_size(BATCH_SIZE)
            .build()
            .expect("valid spine");
        spines.push(spine);
    }
    for chunk in (0..n).collect::<Vec<_>>().chunks(1_000) {
        spines[0]
            .emit_all(chunk.iter().copied().map(order))
            .await
            .expect("pre-load");
    }

    // Every worker serves until the last order is recorded, then drains and stops.
    let start = Instant::now();
    let running: Vec<_> = spines
        .iter()
        .map(|spine| {
            let spine = spine.clone();
            tokio::spawn(async move { spine.run().await })
        })
        .collect();
    while record.orders.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let elapsed = start.elapsed();
    for spine in &spines {
        spine.stop_handle().stop();
    }
    let mut steps = 0;
    for run in running {
        let report = run.await.expect("worker task").expect("worker run");
        assert_eq!(report.failed, 0);
        steps += report.steps as u64;
    }
    assert_eq!(
        steps,
        4 * n,
        "every event taken exactly once across the workers"
    );
    assert_eq!(record.orders.load(Ordering::Relaxed), n);
    Timed {
        workers,
        events: 4 * n,
        elapsed,
        baseline: BASELINE,
        baseline_per_sec,
        p50_hop_us: None,
        p99_hop_us: None,
    }
}

// ---- fanout ------------------------------------------------------------------------

async fn fanout(url: &str, stream: &str, n: u64, baseline_per_sec: f64) -> Timed {
    let watchers: Vec<Watcher> = (0..FANOUT_ORGANS).map(|_| Watcher::default()).collect();
    let mut builder = Spine::builder()
        .backend(backend(url, stream, "fanout").await)
        .concurrency(CONCURRENCY)
        .batch_size(BATCH_SIZE);
    for watcher in &watchers {
        builder = builder.organ(watcher.clone());
    }
    let spine = builder.build().expect("valid spine");
    for chunk in (0..n).collect::<Vec<_>>().chunks(1_000) {
        spine
            .emit_all(chunk.iter().map(|&n| Omen { n }))
            .await
            .expect("pre-load");
    }
    // Served with `run` and stopped once the last organ has seen every event (organs of an
    // event run in order), as in the pipeline: with events in flight, `run_until_idle`
    // on NATS can take up to the backend's longest pull wait to see that the stream is idle (a
    // blocking read started by an earlier pull must end first), and that wait is not
    // handling.
    let start = Instant::now();
    let running = {
        let spine = spine.clone();
        tokio::spawn(async move { spine.run().await })
    };
    let expected = n * (n - 1) / 2;
    while watchers[FANOUT_ORGANS - 1].sum.load(Ordering::Relaxed) < expected {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let elapsed = start.elapsed();
    spine.stop_handle().stop();
    let report = running.await.expect("worker task").expect("run");
    assert_eq!((report.steps as u64, report.failed), (n, 0));
    assert_eq!(report.succeeded as u64, n * FANOUT_ORGANS as u64);
    for watcher in &watchers {
        assert_eq!(watcher.sum.load(Ordering::Relaxed), expected);
    }
    Timed {
        workers: 1,
        events: n,
        elapsed,
        baseline: BASELINE,
        baseline_per_sec,
        p50_hop_us: None,
        p99_hop_us: None,
    }
}
