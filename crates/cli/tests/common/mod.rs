//! Helpers shared by the `berth` CLI tests.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `berth --root ROOT ARGS...` with no stdin.
pub fn berth(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Runs berth and asserts success; returns stdout.
pub fn ok(root: &Path, args: &[&str]) -> String {
    let o = berth(root, args);
    assert!(
        o.status.success(),
        "berth {args:?}: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Runs berth and asserts exit code `code`; returns stderr.
pub fn fails(root: &Path, args: &[&str], code: i32) -> String {
    let o = berth(root, args);
    assert_eq!(
        o.status.code(),
        Some(code),
        "berth {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stderr).unwrap()
}
