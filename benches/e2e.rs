//! End-to-end latency on the real `claude` CLI against the instantly answering fake Anthropic
//! API: time to first token and total time through the gateway (streaming), measured side by side
//! with a bare `claude -p` run with the same isolation flags. Run with `cargo bench --bench e2e`
//! (needs `.ci/install-tools`); prints a Markdown table for BENCHMARKS.md.

#[path = "../tests/common/fake_anthropic.rs"]
mod fake_anthropic;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const RUNS: usize = 10;
const PROMPT: &str = "Hello [[words:20]]";

struct Sample {
    ttft: Duration,
    total: Duration,
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn cli_env(cmd: &mut Command, base_url: &str) {
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .env("ANTHROPIC_API_KEY", "sk-bench")
        .env("ANTHROPIC_BASE_URL", base_url)
        .env("CLAUDE_CODE_MAX_RETRIES", "0")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_AUTOUPDATER", "1");
}

/// `claude -p` with the gateway's isolation flags: spawn → first text delta, spawn → exit.
async fn bare_cli(cli: &Path, base_url: &str, cwd: &Path) -> Sample {
    let mut cmd = Command::new(cli);
    cmd.args([
        "-p",
        PROMPT,
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
        "--tools",
        "",
        "--setting-sources",
        "",
        "--strict-mcp-config",
        "--no-session-persistence",
        "--model",
        "sonnet",
        "--bare",
    ])
    .current_dir(cwd)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    cli_env(&mut cmd, base_url);
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn claude");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut ttft = None;
    while let Ok(Some(line)) = lines.next_line().await {
        if ttft.is_none() && line.contains("\"text_delta\"") {
            ttft = Some(start.elapsed());
        }
    }
    child.wait().await.expect("wait");
    Sample {
        ttft: ttft.expect("no text delta from claude -p"),
        total: start.elapsed(),
    }
}

/// One streamed completion through the gateway: request → first content chunk, → `[DONE]`.
async fn gateway(client: &reqwest::Client, url: &str) -> Sample {
    let body = serde_json::json!({"model": "sonnet", "stream": true,
        "messages": [{"role": "user", "content": PROMPT}]});
    let start = Instant::now();
    let response = client.post(url).json(&body).send().await.expect("request");
    assert!(response.status().is_success(), "{}", response.status());
    let mut stream = response.bytes_stream();
    let mut ttft = None;
    let mut seen = String::new();
    while let Some(chunk) = stream.next().await {
        seen.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
        if ttft.is_none() && seen.contains("\"content\":\"w1") {
            ttft = Some(start.elapsed());
        }
    }
    assert!(seen.contains("[DONE]"));
    Sample {
        ttft: ttft.expect("no content chunk"),
        total: start.elapsed(),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// Starts the gateway binary on the real CLI; returns it and its chat URL.
async fn start_gateway(
    cli: &Path,
    base_url: &str,
    extra: &[&str],
) -> (tokio::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_claude-gateway"))
        .args(["--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"])
        .args(["--claude-bin", cli.to_str().expect("utf-8 path")])
        .args(["--claude-max-retries", "0"])
        .args(extra)
        .env("ANTHROPIC_API_KEY", "sk-bench")
        .env("ANTHROPIC_BASE_URL", base_url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start gateway");
    let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = out
        .next_line()
        .await
        .expect("read")
        .expect("listening line");
    let http = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http="))
        .expect("http=")
        .to_string();
    (child, format!("http://{http}"))
}

/// Waits until the gateway's pool holds `n` idle processes, so no refill runs during a sample.
async fn pool_ready(client: &reqwest::Client, base: &str, n: u64) {
    for _ in 0..200 {
        let health: serde_json::Value = client
            .get(format!("{base}/health"))
            .send()
            .await
            .expect("health")
            .json()
            .await
            .expect("json");
        if health["warm_processes"].as_u64() == Some(n) {
            // Let the new process finish starting up before it is timed.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("pool never refilled");
}

#[tokio::main]
async fn main() {
    let cli = std::env::var_os("CLAUDE_REAL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo(".tools/node_modules/.bin/claude"));
    if !cli.exists() {
        eprintln!("{} missing: run .ci/install-tools first", cli.display());
        std::process::exit(2);
    }
    let api = fake_anthropic::FakeAnthropic::start().await;
    let cwd = tempfile::tempdir().expect("tempdir");
    let (_cold_gw, cold) = start_gateway(&cli, &api.base_url(), &["--pool-size", "0"]).await;
    let (_warm_gw, warm) = start_gateway(
        &cli,
        &api.base_url(),
        &["--pool-size", "1", "--pool-models", "sonnet"],
    )
    .await;
    let client = reqwest::Client::new();
    let chat = |base: &str| format!("{base}/v1/chat/completions");

    // Warm the page cache and every path once, then interleave the runs.
    bare_cli(&cli, &api.base_url(), cwd.path()).await;
    gateway(&client, &chat(&cold)).await;
    pool_ready(&client, &warm, 1).await;
    gateway(&client, &chat(&warm)).await;
    let (mut bare, mut cold_s, mut warm_s) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        pool_ready(&client, &warm, 1).await;
        bare.push(bare_cli(&cli, &api.base_url(), cwd.path()).await);
        cold_s.push(gateway(&client, &chat(&cold)).await);
        warm_s.push(gateway(&client, &chat(&warm)).await);
    }
    let row = |name: &str, s: &[Sample], base: &[Sample]| {
        let ttft = median(s.iter().map(|x| x.ttft).collect());
        let total = median(s.iter().map(|x| x.total).collect());
        let base_ttft = median(base.iter().map(|x| x.ttft).collect());
        let base_total = median(base.iter().map(|x| x.total).collect());
        println!(
            "| {name} | {} | {:.2}× | {} | {:.2}× |",
            ms(ttft),
            ttft.as_secs_f64() / base_ttft.as_secs_f64(),
            ms(total),
            total.as_secs_f64() / base_total.as_secs_f64()
        );
    };
    let version = std::process::Command::new(&cli)
        .arg("--version")
        .output()
        .expect("version")
        .stdout;
    println!(
        "Real claude CLI {}, fake Anthropic API answering instantly (20 words), {RUNS} interleaved runs, medians.\n",
        String::from_utf8_lossy(&version).trim()
    );
    println!("| path | time to first token (ms) | vs bare CLI | total (ms) | vs bare CLI |");
    println!("|---|---|---|---|---|");
    row("bare `claude -p`, same flags (baseline)", &bare, &bare);
    row("gateway, cold spawn per request", &cold_s, &bare);
    row("gateway, warm pool", &warm_s, &bare);
}
