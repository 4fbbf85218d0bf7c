//! OpenAI JSON ⇄ domain. Requests: every field of `ChatCompletionRequest` is consumed here (no
//! `..`), messages and their content parts are parsed one by one so errors name the exact path.
//! Responses: a domain `ChatCompletion` becomes an OpenAI `chat.completion`.

use serde_json::Value;

use crate::chat::ChatError;
use crate::chat::types::{
    ChatCompletion, ChatRequest, ContentPart, ImageDetail, JsonSchemaFormat, Message,
    ResponseFormat, Role, SamplingParams, Tool, ToolCall, ToolChoice, Usage,
};

use super::openai::{self, KNOWN_UNUSED_FIELDS};

/// The parts of a request that stay in the HTTP layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamMode {
    pub stream: bool,
    pub include_usage: bool,
}

pub fn chat_request(
    req: openai::ChatCompletionRequest,
    header_session: Option<String>,
) -> Result<(ChatRequest, StreamMode), ChatError> {
    let openai::ChatCompletionRequest {
        model,
        messages,
        stream,
        stream_options,
        max_tokens,
        max_completion_tokens,
        n,
        stop,
        temperature,
        top_p,
        presence_penalty,
        frequency_penalty,
        seed,
        logit_bias,
        user,
        logprobs,
        top_logprobs,
        tools,
        tool_choice,
        parallel_tool_calls,
        functions,
        function_call,
        response_format,
        metadata,
        session_id,
        reasoning_effort,
        extra,
    } = req;

    let messages = messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| message(i, m))
        .collect::<Result<Vec<_>, _>>()?;
    let mut parsed_tools = match tools {
        Some(v) if !v.is_null() => parse_tools(v, "tools")?,
        _ => Vec::new(),
    };
    if let Some(v) = functions.filter(|v| !v.is_null()) {
        // Legacy `functions` are tools without the wrapper.
        let wrapped = match v {
            Value::Array(items) => Value::Array(
                items
                    .into_iter()
                    .map(|f| serde_json::json!({"type": "function", "function": f}))
                    .collect(),
            ),
            other => other,
        };
        parsed_tools.extend(parse_tools(wrapped, "functions")?);
    }
    let tool_choice = match (tool_choice, function_call) {
        (Some(v), _) if !v.is_null() => Some(parse_tool_choice(&v, "tool_choice")?),
        (_, Some(v)) if !v.is_null() => Some(parse_tool_choice(&v, "function_call")?),
        _ => None,
    };
    let max_tokens = match (max_completion_tokens, max_tokens) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let other: Vec<String> = extra
        .iter()
        .filter(|(k, v)| KNOWN_UNUSED_FIELDS.contains(&k.as_str()) && !v.is_null())
        .map(|(k, _)| k.clone())
        .collect();
    let stream = stream.unwrap_or(false);
    let include_usage = stream_options
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    let request = ChatRequest {
        model,
        messages,
        tools: parsed_tools,
        tool_choice,
        parallel_tool_calls,
        response_format: match response_format {
            Some(v) if !v.is_null() => parse_response_format(&v)?,
            _ => ResponseFormat::Text,
        },
        stop: match stop {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s],
            Some(Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .map(|(i, s)| match s {
                    Value::String(s) => Ok(s),
                    _ => Err(ChatError::invalid(
                        format!("`stop[{i}]` must be a string."),
                        format!("stop[{i}]"),
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(ChatError::invalid(
                    "`stop` must be a string or an array of strings.",
                    "stop",
                ));
            }
        },
        n,
        max_tokens,
        session_id: session_id.or(header_session).filter(|s| !s.is_empty()),
        metadata: metadata.unwrap_or_default(),
        sampling: SamplingParams {
            temperature,
            top_p,
            presence_penalty,
            frequency_penalty,
            seed,
            logit_bias: logit_bias.unwrap_or_default(),
            user,
            logprobs,
            top_logprobs,
            other,
        },
        reasoning_effort,
    };
    Ok((
        request,
        StreamMode {
            stream,
            include_usage: stream && include_usage,
        },
    ))
}

fn field<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn string_field(obj: &Value, key: &str, path: &str) -> Result<Option<String>, ChatError> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ChatError::invalid(
            format!("`{path}.{key}` must be a string."),
            format!("{path}.{key}"),
        )),
    }
}

fn message(i: usize, value: Value) -> Result<Message, ChatError> {
    let path = format!("messages[{i}]");
    if !value.is_object() {
        return Err(ChatError::invalid(
            format!("`{path}` must be an object with a `role`."),
            path,
        ));
    }
    let role = match string_field(&value, "role", &path)?.as_deref() {
        Some("system") => Role::System,
        Some("developer") => Role::Developer,
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some("tool" | "function") => Role::Tool,
        Some(other) => {
            return Err(ChatError::invalid(
                format!(
                    "`{path}.role` must be one of system, developer, user, assistant, tool; got \
                     `{other}`."
                ),
                format!("{path}.role"),
            ));
        }
        None => {
            return Err(ChatError::invalid(
                format!("`{path}.role` is required."),
                format!("{path}.role"),
            ));
        }
    };
    let legacy_function = value.get("role").and_then(Value::as_str) == Some("function");
    let content = match field(&value, "content") {
        None if role == Role::Assistant => Vec::new(),
        None => {
            return Err(ChatError::invalid(
                format!(
                    "`{path}.content` is required for {} messages.",
                    role.as_str()
                ),
                format!("{path}.content"),
            ));
        }
        Some(c) => content_parts(c, &format!("{path}.content"))?,
    };
    let name = string_field(&value, "name", &path)?;
    let mut tool_calls = match field(&value, "tool_calls") {
        None => Vec::new(),
        Some(Value::Array(calls)) => calls
            .iter()
            .enumerate()
            .map(|(j, c)| tool_call(c, &format!("{path}.tool_calls[{j}]")))
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ChatError::invalid(
                format!("`{path}.tool_calls` must be an array."),
                format!("{path}.tool_calls"),
            ));
        }
    };
    if let Some(call) = field(&value, "function_call") {
        // Legacy single function call; it has no id, so one is derived from its position.
        let mut parsed = function_of(call, &format!("{path}.function_call"))?;
        parsed.id = format!("call_legacy_{i}");
        tool_calls.push(parsed);
    }
    let tool_call_id = if legacy_function {
        Some(format!("call_legacy_{}", i.saturating_sub(1)))
    } else {
        string_field(&value, "tool_call_id", &path)?
    };
    if role == Role::Tool && tool_call_id.is_none() {
        return Err(ChatError::invalid(
            format!("`{path}.tool_call_id` is required for tool messages."),
            format!("{path}.tool_call_id"),
        ));
    }
    Ok(Message {
        role,
        content,
        name,
        tool_calls,
        tool_call_id,
    })
}

fn content_parts(content: &Value, path: &str) -> Result<Vec<ContentPart>, ChatError> {
    match content {
        Value::String(s) => Ok(vec![ContentPart::Text(s.clone())]),
        Value::Array(parts) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| content_part(p, &format!("{path}[{j}]")))
            .collect(),
        _ => Err(ChatError::invalid(
            format!("`{path}` must be a string or an array of content parts."),
            path,
        )),
    }
}

fn content_part(part: &Value, path: &str) -> Result<ContentPart, ChatError> {
    match part.get("type").and_then(Value::as_str) {
        Some("text") => match field(part, "text") {
            Some(Value::String(t)) => Ok(ContentPart::Text(t.clone())),
            _ => Err(ChatError::invalid(
                format!("`{path}.text` must be a string."),
                format!("{path}.text"),
            )),
        },
        Some("refusal") => Ok(ContentPart::Text(
            string_field(part, "refusal", path)?.unwrap_or_default(),
        )),
        Some("image_url") => {
            let image = field(part, "image_url").ok_or_else(|| {
                ChatError::invalid(
                    format!("`{path}.image_url` is required."),
                    format!("{path}.image_url"),
                )
            })?;
            let (url, detail) = match image {
                Value::String(url) => (url.clone(), None),
                obj => (
                    string_field(obj, "url", &format!("{path}.image_url"))?.ok_or_else(|| {
                        ChatError::invalid(
                            format!("`{path}.image_url.url` is required."),
                            format!("{path}.image_url.url"),
                        )
                    })?,
                    string_field(obj, "detail", &format!("{path}.image_url"))?,
                ),
            };
            let detail = match detail.as_deref() {
                None => ImageDetail::Unspecified,
                Some("auto") => ImageDetail::Auto,
                Some("low") => ImageDetail::Low,
                Some("high") => ImageDetail::High,
                Some(other) => {
                    return Err(ChatError::invalid(
                        format!(
                            "`{path}.image_url.detail` must be auto, low or high; got `{other}`."
                        ),
                        format!("{path}.image_url.detail"),
                    ));
                }
            };
            Ok(ContentPart::ImageUrl { url, detail })
        }
        Some(other @ ("input_audio" | "file")) => Err(ChatError::invalid_with_code(
            format!(
                "Content parts of type `{other}` are not supported by Claude through this gateway; send text or images."
            ),
            format!("{path}.type"),
            "unsupported_content_type",
        )),
        Some(other) => Err(ChatError::invalid(
            format!("`{path}.type` must be text or image_url; got `{other}`."),
            format!("{path}.type"),
        )),
        None => Err(ChatError::invalid(
            format!("`{path}.type` is required."),
            format!("{path}.type"),
        )),
    }
}

fn tool_call(call: &Value, path: &str) -> Result<ToolCall, ChatError> {
    let id = string_field(call, "id", path)?.ok_or_else(|| {
        ChatError::invalid(format!("`{path}.id` is required."), format!("{path}.id"))
    })?;
    let function = field(call, "function").ok_or_else(|| {
        ChatError::invalid(
            format!("`{path}.function` is required."),
            format!("{path}.function"),
        )
    })?;
    let mut parsed = function_of(function, &format!("{path}.function"))?;
    parsed.id = id;
    Ok(parsed)
}

fn function_of(function: &Value, path: &str) -> Result<ToolCall, ChatError> {
    let name = string_field(function, "name", path)?.ok_or_else(|| {
        ChatError::invalid(
            format!("`{path}.name` is required."),
            format!("{path}.name"),
        )
    })?;
    let arguments = match field(function, "arguments") {
        None => "{}".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    Ok(ToolCall {
        id: String::new(),
        name,
        arguments,
    })
}

fn parse_tools(value: Value, path: &str) -> Result<Vec<Tool>, ChatError> {
    let Value::Array(items) = value else {
        return Err(ChatError::invalid(
            format!("`{path}` must be an array."),
            path,
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let p = format!("{path}[{i}]");
            match item.get("type").and_then(Value::as_str) {
                Some("function") => {}
                other => {
                    return Err(ChatError::invalid(
                        format!(
                            "`{p}.type` must be `function`; got {}.",
                            other.map_or("nothing".to_string(), |o| format!("`{o}`"))
                        ),
                        format!("{p}.type"),
                    ));
                }
            }
            let f = field(item, "function").ok_or_else(|| {
                ChatError::invalid(
                    format!("`{p}.function` is required."),
                    format!("{p}.function"),
                )
            })?;
            let fp = format!("{p}.function");
            let name = string_field(f, "name", &fp)?.ok_or_else(|| {
                ChatError::invalid(format!("`{fp}.name` is required."), format!("{fp}.name"))
            })?;
            let parameters = field(f, "parameters").cloned();
            if parameters.as_ref().is_some_and(|p| !p.is_object()) {
                return Err(ChatError::invalid(
                    format!("`{fp}.parameters` must be a JSON Schema object."),
                    format!("{fp}.parameters"),
                ));
            }
            Ok(Tool {
                name,
                description: string_field(f, "description", &fp)?,
                parameters,
                strict: field(f, "strict").and_then(Value::as_bool),
            })
        })
        .collect()
}

fn parse_tool_choice(value: &Value, path: &str) -> Result<ToolChoice, ChatError> {
    match value {
        Value::String(s) => match s.as_str() {
            "none" => Ok(ToolChoice::None),
            "auto" => Ok(ToolChoice::Auto),
            "required" => Ok(ToolChoice::Required),
            other => Err(ChatError::invalid(
                format!("`{path}` must be none, auto, required or a function; got `{other}`."),
                path,
            )),
        },
        obj => {
            let name = field(obj, "function")
                .and_then(|f| f.get("name"))
                .or_else(|| obj.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ChatError::invalid(
                        format!("`{path}` must name a function: {{\"type\":\"function\",\"function\":{{\"name\":…}}}}."),
                        path,
                    )
                })?;
            Ok(ToolChoice::Function(name.to_string()))
        }
    }
}

fn parse_response_format(value: &Value) -> Result<ResponseFormat, ChatError> {
    match value.get("type").and_then(Value::as_str) {
        Some("text") => Ok(ResponseFormat::Text),
        Some("json_object") => Ok(ResponseFormat::JsonObject),
        Some("json_schema") => {
            let spec = field(value, "json_schema").ok_or_else(|| {
                ChatError::invalid(
                    "`response_format.json_schema` is required for type json_schema.",
                    "response_format.json_schema",
                )
            })?;
            let p = "response_format.json_schema";
            let schema = field(spec, "schema")
                .cloned()
                .unwrap_or(serde_json::json!({}));
            if !schema.is_object() {
                return Err(ChatError::invalid(
                    "`response_format.json_schema.schema` must be a JSON Schema object.",
                    "response_format.json_schema.schema",
                ));
            }
            Ok(ResponseFormat::JsonSchema(JsonSchemaFormat {
                name: string_field(spec, "name", p)?.unwrap_or_else(|| "response".into()),
                description: string_field(spec, "description", p)?,
                schema,
                strict: field(spec, "strict").and_then(Value::as_bool),
            }))
        }
        other => Err(ChatError::invalid(
            format!(
                "`response_format.type` must be text, json_object or json_schema; got {}.",
                other.map_or("nothing".to_string(), |o| format!("`{o}`"))
            ),
            "response_format.type",
        )),
    }
}

pub fn usage(u: &Usage) -> openai::CompletionUsage {
    openai::CompletionUsage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        total_tokens: u.total_tokens(),
        prompt_tokens_details: openai::PromptTokensDetails {
            cached_tokens: u.cached_tokens,
        },
        completion_tokens_details: openai::CompletionTokensDetails {
            reasoning_tokens: u.reasoning_tokens,
        },
        estimated: u.estimated,
    }
}

pub fn completion(c: ChatCompletion) -> openai::ChatCompletion {
    let ChatCompletion {
        meta,
        choices,
        usage: u,
    } = c;
    openai::ChatCompletion {
        id: meta.id,
        object: "chat.completion",
        created: meta.created,
        model: meta.model,
        choices: choices
            .into_iter()
            .map(|c| openai::Choice {
                index: c.index,
                message: openai::AssistantMessage {
                    role: "assistant",
                    content: c.content,
                    refusal: None,
                    tool_calls: c
                        .tool_calls
                        .into_iter()
                        .map(|t| openai::ToolCall {
                            id: t.id,
                            kind: "function",
                            function: openai::FunctionCall {
                                name: t.name,
                                arguments: t.arguments,
                            },
                        })
                        .collect(),
                },
                finish_reason: c.finish_reason.as_str(),
                logprobs: None,
            })
            .collect(),
        usage: usage(&u),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::error::parse_json;

    fn parse(body: &str) -> Result<(ChatRequest, StreamMode), ChatError> {
        chat_request(parse_json(body.as_bytes())?, None)
    }

    #[test]
    fn a_full_request_is_converted() {
        let (req, mode) = parse(
            r#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},
                "messages":[{"role":"system","content":"Be brief."},
                            {"role":"user","content":[{"type":"text","text":"Hi"},
                              {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA","detail":"low"}}]}],
                "stop":"END","max_completion_tokens":50,"max_tokens":80,"temperature":0.3,
                "store":false,"some_unknown":1,"seed":null,
                "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}],
                "tool_choice":{"type":"function","function":{"name":"get_weather"}},
                "response_format":{"type":"json_object"}}"#,
        )
        .unwrap();
        assert_eq!(
            mode,
            StreamMode {
                stream: true,
                include_usage: true
            }
        );
        assert_eq!(req.messages.len(), 2);
        assert_eq!(req.messages[1].content.len(), 2);
        assert_eq!(req.stop, vec!["END"]);
        assert_eq!(req.max_tokens, Some(50));
        assert_eq!(req.sampling.temperature, Some(0.3));
        assert_eq!(req.sampling.seed, None);
        assert_eq!(req.sampling.other, vec!["store"]);
        assert_eq!(req.tools[0].name, "get_weather");
        assert_eq!(
            req.tool_choice,
            Some(ToolChoice::Function("get_weather".into()))
        );
        assert_eq!(req.response_format, ResponseFormat::JsonObject);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (r#"{"messages":[]}"#, "model"),
            (r#"{"model":"gpt-4o"}"#, "messages"),
            (
                r#"{"model":"gpt-4o","messages":[{"content":"x"}]}"#,
                "messages[0].role",
            ),
            (
                r#"{"model":"gpt-4o","messages":[{"role":"user"}]}"#,
                "messages[0].content",
            ),
            (
                r#"{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":5}]}]}"#,
                "messages[0].content[0].text",
            ),
            (
                r#"{"model":"gpt-4o","messages":[{"role":"wizard","content":"x"}]}"#,
                "messages[0].role",
            ),
            (
                r#"{"model":"gpt-4o","messages":[],"max_tokens":"x"}"#,
                "max_tokens",
            ),
            (r#"{"model":"gpt-4o","messages":[],"stop":5}"#, "stop"),
            (r#"{"model":5,"messages":[]}"#, "model"),
        ];
        for (body, param) in cases {
            let err = parse(body).unwrap_err();
            assert_eq!(err.param(), Some(param), "{body}: {err}");
        }
    }
}
