//! The size and shape rules of single fields, checked by validation (`validate.rs`,
//! `turns.rs`) for every door: stop sequences, tools (count, names, descriptions, schemas),
//! metadata. Each error names the field, the limit and a bounded excerpt of what was sent
//! (`shown`), so a huge field never comes back whole in an error or a log line.

use serde_json::Value;

use super::error::ChatError;
use super::types::Tool;

/// Characters in one stop sequence. OpenAI documents no bound; a stop sequence is a short
/// marker, and the matcher holds back up to its length of output before streaming it, so a long
/// one would delay every chunk.
pub const MAX_STOP_CHARS: usize = 256;
/// Tools in one request: OpenAI's documented maximum of functions.
pub const MAX_TOOLS: usize = 128;
/// Characters in a function name: OpenAI's `^[a-zA-Z0-9_-]{1,64}$`.
pub const MAX_TOOL_NAME_CHARS: usize = 64;
/// Characters in a function description. Generous (coding agents send several KB), but bounded:
/// each description is sent to Claude on every `tools/list`.
pub const MAX_TOOL_DESCRIPTION_CHARS: usize = 16 * 1024;

/// At most `MAX_STOP_CHARS` characters each, none empty.
pub(crate) fn check_stop(stop: &[String]) -> Result<(), ChatError> {
    for (i, s) in stop.iter().enumerate() {
        let chars = s.chars().count();
        if chars == 0 {
            return Err(ChatError::invalid(
                format!("`stop[{i}]` is empty; stop sequences must not be empty."),
                format!("stop[{i}]"),
            ));
        }
        if chars > MAX_STOP_CHARS {
            return Err(ChatError::invalid(
                format!(
                    "`stop[{i}]` is {chars} characters long; a stop sequence has at most \
                     {MAX_STOP_CHARS} (got `{}…`).",
                    shown(s)
                ),
                format!("stop[{i}]"),
            ));
        }
    }
    Ok(())
}

/// OpenAI's documented bounds of `metadata`: 16 pairs, keys up to 64 characters, values up to
/// 512. The gateway does not use it, but it is carried along (sessions), so it stays small.
const MAX_METADATA_PAIRS: usize = 16;
const MAX_METADATA_KEY_CHARS: usize = 64;
const MAX_METADATA_VALUE_CHARS: usize = 512;

pub(crate) fn check_metadata(
    metadata: &std::collections::BTreeMap<String, String>,
) -> Result<(), ChatError> {
    if metadata.len() > MAX_METADATA_PAIRS {
        return Err(ChatError::invalid(
            format!(
                "`metadata` has {} pairs; at most {MAX_METADATA_PAIRS} are accepted.",
                metadata.len()
            ),
            "metadata",
        ));
    }
    for (key, value) in metadata {
        let (key_chars, value_chars) = (key.chars().count(), value.chars().count());
        if key_chars > MAX_METADATA_KEY_CHARS || value_chars > MAX_METADATA_VALUE_CHARS {
            return Err(ChatError::invalid(
                format!(
                    "`metadata` keys have at most {MAX_METADATA_KEY_CHARS} characters and values \
                     at most {MAX_METADATA_VALUE_CHARS}; got a key of {key_chars} (`{}`) with a \
                     value of {value_chars}.",
                    shown(key)
                ),
                "metadata",
            ));
        }
    }
    Ok(())
}

/// The start of a client's text, for an error message: enough to recognise it, never the whole
/// of a huge field.
pub(crate) fn shown(text: &str) -> String {
    text.chars().take(40).collect()
}

/// A function name as OpenAI accepts it: 1 to 64 ASCII letters, digits, `_` or `-`. The CLI
/// presents it to Claude as `mcp__gw__<name>`, which Anthropic's tool-name rule also accepts.
pub(crate) fn check_tool_name(name: &str, param: String) -> Result<(), ChatError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_TOOL_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        return Ok(());
    }
    let chars = name.chars().count();
    let got = if chars > MAX_TOOL_NAME_CHARS {
        format!("{chars} characters starting `{}`", shown(name))
    } else {
        format!("`{name}`")
    };
    Err(ChatError::invalid(
        format!(
            "`{param}` must be 1 to {MAX_TOOL_NAME_CHARS} letters, digits, `_` or `-`; got {got}."
        ),
        param,
    ))
}

/// One offered function: its name, description and parameter schema (a JSON object, since it
/// becomes the MCP tool's `inputSchema`).
pub(crate) fn check_tool(i: usize, tool: &Tool) -> Result<(), ChatError> {
    check_tool_name(&tool.name, format!("tools[{i}].function.name"))?;
    if let Some(description) = &tool.description {
        let chars = description.chars().count();
        if chars > MAX_TOOL_DESCRIPTION_CHARS {
            return Err(ChatError::invalid(
                format!(
                    "`tools[{i}].function.description` is {chars} characters long; this gateway \
                     accepts at most {MAX_TOOL_DESCRIPTION_CHARS}."
                ),
                format!("tools[{i}].function.description"),
            ));
        }
    }
    match &tool.parameters {
        None => Ok(()),
        // Claude takes a tool's input as an object, and so does MCP's `inputSchema`.
        Some(Value::Object(schema)) => match schema.get("type") {
            None => Ok(()),
            Some(Value::String(t)) if t == "object" => Ok(()),
            Some(other) => Err(ChatError::invalid(
                format!(
                    "`tools[{i}].function.parameters` must describe an object (`\"type\": \
                     \"object\"`); got `\"type\": {}`.",
                    shown(&other.to_string())
                ),
                format!("tools[{i}].function.parameters"),
            )),
        },
        Some(other) => Err(ChatError::invalid(
            format!(
                "`tools[{i}].function.parameters` must be a JSON Schema object; got {}.",
                json_kind(other)
            ),
            format!("tools[{i}].function.parameters"),
        )),
    }
}

/// What a JSON value is, for an error message.
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
