//! Server-side sessions end to end: the HTTP and gRPC APIs, turns stored atomically (and not at
//! all when they fail or are cancelled), serialized concurrent turns, survival of a `kill -9`,
//! expiry, the façade, and a multi-turn recall through the official Python SDK on the real CLI.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::fake_anthropic::FakeAnthropic;
use common::*;
use serde_json::{Value, json};

fn within<F: std::future::Future>(secs: u64, f: F) -> tokio::time::Timeout<F> {
    tokio::time::timeout(Duration::from_secs(secs), f)
}

async fn get_json(url: &str) -> (u16, Value) {
    let r = client().get(url).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn create(gw: &Gateway, body: Value) -> Value {
    let (status, _, session) = post_json(&gw.url("/v1/sessions"), &body).await;
    assert_eq!(status, 201, "{session}");
    session
}

async fn turn(gw: &Gateway, session: &str, text: &str) -> (u16, Value) {
    let body = json!({"model": "gpt-4o", "session_id": session,
        "messages": [{"role": "user", "content": text}]});
    let (status, _, reply) = post_json(&gw.url("/v1/chat/completions"), &body).await;
    (status, reply)
}

async fn history(gw: &Gateway, id: &str) -> Vec<Value> {
    let (status, s) = get_json(&gw.url(&format!("/v1/sessions/{id}"))).await;
    assert_eq!(status, 200, "{s}");
    s["messages"].as_array().unwrap().clone()
}

#[tokio::test]
async fn the_http_api_manages_sessions() {
    within(60, async {
        let g = FakeCliGateway::start(&[]).await;
        let s = create(&g.gw, json!({"id": "ada-1", "model": "sonnet", "system_prompt": "Be brief.", "metadata": {"user": "ada"}})).await;
        assert_eq!(s["id"], "ada-1");
        assert_eq!(s["messages"], json!([]));
        let generated = create(&g.gw, json!({})).await;
        assert!(generated["id"].as_str().unwrap().starts_with("sess_"));
        let (status, _, dup) = post_json(&g.gw.url("/v1/sessions"), &json!({"id": "ada-1"})).await;
        assert_eq!(status, 400, "{dup}");
        create(&g.gw, json!({"id": "third"})).await;

        let (_, page) = get_json(&g.gw.url("/v1/sessions?limit=2")).await;
        assert_eq!(page["data"].as_array().unwrap().len(), 2);
        assert_eq!(page["has_more"], true);
        let after = page["next_after"].as_str().unwrap();
        let (_, rest) = get_json(&g.gw.url(&format!("/v1/sessions?limit=2&after={after}"))).await;
        assert_eq!(rest["data"].as_array().unwrap().len(), 1);
        assert_eq!(rest["has_more"], false);

        // Malformed query parameters and oversized bodies are OpenAI-shaped errors too.
        let (status, body) = get_json(&g.gw.url("/v1/sessions?limit=abc")).await;
        assert_eq!(status, 400, "{body}");
        common::openai_schema::assert_valid("ErrorResponse", &body);

        let r = client().delete(g.gw.url("/v1/sessions/third")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let (status, body) = get_json(&g.gw.url("/v1/sessions/third")).await;
        assert_eq!(status, 404);
        assert_eq!(body["error"]["code"], "session_not_found");
        common::openai_schema::assert_valid("ErrorResponse", &body);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn turns_are_stored_and_replayed_natively() {
    within(60, async {
        // Replay mode: every turn runs in a new process fed with the stored history.
        let g = FakeCliGateway::start(&["--session-processes", "0"]).await;
        create(&g.gw, json!({"id": "s1", "system_prompt": "You are a pirate."})).await;
        let (status, reply) = turn(&g.gw, "s1", "My name is Ada.").await;
        assert_eq!(status, 200, "{reply}");
        let h = history(&g.gw, "s1").await;
        assert_eq!(h, vec![
            json!({"role": "user", "content": "My name is Ada."}),
            json!({"role": "assistant", "content": "Echo: My name is Ada."}),
        ]);
        // The header works as well as the body field.
        let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "What is my name?"}]});
        let r = client()
            .post(g.gw.url("/v1/chat/completions"))
            .header("x-session-id", "s1")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(history(&g.gw, "s1").await.len(), 4);
        // The second run got the session's system prompt and the first turn as native lines.
        let stdin = &g.runs()[1]["stdin"];
        assert_eq!(stdin[0]["request"]["systemPrompt"][0], "You are a pirate.");
        assert_eq!(stdin[1]["type"], "user");
        assert_eq!(stdin[1]["shouldQuery"], false);
        assert_eq!(stdin[2]["type"], "assistant");
        assert_eq!(stdin[2]["message"]["content"][0]["text"], "Echo: My name is Ada.");
        assert_eq!(stdin[3]["message"]["content"][0]["text"], "What is my name?");

        let (status, body) = turn(&g.gw, "nope", "Hi").await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["error"]["code"], "session_not_found");
        // A request without a session creates none.
        let (status, _, _) = post_json(&g.gw.url("/v1/chat/completions"), &chat_body("gpt-4o", "Hi")).await;
        assert_eq!(status, 200);
        let (_, page) = get_json(&g.gw.url("/v1/sessions")).await;
        assert_eq!(page["data"].as_array().unwrap().len(), 1);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_live_session_process_gets_only_the_new_message() {
    within(60, async {
        let g = FakeCliGateway::start(&[]).await;
        create(&g.gw, json!({"id": "live"})).await;
        assert_eq!(turn(&g.gw, "live", "One.").await.0, 200);
        assert_eq!(turn(&g.gw, "live", "Two.").await.0, 200);
        let runs = g.runs();
        assert_eq!(runs.len(), 1, "the second turn continued the first turn's process");
        let stdin = runs[0]["stdin"].as_array().unwrap();
        let users: Vec<&Value> = stdin.iter().filter(|l| l["type"] == "user").collect();
        assert_eq!(users.len(), 2, "no replayed history: {stdin:#?}");
        assert_eq!(users[1]["message"]["content"][0]["text"], "Two.");
        assert!(users.iter().all(|u| u.get("shouldQuery").is_none()));
        assert_eq!(history(&g.gw, "live").await.len(), 4);
        // A turn with tools is not continued there (tool calls end a run by cutting it).
        let body = json!({"model": "gpt-4o", "session_id": "live", "messages": [{"role": "user", "content": "Three."}],
            "tools": [{"type": "function", "function": {"name": "f"}}]});
        let (status, _, _) = post_json(&g.gw.url("/v1/chat/completions"), &body).await;
        assert_eq!(status, 200);
        assert_eq!(g.runs().len(), 2, "replayed into a new process");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn failed_or_cancelled_turns_leave_the_history_as_it_was() {
    within(60, async {
        let g = FakeCliGateway::start(&["--start-retries", "0"]).await;
        create(&g.gw, json!({"id": "s"})).await;
        assert_eq!(turn(&g.gw, "s", "First.").await.0, 200);
        let (status, _) = turn(&g.gw, "s", "[[api_error:500]]").await;
        assert_eq!(status, 502);
        assert_eq!(history(&g.gw, "s").await.len(), 2);
        // Cancelled mid-stream: read the first chunk, drop the response.
        let body = json!({"model": "gpt-4o", "session_id": "s", "stream": true,
            "messages": [{"role": "user", "content": "[[hang_after:1]]"}]});
        let response = client()
            .post(g.gw.url("/v1/chat/completions"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let mut stream = response.bytes_stream();
        use futures::StreamExt;
        stream.next().await.unwrap().unwrap();
        drop(stream);
        // The session is usable again (the cancelled turn released it) and unchanged.
        assert_eq!(turn(&g.gw, "s", "Second.").await.0, 200);
        let h = history(&g.gw, "s").await;
        assert_eq!(h.len(), 4);
        assert_eq!(h[2]["content"], "Second.");
        // Clearing empties it.
        let (status, _, cleared) = post_json(&g.gw.url("/v1/sessions/s/clear"), &json!({})).await;
        assert_eq!(status, 200);
        assert_eq!(cleared["messages"], json!([]));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn concurrent_turns_on_one_session_are_serialized() {
    within(60, async {
        let g = FakeCliGateway::start(&["--session-processes", "0"]).await;
        create(&g.gw, json!({"id": "busy"})).await;
        let (a, b) = tokio::join!(
            turn(&g.gw, "busy", "A [[delay_ms:100]] [[words:3]]"),
            turn(&g.gw, "busy", "B [[delay_ms:100]] [[words:3]]"),
        );
        assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
        let h = history(&g.gw, "busy").await;
        assert_eq!(h.len(), 4, "both turns stored, one after the other: {h:#?}");
        let roles: Vec<&str> = h.iter().map(|m| m["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["user", "assistant", "user", "assistant"]);
        // The later turn ran on the earlier one's history.
        let runs = g.runs();
        let second = runs
            .iter()
            .find(|r| r["stdin"].as_array().unwrap().len() > 2)
            .unwrap();
        assert_eq!(second["stdin"][1]["shouldQuery"], false);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn sessions_survive_a_kill_9_and_expire() {
    within(90, async {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().display().to_string();
        let start = || async {
            let log = tempfile::tempdir().unwrap();
            let gw = Gateway::builder()
                .args([
                    "--claude-bin",
                    fake_cli().to_str().unwrap(),
                    "--session-store",
                    store.as_str(),
                ])
                .start()
                .await;
            (gw, log)
        };
        let (mut gw, _log) = start().await;
        create(&gw, json!({"id": "durable"})).await;
        assert_eq!(turn(&gw, "durable", "Remember me.").await.0, 200);
        // SIGKILL: nothing acknowledged may be lost.
        gw.child.start_kill().unwrap();
        gw.child.wait().await.unwrap();
        let (gw, _log) = start().await;
        let h = history(&gw, "durable").await;
        assert_eq!(h[0]["content"], "Remember me.");
        assert_eq!(turn(&gw, "durable", "Still there?").await.0, 200);
        assert_eq!(history(&gw, "durable").await.len(), 4);

        let short = Gateway::builder()
            .args([
                "--claude-bin",
                fake_cli().to_str().unwrap(),
                "--session-ttl-secs",
                "1",
            ])
            .start()
            .await;
        create(&short, json!({"id": "brief"})).await;
        assert_eq!(get_json(&short.url("/v1/sessions/brief")).await.0, 200);
        tokio::time::sleep(Duration::from_millis(1300)).await;
        assert_eq!(get_json(&short.url("/v1/sessions/brief")).await.0, 404);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn the_grpc_session_service_and_the_facade() {
    use claude_gateway::grpc::pb;
    use claude_gateway::grpc::pb::session_service_client::SessionServiceClient;
    within(60, async {
        let worker = FakeCliGateway::start(&[]).await;
        let mut sessions = SessionServiceClient::connect(worker.gw.grpc.clone())
            .await
            .unwrap();
        let created = sessions
            .create_session(pb::CreateSessionRequest {
                id: "g1".into(),
                system_prompt: "Be brief.".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .session
            .unwrap();
        assert_eq!(created.id, "g1");
        let mut chat = pb::chat_service_client::ChatServiceClient::connect(worker.gw.grpc.clone())
            .await
            .unwrap();
        chat.create_chat_completion(pb::CreateChatCompletionRequest {
            params: Some(pb::ChatCompletionParams {
                model: "sonnet".into(),
                session_id: "g1".into(),
                messages: vec![pb::ChatMessage {
                    role: pb::Role::User as i32,
                    content: vec![pb::ContentPart {
                        part: Some(pb::content_part::Part::Text("Hi".into())),
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }),
        })
        .await
        .unwrap();
        let got = sessions
            .get_session(pb::GetSessionRequest { id: "g1".into() })
            .await
            .unwrap()
            .into_inner()
            .session
            .unwrap();
        assert_eq!(got.message_count, 2);
        assert_eq!(got.history[1].role, pb::Role::Assistant as i32);
        let list = sessions
            .list_sessions(pb::ListSessionsRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(list.sessions.len(), 1);
        let missing = sessions
            .get_session(pb::GetSessionRequest { id: "zzz".into() })
            .await
            .unwrap_err();
        assert_eq!(missing.code(), tonic::Code::NotFound);

        // The HTTP façade manages the worker's sessions over gRPC.
        let facade = Gateway::builder()
            .args(["--upstream", worker.gw.grpc.as_str()])
            .start()
            .await;
        let h = history(&facade, "g1").await;
        assert_eq!(h.len(), 2);
        let (status, _) = turn(&facade, "g1", "Again").await;
        assert_eq!(status, 200);
        assert_eq!(history(&facade, "g1").await.len(), 4);
        let r = client()
            .delete(facade.url("/v1/sessions/g1"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        sessions
            .clear_session(pb::ClearSessionRequest { id: "g1".into() })
            .await
            .unwrap_err();
    })
    .await
    .unwrap();
}

/// A multi-turn recall through the official Python SDK, on the real CLI: the second turn's API
/// request carries the first turn as native messages.
#[tokio::test]
async fn python_sdk_multi_turn_recall_on_the_real_cli() {
    within(120, async {
        let Some(cli) = real_cli() else { return };
        let Some(python) = tool("venv/bin/python") else { return };
        let api = FakeAnthropic::start().await;
        let gw = real_cli_gateway(&cli, &api, &[]).await;
        let script = r#"
import os, httpx
from openai import OpenAI
base = os.environ["GW"]
sid = httpx.post(base + "/v1/sessions", json={"system_prompt": "Remember names."}).json()["id"]
client = OpenAI(base_url=base + "/v1", api_key="unused")
first = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "My name is Ada."}], extra_body={"session_id": sid})
second = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "What is my name?"}], extra_body={"session_id": sid})
assert second.choices[0].message.content == "You said: What is my name?", second
history = httpx.get(base + "/v1/sessions/" + sid).json()["messages"]
assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"], history
print("ok", sid)
"#;
        let out = tokio::process::Command::new(python)
            .args(["-c", script])
            .env("GW", &gw.http)
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let requests = api.requests();
        assert_eq!(requests.len(), 2);
        let second: Vec<Value> = requests[1]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] != "system")
            .cloned()
            .collect();
        assert_eq!(second.len(), 3, "{second:#?}");
        assert!(second[0]["content"].to_string().contains("My name is Ada."));
        assert_eq!(second[1]["role"], "assistant");
        assert!(second[1]["content"].to_string().contains("You said: My name is Ada."));
        assert!(requests[1]["system"].to_string().contains("Remember names."));
    })
    .await
    .unwrap();
}

/// Native multi-turn: with live session processes, the second and third turns continue the
/// CLI's own conversation (no new process, no replay) and the API sees exactly the requests a
/// replay sends. Prints what it saves.
#[tokio::test]
async fn live_session_processes_continue_natively_and_match_replay() {
    within(180, async {
        let Some(cli) = real_cli() else { return };
        let start = |extra: &'static [&'static str]| {
            let cli = cli.clone();
            async move {
                let api = FakeAnthropic::start().await;
                let gw = real_cli_gateway(&cli, &api, extra).await;
                (api, gw)
            }
        };
        let (live_api, live) = start(&[]).await;
        let (replay_api, replay) = start(&["--session-processes", "0"]).await;
        let mut timings = Vec::new();
        for (api, gw) in [(&live_api, &live), (&replay_api, &replay)] {
            create(gw, json!({"id": "talk", "system_prompt": "Be brief."})).await;
            let mut per_turn = Vec::new();
            for text in ["My name is Ada.", "I live in Paris.", "Where do I live?", "And my name?"] {
                let t = std::time::Instant::now();
                let (status, reply) = turn(gw, "talk", text).await;
                assert_eq!(status, 200, "{reply}");
                per_turn.push(t.elapsed());
            }
            assert_eq!(api.requests().len(), 4);
            timings.push(per_turn);
        }
        let stderr = live.stderr();
        assert_eq!(
            stderr.matches("continuing a parked process's conversation").count(),
            3,
            "turns 2-4 reuse the live process"
        );
        assert!(!replay.stderr().contains("continuing a parked process's conversation"));
        let strip = |mut r: Value| {
            r["metadata"] = Value::Null;
            r
        };
        for (a, b) in live_api.requests().into_iter().zip(replay_api.requests()) {
            assert_eq!(strip(a), strip(b), "live and replayed turns send the same request");
        }
        let later = |v: &Vec<Duration>| v[1..].iter().sum::<Duration>() / 3;
        let input: u64 = live_api.requests().len() as u64;
        println!(
            "turns 2-4, mean: live process {:?}, replay {:?} ({:.2}x); API requests {} each, identical bodies",
            later(&timings[0]),
            later(&timings[1]),
            later(&timings[0]).as_secs_f64() / later(&timings[1]).as_secs_f64(),
            input
        );
    })
    .await
    .unwrap();
}
