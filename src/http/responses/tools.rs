//! The pieces every tool and item parser of this dialect shares: a required string field and a
//! `function` tool (top-level or inside a namespace). A leaf: it uses only the domain.

use serde_json::{Value, json};

use crate::chat::ChatError;
use crate::chat::message_json::{field, string_field};
use crate::chat::types::Tool;

pub fn required_string(item: &Value, key: &str, path: &str) -> Result<String, ChatError> {
    string_field(item, key, path)?.ok_or_else(|| {
        ChatError::invalid(
            format!("`{path}.{key}` is required."),
            format!("{path}.{key}"),
        )
    })
}

/// A `function` tool item at path `p` → the domain tool, and the tool as the response echoes it.
pub fn function_tool(item: &Value, p: &str) -> Result<(Tool, Value), ChatError> {
    let name = required_string(item, "name", p)?;
    let parameters = field(item, "parameters").cloned();
    if parameters.as_ref().is_some_and(|v| !v.is_object()) {
        return Err(ChatError::invalid(
            format!("`{p}.parameters` must be a JSON Schema object."),
            format!("{p}.parameters"),
        ));
    }
    let description = string_field(item, "description", p)?;
    let strict = field(item, "strict").and_then(Value::as_bool);
    let echo = json!({
        "type": "function",
        "name": name,
        "description": description,
        "parameters": parameters,
        "strict": strict,
    });
    let tool = Tool {
        name,
        description,
        parameters,
        strict,
    };
    Ok((tool, echo))
}
