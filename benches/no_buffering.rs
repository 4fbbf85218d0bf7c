//! Streaming adds no buffering: the instant fake CLI prints one token every 100 ms and logs the
//! wall-clock time right after each `write(2)` (`INSTANT_CLAUDE_LOG`, passed through with
//! `--pass-env`); the client timestamps each SSE chunk as it arrives. Per token, arrival − print
//! is the time the token spent in the gateway (plus loopback). Measured for one stream at a
//! time, for one stream with 10 ms between tokens (a fast model), and for 100 concurrent streams;
//! the baseline reads the same fake's stdout directly. Run with
//! `cargo bench --bench no_buffering`.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use common::{Gateway, quantile, verdict};

/// A token: its stream's tag and its number.
type Token = (String, u64);

/// The target: every token within this long of the CLI printing it.
const TARGET: Duration = Duration::from_millis(5);

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64
}

fn prompt(tag: &str, words: u32, delay_ms: u32) -> String {
    format!("Count [[tag:{tag}]] [[words:{words}]] [[delay_ms:{delay_ms}]]")
}

/// `"a1-12 "` → `("a1-", 12)`.
fn token_of(text: &str) -> Option<Token> {
    let (tag, n) = text.trim_end().rsplit_once('-')?;
    Some((format!("{tag}-"), n.parse().ok()?))
}

/// The `text` of a stream-json text delta, or the `content` of an SSE chunk.
fn field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let start = json.find(key)? + key.len();
    let len = json[start..].find('"')?;
    Some(&json[start..start + len])
}

/// One streamed completion through the gateway: when each token's chunk arrived.
async fn via_gateway(client: &reqwest::Client, url: &str, prompt: String) -> Vec<(Token, u64)> {
    let body = json!({"model": "sonnet", "stream": true,
        "messages": [{"role": "user", "content": prompt}]});
    let response = client.post(url).json(&body).send().await.expect("request");
    assert!(response.status().is_success(), "{}", response.status());
    let mut arrivals = Vec::new();
    let mut buf = String::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let at = now_ns();
        buf.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            if let Some(token) = field(&frame, "\"content\":\"").and_then(token_of) {
                arrivals.push((token, at));
            }
        }
    }
    arrivals
}

/// The baseline: the same fake CLI's stdout read directly, no gateway in between.
async fn direct(cli: &Path, log: &Path, prompt: String) -> Vec<(Token, u64)> {
    let cwd = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(cli)
        .env("INSTANT_CLAUDE_LOG", log)
        .current_dir(cwd.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the fake CLI");
    let user = json!({"type": "user", "session_id": "", "parent_tool_use_id": null,
        "message": {"role": "user", "content": [{"type": "text", "text": prompt}]}});
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{user}\n").as_bytes())
        .await
        .expect("write");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut arrivals = Vec::new();
    while let Some(line) = lines.next_line().await.expect("read") {
        let at = now_ns();
        if let Some(token) = field(&line, "\"text_delta\",\"text\":\"").and_then(token_of) {
            arrivals.push((token, at));
        }
        if line.contains("\"type\":\"result\"") {
            break;
        }
    }
    drop(stdin);
    child.wait().await.expect("wait");
    arrivals
}

/// When the CLI printed each token, from its log.
fn printed(log: &Path) -> HashMap<Token, u64> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let tag = f.next()?.to_string();
            let n = f.next()?.parse().ok()?;
            Some(((tag, n), f.next()?.parse().ok()?))
        })
        .collect()
}

/// arrival − print for every token that arrived (all must have been printed), slowest first.
fn delays(arrivals: &[(Token, u64)], printed: &HashMap<Token, u64>) -> Vec<(Duration, Token)> {
    let mut delays: Vec<(Duration, Token)> = arrivals
        .iter()
        .map(|(token, at)| {
            let print = printed
                .get(token)
                .unwrap_or_else(|| panic!("token {token:?} arrived but was never printed"));
            (
                Duration::from_nanos(at.saturating_sub(*print)),
                token.clone(),
            )
        })
        .collect();
    delays.sort_by(|a, b| b.cmp(a));
    delays
}

struct Scenario {
    name: &'static str,
    /// Every token's (name, arrival time).
    arrivals: Vec<(Token, u64)>,
    expected_tokens: usize,
}

/// `streams` concurrent streams of `words` tokens `delay_ms` apart, tagged `<prefix><i>-`.
async fn concurrent(
    client: &reqwest::Client,
    url: &str,
    prefix: &str,
    streams: usize,
    (words, delay_ms): (u32, u32),
) -> Vec<(Token, u64)> {
    let tasks: Vec<_> = (0..streams)
        .map(|i| {
            let (client, url) = (client.clone(), url.to_string());
            let prompt = prompt(&format!("{prefix}{i}-"), words, delay_ms);
            tokio::spawn(async move { via_gateway(&client, &url, prompt).await })
        })
        .collect();
    let mut arrivals = Vec::new();
    for task in tasks {
        arrivals.extend(task.await.expect("stream task"));
    }
    arrivals
}

/// The scenarios, one after another; the baseline first.
async fn run_scenarios(cli: &Path, log: &Path, gw: &Gateway) -> Vec<Scenario> {
    let client = reqwest::Client::new();
    let url = gw.chat_url();
    via_gateway(&client, &url, prompt("warm-", 2, 0)).await;
    let mut baseline = Vec::new();
    for i in 0..2 {
        baseline.extend(direct(cli, log, prompt(&format!("d{i}-"), 20, 100)).await);
    }
    let mut slow = Vec::new();
    for i in 0..3 {
        slow.extend(via_gateway(&client, &url, prompt(&format!("a{i}-"), 20, 100)).await);
    }
    let mut fast = Vec::new();
    for i in 0..2 {
        fast.extend(via_gateway(&client, &url, prompt(&format!("f{i}-"), 100, 10)).await);
    }
    let loaded = concurrent(&client, &url, "c", 100, (20, 100)).await;
    vec![
        Scenario {
            name: "direct read of the CLI's stdout (baseline), 1 stream, 100 ms",
            arrivals: baseline,
            expected_tokens: 40,
        },
        Scenario {
            name: "gateway, 1 stream, a token every 100 ms",
            arrivals: slow,
            expected_tokens: 60,
        },
        Scenario {
            name: "gateway, 1 stream, a token every 10 ms",
            arrivals: fast,
            expected_tokens: 200,
        },
        Scenario {
            name: "gateway, 100 concurrent streams, 100 ms",
            arrivals: loaded,
            expected_tokens: 2000,
        },
    ]
}

fn markdown(scenarios: &[Scenario], printed: &HashMap<Token, u64>) -> String {
    let mut md = String::from(
        "Per token: client arrival − the fake CLI's print time (both wall clock, same machine). \
         Tokens are named `<stream><n>`.\n\n\
         | path | tokens | p50 (ms) | p99 (ms) | max (ms) | every token ≤ 5 ms | slowest tokens (ms) |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for s in scenarios {
        let delays = delays(&s.arrivals, printed);
        assert_eq!(delays.len(), s.expected_tokens, "{}: tokens lost", s.name);
        let samples: Vec<Duration> = delays.iter().map(|(d, _)| *d).collect();
        let max = samples[0];
        let slowest: Vec<String> = delays
            .iter()
            .take(3)
            .map(|(d, (tag, n))| format!("{tag}{n}: {}", common::ms(*d, 1)))
            .collect();
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            s.name,
            samples.len(),
            common::ms(quantile(&samples, 0.5), 2),
            common::ms(quantile(&samples, 0.99), 2),
            common::ms(max, 2),
            verdict(max <= TARGET),
            slowest.join(", "),
        ));
    }
    md
}

#[tokio::main]
async fn main() {
    let cli = common::instant_cli();
    let dir = tempfile::tempdir().expect("tempdir");
    let log: PathBuf = dir.path().join("tokens.log");
    let log_arg = log.to_str().expect("utf-8 path");
    let cli_arg = cli.to_str().expect("utf-8 path");
    let mut limits = common::max_processes_args(128);
    limits.extend(common::no_reuse_args());
    let args: Vec<&str> = [
        "--claude-bin",
        cli_arg,
        "--pool-size",
        "0",
        "--pass-env",
        "INSTANT_CLAUDE_LOG",
    ]
    .into_iter()
    .chain(limits.iter().map(String::as_str))
    .collect();
    let env = [
        ("ANTHROPIC_API_KEY", "sk-bench"),
        ("INSTANT_CLAUDE_LOG", log_arg),
    ];
    let gw = Gateway::start(&args, &env).await;
    let scenarios = run_scenarios(&cli, &log, &gw).await;
    common::report("no_buffering", &markdown(&scenarios, &printed(&log)));
}
