//! Typed stream-json output of the `claude` CLI (PROTOCOL.md §4): only the fields the gateway
//! uses, every other field and every unknown line type ignored, so a newer CLI that adds things
//! does not break us.

use serde::Deserialize;
use serde_json::Value;

/// One stdout line of the CLI.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CliLine {
    System(SystemLine),
    StreamEvent {
        event: StreamEvent,
    },
    Assistant(AssistantLine),
    Result(ResultLine),
    ControlRequest {
        request_id: String,
        request: Value,
    },
    ControlResponse {
        response: Value,
    },
    /// The account's usage windows changed (subscription logins only; `ratelimit.rs`).
    RateLimitEvent {
        rate_limit_info: super::ratelimit::RateLimitInfo,
    },
    #[serde(other)]
    Other,
}

impl CliLine {
    /// Parses one line; `None` for anything that is not a JSON object we understand.
    pub fn parse(line: &str) -> Option<CliLine> {
        serde_json::from_str(line).ok()
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct SystemLine {
    #[serde(default)]
    pub subtype: String,
    /// `api_retry`: HTTP status of the failed attempt.
    #[serde(default)]
    pub error_status: Option<u16>,
    /// `api_retry`: how long the CLI waits before the next attempt.
    #[serde(default)]
    pub retry_delay_ms: Option<u64>,
    /// `init`: the resolved model.
    #[serde(default)]
    pub model: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct AssistantLine {
    pub message: Value,
    #[serde(default)]
    pub is_api_error_message: bool,
}

/// A raw Messages-API SSE event, forwarded by `--include-partial-messages`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    MessageStart {
        message: StartedMessage,
    },
    ContentBlockStart {
        index: u32,
        content_block: ContentBlock,
    },
    ContentBlockDelta {
        index: u32,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: Option<ApiUsage>,
    },
    MessageStop {},
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct StartedMessage {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub usage: Option<ApiUsage>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    Text {},
    Thinking {},
    /// Encrypted thinking: the whole block is in its start (PROTOCOL.md §4.5; the CLI
    /// 2.1.330 forwards it as the API sent it).
    RedactedThinking {
        #[serde(default)]
        data: String,
    },
    ToolUse {
        id: String,
        name: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    ThinkingDelta {
        #[serde(default)]
        thinking: String,
    },
    SignatureDelta {
        #[serde(default)]
        signature: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct MessageDeltaBody {
    #[serde(default)]
    pub stop_reason: Option<String>,
}

/// Anthropic usage numbers, as on `message_start`, `message_delta` and `result`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct ApiUsage {
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens_details: Option<OutputTokensDetails>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct OutputTokensDetails {
    #[serde(default)]
    pub thinking_tokens: Option<u64>,
}

/// The end of a turn.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ResultLine {
    #[serde(default)]
    pub subtype: String,
    #[serde(default)]
    pub is_error: bool,
    #[serde(default)]
    pub num_turns: u32,
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub terminal_reason: Option<String>,
    #[serde(default)]
    pub api_error_status: Option<u16>,
    #[serde(default)]
    pub errors: Vec<String>,
    #[serde(default)]
    pub usage: Option<ApiUsage>,
    #[serde(default)]
    pub total_cost_usd: Option<f64>,
    #[serde(default)]
    pub structured_output: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cli-runs");

    fn lines_of(name: &str) -> Vec<String> {
        let path = format!("{RUNS}/{name}");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn every_real_line_parses_and_nothing_is_lost() {
        let dir = std::fs::read_dir(RUNS).unwrap();
        let mut seen = 0;
        for entry in dir {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("out") {
                continue;
            }
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                if !line.starts_with('{') {
                    continue;
                }
                let parsed = CliLine::parse(line);
                assert!(parsed.is_some(), "{}: {line}", path.display());
                seen += 1;
            }
        }
        assert!(seen > 100, "only {seen} lines checked");
    }

    #[test]
    fn partial_messages_run_has_deltas_and_a_result() {
        let lines: Vec<CliLine> = lines_of("04-stream-json-partial.out")
            .iter()
            .filter_map(|l| CliLine::parse(l))
            .collect();
        let text: String = lines
            .iter()
            .filter_map(|l| match l {
                CliLine::StreamEvent {
                    event:
                        StreamEvent::ContentBlockDelta {
                            delta: BlockDelta::TextDelta { text },
                            ..
                        },
                } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        let result = lines.iter().find_map(|l| match l {
            CliLine::Result(r) => Some(r),
            _ => None,
        });
        let result = result.unwrap();
        assert_eq!(result.result.as_deref(), Some(text.as_str()));
        assert!(!result.is_error);
        assert_eq!(result.usage.as_ref().unwrap().output_tokens, Some(22));
    }

    #[test]
    fn api_error_result_is_recognised() {
        let result = lines_of("11b-http429-stream-json.out")
            .iter()
            .filter_map(|l| CliLine::parse(l))
            .find_map(|l| match l {
                CliLine::Result(r) => Some(r),
                _ => None,
            })
            .unwrap();
        assert!(result.is_error);
        assert_eq!(result.subtype, "success");
        assert_eq!(result.api_error_status, Some(429));
    }

    #[test]
    fn garbage_is_none_and_unknown_types_are_other() {
        assert_eq!(CliLine::parse("not json"), None);
        assert_eq!(
            CliLine::parse(r#"{"type":"something_new","x":1}"#),
            Some(CliLine::Other)
        );
        assert_eq!(
            CliLine::parse(r#"{"type":"stream_event","event":{"type":"ping"}}"#),
            Some(CliLine::StreamEvent {
                event: StreamEvent::Other
            })
        );
    }
}
