//! The gateway binary on the real `claude` CLI (the pinned npm package, installed by `.ci/run`)
//! against the fake Anthropic API in `common/fake_anthropic.rs`, reached through
//! ANTHROPIC_BASE_URL. These tests check what actually reaches the API.

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
