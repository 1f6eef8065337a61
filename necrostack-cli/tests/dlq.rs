//! `necrostack dlq` and `stats` as a process, against a throwaway `redis-server` holding
//! dead letters made by a real flow (organs failing under `FailurePolicy::DeadLetter`).

#[path = "../../tests/support/redis_server.rs"]
mod redis_server;

#[path = "support/flow.rs"]
mod flow;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use flow::{cli, event_ids, json, ok, replayed_entries, run_flow, run_flow_with, xlen, World};
use necrostack::{FailurePolicy, RetryPolicy};
use redis_server::RedisServer;

const DLQ_SUFFIX: &str = ":dlq";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_filters_and_show() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    let stream = "cli:list";
    run_flow(&url, stream, &World::default(), 25, 5).await;
    assert_eq!(xlen(&url, &format!("{stream}{DLQ_SUFFIX}")).await, 30);

    // Three pages of ten, in order, each starting after the last one's end.
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut args = vec!["dlq", "list", "--limit", "10"];
        if let Some(a) = &after {
            args.extend(["--after", a.as_str()]);
        }
        let page = json(&url, stream, &args);
        pages += 1;
        for letter in page["letters"].as_array().unwrap() {
            ids.push(letter["id"].as_str().unwrap().to_owned());
            assert_eq!(letter["reason_kind"], "handler_failed");
        }
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(ids.len(), 30);
    let mut sorted = ids.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), 30, "no entry twice");

    // The table says how to get the next page.
    let table = ok(&url, stream, &["dlq", "list", "--limit", "10"]);
    assert!(
        table.contains("next page: necrostack dlq list --after "),
        "{table}"
    );
    assert!(table.contains("cli.Order"), "{table}");
    let last = ok(
        &url,
        stream,
        &["dlq", "list", "--limit", "10", "--after", &ids[19]],
    );
    assert!(last.contains("no more"), "{last}");

    // Filters, also across scan chunks.
    let refunds = json(&url, stream, &["dlq", "list", "--event-type", "cli.Refund"]);
    let letters = refunds["letters"].as_array().unwrap();
    assert_eq!(letters.len(), 5);
    assert!(letters.iter().all(|l| l["event_type"] == "cli.Refund"));
    let organ = letters[0]["organ"].as_str().unwrap().to_owned();
    let by_organ = json(
        &url,
        stream,
        &["dlq", "list", "--organ", &organ, "--limit", "3"],
    );
    assert_eq!(by_organ["letters"].as_array().unwrap().len(), 3);
    assert!(by_organ["next_after"].is_string());
    let orders = json(
        &url,
        stream,
        &["dlq", "list", "--event-type", "cli.Order", "--limit", "100"],
    );
    assert_eq!(event_ids(&orders).len(), 25);
    let none = ok(&url, stream, &["dlq", "list", "--organ", "nobody"]);
    assert!(none.contains("no dead letters match"), "{none}");

    // Show: the reason and the original envelope.
    let shown = ok(&url, stream, &["dlq", "show", &ids[0]]);
    assert!(shown.contains("the payment provider is down"), "{shown}");
    assert!(
        shown.contains("envelope:") && shown.contains("\"event_type\": \"cli.Order\""),
        "{shown}"
    );
    let shown = json(&url, stream, &["dlq", "show", &ids[0]]);
    assert_eq!(shown["id"], ids[0].as_str());
    assert_eq!(shown["envelope"]["payload"]["n"], 0);
    let missing = cli(&url, stream, &["dlq", "show", "1-0"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no dead letter 1-0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_events_are_handled_again_and_succeed_once_fixed() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    let stream = "cli:replay";
    let dlq = format!("{stream}{DLQ_SUFFIX}");
    let world = World::default();
    // Retried twice, then dead-lettered: the dead letters' envelopes say attempt 2 for
    // organ Charge; the replay makes them first attempts for every organ again.
    let retry = FailurePolicy::Retry(
        RetryPolicy::new(2).backoff(Duration::from_millis(1), Duration::from_millis(1)),
    );
    run_flow_with(&url, stream, &world, 10, 0, retry).await;
    // A poison entry the backend dead-letters without an envelope: not replayable.
    redis::cmd("XADD")
        .arg(stream)
        .arg("*")
        .arg("garbage")
        .arg("1")
        .query_async::<String>(&mut flow::conn(&url).await)
        .await
        .unwrap();
    run_flow(&url, stream, &world, 0, 0).await;
    assert_eq!(xlen(&url, &dlq).await, 11);
    let page = json(&url, stream, &["dlq", "list", "--event-type", "cli.Order"]);
    let failed = event_ids(&page);
    assert!(page["letters"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["envelope"]["attempt"] == 2 && l["envelope"]["organ"] == "Charge"));
    let ids: Vec<String> = page["letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect();

    // A dry run changes nothing.
    let dry = cli(
        &url,
        stream,
        &["--format", "json", "dlq", "replay", "--all", "--dry-run"],
    );
    assert_eq!(dry.status.code(), Some(1), "one of them cannot be replayed");
    let dry: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(dry["would_replay"], 10);
    assert_eq!(dry["not_replayable"], 1);
    assert_eq!(xlen(&url, &dlq).await, 11);

    world.fix();
    // Two by id, then the rest; the poison entry is reported, not fatal.
    let two = json(&url, stream, &["dlq", "replay", &ids[0], &ids[1]]);
    assert_eq!(two["replayed"], 2);
    let again = cli(&url, stream, &["dlq", "replay", &ids[0]]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "replaying twice finds nothing"
    );
    assert!(String::from_utf8_lossy(&again.stdout).contains("not found"));
    let rest = cli(&url, stream, &["dlq", "replay", "--all"]);
    let text = String::from_utf8_lossy(&rest.stdout);
    assert_eq!(rest.status.code(), Some(1), "{text}");
    assert!(
        text.contains("8 replayed") && text.contains("cannot replay"),
        "{text}"
    );
    assert_eq!(xlen(&url, &dlq).await, 1, "only the poison entry stays");

    let replayed: HashSet<String> = replayed_entries(&url, stream)
        .await
        .into_iter()
        .map(|(_, event)| event)
        .collect();
    assert_eq!(replayed, failed, "the same events, same ids");

    run_flow(&url, stream, &world, 0, 0).await;
    let handled: HashSet<String> = world.handled().into_iter().collect();
    assert_eq!(
        handled, failed,
        "every replayed event handled, and succeeded"
    );
    assert_eq!(world.handled().len(), 10, "each once");
    assert_eq!(xlen(&url, &dlq).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_needs_yes_and_deletes_what_it_is_told() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    let stream = "cli:purge";
    let dlq = format!("{stream}{DLQ_SUFFIX}");
    run_flow(&url, stream, &World::default(), 6, 0).await;
    let page = json(&url, stream, &["dlq", "list"]);
    let ids: Vec<String> = page["letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect();

    let refused = cli(&url, stream, &["dlq", "purge", "--all"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    assert_eq!(xlen(&url, &dlq).await, 6);

    let two = json(&url, stream, &["dlq", "purge", &ids[0], &ids[1], "--yes"]);
    assert_eq!(two["outcomes"].as_array().unwrap().len(), 2);
    assert!(two["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|o| o["deleted"] == true));
    assert_eq!(xlen(&url, &dlq).await, 4);
    let gone = cli(&url, stream, &["dlq", "purge", &ids[0], "--yes"]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gone.stdout).contains("not found"));

    let all = ok(&url, stream, &["dlq", "purge", "--all", "--yes"]);
    assert!(all.contains("purged 4 dead letters"), "{all}");
    assert_eq!(xlen(&url, &dlq).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_show_groups_consumers_pending_dead_letters_and_schedule() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    let stream = "cli:stats";
    run_flow(&url, stream, &World::default(), 4, 1).await;
    let producer = necrostack::RedisBackend::builder(&url)
        .stream(stream)
        .build_producer()
        .await
        .unwrap();
    producer
        .emit_after(Duration::from_secs(3600), flow::Order { n: 99 })
        .await
        .unwrap();
    producer.emit(flow::Order { n: 100 }).await.unwrap();
    // A worker that pulls and does not finish: one entry pending.
    let holder = flow::backend(&url, stream).await;
    let held = necrostack::Backend::pull(&holder, 1, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(held.len(), 1);

    let stats = json(&url, stream, &["stats"]);
    let s = &stats["streams"][0];
    assert_eq!(s["stream"], stream);
    assert_eq!(s["partition"], serde_json::Value::Null);
    assert_eq!(s["exists"], true);
    assert_eq!(s["length"], 6);
    assert_eq!(s["dead_letters"], 5);
    assert_eq!(s["scheduled"], 1);
    assert!(s["next_due"].is_string());
    let group = &s["groups"][0];
    assert_eq!(group["name"], "necrostack");
    assert_eq!(group["pending"], 1);
    assert_eq!(group["lag"], 0);
    assert_eq!(group["oldest_pending"]["consumer"], "worker-1");
    assert_eq!(group["oldest_pending"]["deliveries"], 1);
    let worker = &group["consumers"][0];
    assert_eq!(worker["name"], "worker-1");
    assert_eq!(worker["pending"], 1);
    assert!(worker["idle_ms"].is_u64());

    let table = ok(&url, stream, &["stats"]);
    assert!(
        table.contains("group necrostack: pending 1, lag 0"),
        "{table}"
    );
    assert!(table.contains("worker-1"), "{table}");
    println!("{table}");
    println!("{}", ok(&url, stream, &["dlq", "list", "--limit", "3"]));
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_on_a_missing_stream_says_so() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    let stream = "cli:nothing";
    let stats = ok(&url, stream, &["stats"]);
    assert!(stats.contains("does not exist"), "{stats}");
    let stats = json(&url, stream, &["stats"]);
    assert_eq!(stats["streams"][0]["exists"], false);
    assert_eq!(stats["streams"][0]["groups"].as_array().unwrap().len(), 0);
    let list = ok(&url, stream, &["dlq", "list"]);
    assert!(list.contains("no dead letters"), "{list}");
    assert_eq!(
        json(&url, stream, &["dlq", "list"])["letters"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let replay = ok(&url, stream, &["dlq", "replay", "--all"]);
    assert!(replay.contains("no dead letters to replay"), "{replay}");
    let purge = ok(&url, stream, &["dlq", "purge", "--all", "--yes"]);
    assert!(purge.contains("no dead letters to purge"), "{purge}");
    let show = cli(&url, stream, &["dlq", "show", "5-0"]);
    assert_eq!(show.status.code(), Some(1));
    // REDIS_URL stands in for --redis.
    let from_env = std::process::Command::new(env!("CARGO_BIN_EXE_necrostack"))
        .env("REDIS_URL", &url)
        .args(["--stream", stream, "dlq", "list"])
        .output()
        .unwrap();
    assert!(from_env.status.success(), "{from_env:?}");
    // Nothing above created the stream or a group.
    let exists: u64 = redis::cmd("EXISTS")
        .arg(stream)
        .query_async(&mut flow::conn(&url).await)
        .await
        .unwrap();
    assert_eq!(exists, 0);
}

#[test]
fn wrong_arguments_and_an_unreachable_redis_fail_clearly() {
    for args in [
        &["dlq", "show", "not-an-id"][..],
        &["dlq", "purge", "1-0", "x", "--yes"],
        &["dlq", "list", "--after", "+"],
        &["dlq", "replay"],
        &["dlq", "replay", "1-0", "--all"],
        &["dlq", "list", "--limit", "0"],
        &["--format", "yaml", "stats"],
        &["dlq", "frobnicate"],
    ] {
        let out = cli("redis://127.0.0.1:1", "s", args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
    let port = redis_server::free_port();
    let url = format!("redis://:hunter2@127.0.0.1:{port}");
    let out = cli(&url, "s", &["stats"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach Redis"), "{err}");
    assert!(
        !err.contains("hunter2") && !err.contains("panicked"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_killed_midway_and_rerun_loses_and_duplicates_nothing() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    let stream = "cli:kill";
    let dlq = format!("{stream}{DLQ_SUFFIX}");
    let world = World::default();
    const N: u64 = 300;
    run_flow(&url, stream, &world, N as u32, 0).await;
    assert_eq!(xlen(&url, &dlq).await, N);
    let failed = event_ids(&json(&url, stream, &["dlq", "list", "--limit", "1000"]));
    assert_eq!(failed.len(), N as usize);

    // About 1.5 s at this rate: kill it once a sixth is through.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_necrostack"))
        .args([
            "--redis", &url, "--stream", stream, "dlq", "replay", "--all", "--rate", "200",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while xlen(&url, &dlq).await > N - 50 {
        assert!(Instant::now() < deadline, "the replay did not progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let left = xlen(&url, &dlq).await;
    let done = replayed_entries(&url, stream).await.len() as u64;
    assert!(left > 0, "killed midway, not after the end");
    assert_eq!(
        left + done,
        N,
        "at the kill: each event in exactly one place"
    );

    let rerun = ok(&url, stream, &["dlq", "replay", "--all"]);
    assert!(rerun.contains(&format!("{left} replayed")), "{rerun}");
    assert_eq!(xlen(&url, &dlq).await, 0);
    let entries = replayed_entries(&url, stream).await;
    assert_eq!(entries.len() as u64, N, "nothing duplicated");
    let events: HashSet<String> = entries.iter().map(|(_, e)| e.clone()).collect();
    assert_eq!(events, failed, "nothing lost");
    let sources: HashSet<&String> = entries.iter().map(|(from, _)| from).collect();
    assert_eq!(sources.len() as u64, N);

    world.fix();
    run_flow(&url, stream, &world, 0, 0).await;
    assert_eq!(world.handled().len() as u64, N);
    let handled: HashSet<String> = world.handled().into_iter().collect();
    assert_eq!(handled, failed);
}
