//! OpenAI messages into the turns the CLI takes: system and developer text out as the system
//! prompt; user, assistant and tool messages as Anthropic-style turns of content blocks (text,
//! base64 images, `tool_use`, `tool_result`). Tool results and the user text after them share one
//! user turn, as the Messages API requires; each result must answer an earlier call.

use std::collections::HashSet;

use base64::Engine as _;
use serde_json::Value;

use super::error::ChatError;
use super::limits::{check_tool_name, shown};
use super::types::{ContentPart, Document, Message, Role};

const IMAGE_TYPES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnRole {
    User,
    Assistant,
}

/// One message as the CLI takes it: a role and content blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub role: TurnRole,
    pub blocks: Vec<Block>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Text(String),
    /// A base64 image; `data` is the base64 text as the client sent it (already checked).
    Image {
        media_type: String,
        data: String,
    },
    /// An `http(s)` image the gateway downloads once the request is admitted (`--fetch-images`);
    /// `param` names where the client put it, for errors. Counted like any image by validation.
    RemoteImage {
        url: String,
        param: String,
    },
    /// Claude's thinking in an earlier assistant turn, sent back as the API's `thinking` block
    /// (the API checks the signature).
    Thinking {
        thinking: String,
        signature: String,
        model: String,
    },
    /// Encrypted thinking of an earlier assistant turn, sent back as the API's
    /// `redacted_thinking` block.
    RedactedThinking {
        data: String,
        model: String,
    },
    /// A document (already checked: a PDF's base64 decodes, sizes are within the limits).
    Document(Document),
    /// A call Claude made earlier; `name` is the client's function name.
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    /// The client's result for an earlier call.
    ToolResult {
        tool_use_id: String,
        content: String,
    },
}

/// Limits on images, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct ImageLimits {
    pub max_bytes: usize,
    pub max_count: usize,
    /// `http(s)` URLs become `Block::RemoteImage` (fetching is on) instead of a 400.
    pub allow_remote: bool,
}

/// System prompt (all system/developer text, joined by blank lines) and the turns, in order.
pub fn split_messages(
    messages: Vec<Message>,
    limits: ImageLimits,
) -> Result<(Option<String>, Vec<Turn>), ChatError> {
    if messages.is_empty() {
        return Err(ChatError::invalid(
            "`messages` must contain at least one message.",
            "messages",
        ));
    }
    let mut system: Vec<String> = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    let mut images = 0usize;
    let mut open_calls: HashSet<String> = HashSet::new();
    for (i, message) in messages.into_iter().enumerate() {
        let param = format!("messages[{i}]");
        match message.role {
            Role::System | Role::Developer => {
                let text = text_only(&message, &param)?;
                if !text.trim().is_empty() {
                    system.push(text);
                }
            }
            Role::Tool => {
                let Some(id) = message.tool_call_id.clone().filter(|id| !id.is_empty()) else {
                    return Err(ChatError::invalid(
                        format!("`{param}.tool_call_id` is required for tool messages."),
                        format!("{param}.tool_call_id"),
                    ));
                };
                if !open_calls.remove(&id) {
                    return Err(ChatError::invalid(
                        format!(
                            "`{param}.tool_call_id` is `{}`, which answers no tool call of an \
                             earlier assistant message (or one already answered).",
                            shown(&id)
                        ),
                        format!("{param}.tool_call_id"),
                    ));
                }
                let content = text_only(&message, &param)?;
                let block = Block::ToolResult {
                    tool_use_id: id,
                    content,
                };
                match turns.last_mut() {
                    Some(last) if last.role == TurnRole::User && has_tool_results(last) => {
                        last.blocks.push(block);
                    }
                    _ => turns.push(Turn {
                        role: TurnRole::User,
                        blocks: vec![block],
                    }),
                }
            }
            Role::User => {
                let blocks = user_blocks(message.content, &param, limits, &mut images)?;
                match turns.last_mut() {
                    // Text after tool results joins them: one user turn.
                    Some(last) if last.role == TurnRole::User && has_tool_results(last) => {
                        last.blocks.extend(blocks);
                    }
                    _ => turns.push(Turn {
                        role: TurnRole::User,
                        blocks,
                    }),
                }
            }
            Role::Assistant => {
                let mut blocks = Vec::new();
                for (j, part) in message.content.into_iter().enumerate() {
                    match part {
                        ContentPart::Text(t) if t.is_empty() => {}
                        ContentPart::Text(t) => blocks.push(Block::Text(t)),
                        ContentPart::Thinking {
                            thinking,
                            signature,
                            model,
                        } => blocks.push(Block::Thinking {
                            thinking,
                            signature,
                            model,
                        }),
                        ContentPart::RedactedThinking { data, model } => {
                            blocks.push(Block::RedactedThinking { data, model });
                        }
                        ContentPart::Document(_) => {
                            return Err(ChatError::invalid(
                                "Assistant messages cannot carry documents.",
                                format!("{param}.content[{j}]"),
                            ));
                        }
                        ContentPart::ImageUrl { .. } => {
                            return Err(ChatError::invalid(
                                "Assistant messages cannot carry images.",
                                format!("{param}.content[{j}]"),
                            ));
                        }
                    }
                }
                for (j, call) in message.tool_calls.into_iter().enumerate() {
                    let call_param = format!("{param}.tool_calls[{j}]");
                    check_call_id(&call.id, &call_param)?;
                    check_tool_name(&call.name, format!("{call_param}.function.name"))?;
                    let p = format!("{call_param}.function.arguments");
                    let input = call_input(&call.arguments)
                        .map_err(|what| ChatError::invalid(format!("`{p}` {what}"), p.clone()))?;
                    open_calls.insert(call.id.clone());
                    blocks.push(Block::ToolUse {
                        id: call.id,
                        name: call.name,
                        input,
                    });
                }
                // An empty assistant message (an empty answer) carries nothing to replay.
                if !blocks.is_empty() {
                    turns.push(Turn {
                        role: TurnRole::Assistant,
                        blocks,
                    });
                }
            }
        }
    }
    let system = (!system.is_empty()).then(|| system.join("\n\n"));
    Ok((system, turns))
}

/// A call's arguments as a client sends them back: a JSON object (no text at all: `{}`). The
/// error says what is wrong with them. The engine parses the arguments Claude streamed the same
/// way, so a parked process's conversation hashes like the follow-up that echoes it.
pub fn call_input(arguments: &str) -> Result<Value, String> {
    if arguments.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    let input: Value =
        serde_json::from_str(arguments).map_err(|e| format!("is not valid JSON: {e}."))?;
    if !input.is_object() {
        return Err("must be a JSON object.".into());
    }
    Ok(input)
}

/// An `http://` or `https://` URL (scheme case-insensitive, as URLs are).
pub fn is_remote(url: &str) -> bool {
    let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
    scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")
}

/// Characters in a tool call id; Anthropic's ids (`toolu_…`) and OpenAI's (`call_…`) are far
/// shorter.
pub const MAX_CALL_ID_CHARS: usize = 256;

/// A call id is what a later tool message answers; an empty or huge one cannot be matched
/// reliably, and Claude refuses an empty `tool_use.id`.
fn check_call_id(id: &str, param: &str) -> Result<(), ChatError> {
    let chars = id.chars().count();
    if chars == 0 || chars > MAX_CALL_ID_CHARS {
        return Err(ChatError::invalid(
            format!(
                "`{param}.id` must be 1 to {MAX_CALL_ID_CHARS} characters; got {chars} \
                 characters."
            ),
            format!("{param}.id"),
        ));
    }
    Ok(())
}

fn has_tool_results(turn: &Turn) -> bool {
    turn.blocks
        .iter()
        .any(|b| matches!(b, Block::ToolResult { .. }))
}

fn text_only(message: &Message, param: &str) -> Result<String, ChatError> {
    let mut text = String::new();
    for part in &message.content {
        match part {
            ContentPart::Text(t) => text.push_str(t),
            ContentPart::ImageUrl { .. }
            | ContentPart::Thinking { .. }
            | ContentPart::RedactedThinking { .. }
            | ContentPart::Document(_) => {
                return Err(ChatError::invalid(
                    format!(
                        "`{param}` is a {} message; only text is allowed there.",
                        message.role.as_str()
                    ),
                    format!("{param}.content"),
                ));
            }
        }
    }
    Ok(text)
}

fn user_blocks(
    content: Vec<ContentPart>,
    param: &str,
    limits: ImageLimits,
    images: &mut usize,
) -> Result<Vec<Block>, ChatError> {
    let mut blocks = Vec::with_capacity(content.len());
    for (j, part) in content.into_iter().enumerate() {
        match part {
            ContentPart::Text(t) if t.is_empty() => {}
            ContentPart::Text(t) => blocks.push(Block::Text(t)),
            ContentPart::Thinking { .. } | ContentPart::RedactedThinking { .. } => {
                return Err(ChatError::invalid(
                    "Only assistant messages can carry Claude's thinking.",
                    format!("{param}.content[{j}]"),
                ));
            }
            ContentPart::Document(document) => {
                let part_param = format!("{param}.content[{j}]");
                *images += 1;
                if *images > limits.max_count {
                    return Err(ChatError::invalid(
                        format!(
                            "At most {} images and documents are allowed per request; this one \
                             has more.",
                            limits.max_count
                        ),
                        part_param,
                    ));
                }
                super::documents::check(&document, limits.max_bytes, &part_param)?;
                blocks.push(Block::Document(document));
            }
            ContentPart::ImageUrl { url, .. } => {
                let part_param = format!("{param}.content[{j}].image_url");
                *images += 1;
                if *images > limits.max_count {
                    return Err(ChatError::invalid(
                        format!(
                            "At most {} images are allowed per request; this one has more.",
                            limits.max_count
                        ),
                        part_param,
                    ));
                }
                blocks.push(parse_image(url, limits, part_param)?);
            }
        }
    }
    if blocks.is_empty() {
        return Err(ChatError::invalid(
            format!("`{param}.content` is empty; Claude needs some text or an image."),
            format!("{param}.content"),
        ));
    }
    Ok(blocks)
}

/// `data:image/png;base64,…` into an image block; an `http(s)` URL into a remote image when the
/// operator allows fetching (it is downloaded after admission), else refused.
fn parse_image(url: String, limits: ImageLimits, param: String) -> Result<Block, ChatError> {
    let max_bytes = limits.max_bytes;
    let param = param.as_str();
    if limits.allow_remote && is_remote(&url) {
        return Ok(Block::RemoteImage {
            url,
            param: param.to_string(),
        });
    }
    let Some(rest) = url.strip_prefix("data:") else {
        let shown: String = url.chars().take(60).collect();
        return Err(ChatError::invalid_with_code(
            format!(
                "Only data URLs (data:image/png;base64,…) are accepted for images; fetching \
                 remote images is turned off on this gateway (got `{shown}`)."
            ),
            param,
            "invalid_image_url",
        ));
    };
    let (header, data) = rest.split_once(',').ok_or_else(|| {
        ChatError::invalid_with_code(
            "The image data URL has no `,` before its data.",
            param,
            "invalid_image_url",
        )
    })?;
    let media_type = header.strip_suffix(";base64").ok_or_else(|| {
        ChatError::invalid_with_code(
            "Image data URLs must be base64 (`data:image/png;base64,…`).",
            param,
            "invalid_image_url",
        )
    })?;
    if !IMAGE_TYPES.contains(&media_type) {
        return Err(ChatError::invalid_with_code(
            format!(
                "Image type `{media_type}` is not supported; use one of {}.",
                IMAGE_TYPES.join(", ")
            ),
            param,
            "invalid_image_format",
        ));
    }
    let approx_bytes = data.len() / 4 * 3;
    if approx_bytes > max_bytes {
        return Err(ChatError::invalid_with_code(
            format!("The image is {approx_bytes} bytes; the limit is {max_bytes} bytes."),
            param,
            "image_too_large",
        ));
    }
    if base64::engine::general_purpose::STANDARD
        .decode(data.as_bytes())
        .is_err()
    {
        return Err(ChatError::invalid_with_code(
            "The image data is not valid base64.",
            param,
            "invalid_image_url",
        ));
    }
    Ok(Block::Image {
        media_type: media_type.to_string(),
        data: data.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::types::{ImageDetail, ToolCall};

    const LIMITS: ImageLimits = ImageLimits {
        max_bytes: 5 * 1024 * 1024,
        max_count: 20,
        allow_remote: false,
    };

    fn call(id: &str, args: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            name: "get_weather".into(),
            arguments: args.into(),
        }
    }

    fn tool_result(id: &str, text: &str) -> Message {
        Message {
            tool_call_id: Some(id.into()),
            ..Message::text(Role::Tool, text)
        }
    }

    fn assistant_calls(calls: Vec<ToolCall>) -> Message {
        Message {
            role: Role::Assistant,
            content: vec![],
            name: None,
            tool_calls: calls,
            tool_call_id: None,
        }
    }

    #[test]
    fn tool_round_trip_becomes_tool_use_and_tool_result_blocks() {
        let (system, turns) = split_messages(
            vec![
                Message::text(Role::User, "Weather in Paris and Rome?"),
                assistant_calls(vec![
                    call("t1", r#"{"city":"Paris"}"#),
                    call("t2", r#"{"city":"Rome"}"#),
                ]),
                tool_result("t1", "Sunny"),
                tool_result("t2", "Rainy"),
                Message::text(Role::User, "Thanks, and now?"),
            ],
            LIMITS,
        )
        .unwrap();
        assert!(system.is_none());
        assert_eq!(turns.len(), 3);
        assert_eq!(
            turns[1].blocks[1],
            Block::ToolUse {
                id: "t2".into(),
                name: "get_weather".into(),
                input: serde_json::json!({"city":"Rome"})
            }
        );
        assert_eq!(turns[2].role, TurnRole::User);
        assert_eq!(
            turns[2].blocks.len(),
            3,
            "both results and the text in one turn"
        );
        assert_eq!(turns[2].blocks[2], Block::Text("Thanks, and now?".into()));
    }

    #[test]
    fn tool_results_must_answer_a_call() {
        let err = split_messages(
            vec![Message::text(Role::User, "Hi"), tool_result("nope", "x")],
            LIMITS,
        )
        .unwrap_err();
        assert_eq!(err.param(), Some("messages[1].tool_call_id"));
        let err = split_messages(
            vec![
                Message::text(Role::User, "Hi"),
                assistant_calls(vec![call("t1", "{not json")]),
            ],
            LIMITS,
        )
        .unwrap_err();
        assert_eq!(
            err.param(),
            Some("messages[1].tool_calls[0].function.arguments")
        );
    }

    #[test]
    fn calls_need_ids_and_valid_names_and_results_need_an_id() {
        let user = Message::text(Role::User, "Hi");
        for (calls, param) in [
            (vec![call("", "{}")], "messages[1].tool_calls[0].id"),
            (
                vec![call(&"i".repeat(MAX_CALL_ID_CHARS + 1), "{}")],
                "messages[1].tool_calls[0].id",
            ),
            (
                vec![ToolCall {
                    name: "not a name".into(),
                    ..call("t1", "{}")
                }],
                "messages[1].tool_calls[0].function.name",
            ),
        ] {
            let err =
                split_messages(vec![user.clone(), assistant_calls(calls)], LIMITS).unwrap_err();
            assert_eq!(err.param(), Some(param));
        }
        let no_id = Message {
            tool_call_id: None,
            ..Message::text(Role::Tool, "x")
        };
        let err = split_messages(
            vec![user, assistant_calls(vec![call("t1", "{}")]), no_id],
            LIMITS,
        )
        .unwrap_err();
        assert_eq!(err.param(), Some("messages[2].tool_call_id"));
    }

    #[test]
    fn images_are_parsed_and_limited() {
        let image = |url: &str| Message {
            role: Role::User,
            content: vec![
                ContentPart::Text("What is this?".into()),
                ContentPart::ImageUrl {
                    url: url.into(),
                    detail: ImageDetail::Auto,
                },
            ],
            name: None,
            tool_calls: vec![],
            tool_call_id: None,
        };
        let (_, turns) =
            split_messages(vec![image("data:image/png;base64,iVBORw0KGgo=")], LIMITS).unwrap();
        assert_eq!(
            turns[0].blocks[1],
            Block::Image {
                media_type: "image/png".into(),
                data: "iVBORw0KGgo=".into()
            }
        );
        for (url, code) in [
            ("https://example.com/cat.png", "invalid_image_url"),
            ("data:image/tiff;base64,AAAA", "invalid_image_format"),
            ("data:image/png;base64,@@@@", "invalid_image_url"),
        ] {
            let err = split_messages(vec![image(url)], LIMITS).unwrap_err();
            assert_eq!(err.code(), Some(code), "{url}");
            assert_eq!(err.param(), Some("messages[0].content[1].image_url"));
        }
        let small = ImageLimits {
            max_bytes: 3,
            ..LIMITS
        };
        let err =
            split_messages(vec![image("data:image/png;base64,iVBORw0KGgo=")], small).unwrap_err();
        assert_eq!(err.code(), Some("image_too_large"));
    }

    #[test]
    fn remote_images_are_kept_for_fetching_and_counted() {
        let remote = ImageLimits {
            allow_remote: true,
            max_count: 2,
            ..LIMITS
        };
        let part = |url: &str| ContentPart::ImageUrl {
            url: url.into(),
            detail: ImageDetail::Auto,
        };
        let user = |parts: Vec<ContentPart>| Message {
            content: parts,
            ..Message::text(Role::User, "")
        };
        let (_, turns) =
            split_messages(vec![user(vec![part("HTTPS://example.com/a.png")])], remote).unwrap();
        assert_eq!(
            turns[0].blocks,
            vec![Block::RemoteImage {
                url: "HTTPS://example.com/a.png".into(),
                param: "messages[0].content[0].image_url".into()
            }]
        );
        let three = user(vec![
            part("https://example.com/a.png"),
            part("http://example.com/b.png"),
            part("https://example.com/c.png"),
        ]);
        let err = split_messages(vec![three], remote).unwrap_err();
        assert_eq!(err.param(), Some("messages[0].content[2].image_url"));
        // An image in an assistant turn never reaches Claude, so it is refused, not fetched.
        let assistant = Message {
            role: Role::Assistant,
            ..user(vec![part("https://example.com/a.png")])
        };
        let err = split_messages(
            vec![
                Message::text(Role::User, "Hi"),
                assistant,
                Message::text(Role::User, "?"),
            ],
            remote,
        )
        .unwrap_err();
        assert_eq!(err.param(), Some("messages[1].content[0]"));
    }
}
