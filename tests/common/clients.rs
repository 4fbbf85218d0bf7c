//! Running a client program (the Python SDKs under pytest, Node scripts) against a gateway: the
//! environment every client test gets, a pytest run that must run and pass every test of its
//! file, and the fake API's requests a test marked.

use std::path::Path;
use std::time::Instant;

use serde_json::Value;
use tokio::process::Command;

use super::{Gateway, describe, repo_path, run, text};

/// A client process pointed at the gateway: its base URL and key, no proxy, no OpenAI account
/// or tracing settings from the environment, and the record file.
pub fn client_command(program: &Path, gw: &Gateway, record: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(repo_path(""))
        .env("OPENAI_BASE_URL", format!("{}/v1", gw.http))
        .env("OPENAI_API_KEY", "unused")
        .env("FEATURES_RECORD", record)
        .env_remove("OPENAI_ORG_ID")
        .env_remove("OPENAI_PROJECT_ID")
        .env_remove("OPENAI_WEBHOOK_SECRET")
        .env_remove("LANGSMITH_TRACING")
        .env_remove("LANGCHAIN_TRACING_V2")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1");
    cmd
}

/// Runs one pytest file against the gateway; fails (with the gateway's log) unless every test
/// in it ran and passed.
pub async fn pytest(python: &Path, gw: &Gateway, record: &Path, file: &str) {
    pytest_in(client_command(python, gw, record), gw, file).await;
}

/// `pytest` with the Python command `python` already set up (`client_command` and what the file
/// needs besides): runs `file` under it; fails (with the gateway's log) unless every test in it
/// ran and passed.
pub async fn pytest_in(mut python: Command, gw: &Gateway, file: &str) {
    let started = Instant::now();
    let out = run(python.args(["-m", "pytest", "-q", "-p", "no:cacheprovider", file])).await;
    let stdout = text(&out.stdout);
    eprintln!("pytest {file} took {:.1?}:\n{stdout}", started.elapsed());
    assert!(
        out.status.success(),
        "{}\n--- gateway stderr ---\n{}",
        describe(&format!("pytest {file}"), &out),
        gw.stderr()
    );
    let source = std::fs::read_to_string(repo_path(file)).unwrap();
    let tests = source
        .lines()
        .filter(|l| l.starts_with("def test_"))
        .count();
    assert!(tests > 0, "no tests in {file}");
    assert!(
        stdout.contains(&format!("{tests} passed")) && !stdout.contains("skipped"),
        "all {tests} tests of {file} must run and pass: {stdout}"
    );
}

/// The API requests whose messages mention `marker`.
pub fn with_marker<'a>(requests: &'a [Value], marker: &str) -> Vec<&'a Value> {
    requests
        .iter()
        .filter(|r| r["messages"].to_string().contains(marker))
        .collect()
}

/// The content blocks of type `kind` in the `role` messages of a request.
pub fn blocks<'a>(req: &'a Value, role: &str, kind: &str) -> Vec<&'a Value> {
    req["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["role"] == role)
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .filter(|b| b["type"] == kind)
        .collect()
}
