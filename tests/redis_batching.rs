//! Batched completions on Redis: completions that arrive together go to Redis in fewer
//! script calls, each entry is still applied (output and acknowledgement) on its own, and
//! one entry whose write Redis refuses fails alone, without holding back the others of
//! its batch.

#[path = "support/redis_server.rs"]
mod redis_server;

use std::time::Duration;

use necrostack::backend::{Backend, Completion, DeadLetter, DeadLetterReason};
use necrostack::{AnyEnvelope, Envelope, Event, RedisBackend};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "batching.Job")]
struct Job {
    n: u32,
}

const STREAM: &str = "batching:events";
const OUT: &str = "batching.Out";

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "batching.Out")]
struct Out {
    n: u32,
}

async fn backend(server: &redis_server::RedisServer) -> RedisBackend {
    RedisBackend::builder(server.url())
        .stream(STREAM)
        .consumer("batcher")
        .build()
        .await
        .unwrap()
}

async fn raw(server: &redis_server::RedisServer) -> redis::aio::MultiplexedConnection {
    redis_server::connect(&server.url()).await
}

/// How many `EVALSHA` calls Redis has served (from `INFO commandstats`).
fn evalsha_calls(server: &redis_server::RedisServer) -> u64 {
    let info = server.cli(&["INFO", "commandstats"]);
    info.lines()
        .find_map(|line| line.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |calls| calls.parse().unwrap())
}

/// A stream entry as `XRANGE` returns it: id and field/value pairs.
type Entry = (String, Vec<(String, Vec<u8>)>);

/// The `n` of every `batching.Out` event in the stream.
async fn outputs(conn: &mut redis::aio::MultiplexedConnection) -> Vec<u32> {
    let entries: Vec<Entry> = redis::cmd("XRANGE")
        .arg(STREAM)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .unwrap();
    entries
        .into_iter()
        .filter_map(|(_, fields)| {
            let envelope = AnyEnvelope::from_json(&fields[0].1).unwrap();
            (envelope.event_type() == OUT).then(|| envelope.decode::<Out>().unwrap().payload().n)
        })
        .collect()
}

async fn pull_all(
    backend: &RedisBackend,
    n: usize,
) -> Vec<necrostack::backend::Delivery<necrostack::backend::redis::RedisReceipt>> {
    let mut got = Vec::new();
    while got.len() < n {
        let batch = backend
            .pull(n - got.len(), Duration::from_secs(5))
            .await
            .unwrap();
        assert!(!batch.is_empty(), "timed out after {} of {n}", got.len());
        got.extend(batch);
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_completions_share_script_calls_and_each_is_applied() {
    let Some(server) = redis_server::RedisServer::start() else {
        return;
    };
    let backend = backend(&server).await;
    let n = 200u32;
    backend
        .enqueue((0..n).map(|n| Envelope::new(Job { n }).into()).collect())
        .await
        .unwrap();
    let deliveries = pull_all(&backend, n as usize).await;
    let before = evalsha_calls(&server);

    let completions = deliveries.into_iter().map(|delivery| {
        let backend = backend.clone();
        let job = delivery.envelope.clone().decode::<Job>().unwrap();
        tokio::spawn(async move {
            let out: AnyEnvelope = Envelope::new(Out { n: job.payload().n }).into();
            backend
                .complete(
                    delivery.receipt,
                    Completion {
                        emitted: vec![out].into(),
                        ..Completion::default()
                    },
                )
                .await
        })
    });
    let tasks: Vec<_> = completions.collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }

    let calls = evalsha_calls(&server) - before;
    assert!(
        calls < u64::from(n) / 2,
        "{n} concurrent completions took {calls} script calls: not batched"
    );
    assert_eq!(
        backend.pending_count().await.unwrap(),
        0,
        "every entry acked"
    );
    let mut outs = outputs(&mut raw(&server).await).await;
    outs.sort_unstable();
    assert_eq!(outs, (0..n).collect::<Vec<_>>(), "every output once");
    assert_eq!(backend.metrics().acked, u64::from(n));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_whose_write_is_refused_fails_alone_in_its_batch() {
    let Some(server) = redis_server::RedisServer::start() else {
        return;
    };
    let backend = backend(&server).await;
    let n = 64u32;
    backend
        .enqueue((0..n).map(|n| Envelope::new(Job { n }).into()).collect())
        .await
        .unwrap();
    let deliveries = pull_all(&backend, n as usize).await;
    let before = evalsha_calls(&server);
    // The dead-letter stream's key holds a string: every XADD to it fails (WRONGTYPE).
    let dlq = backend.config().dead_letter_key();
    server.cli(&["SET", &dlq, "not a stream"]);

    let tasks: Vec<_> = deliveries
        .into_iter()
        .map(|delivery| {
            let backend = backend.clone();
            let job = delivery.envelope.clone().decode::<Job>().unwrap();
            let n = job.payload().n;
            tokio::spawn(async move {
                // Every tenth entry is dead-lettered (and fails); the others emit.
                let completion = if n % 10 == 3 {
                    Completion {
                        dead_letters: vec![DeadLetter {
                            envelope: delivery.envelope.clone(),
                            reason: DeadLetterReason::HandlerFailed {
                                organ: "batching".into(),
                                error: "boom".into(),
                                attempts: 1,
                            },
                            at: chrono::Utc::now(),
                        }],
                        ..Completion::default()
                    }
                } else {
                    Completion {
                        emitted: vec![Envelope::new(Out { n }).into()].into(),
                        ..Completion::default()
                    }
                };
                (n, backend.complete(delivery.receipt, completion).await)
            })
        })
        .collect();
    let mut failed = Vec::new();
    for task in tasks {
        let (n, result) = task.await.unwrap();
        match result {
            Ok(()) => assert_ne!(n % 10, 3, "entry {n}'s dead letter cannot be written"),
            Err(error) => {
                assert!(error.to_string().contains("WRONGTYPE"), "{error}");
                failed.push(n);
            }
        }
    }
    let calls = evalsha_calls(&server) - before;
    assert!(
        calls < u64::from(n) / 2,
        "{calls} script calls: not batched"
    );
    failed.sort_unstable();
    let refused: Vec<u32> = (0..n).filter(|n| n % 10 == 3).collect();
    assert_eq!(failed, refused, "exactly the refused entries failed");
    // The refused entries stay pending (to be delivered again); the others are done.
    assert_eq!(backend.pending_count().await.unwrap(), refused.len() as u64);
    let mut outs = outputs(&mut raw(&server).await).await;
    outs.sort_unstable();
    let emitted: Vec<u32> = (0..n).filter(|n| n % 10 != 3).collect();
    assert_eq!(outs, emitted, "every other entry's output written once");
}
