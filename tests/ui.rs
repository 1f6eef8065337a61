//! Compile-time guarantees, checked with trybuild: every file in `tests/ui/*.rs` must fail
//! to compile with exactly the error recorded next to it in the `.stderr` file, and every
//! file in `tests/ui/pass/*.rs` must compile.
//!
//! The snapshots are the compiler's exact output, which changes between compiler
//! releases, so the cases run only on the toolchain they were recorded with. On any other
//! version this test prints why it skipped and passes. Refresh the snapshots with
//! `TRYBUILD=overwrite cargo test --test ui`, then read every `.stderr` file.

use std::process::Command;

/// The compiler release the `.stderr` snapshots were recorded with.
const RECORDED_WITH: &str = "1.95";

/// `rustc --version` of the compiler cargo uses (`$RUSTC` if set).
fn rustc_version() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    match Command::new(&rustc).arg("--version").output() {
        Ok(output) => String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        Err(error) => format!("unknown ({rustc} --version failed: {error})"),
    }
}

/// Whether `version` (as printed by `rustc --version`) is the recorded release.
fn is_recorded_release(version: &str) -> bool {
    version
        .strip_prefix("rustc ")
        .and_then(|rest| rest.strip_prefix(RECORDED_WITH))
        .is_some_and(|rest| rest.starts_with('.'))
}

#[test]
fn ui() {
    let version = rustc_version();
    if !is_recorded_release(&version) {
        println!(
            "skipping UI tests: snapshots were recorded with rustc {RECORDED_WITH}, found {version}"
        );
        return;
    }
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
    cases.pass("tests/ui/pass/*.rs");
}

#[test]
fn version_check_matches_only_the_recorded_release() {
    assert!(is_recorded_release("rustc 1.95.0 (59807616e 2026-04-14)"));
    assert!(is_recorded_release("rustc 1.95.2"));
    assert!(!is_recorded_release("rustc 1.96.0 (abc 2026-05-28)"));
    assert!(!is_recorded_release("rustc 1.9.5"));
    assert!(!is_recorded_release("rustc 1.950.0"));
    assert!(!is_recorded_release(
        "unknown (rustc --version failed: not found)"
    ));
}
