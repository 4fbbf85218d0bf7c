//! Responses request → domain `ChatRequest`. Every field of `CreateResponseRequest` is consumed
//! here (no `..`); input items are parsed one by one in `input.rs`, tools and formats here, so
//! errors name the exact path. The conversion also keeps what the response object echoes back (`Echo`). Rules
//! that protect the engine (sizes, counts, the last turn being the user's) are not checked here
//! but in `chat::validate`, the same for every door.

use serde_json::{Value, json};

use crate::chat::ChatError;
use crate::chat::message_json::{field, string_field};
use crate::chat::types::{
    ChatRequest, JsonSchemaFormat, Message, ResponseFormat, Role, SamplingParams, Tool, ToolChoice,
};

use super::custom::custom_tool;
use super::input::{ItemContext, push_item};
use super::namespace::{OfferedNames, combined, namespace_tools};
use super::seal::SealKey;
use super::stream::ReasoningOptions;
use super::tools::{function_tool, required_string};
use super::types::{CreateResponseRequest, Echo, KNOWN_UNUSED_FIELDS, STATEFUL_FIELDS};

/// The converted request, whether to stream, the echo, what stored state it asks for, and what
/// the answer's reasoning items must carry.
#[derive(Debug, Clone)]
pub struct Converted {
    pub request: ChatRequest,
    pub stream: bool,
    pub echo: Echo,
    /// Whether to keep the response (`store`, default true).
    pub store: bool,
    pub previous_response_id: Option<String>,
    /// Whether `request.messages` starts with the instructions.
    pub instructions: bool,
    /// `input` as the client sent it (a string or the item list), for the stored input items.
    pub input: Option<Value>,
    pub reasoning: ReasoningOptions,
}

/// The `include` value that asks for sealed thinking in reasoning items.
const ENCRYPTED_REASONING: &str = "reasoning.encrypted_content";

/// Hosted tools OpenAI runs on its own servers; Claude cannot run them here, so they are not
/// offered (and reported as ignored).
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

/// `key` seals (and opens) the thinking of reasoning items.
pub fn create_request(req: CreateResponseRequest, key: &SealKey) -> Result<Converted, ChatError> {
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

    let previous_response_id = previous_response_id.filter(|s| !s.is_empty());
    if background == Some(true) {
        return Err(ChatError::unsupported(
            "`background: true` is not supported by this gateway: run the request in the \
             foreground (optionally with `stream: true`); a stored response can be retrieved \
             afterwards with GET /v1/responses/{id}.",
            "background",
        ));
    }
    if let Some(name) = STATEFUL_FIELDS
        .iter()
        .find(|f| extra.get(**f).is_some_and(|v| !v.is_null()))
    {
        return Err(ChatError::unsupported(
            format!(
                "`{name}` is not supported by this gateway: it keeps no conversation objects \
                 or stored prompts. Chain responses with `previous_response_id`, or send the \
                 whole conversation in `input`."
            ),
            *name,
        ));
    }

    // An empty list (`include: []`, as agents send it) asks for nothing, so nothing is ignored.
    let mut other: Vec<String> = extra
        .iter()
        .filter(|(k, _)| KNOWN_UNUSED_FIELDS.contains(&k.as_str()))
        .filter(|(_, v)| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()))
        .map(|(k, _)| k.clone())
        .collect();
    // `include` is honoured for sealed reasoning only; any other value is reported.
    let include: Vec<&str> = extra
        .get("include")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let encrypted = include.contains(&ENCRYPTED_REASONING);
    if include.iter().all(|i| *i == ENCRYPTED_REASONING)
        && extra.get("include").is_some_and(Value::is_array)
    {
        other.retain(|o| o != "include");
    }

    let mut messages = Vec::new();
    let has_instructions = instructions.as_ref().is_some_and(|t| !t.is_empty());
    if let Some(text) = instructions.as_ref().filter(|t| !t.is_empty()) {
        messages.push(Message::text(Role::System, text.clone()));
    }
    let raw_input = input.clone();
    match input {
        None => {}
        Some(Value::String(s)) => messages.push(Message::text(Role::User, s)),
        Some(Value::Array(items)) => {
            let mut ctx = ItemContext {
                other: &mut other,
                key,
            };
            for (i, item) in items.iter().enumerate() {
                push_item(&mut messages, i, item, &mut ctx)?;
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
        Some(Value::Array(items)) => parse_tools(&items, &mut other)?,
        None => (Vec::new(), Vec::new()),
        Some(_) => return Err(ChatError::invalid("`tools` must be an array.", "tools")),
    };
    let (tool_choice, tool_choice_echo) = match tool_choice {
        None => (None, json!("auto")),
        Some(v) => (Some(parse_tool_choice(&v)?), v),
    };
    let (response_format, text_echo) = parse_text(text.as_ref(), &mut other)?;
    let (reasoning_effort, reasoning_echo, summary) = parse_reasoning(reasoning.as_ref())?;
    let reasoning = ReasoningOptions {
        requested: reasoning_effort.is_some() || summary,
        summary,
        seal: encrypted.then(|| key.clone()),
    };
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
        thinking_budget: None,
        response: None,
    };
    Ok(Converted {
        request,
        store: store.unwrap_or(true),
        previous_response_id,
        instructions: has_instructions,
        input: raw_input,
        stream: stream.unwrap_or(false),
        reasoning,
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

/// `function`, `custom` and `namespace` tools to domain tools (a namespace's inner tools under
/// combined names), and each as the response echoes it. Hosted tools are not offered to Claude:
/// each is reported in `x-ignored-params` as `tools.<type>` (refused under `--strict-params`)
/// and left out of the echo, which lists what Claude could call.
fn parse_tools(
    items: &[Value],
    other: &mut Vec<String>,
) -> Result<(Vec<Tool>, Vec<Value>), ChatError> {
    let mut tools = Vec::new();
    let mut echo = Vec::new();
    let mut names = OfferedNames::default();
    for (i, item) in items.iter().enumerate() {
        let p = format!("tools[{i}]");
        let (tool, tool_echo) = match string_field(item, "type", &p)?.as_deref() {
            Some("function") => function_tool(item, &p)?,
            Some("custom") => custom_tool(item, &p)?,
            Some("namespace") => {
                let (inner, ns_echo) = namespace_tools(item, &p)?;
                for (tool, path) in inner {
                    names.add(&tool.name, &path, true)?;
                    tools.push(tool);
                }
                echo.push(ns_echo);
                continue;
            }
            Some(hosted) if HOSTED_TOOLS.contains(&hosted) => {
                let ignored = format!("tools.{hosted}");
                if !other.contains(&ignored) {
                    other.push(ignored);
                }
                continue;
            }
            kind => {
                return Err(ChatError::invalid(
                    format!(
                        "`{p}.type` must be `function`, `custom`, `namespace` or a hosted tool; \
                         got {}.",
                        kind.map_or("nothing".to_string(), |o| format!("`{o}`"))
                    ),
                    format!("{p}.type"),
                ));
            }
        };
        names.add(&tool.name, &p, false)?;
        tools.push(tool);
        echo.push(tool_echo);
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
            // A custom tool is a function to Claude. OpenAI's schema names no `namespace`
            // here; one that is sent picks the tool of that namespace.
            Some("function" | "custom") => {
                let name = required_string(obj, "name", "tool_choice")?;
                Ok(ToolChoice::Function(
                    match string_field(obj, "namespace", "tool_choice")? {
                        Some(namespace) => combined(&namespace, &name),
                        None => name,
                    },
                ))
            }
            other => Err(ChatError::unsupported(
                format!(
                    "`tool_choice` must be none, auto, required, \
                     {{\"type\":\"function\",\"name\":…}} or \
                     {{\"type\":\"custom\",\"name\":…}}; got type {}.",
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

/// `reasoning.effort` to the domain effort, the `reasoning` the response echoes, and whether a
/// summary was asked for (`summary`, or the older `generate_summary`).
fn parse_reasoning(
    reasoning: Option<&Value>,
) -> Result<(Option<String>, Option<Value>, bool), ChatError> {
    let Some(reasoning) = reasoning else {
        return Ok((None, None, false));
    };
    let effort = string_field(reasoning, "effort", "reasoning")?;
    let mut summary = None;
    for key in ["summary", "generate_summary"] {
        match string_field(reasoning, key, "reasoning")?.as_deref() {
            None => {}
            Some(s @ ("auto" | "concise" | "detailed")) => summary = Some(s.to_string()),
            Some(other) => {
                return Err(ChatError::invalid(
                    format!("`reasoning.{key}` must be auto, concise or detailed; got `{other}`."),
                    format!("reasoning.{key}"),
                ));
            }
        }
    }
    let echo = json!({"effort": effort, "summary": summary});
    Ok((effort, Some(echo), summary.is_some()))
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
