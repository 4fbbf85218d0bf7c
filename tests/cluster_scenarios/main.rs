//! The scenarios of issue 12, on the cluster harness (`tests/common/netns.rs`): three worker
//! hosts sharing PostgreSQL on a db host, two façade hosts each with `--upstream W1,W2,W3`
//! (the multi-worker contract), and a client host whose requests cross the bridge. Requests
//! are counted per worker by the prompts its fake CLI logged. Every wait is bounded; each
//! scenario builds its own cluster, so they run in parallel without sharing state.
//!
//! One more runs the real CLI on two worker hosts, each with its own fake Anthropic API, and
//! one follows a DNS name (the façade host's own hosts file) as workers join and leave.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;
mod hosts;
mod load;

use std::time::{Duration, Instant};

use common::netns::gateway::{GatewayProc, stream_telling_first};
use common::netns::postgres::Postgres;
use common::netns::{Host, Netns};
use common::*;
use futures::StreamExt;
use serde_json::{Value, json};

async fn within<F: std::future::Future>(secs: u64, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("scenario did not finish within {secs} s"))
}

/// Three workers, two façades, a client, PostgreSQL.
struct Cluster {
    workers: Vec<GatewayProc>,
    worker_hosts: Vec<Host>,
    worker_args: Vec<Vec<String>>,
    facades: Vec<GatewayProc>,
    client: Host,
    // Held for their drop, after everything above: the database, then the namespaces.
    _pg: Postgres,
    _net: Netns,
}

/// `worker_args[i]` for worker i (after `--session-store PG`), `facade_args` for both façades
/// (after `--upstream W1,W2,W3`; `{pg}` is replaced by the database URL).
async fn cluster(tag: &str, worker_args: [&[&str]; 3], facade_args: &[&str]) -> Cluster {
    let t = Instant::now();
    let net = Netns::new(tag).unwrap().unwrap();
    let db = net.host("db", 2).unwrap();
    let worker_hosts: Vec<Host> = (1..=3u8)
        .map(|i| net.host(&format!("w{i}"), 10 + i).unwrap())
        .collect();
    let facade_hosts: Vec<Host> = (1..=2u8)
        .map(|i| net.host(&format!("f{i}"), 20 + i).unwrap())
        .collect();
    let client = net.host("c", 30).unwrap();
    let pg = db.postgres().await.unwrap().unwrap();
    let worker_args: Vec<Vec<String>> = worker_args
        .iter()
        .map(|extra| {
            let mut args = vec!["--session-store".to_string(), pg.url.clone()];
            args.extend(extra.iter().map(|a| a.to_string()));
            args
        })
        .collect();
    let workers = futures::future::join_all(
        worker_hosts
            .iter()
            .zip(&worker_args)
            .map(|(h, args)| start(h, args)),
    )
    .await;
    let upstreams: Vec<&str> = workers.iter().map(|w| w.grpc_url.as_str()).collect();
    let mut args = vec!["--upstream".to_string(), upstreams.join(",")];
    args.extend(facade_args.iter().map(|a| a.replace("{pg}", &pg.url)));
    let facades = futures::future::join_all(facade_hosts.iter().map(|h| start(h, &args))).await;
    // Both façades see the three workers serving before the scenario begins.
    let health: Vec<String> = facades.iter().map(|f| f.url("/health")).collect();
    client
        .run(async move {
            for url in health {
                serving(url, 3).await;
            }
        })
        .await;
    eprintln!(
        "{tag}: cluster of 7 hosts up in {:.1?} (PostgreSQL {:.2?})",
        t.elapsed(),
        pg.started_in
    );
    Cluster {
        workers,
        worker_hosts,
        worker_args,
        facades,
        client,
        _pg: pg,
        _net: net,
    }
}

async fn start(host: &Host, args: &[String]) -> GatewayProc {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    host.gateway(&args)
        .await
        .unwrap_or_else(|e| panic!("gateway on {}: {e:#}", host.name()))
}

/// How one request ended, as the client saw it.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Answered,
    InStreamError(String),
    Failed(u16, String),
}

/// One request from the client host: `i` picks the façade (alternating) and is in the prompt.
struct Shot {
    url: String,
    body: Value,
    key: Option<String>,
}

impl Cluster {
    fn shot(&self, i: usize, prompt: &str, stream: bool) -> Shot {
        let f = &self.facades[i % self.facades.len()];
        shot_to(f, i, prompt, stream)
    }

    /// Prompts that reached each worker so far.
    fn prompts(&self) -> Vec<usize> {
        self.workers.iter().map(GatewayProc::prompts).collect()
    }

    /// Runs `shots` from the client host, `concurrency` at a time.
    async fn fire(&self, shots: Vec<Shot>, concurrency: usize) -> Vec<Outcome> {
        fire_from(&self.client, shots, concurrency).await
    }

    /// Fake CLI processes on worker host `i` whose parent is not its running gateway.
    fn orphans(&self, i: usize) -> Vec<u32> {
        let gateway = self.workers[i].pid;
        self.worker_hosts[i]
            .processes_matching("fake_claude.py")
            .into_iter()
            // The gateway names the fake in its own argv (`--claude-bin`); a process that ended
            // between the listing and this read is no orphan.
            .filter(|p| *p != gateway)
            .filter(|p| {
                procs::proc_stat(*p)
                    .and_then(|f| f[1].parse::<u32>().ok())
                    .is_some_and(|parent| parent != gateway)
            })
            .collect()
    }

    /// Restarts worker `i` on its host (same address and ports) with its arguments.
    async fn restart(&mut self, i: usize) {
        let w = start(&self.worker_hosts[i], &self.worker_args[i]).await;
        self.workers[i] = w;
    }
}

/// Request `i` (its number in the prompt) to façade `f`.
fn shot_to(f: &GatewayProc, i: usize, prompt: &str, stream: bool) -> Shot {
    Shot {
        url: f.url("/v1/chat/completions"),
        body: json!({"model": "gpt-4o", "stream": stream,
            "messages": [{"role": "user", "content": format!("#{i} {prompt}")}]}),
        key: None,
    }
}

/// Runs `shots` from host `client`, `concurrency` at a time.
async fn fire_from(client: &Host, shots: Vec<Shot>, concurrency: usize) -> Vec<Outcome> {
    client
        .run(async move {
            futures::stream::iter(shots)
                .map(send)
                .buffer_unordered(concurrency)
                .collect::<Vec<_>>()
                .await
        })
        .await
}

/// Waits (run it in a host) until the façade whose `/health` is `url` lists exactly `n`
/// serving workers and none unreachable; its worker list then.
async fn serving(url: String, n: usize) -> String {
    let http = crate::common::client();
    let mut seen = String::new();
    for _ in 0..200 {
        if let Ok(r) = http.get(&url).send().await {
            let body: Value = r.json().await.unwrap_or_default();
            seen = body["upstream"].as_str().unwrap_or_default().to_string();
            if seen.matches(": SERVING").count() == n && !seen.contains("UNREACHABLE") {
                return seen;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url}: never {n} serving workers: {seen}");
}

async fn send(shot: Shot) -> Outcome {
    let mut req = client().post(&shot.url).json(&shot.body);
    if let Some(key) = &shot.key {
        req = req.bearer_auth(key);
    }
    let response = match req.send().await {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(0, e.to_string()),
    };
    let status = response.status().as_u16();
    let text = match response.text().await {
        Ok(t) => t,
        Err(e) => return Outcome::InStreamError(format!("body broke: {e}")),
    };
    if status != 200 {
        return Outcome::Failed(status, text);
    }
    if shot.body["stream"] != true {
        return Outcome::Answered;
    }
    let data: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    match data.iter().find(|d| d.contains("\"error\"")) {
        Some(error) => Outcome::InStreamError(error.to_string()),
        None if data.last() == Some(&"[DONE]") => Outcome::Answered,
        None => Outcome::InStreamError(format!("ended without [DONE]: {data:?}")),
    }
}

fn failures(outcomes: &[Outcome]) -> Vec<&Outcome> {
    outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Failed(..)))
        .collect()
}

fn delta(after: &[usize], before: &[usize]) -> Vec<usize> {
    after.iter().zip(before).map(|(a, b)| a - b).collect()
}
