//! Process reuse on the real `claude` CLI against the fake Anthropic API, each measure side by
//! side with its baseline in one run (`cargo bench --bench reuse`, needs `.ci/install-tools`):
//! 1. a burst of 60 concurrent streams of ~3 s each (first token p50/p99, wall time, peak memory
//!    of the gateway and its children, processes spawned) vs the same binary with reuse, the
//!    warm pool and the start line off;
//! 2. 20 sequential stateless requests with one system prompt (processes spawned, CPU per
//!    request with children) vs cold spawns, interleaved;
//! 3. an agent loop of 10 tool round trips through the OpenAI Python SDK
//!    (`agent_loop.py`), per-step latency continuing in place vs replaying, interleaved,
//!    and the API request bodies of both paths compared step by step; then the same for a chat
//!    UI resending the history with one more question (10 steps);
//! 4. the floor: CPU of one bare cold CLI run, and the throughput at saturation (16 in flight)
//!    as a fraction of what the cores allow.
//!
//! CPU and memory come from `/proc` (`tree.rs`); `report.rs` writes the Markdown section, printed
//! and saved as `target/tmp/bench-reuse.md`. `REUSE_BENCH_ONLY=agent` (or `floor`, `burst`,
//! `sequential`, `saturation`, comma-separated) runs only those parts.

mod agent;
#[path = "../common/mod.rs"]
mod common;
#[path = "../../tests/common/fake_anthropic.rs"]
mod fake_anthropic;
mod report;
mod tree;

use agent::{AgentResult, Mode, agent_loop};

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::process::Command;

use common::{Gateway, median};
use fake_anthropic::FakeAnthropic;
use report::{BASELINE, COLD, REPLAY};
use tree::Sampler;

const SYSTEM: &str = "You are the benchmark's assistant. Answer in a few words.";
const BURST: usize = 60;
/// ~3 s per answer at the API: 30 words, 100 ms apart.
const SLOW: &str = "[[words:30]][[delay_ms:100]]";
const SEQUENTIAL: usize = 20;
const ROUNDS: usize = 10;
const IN_FLIGHT: usize = 16;
const WINDOW: Duration = Duration::from_secs(15);
const SAMPLE_EVERY: Duration = Duration::from_millis(50);
const SETTLE: Duration = Duration::from_secs(30);

/// The CLI, the flags every gateway gets, and how to start one against an API.
struct Bench {
    cli: PathBuf,
    args: Vec<String>,
    client: reqwest::Client,
}

impl Bench {
    async fn gateway(&self, api: &FakeAnthropic, extra: &[&str]) -> Gateway {
        let mut args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        args.extend(extra);
        let base_url = api.base_url();
        let env = [
            ("ANTHROPIC_API_KEY", "sk-bench"),
            ("ANTHROPIC_BASE_URL", base_url.as_str()),
        ];
        let gw = Gateway::start(&args, &env).await;
        tree::settle(gw.pid(), SETTLE).await;
        gw
    }
}

/// One completion as the client saw it.
struct Answer {
    status: u16,
    first_token: Option<Duration>,
    total: Duration,
    text: String,
}

impl Answer {
    fn ok(&self, want: &str) -> bool {
        self.status == 200 && self.text == want
    }
}

fn body(user: &str, stream: bool) -> Value {
    json!({"model": "sonnet", "stream": stream, "messages": [
        {"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]})
}

fn words(n: usize) -> String {
    (1..=n)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A streamed completion: the content deltas concatenated, the time to the first one.
async fn stream_chat(client: &reqwest::Client, url: &str, user: &str) -> Answer {
    let start = Instant::now();
    let mut answer = Answer {
        status: 0,
        first_token: None,
        total: Duration::ZERO,
        text: String::new(),
    };
    let run = async {
        let response = client.post(url).json(&body(user, true)).send().await?;
        answer.status = response.status().as_u16();
        let mut stream = response.bytes_stream();
        let mut buf = String::new();
        while let Some(chunk) = stream.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk?));
            while let Some(end) = buf.find('\n') {
                let line: String = buf.drain(..=end).collect();
                let Some(data) = line.trim().strip_prefix("data: ") else {
                    continue;
                };
                let Ok(event) = serde_json::from_str::<Value>(data) else {
                    continue;
                };
                if let Some(text) = event["choices"][0]["delta"]["content"].as_str()
                    && !text.is_empty()
                {
                    answer.first_token.get_or_insert_with(|| start.elapsed());
                    answer.text.push_str(text);
                }
            }
        }
        Ok::<_, reqwest::Error>(())
    };
    match tokio::time::timeout(Duration::from_secs(300), run).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("stream failed: {e}"),
        Err(_) => eprintln!("stream timed out after 300 s"),
    }
    answer.total = start.elapsed();
    answer
}

/// A whole completion.
async fn chat(client: &reqwest::Client, url: &str, user: &str) -> Answer {
    let start = Instant::now();
    let run = async {
        let response = client.post(url).json(&body(user, false)).send().await?;
        let status = response.status().as_u16();
        let v: Value = response.json().await?;
        let text = v["choices"][0]["message"]["content"].as_str();
        Ok::<_, reqwest::Error>((status, text.unwrap_or_default().to_string()))
    };
    let (status, text) = match tokio::time::timeout(Duration::from_secs(300), run).await {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => (0, format!("request failed: {e}")),
        Err(_) => (0, "timed out after 300 s".into()),
    };
    Answer {
        status,
        first_token: None,
        total: start.elapsed(),
        text,
    }
}

pub struct BurstResult {
    first_tokens: Vec<Duration>,
    wall: Duration,
    seen: tree::Seen,
    failed: Vec<String>,
}

async fn burst(bench: &Bench, api: &FakeAnthropic, extra: &[&str]) -> BurstResult {
    let gw = bench.gateway(api, extra).await;
    let url = gw.chat_url();
    let sampler = Sampler::start(gw.pid(), SAMPLE_EVERY);
    let start = Instant::now();
    let answers = futures::future::join_all((0..BURST).map(|i| {
        let user = format!("Burst request {i}. {SLOW}");
        let (client, url) = (bench.client.clone(), url.clone());
        async move { stream_chat(&client, &url, &user).await }
    }))
    .await;
    let wall = start.elapsed();
    let seen = sampler.stop();
    let want = words(30);
    let failed = answers
        .iter()
        .filter(|a| !a.ok(&want))
        .map(|a| {
            format!(
                "{} {:?}",
                a.status,
                a.text.chars().take(120).collect::<String>()
            )
        })
        .collect();
    BurstResult {
        first_tokens: answers.iter().filter_map(|a| a.first_token).collect(),
        wall,
        seen,
        failed,
    }
}

/// One side of the sequential run: its gateway, sampler, CPU at the start, latencies.
struct Side {
    gw: Gateway,
    sampler: Option<Sampler>,
    cpu0: f64,
    /// The tree's CPU-seconds before each request.
    cpu_marks: Vec<f64>,
    latencies: Vec<Duration>,
    failed: Vec<String>,
}

pub struct SideResult {
    spawned: usize,
    cpu_per_request: f64,
    /// The median of the CPU from one request to the next (a spawn in the background, say,
    /// counts in one of them only).
    cpu_per_turn: f64,
    latency: Duration,
    failed: Vec<String>,
}

impl Side {
    async fn new(bench: &Bench, api: &FakeAnthropic, extra: &[&str]) -> Side {
        let gw = bench.gateway(api, extra).await;
        let sampler = Some(Sampler::start(gw.pid(), SAMPLE_EVERY));
        let cpu0 = tree::cpu_secs(gw.pid());
        Side {
            gw,
            sampler,
            cpu0,
            cpu_marks: Vec::new(),
            latencies: Vec::new(),
            failed: Vec::new(),
        }
    }

    async fn finish(mut self, requests: usize) -> SideResult {
        tree::settle(self.gw.pid(), SETTLE).await;
        let end = tree::cpu_secs(self.gw.pid());
        let cpu = end - self.cpu0;
        self.cpu_marks.push(end);
        let mut turns: Vec<f64> = self.cpu_marks.windows(2).map(|w| w[1] - w[0]).collect();
        turns.sort_by(f64::total_cmp);
        let seen = self.sampler.take().map(Sampler::stop).unwrap_or_default();
        SideResult {
            spawned: seen.children.len(),
            cpu_per_request: cpu / requests as f64,
            cpu_per_turn: turns.get(turns.len() / 2).copied().unwrap_or(f64::NAN),
            latency: median(&self.latencies),
            failed: self.failed,
        }
    }
}

/// The sequential requests, interleaved; processes spawned = those seen minus those alive
/// before the first request.
async fn sequential(bench: &Bench, api: &FakeAnthropic) -> (SideResult, SideResult) {
    let mut reuse = Side::new(bench, api, &[]).await;
    let mut cold = Side::new(bench, api, COLD).await;
    let before = (tree::tree(reuse.gw.pid()), tree::tree(cold.gw.pid()));
    let want = words(5);
    for i in 0..SEQUENTIAL {
        for side in [&mut reuse, &mut cold] {
            let user = format!("Sequential question {i}. [[words:5]]");
            side.cpu_marks.push(tree::cpu_secs(side.gw.pid()));
            let answer = chat(&bench.client, &side.gw.chat_url(), &user).await;
            side.latencies.push(answer.total);
            if !answer.ok(&want) {
                side.failed
                    .push(format!("{} {:?}", answer.status, answer.text));
            }
        }
    }
    let alive = |t: &[tree::Stat], root: u32| t.iter().filter(|s| s.ppid == root).count();
    let alive = (
        alive(&before.0, reuse.gw.pid()),
        alive(&before.1, cold.gw.pid()),
    );
    let (mut r, mut c) = (
        reuse.finish(SEQUENTIAL).await,
        cold.finish(SEQUENTIAL).await,
    );
    r.spawned -= alive.0.min(r.spawned);
    c.spawned -= alive.1.min(c.spawned);
    (r, c)
}

/// CPU-seconds of one bare `claude -p` run with the gateway's isolation flags (through `sh`,
/// which reads its own reaped-children time after the CLI exits).
async fn bare_cli_cpu(cli: &Path, base_url: &str, dir: &Path) -> f64 {
    let (stat, out) = (dir.join("stat"), dir.join("out"));
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#""$@" > "$BENCH_OUT" 2>/dev/null; cat /proc/$$/stat > "$BENCH_STAT""#)
        .arg("sh")
        .arg(cli)
        .args(["-p", "Hello [[words:5]]", "--output-format", "stream-json"])
        .args(["--verbose", "--include-partial-messages", "--tools", ""])
        .args(["--setting-sources", "", "--strict-mcp-config"])
        .args(["--no-session-persistence", "--model", "sonnet", "--bare"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .env("ANTHROPIC_API_KEY", "sk-bench")
        .env("ANTHROPIC_BASE_URL", base_url)
        .env("CLAUDE_CODE_MAX_RETRIES", "0")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("BENCH_OUT", &out)
        .env("BENCH_STAT", &stat);
    let status = tokio::time::timeout(Duration::from_secs(60), cmd.status())
        .await
        .expect("bare claude within 60 s")
        .expect("run sh");
    assert!(status.success(), "sh around claude failed");
    let said = std::fs::read_to_string(&out).expect("claude's output");
    assert!(said.contains("w5"), "bare claude did not answer: {said}");
    let text = std::fs::read_to_string(&stat).expect("sh's stat");
    let s = tree::parse_stat(0, &text).expect("parse sh's stat");
    tree::secs(s.reaped)
}

pub struct Saturation {
    per_sec: f64,
    cpu_per_request: f64,
    done: usize,
    failed: usize,
}

/// `IN_FLIGHT` clients asking one after another for `WINDOW`, after one warm-up round.
async fn saturate(bench: &Bench, api: &FakeAnthropic, extra: &[&str]) -> Saturation {
    let gw = bench.gateway(api, extra).await;
    let url = gw.chat_url();
    let want = words(5);
    let round = |deadline: Option<Instant>| {
        futures::future::join_all((0..IN_FLIGHT).map(|w| {
            let (client, url, want) = (bench.client.clone(), url.clone(), want.clone());
            async move {
                // (done within the window, done after it, failed)
                let mut counts = (0, 0, 0);
                for i in 0.. {
                    let user = format!("Worker {w} request {i}. [[words:5]]");
                    let answer = chat(&client, &url, &user).await;
                    let late = deadline.is_none_or(|end| Instant::now() > end);
                    match (answer.ok(&want), late) {
                        (false, _) => counts.2 += 1,
                        (true, false) => counts.0 += 1,
                        (true, true) => counts.1 += 1,
                    }
                    if late {
                        break;
                    }
                }
                counts
            }
        }))
    };
    round(None).await;
    let cpu0 = tree::cpu_secs(gw.pid());
    let start = Instant::now();
    let counts = round(Some(start + WINDOW)).await;
    let cpu = tree::cpu_secs(gw.pid()) - cpu0;
    let elapsed = start.elapsed();
    let done: usize = counts.iter().map(|c| c.0).sum();
    let all = done + counts.iter().map(|c| c.1).sum::<usize>();
    Saturation {
        // Every request sent in the window, over the time until the last one ended: counting
        // only those done within it would round a slow path down to whole rounds.
        per_sec: all as f64 / elapsed.as_secs_f64(),
        cpu_per_request: cpu / all.max(1) as f64,
        done,
        failed: counts.iter().map(|c| c.2).sum(),
    }
}

#[tokio::main]
async fn main() {
    let cli = common::real_cli();
    let cli_arg = cli.to_str().expect("utf-8 path").to_string();
    let args = ["--claude-bin", &cli_arg, "--claude-max-retries", "0"];
    let bench = Bench {
        cli: cli.clone(),
        args: [&args[..], report::LIMITS]
            .concat()
            .iter()
            .map(|s| s.to_string())
            .collect(),
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(128)
            .build()
            .expect("client"),
    };
    let api = FakeAnthropic::start().await;
    let started = Instant::now();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let only = std::env::var("REUSE_BENCH_ONLY").unwrap_or_default();
    let runs = |part: &str| only.is_empty() || only.split(',').any(|p| p.trim() == part);
    let mut r = report::Results {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
        load: load
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        version: cli_version(&cli),
        ..Default::default()
    };

    // 4a. The floor: one cold CLI run (after one to warm the page cache), median of 3.
    if runs("floor") {
        let dir = tempfile::tempdir().expect("tempdir");
        bare_cli_cpu(&bench.cli, &api.base_url(), dir.path()).await;
        let mut cold = Vec::new();
        for _ in 0..3 {
            cold.push(bare_cli_cpu(&bench.cli, &api.base_url(), dir.path()).await);
        }
        cold.sort_by(f64::total_cmp);
        eprintln!("cold CLI run: {cold:?} CPU-s");
        r.cold_cpu = Some(cold[1]);
    }
    // 1. The burst, baseline first, then reuse.
    if runs("burst") {
        let base = burst(&bench, &api, BASELINE).await;
        eprintln!("burst, baseline: wall {:?}", base.wall);
        let reuse = burst(&bench, &api, &[]).await;
        eprintln!("burst, reuse: wall {:?}", reuse.wall);
        r.burst = Some((reuse, base));
    }
    // 2. Sequential requests, interleaved.
    if runs("sequential") {
        let (reuse, cold) = sequential(&bench, &api).await;
        eprintln!(
            "sequential: {:.3} vs {:.3} CPU-s per request",
            reuse.cpu_per_request, cold.cpu_per_request
        );
        r.sequential = Some((reuse, cold));
    }
    // 3. The agent loop.
    if runs("agent") {
        for mode in [Mode::Tools, Mode::Chat] {
            let agent = agent_loop(&bench, mode).await;
            eprintln!("{}: {:?} vs {:?}", mode.arg(), agent.reuse, agent.replay);
            r.agent.push(agent);
        }
    }
    // 4b. Saturation.
    if runs("saturation") {
        let base = saturate(&bench, &api, BASELINE).await;
        let reuse = saturate(&bench, &api, &[]).await;
        eprintln!(
            "saturation: {:.2} vs {:.2} requests/s",
            reuse.per_sec, base.per_sec
        );
        r.saturation = Some((reuse, base));
    }
    r.took = started.elapsed();
    common::report("reuse", &report::markdown(&r));
}

fn cli_version(cli: &Path) -> String {
    let out = std::process::Command::new(cli).arg("--version").output();
    let out = out.map(|o| o.stdout).unwrap_or_default();
    String::from_utf8_lossy(&out).trim().to_string()
}
