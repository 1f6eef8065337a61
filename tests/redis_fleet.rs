//! Failure handling across a fleet, on real `redis-server` processes: retries that free
//! the worker and survive its death, scheduled events across workers and a Redis
//! restart, and a prompt, honest end of the run when Redis is gone for good.

#[path = "support/redis_server.rs"]
mod redis_server;

#[path = "support/crash_events.rs"]
mod crash_events;

#[path = "support/stream_entries.rs"]
mod stream_entries;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crash_events::{Done, Job};
use necrostack::{
    organ, AnyEnvelope, Backend, Envelope, Event, FailurePolicy, RedisBackend, RetryPolicy, Spine,
};
use redis_server::{Options, RedisServer};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "fleet.Task")]
struct Task {
    n: u32,
}

async fn worker_backend(url: &str, stream: &str, consumer: &str) -> RedisBackend {
    RedisBackend::builder(url)
        .stream(stream)
        .consumer(consumer)
        .block_time(Duration::from_millis(200))
        .claim_idle(Duration::from_millis(1000))
        .claim_interval(Duration::from_millis(200))
        .reconnect_timeout(Duration::from_secs(3))
        .build()
        .await
        .unwrap()
}

/// What the organ of the order test saw: (n, attempt, when), in handling order.
type Seen = Arc<Mutex<Vec<(u32, u32, Instant)>>>;

/// Every `every`-th task fails its first two attempts.
struct Picky {
    every: u32,
    seen: Seen,
}

#[organ(listens_to = Task)]
impl Picky {
    fn handle(&self, task: &Envelope<Task>) -> Result<(), std::io::Error> {
        self.seen
            .lock()
            .unwrap()
            .push((task.n, task.attempt(), Instant::now()));
        if task.n.is_multiple_of(self.every) && task.attempt() <= 2 {
            return Err(std::io::Error::other("not yet"));
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_do_not_hold_up_the_other_events() {
    retries_at_concurrency_1(10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_failing_twice_still_succeeds_without_waiting_in_line() {
    retries_at_concurrency_1(1).await;
}

/// 1000 tasks at concurrency 1; every `every`-th fails its first two attempts, 500 ms
/// apart. All succeed, and the worker never waits out a backoff.
async fn retries_at_concurrency_1(every: u32) {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    let backend = worker_backend(&url, "fleet:order", "solo").await;
    let seen: Seen = Arc::default();
    let backoff = Duration::from_millis(500);
    let spine = Spine::builder()
        .organ(Picky {
            every,
            seen: Arc::clone(&seen),
        })
        .failure_policy(FailurePolicy::Retry(
            RetryPolicy::new(3).backoff(backoff, backoff).jitter(false),
        ))
        .backend(backend.clone())
        .max_steps(5_000)
        .build()
        .unwrap();
    spine.emit_all((0..1000).map(|n| Task { n })).await.unwrap();
    let report = tokio::time::timeout(Duration::from_secs(120), spine.run_until_idle())
        .await
        .expect("run finished")
        .unwrap();
    let failing = 1000 / every;
    assert_eq!(
        report.retried,
        (2 * failing) as usize,
        "{failing} tasks × 2 retries"
    );
    assert_eq!((report.failed, report.dead_lettered), (0, 0));
    assert_eq!(report.succeeded, 1000, "every task succeeded once");

    let seen = seen.lock().unwrap().clone();
    let at = |n: u32, attempt: u32| {
        seen.iter()
            .position(|&(m, a, _)| m == n && a == attempt)
            .unwrap_or_else(|| panic!("task {n} attempt {attempt} never ran"))
    };
    for n in (0..1000).step_by(every as usize) {
        // Each failing task got its three attempts, at least the backoff apart...
        let (first, second, third) = (at(n, 1), at(n, 2), at(n, 3));
        assert!(seen[second].2 - seen[first].2 >= backoff);
        assert!(seen[third].2 - seen[second].2 >= backoff);
        // ...and the worker did not wait for them: the next task in the stream was
        // handled before the failing one's first retry (a blocking retry would put it
        // after the third attempt).
        if n + 1 < 1000 {
            assert!(
                at(n + 1, 1) < second,
                "task {} waited for {n}'s backoff",
                n + 1
            );
        }
    }
    backend.close().await.unwrap();
}

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn crash_worker(url: &str, stream: &str, name: &str, log: &std::path::Path) -> Process {
    let child = Command::new(env!("CARGO_BIN_EXE_necrostack-crash-worker"))
        .args([url, stream, name])
        .arg(log)
        .arg("--fail-first")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start a worker process");
    Process(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_scheduled_by_a_killed_worker_runs_on_another() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (url, stream) = (server.url(), "fleet:killed");
    let dir = server.dir().to_owned();
    let producer = RedisBackend::builder(url.clone())
        .stream(stream)
        .group("crash-workers")
        .build_producer()
        .await
        .unwrap();
    let jobs = 20;
    let batch: Vec<AnyEnvelope> = (0..jobs).map(|n| Envelope::new(Job { n }).into()).collect();
    producer.enqueue(batch).await.unwrap();

    // Worker A fails every first attempt; each failure schedules a retry 1.5 s later.
    let mut a = crash_worker(&url, stream, "a", &dir.join("a.log"));
    let scheduled_key = format!("{stream}:scheduled");
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.cli(&["ZCARD", &scheduled_key]).trim() != jobs.to_string() {
        assert!(
            Instant::now() < deadline,
            "worker a never scheduled its retries"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.0.kill().unwrap(); // SIGKILL, before any retry is due
    a.0.wait().unwrap();

    // Worker B, a new consumer, performs every retry.
    let _b = crash_worker(&url, stream, "b", &dir.join("b.log"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let done: Vec<Done> = stream_entries::envelopes(&url, stream)
            .await
            .into_iter()
            .filter(|e| e.event_type() == "crash.Done")
            .map(|e| e.decode::<Done>().unwrap().into_payload())
            .collect();
        if done.len() >= jobs as usize {
            break done;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {jobs} retries done",
            done.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut outputs: HashMap<u32, Vec<String>> = HashMap::new();
    for d in done {
        outputs.entry(d.n).or_default().push(d.by);
    }
    for n in 0..jobs {
        assert_eq!(outputs.get(&n), Some(&vec!["b".to_owned()]), "job {n}");
    }
    let a_log = std::fs::read_to_string(dir.join("a.log")).unwrap();
    assert_eq!(
        a_log.lines().filter(|l| l.starts_with("failed ")).count(),
        jobs as usize
    );
    assert!(
        !a_log.contains("end "),
        "worker a succeeded at nothing: {a_log}"
    );
    assert_eq!(server.cli(&["ZCARD", &scheduled_key]).trim(), "0");
}

/// Which task arrived, at which worker, when.
type Arrivals = Arc<Mutex<Vec<(u32, &'static str, chrono::DateTime<chrono::Utc>)>>>;

/// Records when each scheduled task arrived, by which worker.
struct Clock {
    worker: &'static str,
    arrivals: Arrivals,
}

#[organ(listens_to = Task)]
impl Clock {
    fn handle(&self, task: &Task) {
        self.arrivals
            .lock()
            .unwrap()
            .push((task.n, self.worker, chrono::Utc::now()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_events_survive_a_redis_restart_and_arrive_once_on_time() {
    let Some(mut server) = RedisServer::start_with(Options {
        persistence: true,
        ..Options::default()
    }) else {
        return;
    };
    let (url, stream) = (server.url(), "fleet:scheduled");
    let arrivals: Arrivals = Arc::default();
    let mut workers = Vec::new();
    for worker in ["w1", "w2"] {
        let backend = worker_backend(&url, stream, worker).await;
        let spine = Spine::builder()
            .organ(Clock {
                worker,
                arrivals: Arc::clone(&arrivals),
            })
            .backend(backend)
            .poll_interval(Duration::from_millis(200))
            .build()
            .unwrap();
        let stop = spine.stop_handle();
        let task = tokio::spawn(async move { spine.run().await });
        workers.push((stop, task));
    }
    let producer = RedisBackend::builder(url.clone())
        .stream(stream)
        .build_producer()
        .await
        .unwrap();
    let mut due = HashMap::new();
    for n in 0..30u32 {
        let delay = Duration::from_millis(1000 + u64::from(n) * 66); // 1 s to 3 s
        let at = chrono::Utc::now() + chrono::Duration::from_std(delay).unwrap();
        producer.emit_at(at, Task { n }).await.unwrap();
        due.insert(n, at);
    }
    // Redis dies and comes back (with its append-only file) before anything is due.
    server.kill();
    server.restart();

    let deadline = Instant::now() + Duration::from_secs(30);
    while arrivals.lock().unwrap().len() < 30 {
        assert!(
            Instant::now() < deadline,
            "not all scheduled events arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // room for a duplicate to show
    for (stop, task) in workers {
        stop.stop();
        task.await.unwrap().unwrap();
    }
    let arrivals = arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), 30, "each delivered once: {arrivals:?}");
    let mut by_worker: HashMap<&str, usize> = HashMap::new();
    for (n, worker, at) in &arrivals {
        assert!(
            *at >= due[n],
            "task {n} arrived at {at}, before its time {}",
            due[n]
        );
        *by_worker.entry(worker).or_default() += 1;
    }
    let mut seen: Vec<u32> = arrivals.iter().map(|(n, _, _)| *n).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..30).collect::<Vec<_>>());
    let late = arrivals
        .iter()
        .map(|(n, _, at)| (*at - due[n]).num_milliseconds())
        .max()
        .unwrap();
    eprintln!("scheduled events: 30 across two workers {by_worker:?}, latest {late} ms after due");
}

/// Handles a task slowly enough that Redis can be killed mid-run; logs each handling.
struct Slow {
    handled: Arc<Mutex<Vec<u32>>>,
}

#[organ(listens_to = Task)]
impl Slow {
    async fn handle(&self, task: &Task) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.handled.lock().unwrap().push(task.n);
    }
}

async fn redis_lost_for_good(concurrency: usize) {
    let Some(mut server) = RedisServer::start_with(Options {
        persistence: true,
        ..Options::default()
    }) else {
        return;
    };
    let stream = format!("fleet:lost{concurrency}");
    let url = server.url();
    let handled = Arc::new(Mutex::new(Vec::new()));
    let reconnect = Duration::from_secs(3);
    let backend = RedisBackend::builder(url.clone())
        .stream(&stream)
        .consumer("doomed")
        .block_time(Duration::from_millis(200))
        .reconnect_timeout(reconnect)
        .build()
        .await
        .unwrap();
    let spine = Spine::builder()
        .organ(Slow {
            handled: Arc::clone(&handled),
        })
        .backend(backend)
        .concurrency(concurrency)
        .batch_size(64)
        .build()
        .unwrap();
    let total = 3000u32;
    spine
        .emit_all((0..total).map(|n| Task { n }))
        .await
        .unwrap();
    let run = tokio::spawn({
        let spine = spine.clone();
        async move { spine.run().await }
    });
    while handled.lock().unwrap().len() < 100 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();
    let killed = Instant::now();
    let result = tokio::time::timeout(reconnect + Duration::from_secs(20), run)
        .await
        .expect("run() must end after Redis is gone")
        .unwrap();
    let took = killed.elapsed();
    let error = result
        .expect_err("run() reports the lost broker")
        .to_string();
    eprintln!("concurrency {concurrency}: run() returned {took:?} after Redis was killed: {error}");
    assert!(
        took <= reconnect + Duration::from_secs(3),
        "run() took {took:?} to give up (reconnect timeout {reconnect:?})"
    );
    assert!(
        took >= reconnect - Duration::from_millis(100),
        "run() gave up after {took:?}, before the reconnect timeout {reconnect:?}"
    );
    assert!(
        error.contains("cannot reach Redis") || error.contains("broke during"),
        "the error names the cause: {error}"
    );
    let handled_before = handled.lock().unwrap().len();
    assert!(handled_before < total as usize, "Redis was killed mid-run");

    // Redis comes back with its data; a new worker finishes what the first one left,
    // pending or not yet read: nothing is lost.
    server.restart();
    let backend = RedisBackend::builder(url.clone())
        .stream(&stream)
        .consumer("rescuer")
        .block_time(Duration::from_millis(200))
        .claim_idle(Duration::from_millis(500))
        .claim_interval(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let spine = Spine::builder()
        .organ(Slow {
            handled: Arc::clone(&handled),
        })
        .backend(backend.clone())
        .concurrency(concurrency)
        .batch_size(64)
        .build()
        .unwrap();
    let stop = spine.stop_handle();
    let rescue = tokio::spawn(async move { spine.run().await });
    // About 3 000 handlings of 5 ms one at a time: 20 s on an idle machine, several
    // times that on a loaded one (one run at load average 30 needed more than 60 s).
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let distinct: std::collections::HashSet<u32> =
            handled.lock().unwrap().iter().copied().collect();
        let health = backend.health().await.unwrap();
        if distinct.len() == total as usize && health.pending == 0 && health.lag == Some(0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {total} handled: {health:?}",
            distinct.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.stop();
    rescue.await.unwrap().unwrap();
    backend.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_lost_for_good_ends_the_run_promptly_at_concurrency_1() {
    redis_lost_for_good(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_lost_for_good_ends_the_run_promptly_at_concurrency_64() {
    redis_lost_for_good(64).await;
}

/// Always fails.
#[organ(listens_to = Task)]
fn hopeless(_: &Task) -> Result<(), std::io::Error> {
    Err(std::io::Error::other("hopeless"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_creates_no_group_and_dead_letters_count_real_deliveries() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (url, stream) = (server.url(), "fleet:producer");
    let producer = RedisBackend::builder(url.clone())
        .stream(stream)
        .build_producer()
        .await
        .unwrap();
    producer.emit(Task { n: 7 }).await.unwrap();
    assert_eq!(server.cli(&["XLEN", stream]).trim(), "1");
    assert_eq!(
        server.cli(&["XINFO", "GROUPS", stream]).trim(),
        "",
        "a producer creates no consumer group"
    );

    // A worker dead-letters the event after its organ failed three times (two retries,
    // each a new delivery of a scheduled copy): the dead letter says which try it was
    // and how often its stream entry had been delivered.
    let backend = worker_backend(&url, stream, "w").await;
    let spine = Spine::builder()
        .organ(hopeless)
        .failure_policy(FailurePolicy::Retry(
            RetryPolicy::new(3).backoff(Duration::from_millis(50), Duration::from_millis(50)),
        ))
        .backend(backend.clone())
        .build()
        .unwrap();
    let report = spine.run_until_idle().await.unwrap();
    assert_eq!((report.retried, report.dead_lettered), (2, 1));
    let letters = backend.dead_letters(10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].reason_kind, "handler_failed");
    assert_eq!(letters[0].attempts, Some(3));
    assert_eq!(letters[0].deliveries, Some(1), "{:?}", letters[0].fields);
    backend.close().await.unwrap();
}

/// Fails the first try of every task.
#[organ(listens_to = Task)]
fn first_try_fails(task: &Envelope<Task>) -> Result<(), std::io::Error> {
    if task.attempt() == 1 {
        return Err(std::io::Error::other("first try"));
    }
    Ok(())
}

#[organ(listens_to = Task)]
fn audit(_: &Task) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_groups_retries_are_not_this_groups_dead_letters() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (url, stream) = (server.url(), "fleet:groups");
    let group = |name: &'static str| {
        RedisBackend::builder(url.clone())
            .stream(stream)
            .group(name)
            .block_time(Duration::from_millis(100))
            .build()
    };
    let (billing, auditing) = (
        group("billing").await.unwrap(),
        group("audit").await.unwrap(),
    );
    let retry = RetryPolicy::new(2).backoff(Duration::from_millis(20), Duration::from_millis(20));
    let billing_spine = Spine::builder()
        .organ(first_try_fails)
        .failure_policy(FailurePolicy::Retry(retry))
        .backend(billing.clone())
        .build()
        .unwrap();
    billing_spine
        .emit_all((0..5).map(|n| Task { n }))
        .await
        .unwrap();
    let billed = billing_spine.run_until_idle().await.unwrap();
    assert_eq!((billed.retried, billed.succeeded, billed.failed), (5, 5, 0));

    // The audit group sees the 5 tasks and the 5 retry copies billing scheduled: the
    // copies are for an organ it does not have, so they are acknowledged as unrouted.
    let audit_spine = Spine::builder()
        .organ(audit)
        .failure_policy(FailurePolicy::DeadLetter)
        .backend(auditing.clone())
        .build()
        .unwrap();
    let audited = audit_spine.run_until_idle().await.unwrap();
    assert_eq!(
        (audited.steps, audited.succeeded, audited.unrouted),
        (10, 5, 5)
    );
    assert_eq!(audited.dead_lettered, 0);
    assert!(auditing.dead_letters(10).await.unwrap().is_empty());
    for backend in [billing, auditing] {
        assert_eq!(backend.health().await.unwrap().pending, 0);
        backend.close().await.unwrap();
    }
}
