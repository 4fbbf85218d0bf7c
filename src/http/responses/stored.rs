//! Stored responses as this dialect records and shows them. The session layer keeps a response
//! as a point in its chain's history plus an opaque document; the document is written here: the
//! request's echo, its creation time, the response it continued, and its input items in the
//! shape `GET /v1/responses/{id}/input_items` lists them (each with an id and a status). A stored
//! response is shown again by running the same stream state machine over its stored reply, with
//! item ids derived from the response id, so `GET /v1/responses/{id}` gives back what the
//! creating request answered.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::chat::ChatError;
use crate::chat::types::{ChatEvent, ContentPart, ReasoningDelta, ToolCallDelta};
use crate::sessions::ResponseRecord;

use super::seal::SealKey;
use super::stream::{IdMaker, ReasoningOptions, ResponseStream, random_id};
use super::types::{Echo, ResponseObject, initial_response};

/// The version of the document format this code writes.
const DOCUMENT_VERSION: u32 = 1;

/// What the dialect keeps about a stored response's request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub version: u32,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_response_id: Option<String>,
    pub echo: Echo,
    /// How the response showed Claude's thinking.
    #[serde(default)]
    pub reasoning: ShownReasoning,
    /// The input items as `input_items` lists them.
    pub input_items: Vec<Value>,
}

/// What the request asked of reasoning items (`ReasoningOptions` without the key).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ShownReasoning {
    pub requested: bool,
    pub summary: bool,
    pub sealed: bool,
}

impl ShownReasoning {
    pub fn of(options: &ReasoningOptions) -> Self {
        ShownReasoning {
            requested: options.requested,
            summary: options.summary,
            sealed: options.seal.is_some(),
        }
    }
}

impl Document {
    pub fn new(
        echo: Echo,
        created_at: i64,
        previous_response_id: Option<String>,
        input: Option<&Value>,
    ) -> Self {
        Document {
            version: DOCUMENT_VERSION,
            created_at,
            previous_response_id,
            echo,
            reasoning: ShownReasoning::default(),
            input_items: input_items(input),
        }
    }

    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn parse(text: &str) -> Result<Self, ChatError> {
        let doc: Document = serde_json::from_str(text)
            .map_err(|e| ChatError::internal(format!("a stored response is unreadable: {e}")))?;
        if doc.version != DOCUMENT_VERSION {
            return Err(ChatError::internal(format!(
                "a stored response has document version {}; this gateway reads {DOCUMENT_VERSION}",
                doc.version
            )));
        }
        Ok(doc)
    }
}

/// Item ids derived from the response id: the same on every showing of the response.
pub fn item_ids(response_id: &str) -> IdMaker {
    let stem = response_id
        .strip_prefix("resp_")
        .unwrap_or(response_id)
        .to_string();
    let mut n = 0u32;
    Box::new(move |prefix| {
        n += 1;
        format!("{prefix}_{stem}{n:02}")
    })
}

/// A stored response as the `response` object its creating request answered (a sealed
/// `encrypted_content` is sealed again with `key`: the same thinking, another nonce).
pub fn render(record: ResponseRecord, key: &SealKey) -> Result<ResponseObject, ChatError> {
    let ResponseRecord {
        id,
        created_at,
        document,
        input: _,
        reply,
        usage,
        finish,
    } = record;
    let doc = Document::parse(&document)?;
    let mut response = initial_response(id.clone(), doc.echo, doc.created_at);
    response.previous_response_id = doc.previous_response_id;
    response.store = true;
    let shown = doc.reasoning;
    let mut machine =
        ResponseStream::new(response, item_ids(&id)).with_reasoning(ReasoningOptions {
            requested: shown.requested,
            summary: shown.summary,
            seal: shown.sealed.then(|| key.clone()),
        });
    machine.push(ChatEvent::Role { index: 0 });
    for part in reply.content {
        match part {
            ContentPart::Text(text) => {
                machine.push(ChatEvent::Text { index: 0, text });
            }
            ContentPart::Thinking {
                thinking,
                signature,
                model,
            } => {
                machine.push(ChatEvent::Reasoning {
                    index: 0,
                    delta: ReasoningDelta::Text(thinking),
                });
                machine.push(ChatEvent::Reasoning {
                    index: 0,
                    delta: ReasoningDelta::Signature { signature, model },
                });
            }
            // Redacted thinking has no reasoning item to show (the stream drops it too);
            // an answer carries no documents or images.
            ContentPart::RedactedThinking { .. }
            | ContentPart::Document(_)
            | ContentPart::ImageUrl { .. } => {}
        }
    }
    for (index, call) in (0u32..).zip(reply.tool_calls) {
        machine.push(ChatEvent::ToolCall {
            index: 0,
            call: ToolCallDelta {
                index,
                id: Some(call.id),
                name: Some(call.name),
                arguments: call.arguments,
            },
        });
    }
    machine.push(ChatEvent::Finish {
        index: 0,
        reason: finish,
    });
    machine.push(ChatEvent::Usage(usage));
    machine.finish(created_at);
    Ok(machine.response().clone())
}

/// The stored input items of a response.
pub fn stored_input_items(record: &ResponseRecord) -> Result<Vec<Value>, ChatError> {
    Ok(Document::parse(&record.document)?.input_items)
}

/// `input` as listed items: each an object with a `type`, an `id` and a `status`, messages with
/// content-part lists (`input_text` for user, system and developer, `output_text` with its
/// `annotations` for assistant).
fn input_items(input: Option<&Value>) -> Vec<Value> {
    match input {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => vec![message("user", &Value::String(text.clone()), None)],
        Some(Value::Array(items)) => items.iter().filter_map(item).collect(),
        Some(_) => Vec::new(),
    }
}

fn item(value: &Value) -> Option<Value> {
    let obj = value.as_object()?;
    let kind = obj.get("type").and_then(Value::as_str).unwrap_or("message");
    if kind == "message" {
        let role = obj.get("role").and_then(Value::as_str).unwrap_or("user");
        let content = obj.get("content").cloned().unwrap_or(Value::Null);
        let id = obj.get("id").and_then(Value::as_str);
        return Some(message(role, &content, id));
    }
    let mut out: Map<String, Value> = obj.clone();
    if !out.get("id").is_some_and(Value::is_string) {
        let prefix = match kind {
            "function_call" => "fc",
            "function_call_output" => "fco",
            "custom_tool_call" => "ctc",
            "custom_tool_call_output" => "ctco",
            "reasoning" => "rs",
            _ => "item",
        };
        out.insert("id".into(), json!(random_id(prefix)));
    }
    if matches!(
        kind,
        "function_call" | "function_call_output" | "custom_tool_call" | "custom_tool_call_output"
    ) && !out.contains_key("status")
    {
        out.insert("status".into(), json!("completed"));
    }
    Some(Value::Object(out))
}

fn message(role: &str, content: &Value, id: Option<&str>) -> Value {
    let assistant = role == "assistant";
    let part = |text: &str| {
        if assistant {
            json!({"type": "output_text", "text": text, "annotations": []})
        } else {
            json!({"type": "input_text", "text": text})
        }
    };
    let parts: Vec<Value> = match content {
        Value::String(text) => vec![part(text)],
        Value::Array(parts) => parts
            .iter()
            .map(|p| match p.get("type").and_then(Value::as_str) {
                Some("output_text") if p.get("annotations").is_none() => {
                    let mut p = p.clone();
                    if let Some(obj) = p.as_object_mut() {
                        obj.insert("annotations".into(), json!([]));
                    }
                    p
                }
                _ => p.clone(),
            })
            .collect(),
        _ => Vec::new(),
    };
    json!({
        "type": "message",
        "id": id.map_or_else(|| random_id("msg"), str::to_string),
        "role": role,
        "status": "completed",
        "content": parts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_ids_are_derived_from_the_response_id() {
        let mut a = item_ids("resp_abc");
        let mut b = item_ids("resp_abc");
        assert_eq!(a("msg"), "msg_abc01");
        assert_eq!(a("fc"), "fc_abc02");
        assert_eq!(b("msg"), "msg_abc01");
    }

    #[test]
    fn input_is_listed_as_items_with_ids_and_statuses() {
        let items = input_items(Some(&json!("Hi")));
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["type"], "message");
        assert_eq!(items[0]["role"], "user");
        assert_eq!(items[0]["status"], "completed");
        assert_eq!(
            items[0]["content"][0],
            json!({"type": "input_text", "text": "Hi"})
        );
        assert!(items[0]["id"].as_str().unwrap().starts_with("msg_"));

        let items = input_items(Some(&json!([
            {"role": "assistant", "content": "Earlier."},
            {"type": "function_call_output", "call_id": "c1", "output": "18"},
            {"type": "message", "id": "msg_mine", "role": "developer", "content": [{"type": "input_text", "text": "x"}]},
        ])));
        assert_eq!(
            items[0]["content"][0],
            json!({"type": "output_text", "text": "Earlier.", "annotations": []})
        );
        assert_eq!(items[1]["status"], "completed");
        assert!(items[1]["id"].as_str().unwrap().starts_with("fco_"));
        assert_eq!(items[2]["id"], "msg_mine");
    }
}
