//! A real flow that makes dead letters, and the `necrostack` binary run as a process.
#![allow(dead_code)]

use std::collections::HashSet;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use necrostack::{organ, Backend, Envelope, Event, FailurePolicy, RedisBackend, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "cli.Order")]
pub struct Order {
    pub n: u32,
}

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "cli.Refund")]
pub struct Refund {
    pub n: u32,
}

/// Whether the cause of the failures is fixed, and which event ids were handled well.
#[derive(Clone, Default)]
pub struct World {
    pub fixed: Arc<AtomicBool>,
    pub handled: Arc<Mutex<Vec<String>>>,
}

impl World {
    pub fn fix(&self) {
        self.fixed.store(true, Ordering::SeqCst);
    }

    fn outcome(&self, id: String) -> Result<(), std::io::Error> {
        if !self.fixed.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("the payment provider is down"));
        }
        self.handled.lock().unwrap().push(id);
        Ok(())
    }

    pub fn handled(&self) -> Vec<String> {
        self.handled.lock().unwrap().clone()
    }
}

/// Fails every order until the world is fixed.
pub struct Charge(pub World);

#[organ(listens_to = Order)]
impl Charge {
    fn handle(&self, order: &Envelope<Order>) -> Result<(), std::io::Error> {
        self.0.outcome(order.id().to_string())
    }
}

/// Fails every refund until the world is fixed.
pub struct Refunder(pub World);

#[organ(listens_to = Refund)]
impl Refunder {
    fn handle(&self, refund: &Envelope<Refund>) -> Result<(), std::io::Error> {
        self.0.outcome(refund.id().to_string())
    }
}

pub async fn backend(url: &str, stream: &str) -> RedisBackend {
    RedisBackend::builder(url)
        .stream(stream)
        .consumer("worker-1")
        .block_time(Duration::from_millis(50))
        .build()
        .await
        .expect("backend")
}

/// Runs the flow until idle on `stream`: each event fails (dead-lettered at once) unless
/// `world` is fixed. Emits `orders` orders and `refunds` refunds first.
pub async fn run_flow(url: &str, stream: &str, world: &World, orders: u32, refunds: u32) {
    run_flow_with(
        url,
        stream,
        world,
        orders,
        refunds,
        FailurePolicy::DeadLetter,
    )
    .await;
}

/// [`run_flow`] under another failure policy.
pub async fn run_flow_with(
    url: &str,
    stream: &str,
    world: &World,
    orders: u32,
    refunds: u32,
    policy: FailurePolicy,
) {
    let backend = backend(url, stream).await;
    let spine = Spine::builder()
        .organ(Charge(world.clone()))
        .organ(Refunder(world.clone()))
        .failure_policy(policy)
        .backend(backend.clone())
        .max_steps(100_000)
        .build()
        .expect("spine");
    if orders > 0 {
        spine
            .emit_all((0..orders).map(|n| Order { n }))
            .await
            .unwrap();
    }
    if refunds > 0 {
        spine
            .emit_all((0..refunds).map(|n| Refund { n }))
            .await
            .unwrap();
    }
    spine.run_until_idle().await.expect("run");
    backend.close().await.expect("close");
}

/// Runs `necrostack --redis URL --stream STREAM ARGS...`.
pub fn cli(url: &str, stream: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_necrostack"))
        .env_remove("REDIS_URL")
        .args(["--redis", url, "--stream", stream])
        .args(args)
        .output()
        .expect("run necrostack")
}

/// Runs the CLI, expects success, returns stdout.
pub fn ok(url: &str, stream: &str, args: &[&str]) -> String {
    let out = cli(url, stream, args);
    assert!(
        out.status.success(),
        "necrostack {args:?} failed ({:?}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs the CLI with `--format json`, expects success, parses stdout.
pub fn json(url: &str, stream: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    let text = ok(url, stream, &all);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

pub async fn conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

pub async fn xlen(url: &str, key: &str) -> u64 {
    redis::cmd("XLEN")
        .arg(key)
        .query_async(&mut conn(url).await)
        .await
        .unwrap()
}

/// The (replayed_from, event id) of every stream entry that came from a replay.
pub async fn replayed_entries(url: &str, stream: &str) -> Vec<(String, String)> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(&mut conn(url).await)
        .await
        .unwrap();
    reply
        .ids
        .into_iter()
        .filter_map(|entry| {
            let from: String = entry.get("replayed_from")?;
            let json: Vec<u8> = entry.get("envelope").expect("envelope field");
            let envelope = necrostack::AnyEnvelope::from_json(&json).expect("valid envelope");
            assert_eq!(envelope.attempt(), 1);
            assert_eq!(envelope.retry_organ(), None);
            Some((from, envelope.id().to_string()))
        })
        .collect()
}

/// The event ids of a JSON page of dead letters.
pub fn event_ids(page: &serde_json::Value) -> HashSet<String> {
    page["letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["event_id"].as_str().unwrap().to_owned())
        .collect()
}
