//! One process budget for every `claude` process, and bounded session-lock waits, through the
//! real gateway binary on the fake CLI (`--max-processes 4 --max-queue 8 --queue-timeout-secs
//! 2`). Twenty turns sent to a session whose slow turn holds it: those beyond the queue are
//! refused at once (429, Retry-After), the rest get a 503 at the queue timeout, and the
//! gateway's memory stays flat. With a warm pool of 2 and live session processes filling the
//! budget, a burst of plain requests and session turns never has more than 4 CLI processes
//! alive (the gateway's children are sampled every few ms), and every request is answered 200,
//! 429 or 503. Everything stays on 127.0.0.1 and stops by itself.
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
/// Plain requests in the burst.
const LOAD: usize = 10 * CAP;
/// How much the gateway's RSS may grow while the waiters come and go.
const RSS_GROWTH_LIMIT_KB: u64 = 25 * 1024;

async fn bounded(body: impl Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(120), body)
        .await
        .expect("test exceeded its time limit");
}

/// A plain (not session) completion: its status, and whether a 200 was the complete answer.
async fn plain(url: String, text: String) -> (u16, bool) {
    let response = client()
        .post(url)
        .json(&chat_body("gpt-4o", &text))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or_default();
    (
        status,
        body["choices"][0]["message"]["content"] == "w1 w2 w3 w4 w5",
    )
}

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
        // Warm up once (the token counter's tables load on the first request).
        assert_eq!(plain(url.clone(), "[[words:5]]".into()).await.0, 200);
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
        let requests: Vec<_> = (0..LOAD)
            .map(|i| {
                let text = format!("<L{i:02}> [[words:5]] [[delay_ms:100]]");
                tokio::spawn(plain(url.clone(), text))
            })
            .collect();
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
        for request in requests {
            let (status, complete) = request.await.unwrap();
            if status == 200 {
                assert!(complete, "a 200 must be a complete answer");
            }
            *statuses.entry(status).or_default() += 1;
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
