//! Runs the `redis_workers` example against a throwaway Redis and checks what it prints:
//! every order billed once and its invoice archived once, by the workers of one group.

#[path = "support/redis_server.rs"]
mod redis_server;

use std::path::PathBuf;
use std::process::Command;

/// The example binary `cargo test` built next to this test (`target/<profile>/examples`),
/// building it first when only this test was compiled.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let binary = profile_dir.join("examples").join("redis_workers");
    if !binary.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .args(["build", "--example", "redis_workers"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the example failed");
    }
    binary
}

#[test]
fn redis_workers_example_runs() {
    let Some(server) = redis_server::RedisServer::start() else {
        return;
    };
    let output = Command::new(example_binary())
        .args(["--redis", &server.url(), "--workers", "3", "--orders", "9"])
        .args(["--timeout-secs", "20"])
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "example failed: {stderr}\n{stdout}"
    );
    for order in 1..=9 {
        let billed = format!("billed order {order} (");
        let archived = format!("archived invoice for order {order} (");
        // Once in the live output, once in the per-worker summary.
        assert_eq!(stdout.matches(&billed).count(), 2, "{billed}: {stdout}");
        assert_eq!(stdout.matches(&archived).count(), 2, "{archived}: {stdout}");
    }
    for worker in ["worker-0", "worker-1", "worker-2"] {
        assert!(
            stdout.contains(&format!("{worker}: ")),
            "{worker} reports: {stdout}"
        );
    }
    assert!(
        stdout.contains("18 entries, 0 pending, 0 dead letters"),
        "{stdout}"
    );
}

/// `--metrics-addr` serves Prometheus text while the workers run; `--serve` keeps it up
/// after the work, until Ctrl-C (SIGINT), and the program then exits 0.
#[cfg(feature = "metrics")]
#[test]
fn redis_workers_serves_prometheus_metrics() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::Stdio;

    let Some(server) = redis_server::RedisServer::start() else {
        return;
    };
    let addr = format!("127.0.0.1:{}", redis_server::free_port());
    let mut child = Command::new(example_binary())
        .args(["--redis", &server.url(), "--workers", "2", "--orders", "6"])
        .args(["--metrics-addr", &addr, "--serve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run the example");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the example ended before serving: {seen}"
        );
        seen.push_str(&line);
        if line.contains("still serving") {
            break;
        }
    }
    let mut connection = std::net::TcpStream::connect(&addr).expect("the exporter listens");
    connection
        .write_all(
            format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    let mut response = String::new();
    connection.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    for needle in [
        "necrostack_handlings_total{organ=\"Billing\",event_type=\"ORDER_PLACED\"} 6",
        "necrostack_handlings_total{organ=\"Archive\",event_type=\"INVOICE_SENT\"} 6",
        "necrostack_handling_duration_seconds",
        "necrostack_events_pulled_total",
        "necrostack_redis_stream_length{stream=",
        "necrostack_redis_pending{stream=",
    ] {
        assert!(response.contains(needle), "no {needle} in:\n{response}");
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit after Ctrl-C: {status}");
}

#[cfg(not(feature = "metrics"))]
#[test]
#[ignore = "needs `--features metrics` (CI runs every test with --all-features)"]
fn redis_workers_serves_prometheus_metrics() {}
