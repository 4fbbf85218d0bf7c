//! Agents that speak only the Responses API, against the gateway binary on the real `claude`
//! CLI with the fake Anthropic API: the OpenAI Agents SDK (`tests/python/test_agents.py`: an
//! `Agent` with a `@function_tool` through `OpenAIResponsesModel`, `Runner.run` and
//! `Runner.run_streamed`) and the Codex CLI (`codex exec` with a custom model provider and its
//! default tool set: a plain answer, one round trip through Codex's own shell tool run in its
//! read-only sandbox, and one through a subagent tool of its `multi_agent_v1` namespace).
//! Afterwards the requests the fake API received prove each tool round trip was native: the
//! client's tool offered as `mcp__gw__<name>` (`mcp__gw__<namespace>__<name>` for a namespaced
//! one), its call replayed as a `tool_use` and its output as the `tool_result` of that call.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::clients::{blocks, pytest, with_marker};
use common::fake_anthropic::FakeAnthropic;
use common::*;
use serde_json::{Value, json};
use tokio::process::Command;

// ---------------------------------------------------------------------------------------------
// The OpenAI Agents SDK

const AGENTS_FILE: &str = "tests/python/test_agents.py";

/// The one request of a marked run that answers the tool call: exactly one `tool_use` of
/// `mcp__gw__<tool>` and its `tool_result`, which quotes `output`. Returns the call's input and id.
fn round_trip<'a>(
    requests: &'a [Value],
    marker: &str,
    tool: &str,
    output: &str,
) -> (&'a Value, &'a Value) {
    let second: Vec<&Value> = with_marker(requests, marker)
        .into_iter()
        .filter(|r| !blocks(r, "user", "tool_result").is_empty())
        .collect();
    assert_eq!(second.len(), 1, "{marker}: {requests:#?}");
    let req = second[0];
    let uses = blocks(req, "assistant", "tool_use");
    let results = blocks(req, "user", "tool_result");
    assert_eq!((uses.len(), results.len()), (1, 1), "{req:#}");
    assert_eq!(uses[0]["name"], format!("mcp__gw__{tool}"), "{req:#}");
    assert_eq!(results[0]["tool_use_id"], uses[0]["id"], "{req:#}");
    assert!(
        results[0]["content"].to_string().contains(output),
        "the tool_result must carry `{output}`: {req:#}"
    );
    assert!(
        req["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["name"] == format!("mcp__gw__{tool}")),
        "{tool} not offered: {req:#}"
    );
    (&uses[0]["input"], &uses[0]["id"])
}

async fn agents_sdk_inner() {
    let Some(cli) = real_cli() else { return };
    let Some(python) = tool("venv/bin/python") else {
        return;
    };
    let api = FakeAnthropic::start().await;
    let gw = real_cli_gateway(&cli, &api, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.jsonl");
    pytest(&python, &gw, &record, AGENTS_FILE).await;

    // Each run's tool round trip reached Claude natively, under the call id the SDK saw.
    let calls: Vec<Value> = std::fs::read_to_string(&record)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    let requests = api.requests();
    for call in &calls {
        let marker = call["marker"].as_str().unwrap();
        let (input, id) = round_trip(&requests, marker, "lookup_code", "code-for-oslo-4471");
        assert_eq!(input, &json!({"city": "Oslo"}), "{marker}");
        assert_eq!(id, &call["call_id"], "{marker}");
    }
    // The agent's instructions are the system prompt.
    let run = with_marker(&requests, "#agents-run ");
    assert!(
        run.iter()
            .all(|r| r["system"].to_string().contains("Answer with the code")),
        "{run:#?}"
    );
}

#[tokio::test]
async fn openai_agents_sdk_function_tool() {
    tokio::time::timeout(Duration::from_secs(110), agents_sdk_inner())
        .await
        .expect("openai_agents_sdk_function_tool timed out");
}

// ---------------------------------------------------------------------------------------------
// The Codex CLI

/// Codex's configuration: the gateway as a custom Responses provider, with Codex's default tool
/// set (function tools such as `exec_command`, the subagent tools as the `multi_agent_v1`
/// namespace, the goal tools, and the hosted `web_search`, which the gateway leaves out). Only
/// what would reach the network is off: plugins (they sync at start), update checks and
/// analytics. `gpt-5` gets Codex's fallback model metadata, which offers no `custom` tools; a
/// model Codex knows (`gpt-5.5`) would add `apply_patch` as a `custom` (grammar) tool. No
/// retries, so a refusal shows at once.
const CODEX_CONFIG: &str = r#"
model = "gpt-5"
model_provider = "gw"
check_for_update_on_startup = false

[features]
plugins = false

[analytics]
enabled = false

[model_providers.gw]
name = "claude-gateway"
base_url = "BASE_URL"
wire_api = "responses"
env_key = "GATEWAY_TEST_KEY"
request_max_retries = 0
stream_max_retries = 0
stream_idle_timeout_ms = 60000
"#;

/// A finished `codex exec --json` run: its output, its JSONL events, its last message.
struct CodexRun {
    out: Output,
    events: Vec<Value>,
    last_message: String,
}

impl CodexRun {
    fn describe(&self, gw: &Gateway) -> String {
        format!(
            "{}\n--- gateway stderr ---\n{}",
            describe("codex exec", &self.out),
            gw.stderr()
        )
    }

    /// The completed items of one `type` (`agent_message`, `command_execution`, ...).
    fn items(&self, kind: &str) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| e["type"] == "item.completed" && e["item"]["type"] == kind)
            .map(|e| &e["item"])
            .collect()
    }
}

/// Runs `codex exec` in `workdir` with a throwaway `CODEX_HOME` pointing at the gateway. That
/// home lives under the target directory: Codex refuses to put its helper binaries (the
/// `apply_patch` PATH aliases) under `/tmp` and warns.
async fn codex_exec(codex: &Path, gw: &Gateway, workdir: &Path, prompt: &str) -> CodexRun {
    let home = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let config = CODEX_CONFIG.replace("BASE_URL", &format!("{}/v1", gw.http));
    std::fs::write(home.path().join("config.toml"), config).unwrap();
    let last = home.path().join("last-message.txt");
    let started = Instant::now();
    let out = run(Command::new(codex)
        .args(["exec", "--json", "--skip-git-repo-check", "--ephemeral"])
        .args(["--sandbox", "read-only", "--color", "never"])
        .arg("--output-last-message")
        .arg(&last)
        .arg(prompt)
        .current_dir(workdir)
        .env("CODEX_HOME", home.path())
        .env("GATEWAY_TEST_KEY", "unused")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("CODEX_API_KEY")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("RUST_LOG", "warn"))
    .await;
    eprintln!("codex exec took {:.1?}", started.elapsed());
    // Nothing but the gateway is reached (plugin sync and update checks are off): a failed
    // attempt to reach another host shows in Codex's log.
    let stderr = text(&out.stderr);
    assert!(
        !stderr.contains("error sending request"),
        "codex tried to reach the network: {stderr}"
    );
    let events = text(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    CodexRun {
        last_message: std::fs::read_to_string(&last).unwrap_or_default(),
        out,
        events,
    }
}

/// The gateway, the fake API and Codex for one Codex test.
struct CodexSetup {
    codex: PathBuf,
    api: FakeAnthropic,
    gw: Gateway,
    workdir: tempfile::TempDir,
}

async fn codex_setup() -> Option<CodexSetup> {
    let cli = real_cli()?;
    let codex = tool("node_modules/.bin/codex")?;
    let api = FakeAnthropic::start().await;
    let gw = real_cli_gateway(&cli, &api, &[]).await;
    // Outside any git repository (hence `--skip-git-repo-check`), so no AGENTS.md or
    // `.codex/` of a parent directory is read.
    let workdir = tempfile::tempdir().unwrap();
    Some(CodexSetup {
        codex,
        api,
        gw,
        workdir,
    })
}

async fn codex_plain_inner() {
    let Some(s) = codex_setup().await else { return };
    let run = codex_exec(
        &s.codex,
        &s.gw,
        s.workdir.path(),
        "#codex-plain Say hello [[reply:Hello from the gateway 5521]]",
    )
    .await;
    assert!(run.out.status.success(), "{}", run.describe(&s.gw));
    let messages = run.items("agent_message");
    assert!(
        messages
            .iter()
            .any(|m| m["text"] == "Hello from the gateway 5521"),
        "{}",
        run.describe(&s.gw)
    );
    assert_eq!(run.last_message.trim(), "Hello from the gateway 5521");
    // Codex's `developer` messages (its own instructions) became the system prompt.
    let requests = s.api.requests();
    let plain = with_marker(&requests, "#codex-plain");
    assert_eq!(plain.len(), 1, "{requests:#?}");
    assert!(
        plain[0]["system"]
            .to_string()
            .contains("You are a coding agent running in the Codex CLI"),
        "{:#}",
        plain[0]
    );
    // Codex's default tools reached Claude: its function tools by name, the subagent tools of
    // its `multi_agent_v1` namespace under combined names; its hosted web search did not.
    let offered: Vec<&str> = plain[0]["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for name in [
        "exec_command",
        "multi_agent_v1__spawn_agent",
        "multi_agent_v1__send_input",
        "multi_agent_v1__wait_agent",
        "multi_agent_v1__close_agent",
    ] {
        let name = format!("mcp__gw__{name}");
        assert!(offered.contains(&name.as_str()), "{name}: {offered:?}");
    }
    assert!(
        !offered.iter().any(|n| n
            .to_ascii_lowercase()
            .replace('_', "")
            .contains("websearch")),
        "{offered:?}"
    );
    assert!(!plain[0]["tools"].to_string().contains("web_search"));
}

#[tokio::test]
async fn codex_exec_plain_answer() {
    tokio::time::timeout(Duration::from_secs(110), codex_plain_inner())
        .await
        .expect("codex_exec_plain_answer timed out");
}

/// The command Claude asks Codex to run: it reads a file, then tries to write one, which Codex's
/// read-only sandbox (bubblewrap, bundled in the npm package, and seccomp) must refuse.
const SHELL_CALL: &str = r#"{"cmd":"cat note.txt; touch probe.txt"}"#;

async fn codex_shell_inner() {
    let Some(s) = codex_setup().await else { return };
    let dir = s.workdir.path();
    std::fs::write(dir.join("note.txt"), "gateway-ok-123\n").unwrap();
    let prompt = format!("#codex-shell What does note.txt say? [[tool:exec_command:{SHELL_CALL}]]");
    let run = codex_exec(&s.codex, &s.gw, dir, &prompt).await;
    let why = run.describe(&s.gw);
    assert!(run.out.status.success(), "{why}");

    // Codex ran the command in its sandbox: the read worked, the write was refused. (Its
    // `command_execution` events are not checked: `codex exec --json` leaves them out when the
    // command ends within milliseconds.)
    assert!(run.last_message.contains("Read-only file system"), "{why}");
    assert!(
        !dir.join("probe.txt").exists(),
        "the sandbox let a write through"
    );
    // Claude's answer quotes the output Codex sent back.
    assert!(run.last_message.starts_with("Tool said: "), "{why}");
    assert!(run.last_message.contains("gateway-ok-123"), "{why}");

    // Natively: Codex's exec_command offered as a tool, its call a tool_use, its
    // function_call_output the tool_result.
    let requests = s.api.requests();
    let (input, _) = round_trip(&requests, "#codex-shell", "exec_command", "gateway-ok-123");
    assert_eq!(input, &serde_json::from_str::<Value>(SHELL_CALL).unwrap());
    round_trip(
        &requests,
        "#codex-shell",
        "exec_command",
        "Read-only file system",
    );
    let offered = requests[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "mcp__gw__exec_command")
        .unwrap();
    assert_eq!(offered["input_schema"]["required"], json!(["cmd"]));
}

#[tokio::test]
async fn codex_exec_shell_round_trip() {
    tokio::time::timeout(Duration::from_secs(110), codex_shell_inner())
        .await
        .expect("codex_exec_shell_round_trip timed out");
}

/// The agent Claude asks Codex to close: none of that id exists, so Codex's own `close_agent`
/// handler answers that it was not found.
const NO_AGENT: &str = "00000000-0000-4000-8000-000000000042";

async fn codex_namespaced_inner() {
    let Some(s) = codex_setup().await else { return };
    let call = json!({"target": NO_AGENT});
    // The fake API calls the offered tool whose name ends in `__close_agent`.
    let prompt = format!("#codex-ns Close that agent [[tool:close_agent:{call}]]");
    let run = codex_exec(&s.codex, &s.gw, s.workdir.path(), &prompt).await;
    let why = run.describe(&s.gw);
    assert!(run.out.status.success(), "{why}");
    // Codex took the call for its namespaced subagent tool (it came as a `function_call` with
    // `namespace: "multi_agent_v1"` and `name: "close_agent"`) and ran its handler.
    let not_found = format!("agent with id {NO_AGENT} not found");
    assert_eq!(run.last_message, format!("Tool said: {not_found}"), "{why}");
    // Codex sent the call back with its namespace: replayed under the combined name, its
    // output the tool_result.
    let requests = s.api.requests();
    let (input, _) = round_trip(
        &requests,
        "#codex-ns",
        "multi_agent_v1__close_agent",
        &not_found,
    );
    assert_eq!(input, &call);
}

#[tokio::test]
async fn codex_exec_namespaced_subagent_call() {
    tokio::time::timeout(Duration::from_secs(110), codex_namespaced_inner())
        .await
        .expect("codex_exec_namespaced_subagent_call timed out");
}
