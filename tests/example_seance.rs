//! End-to-end tests of `cargo run --example seance`: the printed omens and counts.

#[path = "support/examples.rs"]
mod examples;

use examples::{run_example, stdout_of_success};

#[test]
fn default_seance_summons_ada() {
    let stdout = stdout_of_success(&run_example("seance", &[]));
    assert_eq!(
        stdout,
        "omen 1: Ada whispers: the 3rd knocks\nséance over: 4 events, 4 handled, 0 failed\n"
    );
}

#[test]
fn one_ritual_per_spirit_in_order() {
    let stdout = stdout_of_success(&run_example("seance", &["Ada", "Grace", "Alan"]));
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
    let output = run_example("seance", &["", "Ada"]);
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
