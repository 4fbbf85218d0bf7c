//! Unit tests of the turn state machine, fed with real CLI output and hand-written lines.

use super::*;

fn feed(state: &mut TurnState, lines: &[&str]) -> Vec<TurnOutput> {
    lines
        .iter()
        .filter_map(|l| CliLine::parse(l))
        .flat_map(|l| state.push(l))
        .collect()
}

fn run_file(name: &str, stop: Vec<String>) -> Vec<TurnOutput> {
    let path = format!(
        "{}/tests/fixtures/cli-runs/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    feed(
        &mut TurnState::new(TurnConfig {
            stop,
            ..TurnConfig::default()
        }),
        &lines,
    )
}

fn text_of(outputs: &[TurnOutput]) -> String {
    outputs
        .iter()
        .filter_map(|o| match o {
            TurnOutput::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn real_partial_run_streams_text_then_finishes_with_usage() {
    let out = run_file("04-stream-json-partial.out", vec![]);
    assert_eq!(out[0], TurnOutput::Started);
    assert_eq!(
        text_of(&out),
        "Hello! This is a canned reply from the mock Anthropic API."
    );
    let Some(TurnOutput::Finished { reason, usage }) = out.last() else {
        panic!("{out:?}")
    };
    assert_eq!(*reason, FinishReason::Stop);
    assert_eq!(usage.completion_tokens, 22);
    assert!(usage.prompt_tokens > 0);
    assert!(!usage.estimated);
    assert!(usage.cost_usd > 0.0);
}

#[test]
fn stop_sequence_ends_the_turn_early_with_an_estimate() {
    let out = run_file(
        "04-stream-json-partial.out",
        vec!["never".into(), "canned".into()],
    );
    assert_eq!(text_of(&out), "Hello! This is a ");
    let Some(TurnOutput::Finished { reason, usage }) = out.last() else {
        panic!("{out:?}")
    };
    // Which of the request's stops matched: the second.
    assert_eq!(*reason, FinishReason::StopSequence(1));
    assert!(usage.estimated);
    assert!(usage.completion_tokens > 0);
}

#[test]
fn api_errors_map_to_gateway_errors() {
    let cases = [
        ("11a-http401-stream-json.out", "upstream_auth_failed"),
        ("11b-http429-stream-json.out", "rate_limit_exceeded"),
        ("11c-http500-stream-json.out", "upstream_error"),
        ("11d-http529-stream-json.out", "overloaded"),
    ];
    for (file, code) in cases {
        let out = run_file(file, vec![]);
        let Some(TurnOutput::Failed(err)) = out.last() else {
            panic!("{file}: {out:?}")
        };
        assert_eq!(err.code(), Some(code), "{file}");
        assert!(
            !out.iter().any(|o| matches!(o, TurnOutput::Text(_))),
            "{file}"
        );
    }
}

#[test]
fn rate_limit_carries_the_cli_retry_delay() {
    let mut state = TurnState::new(TurnConfig::default());
    let out = feed(
        &mut state,
        &[
            r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":1,"retry_delay_ms":2500,"error_status":429}"#,
            r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":429,"result":"API Error: Request rejected (429)","num_turns":1}"#,
        ],
    );
    assert_eq!(
        out,
        vec![TurnOutput::Failed(ChatError::RateLimited {
            message: "Anthropic rate-limited the request: API Error: Request rejected (429)".into(),
            retry_after: Some(3)
        })]
    );
}

#[test]
fn replayed_history_results_are_skipped() {
    let mut state = TurnState::new(TurnConfig {
        history_user_lines: 2,
        ..TurnConfig::default()
    });
    let skipped =
        r#"{"type":"result","subtype":"success","is_error":false,"num_turns":0,"result":""}"#;
    assert!(feed(&mut state, &[skipped, skipped]).is_empty());
    assert!(!state.is_done());
    let out = feed(
        &mut state,
        &[
            r#"{"type":"stream_event","event":{"type":"message_start","message":{"usage":{"input_tokens":10}}}}"#,
            r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Ada"}}}"#,
            r#"{"type":"result","subtype":"success","is_error":false,"num_turns":1,"result":"Ada","stop_reason":"end_turn","usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":1}}"#,
        ],
    );
    assert_eq!(out[0], TurnOutput::Started);
    assert_eq!(out[1], TurnOutput::Text("Ada".into()));
    let TurnOutput::Finished { usage, .. } = &out[2] else {
        panic!()
    };
    assert_eq!((usage.prompt_tokens, usage.cached_tokens), (15, 5));
}

#[test]
fn max_tokens_cut_finishes_with_length_before_the_cli_continues() {
    let mut state = TurnState::new(TurnConfig::default());
    let out = feed(
        &mut state,
        &[
            r#"{"type":"stream_event","event":{"type":"message_start","message":{"usage":{"input_tokens":7}}}}"#,
            r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"one two"}}}"#,
            r#"{"type":"stream_event","event":{"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":2}}}"#,
        ],
    );
    assert_eq!(
        out.last(),
        Some(&TurnOutput::Finished {
            reason: FinishReason::Length,
            usage: Usage {
                prompt_tokens: 7,
                completion_tokens: 2,
                ..Usage::default()
            }
        })
    );
    assert!(state.is_done());
}

#[test]
fn not_logged_in_is_an_auth_error() {
    let mut state = TurnState::new(TurnConfig::default());
    let out = feed(
        &mut state,
        &[
            r#"{"type":"result","subtype":"success","is_error":true,"result":"Not logged in · Please run /login","num_turns":1}"#,
        ],
    );
    let [TurnOutput::Failed(err)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(err.code(), Some("upstream_auth_failed"));
}

fn line(s: &str) -> CliLine {
    CliLine::parse(s).unwrap()
}

fn start() -> &'static str {
    r#"{"type":"stream_event","event":{"type":"message_start","message":{"usage":{"input_tokens":9}}}}"#
}

fn tool_config(parallel: bool) -> TurnConfig {
    TurnConfig {
        tools: vec![Tool {
            name: "get_weather".into(),
            description: None,
            parameters: None,
            strict: None,
        }],
        parallel_tools: parallel,
        ..TurnConfig::default()
    }
}

const TOOL_A: &str = r#"{"type":"stream_event","event":{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_a","name":"mcp__gw__get_weather","input":{}}}}"#;
const ARGS_A1: &str = r#"{"type":"stream_event","event":{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\":"}}}"#;
const ARGS_A2: &str = r#"{"type":"stream_event","event":{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"Paris\"}"}}}"#;
const STOP_A: &str = r#"{"type":"stream_event","event":{"type":"content_block_stop","index":1}}"#;
const TOOL_B: &str = r#"{"type":"stream_event","event":{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_b","name":"mcp__gw__get_weather","input":{}}}}"#;
const ARGS_B: &str = r#"{"type":"stream_event","event":{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"city\":\"Rome\"}"}}}"#;
const TOOL_USE_END: &str = r#"{"type":"stream_event","event":{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":30}}}"#;

#[test]
fn tool_calls_are_assembled_and_end_the_turn_when_the_message_is_complete() {
    let mut state = TurnState::new(tool_config(true));
    let out = feed(
        &mut state,
        &[start(), TOOL_A, ARGS_A1, ARGS_A2, STOP_A, TOOL_B, ARGS_B],
    );
    let calls: Vec<&ToolCallDelta> = out
        .iter()
        .filter_map(|o| match o {
            TurnOutput::ToolCall(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(calls[0].id.as_deref(), Some("toolu_a"));
    assert_eq!(
        calls[0].name.as_deref(),
        Some("get_weather"),
        "no mcp__ prefix"
    );
    let args_a: String = calls
        .iter()
        .filter(|c| c.index == 0)
        .map(|c| c.arguments.as_str())
        .collect();
    assert_eq!(args_a, r#"{"city":"Paris"}"#);
    assert_eq!(calls.last().unwrap().index, 1);
    assert!(
        !state.is_done(),
        "more blocks may follow until message_delta"
    );
    let out = feed(&mut state, &[TOOL_USE_END]);
    assert_eq!(
        out,
        vec![TurnOutput::Finished {
            reason: FinishReason::ToolCalls,
            usage: Usage {
                prompt_tokens: 9,
                completion_tokens: 30,
                ..Usage::default()
            }
        }]
    );
}

#[test]
fn without_parallel_calls_the_first_complete_call_ends_the_turn() {
    let mut state = TurnState::new(tool_config(false));
    let out = feed(
        &mut state,
        &[start(), TOOL_A, ARGS_A1, ARGS_A2, STOP_A, TOOL_B, ARGS_B],
    );
    assert!(matches!(
        out.last(),
        Some(TurnOutput::Finished {
            reason: FinishReason::ToolCalls,
            ..
        })
    ));
    assert!(
        !out.iter()
            .any(|o| matches!(o, TurnOutput::ToolCall(c) if c.index == 1))
    );
}

#[test]
fn control_requests_are_answered_and_client_permission_prompts_held() {
    let mut state = TurnState::new(tool_config(true));
    let out = state.push(line(
        r#"{"type":"control_request","request_id":"m1","request":{"subtype":"mcp_message","server_name":"gw","message":{"method":"tools/list","jsonrpc":"2.0","id":1}}}"#,
    ));
    let [TurnOutput::Write(reply)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert!(reply.contains("get_weather"));
    let out = state.push(line(
        r#"{"type":"control_request","request_id":"p1","request":{"subtype":"can_use_tool","tool_name":"mcp__gw__get_weather","input":{}}}"#,
    ));
    assert!(out.is_empty());
    let out = state.push(line(
        r#"{"type":"control_response","response":{"subtype":"error","request_id":"init_1","error":"bad schema"}}"#,
    ));
    assert!(matches!(
        out.as_slice(),
        [TurnOutput::Failed(ChatError::CliFailed { .. })]
    ));
}

#[test]
fn required_tool_is_enforced_with_one_nudge_then_an_error() {
    let mut cfg = tool_config(true);
    cfg.required_tool = Some(RequiredTool::Any);
    let mut state = TurnState::new(cfg);
    let text = r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"I think"}}}"#;
    let done = r#"{"type":"result","subtype":"success","is_error":false,"num_turns":1,"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":2}}"#;
    let out = feed(&mut state, &[start(), text, done]);
    assert!(
        !out.iter().any(|o| matches!(o, TurnOutput::Text(_))),
        "text is withheld"
    );
    // Nothing visible yet: the answer has not begun, so a final failure is a real status.
    let [TurnOutput::Write(nudge)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert!(nudge.contains("You must call"));
    let out = feed(&mut state, &[start(), text, done]);
    assert!(matches!(
        out.last(),
        Some(TurnOutput::Failed(ChatError::Upstream { .. }))
    ));
}

fn structured_lines(json_fragments: &[&str]) -> Vec<String> {
    let mut lines = vec![
        start().to_string(),
        r#"{"type":"stream_event","event":{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_s","name":"StructuredOutput","input":{}}}}"#.to_string(),
    ];
    for f in json_fragments {
        lines.push(
            serde_json::json!({"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":f}}})
                .to_string(),
        );
    }
    lines.push(
        r#"{"type":"stream_event","event":{"type":"content_block_stop","index":0}}"#.to_string(),
    );
    lines.push(r#"{"type":"result","subtype":"success","is_error":false,"num_turns":2,"stop_reason":"tool_use","usage":{"input_tokens":3,"output_tokens":8}}"#.to_string());
    lines
}

fn json_schema_config() -> TurnConfig {
    TurnConfig {
        output: Some(OutputMode::JsonSchema {
            name: "person".into(),
            schema: serde_json::json!({"type":"object","properties":{"age":{"type":"integer"}},"required":["age"]}),
        }),
        ..TurnConfig::default()
    }
}

#[test]
fn structured_output_streams_as_content_and_is_checked() {
    let lines = structured_lines(&["{\"age\":", "42}"]);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let out = feed(&mut TurnState::new(json_schema_config()), &refs);
    assert_eq!(text_of(&out), r#"{"age":42}"#);
    assert!(matches!(
        out.last(),
        Some(TurnOutput::Finished {
            reason: FinishReason::Stop,
            ..
        })
    ));

    let lines = structured_lines(&["{\"age\":\"old\"}"]);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let out = feed(&mut TurnState::new(json_schema_config()), &refs);
    let Some(TurnOutput::Failed(err)) = out.last() else {
        panic!("{out:?}")
    };
    assert!(
        err.to_string().contains("does not match the schema"),
        "{err}"
    );
}

#[test]
fn json_mode_without_structured_output_is_an_error() {
    let cfg = TurnConfig {
        output: Some(OutputMode::JsonObject),
        ..TurnConfig::default()
    };
    let out = feed(
        &mut TurnState::new(cfg),
        &[
            start(),
            r#"{"type":"result","subtype":"success","is_error":false,"num_turns":1,"stop_reason":"end_turn"}"#,
        ],
    );
    assert!(matches!(out.last(), Some(TurnOutput::Failed(_))));
}

fn reasoning_of(outputs: &[TurnOutput]) -> Vec<ReasoningDelta> {
    outputs
        .iter()
        .filter_map(|o| match o {
            TurnOutput::Reasoning(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_real_thinking_block_streams_its_text_then_its_signature_before_the_answer() {
    let out = run_file("24a-thinking-block-stream-json.out", vec![]);
    let reasoning = reasoning_of(&out);
    let thinking: String = reasoning
        .iter()
        .filter_map(|d| match d {
            ReasoningDelta::Text(t) => Some(t.as_str()),
            ReasoningDelta::Signature { .. } | ReasoningDelta::Redacted { .. } => None,
        })
        .collect();
    assert_eq!(thinking, "The user greets me. I should greet back briefly.");
    assert!(
        matches!(reasoning.last(), Some(ReasoningDelta::Signature { signature, model })
            if signature.starts_with("sig_mock_") && model.starts_with("claude-")),
        "{reasoning:?}"
    );
    // The thinking comes before the text, and is never part of it.
    let first_text = out
        .iter()
        .position(|o| matches!(o, TurnOutput::Text(_)))
        .unwrap();
    let last_reasoning = out
        .iter()
        .rposition(|o| matches!(o, TurnOutput::Reasoning(_)))
        .unwrap();
    assert!(last_reasoning < first_text, "{out:?}");
    assert!(!text_of(&out).contains("greet back"), "{out:?}");
}

#[test]
fn a_real_redacted_thinking_block_comes_whole_before_the_answer() {
    // Captured from the real CLI (2.1.330) against an API answering `redacted_thinking` first.
    let out = run_file("27a-redacted-thinking-stream-json.out", vec![]);
    assert_eq!(
        reasoning_of(&out),
        vec![ReasoningDelta::Redacted {
            data: "EmwKAhgBEgy_redacted_data".into(),
            model: "claude-sonnet-5-5".into(),
        }]
    );
    assert_eq!(text_of(&out), "Hello there.");
    let first_text = out
        .iter()
        .position(|o| matches!(o, TurnOutput::Text(_)))
        .unwrap();
    assert!(
        matches!(out[first_text - 1], TurnOutput::Reasoning(_)),
        "{out:?}"
    );
    // That API's usage had cache reads and writes: both are told apart, both part of the input.
    let Some(TurnOutput::Finished { usage, .. }) = out.last() else {
        panic!("{out:?}")
    };
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.cached_tokens,
            usage.cache_creation_tokens
        ),
        (110, 3, 7)
    );
}

#[test]
fn thinking_before_a_withheld_json_answer_waits_for_it() {
    let mut state = TurnState::new(json_schema_config());
    let thinking = [
        start(),
        r#"{"type":"stream_event","event":{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}}"#,
        r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Hmm."}}}"#,
        r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"sig_1"}}}"#,
    ];
    // Thinking alone does not begin the answer (so a failure after it is still a real status).
    assert!(feed(&mut state, &thinking).is_empty());
    let lines = structured_lines(&["{\"age\":", "3}"]);
    let refs: Vec<&str> = lines.iter().skip(1).map(String::as_str).collect();
    let out = feed(&mut state, &refs);
    assert_eq!(out[0], TurnOutput::Started);
    assert_eq!(
        out[1..3],
        [
            TurnOutput::Reasoning(ReasoningDelta::Text("Hmm.".into())),
            TurnOutput::Reasoning(ReasoningDelta::Signature {
                signature: "sig_1".into(),
                model: String::new(),
            }),
        ]
    );
    assert_eq!(text_of(&out), "{\"age\":3}");
}
