//! The concrete model ids behind the CLI's aliases (`sonnet` → `claude-sonnet-5-5`), learned
//! from the CLI itself so they follow it when it is upgraded: one short-lived process is asked
//! `initialize` (PROTOCOL.md §6.2; its response lists `models[]` with `resolvedModel`, no API
//! call is made) and closed. The engine does this once in the background at startup; `doctor`
//! does it on demand.

use std::time::Duration;

use serde_json::{Value, json};

use super::argv::SpawnSpec;
use super::launch::Launcher;
use super::lines::CliLine;
use super::process::ClaudeProcess;

/// How long the CLI may take to answer `initialize` (it takes under a second).
pub const DISCOVER_TIMEOUT: Duration = Duration::from_secs(20);

const REQUEST_ID: &str = "models_1";

/// The `claude-*` ids the CLI's models resolve to, sorted, without duplicates.
pub async fn discover(launcher: &Launcher, bare: bool) -> Result<Vec<String>, String> {
    let spec = SpawnSpec {
        model: "sonnet".into(),
        bare,
        effort: None,
    };
    let mut process = ClaudeProcess::spawn(&launcher.launch(&spec)).map_err(|e| e.to_string())?;
    let request = json!({
        "type": "control_request",
        "request_id": REQUEST_ID,
        "request": {"subtype": "initialize"},
    });
    let answer = async {
        process
            .write_line(&request.to_string())
            .await
            .map_err(|e| format!("cannot write to the CLI: {e}"))?;
        while let Some(line) = process.next_line().await {
            if let Some(CliLine::ControlResponse { response }) = CliLine::parse(&line)
                && response["request_id"] == REQUEST_ID
            {
                return Ok(model_ids(&response));
            }
        }
        Err(format!(
            "the CLI exited before answering initialize: {}",
            process.exit_report().await
        ))
    };
    let ids = tokio::time::timeout(DISCOVER_TIMEOUT, answer)
        .await
        .map_err(|_| {
            format!(
                "the CLI did not answer initialize within {} s",
                DISCOVER_TIMEOUT.as_secs()
            )
        })??;
    // Dropping the process kills its group.
    drop(process);
    if ids.is_empty() {
        return Err("the CLI's initialize response lists no claude-* model".into());
    }
    Ok(ids)
}

/// `response.models[].resolvedModel` of an `initialize` control response, `claude-*` ids only.
pub fn model_ids(control_response: &Value) -> Vec<String> {
    let mut ids: Vec<String> = control_response["response"]["models"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|m| m["resolvedModel"].as_str())
        .filter(|id| crate::chat::models::is_claude_id(id))
        .map(str::to_string)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolved_models_are_read_from_initialize() {
        // Shape of the real CLI 2.1.330 (PROTOCOL.md §6.2, run 10a).
        let response = json!({"subtype": "success", "request_id": "models_1", "response": {
            "commands": [],
            "models": [
                {"value": "default", "resolvedModel": "claude-opus-5-5", "displayName": "Default"},
                {"value": "opus", "resolvedModel": "claude-opus-5-5"},
                {"value": "sonnet", "resolvedModel": "claude-sonnet-5-5"},
                {"value": "haiku", "resolvedModel": "claude-haiku-5-5"},
                {"value": "odd", "resolvedModel": 7},
                {"value": "custom", "resolvedModel": "my-proxy-model"},
                {"value": "none"}
            ]
        }});
        assert_eq!(
            model_ids(&response),
            ["claude-haiku-5-5", "claude-opus-5-5", "claude-sonnet-5-5"]
        );
        assert!(model_ids(&json!({"response": {"models": "x"}})).is_empty());
        assert!(model_ids(&json!(null)).is_empty());
    }
}
