//! The control channel, host side (PROTOCOL.md §6, §16.1): the in-process MCP server through
//! which the client's functions are offered to Claude as native tools, and the answers to the
//! CLI's other control requests. Pure: a request in, the stdin line to answer with out.
//!
//! No tool ever runs. `can_use_tool` for a client tool gets no answer while the turn is the
//! client's: the engine hands the calls to the client as soon as the assistant message with them
//! is complete, and the process waits at that prompt (`parked.rs`). Only when the follow-up
//! request brings the client's results for exactly those calls (`ToolAnswers`) is each call
//! permitted, and its `tools/call` answered with the client's result, so Claude continues the
//! same turn. Any other `tools/call` is answered with an error.

use std::collections::{HashMap, VecDeque};

use serde_json::{Value, json};

use crate::chat::types::Tool;

/// The name of the gateway's MCP server; the CLI presents its tools as `mcp__gw__<name>`.
pub const SERVER: &str = "gw";
const PREFIX: &str = "mcp__gw__";
/// The CLI's own tool for `--json-schema` / `jsonSchema` structured output.
pub const STRUCTURED_OUTPUT: &str = "StructuredOutput";

/// The name Claude sees for a client function.
pub fn cli_tool_name(client_name: &str) -> String {
    format!("{PREFIX}{client_name}")
}

/// The client's function name for a tool name Claude used, if it is one of ours.
pub fn client_tool_name(cli_name: &str) -> Option<&str> {
    cli_name.strip_prefix(PREFIX)
}

/// What the host does with one control request.
#[derive(Debug, Clone, PartialEq)]
pub enum ControlAction {
    /// Write this line on stdin.
    Reply(String),
    /// Leave it unanswered (a client tool's permission prompt: the run ends before it matters).
    Hold,
}

/// The client's results for the calls a continued process stopped at, by call id; each is
/// given once: its call is permitted, then its `tools/call` answered with it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolAnswers {
    results: HashMap<String, String>,
    /// Calls permitted whose `tools/call` has not come yet, in order.
    permitted: VecDeque<String>,
}

impl ToolAnswers {
    pub fn new(results: impl IntoIterator<Item = (String, String)>) -> Self {
        ToolAnswers {
            results: results.into_iter().collect(),
            permitted: VecDeque::new(),
        }
    }

    /// The call id a `tools/call` answers: the CLI's own tag when it sends one, else the
    /// oldest call permitted (the CLI runs permitted calls one at a time, in order).
    fn call_of(&mut self, message: &Value) -> Option<String> {
        let tagged = message
            .pointer("/params/_meta")
            .and_then(|m| m.get("claudecode/toolUseId"))
            .and_then(Value::as_str)
            .map(str::to_string);
        match tagged {
            Some(id) => {
                self.permitted.retain(|p| *p != id);
                Some(id)
            }
            None => self.permitted.pop_front(),
        }
    }
}

pub fn handle(
    request_id: &str,
    request: &Value,
    tools: &[Tool],
    answers: &mut ToolAnswers,
) -> ControlAction {
    match request.get("subtype").and_then(Value::as_str) {
        Some("mcp_message") => {
            let message = request.get("message").cloned().unwrap_or(Value::Null);
            ControlAction::Reply(success(
                request_id,
                json!({"mcp_response": mcp_reply(&message, tools, answers)}),
            ))
        }
        Some("can_use_tool") => {
            let tool = request
                .get("tool_name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if tool == STRUCTURED_OUTPUT {
                // The CLI's own structured-output tool: it records the answer, nothing runs.
                let input = request.get("input").cloned().unwrap_or(json!({}));
                ControlAction::Reply(success(
                    request_id,
                    json!({"behavior": "allow", "updatedInput": input}),
                ))
            } else if client_tool_name(tool).is_some() {
                let call = request.get("tool_use_id").and_then(Value::as_str);
                match call.filter(|id| answers.results.contains_key(*id)) {
                    // The client ran it: let the CLI "run" it; its result is the client's.
                    Some(id) => {
                        answers.permitted.push_back(id.to_string());
                        let input = request.get("input").cloned().unwrap_or(json!({}));
                        ControlAction::Reply(success(
                            request_id,
                            json!({"behavior": "allow", "updatedInput": input}),
                        ))
                    }
                    None => ControlAction::Hold,
                }
            } else {
                ControlAction::Reply(success(
                    request_id,
                    json!({"behavior": "deny", "message": "Only the client's functions exist here.", "interrupt": true}),
                ))
            }
        }
        other => ControlAction::Reply(error(
            request_id,
            &format!(
                "Unsupported control request subtype: {}",
                other.unwrap_or("none")
            ),
        )),
    }
}

fn success(request_id: &str, response: Value) -> String {
    json!({"type": "control_response", "response": {
        "subtype": "success", "request_id": request_id, "response": response,
    }})
    .to_string()
}

fn error(request_id: &str, message: &str) -> String {
    json!({"type": "control_response", "response": {
        "subtype": "error", "request_id": request_id, "error": message,
    }})
    .to_string()
}

/// The JSON-RPC answer of the gateway's MCP server.
fn mcp_reply(message: &Value, tools: &[Tool], answers: &mut ToolAnswers) -> Value {
    let id = message.get("id").cloned();
    let method = message.get("method").and_then(Value::as_str).unwrap_or("");
    let result = match method {
        "initialize" => json!({
            "protocolVersion": message
                .pointer("/params/protocolVersion")
                .cloned()
                .unwrap_or(json!("2025-11-25")),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": SERVER, "version": env!("CARGO_PKG_VERSION")},
        }),
        "tools/list" => json!({"tools": tools.iter().map(mcp_tool).collect::<Vec<_>>()}),
        "tools/call" => match answers
            .call_of(message)
            .and_then(|id| answers.results.remove(&id))
        {
            Some(result) => json!({"content": [{"type": "text", "text": result}]}),
            None => json!({
                "isError": true,
                "content": [{"type": "text", "text": "This function runs on the client; the gateway never executes it."}],
            }),
        },
        "ping" => json!({}),
        _ if id.is_none() => json!({}),
        _ => {
            return json!({"jsonrpc": "2.0", "id": id,
                "error": {"code": -32601, "message": format!("Method not found: {method}")}});
        }
    };
    // Notifications get a dummy answer, as the Agent SDK does.
    json!({"jsonrpc": "2.0", "id": id.unwrap_or(json!(0)), "result": result})
}

/// A client function as an MCP tool. Validation only lets object schemas through; anything
/// else (a request built without it) is offered as a function without parameters rather than
/// indexed into.
fn mcp_tool(tool: &Tool) -> Value {
    let schema = match &tool.parameters {
        Some(Value::Object(map)) => {
            let mut map = map.clone();
            map.entry("type").or_insert_with(|| json!("object"));
            Value::Object(map)
        }
        _ => json!({"type": "object", "properties": {}}),
    };
    json!({
        "name": tool.name,
        "description": tool.description.clone().unwrap_or_default(),
        "inputSchema": schema,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weather() -> Vec<Tool> {
        vec![Tool {
            name: "get_weather".into(),
            description: Some("Get the weather.".into()),
            parameters: Some(
                json!({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}),
            ),
            strict: None,
        }]
    }

    fn reply(action: ControlAction) -> Value {
        match action {
            ControlAction::Reply(line) => serde_json::from_str(&line).unwrap(),
            ControlAction::Hold => panic!("held"),
        }
    }

    #[test]
    fn the_mcp_handshake_lists_the_client_tools() {
        let init = json!({"subtype":"mcp_message","server_name":"gw","message":{"method":"initialize","params":{"protocolVersion":"2025-11-25"},"jsonrpc":"2.0","id":0}});
        let r = reply(handle("a", &init, &weather(), &mut ToolAnswers::default()));
        assert_eq!(r["response"]["request_id"], "a");
        assert_eq!(
            r["response"]["response"]["mcp_response"]["result"]["protocolVersion"],
            "2025-11-25"
        );
        let note = json!({"subtype":"mcp_message","server_name":"gw","message":{"jsonrpc":"2.0","method":"notifications/initialized"}});
        let r = reply(handle("b", &note, &weather(), &mut ToolAnswers::default()));
        assert_eq!(
            r["response"]["response"]["mcp_response"]["result"],
            json!({})
        );
        let list = json!({"subtype":"mcp_message","server_name":"gw","message":{"method":"tools/list","jsonrpc":"2.0","id":1}});
        let r = reply(handle("c", &list, &weather(), &mut ToolAnswers::default()));
        let tools = &r["response"]["response"]["mcp_response"]["result"]["tools"];
        assert_eq!(tools[0]["name"], "get_weather");
        assert_eq!(tools[0]["inputSchema"]["required"][0], "city");
    }

    #[test]
    fn nothing_is_ever_executed() {
        let call = json!({"subtype":"mcp_message","server_name":"gw","message":{"method":"tools/call","params":{"name":"get_weather","arguments":{}},"jsonrpc":"2.0","id":2}});
        let r = reply(handle("d", &call, &weather(), &mut ToolAnswers::default()));
        assert_eq!(
            r["response"]["response"]["mcp_response"]["result"]["isError"],
            true
        );
        let ask = json!({"subtype":"can_use_tool","tool_name":"mcp__gw__get_weather","input":{"city":"Paris"}});
        assert_eq!(
            handle("e", &ask, &weather(), &mut ToolAnswers::default()),
            ControlAction::Hold
        );
        let other = json!({"subtype":"can_use_tool","tool_name":"Bash","input":{}});
        assert_eq!(
            reply(handle("f", &other, &weather(), &mut ToolAnswers::default()))["response"]["response"]
                ["behavior"],
            "deny"
        );
        let structured =
            json!({"subtype":"can_use_tool","tool_name":"StructuredOutput","input":{"a":1}});
        assert_eq!(
            reply(handle("g", &structured, &[], &mut ToolAnswers::default()))["response"]["response"]
                ["behavior"],
            "allow"
        );
    }

    #[test]
    fn the_clients_results_let_exactly_its_calls_proceed() {
        let mut answers = ToolAnswers::new([
            ("toolu_1".to_string(), "Sunny".to_string()),
            ("toolu_2".to_string(), "Rainy".to_string()),
        ]);
        let ask = |id: &str| json!({"subtype":"can_use_tool","tool_name":"mcp__gw__get_weather","input":{"city":"Paris"},"tool_use_id":id});
        assert_eq!(
            handle("x", &ask("toolu_9"), &weather(), &mut answers),
            ControlAction::Hold
        );
        let allowed = reply(handle("a", &ask("toolu_1"), &weather(), &mut answers));
        assert_eq!(allowed["response"]["response"]["behavior"], "allow");
        assert_eq!(
            allowed["response"]["response"]["updatedInput"]["city"],
            "Paris"
        );
        // Untagged: the oldest permitted call.
        let call = json!({"subtype":"mcp_message","server_name":"gw","message":{"method":"tools/call","params":{"name":"get_weather","arguments":{}},"jsonrpc":"2.0","id":3}});
        let r = reply(handle("b", &call, &weather(), &mut answers));
        let result = &r["response"]["response"]["mcp_response"]["result"];
        assert_eq!(result["content"][0]["text"], "Sunny");
        assert!(result.get("isError").is_none());
        // Tagged by the CLI: that call.
        reply(handle("c", &ask("toolu_2"), &weather(), &mut answers));
        let tagged = json!({"subtype":"mcp_message","server_name":"gw","message":{"method":"tools/call","params":{"name":"get_weather","arguments":{},"_meta":{"claudecode/toolUseId":"toolu_2"}},"jsonrpc":"2.0","id":4}});
        let r = reply(handle("d", &tagged, &weather(), &mut answers));
        assert_eq!(
            r["response"]["response"]["mcp_response"]["result"]["content"][0]["text"],
            "Rainy"
        );
        // Each result is given once.
        let r = reply(handle("e", &call, &weather(), &mut answers));
        assert_eq!(
            r["response"]["response"]["mcp_response"]["result"]["isError"],
            true
        );
    }

    #[test]
    fn a_non_object_schema_cannot_panic_the_listing() {
        let list = json!({"subtype":"mcp_message","server_name":"gw","message":{"method":"tools/list","jsonrpc":"2.0","id":1}});
        for parameters in [
            json!([1, 2]),
            json!("x"),
            json!(3),
            json!({"properties": {}}),
        ] {
            let tools = vec![Tool {
                name: "f".into(),
                description: None,
                parameters: Some(parameters),
                strict: None,
            }];
            let r = reply(handle("h", &list, &tools, &mut ToolAnswers::default()));
            let schema = &r["response"]["response"]["mcp_response"]["result"]["tools"][0];
            assert_eq!(schema["inputSchema"]["type"], "object");
        }
    }

    #[test]
    fn names_are_prefixed_and_unprefixed() {
        assert_eq!(cli_tool_name("f"), "mcp__gw__f");
        assert_eq!(client_tool_name("mcp__gw__f"), Some("f"));
        assert_eq!(client_tool_name("Bash"), None);
    }
}
