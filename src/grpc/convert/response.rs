//! Answers, domain ⇄ protobuf: whole completions, stream chunks (one per chat event), usage,
//! models. Destructured without `..`, like the requests.

use crate::chat::models::ModelInfo;
use crate::chat::types as d;

use super::super::pb;
use super::request::{tool_call_from_pb, tool_call_to_pb};

/// The reason; a stop sequence's index travels beside it (`stop_sequence_to_pb`).
pub fn finish_to_pb(r: d::FinishReason) -> pb::FinishReason {
    match r {
        d::FinishReason::Stop | d::FinishReason::StopSequence(_) => pb::FinishReason::Stop,
        d::FinishReason::Length => pb::FinishReason::Length,
        d::FinishReason::ToolCalls => pb::FinishReason::ToolCalls,
        d::FinishReason::ContentFilter => pb::FinishReason::ContentFilter,
    }
}

/// Which stop sequence ended a choice, if one did.
pub fn stop_sequence_to_pb(r: d::FinishReason) -> Option<u32> {
    match r {
        d::FinishReason::StopSequence(which) => Some(which),
        _ => None,
    }
}

/// The reason, with the stop sequence's index when the message names one.
pub fn finish_from_pb(r: i32, stop_sequence: Option<u32>) -> Option<d::FinishReason> {
    match pb::FinishReason::try_from(r) {
        Ok(pb::FinishReason::Stop) => {
            Some(stop_sequence.map_or(d::FinishReason::Stop, d::FinishReason::StopSequence))
        }
        Ok(pb::FinishReason::Length) => Some(d::FinishReason::Length),
        Ok(pb::FinishReason::ToolCalls) => Some(d::FinishReason::ToolCalls),
        Ok(pb::FinishReason::ContentFilter) => Some(d::FinishReason::ContentFilter),
        Ok(pb::FinishReason::Unspecified) | Err(_) => None,
    }
}

pub fn usage_to_pb(u: &d::Usage) -> pb::Usage {
    let d::Usage {
        prompt_tokens,
        completion_tokens,
        cached_tokens,
        cache_creation_tokens,
        reasoning_tokens,
        estimated,
        cost_usd,
    } = *u;
    pb::Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: u.total_tokens(),
        cached_tokens,
        cache_creation_tokens,
        reasoning_tokens,
        estimated,
        cost_usd,
    }
}

pub fn usage_from_pb(u: pb::Usage) -> d::Usage {
    let pb::Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: _,
        cached_tokens,
        cache_creation_tokens,
        reasoning_tokens,
        estimated,
        cost_usd,
    } = u;
    d::Usage {
        prompt_tokens,
        completion_tokens,
        cached_tokens,
        cache_creation_tokens,
        reasoning_tokens,
        estimated,
        cost_usd,
    }
}

pub fn completion_to_pb(c: d::ChatCompletion) -> pb::CreateChatCompletionResponse {
    let d::ChatCompletion {
        meta,
        choices,
        usage,
    } = c;
    let d::CompletionMeta {
        id,
        created,
        model,
        ignored_params,
    } = meta;
    pb::CreateChatCompletionResponse {
        id,
        created,
        model,
        choices: choices
            .into_iter()
            .map(|c| {
                let d::Choice {
                    index,
                    content,
                    tool_calls,
                    finish_reason,
                } = c;
                pb::Choice {
                    index,
                    message: Some(pb::AssistantMessage {
                        content,
                        tool_calls: tool_calls.into_iter().map(tool_call_to_pb).collect(),
                    }),
                    finish_reason: finish_to_pb(finish_reason) as i32,
                    stop_sequence: stop_sequence_to_pb(finish_reason),
                }
            })
            .collect(),
        usage: Some(usage_to_pb(&usage)),
        ignored_params,
    }
}

pub fn completion_from_pb(r: pb::CreateChatCompletionResponse) -> d::ChatCompletion {
    let pb::CreateChatCompletionResponse {
        id,
        created,
        model,
        choices,
        usage,
        ignored_params,
    } = r;
    d::ChatCompletion {
        meta: d::CompletionMeta {
            id,
            created,
            model,
            ignored_params,
        },
        choices: choices
            .into_iter()
            .map(|c| {
                let pb::Choice {
                    index,
                    message,
                    finish_reason,
                    stop_sequence,
                } = c;
                let pb::AssistantMessage {
                    content,
                    tool_calls,
                } = message.unwrap_or_default();
                d::Choice {
                    index,
                    content,
                    tool_calls: tool_calls.into_iter().map(tool_call_from_pb).collect(),
                    finish_reason: finish_from_pb(finish_reason, stop_sequence)
                        .unwrap_or(d::FinishReason::Stop),
                }
            })
            .collect(),
        usage: usage.map(usage_from_pb).unwrap_or_default(),
    }
}

/// One stream message per event. `ignored_params` travels on the first (role) message.
pub fn event_to_pb(
    meta: &d::CompletionMeta,
    event: d::ChatEvent,
    first: bool,
) -> pb::StreamChatCompletionResponse {
    let choice = |index: u32, delta: pb::Delta, finish: Option<d::FinishReason>| pb::ChunkChoice {
        index,
        delta: Some(delta),
        finish_reason: finish.map_or(pb::FinishReason::Unspecified, finish_to_pb) as i32,
        stop_sequence: finish.and_then(stop_sequence_to_pb),
    };
    let (choices, usage) = match event {
        d::ChatEvent::Role { index } => (
            vec![choice(
                index,
                pb::Delta {
                    role: pb::Role::Assistant as i32,
                    ..Default::default()
                },
                None,
            )],
            None,
        ),
        d::ChatEvent::Text { index, text } => (
            vec![choice(
                index,
                pb::Delta {
                    content: Some(text),
                    ..Default::default()
                },
                None,
            )],
            None,
        ),
        d::ChatEvent::ToolCall { index, call } => {
            let d::ToolCallDelta {
                index: call_index,
                id,
                name,
                arguments,
            } = call;
            let delta = pb::Delta {
                tool_calls: vec![pb::ToolCallDelta {
                    index: call_index,
                    id: id.unwrap_or_default(),
                    name: name.unwrap_or_default(),
                    arguments,
                }],
                ..Default::default()
            };
            (vec![choice(index, delta, None)], None)
        }
        d::ChatEvent::Reasoning { index, delta } => {
            let (part, model) = match delta {
                d::ReasoningDelta::Text(t) => (pb::reasoning_delta::Part::Text(t), String::new()),
                d::ReasoningDelta::Signature { signature, model } => {
                    (pb::reasoning_delta::Part::Signature(signature), model)
                }
                d::ReasoningDelta::Redacted { data, model } => {
                    (pb::reasoning_delta::Part::Redacted(data), model)
                }
            };
            let delta = pb::Delta {
                reasoning: Some(pb::ReasoningDelta {
                    part: Some(part),
                    model,
                }),
                ..Default::default()
            };
            (vec![choice(index, delta, None)], None)
        }
        d::ChatEvent::Finish { index, reason } => (
            vec![choice(index, pb::Delta::default(), Some(reason))],
            None,
        ),
        d::ChatEvent::Usage(u) => (Vec::new(), Some(usage_to_pb(&u))),
    };
    pb::StreamChatCompletionResponse {
        id: meta.id.clone(),
        created: meta.created,
        model: meta.model.clone(),
        choices,
        usage,
        ignored_params: if first {
            meta.ignored_params.clone()
        } else {
            Vec::new()
        },
    }
}

/// The events one stream message carries (the inverse of `event_to_pb`).
pub fn events_from_pb(msg: pb::StreamChatCompletionResponse) -> Vec<d::ChatEvent> {
    let pb::StreamChatCompletionResponse {
        id: _,
        created: _,
        model: _,
        choices,
        usage,
        ignored_params: _,
    } = msg;
    let mut events = Vec::new();
    for c in choices {
        let pb::ChunkChoice {
            index,
            delta,
            finish_reason,
            stop_sequence,
        } = c;
        let pb::Delta {
            role,
            content,
            tool_calls,
            reasoning,
        } = delta.unwrap_or_default();
        if role == pb::Role::Assistant as i32 {
            events.push(d::ChatEvent::Role { index });
        }
        if let Some(pb::ReasoningDelta {
            part: Some(part),
            model,
        }) = reasoning
        {
            let delta = match part {
                pb::reasoning_delta::Part::Text(t) => d::ReasoningDelta::Text(t),
                pb::reasoning_delta::Part::Signature(signature) => {
                    d::ReasoningDelta::Signature { signature, model }
                }
                pb::reasoning_delta::Part::Redacted(data) => {
                    d::ReasoningDelta::Redacted { data, model }
                }
            };
            events.push(d::ChatEvent::Reasoning { index, delta });
        }
        if let Some(text) = content {
            events.push(d::ChatEvent::Text { index, text });
        }
        for t in tool_calls {
            let pb::ToolCallDelta {
                index: call_index,
                id,
                name,
                arguments,
            } = t;
            events.push(d::ChatEvent::ToolCall {
                index,
                call: d::ToolCallDelta {
                    index: call_index,
                    id: (!id.is_empty()).then_some(id),
                    name: (!name.is_empty()).then_some(name),
                    arguments,
                },
            });
        }
        if let Some(reason) = finish_from_pb(finish_reason, stop_sequence) {
            events.push(d::ChatEvent::Finish { index, reason });
        }
    }
    if let Some(u) = usage {
        events.push(d::ChatEvent::Usage(usage_from_pb(u)));
    }
    events
}

pub fn model_to_pb(m: ModelInfo, created: i64) -> pb::Model {
    let ModelInfo { id, cli_model } = m;
    pb::Model {
        id,
        cli_model,
        owned_by: "anthropic".into(),
        created,
    }
}

pub fn model_from_pb(m: pb::Model) -> ModelInfo {
    let pb::Model {
        id,
        cli_model,
        owned_by: _,
        created: _,
    } = m;
    ModelInfo { id, cli_model }
}
