//! What the tests of bench/scripts share: running a script on a given standard input.

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `python3 bench/scripts/<script> <args>` with `input` on its standard input;
/// fails the test if it fails. Returns what it printed.
pub fn run(script: &str, args: &[&str], input: &str) -> String {
    let path = format!("{}/scripts/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new("python3")
        .arg(&path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{script} failed: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The first line of `out` that contains `needle`.
pub fn line<'a>(out: &'a str, needle: &str) -> &'a str {
    out.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line for {needle:?} in:\n{out}"))
}
