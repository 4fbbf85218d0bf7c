//! The OpenAI HTTP API of the real gateway binary over real sockets, with
//! `tests/fixtures/fake_claude.py` standing in for the `claude` CLI. The fake is steered by
//! `[[directives]]` in the last user message and logs every run (argv, cwd, env, stdin, pid), so
//! these tests check both what a client sees (statuses, OpenAI-valid bodies and chunks, headers,
//! timing) and what reaches the CLI, how its failures surface, and that no process or private
//! directory outlives its request. Every test body is bounded by `bounded`; nothing sleeps for
//! readiness.

#[path = "../common/mod.rs"]
mod common;

pub(crate) use std::future::Future;
pub(crate) use std::path::{Path, PathBuf};
pub(crate) use std::time::{Duration, Instant};

pub(crate) use common::openai_schema::assert_valid;
pub(crate) use common::*;
pub(crate) use reqwest::header::HeaderMap;
pub(crate) use serde_json::{Value, json};
pub(crate) use tokio::io::{AsyncReadExt, AsyncWriteExt};
pub(crate) use tokio::net::TcpStream;

// ------------------------------------------------------------------------------------------
// Harness
// ------------------------------------------------------------------------------------------

/// No test may take longer than this, whatever the gateway does.
pub(crate) const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A 1×1 PNG, small enough to inline.
pub(crate) const PNG_B64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

/// Runs a test body under the suite's time limit.
pub(crate) async fn bounded(body: impl Future<Output = ()>) {
    tokio::time::timeout(TEST_TIMEOUT, body)
        .await
        .expect("test exceeded its time limit");
}

/// A gateway on the fake CLI like `FakeCliGateway::start`, with extra environment variables.
pub(crate) async fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> FakeCliGateway {
    let log_dir = tempfile::tempdir().expect("temp dir");
    let mut builder = Gateway::builder()
        .args(["--claude-bin", fake_cli().to_str().expect("UTF-8 path")])
        .args(["--pass-env", "FAKE_CLAUDE_LOG_DIR"])
        .args(extra.iter().copied())
        .env(
            "FAKE_CLAUDE_LOG_DIR",
            log_dir.path().to_str().expect("UTF-8 path"),
        );
    for (k, v) in env {
        builder = builder.env(k, *v);
    }
    FakeCliGateway {
        gw: builder.start().await,
        log_dir,
    }
}

/// A gateway on the fake CLI whose per-run directories go into a private work dir.
pub(crate) async fn start_with_work_dir(extra: &[&str]) -> (FakeCliGateway, tempfile::TempDir) {
    let work = tempfile::tempdir().expect("temp dir");
    let mut args = vec!["--work-dir", work.path().to_str().expect("UTF-8 path")];
    args.extend_from_slice(extra);
    (FakeCliGateway::start(&args).await, work)
}

pub(crate) fn completions(fake: &FakeCliGateway) -> String {
    fake.gw.url("/v1/chat/completions")
}

pub(crate) fn stream_body(model: &str, text: &str, include_usage: bool) -> Value {
    let mut body = chat_body(model, text);
    body["stream"] = json!(true);
    if include_usage {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

/// POSTs `body` with extra request headers; returns (status, headers, body text).
pub(crate) async fn post_with_headers(
    url: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, HeaderMap, String) {
    let mut request = client().post(url).json(body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.text().await.expect("response body"),
    )
}

/// POSTs raw bytes as `application/json` (for bodies that are not valid requests).
pub(crate) async fn post_raw(url: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let response = client()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    let text = response.text().await.expect("response body");
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, json)
}

pub(crate) async fn get_json(url: &str) -> (u16, Value) {
    let response = client().get(url).send().await.expect("request sent");
    let status = response.status().as_u16();
    let text = response.text().await.expect("response body");
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, json)
}

/// Checks an OpenAI error answer: the status, the schema, and `param` and `code` exactly
/// (`None` meaning `null`).
pub(crate) fn assert_error(
    got: (u16, &Value),
    status: u16,
    param: Option<&str>,
    code: Option<&str>,
) {
    let (got_status, body) = got;
    assert_eq!(got_status, status, "{body}");
    assert_valid("ErrorResponse", body);
    assert_eq!(body["error"]["param"].as_str(), param, "param of {body}");
    assert_eq!(body["error"]["code"].as_str(), code, "code of {body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "an error needs a message: {body}");
}

pub(crate) fn message_of(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

// ---- the fake CLI's run logs and its processes -------------------------------------------

/// The run whose stdin carried `needle` (a marker unique to one request).
pub(crate) fn run_with(fake: &FakeCliGateway, needle: &str) -> Option<Value> {
    fake.runs()
        .into_iter()
        .find(|r| r["stdin"].to_string().contains(needle))
}

/// Waits until the fake CLI has received the request marked `needle`, and returns its log.
pub(crate) async fn wait_for_run(fake: &FakeCliGateway, needle: &str) -> Value {
    eventually("the fake CLI received the request", || {
        run_with(fake, needle).is_some()
    })
    .await;
    run_with(fake, needle).expect("the run just seen")
}

pub(crate) fn run_pid(run: &Value) -> u32 {
    u32::try_from(run["pid"].as_u64().expect("run log has a pid")).expect("pid fits u32")
}

/// The per-run private directory: the parent of the CLI's working directory.
pub(crate) fn run_dir(run: &Value) -> PathBuf {
    Path::new(run["cwd"].as_str().expect("run log has a cwd"))
        .parent()
        .expect("cwd has a parent")
        .to_path_buf()
}

pub(crate) fn argv(run: &Value) -> Vec<String> {
    run["argv"]
        .as_array()
        .expect("run log has argv")
        .iter()
        .map(|a| a.as_str().expect("string argument").to_string())
        .collect()
}

/// The value following `flag` in the run's argv.
pub(crate) fn flag_value(run: &Value, flag: &str) -> Option<String> {
    let args = argv(run);
    let at = args.iter().position(|a| a == flag)?;
    args.get(at + 1).cloned()
}

/// `/proc/<pid>/stat` fields after the command name: state, ppid, pgrp, …
pub(crate) fn proc_stat(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Whether `pid` is a live process; a zombie waiting to be reaped counts as gone.
pub(crate) fn alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|f| f[0] != "Z" && f[0] != "X")
}

/// Whether `pid` has SIGTERM ignored (bit 15 of `SigIgn` in `/proc/<pid>/status`).
pub(crate) fn ignores_sigterm(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("SigIgn:"))?;
            u64::from_str_radix(line["SigIgn:".len()..].trim(), 16).ok()
        })
        .is_some_and(|mask| mask & (1 << (15 - 1)) != 0)
}

/// Live fake CLI processes whose parent is the gateway.
pub(crate) fn fake_children(gateway_pid: u32) -> Vec<u32> {
    processes_matching("fake_claude.py")
        .into_iter()
        .filter(|pid| alive(*pid))
        .filter(|pid| {
            proc_stat(*pid).is_some_and(|f| f[1].parse::<u32>().ok() == Some(gateway_pid))
        })
        .collect()
}

/// After a run ended (any way): its process is gone, its private directory is removed, and
/// the gateway has no fake CLI child left.
pub(crate) async fn assert_cleaned_up(fake: &FakeCliGateway, run: &Value) {
    let (pid, dir) = (run_pid(run), run_dir(run));
    eventually(&format!("fake CLI pid {pid} to be gone"), || !alive(pid)).await;
    eventually(&format!("{} to be removed", dir.display()), || {
        !dir.exists()
    })
    .await;
    let gateway = fake.gw.pid();
    eventually("no fake CLI child of the gateway left", || {
        fake_children(gateway).is_empty()
    })
    .await;
}

// ---- a bare HTTP/1.1 client, for tests that control exactly when the client goes away -----

pub(crate) async fn raw_request(gw: &Gateway, body: &Value) -> TcpStream {
    let addr = gw.http.strip_prefix("http://").expect("http URL");
    let mut sock = TcpStream::connect(addr)
        .await
        .expect("connect to the gateway");
    let body = body.to_string();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes())
        .await
        .expect("request head sent");
    sock.write_all(body.as_bytes())
        .await
        .expect("request body sent");
    sock
}

/// Reads until `needle` has arrived; returns everything read.
pub(crate) async fn read_until(sock: &mut TcpStream, needle: &str) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let n = sock.read(&mut buf).await.expect("read from the gateway");
        assert!(
            n > 0,
            "connection closed before {needle:?}: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// Closes the connection and checks the run's process is killed promptly.
pub(crate) async fn hang_up_and_expect_kill(fake: &FakeCliGateway, sock: TcpStream, run: &Value) {
    let pid = run_pid(run);
    assert!(alive(pid), "the fake CLI should still be running");
    let hung_up = Instant::now();
    drop(sock);
    assert_cleaned_up(fake, run).await;
    let took = hung_up.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "the CLI outlived its client by {took:?}"
    );
}

mod cancellation;
mod cli_contract;
mod cluster;
mod completions;
mod documents;
mod failures;
mod input_tokens;
mod messages;
mod model_map;
mod models;
mod refusals;
mod responses;
mod reuse;
mod robustness;
mod stored_responses;
mod streaming;
mod traces;
