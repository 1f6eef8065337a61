//! Partitioned Redis streams on real `redis-server` processes: per-key order across
//! workers, rebalancing, fencing of a paused worker, takeover order after SIGKILL, and
//! the outbox's exactly-once forwarding.

#[path = "support/redis_server.rs"]
mod redis_server;

#[path = "support/partition_events.rs"]
mod partition_events;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use necrostack::backend::redis::{RedisBackendBuilder, RedisProducer};
use necrostack::{organ, AnyEnvelope, Backend, Envelope, RedisBackend, Spine};
use partition_events::{Echo, Step};
use redis_server::RedisServer;

const PARTITIONS: u32 = 16;

fn builder(url: &str, stream: &str, consumer: &str, lease: Duration) -> RedisBackendBuilder {
    RedisBackend::builder(url)
        .stream(stream)
        .consumer(consumer)
        .partitions(PARTITIONS)
        .partition_lease(lease)
        .block_time(Duration::from_millis(200))
        .max_deliveries(50)
}

fn builder_of(
    url: &str,
    stream: &str,
    consumer: &str,
    partitions: u32,
    lease: Duration,
) -> RedisBackendBuilder {
    RedisBackend::builder(url)
        .stream(stream)
        .consumer(consumer)
        .partitions(partitions)
        .partition_lease(lease)
        .block_time(Duration::from_millis(200))
        .max_deliveries(50)
}

async fn producer(url: &str, stream: &str, partitions: u32) -> RedisProducer {
    RedisBackend::builder(url)
        .stream(stream)
        .partitions(partitions)
        .build_producer()
        .await
        .unwrap()
}

/// Enqueues `seqs` steps for each of `keys` keys, in sequence order per key.
async fn enqueue_steps(producer: &RedisProducer, keys: u32, seqs: u32) {
    for seq in 0..seqs {
        let batch: Vec<AnyEnvelope> = (0..keys)
            .map(|key| {
                Envelope::new(Step { key, seq })
                    .with_partition_key(&key)
                    .into()
            })
            .collect();
        producer.enqueue(batch).await.unwrap();
    }
}

/// One handling as an in-process organ saw it.
#[derive(Debug, Clone)]
struct Handling {
    key: u32,
    seq: u32,
    consumer: String,
    begin: Instant,
    end: Instant,
}

type Log = Arc<Mutex<Vec<Handling>>>;

struct Recorder {
    consumer: String,
    log: Log,
}

#[organ(listens_to = Step)]
impl Recorder {
    async fn handle(&self, step: &Envelope<Step>) -> Result<Echo, std::io::Error> {
        let begin = Instant::now();
        tokio::task::yield_now().await;
        let end = Instant::now();
        self.log.lock().unwrap().push(Handling {
            key: step.key,
            seq: step.seq,
            consumer: self.consumer.clone(),
            begin,
            end,
        });
        Ok(Echo {
            key: step.key,
            seq: step.seq,
        })
    }
}

/// A worker in this process: a backend and a spine running on a task.
struct Worker {
    backend: RedisBackend,
    stop: necrostack::StopHandle,
    run: tokio::task::JoinHandle<()>,
}

fn start_worker(backend: RedisBackend, consumer: &str, log: &Log) -> Worker {
    let spine = Spine::builder()
        .organ(Recorder {
            consumer: consumer.to_owned(),
            log: Arc::clone(log),
        })
        .order_key::<Step, _>(|step: &Step| step.key)
        .backend(backend.clone())
        .concurrency(4)
        .batch_size(32)
        .poll_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let stop = spine.stop_handle();
    let run = tokio::spawn(async move {
        spine.run().await.unwrap();
    });
    Worker { backend, stop, run }
}

impl Worker {
    async fn stop(self) {
        self.stop.stop();
        self.run.await.unwrap();
        self.backend.close().await.unwrap();
    }
}

/// Waits until `done` holds, up to `limit`.
async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}

/// Per key, the sequence numbers in handling order never go back except to repeat one
/// already handled (at-least-once re-handling).
fn assert_in_order_per_key(handled: &[(u32, u32)]) {
    let mut seen: HashMap<u32, (u32, HashSet<u32>)> = HashMap::new();
    for &(key, seq) in handled {
        let (max, done) = seen.entry(key).or_insert((0, HashSet::new()));
        assert!(
            seq >= *max || done.contains(&seq),
            "key {key}: seq {seq} handled after seq {max} without having been handled before"
        );
        *max = (*max).max(seq);
        done.insert(seq);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_keep_every_key_in_order_and_lose_nothing() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    let (keys, seqs) = (200u32, 50u32);
    let log: Log = Arc::default();
    let lease = Duration::from_millis(900);
    let mut workers = Vec::new();
    for name in ["w1", "w2", "w3"] {
        let backend = builder(&url, "orders", name, lease).build().await.unwrap();
        workers.push(start_worker(backend, name, &log));
    }
    let producer = producer(&url, "orders", PARTITIONS).await;
    enqueue_steps(&producer, keys, seqs).await;

    let total = (keys * seqs) as usize;
    let all_seen = wait_until(Duration::from_secs(120), || {
        let log = log.lock().unwrap();
        log.iter()
            .map(|h| (h.key, h.seq))
            .collect::<HashSet<_>>()
            .len()
            == total
    })
    .await;
    for worker in workers {
        worker.stop().await;
    }
    let log = log.lock().unwrap().clone();
    assert!(all_seen, "only {} handlings of {total} events", log.len());

    let handled: Vec<(u32, u32)> = log.iter().map(|h| (h.key, h.seq)).collect();
    assert_in_order_per_key(&handled);
    // One consumer at a time per key: handlings of one key by different consumers never
    // overlap in time, and a key never returns to a consumer it left (only joins
    // happened, so rendezvous hashing only moves partitions to the joiners).
    let mut by_key: BTreeMap<u32, Vec<&Handling>> = BTreeMap::new();
    for h in &log {
        by_key.entry(h.key).or_default().push(h);
    }
    let mut consumers_seen = HashSet::new();
    for (key, handlings) in by_key {
        for pair in handlings.windows(2) {
            if pair[0].consumer != pair[1].consumer {
                assert!(
                    pair[0].end <= pair[1].begin,
                    "key {key}: {} and {} handled it at the same time",
                    pair[0].consumer,
                    pair[1].consumer
                );
            }
        }
        let mut runs: Vec<&str> = handlings.iter().map(|h| h.consumer.as_str()).collect();
        runs.dedup();
        let distinct: HashSet<&str> = runs.iter().copied().collect();
        assert_eq!(
            runs.len(),
            distinct.len(),
            "key {key} went back to a consumer: {runs:?}"
        );
        consumers_seen.extend(distinct.into_iter().map(str::to_owned));
    }
    assert_eq!(consumers_seen.len(), 3, "every worker handled some keys");
}

/// A backend that joined its group's members (on its first `pull`).
async fn member(builder: RedisBackendBuilder) -> RedisBackend {
    let backend = builder.build().await.unwrap();
    assert!(backend.pull(0, Duration::ZERO).await.unwrap().is_empty());
    backend
}

/// Owner of each partition, from `health`.
async fn owners(backend: &RedisBackend) -> Vec<Option<String>> {
    let health = backend.health().await.unwrap();
    assert_eq!(health.partitions.len(), PARTITIONS as usize);
    health.partitions.into_iter().map(|p| p.owner).collect()
}

fn count_per_owner(owners: &[Option<String>]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for owner in owners.iter().flatten() {
        *counts.entry(owner.clone()).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_are_rebalanced_within_a_lease_and_a_heartbeat() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    let lease = Duration::from_millis(900);
    // A change is settled after one lease (a crashed owner's lease expiring) plus one
    // heartbeat (a third of the lease), plus scheduling slack on a loaded machine.
    let settle = lease + lease / 3 + Duration::from_millis(600);
    let settled = |owners: &[Option<String>], live: &[&str]| {
        let counts = count_per_owner(owners);
        owners.iter().all(Option::is_some)
            && counts.len() == live.len()
            && live
                .iter()
                .all(|name| counts.get(*name).is_some_and(|&n| n >= 2))
    };

    let w1 = member(builder(&url, "rebalance", "w1", lease)).await;
    let mut last = Vec::new();
    let started = Instant::now();
    while started.elapsed() < settle && !settled(&last, &["w1"]) {
        last = owners(&w1).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(settled(&last, &["w1"]), "one worker owns all: {last:?}");

    let w2 = member(builder(&url, "rebalance", "w2", lease)).await;
    let w3 = member(builder(&url, "rebalance", "w3", lease)).await;
    let started = Instant::now();
    while started.elapsed() < settle && !settled(&last, &["w1", "w2", "w3"]) {
        last = owners(&w1).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        settled(&last, &["w1", "w2", "w3"]),
        "three workers share the partitions within {settle:?}: {:?}",
        count_per_owner(&last)
    );
    let after_join = last.clone();

    // w2 stops without a word (dropped, as if its process died): its leases and its
    // membership expire; w1 and w3 take its partitions, and only those.
    drop(w2);
    let started = Instant::now();
    while started.elapsed() < settle && !settled(&last, &["w1", "w3"]) {
        last = owners(&w1).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        settled(&last, &["w1", "w3"]),
        "two workers share the partitions within {settle:?} of a crash: {:?}",
        count_per_owner(&last)
    );
    for (index, (before, now)) in after_join.iter().zip(&last).enumerate() {
        if before.as_deref() != Some("w2") {
            assert_eq!(
                before, now,
                "partition {index} moved though its owner stayed"
            );
        }
    }
    // Each partition has exactly one owner in the workers' own view too.
    let health = w3.health().await.unwrap();
    assert!(health.partitions.iter().all(|p| p.lease_token.is_some()));
    assert!(
        w1.metrics().partition_takeovers + w3.metrics().partition_takeovers
            >= u64::from(PARTITIONS)
    );
    w1.close().await.unwrap();
    w3.close().await.unwrap();
}

fn worker_process(
    url: &str,
    stream: &str,
    consumer: &str,
    log: &std::path::Path,
    partitions: u32,
    lease_ms: u64,
) -> Child {
    Command::new(env!("CARGO_BIN_EXE_necrostack-partition-worker"))
        .args([url, stream, consumer])
        .arg(log)
        .args([partitions.to_string(), lease_ms.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the partition worker")
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name}");
}

/// `(key, seq)` of every `begin` line of a worker log, in order.
fn begun(log: &std::path::Path) -> Vec<(u32, u32)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut words = line.split(' ');
            (words.next() == Some("begin")).then(|| {
                let key = words.next().unwrap().parse().unwrap();
                let seq = words.next().unwrap().parse().unwrap();
                (key, seq)
            })
        })
        .collect()
}

/// The `metrics FENCED TAKEOVERS` line a worker writes at exit.
fn exit_metrics(log: &std::path::Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().find(|l| l.starts_with("metrics "))?;
    let mut words = line.split(' ').skip(1);
    Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
}

/// Every `Echo` in every partition stream of `stream`, as (key, seq).
async fn echoes(url: &str, stream: &str, partitions: u32) -> Vec<(u32, u32)> {
    let mut conn = redis_server::connect(url).await;
    let mut out = Vec::new();
    for p in 0..partitions {
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(format!("{stream}:p{p}"))
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        for entry in reply.ids {
            let json: Vec<u8> = entry.get("envelope").expect("envelope field");
            let envelope = AnyEnvelope::from_json(&json).unwrap();
            if let Ok(echo) = envelope.decode::<Echo>() {
                out.push((echo.key, echo.seq));
            }
        }
    }
    out
}

fn assert_exactly_once(echoes: &[(u32, u32)], keys: u32, seqs: u32) {
    let mut counts: HashMap<(u32, u32), usize> = HashMap::new();
    for e in echoes {
        *counts.entry(*e).or_insert(0) += 1;
    }
    for key in 0..keys {
        for seq in 0..seqs {
            assert_eq!(
                counts.get(&(key, seq)),
                Some(&1),
                "output of step ({key}, {seq})"
            );
        }
    }
    assert_eq!(echoes.len(), (keys * seqs) as usize);
}

fn temp_log(name: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "necrostack-parts-{}-{name}.log",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_worker_cannot_complete_behind_the_new_owners_back() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    let (keys, seqs, partitions, lease_ms) = (20u32, 20u32, 4u32, 1000u64);
    let producer = producer(&url, "fenced", partitions).await;
    enqueue_steps(&producer, keys, seqs).await;
    let log1 = temp_log("paused");
    let mut paused = worker_process(&url, "fenced", "paused", &log1, partitions, lease_ms);
    // Let it own every partition and start handling.
    assert!(wait_until(Duration::from_secs(20), || begun(&log1).len() >= 20).await);
    signal(&paused, "STOP");

    // Another worker takes over once the paused one's leases expire, and finishes.
    let log2 = temp_log("successor");
    let mut successor = worker_process(&url, "fenced", "successor", &log2, partitions, lease_ms);
    tokio::time::sleep(Duration::from_millis(lease_ms * 3)).await;
    // Woken up past its leases: what it still had in flight completes now, fenced.
    signal(&paused, "CONT");
    let all = wait_until(Duration::from_secs(60), || {
        let mut done: HashSet<(u32, u32)> = begun(&log1).into_iter().collect();
        done.extend(begun(&log2));
        done.len() == (keys * seqs) as usize
    })
    .await;
    assert!(all, "every step handled");
    // Outputs appear once every completed handling's forwarding has run.
    let complete = wait_until(Duration::from_secs(20), || {
        futures_lite_block(echoes(&url, "fenced", partitions)).len() >= (keys * seqs) as usize
    })
    .await;
    signal(&paused, "TERM");
    signal(&successor, "TERM");
    assert!(paused.wait().unwrap().success());
    assert!(successor.wait().unwrap().success());
    assert!(complete);
    let (fenced, _) = exit_metrics(&log1).expect("the paused worker's metrics");
    let (_, takeovers) = exit_metrics(&log2).expect("the successor's metrics");
    assert!(
        fenced >= 1,
        "the paused worker's in-flight completions were refused"
    );
    assert!(takeovers >= 1, "the successor took partitions over");
    assert_exactly_once(&echoes(&url, "fenced", partitions).await, keys, seqs);
    // (Order across two logs cannot be interleaved exactly; each worker's own log is.)
    assert_in_order_per_key(&begun(&log2));
    assert_in_order_per_key(&begun(&log1));
}

/// Blocks on a future from a sync closure (the wait helpers poll with closures).
fn futures_lite_block<F: std::future::Future>(future: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_sigkill_the_new_owner_handles_the_pending_entries_first_in_order() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    let (keys, seqs, partitions, lease_ms) = (20u32, 30u32, 4u32, 1000u64);
    let producer = producer(&url, "takeover", partitions).await;
    enqueue_steps(&producer, keys, seqs).await;
    let log1 = temp_log("killed");
    let mut killed = worker_process(&url, "takeover", "killed", &log1, partitions, lease_ms);
    assert!(wait_until(Duration::from_secs(20), || begun(&log1).len() >= 40).await);
    killed.kill().unwrap();
    killed.wait().unwrap();

    // What it left pending, per key, lowest first.
    let mut conn = redis_server::connect(url.as_str()).await;
    let mut pending: HashMap<u32, Vec<u32>> = HashMap::new();
    for p in 0..partitions {
        let stream = format!("takeover:p{p}");
        let rows: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
            .arg(&stream)
            .arg("necrostack")
            .arg("-")
            .arg("+")
            .arg(10_000)
            .query_async(&mut conn)
            .await
            .unwrap();
        for (id, ..) in rows {
            let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(&stream)
                .arg(&id)
                .arg(&id)
                .query_async(&mut conn)
                .await
                .unwrap();
            let json: Vec<u8> = reply.ids[0].get("envelope").unwrap();
            let envelope = AnyEnvelope::from_json(&json).unwrap();
            if let Ok(step) = envelope.decode::<Step>() {
                pending.entry(step.key).or_default().push(step.seq);
            }
        }
    }
    assert!(
        !pending.is_empty(),
        "the killed worker left entries pending"
    );

    let log: Log = Arc::default();
    let successor = builder_of(
        &url,
        "takeover",
        "successor",
        partitions,
        Duration::from_millis(lease_ms),
    )
    .build()
    .await
    .unwrap();
    let worker = start_worker(successor.clone(), "successor", &log);
    let total = (keys * seqs) as usize;
    let all = wait_until(Duration::from_secs(60), || {
        let mut done: HashSet<(u32, u32)> = begun(&log1).into_iter().collect();
        done.extend(log.lock().unwrap().iter().map(|h| (h.key, h.seq)));
        done.len() == total
    })
    .await;
    let takeovers = successor.metrics().partition_takeovers;
    worker.stop().await;
    assert!(all, "every step handled");
    assert_eq!(
        takeovers,
        u64::from(partitions),
        "the successor took every partition over"
    );

    let log = log.lock().unwrap().clone();
    for (key, left) in &pending {
        let mut left = left.clone();
        left.sort_unstable();
        let first: Vec<u32> = log
            .iter()
            .filter(|h| h.key == *key)
            .take(left.len())
            .map(|h| h.seq)
            .collect();
        assert_eq!(
            first, left,
            "key {key}: its pending entries come first, in order"
        );
    }
    // Across the kill, per key: the killed worker's handlings, then the successor's.
    let mut handled = begun(&log1);
    handled.extend(log.iter().map(|h| (h.key, h.seq)));
    assert_in_order_per_key(&handled);
    // Outputs exactly once, also of handlings the kill cut off between completion and
    // forwarding (the successor forwarded what the killed worker's outboxes held).
    assert_exactly_once(&echoes(&url, "takeover", partitions).await, keys, seqs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_entry_is_forwarded_once_even_if_a_forwarder_died_mid_way() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    let mut conn = redis_server::connect(url.as_str()).await;
    let json = |seq: u32| {
        AnyEnvelope::from(Envelope::new(Step { key: 7, seq }))
            .to_json()
            .unwrap()
    };
    // Partition 0's outbox holds two events for partition 1; a forwarder added the first
    // to partition 1 and raised the mark, then died before deleting it from the outbox.
    let mut outbox_ids = Vec::new();
    for seq in [1, 2] {
        let id: String = redis::cmd("XADD")
            .arg("{outbox:p0}:outbox")
            .arg("*")
            .arg("dest")
            .arg("1")
            .arg("kind")
            .arg("event")
            .arg("due")
            .arg("0")
            .arg("envelope")
            .arg(json(seq))
            .query_async(&mut conn)
            .await
            .unwrap();
        outbox_ids.push(id);
    }
    let _: String = redis::cmd("XADD")
        .arg("outbox:p1")
        .arg("*")
        .arg("envelope")
        .arg(json(1))
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("{outbox:p1}:fwd:0")
        .arg(&outbox_ids[0])
        .query_async(&mut conn)
        .await
        .unwrap();

    // A worker that owns partition 0 forwards what is left: the second event only.
    let backend = member(
        RedisBackend::builder(url.as_str())
            .stream("outbox")
            .consumer("forwarder")
            .partitions(2)
            .partition_lease(Duration::from_millis(600)),
    )
    .await;
    let forwarded = wait_until(Duration::from_secs(10), || backend.metrics().forwarded >= 1).await;
    assert!(forwarded, "the forwarder ran");
    let outbox_left = wait_until(Duration::from_secs(5), || {
        futures_lite_block(async {
            let mut conn = redis_server::connect(url.as_str()).await;
            redis::cmd("XLEN")
                .arg("{outbox:p0}:outbox")
                .query_async::<u64>(&mut conn)
                .await
                .unwrap()
        }) == 0
    })
    .await;
    assert!(outbox_left, "the outbox is emptied");
    let seqs: Vec<u32> = stream_steps(&url, "outbox:p1").await;
    assert_eq!(seqs, [1, 2], "each outbox entry exactly once, in order");
    assert_eq!(backend.metrics().forwarded, 1);
    backend.close().await.unwrap();
}

async fn stream_steps(url: &str, stream: &str) -> Vec<u32> {
    let mut conn = redis_server::connect(url).await;
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    reply
        .ids
        .into_iter()
        .filter_map(|entry| {
            let json: Vec<u8> = entry.get("envelope")?;
            let envelope = AnyEnvelope::from_json(&json).ok()?;
            envelope.decode::<Step>().ok().map(|s| s.seq)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_joins_on_its_first_pull_and_every_worker_needs_the_same_partitions() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    let lease = Duration::from_millis(600);
    // Built but never pulling (a process that only emits): it owns nothing.
    let emitter = builder(&url, "join", "emitter", lease)
        .build()
        .await
        .unwrap();
    let reader = member(builder(&url, "join", "reader", lease)).await;
    let all_read = wait_until(lease * 3, || {
        futures_lite_block(owners(&emitter))
            .iter()
            .all(|o| o.as_deref() == Some("reader"))
    })
    .await;
    assert!(all_read, "the reading worker owns every partition");
    let error = RedisBackend::builder(url.as_str())
        .stream("join")
        .partitions(PARTITIONS * 2)
        .build_producer()
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("same number"), "{error}");
    emitter.close().await.unwrap();
    reader.close().await.unwrap();
}

#[tokio::test]
async fn bad_partition_settings_are_config_errors() {
    for builder in [
        RedisBackend::builder("redis://127.0.0.1:1").partitions(0),
        RedisBackend::builder("redis://127.0.0.1:1")
            .stream("a{b}")
            .partitions(4),
        RedisBackend::builder("redis://127.0.0.1:1")
            .key_prefix("{x}:")
            .partitions(4),
        RedisBackend::builder("redis://127.0.0.1:1")
            .partitions(4)
            .partition_lease(Duration::from_millis(10)),
    ] {
        let error = builder.build().await.unwrap_err().to_string();
        assert!(error.contains("configuration"), "{error}");
    }
}

/// Fails every step while `failing` is set.
struct Gate {
    failing: Arc<std::sync::atomic::AtomicBool>,
    handled: Arc<std::sync::atomic::AtomicU32>,
}

#[organ(listens_to = Step)]
impl Gate {
    fn handle(&self, _step: &Step) -> Result<(), std::io::Error> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(std::io::Error::other("closed"));
        }
        self.handled
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_go_through_the_outbox_and_replay_into_their_partition() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    let lease = Duration::from_millis(600);
    let backend = builder_of(&url, "dlq", "w", 4, lease)
        .build()
        .await
        .unwrap();
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let handled = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let spine = Spine::builder()
        .organ_with_policy(
            Gate {
                failing: Arc::clone(&failing),
                handled: Arc::clone(&handled),
            },
            necrostack::FailurePolicy::DeadLetter,
        )
        .backend(backend.clone())
        .build()
        .unwrap();
    spine
        .emit_all((0..6).map(|key| Step { key, seq: 0 }))
        .await
        .unwrap();
    let report = spine.run_until_idle().await.unwrap();
    assert_eq!(report.dead_lettered, 6);
    let letters = backend.dead_letters(100).await.unwrap();
    assert_eq!(
        letters.len(),
        6,
        "every dead letter forwarded to the dead-letter stream once"
    );
    assert!(backend.metrics().forwarded >= 6);

    let admin = RedisBackend::builder(url.as_str())
        .stream("dlq")
        .partitions(4)
        .build_admin()
        .await
        .unwrap();
    let replayed = admin
        .replay_all(&necrostack::backend::redis::ReplayOptions::new(), |_| {})
        .await
        .unwrap();
    assert_eq!(replayed, 6);
    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    let report = spine.run_until_idle().await.unwrap();
    assert_eq!(
        report.succeeded, 6,
        "the replayed events came back to their partitions"
    );
    assert_eq!(handled.load(std::sync::atomic::Ordering::SeqCst), 6);
    assert!(backend.dead_letters(100).await.unwrap().is_empty());
    backend.close().await.unwrap();
}

#[path = "support/redis_cluster.rs"]
mod redis_cluster;

/// Every `Echo` in the partition streams of `stream` on a cluster, as (key, seq), read
/// with `redis-cli -c` (the envelopes are printed one per line).
fn cluster_echoes(
    cluster: &redis_cluster::RedisCluster,
    stream: &str,
    partitions: u32,
) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for p in 0..partitions {
        let text = cluster.cli(&["XRANGE", &format!("{stream}:p{p}"), "-", "+"]);
        for line in text.lines().filter(|l| l.contains("parts.Echo")) {
            let envelope = AnyEnvelope::from_json(line.as_bytes()).expect("an envelope");
            let echo = envelope.decode::<Echo>().expect("an Echo");
            out.push((echo.key, echo.seq));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_order_and_outputs_survive_a_master_failover() {
    let Some(cluster) = tokio::task::spawn_blocking(redis_cluster::RedisCluster::start)
        .await
        .unwrap()
    else {
        return;
    };
    let url = cluster.url();
    let (keys, seqs) = (40u32, 25u32);
    let lease = Duration::from_millis(1500);
    let log: Log = Arc::default();
    let mut workers = Vec::new();
    for name in ["c1", "c2"] {
        let backend = builder(&url, "chaos", name, lease).build().await.unwrap();
        workers.push(start_worker(backend, name, &log));
    }
    let producer = producer(&url, "chaos", PARTITIONS).await;
    enqueue_steps(&producer, keys, seqs).await;
    let total = (keys * seqs) as usize;
    let distinct = |log: &Log| {
        log.lock()
            .unwrap()
            .iter()
            .map(|h| (h.key, h.seq))
            .collect::<HashSet<_>>()
            .len()
    };
    assert!(wait_until(Duration::from_secs(60), || distinct(&log) >= total / 4).await);
    // The master of partition 0 (and of whatever else shares it) dies mid-run.
    let cluster = tokio::task::spawn_blocking(move || {
        let mut cluster = cluster;
        cluster.fail_over_master_of("chaos:p0");
        cluster
    })
    .await
    .unwrap();
    let all = wait_until(Duration::from_secs(90), || distinct(&log) == total).await;
    // A completion lost in the failover is handled again: wait for every output, not
    // only for every step to have been handled once.
    let cluster = Arc::new(cluster);
    let outputs = wait_until(Duration::from_secs(60), || {
        let cluster = Arc::clone(&cluster);
        let echoes = futures_lite_block(async move {
            tokio::task::spawn_blocking(move || cluster_echoes(&cluster, "chaos", PARTITIONS))
                .await
                .unwrap()
        });
        echoes.into_iter().collect::<HashSet<_>>().len() == total
    })
    .await;
    for worker in workers {
        worker.stop().await;
    }
    assert!(all, "{} of {total} steps handled", distinct(&log));
    assert!(outputs, "every step's output reached the streams");
    let handled: Vec<(u32, u32)> = log.lock().unwrap().iter().map(|h| (h.key, h.seq)).collect();
    assert_in_order_per_key(&handled);
    let echoes = tokio::task::spawn_blocking(move || cluster_echoes(&cluster, "chaos", PARTITIONS))
        .await
        .unwrap();
    // Every output is there (checked above). Redis replicates asynchronously: a completion the killed
    // master acknowledged in its last moments (after the replica's last sync) is lost
    // with it and handled again, while its output, already forwarded to another master,
    // stays. So an output may appear twice, but only for a step that was handled twice.
    let mut counts: HashMap<(u32, u32), usize> = HashMap::new();
    for echo in &echoes {
        *counts.entry(*echo).or_insert(0) += 1;
    }
    let mut handlings: HashMap<(u32, u32), usize> = HashMap::new();
    for step in &handled {
        *handlings.entry(*step).or_insert(0) += 1;
    }
    for key in 0..keys {
        for seq in 0..seqs {
            let outputs = counts.get(&(key, seq)).copied().unwrap_or(0);
            let times = handlings.get(&(key, seq)).copied().unwrap_or(0);
            assert!(
                outputs == 1 || (outputs > 1 && outputs <= times),
                "step ({key}, {seq}): {outputs} outputs for {times} handlings"
            );
        }
    }
    let duplicated = counts.values().filter(|&&n| n > 1).count();
    let _ = writeln!(
        std::io::stderr(),
        "partitions on a cluster failover: {} outputs, {duplicated} steps with a second output",
        echoes.len()
    );
}

/// Dead-letters one `Step` per key in 0..6 on a 4-partition stream `stream` of `url`,
/// with a spine whose organ fails while the returned flag is set.
async fn dead_lettered_steps(
    url: &str,
    stream: &str,
) -> (
    RedisBackend,
    Spine<RedisBackend>,
    Arc<std::sync::atomic::AtomicBool>,
    Arc<std::sync::atomic::AtomicU32>,
) {
    let backend = builder_of(url, stream, "w", 4, Duration::from_millis(600))
        .build()
        .await
        .unwrap();
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let handled = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let spine = Spine::builder()
        .organ_with_policy(
            Gate {
                failing: Arc::clone(&failing),
                handled: Arc::clone(&handled),
            },
            necrostack::FailurePolicy::DeadLetter,
        )
        .backend(backend.clone())
        .build()
        .unwrap();
    spine
        .emit_all((0..6).map(|key| Step { key, seq: 0 }))
        .await
        .unwrap();
    let report = spine.run_until_idle().await.unwrap();
    assert_eq!(report.dead_lettered, 6);
    assert_eq!(backend.dead_letters(100).await.unwrap().len(), 6);
    (backend, spine, failing, handled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_dead_letters_of_a_partitioned_stream_replay_once_each() {
    let Some(cluster) = tokio::task::spawn_blocking(redis_cluster::shared)
        .await
        .unwrap()
    else {
        return;
    };
    let url = cluster.url();
    let (backend, spine, failing, handled) = dead_lettered_steps(&url, "replayc").await;
    let admin = RedisBackend::builder(url.as_str())
        .stream("replayc")
        .partitions(4)
        .build_admin()
        .await
        .unwrap();
    let mut outcomes = Vec::new();
    let seen = admin
        .replay_all(&necrostack::backend::redis::ReplayOptions::new(), |o| {
            outcomes.push(o.clone());
        })
        .await
        .unwrap();
    assert_eq!(seen, 6);
    assert!(
        outcomes.iter().all(|o| matches!(
            o,
            necrostack::backend::redis::ReplayOutcome::Replayed { .. }
        )),
        "no CROSSSLOT, every dead letter put back: {outcomes:?}"
    );
    // A second replay finds nothing left to put back.
    assert_eq!(
        admin
            .replay_all(&necrostack::backend::redis::ReplayOptions::new(), |_| {})
            .await
            .unwrap(),
        0
    );
    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    let report = spine.run_until_idle().await.unwrap();
    assert_eq!(report.succeeded, 6, "each replayed event handled once");
    assert_eq!(handled.load(std::sync::atomic::Ordering::SeqCst), 6);
    assert!(backend.dead_letters(100).await.unwrap().is_empty());
    backend.close().await.unwrap();
}
