//! The scenarios of issue 12, on the cluster harness (`tests/common/netns.rs`): three worker
//! hosts sharing PostgreSQL on a db host, two façade hosts each with `--upstream W1,W2,W3`
//! (the multi-worker contract), and a client host whose requests cross the bridge. Requests
//! are counted per worker by the prompts its fake CLI logged. Every wait is bounded; each
//! scenario builds its own cluster, so they run in parallel without sharing state.
//!
//! Until the façade takes several upstreams, these fail (the façades do not start).
#![allow(clippy::unwrap_used)]

mod common;

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
                let mut seen = String::new();
                for _ in 0..200 {
                    if let Ok(r) = crate::common::client().get(&url).send().await {
                        let body: Value = r.json().await.unwrap_or_default();
                        seen = body["upstream"].as_str().unwrap_or_default().to_string();
                        if seen.matches(": SERVING").count() == 3 {
                            break;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                assert_eq!(seen.matches(": SERVING").count(), 3, "{url}: {seen}");
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
        Shot {
            url: f.url("/v1/chat/completions"),
            body: json!({"model": "gpt-4o", "stream": stream,
                "messages": [{"role": "user", "content": format!("#{i} {prompt}")}]}),
            key: None,
        }
    }

    /// Prompts that reached each worker so far.
    fn prompts(&self) -> Vec<usize> {
        self.workers.iter().map(GatewayProc::prompts).collect()
    }

    /// Runs `shots` from the client host, `concurrency` at a time.
    async fn fire(&self, shots: Vec<Shot>, concurrency: usize) -> Vec<Outcome> {
        self.client
            .run(async move {
                futures::stream::iter(shots)
                    .map(send)
                    .buffer_unordered(concurrency)
                    .collect::<Vec<_>>()
                    .await
            })
            .await
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

#[tokio::test]
async fn three_hundred_requests_spread_evenly_and_a_full_worker_gets_less() {
    within(110, async {
        // Three alike workers of 4 processes each.
        let alike: &[&str] = &["--max-processes", "4", "--max-queue", "32"];
        let c = cluster("bal", [alike, alike, alike], &[]).await;
        let t = Instant::now();
        let shots = (0..300).map(|i| c.shot(i, "[[reply:ok]]", false)).collect();
        let outcomes = c.fire(shots, 24).await;
        assert!(failures(&outcomes).is_empty(), "{:?}", failures(&outcomes));
        let spread = c.prompts();
        eprintln!("300 requests in {:.1?}, per worker {spread:?}", t.elapsed());
        assert_eq!(spread.iter().sum::<usize>(), 300, "{spread:?}");
        assert!(
            spread.iter().all(|n| (80..=120).contains(n)),
            "each worker must get 100 ± 20%: {spread:?}"
        );

        // Worker 3 filled to its capacity by requests sent to it directly (not through a
        // façade, which knows of them only by the load worker 3 reports).
        let before = c.prompts();
        let direct = c.workers[2].url("/v1/chat/completions");
        let filler = c.client.spawn_task(async move {
            let body = json!({"model": "gpt-4o", "messages": [{"role": "user",
                "content": "[[words:10]] [[delay_ms:400]] filler"}]});
            let calls = (0..4).map(|_| {
                let (url, body) = (direct.clone(), body.clone());
                async move { crate::common::client().post(&url).json(&body).send().await }
            });
            futures::future::join_all(calls).await
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while c.workers[2].prompts() < before[2] + 4 {
            assert!(
                Instant::now() < deadline,
                "the filler never reached worker 3"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // One load report (every 100 ms at most) later, the façades know.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = c.prompts();
        let shots = (0..60)
            .map(|i| c.shot(i, "[[words:4]] [[delay_ms:40]]", false))
            .collect();
        let outcomes = c.fire(shots, 12).await;
        assert!(failures(&outcomes).is_empty(), "{:?}", failures(&outcomes));
        let slow = delta(&c.prompts(), &before);
        eprintln!("60 requests while worker 3 is full, per worker {slow:?}");
        assert!(
            slow[2] < slow[0].min(slow[1]) && slow[2] < 60 / 3,
            "the worker at capacity must get less: {slow:?}"
        );
        for r in filler.await.unwrap() {
            assert_eq!(r.unwrap().status(), 200);
        }
    })
    .await;
}

#[tokio::test]
async fn a_worker_killed_mid_load_loses_nothing_and_rejoins() {
    within(110, async {
        let mut c = cluster("kill", [&[], &[], &[]], &[]).await;
        let sent = 60;
        let shots: Vec<Shot> = (0..sent)
            .map(|i| c.shot(i, "[[words:20]] [[delay_ms:50]]", true))
            .collect();
        let client = c.client.clone();
        let load = client.spawn_task(async move {
            futures::stream::iter(shots)
                .map(send)
                .buffer_unordered(20)
                .collect::<Vec<_>>()
                .await
        });
        // Kill worker 2 once streams are running on it.
        let deadline = Instant::now() + Duration::from_secs(20);
        while c.workers[1].prompts() < 3 {
            assert!(
                Instant::now() < deadline,
                "no load reached worker 2: {:?}",
                c.prompts()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        c.workers[1].kill9();
        assert!(
            c.workers[1]
                .wait_exit(Duration::from_secs(5))
                .await
                .is_some()
        );
        let outcomes = tokio::time::timeout(Duration::from_secs(60), load)
            .await
            .unwrap()
            .unwrap();
        let answered = outcomes.iter().filter(|o| **o == Outcome::Answered).count();
        let in_stream: Vec<&Outcome> = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::InStreamError(_)))
            .collect();
        eprintln!(
            "sent {sent}: answered {answered}, in-stream errors {}, failed {}; per worker {:?}",
            in_stream.len(),
            failures(&outcomes).len(),
            c.prompts()
        );
        assert!(
            failures(&outcomes).is_empty(),
            "not started must be retried: {:?}",
            failures(&outcomes)
        );
        assert_eq!(answered + in_stream.len(), sent, "{outcomes:?}");
        assert!(
            !in_stream.is_empty(),
            "the streams in flight on worker 2 must end in error"
        );
        assert!(
            c.worker_hosts[1]
                .processes_matching("fake_claude.py")
                .is_empty()
        );
        for i in [0, 2] {
            let orphans = c.orphans(i);
            let described: Vec<String> = orphans
                .iter()
                .map(|p| {
                    let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                    let stat =
                        std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
                    format!(
                        "{p}: {} | {stat}",
                        String::from_utf8_lossy(&cmd).replace('\0', " ")
                    )
                })
                .collect();
            assert!(
                orphans.is_empty(),
                "orphans on worker {} (gateway {}): {described:?}",
                i + 1,
                c.workers[i].pid
            );
        }

        // Back on the same address, it gets requests again.
        c.restart(1).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while c.workers[1].prompts() == 0 {
            assert!(
                Instant::now() < deadline,
                "the restarted worker never got a request"
            );
            let shots = (0..12).map(|i| c.shot(i, "[[reply:ok]]", false)).collect();
            let outcomes = c.fire(shots, 6).await;
            assert!(failures(&outcomes).is_empty(), "{:?}", failures(&outcomes));
        }
        eprintln!("worker 2 rejoined: per worker {:?}", c.prompts());
    })
    .await;
}

#[tokio::test]
async fn a_sigterm_drains_a_worker_then_it_exits() {
    within(110, async {
        let drain = ["--shutdown-delay-secs", "2"];
        let mut c = cluster("term", [&drain, &drain, &drain], &[]).await;
        // Streams of ~3 s, until worker 1 serves some of them.
        let mut streams = Vec::new();
        for i in 0..9 {
            let shot = c.shot(i, "[[words:30]] [[delay_ms:100]]", true);
            let (tx, rx) = tokio::sync::oneshot::channel();
            let task = c
                .client
                .spawn_task(stream_telling_first(shot.url, shot.body, tx));
            tokio::time::timeout(Duration::from_secs(10), rx)
                .await
                .unwrap()
                .unwrap();
            streams.push(task);
        }
        let on_w1 = c.workers[0].prompts();
        assert!(
            on_w1 > 0,
            "none of 9 streams reached worker 1: {:?}",
            c.prompts()
        );
        c.workers[0].sigterm();
        let termed = Instant::now();
        // Give the façades the time of one health update (a watch stream, not a poll).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let shots = (0..30).map(|i| c.shot(i, "[[reply:ok]]", false)).collect();
        let outcomes = c.fire(shots, 10).await;
        assert!(failures(&outcomes).is_empty(), "{:?}", failures(&outcomes));
        assert_eq!(
            c.workers[0].prompts(),
            on_w1,
            "a draining worker got new requests"
        );
        for task in streams {
            let (status, events) = tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(status, 200);
            assert!(
                events.last().map(String::as_str) == Some("[DONE]")
                    && !events.iter().any(|e| e.contains("\"error\"")),
                "a stream in flight must finish: {events:?}"
            );
        }
        let status = c.workers[0].wait_exit(Duration::from_secs(20)).await;
        eprintln!(
            "worker 1 exited {:.1?} after SIGTERM: {status:?}",
            termed.elapsed()
        );
        assert!(status.is_some_and(|s| s.success()), "{status:?}");
        assert!(
            c.worker_hosts[0]
                .processes_matching("fake_claude.py")
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn a_session_stays_on_its_worker_and_moves_when_it_dies() {
    within(110, async {
        let c = cluster("sess", [&[], &[], &[]], &[]).await;
        let url = c.facades[0].url("/v1/sessions");
        let session = c
            .client
            .run(async move { post_json(&url, &json!({})).await.2 })
            .await;
        let id = session["id"].as_str().unwrap().to_string();
        let before = c.prompts();
        for n in 1..=5 {
            let f = &c.facades[n % 2];
            let (url, body) = (
                f.url("/v1/chat/completions"),
                json!({"model": "gpt-4o", "session_id": id,
                "messages": [{"role": "user", "content": format!("turn {n}")}]}),
            );
            let t = Instant::now();
            let (status, _, reply) = c
                .client
                .run(async move { post_json(&url, &body).await })
                .await;
            assert_eq!(status, 200, "turn {n}: {reply}");
            eprintln!("turn {n} via façade {}: {:.0?}", n % 2 + 1, t.elapsed());
        }
        let got = delta(&c.prompts(), &before);
        let home = got
            .iter()
            .position(|n| *n == 5)
            .unwrap_or_else(|| panic!("5 turns not on one worker: {got:?}"));
        assert_eq!(got.iter().sum::<usize>(), 5, "{got:?}");

        c.workers[home].kill9();
        let before = c.prompts();
        let (url, body) = (
            c.facades[0].url("/v1/chat/completions"),
            json!({"model": "gpt-4o", "session_id": id,
            "messages": [{"role": "user", "content": "turn 6 [[recall]]"}]}),
        );
        let t = Instant::now();
        let (status, _, reply) = c
            .client
            .run(async move { post_json(&url, &body).await })
            .await;
        assert_eq!(status, 200, "turn 6: {reply}");
        eprintln!(
            "turn 6 after killing worker {}: {:.0?}",
            home + 1,
            t.elapsed()
        );
        let text = reply["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default();
        assert!(
            text.contains("turn 1") && text.contains("turn 5"),
            "turn 6 must see the history: {text}"
        );
        let moved = delta(&c.prompts(), &before);
        assert!(
            moved[home] == 0 && moved.iter().sum::<usize>() >= 1,
            "{moved:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_per_key_limit_holds_across_both_facades() {
    within(110, async {
        let keys = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(keys.path(), "sk-alice name=alice\n").unwrap();
        let keys_arg = keys.path().display().to_string();
        let facade = [
            "--api-keys-file",
            &keys_arg,
            "--rate-limit-rpm",
            "10",
            "--rate-limit-store",
            "{pg}",
        ];
        let c = cluster("rate", [&[], &[], &[]], &facade).await;
        let mut seen = Vec::new();
        for i in 0..11 {
            let mut shot = c.shot(i, "[[reply:ok]]", false);
            shot.key = Some("sk-alice".into());
            seen.push(c.fire(vec![shot], 1).await.remove(0));
        }
        assert!(
            seen[..10].iter().all(|o| *o == Outcome::Answered),
            "{seen:?}"
        );
        match &seen[10] {
            Outcome::Failed(429, body) => assert!(body.contains("rate_limit_exceeded"), "{body}"),
            // Five of the ten went through façade 2: only a shared count stops this one.
            other => panic!("the 11th request (façade 1) must be 429: {other:?}"),
        }
    })
    .await;
}

/// The real CLI (pinned) on two worker hosts, each against a fake Anthropic API on its own
/// loopback, behind a façade host: a completion, a stream, and a conversation whose resent
/// history keeps it on one worker, in one live CLI process, across hosts.
#[tokio::test]
async fn the_real_cli_serves_a_conversation_through_a_facade_across_hosts() {
    within(110, async {
        let Some(cli) = real_cli() else {
            return;
        };
        let cli = cli.display().to_string();
        let net = Netns::new("real").unwrap().unwrap();
        let hosts: Vec<Host> = (1..=2u8)
            .map(|i| net.host(&format!("w{i}"), 10 + i).unwrap())
            .collect();
        let facade_host = net.host("f1", 21).unwrap();
        let client = net.host("c", 30).unwrap();
        let mut apis = Vec::new();
        let mut workers = Vec::new();
        for host in &hosts {
            // Bound on that host's own 127.0.0.1: only its worker reaches it.
            let api = host.run(fake_anthropic::FakeAnthropic::start()).await;
            let base = api.base_url();
            let args = ["--claude-bin", cli.as_str(), "--claude-max-retries", "0"];
            let env = [("ANTHROPIC_API_KEY", "sk-test"), ("ANTHROPIC_BASE_URL", base.as_str())];
            workers.push(host.gateway_with_env(&args, &env).await.unwrap());
            apis.push(api);
        }
        let upstream = format!("{},{}", workers[0].grpc_url, workers[1].grpc_url);
        let facade = start(&facade_host, &["--upstream".into(), upstream]).await;
        let url = facade.url("/v1/chat/completions");
        let health = facade.url("/health");
        let turns = client
            .run(async move {
                let http = crate::common::client();
                for _ in 0..200 {
                    let body: Value = match http.get(&health).send().await {
                        Ok(r) => r.json().await.unwrap_or_default(),
                        Err(_) => Value::Null,
                    };
                    if body["upstream"].as_str().unwrap_or_default().matches(": SERVING").count()
                        == 2
                    {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let whole: Value = http
                    .post(&url)
                    .json(&json!({"model": "sonnet", "messages": [{"role": "user", "content": "Hello across hosts"}]}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert_eq!(
                    whole["choices"][0]["message"]["content"],
                    "You said: Hello across hosts",
                    "{whole}"
                );
                let streamed = http
                    .post(&url)
                    .json(&json!({"model": "sonnet", "stream": true,
                        "messages": [{"role": "user", "content": "[[words:5]] streamed"}]}))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                assert!(streamed.contains("w5") && streamed.trim_end().ends_with("data: [DONE]"), "{streamed}");
                // Three turns, the history resent each time.
                let mut messages = vec![json!({"role": "user", "content": "CONV-1 My name is Ada."})];
                let mut said = Vec::new();
                for turn in 2..=4 {
                    let answer: Value = http
                        .post(&url)
                        .json(&json!({"model": "sonnet", "messages": messages}))
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    let reply = answer["choices"][0]["message"].clone();
                    said.push(reply["content"].as_str().unwrap_or_default().to_string());
                    messages.push(reply);
                    messages.push(json!({"role": "user", "content": format!("CONV-{turn} more")}));
                }
                said
            })
            .await;
        assert_eq!(turns[0], "You said: CONV-1 My name is Ada.");
        // Where each conversation turn reached the API, and in which CLI session.
        let conv: Vec<(usize, String)> = apis
            .iter()
            .enumerate()
            .flat_map(|(w, api)| {
                api.requests()
                    .into_iter()
                    .zip(api.request_headers())
                    .filter(|(body, _)| body.to_string().contains("CONV-"))
                    .map(move |(_, headers)| {
                        let session = headers
                            .iter()
                            .find(|(k, _)| k == "x-claude-code-session-id")
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default();
                        (w, session)
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        eprintln!("conversation turns (worker, CLI session): {conv:?}");
        assert_eq!(conv.len(), 3, "{conv:?}");
        // The 2nd and 3rd turns resend the history: one worker, one live process.
        let later: Vec<&(usize, String)> = conv
            .iter()
            .filter(|(w, s)| conv.iter().filter(|(w2, s2)| w2 == w && s2 == s).count() >= 2)
            .collect();
        assert_eq!(later.len(), 2, "turns 2 and 3 must continue one process: {conv:?}");
        assert!(workers.iter().all(|w| w.stderr().contains("claude CLI found")));
    })
    .await;
}
