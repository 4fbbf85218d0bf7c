//! Scale-out: throughput of one façade in front of 1 and then 3 workers, with the instant fake
//! CLI sleeping in each answer (`[[delay_ms]]`), so a worker's process budget, not the 2 cores,
//! is what limits it — the shape of real turns, which wait on the API for seconds. Each worker
//! runs at most `CAPACITY` processes; `CLIENTS` clients keep requests coming until `TOTAL` are
//! answered. Target: 3 workers ≥ 2.7× the throughput of 1, measured in the same run. Then the
//! façade's own cost: the p50 of a quick request straight to a worker's HTTP port against the
//! same request through a façade in front of it. Run with `cargo bench --bench cluster`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::{Gateway, median, ms, quantile, verdict};

const CAPACITY: usize = 4;
const CLIENTS: usize = 36;
const TOTAL: usize = 300;
/// Six deltas, 80 ms before each: about half a second per answer.
const SLOW: &str = "[[words:6]] [[delay_ms:80]] slow";
const QUICK: &str = "[[words:4]] quick";
const LATENCY_SAMPLES: usize = 80;

async fn worker(cli: &str) -> Gateway {
    let capacity = CAPACITY.to_string();
    let args = [
        "--claude-bin",
        cli,
        "--max-processes",
        capacity.as_str(),
        "--max-queue",
        "400",
        "--discover-models",
        "false",
    ];
    Gateway::start(&args, &[("ANTHROPIC_API_KEY", "sk-bench")]).await
}

async fn facade(workers: &[Gateway]) -> Gateway {
    let upstream: Vec<&str> = workers.iter().map(|w| w.grpc.as_str()).collect();
    let upstream = upstream.join(",");
    let gw = Gateway::start(&["--upstream", &upstream], &[]).await;
    let client = reqwest::Client::new();
    for _ in 0..400 {
        let health: Value = match client.get(format!("{}/health", gw.base)).send().await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => Value::Null,
        };
        let up = health["upstream"].as_str().unwrap_or_default();
        if up.matches(": SERVING").count() == workers.len() {
            return gw;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the façade never saw its {} workers serving", workers.len());
}

async fn ask(client: &reqwest::Client, url: &str, text: &str) -> Duration {
    let body = json!({"model": "sonnet", "messages": [{"role": "user", "content": text}]});
    let started = Instant::now();
    let response = client.post(url).json(&body).send().await.expect("request");
    assert_eq!(
        response.status(),
        200,
        "{}",
        response.text().await.unwrap_or_default()
    );
    let _ = response.bytes().await.expect("body");
    started.elapsed()
}

struct Load {
    wall: Duration,
    latencies: Vec<Duration>,
}

impl Load {
    fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64()
    }
}

/// `CLIENTS` clients sending slow requests through `gw` until `TOTAL` are answered.
async fn load(gw: &Gateway) -> Load {
    let client = reqwest::Client::new();
    let url = gw.chat_url();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, url, next) = (client.clone(), url.clone(), next.clone());
            tokio::spawn(async move {
                let mut mine = Vec::new();
                while next.fetch_add(1, Ordering::SeqCst) < TOTAL {
                    mine.push(ask(&client, &url, SLOW).await);
                }
                mine
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for c in clients {
        latencies.extend(c.await.expect("client"));
    }
    Load {
        wall: started.elapsed(),
        latencies,
    }
}

/// Requests answered by each worker, from the façade's metrics.
async fn spread(gw: &Gateway, workers: &[Gateway]) -> Vec<u64> {
    let text = reqwest::get(format!("{}/metrics", gw.base))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    workers
        .iter()
        .map(|w| {
            let label = format!("worker=\"{}\"", w.grpc);
            text.lines()
                .filter(|l| l.starts_with("claude_gateway_upstream_attempts_total"))
                .filter(|l| l.contains("outcome=\"ok\"") && l.contains(&label))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as u64
        })
        .collect()
}

async fn latency(client: &reqwest::Client, url: &str) -> Vec<Duration> {
    let mut samples = Vec::new();
    for _ in 0..LATENCY_SAMPLES {
        samples.push(ask(client, url, QUICK).await);
    }
    samples
}

#[tokio::main]
async fn main() {
    let cli = common::instant_cli();
    let cli = cli.to_str().expect("utf-8 path");

    let one = vec![worker(cli).await];
    let front = facade(&one).await;
    // One request first, so neither run pays for the first connection.
    ask(&reqwest::Client::new(), &front.chat_url(), QUICK).await;
    let single = load(&front).await;
    drop(front);
    drop(one);

    let three = vec![worker(cli).await, worker(cli).await, worker(cli).await];
    let front = facade(&three).await;
    ask(&reqwest::Client::new(), &front.chat_url(), QUICK).await;
    let triple = load(&front).await;
    let counts = spread(&front, &three).await;

    // The façade's own cost: the same quick request straight to a worker and through it,
    // interleaved in halves so drift hits both.
    let client = reqwest::Client::new();
    let direct_url = three[0].chat_url();
    let one_front = facade(&three[..1]).await;
    let via_url = one_front.chat_url();
    ask(&client, &direct_url, QUICK).await;
    ask(&client, &via_url, QUICK).await;
    let mut direct = latency(&client, &direct_url).await;
    let mut via = latency(&client, &via_url).await;
    direct.extend(latency(&client, &direct_url).await);
    via.extend(latency(&client, &via_url).await);

    let ratio = triple.throughput() / single.throughput();
    let (d50, v50) = (median(&direct), median(&via));
    let added = v50.saturating_sub(d50);
    let even = TOTAL as f64 / 3.0;
    let worst = counts
        .iter()
        .map(|&c| (c as f64 - even).abs() / even)
        .fold(0.0, f64::max);
    let markdown = format!(
        "## Scale-out: one façade, 1 vs 3 workers (`cargo bench --bench cluster`)\n\n\
         Instant fake CLI sleeping 80 ms before each of 6 deltas (~0.5 s an answer), each \
         worker `--max-processes {CAPACITY}`; {CLIENTS} clients until {TOTAL} answers, \
         through one façade. Baseline: the same façade in front of 1 worker, same run.\n\n\
         | workers | wall (s) | throughput (req/s) | p50 (ms) | p99 (ms) |\n\
         |---|---|---|---|---|\n\
         | 1 (baseline) | {:.2} | {:.2} | {} | {} |\n\
         | 3 | {:.2} | {:.2} | {} | {} |\n\n\
         - throughput ratio 3 workers / 1 worker: **{ratio:.2}×** (target ≥ 2.7×: {})\n\
         - answers per worker with 3 (the warm-up request included): {counts:?} (largest \
         deviation from even {:.0}%)\n\
         - the façade's added latency, quick request (4 deltas, no sleep), {} samples each: \
         p50 direct {} ms, through the façade {} ms, **+{} ms** ({:.2}×); p99 {} vs {} ms\n",
        single.wall.as_secs_f64(),
        single.throughput(),
        ms(median(&single.latencies), 0),
        ms(quantile(&single.latencies, 0.99), 0),
        triple.wall.as_secs_f64(),
        triple.throughput(),
        ms(median(&triple.latencies), 0),
        ms(quantile(&triple.latencies, 0.99), 0),
        verdict(ratio >= 2.7),
        worst * 100.0,
        direct.len(),
        ms(d50, 2),
        ms(v50, 2),
        ms(added, 2),
        v50.as_secs_f64() / d50.as_secs_f64(),
        ms(quantile(&direct, 0.99), 2),
        ms(quantile(&via, 0.99), 2),
    );
    common::report("cluster", &markdown);
}
