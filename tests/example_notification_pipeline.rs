//! End-to-end tests of `cargo run --example notification_pipeline`: summary counts for
//! small files (worked out by hand) and for seeded generated runs.

#[path = "support/examples.rs"]
mod examples;
#[path = "support/nats_server.rs"]
mod nats_server;
#[path = "support/redis_server.rs"]
mod redis_server;

use examples::{data_file, run_example, stdout_of_success};
use serde_json::{json, Value};

/// Runs the example with `args` and `--json`; returns the one JSON object it printed.
fn summary(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--json", "--latency-ms", "0"]);
    let stdout = stdout_of_success(&run_example("notification_pipeline", &all));
    let mut objects = serde_json::Deserializer::from_str(&stdout).into_iter::<Value>();
    let value = objects
        .next()
        .expect("a JSON object")
        .expect("stdout is JSON");
    assert!(
        objects.next().is_none(),
        "exactly one JSON object: {stdout}"
    );
    value
}

fn n(value: &Value, path: &[&str]) -> u64 {
    path.iter()
        .fold(value, |v, key| &v[*key])
        .as_u64()
        .unwrap_or_else(|| panic!("{path:?} is a count in {value}"))
}

const CHANNELS: [&str; 3] = ["email", "sms", "push"];

/// The summary for examples/data/notifications.json at the given rates of transient
/// (per try) and permanent (per message) send failures.
fn json_file_summary(failure_rate: &str, permanent_rate: &str) -> Value {
    let path = data_file("notifications.json");
    summary(&[
        "--file",
        &path,
        "--failure-rate",
        failure_rate,
        "--permanent-rate",
        permanent_rate,
    ])
}

/// examples/data/notifications.json: n1 (email), n2 (email, sms, push), n3 (SMS, push,
/// sms → sms, push) and n11 (channels and fields written as strings: email, push) are
/// valid; n4 (no recipient), n5 (fax), n6 (bad email), n7 (missing code), n8 (unknown
/// template), n9 (no channel) and n10 (push without a device token) are rejected. So 11
/// requested, 4 validated, 7 rejected; queued email 3, sms 2, push 3. (An entry that is
/// not an object is an error of the file: see tests/example_bad_input.rs.)
#[test]
fn json_file_without_failures() {
    let got = json_file_summary("0", "0");
    let expected = json!({
        "requested": 11, "validated": 4, "rejected": 7,
        "queued": {"email": 3, "sms": 2, "push": 3},
        "sent": {"email": 3, "sms": 2, "push": 3},
        "failed": {"email": 0, "sms": 0, "push": 0},
        "transient_failures": 0, "permanent_failures": 0, "retries": 0, "dead_letters": 0,
    });
    assert_eq!(got, expected);
}

#[test]
fn json_file_where_every_try_fails_transiently() {
    // 8 messages × 4 tries fail; 3 retries each; all 8 end as dead letters.
    let got = json_file_summary("1", "0");
    let expected = json!({
        "requested": 11, "validated": 4, "rejected": 7,
        "queued": {"email": 3, "sms": 2, "push": 3},
        "sent": {"email": 0, "sms": 0, "push": 0},
        "failed": {"email": 3, "sms": 2, "push": 3},
        "transient_failures": 32, "permanent_failures": 0, "retries": 24, "dead_letters": 8,
    });
    assert_eq!(got, expected);
}

#[test]
fn json_file_where_every_address_bounces() {
    let got = json_file_summary("0", "1");
    assert_eq!(got["failed"], json!({"email": 3, "sms": 2, "push": 3}));
    assert_eq!(got["sent"], json!({"email": 0, "sms": 0, "push": 0}));
    // A bounce is permanent: one try each, no retry, straight to the dead letters.
    assert_eq!(n(&got, &["permanent_failures"]), 8);
    assert_eq!(n(&got, &["retries"]), 0);
    assert_eq!(n(&got, &["dead_letters"]), 8);
}

/// examples/data/notifications.csv: c1 (email) and c3 (all three) are valid; c2 (push
/// without a device token), c4 (5-digit phone) and c5 (short row) are rejected.
#[test]
fn csv_file_readable_summary_and_rejections_on_stderr() {
    let path = data_file("notifications.csv");
    let output = run_example(
        "notification_pipeline",
        &[
            "--file",
            &path,
            "--failure-rate",
            "0",
            "--permanent-rate",
            "0",
            "--latency-ms",
            "0",
        ],
    );
    let stdout = stdout_of_success(&output);
    assert_eq!(
        stdout,
        "notifications: 5 requested, 2 validated, 3 rejected
channel   queued    sent  failed
email          2       2       0
sms            1       1       0
push           1       1       0
total          4       4       0
failed tries: 0 transient, 0 permanent; 0 retries with backoff (up to 4 tries); 0 dead letters
"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    for reason in [
        "push channel needs a device_token",
        "sms channel needs a phone number (+ and 7 to 15 digits), not \\\"12345\\\"",
        "no channel requested",
    ] {
        assert!(stderr.contains(reason), "{reason} in {stderr}");
    }
}

#[test]
fn seeded_run_counts_add_up_and_repeat() {
    let args = ["--count", "200", "--seed", "11"];
    let first = summary(&args);
    assert_eq!(first, summary(&args), "same seed, same summary");
    assert_ne!(first, summary(&["--count", "200", "--seed", "12"]));

    assert_eq!(n(&first, &["requested"]), 200);
    assert_eq!(n(&first, &["validated"]) + n(&first, &["rejected"]), 200);
    assert!(
        n(&first, &["rejected"]) > 0,
        "the generator makes some invalid requests"
    );
    let mut failed = 0;
    for channel in CHANNELS {
        let queued = n(&first, &["queued", channel]);
        assert!(queued > 0);
        // Every queued message ends sent or failed, exactly once.
        assert_eq!(
            n(&first, &["sent", channel]) + n(&first, &["failed", channel]),
            queued,
            "{channel}"
        );
        failed += n(&first, &["failed", channel]);
    }
    // Every failed message was dead-lettered; default rates give both kinds of failure.
    assert_eq!(n(&first, &["dead_letters"]), failed);
    assert!(n(&first, &["transient_failures"]) > 0);
    assert!(n(&first, &["permanent_failures"]) > 0);
    // A permanent failure is tried once and dead-lettered; every retry followed a failed
    // try that was not a message's last one.
    assert!(n(&first, &["permanent_failures"]) <= failed);
    let failed_tries = n(&first, &["transient_failures"]) + n(&first, &["permanent_failures"]);
    assert_eq!(n(&first, &["retries"]), failed_tries - failed);

    // Without failures the same requests are all sent.
    let clean = summary(&[
        "--count",
        "200",
        "--seed",
        "11",
        "--failure-rate",
        "0",
        "--permanent-rate",
        "0",
    ]);
    assert_eq!(clean["queued"], first["queued"]);
    assert_eq!(clean["sent"], first["queued"]);
    assert_eq!(n(&clean, &["dead_letters"]), 0);
}

#[test]
fn default_run_prints_a_readable_summary() {
    let stdout = stdout_of_success(&run_example(
        "notification_pipeline",
        &["--latency-ms", "0"],
    ));
    assert!(
        stdout.starts_with("notifications: 20 requested, "),
        "{stdout}"
    );
    assert!(stdout.contains("\ntotal "), "{stdout}");
}

#[test]
fn bad_input_is_a_clear_error() {
    let output = run_example("notification_pipeline", &["--file", "/nonexistent/n.json"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read /nonexistent/n.json"));

    let dir = std::env::temp_dir().join(format!("necrostack-notify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (
            "a.json",
            "{\"notifications\": 3}",
            "expected a JSON object {\"notifications\": [...]}",
        ),
        ("b.json", "{", "is not valid JSON"),
        (
            "c.csv",
            "id,recipient,template\n",
            "the CSV header has no column \"channels\"",
        ),
    ];
    for (name, text, message) in cases {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let output = run_example(
            "notification_pipeline",
            &["--file", path.to_str().unwrap(), "--json"],
        );
        assert_eq!(output.status.code(), Some(2), "{name}");
        assert!(output.stdout.is_empty(), "{name}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(message),
            "{name}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();

    let output = run_example("notification_pipeline", &["--failure-rate", "2"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn redis_run_gives_the_in_memory_summary() {
    let Some(server) = redis_server::RedisServer::start() else {
        return; // skipped, with a message (or a failure under NECROSTACK_REQUIRE_REDIS=1)
    };
    let path = data_file("notifications.json");
    // Rates high enough that retries and dead letters happen on this small file.
    let args = [
        "--file",
        &path,
        "--failure-rate",
        "0.5",
        "--permanent-rate",
        "0.3",
    ];
    let in_memory = summary(&args);
    assert!(n(&in_memory, &["dead_letters"]) > 0 && n(&in_memory, &["retries"]) > 0);

    let url = server.url();
    let mut on_redis = args.to_vec();
    on_redis.extend(["--redis", &url]);
    assert_eq!(summary(&on_redis), in_memory);
    // Each run uses a fresh stream: a second run sees none of the first run's events.
    assert_eq!(summary(&on_redis), in_memory);
}

#[test]
fn nats_run_gives_the_in_memory_summary() {
    let Some(server) = nats_server::NatsServer::start() else {
        return; // skipped, with a message (or a failure under NECROSTACK_REQUIRE_NATS=1)
    };
    let path = data_file("notifications.json");
    // Rates high enough that retries and dead letters happen on this small file.
    let args = [
        "--file",
        &path,
        "--failure-rate",
        "0.5",
        "--permanent-rate",
        "0.3",
    ];
    let in_memory = summary(&args);
    assert!(n(&in_memory, &["dead_letters"]) > 0 && n(&in_memory, &["retries"]) > 0);
    let url = server.url();
    let mut on_nats = args.to_vec();
    on_nats.extend(["--nats", &url]);
    assert_eq!(summary(&on_nats), in_memory);
}
