//! The backend conformance suite: one set of generic tests that every `Backend` must
//! pass, instantiated for `InMemoryBackend`, `RedisBackend` (against a throwaway
//! `redis-server` per test) and `NatsBackend` (against a throwaway `nats-server -js`).
//!
//! A [`Harness`] says how to make consumers of one queue and what the backend promises
//! beyond the common contract (durability across `close`, consumer groups). Tests that
//! only make sense for one kind of backend say so in their output instead of passing
//! vacuously.

#[path = "support/nats_server.rs"]
mod nats_server;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use necrostack::backend::{
    Backend, BackendError, Completion, DeadLetter, DeadLetterReason, Delivery, Scheduled,
};
use necrostack::{
    organ, AnyEnvelope, Envelope, Event, FailurePolicy, InMemoryBackend, NatsBackend, RedisBackend,
    RetryPolicy, Spine,
};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "conformance.Item")]
struct Item {
    producer: u32,
    seq: u32,
    text: String,
}

fn item(producer: u32, seq: u32) -> Item {
    Item {
        producer,
        seq,
        text: format!(
            "payload {producer}/{seq} ünïcødé \"quoted\" \\ {}",
            "x".repeat((seq % 7) as usize)
        ),
    }
}

fn envelopes(producer: u32, range: std::ops::Range<u32>) -> Vec<AnyEnvelope> {
    range
        .map(|seq| Envelope::new(item(producer, seq)).into())
        .collect()
}

fn decode(delivery: &Delivery<impl Sized>) -> Item {
    delivery
        .envelope
        .clone()
        .decode::<Item>()
        .expect("payload decodes")
        .into_payload()
}

/// How to make backends for one test.
trait Harness: Sized {
    type B: Backend + Clone;
    /// `None` when the backend cannot run here (the reason is printed).
    async fn new(test: &str) -> Option<Self>;
    /// A consumer of the shared queue (a new handle or connection, named `name`).
    async fn consumer(&self, name: &str) -> Self::B;
    /// A consumer in another consumer group, if the backend has groups (the tests that
    /// need groups are instantiated only for backends that have them).
    async fn other_group(&self, group: &str) -> Option<Self::B>;
    /// Whether stored events survive `close` of one consumer.
    fn durable(&self) -> bool;
    /// Simulates the process of `consumer` dying while holding `deliveries`.
    async fn crash(
        &self,
        consumer: Self::B,
        deliveries: Vec<Delivery<<Self::B as Backend>::Receipt>>,
    );
    /// How long a consumer may wait for a crashed consumer's deliveries to come back.
    fn redelivery_wait(&self) -> Duration;
    /// Dead letters stored so far.
    async fn dead_letter_count(&self) -> usize;
}

struct Memory {
    backend: InMemoryBackend,
}

impl Harness for Memory {
    type B = InMemoryBackend;

    async fn new(_test: &str) -> Option<Self> {
        Some(Memory {
            backend: InMemoryBackend::new(),
        })
    }

    async fn consumer(&self, _name: &str) -> InMemoryBackend {
        self.backend.clone()
    }

    async fn other_group(&self, _group: &str) -> Option<InMemoryBackend> {
        None
    }

    fn durable(&self) -> bool {
        false
    }

    async fn crash(
        &self,
        consumer: InMemoryBackend,
        deliveries: Vec<Delivery<necrostack::backend::memory::MemoryReceipt>>,
    ) {
        // A process that dies loses its memory; within one process, giving the
        // deliveries back is what the spine does when a handling does not finish.
        consumer.release(deliveries).await.unwrap();
    }

    fn redelivery_wait(&self) -> Duration {
        Duration::from_millis(100)
    }

    async fn dead_letter_count(&self) -> usize {
        self.backend.dead_letters().len()
    }
}

/// `P` partitions (`.partitions(P)`), or the single stream for `P = 0`.
struct Redis<const P: u32 = 0> {
    server: redis_server::RedisServer,
    stream: String,
}

impl<const P: u32> Redis<P> {
    fn builder(
        &self,
        group: &str,
        consumer: &str,
    ) -> necrostack::backend::redis::RedisBackendBuilder {
        let builder = RedisBackend::builder(self.server.url())
            .stream(self.stream.clone())
            .group(group)
            .consumer(consumer)
            .claim_idle(Duration::from_millis(300))
            .claim_interval(Duration::from_millis(100))
            .block_time(Duration::from_millis(200));
        if P == 0 {
            builder
        } else {
            builder
                .partitions(P)
                .partition_lease(Duration::from_millis(900))
        }
    }
}

impl<const P: u32> Harness for Redis<P> {
    type B = RedisBackend;

    async fn new(_test: &str) -> Option<Self> {
        let server = redis_server::RedisServer::start()?;
        Some(Redis {
            server,
            stream: "conformance:events".to_owned(),
        })
    }

    async fn consumer(&self, name: &str) -> RedisBackend {
        self.builder("workers", name)
            .build()
            .await
            .expect("connect to the test Redis")
    }

    async fn other_group(&self, group: &str) -> Option<RedisBackend> {
        Some(self.builder(group, "solo").build().await.expect("connect"))
    }

    fn durable(&self) -> bool {
        true
    }

    async fn crash(
        &self,
        consumer: RedisBackend,
        deliveries: Vec<Delivery<necrostack::backend::redis::RedisReceipt>>,
    ) {
        // The process dies: no complete, no release, no close.
        drop(deliveries);
        drop(consumer);
    }

    fn redelivery_wait(&self) -> Duration {
        Duration::from_secs(3)
    }

    async fn dead_letter_count(&self) -> usize {
        let probe = self.consumer("probe").await;
        probe.dead_letters(10_000).await.unwrap().len()
    }
}

struct Nats {
    server: nats_server::NatsServer,
}

impl Nats {
    fn builder(&self, consumer: &str) -> necrostack::backend::nats::NatsBackendBuilder {
        NatsBackend::builder(self.server.url())
            .stream("CONFORMANCE")
            .consumer(consumer)
            .storage(necrostack::backend::nats::Storage::Memory)
            .ack_wait(Duration::from_secs(1))
            .max_wait(Duration::from_millis(200))
    }
}

impl Harness for Nats {
    type B = NatsBackend;

    async fn new(_test: &str) -> Option<Self> {
        let server = nats_server::NatsServer::start()?;
        Some(Nats { server })
    }

    async fn consumer(&self, _name: &str) -> NatsBackend {
        // Workers of one group share the durable consumer "workers".
        self.builder("workers")
            .build()
            .await
            .expect("connect to the test NATS")
    }

    async fn other_group(&self, group: &str) -> Option<NatsBackend> {
        Some(self.builder(group).build().await.expect("connect"))
    }

    fn durable(&self) -> bool {
        true
    }

    async fn crash(
        &self,
        consumer: NatsBackend,
        deliveries: Vec<Delivery<necrostack::backend::nats::NatsReceipt>>,
    ) {
        // The process dies: no complete, no release, no close.
        drop(deliveries);
        drop(consumer);
    }

    fn redelivery_wait(&self) -> Duration {
        Duration::from_secs(3)
    }

    async fn dead_letter_count(&self) -> usize {
        let probe = self.consumer("probe").await;
        probe.dead_letters(10_000).await.unwrap().len()
    }
}

/// Pulls until `n` deliveries arrived or `wait` passed.
async fn pull_n<B: Backend>(
    backend: &B,
    n: usize,
    batch: usize,
    wait: Duration,
) -> Vec<Delivery<B::Receipt>> {
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        let more = backend
            .pull(batch.min(n - out.len()), Duration::from_millis(100))
            .await
            .expect("pull");
        out.extend(more);
    }
    out
}

async fn complete_all<B: Backend>(backend: &B, deliveries: Vec<Delivery<B::Receipt>>) {
    for d in deliveries {
        backend
            .complete(d.receipt, Completion::default())
            .await
            .expect("complete");
    }
}

async fn assert_drained<B: Backend>(backend: &B) {
    let rest = backend
        .pull(100, Duration::from_millis(150))
        .await
        .expect("pull");
    assert!(
        rest.is_empty(),
        "expected nothing left, got {} deliveries",
        rest.len()
    );
}

// ---------------------------------------------------------------- the tests

async fn many_events_payloads_intact<H: Harness>(h: H) {
    let b = h.consumer("c1").await;
    let mut sent = Vec::new();
    for chunk in 0..10 {
        let batch = envelopes(0, chunk * 50..chunk * 50 + 50);
        sent.extend(
            batch
                .iter()
                .map(|e| (e.id(), e.clone().decode::<Item>().unwrap().into_payload())),
        );
        b.enqueue(batch).await.unwrap();
    }
    let got = pull_n(&b, 500, 64, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 500);
    let mut ids = HashSet::new();
    for (d, (id, payload)) in got.iter().zip(&sent) {
        assert_eq!(d.envelope.id(), *id);
        assert_eq!(d.envelope.event_type(), "conformance.Item");
        assert_eq!(&decode(d), payload);
        assert_eq!(d.attempt, 1);
        assert!(ids.insert(d.envelope.id()));
    }
    complete_all(&b, got).await;
    assert_drained(&b).await;
}

async fn fifo_for_one_consumer<H: Harness>(h: H) {
    let b = h.consumer("c1").await;
    for chunk in 0..8 {
        b.enqueue(envelopes(0, chunk * 25..chunk * 25 + 25))
            .await
            .unwrap();
    }
    let mut seqs = Vec::new();
    while seqs.len() < 200 {
        let batch = b.pull(7, Duration::from_millis(200)).await.unwrap();
        assert!(!batch.is_empty(), "events missing after {}", seqs.len());
        assert!(batch.len() <= 7);
        for d in batch {
            seqs.push(decode(&d).seq);
            b.complete(d.receipt, Completion::default()).await.unwrap();
        }
    }
    assert_eq!(seqs, (0..200).collect::<Vec<_>>());
    assert_drained(&b).await;
}

async fn concurrent_producers_lose_nothing<H: Harness>(h: H) {
    let consumer = h.consumer("c1").await;
    let mut tasks = Vec::new();
    for producer in 0..4u32 {
        let p = h.consumer(&format!("producer-{producer}")).await;
        tasks.push(tokio::spawn(async move {
            for chunk in 0..20 {
                p.enqueue(envelopes(producer, chunk * 5..chunk * 5 + 5))
                    .await
                    .unwrap();
            }
        }));
    }
    // Consume while they produce.
    let got = pull_n(&consumer, 400, 50, Duration::from_secs(20)).await;
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(got.len(), 400);
    let mut last = [None::<u32>; 4];
    let mut seen = HashSet::new();
    for d in &got {
        let it = decode(d);
        assert!(seen.insert((it.producer, it.seq)), "duplicate {it:?}");
        let prev = &mut last[it.producer as usize];
        assert!(
            prev.is_none_or(|p| p < it.seq),
            "producer {} out of order",
            it.producer
        );
        *prev = Some(it.seq);
    }
    complete_all(&consumer, got).await;
    assert_drained(&consumer).await;
}

async fn redelivery_after_a_failure<H: Harness>(h: H) {
    let a = h.consumer("a").await;
    a.enqueue(envelopes(0, 0..5)).await.unwrap();
    let first = pull_n(&a, 3, 3, Duration::from_secs(5)).await;
    assert_eq!(first.len(), 3);
    let failed: Vec<u32> = first.iter().map(|d| decode(d).seq).collect();
    h.crash(a, first).await;

    let b = h.consumer("b").await;
    let again = pull_n(&b, 5, 10, h.redelivery_wait()).await;
    assert_eq!(
        again.len(),
        5,
        "every event is delivered again or for the first time"
    );
    let mut redelivered = 0;
    for d in &again {
        let seq = decode(d).seq;
        if failed.contains(&seq) {
            assert!(
                d.attempt >= 2,
                "a redelivery says so in `attempt` (seq {seq}: {})",
                d.attempt
            );
            redelivered += 1;
        } else {
            assert_eq!(d.attempt, 1);
        }
    }
    assert_eq!(redelivered, 3);
    complete_all(&b, again).await;
    assert_drained(&b).await;
}

async fn closed_consumer_is_continued_by_a_new_one<H: Harness>(h: H) {
    let a = h.consumer("a").await;
    a.enqueue(envelopes(0, 0..30)).await.unwrap();
    let mut got = pull_n(&a, 10, 10, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 10);
    let unstarted = got.split_off(5);
    complete_all(&a, got).await; // 0..5 handled
    a.release(unstarted).await.unwrap(); // 5..10 given back, as a stopping spine does
    if h.durable() {
        a.close().await.unwrap();
    }
    drop(a);

    let b = h.consumer("b").await;
    let rest = pull_n(&b, 25, 25, Duration::from_secs(5)).await;
    let seqs: Vec<u32> = rest.iter().map(|d| decode(d).seq).collect();
    assert_eq!(
        seqs,
        (5..30).collect::<Vec<_>>(),
        "continues where the first left off, nothing handled twice"
    );
    complete_all(&b, rest).await;
    assert_drained(&b).await;
}

async fn two_groups_each_get_everything<H: Harness>(h: H) {
    let g1 = h
        .other_group("group-one")
        .await
        .expect("a backend with groups");
    let g2 = h
        .other_group("group-two")
        .await
        .expect("a backend with groups");
    g1.enqueue(envelopes(0, 0..50)).await.unwrap();
    for g in [&g1, &g2] {
        let got = pull_n(g, 50, 20, Duration::from_secs(5)).await;
        let seqs: Vec<u32> = got.iter().map(|d| decode(d).seq).collect();
        assert_eq!(seqs, (0..50).collect::<Vec<_>>());
        complete_all(g, got).await;
        assert_drained(g).await;
    }
}

async fn close_while_busy<H: Harness>(h: H) {
    let a = h.consumer("a").await;
    a.enqueue(envelopes(0, 0..4)).await.unwrap();
    let busy = pull_n(&a, 4, 4, Duration::from_secs(5)).await;
    assert_eq!(busy.len(), 4);
    // A pull waiting for more while the backend closes must end with `Closed`, not hang.
    let waiting = {
        let a = a.clone();
        tokio::spawn(async move { a.pull(100, Duration::from_secs(30)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    a.close().await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("a waiting pull ends on close")
        .unwrap();
    assert!(
        matches!(ended, Err(BackendError::Closed)),
        "waiting pull after close: {:?}",
        ended.as_ref().map(|batch| batch.len())
    );
    for d in busy {
        let late = a.complete(d.receipt, Completion::default()).await;
        assert!(
            matches!(late, Err(BackendError::Closed)),
            "complete after close fails: {late:?}"
        );
    }
    assert!(matches!(
        a.pull(1, Duration::ZERO).await,
        Err(BackendError::Closed)
    ));
    assert!(matches!(
        a.enqueue(envelopes(0, 99..100)).await,
        Err(BackendError::Closed)
    ));
    if h.durable() {
        // Nothing lost: a new consumer gets the four that were in flight.
        let b = h.consumer("b").await;
        let all = pull_n(&b, 4, 10, Duration::from_secs(5)).await;
        let mut seqs: Vec<u32> = all.iter().map(|d| decode(d).seq).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (0..4).collect::<Vec<_>>());
        assert!(
            all.iter().all(|d| d.attempt == 2),
            "they were delivered once before"
        );
        complete_all(&b, all).await;
        assert_drained(&b).await;
    }
}

async fn pull_timeouts_and_wakeups<H: Harness>(h: H) {
    let a = h.consumer("a").await;
    let started = Instant::now();
    assert!(a.pull(10, Duration::ZERO).await.unwrap().is_empty());
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "a zero timeout does not wait"
    );
    let started = Instant::now();
    assert!(a
        .pull(10, Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "waited {:?}",
        started.elapsed()
    );

    let producer = h.consumer("producer").await;
    let waiter = {
        let a = a.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let got = a.pull(10, Duration::from_secs(10)).await.unwrap();
            (got.len(), started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    producer.enqueue(envelopes(0, 0..1)).await.unwrap();
    let (n, waited) = waiter.await.unwrap();
    assert_eq!(n, 1);
    assert!(
        waited < Duration::from_secs(5),
        "a waiting pull wakes on arrival ({waited:?})"
    );
}

async fn pull_is_cancel_safe<H: Harness>(h: H) {
    let a = h.consumer("a").await;
    let producer = h.consumer("producer").await;
    for round in 0..5u32 {
        // Drop a waiting pull, then let an event arrive: the next pull must get it.
        let dropped = tokio::time::timeout(
            Duration::from_millis(30),
            a.pull(10, Duration::from_secs(5)),
        )
        .await;
        assert!(dropped.is_err(), "nothing to pull yet");
        producer
            .enqueue(envelopes(0, round..round + 1))
            .await
            .unwrap();
        let got = pull_n(&a, 1, 10, Duration::from_secs(5)).await;
        assert_eq!(
            got.len(),
            1,
            "round {round}: the event taken by a dropped pull is not lost"
        );
        assert_eq!(decode(&got[0]).seq, round);
        complete_all(&a, got).await;
    }
    assert_drained(&a).await;
}

async fn completion_stores_output_and_dead_letters<H: Harness>(h: H) {
    let a = h.consumer("a").await;
    a.enqueue(envelopes(0, 0..1)).await.unwrap();
    let d = pull_n(&a, 1, 1, Duration::from_secs(5))
        .await
        .pop()
        .unwrap();
    let input = d.envelope.clone();
    let emitted = envelopes(1, 0..3);
    let letter = DeadLetter {
        envelope: input.clone(),
        reason: DeadLetterReason::HandlerFailed {
            organ: "conformance_organ".into(),
            error: "boom".into(),
            attempts: 2,
        },
        at: chrono::Utc::now(),
    };
    a.complete(
        d.receipt,
        Completion {
            emitted: emitted.clone().into(),
            dead_letters: vec![letter],
            ..Completion::default()
        },
    )
    .await
    .unwrap();
    let out = pull_n(&a, 3, 10, Duration::from_secs(5)).await;
    let ids: Vec<_> = out.iter().map(|d| d.envelope.id()).collect();
    assert_eq!(
        ids,
        emitted.iter().map(|e| e.id()).collect::<Vec<_>>(),
        "emitted events follow, in order"
    );
    complete_all(&a, out).await;
    assert_drained(&a).await;
    assert_eq!(h.dead_letter_count().await, 1);
}

#[organ(listens_to = Item)]
fn relay(item: &Item) -> Option<Item> {
    (item.producer == 0).then(|| Item {
        producer: 1,
        seq: item.seq,
        text: item.text.clone(),
    })
}

async fn a_spine_runs_on_it<H: Harness>(h: H) {
    let b = h.consumer("spine").await;
    let spine = Spine::builder()
        .organ(relay)
        .backend(b)
        .batch_size(16)
        .build()
        .unwrap();
    spine
        .emit_all((0..40).map(|seq| item(0, seq)))
        .await
        .unwrap();
    let report = spine.run_until_idle().await.unwrap();
    assert_eq!(report.steps, 80);
    assert_eq!(report.succeeded, 80);
    assert_eq!(report.emitted, 40);
}

/// Scheduled events (from `schedule` and from a completion) are delivered once due and
/// never before; `next_due` tells when the earliest one is due.
async fn scheduled_events_wait_until_due<H: Harness>(h: H) {
    let a = h.consumer("a").await;
    let now = chrono::Utc::now();
    let due = |ms: i64| now + chrono::Duration::milliseconds(ms);
    let scheduled = |seq: u32, at| Scheduled {
        envelope: Envelope::new(item(5, seq)).into(),
        due: at,
    };
    a.schedule(vec![scheduled(1, due(600)), scheduled(0, due(-1000))])
        .await
        .unwrap();
    // The one already due comes at once (within the backend's scheduling period).
    let first = pull_n(&a, 1, 10, Duration::from_secs(5)).await;
    assert_eq!(decode(&first[0]).seq, 0);
    let next = a
        .next_due()
        .await
        .unwrap()
        .expect("one event still scheduled");
    assert!(
        (next - due(600)).num_milliseconds().abs() <= 1,
        "{next} vs {}",
        due(600)
    );
    // Its handling schedules another, 300 ms from now, atomically with the ack.
    let from_completion = due(300).max(chrono::Utc::now() + chrono::Duration::milliseconds(300));
    let receipt = first.into_iter().next().unwrap().receipt;
    let completion = Completion {
        scheduled: vec![scheduled(2, from_completion)],
        ..Completion::default()
    };
    a.complete(receipt, completion).await.unwrap();
    let mut arrivals = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while arrivals.len() < 2 && Instant::now() < deadline {
        for delivery in a.pull(10, Duration::from_millis(100)).await.unwrap() {
            arrivals.push((decode(&delivery).seq, chrono::Utc::now()));
            complete_all(&a, vec![delivery]).await;
        }
    }
    let seqs: Vec<u32> = arrivals.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, [2, 1], "delivered in due order, each once");
    assert!(arrivals[0].1 >= from_completion, "not before its time");
    assert!(arrivals[1].1 >= due(600), "not before its time");
    assert_eq!(a.next_due().await.unwrap(), None);
    assert_drained(&a).await;
}

/// Fails the first two tries of every even item: the retries must come back through the
/// backend, to this organ only, with the attempt number in the envelope.
#[derive(Default)]
struct Flaky {
    calls: std::sync::Mutex<Vec<(u32, u32)>>,
}

#[organ(listens_to = Item)]
impl Flaky {
    fn handle(&self, item: &Envelope<Item>) -> Result<(), std::io::Error> {
        self.calls.lock().unwrap().push((item.seq, item.attempt()));
        if item.seq.is_multiple_of(2) && item.attempt() < 3 {
            return Err(std::io::Error::other(format!(
                "try {} fails",
                item.attempt()
            )));
        }
        Ok(())
    }
}

#[derive(Default)]
struct Steady {
    calls: std::sync::atomic::AtomicU32,
}

#[organ(listens_to = Item)]
impl Steady {
    fn handle(&self, _: &Item) {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn retries_go_through_the_backend<H: Harness>(h: H) {
    let b = h.consumer("retries").await;
    let flaky = std::sync::Arc::new(Flaky::default());
    let steady = std::sync::Arc::new(Steady::default());
    let retry = RetryPolicy::new(3)
        .backoff(Duration::from_millis(100), Duration::from_millis(200))
        .jitter(false);
    let spine = Spine::builder()
        .organ(SharedOrgan(std::sync::Arc::clone(&steady)))
        .organ_with_policy(
            SharedOrgan(std::sync::Arc::clone(&flaky)),
            FailurePolicy::Retry(retry),
        )
        .backend(b)
        .build()
        .unwrap();
    spine
        .emit_all((0..10).map(|seq| item(0, seq)))
        .await
        .unwrap();
    let report = spine.run_until_idle().await.unwrap();
    assert_eq!(report.retried, 10, "5 even items × 2 retries");
    assert_eq!(report.failed, 0);
    assert_eq!(report.dead_lettered, 0);
    assert_eq!(report.steps, 20, "10 events + 10 retry deliveries");
    assert_eq!(
        steady.calls.load(std::sync::atomic::Ordering::SeqCst),
        10,
        "a retry is for the failing organ only"
    );
    let calls = flaky.calls.lock().unwrap().clone();
    for seq in 0..10u32 {
        let attempts: Vec<u32> = calls
            .iter()
            .filter(|(s, _)| *s == seq)
            .map(|(_, a)| *a)
            .collect();
        let expected: &[u32] = if seq % 2 == 0 { &[1, 2, 3] } else { &[1] };
        assert_eq!(attempts, expected, "item {seq}");
    }
    // The worker moved on: every odd item was handled before the first retry of item 0.
    let first_retry = calls.iter().position(|c| *c == (0, 2)).unwrap();
    assert!(
        calls[..first_retry]
            .iter()
            .filter(|(s, _)| s % 2 == 1)
            .count()
            == 5
    );
    assert_eq!(h.dead_letter_count().await, 0);
}

async fn exhausted_retries_are_dead_lettered<H: Harness>(h: H) {
    let b = h.consumer("exhausted").await;
    let flaky = std::sync::Arc::new(Flaky::default());
    let retry = RetryPolicy::new(2).backoff(Duration::from_millis(20), Duration::from_millis(20));
    let spine = Spine::builder()
        .organ(SharedOrgan(std::sync::Arc::clone(&flaky)))
        .failure_policy(FailurePolicy::Retry(retry))
        .backend(b)
        .build()
        .unwrap();
    spine.emit(item(0, 4)).await.unwrap();
    let report = spine.run_until_idle().await.unwrap();
    assert_eq!(
        (report.retried, report.failed, report.dead_lettered),
        (1, 1, 1)
    );
    assert_eq!(h.dead_letter_count().await, 1);
}

/// An event with a partition key (`order_key` below) and its place in that key's order.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "conformance.Keyed")]
struct Keyed {
    key: u32,
    seq: u32,
}

/// The partition key survives the backend: on a delivery, on an event emitted or
/// scheduled by a completion, and at the extremes of `u64`; unkeyed stays unkeyed.
async fn partition_key_survives_the_backend<H: Harness>(h: H) {
    use necrostack::partition::key_hash;
    let a = h.consumer("a").await;
    let extreme = |key: u64| {
        let mut json: serde_json::Value =
            serde_json::from_slice(&Envelope::new(item(2, 0)).to_json().unwrap()).unwrap();
        json["key"] = key.into();
        AnyEnvelope::from_json_value(json).unwrap()
    };
    let sent: Vec<AnyEnvelope> = vec![
        Envelope::new(item(0, 0)).with_partition_key("acc-1").into(),
        Envelope::new(item(0, 1)).into(),
        AnyEnvelope::from(Envelope::new(item(0, 2))).with_partition_key(&7u64),
        extreme(u64::MAX),
        extreme(0),
    ];
    let expected: Vec<_> = sent.iter().map(|e| (e.id(), e.partition_key())).collect();
    assert_eq!(
        expected.iter().map(|(_, key)| *key).collect::<Vec<_>>(),
        [
            Some(key_hash("acc-1")),
            None,
            Some(key_hash(&7u64)),
            Some(u64::MAX),
            Some(0)
        ]
    );
    a.enqueue(sent).await.unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < expected.len() && Instant::now() < deadline {
        // One at a time, completed at once: a backend that orders keys may hold back the
        // next event of a key until the previous one is completed.
        for d in a.pull(1, Duration::from_millis(100)).await.unwrap() {
            got.push((d.envelope.id(), d.envelope.partition_key()));
            complete_all(&a, vec![d]).await;
        }
    }
    got.sort_unstable();
    let mut expected = expected;
    expected.sort_unstable();
    assert_eq!(got, expected, "every key as it was sent");

    // From a completion: an emitted and a scheduled event, keyed.
    a.enqueue(envelopes(3, 0..1)).await.unwrap();
    let d = pull_n(&a, 1, 1, Duration::from_secs(5))
        .await
        .pop()
        .unwrap();
    let emitted: AnyEnvelope = Envelope::new(item(3, 1)).with_partition_key("out").into();
    let later: AnyEnvelope = Envelope::new(item(3, 2)).with_partition_key("later").into();
    let completion = Completion {
        emitted: vec![emitted].into(),
        scheduled: vec![Scheduled {
            envelope: later,
            due: chrono::Utc::now(),
        }],
        ..Completion::default()
    };
    a.complete(d.receipt, completion).await.unwrap();
    let out = pull_n(&a, 2, 10, Duration::from_secs(10)).await;
    let mut keys: Vec<(u32, Option<u64>)> = out
        .iter()
        .map(|d| (decode(d).seq, d.envelope.partition_key()))
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [(1, Some(key_hash("out"))), (2, Some(key_hash("later")))]
    );
    complete_all(&a, out).await;
    assert_drained(&a).await;
}

const KEYS: u32 = 50;
const SEQS: u32 = 40;

/// Records the order in which each key's events were handled, by which consumer. Even
/// sequence numbers take 2 ms, odd ones no time, so that two events of one key handled
/// at once (by two consumers) would finish out of order.
struct KeyedLog {
    consumer: usize,
    log: std::sync::Arc<std::sync::Mutex<Vec<(usize, u32, u32)>>>,
}

#[organ(listens_to = Keyed)]
impl KeyedLog {
    async fn handle(&self, event: &Keyed) {
        if event.seq.is_multiple_of(2) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        } else {
            tokio::task::yield_now().await;
        }
        self.log
            .lock()
            .unwrap()
            .push((self.consumer, event.key, event.seq));
    }
}

/// Per-key order across consumers: two spines (each handling many events at once) on
/// two consumers of one queue, 50 keys × 40 sequence numbers, emitted interleaved.
/// Every key's events are handled in order, each once, and both consumers take part.
/// For backends that promise it (see `suite!` below).
async fn keyed_order_across_consumers<H: Harness>(h: H) {
    let producer = Spine::builder()
        .order_key(|event: &Keyed| event.key)
        .backend(h.consumer("producer").await)
        .build()
        .unwrap();
    let events = (0..SEQS).flat_map(|seq| (0..KEYS).map(move |key| Keyed { key, seq }));
    producer.emit_all(events).await.unwrap();

    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut spines = Vec::new();
    for consumer in 0..2 {
        let spine = Spine::builder()
            .organ(KeyedLog {
                consumer,
                log: std::sync::Arc::clone(&log),
            })
            .order_key(|event: &Keyed| event.key)
            .concurrency(16)
            .batch_size(32)
            .poll_interval(Duration::from_millis(50))
            .backend(h.consumer(&format!("worker-{consumer}")).await)
            .build()
            .unwrap();
        spines.push(spine);
    }
    let total = (KEYS * SEQS) as usize;
    let watch = async {
        let deadline = Instant::now() + Duration::from_secs(40);
        while log.lock().unwrap().len() < total && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for spine in &spines {
            spine.stop_handle().stop();
        }
    };
    // The two spines run side by side in this task, each serving until stopped.
    let (first, second, ()) = tokio::join!(spines[0].run(), spines[1].run(), watch);
    first.unwrap();
    second.unwrap();
    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), total, "every event handled once");
    for key in 0..KEYS {
        let seqs: Vec<u32> = log
            .iter()
            .filter(|(_, k, _)| *k == key)
            .map(|(_, _, seq)| *seq)
            .collect();
        assert_eq!(seqs, (0..SEQS).collect::<Vec<_>>(), "key {key} in order");
    }
    for consumer in 0..2 {
        assert!(
            log.iter().any(|(c, _, _)| *c == consumer),
            "consumer {consumer} handled nothing: the test would not test sharing"
        );
    }
}

/// An organ shared with the test through an `Arc`, so the test can read its state.
struct SharedOrgan<O>(std::sync::Arc<O>);

impl<O: necrostack::Organ> necrostack::Organ for SharedOrgan<O> {
    type Event = O::Event;
    const NAME: &'static str = O::NAME;
    fn call<'a>(&'a self, event: &'a Envelope<O::Event>) -> necrostack::Handling<'a> {
        self.0.call(event)
    }
}

macro_rules! suite {
    ($module:ident, $harness:ty $(, $extra:ident)*) => {
        mod $module {
            use super::*;

            async fn run<F: std::future::Future<Output = ()>>(
                test: &str,
                body: impl FnOnce($harness) -> F,
            ) {
                if let Some(h) = <$harness as Harness>::new(test).await {
                    tokio::time::timeout(Duration::from_secs(60), body(h))
                        .await
                        .expect("test timed out");
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn many_events_payloads_intact() {
                run(
                    "many_events",
                    super::many_events_payloads_intact::<$harness>,
                )
                .await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fifo_for_one_consumer() {
                run("fifo", super::fifo_for_one_consumer::<$harness>).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_producers_lose_nothing() {
                run(
                    "producers",
                    super::concurrent_producers_lose_nothing::<$harness>,
                )
                .await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redelivery_after_a_failure() {
                run("redelivery", super::redelivery_after_a_failure::<$harness>).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn closed_consumer_is_continued_by_a_new_one() {
                run(
                    "continue",
                    super::closed_consumer_is_continued_by_a_new_one::<$harness>,
                )
                .await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn close_while_busy() {
                run("close_busy", super::close_while_busy::<$harness>).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn pull_timeouts_and_wakeups() {
                run("timeouts", super::pull_timeouts_and_wakeups::<$harness>).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn pull_is_cancel_safe() {
                run("cancel", super::pull_is_cancel_safe::<$harness>).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn completion_stores_output_and_dead_letters() {
                run(
                    "completion",
                    super::completion_stores_output_and_dead_letters::<$harness>,
                )
                .await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_spine_runs_on_it() {
                run("spine", super::a_spine_runs_on_it::<$harness>).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn scheduled_events_wait_until_due() {
                run("scheduled", super::scheduled_events_wait_until_due::<$harness>).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn retries_go_through_the_backend() {
                run("retries", super::retries_go_through_the_backend::<$harness>).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn exhausted_retries_are_dead_lettered() {
                run("exhausted", super::exhausted_retries_are_dead_lettered::<$harness>).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn partition_key_survives_the_backend() {
                run("key_survives", super::partition_key_survives_the_backend::<$harness>).await
            }

            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $extra() {
                    run(stringify!($extra), super::$extra::<$harness>).await
                }
            )*
        }
    };
}

// Tests beyond the common contract are listed after the harness, for the backends that
// promise them: `two_groups_each_get_everything` where a backend has consumer groups;
// `keyed_order_across_consumers` where it keeps per-key order across the consumers of
// one queue (the in-memory backend, and a partitioned stream; NATS has no partitions and
// does not promise it).
suite!(in_memory, Memory, keyed_order_across_consumers);
suite!(redis, Redis, two_groups_each_get_everything);
// Partitioned, with one partition: the suite's events are unkeyed, and only one partition
// keeps the whole stream in order (`tests/redis_partitions.rs` covers many partitions).
suite!(redis_partitioned, Redis<1>, two_groups_each_get_everything);

// Keyed order across consumers needs several partitions (one per consumer at least).
mod redis_partitioned_keyed {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keyed_order_across_consumers() {
        if let Some(h) = <Redis<4> as Harness>::new("keyed").await {
            tokio::time::timeout(
                Duration::from_secs(60),
                super::keyed_order_across_consumers(h),
            )
            .await
            .expect("test timed out");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keyed_order_across_consumers_on_a_cluster() {
        if let Some(h) = <RedisOnCluster<4> as Harness>::new("keyed").await {
            tokio::time::timeout(
                Duration::from_secs(60),
                super::keyed_order_across_consumers(h),
            )
            .await
            .expect("test timed out");
        }
    }
}
suite!(nats, Nats, two_groups_each_get_everything);

// The same suite on a Redis Cluster (three masters, a replica each). One cluster serves
// all of these tests (six servers per test would be too slow); each test has a stream of
// its own, hash-tagged so that the stream, its dead letters and its scheduled set share a
// slot.
#[path = "support/redis_cluster.rs"]
mod cluster_support;

/// `P` partitions on the cluster (each partition in a slot of its own), or one
/// hash-tagged stream for `P = 0`.
struct RedisOnCluster<const P: u32 = 0> {
    cluster: std::sync::Arc<cluster_support::RedisCluster>,
    stream: String,
}

impl<const P: u32> RedisOnCluster<P> {
    fn builder(
        &self,
        group: &str,
        consumer: &str,
    ) -> necrostack::backend::redis::RedisBackendBuilder {
        let builder = RedisBackend::builder(self.cluster.url())
            .stream(self.stream.clone())
            .group(group)
            .consumer(consumer)
            .claim_idle(Duration::from_millis(300))
            .claim_interval(Duration::from_millis(100))
            .block_time(Duration::from_millis(200));
        if P == 0 {
            builder
        } else {
            builder
                .partitions(P)
                .partition_lease(Duration::from_millis(900))
        }
    }
}

impl<const P: u32> Harness for RedisOnCluster<P> {
    type B = RedisBackend;

    async fn new(test: &str) -> Option<Self> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let cluster = tokio::task::spawn_blocking(cluster_support::shared)
            .await
            .expect("start the test cluster")?;
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(RedisOnCluster {
            cluster,
            // Partitions tag their keys themselves: a partitioned stream has no braces.
            stream: if P == 0 {
                format!("{{conformance:{test}:{n}}}")
            } else {
                format!("conformance:{test}:{n}")
            },
        })
    }

    async fn consumer(&self, name: &str) -> RedisBackend {
        self.builder("workers", name)
            .build()
            .await
            .expect("connect to the test cluster")
    }

    async fn other_group(&self, group: &str) -> Option<RedisBackend> {
        Some(self.builder(group, "solo").build().await.expect("connect"))
    }

    fn durable(&self) -> bool {
        true
    }

    async fn crash(
        &self,
        consumer: RedisBackend,
        deliveries: Vec<Delivery<necrostack::backend::redis::RedisReceipt>>,
    ) {
        // The process dies: no complete, no release, no close.
        drop(deliveries);
        drop(consumer);
    }

    fn redelivery_wait(&self) -> Duration {
        Duration::from_secs(3)
    }

    async fn dead_letter_count(&self) -> usize {
        let probe = self.consumer("probe").await;
        probe.dead_letters(10_000).await.unwrap().len()
    }
}

suite!(
    redis_cluster,
    RedisOnCluster,
    two_groups_each_get_everything
);
suite!(
    redis_cluster_partitioned,
    RedisOnCluster<1>,
    two_groups_each_get_everything
);
