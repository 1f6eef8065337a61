//! `run_until_idle` on Redis with several events in flight returns once the work is done,
//! without waiting out a blocking read. The block time and poll interval here are far
//! longer than the bound the test allows, so a blocking read left running beside the
//! handlings would fail it.

#[path = "support/redis_server.rs"]
mod redis_server;

use std::time::Duration;

use necrostack::{organ, Event, RedisBackend, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "idle.Job")]
struct Job {
    n: u32,
}

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "idle.Done")]
struct Done {
    n: u32,
}

#[organ(listens_to = Job)]
async fn work(job: &Job) -> Done {
    tokio::time::sleep(Duration::from_millis(5)).await;
    Done { n: job.n }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_until_idle_with_concurrency_does_not_wait_for_a_blocking_read() {
    let Some(server) = redis_server::RedisServer::start() else {
        return;
    };
    let backend = RedisBackend::builder(server.url())
        .stream("idle:events")
        .block_time(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let spine = Spine::builder()
        .organ(work)
        .backend(backend)
        .concurrency(4)
        .poll_interval(Duration::from_secs(60))
        .build()
        .unwrap();
    spine.emit_all((0..40).map(|n| Job { n })).await.unwrap();
    let report = tokio::time::timeout(Duration::from_secs(20), spine.run_until_idle())
        .await
        .expect("run_until_idle waited on a 60 s blocking read")
        .unwrap();
    assert_eq!(report.steps, 80);
    assert_eq!(
        (report.succeeded, report.emitted, report.unrouted),
        (40, 40, 40)
    );
}
