//! Shared test harness: the fake Anthropic API, OpenAI schema validation, and `Gateway`, which
//! runs the real `claude-gateway` binary on 127.0.0.1 port 0 and waits for its "listening" line
//! (no sleeps for readiness). Each integration test file uses the parts it needs.
#![allow(dead_code, clippy::unwrap_used)]

pub mod clients;
pub mod fake_anthropic;
pub mod netns;
pub mod openai_schema;
pub mod procs;
pub mod skip;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_claude-gateway");

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The fake CLI used by hermetic tests.
pub fn fake_cli() -> PathBuf {
    repo_path("tests/fixtures/fake_claude.py")
}

/// The real `claude` CLI installed by `.ci/install-tools` (or `CLAUDE_REAL_BIN`). Missing, it
/// fails the test (`skip::missing`), unless the run opted out of such tests visibly.
pub fn real_cli() -> Option<PathBuf> {
    let path = std::env::var_os("CLAUDE_REAL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_path(".tools/node_modules/.bin/claude"));
    if path.exists() {
        return Some(path);
    }
    skip::missing(
        &format!("the real claude CLI ({})", path.display()),
        "run .ci/install-tools",
    );
    None
}

/// A tool installed under `.tools/` (`node_modules/.bin/buf`, `venv/bin/python`, …), with the
/// same rule as `real_cli`.
pub fn tool(rel: &str) -> Option<PathBuf> {
    let path = repo_path(".tools").join(rel);
    if path.exists() {
        return Some(path);
    }
    skip::missing(&path.display().to_string(), "run .ci/install-tools");
    None
}

/// A running gateway binary. Killed (SIGKILL) when dropped.
pub struct Gateway {
    pub child: Child,
    pub http: String,
    pub grpc: String,
    pub stderr_log: PathBuf,
    _dir: tempfile::TempDir,
}

pub struct GatewayBuilder {
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Gateway {
    pub fn builder() -> GatewayBuilder {
        GatewayBuilder {
            // No warm pool unless a test asks for one: tests count the processes they cause.
            args: vec![
                "--http-addr".into(),
                "127.0.0.1:0".into(),
                "--grpc-addr".into(),
                "127.0.0.1:0".into(),
                "--pool-size".into(),
                "0".into(),
                // Nor the startup process that learns the CLI's model ids.
                "--discover-models".into(),
                "false".into(),
            ],
            env: Vec::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.http, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("gateway running")
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }
}

impl GatewayBuilder {
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, items: I) -> Self {
        self.args.extend(items.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, k: &str, v: impl Into<String>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    pub async fn start(self) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let mut args = self.args;
        if !args.iter().any(|a| a == "--session-store") {
            // Sessions live in the test's own directory unless the test chooses.
            args.push("--session-store".into());
            args.push(dir.path().join("sessions").display().to_string());
        }
        let stderr_log = dir.path().join("stderr.log");
        let stderr = std::fs::File::create(&stderr_log).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(&args)
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("ANTHROPIC_BASE_URL")
            .env_remove("PORT")
            .env("RUST_LOG", "claude_gateway=debug,info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("start claude-gateway");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("gateway did not print its listening line within 30 s")
            .unwrap()
            .unwrap_or_else(|| {
                panic!(
                    "gateway exited before listening: {}",
                    std::fs::read_to_string(&stderr_log).unwrap_or_default()
                )
            });
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in `{line}`"))
                .to_string()
        };
        let http = format!("http://{}", field("http="));
        let grpc = format!("http://{}", field("grpc="));
        // Keep draining stdout so the gateway never blocks on it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Gateway {
            child,
            http,
            grpc,
            stderr_log,
            _dir: dir,
        }
    }
}

/// A gateway on the fake CLI, its logs (argv, env, stdin of every run) written to a temp dir.
pub struct FakeCliGateway {
    pub gw: Gateway,
    pub log_dir: tempfile::TempDir,
}

impl FakeCliGateway {
    pub async fn start(extra: &[&str]) -> Self {
        let log_dir = tempfile::tempdir().unwrap();
        let gw = Gateway::builder()
            .args(["--claude-bin", fake_cli().to_str().unwrap()])
            .args(["--pass-env", "FAKE_CLAUDE_LOG_DIR"])
            .args(extra.iter().copied())
            .env("FAKE_CLAUDE_LOG_DIR", log_dir.path().to_str().unwrap())
            .start()
            .await;
        FakeCliGateway { gw, log_dir }
    }

    /// The prompts the fake CLI got (its user lines that started a turn), over all its runs:
    /// how many requests reached it (one process may serve several).
    pub fn prompts(&self) -> usize {
        fake_prompts(self.log_dir.path())
    }

    /// Every run's log written by the fake CLI (argv, cwd, env, stdin lines).
    pub fn runs(&self) -> Vec<Value> {
        fake_runs(self.log_dir.path())
    }
}

/// The prompts of the fake CLI runs logged in `dir` (see `FakeCliGateway::prompts`).
pub fn fake_prompts(dir: &Path) -> usize {
    fake_runs(dir)
        .iter()
        .flat_map(|r| r["stdin"].as_array().cloned().unwrap_or_default())
        .filter(|l| l["type"] == "user" && l.get("shouldQuery").is_none())
        .count()
}

/// The fake CLI runs logged in `dir` (its FAKE_CLAUDE_LOG_DIR), oldest first.
pub fn fake_runs(dir: &Path) -> Vec<Value> {
    let mut runs: Vec<(std::time::SystemTime, Value)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            // Not the `.json.tmp` it is rewriting: that would count a run twice.
            if e.path().extension()? != "json" {
                return None;
            }
            let modified = e.metadata().ok()?.modified().ok()?;
            let text = std::fs::read_to_string(e.path()).ok()?;
            Some((modified, serde_json::from_str(&text).ok()?))
        })
        .collect();
    runs.sort_by_key(|(t, _)| *t);
    runs.into_iter().map(|(_, v)| v).collect()
}

/// The gateway on the real CLI against a fake Anthropic API, with `extra` flags.
pub async fn real_cli_gateway(
    cli: &Path,
    api: &fake_anthropic::FakeAnthropic,
    extra: &[&str],
) -> Gateway {
    Gateway::builder()
        .args([
            "--claude-bin",
            cli.to_str().unwrap(),
            "--claude-max-retries",
            "0",
        ])
        .args(extra.iter().copied())
        .env("ANTHROPIC_API_KEY", "sk-test")
        .env("ANTHROPIC_BASE_URL", api.base_url())
        .start()
        .await
}

/// Runs `cmd` to completion, capturing its output (killed if the test's timeout drops it).
pub async fn run(cmd: &mut Command) -> std::process::Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A command's status and output, for an assertion message.
pub fn describe(what: &str, out: &std::process::Output) -> String {
    format!(
        "{what}: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

pub fn chat_body(model: &str, text: &str) -> Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

/// POSTs a chat request and returns (status, headers, JSON body).
pub async fn post_json(url: &str, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = client().post(url).json(body).send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, headers, json)
}

/// One SSE `data:` payload with the time it arrived.
pub struct SseEvent {
    pub data: String,
    pub at: std::time::Instant,
}

/// POSTs a streaming request and collects every SSE data payload until the body ends.
pub async fn post_sse(url: &str, body: &Value) -> (u16, reqwest::header::HeaderMap, Vec<SseEvent>) {
    let response = client().post(url).json(body).send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut events = Vec::new();
    let mut buf = String::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            for line in frame.lines() {
                if let Some(data) = line.strip_prefix("data: ") {
                    events.push(SseEvent {
                        data: data.to_string(),
                        at: std::time::Instant::now(),
                    });
                }
            }
        }
    }
    (status, headers, events)
}

/// The chunks of an SSE stream as JSON (without the final `[DONE]`), checking it ends with it.
pub fn chunks(events: &[SseEvent]) -> Vec<Value> {
    assert_eq!(
        events.last().map(|e| e.data.as_str()),
        Some("[DONE]"),
        "stream must end with [DONE]"
    );
    events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect()
}

pub fn content_of(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

/// Processes whose command line mentions `needle` (other than this test process).
pub fn processes_matching(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

/// Waits (bounded) until `check` holds.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..100 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}
