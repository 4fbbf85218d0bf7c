//! Property tests of the gRPC door, in process (no binary, no sockets): from protobuf down to
//! the bytes written on the CLI's stdin. Random `ChatCompletionParams` (the generators of
//! `common/pb_gen.rs`) and arbitrary protobuf bytes go through the proto → domain conversion and
//! `validate()`; what is refused must be a client error, and what passes must become stdin lines
//! (`run_input`) and MCP answers (`control::handle`) that are single-line JSON objects, with
//! every offered tool listed under an object schema. The control-request builder also gets
//! tools that never went through validation and arbitrary control requests: it must not panic.
//! Seeded, bounded cases, so the file runs in seconds and a failure reproduces.
#![allow(clippy::unwrap_used)]

#[path = "common/pb_gen.rs"]
mod pb_gen;

use std::time::Duration;

use claude_gateway::chat::ChatError;
use claude_gateway::chat::types::Tool;
use claude_gateway::chat::validate::{ValidChatRequest, ValidationConfig, validate};
use claude_gateway::claude::control::{self, ControlAction};
use claude_gateway::claude::input::{run_input, tool_nudge};
use claude_gateway::grpc::convert::chat_request;
use claude_gateway::grpc::pb;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use prost::Message as _;
use serde_json::{Value, json};

const CASES: u32 = 256;

fn runner() -> TestRunner {
    let config = Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(CASES),
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
}

/// Runs a property under a time limit, on a blocking thread (proptest is synchronous).
async fn bounded(property: impl FnOnce() + Send + 'static) {
    let run = tokio::task::spawn_blocking(property);
    match tokio::time::timeout(Duration::from_secs(180), run).await {
        Ok(Ok(())) => {}
        Ok(Err(panic)) => std::panic::resume_unwind(panic.into_panic()),
        Err(_) => panic!("property exceeded its time limit"),
    }
}

/// What a client can cause: a 4xx-class error with a message.
fn is_client_error(err: &ChatError) -> bool {
    matches!(
        err,
        ChatError::InvalidRequest { .. } | ChatError::ModelNotFound { .. }
    ) && !err.to_string().is_empty()
}

/// One JSON object on one line.
fn json_line(line: &str) -> Result<Value, TestCaseError> {
    prop_assert!(!line.contains('\n'), "a line break inside a stdin line");
    let value: Value = serde_json::from_str(line)
        .map_err(|e| TestCaseError::fail(format!("not JSON ({e}): {line}")))?;
    prop_assert!(value.is_object(), "not an object: {line}");
    Ok(value)
}

fn reply(action: ControlAction) -> Result<Value, TestCaseError> {
    match action {
        ControlAction::Reply(line) => json_line(&line),
        ControlAction::Hold => Err(TestCaseError::fail("an MCP message was held")),
    }
}

fn mcp(method: &str, id: i64) -> Value {
    json!({"subtype": "mcp_message", "server_name": "gw",
           "message": {"jsonrpc": "2.0", "method": method, "id": id}})
}

/// Everything the engine writes for a valid request is well-formed JSON.
fn check_valid(valid: &ValidChatRequest) -> Result<(), TestCaseError> {
    let input = run_input(valid, true);
    let limit = usize::from(valid.max_tokens.is_some());
    prop_assert_eq!(input.lines.len(), valid.history.len() + 2 + limit);
    let mut lines = input
        .lines
        .iter()
        .map(|l| json_line(&l.json))
        .collect::<Result<Vec<_>, _>>()?;
    prop_assert_eq!(&lines[0]["request"]["subtype"], "initialize");
    if limit == 1 {
        // The token limit, as flag settings for the running process.
        let set = lines.remove(1);
        prop_assert_eq!(&set["request"]["subtype"], "apply_flag_settings");
        let max = valid.max_tokens.unwrap_or_default().to_string();
        prop_assert_eq!(
            &set["request"]["settings"]["env"]["CLAUDE_CODE_MAX_OUTPUT_TOKENS"],
            &json!(max)
        );
    }
    prop_assert_eq!(
        lines[0]["request"].get("sdkMcpServers").is_some(),
        !valid.tools.is_empty()
    );
    for line in &lines[1..] {
        let kind = line["type"].as_str().unwrap_or_default();
        prop_assert!(kind == "user" || kind == "assistant", "{line}");
        prop_assert!(line["message"]["content"].is_array(), "{line}");
    }
    if let Some(required) = &valid.tool_mode.required {
        json_line(&tool_nudge(required))?;
    }
    for (i, method) in ["initialize", "tools/list", "tools/call", "ping"]
        .iter()
        .enumerate()
    {
        let r = reply(control::handle(
            "r",
            &mcp(method, i as i64),
            &valid.tools,
            &mut Default::default(),
        ))?;
        prop_assert_eq!(&r["response"]["request_id"], "r");
    }
    let listed = reply(control::handle(
        "l",
        &mcp("tools/list", 1),
        &valid.tools,
        &mut Default::default(),
    ))?;
    let tools = listed["response"]["response"]["mcp_response"]["result"]["tools"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    prop_assert_eq!(tools.len(), valid.tools.len());
    for (listed, tool) in tools.iter().zip(&valid.tools) {
        prop_assert_eq!(&listed["name"], &json!(tool.name));
        prop_assert_eq!(&listed["inputSchema"]["type"], "object");
    }
    Ok(())
}

/// proto params → domain → validation → stdin lines and MCP answers.
fn through_the_grpc_door(params: pb::ChatCompletionParams) -> Result<bool, TestCaseError> {
    let checked =
        chat_request(Some(params)).and_then(|req| validate(req, &ValidationConfig::default()));
    match checked {
        Ok(valid) => {
            check_valid(&valid)?;
            Ok(true)
        }
        Err(err) => {
            prop_assert!(is_client_error(&err), "not a client error: {err:?}");
            Ok(false)
        }
    }
}

#[tokio::test]
async fn random_grpc_requests_are_refused_as_client_errors_or_become_valid_json_lines() {
    bounded(|| {
        let valid = std::cell::Cell::new(0u32);
        runner()
            .run(&pb_gen::params(), |params| {
                if through_the_grpc_door(params)? {
                    valid.set(valid.get() + 1);
                }
                Ok(())
            })
            .unwrap();
        // The generators must reach the end of the path, not only its refusals.
        let valid = valid.get();
        eprintln!("{valid} of {CASES} random requests were valid");
        assert!(
            valid >= CASES / 8,
            "only {valid} of {CASES} cases were valid"
        );
    })
    .await;
}

#[tokio::test]
async fn arbitrary_protobuf_bytes_never_panic_the_grpc_door() {
    bounded(|| {
        let bytes = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..512),
            // Valid encodings with a few bytes flipped.
            (pb_gen::params(), any::<u64>()).prop_map(|(p, seed)| {
                let mut bytes = p.encode_to_vec();
                if !bytes.is_empty() {
                    for k in 0..3u64 {
                        let at = (seed.wrapping_mul(k + 7) % bytes.len() as u64) as usize;
                        bytes[at] ^= (seed >> (8 * k)) as u8;
                    }
                }
                bytes
            }),
        ];
        runner()
            .run(&bytes, |bytes| {
                if let Ok(params) = pb::ChatCompletionParams::decode(bytes.as_slice()) {
                    through_the_grpc_door(params)?;
                }
                Ok(())
            })
            .unwrap();
    })
    .await;
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-z]{0,6}".prop_map(Value::String),
        Just(json!("object")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("type".to_string()),
                    Just("properties".to_string()),
                    "[a-z]{1,5}"
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The builder is total on its own: tools that never went through validation (any schema) and
/// any control request the CLI could send.
#[tokio::test]
async fn the_control_request_builder_never_panics_on_unvalidated_tools() {
    bounded(|| {
        let tools = proptest::collection::vec(
            (
                pb_gen::any_name(),
                proptest::option::of("[ -~]{0,20}"),
                proptest::option::of(any_json()),
            )
                .prop_map(|(name, description, parameters)| Tool {
                    name,
                    description,
                    parameters,
                    strict: None,
                }),
            0..4,
        );
        let method = prop_oneof![
            Just("initialize".to_string()),
            Just("tools/list".to_string()),
            Just("tools/call".to_string()),
            Just("ping".to_string()),
            Just("notifications/initialized".to_string()),
            "[a-z/]{0,10}",
        ];
        let request = prop_oneof![
            (method, proptest::option::of(any_json()), any_json()).prop_map(|(m, id, params)| {
                json!({"subtype": "mcp_message", "server_name": "gw",
                       "message": {"jsonrpc": "2.0", "method": m, "id": id, "params": params}})
            }),
            (pb_gen::any_name(), any_json()).prop_map(|(tool, input)| {
                json!({"subtype": "can_use_tool", "tool_name": tool, "input": input})
            }),
            any_json(),
        ];
        runner()
            .run(&(tools, request, "[ -~]{0,12}"), |(tools, request, id)| {
                if let ControlAction::Reply(line) =
                    control::handle(&id, &request, &tools, &mut Default::default())
                {
                    json_line(&line)?;
                }
                Ok(())
            })
            .unwrap();
    })
    .await;
}
