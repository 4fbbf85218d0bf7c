//! Responses request → domain `ChatRequest`. Every field of `CreateResponseRequest` is consumed
//! here (no `..`); input items and their content parts are parsed one by one so errors name the
//! exact path. The conversion also keeps what the response object echoes back (`Echo`). Rules
//! that protect the engine (sizes, counts, the last turn being the user's) are not checked here
//! but in `chat::validate`, the same for every door.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::chat::ChatError;
use crate::chat::message_json::{field, string_field};
use crate::chat::types::{
    ChatRequest, ContentPart, ImageDetail, JsonSchemaFormat, Message, ResponseFormat, Role,
    SamplingParams, Tool, ToolCall, ToolChoice,
};

use super::types::{CreateResponseRequest, KNOWN_UNUSED_FIELDS, STATEFUL_FIELDS};

/// What the response object repeats of the request, as OpenAI's does.
#[derive(Debug, Clone, PartialEq)]
pub struct Echo {
    pub model: String,
    pub instructions: Option<String>,
    pub max_output_tokens: Option<u32>,
    pub parallel_tool_calls: bool,
    pub tools: Vec<Value>,
    pub tool_choice: Value,
    pub text: Value,
    pub reasoning: Option<Value>,
    pub metadata: BTreeMap<String, String>,
}

/// The converted request, whether to stream, and the echo.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    pub request: ChatRequest,
    pub stream: bool,
    pub echo: Echo,
}

/// Hosted tools OpenAI runs on its own servers; Claude cannot run them here.
const HOSTED_TOOLS: &[&str] = &[
    "web_search",
    "web_search_preview",
    "web_search_preview_2025_03_11",
    "web_search_2025_08_26",
    "file_search",
    "computer",
    "computer_use_preview",
    "code_interpreter",
    "image_generation",
    "mcp",
    "local_shell",
    "shell",
    "apply_patch",
    "tool_search",
];

fn unsupported(message: impl Into<String>, param: impl Into<String>) -> ChatError {
    ChatError::invalid_with_code(message, param, "unsupported_parameter")
}

pub fn create_request(req: CreateResponseRequest) -> Result<Converted, ChatError> {
    let CreateResponseRequest {
        model,
        input,
        instructions,
        stream,
        stream_options: _,
        tools,
        tool_choice,
        parallel_tool_calls,
        max_output_tokens,
        text,
        reasoning,
        metadata,
        temperature,
        top_p,
        top_logprobs,
        user,
        store,
        background,
        previous_response_id,
        extra,
    } = req;

    if previous_response_id
        .as_deref()
        .is_some_and(|s| !s.is_empty())
    {
        return Err(unsupported(
            "`previous_response_id` is not supported by this gateway yet: responses are not \
             stored. Send the whole conversation in `input` (earlier outputs as `message`, \
             `function_call` and `function_call_output` items).",
            "previous_response_id",
        ));
    }
    if background == Some(true) {
        return Err(unsupported(
            "`background: true` is not supported by this gateway yet; run the request in the \
             foreground (optionally with `stream: true`).",
            "background",
        ));
    }
    if let Some(name) = STATEFUL_FIELDS
        .iter()
        .find(|f| extra.get(**f).is_some_and(|v| !v.is_null()))
    {
        return Err(unsupported(
            format!(
                "`{name}` is not supported by this gateway yet: it keeps no stored \
                 conversations or prompts. Send the whole conversation in `input`."
            ),
            *name,
        ));
    }

    let mut other: Vec<String> = extra
        .iter()
        .filter(|(k, v)| KNOWN_UNUSED_FIELDS.contains(&k.as_str()) && !v.is_null())
        .map(|(k, _)| k.clone())
        .collect();
    if store == Some(true) {
        other.push("store".into());
    }

    let mut messages = Vec::new();
    if let Some(text) = instructions.as_ref().filter(|t| !t.is_empty()) {
        messages.push(Message::text(Role::System, text.clone()));
    }
    match input {
        None => {}
        Some(Value::String(s)) => messages.push(Message::text(Role::User, s)),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                push_item(&mut messages, i, item, &mut other)?;
            }
        }
        Some(_) => {
            return Err(ChatError::invalid(
                "`input` must be a string or an array of input items.",
                "input",
            ));
        }
    }

    let (parsed_tools, tools_echo) = match tools {
        Some(Value::Array(items)) => parse_tools(&items)?,
        None => (Vec::new(), Vec::new()),
        Some(_) => return Err(ChatError::invalid("`tools` must be an array.", "tools")),
    };
    let (tool_choice, tool_choice_echo) = match tool_choice {
        None => (None, json!("auto")),
        Some(v) => (Some(parse_tool_choice(&v)?), v),
    };
    let (response_format, text_echo) = parse_text(text.as_ref(), &mut other)?;
    let (reasoning_effort, reasoning_echo) = parse_reasoning(reasoning.as_ref(), &mut other)?;
    let metadata = metadata.unwrap_or_default();

    let request = ChatRequest {
        model: model.clone(),
        messages,
        tools: parsed_tools,
        tool_choice,
        parallel_tool_calls,
        response_format,
        stop: Vec::new(),
        n: None,
        max_tokens: max_output_tokens,
        session_id: None,
        metadata: metadata.clone(),
        sampling: SamplingParams {
            temperature,
            top_p,
            user,
            top_logprobs,
            other,
            ..SamplingParams::default()
        },
        reasoning_effort,
    };
    Ok(Converted {
        request,
        stream: stream.unwrap_or(false),
        echo: Echo {
            model,
            instructions,
            max_output_tokens,
            parallel_tool_calls: parallel_tool_calls.unwrap_or(true),
            tools: tools_echo,
            tool_choice: tool_choice_echo,
            text: text_echo,
            reasoning: reasoning_echo,
            metadata,
        },
    })
}

/// Appends the domain message(s) of input item `i`.
fn push_item(
    messages: &mut Vec<Message>,
    i: usize,
    item: &Value,
    other: &mut Vec<String>,
) -> Result<(), ChatError> {
    let path = format!("input[{i}]");
    if !item.is_object() {
        return Err(ChatError::invalid(
            format!("`{path}` must be an object (an input item)."),
            path,
        ));
    }
    // An item with a `role` and no `type` is a message (OpenAI's "easy" input message).
    let kind = match string_field(item, "type", &path)? {
        Some(kind) => kind,
        None if field(item, "role").is_some() => "message".to_string(),
        None => {
            return Err(ChatError::invalid(
                format!("`{path}.type` is required."),
                format!("{path}.type"),
            ));
        }
    };
    match kind.as_str() {
        "message" => messages.push(message(item, &path)?),
        "function_call" => {
            let call = ToolCall {
                id: required_string(item, "call_id", &path)?,
                name: required_string(item, "name", &path)?,
                arguments: string_field(item, "arguments", &path)?
                    .unwrap_or_else(|| "{}".to_string()),
            };
            // Calls right after an assistant message (or after other calls) belong to it.
            match messages.last_mut() {
                Some(last) if last.role == Role::Assistant => last.tool_calls.push(call),
                _ => messages.push(Message {
                    role: Role::Assistant,
                    content: Vec::new(),
                    name: None,
                    tool_calls: vec![call],
                    tool_call_id: None,
                }),
            }
        }
        "function_call_output" => {
            let call_id = required_string(item, "call_id", &path)?;
            let content = match field(item, "output") {
                Some(Value::String(s)) => vec![ContentPart::Text(s.clone())],
                Some(Value::Array(parts)) => parts
                    .iter()
                    .enumerate()
                    .map(|(j, p)| content_part(p, &format!("{path}.output[{j}]")))
                    .collect::<Result<_, _>>()?,
                _ => {
                    return Err(ChatError::invalid(
                        format!("`{path}.output` must be a string or an array of content parts."),
                        format!("{path}.output"),
                    ));
                }
            };
            messages.push(Message {
                role: Role::Tool,
                content,
                name: None,
                tool_calls: Vec::new(),
                tool_call_id: Some(call_id),
            });
        }
        // Reasoning items come from OpenAI models; Claude's thinking cannot be rebuilt from
        // them, and leaving them out changes no visible turn.
        "reasoning" => {
            if !other.iter().any(|o| o == "input.reasoning") {
                other.push("input.reasoning".into());
            }
        }
        "item_reference" => {
            return Err(unsupported(
                format!(
                    "`{path}` is an item_reference; responses are not stored by this gateway \
                     yet, so send the item itself."
                ),
                format!("{path}.type"),
            ));
        }
        other => {
            return Err(unsupported(
                format!(
                    "Input items of type `{other}` are not supported by this gateway; send \
                     message, function_call and function_call_output items."
                ),
                format!("{path}.type"),
            ));
        }
    }
    Ok(())
}

fn required_string(item: &Value, key: &str, path: &str) -> Result<String, ChatError> {
    string_field(item, key, path)?.ok_or_else(|| {
        ChatError::invalid(
            format!("`{path}.{key}` is required."),
            format!("{path}.{key}"),
        )
    })
}

fn message(item: &Value, path: &str) -> Result<Message, ChatError> {
    let role = match string_field(item, "role", path)?.as_deref() {
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some("system") => Role::System,
        Some("developer") => Role::Developer,
        Some(other) => {
            return Err(ChatError::invalid(
                format!(
                    "`{path}.role` must be one of user, assistant, system, developer; got \
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
    let content = match field(item, "content") {
        Some(Value::String(s)) => vec![ContentPart::Text(s.clone())],
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| content_part(p, &format!("{path}.content[{j}]")))
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(ChatError::invalid(
                format!("`{path}.content` must be a string or an array of content parts."),
                format!("{path}.content"),
            ));
        }
    };
    Ok(Message {
        role,
        content,
        name: None,
        tool_calls: Vec::new(),
        tool_call_id: None,
    })
}

fn content_part(part: &Value, path: &str) -> Result<ContentPart, ChatError> {
    let kind = string_field(part, "type", path)?;
    match kind.as_deref() {
        Some("input_text" | "output_text") => match field(part, "text") {
            Some(Value::String(t)) => Ok(ContentPart::Text(t.clone())),
            _ => Err(ChatError::invalid(
                format!("`{path}.text` must be a string."),
                format!("{path}.text"),
            )),
        },
        Some("refusal") => Ok(ContentPart::Text(
            string_field(part, "refusal", path)?.unwrap_or_default(),
        )),
        Some("input_image") => {
            if field(part, "file_id").is_some() && field(part, "image_url").is_none() {
                return Err(ChatError::invalid_with_code(
                    format!(
                        "`{path}.file_id`: this gateway has no Files API; send the image as \
                         `image_url` (a data URL or an http(s) URL)."
                    ),
                    format!("{path}.file_id"),
                    "unsupported_content_type",
                ));
            }
            let url = required_string(part, "image_url", path)?;
            let detail = match string_field(part, "detail", path)?.as_deref() {
                None => ImageDetail::Unspecified,
                Some("auto") => ImageDetail::Auto,
                Some("low") => ImageDetail::Low,
                // `original` (full resolution) is the closest to `high`.
                Some("high" | "original") => ImageDetail::High,
                Some(other) => {
                    return Err(ChatError::invalid(
                        format!(
                            "`{path}.detail` must be auto, low, high or original; got `{other}`."
                        ),
                        format!("{path}.detail"),
                    ));
                }
            };
            Ok(ContentPart::ImageUrl { url, detail })
        }
        Some(other @ ("input_file" | "input_audio")) => Err(ChatError::invalid_with_code(
            format!(
                "Content parts of type `{other}` are not supported by Claude through this \
                 gateway; send input_text or input_image."
            ),
            format!("{path}.type"),
            "unsupported_content_type",
        )),
        Some(other) => Err(ChatError::invalid(
            format!("`{path}.type` must be input_text, input_image or output_text; got `{other}`."),
            format!("{path}.type"),
        )),
        None => Err(ChatError::invalid(
            format!("`{path}.type` is required."),
            format!("{path}.type"),
        )),
    }
}

/// `function` tools to domain tools, and each as the response echoes it (`FunctionTool`).
fn parse_tools(items: &[Value]) -> Result<(Vec<Tool>, Vec<Value>), ChatError> {
    let mut tools = Vec::new();
    let mut echo = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("tools[{i}]");
        match string_field(item, "type", &p)?.as_deref() {
            Some("function") => {}
            Some("custom") => {
                return Err(unsupported(
                    format!(
                        "`{p}` is a `custom` tool; this gateway does not support them yet. Offer a `function` tool instead."
                    ),
                    format!("{p}.type"),
                ));
            }
            Some(hosted) if HOSTED_TOOLS.contains(&hosted) => {
                return Err(unsupported(
                    format!(
                        "`{p}` is the hosted tool `{hosted}`, which OpenAI runs on its own \
                         servers; this gateway cannot run it. Offer `function` tools instead."
                    ),
                    format!("{p}.type"),
                ));
            }
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
        let name = required_string(item, "name", &p)?;
        let parameters = field(item, "parameters").cloned();
        if parameters.as_ref().is_some_and(|v| !v.is_object()) {
            return Err(ChatError::invalid(
                format!("`{p}.parameters` must be a JSON Schema object."),
                format!("{p}.parameters"),
            ));
        }
        let description = string_field(item, "description", &p)?;
        let strict = field(item, "strict").and_then(Value::as_bool);
        echo.push(json!({
            "type": "function",
            "name": name,
            "description": description,
            "parameters": parameters,
            "strict": strict,
        }));
        tools.push(Tool {
            name,
            description,
            parameters,
            strict,
        });
    }
    Ok((tools, echo))
}

fn parse_tool_choice(value: &Value) -> Result<ToolChoice, ChatError> {
    match value {
        Value::String(s) => match s.as_str() {
            "none" => Ok(ToolChoice::None),
            "auto" => Ok(ToolChoice::Auto),
            "required" => Ok(ToolChoice::Required),
            other => Err(ChatError::invalid(
                format!("`tool_choice` must be none, auto, required or a function; got `{other}`."),
                "tool_choice",
            )),
        },
        obj => match string_field(obj, "type", "tool_choice")?.as_deref() {
            Some("function") => Ok(ToolChoice::Function(required_string(
                obj,
                "name",
                "tool_choice",
            )?)),
            other => Err(unsupported(
                format!(
                    "`tool_choice` must be none, auto, required or \
                     {{\"type\":\"function\",\"name\":…}}; got type {}.",
                    other.map_or("nothing".to_string(), |o| format!("`{o}`"))
                ),
                "tool_choice.type",
            )),
        },
    }
}

/// `text.format` to the domain format, and the `text` the response echoes.
fn parse_text(
    text: Option<&Value>,
    other: &mut Vec<String>,
) -> Result<(ResponseFormat, Value), ChatError> {
    let Some(text) = text else {
        return Ok((ResponseFormat::Text, json!({"format": {"type": "text"}})));
    };
    if field(text, "verbosity").is_some() {
        other.push("text.verbosity".into());
    }
    let Some(format) = field(text, "format") else {
        return Ok((ResponseFormat::Text, json!({"format": {"type": "text"}})));
    };
    let p = "text.format";
    let parsed = match string_field(format, "type", p)?.as_deref() {
        Some("text") => ResponseFormat::Text,
        Some("json_object") => ResponseFormat::JsonObject,
        Some("json_schema") => {
            let schema = field(format, "schema").cloned().unwrap_or(json!({}));
            if !schema.is_object() {
                return Err(ChatError::invalid(
                    "`text.format.schema` must be a JSON Schema object.",
                    "text.format.schema",
                ));
            }
            ResponseFormat::JsonSchema(JsonSchemaFormat {
                name: string_field(format, "name", p)?.unwrap_or_else(|| "response".into()),
                description: string_field(format, "description", p)?,
                schema,
                strict: field(format, "strict").and_then(Value::as_bool),
            })
        }
        other => {
            return Err(ChatError::invalid(
                format!(
                    "`text.format.type` must be text, json_object or json_schema; got {}.",
                    other.map_or("nothing".to_string(), |o| format!("`{o}`"))
                ),
                "text.format.type",
            ));
        }
    };
    let echo = match &parsed {
        ResponseFormat::Text => json!({"format": {"type": "text"}}),
        ResponseFormat::JsonObject => json!({"format": {"type": "json_object"}}),
        ResponseFormat::JsonSchema(f) => {
            let mut format = json!({"type": "json_schema", "name": f.name,
                                    "schema": f.schema, "strict": f.strict});
            // The schema's `description` is a string, never `null`.
            if let Some(d) = &f.description {
                format["description"] = json!(d);
            }
            json!({ "format": format })
        }
    };
    Ok((parsed, echo))
}

/// `reasoning.effort` to the domain effort, and the `reasoning` the response echoes.
fn parse_reasoning(
    reasoning: Option<&Value>,
    other: &mut Vec<String>,
) -> Result<(Option<String>, Option<Value>), ChatError> {
    let Some(reasoning) = reasoning else {
        return Ok((None, None));
    };
    if field(reasoning, "summary").is_some() || field(reasoning, "generate_summary").is_some() {
        other.push("reasoning.summary".into());
    }
    let effort = string_field(reasoning, "effort", "reasoning")?;
    let echo = json!({"effort": effort, "summary": null});
    Ok((effort, Some(echo)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::error::parse_json;

    fn convert(body: &str) -> Result<Converted, ChatError> {
        create_request(parse_json(body.as_bytes())?)
    }

    #[test]
    fn a_string_input_with_instructions() {
        let c = convert(
            r#"{"model":"gpt-4o","instructions":"Be brief.","input":"Hi","max_output_tokens":9,
                "metadata":{"k":"v"},"temperature":0.2,"truncation":"auto","store":true,
                "reasoning":{"effort":"high","summary":"auto"}}"#,
        )
        .unwrap();
        assert!(!c.stream);
        let r = &c.request;
        assert_eq!(
            r.messages,
            vec![
                Message::text(Role::System, "Be brief."),
                Message::text(Role::User, "Hi")
            ]
        );
        assert_eq!(r.max_tokens, Some(9));
        assert_eq!(r.reasoning_effort.as_deref(), Some("high"));
        assert_eq!(r.sampling.temperature, Some(0.2));
        assert_eq!(
            r.sampling.other,
            vec!["truncation", "store", "reasoning.summary"]
        );
        assert_eq!(c.echo.metadata["k"], "v");
        assert_eq!(c.echo.tool_choice, json!("auto"));
        assert_eq!(c.echo.text, json!({"format": {"type": "text"}}));
    }

    #[test]
    fn items_become_messages_tool_calls_and_tool_results() {
        let c = convert(
            r#"{"model":"gpt-4o","stream":true,"input":[
                {"role":"developer","content":"Use tools."},
                {"type":"message","role":"user","content":[{"type":"input_text","text":"Weather?"},
                    {"type":"input_image","image_url":"data:image/png;base64,AAAA","detail":"low"}]},
                {"type":"message","role":"assistant","content":[{"type":"output_text","text":"Checking."}]},
                {"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"},
                {"type":"function_call","call_id":"call_2","name":"get_weather","arguments":"{}"},
                {"type":"function_call_output","call_id":"call_1","output":"sunny"},
                {"type":"function_call_output","call_id":"call_2","output":[{"type":"input_text","text":"rain"}]},
                {"type":"reasoning","id":"rs_1","summary":[]}],
              "tools":[{"type":"function","name":"get_weather","parameters":{"type":"object"},"strict":true}],
              "tool_choice":{"type":"function","name":"get_weather"},"parallel_tool_calls":false}"#,
        )
        .unwrap();
        assert!(c.stream);
        let m = &c.request.messages;
        assert_eq!(m.len(), 5, "{m:#?}");
        assert_eq!(m[0].role, Role::Developer);
        assert_eq!(
            m[1].content[1],
            ContentPart::ImageUrl {
                url: "data:image/png;base64,AAAA".into(),
                detail: ImageDetail::Low
            }
        );
        assert_eq!(m[2].role, Role::Assistant);
        assert_eq!(m[2].joined_text(), "Checking.");
        assert_eq!(m[2].tool_calls.len(), 2);
        assert_eq!(m[2].tool_calls[0].id, "call_1");
        assert_eq!(m[2].tool_calls[0].arguments, "{\"city\":\"Paris\"}");
        assert_eq!(m[3].role, Role::Tool);
        assert_eq!(m[3].tool_call_id.as_deref(), Some("call_1"));
        assert_eq!(m[4].joined_text(), "rain");
        assert_eq!(c.request.sampling.other, vec!["input.reasoning"]);
        assert_eq!(c.request.tools[0].name, "get_weather");
        assert_eq!(c.request.tools[0].strict, Some(true));
        assert_eq!(
            c.request.tool_choice,
            Some(ToolChoice::Function("get_weather".into()))
        );
        assert_eq!(c.request.parallel_tool_calls, Some(false));
        assert!(!c.echo.parallel_tool_calls);
        assert_eq!(c.echo.tools[0]["strict"], true);
    }

    #[test]
    fn text_format_json_schema() {
        let c = convert(
            r#"{"model":"gpt-4o","input":"x","text":{"format":{"type":"json_schema","name":"p",
                "schema":{"type":"object","properties":{"a":{"type":"string"}}},"strict":true}}}"#,
        )
        .unwrap();
        let ResponseFormat::JsonSchema(f) = &c.request.response_format else {
            panic!("{:?}", c.request.response_format)
        };
        assert_eq!(f.name, "p");
        assert_eq!(f.strict, Some(true));
        assert_eq!(c.echo.text["format"]["type"], "json_schema");
        assert_eq!(c.echo.text["format"]["schema"]["type"], "object");
    }

    #[test]
    fn refusals_name_the_field_and_the_reason() {
        let cases = [
            (r#"{"input":"x"}"#, "model", None),
            (
                r#"{"model":"m","input":"x","previous_response_id":"resp_1"}"#,
                "previous_response_id",
                Some("unsupported_parameter"),
            ),
            (
                r#"{"model":"m","input":"x","background":true}"#,
                "background",
                Some("unsupported_parameter"),
            ),
            (
                r#"{"model":"m","input":"x","conversation":"conv_1"}"#,
                "conversation",
                Some("unsupported_parameter"),
            ),
            (
                r#"{"model":"m","input":"x","tools":[{"type":"web_search"}]}"#,
                "tools[0].type",
                Some("unsupported_parameter"),
            ),
            (
                r#"{"model":"m","input":"x","tools":[{"type":"function","name":"f"},{"type":"custom","name":"c"}]}"#,
                "tools[1].type",
                Some("unsupported_parameter"),
            ),
            (r#"{"model":"m","input":5}"#, "input", None),
            (
                r#"{"model":"m","input":[{"type":"message","role":"wizard","content":"x"}]}"#,
                "input[0].role",
                None,
            ),
            (
                r#"{"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_id":"f"}]}]}"#,
                "input[0].content[0].type",
                Some("unsupported_content_type"),
            ),
            (
                r#"{"model":"m","input":[{"type":"function_call_output","output":"x"}]}"#,
                "input[0].call_id",
                None,
            ),
            (
                r#"{"model":"m","input":[{"type":"item_reference","id":"msg_1"}]}"#,
                "input[0].type",
                Some("unsupported_parameter"),
            ),
            (
                r#"{"model":"m","input":"x","text":{"format":{"type":"yaml"}}}"#,
                "text.format.type",
                None,
            ),
            (
                r#"{"model":"m","input":"x","tool_choice":{"type":"web_search_preview"}}"#,
                "tool_choice.type",
                Some("unsupported_parameter"),
            ),
        ];
        for (body, param, code) in cases {
            let err = convert(body).unwrap_err();
            assert_eq!(err.param(), Some(param), "{body}: {err}");
            assert_eq!(err.code(), code, "{body}: {err}");
        }
        let err =
            convert(r#"{"model":"m","input":"x","tools":[{"type":"file_search"}]}"#).unwrap_err();
        assert!(err.to_string().contains("file_search"), "{err}");
    }
}
