//! Redis restarts mid-stream (killed with SIGKILL; append-only file with
//! `appendfsync always`): the workers reconnect and finish, nothing is lost, no output is
//! duplicated, and an `enqueue` while Redis is down returns an error instead of dropping
//! the event.

#[path = "support/redis_server.rs"]
mod redis_server;

#[path = "support/stream_entries.rs"]
mod stream_entries;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use necrostack::{organ, AnyEnvelope, Backend, Envelope, Event, RedisBackend, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "restart.Job")]
struct Job {
    n: u32,
}

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "restart.Done")]
struct Done {
    n: u32,
}

struct Worker {
    handled: Arc<Mutex<Vec<u32>>>,
}

#[organ(listens_to = Job)]
impl Worker {
    async fn handle(&self, job: &Job) -> Done {
        tokio::time::sleep(Duration::from_millis(8)).await;
        self.handled.lock().unwrap().push(job.n);
        Done { n: job.n }
    }
}

const STREAM: &str = "restart:events";

/// `RUST_LOG=info` shows the reconnections.
fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_test_writer()
        .try_init();
}
const JOBS: u32 = 600;

fn builder(url: &str, consumer: &str) -> necrostack::backend::redis::RedisBackendBuilder {
    RedisBackend::builder(url)
        .stream(STREAM)
        .consumer(consumer)
        .block_time(Duration::from_millis(200))
        .claim_idle(Duration::from_secs(2))
        .claim_interval(Duration::from_millis(500))
}

async fn outputs(url: &str) -> HashMap<u32, u32> {
    let mut out = HashMap::new();
    for envelope in stream_entries::envelopes(url, STREAM).await {
        if envelope.event_type() == "restart.Done" {
            *out.entry(envelope.decode::<Done>().unwrap().into_payload().n)
                .or_default() += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_recover_from_a_redis_restart_and_lose_nothing() {
    init_logs();
    let Some(mut server) = redis_server::RedisServer::start_with(redis_server::Options {
        persistence: true,
        ..Default::default()
    }) else {
        return;
    };
    let url = server.url();
    let started = Instant::now();
    let producer = builder(&url, "producer")
        .reconnect_timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    for chunk in 0..JOBS / 100 {
        let batch: Vec<AnyEnvelope> = (chunk * 100..chunk * 100 + 100)
            .map(|n| Envelope::new(Job { n }).into())
            .collect();
        producer.enqueue(batch).await.unwrap();
    }

    // A producer that stays idle across the restart: its connection goes stale.
    let idle_producer = builder(&url, "idle-producer").build().await.unwrap();

    let handled = Arc::new(Mutex::new(Vec::new()));
    let mut running = Vec::new();
    let mut backends = Vec::new();
    for i in 0..2 {
        let backend = builder(&url, &format!("worker-{i}")).build().await.unwrap();
        backends.push(backend.clone());
        let spine = Spine::builder()
            .organ(Worker {
                handled: Arc::clone(&handled),
            })
            .backend(backend)
            .concurrency(2)
            .batch_size(8)
            .poll_interval(Duration::from_millis(200))
            .build()
            .unwrap();
        let stop = spine.stop_handle();
        running.push((tokio::spawn(async move { spine.run().await }), stop));
    }

    // Mid-stream: kill Redis, keep it down a while, start it again on the same data.
    let deadline = Instant::now() + Duration::from_secs(20);
    while handled.lock().unwrap().len() < 100 {
        assert!(Instant::now() < deadline, "workers did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill();
    let at_kill = handled.lock().unwrap().len();
    assert!(at_kill < JOBS as usize, "the restart must land mid-stream");

    // While Redis is down, enqueue fails loudly instead of dropping the event.
    let refused = producer
        .enqueue(vec![Envelope::new(Job { n: JOBS }).into()])
        .await;
    assert!(refused.is_err(), "enqueue with Redis down must fail");
    let message = refused.unwrap_err().to_string();
    assert!(message.contains("Redis"), "{message}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart();

    // After the restart, enqueueing works again, also on the stale connection of the
    // idle producer (the backend checks whether the interrupted write landed, then
    // sends it again); both events are handled, each exactly once.
    producer
        .enqueue(vec![Envelope::new(Job { n: JOBS }).into()])
        .await
        .unwrap();
    idle_producer
        .enqueue(vec![Envelope::new(Job { n: JOBS + 1 }).into()])
        .await
        .expect("an idle producer enqueues after a Redis restart");

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = outputs(&url).await;
        let health = producer.health().await.unwrap();
        if out.len() > JOBS as usize + 1 && health.pending == 0 && health.lag == Some(0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not finished after the restart: {} of {} outputs, {health:?}",
            out.len(),
            JOBS + 2
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (_, stop) in &running {
        stop.stop();
    }
    for (task, _) in running {
        task.await.unwrap().unwrap();
    }

    let out = outputs(&url).await;
    assert_eq!(out.len(), JOBS as usize + 2);
    for n in 0..=JOBS + 1 {
        assert_eq!(out.get(&n), Some(&1), "job {n}: {:?} outputs", out.get(&n));
    }
    let handled = handled.lock().unwrap().clone();
    for n in 0..=JOBS + 1 {
        assert!(handled.contains(&n), "job {n} never handled");
    }
    let reconnections: u64 = backends.iter().map(|b| b.metrics().reconnections).sum();
    assert!(
        reconnections >= 2,
        "both workers reconnected ({reconnections})"
    );
    for b in &backends {
        b.close().await.unwrap();
    }
    eprintln!(
        "restart test: {} jobs, {at_kill} handled when Redis was killed, {} handlings in all, {reconnections} reconnections, {:?}",
        JOBS + 2,
        handled.len(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_lost_its_data_ends_the_run_with_nogroup_and_a_rebuilt_worker_goes_on() {
    init_logs();
    let Some(mut server) = redis_server::RedisServer::start() else {
        return; // no persistence: a restart empties Redis
    };
    let url = server.url();
    let handled = Arc::new(Mutex::new(Vec::new()));
    let spine_on = |backend: RedisBackend| {
        Spine::builder()
            .organ(Worker {
                handled: Arc::clone(&handled),
            })
            .backend(backend)
            .poll_interval(Duration::from_millis(100))
            .build()
            .unwrap()
    };
    let backend = builder(&url, "survivor").build().await.unwrap();
    let spine = spine_on(backend.clone());
    let running = tokio::spawn(async move { spine.run().await });
    backend
        .enqueue(vec![Envelope::new(Job { n: 1 }).into()])
        .await
        .unwrap();
    let wait_for = |n: u32| {
        let handled = Arc::clone(&handled);
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !handled.lock().unwrap().contains(&n) {
                assert!(Instant::now() < deadline, "job {n} not handled");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for(1).await;

    // The stream and the group are gone: whatever the group had not handled is lost, so
    // the run ends with an error that says so, instead of going on as if nothing happened.
    server.restart();
    let error = tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .expect("the run ends")
        .unwrap()
        .expect_err("a lost group is an error");
    assert!(error.to_string().contains("NOGROUP"), "{error}");
    let _ = backend.close().await;

    // A worker built again creates a new group and handles what comes next.
    let backend = builder(&url, "survivor").build().await.unwrap();
    let spine = spine_on(backend.clone());
    let stop = spine.stop_handle();
    let running = tokio::spawn(async move { spine.run().await });
    backend
        .enqueue(vec![Envelope::new(Job { n: 2 }).into()])
        .await
        .unwrap();
    wait_for(2).await;
    stop.stop();
    running.await.unwrap().unwrap();
    assert_eq!(*handled.lock().unwrap(), vec![1, 2]);
}
