//! Compile-time guarantees, checked with trybuild: every file in `tests/ui/*.rs` must fail
//! to compile with exactly the error recorded next to it in the `.stderr` file, and every
//! file in `tests/ui/pass/*.rs` must compile and run.
//!
//! The snapshots are the compiler's exact output, which changes between compiler
//! releases, so the cases run only on the release they were recorded with
//! (`tests/support/rustc_release.rs`); the build script checks the compiler. On any other
//! release the test is ignored, and the test runner's summary says so and why. Refresh
//! the snapshots with `TRYBUILD=overwrite cargo test --test ui`, then read every `.stderr`
//! file.

#[path = "support/rustc_release.rs"]
mod rustc_release;

use rustc_release::is_recorded_release;

#[test]
#[cfg_attr(
    not(ui_snapshots_recorded_here),
    ignore = "the UI snapshots were recorded with rustc 1.95, and this compiler's messages differ; to re-record them: TRYBUILD=overwrite cargo test --test ui -- --ignored, then set RECORDED_WITH in tests/support/rustc_release.rs"
)]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
    cases.pass("tests/ui/pass/*.rs");
}

#[test]
fn version_check_matches_only_the_recorded_release() {
    assert_eq!(
        rustc_release::RECORDED_WITH,
        "1.95",
        "update the ignore reason above"
    );
    assert!(is_recorded_release("rustc 1.95.0 (59807616e 2026-04-14)"));
    assert!(is_recorded_release("rustc 1.95.2"));
    assert!(!is_recorded_release("rustc 1.96.0 (abc 2026-05-28)"));
    assert!(!is_recorded_release("rustc 1.9.5"));
    assert!(!is_recorded_release("rustc 1.950.0"));
    assert!(!is_recorded_release(
        "unknown (rustc --version failed: not found)"
    ));
}
