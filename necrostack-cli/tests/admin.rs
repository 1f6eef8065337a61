//! `RedisAdmin`, the library under the tool, on cases the flow tests do not make: a dead
//! letter left by crashes (`max_deliveries`), the reader's strictness about the replay
//! marker, and a key of the wrong type.

#[path = "../../tests/support/redis_server.rs"]
mod redis_server;

#[path = "support/flow.rs"]
mod flow;

use std::time::Duration;

use necrostack::backend::redis::{AdminError, ReplayOptions, ReplayOutcome};
use necrostack::{Backend, Envelope, RedisBackend};
use redis_server::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_that_crashed_its_workers_is_replayed_from_its_original_fields() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    let stream = "admin:crash";
    let worker = RedisBackend::builder(&url)
        .stream(stream)
        .consumer("w")
        .max_deliveries(1)
        .block_time(Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    let order = Envelope::new(flow::Order { n: 7 });
    let event_id = order.id();
    worker.enqueue(vec![order.into()]).await.unwrap();
    // Delivered once and dropped unhandled (as by a crash): the next read is delivery 2,
    // past max_deliveries, so the backend dead-letters it with the original fields.
    let first = worker.pull(1, Duration::from_secs(1)).await.unwrap();
    assert_eq!(first.len(), 1);
    drop(first);
    assert!(worker
        .pull(1, Duration::from_millis(100))
        .await
        .unwrap()
        .is_empty());

    let admin = RedisBackend::builder(&url)
        .stream(stream)
        .build_admin()
        .await
        .unwrap();
    let page = admin.dead_letter_page(&Default::default()).await.unwrap();
    assert_eq!(page.letters.len(), 1);
    let letter = &page.letters[0];
    assert_eq!(letter.reason_kind, "max_deliveries");
    assert!(letter.envelope.is_none());
    assert_eq!(letter.event_id(), Some(event_id.to_string()));

    let mut seen = Vec::new();
    let n = admin
        .replay_all(&ReplayOptions::new(), |o| seen.push(o.clone()))
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert!(
        matches!(&seen[0], ReplayOutcome::Replayed { event_id: e, .. } if *e == event_id.to_string())
    );

    // The worker takes the replayed entry (envelope + replayed_from) as a new delivery.
    let again = worker.pull(1, Duration::from_secs(1)).await.unwrap();
    let delivery = again.into_iter().next().expect("replayed entry delivered");
    assert_eq!(delivery.envelope.id(), event_id);
    assert_eq!(delivery.attempt, 1);
    worker
        .complete(delivery.receipt, Default::default())
        .await
        .unwrap();
    assert_eq!(admin.stats().await.unwrap().streams[0].dead_letters, 0);
    worker.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reader_accepts_the_replay_marker_and_nothing_else() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    let stream = "admin:strict";
    let json = Envelope::new(flow::Order { n: 1 }).to_json().unwrap();
    let mut conn = flow::conn(&url).await;
    for extra in [
        &["replayed_from", "1-0"][..],
        &["replayed_from", "1-0", "x", "y"],
        &["x", "y"],
    ] {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(stream)
            .arg("*")
            .arg("envelope")
            .arg(json.as_slice());
        cmd.arg(extra);
        cmd.query_async::<String>(&mut conn).await.unwrap();
    }
    flow::run_flow(&url, stream, &flow::World::default(), 0, 0).await;
    let admin = RedisBackend::builder(&url)
        .stream(stream)
        .build_admin()
        .await
        .unwrap();
    let letters = admin
        .dead_letter_page(&Default::default())
        .await
        .unwrap()
        .letters;
    let mut kinds: Vec<&str> = letters.iter().map(|l| l.reason_kind.as_str()).collect();
    kinds.sort_unstable();
    // The first reached the organ (which failed: handler_failed); the others are poison.
    assert_eq!(kinds, ["handler_failed", "wrong_fields", "wrong_fields"]);
    // A poison entry with extra fields cannot be replayed; it stays.
    let poison = letters
        .iter()
        .find(|l| l.reason_kind == "wrong_fields")
        .unwrap();
    let outcomes = admin
        .replay(std::slice::from_ref(&poison.id), &ReplayOptions::new())
        .await
        .unwrap();
    assert!(
        matches!(&outcomes[0], ReplayOutcome::NotReplayable { .. }),
        "{outcomes:?}"
    );
    assert!(admin.dead_letter(&poison.id).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_of_the_wrong_type_and_a_bad_id_are_clear_errors() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    redis::cmd("SET")
        .arg("admin:string")
        .arg("x")
        .query_async::<()>(&mut flow::conn(&url).await)
        .await
        .unwrap();
    let admin = RedisBackend::builder(&url)
        .stream("admin:string")
        .build_admin()
        .await
        .unwrap();
    let error = admin.stats().await.unwrap_err();
    assert!(matches!(error, AdminError::WrongType { .. }), "{error}");
    assert!(error.to_string().contains("admin:string"), "{error}");
    let error = admin.dead_letter("nope").await.unwrap_err();
    assert!(matches!(error, AdminError::InvalidId(_)), "{error}");
}
