//! What the gateway adds to a completion, measured against the CLI it drives, with the instant
//! fake CLI (`tests/fixtures/instant_claude.c`) so that nothing but the gateway's own work is
//! left to see. The baseline ("direct") spawns that same fake with the gateway's argv, writes the
//! same two stdin lines (`initialize`, the user message) and times spawn → `result` line. The
//! gateway rows time an HTTP request → the whole body (streamed SSE to `[DONE]`, or the JSON
//! answer) with `--pool-size 0`, plus rows with a warm pool (one process waiting, c=1). Latency
//! p50/p99 at concurrency 1, 16 and 64, throughput, and the gateway's own CPU time per request,
//! all in one run, the paths interleaved round by round. Run with `cargo bench --bench overhead`.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use claude_gateway::claude::argv::{SpawnSpec, build_args};
use futures::StreamExt;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use common::{Gateway, median, ms, quantile, verdict};

const PROMPT: &str = "Hello [[words:4]]";
const CONCURRENCY: [usize; 3] = [1, 16, 64];
/// Rounds per concurrency level; each round runs every path once, in turn.
const ROUNDS: usize = 3;
/// Requests per worker in one round, by concurrency level (about 100-250 requests a round).
fn per_worker(c: usize) -> usize {
    match c {
        1 => 100,
        16 => 10,
        _ => 4,
    }
}
const WARM_SAMPLES: usize = 30;
/// USER_HZ of /proc/<pid>/stat times (100 on every Linux architecture the gateway targets).
const TICKS_PER_SEC: f64 = 100.0;

/// Spawning the fake CLI ourselves, the way the gateway does minus the gateway.
struct Direct {
    cli: PathBuf,
    args: Vec<String>,
    lines: [String; 2],
    cwd: tempfile::TempDir,
}

impl Direct {
    fn new(cli: PathBuf) -> Direct {
        let args = build_args(&SpawnSpec {
            model: "sonnet".into(),
            bare: true,
            effort: None,
        });
        let init = json!({"type": "control_request", "request_id": "init_1",
            "request": {"subtype": "initialize", "systemPrompt": [""]}});
        let user = json!({"type": "user", "session_id": "",
            "message": {"role": "user", "content": [{"type": "text", "text": PROMPT}]},
            "parent_tool_use_id": null});
        Direct {
            cli,
            args,
            lines: [init.to_string(), user.to_string()],
            cwd: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Spawn → the `result` line; the child is reaped afterwards, off the clock.
    async fn once(&self) -> Duration {
        let start = Instant::now();
        let mut child = Command::new(&self.cli)
            .args(&self.args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .current_dir(self.cwd.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the fake CLI");
        let mut stdin = child.stdin.take().expect("stdin");
        for line in &self.lines {
            stdin
                .write_all(format!("{line}\n").as_bytes())
                .await
                .expect("write stdin");
            stdin.flush().await.expect("flush stdin");
        }
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        loop {
            let line = lines.next_line().await.expect("read stdout");
            if line
                .expect("result line before EOF")
                .contains("\"type\":\"result\"")
            {
                break;
            }
        }
        let elapsed = start.elapsed();
        drop(stdin);
        child.wait().await.expect("wait");
        elapsed
    }
}

#[derive(Clone)]
enum Target {
    Direct(Arc<Direct>),
    Gateway {
        client: reqwest::Client,
        url: String,
        body: bytes::Bytes,
        stream: bool,
    },
}

impl Target {
    fn gateway(client: &reqwest::Client, url: String, stream: bool) -> Target {
        let body = json!({"model": "sonnet", "stream": stream,
            "messages": [{"role": "user", "content": PROMPT}]});
        Target::Gateway {
            client: client.clone(),
            url,
            body: serde_json::to_vec(&body).expect("body").into(),
            stream,
        }
    }

    /// One request → the whole answer.
    async fn once(&self) -> Duration {
        match self {
            Target::Direct(direct) => direct.once().await,
            Target::Gateway {
                client,
                url,
                body,
                stream,
            } => gateway_once(client, url, body.clone(), *stream).await,
        }
    }
}

async fn gateway_once(
    client: &reqwest::Client,
    url: &str,
    body: bytes::Bytes,
    stream: bool,
) -> Duration {
    let start = Instant::now();
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request");
    assert!(response.status().is_success(), "{}", response.status());
    let mut seen = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        seen.extend_from_slice(&chunk.expect("body chunk"));
    }
    let elapsed = start.elapsed();
    let text = String::from_utf8_lossy(&seen);
    let expected = if stream { "[DONE]" } else { "w4" };
    assert!(text.contains(expected), "unexpected answer: {text}");
    elapsed
}

/// `c` workers, each running `n` requests back to back: every latency, and the wall time.
async fn load(target: &Target, c: usize, n: usize) -> (Vec<Duration>, Duration) {
    let start = Instant::now();
    let workers: Vec<_> = (0..c)
        .map(|_| {
            let target = target.clone();
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(n);
                for _ in 0..n {
                    samples.push(target.once().await);
                }
                samples
            })
        })
        .collect();
    let mut all = Vec::with_capacity(c * n);
    for worker in workers {
        all.extend(worker.await.expect("worker"));
    }
    (all, start.elapsed())
}

/// CPU seconds (user + system) the process has used so far, its own threads only.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state(0) ... utime(11) stime(12).
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    ticks as f64 / TICKS_PER_SEC
}

/// One row's measurements, accumulated over rounds.
#[derive(Default)]
struct Row {
    samples: Vec<Duration>,
    wall: Duration,
    /// Gateway CPU seconds; `None` for the direct baseline.
    cpu: Option<f64>,
}

impl Row {
    fn throughput(&self) -> f64 {
        self.samples.len() as f64 / self.wall.as_secs_f64()
    }

    /// Runs `c` workers of `n` requests on `target` and adds what they measured.
    async fn add(&mut self, target: &Target, pid: Option<u32>, c: usize, n: usize) {
        let before = pid.map(cpu_secs);
        let (samples, wall) = load(target, c, n).await;
        if let (Some(pid), Some(before)) = (pid, before) {
            *self.cpu.get_or_insert(0.0) += cpu_secs(pid) - before;
        }
        self.samples.extend(samples);
        self.wall += wall;
    }

    fn markdown(&self, c: usize, name: &str, base: &Row) -> String {
        let (p50, base_p50) = (median(&self.samples), median(&base.samples));
        let added = p50.as_secs_f64() - base_p50.as_secs_f64();
        let cpu = self.cpu.map_or("–".to_string(), |cpu| {
            format!("{:.2}", cpu * 1000.0 / self.samples.len() as f64)
        });
        format!(
            "| {c} | {name} | {} | {} | {} | {:+.2} | {:.2}× | {:.0} | {:.2}× | {cpu} |\n",
            self.samples.len(),
            ms(p50, 2),
            ms(quantile(&self.samples, 0.99), 2),
            added * 1000.0,
            p50.as_secs_f64() / base_p50.as_secs_f64(),
            self.throughput(),
            self.throughput() / base.throughput(),
        )
    }
}

/// A way to get an answer: the direct baseline or one gateway configuration.
struct Lane {
    name: &'static str,
    target: Target,
    /// The gateway whose CPU is counted.
    pid: Option<u32>,
}

/// The gateways under test: no pool, no pool with the work dir on tmpfs, a warm pool of one.
struct Gateways {
    cold: Gateway,
    cold_shm: Gateway,
    warm: Gateway,
    _shm: tempfile::TempDir,
}

async fn start_gateways(cli: &str) -> Gateways {
    let mut limits = common::max_processes_args(128);
    limits.extend(common::no_reuse_args());
    let cold_args: Vec<&str> = ["--claude-bin", cli, "--pool-size", "0"]
        .into_iter()
        .chain(limits.iter().map(String::as_str))
        .collect();
    let shm = tempfile::tempdir_in("/dev/shm").expect("a directory in /dev/shm");
    let shm_dir = shm.path().to_str().expect("utf-8 path").to_string();
    let shm_args = [&cold_args[..], &["--work-dir", &shm_dir]].concat();
    let warm_args = [
        &cold_args[..],
        &["--pool-size", "1", "--pool-models", "sonnet"],
    ]
    .concat();
    let env = [("ANTHROPIC_API_KEY", "sk-bench")];
    Gateways {
        cold: Gateway::start(&cold_args, &env).await,
        cold_shm: Gateway::start(&shm_args, &env).await,
        warm: Gateway::start(&warm_args, &env).await,
        _shm: shm,
    }
}

/// Every lane at every concurrency level, interleaved round by round: `rows[level][lane]`.
async fn measure_cold(lanes: &[Lane]) -> Vec<Vec<Row>> {
    // The first requests pay for lazy initialisation (the tokenizer, connections).
    for lane in lanes {
        load(&lane.target, 1, 20).await;
        load(&lane.target, 16, 2).await;
    }
    let mut rows: Vec<Vec<Row>> = CONCURRENCY
        .iter()
        .map(|_| lanes.iter().map(|_| Row::default()).collect())
        .collect();
    for (level, &c) in CONCURRENCY.iter().enumerate() {
        for _ in 0..ROUNDS {
            for (lane, row) in lanes.iter().zip(rows[level].iter_mut()) {
                row.add(&lane.target, lane.pid, c, per_worker(c)).await;
            }
        }
    }
    rows
}

/// The warm pool: one request at a time, each taking a process already running.
async fn measure_warm(gw: &Gateway, client: &reqwest::Client, stream: bool) -> Row {
    let target = Target::gateway(client, gw.chat_url(), stream);
    let mut row = Row::default();
    for _ in 0..WARM_SAMPLES {
        gw.pool_ready(client, 1).await;
        // Let the new process reach its stdin read before it is timed.
        tokio::time::sleep(Duration::from_millis(20)).await;
        row.add(&target, Some(gw.pid()), 1, 1).await;
    }
    row
}

const INTRO: &str = "Instant fake CLI (C, `tests/fixtures/instant_claude.c`: the 13 lines of a \
    real 4-delta answer), same argv and stdin lines on both sides. Latency is request → last \
    byte (direct: spawn → `result` line). Gateway CPU: the gateway process's user + system time \
    over the row's requests (`/proc/<pid>/stat`, 10 ms ticks; the `claude` children are not \
    counted).\n\n\
    | concurrency | path | requests | p50 (ms) | p99 (ms) | p50 − direct (ms) | p50 vs direct \
    | throughput (req/s) | vs direct | gateway CPU / request (ms) |\n\
    |---|---|---|---|---|---|---|---|---|---|\n";

#[tokio::main]
async fn main() {
    let cli = common::instant_cli();
    let gws = start_gateways(cli.to_str().expect("utf-8 path")).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .build()
        .expect("client");
    let lanes = [
        Lane {
            name: "direct spawn of the fake CLI (baseline)",
            target: Target::Direct(Arc::new(Direct::new(cli.clone()))),
            pid: None,
        },
        Lane {
            name: "gateway, streaming, no pool",
            target: Target::gateway(&client, gws.cold.chat_url(), true),
            pid: Some(gws.cold.pid()),
        },
        Lane {
            name: "gateway, non-streaming, no pool",
            target: Target::gateway(&client, gws.cold.chat_url(), false),
            pid: Some(gws.cold.pid()),
        },
        Lane {
            name: "gateway, non-streaming, no pool, `--work-dir` on tmpfs",
            target: Target::gateway(&client, gws.cold_shm.chat_url(), false),
            pid: Some(gws.cold_shm.pid()),
        },
    ];
    let rows = measure_cold(&lanes).await;
    let warm = [
        ("gateway, streaming, warm pool", true),
        ("gateway, non-streaming, warm pool", false),
    ];
    let mut warm_rows = Vec::new();
    for (name, stream) in warm {
        warm_rows.push((name, measure_warm(&gws.warm, &client, stream).await));
    }

    let mut md = format!("{ROUNDS} interleaved rounds per concurrency level. {INTRO}");
    for (level, &c) in CONCURRENCY.iter().enumerate() {
        for (lane, row) in lanes.iter().zip(&rows[level]) {
            md.push_str(&row.markdown(c, lane.name, &rows[level][0]));
        }
    }
    for (name, row) in &warm_rows {
        md.push_str(&row.markdown(1, name, &rows[0][0]));
    }
    md.push_str(
        "\nWarm-pool rows: one request at a time, each after the pool refilled, so their \
         throughput column is not a load figure, and their CPU column (30 requests of 10 ms \
         ticks) is ±0.3 ms.\n\n",
    );
    let base_p50 = median(&rows[0][0].samples).as_secs_f64();
    for (lane, row) in lanes.iter().zip(&rows[0]).skip(1) {
        let added = median(&row.samples).as_secs_f64() - base_p50;
        md.push_str(&format!(
            "- Target ≤ 1 ms added at p50, c=1 — {}: {:+.2} ms → {}\n",
            lane.name,
            added * 1000.0,
            verdict(added <= 0.001)
        ));
    }
    common::report("overhead", &md);
}
