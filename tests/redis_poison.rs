//! Poison input on Redis: entries with bad JSON, wrong fields, invalid or unknown event
//! types, wrong payloads and oversize payloads. Each lands in the dead-letter stream with
//! its reason (or, for a well-formed event nobody listens to, is acknowledged and
//! counted), and the worker keeps handling the good events around them.

#[path = "support/redis_server.rs"]
mod redis_server;

use std::time::Duration;

use necrostack::backend::redis::RedisDeadLetter;
use necrostack::backend::{Backend, BackendError};
use necrostack::{organ, Envelope, Event, RedisBackend, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "poison.Good")]
struct Good {
    n: u32,
}

#[organ(listens_to = Good)]
fn take(good: &Good) {
    assert!(good.n < 1000);
}

const STREAM: &str = "poison:events";

async fn raw(server: &redis_server::RedisServer) -> redis::aio::MultiplexedConnection {
    redis_server::connect(&server.url()).await
}

async fn xadd(conn: &mut redis::aio::MultiplexedConnection, fields: &[(&str, &[u8])]) -> String {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(STREAM).arg("*");
    for (k, v) in fields {
        cmd.arg(*k).arg(*v);
    }
    cmd.query_async(conn).await.unwrap()
}

fn good_json(n: u32) -> Vec<u8> {
    Envelope::new(Good { n }).to_json().unwrap()
}

fn envelope_with(event_type: &str, payload: &str, extra: &str) -> Vec<u8> {
    format!(
        r#"{{"id":"0190a0b1-7c2d-7e3f-8a4b-5c6d7e8f9a0b","timestamp":"2024-07-01T12:00:00Z","event_type":"{event_type}","payload":{payload},"correlation_id":"0190a0b1-7c2d-7e3f-8a4b-5c6d7e8f9a0b","causation_id":null,"depth":0{extra}}}"#
    )
    .into_bytes()
}

fn kind_of<'a>(letters: &'a [RedisDeadLetter], source: &str) -> &'a RedisDeadLetter {
    letters
        .iter()
        .find(|l| l.source_id.as_deref() == Some(source))
        .unwrap_or_else(|| panic!("no dead letter for entry {source}: {letters:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_entries_are_dead_lettered_and_the_worker_keeps_going() {
    let Some(server) = redis_server::RedisServer::start() else {
        return;
    };
    let backend = RedisBackend::builder(server.url())
        .stream(STREAM)
        .max_payload_bytes(4096)
        .build()
        .await
        .unwrap();
    let mut conn = raw(&server).await;

    let mut good_ids = Vec::new();
    good_ids.push(xadd(&mut conn, &[("envelope", &good_json(1))]).await);
    let bad_json = xadd(&mut conn, &[("envelope", b"{not json")]).await;
    let wrong_field = xadd(&mut conn, &[("foo", b"bar")]).await;
    let extra_field = xadd(&mut conn, &[("envelope", &good_json(2)), ("x", b"y")]).await;
    good_ids.push(xadd(&mut conn, &[("envelope", &good_json(3))]).await);
    let invalid_type = xadd(
        &mut conn,
        &[("envelope", &envelope_with("has space", "{}", ""))],
    )
    .await;
    let unknown_field = xadd(
        &mut conn,
        &[(
            "envelope",
            &envelope_with("poison.Good", r#"{"n":4}"#, r#","extra":1"#),
        )],
    )
    .await;
    let binary = xadd(&mut conn, &[("envelope", &[0xff, 0xfe, 0x00, 0x80])]).await;
    let big_payload = format!(r#"{{"n":5,"pad":"{}"}}"#, "p".repeat(10_000));
    let oversize = xadd(
        &mut conn,
        &[("envelope", &envelope_with("poison.Good", &big_payload, ""))],
    )
    .await;
    let wrong_payload = xadd(
        &mut conn,
        &[(
            "envelope",
            &envelope_with("poison.Good", r#"{"nope":true}"#, ""),
        )],
    )
    .await;
    let unknown_type = xadd(
        &mut conn,
        &[("envelope", &envelope_with("poison.NobodyListens", "{}", ""))],
    )
    .await;
    good_ids.push(xadd(&mut conn, &[("envelope", &good_json(6))]).await);

    let spine = Spine::builder()
        .organ(take)
        .backend(backend.clone())
        .build()
        .unwrap();
    let report = spine.run_until_idle().await.unwrap();
    // The spine sees the three good events, the one with a wrong payload (dead-lettered
    // by the spine) and the one nobody listens to; the backend dead-letters the rest.
    assert_eq!(report.succeeded, 3, "{report:?}");
    assert_eq!(report.unrouted, 1, "{report:?}");
    assert_eq!(report.dead_lettered, 1, "{report:?}");

    let letters = backend.dead_letters(100).await.unwrap();
    assert_eq!(letters.len(), 8, "{letters:#?}");
    let expect = [
        (&bad_json, "undecodable"),
        (&wrong_field, "wrong_fields"),
        (&extra_field, "wrong_fields"),
        (&invalid_type, "undecodable"),
        (&unknown_field, "undecodable"),
        (&binary, "undecodable"),
        (&oversize, "oversize"),
        (&wrong_payload, "undecodable"),
    ];
    for (id, kind) in expect {
        let letter = kind_of(&letters, id);
        assert_eq!(letter.reason_kind, kind, "{letter:#?}");
        assert!(!letter.reason.is_empty());
    }
    // The original entry is kept whole.
    assert_eq!(
        kind_of(&letters, &bad_json).original,
        vec![("envelope".to_owned(), b"{not json".to_vec())]
    );
    assert_eq!(
        kind_of(&letters, &wrong_field).original,
        vec![("foo".to_owned(), b"bar".to_vec())]
    );
    assert_eq!(
        kind_of(&letters, &binary).original[0].1,
        vec![0xff, 0xfe, 0x00, 0x80]
    );
    assert!(
        kind_of(&letters, &invalid_type)
            .reason
            .contains("event_type"),
        "{}",
        kind_of(&letters, &invalid_type).reason
    );
    assert!(kind_of(&letters, &unknown_field).reason.contains("extra"));
    assert!(kind_of(&letters, &oversize).reason.contains("4096"));
    // The spine's dead letter carries the event itself.
    let wrong = kind_of(&letters, &wrong_payload);
    let envelope = wrong.decode_envelope().expect("has an envelope").unwrap();
    assert_eq!(envelope.event_type(), "poison.Good");

    // Everything is acknowledged: nothing pending, nothing left to read.
    assert_eq!(backend.pending_count().await.unwrap(), 0);
    assert!(backend.pull(10, Duration::ZERO).await.unwrap().is_empty());
    let health = backend.health().await.unwrap();
    assert_eq!(health.pending, 0);
    assert_eq!(health.dead_letters, 8);
    assert_eq!(health.lag, Some(0));
    let metrics = backend.metrics();
    assert_eq!(metrics.dead_lettered, 8);
    assert_eq!(metrics.acked, 12);
    // Good events and the well-formed event nobody listens to are not dead letters.
    for id in good_ids.iter().chain([&unknown_type]) {
        assert!(letters
            .iter()
            .all(|l| l.source_id.as_deref() != Some(id.as_str())));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_events_are_refused_at_enqueue() {
    let Some(server) = redis_server::RedisServer::start() else {
        return;
    };
    let backend = RedisBackend::builder(server.url())
        .stream(STREAM)
        .max_payload_bytes(1024)
        .build()
        .await
        .unwrap();
    #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
    struct Blob {
        data: String,
    }
    let small = Envelope::new(Blob { data: "ok".into() });
    let big = Envelope::new(Blob {
        data: "b".repeat(2000),
    });
    let error = backend
        .enqueue(vec![small.into(), big.into()])
        .await
        .expect_err("too large");
    assert!(matches!(error, BackendError::Other(_)), "{error:?}");
    assert!(
        error.to_string().contains("over the limit of 1024 bytes"),
        "{error}"
    );
    // All or nothing: the small one was not stored either.
    assert_eq!(backend.health().await.unwrap().stream_length, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_that_keeps_crashing_its_workers_is_dead_lettered() {
    let Some(server) = redis_server::RedisServer::start() else {
        return;
    };
    let worker = || {
        RedisBackend::builder(server.url())
            .stream(STREAM)
            .consumer("crashy")
            .max_deliveries(2)
            .build()
    };
    let producer = worker().await.unwrap();
    producer
        .enqueue(vec![Envelope::new(Good { n: 7 }).into()])
        .await
        .unwrap();
    drop(producer);

    // Two workers under the same name take the entry and die without completing it; a
    // restarted worker re-reads its own pending entries first.
    for expected_attempt in 1..=2 {
        let w = worker().await.unwrap();
        let got = w.pull(10, Duration::from_secs(2)).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].attempt, expected_attempt);
        drop(got);
        drop(w);
    }
    // The third delivery is past max_deliveries: dead-lettered and acknowledged.
    let w = worker().await.unwrap();
    assert!(w
        .pull(10, Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
    let letters = w.dead_letters(10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].reason_kind, "max_deliveries");
    assert_eq!(letters[0].attempts, Some(3));
    assert!(letters[0].reason.contains("max_deliveries is 2"));
    let original = letters[0]
        .original
        .iter()
        .find(|(k, _)| k == "envelope")
        .expect("original entry kept");
    assert_eq!(
        necrostack::AnyEnvelope::from_json(&original.1)
            .unwrap()
            .decode::<Good>()
            .unwrap()
            .n,
        7
    );
    assert_eq!(w.pending_count().await.unwrap(), 0);
}
