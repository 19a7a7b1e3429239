//! Helpers shared by the command-line test binaries.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `repflow` binary under test.
pub fn repflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_repflow"))
}

/// Writes a scenario file `name` into `dir` and returns its path.
pub fn scenario(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `repflow` with `args`, asserts success, returns its stdout.
pub fn run_ok(args: &[&str]) -> String {
    let out = repflow().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "repflow {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
