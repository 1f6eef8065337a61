//! Build script of the root package: tells `tests/ui.rs` whether the compiler is the
//! release its snapshots were recorded with (`cfg(ui_snapshots_recorded_here)`), so that on
//! any other release the UI test is reported as ignored, with the reason, in the test
//! runner's own summary. Cargo reruns this whenever the compiler changes.

use std::process::Command;

#[path = "tests/support/rustc_release.rs"]
mod rustc_release;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(ui_snapshots_recorded_here)");
    println!("cargo::rerun-if-changed=tests/support/rustc_release.rs");
    // Cargo gives build scripts the compiler it uses (`$RUSTC`, or a wrapper's target).
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = Command::new(&rustc)
        .arg("--version")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default();
    if rustc_release::is_recorded_release(&version) {
        println!("cargo::rustc-cfg=ui_snapshots_recorded_here");
    }
}
