//! What a test does when a tool it needs (the real CLI, Node, buf, a Python package,
//! PostgreSQL) is missing: it fails, with a message saying how to install the tool. A local run
//! may opt out visibly with `GATEWAY_TESTS_ALLOW_SKIP=1`: the test then returns early and its
//! name lands in `target/tmp/skipped-tests.txt`, which `.ci/test` prints in its summary. A skip
//! is never silent and never the default.

use std::io::Write;

/// The variable a run sets to let tests skip when their tool is missing.
pub const ALLOW_SKIP: &str = "GATEWAY_TESTS_ALLOW_SKIP";

/// The file every skipped test is recorded in, one line each.
pub fn ledger() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped-tests.txt")
}

/// `what` is missing for the current test: panics (the test fails) unless the run opted out,
/// in which case the skip is recorded and the caller returns early.
#[track_caller]
pub fn missing(what: &str, install: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_string();
    if std::env::var(ALLOW_SKIP).as_deref() != Ok("1") {
        panic!(
            "{test}: {what} is missing ({install}). Tests never pass by skipping; set \
             {ALLOW_SKIP}=1 to skip them visibly in a local run."
        );
    }
    let line = format!("{test}: {what} missing\n");
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(ledger())
    {
        let _ = file.write_all(line.as_bytes());
    }
    // Straight to the file descriptor: libtest swallows eprintln! of a passing test.
    let _ = std::io::stderr().write_all(format!("SKIPPED {line}").as_bytes());
}
