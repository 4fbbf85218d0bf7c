//! `POST /v1/messages` and `/v1/messages/count_tokens` (Anthropic's Messages API) on the fake
//! CLI: the whole message, the exact event sequence of a stream, a tool round trip (tool_use
//! out, tool_result back, natively to the CLI), and Anthropic-shaped errors for a missing
//! `max_tokens`, malformed JSON, server tools, a wrong `x-api-key` and the count.

use super::*;

fn messages(fake: &FakeCliGateway) -> String {
    fake.gw.url("/v1/messages")
}

fn body(text: &str) -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 256,
           "messages": [{"role": "user", "content": text}]})
}

/// Asserts an Anthropic error answer: its status, `{"type":"error","error":{"type",…}}`, the
/// `request-id` header equal to the body's `request_id`; returns the message.
fn assert_anthropic_error(
    status: u16,
    headers: &HeaderMap,
    text: &str,
    want: (u16, &str),
) -> String {
    assert_eq!(status, want.0, "{text}");
    let body: Value = serde_json::from_str(text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], want.1, "{body}");
    let id = headers["request-id"].to_str().expect("a request-id");
    assert!(!id.is_empty());
    assert_eq!(body["request_id"], id, "{body}");
    body["error"]["message"]
        .as_str()
        .expect("a message")
        .to_string()
}

/// The SSE events of a body: (event name, data), pings left out after checking their shape.
fn events_of(raw: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for frame in raw.split("\n\n").filter(|f| !f.trim().is_empty()) {
        let mut name = String::new();
        let mut data = String::new();
        for line in frame.lines() {
            if let Some(v) = line.strip_prefix("event: ") {
                name = v.to_string();
            } else if let Some(v) = line.strip_prefix("data: ") {
                data.push_str(v);
            }
        }
        let data: Value =
            serde_json::from_str(&data).unwrap_or_else(|_| panic!("not JSON: {frame}"));
        assert_eq!(
            data["type"],
            name.as_str(),
            "event name is its type: {frame}"
        );
        if name != "ping" {
            out.push((name, data));
        }
    }
    out
}

#[tokio::test]
pub(crate) async fn a_whole_message_is_anthropic_shaped_with_real_usage() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let mut b = body("MSG1 [[words:3]]");
        b["system"] = json!([{"type": "text", "text": "MSGSYSTEM be brief"}]);
        b["temperature"] = json!(0.2);
        b["top_k"] = json!(3);
        let (status, headers, text) =
            post_with_headers(&messages(&fake), &b, &[("anthropic-version", "2023-06-01")]).await;
        assert_eq!(status, 200, "{text}");
        let m: Value = serde_json::from_str(&text).expect("JSON");
        assert!(m["id"].as_str().unwrap().starts_with("msg_"), "{m}");
        assert_eq!(m["type"], "message");
        assert_eq!(m["role"], "assistant");
        assert_eq!(m["model"], "claude-sonnet-4-5");
        assert_eq!(m["content"], json!([{"type": "text", "text": "w1 w2 w3"}]));
        assert_eq!(m["stop_reason"], "end_turn");
        assert_eq!(m["stop_sequence"], Value::Null);
        assert!(m["usage"]["input_tokens"].as_u64().unwrap() > 0, "{m}");
        assert_eq!(m["usage"]["output_tokens"], 3, "{m}");
        assert_eq!(m["usage"]["cache_read_input_tokens"], 0, "{m}");
        assert_eq!(headers["x-ignored-params"], "temperature, top_k");
        assert!(headers.get("request-id").is_some());
        let run = run_with(&fake, "MSG1").expect("the run");
        assert!(run.to_string().contains("MSGSYSTEM be brief"), "{run}");
    })
    .await;
}

#[tokio::test]
pub(crate) async fn a_stream_is_anthropics_exact_event_sequence() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let mut b = body("MSG2 [[words:3]] [[cache_read:7]]");
        b["stream"] = json!(true);
        let (status, headers, raw) = post_with_headers(&messages(&fake), &b, &[]).await;
        assert_eq!(status, 200, "{raw}");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let events = events_of(&raw);
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ],
            "{raw}"
        );
        let start = &events[0].1["message"];
        assert_eq!(start["content"], json!([]));
        assert_eq!(start["stop_reason"], Value::Null);
        assert_eq!(
            events[1].1,
            json!({"type": "content_block_start", "index": 0,
                   "content_block": {"type": "text", "text": ""}})
        );
        let text: String = events[2..5]
            .iter()
            .map(|(_, d)| {
                assert_eq!(d["index"], 0);
                assert_eq!(d["delta"]["type"], "text_delta");
                d["delta"]["text"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(text, "w1 w2 w3");
        let delta = &events[6].1;
        assert_eq!(
            delta["delta"],
            json!({"stop_reason": "end_turn", "stop_sequence": null})
        );
        assert_eq!(delta["usage"]["output_tokens"], 3);
        assert_eq!(delta["usage"]["cache_read_input_tokens"], 7);
    })
    .await;
}

fn weather_tools() -> Value {
    json!([{"name": "get_weather", "description": "Weather of a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                             "required": ["city"]}}])
}

#[tokio::test]
pub(crate) async fn a_tool_round_trip_is_tool_use_out_and_tool_result_back() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let prompt =
            r#"MSGTOOL [[tool_text:Let me check.]][[tool_call:get_weather:{"city":"Paris"}]]"#;
        let mut first = body(prompt);
        first["tools"] = weather_tools();
        first["tool_choice"] = json!({"type": "auto"});
        let (status, _, text) = post_with_headers(&messages(&fake), &first, &[]).await;
        assert_eq!(status, 200, "{text}");
        let m: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(m["stop_reason"], "tool_use", "{m}");
        let content = m["content"].as_array().expect("blocks");
        assert_eq!(content[0], json!({"type": "text", "text": "Let me check."}));
        let call = &content[1];
        assert_eq!(call["type"], "tool_use");
        assert_eq!(call["name"], "get_weather");
        assert_eq!(call["input"], json!({"city": "Paris"}));
        let id = call["id"].as_str().expect("an id");

        let mut next = first.clone();
        next["messages"] = json!([
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": m["content"]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": id, "content": "Sunny"}]},
        ]);
        next["stream"] = json!(true);
        let (status, _, raw) = post_with_headers(&messages(&fake), &next, &[]).await;
        assert_eq!(status, 200, "{raw}");
        let events = events_of(&raw);
        let text: String = events
            .iter()
            .filter(|(n, _)| n == "content_block_delta")
            .filter_map(|(_, d)| d["delta"]["text"].as_str())
            .collect();
        assert_eq!(text, "Tool results: Sunny", "{raw}");
        assert_eq!(events.last().map(|(n, _)| n.as_str()), Some("message_stop"));
        // The client's result reached the CLI as the answer to its call.
        let run = run_with(&fake, "MSGTOOL").expect("the run");
        assert!(run.to_string().contains("Sunny"), "{run}");
    })
    .await;
}

#[tokio::test]
pub(crate) async fn refusals_are_anthropic_errors() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let url = messages(&fake);
        let no_max = json!({"model": "claude-sonnet-4-5",
                            "messages": [{"role": "user", "content": "Hi"}]});
        let (status, headers, text) = post_with_headers(&url, &no_max, &[]).await;
        let message =
            assert_anthropic_error(status, &headers, &text, (400, "invalid_request_error"));
        assert!(message.contains("max_tokens"), "{message}");

        let response = client()
            .post(&url)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .expect("sent");
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        let text = response.text().await.expect("body");
        assert_anthropic_error(status, &headers, &text, (400, "invalid_request_error"));

        let mut server_tool = body("Hi");
        server_tool["tools"] = json!([{"type": "bash_20250124", "name": "bash"}]);
        let (status, headers, text) = post_with_headers(&url, &server_tool, &[]).await;
        let message =
            assert_anthropic_error(status, &headers, &text, (400, "invalid_request_error"));
        assert!(message.contains("bash_20250124"), "{message}");

        let mut unknown = body("Hi");
        unknown["model"] = json!("gpt-nonexistent-model");
        let (status, headers, text) = post_with_headers(&url, &unknown, &[]).await;
        assert_anthropic_error(status, &headers, &text, (404, "not_found_error"));
    })
    .await;
}

#[tokio::test]
pub(crate) async fn x_api_key_carries_the_gateways_key() {
    bounded(async {
        let fake = FakeCliGateway::start(&["--api-keys", "sk-msg-key"]).await;
        let url = messages(&fake);
        let b = body("MSGKEY [[words:1]]");
        let (status, headers, text) = post_with_headers(&url, &b, &[("x-api-key", "wrong")]).await;
        assert_anthropic_error(status, &headers, &text, (401, "authentication_error"));
        let (status, headers, text) = post_with_headers(&url, &b, &[]).await;
        assert_anthropic_error(status, &headers, &text, (401, "authentication_error"));
        let (status, headers, text) = post_with_headers(
            &url,
            &b,
            &[
                ("x-api-key", "sk-msg-key"),
                ("anthropic-beta", "fine-grained-tool-streaming-2025-05-14"),
            ],
        )
        .await;
        assert_eq!(status, 200, "{text}");
        let m: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(m["content"][0]["text"], "w1");
        assert_eq!(
            headers["x-ignored-params"],
            "anthropic-beta:fine-grained-tool-streaming-2025-05-14"
        );
        // The OpenAI routes take it too, and keep their own error shape.
        let (status, _, text) = post_with_headers(
            &completions(&fake),
            &chat_body("gpt-4o", "x"),
            &[("x-api-key", "wrong")],
        )
        .await;
        assert_eq!(status, 401);
        let e: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(e["error"]["code"], "invalid_api_key");
    })
    .await;
}

#[tokio::test]
pub(crate) async fn count_tokens_is_an_anthropic_501_never_a_guess() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let url = fake.gw.url("/v1/messages/count_tokens");
        let b = json!({"model": "claude-sonnet-4-5",
                       "messages": [{"role": "user", "content": "MSGCOUNT hello"}]});
        let (status, headers, text) = post_with_headers(&url, &b, &[]).await;
        assert_anthropic_error(status, &headers, &text, (501, "invalid_request_error"));
        assert_eq!(headers["x-should-retry"], "false");
        assert!(run_with(&fake, "MSGCOUNT").is_none(), "no CLI was started");
        let bad =
            json!({"model": "claude-sonnet-4-5", "messages": [{"role": "robot", "content": "x"}]});
        let (status, headers, text) = post_with_headers(&url, &bad, &[]).await;
        assert_anthropic_error(status, &headers, &text, (400, "invalid_request_error"));
    })
    .await;
}

/// The content blocks a streamed answer was made of, by their start events' types.
fn block_types(events: &[(String, Value)]) -> Vec<String> {
    events
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, d)| {
            d["content_block"]["type"]
                .as_str()
                .unwrap_or("?")
                .to_string()
        })
        .collect()
}

#[tokio::test]
pub(crate) async fn thinking_streams_as_blocks_when_asked_and_replays_natively() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let url = messages(&fake);
        let question = json!({"role": "user", "content": "MSGTHINK hi [[thinking]]"});
        let b = json!({"model": "claude-sonnet-4-5", "max_tokens": 32000, "stream": true,
            "thinking": {"type": "enabled", "budget_tokens": 20000}, "messages": [question]});
        let (status, _, raw) = post_with_headers(&url, &b, &[]).await;
        assert_eq!(status, 200, "{raw}");
        let events = events_of(&raw);
        assert_eq!(block_types(&events), ["thinking", "text"], "{raw}");
        let thought: String = events
            .iter()
            .filter_map(|(_, d)| d["delta"]["thinking"].as_str())
            .collect();
        assert_eq!(thought, "Let me think about this. I will answer briefly.");
        let signature: Vec<&str> = events
            .iter()
            .filter(|(_, d)| d["delta"]["type"] == "signature_delta")
            .filter_map(|(_, d)| d["delta"]["signature"].as_str())
            .collect();
        assert_eq!(signature.len(), 1, "{raw}");
        assert!(signature[0].starts_with("sig_fake_"), "{raw}");
        // The signature ends the thinking block, which is index 0; the text is index 1.
        let stop = events
            .iter()
            .position(|(n, _)| n == "content_block_stop")
            .expect("a stop");
        assert_eq!(events[stop - 1].1["delta"]["type"], "signature_delta");
        assert_eq!(events[stop].1["index"], 0);
        let run = run_with(&fake, "MSGTHINK hi").expect("the run");
        // A budget of 20000 (>= 16384) is the CLI's high effort on the models without a budget.
        assert!(
            run["argv"].to_string().contains(r#""--effort","high""#),
            "the effort: {run}"
        );

        // Not asked for: the same thinking is not shown.
        let mut plain = b.clone();
        plain["thinking"] = json!({"type": "disabled"});
        plain["stream"] = json!(false);
        plain["messages"] = json!([{"role": "user", "content": "MSGTHINKOFF [[thinking]]"}]);
        let (status, _, text) = post_with_headers(&url, &plain, &[]).await;
        assert_eq!(status, 200, "{text}");
        let m: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(m["content"].as_array().map(Vec::len), Some(1), "{m}");
        assert_eq!(m["content"][0]["type"], "text");

        // Sent back, the block reaches the CLI as Claude's signed thinking block.
        let history = json!([question,
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": thought, "signature": signature[0]},
                {"type": "text", "text": "Hello."}]},
            {"role": "user", "content": "MSGTHINK2 more"}]);
        let again = json!({"model": "claude-sonnet-4-5", "max_tokens": 2048,
            "thinking": {"type": "enabled", "budget_tokens": 2000}, "messages": history});
        let (status, _, text) = post_with_headers(&url, &again, &[]).await;
        assert_eq!(status, 200, "{text}");
        let run = run_with(&fake, "MSGTHINK2").expect("the run");
        let blocks: Vec<Value> = run["stdin"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|l| l["type"] == "assistant")
            .flat_map(|l| {
                l["message"]["content"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter(|b| b["type"] == "thinking")
            .collect();
        assert_eq!(blocks.len(), 1, "{run}");
        assert_eq!(blocks[0]["signature"], signature[0]);
        assert_eq!(blocks[0]["thinking"], thought);
    })
    .await;
}

#[tokio::test]
pub(crate) async fn a_streamed_tool_call_and_a_crash_after_the_start() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let url = messages(&fake);
        let mut b = body(r#"MSGSTREAMTOOL [[tool_call:get_weather:{"city":"Oslo"}]]"#);
        b["tools"] = weather_tools();
        b["stream"] = json!(true);
        let (status, _, raw) = post_with_headers(&url, &b, &[]).await;
        assert_eq!(status, 200, "{raw}");
        let events = events_of(&raw);
        assert_eq!(block_types(&events), ["tool_use"], "{raw}");
        let start = events
            .iter()
            .find(|(n, _)| n == "content_block_start")
            .expect("a start");
        assert_eq!(start.1["content_block"]["name"], "get_weather");
        assert_eq!(start.1["content_block"]["input"], json!({}));
        let json_text: String = events
            .iter()
            .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
            .filter_map(|(_, d)| d["delta"]["partial_json"].as_str())
            .collect();
        let input: Value = serde_json::from_str(&json_text).expect("the arguments");
        assert_eq!(input, json!({"city": "Oslo"}));
        let delta = events
            .iter()
            .find(|(n, _)| n == "message_delta")
            .expect("a message_delta");
        assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");

        let mut crash = body("MSGCRASH a b [[crash_mid_stream]]");
        crash["stream"] = json!(true);
        let (status, _, raw) = post_with_headers(&url, &crash, &[]).await;
        assert_eq!(status, 200, "{raw}");
        let events = events_of(&raw);
        let (name, last) = events.last().expect("events");
        assert_eq!(name, "error", "{raw}");
        assert_eq!(last["error"]["type"], "api_error", "{raw}");
        assert!(!events.iter().any(|(n, _)| n == "message_stop"), "{raw}");
        // Not streaming, the same crash is an Anthropic-shaped 502.
        let (status, headers, text) =
            post_with_headers(&url, &body("MSGCRASH2 [[crash_mid_stream]]"), &[]).await;
        assert_anthropic_error(status, &headers, &text, (502, "api_error"));
    })
    .await;
}

#[tokio::test]
pub(crate) async fn anthropic_clients_list_models_in_anthropics_shape() {
    bounded(async {
        // The concrete `claude-*` ids are the ones learned from the CLI at startup.
        let fake = FakeCliGateway::start(&["--discover-models", "true"]).await;
        let url = fake.gw.url("/v1/models");
        let response = client()
            .get(&url)
            .header("anthropic-version", "2023-06-01")
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status().as_u16(), 200);
        let list: Value = response.json().await.expect("JSON");
        let data = list["data"].as_array().expect("data");
        assert!(!data.is_empty(), "{list}");
        for m in data {
            assert_eq!(m["type"], "model", "{m}");
            assert!(m["id"].as_str().unwrap().starts_with("claude-"), "{m}");
            assert_eq!(m["display_name"], m["id"]);
            assert!(m["created_at"].as_str().unwrap().ends_with('Z'), "{m}");
        }
        assert_eq!(list["has_more"], false);
        assert_eq!(list["first_id"], data[0]["id"]);
        assert_eq!(list["last_id"], data[data.len() - 1]["id"]);
        // OpenAI clients keep OpenAI's list.
        let (status, openai) = get_json(&url).await;
        assert_eq!(status, 200);
        assert_eq!(openai["object"], "list");
        assert!(openai["data"].to_string().contains("gpt-4o"), "{openai}");
    })
    .await;
}

#[tokio::test]
pub(crate) async fn a_body_over_the_limit_is_request_too_large() {
    bounded(async {
        let fake = FakeCliGateway::start(&["--max-body-bytes", "2000"]).await;
        let big = body(&"x".repeat(5000));
        let (status, headers, text) = post_with_headers(&messages(&fake), &big, &[]).await;
        assert_anthropic_error(status, &headers, &text, (413, "request_too_large"));
    })
    .await;
}

#[tokio::test]
pub(crate) async fn a_stop_sequence_is_named_whole_and_streamed() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let url = messages(&fake);
        let mut whole = body("[[reply:one two HALT three]]");
        whole["stop_sequences"] = json!(["NEVER", "HALT"]);
        let (status, _, text) = post_with_headers(&url, &whole, &[]).await;
        assert_eq!(status, 200, "{text}");
        let m: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(m["content"][0]["text"], "one two ", "{m}");
        assert_eq!(m["stop_reason"], "stop_sequence", "{m}");
        assert_eq!(m["stop_sequence"], "HALT", "{m}");

        let mut streamed = whole.clone();
        streamed["stream"] = json!(true);
        let (status, _, raw) = post_with_headers(&url, &streamed, &[]).await;
        assert_eq!(status, 200, "{raw}");
        let events = events_of(&raw);
        let delta = events
            .iter()
            .find(|(n, _)| n == "message_delta")
            .expect("a message_delta");
        assert_eq!(
            delta.1["delta"],
            json!({"stop_reason": "stop_sequence", "stop_sequence": "HALT"})
        );
    })
    .await;
}

#[tokio::test]
pub(crate) async fn betas_and_fields_that_cannot_be_honoured_are_refused_by_name() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let url = messages(&fake);
        // Claude Code's own betas pass and are reported.
        let betas = "claude-code-20250219,interleaved-thinking-2025-05-14";
        let (status, headers, text) =
            post_with_headers(&url, &body("Hi"), &[("anthropic-beta", betas)]).await;
        assert_eq!(status, 200, "{text}");
        let ignored = headers["x-ignored-params"].to_str().expect("ASCII");
        assert!(
            ignored.contains("anthropic-beta:interleaved-thinking-2025-05-14"),
            "{ignored}"
        );
        // One that switches on what the gateway has not: a 400 naming it, nothing run.
        for beta in ["mcp-client-2025-04-04", "files-api-2025-04-14"] {
            let (status, headers, text) = post_with_headers(
                &url,
                &body("Hi"),
                &[("anthropic-beta", &format!("claude-code-20250219,{beta}"))],
            )
            .await;
            let message =
                assert_anthropic_error(status, &headers, &text, (400, "invalid_request_error"));
            assert!(message.contains(beta), "{message}");
        }
        let mut mcp = body("Hi");
        mcp["mcp_servers"] =
            json!([{"type": "url", "url": "https://example.com/sse", "name": "x"}]);
        let (status, headers, text) = post_with_headers(&url, &mcp, &[]).await;
        let message =
            assert_anthropic_error(status, &headers, &text, (400, "invalid_request_error"));
        assert!(message.contains("mcp_servers"), "{message}");
    })
    .await;
}

#[tokio::test]
pub(crate) async fn beta_clients_get_anthropics_model_shapes_by_query() {
    bounded(async {
        let fake = FakeCliGateway::start(&["--discover-models", "true"]).await;
        let (status, list) = get_json(&fake.gw.url("/v1/models?beta=true")).await;
        assert_eq!(status, 200);
        let first = list["first_id"].as_str().expect("a first id").to_string();
        assert!(first.starts_with("claude-"), "{list}");
        let (status, one) = get_json(&fake.gw.url(&format!("/v1/models/{first}?beta=true"))).await;
        assert_eq!(status, 200);
        assert_eq!(one["type"], "model", "{one}");
        assert_eq!(one["id"], first.as_str());
        assert!(one["created_at"].as_str().expect("a time").ends_with('Z'));
        // A model nobody has is Anthropic's 404 for an Anthropic client.
        let response = client()
            .get(fake.gw.url("/v1/models/gpt-nonexistent-model"))
            .header("anthropic-version", "2023-06-01")
            .send()
            .await
            .expect("sent");
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        let text = response.text().await.expect("body");
        assert_anthropic_error(status, &headers, &text, (404, "not_found_error"));
    })
    .await;
}
