//! The NATS backend on its own: poison input, the delivery limit, slow handlings kept
//! alive by in-progress acks, scheduled events across a server restart, a server that
//! goes away for good, and credentials kept out of errors.

#[path = "support/nats_server.rs"]
mod nats_server;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use necrostack::backend::nats::{NatsBackendBuilder, NatsDeadLetter};
use necrostack::backend::{Backend, BackendError};
use necrostack::{organ, Envelope, Event, NatsBackend, Spine};
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

fn builder(server: &nats_server::NatsServer, stream: &str) -> NatsBackendBuilder {
    NatsBackend::builder(server.url())
        .stream(stream)
        .ack_wait(Duration::from_secs(1))
        .max_wait(Duration::from_millis(200))
}

/// Publishes raw bytes to the events subject of `stream`; returns the stream sequence.
async fn publish_raw(server: &nats_server::NatsServer, stream: &str, body: &[u8]) -> u64 {
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.publish(format!("necrostack.{stream}"), body.to_vec().into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence
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

fn letter_for(letters: &[NatsDeadLetter], sequence: u64) -> &NatsDeadLetter {
    letters
        .iter()
        .find(|l| l.source_sequence == Some(sequence))
        .unwrap_or_else(|| panic!("no dead letter for message {sequence}: {letters:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_dead_lettered_and_the_worker_keeps_going() {
    let Some(server) = nats_server::NatsServer::start() else {
        return;
    };
    const S: &str = "POISON";
    let backend = builder(&server, S)
        .max_payload_bytes(4096)
        .build()
        .await
        .unwrap();
    publish_raw(&server, S, &good_json(1)).await;
    let bad_json = publish_raw(&server, S, b"{not json").await;
    let binary = publish_raw(&server, S, &[0xff, 0xfe, 0x00, 0x80]).await;
    publish_raw(&server, S, &good_json(3)).await;
    let invalid_type = publish_raw(&server, S, &envelope_with("has space", "{}", "")).await;
    let unknown_field = publish_raw(
        &server,
        S,
        &envelope_with("poison.Good", r#"{"n":4}"#, r#","extra":1"#),
    )
    .await;
    let big = format!(r#"{{"n":5,"pad":"{}"}}"#, "p".repeat(10_000));
    let oversize = publish_raw(&server, S, &envelope_with("poison.Good", &big, "")).await;
    let wrong_payload = publish_raw(
        &server,
        S,
        &envelope_with("poison.Good", r#"{"nope":true}"#, ""),
    )
    .await;
    publish_raw(&server, S, &envelope_with("poison.NobodyListens", "{}", "")).await;
    publish_raw(&server, S, &good_json(6)).await;

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
    assert_eq!(letters.len(), 6, "{letters:#?}");
    for (sequence, kind) in [
        (bad_json, "undecodable"),
        (binary, "undecodable"),
        (invalid_type, "undecodable"),
        (unknown_field, "undecodable"),
        (oversize, "oversize"),
        (wrong_payload, "undecodable"),
    ] {
        let letter = letter_for(&letters, sequence);
        assert_eq!(letter.reason_kind, kind, "{letter:#?}");
        assert!(!letter.reason.is_empty());
    }
    // The original message is kept whole.
    assert_eq!(letter_for(&letters, bad_json).body, b"{not json");
    assert_eq!(
        letter_for(&letters, binary).body,
        vec![0xff, 0xfe, 0x00, 0x80]
    );
    assert!(letter_for(&letters, oversize).reason.contains("4096"));
    assert!(letter_for(&letters, unknown_field).reason.contains("extra"));
    let wrong = letter_for(&letters, wrong_payload);
    assert_eq!(wrong.decode_envelope().unwrap().event_type(), "poison.Good");

    // Everything is acknowledged or terminated: nothing pending, nothing left.
    assert!(backend.pull(10, Duration::ZERO).await.unwrap().is_empty());
    let health = backend.health().await.unwrap();
    assert_eq!((health.pending, health.ack_pending), (0, 0), "{health:?}");
    assert_eq!(health.dead_letters, 6);
    assert_eq!(backend.metrics().dead_lettered, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_events_are_refused_at_enqueue_and_emitted_ones_dead_lettered() {
    let Some(server) = nats_server::NatsServer::start() else {
        return;
    };
    let backend = builder(&server, "OVERSIZE")
        .max_payload_bytes(1024)
        .build()
        .await
        .unwrap();
    #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
    struct Big {
        pad: String,
    }
    let refused = backend
        .enqueue(vec![Envelope::new(Big {
            pad: "x".repeat(2000),
        })
        .into()])
        .await;
    let error = refused.expect_err("an oversize event is refused");
    assert!(error.to_string().contains("1024"), "{error}");

    backend
        .enqueue(vec![Envelope::new(Good { n: 1 }).into()])
        .await
        .unwrap();
    let delivery = backend
        .pull(1, Duration::from_secs(2))
        .await
        .unwrap()
        .into_iter()
        .next()
        .unwrap();
    let big: necrostack::AnyEnvelope = Envelope::new(Big {
        pad: "y".repeat(2000),
    })
    .into();
    let completion = necrostack::backend::Completion {
        emitted: vec![big].into(),
        ..Default::default()
    };
    backend
        .complete(delivery.receipt, completion)
        .await
        .unwrap();
    let letters = backend.dead_letters(10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].reason_kind, "oversize_emitted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_deliveries_a_message_is_dead_lettered() {
    let Some(server) = nats_server::NatsServer::start() else {
        return;
    };
    let backend = builder(&server, "LIMIT")
        .max_deliveries(2)
        .build()
        .await
        .unwrap();
    backend
        .enqueue(vec![Envelope::new(Good { n: 7 }).into()])
        .await
        .unwrap();
    for attempt in 1..=2 {
        let got = backend.pull(1, Duration::from_secs(2)).await.unwrap();
        assert_eq!(got.len(), 1);
        let delivery = got.into_iter().next().unwrap();
        assert_eq!(delivery.attempt, attempt);
        backend.release(vec![delivery]).await.unwrap();
    }
    // The third delivery never reaches the spine.
    assert!(backend
        .pull(1, Duration::from_millis(500))
        .await
        .unwrap()
        .is_empty());
    let letters = backend.dead_letters(10).await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:#?}");
    assert_eq!(letters[0].reason_kind, "max_deliveries");
    assert_eq!(letters[0].attempts, Some(3));
    let envelope = letters[0].decode_envelope().unwrap();
    assert_eq!(envelope.decode::<Good>().unwrap().n, 7);
    let health = backend.health().await.unwrap();
    assert_eq!((health.pending, health.ack_pending), (0, 0));
}

#[derive(Default)]
struct Slow {
    calls: AtomicU32,
}

#[organ(listens_to = Good)]
impl Slow {
    async fn handle(&self, _: &Good) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }
}

/// A handling longer than `AckWait` is kept alive by in-progress acks: a second worker
/// pulling all along never gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handling_is_not_redelivered() {
    let Some(server) = nats_server::NatsServer::start() else {
        return;
    };
    let slow = Arc::new(Slow::default());
    let a = builder(&server, "SLOW").build().await.unwrap();
    let b = builder(&server, "SLOW").build().await.unwrap();
    a.enqueue(vec![Envelope::new(Good { n: 1 }).into()])
        .await
        .unwrap();
    let spine = Spine::builder()
        .organ(Shared(Arc::clone(&slow)))
        .backend(a.clone())
        .build()
        .unwrap();
    let run = tokio::spawn(async move { spine.run_until_idle().await });
    while slow.calls.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let deadline = Instant::now() + Duration::from_millis(2000);
    while Instant::now() < deadline {
        let stolen = b.pull(10, Duration::from_millis(200)).await.unwrap();
        assert!(stolen.is_empty(), "a live worker's message was redelivered");
    }
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.succeeded, 1);
    assert_eq!(slow.calls.load(Ordering::SeqCst), 1);
}

struct Shared<O>(Arc<O>);

impl<O: necrostack::Organ> necrostack::Organ for Shared<O> {
    type Event = O::Event;
    const NAME: &'static str = O::NAME;
    fn call<'a>(&'a self, event: &'a Envelope<O::Event>) -> necrostack::Handling<'a> {
        self.0.call(event)
    }
}

/// A scheduled event lives on the server: it survives a restart (file storage) and is
/// delivered once due, not before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_events_survive_a_server_restart() {
    let Some(mut server) = nats_server::NatsServer::start() else {
        return;
    };
    let backend = builder(&server, "LATER")
        .reconnect_timeout(Duration::from_secs(20))
        .build()
        .await
        .unwrap();
    let due = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    backend
        .schedule(vec![necrostack::backend::Scheduled {
            envelope: Envelope::new(Good { n: 9 }).into(),
            due,
        }])
        .await
        .unwrap();
    server.kill();
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    let got = loop {
        let got = backend.pull(1, Duration::from_millis(200)).await.unwrap();
        if !got.is_empty() {
            break got;
        }
        assert!(Instant::now() < deadline, "the scheduled event never came");
    };
    assert!(chrono::Utc::now() >= due, "delivered before it was due");
    assert_eq!(got[0].envelope.clone().decode::<Good>().unwrap().n, 9);
    assert_eq!(backend.next_due().await.unwrap(), None);
}

/// A server gone for good ends `run()` with an error about this long after it went away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_server_ends_the_run_with_an_error() {
    let Some(mut server) = nats_server::NatsServer::start() else {
        return;
    };
    let backend = builder(&server, "GONE")
        .reconnect_timeout(Duration::from_secs(2))
        .response_timeout(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    let spine = Spine::builder()
        .organ(take)
        .backend(backend)
        .poll_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    spine.emit(Good { n: 1 }).await.unwrap();
    let run = tokio::spawn(async move { spine.run().await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.kill();
    let killed = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(15), run)
        .await
        .expect("run() ends when the server is gone")
        .unwrap();
    let waited = killed.elapsed();
    let error = ended.expect_err("a lost server is an error");
    let text = error.to_string();
    assert!(
        text.contains("NATS") && text.contains("unavailable"),
        "{text}"
    );
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(8),
        "ended {waited:?} after the kill"
    );
    eprintln!("lost NATS server: run() ended {waited:?} after the kill: {text}");
}

#[tokio::test]
async fn credentials_never_show_in_errors_or_debug() {
    let port = nats_server::free_port();
    let url = format!("nats://alice:hunter2secret@127.0.0.1:{port}");
    let builder = NatsBackend::builder(url).connect_timeout(Duration::from_millis(300));
    assert!(!format!("{builder:?}").contains("hunter2secret"));
    assert!(!builder.config().to_string().contains("hunter2secret"));
    let error = builder.build().await.expect_err("nothing listens there");
    assert!(matches!(error, BackendError::Unavailable(_)), "{error:?}");
    assert!(!error.to_string().contains("hunter2secret"), "{error}");
    assert!(!format!("{error:?}").contains("hunter2secret"), "{error:?}");
    let token = NatsBackend::builder(format!("nats://s3cr3tt0ken@127.0.0.1:{port}"));
    assert!(!format!("{:?}", token.config()).contains("s3cr3tt0ken"));
}

/// An existing stream that does not take the backend's subject is a clear error at
/// `build`, not a publish that waits for the reconnect timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_stream_with_other_subjects_is_refused() {
    let Some(server) = nats_server::NatsServer::start() else {
        return;
    };
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "THEIRS".to_owned(),
        subjects: vec!["somebody.else".to_owned()],
        ..Default::default()
    })
    .await
    .unwrap();
    let started = Instant::now();
    let error = builder(&server, "THEIRS")
        .build()
        .await
        .expect_err("the stream does not take necrostack.THEIRS");
    assert!(error.to_string().contains("somebody.else"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// A server that wants a user and password (or a token) gets them from the URL; a wrong
/// password is a clean error that does not show it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_the_url_authenticate() {
    let Some(server) =
        nats_server::NatsServer::start_with(&["--user", "alice", "--pass", "s3cr3t"])
    else {
        return;
    };
    let port = server.port();
    let good = NatsBackend::builder(format!("nats://alice:s3cr3t@127.0.0.1:{port}"))
        .stream("AUTH")
        .build()
        .await
        .expect("the right password connects");
    good.enqueue(vec![Envelope::new(Good { n: 1 }).into()])
        .await
        .unwrap();
    assert_eq!(good.pull(1, Duration::from_secs(2)).await.unwrap().len(), 1);
    let error = NatsBackend::builder(format!("nats://alice:wr0ngpass@127.0.0.1:{port}"))
        .connect_timeout(Duration::from_secs(1))
        .build()
        .await
        .expect_err("a wrong password is refused");
    assert!(
        !format!("{error} {error:?}").contains("wr0ngpass"),
        "{error}"
    );
    let Some(token_server) = nats_server::NatsServer::start_with(&["--auth", "t0k3n"]) else {
        return;
    };
    let url = format!("nats://t0k3n@127.0.0.1:{}", token_server.port());
    NatsBackend::builder(url)
        .stream("TOKEN")
        .build()
        .await
        .expect("the token connects");
}

/// A server that comes back without the consumer (memory storage, restarted) ends the run
/// with an error that names it, instead of quietly starting over with an empty stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_back_without_the_consumer_ends_the_run() {
    let Some(mut server) = nats_server::NatsServer::start() else {
        return;
    };
    let backend = builder(&server, "FORGOTTEN")
        .storage(necrostack::backend::nats::Storage::Memory)
        .reconnect_timeout(Duration::from_secs(20))
        .build()
        .await
        .unwrap();
    let spine = Spine::builder()
        .organ(take)
        .backend(backend)
        .poll_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let run = tokio::spawn(async move { spine.run().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill();
    server.restart();
    let restarted = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(15), run)
        .await
        .expect("run() ends when the consumer is gone")
        .unwrap();
    let text = ended.expect_err("a lost consumer is an error").to_string();
    assert!(
        text.contains("FORGOTTEN") && text.contains("no longer exists"),
        "{text}"
    );
    assert!(
        restarted.elapsed() < Duration::from_secs(10),
        "well before the reconnect timeout"
    );
}
