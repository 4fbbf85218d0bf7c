//! Input items of a Responses request → domain messages: `message` items (with `input_text`,
//! `output_text`, `input_image` parts), `function_call` and `custom_tool_call` items (joined to
//! the assistant message before them, as chat completions' `tool_calls`; a custom call's `input`
//! becomes the `{"input": …}` arguments Claude wrote) and `function_call_output` /
//! `custom_tool_call_output` items (tool messages), and `reasoning` items this gateway sealed
//! (Claude's thinking blocks, replayed at the start of their assistant turn). Each error names its path (`input[2].content[0].image_url`).

use serde_json::Value;

use crate::chat::ChatError;
use crate::chat::documents;
use crate::chat::message_json::{field, string_field};
use crate::chat::types::{ContentPart, Document, ImageDetail, Message, Role, ToolCall};

use super::custom::arguments_of;
use super::namespace::combined;
use super::seal::SealKey;
use super::tools::required_string;

/// What reading input items needs besides the items.
pub struct ItemContext<'a> {
    /// Parameters accepted and not honoured (`x-ignored-params`).
    pub other: &'a mut Vec<String>,
    /// The key reasoning items' `encrypted_content` was sealed with.
    pub key: &'a SealKey,
}

/// Appends the domain message(s) of input item `i`.
pub fn push_item(
    messages: &mut Vec<Message>,
    i: usize,
    item: &Value,
    ctx: &mut ItemContext<'_>,
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
        "message" => {
            let m = message(item, &path)?;
            match messages.last_mut() {
                // The answer after its reasoning items: one assistant turn, thinking first.
                Some(last) if m.role == Role::Assistant && only_thinking(last) => {
                    last.content.extend(m.content);
                }
                _ => messages.push(m),
            }
        }
        "function_call" | "custom_tool_call" => {
            let arguments = if kind == "custom_tool_call" {
                arguments_of(&required_string(item, "input", &path)?)
            } else {
                string_field(item, "arguments", &path)?.unwrap_or_else(|| "{}".to_string())
            };
            // A namespaced tool is known to Claude by its combined name.
            let mut name = required_string(item, "name", &path)?;
            if let Some(namespace) = string_field(item, "namespace", &path)? {
                name = combined(&namespace, &name);
            }
            let call = ToolCall {
                id: required_string(item, "call_id", &path)?,
                name,
                arguments,
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
        "function_call_output" | "custom_tool_call_output" => {
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
        "reasoning" => reasoning(messages, item, &path, ctx)?,
        "item_reference" => {
            return Err(ChatError::unsupported(
                format!(
                    "`{path}` is an item_reference; responses are not stored by this gateway \
                     yet, so send the item itself."
                ),
                format!("{path}.type"),
            ));
        }
        other => {
            return Err(ChatError::unsupported(
                format!(
                    "Input items of type `{other}` are not supported by this gateway; send \
                     message, function_call, function_call_output, custom_tool_call and \
                     custom_tool_call_output items."
                ),
                format!("{path}.type"),
            ));
        }
    }
    Ok(())
}

/// A reasoning item this gateway sealed becomes Claude's thinking block (with the model that
/// wrote it), at the start of the assistant turn the items after it make. One without
/// `encrypted_content` (a summary only, or an OpenAI model's) cannot be rebuilt into a thinking
/// block and is left out (reported as `input.reasoning`); one that does not open is refused.
fn reasoning(
    messages: &mut Vec<Message>,
    item: &Value,
    path: &str,
    ctx: &mut ItemContext<'_>,
) -> Result<(), ChatError> {
    let sealed = match field(item, "encrypted_content") {
        Some(Value::String(s)) => s,
        None | Some(Value::Null) => {
            ignore_reasoning(ctx);
            return Ok(());
        }
        Some(_) => {
            return Err(ChatError::invalid(
                format!("`{path}.encrypted_content` must be a string."),
                format!("{path}.encrypted_content"),
            ));
        }
    };
    let opened = ctx.key.open(sealed).ok_or_else(|| {
        ChatError::invalid_with_code(
            format!(
                "`{path}.encrypted_content` could not be verified: it was not produced by \
                 this gateway instance (or one sharing its --reasoning-key-file), it was \
                 altered, or the gateway restarted without a key file. Send reasoning items \
                 back exactly as they came, or leave them out."
            ),
            format!("{path}.encrypted_content"),
            "invalid_encrypted_content",
        )
    })?;
    let part = ContentPart::Thinking {
        thinking: opened.thinking,
        signature: opened.signature,
        model: opened.model,
    };
    match messages.last_mut() {
        Some(last) if only_thinking(last) => last.content.push(part),
        _ => messages.push(Message {
            role: Role::Assistant,
            content: vec![part],
            name: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
        }),
    }
    Ok(())
}

fn ignore_reasoning(ctx: &mut ItemContext<'_>) {
    if !ctx.other.iter().any(|o| o == "input.reasoning") {
        ctx.other.push("input.reasoning".into());
    }
}

/// An assistant message made of thinking so far (its reasoning items), waiting for its answer.
fn only_thinking(m: &Message) -> bool {
    m.role == Role::Assistant
        && m.tool_calls.is_empty()
        && !m.content.is_empty()
        && m.content
            .iter()
            .all(|p| matches!(p, ContentPart::Thinking { .. }))
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

/// An `input_file` with inline `file_data` (a base64 data URL of a PDF or plain text) is a
/// document titled by its `filename`; a `file_id` or `file_url` is refused: there is no Files
/// API here, and remote files are not fetched.
fn input_file(part: &Value, path: &str) -> Result<ContentPart, ChatError> {
    for key in ["file_id", "file_url"] {
        if field(part, key).is_some() {
            return Err(ChatError::invalid_with_code(
                format!(
                    "`{path}.{key}` is not supported: this gateway has no Files API and does not \
                     fetch files. Send the file inline as `file_data` \
                     (data:application/pdf;base64,…)."
                ),
                format!("{path}.{key}"),
                "unsupported_content_type",
            ));
        }
    }
    let data = required_string(part, "file_data", path)?;
    let source = documents::source_of_data_url(&data, &format!("{path}.file_data"))?;
    Ok(ContentPart::Document(Document {
        source,
        title: string_field(part, "filename", path)?,
        context: None,
    }))
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
        Some("input_file") => input_file(part, path),
        Some(other @ "input_audio") => Err(ChatError::invalid_with_code(
            format!(
                "Content parts of type `{other}` are not supported by Claude through this \
                 gateway; send input_text, input_image or input_file."
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
