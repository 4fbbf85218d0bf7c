//! A bounded loopback load test of the real gateway binary on the fake CLI, at ten times its
//! process cap (`--max-processes 4 --max-queue 8 --queue-timeout-secs 2`, 40 requests at once):
//! the only errors are 429 (queue full, with Retry-After) and 503 (waited too long), the cap
//! holds (the live CLI children are sampled throughout), memory stays bounded and the gateway
//! answers afterwards. Then the gateway is SIGKILLed in the middle of the same load, and no
//! `claude` process it started may survive it (PR_SET_PDEATHSIG). The same cap counts warm-pool
//! and live-session processes (sampled under a mixed burst), and waiters on a busy session's
//! turn queue like any request (429 beyond the queue, 503 at its timeout). Everything stays on
//! 127.0.0.1 and stops by itself.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const CAP: usize = 4;
const QUEUE: usize = 8;
const LOAD: usize = 10 * CAP;
/// What the whole burst may take: the queue timeout, two rounds of runs, slack for 2 cores.
const BURST_LIMIT: Duration = Duration::from_secs(20);
/// How much the gateway's RSS may grow over the burst.
const RSS_GROWTH_LIMIT_KB: u64 = 25 * 1024;

async fn bounded(body: impl Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(120), body)
        .await
        .expect("test exceeded its time limit");
}

fn limits(work: &std::path::Path) -> Vec<String> {
    [
        "--work-dir",
        work.to_str().unwrap(),
        "--max-processes",
        "4",
        "--max-queue",
        "8",
        "--queue-timeout-secs",
        "2",
    ]
    .map(String::from)
    .to_vec()
}

// ------------------------------------------------------------------------------------------
// /proc
// ------------------------------------------------------------------------------------------

/// `/proc/<pid>/stat` fields after the command name: state, ppid, pgrp, session, tty, tpgid,
/// flags, …
fn proc_stat(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .collect()
}

/// Not a zombie (a process gone but not yet reaped).
fn alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|f| f[0] != "Z" && f[0] != "X")
}

/// Already on its way out: in the kernel's exit path (PF_EXITING) or with a SIGKILL pending.
fn dying(pid: u32) -> bool {
    const PF_EXITING: u64 = 0x4;
    const SIGKILL_BIT: u64 = 1 << (9 - 1);
    let exiting = proc_stat(pid)
        .and_then(|f| f.get(6)?.parse::<u64>().ok())
        .is_some_and(|flags| flags & PF_EXITING != 0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let killed = status
        .lines()
        .filter(|l| l.starts_with("SigPnd:") || l.starts_with("ShdPnd:"))
        .filter_map(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
        .any(|mask| mask & SIGKILL_BIT != 0);
    exiting || killed
}

/// Live children of `parent` (the fake CLI runs, with the pool off).
fn live_children(parent: u32) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|pid| {
            alive(*pid) && proc_stat(*pid).is_some_and(|f| f[1].parse().ok() == Some(parent))
        })
        .collect()
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Samples the gateway's live CLI children every few ms until stopped: the peak of all of
/// them, and the peak of those not already killed (see `dying`).
struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(usize, usize, usize)>,
}

impl Sampler {
    fn start(gateway: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::task::spawn_blocking(move || {
            let (mut peak_all, mut peak_running, mut samples) = (0, 0, 0);
            while !flag.load(Ordering::Relaxed) {
                let children = live_children(gateway);
                let running = children.iter().filter(|p| !dying(**p)).count();
                peak_all = peak_all.max(children.len());
                peak_running = peak_running.max(running);
                samples += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            (peak_all, peak_running, samples)
        });
        Sampler { stop, task }
    }

    /// (peak of all live children, peak of those not dying, samples taken)
    async fn finish(self) -> (usize, usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

// ------------------------------------------------------------------------------------------
// Requests
// ------------------------------------------------------------------------------------------

/// One request of the burst: its status, its Retry-After, and whether a 200 was complete.
struct Reply {
    status: u16,
    retry_after: Option<String>,
    complete: bool,
    code: Option<String>,
}

async fn one(url: String, text: String, stream: bool) -> Result<Reply, reqwest::Error> {
    let mut body = chat_body("gpt-4o", &text);
    body["stream"] = json!(stream);
    let response = client().post(url).json(&body).send().await?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap_or_default().to_string());
    let text = response.text().await?;
    let (complete, code) = if status != 200 {
        let body: Value = serde_json::from_str(&text).unwrap_or_default();
        (false, body["error"]["code"].as_str().map(str::to_string))
    } else if stream {
        let done = text.trim_end().ends_with("data: [DONE]");
        (done && !text.contains("\"error\""), None)
    } else {
        let body: Value = serde_json::from_str(&text).unwrap_or_default();
        (
            body["choices"][0]["message"]["content"] == "w1 w2 w3 w4 w5",
            None,
        )
    };
    Ok(Reply {
        status,
        retry_after,
        complete,
        code,
    })
}

/// Fires `LOAD` requests at once (half streamed), each answered slowly by the fake CLI.
fn burst(
    url: &str,
    directives: &str,
) -> Vec<tokio::task::JoinHandle<Result<Reply, reqwest::Error>>> {
    (0..LOAD)
        .map(|i| {
            let text = format!("<L{i:02}> {directives}");
            tokio::spawn(one(url.to_string(), text, i % 2 == 1))
        })
        .collect()
}

#[tokio::test]
async fn ten_times_the_cap_gets_only_429_and_503_and_the_cap_holds() {
    bounded(async {
        let work = tempfile::tempdir().unwrap();
        let fake = FakeCliGateway::start(
            &limits(work.path())
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )
        .await;
        let gateway = fake.gw.pid();
        let url = fake.gw.url("/v1/chat/completions");
        // Warm up once (the token counter's tables load on the first request).
        let warm = one(url.clone(), "[[words:5]]".into(), false).await.unwrap();
        assert_eq!(warm.status, 200);
        let rss_before = rss_kb(gateway);

        let sampler = Sampler::start(gateway);
        let started = Instant::now();
        let requests = burst(&url, "[[words:5]] [[delay_ms:100]]");
        let mut replies = Vec::new();
        for request in requests {
            replies.push(
                request
                    .await
                    .unwrap()
                    .expect("every request gets an answer"),
            );
        }
        let took = started.elapsed();
        let (peak_all, peak_running, samples) = sampler.finish().await;

        let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
        for r in &replies {
            *statuses.entry(r.status).or_default() += 1;
        }
        let leftover = eventually_no_children(gateway).await;
        let rss_after = rss_kb(gateway);
        println!(
            "\nload: {LOAD} requests at once, cap {CAP}, queue {QUEUE}: statuses {statuses:?} in \
             {took:.2?}; live CLI children peak {peak_all} (not yet killed: {peak_running}) over \
             {samples} samples; gateway RSS {} → {} kB; children left {leftover:?}",
            rss_before, rss_after
        );

        for r in &replies {
            assert!(
                [200, 429, 503].contains(&r.status),
                "status {} ({:?})",
                r.status,
                r.code
            );
            match r.status {
                200 => assert!(r.complete, "a 200 must be a complete answer"),
                429 => {
                    assert_eq!(r.code.as_deref(), Some("rate_limit_exceeded"));
                    let retry = r.retry_after.as_deref().expect("429 without Retry-After");
                    assert!(retry.parse::<u64>().is_ok_and(|s| s >= 1), "{retry}");
                }
                _ => assert_eq!(
                    r.code.as_deref(),
                    Some("unavailable"),
                    "a 503 waited too long"
                ),
            }
        }
        let ok = statuses.get(&200).copied().unwrap_or(0);
        assert!(
            ok >= CAP,
            "at least the first {CAP} must be served: {statuses:?}"
        );
        assert!(
            statuses.get(&429).copied().unwrap_or(0) >= LOAD - CAP - QUEUE - 2,
            "beyond cap + queue the rest is refused at once: {statuses:?}"
        );
        assert!(took < BURST_LIMIT, "the burst took {took:?}");
        assert!(samples > 10, "the sampler barely ran ({samples} samples)");
        assert!(
            peak_running <= CAP,
            "{peak_running} CLI processes ran at once, over the cap of {CAP}"
        );
        assert!(leftover.is_empty(), "children left: {leftover:?}");
        assert!(
            rss_after <= rss_before + RSS_GROWTH_LIMIT_KB,
            "RSS grew from {rss_before} kB to {rss_after} kB"
        );
        // Alive, and serving again.
        let mut fake = fake;
        assert!(fake.gw.child.try_wait().unwrap().is_none(), "gateway died");
        let after = one(url, "[[words:5]]".into(), false).await.unwrap();
        assert_eq!(after.status, 200);
        assert!(std::fs::read_dir(work.path()).unwrap().next().is_none());
    })
    .await;
}

/// Waits (bounded) for the gateway to have no live child; returns those left.
async fn eventually_no_children(gateway: u32) -> Vec<u32> {
    for _ in 0..100 {
        if live_children(gateway).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    live_children(gateway)
}

/// Live processes whose environment names this gateway's fake CLI log dir: the CLI processes
/// it started, whatever became of their parent.
fn fake_clis_of(log_dir: &std::path::Path) -> Vec<u32> {
    let needle = format!("FAKE_CLAUDE_LOG_DIR={}", log_dir.display());
    all_pids()
        .into_iter()
        .filter(|pid| {
            alive(*pid)
                && std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|e| e.split(|b| *b == 0).any(|v| v == needle.as_bytes()))
        })
        .collect()
}

#[tokio::test]
async fn sigkill_mid_load_leaves_no_cli_process() {
    bounded(async {
        let work = tempfile::tempdir().unwrap();
        let mut fake = FakeCliGateway::start(
            &limits(work.path())
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )
        .await;
        let gateway = fake.gw.pid();
        let url = fake.gw.url("/v1/chat/completions");
        // Runs of ~4 s, so the cap is full of answering processes when the gateway dies.
        let requests = burst(&url, "[[words:20]] [[delay_ms:200]]");
        let started = Instant::now();
        let answering = |fake: &FakeCliGateway| {
            let runs = fake.runs();
            runs.iter()
                .filter(|r| r["stdin"].to_string().contains("<L"))
                .count()
        };
        while answering(&fake) < CAP {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "the cap never filled"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let children = live_children(gateway);
        let before = fake_clis_of(fake.log_dir.path());
        assert!(
            before.len() >= CAP,
            "CLI processes before the kill: {before:?}"
        );

        let killed = Instant::now();
        fake.gw.child.start_kill().unwrap();
        fake.gw.child.wait().await.unwrap();
        let limit = Duration::from_secs(5);
        while !fake_clis_of(fake.log_dir.path()).is_empty() && killed.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let gone_after = killed.elapsed();
        let left = fake_clis_of(fake.log_dir.path());
        // The clients see their connections drop; none hangs.
        let mut failed = 0;
        for request in requests {
            let reply = tokio::time::timeout(Duration::from_secs(10), request)
                .await
                .expect("a client hung after the gateway died")
                .unwrap();
            failed += usize::from(reply.is_err());
        }
        println!(
            "\nSIGKILL mid-load: {} children of the gateway, {} CLI processes ({} answering) at \
             the kill; none left {:.0?} after it; {failed} of {LOAD} client requests cut",
            children.len(),
            before.len(),
            answering(&fake),
            gone_after
        );
        assert!(
            left.is_empty(),
            "CLI processes outlived the gateway: {left:?}"
        );
        assert!(failed > 0, "the kill was not mid-load");
    })
    .await;
}

// ------------------------------------------------------------------------------------------
// One budget for every process, and bounded session-lock waits
// ------------------------------------------------------------------------------------------

/// A turn of session `id`: its status, Retry-After, error code, and how long it took.
async fn session_turn(
    url: String,
    id: String,
    text: String,
) -> (u16, Option<String>, Option<String>, Duration) {
    let started = Instant::now();
    let body = json!({"model": "gpt-4o", "session_id": id,
        "messages": [{"role": "user", "content": text}]});
    let response = client().post(url).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap_or_default().to_string());
    let body: Value = response.json().await.unwrap_or_default();
    let code = body["error"]["code"].as_str().map(str::to_string);
    (status, retry_after, code, started.elapsed())
}

async fn create_session(fake: &FakeCliGateway, id: &str) {
    let (status, _, body) = post_json(&fake.gw.url("/v1/sessions"), &json!({"id": id})).await;
    assert_eq!(status, 201, "{body}");
}

/// Waits (bounded) until a run of the fake CLI has been given `marker`.
async fn until_a_run_got(fake: &FakeCliGateway, marker: &str) {
    let started = Instant::now();
    while !fake
        .runs()
        .iter()
        .any(|r| r["stdin"].to_string().contains(marker))
    {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no run got {marker}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn waiters_on_a_busy_session_queue_like_any_request() {
    const WAITERS: usize = 20;
    bounded(async {
        let work = tempfile::tempdir().unwrap();
        let fake = FakeCliGateway::start(
            &limits(work.path())
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )
        .await;
        let gateway = fake.gw.pid();
        let url = fake.gw.url("/v1/chat/completions");
        create_session(&fake, "busy").await;
        let warm = one(url.clone(), "[[words:5]]".into(), false).await.unwrap();
        assert_eq!(warm.status, 200);
        let rss_before = rss_kb(gateway);

        // A slow turn (~6 s) holds the session's turn while the waiters arrive.
        let slow = tokio::spawn(session_turn(
            url.clone(),
            "busy".into(),
            "<SLOW> [[words:30]] [[delay_ms:200]]".into(),
        ));
        until_a_run_got(&fake, "<SLOW>").await;
        let waiters: Vec<_> = (0..WAITERS)
            .map(|i| {
                tokio::spawn(session_turn(
                    url.clone(),
                    "busy".into(),
                    format!("<W{i:02}>"),
                ))
            })
            .collect();
        let mut replies = Vec::new();
        for w in waiters {
            replies.push(w.await.unwrap());
        }
        let (slow_status, ..) = slow.await.unwrap();
        let rss_after = rss_kb(gateway);

        let refused: Vec<_> = replies.iter().filter(|r| r.0 == 429).collect();
        let timed_out: Vec<_> = replies.iter().filter(|r| r.0 == 503).collect();
        let slowest_429 = refused.iter().map(|r| r.3).max().unwrap_or_default();
        let (first_503, last_503) = (
            timed_out.iter().map(|r| r.3).min().unwrap_or_default(),
            timed_out.iter().map(|r| r.3).max().unwrap_or_default(),
        );
        println!(
            "\nsession lock: {WAITERS} waiters behind a slow turn, queue {QUEUE}, timeout 2 s: \
             {} × 429 (slowest {slowest_429:.2?}), {} × 503 ({first_503:.2?} – {last_503:.2?}); \
             gateway RSS {rss_before} → {rss_after} kB",
            refused.len(),
            timed_out.len()
        );
        assert_eq!(slow_status, 200, "the turn holding the session completes");
        assert_eq!(refused.len() + timed_out.len(), WAITERS, "{replies:?}");
        assert!(
            (QUEUE - 2..=QUEUE).contains(&timed_out.len()),
            "the queue holds {QUEUE} waiters: {replies:?}"
        );
        for (_, retry_after, code, took) in &refused {
            assert_eq!(code.as_deref(), Some("rate_limit_exceeded"));
            let retry = retry_after.as_deref().expect("429 without Retry-After");
            assert!(retry.parse::<u64>().is_ok_and(|s| s >= 1), "{retry}");
            assert!(*took < Duration::from_secs(1), "a 429 took {took:?}");
        }
        for (_, _, code, took) in &timed_out {
            assert_eq!(code.as_deref(), Some("unavailable"));
            assert!(
                *took >= Duration::from_millis(1900) && *took < Duration::from_secs(5),
                "a 503 came after {took:?}, not at the 2 s queue timeout"
            );
        }
        assert!(
            rss_after <= rss_before + RSS_GROWTH_LIMIT_KB,
            "RSS grew from {rss_before} kB to {rss_after} kB"
        );
        // Nothing a waiter sent was stored, and the session takes turns again.
        let (status, ..) = session_turn(url, "busy".into(), "again".into()).await;
        assert_eq!(status, 200);
        let r = client()
            .get(fake.gw.url("/v1/sessions/busy"))
            .send()
            .await
            .unwrap();
        let session: Value = r.json().await.unwrap();
        assert_eq!(
            session["messages"].as_array().map(Vec::len),
            Some(4),
            "{session}"
        );
    })
    .await;
}

/// `/metrics` gauge `claude_gateway_processes{state="…"}`.
async fn processes_gauge(fake: &FakeCliGateway, state: &str) -> Option<u64> {
    let text = client()
        .get(fake.gw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("claude_gateway_processes{{state=\"{state}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn warm_and_session_processes_count_in_the_process_cap() {
    const SESSIONS: usize = 5;
    bounded(async {
        let work = tempfile::tempdir().unwrap();
        let mut args = limits(work.path());
        args.extend(["--pool-size", "2", "--pool-models", "sonnet"].map(String::from));
        let fake =
            FakeCliGateway::start(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
        let gateway = fake.gw.pid();
        let url = fake.gw.url("/v1/chat/completions");
        let sampler = Sampler::start(gateway);
        // The pool fills: 2 warm processes.
        let started = Instant::now();
        while processes_gauge(&fake, "warm").await != Some(2) {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the pool never filled"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Session turns leave live processes behind: with the 2 warm ones the budget is full.
        for s in 0..SESSIONS {
            create_session(&fake, &format!("s{s}")).await;
        }
        for s in 0..2 {
            let (status, ..) = session_turn(url.clone(), format!("s{s}"), "hello".into()).await;
            assert_eq!(status, 200);
        }
        let full = Instant::now();
        loop {
            let session = processes_gauge(&fake, "session").await.unwrap_or(0);
            let warm = processes_gauge(&fake, "warm").await.unwrap_or(0);
            if session == 2 && warm == 2 {
                break;
            }
            assert!(
                full.elapsed() < Duration::from_secs(10),
                "idle processes never filled the budget (session {session}, warm {warm})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // A burst of plain requests and session turns at once.
        let burst_started = Instant::now();
        let mut requests = burst(&url, "[[words:5]] [[delay_ms:100]]");
        let turns: Vec<_> = (0..2 * SESSIONS)
            .map(|i| {
                let id = format!("s{}", i % SESSIONS);
                tokio::spawn(session_turn(
                    url.clone(),
                    id,
                    "[[words:5]] [[delay_ms:100]]".into(),
                ))
            })
            .collect();
        let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
        for request in requests.drain(..) {
            let reply = request
                .await
                .unwrap()
                .expect("every request gets an answer");
            if reply.status == 200 {
                assert!(reply.complete, "a 200 must be a complete answer");
            }
            *statuses.entry(reply.status).or_default() += 1;
        }
        for t in turns {
            *statuses.entry(t.await.unwrap().0).or_default() += 1;
        }
        let took = burst_started.elapsed();
        // Let the pool refill after the burst (bounded), still sampled.
        let refill = Instant::now();
        while processes_gauge(&fake, "warm").await != Some(2)
            && refill.elapsed() < Duration::from_secs(10)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (peak_all, peak_running, samples) = sampler.finish().await;
        let left = live_children(gateway).len();
        println!(
            "\nbudget: cap {CAP}, pool 2, {} requests + {} session turns at once: statuses \
             {statuses:?} in {took:.2?}; CLI children peak {peak_all} (not yet killed: \
             {peak_running}) over {samples} samples; {left} alive after",
            LOAD,
            2 * SESSIONS
        );
        for status in statuses.keys() {
            assert!([200, 429, 503].contains(status), "{statuses:?}");
        }
        assert!(
            statuses.get(&200).copied().unwrap_or(0) >= CAP,
            "{statuses:?}"
        );
        assert!(samples > 10, "the sampler barely ran ({samples} samples)");
        assert!(
            peak_running <= CAP,
            "{peak_running} CLI processes ran at once, over the cap of {CAP}"
        );
        assert!(left <= CAP, "{left} CLI processes alive after the burst");
    })
    .await;
}
