//! Chat messages in OpenAI's JSON form, both ways: parsed from a request body (each error names
//! its exact path, `messages[2].content[0].image_url`) and written back, as
//! `GET /v1/sessions/{id}` returns them. The session store keeps its own record
//! (`sessions/record.rs`) and reads this form only in bodies older gateways stored.

use serde_json::{Value, json};

use super::ChatError;
use super::documents;
use super::types::{ContentPart, Document, DocumentSource, ImageDetail, Message, Role, ToolCall};

pub fn field<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

pub fn string_field(obj: &Value, key: &str, path: &str) -> Result<Option<String>, ChatError> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ChatError::invalid(
            format!("`{path}.{key}` must be a string."),
            format!("{path}.{key}"),
        )),
    }
}

pub fn parse_message(i: usize, value: Value) -> Result<Message, ChatError> {
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
        Some("file") => file_part(part, path),
        Some(other @ "input_audio") => Err(ChatError::invalid_with_code(
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

/// A `file` part: its `file_data` (a base64 data URL, PDF or plain text) becomes a document
/// titled by its `filename`; a `file_id` is refused, as there is no files API here.
fn file_part(part: &Value, path: &str) -> Result<ContentPart, ChatError> {
    let fp = format!("{path}.file");
    let file = field(part, "file")
        .ok_or_else(|| ChatError::invalid(format!("`{fp}` is required."), fp.clone()))?;
    if field(file, "file_id").is_some() {
        return Err(ChatError::invalid_with_code(
            format!(
                "`{fp}.file_id` is not supported: this gateway has no files API. Send the \
                 file inline as `file_data` (data:application/pdf;base64,…)."
            ),
            format!("{fp}.file_id"),
            "unsupported_parameter",
        ));
    }
    let Some(data) = string_field(file, "file_data", &fp)? else {
        return Err(ChatError::invalid(
            format!("`{fp}.file_data` is required."),
            format!("{fp}.file_data"),
        ));
    };
    let source = documents::source_of_data_url(&data, &format!("{fp}.file_data"))?;
    Ok(ContentPart::Document(Document {
        source,
        title: string_field(file, "filename", &fp)?,
        context: None,
    }))
}

/// A document as an OpenAI `file` part: its source as a base64 data URL.
fn file_json(document: &Document) -> Value {
    use base64::Engine as _;
    let url = match &document.source {
        DocumentSource::Pdf { data } => format!("data:{};base64,{data}", documents::PDF),
        DocumentSource::Text { data } => format!(
            "data:{};base64,{}",
            documents::TEXT,
            base64::engine::general_purpose::STANDARD.encode(data.as_bytes())
        ),
    };
    let mut file = json!({"file_data": url});
    if let Some(title) = &document.title {
        file["filename"] = json!(title);
    }
    json!({"type": "file", "file": file})
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

/// A message as OpenAI JSON: `content` a string when it is one text part, parts otherwise,
/// `null` for an assistant message that only calls tools.
pub fn message_to_json(m: &Message) -> Value {
    let mut out = json!({"role": m.role.as_str()});
    out["content"] = match m.content.as_slice() {
        [] => Value::Null,
        [ContentPart::Text(t)] => json!(t),
        parts => Value::Array(
            parts
                .iter()
                .map(|p| match p {
                    ContentPart::Text(t) => json!({"type": "text", "text": t}),
                    ContentPart::ImageUrl { url, detail } => {
                        let mut image = json!({"url": url});
                        let detail = match detail {
                            ImageDetail::Unspecified => None,
                            ImageDetail::Auto => Some("auto"),
                            ImageDetail::Low => Some("low"),
                            ImageDetail::High => Some("high"),
                        };
                        if let Some(d) = detail {
                            image["detail"] = json!(d);
                        }
                        json!({"type": "image_url", "image_url": image})
                    }
                    // Not an OpenAI content part; this JSON only counts tokens and shows
                    // messages, so Claude's own block shape is the honest one.
                    ContentPart::Thinking {
                        thinking,
                        signature,
                        model,
                    } => json!({"type": "thinking", "thinking": thinking,
                                "signature": signature, "model": model}),
                    ContentPart::RedactedThinking { data, model } => {
                        json!({"type": "redacted_thinking", "data": data, "model": model})
                    }
                    ContentPart::Document(document) => file_json(document),
                })
                .collect(),
        ),
    };
    if let Some(name) = &m.name {
        out["name"] = json!(name);
    }
    if !m.tool_calls.is_empty() {
        out["tool_calls"] = Value::Array(
            m.tool_calls
                .iter()
                .map(|c| {
                    json!({"id": c.id, "type": "function",
                           "function": {"name": c.name, "arguments": c.arguments}})
                })
                .collect(),
        );
    }
    if let Some(id) = &m.tool_call_id {
        out["tool_call_id"] = json!(id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_json() {
        let messages = vec![
            Message::text(Role::System, "Be brief."),
            Message {
                role: Role::User,
                content: vec![
                    ContentPart::Text("What is this?".into()),
                    ContentPart::ImageUrl {
                        url: "data:image/png;base64,AA==".into(),
                        detail: ImageDetail::Low,
                    },
                ],
                name: Some("ada".into()),
                tool_calls: vec![],
                tool_call_id: None,
            },
            Message {
                role: Role::Assistant,
                content: vec![],
                name: None,
                tool_calls: vec![ToolCall {
                    id: "t1".into(),
                    name: "f".into(),
                    arguments: "{}".into(),
                }],
                tool_call_id: None,
            },
            Message {
                tool_call_id: Some("t1".into()),
                ..Message::text(Role::Tool, "42")
            },
        ];
        for (i, m) in messages.into_iter().enumerate() {
            let json = message_to_json(&m);
            assert_eq!(parse_message(i, json).unwrap(), m);
        }
    }
}
