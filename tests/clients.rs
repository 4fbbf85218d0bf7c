//! Third-party clients against the gateway binary: the official `openai` Python SDK (pytest in
//! `tests/python/`) over HTTP, and `buf curl` over gRPC with server reflection, both on the real
//! `claude` CLI against the fake Anthropic API; plus `buf lint` on the proto contract. The tools
//! come from `.ci/install-tools` (`.tools/`); a test whose tool is missing fails
//! (`common/skip.rs`).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::fake_anthropic::FakeAnthropic;
use common::*;
use serde_json::Value;
use tokio::process::Command;

// ---------------------------------------------------------------------------------------------
// The OpenAI Python SDK

async fn python_openai_sdk_inner() {
    let Some(cli) = real_cli() else { return };
    let Some(python) = tool("venv/bin/python") else {
        return;
    };
    let api = FakeAnthropic::start().await;
    let gw = real_cli_gateway(&cli, &api, &[]).await;
    let started = Instant::now();
    let out = run(Command::new(&python)
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/python/test_openai_sdk.py",
        ])
        .current_dir(repo_path(""))
        .env("OPENAI_BASE_URL", format!("{}/v1", gw.http))
        .env("OPENAI_API_KEY", "unused")
        .env_remove("OPENAI_ORG_ID")
        .env_remove("OPENAI_PROJECT_ID")
        .env_remove("OPENAI_WEBHOOK_SECRET")
        // The SDK's HTTP client honours proxy variables; the gateway is local.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1"))
    .await;
    eprintln!(
        "pytest took {:.1?}:\n{}",
        started.elapsed(),
        text(&out.stdout)
    );
    assert!(
        out.status.success(),
        "{}\n--- gateway stderr ---\n{}",
        describe("pytest tests/python/test_openai_sdk.py", &out),
        gw.stderr()
    );
    let summary = text(&out.stdout);
    assert!(
        summary.contains("passed") && !summary.contains("skipped"),
        "every SDK test must run: {summary}"
    );
    let requests = api.requests();
    assert!(
        !requests.is_empty(),
        "the SDK's completions must reach the (fake) Anthropic API"
    );
    // test_system_message_and_multi_turn: the system message and the history reach the API.
    assert!(
        requests.iter().any(|r| {
            r["system"]
                .to_string()
                .contains("You are a terse assistant.")
                && r["messages"].to_string().contains("My name is Ada.")
                && r["messages"].to_string().contains("Nice to meet you, Ada.")
        }),
        "no API request carries the system message and the history: {requests:#?}"
    );
}

#[tokio::test]
async fn python_openai_sdk() {
    tokio::time::timeout(Duration::from_secs(420), python_openai_sdk_inner())
        .await
        .expect("python_openai_sdk timed out");
}

// ---------------------------------------------------------------------------------------------
// buf curl over gRPC with server reflection

/// `buf curl --protocol grpc --http2-prior-knowledge <args>`.
async fn buf_curl(buf: &Path, args: &[&str]) -> Output {
    run(Command::new(buf)
        .args(["curl", "--protocol", "grpc", "--http2-prior-knowledge"])
        .args(args)
        .current_dir(repo_path(""))
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost"))
    .await
}

/// The JSON documents `buf curl` prints one after the other (pretty-printed, concatenated).
fn json_documents(stdout: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("buf curl printed something that is not JSON ({e}): {stdout}"))
}

/// A protojson field, under its JSON name (what buf prints) or its proto name.
fn field<'a>(v: &'a Value, json_name: &str, proto_name: &str) -> &'a Value {
    match &v[json_name] {
        Value::Null => &v[proto_name],
        found => found,
    }
}

/// A protojson 32-bit unsigned integer (a JSON number; 64-bit ones would be strings).
fn uint(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

async fn buf_curl_inner() {
    let Some(cli) = real_cli() else { return };
    let Some(buf) = tool("node_modules/.bin/buf") else {
        return;
    };
    let api = FakeAnthropic::start().await;
    let gw = real_cli_gateway(&cli, &api, &[]).await;
    let base = gw.grpc.as_str();

    // Services, by reflection.
    let out = buf_curl(&buf, &["--list-services", base]).await;
    assert!(
        out.status.success(),
        "{}",
        describe("--list-services", &out)
    );
    let services: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    for expected in [
        "claude_gateway.v1.ChatService",
        "claude_gateway.v1.ModelService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            services.iter().any(|s| s == expected),
            "{expected} not listed: {services:?}"
        );
    }

    // Methods, by reflection (with reflection the URL must be the base URL; it lists them all).
    let out = buf_curl(&buf, &["--list-methods", base]).await;
    assert!(out.status.success(), "{}", describe("--list-methods", &out));
    let mut chat_methods: Vec<String> = text(&out.stdout)
        .lines()
        .filter(|m| m.starts_with("claude_gateway.v1.ChatService/"))
        .map(str::to_string)
        .collect();
    chat_methods.sort();
    assert_eq!(
        chat_methods,
        [
            "claude_gateway.v1.ChatService/CountInputTokens",
            "claude_gateway.v1.ChatService/CreateChatCompletion",
            "claude_gateway.v1.ChatService/StreamChatCompletion",
        ],
        "{}",
        text(&out.stdout)
    );

    // A count is refused with its reason (the CLI gives no exact one), as any client sees it.
    let out = buf_curl(
        &buf,
        &[
            "-d",
            r#"{"params":{"model":"sonnet","messages":[{"role":"ROLE_USER","content":[{"text":"Hi"}]}]}}"#,
            &format!("{base}/claude_gateway.v1.ChatService/CountInputTokens"),
        ],
    )
    .await;
    let printed = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        !out.status.success(),
        "{}",
        describe("CountInputTokens", &out)
    );
    assert!(
        printed.contains("unimplemented") && printed.contains("get_context_usage"),
        "{printed}"
    );

    // Health.
    let out = buf_curl(&buf, &[&format!("{base}/grpc.health.v1.Health/Check")]).await;
    assert!(out.status.success(), "{}", describe("Health/Check", &out));
    let health = json_documents(&text(&out.stdout));
    assert_eq!(health.len(), 1, "{health:?}");
    assert_eq!(health[0]["status"], "SERVING", "{health:?}");

    // A streamed completion.
    let out = buf_curl(
        &buf,
        &[
            "-d",
            r#"{"params":{"model":"sonnet","messages":[{"role":"ROLE_USER","content":[{"text":"Hello [[words:3]]"}]}]}}"#,
            &format!("{base}/claude_gateway.v1.ChatService/StreamChatCompletion"),
        ],
    )
    .await;
    let stdout = text(&out.stdout);
    eprintln!("buf curl StreamChatCompletion printed:\n{stdout}");
    assert!(
        out.status.success(),
        "{}\n--- gateway stderr ---\n{}",
        describe("StreamChatCompletion", &out),
        gw.stderr()
    );
    let messages = json_documents(&stdout);
    assert!(messages.len() >= 4, "{messages:#?}");
    let id = &messages[0]["id"];
    assert!(
        id.as_str().is_some_and(|id| id.starts_with("chatcmpl-")),
        "{messages:#?}"
    );
    for m in &messages {
        assert_eq!(&m["id"], id, "one id on every message: {messages:#?}");
        assert_eq!(m["model"], "sonnet", "{messages:#?}");
    }
    assert_eq!(
        messages[0]["choices"][0]["delta"]["role"], "ROLE_ASSISTANT",
        "the first message carries the role: {messages:#?}"
    );
    let content: String = messages
        .iter()
        .filter_map(|m| m["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "w1 w2 w3", "{messages:#?}");
    let content_messages = messages
        .iter()
        .filter(|m| m["choices"][0]["delta"]["content"].is_string())
        .count();
    assert!(content_messages >= 2, "content is streamed: {messages:#?}");
    let finishes: Vec<&Value> = messages
        .iter()
        .map(|m| field(&m["choices"][0], "finishReason", "finish_reason"))
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finishes, ["FINISH_REASON_STOP"], "{messages:#?}");
    let last = messages.last().unwrap();
    assert!(
        last["choices"].as_array().is_none_or(Vec::is_empty),
        "the usage message has no choices: {last:#}"
    );
    let usage = &last["usage"];
    let prompt = uint(field(usage, "promptTokens", "prompt_tokens"));
    let completion = uint(field(usage, "completionTokens", "completion_tokens"));
    let total = uint(field(usage, "totalTokens", "total_tokens"));
    assert!(prompt > 0, "{last:#}");
    assert!(completion > 0, "{last:#}");
    assert_eq!(total, prompt + completion, "{last:#}");
    for m in &messages[..messages.len() - 1] {
        assert!(
            m["usage"].is_null(),
            "usage only on the last message: {m:#}"
        );
    }

    // The model catalogue: a known id, then an unknown one → NOT_FOUND.
    let out = buf_curl(
        &buf,
        &[
            "-d",
            r#"{"id":"gpt-4o"}"#,
            &format!("{base}/claude_gateway.v1.ModelService/GetModel"),
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        describe("GetModel gpt-4o", &out)
    );
    let model = json_documents(&text(&out.stdout));
    assert_eq!(model[0]["model"]["id"], "gpt-4o", "{model:?}");
    assert_eq!(
        field(&model[0]["model"], "cliModel", "cli_model"),
        "sonnet",
        "{model:?}"
    );

    let out = buf_curl(
        &buf,
        &[
            "-d",
            r#"{"id":"gpt-9-does-not-exist"}"#,
            &format!("{base}/claude_gateway.v1.ModelService/GetModel"),
        ],
    )
    .await;
    let stderr = text(&out.stderr).to_lowercase();
    assert!(
        !out.status.success(),
        "{}",
        describe("GetModel unknown", &out)
    );
    // buf curl exits with the gRPC code shifted left by 3: NOT_FOUND (5) → 40.
    assert_eq!(
        out.status.code(),
        Some(5 << 3),
        "{}",
        describe("GetModel unknown", &out)
    );
    assert!(
        stderr.contains("not_found") || stderr.contains("not found"),
        "{}",
        describe("GetModel unknown", &out)
    );
    assert!(
        stderr.contains("gpt-9-does-not-exist"),
        "{}",
        describe("GetModel unknown", &out)
    );
}

#[tokio::test]
async fn buf_curl_lists_services_by_reflection_and_streams() {
    tokio::time::timeout(Duration::from_secs(180), buf_curl_inner())
        .await
        .expect("buf_curl_lists_services_by_reflection_and_streams timed out");
}

// ---------------------------------------------------------------------------------------------
// buf lint

#[tokio::test]
async fn buf_lint_passes() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let Some(buf) = tool("node_modules/.bin/buf") else {
            return;
        };
        let out = run(Command::new(&buf)
            .arg("lint")
            .current_dir(repo_path("proto")))
        .await;
        assert!(out.status.success(), "{}", describe("buf lint", &out));
    })
    .await
    .expect("buf lint timed out");
}
