//! The Messages stream as a pure state machine: domain `ChatEvent`s in, Anthropic's SSE events
//! out. `start` gives `message_start` and a `ping`; each `push` opens, extends and closes content blocks
//! (`text`, `tool_use` with `input_json_delta`s, and, when the client asked for thinking,
//! `thinking` with `thinking_delta`s ended by its `signature_delta`), numbered from 0 in the
//! order they open; `finish` closes what is open and ends with `message_delta` (stop reason and
//! usage) and `message_stop`, `fail` with an `error` event. Whatever happens, exactly one of
//! those endings is produced and nothing after it. The non-streaming answer is the final
//! `message()` of the same machine, so both forms cannot differ. Keys are in the order
//! Anthropic's API writes them.

use serde_json::{Value, json};

use crate::chat::ChatError;
use crate::chat::types::{ChatEvent, FinishReason, ReasoningDelta, ToolCallDelta, Usage};

use super::error::error_json;

/// One server-sent event: its `event:` name (equal to the data's `type`) and its data.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub name: &'static str,
    pub data: Value,
}

impl SseEvent {
    fn new(name: &'static str, data: Value) -> Self {
        SseEvent { name, data }
    }
}

/// A block of the answer as it grows.
#[derive(Debug, Clone, PartialEq)]
enum Block {
    Text(String),
    Thinking {
        thinking: String,
        signature: String,
    },
    /// Encrypted thinking: whole in its `content_block_start`, no deltas.
    RedactedThinking(String),
    ToolUse {
        id: String,
        name: String,
        /// The domain's index of the call, which its later pieces name.
        call: u32,
        json: String,
    },
}

pub struct MessageStream {
    id: String,
    model: String,
    /// Whether thinking blocks are part of the answer.
    thinking: bool,
    /// The request's `stop_sequences`, so the answer names the one that ended it.
    stops: Vec<String>,
    blocks: Vec<Block>,
    /// Whether the last block is still open.
    open: bool,
    reason: Option<FinishReason>,
    usage: Usage,
    ended: bool,
}

impl MessageStream {
    pub fn new(id: String, model: String, thinking: bool, stops: Vec<String>) -> Self {
        MessageStream {
            id,
            model,
            thinking,
            stops,
            blocks: Vec::new(),
            open: false,
            reason: None,
            usage: Usage::default(),
            ended: false,
        }
    }

    pub fn ended(&self) -> bool {
        self.ended
    }

    /// `message_start`: the message with no content yet. Claude's usage is known only at the
    /// end, so it starts at zero and `message_delta` carries the real numbers.
    pub fn start(&self) -> Vec<SseEvent> {
        let mut message = self.envelope(json!([]), None);
        message["usage"] = usage_json(&self.usage);
        vec![
            SseEvent::new(
                "message_start",
                json!({"type": "message_start", "message": message}),
            ),
            // Anthropic's API pings right after the start; later pings are the keep-alive's.
            SseEvent::new("ping", json!({"type": "ping"})),
        ]
    }

    pub fn push(&mut self, event: ChatEvent) -> Vec<SseEvent> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        match event {
            ChatEvent::Role { .. } => {}
            ChatEvent::Text { text, .. } => self.text(text, &mut out),
            ChatEvent::Reasoning { delta, .. } if self.thinking => self.reasoning(delta, &mut out),
            // Not asked for: Anthropic shows thinking only when `thinking` enables it.
            ChatEvent::Reasoning { .. } => {}
            ChatEvent::ToolCall { call, .. } => self.tool_call(call, &mut out),
            ChatEvent::Finish { reason, .. } => {
                self.reason = Some(reason);
                self.close(&mut out);
            }
            ChatEvent::Usage(usage) => self.usage = usage,
        }
        out
    }

    /// The end of the events: the open block closed, `message_delta`, `message_stop`.
    pub fn finish(&mut self) -> Vec<SseEvent> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        self.close(&mut out);
        self.ended = true;
        out.push(SseEvent::new(
            "message_delta",
            json!({
                "type": "message_delta",
                "delta": {"stop_reason": self.stop_reason(), "stop_sequence": self.stop_sequence()},
                "usage": usage_json(&self.usage),
            }),
        ));
        out.push(SseEvent::new(
            "message_stop",
            json!({"type": "message_stop"}),
        ));
        out
    }

    /// A failure after the stream began: one `error` event, and nothing after it.
    pub fn fail(&mut self, err: &ChatError) -> Vec<SseEvent> {
        if self.ended {
            return Vec::new();
        }
        self.ended = true;
        vec![SseEvent::new("error", error_json(err, None))]
    }

    /// The whole message as the non-streaming answer gives it.
    pub fn message(&self) -> Value {
        let content = self.blocks.iter().map(block_json).collect();
        let mut message = self.envelope(Value::Array(content), Some(self.stop_reason()));
        message["stop_sequence"] = json!(self.stop_sequence());
        message["usage"] = usage_json(&self.usage);
        message
    }

    fn envelope(&self, content: Value, stop_reason: Option<&str>) -> Value {
        json!({
            "id": self.id, "type": "message", "role": "assistant", "model": self.model,
            "content": content, "stop_reason": stop_reason, "stop_sequence": null,
            "usage": null,
        })
    }

    fn stop_reason(&self) -> &'static str {
        match self.reason {
            None | Some(FinishReason::Stop) => "end_turn",
            Some(FinishReason::StopSequence(_)) => "stop_sequence",
            Some(FinishReason::Length) => "max_tokens",
            Some(FinishReason::ToolCalls) => "tool_use",
            Some(FinishReason::ContentFilter) => "refusal",
        }
    }

    /// The stop sequence that ended the answer, as the request spelled it.
    fn stop_sequence(&self) -> Option<&str> {
        match self.reason {
            Some(FinishReason::StopSequence(which)) => {
                self.stops.get(which as usize).map(String::as_str)
            }
            _ => None,
        }
    }

    fn index(&self) -> usize {
        self.blocks.len().saturating_sub(1)
    }

    fn open_block(&mut self, block: Block, out: &mut Vec<SseEvent>) {
        self.close(out);
        let start = match &block {
            Block::Text(_) => json!({"type": "text", "text": ""}),
            Block::Thinking { .. } => json!({"type": "thinking", "thinking": "", "signature": ""}),
            Block::RedactedThinking(data) => json!({"type": "redacted_thinking", "data": data}),
            Block::ToolUse { id, name, .. } => {
                json!({"type": "tool_use", "id": id, "name": name, "input": {}})
            }
        };
        self.blocks.push(block);
        self.open = true;
        out.push(SseEvent::new(
            "content_block_start",
            json!({"type": "content_block_start", "index": self.index(), "content_block": start}),
        ));
    }

    fn delta(&self, delta: Value, out: &mut Vec<SseEvent>) {
        out.push(SseEvent::new(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": self.index(), "delta": delta}),
        ));
    }

    fn close(&mut self, out: &mut Vec<SseEvent>) {
        if !self.open {
            return;
        }
        self.open = false;
        out.push(SseEvent::new(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": self.index()}),
        ));
    }

    fn text(&mut self, text: String, out: &mut Vec<SseEvent>) {
        if text.is_empty() {
            return;
        }
        if !(self.open && matches!(self.blocks.last(), Some(Block::Text(_)))) {
            self.open_block(Block::Text(String::new()), out);
        }
        self.delta(json!({"type": "text_delta", "text": text}), out);
        if let Some(Block::Text(all)) = self.blocks.last_mut() {
            all.push_str(&text);
        }
    }

    fn reasoning(&mut self, delta: ReasoningDelta, out: &mut Vec<SseEvent>) {
        if let ReasoningDelta::Redacted { data, .. } = delta {
            self.open_block(Block::RedactedThinking(data), out);
            self.close(out);
            return;
        }
        if !(self.open && matches!(self.blocks.last(), Some(Block::Thinking { .. }))) {
            let empty = Block::Thinking {
                thinking: String::new(),
                signature: String::new(),
            };
            self.open_block(empty, out);
        }
        match delta {
            ReasoningDelta::Text(text) => {
                self.delta(json!({"type": "thinking_delta", "thinking": text}), out);
                if let Some(Block::Thinking { thinking, .. }) = self.blocks.last_mut() {
                    thinking.push_str(&text);
                }
            }
            ReasoningDelta::Signature { signature: s, .. } => {
                self.delta(json!({"type": "signature_delta", "signature": s}), out);
                if let Some(Block::Thinking { signature, .. }) = self.blocks.last_mut() {
                    *signature = s;
                }
                // The signature ends its block.
                self.close(out);
            }
            ReasoningDelta::Redacted { .. } => {}
        }
    }

    fn tool_call(&mut self, call: ToolCallDelta, out: &mut Vec<SseEvent>) {
        let continues = self.open
            && matches!(self.blocks.last(), Some(Block::ToolUse { call: c, .. }) if *c == call.index);
        if call.id.is_some() || !continues {
            let block = Block::ToolUse {
                id: call.id.unwrap_or_default(),
                name: call.name.unwrap_or_default(),
                call: call.index,
                json: String::new(),
            };
            self.open_block(block, out);
        }
        if call.arguments.is_empty() {
            return;
        }
        self.delta(
            json!({"type": "input_json_delta", "partial_json": call.arguments}),
            out,
        );
        if let Some(Block::ToolUse { json, .. }) = self.blocks.last_mut() {
            json.push_str(&call.arguments);
        }
    }
}

fn block_json(block: &Block) -> Value {
    match block {
        Block::Text(text) => json!({"type": "text", "text": text}),
        Block::Thinking {
            thinking,
            signature,
        } => json!({"type": "thinking", "thinking": thinking, "signature": signature}),
        Block::RedactedThinking(data) => json!({"type": "redacted_thinking", "data": data}),
        Block::ToolUse { id, name, json, .. } => {
            let input = if json.trim().is_empty() {
                json!({})
            } else {
                // The domain's arguments are JSON text; kept as text if Claude's were not.
                serde_json::from_str(json).unwrap_or_else(|_| Value::String(json.clone()))
            };
            json!({"type": "tool_use", "id": id, "name": name, "input": input})
        }
    }
}

/// Anthropic's usage from the domain's: its `input_tokens` exclude cache reads and writes (the
/// domain's prompt tokens include both), which are Claude's own numbers as the CLI reports them.
pub fn usage_json(u: &Usage) -> Value {
    json!({
        "input_tokens": u
            .prompt_tokens
            .saturating_sub(u.cached_tokens)
            .saturating_sub(u.cache_creation_tokens),
        "cache_creation_input_tokens": u.cache_creation_tokens,
        "cache_read_input_tokens": u.cached_tokens,
        "output_tokens": u.completion_tokens,
    })
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
