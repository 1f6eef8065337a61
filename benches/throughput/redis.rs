//! The Redis workloads and their baselines.
//!
//! The consuming workloads (`chain`, `pipeline`, `fanout`) are measured against a raw
//! redis-rs consumer doing the same work, with none of the framework: one connection,
//! `XREADGROUP COUNT 256` of the same pre-loaded JSON entries, and for each entry what
//! the workload writes (its output `XADD`s, decoded and encoded with the same envelope
//! JSON) and its `XACK`, sent in one pipeline together with the next read, no Lua. That
//! is about the fastest correct at-least-once consumer one can write by hand (though
//! its acknowledgement and output are not atomic), so the ratio says what share of it the
//! framework keeps. The `produce` workload (64 tasks calling `Spine::emit`) is measured
//! against raw `XADD`s of the same entries, pipelined in batches of 64.
//!
//! The partitioned rows run the pipeline on [`PARTITIONS`] partitions with 1, 2 and 4
//! worker spines (each with a backend and consumer name of its own, recommended
//! settings), every event keyed by its order number modulo [`KEYS`] with `order_key`, so
//! the orders spread over the partitions and each order's four events stay in its
//! partition. A partition is read only by its owner, and the owners are settled (every
//! partition owned, by as many workers as run) before the clock starts: the workers
//! start on the empty stream, and the orders are enqueued (by a producer spine of its own
//! that never pulls) once the ownership has settled, so the time includes enqueueing the
//! orders. On the single server the baseline is the same raw consumer on one stream; on
//! the cluster it is that consumer on one hash-tagged stream, connected straight to the
//! master of its slot (`redis_raw_consumer_256_one_master`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use necrostack::backend::redis::ENVELOPE_FIELD;
use necrostack::{organ, AnyEnvelope, Envelope, Event, RedisBackend, Spine};
use redis::Value;

use super::memory::{
    bill, order, price, validate, Omen, OrderBilled, OrderPlaced, OrderPriced, OrderValidated,
    Record, Tick, Watcher, FANOUT_ORGANS,
};
use super::{Layout, Timed};

/// Hops in the chain.
pub const CHAIN_N: u64 = 20_000;
/// Orders pre-loaded for the pipeline (4 events each).
pub const PIPELINE_N: u64 = 50_000;
/// Events in the fan-out.
pub const FANOUT_N: u64 = 50_000;
/// Events emitted in the `produce` workload, by [`PRODUCERS`] tasks.
pub const PRODUCE_N: u64 = 64_000;
/// Tasks emitting at once in the `produce` workload.
pub const PRODUCERS: u64 = 64;
/// Events handled at once by one spine with the README's recommended settings: with one
/// at a time, every event waits a full round trip for its acknowledgement; with many,
/// the acknowledgements of the ones in flight share round trips.
pub const CONCURRENCY: usize = 256;
/// Entries read per `XREADGROUP` with the recommended settings (the spine's default is 64).
pub const BATCH_SIZE: usize = 256;
/// Entries per pipelined batch in the `XADD` baseline.
const XADD_BATCH: usize = 64;
/// Entries per `XREADGROUP` in the raw consumer baseline.
const READ_COUNT: usize = 256;
/// Where the harness passes the server's URL to the child processes.
pub const URL_ENV: &str = "NECROSTACK_BENCH_REDIS_URL";
/// Where the harness passes the URL of a node of its Redis Cluster.
pub const CLUSTER_URL_ENV: &str = "NECROSTACK_BENCH_REDIS_CLUSTER_URL";
/// Where the harness passes the URL of the cluster master serving [`CLUSTER_BASELINE_TAG`].
pub const CLUSTER_BASELINE_URL_ENV: &str = "NECROSTACK_BENCH_REDIS_CLUSTER_BASELINE_URL";
/// The hash tag of the raw baseline's stream on the cluster: one slot, one master.
pub const CLUSTER_BASELINE_TAG: &str = "{bench}";
/// Partitions of the stream in the partitioned rows.
pub const PARTITIONS: u32 = 16;
/// Orders pre-loaded for the partitioned pipeline (4 events each): fewer than for the
/// one-stream pipeline, so that its six rows keep the bench's total time reasonable.
pub const PARTITIONED_N: u64 = 10_000;
/// Distinct partition keys of the partitioned pipeline's orders (`order % KEYS`).
pub const KEYS: u64 = 1_000;
/// The longest wait for the partitions' owners to settle before a partitioned run.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

const CONSUMER_BASELINE: &str = "redis_raw_consumer_256";
const CLUSTER_CONSUMER_BASELINE: &str = "redis_raw_consumer_256_one_master";
const XADD_BASELINE: &str = "redis_xadd_pipelined_64";

/// Runs the named workload after its baseline; `reset_peak` is called between the two.
/// `settings` is `default` or `recommended`.
pub async fn run(
    workload: &str,
    workers: u32,
    settings: &str,
    layout: Layout,
    scale: f64,
    reset_peak: fn(),
) -> Timed {
    if let Some(partitions) = layout.partitions {
        assert_eq!(workload, "pipeline", "only the pipeline runs on partitions");
        return partitioned(workers, partitions, layout.cluster, scale, reset_peak).await;
    }
    let url = std::env::var(URL_ENV).expect("the harness passes the Redis URL");
    let scaled = |n: u64| ((n as f64 * scale) as u64).max(1);
    let stream = format!(
        "bench:{workload}:{workers}:{settings}:{}",
        std::process::id()
    );
    let recommended = match settings {
        "default" => false,
        "recommended" => true,
        other => panic!("unknown settings {other}"),
    };
    let timed = match workload {
        "chain" => {
            let n = scaled(CHAIN_N);
            let first = vec![json(Envelope::new(Tick { n: 0 }))];
            let baseline = consumer_baseline(&url, &stream, first, n, |entry| {
                let tick = decoded::<Tick>(entry);
                let next = tick.n + 1;
                if next < n {
                    vec![json(Envelope::new(Tick { n: next }))]
                } else {
                    Vec::new()
                }
            })
            .await;
            reset_peak();
            chain(&url, &stream, n, baseline).await
        }
        "pipeline" => {
            let n = scaled(PIPELINE_N);
            let inputs = (0..n).map(|n| json(Envelope::new(order(n)))).collect();
            let baseline = consumer_baseline(&url, &stream, inputs, 4 * n, pipeline_step).await;
            reset_peak();
            pipeline(&url, &stream, n, workers, recommended, baseline).await
        }
        "fanout" => {
            let n = scaled(FANOUT_N);
            let entries = (0..n).map(|n| json(Envelope::new(Omen { n }))).collect();
            let baseline = consumer_baseline(&url, &stream, entries, n, |entry| {
                let _omen = decoded::<Omen>(entry);
                Vec::new()
            })
            .await;
            reset_peak();
            fanout(&url, &stream, n, baseline).await
        }
        "produce" => {
            let n = scaled(PRODUCE_N);
            let entries = (0..n).map(|n| json(Envelope::new(order(n)))).collect();
            let baseline = xadd_baseline(&url, &stream, entries).await;
            reset_peak();
            produce(&url, &stream, n, baseline).await
        }
        other => panic!("unknown redis workload {other}"),
    };
    delete_keys(&url, &stream).await;
    timed
}

fn json<E: Event>(envelope: Envelope<E>) -> Vec<u8> {
    envelope.to_json().expect("bench events encode")
}

/// The payload of an entry's envelope JSON, decoded as `E`.
fn decoded<E: Event>(entry: &[u8]) -> E {
    AnyEnvelope::from_json(entry)
        .and_then(AnyEnvelope::decode::<E>)
        .expect("bench entries decode")
        .into_payload()
}

/// What the pipeline's organs write for one entry: the next stage of the order.
fn pipeline_step(entry: &[u8]) -> Vec<Vec<u8>> {
    let envelope = AnyEnvelope::from_json(entry).expect("bench entries decode");
    let next = match envelope.event_type() {
        OrderPlaced::NAME => {
            let placed = envelope.decode::<OrderPlaced>().expect("an order");
            let validated = validate::handle(placed.payload()).expect("bench orders are valid");
            json(Envelope::new(validated))
        }
        OrderValidated::NAME => {
            let validated = envelope.decode::<OrderValidated>().expect("an order");
            json(Envelope::new(price::handle(validated.payload())))
        }
        OrderPriced::NAME => {
            let priced = envelope.decode::<OrderPriced>().expect("an order");
            json(Envelope::new(bill::handle(priced.payload())))
        }
        OrderBilled::NAME => {
            let _billed = envelope.decode::<OrderBilled>().expect("an order");
            return Vec::new();
        }
        other => panic!("unexpected event type {other}"),
    };
    vec![next]
}

async fn connect(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("valid Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis")
}

/// Appends `entries` to `key` with pipelined `XADD`s, `batch` per round trip.
async fn xadd_all(
    connection: &mut redis::aio::MultiplexedConnection,
    key: &str,
    entries: &[Vec<u8>],
    batch: usize,
) {
    for chunk in entries.chunks(batch) {
        let mut pipe = redis::pipe();
        for entry in chunk {
            pipe.cmd("XADD")
                .arg(key)
                .arg("*")
                .arg(ENVELOPE_FIELD)
                .arg(entry)
                .ignore();
        }
        pipe.query_async::<()>(connection)
            .await
            .expect("XADD batch");
    }
}

/// Entries per second written with pipelined `XADD`s on one connection.
async fn xadd_baseline(url: &str, stream: &str, entries: Vec<Vec<u8>>) -> f64 {
    let key = format!("{stream}:baseline");
    let mut connection = connect(url).await;
    let start = Instant::now();
    xadd_all(&mut connection, &key, &entries, XADD_BATCH).await;
    let per_sec = entries.len() as f64 / start.elapsed().as_secs_f64();
    let written: u64 = redis::cmd("XLEN")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .expect("XLEN");
    assert_eq!(
        written,
        entries.len() as u64,
        "every baseline entry written"
    );
    per_sec
}

/// Entries per second handled by a raw consumer: `inputs` pre-loaded (not timed), then
/// `XREADGROUP COUNT 256` in a loop; for each entry, the `XADD`s of what `step` returns
/// and its `XACK` go in one pipeline with the next read. Ends when `expected` entries
/// (inputs and the outputs they lead to) were handled, and checks that nothing is left
/// pending.
async fn consumer_baseline(
    url: &str,
    stream: &str,
    inputs: Vec<Vec<u8>>,
    expected: u64,
    step: impl Fn(&[u8]) -> Vec<Vec<u8>>,
) -> f64 {
    let key = format!("{stream}:baseline");
    let mut connection = connect(url).await;
    xadd_all(&mut connection, &key, &inputs, 256).await;
    drop(inputs);
    redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&key)
        .arg("raw")
        .arg("0")
        .query_async::<()>(&mut connection)
        .await
        .expect("XGROUP CREATE");

    let start = Instant::now();
    let mut writes: Vec<Vec<u8>> = Vec::new();
    let mut acks: Vec<String> = Vec::new();
    let mut handled = 0u64;
    loop {
        let done = handled >= expected;
        let mut pipe = redis::pipe();
        for entry in writes.drain(..) {
            pipe.cmd("XADD")
                .arg(&key)
                .arg("*")
                .arg(ENVELOPE_FIELD)
                .arg(entry)
                .ignore();
        }
        for id in acks.drain(..) {
            pipe.cmd("XACK").arg(&key).arg("raw").arg(id).ignore();
        }
        if done {
            pipe.query_async::<()>(&mut connection)
                .await
                .expect("last writes");
            break;
        }
        pipe.cmd("XREADGROUP")
            .arg("GROUP")
            .arg("raw")
            .arg("consumer")
            .arg("COUNT")
            .arg(READ_COUNT)
            .arg("STREAMS")
            .arg(&key)
            .arg(">");
        let (read,): (Value,) = pipe
            .query_async(&mut connection)
            .await
            .expect("writes and the next read");
        let entries = stream_entries(read);
        assert!(
            !entries.is_empty(),
            "the raw consumer ran dry after {handled} of {expected} entries"
        );
        for (id, envelope) in entries {
            writes.extend(step(&envelope));
            acks.push(id);
            handled += 1;
        }
    }
    let per_sec = handled as f64 / start.elapsed().as_secs_f64();
    let pending: Value = redis::cmd("XPENDING")
        .arg(&key)
        .arg("raw")
        .query_async(&mut connection)
        .await
        .expect("XPENDING");
    let Value::Array(summary) = pending else {
        panic!("unexpected XPENDING reply {pending:?}")
    };
    assert_eq!(
        summary.first(),
        Some(&Value::Int(0)),
        "every entry acknowledged"
    );
    assert_eq!(handled, expected, "every entry handled once");
    per_sec
}

/// (id, envelope) of each entry of an `XREADGROUP` reply on one stream.
fn stream_entries(reply: Value) -> Vec<(String, Vec<u8>)> {
    let streams = match reply {
        Value::Nil => return Vec::new(),
        Value::Array(streams) => streams,
        Value::Map(pairs) => pairs
            .into_iter()
            .map(|(k, v)| Value::Array(vec![k, v]))
            .collect(),
        other => panic!("unexpected XREADGROUP reply {other:?}"),
    };
    let mut out = Vec::new();
    for stream in streams {
        let Value::Array(mut parts) = stream else {
            panic!("unexpected stream in the reply")
        };
        let Some(Value::Array(entries)) = parts.pop() else {
            panic!("unexpected entries in the reply")
        };
        for entry in entries {
            let Value::Array(mut entry) = entry else {
                panic!("unexpected entry in the reply")
            };
            let (Some(Value::Array(mut fields)), Some(Value::BulkString(id))) =
                (entry.pop(), entry.pop())
            else {
                panic!("unexpected entry shape")
            };
            let Some(Value::BulkString(envelope)) = fields.pop() else {
                panic!("unexpected entry fields")
            };
            out.push((String::from_utf8(id).expect("ids are ASCII"), envelope));
        }
    }
    out
}

/// Removes the workload's streams, so that runs against a shared server leave nothing.
async fn delete_keys(url: &str, stream: &str) {
    let mut connection = connect(url).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{stream}*"))
        .query_async(&mut connection)
        .await
        .expect("KEYS");
    if !keys.is_empty() {
        redis::cmd("DEL")
            .arg(keys)
            .query_async::<()>(&mut connection)
            .await
            .expect("DEL");
    }
}

async fn backend(url: &str, stream: &str, consumer: &str) -> RedisBackend {
    RedisBackend::builder(url)
        .stream(stream)
        .group("bench")
        .consumer(consumer)
        .build()
        .await
        .expect("connect the Redis backend")
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
        baseline: CONSUMER_BASELINE,
        baseline_per_sec,
        p50_hop_us: Some(percentile(0.50)),
        p99_hop_us: Some(percentile(0.99)),
    }
}

// ---- pipeline ----------------------------------------------------------------------

async fn pipeline(
    url: &str,
    stream: &str,
    n: u64,
    workers: u32,
    recommended: bool,
    baseline_per_sec: f64,
) -> Timed {
    let record = Record::default();
    let mut spines = Vec::new();
    for worker in 0..workers {
        let mut builder = Spine::builder()
            .organ(validate)
            .organ(price)
            .organ(bill)
            .organ(record.clone())
            .backend(backend(url, stream, &format!("worker-{worker}")).await);
        if recommended {
            builder = builder.concurrency(CONCURRENCY).batch_size(BATCH_SIZE);
        }
        spines.push(builder.build().expect("valid spine"));
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
        baseline: CONSUMER_BASELINE,
        baseline_per_sec,
        p50_hop_us: None,
        p99_hop_us: None,
    }
}

// ---- pipeline on partitions -------------------------------------------------------

/// The pipeline on `partitions` partitions, after its raw baseline.
async fn partitioned(
    workers: u32,
    partitions: u32,
    cluster: bool,
    scale: f64,
    reset_peak: fn(),
) -> Timed {
    let n = ((PARTITIONED_N as f64 * scale) as u64).max(1);
    let name = format!(
        "bench:partitions:{workers}:{}:{}",
        if cluster { "cluster" } else { "single" },
        std::process::id()
    );
    let inputs = (0..n).map(|n| json(Envelope::new(order(n)))).collect();
    let (url, baseline, baseline_name) = if cluster {
        let seed = std::env::var(CLUSTER_URL_ENV).expect("the harness passes the cluster URL");
        let master = std::env::var(CLUSTER_BASELINE_URL_ENV)
            .expect("the harness passes the baseline master's URL");
        let stream = format!("{CLUSTER_BASELINE_TAG}:{name}");
        let per_sec = consumer_baseline(&master, &stream, inputs, 4 * n, pipeline_step).await;
        // The cluster is the harness's own and dropped at its end: only the baseline's
        // stream (one slot) is deleted here.
        delete_keys(&master, &stream).await;
        (seed, per_sec, CLUSTER_CONSUMER_BASELINE)
    } else {
        let url = std::env::var(URL_ENV).expect("the harness passes the Redis URL");
        let per_sec = consumer_baseline(&url, &name, inputs, 4 * n, pipeline_step).await;
        (url, per_sec, CONSUMER_BASELINE)
    };
    reset_peak();
    let timed =
        partitioned_pipeline(&url, &name, n, workers, partitions, baseline, baseline_name).await;
    if !cluster {
        // Partition keys put the stream's name in a hash tag: `{bench:...:p3}:lease:...`.
        delete_keys(&url, &format!("*{name}")).await;
    }
    timed
}

async fn partitioned_backend(
    url: &str,
    stream: &str,
    consumer: &str,
    partitions: u32,
) -> RedisBackend {
    RedisBackend::builder(url)
        .stream(stream)
        .group("bench")
        .consumer(consumer)
        .partitions(partitions)
        .build()
        .await
        .expect("connect the partitioned Redis backend")
}

/// A spine of the partitioned pipeline: every event type keyed by its order modulo
/// [`KEYS`], so that an order's four events share a partition.
fn keyed_spine(record: &Record, backend: RedisBackend) -> Spine<RedisBackend> {
    Spine::builder()
        .organ(validate)
        .organ(price)
        .organ(bill)
        .organ(record.clone())
        .order_key(|o: &OrderPlaced| o.order % KEYS)
        .order_key(|o: &OrderValidated| o.order % KEYS)
        .order_key(|o: &OrderPriced| o.order % KEYS)
        .order_key(|o: &OrderBilled| o.order % KEYS)
        .concurrency(CONCURRENCY)
        .batch_size(BATCH_SIZE)
        .backend(backend)
        .build()
        .expect("valid spine")
}

/// Waits until every partition has an owner and `workers` distinct workers own them.
async fn settle(probe: &RedisBackend, workers: u32) {
    let start = Instant::now();
    loop {
        let health = probe.health().await.expect("partition health");
        let owners: std::collections::HashSet<&str> = health
            .partitions
            .iter()
            .filter_map(|p| p.owner.as_deref())
            .collect();
        let all_owned = health.partitions.iter().all(|p| p.owner.is_some());
        if all_owned && owners.len() == workers as usize {
            return;
        }
        assert!(
            start.elapsed() < SETTLE_LIMIT,
            "the partitions' owners did not settle: {owners:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn partitioned_pipeline(
    url: &str,
    stream: &str,
    n: u64,
    workers: u32,
    partitions: u32,
    baseline_per_sec: f64,
    baseline: &'static str,
) -> Timed {
    let record = Record::default();
    let mut spines = Vec::new();
    for worker in 0..workers {
        let consumer = format!("worker-{worker}");
        let backend = partitioned_backend(url, stream, &consumer, partitions).await;
        spines.push(keyed_spine(&record, backend));
    }
    let probe = partitioned_backend(url, stream, "probe", partitions).await;
    let producer = keyed_spine(&record, probe.clone());
    let running: Vec<_> = spines
        .iter()
        .map(|spine| {
            let spine = spine.clone();
            tokio::spawn(async move { spine.run().await })
        })
        .collect();
    settle(&probe, workers).await;

    let start = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1_000) {
        producer
            .emit_all(chunk.iter().copied().map(order))
            .await
            .expect("enqueue");
    }
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
        baseline,
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
    // on Redis can take up to the backend's block time to see that the stream is idle (a
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
        baseline: CONSUMER_BASELINE,
        baseline_per_sec,
        p50_hop_us: None,
        p99_hop_us: None,
    }
}

// ---- produce -----------------------------------------------------------------------

/// `PRODUCERS` tasks share one spine (default settings) and call `emit` one event at a
/// time, as the request handlers of a web server would.
async fn produce(url: &str, stream: &str, n: u64, baseline_per_sec: f64) -> Timed {
    let spine = Spine::builder()
        .backend(backend(url, stream, "produce").await)
        .build()
        .expect("valid spine");
    let start = Instant::now();
    let tasks: Vec<_> = (0..PRODUCERS)
        .map(|task| {
            let spine = spine.clone();
            tokio::spawn(async move {
                for i in (task..n).step_by(PRODUCERS as usize) {
                    spine.emit(order(i)).await.expect("emit");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("producer task");
    }
    let elapsed = start.elapsed();
    let mut connection = connect(url).await;
    let written: u64 = redis::cmd("XLEN")
        .arg(stream)
        .query_async(&mut connection)
        .await
        .expect("XLEN");
    assert_eq!(written, n, "every event emitted once");
    Timed {
        workers: 1,
        events: n,
        elapsed,
        baseline: XADD_BASELINE,
        baseline_per_sec,
        p50_hop_us: None,
        p99_hop_us: None,
    }
}
