//! Runs the programs in `examples/` as a user would, for the end-to-end tests.
//!
//! `cargo test` builds the examples before it runs the tests, into
//! `target/<profile>/examples/`, next to the `deps/` folder that holds the test binary;
//! this helper finds them there rather than calling cargo again (which would wait for
//! the build lock held by the cargo running the tests). When running one test file with
//! `cargo test --test NAME`, build the examples first: `cargo build --examples`.
#![allow(dead_code)] // each test file uses a part of this helper

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The path of the built example `name`; panics with a hint when it is missing.
pub fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    // target/<profile>/deps/<test>-<hash> → target/<profile>/examples/<name>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in target/<profile>/deps");
    let path = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "example binary {} not found: `cargo test` builds examples; after `cargo test --test ...` run `cargo build --examples` first",
        path.display()
    );
    path
}

/// Runs example `name` with `args` and returns its output (stdout, stderr, status).
/// Log settings of the caller's environment are removed so that stderr is predictable.
pub fn run_example(name: &str, args: &[&str]) -> Output {
    run_example_os(name, args)
}

/// As [`run_example`], with arguments that need not be UTF-8 (file names, bad input).
pub fn run_example_os<S: AsRef<OsStr>>(name: &str, args: &[S]) -> Output {
    Command::new(example_path(name))
        .args(args)
        .env_remove("NECROSTACK_LOG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot start example {name}: {e}"))
}

/// Standard output as text, after checking that the example succeeded.
pub fn stdout_of_success(output: &Output) -> String {
    assert!(
        output.status.success(),
        "example failed with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

/// The path of a file under `examples/data/`.
pub fn data_file(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join("data")
        .join(name)
        .to_string_lossy()
        .into_owned()
}
