//! `RedisBackend` on a Redis Cluster of three masters with a replica each: a pipeline of
//! 2 000 events with emitted children handled through a spine (each output exactly
//! once), a master failed over in the middle of a run (nothing lost, outputs exactly
//! once, `run()` goes on), and a stream whose keys hash to different slots refused at
//! `build()` with the fix in the error; and `rediss://` to a cluster serving TLS only.
//!
//! The clusters are started from `redis-server` processes by `support/redis_cluster.rs`;
//! the failover and TLS tests have one of their own each, the others share one.

#[path = "support/redis_cluster.rs"]
mod redis_cluster;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use necrostack::backend::redis::RedisBackendBuilder;
use necrostack::{organ, BackendError, Envelope, Event, RedisBackend, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "cluster.Order")]
struct Order {
    n: u32,
}

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "cluster.Shipped")]
struct Shipped {
    n: u32,
}

/// Every handling, in order (a number twice means it was handled twice).
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u32>>>);

impl Log {
    fn push(&self, n: u32) {
        self.0.lock().unwrap().push(n);
    }

    fn total(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn distinct(&self) -> usize {
        self.0.lock().unwrap().iter().collect::<HashSet<_>>().len()
    }
}

/// Handles an order and emits its shipment.
struct Ship {
    orders: Log,
}

#[organ(listens_to = Order)]
impl Ship {
    fn handle(&self, order: &Order) -> Shipped {
        self.orders.push(order.n);
        Shipped { n: order.n }
    }
}

/// Records shipments.
struct Deliver {
    shipped: Log,
}

#[organ(listens_to = Shipped)]
impl Deliver {
    fn handle(&self, shipped: &Shipped) {
        self.shipped.push(shipped.n);
    }
}

const EVENTS: u32 = 2_000;
/// Batches of 20 orders enqueued while the failover test's master is dead.
const LATE_BATCHES: u32 = 10;

fn builder(url: &str, stream: &str) -> RedisBackendBuilder {
    RedisBackend::builder(url)
        .stream(stream)
        .consumer("worker-1")
        .claim_idle(Duration::from_secs(1))
        .claim_interval(Duration::from_millis(200))
        .block_time(Duration::from_millis(200))
        .response_timeout(Duration::from_secs(2))
}

fn spine(backend: RedisBackend, orders: &Log, shipped: &Log) -> Spine<RedisBackend> {
    Spine::builder()
        .organ(Ship {
            orders: orders.clone(),
        })
        .organ(Deliver {
            shipped: shipped.clone(),
        })
        .backend(backend)
        .poll_interval(Duration::from_millis(100))
        .build()
        .expect("a valid spine")
}

/// `XLEN` of a stream, through any node.
fn stream_length(cluster: &redis_cluster::RedisCluster, key: &str) -> u64 {
    let out = cluster.cli(&["XLEN", key]);
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("XLEN {key}: {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_on_a_cluster_writes_each_output_once() {
    let Some(cluster) = redis_cluster::shared() else {
        return;
    };
    let stream = "{cluster:pipeline}";
    let backend = builder(&cluster.url(), stream).build().await.unwrap();
    let (orders, shipped) = (Log::default(), Log::default());
    let spine = spine(backend.clone(), &orders, &shipped);
    spine
        .emit_all((0..EVENTS).map(|n| Order { n }))
        .await
        .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(40), spine.run_until_idle())
        .await
        .expect("the run ended")
        .unwrap();
    assert_eq!((orders.total(), orders.distinct()), (2_000, 2_000));
    assert_eq!((shipped.total(), shipped.distinct()), (2_000, 2_000));
    assert_eq!(report.failed, 0);
    assert_eq!(
        stream_length(&cluster, stream),
        4_000,
        "2 000 orders and exactly one shipment each"
    );
    assert_eq!(backend.pending_count().await.unwrap(), 0);
    assert!(backend.dead_letters(10).await.unwrap().is_empty());
    // The operator's side works on a cluster too.
    let admin = builder(&cluster.url(), stream).build_admin().await.unwrap();
    let stats = admin.stats().await.unwrap();
    assert_eq!(stats.streams.len(), 1);
    assert_eq!(stats.streams[0].length, 4_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_failover_mid_run_loses_nothing_and_duplicates_no_output() {
    let Some(mut cluster) = redis_cluster::RedisCluster::start() else {
        return;
    };
    let stream = "{cluster:failover}";
    let backend = builder(&cluster.url(), stream).build().await.unwrap();
    let (orders, shipped) = (Log::default(), Log::default());
    let spine = spine(backend.clone(), &orders, &shipped);
    spine
        .emit_all((0..EVENTS).map(|n| Order { n }))
        .await
        .unwrap();
    let stop = spine.stop_handle();
    let running = tokio::spawn(async move { spine.run().await });

    // Mid-run: a quarter of the orders handled, then the stream's master dies.
    let deadline = Instant::now() + Duration::from_secs(50);
    while orders.distinct() < 500 {
        assert!(Instant::now() < deadline, "the run did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let producer = builder(&cluster.url(), stream)
        .build_producer()
        .await
        .unwrap();
    let handled_before = orders.distinct();
    let started = Instant::now();
    let (cluster, killed) = tokio::task::spawn_blocking(move || {
        let killed = cluster.kill_master_of(stream);
        (cluster, killed)
    })
    .await
    .unwrap();
    assert!(
        handled_before < 2_000,
        "the failover came after the run had finished"
    );
    // New orders while the master is dead: each batch is stored once, after the failover.
    let enqueueing = tokio::spawn(async move {
        for batch in 0..LATE_BATCHES {
            let first = EVENTS + batch * 20;
            producer
                .enqueue(
                    (first..first + 20)
                        .map(|n| Envelope::new(Order { n }).into())
                        .collect(),
                )
                .await
                .expect("an enqueue during the failover succeeds");
        }
    });
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.wait_for_failover(&killed);
        cluster
    })
    .await
    .unwrap();
    enqueueing.await.unwrap();

    let total = (EVENTS + LATE_BATCHES * 20) as usize;
    while orders.distinct() < total || shipped.distinct() < total {
        assert!(
            Instant::now() < deadline,
            "after the failover only {} orders and {} shipments of {total} were handled",
            orders.distinct(),
            shipped.distinct()
        );
        assert!(!running.is_finished(), "run() ended during the failover");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let recovered = started.elapsed();
    // Give an acknowledged-but-lost completion time to come back and be handled again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!running.is_finished(), "run() ended after the failover");
    stop.stop();
    running.await.unwrap().expect("run() ends cleanly on stop");

    assert_eq!(
        stream_length(&cluster, stream),
        2 * total as u64,
        "every order stored once and exactly one shipment each, across the failover"
    );
    assert_eq!(backend.pending_count().await.unwrap(), 0);
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!(
            "failover: {} of 2000 orders handled before; all {total} handled {recovered:?} after the kill; {} order and {} shipment re-handlings; {} reconnections\n",
            handled_before,
            orders.total() - total,
            shipped.total() - total,
            backend.metrics().reconnections
        )
        .as_bytes(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_without_a_hash_tag_is_a_config_error_on_a_cluster() {
    let Some(cluster) = redis_cluster::shared() else {
        return;
    };
    for stream in ["orders", necrostack::backend::redis::DEFAULT_STREAM] {
        let error = builder(&cluster.url(), stream)
            .build()
            .await
            .expect_err("keys in different slots are refused");
        let text = error.to_string();
        assert!(matches!(error, BackendError::Other(_)), "{text}");
        assert!(
            text.contains("invalid Redis backend configuration")
                && text.contains(&format!(".stream(\"{{{stream}}}\")"))
                && text.contains(".partitions(n)"),
            "{text}"
        );
    }
    // The producer side is checked the same way.
    let error = builder(&cluster.url(), "orders")
        .build_producer()
        .await
        .expect_err("a producer of a stream in different slots is refused");
    assert!(error.to_string().contains("hash slot"), "{error}");
    // With the tag, the same stream works.
    let backend = builder(&cluster.url(), "{orders}").build().await.unwrap();
    assert!(backend.health().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_reaches_a_tls_cluster() {
    let Some(cluster) = redis_cluster::RedisCluster::start_tls() else {
        return;
    };
    let stream = "{cluster:tls}";
    let backend = builder(&cluster.tls_url(), stream)
        .tls_root_certificate(cluster.ca_certificate())
        .build()
        .await
        .unwrap();
    let (orders, shipped) = (Log::default(), Log::default());
    let spine = spine(backend, &orders, &shipped);
    spine.emit_all((0..50).map(|n| Order { n })).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), spine.run_until_idle())
        .await
        .expect("the run ended")
        .unwrap();
    assert_eq!((orders.distinct(), shipped.distinct()), (50, 50));
    assert_eq!(stream_length(&cluster, stream), 100);
    // Without the private CA the certificate is refused.
    let error = builder(&cluster.tls_url(), stream)
        .build()
        .await
        .expect_err("an unknown CA is refused");
    assert!(error.to_string().contains("cannot reach Redis"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_refuses_info_is_still_found_to_be_a_cluster() {
    let Some(cluster) = redis_cluster::shared() else {
        return;
    };
    // A user without INFO, on every node (ACLs are per node).
    for reply in cluster.on_every_node(&[
        "ACL", "SETUSER", "no-info", "on", ">secret", "~*", "&*", "+@all", "-info",
    ]) {
        assert_eq!(reply.trim(), "OK");
    }
    // A stream served by another master than the seed's: taken for a single Redis, the
    // backend would get MOVED for every command.
    let stream = (0..)
        .map(|n| format!("{{cluster:no-info:{n}}}"))
        .find(|s| cluster.master_of(s) != cluster.seed_port())
        .expect("some slot lives on another master");
    let url = format!("redis://no-info:secret@127.0.0.1:{}", cluster.seed_port());
    let backend = builder(&url, &stream)
        .reconnect_timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    let (orders, shipped) = (Log::default(), Log::default());
    let spine = spine(backend, &orders, &shipped);
    spine.emit_all((0..10).map(|n| Order { n })).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), spine.run_until_idle())
        .await
        .expect("the run ended")
        .unwrap();
    assert_eq!((orders.distinct(), shipped.distinct()), (10, 10));
}
