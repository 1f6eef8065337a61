//! End-to-end tests of `cargo run --example seance`: the trace of events as they flow,
//! the printed omens and counts, and the command line.

#[path = "support/examples.rs"]
mod examples;
#[path = "support/nats_server.rs"]
mod nats_server;

use examples::{run_example, stdout_of_success};

/// The rows of the trace table: (event, id, depth, caused by, handled by).
fn trace(stdout: &str) -> Vec<[String; 5]> {
    let mut lines = stdout.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split("  ").collect();
    assert!(
        header[0].starts_with("event") && stdout.contains("caused by  handled by"),
        "{stdout}"
    );
    lines
        .filter(|line| line.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
        .map(|line| {
            let cells: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
            cells
                .try_into()
                .unwrap_or_else(|c| panic!("5 columns: {c:?}"))
        })
        .collect()
}

#[test]
fn default_seance_prints_each_event_with_its_cause_and_organ() {
    let stdout = stdout_of_success(&run_example("seance", &[]));
    let rows = trace(&stdout);
    let expected = [
        ("SUMMON_RITUAL", "summon"),
        ("SPIRIT_APPEARED", "speak"),
        ("ANSWER_GENERATED", "interpret"),
        ("OMEN_REVEALED", "Scribe"),
    ];
    assert_eq!(rows.len(), 4, "{stdout}");
    for (depth, (row, (event, organ))) in rows.iter().zip(expected).enumerate() {
        assert_eq!(row[0], event, "{stdout}");
        assert_eq!(row[1].len(), 8, "a short id: {stdout}");
        assert_eq!(row[2], depth.to_string(), "{stdout}");
        let cause = if depth == 0 { "-" } else { &rows[depth - 1][1] };
        assert_eq!(
            row[3], cause,
            "each event points at the one before: {stdout}"
        );
        assert_eq!(row[4], organ, "{stdout}");
    }
    assert!(
        stdout.ends_with(
            "omen 1: Ada whispers: the 3rd knocks\nséance over: 4 events, 4 handled, 0 failed\n"
        ),
        "{stdout}"
    );
}

#[test]
fn quiet_seance_prints_the_omen_and_summary() {
    let stdout = stdout_of_success(&run_example("seance", &["--quiet"]));
    assert_eq!(
        stdout,
        "omen 1: Ada whispers: the 3rd knocks\nséance over: 4 events, 4 handled, 0 failed\n"
    );
}

#[test]
fn help_and_bad_flags_never_summon_a_spirit() {
    let help = run_example("seance", &["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("Usage: seance") && text.contains("--quiet"),
        "{text}"
    );
    assert!(!text.contains("séance over"), "{text}");
    let bogus = run_example("seance", &["--bogus"]);
    assert_eq!(bogus.status.code(), Some(2));
    assert!(bogus.stdout.is_empty());
    assert!(String::from_utf8_lossy(&bogus.stderr).contains("unexpected argument '--bogus'"));
    // A name that starts with a dash is still possible after `--`.
    let dashed = stdout_of_success(&run_example("seance", &["--quiet", "--", "--help"]));
    assert!(dashed.contains("omen 1: --help whispers"), "{dashed}");
}

#[test]
fn one_ritual_per_spirit_in_order() {
    let stdout = stdout_of_success(&run_example("seance", &["-q", "Ada", "Grace", "Alan"]));
    assert_eq!(
        stdout,
        "omen 1: Ada whispers: the 3rd knocks\n\
         omen 2: Grace whispers: the 5th knocks\n\
         omen 3: Alan whispers: the 4th knocks\n\
         séance over: 12 events, 12 handled, 0 failed\n"
    );
}

#[test]
fn an_empty_name_fails_one_organ_and_the_rest_goes_on() {
    let output = run_example("seance", &["--quiet", "", "Ada"]);
    let stdout = stdout_of_success(&output);
    // SUMMON ×2, SPIRIT ×2 (speak fails on the empty name), ANSWER ×1, OMEN ×1.
    assert_eq!(
        stdout,
        "omen 1: Ada whispers: the 3rd knocks\nséance over: 6 events, 5 handled, 1 failed\n"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no spirit answered"),
        "the failure is logged on stderr: {stderr}"
    );
}

#[test]
fn json_logs_are_json_lines_on_stderr() {
    let output = std::process::Command::new(examples::example_path("seance"))
        .arg("")
        .env("NECROSTACK_LOG", "json")
        .env_remove("RUST_LOG")
        .output()
        .expect("run seance");
    let stderr = String::from_utf8(output.stderr).expect("UTF-8 logs");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(!lines.is_empty(), "the failing organ logs a warning");
    for line in lines {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        assert_eq!(value["fields"]["organ"], "speak", "{line}");
    }
}

#[test]
fn nats_run_gives_the_in_memory_omens() {
    let Some(server) = nats_server::NatsServer::start() else {
        return; // skipped, with a message (or a failure under NECROSTACK_REQUIRE_NATS=1)
    };
    let args = ["--quiet", "Ada", "Grace", "Alan"];
    let in_memory = stdout_of_success(&run_example("seance", &args));
    let url = server.url();
    let on_nats = stdout_of_success(&run_example(
        "seance",
        &[&args[..], &["--nats", &url]].concat(),
    ));
    assert_eq!(on_nats, in_memory);
}
