//! Messages request → domain `ChatRequest`. Every field of `MessagesRequest` is consumed here (no
//! `..`); `system`, `messages`, `tools`, `tool_choice` and `thinking` are parsed block by block so
//! errors name the exact path. What the domain cannot carry is refused with a 400 naming it
//! (server tools; `document` blocks with a `url` or `content` source, or citations); what it can carry but not honour
//! (`temperature`, `top_p`, `top_k`, `metadata.user_id`, `is_error`, `cache_control`, unknown
//! fields) is reported in `x-ignored-params`. Engine rules (sizes, counts, roles) are checked in
//! `chat::validate`, as for every door.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::chat::ChatError;
use crate::chat::documents;
use crate::chat::message_json::{field, string_field};
use crate::chat::types::{
    ChatRequest, ContentPart, Document, ImageDetail, Message, ResponseFormat, Role, SamplingParams,
    Tool, ToolCall, ToolChoice,
};

use super::types::MessagesRequest;

/// The converted request, and what stays in the HTTP layer.
#[derive(Debug, Clone)]
pub struct Converted {
    pub request: ChatRequest,
    pub stream: bool,
    /// Whether the client asked for thinking (`thinking` enabled or adaptive): only then are
    /// thinking blocks part of the answer.
    pub thinking: bool,
}

/// Reports `name` once.
fn note(other: &mut Vec<String>, name: &str) {
    if !other.iter().any(|o| o == name) {
        other.push(name.to_string());
    }
}

pub fn create_request(req: MessagesRequest) -> Result<Converted, ChatError> {
    let MessagesRequest {
        model,
        max_tokens,
        messages,
        system,
        tools,
        tool_choice,
        stop_sequences,
        thinking,
        stream,
        metadata,
        temperature,
        top_p,
        top_k,
        extra,
    } = req;
    refuse_unavailable(&extra)?;
    let mut other: Vec<String> = extra
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, _)| k.clone())
        .collect();
    if top_k.is_some() {
        note(&mut other, "top_k");
    }
    if metadata
        .as_ref()
        .and_then(|m| field(m, "user_id"))
        .is_some()
    {
        note(&mut other, "metadata.user_id");
    }
    let mut out = Vec::new();
    if let Some(system) = system {
        let text = system_text(&system, &mut other)?;
        if !text.is_empty() {
            out.push(Message::text(Role::System, text));
        }
    }
    let Value::Array(items) = messages else {
        return Err(ChatError::invalid(
            "`messages` must be an array of messages.",
            "messages",
        ));
    };
    for (i, item) in items.iter().enumerate() {
        push_message(&mut out, i, item, &model, &mut other)?;
    }
    let tools = match tools {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, t)| tool(t, &format!("tools[{i}]"), &mut other))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(ChatError::invalid("`tools` must be an array.", "tools")),
    };
    let (tool_choice, parallel_tool_calls) = match tool_choice {
        None | Some(Value::Null) => (None, None),
        Some(v) => parse_tool_choice(&v)?,
    };
    let Thinking {
        effort: reasoning_effort,
        budget: thinking_budget,
        shown,
    } = parse_thinking(thinking.as_ref())?;
    let request = ChatRequest {
        model,
        messages: out,
        tools,
        tool_choice,
        parallel_tool_calls,
        response_format: ResponseFormat::Text,
        stop: stop_sequences.unwrap_or_default(),
        n: None,
        max_tokens: Some(max_tokens),
        session_id: None,
        metadata: Default::default(),
        sampling: SamplingParams {
            temperature,
            top_p,
            other,
            ..SamplingParams::default()
        },
        reasoning_effort,
        thinking_budget,
        response: None,
    };
    Ok(Converted {
        request,
        stream: stream.unwrap_or(false),
        thinking: shown,
    })
}

/// Fields that hand Claude what the gateway never gives it: MCP servers the API would connect to
/// and a code-execution container. Ignoring them would answer as if the tools were there.
fn refuse_unavailable(extra: &BTreeMap<String, Value>) -> Result<(), ChatError> {
    const UNAVAILABLE: &[(&str, &str)] = &[
        (
            "mcp_servers",
            "MCP servers reached by the API; Claude gets no network tools here",
        ),
        (
            "container",
            "a code-execution container; client tools are returned to the caller, never run",
        ),
    ];
    for (name, why) in UNAVAILABLE {
        let given = match extra.get(*name) {
            None | Some(Value::Null) => false,
            Some(Value::Array(items)) => !items.is_empty(),
            Some(_) => true,
        };
        if given {
            return Err(ChatError::invalid(
                format!("`{name}` asks for {why}: this gateway cannot provide it."),
                *name,
            ));
        }
    }
    Ok(())
}

/// `system` as one text: a string, or text blocks joined by blank lines.
fn system_text(system: &Value, other: &mut Vec<String>) -> Result<String, ChatError> {
    match system {
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => {
            let mut texts = Vec::new();
            for (i, block) in blocks.iter().enumerate() {
                let path = format!("system[{i}]");
                match string_field(block, "type", &path)?.as_deref() {
                    Some("text") => {}
                    kind => {
                        return Err(ChatError::invalid(
                            format!("`{path}.type` must be `text`; got {}.", shown(kind)),
                            format!("{path}.type"),
                        ));
                    }
                }
                if field(block, "cache_control").is_some() {
                    note(other, "cache_control");
                }
                texts.push(required_string(block, "text", &path)?);
            }
            Ok(texts.join("\n\n"))
        }
        _ => Err(ChatError::invalid(
            "`system` must be a string or an array of text blocks.",
            "system",
        )),
    }
}

fn shown(kind: Option<&str>) -> String {
    kind.map_or("nothing".to_string(), |k| format!("`{k}`"))
}

fn required_string(obj: &Value, key: &str, path: &str) -> Result<String, ChatError> {
    string_field(obj, key, path)?.ok_or_else(|| {
        ChatError::invalid(
            format!("`{path}.{key}` is required."),
            format!("{path}.{key}"),
        )
    })
}

/// Appends the domain message(s) of `messages[i]`: a user message's `tool_result` blocks each
/// become a tool message (before the user's other blocks, as Anthropic orders them); an
/// assistant message's `tool_use` blocks become its tool calls.
fn push_message(
    out: &mut Vec<Message>,
    i: usize,
    item: &Value,
    model: &str,
    other: &mut Vec<String>,
) -> Result<(), ChatError> {
    let path = format!("messages[{i}]");
    let role = match string_field(item, "role", &path)?.as_deref() {
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        // Claude Code (2.1.330, on its default model) sends per-turn context as a
        // `{"role":"system"}` entry after the user turn: its text joins the system prompt, as
        // a chat-completions system message anywhere does; its `output_config` is reported.
        Some("system") => return system_entry(out, item, &path, other),
        kind => {
            return Err(ChatError::invalid(
                format!(
                    "`{path}.role` must be `user`, `assistant` or `system`; got {}.",
                    shown(kind)
                ),
                format!("{path}.role"),
            ));
        }
    };
    let mut message = Message {
        role,
        content: Vec::new(),
        name: None,
        tool_calls: Vec::new(),
        tool_call_id: None,
    };
    let blocks = match field(item, "content") {
        Some(Value::String(s)) => {
            message.content.push(ContentPart::Text(s.clone()));
            out.push(message);
            return Ok(());
        }
        Some(Value::Array(blocks)) => blocks,
        _ => {
            return Err(ChatError::invalid(
                format!("`{path}.content` must be a string or an array of content blocks."),
                format!("{path}.content"),
            ));
        }
    };
    for (j, block) in blocks.iter().enumerate() {
        let p = format!("{path}.content[{j}]");
        if field(block, "cache_control").is_some() {
            note(other, "cache_control");
        }
        let kind = string_field(block, "type", &p)?;
        match (role, kind.as_deref()) {
            (_, Some("text")) => message
                .content
                .push(ContentPart::Text(required_string(block, "text", &p)?)),
            (Role::User, Some("image")) => message.content.push(image(block, &p)?),
            (Role::User, Some("tool_result")) => out.push(tool_result(block, &p, other)?),
            (Role::Assistant, Some("tool_use")) => message.tool_calls.push(tool_use(block, &p)?),
            (Role::Assistant, Some("thinking")) => message.content.push(ContentPart::Thinking {
                thinking: required_string(block, "thinking", &p)?,
                signature: required_string(block, "signature", &p)?,
                // Sent back in a conversation with this model; the CLI replays thinking only
                // for the model it runs.
                model: model.to_string(),
            }),
            (Role::Assistant, Some("redacted_thinking")) => {
                message.content.push(ContentPart::RedactedThinking {
                    data: required_string(block, "data", &p)?,
                    // Replayed, like signed thinking, only for the model that wrote it.
                    model: model.to_string(),
                });
            }
            (Role::User, Some("document")) => message.content.push(document(block, &p)?),
            (_, kind) => {
                let allowed = if role == Role::User {
                    "text, image, document or tool_result"
                } else {
                    "text, tool_use, thinking or redacted_thinking"
                };
                return Err(ChatError::unsupported(
                    format!(
                        "`{p}.type` must be {allowed} in a {} message; got {}.",
                        role.as_str(),
                        shown(kind)
                    ),
                    format!("{p}.type"),
                ));
            }
        }
    }
    if !message.content.is_empty() || !message.tool_calls.is_empty() {
        out.push(message);
    }
    Ok(())
}

/// An `image` block: a base64 `source` becomes a data URL, a `url` source the URL (fetched, or
/// refused, exactly as chat completions' image URLs are).
fn image(block: &Value, path: &str) -> Result<ContentPart, ChatError> {
    let source = field(block, "source").ok_or_else(|| {
        ChatError::invalid(
            format!("`{path}.source` is required."),
            format!("{path}.source"),
        )
    })?;
    let sp = format!("{path}.source");
    let url = match string_field(source, "type", &sp)?.as_deref() {
        Some("base64") => {
            let media_type = required_string(source, "media_type", &sp)?;
            let data = required_string(source, "data", &sp)?;
            format!("data:{media_type};base64,{data}")
        }
        Some("url") => required_string(source, "url", &sp)?,
        kind => {
            return Err(ChatError::unsupported(
                format!(
                    "`{sp}.type` must be `base64` or `url`; got {}.",
                    shown(kind)
                ),
                format!("{sp}.type"),
            ));
        }
    };
    Ok(ContentPart::ImageUrl {
        url,
        detail: ImageDetail::Unspecified,
    })
}

/// A `document` block: a `base64` PDF or a `text` source, with its `title` and `context`. A
/// `url` source is refused (the gateway would have to fetch and trust a remote file; send it
/// inline), a `content` source too (send its text as a `text` source), and
/// `citations.enabled`: the answer's citations do not pass through the domain.
fn document(block: &Value, path: &str) -> Result<ContentPart, ChatError> {
    let sp = format!("{path}.source");
    let source = field(block, "source")
        .ok_or_else(|| ChatError::invalid(format!("`{sp}` is required."), sp.clone()))?;
    let encoding = match string_field(source, "type", &sp)?.as_deref() {
        Some("base64") => documents::Encoding::Base64,
        Some("text") => documents::Encoding::Plain,
        Some(kind @ ("url" | "content" | "file")) => {
            return Err(ChatError::unsupported(
                format!(
                    "`{sp}.type` `{kind}` is not supported by this gateway; send the document \
                     inline as a `base64` PDF or a `text` source."
                ),
                format!("{sp}.type"),
            ));
        }
        kind => {
            return Err(ChatError::invalid(
                format!(
                    "`{sp}.type` must be `base64` or `text`; got {}.",
                    shown(kind)
                ),
                format!("{sp}.type"),
            ));
        }
    };
    let cited = field(block, "citations").and_then(|c| field(c, "enabled"));
    if cited.and_then(Value::as_bool) == Some(true) {
        return Err(ChatError::unsupported(
            format!(
                "`{path}.citations.enabled` is not supported: this gateway cannot return \
                 citations. Leave citations off."
            ),
            format!("{path}.citations.enabled"),
        ));
    }
    let media_type = required_string(source, "media_type", &sp)?;
    let data = required_string(source, "data", &sp)?;
    Ok(ContentPart::Document(Document {
        source: documents::source(&media_type, data, encoding, &format!("{sp}.media_type"))?,
        title: string_field(block, "title", path)?,
        context: string_field(block, "context", path)?,
    }))
}

fn tool_result(block: &Value, path: &str, other: &mut Vec<String>) -> Result<Message, ChatError> {
    let id = required_string(block, "tool_use_id", path)?;
    if field(block, "is_error").and_then(Value::as_bool) == Some(true) {
        note(other, "is_error");
    }
    let content = match field(block, "content") {
        None => vec![ContentPart::Text(String::new())],
        Some(Value::String(s)) => vec![ContentPart::Text(s.clone())],
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(k, part)| {
                let p = format!("{path}.content[{k}]");
                match string_field(part, "type", &p)?.as_deref() {
                    Some("text") => Ok(ContentPart::Text(required_string(part, "text", &p)?)),
                    Some("image") => image(part, &p),
                    kind => Err(ChatError::unsupported(
                        format!("`{p}.type` must be text or image; got {}.", shown(kind)),
                        format!("{p}.type"),
                    )),
                }
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ChatError::invalid(
                format!("`{path}.content` must be a string or an array of content blocks."),
                format!("{path}.content"),
            ));
        }
    };
    Ok(Message {
        role: Role::Tool,
        content,
        name: None,
        tool_calls: Vec::new(),
        tool_call_id: Some(id),
    })
}

fn tool_use(block: &Value, path: &str) -> Result<ToolCall, ChatError> {
    let input = field(block, "input")
        .cloned()
        .unwrap_or(Value::Object(Default::default()));
    if !input.is_object() {
        return Err(ChatError::invalid(
            format!("`{path}.input` must be an object."),
            format!("{path}.input"),
        ));
    }
    Ok(ToolCall {
        id: required_string(block, "id", path)?,
        name: required_string(block, "name", path)?,
        arguments: input.to_string(),
    })
}

/// A custom tool; a server tool (any `type` but `custom`) is refused, naming it.
fn tool(item: &Value, path: &str, other: &mut Vec<String>) -> Result<Tool, ChatError> {
    match string_field(item, "type", path)?.as_deref() {
        None | Some("custom") => {}
        Some(kind) => {
            return Err(ChatError::unsupported(
                format!(
                    "`{path}` is the server tool `{kind}`; this gateway runs no server tools \
                     (web search, bash, text editor, code execution, computer use). Offer custom \
                     tools with an `input_schema` and run them in your client."
                ),
                format!("{path}.type"),
            ));
        }
    }
    if field(item, "cache_control").is_some() {
        note(other, "cache_control");
    }
    let parameters = field(item, "input_schema").cloned().ok_or_else(|| {
        ChatError::invalid(
            format!("`{path}.input_schema` is required."),
            format!("{path}.input_schema"),
        )
    })?;
    Ok(Tool {
        name: required_string(item, "name", path)?,
        description: string_field(item, "description", path)?,
        parameters: Some(parameters),
        strict: None,
    })
}

/// `tool_choice` to the domain choice, and `disable_parallel_tool_use` to parallel calls.
fn parse_tool_choice(value: &Value) -> Result<(Option<ToolChoice>, Option<bool>), ChatError> {
    let p = "tool_choice";
    let choice = match string_field(value, "type", p)?.as_deref() {
        Some("auto") => ToolChoice::Auto,
        Some("any") => ToolChoice::Required,
        Some("none") => ToolChoice::None,
        Some("tool") => ToolChoice::Function(required_string(value, "name", p)?),
        kind => {
            return Err(ChatError::invalid(
                format!(
                    "`tool_choice.type` must be auto, any, tool or none; got {}.",
                    shown(kind)
                ),
                "tool_choice.type",
            ));
        }
    };
    let parallel = match field(value, "disable_parallel_tool_use") {
        None => None,
        Some(Value::Bool(disable)) => Some(!disable),
        Some(_) => {
            return Err(ChatError::invalid(
                "`tool_choice.disable_parallel_tool_use` must be a boolean.",
                "tool_choice.disable_parallel_tool_use",
            ));
        }
    };
    Ok((Some(choice), parallel))
}

/// What `thinking` asks of the domain.
#[derive(Debug, Default, PartialEq)]
struct Thinking {
    /// The CLI's `--effort`, for models with adaptive thinking.
    effort: Option<String>,
    /// The budget itself, for models that take one (4.x).
    budget: Option<u32>,
    /// Whether thinking blocks are shown.
    shown: bool,
}

/// `thinking` to the domain: `enabled` gives its budget (which the 4.x models take as it is)
/// and, for models that think adaptively and take no budget, an effort level picked by it —
/// under 4 096 tokens low, under 16 384 medium, else high; `adaptive` leaves both to Claude.
fn parse_thinking(thinking: Option<&Value>) -> Result<Thinking, ChatError> {
    let Some(thinking) = thinking.filter(|v| !v.is_null()) else {
        return Ok(Thinking::default());
    };
    let thinking_on = |effort: Option<&str>, budget: Option<u32>| Thinking {
        effort: effort.map(str::to_string),
        budget,
        shown: true,
    };
    match string_field(thinking, "type", "thinking")?.as_deref() {
        Some("disabled") => Ok(Thinking::default()),
        Some("adaptive") => Ok(thinking_on(None, None)),
        Some("enabled") => {
            let budget = field(thinking, "budget_tokens")
                .and_then(Value::as_u64)
                .ok_or_else(|| {
                    ChatError::invalid(
                        "`thinking.budget_tokens` is required with `type: enabled` (a \
                         positive integer).",
                        "thinking.budget_tokens",
                    )
                })?;
            let effort = match budget {
                0..4096 => "low",
                4096..16384 => "medium",
                _ => "high",
            };
            Ok(thinking_on(
                Some(effort),
                Some(u32::try_from(budget).unwrap_or(u32::MAX)),
            ))
        }
        kind => Err(ChatError::invalid(
            format!(
                "`thinking.type` must be enabled, adaptive or disabled; got {}.",
                shown(kind)
            ),
            "thinking.type",
        )),
    }
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;

/// A `{"role":"system"}` entry of `messages`: its text (a string or text blocks) as a system
/// message; any other field is reported.
fn system_entry(
    out: &mut Vec<Message>,
    item: &Value,
    path: &str,
    other: &mut Vec<String>,
) -> Result<(), ChatError> {
    let text = match field(item, "content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => {
            let mut text = String::new();
            for (j, block) in blocks.iter().enumerate() {
                match (
                    field(block, "type").and_then(Value::as_str),
                    field(block, "text"),
                ) {
                    (Some("text"), Some(Value::String(t))) => {
                        if !text.is_empty() {
                            text.push('\n');
                        }
                        text.push_str(t);
                    }
                    _ => {
                        return Err(ChatError::invalid(
                            format!(
                                "`{path}.content[{j}]` of a system entry must be a text block."
                            ),
                            format!("{path}.content[{j}]"),
                        ));
                    }
                }
            }
            text
        }
        _ => {
            return Err(ChatError::invalid(
                format!("`{path}.content` must be a string or an array of text blocks."),
                format!("{path}.content"),
            ));
        }
    };
    if let Some(map) = item.as_object() {
        for key in map
            .keys()
            .filter(|k| !matches!(k.as_str(), "role" | "content"))
        {
            note(other, &format!("{path}.{key}"));
        }
    }
    out.push(Message::text(Role::System, text));
    Ok(())
}
