//! One turn of the CLI as a pure state machine: stream-json lines in, gateway outputs out
//! (started, text, finished with usage, failed). It decides where a turn ends (the `result`
//! line, a stop sequence, the API's `max_tokens`), skips the `num_turns:0` results that replayed
//! history produces, and maps the CLI's errors onto `ChatError`. No I/O, so every case is
//! unit-tested with real lines.

use crate::chat::ChatError;
use crate::chat::stop::{StopMatcher, StopOutcome};
use crate::chat::types::{FinishReason, Usage};

use super::lines::{ApiUsage, BlockDelta, CliLine, ResultLine, StreamEvent};

#[derive(Debug, Clone, PartialEq)]
pub enum TurnOutput {
    /// The API accepted the request and the answer begins.
    Started,
    Text(String),
    Finished {
        reason: FinishReason,
        usage: Usage,
    },
    Failed(ChatError),
}

#[derive(Debug)]
pub struct TurnState {
    /// `result` lines of replayed (`shouldQuery:false`) history still to come.
    skip_results: usize,
    started: bool,
    done: bool,
    stop: StopMatcher,
    /// Usage summed from the stream events, for turns cut before their `result`.
    stream_usage: ApiTotals,
    /// Output produced so far, for an estimate when the API reported no output count.
    emitted: String,
    last_retry: Option<(Option<u16>, Option<u64>)>,
}

#[derive(Debug, Default, Clone, Copy)]
struct ApiTotals {
    input: u64,
    cache_read: u64,
    cache_creation: u64,
    output: u64,
    output_reported: bool,
}

impl TurnState {
    pub fn new(history_user_lines: usize, stop: Vec<String>) -> Self {
        TurnState {
            skip_results: history_user_lines,
            started: false,
            done: false,
            stop: StopMatcher::new(stop),
            stream_usage: ApiTotals::default(),
            emitted: String::new(),
            last_retry: None,
        }
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// How many replayed history lines have not been acknowledged by their `result` yet.
    pub fn unacknowledged_history(&self) -> usize {
        self.skip_results
    }

    pub fn push(&mut self, line: CliLine) -> Vec<TurnOutput> {
        if self.done {
            return Vec::new();
        }
        let mut out = Vec::new();
        match line {
            CliLine::System(sys) if sys.subtype == "api_retry" => {
                self.last_retry = Some((sys.error_status, sys.retry_delay_ms));
            }
            CliLine::StreamEvent { event } => self.on_event(event, &mut out),
            CliLine::Result(result) => self.on_result(result, &mut out),
            CliLine::System(_)
            | CliLine::Assistant(_)
            | CliLine::ControlRequest { .. }
            | CliLine::ControlResponse { .. }
            | CliLine::Other => {}
        }
        out
    }

    fn on_event(&mut self, event: StreamEvent, out: &mut Vec<TurnOutput>) {
        match event {
            StreamEvent::MessageStart { message } => {
                if let Some(usage) = message.usage {
                    self.stream_usage.input += usage.input_tokens.unwrap_or(0);
                    self.stream_usage.cache_read += usage.cache_read_input_tokens.unwrap_or(0);
                    self.stream_usage.cache_creation +=
                        usage.cache_creation_input_tokens.unwrap_or(0);
                }
                if !self.started {
                    self.started = true;
                    out.push(TurnOutput::Started);
                }
            }
            StreamEvent::ContentBlockDelta {
                delta: BlockDelta::TextDelta { text },
                ..
            } => match self.stop.push(&text) {
                StopOutcome::Continue(text) => self.emit(text, out),
                StopOutcome::Stopped(text) => {
                    self.emit(text, out);
                    self.finish_from_stream(FinishReason::Stop, out);
                }
            },
            StreamEvent::MessageDelta { delta, usage } => {
                if let Some(output) = usage.and_then(|u| u.output_tokens) {
                    self.stream_usage.output += output;
                    self.stream_usage.output_reported = true;
                }
                // The CLI would answer a max_tokens cut with automatic continuations
                // (PROTOCOL.md §16.6); the client's limit is reached, so the turn ends here.
                if delta.stop_reason.as_deref() == Some("max_tokens") {
                    let held = self.stop.finish();
                    self.emit(held, out);
                    self.finish_from_stream(FinishReason::Length, out);
                }
            }
            StreamEvent::ContentBlockStart { .. }
            | StreamEvent::ContentBlockDelta { .. }
            | StreamEvent::ContentBlockStop { .. }
            | StreamEvent::MessageStop {}
            | StreamEvent::Other => {}
        }
    }

    fn on_result(&mut self, result: ResultLine, out: &mut Vec<TurnOutput>) {
        if self.skip_results > 0 && result.num_turns == 0 && !result.is_error {
            self.skip_results -= 1;
            return;
        }
        self.done = true;
        if result.is_error {
            out.push(TurnOutput::Failed(result_error(&result, self.last_retry)));
            return;
        }
        let held = self.stop.finish();
        self.emit(held, out);
        let reason = match result.stop_reason.as_deref() {
            Some("max_tokens") => FinishReason::Length,
            Some("refusal") => FinishReason::ContentFilter,
            _ => FinishReason::Stop,
        };
        let mut usage = result
            .usage
            .as_ref()
            .map(usage_from_api)
            .unwrap_or_else(|| self.usage_from_stream());
        usage.cost_usd = result.total_cost_usd.unwrap_or(0.0);
        out.push(TurnOutput::Finished { reason, usage });
    }

    fn emit(&mut self, text: String, out: &mut Vec<TurnOutput>) {
        if !text.is_empty() {
            self.emitted.push_str(&text);
            out.push(TurnOutput::Text(text));
        }
    }

    fn finish_from_stream(&mut self, reason: FinishReason, out: &mut Vec<TurnOutput>) {
        self.done = true;
        out.push(TurnOutput::Finished {
            reason,
            usage: self.usage_from_stream(),
        });
    }

    /// Real input numbers from `message_start`; the output count from `message_delta` when the
    /// API sent one, else a tiktoken estimate of what was emitted, labelled as such.
    fn usage_from_stream(&self) -> Usage {
        let t = self.stream_usage;
        let (completion, estimated) = if t.output_reported {
            (t.output, false)
        } else {
            (crate::chat::tokens::count(&self.emitted) as u64, true)
        };
        Usage {
            prompt_tokens: clamp(t.input + t.cache_read + t.cache_creation),
            completion_tokens: clamp(completion),
            cached_tokens: clamp(t.cache_read),
            reasoning_tokens: 0,
            estimated,
            cost_usd: 0.0,
        }
    }
}

fn clamp(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// `result.usage` in OpenAI terms: prompt tokens include cache reads and writes.
pub fn usage_from_api(u: &ApiUsage) -> Usage {
    let cache_read = u.cache_read_input_tokens.unwrap_or(0);
    Usage {
        prompt_tokens: clamp(
            u.input_tokens.unwrap_or(0) + cache_read + u.cache_creation_input_tokens.unwrap_or(0),
        ),
        completion_tokens: clamp(u.output_tokens.unwrap_or(0)),
        cached_tokens: clamp(cache_read),
        reasoning_tokens: clamp(
            u.output_tokens_details
                .as_ref()
                .and_then(|d| d.thinking_tokens)
                .unwrap_or(0),
        ),
        estimated: false,
        cost_usd: 0.0,
    }
}

/// Maps an error `result` (PROTOCOL.md §4.4, §10) onto the gateway's error.
fn result_error(result: &ResultLine, last_retry: Option<(Option<u16>, Option<u64>)>) -> ChatError {
    let text = result
        .result
        .clone()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| result.errors.join("; "));
    let text = if text.is_empty() {
        format!("the turn ended with `{}`", result.subtype)
    } else {
        text
    };
    match result.api_error_status {
        Some(429) => ChatError::RateLimited {
            message: format!("Anthropic rate-limited the request: {text}"),
            retry_after: last_retry
                .filter(|(status, _)| *status == Some(429))
                .and_then(|(_, delay)| delay)
                .map(|ms| ms.div_ceil(1000).max(1)),
        },
        Some(status @ (401 | 403)) => upstream_auth(status.to_string(), &text),
        Some(529) => ChatError::Overloaded {
            message: format!("Anthropic is overloaded: {text}"),
        },
        Some(status) => ChatError::Upstream {
            message: format!("The Anthropic API failed (HTTP {status}): {text}"),
        },
        None if text.contains("Not logged in") || text.contains("/login") => {
            upstream_auth("no credentials".into(), &text)
        }
        None if result.terminal_reason.as_deref() == Some("api_error") => ChatError::Upstream {
            message: format!("The Anthropic API could not be reached: {text}"),
        },
        None => ChatError::cli_failed(format!(
            "The claude CLI ended the turn with an error ({}): {text}",
            result.subtype
        )),
    }
}

fn upstream_auth(status: String, text: &str) -> ChatError {
    ChatError::UpstreamAuth {
        message: format!(
            "The gateway's claude CLI is not authenticated with Anthropic ({status}: {text}). \
             The operator must log in with `claude` or set ANTHROPIC_API_KEY for the gateway."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(state: &mut TurnState, lines: &[&str]) -> Vec<TurnOutput> {
        lines
            .iter()
            .filter_map(|l| CliLine::parse(l))
            .flat_map(|l| state.push(l))
            .collect()
    }

    fn run_file(name: &str, stop: Vec<String>) -> Vec<TurnOutput> {
        let path = format!(
            "{}/tests/fixtures/cli-runs/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        feed(&mut TurnState::new(0, stop), &lines)
    }

    fn text_of(outputs: &[TurnOutput]) -> String {
        outputs
            .iter()
            .filter_map(|o| match o {
                TurnOutput::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn real_partial_run_streams_text_then_finishes_with_usage() {
        let out = run_file("04-stream-json-partial.out", vec![]);
        assert_eq!(out[0], TurnOutput::Started);
        assert_eq!(
            text_of(&out),
            "Hello! This is a canned reply from the mock Anthropic API."
        );
        let Some(TurnOutput::Finished { reason, usage }) = out.last() else {
            panic!("{out:?}")
        };
        assert_eq!(*reason, FinishReason::Stop);
        assert_eq!(usage.completion_tokens, 22);
        assert!(usage.prompt_tokens > 0);
        assert!(!usage.estimated);
        assert!(usage.cost_usd > 0.0);
    }

    #[test]
    fn stop_sequence_ends_the_turn_early_with_an_estimate() {
        let out = run_file("04-stream-json-partial.out", vec!["canned".into()]);
        assert_eq!(text_of(&out), "Hello! This is a ");
        let Some(TurnOutput::Finished { reason, usage }) = out.last() else {
            panic!("{out:?}")
        };
        assert_eq!(*reason, FinishReason::Stop);
        assert!(usage.estimated);
        assert!(usage.completion_tokens > 0);
    }

    #[test]
    fn api_errors_map_to_gateway_errors() {
        let cases = [
            ("11a-http401-stream-json.out", "upstream_auth_failed"),
            ("11b-http429-stream-json.out", "rate_limit_exceeded"),
            ("11c-http500-stream-json.out", "upstream_error"),
            ("11d-http529-stream-json.out", "overloaded"),
        ];
        for (file, code) in cases {
            let out = run_file(file, vec![]);
            let Some(TurnOutput::Failed(err)) = out.last() else {
                panic!("{file}: {out:?}")
            };
            assert_eq!(err.code(), Some(code), "{file}");
            assert!(
                !out.iter().any(|o| matches!(o, TurnOutput::Text(_))),
                "{file}"
            );
        }
    }

    #[test]
    fn rate_limit_carries_the_cli_retry_delay() {
        let mut state = TurnState::new(0, vec![]);
        let out = feed(
            &mut state,
            &[
                r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":1,"retry_delay_ms":2500,"error_status":429}"#,
                r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":429,"result":"API Error: Request rejected (429)","num_turns":1}"#,
            ],
        );
        assert_eq!(
            out,
            vec![TurnOutput::Failed(ChatError::RateLimited {
                message: "Anthropic rate-limited the request: API Error: Request rejected (429)"
                    .into(),
                retry_after: Some(3)
            })]
        );
    }

    #[test]
    fn replayed_history_results_are_skipped() {
        let mut state = TurnState::new(2, vec![]);
        let skipped =
            r#"{"type":"result","subtype":"success","is_error":false,"num_turns":0,"result":""}"#;
        assert!(feed(&mut state, &[skipped, skipped]).is_empty());
        assert!(!state.is_done());
        let out = feed(
            &mut state,
            &[
                r#"{"type":"stream_event","event":{"type":"message_start","message":{"usage":{"input_tokens":10}}}}"#,
                r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Ada"}}}"#,
                r#"{"type":"result","subtype":"success","is_error":false,"num_turns":1,"result":"Ada","stop_reason":"end_turn","usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":1}}"#,
            ],
        );
        assert_eq!(out[0], TurnOutput::Started);
        assert_eq!(out[1], TurnOutput::Text("Ada".into()));
        let TurnOutput::Finished { usage, .. } = &out[2] else {
            panic!()
        };
        assert_eq!((usage.prompt_tokens, usage.cached_tokens), (15, 5));
    }

    #[test]
    fn max_tokens_cut_finishes_with_length_before_the_cli_continues() {
        let mut state = TurnState::new(0, vec![]);
        let out = feed(
            &mut state,
            &[
                r#"{"type":"stream_event","event":{"type":"message_start","message":{"usage":{"input_tokens":7}}}}"#,
                r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"one two"}}}"#,
                r#"{"type":"stream_event","event":{"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":2}}}"#,
            ],
        );
        assert_eq!(
            out.last(),
            Some(&TurnOutput::Finished {
                reason: FinishReason::Length,
                usage: Usage {
                    prompt_tokens: 7,
                    completion_tokens: 2,
                    ..Usage::default()
                }
            })
        );
        assert!(state.is_done());
    }

    #[test]
    fn not_logged_in_is_an_auth_error() {
        let mut state = TurnState::new(0, vec![]);
        let out = feed(
            &mut state,
            &[
                r#"{"type":"result","subtype":"success","is_error":true,"result":"Not logged in · Please run /login","num_turns":1}"#,
            ],
        );
        let [TurnOutput::Failed(err)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(err.code(), Some("upstream_auth_failed"));
    }
}
