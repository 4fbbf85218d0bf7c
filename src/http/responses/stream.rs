//! The Responses stream as a pure state machine: domain `ChatEvent`s in, Responses events out.
//! `start` gives `response.created` and `response.in_progress`; each `push` opens, extends and
//! closes output items (a message with one `output_text` part, a function call, or a custom tool
//! call whose JSON arguments are decoded to its raw `input` as they stream; a call of a
//! namespaced tool carries its `namespace` and inner name, see `namespace.rs`); `finish`
//! closes what is open and ends with `response.completed` or `response.incomplete`, `fail` with
//! `response.failed`. Whatever happens, exactly one terminal event is produced and nothing after
//! it, and `sequence_number` counts every event from 0. The non-streaming answer is the final
//! `response()` of the same machine, so both forms cannot differ.

use crate::chat::ChatError;
use crate::chat::types::{ChatEvent, FinishReason, ToolCallDelta, Usage};

use super::custom::{InputDecoder, input_of};
use super::namespace::ToolNames;
use super::types::{
    CustomToolCallItem, EventPayload, FunctionCallItem, IncompleteDetails, InputTokensDetails,
    OutputItem, OutputMessage, OutputText, OutputTokensDetails, ResponseError, ResponseObject,
    ResponseUsage, StreamEvent,
};
pub use reasoning::ReasoningOptions;

/// Makes the ids of output items (`msg_…`, `fc_…`); injected so tests are deterministic.
pub type IdMaker = Box<dyn FnMut(&str) -> String + Send>;

/// A random id with `prefix`: `resp`, `msg`, `fc`.
pub fn random_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// The item being streamed now.
enum Open {
    /// A thinking block: its text so far, and its signature (with the model that wrote it)
    /// once the block is complete.
    Reasoning {
        thinking: String,
        signature: Option<(String, String)>,
    },
    Message {
        text: String,
    },
    Call {
        tool_index: u32,
    },
    /// A call of a custom tool: its JSON arguments decoded as they come, and what was sent.
    Custom {
        tool_index: u32,
        decoder: InputDecoder,
        streamed: String,
    },
}

pub struct ResponseStream {
    response: ResponseObject,
    next_seq: u64,
    open: Option<Open>,
    reason: Option<FinishReason>,
    usage: Usage,
    ended: bool,
    ids: IdMaker,
    /// The request's custom and namespaced tools, whose calls are shown as the client knows them.
    names: ToolNames,
    options: ReasoningOptions,
    /// Whether a reasoning item was produced.
    reasoned: bool,
}

impl ResponseStream {
    /// A machine for `response`, which is in progress and has no output yet.
    pub fn new(response: ResponseObject, ids: IdMaker) -> Self {
        ResponseStream {
            names: ToolNames::new(&response.tools),
            options: ReasoningOptions::default(),
            reasoned: false,
            response,
            next_seq: 0,
            open: None,
            reason: None,
            usage: Usage::default(),
            ended: false,
            ids,
        }
    }

    /// What the request asked of reasoning (nothing by default).
    pub fn with_reasoning(mut self, options: ReasoningOptions) -> Self {
        self.options = options;
        self
    }

    /// The response as it stands (the final one after `finish` or `fail`).
    pub fn response(&self) -> &ResponseObject {
        &self.response
    }

    /// Whether the terminal event has been produced.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// `response.created`, then `response.in_progress`.
    pub fn start(&mut self) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        let response = self.response.clone();
        self.emit(
            &mut out,
            EventPayload::Created {
                response: response.clone(),
            },
        );
        self.emit(&mut out, EventPayload::InProgress { response });
        out
    }

    pub fn push(&mut self, event: ChatEvent) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        match event {
            // The Responses API has one answer: other choices cannot be asked for (`n`).
            ChatEvent::Role { .. } => {}
            ChatEvent::Reasoning { index: 0, delta } => self.reasoning(delta, &mut out),
            ChatEvent::Reasoning { .. } => {}
            ChatEvent::Text { index: 0, text } if !text.is_empty() => self.text(text, &mut out),
            ChatEvent::Text { .. } => {}
            ChatEvent::ToolCall { index: 0, call } => self.tool_call(call, &mut out),
            ChatEvent::ToolCall { .. } => {}
            ChatEvent::Finish { index: 0, reason } => self.reason = Some(reason),
            ChatEvent::Finish { .. } => {}
            ChatEvent::Usage(usage) => self.usage = usage,
        }
        out
    }

    /// The end of the domain stream: closes the open item and ends the response, completed or
    /// (cut by `max_output_tokens` or a refusal) incomplete. `now` is the Unix time.
    pub fn finish(&mut self, now: i64) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        let incomplete = match self.reason {
            Some(FinishReason::Length) => Some("max_output_tokens"),
            Some(FinishReason::ContentFilter) => Some("content_filter"),
            Some(FinishReason::Stop | FinishReason::StopSequence(_) | FinishReason::ToolCalls)
            | None => None,
        };
        if self.open.is_none() {
            self.reasoning_first(&mut out);
        }
        self.close(
            if incomplete.is_some() {
                "incomplete"
            } else {
                "completed"
            },
            &mut out,
        );
        self.response.usage = Some(usage(&self.usage));
        self.ended = true;
        let payload = match incomplete {
            Some(reason) => {
                self.response.status = "incomplete";
                self.response.incomplete_details = Some(IncompleteDetails { reason });
                EventPayload::Incomplete {
                    response: self.response.clone(),
                }
            }
            None => {
                self.response.status = "completed";
                self.response.completed_at = Some(now);
                EventPayload::Completed {
                    response: self.response.clone(),
                }
            }
        };
        self.emit(&mut out, payload);
        out
    }

    /// A failure after the start: `response.failed` with the error (what was produced so far
    /// stays in `output`, its last item `incomplete`).
    pub fn fail(&mut self, err: &ChatError) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        if let Some(open) = self.open.take() {
            self.finalize(open, "incomplete");
        }
        self.response.usage = Some(usage(&self.usage));
        self.response.status = "failed";
        self.response.error = Some(response_error(err));
        self.ended = true;
        let payload = EventPayload::Failed {
            response: self.response.clone(),
        };
        self.emit(&mut out, payload);
        out
    }

    fn emit(&mut self, out: &mut Vec<StreamEvent>, payload: EventPayload) {
        out.push(StreamEvent {
            payload,
            sequence_number: self.next_seq,
        });
        self.next_seq += 1;
    }

    /// The index the next (or the open) item has in `output`.
    fn output_index(&self) -> u32 {
        u32::try_from(self.response.output.len()).unwrap_or(u32::MAX)
    }

    fn text(&mut self, text: String, out: &mut Vec<StreamEvent>) {
        if !matches!(self.open, Some(Open::Message { .. })) {
            self.close("completed", out);
            self.reasoning_first(out);
            let item = OutputItem::Message(OutputMessage {
                id: (self.ids)("msg"),
                status: "in_progress",
                role: "assistant",
                content: Vec::new(),
            });
            let (item_id, output_index) = (item.id().to_string(), self.output_index());
            self.response.output.push(item.clone());
            self.open = Some(Open::Message {
                text: String::new(),
            });
            self.emit(out, EventPayload::OutputItemAdded { output_index, item });
            self.emit(
                out,
                EventPayload::ContentPartAdded {
                    item_id,
                    output_index,
                    content_index: 0,
                    part: OutputText::new(String::new()),
                },
            );
        }
        if let Some(Open::Message { text: so_far }) = &mut self.open {
            so_far.push_str(&text);
        }
        let (item_id, output_index) = self.open_item();
        self.emit(
            out,
            EventPayload::OutputTextDelta {
                item_id,
                output_index,
                content_index: 0,
                delta: text,
                logprobs: Vec::new(),
            },
        );
    }

    fn tool_call(&mut self, call: ToolCallDelta, out: &mut Vec<StreamEvent>) {
        if let Some(call_id) = call.id {
            // The first piece of a call: a new item.
            self.close("completed", out);
            self.reasoning_first(out);
            let called = self.names.called(&call.name.unwrap_or_default());
            let (namespace, name) = (called.namespace, called.name);
            let (item, open) = if called.custom {
                let item = OutputItem::CustomToolCall(CustomToolCallItem {
                    id: (self.ids)("ctc"),
                    call_id,
                    namespace,
                    name,
                    input: String::new(),
                    status: "in_progress",
                });
                let open = Open::Custom {
                    tool_index: call.index,
                    decoder: InputDecoder::default(),
                    streamed: String::new(),
                };
                (item, open)
            } else {
                let item = OutputItem::FunctionCall(FunctionCallItem {
                    id: (self.ids)("fc"),
                    call_id,
                    namespace,
                    name,
                    arguments: String::new(),
                    status: "in_progress",
                });
                (
                    item,
                    Open::Call {
                        tool_index: call.index,
                    },
                )
            };
            let output_index = self.output_index();
            self.response.output.push(item.clone());
            self.open = Some(open);
            self.emit(out, EventPayload::OutputItemAdded { output_index, item });
        }
        if call.arguments.is_empty() {
            return;
        }
        let payload = match &mut self.open {
            Some(Open::Call { tool_index }) if *tool_index == call.index => {
                if let Some(OutputItem::FunctionCall(f)) = self.response.output.last_mut() {
                    f.arguments.push_str(&call.arguments);
                }
                let (item_id, output_index) = self.open_item();
                EventPayload::FunctionCallArgumentsDelta {
                    item_id,
                    output_index,
                    delta: call.arguments,
                }
            }
            Some(Open::Custom {
                tool_index,
                decoder,
                streamed,
            }) if *tool_index == call.index => {
                let delta = decoder.push(&call.arguments);
                if delta.is_empty() {
                    return;
                }
                streamed.push_str(&delta);
                let (item_id, output_index) = self.open_item();
                EventPayload::CustomToolCallInputDelta {
                    item_id,
                    output_index,
                    delta,
                }
            }
            // Claude streams one call after the other; a piece of another call has no item
            // to go to.
            _ => {
                tracing::warn!(
                    index = call.index,
                    "tool-call piece outside its call dropped"
                );
                return;
            }
        };
        self.emit(out, payload);
    }

    /// Id and index of the open item (the last of `output`).
    fn open_item(&self) -> (String, u32) {
        let id = self
            .response
            .output
            .last()
            .map(|i| i.id().to_string())
            .unwrap_or_default();
        (id, self.output_index().saturating_sub(1))
    }

    /// Closes the open item, if any, with its `…done` events.
    fn close(&mut self, status: &'static str, out: &mut Vec<StreamEvent>) {
        let Some(open) = self.open.take() else { return };
        let (item_id, output_index) = self.open_item();
        if let Open::Custom {
            decoder, streamed, ..
        } = &open
        {
            // What the decoder could not stream (arguments of another shape) goes in one piece.
            let input = custom_input(decoder, streamed);
            match input.strip_prefix(streamed.as_str()) {
                Some("") => {}
                Some(rest) => {
                    let delta = rest.to_string();
                    self.emit(
                        out,
                        EventPayload::CustomToolCallInputDelta {
                            item_id: item_id.clone(),
                            output_index,
                            delta,
                        },
                    );
                }
                None => tracing::warn!("custom tool input streamed differs from its final form"),
            }
        }
        let item = self.finalize(open, status);
        match &item {
            Some(OutputItem::Reasoning(r)) => self.close_summary(r, output_index, out),
            Some(OutputItem::Message(m)) => {
                let text = m
                    .content
                    .first()
                    .map(|p| p.text.clone())
                    .unwrap_or_default();
                self.emit(
                    out,
                    EventPayload::OutputTextDone {
                        item_id: item_id.clone(),
                        output_index,
                        content_index: 0,
                        text: text.clone(),
                        logprobs: Vec::new(),
                    },
                );
                self.emit(
                    out,
                    EventPayload::ContentPartDone {
                        item_id,
                        output_index,
                        content_index: 0,
                        part: OutputText::new(text),
                    },
                );
            }
            Some(OutputItem::FunctionCall(f)) => {
                let payload = EventPayload::FunctionCallArgumentsDone {
                    item_id,
                    output_index,
                    name: f.name.clone(),
                    arguments: f.arguments.clone(),
                };
                self.emit(out, payload);
            }
            Some(OutputItem::CustomToolCall(c)) => {
                let payload = EventPayload::CustomToolCallInputDone {
                    item_id,
                    output_index,
                    input: c.input.clone(),
                };
                self.emit(out, payload);
            }
            None => return,
        }
        if let Some(item) = item {
            self.emit(out, EventPayload::OutputItemDone { output_index, item });
        }
    }

    /// Puts the open item's final form into `output` and returns it.
    fn finalize(&mut self, open: Open, status: &'static str) -> Option<OutputItem> {
        if let Open::Reasoning {
            thinking,
            signature,
        } = open
        {
            let Some(OutputItem::Reasoning(mut item)) = self.response.output.pop() else {
                return None;
            };
            self.finalize_reasoning(&mut item, thinking, signature);
            let item = OutputItem::Reasoning(item);
            self.response.output.push(item.clone());
            return Some(item);
        }
        let last = self.response.output.last_mut()?;
        match (open, &mut *last) {
            (Open::Message { text }, OutputItem::Message(m)) => {
                m.content = vec![OutputText::new(text)];
                m.status = status;
            }
            (Open::Call { .. }, OutputItem::FunctionCall(f)) => {
                if f.arguments.is_empty() {
                    f.arguments = "{}".into();
                }
                f.status = status;
            }
            (
                Open::Custom {
                    decoder, streamed, ..
                },
                OutputItem::CustomToolCall(c),
            ) => {
                c.input = custom_input(&decoder, &streamed);
                c.status = status;
            }
            _ => return None,
        }
        Some(last.clone())
    }
}

/// A custom call's input: decoded from its whole arguments, or (cut before they were whole) the
/// text streamed so far.
fn custom_input(decoder: &InputDecoder, streamed: &str) -> String {
    input_of(decoder.raw()).unwrap_or_else(|| streamed.to_string())
}

pub fn usage(u: &Usage) -> ResponseUsage {
    ResponseUsage {
        input_tokens: u.prompt_tokens,
        input_tokens_details: InputTokensDetails {
            cached_tokens: u.cached_tokens,
            cache_write_tokens: 0,
        },
        output_tokens: u.completion_tokens,
        output_tokens_details: OutputTokensDetails {
            reasoning_tokens: u.reasoning_tokens,
        },
        total_tokens: u.total_tokens(),
    }
}

/// The `error` of a failed response, with a code clients act on: `rate_limit_exceeded` (with
/// the retry time in the message), `context_length_exceeded`, else `server_error`.
pub fn response_error(err: &ChatError) -> ResponseError {
    let code = match err {
        ChatError::RateLimited { .. } => "rate_limit_exceeded",
        ChatError::InvalidRequest { code, .. }
            if code.as_deref() == Some("context_length_exceeded") =>
        {
            "context_length_exceeded"
        }
        _ => "server_error",
    };
    let message = match err {
        ChatError::RateLimited {
            message,
            retry_after: Some(secs),
        } => format!("{message} Please try again in {secs}s."),
        other => other.to_string(),
    };
    ResponseError {
        code: code.to_string(),
        message,
    }
}

#[path = "stream_reasoning.rs"]
mod reasoning;

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
