//! Parse, don't validate: turns a client's `ChatRequest` into a `ValidChatRequest`, the only
//! request type the subprocess layer accepts. Everything a client can get wrong is caught here,
//! with a message that names the field, the limit and what was sent.

use base64::Engine as _;

use super::error::ChatError;
use super::models::{ModelInfo, ModelMap};
use super::types::{ChatRequest, ContentPart, Message, ResponseFormat, Role};

/// Limits and switches of validation, from the configuration.
#[derive(Debug, Clone)]
pub struct ValidationConfig {
    pub models: ModelMap,
    /// Refuse sampling parameters Claude cannot honour instead of reporting them as ignored.
    pub strict_params: bool,
    pub max_image_bytes: usize,
    pub max_images: usize,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        ValidationConfig {
            models: ModelMap::default(),
            strict_params: false,
            max_image_bytes: 5 * 1024 * 1024,
            max_images: 20,
        }
    }
}

/// A request the engine can run as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidChatRequest {
    pub model: ModelInfo,
    /// All system and developer messages, joined by blank lines.
    pub system_prompt: Option<String>,
    /// Earlier turns, oldest first, replayed to the CLI as native messages.
    pub history: Vec<Turn>,
    /// The user turn that starts the run.
    pub prompt: Turn,
    pub max_tokens: Option<u32>,
    pub stop: Vec<String>,
    pub effort: Option<Effort>,
    /// Parameters accepted but not honoured, in request order.
    pub ignored_params: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnRole {
    User,
    Assistant,
}

/// One message as the CLI takes it: a role and Anthropic content blocks.
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
}

/// The CLI's `--effort` levels that OpenAI's `reasoning_effort` maps onto.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    Low,
    Medium,
    High,
}

impl Effort {
    pub fn as_str(self) -> &'static str {
        match self {
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
        }
    }
}

const IMAGE_TYPES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];
const MAX_STOP: usize = 4;

pub fn validate(req: ChatRequest, cfg: &ValidationConfig) -> Result<ValidChatRequest, ChatError> {
    let ChatRequest {
        model,
        messages,
        tools,
        tool_choice,
        parallel_tool_calls: _,
        response_format,
        stop,
        n,
        max_tokens,
        session_id,
        metadata: _,
        sampling,
        reasoning_effort,
    } = req;

    if model.is_empty() {
        return Err(ChatError::invalid("`model` is required.", "model"));
    }
    let model = cfg.models.resolve(&model)?;
    let ignored_params = ignored_params(&sampling, cfg.strict_params)?;
    if !tools.is_empty() || tool_choice.is_some() {
        return Err(unsupported("tools", "Function calling"));
    }
    if !matches!(response_format, ResponseFormat::Text) {
        return Err(unsupported("response_format", "JSON output modes"));
    }
    match n {
        None | Some(1) => {}
        Some(0) => return Err(ChatError::invalid("`n` must be at least 1; got 0.", "n")),
        Some(_) => return Err(unsupported("n", "Several choices (n > 1)")),
    }
    if session_id.is_some() {
        return Err(unsupported("session_id", "Server-side sessions"));
    }
    if max_tokens == Some(0) {
        return Err(ChatError::invalid(
            "`max_tokens` must be at least 1; got 0.",
            "max_tokens",
        ));
    }
    if stop.len() > MAX_STOP {
        return Err(ChatError::invalid(
            format!(
                "`stop` takes at most {MAX_STOP} sequences; got {}.",
                stop.len()
            ),
            "stop",
        ));
    }
    if stop.iter().any(String::is_empty) {
        return Err(ChatError::invalid(
            "`stop` sequences must not be empty.",
            "stop",
        ));
    }
    let effort = match reasoning_effort.as_deref() {
        None => None,
        Some("minimal" | "low") => Some(Effort::Low),
        Some("medium") => Some(Effort::Medium),
        Some("high") => Some(Effort::High),
        Some(other) => {
            return Err(ChatError::invalid(
                format!(
                    "`reasoning_effort` must be one of minimal, low, medium, high; got `{other}`."
                ),
                "reasoning_effort",
            ));
        }
    };

    let (system_prompt, mut turns) = split_messages(messages, cfg)?;
    let prompt = turns.pop().ok_or_else(|| {
        ChatError::invalid(
            "`messages` must contain at least one user message.",
            "messages",
        )
    })?;
    if prompt.role != TurnRole::User {
        return Err(ChatError::invalid(
            "The last message must be a user message: Claude continues a conversation from the \
             user's turn.",
            "messages",
        ));
    }
    Ok(ValidChatRequest {
        model,
        system_prompt,
        history: turns,
        prompt,
        max_tokens,
        stop,
        effort,
        ignored_params,
    })
}

fn unsupported(param: &str, what: &str) -> ChatError {
    ChatError::invalid_with_code(
        format!("{what} (`{param}`) is not supported by this gateway yet."),
        param,
        "unsupported_parameter",
    )
}

/// Names of the set parameters that Claude cannot honour; an error for `logprobs: true` and, in
/// strict mode, for any of them.
fn ignored_params(
    s: &super::types::SamplingParams,
    strict: bool,
) -> Result<Vec<String>, ChatError> {
    if s.logprobs == Some(true) || s.top_logprobs.is_some_and(|n| n > 0) {
        return Err(ChatError::invalid_with_code(
            "Claude does not report token log probabilities; `logprobs` and `top_logprobs` \
             cannot be honoured.",
            "logprobs",
            "unsupported_parameter",
        ));
    }
    let mut names: Vec<String> = [
        ("temperature", s.temperature.is_some()),
        ("top_p", s.top_p.is_some()),
        ("presence_penalty", s.presence_penalty.is_some()),
        ("frequency_penalty", s.frequency_penalty.is_some()),
        ("seed", s.seed.is_some()),
        ("logit_bias", !s.logit_bias.is_empty()),
        ("user", s.user.is_some()),
        ("logprobs", s.logprobs.is_some()),
        ("top_logprobs", s.top_logprobs.is_some()),
    ]
    .into_iter()
    .filter(|(_, set)| *set)
    .map(|(name, _)| name.to_string())
    .collect();
    names.extend(s.other.iter().cloned());
    if strict && let Some(first) = names.first() {
        return Err(ChatError::invalid_with_code(
            format!(
                "`{first}` has no equivalent in the claude CLI and this gateway runs with \
                 --strict-params; remove it (ignored here: {}).",
                names.join(", ")
            ),
            first.clone(),
            "unsupported_parameter",
        ));
    }
    Ok(names)
}

/// System/developer text out, the rest as CLI turns with consecutive same-role messages kept
/// apart (the CLI merges them the way the API expects).
fn split_messages(
    messages: Vec<Message>,
    cfg: &ValidationConfig,
) -> Result<(Option<String>, Vec<Turn>), ChatError> {
    if messages.is_empty() {
        return Err(ChatError::invalid(
            "`messages` must contain at least one message.",
            "messages",
        ));
    }
    let mut system: Vec<String> = Vec::new();
    let mut turns = Vec::new();
    let mut images = 0usize;
    for (i, message) in messages.into_iter().enumerate() {
        let param = format!("messages[{i}]");
        if !message.tool_calls.is_empty() || message.tool_call_id.is_some() {
            return Err(unsupported(
                &format!("{param}.tool_calls"),
                "Function calling",
            ));
        }
        match message.role {
            Role::System | Role::Developer => {
                let mut text = String::new();
                for part in message.content {
                    match part {
                        ContentPart::Text(t) => text.push_str(&t),
                        ContentPart::ImageUrl { .. } => {
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
                if !text.trim().is_empty() {
                    system.push(text);
                }
            }
            Role::Tool => return Err(unsupported(&format!("{param}.role"), "Tool messages")),
            Role::User | Role::Assistant => {
                let role = if message.role == Role::User {
                    TurnRole::User
                } else {
                    TurnRole::Assistant
                };
                let mut blocks = Vec::with_capacity(message.content.len());
                for (j, part) in message.content.into_iter().enumerate() {
                    match part {
                        ContentPart::Text(t) if t.is_empty() => {}
                        ContentPart::Text(t) => blocks.push(Block::Text(t)),
                        ContentPart::ImageUrl { url, .. } => {
                            let part_param = format!("{param}.content[{j}].image_url");
                            if role == TurnRole::Assistant {
                                return Err(ChatError::invalid(
                                    "Assistant messages cannot carry images.",
                                    part_param,
                                ));
                            }
                            images += 1;
                            if images > cfg.max_images {
                                return Err(ChatError::invalid(
                                    format!(
                                        "At most {} images are allowed per request; this one \
                                         has more.",
                                        cfg.max_images
                                    ),
                                    part_param,
                                ));
                            }
                            blocks.push(parse_image(&url, cfg.max_image_bytes, &part_param)?);
                        }
                    }
                }
                if blocks.is_empty() {
                    return Err(ChatError::invalid(
                        format!("`{param}.content` is empty; Claude needs some text or an image."),
                        format!("{param}.content"),
                    ));
                }
                turns.push(Turn { role, blocks });
            }
        }
    }
    let system = (!system.is_empty()).then(|| system.join("\n\n"));
    Ok((system, turns))
}

/// `data:image/png;base64,…` into an image block; remote URLs are refused.
fn parse_image(url: &str, max_bytes: usize, param: &str) -> Result<Block, ChatError> {
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
    use crate::chat::types::{ImageDetail, SamplingParams};

    fn req(messages: Vec<Message>) -> ChatRequest {
        ChatRequest {
            model: "gpt-4o".into(),
            messages,
            ..ChatRequest::default()
        }
    }

    #[test]
    fn system_history_and_prompt_are_split() {
        let valid = validate(
            req(vec![
                Message::text(Role::System, "Be brief."),
                Message::text(Role::User, "My name is Ada."),
                Message::text(Role::Assistant, "Hi Ada."),
                Message::text(Role::Developer, "Answer in English."),
                Message::text(Role::User, "What is my name?"),
            ]),
            &ValidationConfig::default(),
        )
        .unwrap();
        assert_eq!(valid.model.cli_model, "sonnet");
        assert_eq!(
            valid.system_prompt.as_deref(),
            Some("Be brief.\n\nAnswer in English.")
        );
        assert_eq!(valid.history.len(), 2);
        assert_eq!(valid.history[1].role, TurnRole::Assistant);
        assert_eq!(
            valid.prompt.blocks,
            vec![Block::Text("What is my name?".into())]
        );
    }

    #[test]
    fn last_message_must_be_user() {
        let err = validate(
            req(vec![
                Message::text(Role::User, "Hi"),
                Message::text(Role::Assistant, "Hello"),
            ]),
            &ValidationConfig::default(),
        )
        .unwrap_err();
        assert_eq!(err.param(), Some("messages"));
        let err = validate(req(vec![]), &ValidationConfig::default()).unwrap_err();
        assert_eq!(err.param(), Some("messages"));
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
        let cfg = ValidationConfig::default();
        let ok = validate(req(vec![image("data:image/png;base64,iVBORw0KGgo=")]), &cfg).unwrap();
        assert_eq!(
            ok.prompt.blocks[1],
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
            let err = validate(req(vec![image(url)]), &cfg).unwrap_err();
            assert_eq!(err.code(), Some(code), "{url}");
            assert_eq!(err.param(), Some("messages[0].content[1].image_url"));
        }
        let small = ValidationConfig {
            max_image_bytes: 3,
            ..ValidationConfig::default()
        };
        let err = validate(
            req(vec![image("data:image/png;base64,iVBORw0KGgo=")]),
            &small,
        )
        .unwrap_err();
        assert_eq!(err.code(), Some("image_too_large"));
    }

    #[test]
    fn sampling_params_are_reported_or_refused() {
        let mut r = req(vec![Message::text(Role::User, "Hi")]);
        r.sampling = SamplingParams {
            temperature: Some(0.2),
            seed: Some(7),
            other: vec!["store".into()],
            ..SamplingParams::default()
        };
        let valid = validate(r.clone(), &ValidationConfig::default()).unwrap();
        assert_eq!(valid.ignored_params, vec!["temperature", "seed", "store"]);
        let strict = ValidationConfig {
            strict_params: true,
            ..ValidationConfig::default()
        };
        let err = validate(r.clone(), &strict).unwrap_err();
        assert_eq!(err.param(), Some("temperature"));
        r.sampling.logprobs = Some(true);
        let err = validate(r, &ValidationConfig::default()).unwrap_err();
        assert_eq!(err.param(), Some("logprobs"));
    }

    #[test]
    fn stop_and_max_tokens_are_checked() {
        let mut r = req(vec![Message::text(Role::User, "Hi")]);
        r.stop = vec!["a".into(), "b".into(), "c".into(), "d".into(), "e".into()];
        assert_eq!(
            validate(r.clone(), &ValidationConfig::default())
                .unwrap_err()
                .param(),
            Some("stop")
        );
        r.stop = vec![];
        r.max_tokens = Some(0);
        assert_eq!(
            validate(r, &ValidationConfig::default())
                .unwrap_err()
                .param(),
            Some("max_tokens")
        );
    }
}
