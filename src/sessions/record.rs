//! How the store writes a conversation: each message of a history as a `StoredMessage`, a serde
//! record owned here and shaped after the domain `Message`, not after any protocol. A body is
//! JSON text tagged `"record": 1`; an untagged body is a message stored by an older gateway in
//! OpenAI's chat JSON, and is still read (through the OpenAI reader), so stores written before
//! this format need no rewrite.
//!
//! The conversions destructure every field: a new field of `Message` is a compile error here,
//! not a silent drop from stored histories.

use serde::{Deserialize, Serialize};

use crate::chat::message_json::parse_message;
use crate::chat::types::{
    ContentPart, Document, DocumentSource, FinishReason, ImageDetail, Message, Role, ToolCall,
    Usage,
};

/// A body that cannot be written or read; the store reports it as a backend failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RecordError(pub String);

impl From<serde_json::Error> for RecordError {
    fn from(e: serde_json::Error) -> Self {
        RecordError(format!("stored JSON: {e}"))
    }
}

type Result<T> = std::result::Result<T, RecordError>;

/// The version tag of the current record format.
const RECORD_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StoredMessage {
    record: u32,
    role: StoredRole,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    content: Vec<StoredPart>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<StoredToolCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StoredRole {
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StoredPart {
    Text {
        text: String,
    },
    Image {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<StoredDetail>,
    },
    /// Added after version 1 shipped; records without it read as before.
    Thinking {
        thinking: String,
        signature: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        model: String,
    },
    /// Added after version 1 shipped, like `thinking`.
    RedactedThinking {
        data: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        model: String,
    },
    /// Added after version 1 shipped: `media_type` says how `data` reads (base64 for a PDF).
    Document {
        media_type: StoredDocumentType,
        data: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum StoredDocumentType {
    #[serde(rename = "application/pdf")]
    Pdf,
    #[serde(rename = "text/plain")]
    Text,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StoredDetail {
    Auto,
    Low,
    High,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StoredToolCall {
    id: String,
    name: String,
    /// JSON text of the arguments, as the model wrote it.
    arguments: String,
}

impl From<&Message> for StoredMessage {
    fn from(m: &Message) -> Self {
        let Message {
            role,
            content,
            name,
            tool_calls,
            tool_call_id,
        } = m;
        StoredMessage {
            record: RECORD_VERSION,
            role: match role {
                Role::System => StoredRole::System,
                Role::Developer => StoredRole::Developer,
                Role::User => StoredRole::User,
                Role::Assistant => StoredRole::Assistant,
                Role::Tool => StoredRole::Tool,
            },
            content: content
                .iter()
                .map(|part| match part {
                    ContentPart::Text(text) => StoredPart::Text { text: text.clone() },
                    ContentPart::Thinking {
                        thinking,
                        signature,
                        model,
                    } => StoredPart::Thinking {
                        thinking: thinking.clone(),
                        signature: signature.clone(),
                        model: model.clone(),
                    },
                    ContentPart::RedactedThinking { data, model } => StoredPart::RedactedThinking {
                        data: data.clone(),
                        model: model.clone(),
                    },
                    ContentPart::Document(Document {
                        source,
                        title,
                        context,
                    }) => {
                        let (media_type, data) = match source {
                            DocumentSource::Pdf { data } => (StoredDocumentType::Pdf, data),
                            DocumentSource::Text { data } => (StoredDocumentType::Text, data),
                        };
                        StoredPart::Document {
                            media_type,
                            data: data.clone(),
                            title: title.clone(),
                            context: context.clone(),
                        }
                    }
                    ContentPart::ImageUrl { url, detail } => StoredPart::Image {
                        url: url.clone(),
                        detail: match detail {
                            ImageDetail::Unspecified => None,
                            ImageDetail::Auto => Some(StoredDetail::Auto),
                            ImageDetail::Low => Some(StoredDetail::Low),
                            ImageDetail::High => Some(StoredDetail::High),
                        },
                    },
                })
                .collect(),
            name: name.clone(),
            tool_calls: tool_calls
                .iter()
                .map(|c| {
                    let ToolCall {
                        id,
                        name,
                        arguments,
                    } = c;
                    StoredToolCall {
                        id: id.clone(),
                        name: name.clone(),
                        arguments: arguments.clone(),
                    }
                })
                .collect(),
            tool_call_id: tool_call_id.clone(),
        }
    }
}

impl From<StoredMessage> for Message {
    fn from(m: StoredMessage) -> Self {
        let StoredMessage {
            record: _,
            role,
            content,
            name,
            tool_calls,
            tool_call_id,
        } = m;
        Message {
            role: match role {
                StoredRole::System => Role::System,
                StoredRole::Developer => Role::Developer,
                StoredRole::User => Role::User,
                StoredRole::Assistant => Role::Assistant,
                StoredRole::Tool => Role::Tool,
            },
            content: content
                .into_iter()
                .map(|part| match part {
                    StoredPart::Text { text } => ContentPart::Text(text),
                    StoredPart::Thinking {
                        thinking,
                        signature,
                        model,
                    } => ContentPart::Thinking {
                        thinking,
                        signature,
                        model,
                    },
                    StoredPart::RedactedThinking { data, model } => {
                        ContentPart::RedactedThinking { data, model }
                    }
                    StoredPart::Document {
                        media_type,
                        data,
                        title,
                        context,
                    } => ContentPart::Document(Document {
                        source: match media_type {
                            StoredDocumentType::Pdf => DocumentSource::Pdf { data },
                            StoredDocumentType::Text => DocumentSource::Text { data },
                        },
                        title,
                        context,
                    }),
                    StoredPart::Image { url, detail } => ContentPart::ImageUrl {
                        url,
                        detail: match detail {
                            None => ImageDetail::Unspecified,
                            Some(StoredDetail::Auto) => ImageDetail::Auto,
                            Some(StoredDetail::Low) => ImageDetail::Low,
                            Some(StoredDetail::High) => ImageDetail::High,
                        },
                    },
                })
                .collect(),
            name,
            tool_calls: tool_calls
                .into_iter()
                .map(|c| {
                    let StoredToolCall {
                        id,
                        name,
                        arguments,
                    } = c;
                    ToolCall {
                        id,
                        name,
                        arguments,
                    }
                })
                .collect(),
            tool_call_id,
        }
    }
}

/// The `body` column of one message.
pub fn encode(message: &Message) -> Result<String> {
    Ok(serde_json::to_string(&StoredMessage::from(message))?)
}

/// A stored body back as a message: the record, or an older gateway's OpenAI chat JSON.
/// `seq` is the message's place in its history, for the error.
pub fn decode(body: &str, seq: usize) -> Result<Message> {
    let value: serde_json::Value = serde_json::from_str(body)?;
    match value.get("record") {
        Some(version) if version.as_u64() == Some(u64::from(RECORD_VERSION)) => {
            Ok(serde_json::from_value::<StoredMessage>(value)?.into())
        }
        Some(version) => Err(RecordError(format!(
            "stored message {seq} has record version {version}; this gateway reads \
             {RECORD_VERSION}"
        ))),
        None => parse_message(seq, value).map_err(|e| {
            RecordError(format!(
                "stored message {seq} (OpenAI JSON) is unreadable: {e}"
            ))
        }),
    }
}

/// How a stored response's turn ended, as the `outcome` column keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StoredOutcome {
    record: u32,
    finish: StoredFinish,
    input_tokens: u32,
    output_tokens: u32,
    cached_tokens: u32,
    /// Added after version 1 shipped; older outcomes read as 0.
    #[serde(default)]
    cache_creation_tokens: u32,
    reasoning_tokens: u32,
    #[serde(default)]
    estimated: bool,
    #[serde(default)]
    cost_usd: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StoredFinish {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
}

/// The `outcome` column of a stored response: how its turn ended and what it used.
pub fn encode_outcome(usage: &Usage, finish: FinishReason) -> Result<String> {
    let Usage {
        prompt_tokens,
        completion_tokens,
        cached_tokens,
        cache_creation_tokens,
        reasoning_tokens,
        estimated,
        cost_usd,
    } = *usage;
    Ok(serde_json::to_string(&StoredOutcome {
        record: RECORD_VERSION,
        finish: match finish {
            // Which sequence is the request's business, not the record's.
            FinishReason::Stop | FinishReason::StopSequence(_) => StoredFinish::Stop,
            FinishReason::Length => StoredFinish::Length,
            FinishReason::ToolCalls => StoredFinish::ToolCalls,
            FinishReason::ContentFilter => StoredFinish::ContentFilter,
        },
        input_tokens: prompt_tokens,
        output_tokens: completion_tokens,
        cached_tokens,
        cache_creation_tokens,
        reasoning_tokens,
        estimated,
        cost_usd,
    })?)
}

/// A stored `outcome` column back.
pub fn decode_outcome(text: &str) -> Result<(Usage, FinishReason)> {
    let StoredOutcome {
        record,
        finish,
        input_tokens,
        output_tokens,
        cached_tokens,
        cache_creation_tokens,
        reasoning_tokens,
        estimated,
        cost_usd,
    } = serde_json::from_str(text)?;
    if record != RECORD_VERSION {
        return Err(RecordError(format!(
            "a stored response outcome has record version {record}; this gateway reads \
             {RECORD_VERSION}"
        )));
    }
    let usage = Usage {
        prompt_tokens: input_tokens,
        completion_tokens: output_tokens,
        cached_tokens,
        cache_creation_tokens,
        reasoning_tokens,
        estimated,
        cost_usd,
    };
    let finish = match finish {
        StoredFinish::Stop => FinishReason::Stop,
        StoredFinish::Length => FinishReason::Length,
        StoredFinish::ToolCalls => FinishReason::ToolCalls,
        StoredFinish::ContentFilter => FinishReason::ContentFilter,
    };
    Ok((usage, finish))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<Message> {
        vec![
            Message::text(Role::System, "Be brief."),
            Message::text(Role::Developer, "Use SI units."),
            Message {
                role: Role::User,
                content: vec![
                    ContentPart::Text("What is this?".into()),
                    ContentPart::ImageUrl {
                        url: "data:image/png;base64,AAAA".into(),
                        detail: ImageDetail::High,
                    },
                    ContentPart::ImageUrl {
                        url: "https://example.com/a.png".into(),
                        detail: ImageDetail::Unspecified,
                    },
                ],
                name: Some("ada".into()),
                tool_calls: Vec::new(),
                tool_call_id: None,
            },
            Message {
                role: Role::Assistant,
                content: Vec::new(),
                name: None,
                tool_calls: vec![ToolCall {
                    id: "call_1".into(),
                    name: "weather".into(),
                    arguments: r#"{"city":"Paris"}"#.into(),
                }],
                tool_call_id: None,
            },
            Message {
                role: Role::Tool,
                content: vec![ContentPart::Text("18 °C".into())],
                name: None,
                tool_calls: Vec::new(),
                tool_call_id: Some("call_1".into()),
            },
        ]
    }

    #[test]
    fn records_round_trip_every_kind_of_message() {
        for (i, m) in every_kind().into_iter().enumerate() {
            let body = encode(&m).unwrap();
            assert!(body.starts_with(r#"{"record":1,"#), "{body}");
            assert_eq!(decode(&body, i).unwrap(), m, "{body}");
        }
    }

    #[test]
    fn bodies_an_older_gateway_stored_as_openai_json_still_read() {
        for (i, m) in every_kind().into_iter().enumerate() {
            let old = crate::chat::message_json::message_to_json(&m).to_string();
            assert_eq!(decode(&old, i).unwrap(), m, "{old}");
        }
        let old = r#"{"role":"user","content":[{"type":"text","text":"Hi"}]}"#;
        assert_eq!(decode(old, 0).unwrap(), Message::text(Role::User, "Hi"));
    }

    #[test]
    fn outcomes_round_trip() {
        let usage = Usage {
            prompt_tokens: 12,
            completion_tokens: 5,
            cached_tokens: 3,
            cache_creation_tokens: 4,
            reasoning_tokens: 2,
            estimated: true,
            cost_usd: 0.25,
        };
        let text = encode_outcome(&usage, FinishReason::Length).unwrap();
        assert!(
            text.starts_with(r#"{"record":1,"finish":"length""#),
            "{text}"
        );
        assert_eq!(
            decode_outcome(&text).unwrap(),
            (usage, FinishReason::Length)
        );
        assert!(decode_outcome(r#"{"record":2,"finish":"stop"}"#).is_err());
        // An outcome stored before cache writes were kept reads them as 0.
        let old = r#"{"record":1,"finish":"stop","input_tokens":1,"output_tokens":2,"cached_tokens":0,"reasoning_tokens":0}"#;
        assert_eq!(decode_outcome(old).unwrap().0.cache_creation_tokens, 0);
    }

    #[test]
    fn an_assistant_turn_keeps_its_thinking_and_its_signature() {
        let m = Message {
            role: Role::Assistant,
            content: vec![
                ContentPart::Thinking {
                    thinking: "Let me think.".into(),
                    signature: "sig_1".into(),
                    model: "claude-sonnet-5-5".into(),
                },
                ContentPart::Text("Hello".into()),
            ],
            name: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
        };
        let body = encode(&m).unwrap();
        assert!(
            body.contains(r#"{"type":"thinking","thinking":"Let me think.","signature":"sig_1","model":"claude-sonnet-5-5"}"#),
            "{body}"
        );
        assert_eq!(decode(&body, 0).unwrap(), m);
        // A version-1 record written before thinking was kept reads as it did.
        let old = r#"{"record":1,"role":"assistant","content":[{"type":"text","text":"Hi"}]}"#;
        assert_eq!(
            decode(old, 0).unwrap(),
            Message::text(Role::Assistant, "Hi")
        );
    }

    #[test]
    fn documents_and_redacted_thinking_are_kept() {
        let user = Message {
            role: Role::User,
            content: vec![
                ContentPart::Document(Document {
                    source: DocumentSource::Pdf {
                        data: "JVBERg==".into(),
                    },
                    title: Some("Report".into()),
                    context: Some("Q3".into()),
                }),
                ContentPart::Document(Document {
                    source: DocumentSource::Text { data: "hi".into() },
                    title: None,
                    context: None,
                }),
                ContentPart::Text("Summarise.".into()),
            ],
            ..Message::text(Role::User, "")
        };
        let body = encode(&user).unwrap();
        assert!(
            body.contains(r#"{"type":"document","media_type":"application/pdf","data":"JVBERg==","title":"Report","context":"Q3"}"#),
            "{body}"
        );
        assert_eq!(decode(&body, 0).unwrap(), user);
        // A chat-completions `file` part as older gateways stored it reads as the same document.
        let old = crate::chat::message_json::message_to_json(&user).to_string();
        assert!(
            old.contains("data:application/pdf;base64,JVBERg=="),
            "{old}"
        );
        let mut titled = user.clone();
        if let ContentPart::Document(d) = &mut titled.content[0] {
            d.context = None;
        }
        assert_eq!(decode(&old, 0).unwrap(), titled);
        let said = Message {
            role: Role::Assistant,
            content: vec![
                ContentPart::RedactedThinking {
                    data: "EmwK".into(),
                    model: "claude-sonnet-5-5".into(),
                },
                ContentPart::Text("Hello".into()),
            ],
            ..Message::text(Role::Assistant, "")
        };
        let body = encode(&said).unwrap();
        assert!(
            body.contains(
                r#"{"type":"redacted_thinking","data":"EmwK","model":"claude-sonnet-5-5"}"#
            ),
            "{body}"
        );
        assert_eq!(decode(&body, 0).unwrap(), said);
    }

    #[test]
    fn unreadable_bodies_are_record_errors() {
        for bad in [
            "not json",
            r#"{"record":2,"role":"user"}"#,
            r#"{"record":1,"role":"robot"}"#,
            r#"{"role":"robot","content":"x"}"#,
            "[1,2]",
        ] {
            assert!(matches!(decode(bad, 3), Err(RecordError(_))), "{bad}");
        }
    }
}
