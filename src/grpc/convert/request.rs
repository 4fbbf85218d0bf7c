//! Requests, protobuf ⇄ domain: chat parameters, messages, tools. Every generated message is
//! destructured without `..`, so a field added to the proto is a compile error here until it is
//! handled. JSON carried as text (tool parameters, schemas) is parsed here and refused with
//! INVALID_ARGUMENT when it is not JSON.

use crate::chat::ChatError;
use crate::chat::types as d;

use super::super::pb;

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
        response,
        thinking_budget_tokens,
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
        response: response.map(response_turn),
        reasoning_effort: (!reasoning_effort.is_empty()).then_some(reasoning_effort),
        thinking_budget: thinking_budget_tokens,
    })
}

pub fn message(i: usize, m: pb::ChatMessage) -> Result<d::Message, ChatError> {
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
        .enumerate()
        .map(|(j, part)| {
            Ok(match part {
                pb::content_part::Part::Text(t) => d::ContentPart::Text(t),
                pb::content_part::Part::RedactedThinking(pb::RedactedThinking { data, model }) => {
                    d::ContentPart::RedactedThinking { data, model }
                }
                pb::content_part::Part::Document(pb::Document {
                    source,
                    title,
                    context,
                }) => d::ContentPart::Document(d::Document {
                    source: match source {
                        Some(pb::document::Source::PdfBase64(data)) => {
                            d::DocumentSource::Pdf { data }
                        }
                        Some(pb::document::Source::Text(data)) => d::DocumentSource::Text { data },
                        None => {
                            return Err(ChatError::invalid(
                                format!(
                                    "`messages[{i}].content[{j}].document.source` must be set."
                                ),
                                format!("messages[{i}].content[{j}].document.source"),
                            ));
                        }
                    },
                    title,
                    context,
                }),
                pb::content_part::Part::Thinking(pb::Thinking {
                    thinking,
                    signature,
                    model,
                }) => d::ContentPart::Thinking {
                    thinking,
                    signature,
                    model,
                },
                pb::content_part::Part::ImageUrl(pb::ImageUrl { url, detail }) => {
                    d::ContentPart::ImageUrl {
                        url,
                        detail: match pb::ImageDetail::try_from(detail) {
                            Ok(pb::ImageDetail::Auto) => d::ImageDetail::Auto,
                            Ok(pb::ImageDetail::Low) => d::ImageDetail::Low,
                            Ok(pb::ImageDetail::High) => d::ImageDetail::High,
                            Ok(pb::ImageDetail::Unspecified) | Err(_) => {
                                d::ImageDetail::Unspecified
                            }
                        },
                    }
                }
            })
        })
        .collect::<Result<Vec<_>, ChatError>>()?;
    Ok(d::Message {
        role,
        content,
        name: (!name.is_empty()).then_some(name),
        tool_calls: tool_calls.into_iter().map(tool_call_from_pb).collect(),
        tool_call_id: (!tool_call_id.is_empty()).then_some(tool_call_id),
    })
}

pub(super) fn tool_call_from_pb(c: pb::ToolCall) -> d::ToolCall {
    let pb::ToolCall { id, function } = c;
    let pb::FunctionCall { name, arguments } = function.unwrap_or_default();
    d::ToolCall {
        id,
        name,
        arguments,
    }
}

pub(super) fn tool_call_to_pb(c: d::ToolCall) -> pb::ToolCall {
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
        thinking_budget,
        response,
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
        response: response.map(response_turn_to_pb),
        thinking_budget_tokens: thinking_budget,
    }
}

fn response_turn(t: pb::ResponseTurn) -> d::ResponseTurn {
    let pb::ResponseTurn {
        id,
        previous_response_id,
        store,
        leading_instructions,
        document,
    } = t;
    d::ResponseTurn {
        id,
        previous: (!previous_response_id.is_empty()).then_some(previous_response_id),
        store,
        instructions: leading_instructions,
        document,
    }
}

fn response_turn_to_pb(t: d::ResponseTurn) -> pb::ResponseTurn {
    let d::ResponseTurn {
        id,
        previous,
        store,
        instructions,
        document,
    } = t;
    pb::ResponseTurn {
        id,
        previous_response_id: previous.unwrap_or_default(),
        store,
        leading_instructions: instructions,
        document,
    }
}

pub fn message_to_pb(m: d::Message) -> pb::ChatMessage {
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
                    d::ContentPart::RedactedThinking { data, model } => {
                        pb::content_part::Part::RedactedThinking(pb::RedactedThinking {
                            data,
                            model,
                        })
                    }
                    d::ContentPart::Document(d::Document {
                        source,
                        title,
                        context,
                    }) => pb::content_part::Part::Document(pb::Document {
                        source: Some(match source {
                            d::DocumentSource::Pdf { data } => {
                                pb::document::Source::PdfBase64(data)
                            }
                            d::DocumentSource::Text { data } => pb::document::Source::Text(data),
                        }),
                        title,
                        context,
                    }),
                    d::ContentPart::Thinking {
                        thinking,
                        signature,
                        model,
                    } => pb::content_part::Part::Thinking(pb::Thinking {
                        thinking,
                        signature,
                        model,
                    }),
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
