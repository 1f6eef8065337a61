//! Recovery paths of the Redis backend, one by one: a worker restarted under its name
//! finishes its own pending entries first; a slow worker keeps its entries (heartbeat)
//! while a dead one's are taken over after `claim_idle`; a released entry is taken over
//! at once; a loop of organs is dead-lettered while `run()` keeps serving.

#[path = "support/redis_server.rs"]
mod redis_server;

use std::time::{Duration, Instant};

use necrostack::backend::redis::RedisBackendBuilder;
use necrostack::backend::Completion;
use necrostack::{organ, AnyEnvelope, Backend, Envelope, Event, RedisBackend, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "recovery.Step")]
struct Step {
    n: u32,
}

fn steps(range: std::ops::Range<u32>) -> Vec<AnyEnvelope> {
    range.map(|n| Envelope::new(Step { n }).into()).collect()
}

fn n(d: &necrostack::backend::Delivery<necrostack::backend::redis::RedisReceipt>) -> u32 {
    d.envelope
        .clone()
        .decode::<Step>()
        .unwrap()
        .into_payload()
        .n
}

fn builder(server: &redis_server::RedisServer, consumer: &str) -> RedisBackendBuilder {
    RedisBackend::builder(server.url())
        .stream("recovery:events")
        .consumer(consumer)
        .claim_idle(Duration::from_millis(400))
        .claim_interval(Duration::from_millis(100))
        .block_time(Duration::from_millis(100))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_worker_finishes_its_own_pending_entries_first() {
    let Some(server) = redis_server::RedisServer::start() else {
        return;
    };
    let first = builder(&server, "stable-name").build().await.unwrap();
    first.enqueue(steps(0..6)).await.unwrap();
    let taken = first.pull(3, Duration::from_secs(1)).await.unwrap();
    assert_eq!(taken.iter().map(n).collect::<Vec<_>>(), vec![0, 1, 2]);
    drop(taken);
    drop(first); // dies holding 0, 1, 2
    first_enqueue_more(&server).await;

    let again = builder(&server, "stable-name")
        .claim_idle(Duration::from_secs(60)) // no takeover involved: its own entries
        .build()
        .await
        .unwrap();
    let got = again.pull(10, Duration::from_secs(1)).await.unwrap();
    assert_eq!(
        got.iter().map(n).collect::<Vec<_>>(),
        vec![0, 1, 2],
        "its own pending entries come first"
    );
    assert!(got.iter().all(|d| d.attempt == 2));
    for d in got {
        again
            .complete(d.receipt, Completion::default())
            .await
            .unwrap();
    }
    let rest = again.pull(10, Duration::from_secs(1)).await.unwrap();
    assert_eq!(rest.iter().map(n).collect::<Vec<_>>(), vec![3, 4, 5, 6]);
    assert!(rest.iter().all(|d| d.attempt == 1));
    assert_eq!(again.metrics().retried, 3);
}

async fn first_enqueue_more(server: &redis_server::RedisServer) {
    let producer = builder(server, "producer").build().await.unwrap();
    producer.enqueue(steps(6..7)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_worker_keeps_its_entries_and_a_dead_ones_are_taken_over() {
    let Some(server) = redis_server::RedisServer::start() else {
        return;
    };
    let slow = builder(&server, "slow").build().await.unwrap();
    let other = builder(&server, "other").build().await.unwrap();
    slow.enqueue(steps(0..2)).await.unwrap();
    let held = slow.pull(2, Duration::from_secs(1)).await.unwrap();
    assert_eq!(held.len(), 2);

    // Three times claim_idle: the heartbeat keeps the entries with the slow worker.
    let until = Instant::now() + Duration::from_millis(1200);
    while Instant::now() < until {
        let stolen = other.pull(10, Duration::from_millis(100)).await.unwrap();
        assert!(stolen.is_empty(), "a live worker's entries were taken over");
    }
    let mut held = held.into_iter();
    let done = held.next().unwrap();
    slow.complete(done.receipt, Completion::default())
        .await
        .unwrap();

    // The slow worker dies holding the second entry: the other takes it over.
    drop(held);
    drop(slow); // no close, no handover: as if the process died
    let started = Instant::now();
    let mut got = Vec::new();
    while got.is_empty() && started.elapsed() < Duration::from_secs(5) {
        got = other
            .pull(10, Duration::from_millis(100))
            .await
            .unwrap()
            .into_vec();
    }
    assert_eq!(got.iter().map(n).collect::<Vec<_>>(), vec![1]);
    assert_eq!(got[0].attempt, 2);
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "taken over only after claim_idle"
    );
    assert_eq!(other.metrics().reclaimed, 1);
    other
        .complete(got.pop().unwrap().receipt, Completion::default())
        .await
        .unwrap();
    assert_eq!(other.pending_count().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_entries_are_taken_over_at_once() {
    let Some(server) = redis_server::RedisServer::start() else {
        return;
    };
    let a = builder(&server, "a")
        .claim_idle(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let b = builder(&server, "b")
        .claim_idle(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    a.enqueue(steps(0..3)).await.unwrap();
    let got = a.pull(3, Duration::from_secs(1)).await.unwrap().into_vec();
    a.release(got).await.unwrap();
    let started = Instant::now();
    let taken = b.pull(10, Duration::from_secs(2)).await.unwrap();
    assert_eq!(taken.iter().map(n).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no claim_idle wait for released entries"
    );
    assert_eq!(a.metrics().released, 3);
}

#[organ(listens_to = Step)]
fn forever(step: &Step) -> Step {
    Step { n: step.n + 1 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_is_dead_lettered_while_run_keeps_serving() {
    let Some(server) = redis_server::RedisServer::start() else {
        return;
    };
    let backend = builder(&server, "looper").build().await.unwrap();
    let spine = Spine::builder()
        .organ(forever)
        .backend(backend.clone())
        .depth_limit(50)
        .poll_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    spine.emit(Step { n: 0 }).await.unwrap();
    let stop = spine.stop_handle();
    let running = tokio::spawn(async move { spine.run().await });
    let deadline = Instant::now() + Duration::from_secs(20);
    while backend.health().await.unwrap().dead_letters == 0 {
        assert!(Instant::now() < deadline, "the loop was not caught");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Still serving: a new event is handled after the loop was cut.
    let before = backend.metrics().acked;
    backend.enqueue(steps(1000..1001)).await.unwrap();
    while backend.metrics().acked < before + 2 {
        assert!(Instant::now() < deadline, "run() stopped serving");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.stop();
    let report = running.await.unwrap().unwrap();
    assert!(report.dead_lettered >= 1);
    let letters = backend.dead_letters(10).await.unwrap();
    assert_eq!(letters[0].reason_kind, "probable_loop");
    assert!(
        letters[0].reason.contains("limit of 50"),
        "{}",
        letters[0].reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_dropped_unhandled_comes_back() {
    let Some(server) = redis_server::RedisServer::start() else {
        return;
    };
    // A long claim_idle: only the receipt's drop guard can bring the entry back quickly.
    let a = builder(&server, "a")
        .claim_idle(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    a.enqueue(steps(0..2)).await.unwrap();
    let mut got = a.pull(2, Duration::from_secs(1)).await.unwrap().into_vec();
    let second = got.pop().unwrap();
    let first = got.pop().unwrap();
    a.complete(first.receipt, Completion::default())
        .await
        .unwrap();
    drop(second); // e.g. a cancelled `Spine::run`: neither completed nor released
    let again = a.pull(10, Duration::from_secs(1)).await.unwrap();
    assert_eq!(again.iter().map(n).collect::<Vec<_>>(), vec![1]);
    assert_eq!(again[0].attempt, 2);
}
