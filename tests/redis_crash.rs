//! Crash test: several worker processes share one consumer group; some are killed with
//! SIGKILL mid-stream, again and again, and restarted (half under their old name, which
//! exercises re-reading one's own pending entries; half under a new one, which leaves
//! the dead consumer's entries to `XAUTOCLAIM`). In the end every job was handled at
//! least once, none was lost, and every job has exactly one output event.

#[path = "support/redis_server.rs"]
mod redis_server;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use necrostack::{AnyEnvelope, Backend, Envelope, RedisBackend};

#[path = "support/crash_events.rs"]
mod crash_events;

use crash_events::{Done, Job};

const STREAM: &str = "crash:events";
const JOBS: u32 = 1500;
const WORKERS: usize = 4;
const KILLS: usize = 8;

struct Worker {
    child: Child,
    name: String,
}

fn spawn(url: &str, name: &str, logs: &Path) -> Worker {
    let child = Command::new(env!("CARGO_BIN_EXE_necrostack-crash-worker"))
        .args([url, STREAM, name])
        .arg(logs.join(format!("{name}.log")))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start a crash worker");
    Worker {
        child,
        name: name.to_owned(),
    }
}

/// Every entry of the stream, decoded.
async fn read_stream(conn: &mut redis::aio::MultiplexedConnection) -> Vec<(String, AnyEnvelope)> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(STREAM)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .unwrap();
    reply
        .ids
        .into_iter()
        .map(|entry| {
            let json: Vec<u8> = entry.get("envelope").expect("envelope field");
            (
                entry.id,
                AnyEnvelope::from_json(&json).expect("valid envelope"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_lose_nothing_and_duplicate_no_output() {
    let Some(server) = redis_server::RedisServer::start() else {
        return;
    };
    let url = server.url();
    let logs: PathBuf = server.dir().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let started = Instant::now();

    let producer = RedisBackend::builder(url.clone())
        .stream(STREAM)
        .group("crash-workers")
        .build()
        .await
        .unwrap();
    let mut job_ids = HashMap::new();
    for chunk in 0..JOBS / 100 {
        let batch: Vec<AnyEnvelope> = (chunk * 100..chunk * 100 + 100)
            .map(|n| {
                let e = Envelope::new(Job { n });
                job_ids.insert(e.id(), n);
                e.into()
            })
            .collect();
        producer.enqueue(batch).await.unwrap();
    }

    let mut workers: Vec<Worker> = (0..WORKERS)
        .map(|i| spawn(&url, &format!("w{i}"), &logs))
        .collect();
    let mut conn = redis_server::connect(&url).await;

    // Kill workers while the jobs are being handled.
    let mut kills = 0;
    let mut generation = 0;
    while kills < KILLS {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let victim = kills % WORKERS;
        let old = &mut workers[victim];
        old.child.kill().unwrap(); // SIGKILL
        old.child.wait().unwrap();
        generation += 1;
        let name = if kills % 2 == 0 {
            old.name.clone() // restarts under its name: finishes its own pending first
        } else {
            format!("w{victim}-gen{generation}") // a new consumer: the old one's entries are claimed
        };
        workers[victim] = spawn(&url, &name, &logs);
        kills += 1;
    }

    // The kills must have landed mid-stream, not after the work was done.
    let outputs_after_kills = read_stream(&mut conn)
        .await
        .iter()
        .filter(|(_, e)| e.event_type() == "crash.Done")
        .count();
    assert!(
        outputs_after_kills < JOBS as usize,
        "the work finished before the last kill; make the jobs slower"
    );

    // Wait until every job has its output and nothing is pending.
    let deadline = Instant::now() + Duration::from_secs(90);
    let done = loop {
        let entries = read_stream(&mut conn).await;
        let done: Vec<Done> = entries
            .iter()
            .filter(|(_, e)| e.event_type() == "crash.Done")
            .map(|(_, e)| e.clone().decode::<Done>().unwrap().into_payload())
            .collect();
        let health = producer.health().await.unwrap();
        if done.len() >= JOBS as usize && health.pending == 0 && health.lag == Some(0) {
            break entries;
        }
        assert!(
            Instant::now() < deadline,
            "not finished: {} outputs of {JOBS}, {health:?}",
            done.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Stop the workers gracefully (SIGTERM): they drain and exit 0.
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

    // Exactly one output per job, caused by that job.
    let mut outputs: HashMap<u32, u32> = HashMap::new();
    for (_, envelope) in done.iter().filter(|(_, e)| e.event_type() == "crash.Done") {
        let cause = envelope.causation_id().expect("an output has a cause");
        let out = envelope.clone().decode::<Done>().unwrap().into_payload();
        assert_eq!(
            job_ids.get(&cause),
            Some(&out.n),
            "output linked to its job"
        );
        *outputs.entry(out.n).or_default() += 1;
    }
    for n in 0..JOBS {
        assert_eq!(
            outputs.get(&n),
            Some(&1),
            "job {n} has {:?} outputs",
            outputs.get(&n)
        );
    }

    // Every job was handled at least once (some more than once: killed mid-handling).
    let mut begun: HashMap<u32, u32> = HashMap::new();
    let mut handled: HashMap<u32, u32> = HashMap::new();
    for file in std::fs::read_dir(&logs).unwrap() {
        let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
        for line in text.lines() {
            let (what, n) = line.split_once(' ').expect("log line");
            let n: u32 = n.parse().unwrap();
            match what {
                "begin" => *begun.entry(n).or_default() += 1,
                "end" => *handled.entry(n).or_default() += 1,
                other => panic!("unexpected log line {other}"),
            }
        }
    }
    for n in 0..JOBS {
        assert!(
            handled.get(&n).is_some_and(|&c| c >= 1),
            "job {n} never handled"
        );
    }
    let repeats: u32 = handled.values().map(|c| c - 1).sum();
    let redelivered = begun.values().filter(|&&c| c > 1).count();
    assert!(
        redelivered > 0,
        "no kill interrupted a handling: the test proved nothing"
    );
    let letters = producer.dead_letters(10).await.unwrap();
    assert!(letters.is_empty(), "nothing dead-lettered: {letters:#?}");
    eprintln!(
        "crash test: {JOBS} jobs, {KILLS} kills, {outputs_after_kills} outputs when the last kill landed, {redelivered} jobs begun more than once, {repeats} handled more than once, {:?}",
        started.elapsed()
    );
}
