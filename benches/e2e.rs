//! End-to-end latency on the real `claude` CLI against the instantly answering fake Anthropic
//! API: time to first token and total time through the gateway (streaming), measured side by side
//! with a bare `claude -p` run with the same isolation flags. Run with `cargo bench --bench e2e`
//! (needs `.ci/install-tools`); prints a Markdown table for BENCHMARKS.md.

mod common;
#[path = "../tests/common/fake_anthropic.rs"]
mod fake_anthropic;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use common::{Gateway, median, ms, verdict};

const RUNS: usize = 10;
const PROMPT: &str = "Hello [[words:20]]";

struct Sample {
    ttft: Duration,
    total: Duration,
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

/// Waits until the pool holds its one process, then lets it finish starting up, so no refill
/// runs during a sample.
async fn pool_settled(gw: &Gateway, client: &reqwest::Client) {
    gw.pool_ready(client, 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

#[tokio::main]
async fn main() {
    let cli = common::real_cli();
    let api = fake_anthropic::FakeAnthropic::start().await;
    let base_url = api.base_url();
    let cwd = tempfile::tempdir().expect("tempdir");
    let cli_arg = cli.to_str().expect("utf-8 path");
    let no_reuse = common::no_reuse_args();
    let common_args: Vec<&str> = ["--claude-bin", cli_arg, "--claude-max-retries", "0"]
        .into_iter()
        .chain(no_reuse.iter().map(String::as_str))
        .collect();
    let env = [
        ("ANTHROPIC_API_KEY", "sk-bench"),
        ("ANTHROPIC_BASE_URL", base_url.as_str()),
    ];
    let cold = Gateway::start(&[&common_args[..], &["--pool-size", "0"]].concat(), &env).await;
    let warm = Gateway::start(
        &[
            &common_args[..],
            &["--pool-size", "1", "--pool-models", "sonnet"],
        ]
        .concat(),
        &env,
    )
    .await;
    let client = reqwest::Client::new();

    // Warm the page cache and every path once, then interleave the runs.
    bare_cli(&cli, &base_url, cwd.path()).await;
    gateway(&client, &cold.chat_url()).await;
    pool_settled(&warm, &client).await;
    gateway(&client, &warm.chat_url()).await;
    let (mut bare, mut cold_s, mut warm_s) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        pool_settled(&warm, &client).await;
        bare.push(bare_cli(&cli, &base_url, cwd.path()).await);
        cold_s.push(gateway(&client, &cold.chat_url()).await);
        warm_s.push(gateway(&client, &warm.chat_url()).await);
    }
    let ttft = |s: &[Sample]| median(&s.iter().map(|x| x.ttft).collect::<Vec<_>>());
    let total = |s: &[Sample]| median(&s.iter().map(|x| x.total).collect::<Vec<_>>());
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    let version = std::process::Command::new(&cli)
        .arg("--version")
        .output()
        .expect("version")
        .stdout;
    let mut md = format!(
        "Real claude CLI {}, fake Anthropic API answering instantly (20 words), {RUNS} \
         interleaved runs, medians.\n\n\
         | path | time to first token (ms) | vs bare CLI | total (ms) | vs bare CLI |\n\
         |---|---|---|---|---|\n",
        String::from_utf8_lossy(&version).trim()
    );
    for (name, s) in [
        ("bare `claude -p`, same flags (baseline)", &bare),
        ("gateway, cold spawn per request", &cold_s),
        ("gateway, warm pool", &warm_s),
    ] {
        md.push_str(&format!(
            "| {name} | {} | {:.2}× | {} | {:.2}× |\n",
            ms(ttft(s), 1),
            ratio(ttft(s), ttft(&bare)),
            ms(total(s), 1),
            ratio(total(s), total(&bare)),
        ));
    }
    let warm_ratio = ratio(ttft(&warm_s), ttft(&bare));
    md.push_str(&format!(
        "\n- Target: warm time to first token ≤ 0.35× the bare cold CLI — {warm_ratio:.2}× → {}\n",
        verdict(warm_ratio <= 0.35)
    ));
    common::report("e2e", &md);
}
