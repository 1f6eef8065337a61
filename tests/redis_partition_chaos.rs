//! Per-key order under chaos (issue 11): four worker processes share a stream of 16
//! partitions; they are SIGKILLed and restarted again and again, a fifth joins midway,
//! and on the Redis Cluster a master fails over to its replica. Every key's steps must be
//! handled in order — a step may be handled again after a kill (at least once), but no
//! step of a key is ever begun before every step before it was — nothing may be lost,
//! and every step has exactly one output (`parts.Echo`, written to another partition
//! through the outbox).

#[path = "support/redis_cluster.rs"]
mod redis_cluster;
#[path = "support/redis_server.rs"]
mod redis_server;

#[path = "support/partition_events.rs"]
mod partition_events;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use necrostack::{AnyEnvelope, Envelope, RedisBackend};
use partition_events::{Echo, Step};

const STREAM: &str = "chaos";
const PARTITIONS: u32 = 16;
const KEYS: u32 = 200;
const STEPS: u32 = 100;
const WORKERS: usize = 4;
const KILLS: usize = 6;
/// The workers' lease: a killed worker's partitions wait this long for a new owner.
const LEASE_MS: u64 = 1000;
/// How long each handling works, so that kills land while steps are in flight.
const WORK_MS: u64 = 2;

struct Worker {
    child: Child,
    name: String,
}

fn spawn(url: &str, name: &str, logs: &Path) -> Worker {
    let child = Command::new(env!("CARGO_BIN_EXE_necrostack-partition-worker"))
        .args([url, STREAM, name])
        .arg(logs.join(format!("{name}.log")))
        .args([PARTITIONS, LEASE_MS as u32, WORK_MS as u32].map(|n| n.to_string()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start a partition worker");
    Worker {
        child,
        name: name.to_owned(),
    }
}

/// Reads streams on a single Redis or on a cluster.
enum Reader {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Reader {
    async fn connect(url: &str, cluster: bool) -> Reader {
        if cluster {
            let client = redis::cluster::ClusterClient::new(vec![url]).unwrap();
            Reader::Cluster(client.get_async_connection().await.unwrap())
        } else {
            Reader::Single(redis_server::connect(url).await)
        }
    }

    /// Every entry of the stream `key`, decoded.
    async fn entries(&mut self, key: &str) -> Vec<AnyEnvelope> {
        let mut cmd = redis::cmd("XRANGE");
        cmd.arg(key).arg("-").arg("+");
        let reply: redis::RedisResult<redis::streams::StreamRangeReply> = match self {
            Reader::Single(c) => cmd.query_async(c).await,
            Reader::Cluster(c) => cmd.query_async(c).await,
        };
        // Mid-failover a read may fail: report nothing this time, look again later.
        let Ok(reply) = reply else {
            return Vec::new();
        };
        reply
            .ids
            .into_iter()
            .map(|entry| {
                let json: Vec<u8> = entry.get("envelope").expect("envelope field");
                AnyEnvelope::from_json(&json).expect("valid envelope")
            })
            .collect()
    }

    /// How many outputs every (key, step) has, over all partitions.
    async fn outputs(&mut self) -> HashMap<(u32, u32), u32> {
        let mut outputs = HashMap::new();
        for partition in 0..PARTITIONS {
            for envelope in self.entries(&format!("{STREAM}:p{partition}")).await {
                if let Ok(echo) = envelope.decode::<Echo>() {
                    *outputs.entry((echo.key, echo.seq)).or_default() += 1;
                }
            }
        }
        outputs
    }
}

/// Checks the order in the merged logs of every worker; returns the repeated handlings.
fn check_order(logs: &Path) -> u32 {
    let mut begun: Vec<(u128, u32, u32)> = Vec::new();
    for file in std::fs::read_dir(logs).unwrap() {
        let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
        for line in text.lines().filter(|l| l.starts_with("begin ")) {
            let words: Vec<&str> = line.split(' ').collect();
            let [_, key, seq, _attempt, at] = words[..] else {
                panic!("bad log line {line:?}");
            };
            begun.push((
                at.parse().unwrap(),
                key.parse().unwrap(),
                seq.parse().unwrap(),
            ));
        }
    }
    begun.sort_unstable();
    let mut next: HashMap<u32, u32> = HashMap::new();
    let mut again = 0;
    for (_, key, seq) in begun {
        let expected = next.entry(key).or_default();
        match seq.cmp(expected) {
            std::cmp::Ordering::Equal => *expected += 1,
            std::cmp::Ordering::Less => again += 1, // handled again after a kill
            std::cmp::Ordering::Greater => {
                panic!("key {key}: step {seq} begun before step {expected}")
            }
        }
    }
    for key in 0..KEYS {
        assert_eq!(next.get(&key), Some(&STEPS), "key {key}: steps missing");
    }
    again
}

/// The chaos run on the Redis at `url`; `fail_over` (cluster) runs once midway.
async fn chaos(url: String, cluster: bool, logs: PathBuf, fail_over: impl FnOnce()) {
    let started = Instant::now();
    let producer = RedisBackend::builder(url.clone())
        .stream(STREAM)
        .partitions(PARTITIONS)
        .build_producer()
        .await
        .unwrap();
    for seq in 0..STEPS {
        let batch: Vec<AnyEnvelope> = (0..KEYS)
            .map(|key| {
                Envelope::new(Step { key, seq })
                    .with_partition_key(&key)
                    .into()
            })
            .collect();
        producer.enqueue(batch).await.unwrap();
    }

    let mut workers: Vec<Worker> = (0..WORKERS)
        .map(|i| spawn(&url, &format!("w{i}"), &logs))
        .collect();
    let mut reader = Reader::connect(&url, cluster).await;
    let mut fail_over = Some(fail_over);
    for kill in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let victim = kill % WORKERS;
        let old = &mut workers[victim];
        old.child.kill().unwrap(); // SIGKILL
        old.child.wait().unwrap();
        // Half restart under their name (they find their own pending entries), half as
        // a new consumer (the dead one's partitions move when its lease runs out).
        let name = if kill % 2 == 0 {
            old.name.clone()
        } else {
            format!("w{victim}-{kill}")
        };
        workers[victim] = spawn(&url, &name, &logs);
        if kill == KILLS / 2 {
            workers.push(spawn(&url, "late", &logs)); // one more joins midway
        }
        if cluster && kill == KILLS / 2 + 1 {
            if let Some(fail_over) = fail_over.take() {
                tokio::task::block_in_place(fail_over);
            }
        }
    }
    let after_kills = reader.outputs().await.len();
    assert!(
        after_kills < (KEYS * STEPS) as usize,
        "the work finished before the last kill; make the steps slower"
    );

    let deadline = Instant::now() + Duration::from_secs(180);
    let outputs = loop {
        let outputs = reader.outputs().await;
        if outputs.len() == (KEYS * STEPS) as usize {
            break outputs;
        }
        assert!(
            Instant::now() < deadline,
            "not finished: {} of {} steps have an output",
            outputs.len(),
            KEYS * STEPS
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let finished = started.elapsed();

    for w in &workers {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(w.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }
    for w in &mut workers {
        let status = w.child.wait().unwrap();
        assert!(status.success(), "worker {} exited with {status}", w.name);
    }

    for key in 0..KEYS {
        for seq in 0..STEPS {
            assert_eq!(outputs.get(&(key, seq)), Some(&1), "outputs of {key}/{seq}");
        }
    }
    let again = check_order(&logs);
    let letters = reader.entries(&format!("{STREAM}:dlq")).await;
    assert!(letters.is_empty(), "nothing dead-lettered: {letters:#?}");
    eprintln!(
        "partition chaos on {}: {KEYS} keys x {STEPS} steps, {PARTITIONS} partitions, {WORKERS} workers + 1 joining, {KILLS} SIGKILLs, {} master failover; {after_kills} steps had their output when the last kill landed; {again} handlings repeated; every output after {finished:.1?}",
        if cluster { "a 3-master Redis Cluster" } else { "one Redis" },
        u32::from(fail_over.is_none()),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_key_order_survives_kills_and_a_join_on_one_redis() {
    let Some(server) = redis_server::RedisServer::start() else {
        return; // skipped, with a message (or a failure under NECROSTACK_REQUIRE_REDIS=1)
    };
    let logs = server.dir().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    chaos(server.url(), false, logs, || {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_key_order_survives_kills_a_join_and_a_failover_on_a_cluster() {
    let Some(mut cluster) = tokio::task::spawn_blocking(redis_cluster::RedisCluster::start)
        .await
        .unwrap()
    else {
        return; // skipped, with a message (or a failure under NECROSTACK_REQUIRE_REDIS=1)
    };
    let logs =
        std::env::temp_dir().join(format!("necrostack-chaos-{}", necrostack::Uuid::now_v7()));
    std::fs::create_dir_all(&logs).unwrap();
    let url = cluster.url();
    chaos(url, true, logs.clone(), || {
        cluster.fail_over_master_of(&format!("{STREAM}:p3"));
    })
    .await;
    std::fs::remove_dir_all(logs).ok();
}
