//! Anthropic's Messages API (`/v1/messages`) through real clients, against the gateway binary on
//! the real `claude` CLI with the fake Anthropic API (`tests/common/fake_anthropic.rs`), the
//! gateway holding one API key:
//!
//! - the official `anthropic` Python SDK (`tests/python/test_messages.py`: create, stream,
//!   tools and a tool_result round trip, thinking, a base64 image, stop_sequences, max_tokens,
//!   count_tokens, both auth headers, Anthropic-shaped errors);
//! - the official TypeScript SDK `@anthropic-ai/sdk` (`tests/node/messages.mjs`: a streamed
//!   answer and a tool round trip);
//! - Claude Code itself: the pinned `claude` CLI with `ANTHROPIC_BASE_URL` = the gateway answers
//!   `claude -p`, its own request (big system prompt, its tools, its betas, `?beta=true`)
//!   carried through the gateway to the inner CLI.
//!
//! Afterwards the requests the fake API received prove the blocks reached Claude natively: the
//! tool offered as `mcp__gw__get_weather` with its `input_schema`, the call and its result
//! replayed as `tool_use` / `tool_result` blocks with the SDK's call id, the image as an image
//! block with the client's bytes, the system prompt, `max_tokens`; refused requests reached
//! nothing.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::clients::{self, blocks, client_command, with_marker};
use common::fake_anthropic::FakeAnthropic;
use common::*;
use serde_json::{Value, json};

/// The one key the gateway accepts; the clients send it as `x-api-key` (or Bearer).
const KEY: &str = "gw-messages-test-key";

/// The gateway on the real CLI with the fake API, requiring `KEY`, with `extra` flags.
async fn gateway(cli: &Path, api: &FakeAnthropic, extra: &[&str]) -> Gateway {
    let args = [&["--api-keys", KEY], extra].concat();
    real_cli_gateway(cli, api, &args).await
}

/// A client program pointed at the gateway's Anthropic surface (`GATEWAY_URL`, `GATEWAY_KEY`).
fn messages_client(program: &Path, gw: &Gateway, record: &Path) -> tokio::process::Command {
    let mut cmd = client_command(program, gw, record);
    cmd.env("GATEWAY_URL", &gw.http)
        .env("GATEWAY_KEY", KEY)
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("ANTHROPIC_AUTH_TOKEN")
        .env_remove("ANTHROPIC_BASE_URL");
    cmd
}

/// The values a client wrote under `key` in the record file (JSON lines).
fn recorded(record: &Path, key: &str) -> String {
    let lines = std::fs::read_to_string(record).unwrap_or_default();
    lines
        .lines()
        .find_map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v[key].as_str().map(str::to_string)
        })
        .unwrap_or_else(|| panic!("no {key} recorded in {lines}"))
}

/// The one request of `marker` that carries a `tool_result`, checked to be the native replay
/// of the client's call `call_id` to `get_weather` with `{"city":"Paris"}` answered `result`.
fn assert_native_round_trip(requests: &[Value], marker: &str, call_id: &str, result: &str) {
    let found: Vec<&Value> = with_marker(requests, marker)
        .into_iter()
        .filter(|r| !blocks(r, "user", "tool_result").is_empty())
        .collect();
    assert_eq!(found.len(), 1, "{marker}: {requests:#?}");
    let req = found[0];
    let uses = blocks(req, "assistant", "tool_use");
    let results = blocks(req, "user", "tool_result");
    assert_eq!((uses.len(), results.len()), (1, 1), "{req:#}");
    assert_eq!(uses[0]["id"], call_id, "{req:#}");
    assert_eq!(uses[0]["name"], "mcp__gw__get_weather", "{req:#}");
    assert_eq!(uses[0]["input"], json!({"city": "Paris"}), "{req:#}");
    assert_eq!(results[0]["tool_use_id"], call_id, "{req:#}");
    assert!(
        results[0]["content"].to_string().contains(result),
        "{req:#}"
    );
    let offered = req["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["name"] == "mcp__gw__get_weather")
        .unwrap_or_else(|| panic!("get_weather not offered: {req:#}"));
    let schema = &offered["input_schema"];
    assert_eq!(schema["required"], json!(["city"]), "{offered:#}");
    assert_eq!(
        schema["properties"]["city"]["description"], "The city, e.g. Paris",
        "{offered:#}"
    );
}

/// The requests of `marker`, at least one.
fn marked<'a>(requests: &'a [Value], marker: &str) -> Vec<&'a Value> {
    let found = with_marker(requests, marker);
    assert!(!found.is_empty(), "no request of {marker}: {requests:#?}");
    found
}

async fn python_inner() {
    let Some(cli) = real_cli() else { return };
    let Some(python) = tool("venv/bin/python") else {
        return;
    };
    let api = FakeAnthropic::start().await;
    // Models learned from the CLI at startup, for `models.list`.
    let gw = gateway(&cli, &api, &["--discover-models", "true"]).await;
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.jsonl");
    let file = "tests/python/test_messages.py";
    clients::pytest_in(messages_client(&python, &gw, &record), &gw, file).await;

    let requests = api.requests();
    // The system prompt, as a string and as blocks.
    for (marker, system) in [
        ("#msg-create", "You are terse."),
        ("#msg-bearer", "Answer like a pirate."),
    ] {
        let found = marked(&requests, marker);
        assert!(
            found
                .iter()
                .any(|r| r["system"].to_string().contains(system)),
            "{marker}: {found:#?}"
        );
    }
    // The tool round trip, natively.
    let call_id = recorded(&record, "messages_call_id");
    assert_native_round_trip(&requests, "#msg-tool ", &call_id, "Sunny, 22 C");
    // The image reached Claude as an image block with the client's bytes.
    let data = recorded(&record, "messages_image_data");
    let image = marked(&requests, "#msg-image");
    let images: Vec<&Value> = image
        .iter()
        .flat_map(|r| blocks(r, "user", "image"))
        .collect();
    assert!(
        images.iter().any(|b| b["source"]["type"] == "base64"
            && b["source"]["media_type"] == "image/png"
            && b["source"]["data"] == data.as_str()),
        "{image:#?}"
    );
    // Both documents reached Claude as native document blocks, title and context kept.
    let pdf = recorded(&record, "messages_pdf_data");
    let found = marked(&requests, "#msg-pdf");
    let docs: Vec<&Value> = found
        .iter()
        .flat_map(|r| blocks(r, "user", "document"))
        .collect();
    assert!(
        docs.iter().any(|b| b["source"]
            == serde_json::json!({"type": "base64", "media_type": "application/pdf", "data": pdf})
            && b["title"] == "Tiny report"
            && b["context"] == "An empty PDF"),
        "{found:#?}"
    );
    assert!(
        docs.iter().any(|b| b["source"]
            == serde_json::json!({"type": "text", "media_type": "text/plain", "data": "Plain notes."})),
        "{found:#?}"
    );
    // The redacted thinking sent back reached Claude natively, first in its assistant turn.
    let data = recorded(&record, "messages_redacted_data");
    let again = marked(&requests, "#msg-redacted-again");
    assert_eq!(again.len(), 1, "{again:#?}");
    assert!(
        blocks(again[0], "assistant", "redacted_thinking")
            .iter()
            .any(|b| b["data"] == data.as_str()),
        "{:#}",
        again[0]
    );
    // Asked thinking reached Claude as thinking on, with the client's budget (2048; the CLI's
    // own for claude-sonnet-4-5 is 31999).
    let think = marked(&requests, "#msg-think");
    assert!(!think.is_empty());
    assert!(
        think
            .iter()
            .all(|r| r["thinking"]["type"] == "enabled" && r["thinking"]["budget_tokens"] == 2048),
        "{think:#?}"
    );
    // The thinking sent back reached Claude natively, first in the turn of its tool_use.
    let signature = recorded(&record, "messages_think_signature");
    let looped: Vec<&Value> = marked(&requests, "#msg-think-tool")
        .into_iter()
        .filter(|r| !blocks(r, "user", "tool_result").is_empty())
        .collect();
    assert_eq!(looped.len(), 1, "{requests:#?}");
    let turn = looped[0]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "assistant" && m["content"].to_string().contains("tool_use"))
        .unwrap_or_else(|| panic!("no tool_use turn: {:#}", looped[0]));
    assert_eq!(turn["content"][0]["type"], "thinking", "{turn:#}");
    assert_eq!(turn["content"][0]["thinking"], "Let me think about this.");
    assert_eq!(
        turn["content"][0]["signature"],
        signature.as_str(),
        "{turn:#}"
    );
    // max_tokens is Claude's max_tokens.
    let max = marked(&requests, "#msg-max");
    assert!(max.iter().all(|r| r["max_tokens"] == 3), "{max:#?}");
    // A count either came from the API (and said so) or was refused without any call.
    let counts: Vec<Value> = api
        .count_requests()
        .into_iter()
        .filter(|r| r.to_string().contains("#msg-count"))
        .collect();
    match recorded(&record, "messages_count").as_str() {
        "counted" => assert!(!counts.is_empty(), "a count without a count_tokens call"),
        _ => assert!(
            counts.is_empty() && with_marker(&requests, "#msg-count").is_empty(),
            "a refused count reached the API: {counts:#?}"
        ),
    }
    // Refused requests reached nothing.
    for marker in ["#msg-bad", "#msg-badkey", "#msg-bad-doc"] {
        assert!(
            with_marker(&requests, marker).is_empty(),
            "{marker} reached Claude"
        );
    }
}

#[tokio::test]
async fn python_anthropic_sdk_messages() {
    tokio::time::timeout(Duration::from_secs(480), python_inner())
        .await
        .expect("python_anthropic_sdk_messages timed out");
}

/// `node` on PATH, or the test fails (`skip::missing`).
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

async fn node_inner() {
    let Some(cli) = real_cli() else { return };
    if tool("node_modules/@anthropic-ai/sdk/index.mjs").is_none() {
        return;
    }
    let Some(node) = node() else { return };
    let api = FakeAnthropic::start().await;
    let gw = gateway(&cli, &api, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.jsonl");
    let script = "tests/node/messages.mjs";
    let started = Instant::now();
    let out = run(messages_client(&node, &gw, &record).arg(script)).await;
    let stdout = text(&out.stdout);
    eprintln!("node took {:.1?}:\n{stdout}", started.elapsed());
    assert!(
        out.status.success(),
        "{}\n--- gateway stderr ---\n{}",
        describe(&format!("node {script}"), &out),
        gw.stderr()
    );
    assert!(
        stdout.contains("# pass 2") && stdout.contains("# fail 0"),
        "both Node tests must pass: {stdout}"
    );
    let requests = api.requests();
    marked(&requests, "#node-msg-stream");
    let call_id = recorded(&record, "node_messages_call_id");
    assert_native_round_trip(&requests, "#node-msg-tool", &call_id, "Windy, 15 C");
}

#[tokio::test]
async fn node_anthropic_sdk_messages() {
    tokio::time::timeout(Duration::from_secs(300), node_inner())
        .await
        .expect("node_anthropic_sdk_messages timed out");
}

/// Claude Code as the gateway's client: `claude -p` (on `model`, else its default) with
/// `ANTHROPIC_BASE_URL` = the gateway and the gateway key as its API key, in a HOME of its own
/// (nothing of the machine's config, no CLAUDE.md, not a git repository). It must print the
/// inner Claude's answer, and the inner request must carry the outer CLI's prompt (its marker)
/// and the tools it offered.
async fn claude_code_inner(model: Option<&str>) {
    let Some(cli) = real_cli() else { return };
    let api = FakeAnthropic::start().await;
    let gw = gateway(&cli, &api, &[]).await;
    let home = tempfile::tempdir().unwrap();
    let prompt = "Hello #cc-client";
    let started = Instant::now();
    let model = model.map(|m| ["--model", m]);
    let out = run(tokio::process::Command::new(&cli)
        .current_dir(home.path())
        .args(["-p", prompt])
        .args(model.iter().flatten())
        .env("HOME", home.path())
        .env("CLAUDE_CONFIG_DIR", home.path().join(".claude"))
        .env("ANTHROPIC_BASE_URL", &gw.http)
        .env("ANTHROPIC_API_KEY", KEY)
        .env("CLAUDE_CODE_MAX_RETRIES", "0")
        // Hermetic: no telemetry, error reports or update checks leave the machine.
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_ERROR_REPORTING", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env_remove("ANTHROPIC_AUTH_TOKEN")
        .env_remove("ANTHROPIC_MODEL")
        .env_remove("CLAUDE_CODE_ENTRYPOINT"))
    .await;
    let stdout = text(&out.stdout);
    eprintln!("claude -p took {:.1?}: {stdout}", started.elapsed());
    assert!(
        out.status.success() && stdout.contains("You said:") && stdout.contains("#cc-client"),
        "{}\n--- gateway stderr ---\n{}",
        describe("claude -p (client of the gateway)", &out),
        gw.stderr()
    );
    let requests = api.requests();
    let inner = marked(&requests, "#cc-client");
    // The outer CLI's own (long) system prompt reached the inner Claude's system prompt.
    assert!(
        inner.iter().any(|r| r["system"]
            .to_string()
            .contains("You are an agent working with the user toward their goals")),
        "the outer CLI's system prompt did not reach Claude: {inner:#?}"
    );
    // The outer CLI's own tools (Bash, Read, …) were offered to the inner Claude.
    assert!(
        inner.iter().any(|r| {
            r["tools"].as_array().into_iter().flatten().any(|t| {
                t["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with("__Bash") || n == "Bash")
            })
        }),
        "the outer CLI's tools did not reach Claude: {inner:#?}"
    );
}

/// On `claude-sonnet-4-5` the CLI puts its context in `<system-reminder>`s of the user turn.
#[tokio::test]
async fn claude_code_as_a_client() {
    tokio::time::timeout(
        Duration::from_secs(240),
        claude_code_inner(Some("claude-sonnet-4-5")),
    )
    .await
    .expect("claude_code_as_a_client timed out");
}

/// On its default model (`claude-opus-5-5`) the CLI also sends `{"role":"system"}` entries in
/// `messages` (beta `per-turn-control-2026-07-01`), which the endpoint must accept.
#[tokio::test]
async fn claude_code_on_its_default_model_as_a_client() {
    tokio::time::timeout(Duration::from_secs(240), claude_code_inner(None))
        .await
        .expect("claude_code_on_its_default_model_as_a_client timed out");
}
