//! What the gateway writes on the CLI's stdin (PROTOCOL.md §5, §6.2, §16.3): the `initialize`
//! control request that carries the system prompt, earlier turns replayed as native messages with
//! `shouldQuery:false`, and the user message that starts the turn. Prompts only ever travel here,
//! never on argv.

use serde_json::{Value, json};

use crate::chat::validate::{Block, Turn, TurnRole, ValidChatRequest};

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
}

pub fn run_input(req: &ValidChatRequest) -> RunInput {
    let mut lines = Vec::with_capacity(req.history.len() + 2);
    lines.push(InputLine {
        json: initialize("init_1", req.system_prompt.as_deref()),
        await_ack: false,
    });
    let mut history_user_lines = 0;
    for turn in &req.history {
        let is_user = turn.role == TurnRole::User;
        lines.push(InputLine {
            json: turn_line(turn, false),
            await_ack: is_user,
        });
        history_user_lines += usize::from(is_user);
    }
    lines.push(InputLine {
        json: turn_line(&req.prompt, true),
        await_ack: false,
    });
    RunInput {
        lines,
        history_user_lines,
    }
}

/// `initialize` with the client's system prompt, replacing Claude Code's own. With no client
/// system message the prompt is empty, as the Agent SDK does (PROTOCOL.md §2.1).
pub fn initialize(request_id: &str, system_prompt: Option<&str>) -> String {
    json!({
        "type": "control_request",
        "request_id": request_id,
        "request": {
            "subtype": "initialize",
            "systemPrompt": [system_prompt.unwrap_or("")],
        },
    })
    .to_string()
}

/// A user or assistant message line. History user lines carry `shouldQuery:false` so they are
/// appended without starting a turn.
pub fn turn_line(turn: &Turn, query: bool) -> String {
    let content: Vec<Value> = turn.blocks.iter().map(block_json).collect();
    match turn.role {
        TurnRole::User => {
            let mut line = json!({
                "type": "user",
                "session_id": "",
                "message": {"role": "user", "content": content},
                "parent_tool_use_id": null,
            });
            if !query {
                line["shouldQuery"] = Value::Bool(false);
            }
            line.to_string()
        }
        TurnRole::Assistant => json!({
            "type": "assistant",
            "session_id": "",
            "message": {"role": "assistant", "content": content},
            "parent_tool_use_id": null,
        })
        .to_string(),
    }
}

fn block_json(block: &Block) -> Value {
    match block {
        Block::Text(text) => json!({"type": "text", "text": text}),
        Block::Image { media_type, data } => json!({
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
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
            max_tokens: None,
            stop: vec![],
            effort: None,
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
    fn history_is_replayed_without_querying_and_the_prompt_queries() {
        let input = run_input(&request(
            vec![
                text(TurnRole::User, "My name is Ada."),
                text(TurnRole::Assistant, "Hi Ada."),
            ],
            text(TurnRole::User, "What is my name?"),
        ));
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
        let line: Value = serde_json::from_str(&turn_line(&turn, true)).unwrap();
        assert_eq!(
            line["message"]["content"][1],
            json!({"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}})
        );
    }
}
