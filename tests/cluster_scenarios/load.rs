//! Load over three workers behind two façades: balance, a worker killed mid-load, a drain on
//! SIGTERM, a session that moves when its worker dies, a rate limit across both façades.

use super::*;

#[tokio::test]
async fn three_hundred_requests_spread_evenly_and_a_full_worker_gets_less() {
    within(110, async {
        // Three alike workers of 4 processes each.
        let alike: &[&str] = &["--max-processes", "4", "--max-queue", "32"];
        let c = cluster("bal", [alike, alike, alike], &[]).await;
        let t = Instant::now();
        // Each answer waits 100 ms (as real ones wait on the API), so a worker's speed is its
        // process budget, not how fast this busy machine spawns a fake CLI for it.
        let shots = (0..300)
            .map(|i| c.shot(i, "[[first_delay_ms:100]] [[reply:ok]]", false))
            .collect();
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
