//! One turn of the CLI as a pure state machine: stream-json lines in, gateway outputs out
//! (started, text, tool-call pieces, lines to write back on stdin, finished with usage, failed).
//! It decides where a turn ends (the `result` line, a stop sequence, the API's `max_tokens`, a
//! complete message of tool calls), answers the control channel (`control.rs`), checks
//! structured output against its schema, enforces `tool_choice`, skips the `num_turns:0`
//! results that replayed history produces, and maps the CLI's errors onto `ChatError`. No I/O,
//! so every case is unit-tested with real or hand-written lines.

use std::collections::HashMap;

use crate::chat::ChatError;
use crate::chat::stop::{StopMatcher, StopOutcome};
use crate::chat::types::{FinishReason, ReasoningDelta, Tool, ToolCallDelta, Usage};
use crate::chat::validate::{OutputMode, RequiredTool};

use super::control::{self, ControlAction, STRUCTURED_OUTPUT, ToolAnswers, client_tool_name};
use super::errors::result_error;
use super::input::{INIT_ID, tool_nudge};
use super::lines::{ApiUsage, BlockDelta, CliLine, ContentBlock, ResultLine, StreamEvent};

#[derive(Debug, Clone, PartialEq)]
pub enum TurnOutput {
    /// The API accepted the request and the answer begins.
    Started,
    Text(String),
    ToolCall(ToolCallDelta),
    /// A piece of a thinking block (text, then its signature).
    Reasoning(ReasoningDelta),
    /// A line the host must write on the CLI's stdin (control answers, a nudge).
    Write(String),
    Finished {
        reason: FinishReason,
        usage: Usage,
    },
    Failed(ChatError),
}

/// What a turn needs to know about its request.
#[derive(Debug, Clone, Default)]
pub struct TurnConfig {
    /// Replayed user lines whose `num_turns:0` results come before the real one.
    pub history_user_lines: usize,
    pub stop: Vec<String>,
    /// The client's functions, served by the gateway's MCP server.
    pub tools: Vec<Tool>,
    pub parallel_tools: bool,
    pub required_tool: Option<RequiredTool>,
    pub output: Option<OutputMode>,
    /// The client's results for the calls a continued process stopped at.
    pub answers: ToolAnswers,
    /// What the process's CLI had counted as spent before this turn (its `total_cost_usd`
    /// is cumulative).
    pub spent_usd: f64,
    /// The turn continues one that began in an earlier request (at its tool calls): the
    /// `result`'s usage would count that request's API call again, so the usage comes from
    /// this turn's own stream events.
    pub continued: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum BlockKind {
    ClientTool { call: u32 },
    Structured,
    Ignored,
}

#[derive(Debug)]
pub struct TurnState {
    cfg: TurnConfig,
    /// `result` lines of replayed history still to come.
    skip_results: usize,
    started: bool,
    done: bool,
    stop: StopMatcher,
    /// Content blocks of the current API message that are not plain text, by block index.
    blocks: HashMap<u32, BlockKind>,
    tool_calls: u32,
    structured: Option<String>,
    structured_done: bool,
    nudged: bool,
    ended_on_result: bool,
    /// Usage summed from the stream events, for turns cut before their `result`.
    stream_usage: ApiTotals,
    /// Output produced so far, for an estimate when the API reported no output count.
    emitted: String,
    last_retry: Option<(Option<u16>, Option<u64>)>,
    /// Thinking that came before a withheld answer began; it goes out when the answer does,
    /// so thinking alone does not commit a JSON or required-tool answer.
    held_reasoning: Vec<ReasoningDelta>,
    /// The model of the API message being streamed (its `message_start`).
    model: Option<String>,
    /// The client calls of the turn: id, name and the arguments as streamed.
    calls: Vec<(String, String, String)>,
    /// The turn ended at the end of an API message of client calls (the CLI then waits at the
    /// first call's permission prompt, and can be continued by the results).
    at_tool_calls: bool,
    /// The CLI's `total_cost_usd` at this turn's `result`.
    spent_usd: f64,
    /// Permission prompts for client calls, unanswered.
    held: Vec<(String, serde_json::Value)>,
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
    pub fn new(cfg: TurnConfig) -> Self {
        TurnState {
            skip_results: cfg.history_user_lines,
            stop: StopMatcher::new(cfg.stop.clone()),
            cfg,
            started: false,
            done: false,
            blocks: HashMap::new(),
            tool_calls: 0,
            structured: None,
            structured_done: false,
            nudged: false,
            ended_on_result: false,
            stream_usage: ApiTotals::default(),
            emitted: String::new(),
            last_retry: None,
            held_reasoning: Vec::new(),
            model: None,
            calls: Vec::new(),
            at_tool_calls: false,
            spent_usd: 0.0,
            held: Vec::new(),
        }
    }

    /// The permission prompts for client calls left unanswered (request id, request), for a
    /// continuation to answer.
    pub fn take_held(&mut self) -> Vec<(String, serde_json::Value)> {
        std::mem::take(&mut self.held)
    }

    /// The client calls the turn ended at, when it ended at a complete message of them: id,
    /// name and arguments.
    pub fn pending_calls(&self) -> Option<&[(String, String, String)]> {
        self.at_tool_calls.then_some(self.calls.as_slice())
    }

    /// Whether Claude was reminded to call a tool (a user message the client never saw).
    pub fn nudged(&self) -> bool {
        self.nudged
    }

    /// What the CLI has counted as spent in this process, as of this turn's end.
    pub fn spent_usd(&self) -> f64 {
        self.spent_usd.max(self.cfg.spent_usd)
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether the turn ended on the CLI's own `result` (the process is then idle and keeps a
    /// consistent conversation), not cut short by the gateway.
    pub fn ended_on_result(&self) -> bool {
        self.ended_on_result
    }

    /// All text emitted so far.
    pub fn emitted_text(&self) -> &str {
        &self.emitted
    }

    /// How many replayed history lines have not been acknowledged by their `result` yet.
    pub fn unacknowledged_history(&self) -> usize {
        self.skip_results
    }

    /// Text is withheld when the answer must be JSON or a tool call.
    fn text_visible(&self) -> bool {
        self.cfg.output.is_none() && self.cfg.required_tool.is_none()
    }

    pub fn push(&mut self, line: CliLine) -> Vec<TurnOutput> {
        let mut out = Vec::new();
        match line {
            CliLine::ControlRequest {
                request_id,
                request,
            } => {
                // Answered even after the turn is done: the CLI may still be waiting on one.
                match control::handle(
                    &request_id,
                    &request,
                    &self.cfg.tools,
                    &mut self.cfg.answers,
                ) {
                    ControlAction::Reply(line) => out.push(TurnOutput::Write(line)),
                    // A client call's permission prompt: kept, to be answered if the process is
                    // continued with the call's result (it may come before the turn ends).
                    ControlAction::Hold => self.held.push((request_id, request)),
                }
            }
            _ if self.done => {}
            CliLine::ControlResponse { response } => self.on_control_response(&response, &mut out),
            CliLine::System(sys) if sys.subtype == "api_retry" => {
                self.last_retry = Some((sys.error_status, sys.retry_delay_ms));
            }
            CliLine::StreamEvent { event } => self.on_event(event, &mut out),
            CliLine::Result(result) => self.on_result(result, &mut out),
            CliLine::System(_)
            | CliLine::Assistant(_)
            | CliLine::RateLimitEvent { .. }
            | CliLine::Other => {}
        }
        out
    }

    fn on_control_response(&mut self, response: &serde_json::Value, out: &mut Vec<TurnOutput>) {
        if response.get("request_id").and_then(|v| v.as_str()) != Some(INIT_ID) {
            return;
        }
        if response.get("subtype").and_then(|v| v.as_str()) == Some("error") {
            let error = response.get("error").and_then(|v| v.as_str()).unwrap_or("");
            self.fail(
                ChatError::cli_failed(format!("The claude CLI refused its configuration: {error}")),
                out,
            );
        }
    }

    fn on_event(&mut self, event: StreamEvent, out: &mut Vec<TurnOutput>) {
        match event {
            StreamEvent::MessageStart { message } => {
                self.blocks.clear();
                if message.model.is_some() {
                    self.model.clone_from(&message.model);
                }
                if let Some(usage) = message.usage {
                    self.stream_usage.input += usage.input_tokens.unwrap_or(0);
                    self.stream_usage.cache_read += usage.cache_read_input_tokens.unwrap_or(0);
                    self.stream_usage.cache_creation +=
                        usage.cache_creation_input_tokens.unwrap_or(0);
                }
                // When text is withheld (JSON or a required tool), the answer begins with its
                // first visible piece, so a failure before it is still a real error status.
                if self.text_visible() {
                    self.begin(out);
                }
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block: ContentBlock::ToolUse { id, name },
            } => self.on_tool_start(index, id, &name, out),
            StreamEvent::ContentBlockStart {
                content_block: ContentBlock::RedactedThinking { data },
                ..
            } if !data.is_empty() => {
                let model = self.model.clone().unwrap_or_default();
                self.on_reasoning(ReasoningDelta::Redacted { data, model }, out);
            }
            StreamEvent::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } if self.text_visible() => self.on_text(&text, out),
                BlockDelta::InputJsonDelta { partial_json } => {
                    self.on_tool_input(index, partial_json, out);
                }
                BlockDelta::ThinkingDelta { thinking } if !thinking.is_empty() => {
                    self.on_reasoning(ReasoningDelta::Text(thinking), out);
                }
                BlockDelta::SignatureDelta { signature } if !signature.is_empty() => {
                    let model = self.model.clone().unwrap_or_default();
                    self.on_reasoning(ReasoningDelta::Signature { signature, model }, out);
                }
                BlockDelta::TextDelta { .. }
                | BlockDelta::ThinkingDelta { .. }
                | BlockDelta::SignatureDelta { .. }
                | BlockDelta::Other => {}
            },
            StreamEvent::ContentBlockStop { index } => self.on_block_stop(index, out),
            StreamEvent::MessageDelta { delta, usage } => {
                if let Some(output) = usage.and_then(|u| u.output_tokens) {
                    self.stream_usage.output += output;
                    self.stream_usage.output_reported = true;
                }
                match delta.stop_reason.as_deref() {
                    // The CLI would answer a max_tokens cut with automatic continuations
                    // (PROTOCOL.md §16.6); the client's limit is reached, so the turn ends.
                    Some("max_tokens") => {
                        let (held, stopped) = self.stop.finish();
                        self.emit(held, out);
                        let reason =
                            stopped.map_or(FinishReason::Length, FinishReason::StopSequence);
                        self.finish_from_stream(reason, out);
                    }
                    // The message with the client's calls is complete: hand them over. The
                    // CLI is still waiting for a permission answer it never gets.
                    Some("tool_use") if self.tool_calls > 0 => {
                        self.at_tool_calls = !self.done;
                        self.finish_from_stream(FinishReason::ToolCalls, out);
                    }
                    _ => {}
                }
            }
            StreamEvent::ContentBlockStart { .. }
            | StreamEvent::MessageStop {}
            | StreamEvent::Other => {}
        }
    }

    fn on_reasoning(&mut self, delta: ReasoningDelta, out: &mut Vec<TurnOutput>) {
        if self.started {
            out.push(TurnOutput::Reasoning(delta));
        } else {
            self.held_reasoning.push(delta);
        }
    }

    fn on_text(&mut self, text: &str, out: &mut Vec<TurnOutput>) {
        match self.stop.push(text) {
            StopOutcome::Continue(text) => self.emit(text, out),
            StopOutcome::Stopped(text, which) => {
                self.emit(text, out);
                self.finish_from_stream(FinishReason::StopSequence(which), out);
            }
        }
    }

    fn on_tool_start(&mut self, index: u32, id: String, name: &str, out: &mut Vec<TurnOutput>) {
        let kind = if name == STRUCTURED_OUTPUT && self.cfg.output.is_some() {
            self.structured = Some(String::new());
            BlockKind::Structured
        } else if let Some(client) = client_tool_name(name) {
            if !self.cfg.parallel_tools && self.tool_calls >= 1 {
                BlockKind::Ignored
            } else {
                let call = self.tool_calls;
                self.tool_calls += 1;
                self.calls
                    .push((id.clone(), client.to_string(), String::new()));
                self.begin(out);
                out.push(TurnOutput::ToolCall(ToolCallDelta {
                    index: call,
                    id: Some(id),
                    name: Some(client.to_string()),
                    arguments: String::new(),
                }));
                BlockKind::ClientTool { call }
            }
        } else {
            BlockKind::Ignored
        };
        self.blocks.insert(index, kind);
    }

    fn on_tool_input(&mut self, index: u32, fragment: String, out: &mut Vec<TurnOutput>) {
        match self.blocks.get(&index) {
            Some(BlockKind::ClientTool { call }) => {
                if let Some((_, _, arguments)) = self.calls.get_mut(*call as usize) {
                    arguments.push_str(&fragment);
                }
                out.push(TurnOutput::ToolCall(ToolCallDelta {
                    index: *call,
                    id: None,
                    name: None,
                    arguments: fragment,
                }));
            }
            Some(BlockKind::Structured) => {
                if let Some(buf) = self.structured.as_mut() {
                    buf.push_str(&fragment);
                }
                // JSON output streams as it is produced; stop sequences do not cut JSON.
                self.emitted.push_str(&fragment);
                if !fragment.is_empty() {
                    self.begin(out);
                    out.push(TurnOutput::Text(fragment));
                }
            }
            Some(BlockKind::Ignored) | None => {}
        }
    }

    fn on_block_stop(&mut self, index: u32, out: &mut Vec<TurnOutput>) {
        match self.blocks.get(&index) {
            Some(BlockKind::ClientTool { .. }) if !self.cfg.parallel_tools => {
                self.finish_from_stream(FinishReason::ToolCalls, out);
            }
            Some(BlockKind::Structured) => {
                let text = self.structured.clone().unwrap_or_default();
                match self.check_structured(&text) {
                    Ok(()) => self.structured_done = true,
                    Err(err) => self.fail(err, out),
                }
            }
            Some(BlockKind::ClientTool { .. } | BlockKind::Ignored) | None => {}
        }
    }

    /// The structured output must be a JSON object valid against the requested schema.
    fn check_structured(&self, text: &str) -> Result<(), ChatError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ChatError::Upstream {
                message: format!("Claude's JSON output is not valid JSON ({e}): {text}"),
            })?;
        if !value.is_object() {
            return Err(ChatError::Upstream {
                message: format!("Claude's JSON output is not an object: {text}"),
            });
        }
        if let Some(OutputMode::JsonSchema { schema, .. }) = &self.cfg.output {
            let validator = jsonschema::validator_for(schema)
                .map_err(|e| ChatError::internal(format!("schema no longer compiles: {e}")))?;
            let problems: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| format!("{} at `{}`", e, e.instance_path()))
                .collect();
            if !problems.is_empty() {
                return Err(ChatError::Upstream {
                    message: format!(
                        "Claude's JSON output does not match the schema: {}",
                        problems.join("; ")
                    ),
                });
            }
        }
        Ok(())
    }

    fn on_result(&mut self, result: ResultLine, out: &mut Vec<TurnOutput>) {
        if self.skip_results > 0 && result.num_turns == 0 && !result.is_error {
            self.skip_results -= 1;
            return;
        }
        if result.is_error {
            self.fail(result_error(&result, self.last_retry), out);
            return;
        }
        if let Some(required) = self.cfg.required_tool.clone()
            && self.tool_calls == 0
        {
            if !self.nudged {
                // Enforced, not hoped for: one more turn in the same process, then an error.
                self.nudged = true;
                out.push(TurnOutput::Write(tool_nudge(&required)));
                return;
            }
            self.fail(
                ChatError::Upstream {
                    message: "Claude answered without calling a tool although `tool_choice` \
                              requires one, even after being reminded."
                        .into(),
                },
                out,
            );
            return;
        }
        if self.cfg.output.is_some() && !self.structured_done {
            self.fail(
                ChatError::Upstream {
                    message: "Claude did not produce the requested JSON output.".into(),
                },
                out,
            );
            return;
        }
        let (held, stopped) = self.stop.finish();
        self.emit(held, out);
        let reason = match (stopped, result.stop_reason.as_deref()) {
            _ if self.structured_done => FinishReason::Stop,
            (Some(which), _) => FinishReason::StopSequence(which),
            (None, Some("max_tokens")) => FinishReason::Length,
            (None, Some("refusal")) => FinishReason::ContentFilter,
            _ => FinishReason::Stop,
        };
        let mut usage = match result.usage.as_ref() {
            Some(usage) if !self.cfg.continued => usage_from_api(usage),
            _ => self.usage_from_stream(),
        };
        // The CLI's cost counts every turn of the process so far: this turn's is the growth.
        let total = result.total_cost_usd.unwrap_or(0.0);
        usage.cost_usd = (total - self.cfg.spent_usd).max(0.0);
        self.spent_usd = total;
        self.done = true;
        self.ended_on_result = true;
        out.push(TurnOutput::Finished { reason, usage });
    }

    /// Marks the answer as begun (once).
    fn begin(&mut self, out: &mut Vec<TurnOutput>) {
        if !self.started {
            self.started = true;
            out.push(TurnOutput::Started);
            out.extend(self.held_reasoning.drain(..).map(TurnOutput::Reasoning));
        }
    }

    fn fail(&mut self, err: ChatError, out: &mut Vec<TurnOutput>) {
        self.done = true;
        out.push(TurnOutput::Failed(err));
    }

    fn emit(&mut self, text: String, out: &mut Vec<TurnOutput>) {
        if !text.is_empty() {
            self.begin(out);
            self.emitted.push_str(&text);
            out.push(TurnOutput::Text(text));
        }
    }

    fn finish_from_stream(&mut self, reason: FinishReason, out: &mut Vec<TurnOutput>) {
        if self.done {
            return;
        }
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
            cache_creation_tokens: clamp(t.cache_creation),
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
        cache_creation_tokens: clamp(u.cache_creation_input_tokens.unwrap_or(0)),
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

#[cfg(test)]
#[path = "turn_tests.rs"]
mod tests;
