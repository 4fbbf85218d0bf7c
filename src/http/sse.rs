//! The streaming transcoder: domain chat events in, OpenAI `chat.completion.chunk` JSON out.
//! A pure state machine (`push(event) -> chunks`); the async adapter in `handlers.rs` only wraps
//! what it returns into SSE frames and appends `[DONE]`.

use crate::chat::ChatError;
use crate::chat::types::{ChatEvent, CompletionMeta, FinishReason};

use super::convert::usage;
use super::error::error_body;
use super::openai::{
    ChatCompletionChunk, ChunkChoice, ChunkDelta, ChunkFunction, ChunkToolCall, UsageField,
};

pub struct ChunkTranscoder {
    meta: CompletionMeta,
    include_usage: bool,
    /// Calls go out as the legacy `delta.function_call`.
    legacy_functions: bool,
}

impl ChunkTranscoder {
    pub fn new(meta: CompletionMeta, include_usage: bool) -> Self {
        ChunkTranscoder {
            meta,
            include_usage,
            legacy_functions: false,
        }
    }

    /// For requests that used the legacy `functions`.
    pub fn legacy_functions(mut self, on: bool) -> Self {
        self.legacy_functions = on;
        self
    }

    /// The chunks (as JSON text) for one event; usage is sent only when the client asked.
    pub fn push(&mut self, event: ChatEvent) -> Option<String> {
        let chunk = match event {
            // Chat completions has no place for Claude's thinking.
            ChatEvent::Reasoning { .. } => return None,
            ChatEvent::Role { index } => self.chunk(
                index,
                ChunkDelta {
                    role: Some("assistant"),
                    content: Some(String::new()),
                    ..ChunkDelta::default()
                },
                None,
            ),
            ChatEvent::Text { index, text } => self.chunk(
                index,
                ChunkDelta {
                    content: Some(text),
                    ..ChunkDelta::default()
                },
                None,
            ),
            ChatEvent::ToolCall { index, call } if self.legacy_functions => self.chunk(
                index,
                ChunkDelta {
                    function_call: Some(ChunkFunction {
                        name: call.name,
                        arguments: call.arguments,
                    }),
                    ..ChunkDelta::default()
                },
                None,
            ),
            ChatEvent::ToolCall { index, call } => {
                let first = call.id.is_some();
                self.chunk(
                    index,
                    ChunkDelta {
                        tool_calls: vec![ChunkToolCall {
                            index: call.index,
                            id: call.id,
                            kind: first.then_some("function"),
                            function: ChunkFunction {
                                name: call.name,
                                arguments: call.arguments,
                            },
                        }],
                        ..ChunkDelta::default()
                    },
                    None,
                )
            }
            ChatEvent::Finish { index, reason } => {
                let reason = match reason {
                    FinishReason::ToolCalls if self.legacy_functions => "function_call",
                    other => other.as_str(),
                };
                self.chunk(index, ChunkDelta::default(), Some(reason))
            }
            ChatEvent::Usage(u) => {
                if !self.include_usage {
                    return None;
                }
                ChatCompletionChunk {
                    choices: Vec::new(),
                    usage: UsageField::Usage(usage(&u)),
                    ..self.base()
                }
            }
        };
        serde_json::to_string(&chunk).ok()
    }

    /// The in-stream error event for a failure after the first chunk.
    pub fn error(&self, err: &ChatError) -> String {
        serde_json::to_string(&error_body(err)).unwrap_or_else(|_| "{}".into())
    }

    fn base(&self) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.meta.id.clone(),
            object: "chat.completion.chunk",
            created: self.meta.created,
            model: self.meta.model.clone(),
            choices: Vec::new(),
            usage: if self.include_usage {
                UsageField::Null
            } else {
                UsageField::Absent
            },
        }
    }

    fn chunk(
        &self,
        index: u32,
        delta: ChunkDelta,
        finish_reason: Option<&'static str>,
    ) -> ChatCompletionChunk {
        ChatCompletionChunk {
            choices: vec![ChunkChoice {
                index,
                delta,
                finish_reason,
                logprobs: None,
            }],
            ..self.base()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::types::{ToolCallDelta, Usage};
    use serde_json::{Value, json};

    fn meta() -> CompletionMeta {
        CompletionMeta {
            id: "chatcmpl-x".into(),
            created: 7,
            model: "gpt-4o".into(),
            ignored_params: vec![],
        }
    }

    fn push(t: &mut ChunkTranscoder, e: ChatEvent) -> Option<Value> {
        t.push(e).map(|s| serde_json::from_str(&s).unwrap())
    }

    #[test]
    fn role_text_finish_then_usage() {
        let mut t = ChunkTranscoder::new(meta(), true);
        let first = push(&mut t, ChatEvent::Role { index: 0 }).unwrap();
        assert_eq!(first["object"], "chat.completion.chunk");
        assert_eq!(
            first["choices"][0]["delta"],
            json!({"role":"assistant","content":""})
        );
        assert_eq!(first["usage"], Value::Null);
        let text = push(
            &mut t,
            ChatEvent::Text {
                index: 0,
                text: "Hi".into(),
            },
        )
        .unwrap();
        assert_eq!(text["choices"][0]["delta"], json!({"content":"Hi"}));
        assert_eq!(text["choices"][0]["finish_reason"], Value::Null);
        let fin = push(
            &mut t,
            ChatEvent::Finish {
                index: 0,
                reason: FinishReason::Stop,
            },
        )
        .unwrap();
        assert_eq!(fin["choices"][0]["delta"], json!({}));
        assert_eq!(fin["choices"][0]["finish_reason"], "stop");
        let usage = push(
            &mut t,
            ChatEvent::Usage(Usage {
                prompt_tokens: 3,
                completion_tokens: 1,
                cached_tokens: 2,
                ..Usage::default()
            }),
        )
        .unwrap();
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["total_tokens"], 4);
        assert_eq!(usage["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
    }

    #[test]
    fn without_include_usage_there_is_no_usage_field_or_chunk() {
        let mut t = ChunkTranscoder::new(meta(), false);
        let first = push(&mut t, ChatEvent::Role { index: 0 }).unwrap();
        assert!(first.get("usage").is_none());
        assert!(push(&mut t, ChatEvent::Usage(Usage::default())).is_none());
    }

    #[test]
    fn tool_call_pieces() {
        let mut t = ChunkTranscoder::new(meta(), false);
        let head = push(
            &mut t,
            ChatEvent::ToolCall {
                index: 0,
                call: ToolCallDelta {
                    index: 0,
                    id: Some("toolu_1".into()),
                    name: Some("f".into()),
                    arguments: String::new(),
                },
            },
        )
        .unwrap();
        assert_eq!(
            head["choices"][0]["delta"]["tool_calls"][0],
            json!({"index":0,"id":"toolu_1","type":"function","function":{"name":"f","arguments":""}})
        );
        let more = push(
            &mut t,
            ChatEvent::ToolCall {
                index: 0,
                call: ToolCallDelta {
                    index: 0,
                    id: None,
                    name: None,
                    arguments: "{\"a\"".into(),
                },
            },
        )
        .unwrap();
        assert_eq!(
            more["choices"][0]["delta"]["tool_calls"][0],
            json!({"index":0,"function":{"arguments":"{\"a\""}})
        );
    }

    #[test]
    fn legacy_function_calls_use_function_call_deltas() {
        let mut t = ChunkTranscoder::new(meta(), false).legacy_functions(true);
        let head = push(
            &mut t,
            ChatEvent::ToolCall {
                index: 0,
                call: ToolCallDelta {
                    index: 0,
                    id: Some("toolu_1".into()),
                    name: Some("f".into()),
                    arguments: String::new(),
                },
            },
        )
        .unwrap();
        assert_eq!(
            head["choices"][0]["delta"],
            json!({"function_call":{"name":"f","arguments":""}})
        );
        let fin = push(
            &mut t,
            ChatEvent::Finish {
                index: 0,
                reason: FinishReason::ToolCalls,
            },
        )
        .unwrap();
        assert_eq!(fin["choices"][0]["finish_reason"], "function_call");
    }
}
