//! Protobuf ⇄ domain. Every generated message is destructured without `..`, so a field added to
//! the proto is a compile error here until it is handled. JSON carried as text (tool parameters,
//! schemas) is parsed here and refused with INVALID_ARGUMENT when it is not JSON.

use crate::chat::ChatError;
use crate::chat::models::ModelInfo;
use crate::chat::types as d;

use super::pb;

fn json_text(text: &str, param: &str) -> Result<Option<serde_json::Value>, ChatError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| ChatError::invalid(format!("`{param}` is not valid JSON: {e}"), param))
}

pub fn chat_request(params: Option<pb::ChatCompletionParams>) -> Result<d::ChatRequest, ChatError> {
    let pb::ChatCompletionParams {
        model,
        messages,
        tools,
        tool_choice,
        parallel_tool_calls,
        response_format,
        stop,
        n,
        max_tokens,
        session_id,
        metadata,
        sampling,
        reasoning_effort,
    } = params.ok_or_else(|| ChatError::invalid("`params` is required.", "params"))?;
    let messages = messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| message(i, m))
        .collect::<Result<_, _>>()?;
    let tools = tools
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let pb::Tool { function } = t;
            let pb::FunctionDefinition {
                name,
                description,
                parameters_json,
                strict,
            } = function.ok_or_else(|| {
                ChatError::invalid(
                    format!("`tools[{i}].function` is required."),
                    format!("tools[{i}].function"),
                )
            })?;
            Ok(d::Tool {
                name,
                description: (!description.is_empty()).then_some(description),
                parameters: json_text(
                    &parameters_json,
                    &format!("tools[{i}].function.parameters_json"),
                )?,
                strict,
            })
        })
        .collect::<Result<_, ChatError>>()?;
    let tool_choice = match tool_choice.and_then(|c| c.choice) {
        None => None,
        Some(pb::tool_choice::Choice::FunctionName(name)) => Some(d::ToolChoice::Function(name)),
        Some(pb::tool_choice::Choice::Mode(mode)) => match pb::ToolChoiceMode::try_from(mode) {
            Ok(pb::ToolChoiceMode::Unspecified) => None,
            Ok(pb::ToolChoiceMode::None) => Some(d::ToolChoice::None),
            Ok(pb::ToolChoiceMode::Auto) => Some(d::ToolChoice::Auto),
            Ok(pb::ToolChoiceMode::Required) => Some(d::ToolChoice::Required),
            Err(_) => {
                return Err(ChatError::invalid(
                    "`tool_choice.mode` is not a known mode.",
                    "tool_choice",
                ));
            }
        },
    };
    let response_format = match response_format {
        None => d::ResponseFormat::Text,
        Some(pb::ResponseFormat {
            r#type,
            json_schema,
        }) => match pb::ResponseFormatType::try_from(r#type) {
            Ok(pb::ResponseFormatType::Unspecified | pb::ResponseFormatType::Text) => {
                d::ResponseFormat::Text
            }
            Ok(pb::ResponseFormatType::JsonObject) => d::ResponseFormat::JsonObject,
            Ok(pb::ResponseFormatType::JsonSchema) => {
                let pb::JsonSchemaFormat {
                    name,
                    description,
                    schema_json,
                    strict,
                } = json_schema.ok_or_else(|| {
                    ChatError::invalid(
                        "`response_format.json_schema` is required.",
                        "response_format.json_schema",
                    )
                })?;
                d::ResponseFormat::JsonSchema(d::JsonSchemaFormat {
                    name,
                    description: (!description.is_empty()).then_some(description),
                    schema: json_text(&schema_json, "response_format.json_schema.schema_json")?
                        .unwrap_or_else(|| serde_json::json!({})),
                    strict,
                })
            }
            Err(_) => {
                return Err(ChatError::invalid(
                    "`response_format.type` is not a known type.",
                    "response_format",
                ));
            }
        },
    };
    let sampling = match sampling {
        None => d::SamplingParams::default(),
        Some(pb::SamplingParams {
            temperature,
            top_p,
            presence_penalty,
            frequency_penalty,
            seed,
            logit_bias,
            user,
            logprobs,
            top_logprobs,
            other,
        }) => d::SamplingParams {
            temperature,
            top_p,
            presence_penalty,
            frequency_penalty,
            seed,
            logit_bias: logit_bias.into_iter().collect(),
            user: (!user.is_empty()).then_some(user),
            logprobs,
            top_logprobs,
            other,
        },
    };
    Ok(d::ChatRequest {
        model,
        messages,
        tools,
        tool_choice,
        parallel_tool_calls,
        response_format,
        stop,
        n,
        max_tokens,
        session_id: (!session_id.is_empty()).then_some(session_id),
        metadata: metadata.into_iter().collect(),
        sampling,
        reasoning_effort: (!reasoning_effort.is_empty()).then_some(reasoning_effort),
    })
}

fn message(i: usize, m: pb::ChatMessage) -> Result<d::Message, ChatError> {
    let pb::ChatMessage {
        role,
        content,
        name,
        tool_calls,
        tool_call_id,
    } = m;
    let role = match pb::Role::try_from(role) {
        Ok(pb::Role::System) => d::Role::System,
        Ok(pb::Role::Developer) => d::Role::Developer,
        Ok(pb::Role::User) => d::Role::User,
        Ok(pb::Role::Assistant) => d::Role::Assistant,
        Ok(pb::Role::Tool) => d::Role::Tool,
        Ok(pb::Role::Unspecified) | Err(_) => {
            return Err(ChatError::invalid(
                format!("`messages[{i}].role` must be set."),
                format!("messages[{i}].role"),
            ));
        }
    };
    let content = content
        .into_iter()
        .filter_map(|p| p.part)
        .map(|part| match part {
            pb::content_part::Part::Text(t) => d::ContentPart::Text(t),
            pb::content_part::Part::ImageUrl(pb::ImageUrl { url, detail }) => {
                d::ContentPart::ImageUrl {
                    url,
                    detail: match pb::ImageDetail::try_from(detail) {
                        Ok(pb::ImageDetail::Auto) => d::ImageDetail::Auto,
                        Ok(pb::ImageDetail::Low) => d::ImageDetail::Low,
                        Ok(pb::ImageDetail::High) => d::ImageDetail::High,
                        Ok(pb::ImageDetail::Unspecified) | Err(_) => d::ImageDetail::Unspecified,
                    },
                }
            }
        })
        .collect();
    Ok(d::Message {
        role,
        content,
        name: (!name.is_empty()).then_some(name),
        tool_calls: tool_calls.into_iter().map(tool_call_from_pb).collect(),
        tool_call_id: (!tool_call_id.is_empty()).then_some(tool_call_id),
    })
}

fn tool_call_from_pb(c: pb::ToolCall) -> d::ToolCall {
    let pb::ToolCall { id, function } = c;
    let pb::FunctionCall { name, arguments } = function.unwrap_or_default();
    d::ToolCall {
        id,
        name,
        arguments,
    }
}

fn tool_call_to_pb(c: d::ToolCall) -> pb::ToolCall {
    let d::ToolCall {
        id,
        name,
        arguments,
    } = c;
    pb::ToolCall {
        id,
        function: Some(pb::FunctionCall { name, arguments }),
    }
}

/// Domain → proto, for the remote client.
pub fn chat_params(req: d::ChatRequest) -> pb::ChatCompletionParams {
    let d::ChatRequest {
        model,
        messages,
        tools,
        tool_choice,
        parallel_tool_calls,
        response_format,
        stop,
        n,
        max_tokens,
        session_id,
        metadata,
        sampling,
        reasoning_effort,
    } = req;
    let d::SamplingParams {
        temperature,
        top_p,
        presence_penalty,
        frequency_penalty,
        seed,
        logit_bias,
        user,
        logprobs,
        top_logprobs,
        other,
    } = sampling;
    pb::ChatCompletionParams {
        model,
        messages: messages.into_iter().map(message_to_pb).collect(),
        tools: tools
            .into_iter()
            .map(|t| {
                let d::Tool {
                    name,
                    description,
                    parameters,
                    strict,
                } = t;
                pb::Tool {
                    function: Some(pb::FunctionDefinition {
                        name,
                        description: description.unwrap_or_default(),
                        parameters_json: parameters.map(|p| p.to_string()).unwrap_or_default(),
                        strict,
                    }),
                }
            })
            .collect(),
        tool_choice: tool_choice.map(|c| pb::ToolChoice {
            choice: Some(match c {
                d::ToolChoice::None => {
                    pb::tool_choice::Choice::Mode(pb::ToolChoiceMode::None as i32)
                }
                d::ToolChoice::Auto => {
                    pb::tool_choice::Choice::Mode(pb::ToolChoiceMode::Auto as i32)
                }
                d::ToolChoice::Required => {
                    pb::tool_choice::Choice::Mode(pb::ToolChoiceMode::Required as i32)
                }
                d::ToolChoice::Function(name) => pb::tool_choice::Choice::FunctionName(name),
            }),
        }),
        parallel_tool_calls,
        response_format: Some(match response_format {
            d::ResponseFormat::Text => pb::ResponseFormat {
                r#type: pb::ResponseFormatType::Text as i32,
                json_schema: None,
            },
            d::ResponseFormat::JsonObject => pb::ResponseFormat {
                r#type: pb::ResponseFormatType::JsonObject as i32,
                json_schema: None,
            },
            d::ResponseFormat::JsonSchema(d::JsonSchemaFormat {
                name,
                description,
                schema,
                strict,
            }) => pb::ResponseFormat {
                r#type: pb::ResponseFormatType::JsonSchema as i32,
                json_schema: Some(pb::JsonSchemaFormat {
                    name,
                    description: description.unwrap_or_default(),
                    schema_json: schema.to_string(),
                    strict,
                }),
            },
        }),
        stop,
        n,
        max_tokens,
        session_id: session_id.unwrap_or_default(),
        metadata: metadata.into_iter().collect(),
        sampling: Some(pb::SamplingParams {
            temperature,
            top_p,
            presence_penalty,
            frequency_penalty,
            seed,
            logit_bias: logit_bias.into_iter().collect(),
            user: user.unwrap_or_default(),
            logprobs,
            top_logprobs,
            other,
        }),
        reasoning_effort: reasoning_effort.unwrap_or_default(),
    }
}

fn message_to_pb(m: d::Message) -> pb::ChatMessage {
    let d::Message {
        role,
        content,
        name,
        tool_calls,
        tool_call_id,
    } = m;
    pb::ChatMessage {
        role: match role {
            d::Role::System => pb::Role::System,
            d::Role::Developer => pb::Role::Developer,
            d::Role::User => pb::Role::User,
            d::Role::Assistant => pb::Role::Assistant,
            d::Role::Tool => pb::Role::Tool,
        } as i32,
        content: content
            .into_iter()
            .map(|p| pb::ContentPart {
                part: Some(match p {
                    d::ContentPart::Text(t) => pb::content_part::Part::Text(t),
                    d::ContentPart::ImageUrl { url, detail } => {
                        pb::content_part::Part::ImageUrl(pb::ImageUrl {
                            url,
                            detail: match detail {
                                d::ImageDetail::Unspecified => pb::ImageDetail::Unspecified,
                                d::ImageDetail::Auto => pb::ImageDetail::Auto,
                                d::ImageDetail::Low => pb::ImageDetail::Low,
                                d::ImageDetail::High => pb::ImageDetail::High,
                            } as i32,
                        })
                    }
                }),
            })
            .collect(),
        name: name.unwrap_or_default(),
        tool_calls: tool_calls.into_iter().map(tool_call_to_pb).collect(),
        tool_call_id: tool_call_id.unwrap_or_default(),
    }
}

fn finish_to_pb(r: d::FinishReason) -> pb::FinishReason {
    match r {
        d::FinishReason::Stop => pb::FinishReason::Stop,
        d::FinishReason::Length => pb::FinishReason::Length,
        d::FinishReason::ToolCalls => pb::FinishReason::ToolCalls,
        d::FinishReason::ContentFilter => pb::FinishReason::ContentFilter,
    }
}

fn finish_from_pb(r: i32) -> Option<d::FinishReason> {
    match pb::FinishReason::try_from(r) {
        Ok(pb::FinishReason::Stop) => Some(d::FinishReason::Stop),
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
        reasoning_tokens,
        estimated,
        cost_usd,
    } = *u;
    pb::Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: u.total_tokens(),
        cached_tokens,
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
        reasoning_tokens,
        estimated,
        cost_usd,
    } = u;
    d::Usage {
        prompt_tokens,
        completion_tokens,
        cached_tokens,
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
                } = c;
                let pb::AssistantMessage {
                    content,
                    tool_calls,
                } = message.unwrap_or_default();
                d::Choice {
                    index,
                    content,
                    tool_calls: tool_calls.into_iter().map(tool_call_from_pb).collect(),
                    finish_reason: finish_from_pb(finish_reason).unwrap_or(d::FinishReason::Stop),
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
        } = c;
        let pb::Delta {
            role,
            content,
            tool_calls,
        } = delta.unwrap_or_default();
        if role == pb::Role::Assistant as i32 {
            events.push(d::ChatEvent::Role { index });
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
        if let Some(reason) = finish_from_pb(finish_reason) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_survives_the_round_trip() {
        let req = d::ChatRequest {
            model: "gpt-4o".into(),
            messages: vec![
                d::Message::text(d::Role::System, "Be brief."),
                d::Message {
                    role: d::Role::User,
                    content: vec![
                        d::ContentPart::Text("Hi".into()),
                        d::ContentPart::ImageUrl {
                            url: "data:image/png;base64,AA==".into(),
                            detail: d::ImageDetail::High,
                        },
                    ],
                    name: Some("ada".into()),
                    tool_calls: vec![],
                    tool_call_id: None,
                },
                d::Message {
                    role: d::Role::Assistant,
                    content: vec![],
                    name: None,
                    tool_calls: vec![d::ToolCall {
                        id: "t1".into(),
                        name: "f".into(),
                        arguments: "{}".into(),
                    }],
                    tool_call_id: None,
                },
                d::Message {
                    tool_call_id: Some("t1".into()),
                    ..d::Message::text(d::Role::Tool, "42")
                },
            ],
            tools: vec![d::Tool {
                name: "f".into(),
                description: Some("does f".into()),
                parameters: Some(
                    serde_json::json!({"type":"object","properties":{"n":{"type":"integer","minimum":1}}}),
                ),
                strict: Some(true),
            }],
            tool_choice: Some(d::ToolChoice::Function("f".into())),
            parallel_tool_calls: Some(false),
            response_format: d::ResponseFormat::JsonSchema(d::JsonSchemaFormat {
                name: "s".into(),
                description: None,
                schema: serde_json::json!({"type":"object"}),
                strict: Some(true),
            }),
            stop: vec!["END".into()],
            n: Some(2),
            max_tokens: Some(10),
            session_id: Some("sess".into()),
            metadata: [("k".to_string(), "v".to_string())].into(),
            sampling: d::SamplingParams {
                temperature: Some(0.5),
                seed: Some(3),
                user: Some("u".into()),
                other: vec!["store".into()],
                ..Default::default()
            },
            reasoning_effort: Some("high".into()),
        };
        assert_eq!(chat_request(Some(chat_params(req.clone()))).unwrap(), req);
    }

    #[test]
    fn events_survive_the_round_trip() {
        let meta = d::CompletionMeta {
            id: "c".into(),
            created: 1,
            model: "m".into(),
            ignored_params: vec!["seed".into()],
        };
        let events = vec![
            d::ChatEvent::Role { index: 0 },
            d::ChatEvent::Text {
                index: 0,
                text: "hi".into(),
            },
            d::ChatEvent::ToolCall {
                index: 1,
                call: d::ToolCallDelta {
                    index: 0,
                    id: Some("t".into()),
                    name: Some("f".into()),
                    arguments: "{".into(),
                },
            },
            d::ChatEvent::Finish {
                index: 0,
                reason: d::FinishReason::Length,
            },
            d::ChatEvent::Usage(d::Usage {
                prompt_tokens: 5,
                completion_tokens: 2,
                cached_tokens: 1,
                reasoning_tokens: 0,
                estimated: true,
                cost_usd: 0.5,
            }),
        ];
        for (i, e) in events.into_iter().enumerate() {
            let msg = event_to_pb(&meta, e.clone(), i == 0);
            assert_eq!(msg.ignored_params.is_empty(), i != 0);
            assert_eq!(events_from_pb(msg), vec![e]);
        }
    }

    #[test]
    fn bad_json_text_is_invalid_argument() {
        let params = pb::ChatCompletionParams {
            model: "gpt-4o".into(),
            tools: vec![pb::Tool {
                function: Some(pb::FunctionDefinition {
                    name: "f".into(),
                    parameters_json: "{oops".into(),
                    ..Default::default()
                }),
            }],
            ..Default::default()
        };
        let err = chat_request(Some(params)).unwrap_err();
        assert_eq!(err.param(), Some("tools[0].function.parameters_json"));
    }
}
