//! The OpenAI features beyond plain chat (function calling, tool_choice, JSON output, stop,
//! max_tokens, n, images, usage details, ignored and refused parameters) through real clients:
//! the official Python SDK (`tests/python/test_features.py`), the official Node SDK
//! (`tests/node/tool_round_trip.mjs`) and LangChain (`tests/python/test_langchain.py`), each
//! against the gateway binary on the real `claude` CLI with the fake Anthropic API. After each
//! client run, the requests the fake API received prove that the features are native: functions
//! offered as `mcp__gw__<name>` tools with the client's JSON schema, calls and results replayed
//! as `tool_use` / `tool_result` blocks with the client's ids, images as image blocks, and never
//! a built-in Claude Code tool. The clients come from `.ci/install-tools` (`.tools/`); a test
//! whose tool is missing fails (`common/skip.rs`).
//!
//! The client tests mark each user text with a unique `#feat-…` / `#node-…` / `#lc-…` marker,
//! by which the requests are found here, and append the ids of their round trips to the JSON
//! lines file named by FEATURES_RECORD.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::clients::{blocks, client_command, pytest, with_marker};
use common::fake_anthropic::FakeAnthropic;
use common::*;
use serde_json::{Value, json};

/// The name Claude sees for a client function.
const GW_PREFIX: &str = "mcp__gw__";
/// The CLI's own structured-output tool, offered for JSON output only.
const STRUCTURED_OUTPUT: &str = "StructuredOutput";

/// The JSON lines the client tests appended to the record file.
fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The string a client test recorded under `key`.
fn recorded(records: &[Value], key: &str) -> String {
    records
        .iter()
        .find_map(|r| r[key].as_str())
        .unwrap_or_else(|| panic!("no {key} recorded: {records:?}"))
        .to_string()
}

/// `node` from PATH, with the same skip rule as `tool`.
fn node() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("node"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        common::skip::missing("node on PATH", "install Node.js 20 or newer");
    }
    found
}

// ---------------------------------------------------------------------------------------------
// What reached the (fake) Anthropic API

/// The one request for `marker` that carries a `tool_result` (the second step of a round trip).
fn round_trip_request<'a>(requests: &'a [Value], marker: &str) -> &'a Value {
    let found: Vec<&Value> = with_marker(requests, marker)
        .into_iter()
        .filter(|r| !blocks(r, "user", "tool_result").is_empty())
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one request of {marker} carries tool results: {requests:#?}"
    );
    found[0]
}

fn tool_names(req: &Value) -> Vec<&str> {
    req["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect()
}

/// The tool named `name` in a request's tool list.
fn offered<'a>(req: &'a Value, name: &str) -> &'a Value {
    req["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("{name} not offered: {:#}", req["tools"]))
}

/// The text of a `tool_result`'s content (a string or text blocks).
fn result_text(block: &Value) -> String {
    match &block["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        other => panic!("tool_result content: {other}"),
    }
}

/// The round trip reached Claude natively: the assistant's `tool_use` of `mcp__gw__<function>`
/// with the client's call id and arguments, then the user's `tool_result` for that id with the
/// function's output, in that order.
fn assert_native_round_trip(
    req: &Value,
    call_id: &str,
    function: &str,
    arguments: &Value,
    result: &str,
) {
    let uses = blocks(req, "assistant", "tool_use");
    let results = blocks(req, "user", "tool_result");
    assert_eq!(uses.len(), 1, "{req:#}");
    assert_eq!(results.len(), 1, "{req:#}");
    let (tool_use, tool_result) = (uses[0], results[0]);
    assert_eq!(tool_use["id"], call_id, "{req:#}");
    assert_eq!(
        tool_use["name"],
        format!("{GW_PREFIX}{function}"),
        "{req:#}"
    );
    assert_eq!(&tool_use["input"], arguments, "{req:#}");
    assert_eq!(tool_result["tool_use_id"], call_id, "{req:#}");
    assert_eq!(result_text(tool_result), result, "{req:#}");
    let messages = req["messages"].as_array().unwrap();
    let position = |kind: &str| {
        messages
            .iter()
            .position(|m| m["content"].to_string().contains(kind))
            .unwrap()
    };
    assert!(
        position("\"tool_use\"") < position("\"tool_result\""),
        "the call comes before its result: {req:#}"
    );
    // The result is the block, not a transcript in some text.
    assert!(
        blocks(req, "user", "text")
            .iter()
            .all(|b| !b["text"].as_str().unwrap_or_default().contains(result)),
        "{req:#}"
    );
}

/// Only the client's functions (and, for JSON output, the CLI's structured-output tool) were
/// ever offered: no built-in Claude Code tool (Bash, Read, Task, …).
fn assert_no_builtin_tools(requests: &[Value]) {
    assert!(!requests.is_empty());
    for req in requests {
        for name in tool_names(req) {
            assert!(
                name.starts_with(GW_PREFIX) || name == STRUCTURED_OUTPUT,
                "a built-in tool `{name}` reached the API: {:#}",
                req["tools"]
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The OpenAI Python SDK

async fn python_features_inner() {
    let Some(cli) = real_cli() else { return };
    let Some(python) = tool("venv/bin/python") else {
        return;
    };
    let api = FakeAnthropic::start().await;
    let gw = real_cli_gateway(&cli, &api, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.jsonl");
    pytest(&python, &gw, &record, "tests/python/test_features.py").await;
    let records = records(&record);
    let requests = api.requests();

    assert_no_builtin_tools(&requests);

    // Functions are offered as MCP tools carrying the client's description and JSON schema.
    let call = with_marker(&requests, "#feat-tool-call");
    assert_eq!(call.len(), 1, "{requests:#?}");
    let mut names = tool_names(call[0]);
    names.sort_unstable();
    assert_eq!(names, ["mcp__gw__get_time", "mcp__gw__get_weather"]);
    let weather = offered(call[0], "mcp__gw__get_weather");
    assert_eq!(weather["description"], "Current weather in a city.");
    assert_eq!(
        weather["input_schema"],
        json!({
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
            "additionalProperties": false,
        }),
        "the client's schema, unchanged"
    );
    assert_eq!(
        offered(call[0], "mcp__gw__get_time")["input_schema"],
        json!({"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]})
    );

    // The round trip: the client's call id on both blocks, the system message as the system.
    let req = round_trip_request(&requests, "#feat-round-trip");
    let call_id = recorded(&records, "round_trip_call_id");
    assert_native_round_trip(
        req,
        &call_id,
        "get_weather",
        &json!({"city": "Paris"}),
        "Sunny, 22 C in Paris",
    );
    assert!(
        req["system"]
            .to_string()
            .contains("You answer weather questions."),
        "{:#}",
        req["system"]
    );

    // Two results answer two calls in one user message.
    let req = round_trip_request(&requests, "#feat-two-results");
    let uses = blocks(req, "assistant", "tool_use");
    let results = blocks(req, "user", "tool_result");
    assert_eq!(uses.len(), 2, "{req:#}");
    let use_ids: Vec<&Value> = uses.iter().map(|b| &b["id"]).collect();
    let result_ids: Vec<&Value> = results.iter().map(|b| &b["tool_use_id"]).collect();
    assert_eq!(use_ids, result_ids, "{req:#}");
    let last_user = req["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .unwrap();
    assert_eq!(
        last_user["content"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "tool_result")
            .count(),
        2,
        "{req:#}"
    );

    // The legacy function message replays as the same native blocks.
    let req = round_trip_request(&requests, "#feat-legacy");
    let legacy_id = blocks(req, "assistant", "tool_use")[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_native_round_trip(
        req,
        &legacy_id,
        "get_weather",
        &json!({"city": "Paris"}),
        "Hail",
    );

    // tool_choice: none offers no tool; a named function is the only one offered; required
    // without a call reminds Claude exactly once.
    let none = with_marker(&requests, "#feat-choice-none");
    assert_eq!(none.len(), 1);
    assert!(tool_names(none[0]).is_empty(), "{:#}", none[0]["tools"]);
    let named = with_marker(&requests, "#feat-choice-named");
    assert_eq!(named.len(), 1);
    assert_eq!(tool_names(named[0]), ["mcp__gw__get_time"]);
    let reminded = with_marker(&requests, "#feat-required-no-call");
    assert_eq!(reminded.len(), 2, "one reminder: {reminded:#?}");
    assert_eq!(
        blocks(reminded[1], "assistant", "text").len(),
        1,
        "the reminder follows Claude's text answer: {:#}",
        reminded[1]
    );

    // JSON output goes through the CLI's structured output tool with the client's schema.
    let schema = with_marker(&requests, "#feat-json-schema Describe");
    assert_eq!(schema.len(), 1);
    assert_eq!(tool_names(schema[0]), [STRUCTURED_OUTPUT]);
    let input_schema = &offered(schema[0], STRUCTURED_OUTPUT)["input_schema"];
    assert_eq!(input_schema["required"], json!(["name", "age"]));
    assert_eq!(
        input_schema["properties"]["age"],
        json!({"type": "integer", "minimum": 0})
    );
    let object = with_marker(&requests, "#feat-json-object");
    assert_eq!(tool_names(object[0]), [STRUCTURED_OUTPUT]);

    // max_tokens and max_completion_tokens reach the API as its max_tokens.
    let max = with_marker(&requests, "#feat-max-tokens");
    assert_eq!(max.len(), 1);
    assert_eq!(max[0]["max_tokens"], 3);
    assert_eq!(
        with_marker(&requests, "#feat-max-completion")[0]["max_tokens"],
        4
    );

    // n: one independent run per choice.
    assert_eq!(with_marker(&requests, "#feat-n-stream").len(), 3);
    assert_eq!(with_marker(&requests, "#feat-n Count").len(), 1 + 3);

    // The image is a native base64 image block next to the text.
    let image = with_marker(&requests, "#feat-image");
    assert_eq!(image.len(), 1);
    let images = blocks(image[0], "user", "image");
    assert_eq!(images.len(), 1, "{:#}", image[0]);
    assert_eq!(
        images[0]["source"],
        json!({
            "type": "base64",
            "media_type": "image/png",
            "data": recorded(&records, "image_png_base64"),
        })
    );

    // Refused requests never reach the API.
    assert!(with_marker(&requests, "#feat-remote-image").is_empty());
    assert!(with_marker(&requests, "#feat-logprobs").is_empty());
}

#[tokio::test]
async fn python_sdk_features() {
    tokio::time::timeout(Duration::from_secs(420), python_features_inner())
        .await
        .expect("python_sdk_features timed out");
}

// ---------------------------------------------------------------------------------------------
// The OpenAI Node SDK

async fn node_sdk_inner() {
    let Some(cli) = real_cli() else { return };
    if tool("node_modules/openai/index.mjs").is_none() {
        return;
    }
    let Some(node) = node() else { return };
    let api = FakeAnthropic::start().await;
    let gw = real_cli_gateway(&cli, &api, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.jsonl");
    let started = Instant::now();
    let out = run(client_command(&node, &gw, &record).arg("tests/node/tool_round_trip.mjs")).await;
    let stdout = text(&out.stdout);
    eprintln!("node took {:.1?}:\n{stdout}", started.elapsed());
    assert!(
        out.status.success(),
        "{}\n--- gateway stderr ---\n{}",
        describe("node tests/node/tool_round_trip.mjs", &out),
        gw.stderr()
    );
    assert!(
        stdout.contains("# pass 3") && stdout.contains("# fail 0"),
        "all 3 Node tests must pass: {stdout}"
    );
    let requests = api.requests();
    assert_no_builtin_tools(&requests);

    let req = round_trip_request(&requests, "#node-round-trip");
    let call_id = recorded(&records(&record), "node_round_trip_call_id");
    assert_native_round_trip(
        req,
        &call_id,
        "get_weather",
        &json!({"city": "Paris"}),
        "Windy, 15 C",
    );
    assert_eq!(
        offered(req, "mcp__gw__get_weather")["input_schema"],
        json!({
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city, e.g. Paris"}},
            "required": ["city"],
        })
    );

    // runTools ran the function in Node and sent its output back as a native result.
    let req = round_trip_request(&requests, "#node-run-tools");
    let id = blocks(req, "assistant", "tool_use")[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_native_round_trip(
        req,
        &id,
        "get_weather",
        &json!({"city": "Paris"}),
        "Snow in Paris",
    );
}

#[tokio::test]
async fn node_sdk_tool_round_trip() {
    tokio::time::timeout(Duration::from_secs(300), node_sdk_inner())
        .await
        .expect("node_sdk_tool_round_trip timed out");
}

// ---------------------------------------------------------------------------------------------
// LangChain

async fn langchain_inner() {
    let Some(cli) = real_cli() else { return };
    let Some(python) = tool("venv/bin/python") else {
        return;
    };
    let api = FakeAnthropic::start().await;
    let gw = real_cli_gateway(&cli, &api, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.jsonl");
    pytest(&python, &gw, &record, "tests/python/test_langchain.py").await;
    let requests = api.requests();
    assert_no_builtin_tools(&requests);

    let req = round_trip_request(&requests, "#lc-round-trip");
    let call_id = recorded(&records(&record), "langchain_round_trip_call_id");
    assert_native_round_trip(
        req,
        &call_id,
        "get_weather",
        &json!({"city": "Paris"}),
        "Drizzle in Paris",
    );
    assert!(
        req["system"]
            .to_string()
            .contains("You report the weather."),
        "{:#}",
        req["system"]
    );
    // The schema LangChain derived from the Python function.
    let schema = &offered(req, "mcp__gw__get_weather")["input_schema"];
    assert_eq!(schema["type"], "object", "{schema:#}");
    assert_eq!(schema["required"], json!(["city"]), "{schema:#}");
    assert_eq!(schema["properties"]["city"]["type"], "string", "{schema:#}");

    let forced = with_marker(&requests, "#lc-forced");
    assert_eq!(forced.len(), 1);
    assert_eq!(tool_names(forced[0]), ["mcp__gw__get_weather"]);

    let structured = with_marker(&requests, "#lc-structured");
    assert_eq!(structured.len(), 1);
    assert_eq!(tool_names(structured[0]), [STRUCTURED_OUTPUT]);
    let schema = &offered(structured[0], STRUCTURED_OUTPUT)["input_schema"];
    assert_eq!(schema["properties"]["age"]["type"], "integer", "{schema:#}");
}

#[tokio::test]
async fn langchain_tool_round_trip() {
    tokio::time::timeout(Duration::from_secs(300), langchain_inner())
        .await
        .expect("langchain_tool_round_trip timed out");
}
