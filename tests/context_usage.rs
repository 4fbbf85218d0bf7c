//! Why `POST /v1/responses/input_tokens` is a 501 (`src/claude/input_tokens.rs`), pinned on the
//! real `claude` CLI against the fake Anthropic API: the CLI's only count, the
//! `get_context_usage` control request, is made of separate `count_tokens` calls (the system
//! prompt counted as a user message), leaves out system blocks the real request carries, and
//! when the API cannot count it still answers "success" with a number — a local estimate, marked
//! as nothing. If a CLI upgrade makes this test fail, the refusal deserves another look.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use claude_gateway::claude::argv::{SpawnSpec, build_args};
use common::fake_anthropic::{FakeAnthropic, count_of};
use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout};

const SYSTEM: &str = "You are terse. #context-usage";

/// The CLI's stdin and stdout, one JSON line at a time.
struct Cli {
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Cli {
    async fn send(&mut self, line: Value) {
        let text = format!("{line}\n");
        self.stdin.write_all(text.as_bytes()).await.unwrap();
    }

    /// Reads until a line satisfies `done`, answering nothing (no MCP server is declared).
    async fn until(&mut self, done: impl Fn(&Value) -> bool) -> Value {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(30), self.stdout.next_line())
                .await
                .expect("the CLI went silent")
                .unwrap()
                .expect("the CLI exited");
            if let Ok(value) = serde_json::from_str::<Value>(&line)
                && done(&value)
            {
                return value;
            }
        }
    }

    async fn control(&mut self, id: &str, request: Value) -> Value {
        self.send(json!({"type": "control_request", "request_id": id, "request": request}))
            .await;
        let answer = self
            .until(|v| v["type"] == "control_response" && v["response"]["request_id"] == id)
            .await;
        answer["response"].clone()
    }

    /// A user line; history (`query: false`) is acknowledged by a `result` of no turn.
    async fn user(&mut self, text: &str, query: bool) -> Value {
        let mut line = json!({"type": "user", "session_id": "", "parent_tool_use_id": null,
            "message": {"role": "user", "content": [{"type": "text", "text": text}]}});
        if !query {
            line["shouldQuery"] = json!(false);
        }
        self.send(line).await;
        self.until(|v| v["type"] == "result").await
    }
}

#[tokio::test]
async fn get_context_usage_is_no_exact_count() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let Some(cli) = real_cli() else { return };
        let api = FakeAnthropic::start().await;
        let work = tempfile::tempdir().unwrap();
        // The flags the gateway spawns every process with.
        let args = build_args(&SpawnSpec {
            model: "sonnet".into(),
            bare: false,
            effort: None,
        });
        let mut child = tokio::process::Command::new(&cli)
            .args(&args)
            .current_dir(work.path())
            .env("ANTHROPIC_API_KEY", "sk-test")
            .env("ANTHROPIC_BASE_URL", api.base_url())
            .env("CLAUDE_CODE_MAX_RETRIES", "0")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env("DISABLE_TELEMETRY", "1")
            .env("DISABLE_AUTOUPDATER", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut cli = Cli {
            stdin: child.stdin.take().unwrap(),
            stdout: BufReader::new(child.stdout.take().unwrap()).lines(),
        };
        let init = json!({"subtype": "initialize", "systemPrompt": [SYSTEM]});
        assert_eq!(cli.control("init_1", init).await["subtype"], "success");
        let ack = cli
            .user("My name is Ada and I like long walks.", false)
            .await;
        assert_eq!(ack["num_turns"], 0, "{ack}");

        // Counted by the API, in pieces: the system prompt as if it were a user message.
        let asked = Instant::now();
        let usage = cli
            .control("ctx_1", json!({"subtype": "get_context_usage"}))
            .await;
        eprintln!("get_context_usage took {:?}", asked.elapsed());
        assert_eq!(usage["subtype"], "success", "{usage}");
        let total = usage["response"]["totalTokens"].as_u64().unwrap();
        let counts = api.count_requests();
        assert!(!counts.is_empty(), "no count_tokens call");
        assert!(
            counts
                .iter()
                .any(|c| c["messages"] == json!([{"role": "user", "content": SYSTEM}])),
            "{counts:#?}"
        );
        let counted: u64 = counts.iter().map(|c| count_of(c) as u64).sum();
        eprintln!(
            "totalTokens {total}; the fake counted {counted} in {} calls",
            counts.len()
        );
        assert!(total > 0 && total <= counted, "{usage}");

        // When the API cannot count, the answer is still a success with a number: a guess.
        api.fail_counts(Some(500));
        cli.user("And I have a cat.", false).await;
        let guessed = cli
            .control("ctx_2", json!({"subtype": "get_context_usage"}))
            .await;
        assert_eq!(guessed["subtype"], "success", "{guessed}");
        assert!(guessed["response"]["totalTokens"].as_u64().unwrap() > 0);
        assert!(
            api.count_requests().len() > counts.len(),
            "it did ask the API"
        );
        let text = guessed["response"].to_string().to_lowercase();
        assert!(
            !text.contains("estimat") && !text.contains("error"),
            "{guessed}"
        );
        api.fail_counts(None);

        // The request itself carries system blocks that no count included.
        let result = cli.user("What is my name?", true).await;
        assert_eq!(result["subtype"], "success", "{result}");
        let sent = api.requests().pop().expect("the turn's request");
        let blocks: Vec<&str> = sent["system"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect();
        let all_counts = serde_json::to_string(&api.count_requests()).unwrap();
        let counted_somewhere = |text: &str| {
            let escaped = serde_json::to_string(text).unwrap();
            all_counts.contains(escaped.trim_matches('"'))
        };
        let uncounted: Vec<&&str> = blocks.iter().filter(|b| !counted_somewhere(b)).collect();
        assert!(
            !uncounted.is_empty(),
            "every system block was counted: {blocks:#?}"
        );
        eprintln!(
            "the request's system blocks no count saw: {uncounted:?}; the request counts {}",
            count_of(&sent)
        );
        drop(cli);
        let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        assert!(status.is_ok(), "the CLI did not exit on EOF");
    })
    .await
    .unwrap();
}
