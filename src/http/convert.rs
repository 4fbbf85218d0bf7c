//! OpenAI JSON ⇄ domain. Requests: every field of `ChatCompletionRequest` is consumed here (no
//! `..`), messages and their content parts are parsed one by one so errors name the exact path.
//! Responses: a domain `ChatCompletion` becomes an OpenAI `chat.completion`.

use serde_json::Value;

use crate::chat::ChatError;
use crate::chat::message_json::{self, field, string_field};
use crate::chat::types::{
    ChatCompletion, ChatRequest, JsonSchemaFormat, ResponseFormat, SamplingParams, Tool,
    ToolChoice, Usage,
};

use super::openai::{self, KNOWN_UNUSED_FIELDS};

/// The parts of a request that stay in the HTTP layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamMode {
    pub stream: bool,
    pub include_usage: bool,
    /// The request used the legacy `functions`: answer with `function_call`, one call at most.
    pub legacy_functions: bool,
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
        .map(|(i, m)| message_json::parse_message(i, m))
        .collect::<Result<Vec<_>, _>>()?;
    let mut parsed_tools = match tools {
        Some(v) if !v.is_null() => parse_tools(v, "tools")?,
        _ => Vec::new(),
    };
    let legacy_functions =
        parsed_tools.is_empty() && functions.as_ref().is_some_and(|v| !v.is_null());
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
    // Audio output cannot be produced at all: refused rather than silently answered as text.
    let wants_audio = extra.get("audio").is_some_and(|v| !v.is_null())
        || extra
            .get("modalities")
            .and_then(Value::as_array)
            .is_some_and(|m| m.iter().any(|x| x == "audio"));
    if wants_audio {
        return Err(ChatError::invalid_with_code(
            "Claude cannot produce audio output through this gateway; ask for text only.",
            "modalities",
            "unsupported_parameter",
        ));
    }
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
        // A legacy function call is one call.
        parallel_tool_calls: if legacy_functions {
            Some(false)
        } else {
            parallel_tool_calls
        },
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
        thinking_budget: None,
        response: None,
    };
    Ok((
        request,
        StreamMode {
            stream,
            include_usage: stream && include_usage,
            legacy_functions,
        },
    ))
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
            // That it is a JSON Schema object is checked by validation, for both protocols.
            Ok(Tool {
                name,
                description: string_field(f, "description", &fp)?,
                parameters: field(f, "parameters").cloned(),
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

/// The OpenAI `chat.completion`; with `legacy_functions` a call is `message.function_call`
/// and the finish reason `function_call`.
pub fn completion(c: ChatCompletion, legacy_functions: bool) -> openai::ChatCompletion {
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
            .map(|c| {
                let mut tool_calls: Vec<openai::ToolCall> = c
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
                    .collect();
                let mut finish_reason = c.finish_reason.as_str();
                let function_call = if legacy_functions && !tool_calls.is_empty() {
                    finish_reason = "function_call";
                    Some(tool_calls.remove(0).function)
                } else {
                    None
                };
                openai::Choice {
                    index: c.index,
                    message: openai::AssistantMessage {
                        role: "assistant",
                        content: c.content,
                        refusal: None,
                        tool_calls,
                        function_call,
                    },
                    finish_reason,
                    logprobs: None,
                }
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
                include_usage: true,
                legacy_functions: false
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
