//! A bounded loopback load test of the real gateway binary on the fake CLI, at ten times its
//! process cap (`--max-processes 4 --max-queue 8 --queue-timeout-secs 2`, 40 requests at once):
//! the only errors are 429 (queue full, with Retry-After) and 503 (waited too long), the cap
//! holds (the live CLI children are sampled throughout), memory stays bounded and the gateway
//! answers afterwards. Then the gateway is SIGKILLed in the middle of the same load, and no
//! `claude` process it started may survive it (PR_SET_PDEATHSIG). Everything stays on
//! 127.0.0.1 and stops by itself.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use common::procs::burst_limits as limits;
use common::procs::*;
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
        // Its process is parked, then expires (`--reuse-idle-secs 0`).
        eventually("the work dir to be empty", || {
            std::fs::read_dir(work.path()).unwrap().next().is_none()
        })
        .await;
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
