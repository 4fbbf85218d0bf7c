//! The gateway binary on the real `claude` CLI (the pinned npm package, installed by `.ci/run`)
//! against the fake Anthropic API in `common/fake_anthropic.rs`, reached through
//! ANTHROPIC_BASE_URL. These tests check what actually reaches the API.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::fake_anthropic::FakeAnthropic;
use common::openai_schema::assert_valid;
use common::*;
use serde_json::{Value, json};

struct Setup {
    api: FakeAnthropic,
    gw: Gateway,
}

async fn setup(extra: &[&str]) -> Option<Setup> {
    let cli = real_cli()?;
    let api = FakeAnthropic::start().await;
    let gw = Gateway::builder()
        .args([
            "--claude-bin",
            cli.to_str().unwrap(),
            "--claude-max-retries",
            "0",
        ])
        .args(extra.iter().copied())
        .env("ANTHROPIC_API_KEY", "sk-test")
        .env("ANTHROPIC_BASE_URL", api.base_url())
        .start()
        .await;
    Some(Setup { api, gw })
}

/// Characters the API request spends besides the conversation: system blocks, tools, and
/// messages other than the user's text.
fn request_chars(req: &Value) -> usize {
    req["system"].to_string().len()
        + req["tools"].to_string().len()
        + req["messages"].to_string().len()
}

async fn hello_is_lean(extra: &[&str]) {
    let Some(s) = setup(extra).await else { return };
    let (status, _, body) = post_json(
        &s.gw.url("/v1/chat/completions"),
        &chat_body("gpt-4o", "Hello"),
    )
    .await;
    assert_eq!(status, 200, "{body}\n{}", s.gw.stderr());
    assert_valid("CreateChatCompletionResponse", &body);
    assert_eq!(body["choices"][0]["message"]["content"], "You said: Hello");
    assert_eq!(body["model"], "gpt-4o");
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let requests = s.api.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    let req = &requests[0];
    assert_eq!(req["tools"], json!([]), "no built-in tool schemas");
    assert_eq!(req["model"], "claude-sonnet-5-5");
    let chars = request_chars(req);
    eprintln!("API request for a plain Hello ({extra:?}): {chars} chars of system+tools+messages");
    eprintln!("system: {}", req["system"]);
    // Peers send 40k–130k characters of agent scaffolding with a Hello.
    assert!(
        chars < 2_500,
        "request is {chars} chars: {}",
        serde_json::to_string_pretty(req).unwrap()
    );
    assert!(
        !req["system"]
            .to_string()
            .contains("Claude Code, Anthropic's official CLI")
    );
}

#[tokio::test]
async fn a_plain_hello_reaches_the_api_lean_with_an_api_key() {
    tokio::time::timeout(Duration::from_secs(120), hello_is_lean(&[]))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_plain_hello_reaches_the_api_lean_in_login_mode() {
    tokio::time::timeout(
        Duration::from_secs(120),
        hello_is_lean(&["--auth", "login"]),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn streaming_is_token_by_token_with_usage() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let Some(s) = setup(&[]).await else { return };
        let mut body = chat_body("gpt-4o-mini", "[[words:5]] [[delay_ms:150]]");
        body["stream"] = true.into();
        body["stream_options"] = json!({"include_usage": true});
        let (status, _, events) = post_sse(&s.gw.url("/v1/chat/completions"), &body).await;
        assert_eq!(status, 200);
        let chunks = chunks(&events);
        for c in &chunks {
            assert_valid("CreateChatCompletionStreamResponse", c);
        }
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(content_of(&chunks), "w1 w2 w3 w4 w5");
        let content_times: Vec<Instant> = events
            .iter()
            .filter(|e| e.data.contains("\"content\":\"w"))
            .map(|e| e.at)
            .collect();
        assert_eq!(content_times.len(), 5, "one chunk per token");
        let spread = content_times[4] - content_times[0];
        assert!(
            spread >= Duration::from_millis(450),
            "tokens arrived in a burst: {spread:?}"
        );
        let n = chunks.len();
        assert_eq!(chunks[n - 2]["choices"][0]["finish_reason"], "stop");
        let usage = &chunks[n - 1]["usage"];
        assert_eq!(chunks[n - 1]["choices"], json!([]));
        assert_eq!(usage["completion_tokens"], 5);
        assert_eq!(s.api.requests()[0]["model"], "claude-haiku-5-5");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn the_conversation_reaches_the_api_as_native_messages() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let Some(s) = setup(&[]).await else { return };
        let body = json!({"model": "sonnet", "messages": [
            {"role": "system", "content": "You are a pirate."},
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Ahoy, Ada!"},
            {"role": "developer", "content": "Answer in one line."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="}}
            ]}
        ]});
        let (status, _, resp) = post_json(&s.gw.url("/v1/chat/completions"), &body).await;
        assert_eq!(status, 200, "{resp}");
        let requests = s.api.requests();
        assert_eq!(requests.len(), 1, "history must not cost extra API calls");
        let req = &requests[0];
        let system = req["system"].to_string();
        assert!(system.contains("You are a pirate.\\n\\nAnswer in one line."), "{system}");
        let turns: Vec<(String, String)> = req["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] != "system")
            .map(|m| (m["role"].as_str().unwrap().to_string(), m["content"].to_string()))
            .collect();
        assert_eq!(turns.len(), 3, "{turns:#?}");
        assert_eq!(turns[0].0, "user");
        assert!(turns[0].1.contains("My name is Ada."));
        assert_eq!(turns[1].0, "assistant");
        assert!(turns[1].1.contains("Ahoy, Ada!"));
        assert_eq!(turns[2].0, "user");
        let last = &req["messages"]
            .as_array()
            .unwrap()
            .iter()
            .rfind(|m| m["role"] == "user")
            .unwrap()["content"];
        let image = last
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "image")
            .expect("native image block");
        assert_eq!(image["source"]["media_type"], "image/png");
        assert_eq!(image["source"]["type"], "base64");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn api_errors_are_mapped() {
    tokio::time::timeout(Duration::from_secs(180), async {
        let Some(s) = setup(&[]).await else { return };
        let url = s.gw.url("/v1/chat/completions");
        let cases = [
            (
                "[[error:429]] [[retry_after:7]]",
                429,
                "rate_limit_exceeded",
            ),
            ("[[error:401]]", 502, "upstream_auth_failed"),
            ("[[error:403]]", 502, "upstream_auth_failed"),
            ("[[error:529]]", 503, "overloaded"),
            ("[[error:500]]", 502, "upstream_error"),
        ];
        for (text, want_status, want_code) in cases {
            let (status, _, body) = post_json(&url, &chat_body("gpt-4o", text)).await;
            assert_eq!(status, want_status, "{text}: {body}");
            assert_valid("ErrorResponse", &body);
            assert_eq!(body["error"]["code"], want_code, "{text}: {body}");
            if want_status == 502 && want_code == "upstream_auth_failed" {
                assert!(
                    body["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("not authenticated")
                );
            }
        }
        // Streaming: an error before the first token is a real status, not a 200.
        let mut body = chat_body("gpt-4o", "[[error:529]]");
        body["stream"] = true.into();
        let (status, _, _) = post_sse(&url, &body).await;
        assert_eq!(status, 503);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn health_reports_the_real_cli_version() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let Some(s) = setup(&[]).await else { return };
        let health: Value = client()
            .get(s.gw.url("/health"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["status"], "ok");
        assert_eq!(health["cli"]["found"], true);
        assert_eq!(health["cli"]["version"], "2.1.330 (Claude Code)");
    })
    .await
    .unwrap();
}

/// Function calling, JSON output and n choices over the gRPC contract, on the real CLI.
#[tokio::test]
async fn tools_json_and_n_over_grpc() {
    use claude_gateway::grpc::pb;
    tokio::time::timeout(Duration::from_secs(120), async {
        let Some(s) = setup(&[]).await else { return };
        let mut client = pb::chat_service_client::ChatServiceClient::connect(s.gw.grpc.clone())
            .await
            .unwrap();
        let user = |text: &str| pb::ChatMessage {
            role: pb::Role::User as i32,
            content: vec![pb::ContentPart {
                part: Some(pb::content_part::Part::Text(text.into())),
            }],
            ..Default::default()
        };
        let weather = pb::Tool {
            function: Some(pb::FunctionDefinition {
                name: "get_weather".into(),
                description: "Weather of a city".into(),
                parameters_json: r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#.into(),
                strict: None,
            }),
        };
        let response = client
            .create_chat_completion(pb::CreateChatCompletionRequest {
                params: Some(pb::ChatCompletionParams {
                    model: "sonnet".into(),
                    messages: vec![user(r#"Paris? [[tool:get_weather:{"city":"Paris"}]]"#)],
                    tools: vec![weather],
                    n: Some(2),
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.choices.len(), 2);
        for choice in &response.choices {
            assert_eq!(choice.finish_reason, pb::FinishReason::ToolCalls as i32);
            let call = &choice.message.as_ref().unwrap().tool_calls[0];
            let function = call.function.as_ref().unwrap();
            assert_eq!(function.name, "get_weather");
            assert_eq!(function.arguments, r#"{"city":"Paris"}"#);
        }

        let response = client
            .create_chat_completion(pb::CreateChatCompletionRequest {
                params: Some(pb::ChatCompletionParams {
                    model: "sonnet".into(),
                    messages: vec![user(r#"A person [[json:{"name":"Ada","age":36}]]"#)],
                    response_format: Some(pb::ResponseFormat {
                        r#type: pb::ResponseFormatType::JsonSchema as i32,
                        json_schema: Some(pb::JsonSchemaFormat {
                            name: "person".into(),
                            schema_json: r#"{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},"required":["name","age"]}"#.into(),
                            ..Default::default()
                        }),
                    }),
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner();
        let content = response.choices[0].message.as_ref().unwrap().content.clone().unwrap();
        let value: Value = serde_json::from_str(&content).unwrap();
        assert_eq!(value, json!({"name": "Ada", "age": 36}));
    })
    .await
    .unwrap();
}

/// Everything in a request body that can differ between two identical requests: the CLI's
/// session id inside `metadata.user_id`.
fn comparable(mut req: Value) -> Value {
    if let Some(m) = req.get_mut("metadata") {
        m["user_id"] = Value::Null;
    }
    req
}

/// A warm process is configured late (initialize on stdin), yet the API sees exactly what a cold
/// run sends: system prompt, tools, model, messages.
#[tokio::test]
async fn a_pooled_run_reaches_the_api_exactly_like_a_cold_one() {
    tokio::time::timeout(Duration::from_secs(180), async {
        let Some(cold) = setup(&[]).await else { return };
        let warm = setup(&["--pool-size", "1", "--pool-models", "sonnet"])
            .await
            .unwrap();
        // Wait (bounded) until the pool has its process.
        let health_url = warm.gw.url("/health");
        let mut ready = false;
        for _ in 0..100 {
            let h: Value = client()
                .get(&health_url)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if h["warm_processes"].as_u64() == Some(1) {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "the pool never filled: {}", warm.gw.stderr());
        let body = json!({"model": "gpt-4o", "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Noted."},
            {"role": "user", "content": "Weather? [[tool:get_weather:{\"city\":\"Oslo\"}]]"}
        ], "tools": [{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]});
        for s in [&cold, &warm] {
            let (status, _, resp) = post_json(&s.gw.url("/v1/chat/completions"), &body).await;
            assert_eq!(status, 200, "{resp}");
            assert_eq!(resp["choices"][0]["finish_reason"], "tool_calls");
        }
        assert!(
            warm.gw.stderr().contains("took a warm claude process"),
            "the warm run did not use the pool"
        );
        assert!(!cold.gw.stderr().contains("took a warm claude process"));
        let (cold_reqs, warm_reqs) = (cold.api.requests(), warm.api.requests());
        assert_eq!(cold_reqs.len(), 1);
        assert_eq!(warm_reqs.len(), 1, "no extra probe request (no set_model)");
        assert_eq!(
            comparable(cold_reqs[0].clone()),
            comparable(warm_reqs[0].clone())
        );
    })
    .await
    .unwrap();
}

/// `/v1/models` (and the gRPC ModelService) list the concrete ids the real CLI resolves its
/// aliases to, learned from its `initialize` answer at startup, and each works as `model`.
#[tokio::test]
async fn models_lists_the_cli_s_concrete_ids_and_each_is_accepted() {
    use claude_gateway::grpc::pb;
    use claude_gateway::grpc::pb::model_service_client::ModelServiceClient;
    tokio::time::timeout(Duration::from_secs(120), async {
        let Some(s) = setup(&["--discover-models", "true"]).await else {
            return;
        };
        let response = client().get(s.gw.url("/v1/models")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        let ids: Vec<&str> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["id"].as_str())
            .collect();
        let claude: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| id.starts_with("claude-"))
            .collect();
        assert!(
            !claude.is_empty(),
            "no claude-* id in {ids:?}\n{}",
            s.gw.stderr()
        );
        assert!(
            ids.contains(&"sonnet") && ids.contains(&"gpt-4o"),
            "{ids:?}"
        );
        eprintln!("claude-* ids learned from the CLI: {claude:?}");

        let mut grpc = ModelServiceClient::connect(s.gw.grpc.clone())
            .await
            .unwrap();
        let listed = grpc
            .list_models(pb::ListModelsRequest {})
            .await
            .unwrap()
            .into_inner();
        for id in &claude {
            assert!(listed.models.iter().any(|m| m.id == *id), "gRPC lacks {id}");
        }

        let id = claude[0];
        let response = client()
            .get(s.gw.url(&format!("/v1/models/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET /v1/models/{id}");
        let (status, _, body) =
            post_json(&s.gw.url("/v1/chat/completions"), &chat_body(id, "Hello")).await;
        assert_eq!(status, 200, "{body}\n{}", s.gw.stderr());
        assert_eq!(body["model"], id);
        let requests = s.api.requests();
        assert_eq!(
            requests.last().unwrap()["model"],
            id,
            "the CLI ran with --model {id}"
        );
    })
    .await
    .unwrap();
}

/// A user message that looks like a slash command is the client's text for Claude, not a
/// command for the CLI: each one reaches the API (its `/` split into a block of its own, the
/// same characters), and none runs — neither as the prompt nor in replayed history.
#[tokio::test]
async fn slash_commands_in_client_text_reach_claude_as_text() {
    let Some(s) = setup(&[]).await else { return };
    for text in ["/clear", "/compact now", "/help"] {
        let (status, _, body) = post_json(
            &s.gw.url("/v1/chat/completions"),
            &chat_body("gpt-4o", text),
        )
        .await;
        assert_eq!(status, 200, "{text}: {body}\n{}", s.gw.stderr());
        let requests = s.api.requests();
        let last = requests
            .last()
            .unwrap_or_else(|| panic!("{text}: no API request"));
        let messages = last["messages"].to_string();
        let rest = &text[1..];
        assert!(
            messages.contains(r#""text":"/""#) && messages.contains(rest),
            "{text}: {messages}"
        );
        assert!(!messages.contains("local-command"), "{text}: {messages}");
    }
    // In history: replayed, not run.
    let body = json!({"model": "gpt-4o", "messages": [
        {"role": "user", "content": "/clear"},
        {"role": "assistant", "content": "Cleared?"},
        {"role": "user", "content": "What did I say first?"}]});
    let (status, _, answer) = post_json(&s.gw.url("/v1/chat/completions"), &body).await;
    assert_eq!(status, 200, "{answer}");
    let requests = s.api.requests();
    let messages = requests.last().unwrap()["messages"].to_string();
    assert!(messages.contains("Cleared?"), "{messages}");
    assert!(!messages.contains("local-command"), "{messages}");
}
