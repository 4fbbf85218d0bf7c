//! The Responses state machine, event by event: the orderings real clients rely on (text, tool
//! calls, incomplete, failures), monotonic sequence numbers, exactly one terminal event, and
//! every produced event and response valid against OpenAI's official schemas.

#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::*;
use crate::http::responses::convert::create_request;
use crate::http::responses::seal::SealKey;
use crate::http::responses::types::initial_response;

#[path = "../../../tests/common/openai_schema.rs"]
#[allow(dead_code)]
mod openai_schema;

fn key() -> SealKey {
    static KEY: std::sync::OnceLock<SealKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| SealKey::random().unwrap()).clone()
}

fn machine(body: Value) -> ResponseStream {
    let converted = create_request(serde_json::from_value(body).unwrap(), &key()).unwrap();
    let mut n = 0;
    ResponseStream::new(
        initial_response("resp_1".into(), converted.echo, 100),
        Box::new(move |prefix| {
            n += 1;
            format!("{prefix}_{n}")
        }),
    )
    .with_reasoning(converted.reasoning)
}

fn plain() -> ResponseStream {
    machine(json!({"model": "gpt-4o", "input": "Hi", "metadata": {"k": "v"}}))
}

fn text(t: &str) -> ChatEvent {
    ChatEvent::Text {
        index: 0,
        text: t.into(),
    }
}

fn call(index: u32, head: Option<(&str, &str)>, arguments: &str) -> ChatEvent {
    ChatEvent::ToolCall {
        index: 0,
        call: ToolCallDelta {
            index,
            id: head.map(|(id, _)| id.to_string()),
            name: head.map(|(_, name)| name.to_string()),
            arguments: arguments.into(),
        },
    }
}

fn finish(reason: FinishReason) -> ChatEvent {
    ChatEvent::Finish { index: 0, reason }
}

fn usage_event() -> ChatEvent {
    ChatEvent::Usage(Usage {
        prompt_tokens: 10,
        completion_tokens: 4,
        cached_tokens: 3,
        reasoning_tokens: 1,
        ..Usage::default()
    })
}

/// Runs `events` through the whole life of `m` and returns every event as JSON, each checked
/// against its own schema and the `ResponseStreamEvent` union, with the sequence checked.
fn run(m: &mut ResponseStream, events: Vec<ChatEvent>, failure: Option<ChatError>) -> Vec<Value> {
    let mut out = m.start();
    for e in events {
        out.extend(m.push(e));
    }
    match failure {
        Some(err) => out.extend(m.fail(&err)),
        None => out.extend(m.finish(200)),
    }
    // Nothing after the terminal event, whatever comes.
    assert!(m.push(text("late")).is_empty());
    assert!(m.finish(300).is_empty());
    assert!(m.fail(&ChatError::internal("late")).is_empty());
    let json: Vec<Value> = out
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    for (i, e) in json.iter().enumerate() {
        assert_eq!(e["sequence_number"], i as u64, "{e}");
        openai_schema::assert_valid("ResponseStreamEvent", e);
        openai_schema::assert_valid(schema_of(e["type"].as_str().unwrap()), e);
        if let Some(r) = e.get("response") {
            openai_schema::assert_valid("Response", r);
        }
    }
    openai_schema::assert_valid("Response", &serde_json::to_value(m.response()).unwrap());
    json
}

fn schema_of(kind: &str) -> &'static str {
    match kind {
        "response.created" => "ResponseCreatedEvent",
        "response.in_progress" => "ResponseInProgressEvent",
        "response.output_item.added" => "ResponseOutputItemAddedEvent",
        "response.content_part.added" => "ResponseContentPartAddedEvent",
        "response.output_text.delta" => "ResponseTextDeltaEvent",
        "response.output_text.done" => "ResponseTextDoneEvent",
        "response.content_part.done" => "ResponseContentPartDoneEvent",
        "response.function_call_arguments.delta" => "ResponseFunctionCallArgumentsDeltaEvent",
        "response.function_call_arguments.done" => "ResponseFunctionCallArgumentsDoneEvent",
        "response.reasoning_summary_part.added" => "ResponseReasoningSummaryPartAddedEvent",
        "response.reasoning_summary_text.delta" => "ResponseReasoningSummaryTextDeltaEvent",
        "response.reasoning_summary_text.done" => "ResponseReasoningSummaryTextDoneEvent",
        "response.reasoning_summary_part.done" => "ResponseReasoningSummaryPartDoneEvent",
        "response.custom_tool_call_input.delta" => "ResponseCustomToolCallInputDeltaEvent",
        "response.custom_tool_call_input.done" => "ResponseCustomToolCallInputDoneEvent",
        "response.output_item.done" => "ResponseOutputItemDoneEvent",
        "response.completed" => "ResponseCompletedEvent",
        "response.incomplete" => "ResponseIncompleteEvent",
        "response.failed" => "ResponseFailedEvent",
        other => panic!("unexpected event type {other}"),
    }
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[test]
fn text_streams_as_one_message_item() {
    let mut m = plain();
    let events = run(
        &mut m,
        vec![
            ChatEvent::Role { index: 0 },
            text("Hel"),
            text(""),
            text("lo"),
            finish(FinishReason::Stop),
            usage_event(),
        ],
        None,
    );
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(events[0]["response"]["status"], "in_progress");
    assert_eq!(events[0]["response"]["output"], json!([]));
    assert!(events[0]["response"].get("usage").is_none());
    assert_eq!(events[2]["item"]["status"], "in_progress");
    assert_eq!(events[2]["item"]["content"], json!([]));
    assert_eq!(events[3]["part"]["text"], "");
    for delta in &events[4..6] {
        assert_eq!(delta["item_id"], "msg_1");
        assert_eq!(delta["output_index"], 0);
        assert_eq!(delta["content_index"], 0);
    }
    assert_eq!(events[6]["text"], "Hello");
    assert_eq!(events[8]["item"]["status"], "completed");
    let done = &events[9]["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["completed_at"], 200);
    assert_eq!(done["created_at"], 100);
    assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
    assert_eq!(done["metadata"], json!({"k": "v"}));
    assert_eq!(done["store"], false);
    assert_eq!(
        done["usage"],
        json!({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 3,
               "cache_write_tokens": 0}, "output_tokens": 4,
               "output_tokens_details": {"reasoning_tokens": 1}, "total_tokens": 14})
    );
    assert_eq!(&serde_json::to_value(m.response()).unwrap(), done);
    assert!(done["id"].as_str().unwrap().starts_with("resp_"));
}

#[test]
fn text_then_two_function_calls() {
    let mut m = machine(json!({"model": "gpt-4o", "input": "Weather?",
        "tools": [{"type": "function", "name": "get_weather",
                   "parameters": {"type": "object"}}]}));
    let events = run(
        &mut m,
        vec![
            text("Checking."),
            call(0, Some(("toolu_a", "get_weather")), ""),
            call(0, None, "{\"city\":"),
            call(0, None, "\"Paris\"}"),
            call(1, Some(("toolu_b", "get_weather")), "{}"),
            finish(FinishReason::ToolCalls),
            usage_event(),
        ],
        None,
    );
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let added = &events[8];
    assert_eq!(added["output_index"], 1);
    assert_eq!(
        added["item"],
        json!({"type": "function_call", "id": "fc_2", "call_id": "toolu_a",
               "name": "get_weather", "arguments": "", "status": "in_progress"})
    );
    assert_eq!(events[9]["item_id"], "fc_2");
    assert_eq!(events[11]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(events[11]["name"], "get_weather");
    assert_eq!(events[13]["output_index"], 2);
    let done = &events[17]["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"].as_array().unwrap().len(), 3);
    assert_eq!(done["output"][2]["call_id"], "toolu_b");
    assert_eq!(done["output"][2]["status"], "completed");
    assert_eq!(done["tools"][0]["name"], "get_weather");
}

#[test]
fn a_custom_tool_call_streams_its_decoded_input() {
    let mut m = machine(json!({"model": "gpt-4o", "input": "Patch it",
        "tools": [{"type": "custom", "name": "apply_patch", "description": "Applies a patch",
                   "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}},
                  {"type": "function", "name": "f"}],
        "tool_choice": {"type": "custom", "name": "apply_patch"}}));
    let events = run(
        &mut m,
        vec![
            call(0, Some(("toolu_c", "apply_patch")), ""),
            call(0, None, "{\"inp"),
            call(0, None, "ut\": \"*** Begin\\n+x \\\""),
            call(0, None, "q\\\" \\u00e9\"}"),
            call(1, Some(("toolu_f", "f")), "{}"),
            finish(FinishReason::ToolCalls),
            usage_event(),
        ],
        None,
    );
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.custom_tool_call_input.delta",
            "response.custom_tool_call_input.delta",
            "response.custom_tool_call_input.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(
        events[2]["item"],
        json!({"type": "custom_tool_call", "id": "ctc_1", "call_id": "toolu_c",
               "name": "apply_patch", "input": "", "status": "in_progress"})
    );
    // The deltas are the text itself, not its JSON encoding, and add up to the final input.
    assert_eq!(events[3]["delta"], "*** Begin\n+x \"");
    assert_eq!(events[4]["delta"], "q\" é");
    assert_eq!(events[5]["input"], "*** Begin\n+x \"q\" é");
    assert_eq!(events[5]["item_id"], "ctc_1");
    assert_eq!(events[6]["item"]["input"], "*** Begin\n+x \"q\" é");
    assert_eq!(events[6]["item"]["status"], "completed");
    let done = &events[11]["response"];
    assert_eq!(done["output"][0]["type"], "custom_tool_call");
    assert_eq!(done["output"][1]["type"], "function_call");
    assert_eq!(done["tools"][0]["format"]["syntax"], "lark");
    assert_eq!(
        done["tool_choice"],
        json!({"type": "custom", "name": "apply_patch"})
    );
}

#[test]
fn a_namespaced_call_names_its_namespace_and_inner_tool() {
    let mut m = machine(json!({"model": "gpt-4o", "input": "Spawn",
        "tools": [{"type": "function", "name": "exec_command"},
                  {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents.",
                   "tools": [{"type": "function", "name": "spawn_agent",
                              "parameters": {"type": "object"}},
                             {"type": "custom", "name": "note"}]}]}));
    let events = run(
        &mut m,
        vec![
            call(
                0,
                Some(("toolu_s", "multi_agent_v1__spawn_agent")),
                "{\"task\":",
            ),
            call(0, None, "\"x\"}"),
            call(
                1,
                Some(("toolu_n", "multi_agent_v1__note")),
                "{\"input\":\"hi\"}",
            ),
            call(2, Some(("toolu_e", "exec_command")), "{}"),
            finish(FinishReason::ToolCalls),
            usage_event(),
        ],
        None,
    );
    assert_eq!(
        types(&events)[2..7],
        [
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
        ]
    );
    assert_eq!(
        events[2]["item"],
        json!({"type": "function_call", "id": "fc_1", "call_id": "toolu_s",
               "namespace": "multi_agent_v1", "name": "spawn_agent", "arguments": "",
               "status": "in_progress"})
    );
    assert_eq!(events[5]["name"], "spawn_agent");
    assert_eq!(events[5]["arguments"], "{\"task\":\"x\"}");
    let done = &events.last().unwrap()["response"];
    let output = done["output"].as_array().unwrap();
    assert_eq!(
        output[1],
        json!({"type": "custom_tool_call", "id": "ctc_2", "call_id": "toolu_n",
               "namespace": "multi_agent_v1", "name": "note", "input": "hi",
               "status": "completed"})
    );
    // A tool outside any namespace has no `namespace` field.
    assert_eq!(output[2]["name"], "exec_command");
    assert!(output[2].get("namespace").is_none(), "{}", output[2]);
    // The response echoes the namespace as sent (a valid `NamespaceToolParam`).
    assert_eq!(done["tools"][1]["type"], "namespace");
    assert_eq!(done["tools"][1]["tools"][1]["name"], "note");
    for item in output.iter().take(2) {
        let schema = if item["type"] == "function_call" {
            "FunctionToolCall"
        } else {
            "CustomToolCall"
        };
        openai_schema::assert_valid(schema, item);
    }
    openai_schema::assert_valid("NamespaceToolParam", &done["tools"][1]);
}

#[test]
fn a_custom_call_of_another_shape_sends_its_input_at_the_end() {
    let mut m = machine(json!({"model": "gpt-4o", "input": "x",
        "tools": [{"type": "custom", "name": "run"}]}));
    let events = run(
        &mut m,
        vec![
            call(0, Some(("toolu_r", "run")), "[\"ls\"]"),
            finish(FinishReason::ToolCalls),
        ],
        None,
    );
    let kinds = types(&events);
    assert_eq!(
        kinds[2..],
        [
            "response.output_item.added",
            "response.custom_tool_call_input.delta",
            "response.custom_tool_call_input.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(events[3]["delta"], "[\"ls\"]");
    assert_eq!(events[4]["input"], "[\"ls\"]");
}

#[test]
fn a_failure_mid_custom_call_keeps_the_streamed_input() {
    let mut m = machine(json!({"model": "gpt-4o", "input": "x",
        "tools": [{"type": "custom", "name": "run"}]}));
    let events = run(
        &mut m,
        vec![call(0, Some(("toolu_r", "run")), "{\"input\":\"ech")],
        Some(ChatError::internal("boom")),
    );
    let failed = &events.last().unwrap()["response"];
    assert_eq!(failed["output"][0]["input"], "ech");
    assert_eq!(failed["output"][0]["status"], "incomplete");
}

#[test]
fn a_call_without_arguments_ends_with_an_empty_object() {
    let mut m = plain();
    let events = run(&mut m, vec![call(0, Some(("toolu_a", "now")), "")], None);
    let done = events
        .iter()
        .find(|e| e["type"] == "response.function_call_arguments.done")
        .unwrap();
    assert_eq!(done["arguments"], "{}");
}

#[test]
fn max_output_tokens_makes_the_response_incomplete() {
    let mut m = machine(json!({"model": "gpt-4o", "input": "Hi", "max_output_tokens": 2}));
    let events = run(
        &mut m,
        vec![text("w1 "), text("w2"), finish(FinishReason::Length)],
        None,
    );
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.incomplete");
    let r = &last["response"];
    assert_eq!(r["status"], "incomplete");
    assert_eq!(
        r["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert_eq!(r["completed_at"], Value::Null);
    assert_eq!(r["max_output_tokens"], 2);
    assert_eq!(r["output"][0]["status"], "incomplete");
    let item_done = &events[events.len() - 2];
    assert_eq!(item_done["type"], "response.output_item.done");
    assert_eq!(item_done["item"]["status"], "incomplete");
}

#[test]
fn a_refusal_is_incomplete_for_content_filter() {
    let mut m = plain();
    let events = run(&mut m, vec![finish(FinishReason::ContentFilter)], None);
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.in_progress",
            "response.incomplete"
        ]
    );
    assert_eq!(
        events[2]["response"]["incomplete_details"]["reason"],
        "content_filter"
    );
}

#[test]
fn a_failure_mid_text_ends_with_response_failed() {
    let mut m = plain();
    let events = run(
        &mut m,
        vec![text("partial")],
        Some(ChatError::RateLimited {
            message: "Claude is rate limited.".into(),
            retry_after: Some(7),
        }),
    );
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.failed",
        ]
    );
    let r = &events[5]["response"];
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["code"], "rate_limit_exceeded");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("7s"),
        "{r}"
    );
    assert_eq!(r["output"][0]["status"], "incomplete");
    assert_eq!(r["output"][0]["content"][0]["text"], "partial");
}

#[test]
fn a_failure_before_any_output_and_its_codes() {
    let mut m = plain();
    let events = run(&mut m, vec![], Some(ChatError::cli_failed("crashed")));
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.in_progress",
            "response.failed"
        ]
    );
    assert_eq!(events[2]["response"]["error"]["code"], "server_error");
    assert_eq!(events[2]["response"]["error"]["message"], "crashed");
    // Not in the schema's enum, but what clients (Codex) act on, as OpenAI sends it.
    let err = ChatError::invalid_with_code("too long", "messages", "context_length_exceeded");
    assert_eq!(response_error(&err).code, "context_length_exceeded");
}

#[test]
fn a_stream_that_ends_without_finish_or_usage_still_completes() {
    let mut m = plain();
    let events = run(&mut m, vec![text("x")], None);
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.completed");
    assert_eq!(last["response"]["usage"]["total_tokens"], 0);
}

#[test]
fn the_response_echoes_format_reasoning_and_tool_choice() {
    let mut m = machine(
        json!({"model": "sonnet", "input": "x", "instructions": "Be brief.",
        "text": {"format": {"type": "json_schema", "name": "p", "strict": true,
                 "schema": {"type": "object"}}},
        "reasoning": {"effort": "low"}, "tool_choice": "required", "parallel_tool_calls": false,
        "tools": [{"type": "function", "name": "f"}]}),
    );
    let events = run(&mut m, vec![text("{}")], None);
    let r = &events.last().unwrap()["response"];
    assert_eq!(r["model"], "sonnet");
    assert_eq!(r["instructions"], "Be brief.");
    assert_eq!(r["text"]["format"]["type"], "json_schema");
    assert_eq!(r["reasoning"]["effort"], "low");
    assert_eq!(r["tool_choice"], "required");
    assert_eq!(r["parallel_tool_calls"], false);
    assert_eq!(r["tools"][0]["parameters"], Value::Null);
}

#[path = "stream_reasoning_tests.rs"]
mod reasoning;
