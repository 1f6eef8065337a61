//! NATS fleet tests: worker processes share one durable consumer while
//! * some are killed with SIGKILL mid-stream, again and again, and restarted;
//! * the server (file storage) is killed and restarted under them;
//! * one node of a 3-node cluster (stream with 3 replicas) is killed.
//!
//! In each, every job is handled at least once, none is lost, and every job has exactly
//! one output event (the outputs of a repeated handling carry the same `Nats-Msg-Id` and
//! are dropped by the server). An extra consumer, `audit`, reads every message of the
//! stream to count the outputs.

#[path = "support/nats_server.rs"]
mod nats_server;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use necrostack::{AnyEnvelope, Backend, Envelope, NatsBackend, Uuid};

#[path = "support/crash_events.rs"]
mod crash_events;

use crash_events::{Done, Job};

const STREAM: &str = "FLEET";

struct Worker {
    child: Child,
}

impl Worker {
    fn spawn(urls: &str, logs: &Path, replicas: usize, name: &str) -> Worker {
        let child = Command::new(env!("CARGO_BIN_EXE_necrostack-nats-crash-worker"))
            .args([urls, STREAM])
            .arg(logs.join(format!("{name}.log")))
            .arg(replicas.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start a NATS crash worker");
        Worker { child }
    }

    fn kill(&mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    /// SIGTERM: the worker drains and must exit 0.
    fn stop(mut self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "a worker exited with {status}");
    }
}

fn builder(
    urls: &str,
    consumer: &str,
    replicas: usize,
) -> necrostack::backend::nats::NatsBackendBuilder {
    NatsBackend::builder(urls)
        .stream(STREAM)
        .consumer(consumer)
        .replicas(replicas)
        .ack_wait(Duration::from_secs(1))
        .max_wait(Duration::from_millis(200))
        .reconnect_timeout(Duration::from_secs(20))
        // The test's own reads notice a killed node sooner.
        .response_timeout(Duration::from_secs(1))
}

/// Enqueues `jobs` jobs; returns job id → n.
async fn enqueue_jobs(producer: &NatsBackend, jobs: u32) -> HashMap<Uuid, u32> {
    let mut ids = HashMap::new();
    for chunk in 0..jobs / 100 {
        let batch: Vec<AnyEnvelope> = (chunk * 100..chunk * 100 + 100)
            .map(|n| {
                let e = Envelope::new(Job { n });
                ids.insert(e.id(), n);
                e.into()
            })
            .collect();
        producer.enqueue(batch).await.unwrap();
    }
    ids
}

/// Reads the outputs with the `audit` consumer, counting them per job.
struct Audit {
    backend: NatsBackend,
    outputs: HashMap<u32, u32>,
}

impl Audit {
    async fn new(urls: &str, replicas: usize) -> Audit {
        let backend = builder(urls, "audit", replicas).build().await.unwrap();
        Audit {
            backend,
            outputs: HashMap::new(),
        }
    }

    /// Reads what arrived; returns how many outputs were seen so far.
    async fn read(&mut self, job_ids: &HashMap<Uuid, u32>) -> usize {
        let Ok(batch) = self.backend.pull(500, Duration::from_millis(100)).await else {
            return self.total();
        };
        for delivery in batch {
            let envelope = delivery.envelope.clone();
            if envelope.event_type() == "crash.Done" {
                let cause = envelope.causation_id().expect("an output has a cause");
                let done = envelope.decode::<Done>().unwrap().into_payload();
                assert_eq!(
                    job_ids.get(&cause),
                    Some(&done.n),
                    "output linked to its job"
                );
                *self.outputs.entry(done.n).or_default() += 1;
            }
            let _ = self
                .backend
                .complete(delivery.receipt, Default::default())
                .await;
        }
        self.total()
    }

    fn total(&self) -> usize {
        self.outputs.values().map(|&c| c as usize).sum()
    }

    /// Waits until every job has its output and the workers hold nothing.
    async fn wait_all(
        &mut self,
        job_ids: &HashMap<Uuid, u32>,
        producer: &NatsBackend,
        limit: Duration,
    ) {
        let deadline = Instant::now() + limit;
        loop {
            let seen = self.read(job_ids).await;
            let idle = producer
                .health()
                .await
                .is_ok_and(|h| h.pending == 0 && h.ack_pending == 0);
            if seen >= job_ids.len() && idle {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "not finished: {seen} outputs of {}",
                job_ids.len()
            );
        }
        // Anything duplicated would arrive now.
        let settle = Instant::now() + Duration::from_millis(500);
        while Instant::now() < settle {
            self.read(job_ids).await;
        }
    }

    fn assert_exactly_one_each(&self, jobs: u32) {
        for n in 0..jobs {
            assert_eq!(
                self.outputs.get(&n),
                Some(&1),
                "job {n} has {:?} outputs",
                self.outputs.get(&n)
            );
        }
    }
}

/// How often each job was begun and finished, from the workers' logs.
fn handlings(logs: &Path, jobs: u32) -> (usize, u32) {
    let mut begun: HashMap<u32, u32> = HashMap::new();
    let mut handled: HashMap<u32, u32> = HashMap::new();
    for file in std::fs::read_dir(logs).unwrap() {
        let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
        for line in text.lines() {
            let Some((what, n)) = line.split_once(' ') else {
                continue; // a line cut by a kill
            };
            let Ok(n) = n.parse::<u32>() else { continue };
            match what {
                "begin" => *begun.entry(n).or_default() += 1,
                "end" => *handled.entry(n).or_default() += 1,
                _ => {}
            }
        }
    }
    for n in 0..jobs {
        assert!(
            handled.get(&n).is_some_and(|&c| c >= 1),
            "job {n} never handled"
        );
    }
    let begun_twice = begun.values().filter(|&&c| c > 1).count();
    let repeats = handled.values().map(|c| c - 1).sum();
    (begun_twice, repeats)
}

/// Handlings finished so far (`end` lines in the workers' logs).
fn finished(logs: &Path) -> usize {
    std::fs::read_dir(logs)
        .unwrap()
        .map(|file| {
            let text = std::fs::read_to_string(file.unwrap().path()).unwrap_or_default();
            text.lines().filter(|l| l.starts_with("end ")).count()
        })
        .sum()
}

/// When a worker last wrote to its log.
fn last_write(logs: &Path) -> std::time::SystemTime {
    std::fs::read_dir(logs)
        .unwrap()
        .filter_map(|file| file.ok()?.metadata().ok()?.modified().ok())
        .max()
        .unwrap_or(std::time::UNIX_EPOCH)
}

fn logs_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("necrostack-nats-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_lose_nothing_and_duplicate_no_output() {
    const JOBS: u32 = 1000;
    const WORKERS: usize = 3;
    const KILLS: usize = 6;
    let Some(server) = nats_server::NatsServer::start() else {
        return;
    };
    let url = server.url();
    let logs = logs_dir("crash");
    let started = Instant::now();
    let producer = builder(&url, "crash-workers", 1).build().await.unwrap();
    let mut audit = Audit::new(&url, 1).await;
    let job_ids = enqueue_jobs(&producer, JOBS).await;

    let mut workers: Vec<Worker> = (0..WORKERS)
        .map(|i| Worker::spawn(&url, &logs, 1, &format!("w{i}")))
        .collect();
    for kill in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let victim = kill % WORKERS;
        workers[victim].kill();
        workers[victim] = Worker::spawn(&url, &logs, 1, &format!("w{victim}-gen{kill}"));
    }
    let at_last_kill = finished(&logs);
    assert!(
        at_last_kill < JOBS as usize,
        "the work finished before the last kill; make the jobs slower"
    );
    audit
        .wait_all(&job_ids, &producer, Duration::from_secs(60))
        .await;
    for w in workers {
        w.stop();
    }
    audit.assert_exactly_one_each(JOBS);
    let (begun_twice, repeats) = handlings(&logs, JOBS);
    assert!(
        begun_twice > 0,
        "no kill interrupted a handling: the test proved nothing"
    );
    let health = producer.health().await.unwrap();
    assert_eq!(health.dead_letters, 0, "nothing dead-lettered");
    eprintln!(
        "NATS crash test: {JOBS} jobs, {KILLS} kills, {at_last_kill} handlings finished when the last kill landed, {begun_twice} jobs begun more than once, {repeats} handled more than once, {:?}",
        started.elapsed()
    );
    let _ = std::fs::remove_dir_all(&logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_mid_stream_loses_nothing() {
    const JOBS: u32 = 600;
    let Some(mut server) = nats_server::NatsServer::start() else {
        return;
    };
    let url = server.url();
    let logs = logs_dir("restart");
    let started = Instant::now();
    let producer = builder(&url, "crash-workers", 1).build().await.unwrap();
    let mut audit = Audit::new(&url, 1).await;
    let job_ids = enqueue_jobs(&producer, JOBS).await;
    let workers: Vec<Worker> = (0..2)
        .map(|i| Worker::spawn(&url, &logs, 1, &format!("w{i}")))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = finished(&logs);
    server.kill(); // SIGKILL: file storage, no shutdown
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.restart();
    audit
        .wait_all(&job_ids, &producer, Duration::from_secs(60))
        .await;
    for w in workers {
        w.stop();
    }
    assert!(
        before < JOBS as usize,
        "the work finished before the restart"
    );
    audit.assert_exactly_one_each(JOBS);
    let (begun_twice, repeats) = handlings(&logs, JOBS);
    eprintln!(
        "NATS restart test: {JOBS} jobs, {before} handlings finished before the kill, {begun_twice} jobs begun more than once, {repeats} handled more than once, {:?}",
        started.elapsed()
    );
    let _ = std::fs::remove_dir_all(&logs);
}

/// The name of the server leading the stream, from `STREAM.INFO`.
async fn stream_leader(urls: &str) -> Option<String> {
    let client = async_nats::connect(urls.split(',').collect::<Vec<_>>().as_slice())
        .await
        .ok()?;
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(STREAM).await.ok()?;
    let info = stream.info().await.ok()?;
    info.cluster.as_ref()?.leader.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_node_lost_mid_stream_loses_nothing() {
    const JOBS: u32 = 600;
    let Some(mut cluster) = nats_server::NatsCluster::start() else {
        return;
    };
    let urls = cluster.urls();
    let logs = logs_dir("cluster");
    let started = Instant::now();
    let producer = builder(&urls, "crash-workers", 3).build().await.unwrap();
    let ready = started.elapsed();
    let mut audit = Audit::new(&urls, 3).await;
    let job_ids = enqueue_jobs(&producer, JOBS).await;
    let workers: Vec<Worker> = (0..2)
        .map(|i| Worker::spawn(&urls, &logs, 3, &format!("w{i}")))
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before = finished(&logs);
    // Kill the stream's leader: the hardest node to lose.
    let leader = stream_leader(&urls)
        .await
        .unwrap_or_else(|| "n0".to_owned());
    let index: usize = leader.trim_start_matches('n').parse().unwrap_or(0);
    cluster.nodes[index].kill();
    let killed = std::time::SystemTime::now();
    audit
        .wait_all(&job_ids, &producer, Duration::from_secs(60))
        .await;
    let recovered = last_write(&logs).duration_since(killed).unwrap_or_default();
    for w in workers {
        w.stop();
    }
    assert!(
        before < JOBS as usize,
        "the work finished before the node was lost"
    );
    audit.assert_exactly_one_each(JOBS);
    let (begun_twice, repeats) = handlings(&logs, JOBS);
    eprintln!(
        "NATS cluster test: {JOBS} jobs, leader {leader} killed after {before} handlings, {begun_twice} jobs begun more than once, {repeats} handled more than once; cluster and streams ready in {ready:?}, the last handling ended {recovered:?} after the kill; {:?} in all",
        started.elapsed()
    );
    let _ = std::fs::remove_dir_all(&logs);
}
