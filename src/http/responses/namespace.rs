//! Namespace tools (`{"type":"namespace", name, description, tools}`): a group of function and
//! custom tools whose calls carry the group as `namespace` and the tool as `name` (Codex sends
//! its subagent tools so). Claude's tool names are flat, so each inner tool is offered under
//! `<namespace>__<name>`; a name that would not fit Anthropic's rule once the CLI prefixes it
//! (`mcp__gw__`), or that another offered tool already has, is refused here with a 400 naming the
//! inner tool. Back from Claude, `ToolNames` (built from the tools the response echoes) turns a
//! Claude-side name into the call the client expects: a `function_call` or `custom_tool_call`
//! with its `namespace` and inner `name`. A replayed call that carries a `namespace` gets its
//! combined name again (`combined`), so nothing of this reaches the domain or gRPC.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::chat::ChatError;
use crate::chat::message_json::{field, string_field};
use crate::chat::types::Tool;

use super::custom::custom_tool;
use super::tools::function_tool;
use super::tools::required_string;

/// Between the namespace and the tool's name in the name Claude sees.
pub const SEPARATOR: &str = "__";

/// Longest combined name: Anthropic's 64 characters less the `mcp__gw__` the CLI puts before
/// every gateway tool.
pub const MAX_COMBINED_CHARS: usize = 64 - "mcp__gw__".len();

/// The name Claude sees for tool `name` of `namespace`.
pub fn combined(namespace: &str, name: &str) -> String {
    format!("{namespace}{SEPARATOR}{name}")
}

/// A namespace item at path `p` → its inner tools as Claude sees them (combined names, each with
/// the path of its inner item), and the namespace as the response echoes it.
pub fn namespace_tools(item: &Value, p: &str) -> Result<(Vec<(Tool, String)>, Value), ChatError> {
    let namespace = required_string(item, "name", p)?;
    if !valid_chars(&namespace) {
        return Err(ChatError::invalid(
            format!(
                "`{p}.name` must be letters, digits, `_` or `-` (it becomes part of the tool \
                 names Claude sees); got `{}`.",
                shown(&namespace)
            ),
            format!("{p}.name"),
        ));
    }
    let description = string_field(item, "description", p)?.unwrap_or_default();
    let items = match field(item, "tools") {
        Some(Value::Array(items)) if !items.is_empty() => items,
        _ => {
            return Err(ChatError::invalid(
                format!("`{p}.tools` must be a non-empty array of function and custom tools."),
                format!("{p}.tools"),
            ));
        }
    };
    let mut tools = Vec::new();
    let mut echo = Vec::new();
    for (j, inner) in items.iter().enumerate() {
        let ip = format!("{p}.tools[{j}]");
        let (mut tool, inner_echo) = match string_field(inner, "type", &ip)?.as_deref() {
            Some("function") => function_tool(inner, &ip)?,
            Some("custom") => custom_tool(inner, &ip)?,
            other => {
                return Err(ChatError::invalid(
                    format!(
                        "`{ip}.type` must be `function` or `custom` (a namespace holds only \
                         those); got {}.",
                        other.map_or("nothing".to_string(), |o| format!("`{o}`"))
                    ),
                    format!("{ip}.type"),
                ));
            }
        };
        let name = combined(&namespace, &tool.name);
        if !valid_chars(&tool.name) || name.len() > MAX_COMBINED_CHARS {
            return Err(ChatError::invalid(
                format!(
                    "`{ip}.name` is offered to Claude as `<namespace>{SEPARATOR}<name>`, which \
                     must be 1 to {MAX_COMBINED_CHARS} letters, digits, `_` or `-`; got `{}` \
                     ({} characters).",
                    shown(&name),
                    name.chars().count()
                ),
                format!("{ip}.name"),
            ));
        }
        if !description.is_empty() {
            let note = format!("(One of the `{namespace}` tools: {description})");
            tool.description = Some(match tool.description.take() {
                Some(d) if !d.is_empty() => format!("{d}\n\n{note}"),
                _ => note,
            });
        }
        tool.name = name;
        tools.push((tool, ip));
        echo.push(inner_echo);
    }
    let echo = json!({
        "type": "namespace",
        "name": namespace,
        "description": description,
        "tools": echo,
    });
    Ok((tools, echo))
}

/// The Claude-side names of a request's tools so far, each with the path of the tool it came
/// from, so that a combined name equal to another tool's is refused, naming both.
#[derive(Debug, Default)]
pub struct OfferedNames(HashMap<String, (String, bool)>);

impl OfferedNames {
    /// Adds `name` of the tool at `path`. Two plain tools of one name are left to the domain's
    /// check (the same for every door); a clash involving a namespaced tool is refused here.
    pub fn add(&mut self, name: &str, path: &str, namespaced: bool) -> Result<(), ChatError> {
        match self.0.get(name) {
            Some((other, other_namespaced)) if namespaced || *other_namespaced => {
                Err(ChatError::invalid(
                    format!(
                        "`{path}` and `{other}` would both be offered to Claude as `{name}` \
                         (a namespaced tool is named `<namespace>{SEPARATOR}<name>`); rename \
                         one of them."
                    ),
                    format!("{path}.name"),
                ))
            }
            Some(_) => Ok(()),
            None => {
                self.0
                    .insert(name.to_string(), (path.to_string(), namespaced));
                Ok(())
            }
        }
    }
}

/// How a call of a Claude-side tool name is shown to the client.
#[derive(Debug, Clone, PartialEq)]
pub struct Called {
    pub namespace: Option<String>,
    pub name: String,
    /// A `custom` tool: the call is a `custom_tool_call` with the decoded `input`.
    pub custom: bool,
}

/// The Claude-side names that are not plain functions: custom tools and the inner tools of
/// namespaces, read from the tools a response echoes.
#[derive(Debug, Default)]
pub struct ToolNames(HashMap<String, Called>);

impl ToolNames {
    pub fn new(tools: &[Value]) -> Self {
        let mut names = HashMap::new();
        for tool in tools {
            match tool["type"].as_str() {
                Some("custom") => {
                    if let Some(name) = tool["name"].as_str() {
                        names.insert(name.to_string(), called(None, name, true));
                    }
                }
                Some("namespace") => {
                    let Some(namespace) = tool["name"].as_str() else {
                        continue;
                    };
                    for inner in tool["tools"].as_array().into_iter().flatten() {
                        if let Some(name) = inner["name"].as_str() {
                            let custom = inner["type"] == "custom";
                            names.insert(
                                combined(namespace, name),
                                called(Some(namespace), name, custom),
                            );
                        }
                    }
                }
                _ => {}
            }
        }
        ToolNames(names)
    }

    /// The call of the tool Claude knows as `claude_name`; an unknown name is a plain function.
    pub fn called(&self, claude_name: &str) -> Called {
        self.0
            .get(claude_name)
            .cloned()
            .unwrap_or_else(|| called(None, claude_name, false))
    }
}

fn called(namespace: Option<&str>, name: &str, custom: bool) -> Called {
    Called {
        namespace: namespace.map(str::to_string),
        name: name.to_string(),
        custom,
    }
}

fn valid_chars(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The start of a client's name, for an error message.
fn shown(text: &str) -> String {
    text.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn agents() -> Value {
        json!({"type": "namespace", "name": "multi_agent_v1",
        "description": "Tools for sub-agents.",
        "tools": [
            {"type": "function", "name": "spawn_agent", "description": "Spawns one.",
             "parameters": {"type": "object", "properties": {"task": {"type": "string"}}}},
            {"type": "custom", "name": "note"},
        ]})
    }

    #[test]
    fn inner_tools_get_combined_names_and_the_group_in_their_description() {
        let (tools, echo) = namespace_tools(&agents(), "tools[3]").unwrap();
        let names: Vec<&str> = tools.iter().map(|(t, _)| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["multi_agent_v1__spawn_agent", "multi_agent_v1__note"]
        );
        assert_eq!(tools[0].1, "tools[3].tools[0]");
        let d = tools[0].0.description.as_deref().unwrap();
        assert!(d.starts_with("Spawns one.") && d.contains("Tools for sub-agents."));
        // The custom one is a function with one string field, as a top-level custom tool.
        assert_eq!(
            tools[1].0.parameters.as_ref().unwrap()["required"],
            json!(["input"])
        );
        assert_eq!(echo["tools"][0]["name"], "spawn_agent");
        assert_eq!(echo["tools"][1]["type"], "custom");

        let names = ToolNames::new(&[echo]);
        let spawn = names.called("multi_agent_v1__spawn_agent");
        assert_eq!(spawn.namespace.as_deref(), Some("multi_agent_v1"));
        assert_eq!((spawn.name.as_str(), spawn.custom), ("spawn_agent", false));
        assert!(names.called("multi_agent_v1__note").custom);
        assert_eq!(
            names.called("exec_command"),
            called(None, "exec_command", false)
        );
    }

    #[test]
    fn names_that_do_not_fit_are_refused_naming_the_inner_tool() {
        let long = json!({"type": "namespace", "name": "n".repeat(40), "description": "",
            "tools": [{"type": "function", "name": "x".repeat(14)}]});
        let err = namespace_tools(&long, "tools[0]").unwrap_err();
        assert_eq!(err.param(), Some("tools[0].tools[0].name"), "{err}");
        assert!(err.to_string().contains("55"), "{err}");
        // 40 + 2 + 13 = 55 fits.
        let fits = json!({"type": "namespace", "name": "n".repeat(40), "description": "",
            "tools": [{"type": "function", "name": "x".repeat(13)}]});
        assert!(namespace_tools(&fits, "tools[0]").is_ok());

        let bad = json!({"type": "namespace", "name": "a.b", "description": "",
            "tools": [{"type": "function", "name": "x"}]});
        let err = namespace_tools(&bad, "tools[1]").unwrap_err();
        assert_eq!(err.param(), Some("tools[1].name"));
        let hosted = json!({"type": "namespace", "name": "a", "description": "",
            "tools": [{"type": "web_search"}]});
        let err = namespace_tools(&hosted, "tools[1]").unwrap_err();
        assert_eq!(err.param(), Some("tools[1].tools[0].type"));
        let empty = json!({"type": "namespace", "name": "a", "description": "", "tools": []});
        let err = namespace_tools(&empty, "tools[1]").unwrap_err();
        assert_eq!(err.param(), Some("tools[1].tools"));
    }

    #[test]
    fn a_combined_name_clashing_with_another_is_refused() {
        let mut names = OfferedNames::default();
        names.add("a__b", "tools[0]", false).unwrap();
        names.add("c", "tools[1]", false).unwrap();
        // Two plain tools of one name: the domain's check says so, for every door.
        names.add("c", "tools[2]", false).unwrap();
        let err = names.add("a__b", "tools[3].tools[0]", true).unwrap_err();
        assert_eq!(err.param(), Some("tools[3].tools[0].name"));
        assert!(err.to_string().contains("`tools[0]`"), "{err}");
    }
}
