//! Which compiler release the UI snapshots (`tests/ui/*.stderr`) were recorded with, and
//! how to recognise it. Shared by the build script, which decides whether `tests/ui.rs`
//! runs or is ignored, and by that test's own check of the matching.

/// The compiler release the `.stderr` snapshots were recorded with. The ignore reason in
/// `tests/ui.rs` repeats it (an attribute needs a literal).
pub const RECORDED_WITH: &str = "1.95";

/// Whether `version` (as printed by `rustc --version`) is the recorded release.
pub fn is_recorded_release(version: &str) -> bool {
    version
        .strip_prefix("rustc ")
        .and_then(|rest| rest.strip_prefix(RECORDED_WITH))
        .is_some_and(|rest| rest.starts_with('.'))
}
