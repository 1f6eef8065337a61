//! `--redis` runs of the examples delete the stream they made for the run, and its
//! dead-letter stream, unless `--keep` is given or the stream was named with `--stream`.

#[path = "support/examples.rs"]
mod examples;
#[path = "support/redis_server.rs"]
mod redis_server;

use examples::{data_file, run_example, stdout_of_success};
use redis_server::RedisServer;

/// The keys in the server, sorted.
fn keys(server: &RedisServer) -> Vec<String> {
    let mut keys: Vec<String> = server
        .cli(&["--raw", "KEYS", "*"])
        .lines()
        .map(str::to_owned)
        .filter(|k| !k.is_empty())
        .collect();
    keys.sort();
    keys
}

#[test]
fn per_run_streams_are_deleted_unless_kept_or_named() {
    let Some(server) = RedisServer::start() else {
        return; // skipped, with a message (or a failure under NECROSTACK_REQUIRE_REDIS=1)
    };
    let url = server.url();
    let orders = data_file("orderbook_sample.json");
    stdout_of_success(&run_example(
        "trading_orderbook",
        &[
            "--file",
            &orders,
            "--redis",
            &url,
            "--settlement-failure-rate",
            "1",
        ],
    ));
    // Every permanent failure is a dead letter: the run wrote a `:dlq` stream too.
    stdout_of_success(&run_example(
        "notification_pipeline",
        &["--redis", &url, "--permanent-rate", "1", "--json"],
    ));
    stdout_of_success(&run_example(
        "redis_workers",
        &["--redis", &url, "--orders", "3", "--timeout-secs", "20"],
    ));
    assert_eq!(keys(&server), Vec::<String>::new(), "nothing left behind");

    stdout_of_success(&run_example(
        "notification_pipeline",
        &["--redis", &url, "--permanent-rate", "1", "--keep", "--json"],
    ));
    let kept = keys(&server);
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept[0].starts_with("notification_pipeline:"), "{kept:?}");
    assert_eq!(kept[1], format!("{}:dlq", kept[0]), "{kept:?}");

    stdout_of_success(&run_example(
        "trading_orderbook",
        &["--file", &orders, "--redis", &url, "--stream", "mine"],
    ));
    assert!(
        keys(&server).contains(&"mine".to_owned()),
        "a named stream stays"
    );
}
