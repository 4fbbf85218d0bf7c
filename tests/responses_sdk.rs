//! The Responses API through the official `openai` Python SDK (`tests/python/test_responses.py`:
//! `responses.create`, `responses.stream`, `responses.parse`, a function tool round trip,
//! a custom tool streamed and round-tripped, `max_output_tokens`, images, refusals) against the gateway binary on the real `claude` CLI
//! with the fake Anthropic API. Afterwards the requests the fake API received prove the round
//! trip was native: the function offered as `mcp__gw__get_weather`, the call and its output
//! replayed as `tool_use` / `tool_result` blocks with the SDK's call id, the instructions in the
//! system prompt, the image as an image block and the JSON schema on the `StructuredOutput` tool.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::clients::{self, blocks, pytest, with_marker};
use common::fake_anthropic::FakeAnthropic;
use common::*;
use serde_json::{Value, json};

const FILE: &str = "tests/python/test_responses.py";

async fn python_responses_inner() {
    let Some(cli) = real_cli() else { return };
    let Some(python) = tool("venv/bin/python") else {
        return;
    };
    let api = FakeAnthropic::start().await;
    let gw = real_cli_gateway(&cli, &api, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.jsonl");
    pytest(&python, &gw, &record, FILE).await;

    let requests = api.requests();
    // The instructions are the system prompt.
    let create = with_marker(&requests, "#resp-create");
    assert!(
        create
            .iter()
            .any(|r| r["system"].to_string().contains("You are terse.")),
        "{create:#?}"
    );

    // The round trip, natively: the SDK's call id on the tool_use and on the tool_result.
    let call_id = recorded(&record, "responses_call_id");
    let second: Vec<&Value> = with_marker(&requests, "#resp-tool ")
        .into_iter()
        .filter(|r| !blocks(r, "user", "tool_result").is_empty())
        .collect();
    assert_eq!(second.len(), 1, "{requests:#?}");
    let req = second[0];
    let uses = blocks(req, "assistant", "tool_use");
    let results = blocks(req, "user", "tool_result");
    assert_eq!((uses.len(), results.len()), (1, 1), "{req:#}");
    assert_eq!(uses[0]["id"], call_id.as_str(), "{req:#}");
    assert_eq!(uses[0]["name"], "mcp__gw__get_weather", "{req:#}");
    assert_eq!(uses[0]["input"], json!({"city": "Paris"}), "{req:#}");
    assert_eq!(results[0]["tool_use_id"], call_id.as_str(), "{req:#}");
    assert!(
        results[0]["content"].to_string().contains("Sunny, 22 C"),
        "{req:#}"
    );
    let offered = req["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "mcp__gw__get_weather")
        .unwrap_or_else(|| panic!("get_weather not offered: {req:#}"));
    assert_eq!(offered["input_schema"]["required"], json!(["city"]));

    // The custom tool: offered as a function with one string field whose description carries
    // the grammar, its call replayed as a tool_use of `{"input": …}` with the SDK's call id.
    let custom_id = recorded(&record, "responses_custom_call_id");
    let custom: Vec<&Value> = with_marker(&requests, "#resp-custom")
        .into_iter()
        .filter(|r| !blocks(r, "user", "tool_result").is_empty())
        .collect();
    assert_eq!(custom.len(), 1, "{requests:#?}");
    let req = custom[0];
    let uses = blocks(req, "assistant", "tool_use");
    assert_eq!(uses.len(), 1, "{req:#}");
    assert_eq!(uses[0]["id"], custom_id.as_str(), "{req:#}");
    assert_eq!(uses[0]["name"], "mcp__gw__shell", "{req:#}");
    assert_eq!(
        uses[0]["input"],
        json!({"input": "ls -la \"docs\"\nwc -l"}),
        "{req:#}"
    );
    let results = blocks(req, "user", "tool_result");
    assert_eq!(results[0]["tool_use_id"], custom_id.as_str(), "{req:#}");
    let offered = req["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "mcp__gw__shell")
        .unwrap_or_else(|| panic!("shell not offered: {req:#}"));
    let field = &offered["input_schema"]["properties"]["input"];
    assert_eq!(field["type"], "string", "{offered:#}");
    assert!(
        field["description"]
            .as_str()
            .unwrap()
            .contains("regex grammar"),
        "{offered:#}"
    );

    // A reasoning item sent back in a tool loop replays Claude's thinking natively: the
    // thinking block, with the signature the fake API gave it, first in the assistant turn that
    // holds the tool_use. (The CLI keeps a replayed turn's thinking only when the line names the
    // model it runs, which the sealed item remembers.)
    let tool_loop: Vec<&Value> = with_marker(&requests, "#resp-think-tool")
        .into_iter()
        .filter(|r| !blocks(r, "user", "tool_result").is_empty())
        .collect();
    assert_eq!(tool_loop.len(), 1, "{requests:#?}");
    let req = tool_loop[0];
    let thinking = blocks(req, "assistant", "thinking");
    assert_eq!(thinking.len(), 1, "{req:#}");
    assert_eq!(thinking[0]["thinking"], "Let me think about this.");
    assert!(
        thinking[0]["signature"]
            .as_str()
            .is_some_and(|s| s.starts_with("sig_fake_")),
        "{req:#}"
    );
    let turn = req["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "assistant" && m["content"].to_string().contains("tool_use"))
        .unwrap();
    assert_eq!(turn["content"][0]["type"], "thinking", "{req:#}");
    // A plain text turn's thinking is replayed the same way.
    let again = with_marker(&requests, "#resp-think-again");
    assert_eq!(again.len(), 1, "{again:#?}");
    let thinking = blocks(again[0], "assistant", "thinking");
    assert_eq!(thinking.len(), 1, "{:#}", again[0]);
    assert_eq!(thinking[0]["thinking"], "Let me think about this.");
    // The first request asked for thinking the CLI's way (adaptive, with the effort).
    let first = with_marker(&requests, "#resp-think-tool")
        .into_iter()
        .find(|r| blocks(r, "user", "tool_result").is_empty())
        .unwrap();
    assert_eq!(first["thinking"]["type"], "adaptive", "{first:#}");
    assert_eq!(first["output_config"]["effort"], "medium", "{first:#}");

    // The image is an image block; the JSON schema is the StructuredOutput tool's.
    let image = with_marker(&requests, "#resp-image");
    assert!(
        image.iter().any(|r| !blocks(r, "user", "image").is_empty()),
        "{image:#?}"
    );
    let json_req = with_marker(&requests, "#resp-json-raw");
    assert!(
        json_req.iter().any(|r| {
            r["tools"].as_array().into_iter().flatten().any(|t| {
                t["name"] == "StructuredOutput" && t["input_schema"].to_string().contains("\"n\"")
            })
        }),
        "{json_req:#?}"
    );
}

/// The value a Python test wrote under `key` in the record file.
fn recorded(record: &std::path::Path, key: &str) -> String {
    std::fs::read_to_string(record)
        .unwrap()
        .lines()
        .find_map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v[key].as_str().map(str::to_string)
        })
        .unwrap_or_else(|| panic!("no {key} recorded"))
}

#[tokio::test]
async fn python_openai_sdk_responses() {
    tokio::time::timeout(Duration::from_secs(420), python_responses_inner())
        .await
        .expect("python_openai_sdk_responses timed out");
}

/// Stored responses through the Python SDK, across a restart of the gateway on the same store:
/// `tests/python/stored_responses.py before`, a new gateway process, then `… after`, which
/// continues the first response with `previous_response_id`. The fake API's log shows the
/// continuation carried the earlier exchange natively (a user and an assistant message).
async fn python_stored_responses_inner() {
    let Some(cli) = real_cli() else { return };
    let Some(python) = tool("venv/bin/python") else {
        return;
    };
    let api = FakeAnthropic::start().await;
    let store = tempfile::tempdir().unwrap();
    let store_arg = store.path().display().to_string();
    let extra = ["--session-store", store_arg.as_str()];
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.jsonl");
    let script = "tests/python/stored_responses.py";
    for phase in ["before", "after"] {
        // A new gateway process for each phase: nothing but the store carries over.
        let gw = real_cli_gateway(&cli, &api, &extra).await;
        let out = run(clients::client_command(&python, &gw, &record).args([script, phase])).await;
        assert!(
            out.status.success(),
            "{}\n--- gateway stderr ---\n{}",
            describe(&format!("{script} {phase}"), &out),
            gw.stderr()
        );
        assert!(text(&out.stdout).contains(&format!("stored responses: {phase} ok")));
    }
    let requests = api.requests();
    let second = with_marker(&requests, "#stored-2");
    let continued = second
        .iter()
        .find(|r| r["messages"].to_string().contains("#stored-1"))
        .unwrap_or_else(|| panic!("the continuation did not carry the first turn: {second:#?}"));
    let messages = continued["messages"].as_array().unwrap();
    // The CLI adds `{"role":"system"}` entries of its own between turns: not ours.
    let texts: Vec<(String, String)> = messages
        .iter()
        .filter(|m| m["role"] != "system")
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_string(),
                m["content"].to_string(),
            )
        })
        .collect();
    let first_user = texts
        .iter()
        .position(|(role, c)| role == "user" && c.contains("My name is Ada. #stored-1"))
        .unwrap_or_else(|| panic!("{texts:#?}"));
    let (role, content) = &texts[first_user + 1];
    assert_eq!(role, "assistant", "{texts:#?}");
    assert!(content.contains("You said: My name is Ada."), "{texts:#?}");
    assert!(
        continued["system"].to_string().contains("Be brief."),
        "{continued:#}"
    );
    // The unstored and deleted responses never continued anything.
    assert!(with_marker(&requests, "#stored-none").is_empty());
    // The function call's output, sent alone with `previous_response_id`, reached Claude as a
    // tool_result after the stored tool_use of the same id.
    let call_id = recorded(&record, "stored_call_id");
    let answered: Vec<&Value> = with_marker(&requests, "#stored-tool")
        .into_iter()
        .filter(|r| !blocks(r, "user", "tool_result").is_empty())
        .collect();
    assert_eq!(answered.len(), 1, "{requests:#?}");
    assert_eq!(
        blocks(answered[0], "assistant", "tool_use")[0]["id"],
        call_id.as_str()
    );
    assert_eq!(
        blocks(answered[0], "user", "tool_result")[0]["tool_use_id"],
        call_id.as_str()
    );
}

#[tokio::test]
async fn python_openai_sdk_stored_responses_across_a_restart() {
    tokio::time::timeout(Duration::from_secs(300), python_stored_responses_inner())
        .await
        .expect("python_openai_sdk_stored_responses_across_a_restart timed out");
}

/// `client.responses.input_tokens.count` (`tests/python/test_input_tokens.py`): refused with a
/// 501 the SDK does not retry. Afterwards the fake API has received nothing — no completion and
/// no `count_tokens` — and the gateway has no claude process left.
#[tokio::test]
async fn python_openai_sdk_input_tokens() {
    tokio::time::timeout(Duration::from_secs(180), async {
        let Some(cli) = real_cli() else { return };
        let Some(python) = tool("venv/bin/python") else {
            return;
        };
        let api = FakeAnthropic::start().await;
        let gw = real_cli_gateway(&cli, &api, &[]).await;
        let dir = tempfile::tempdir().unwrap();
        pytest(
            &python,
            &gw,
            &dir.path().join("record.jsonl"),
            "tests/python/test_input_tokens.py",
        )
        .await;
        assert!(
            with_marker(&api.requests(), "#count-sdk").is_empty(),
            "a count reached the API: {:#?}",
            api.requests()
        );
        assert_eq!(api.count_requests(), Vec::<Value>::new());
        // Only the startup's model discovery ever ran the CLI, and it is gone.
        eventually("no claude process is left", || {
            common::procs::live_children(gw.pid()).is_empty()
        })
        .await;
    })
    .await
    .expect("python_openai_sdk_input_tokens timed out");
}
