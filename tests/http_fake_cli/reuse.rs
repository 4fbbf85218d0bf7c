//! Process reuse on the fake CLI: a stateless request's process is parked after its turn and
//! serves the next request of the same tenant and configuration (rewound to empty first), a
//! request whose history is what a parked process holds continues it, and a process stopped at
//! tool calls is continued by the follow-up that brings their results. What each process held
//! is read from the fake's log: its stdin and the messages of every "API call" it made.

use super::*;

const KEYS: &[&str] = &["--api-keys", "sk-tenant-a,sk-tenant-b"];

async fn ask(fake: &FakeCliGateway, key: &str, body: &Value) -> (u16, Value) {
    let (status, _, text) = post_with_headers(
        &completions(fake),
        body,
        &[("authorization", &format!("Bearer {key}"))],
    )
    .await;
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, json)
}

fn answer(body: &Value) -> &str {
    body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
}

/// The messages of the last API call the process marked `needle` made.
fn last_api_request(fake: &FakeCliGateway, needle: &str) -> Value {
    let run = run_with(fake, needle).expect("the run");
    run["api_requests"]
        .as_array()
        .and_then(|calls| calls.last())
        .cloned()
        .expect("an API call")
}

fn control_requests(run: &Value, subtype: &str) -> usize {
    run["stdin"]
        .as_array()
        .expect("as the test set it up")
        .iter()
        .filter(|l| l["request"]["subtype"] == subtype)
        .count()
}

#[tokio::test]
pub(crate) async fn a_recycled_process_never_shows_a_previous_requests_text() {
    bounded(async {
        let fake = FakeCliGateway::start(KEYS).await;
        let body = |text: &str| chat_body("gpt-4o", text);
        let (status, first) = ask(&fake, "sk-tenant-a", &body("SECRET-A1 [[recall]]")).await;
        assert_eq!((status, answer(&first)), (200, "Recall: (none)"));
        // Tenants interleaved: B never gets A's process.
        let (_, b1) = ask(&fake, "sk-tenant-b", &body("SECRET-B1 [[recall]]")).await;
        assert_eq!(answer(&b1), "Recall: (none)");
        let (_, a2) = ask(&fake, "sk-tenant-a", &body("A2 [[recall]]")).await;
        assert_eq!(answer(&a2), "Recall: (none)", "A's first request is gone");
        let (_, b2) = ask(&fake, "sk-tenant-b", &body("B2 [[recall]]")).await;
        assert_eq!(answer(&b2), "Recall: (none)");

        let pid = |marker| run_pid(&run_with(&fake, marker).expect("the run"));
        assert_eq!(pid("SECRET-A1"), pid("A2"), "A's process was reused");
        assert_eq!(pid("SECRET-B1"), pid("B2"), "B's process was reused");
        assert_ne!(pid("SECRET-A1"), pid("SECRET-B1"), "never across keys");
        // Each recycled process was rewound, configured once, and the second request's API
        // call held only its own message.
        let a = run_with(&fake, "A2").expect("the run");
        assert_eq!(control_requests(&a, "rewind_conversation"), 1);
        assert_eq!(control_requests(&a, "initialize"), 1);
        let sent = last_api_request(&fake, "A2").to_string();
        assert!(sent.contains("A2") && !sent.contains("SECRET"), "{sent}");
        let sent = last_api_request(&fake, "B2").to_string();
        assert!(sent.contains("B2") && !sent.contains("SECRET"), "{sent}");
        // Two tenants, four requests, two processes.
        assert_eq!(fake.runs().len(), 2);
    })
    .await;
}

#[tokio::test]
pub(crate) async fn another_configuration_gets_another_process() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let mut one = chat_body("gpt-4o", "CONF1");
        one["messages"] = json!([{"role": "system", "content": "Be brief."},
                                 {"role": "user", "content": "CONF1"}]);
        let mut two = one.clone();
        two["messages"][0]["content"] = json!("Be verbose.");
        two["messages"][1]["content"] = json!("CONF2");
        let mut three = chat_body("gpt-4o", "CONF3");
        three["max_tokens"] = json!(20);
        for body in [&one, &two, &three] {
            assert_eq!(post_json(&completions(&fake), body).await.0, 200);
        }
        let pids: std::collections::HashSet<u32> = ["CONF1", "CONF2", "CONF3"]
            .iter()
            .map(|m| run_pid(&run_with(&fake, m).expect("the run")))
            .collect();
        assert_eq!(
            pids.len(),
            3,
            "system prompt and max_tokens are configuration"
        );
    })
    .await;
}

#[tokio::test]
pub(crate) async fn a_reset_that_fails_discards_the_process() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, _, _) = post_json(
            &completions(&fake),
            &chat_body("gpt-4o", "RWF1 [[rewind_fails]]"),
        )
        .await;
        assert_eq!(status, 200);
        let first = run_pid(&run_with(&fake, "RWF1").expect("the run"));
        let (status, _, body) =
            post_json(&completions(&fake), &chat_body("gpt-4o", "RWF2 [[recall]]")).await;
        assert_eq!((status, answer(&body)), (200, "Recall: (none)"));
        let second = run_with(&fake, "RWF2").expect("the run");
        assert_ne!(run_pid(&second), first, "served by a new process");
        eventually("the process that failed its reset to be gone", || {
            !alive(first)
        })
        .await;
        // It was tried: the failed process got the rewind.
        let failed = fake
            .runs()
            .into_iter()
            .find(|r| run_pid(r) == first)
            .expect("as the test set it up");
        assert_eq!(control_requests(&failed, "rewind_conversation"), 1);
    })
    .await;
}

#[tokio::test]
pub(crate) async fn a_resent_history_continues_the_process_that_holds_it() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (_, _, first) = post_json(
            &completions(&fake),
            &chat_body("gpt-4o", "CONT1 my name is Ada"),
        )
        .await;
        let said = answer(&first).to_string();
        assert_eq!(said, "Echo: CONT1 my name is Ada");
        let follow_up = json!({"model": "gpt-4o", "messages": [
            {"role": "user", "content": "CONT1 my name is Ada"},
            {"role": "assistant", "content": said},
            {"role": "user", "content": "CONT2 [[recall]]"},
        ]});
        let (status, _, body) = post_json(&completions(&fake), &follow_up).await;
        assert_eq!(
            (status, answer(&body)),
            (200, "Recall: CONT1 my name is Ada")
        );
        let run = run_with(&fake, "CONT2").expect("the run");
        assert_eq!(
            run_pid(&run),
            run_pid(&run_with(&fake, "CONT1").expect("the run"))
        );
        // Only the new message was written: no replayed history, no rewind.
        let users: Vec<&Value> = run["stdin"]
            .as_array()
            .expect("as the test set it up")
            .iter()
            .filter(|l| l["type"] == "user")
            .collect();
        assert_eq!(users.len(), 2, "{users:?}");
        assert!(users.iter().all(|l| l.get("shouldQuery").is_none()));
        assert_eq!(control_requests(&run, "rewind_conversation"), 0);

        // A history the process does not hold (an edited reply) is replayed elsewhere.
        let mut edited = follow_up.clone();
        edited["messages"][1]["content"] = json!("Hello Ada.");
        edited["messages"][2]["content"] = json!("CONT3 [[recall]]");
        let (_, _, body) = post_json(&completions(&fake), &edited).await;
        assert_eq!(answer(&body), "Recall: CONT1 my name is Ada");
        let replayed = run_with(&fake, "CONT3").expect("the run");
        let history = replayed["stdin"]
            .as_array()
            .expect("as the test set it up")
            .iter()
            .filter(|l| l["shouldQuery"] == false)
            .count();
        assert!(history >= 1, "the history was replayed");
    })
    .await;
}

fn weather_tools() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])
}

/// The first message of a tool round: Claude says a word and calls `get_weather` per city.
fn tool_prompt(marker: &str, cities: &[&str]) -> String {
    let calls: String = cities
        .iter()
        .map(|c| format!("[[tool_call:get_weather:{{\"city\":\"{c}\"}}]]"))
        .collect();
    format!("{marker} [[tool_text:Let me check.]]{calls}")
}

/// A first request that makes Claude call `get_weather` for each city; returns its answer.
async fn call_tools(fake: &FakeCliGateway, marker: &str, cities: &[&str]) -> Value {
    let body = json!({"model": "gpt-4o", "tools": weather_tools(), "messages": [
        {"role": "user", "content": tool_prompt(marker, cities)}]});
    let (status, _, answer) = post_json(&completions(fake), &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["choices"][0]["finish_reason"], "tool_calls");
    answer
}

/// The follow-up an agent loop sends: the history, the assistant's calls, a result for each.
fn follow_up(first: &Value, prompt: &str, results: &[&str]) -> Value {
    let message = &first["choices"][0]["message"];
    let calls = message["tool_calls"].as_array().expect("an array");
    let mut messages = vec![
        json!({"role": "user", "content": prompt}),
        json!({"role": "assistant", "content": message["content"], "tool_calls": calls}),
    ];
    for (call, result) in calls.iter().zip(results) {
        messages.push(json!({"role": "tool", "tool_call_id": call["id"], "content": result}));
    }
    json!({"model": "gpt-4o", "tools": weather_tools(), "messages": messages})
}

#[tokio::test]
pub(crate) async fn tool_results_continue_the_process_stopped_at_the_calls() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let first = call_tools(&fake, "TOOLS1", &["Paris", "Oslo"]).await;
        let pid = run_pid(&run_with(&fake, "TOOLS1").expect("the run"));
        let next = follow_up(
            &first,
            &tool_prompt("TOOLS1", &["Paris", "Oslo"]),
            &["Rainy", "Snowy"],
        );
        let (status, _, body) = post_json(&completions(&fake), &next).await;
        assert_eq!(
            (status, answer(&body)),
            (200, "Tool results: Rainy | Snowy")
        );
        let run = run_with(&fake, "TOOLS1").expect("the run");
        assert_eq!(run_pid(&run), pid, "the same process went on");
        // The calls were permitted and answered with the client's results; nothing replayed.
        let allowed = run["stdin"]
            .as_array()
            .expect("as the test set it up")
            .iter()
            .filter(|l| l["response"]["response"]["behavior"] == "allow")
            .count();
        assert_eq!(allowed, 2);
        assert_eq!(
            run["stdin"]
                .as_array()
                .expect("as the test set it up")
                .iter()
                .filter(|l| l["type"] == "user")
                .count(),
            1
        );
        let continued = last_api_request(&fake, "TOOLS1");

        // The replay path (reuse off) sends the API the same messages.
        let replay = FakeCliGateway::start(&["--reuse-processes=false"]).await;
        let (status, _, body) = post_json(&completions(&replay), &next).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(last_api_request(&replay, "TOOLS1"), continued);
    })
    .await;
}

#[tokio::test]
pub(crate) async fn results_that_do_not_match_the_calls_are_replayed() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let first = call_tools(&fake, "MISS1", &["Paris", "Oslo"]).await;
        let parked = run_pid(&run_with(&fake, "MISS1").expect("the run"));
        // One result of two: the parked process cannot go on with it.
        let mut next = follow_up(
            &first,
            &tool_prompt("MISS1", &["Paris", "Oslo"]),
            &["Rainy"],
        );
        next["messages"]
            .as_array_mut()
            .expect("as the test set it up")
            .push(json!({"role": "user", "content": "MISS2 and the other one?"}));
        let (status, _, body) = post_json(&completions(&fake), &next).await;
        assert_eq!(status, 200, "{body}");
        assert!(answer(&body).contains("MISS2"), "{body}");
        eventually("the parked process to be killed", || !alive(parked)).await;
        let replayed = run_with(&fake, "MISS2").expect("the run");
        assert_ne!(run_pid(&replayed), parked);
    })
    .await;
}

#[tokio::test]
pub(crate) async fn a_process_waits_for_tool_results_only_so_long() {
    bounded(async {
        let fake = FakeCliGateway::start(&["--tool-wait-secs", "1"]).await;
        let first = call_tools(&fake, "WAIT1", &["Paris"]).await;
        let parked = run_pid(&run_with(&fake, "WAIT1").expect("the run"));
        eventually("the process stopped at the call to be killed", || {
            !alive(parked)
        })
        .await;
        let next = follow_up(&first, &tool_prompt("WAIT1", &["Paris"]), &["Sunny"]);
        let (status, _, body) = post_json(&completions(&fake), &next).await;
        assert_eq!((status, answer(&body)), (200, "Echo: Sunny"));
        let runs = fake.runs();
        assert_eq!(runs.len(), 2, "replayed in a new process");
    })
    .await;
}

#[tokio::test]
pub(crate) async fn a_killed_gateway_leaves_no_waiting_process_behind() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        call_tools(&fake, "ORPHAN1", &["Paris"]).await;
        let parked = run_pid(&run_with(&fake, "ORPHAN1").expect("the run"));
        assert!(alive(parked), "parked at the call");
        let gateway = nix::unistd::Pid::from_raw(
            i32::try_from(fake.gw.pid()).expect("as the test set it up"),
        );
        nix::sys::signal::kill(gateway, nix::sys::signal::Signal::SIGKILL)
            .expect("as the test set it up");
        eventually("the parked process to die with the gateway", || {
            !alive(parked)
        })
        .await;
    })
    .await;
}

#[tokio::test]
pub(crate) async fn a_burst_is_served_by_few_processes_within_the_budget() {
    bounded(async {
        let fake = FakeCliGateway::start(&[
            "--max-processes",
            "4",
            "--max-starting",
            "2",
            "--max-queue",
            "40",
        ])
        .await;
        let gateway = fake.gw.pid();
        let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let sampler = {
            let sampling = sampling.clone();
            tokio::spawn(async move {
                let (mut peak, mut samples) = (0, 0);
                while sampling.load(std::sync::atomic::Ordering::SeqCst) {
                    peak = peak.max(fake_children(gateway).len());
                    samples += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                (peak, samples)
            })
        };
        let url = completions(&fake);
        let requests = (0..24).map(|i| {
            let url = url.clone();
            async move {
                let text = format!("BURST{i} [[delay_ms:20]] [[recall]]");
                post_json(&url, &chat_body("gpt-4o", &text)).await
            }
        });
        let answers = futures::future::join_all(requests).await;
        sampling.store(false, std::sync::atomic::Ordering::SeqCst);
        let (peak, samples) = sampler.await.expect("as the test set it up");
        for (status, _, body) in &answers {
            assert_eq!(*status, 200, "{body}");
            assert_eq!(answer(body), "Recall: (none)", "nothing carried over");
        }
        assert!(samples > 20, "sampled {samples} times");
        assert!(peak <= 4, "{peak} processes alive at once, budget 4");
        let spawned = fake.runs().len();
        assert!(spawned <= 4, "24 requests, {spawned} processes");
    })
    .await;
}

#[tokio::test]
pub(crate) async fn a_max_tokens_request_runs_in_a_warm_process() {
    bounded(async {
        let fake = FakeCliGateway::start(&["--pool-size", "1", "--pool-models", "sonnet"]).await;
        let gateway = fake.gw.pid();
        eventually("the pool to have its process", || {
            fake_children(gateway).len() == 1
        })
        .await;
        let warm = fake_children(gateway)[0];
        let mut body = chat_body("gpt-4o", "LIMIT1");
        body["max_tokens"] = json!(7);
        let (status, _, answer) = post_json(&completions(&fake), &body).await;
        assert_eq!(status, 200, "{answer}");
        let run = run_with(&fake, "LIMIT1").expect("the run");
        assert_eq!(run_pid(&run), warm, "served by the warm process");
        // The limit reached it on stdin, before the prompt.
        let lines = run["stdin"].as_array().expect("stdin lines");
        let limit = lines
            .iter()
            .position(|l| l["request"]["subtype"] == "apply_flag_settings")
            .expect("the limit was set");
        let prompt = lines
            .iter()
            .position(|l| l["type"] == "user")
            .expect("the prompt");
        assert!(limit < prompt);
        assert_eq!(
            lines[limit]["request"]["settings"]["env"]["CLAUDE_CODE_MAX_OUTPUT_TOKENS"],
            "7"
        );
    })
    .await;
}
