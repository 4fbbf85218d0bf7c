//! Process reuse on the real `claude` CLI (the pinned npm package) against the fake Anthropic
//! API: what reaches the API when a process is recycled, continued with a resent history, or
//! continued at its tool calls by their results must be exactly what a fresh process replaying
//! the conversation sends (same bytes, so the same prompt-cache prefix), but for the CLI's own
//! session id in `metadata`. The CLI's `x-claude-code-session-id` header tells which process
//! made a request: one process, one id.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::fake_anthropic::FakeAnthropic;
use common::*;
use serde_json::{Value, json};

struct Setup {
    api: FakeAnthropic,
    gw: Gateway,
}

async fn setup(extra: &[&str]) -> Option<Setup> {
    let cli = real_cli()?;
    let api = FakeAnthropic::start().await;
    let gw = real_cli_gateway(&cli, &api, extra).await;
    Some(Setup { api, gw })
}

/// A request body as bytes, but for the CLI's session id.
fn comparable(mut req: Value) -> String {
    if let Some(m) = req.get_mut("metadata") {
        m["user_id"] = Value::Null;
    }
    req.to_string()
}

/// The CLI session (one per process) of each API request so far.
fn sessions(api: &FakeAnthropic) -> Vec<String> {
    api.request_headers()
        .iter()
        .map(|h| {
            h.iter()
                .find(|(k, _)| k == "x-claude-code-session-id")
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        })
        .collect()
}

async fn chat(s: &Setup, body: &Value) -> Value {
    let sent = client()
        .post(s.gw.url("/v1/chat/completions"))
        .timeout(Duration::from_secs(30))
        .json(body)
        .send()
        .await;
    let response = sent.unwrap_or_else(|e| panic!("{e}\n{}", s.gw.stderr()));
    let status = response.status().as_u16();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{answer}\n{}", s.gw.stderr());
    answer
}

fn with_system(text: &str) -> Value {
    json!({"model": "gpt-4o", "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": text}]})
}

async fn bounded(body: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(180), body)
        .await
        .expect("test exceeded its time limit");
}

#[tokio::test]
async fn a_recycled_process_reaches_the_api_like_a_fresh_one() {
    bounded(async {
        let Some(reused) = setup(&[]).await else {
            return;
        };
        let fresh = setup(&["--reuse-processes=false"]).await.unwrap();
        chat(&reused, &with_system("RECYCLE-A my secret is Paris")).await;
        let answer = chat(&reused, &with_system("RECYCLE-B what is my secret?")).await;
        assert_eq!(
            answer["choices"][0]["message"]["content"],
            "You said: RECYCLE-B what is my secret?"
        );
        chat(&fresh, &with_system("RECYCLE-B what is my secret?")).await;
        let ids = sessions(&reused.api);
        assert_eq!(ids.len(), 2);
        assert_eq!(
            ids[0], ids[1],
            "the second request ran in the first's process"
        );
        let second = reused.api.requests()[1].clone();
        assert!(!second.to_string().contains("Paris"), "{second}");
        assert_eq!(
            comparable(second),
            comparable(fresh.api.requests()[0].clone()),
            "a recycled process sends what a fresh one sends"
        );
        assert!(reused.gw.stderr().contains("recycled a parked process"));
    })
    .await;
}

#[tokio::test]
async fn a_resent_history_continues_in_place_like_a_replay() {
    bounded(async {
        let Some(reused) = setup(&[]).await else {
            return;
        };
        let replay = setup(&["--reuse-processes=false"]).await.unwrap();
        let first = chat(&reused, &with_system("HIST-1 My name is Ada.")).await;
        let said = first["choices"][0]["message"]["content"].clone();
        let mut next = with_system("HIST-1 My name is Ada.");
        let messages = next["messages"].as_array_mut().unwrap();
        messages.push(json!({"role": "assistant", "content": said}));
        messages.push(json!({"role": "user", "content": "HIST-2 What is my name?"}));
        chat(&reused, &next).await;
        chat(&replay, &next).await;
        let ids = sessions(&reused.api);
        assert_eq!(ids[0], ids[1], "continued in the same process");
        assert!(reused.gw.stderr().contains("continuing a parked process"));
        assert_eq!(
            comparable(reused.api.requests()[1].clone()),
            comparable(replay.api.requests()[0].clone()),
            "the continued conversation reaches the API like the replayed one"
        );
    })
    .await;
}

fn weather() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])
}

async fn tool_round(cities: &[&str]) {
    let Some(reused) = setup(&[]).await else {
        return;
    };
    let replay = setup(&["--reuse-processes=false"]).await.unwrap();
    let calls: String = cities
        .iter()
        .map(|c| format!("[[tool:get_weather:{{\"city\":\"{c}\"}}]]"))
        .collect();
    let prompt = format!("TOOLS weather? {calls}");
    let body = json!({"model": "gpt-4o", "tools": weather(), "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": prompt}]});
    let first = chat(&reused, &body).await;
    assert_eq!(first["choices"][0]["finish_reason"], "tool_calls");
    let message = &first["choices"][0]["message"];
    let tool_calls = message["tool_calls"].as_array().unwrap();
    assert_eq!(tool_calls.len(), cities.len());
    let mut next = body.clone();
    let messages = next["messages"].as_array_mut().unwrap();
    messages.push(json!({"role": "assistant", "content": message["content"],
                         "tool_calls": tool_calls}));
    for (call, city) in tool_calls.iter().zip(cities) {
        messages.push(json!({"role": "tool", "tool_call_id": call["id"],
                             "content": format!("Rainy in {city}")}));
    }
    let answer = chat(&reused, &next).await;
    let text = answer["choices"][0]["message"]["content"].as_str().unwrap();
    for city in cities {
        assert!(text.contains(&format!("Rainy in {city}")), "{text}");
    }
    chat(&replay, &next).await;
    let ids = sessions(&reused.api);
    assert_eq!(ids.len(), 2);
    assert_eq!(
        ids[0], ids[1],
        "the results went on in the process at the calls"
    );
    assert!(
        reused
            .gw
            .stderr()
            .contains("continuing a parked process with tool results")
    );
    assert_eq!(
        comparable(reused.api.requests()[1].clone()),
        comparable(replay.api.requests()[0].clone()),
        "the continued tool round reaches the API like the replayed one"
    );
}

#[tokio::test]
async fn tool_results_continue_the_process_at_its_call_like_a_replay() {
    bounded(tool_round(&["Paris"])).await;
}

#[tokio::test]
async fn results_of_parallel_calls_continue_the_process_like_a_replay() {
    bounded(tool_round(&["Paris", "Oslo"])).await;
}
