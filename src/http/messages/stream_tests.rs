use serde_json::{Value, json};

use super::*;

fn machine(thinking: bool) -> MessageStream {
    MessageStream::new(
        "msg_1".into(),
        "claude-sonnet-4-5".into(),
        thinking,
        vec!["END".into(), "STOP".into()],
    )
}

fn text(t: &str) -> ChatEvent {
    ChatEvent::Text {
        index: 0,
        text: t.into(),
    }
}

fn call(id: Option<&str>, name: Option<&str>, args: &str) -> ChatEvent {
    ChatEvent::ToolCall {
        index: 0,
        call: ToolCallDelta {
            index: 0,
            id: id.map(str::to_string),
            name: name.map(str::to_string),
            arguments: args.into(),
        },
    }
}

fn thinking(t: &str) -> ChatEvent {
    ChatEvent::Reasoning {
        index: 0,
        delta: ReasoningDelta::Text(t.into()),
    }
}

fn signature(s: &str) -> ChatEvent {
    ChatEvent::Reasoning {
        index: 0,
        delta: ReasoningDelta::Signature {
            signature: s.into(),
            model: "claude-sonnet-4-5-20250929".into(),
        },
    }
}

fn finish(reason: FinishReason) -> ChatEvent {
    ChatEvent::Finish { index: 0, reason }
}

fn usage() -> ChatEvent {
    ChatEvent::Usage(Usage {
        prompt_tokens: 12,
        completion_tokens: 5,
        cached_tokens: 2,
        ..Usage::default()
    })
}

/// Runs `events` through a machine: every event out, each name checked against its type.
fn run(m: &mut MessageStream, events: Vec<ChatEvent>) -> Vec<Value> {
    let mut out = m.start();
    // Anthropic's ping right after the start; left out of what the tests look at.
    assert_eq!(
        out.remove(1),
        SseEvent::new("ping", json!({"type": "ping"}))
    );
    for e in events {
        out.extend(m.push(e));
    }
    out.extend(m.finish());
    assert!(m.ended());
    out.into_iter()
        .map(|e| {
            assert_eq!(e.data["type"], e.name);
            e.data
        })
        .collect()
}

fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e["delta"]["type"].as_str() {
            Some(d) if e["type"] == "content_block_delta" => format!("delta:{d}"),
            _ => e["type"].as_str().unwrap_or_default().to_string(),
        })
        .collect()
}

#[test]
fn a_text_answer_is_anthropics_event_sequence() {
    let mut m = machine(false);
    let events = run(
        &mut m,
        vec![
            ChatEvent::Role { index: 0 },
            text("Hello"),
            text(" there"),
            finish(FinishReason::Stop),
            usage(),
        ],
    );
    assert_eq!(
        kinds(&events),
        [
            "message_start",
            "content_block_start",
            "delta:text_delta",
            "delta:text_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(
        events[0],
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
            "role": "assistant", "model": "claude-sonnet-4-5", "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 0, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0, "output_tokens": 0}}})
    );
    assert_eq!(
        events[1],
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    );
    assert_eq!(
        events[2],
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}})
    );
    assert_eq!(events[4], json!({"type": "content_block_stop", "index": 0}));
    assert_eq!(
        events[5],
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
               "usage": {"input_tokens": 10, "cache_creation_input_tokens": 0,
                         "cache_read_input_tokens": 2, "output_tokens": 5}})
    );
    // Key order as Anthropic writes it.
    let start = serde_json::to_string(&events[0]["message"]).unwrap();
    assert!(
        start.starts_with(r#"{"id":"msg_1","type":"message","role":"assistant""#),
        "{start}"
    );
    assert_eq!(
        m.message(),
        json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
               "content": [{"type": "text", "text": "Hello there"}],
               "stop_reason": "end_turn", "stop_sequence": null,
               "usage": {"input_tokens": 10, "cache_creation_input_tokens": 0,
                         "cache_read_input_tokens": 2, "output_tokens": 5}})
    );
}

#[test]
fn text_then_tool_calls_get_their_own_indices() {
    let mut m = machine(false);
    let events = run(
        &mut m,
        vec![
            text("Checking."),
            call(Some("toolu_1"), Some("weather"), ""),
            call(None, None, r#"{"city":"#),
            call(None, None, r#""Paris"}"#),
            ChatEvent::ToolCall {
                index: 0,
                call: ToolCallDelta {
                    index: 1,
                    id: Some("toolu_2".into()),
                    name: Some("time".into()),
                    arguments: "{}".into(),
                },
            },
            finish(FinishReason::ToolCalls),
        ],
    );
    assert_eq!(
        kinds(&events),
        [
            "message_start",
            "content_block_start",
            "delta:text_delta",
            "content_block_stop",
            "content_block_start",
            "delta:input_json_delta",
            "delta:input_json_delta",
            "content_block_stop",
            "content_block_start",
            "delta:input_json_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(
        events[4],
        json!({"type": "content_block_start", "index": 1,
               "content_block": {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}})
    );
    assert_eq!(
        events[5]["delta"],
        json!({"type": "input_json_delta", "partial_json": "{\"city\":"})
    );
    assert_eq!(events[8]["index"], 2);
    assert_eq!(events[11]["delta"]["stop_reason"], "tool_use");
    let message = m.message();
    assert_eq!(
        message["content"][1],
        json!({"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}})
    );
    assert_eq!(message["content"][2]["input"], json!({}));
}

#[test]
fn thinking_is_shown_only_when_asked_and_ends_with_its_signature() {
    let events = vec![
        thinking("Hmm"),
        thinking("."),
        signature("sig=="),
        text("Hi"),
    ];
    let mut shown = machine(true);
    let out = run(&mut shown, events.clone());
    assert_eq!(
        kinds(&out),
        [
            "message_start",
            "content_block_start",
            "delta:thinking_delta",
            "delta:thinking_delta",
            "delta:signature_delta",
            "content_block_stop",
            "content_block_start",
            "delta:text_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(
        out[1]["content_block"],
        json!({"type": "thinking", "thinking": "", "signature": ""})
    );
    assert_eq!(
        out[4]["delta"],
        json!({"type": "signature_delta", "signature": "sig=="})
    );
    assert_eq!(
        shown.message()["content"][0],
        json!({"type": "thinking", "thinking": "Hmm.", "signature": "sig=="})
    );
    let mut hidden = machine(false);
    let out = run(&mut hidden, events);
    assert_eq!(out[1]["content_block"]["type"], "text");
    assert_eq!(
        hidden.message()["content"].as_array().map(Vec::len),
        Some(1)
    );
}

#[test]
fn redacted_thinking_is_one_whole_block_when_thinking_is_shown() {
    let redacted = ChatEvent::Reasoning {
        index: 0,
        delta: ReasoningDelta::Redacted {
            data: "EmwK".into(),
            model: "claude-sonnet-4-5".into(),
        },
    };
    let mut shown = machine(true);
    let out = run(&mut shown, vec![redacted.clone(), text("Hi")]);
    assert_eq!(
        kinds(&out),
        [
            "message_start",
            "content_block_start",
            "content_block_stop",
            "content_block_start",
            "delta:text_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(
        out[1]["content_block"],
        json!({"type": "redacted_thinking", "data": "EmwK"})
    );
    assert_eq!(out[3]["index"], 1);
    assert_eq!(
        shown.message()["content"],
        json!([{"type": "redacted_thinking", "data": "EmwK"}, {"type": "text", "text": "Hi"}])
    );
    let mut hidden = machine(false);
    run(&mut hidden, vec![redacted, text("Hi")]);
    assert_eq!(
        hidden.message()["content"],
        json!([{"type": "text", "text": "Hi"}])
    );
}

#[test]
fn usage_tells_cache_reads_and_writes_apart_from_input() {
    let u = Usage {
        prompt_tokens: 110,
        completion_tokens: 5,
        cached_tokens: 3,
        cache_creation_tokens: 7,
        ..Usage::default()
    };
    assert_eq!(
        usage_json(&u),
        json!({"input_tokens": 100, "cache_creation_input_tokens": 7,
               "cache_read_input_tokens": 3, "output_tokens": 5})
    );
}

#[test]
fn stop_reasons_map_to_anthropics() {
    for (reason, expected) in [
        (FinishReason::Stop, "end_turn"),
        (FinishReason::Length, "max_tokens"),
        (FinishReason::ToolCalls, "tool_use"),
        (FinishReason::ContentFilter, "refusal"),
    ] {
        let mut m = machine(false);
        run(&mut m, vec![text("x"), finish(reason)]);
        assert_eq!(m.message()["stop_reason"], expected);
        assert_eq!(m.message()["stop_sequence"], Value::Null);
    }
}

#[test]
fn a_stop_sequence_is_named_in_the_message_and_its_delta() {
    let mut m = machine(false);
    let events = run(
        &mut m,
        vec![text("x"), finish(FinishReason::StopSequence(1))],
    );
    let message = m.message();
    assert_eq!(message["stop_reason"], "stop_sequence");
    assert_eq!(message["stop_sequence"], "STOP");
    let delta = events
        .iter()
        .find(|e| e["type"] == "message_delta")
        .expect("a message_delta");
    assert_eq!(
        delta["delta"],
        json!({"stop_reason": "stop_sequence", "stop_sequence": "STOP"})
    );
}

#[test]
fn a_failure_after_the_start_is_one_error_event_and_the_end() {
    let mut m = machine(false);
    let mut out = m.start();
    out.extend(m.push(text("partial")));
    let failed = m.fail(&ChatError::CliFailed {
        message: "the CLI crashed".into(),
    });
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].name, "error");
    assert_eq!(
        failed[0].data,
        json!({"type": "error", "error": {"type": "api_error", "message": "the CLI crashed"}})
    );
    assert!(m.ended());
    assert!(m.push(text("more")).is_empty());
    assert!(m.finish().is_empty());
    assert!(m.fail(&ChatError::internal("again")).is_empty());
}
