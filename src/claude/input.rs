//! What the gateway writes on the CLI's stdin (PROTOCOL.md §5, §6.2, §16.3): the `initialize`
//! control request that carries the system prompt, earlier turns replayed as native messages with
//! `shouldQuery:false`, and the user message that starts the turn. Prompts only ever travel here,
//! never on argv.

use serde_json::{Map, Value, json};

use crate::chat::types::DocumentSource;
use crate::chat::validate::{Block, RequiredTool, Turn, TurnRole, ValidChatRequest};

use super::control::{SERVER, cli_tool_name};

/// The stdin lines of one run, in order, and how many `result` lines the replayed history will
/// produce before the real one.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInput {
    pub lines: Vec<InputLine>,
    pub history_user_lines: usize,
}

/// One stdin line, and whether the CLI acknowledges it with a `result` that must be awaited
/// before the next line. The CLI queues user lines and handles the queue asynchronously, so a
/// replayed user line written right before an assistant line lands after it; waiting for its
/// `num_turns:0` result keeps the conversation in order.
#[derive(Debug, Clone, PartialEq)]
pub struct InputLine {
    pub json: String,
    pub await_ack: bool,
    /// The `uuid` of a user line: the marks a later `rewind_conversation` names (`rewind.rs`).
    pub user: Option<String>,
}

/// The stdin lines of a run: `initialize` and the token limit when the process is new (a
/// recycled one keeps its configuration: it only serves requests of the same), the history
/// replayed, and the prompt.
pub fn run_input(req: &ValidChatRequest, configure: bool) -> RunInput {
    let mut lines = Vec::with_capacity(req.history.len() + 3);
    if configure {
        lines.push(InputLine {
            json: initialize(INIT_ID, req),
            await_ack: false,
            user: None,
        });
        if let Some(max) = req.max_tokens {
            lines.push(InputLine {
                json: output_limit(max),
                await_ack: false,
                user: None,
            });
        }
        if let Some(budget) = req.thinking_budget {
            lines.push(InputLine {
                json: thinking_budget(budget),
                await_ack: false,
                user: None,
            });
        }
    }
    let mut history_user_lines = 0;
    for turn in &req.history {
        history_user_lines += usize::from(turn.role == TurnRole::User);
        lines.push(turn_line(turn, false));
    }
    lines.push(turn_line(&req.prompt, true));
    RunInput {
        lines,
        history_user_lines,
    }
}

/// The request id of the `initialize` control request; its response is awaited.
pub const INIT_ID: &str = "init_1";

/// `initialize`: the client's system prompt replacing Claude Code's own (empty when the client
/// sent none, as the Agent SDK does, PROTOCOL.md §2.1), the gateway's MCP server when the client
/// offers functions, the JSON schema of structured output, and the tool requirement.
pub fn initialize(request_id: &str, req: &ValidChatRequest) -> String {
    // A map built here, not `Value` indexing: nothing on this path can panic.
    let mut request = Map::new();
    request.insert("subtype".into(), json!("initialize"));
    request.insert(
        "systemPrompt".into(),
        json!([req.system_prompt.as_deref().unwrap_or("")]),
    );
    if !req.tools.is_empty() {
        request.insert("sdkMcpServers".into(), json!([SERVER]));
    }
    if let Some(schema) = req.output.cli_schema() {
        request.insert("jsonSchema".into(), schema);
    }
    if let Some(required) = &req.tool_mode.required {
        request.insert(
            "appendSystemPrompt".into(),
            json!(tool_requirement(required)),
        );
    }
    json!({"type": "control_request", "request_id": request_id, "request": request}).to_string()
}

/// The request id of the token-limit control request (its answer is not awaited).
pub const LIMIT_ID: &str = "limit_1";

/// The client's token limit, for a process already running (a warm one): the CLI applies
/// flag settings' `env` to itself, and the next API request's `max_tokens` is this (measured on
/// 2.1.330; written before the user line, it holds for that turn, and survives a rewind).
pub fn output_limit(max: u32) -> String {
    json!({"type": "control_request", "request_id": LIMIT_ID, "request": {
        "subtype": "apply_flag_settings",
        "settings": {"env": {"CLAUDE_CODE_MAX_OUTPUT_TOKENS": max.to_string()}},
    }})
    .to_string()
}

/// The request id of the thinking-budget control request (its answer is not awaited).
pub const THINKING_ID: &str = "thinking_1";

/// The client's thinking budget, for a running process: the next API request's
/// `thinking.budget_tokens` is this on the models that take a budget (measured on 2.1.330 with
/// claude-sonnet-4-5; `apply_flag_settings` with `MAX_THINKING_TOKENS` in `env` changes nothing
/// there). Models with adaptive thinking ignore it.
pub fn thinking_budget(budget: u32) -> String {
    json!({"type": "control_request", "request_id": THINKING_ID, "request": {
        "subtype": "set_max_thinking_tokens",
        "max_thinking_tokens": budget,
    }})
    .to_string()
}

/// What Claude is told when `tool_choice` demands a call.
pub fn tool_requirement(required: &RequiredTool) -> String {
    match required {
        RequiredTool::Any => "Respond by calling one or more of the available tools. Do not \
                              answer with text only."
            .to_string(),
        RequiredTool::Named(name) => {
            format!("Respond by calling the `{name}` tool. Do not answer with text only.")
        }
    }
}

/// The user message sent when Claude answered without the tool call `tool_choice` demands.
pub fn tool_nudge(required: &RequiredTool) -> String {
    let text = match required {
        RequiredTool::Any => "You must call one of the available tools now.".to_string(),
        RequiredTool::Named(name) => format!("You must call the `{name}` tool now."),
    };
    turn_line(
        &Turn {
            role: TurnRole::User,
            blocks: vec![Block::Text(text)],
        },
        true,
    )
    .json
}

/// A user or assistant message line. History user lines carry `shouldQuery:false` so they are
/// appended without starting a turn (and are acknowledged); every user line carries a fresh
/// `uuid`, by which a recycled process's conversation is later rewound.
pub fn turn_line(turn: &Turn, query: bool) -> InputLine {
    let mut content: Vec<Value> = turn.blocks.iter().map(block_json).collect();
    match turn.role {
        TurnRole::User => {
            not_a_command(&mut content);
            let uuid = uuid::Uuid::new_v4().to_string();
            let mut line = Map::new();
            line.insert("type".into(), json!("user"));
            line.insert("session_id".into(), json!(""));
            line.insert(
                "message".into(),
                json!({"role": "user", "content": content}),
            );
            line.insert("parent_tool_use_id".into(), Value::Null);
            if !query {
                line.insert("shouldQuery".into(), Value::Bool(false));
            }
            line.insert("uuid".into(), json!(uuid));
            InputLine {
                json: Value::Object(line).to_string(),
                await_ack: !query,
                user: Some(uuid),
            }
        }
        TurnRole::Assistant => {
            let mut message = json!({"role": "assistant", "content": content});
            // The CLI (2.1.330) sends a replayed turn's thinking to the API only when the
            // message names the model the CLI runs now; signatures are bound to their model.
            // The same holds for redacted thinking (measured on 2.1.330).
            let model = turn.blocks.iter().find_map(|b| match b {
                Block::Thinking { model, .. } | Block::RedactedThinking { model, .. }
                    if !model.is_empty() =>
                {
                    Some(model)
                }
                _ => None,
            });
            if let Some(model) = model {
                message["model"] = json!(model);
            }
            InputLine {
                json: json!({
                    "type": "assistant",
                    "session_id": "",
                    "message": message,
                    "parent_tool_use_id": null,
                })
                .to_string(),
                await_ack: false,
                user: None,
            }
        }
    }
}

/// The CLI (2.1.330) runs a user line whose last text block starts with `/` as one of its slash
/// commands (`/clear`, `/compact`, …) instead of sending it to Claude, on a query and on a
/// replayed history line alike; `--disable-slash-commands` only turns that into an error reply.
/// So such a block is split after its `/`: Claude reads the same characters, in two blocks, and
/// no command runs (a lone `/` is no command).
fn not_a_command(content: &mut Vec<Value>) {
    let Some(at) = content.iter().rposition(|b| b["type"] == "text") else {
        return;
    };
    let Some(rest) = content[at]["text"]
        .as_str()
        .and_then(|t| t.strip_prefix('/'))
        .filter(|rest| !rest.is_empty())
        .map(str::to_string)
    else {
        return;
    };
    content[at] = json!({"type": "text", "text": "/"});
    content.insert(at + 1, json!({"type": "text", "text": rest}));
}

/// A content block as the CLI writes it itself: its keys in the CLI's order (JSON maps keep
/// their order here), since the CLI passes a written block to the API as it is, and a replayed
/// conversation must reach the API byte for byte as a continued one does — same prompt-cache
/// prefix. A tool result is what the CLI makes of an MCP result: a list of one text block.
fn block_json(block: &Block) -> Value {
    match block {
        Block::Text(text) => json!({"type": "text", "text": text}),
        Block::Image { media_type, data } => json!({
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }),
        // The engine downloads remote images before a run starts (`fetch::fetch_remote_images`),
        // so none reach here; were one to, the Messages API's own URL source is its meaning.
        Block::RemoteImage { url, .. } => json!({
            "type": "image",
            "source": {"type": "url", "url": url},
        }),
        Block::Thinking {
            thinking,
            signature,
            model: _,
        } => json!({"type": "thinking", "thinking": thinking, "signature": signature}),
        Block::RedactedThinking { data, model: _ } => {
            json!({"type": "redacted_thinking", "data": data})
        }
        // The CLI passes a document block to the API as it is (2.1.330, base64 PDF and text
        // sources, title and context kept).
        Block::Document(document) => {
            let source = match &document.source {
                DocumentSource::Pdf { data } => {
                    json!({"type": "base64", "media_type": "application/pdf", "data": data})
                }
                DocumentSource::Text { data } => {
                    json!({"type": "text", "media_type": "text/plain", "data": data})
                }
            };
            let mut block = Map::new();
            block.insert("type".into(), json!("document"));
            block.insert("source".into(), source);
            if let Some(title) = &document.title {
                block.insert("title".into(), json!(title));
            }
            if let Some(context) = &document.context {
                block.insert("context".into(), json!(context));
            }
            Value::Object(block)
        }
        Block::ToolUse { id, name, input } => json!({
            "type": "tool_use", "id": id, "name": cli_tool_name(name), "input": input,
        }),
        Block::ToolResult {
            tool_use_id,
            content,
        } => json!({
            "tool_use_id": tool_use_id,
            "type": "tool_result",
            "content": [{"type": "text", "text": content}],
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::models::ModelInfo;

    fn request(history: Vec<Turn>, prompt: Turn) -> ValidChatRequest {
        ValidChatRequest {
            model: ModelInfo {
                id: "gpt-4o".into(),
                cli_model: "sonnet".into(),
            },
            system_prompt: Some("Be brief.".into()),
            history,
            prompt,
            tools: vec![],
            tool_mode: crate::chat::validate::ToolMode {
                parallel: true,
                required: None,
            },
            output: crate::chat::validate::OutputMode::Text,
            max_tokens: None,
            stop: vec![],
            n: 1,
            effort: None,
            thinking_budget: None,
            ignored_params: vec![],
        }
    }

    fn text(role: TurnRole, t: &str) -> Turn {
        Turn {
            role,
            blocks: vec![Block::Text(t.into())],
        }
    }

    #[test]
    fn text_that_looks_like_a_slash_command_is_split_after_its_slash() {
        let line: Value =
            serde_json::from_str(&turn_line(&text(TurnRole::User, "/clear now"), true).json)
                .unwrap();
        assert_eq!(
            line["message"]["content"],
            json!([{"type": "text", "text": "/"}, {"type": "text", "text": "clear now"}])
        );
        let history: Value =
            serde_json::from_str(&turn_line(&text(TurnRole::User, "/help"), false).json).unwrap();
        assert_eq!(history["message"]["content"][1]["text"], "help");
        for plain in ["/", "a /clear", " /clear"] {
            let line: Value =
                serde_json::from_str(&turn_line(&text(TurnRole::User, plain), true).json).unwrap();
            assert_eq!(
                line["message"]["content"],
                json!([{"type": "text", "text": plain}])
            );
        }
        // An assistant turn is never a command.
        let said: Value =
            serde_json::from_str(&turn_line(&text(TurnRole::Assistant, "/clear"), false).json)
                .unwrap();
        assert_eq!(said["message"]["content"][0]["text"], "/clear");
    }

    #[test]
    fn history_is_replayed_without_querying_and_the_prompt_queries() {
        let input = run_input(
            &request(
                vec![
                    text(TurnRole::User, "My name is Ada."),
                    text(TurnRole::Assistant, "Hi Ada."),
                ],
                text(TurnRole::User, "What is my name?"),
            ),
            true,
        );
        assert_eq!(input.history_user_lines, 1);
        let lines: Vec<Value> = input
            .lines
            .iter()
            .map(|l| serde_json::from_str(&l.json).unwrap())
            .collect();
        let acks: Vec<bool> = input.lines.iter().map(|l| l.await_ack).collect();
        assert_eq!(acks, vec![false, true, false, false]);
        assert_eq!(lines[0]["request"]["subtype"], "initialize");
        assert_eq!(lines[0]["request"]["systemPrompt"][0], "Be brief.");
        assert_eq!(lines[1]["shouldQuery"], false);
        assert_eq!(lines[1]["message"]["content"][0]["text"], "My name is Ada.");
        assert_eq!(lines[2]["type"], "assistant");
        assert_eq!(
            lines[3]["message"]["content"][0]["text"],
            "What is my name?"
        );
        assert!(lines[3].get("shouldQuery").is_none());
        assert!(input.lines.iter().all(|l| !l.json.contains('\n')));
    }

    #[test]
    fn limits_are_set_on_a_new_process_before_the_prompt() {
        let mut req = request(vec![], text(TurnRole::User, "Hi"));
        req.max_tokens = Some(4096);
        req.thinking_budget = Some(2048);
        let lines: Vec<Value> = run_input(&req, true)
            .lines
            .iter()
            .map(|l| serde_json::from_str(&l.json).unwrap())
            .collect();
        let subtypes: Vec<&str> = lines
            .iter()
            .map(|l| l["request"]["subtype"].as_str().unwrap_or("(user)"))
            .collect();
        assert_eq!(
            subtypes,
            [
                "initialize",
                "apply_flag_settings",
                "set_max_thinking_tokens",
                "(user)"
            ]
        );
        assert_eq!(lines[2]["request"]["max_thinking_tokens"], 2048);
        // A recycled process keeps its configuration (its key includes the budget).
        assert_eq!(run_input(&req, false).lines.len(), 1);
    }

    #[test]
    fn tools_schema_and_requirement_go_in_initialize() {
        let mut req = request(vec![], text(TurnRole::User, "Hi"));
        req.tools = vec![crate::chat::types::Tool {
            name: "f".into(),
            description: None,
            parameters: None,
            strict: None,
        }];
        req.output = crate::chat::validate::OutputMode::JsonObject;
        req.tool_mode.required = Some(RequiredTool::Named("f".into()));
        let init: Value = serde_json::from_str(&initialize(INIT_ID, &req)).unwrap();
        assert_eq!(init["request"]["sdkMcpServers"], json!(["gw"]));
        assert_eq!(init["request"]["jsonSchema"], json!({"type": "object"}));
        assert!(
            init["request"]["appendSystemPrompt"]
                .as_str()
                .unwrap()
                .contains("`f`")
        );
    }

    #[test]
    fn tool_blocks_use_the_mcp_name_and_results_answer_ids() {
        let turn = Turn {
            role: TurnRole::Assistant,
            blocks: vec![Block::ToolUse {
                id: "toolu_1".into(),
                name: "get_weather".into(),
                input: json!({"city": "Paris"}),
            }],
        };
        let line: Value = serde_json::from_str(&turn_line(&turn, false).json).unwrap();
        assert_eq!(
            line["message"]["content"][0]["name"],
            "mcp__gw__get_weather"
        );
        let result = Turn {
            role: TurnRole::User,
            blocks: vec![Block::ToolResult {
                tool_use_id: "toolu_1".into(),
                content: "Sunny".into(),
            }],
        };
        let line: Value = serde_json::from_str(&turn_line(&result, true).json).unwrap();
        assert_eq!(
            line["message"]["content"][0],
            json!({"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"Sunny"}]})
        );
        // In the order the CLI writes a tool result itself (measured on 2.1.330).
        assert!(line["message"]["content"].to_string().starts_with(
            r#"[{"tool_use_id":"toolu_1","type":"tool_result","content":[{"type":"text","text":"Sunny"}]}"#
        ));
    }

    #[test]
    fn documents_and_redacted_thinking_become_native_blocks() {
        let turn = Turn {
            role: TurnRole::User,
            blocks: vec![
                Block::Document(crate::chat::types::Document {
                    source: DocumentSource::Pdf {
                        data: "JVBERg==".into(),
                    },
                    title: Some("Report".into()),
                    context: None,
                }),
                Block::Document(crate::chat::types::Document {
                    source: DocumentSource::Text { data: "hi".into() },
                    title: None,
                    context: Some("notes".into()),
                }),
            ],
        };
        let line: Value = serde_json::from_str(&turn_line(&turn, true).json).unwrap();
        assert_eq!(
            line["message"]["content"],
            json!([
                {"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERg=="},"title":"Report"},
                {"type":"document","source":{"type":"text","media_type":"text/plain","data":"hi"},"context":"notes"},
            ])
        );
        let said = Turn {
            role: TurnRole::Assistant,
            blocks: vec![
                Block::RedactedThinking {
                    data: "EmwK".into(),
                    model: "claude-sonnet-5-5".into(),
                },
                Block::Text("Hi.".into()),
            ],
        };
        let line: Value = serde_json::from_str(&turn_line(&said, false).json).unwrap();
        assert_eq!(line["message"]["model"], "claude-sonnet-5-5");
        assert_eq!(
            line["message"]["content"][0],
            json!({"type":"redacted_thinking","data":"EmwK"})
        );
    }

    #[test]
    fn images_become_native_blocks() {
        let turn = Turn {
            role: TurnRole::User,
            blocks: vec![
                Block::Text("What is this?".into()),
                Block::Image {
                    media_type: "image/png".into(),
                    data: "iVBORw0KGgo=".into(),
                },
            ],
        };
        let line: Value = serde_json::from_str(&turn_line(&turn, true).json).unwrap();
        assert_eq!(
            line["message"]["content"][1],
            json!({"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}})
        );
    }
}
