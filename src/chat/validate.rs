//! Parse, don't validate: turns a client's `ChatRequest` into a `ValidChatRequest`, the only
//! request type the subprocess layer accepts. Everything a client can get wrong is caught here,
//! with a message that names the field, the limit and what was sent.

use std::collections::HashSet;

use serde_json::Value;

use super::error::ChatError;
use super::limits::{MAX_TOOLS, check_metadata, check_stop, check_tool, json_kind, shown};
use super::models::{ModelInfo, ModelMap};
use super::turns::{ImageLimits, split_messages};
use super::types::{ChatRequest, ResponseFormat, SamplingParams, Tool, ToolChoice};

pub use super::turns::{Block, Turn, TurnRole};

/// Limits and switches of validation, from the configuration.
#[derive(Debug, Clone)]
pub struct ValidationConfig {
    pub models: ModelMap,
    /// Refuse sampling parameters Claude cannot honour instead of reporting them as ignored.
    pub strict_params: bool,
    pub max_image_bytes: usize,
    pub max_images: usize,
    /// `http(s)` image URLs are accepted (and counted) as remote images, fetched after
    /// admission (`--fetch-images`); off, they are refused.
    pub remote_images: bool,
    pub max_messages: usize,
    /// Largest prompt, in tiktoken (cl100k_base) tokens.
    pub max_prompt_tokens: usize,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        ValidationConfig {
            models: ModelMap::default(),
            strict_params: false,
            max_image_bytes: 5 * 1024 * 1024,
            max_images: 20,
            remote_images: false,
            max_messages: 2000,
            max_prompt_tokens: 1_000_000,
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
    /// The user turn (text, images, tool results) that starts the run.
    pub prompt: Turn,
    /// The client's functions offered to Claude (empty with `tool_choice: none`).
    pub tools: Vec<Tool>,
    pub tool_mode: ToolMode,
    pub output: OutputMode,
    pub max_tokens: Option<u32>,
    pub stop: Vec<String>,
    /// Independent choices to generate, 1 to 10.
    pub n: u32,
    pub effort: Option<Effort>,
    /// The most tokens Claude may think (`set_max_thinking_tokens`), on models that take a
    /// budget.
    pub thinking_budget: Option<u32>,
    /// Parameters accepted but not honoured, in request order.
    pub ignored_params: Vec<String>,
}

/// How tool calls are constrained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolMode {
    /// More than one call per turn allowed (`parallel_tool_calls`, default true).
    pub parallel: bool,
    /// `tool_choice: required` (any tool) or a named function that must be called.
    pub required: Option<RequiredTool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequiredTool {
    Any,
    Named(String),
}

/// The shape of the answer.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputMode {
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON valid against this schema.
    JsonSchema {
        name: String,
        schema: Value,
    },
}

impl OutputMode {
    /// The schema given to the CLI's structured output (`jsonSchema`), if any.
    pub fn cli_schema(&self) -> Option<Value> {
        match self {
            OutputMode::Text => None,
            OutputMode::JsonObject => Some(serde_json::json!({"type": "object"})),
            OutputMode::JsonSchema { schema, .. } => Some(schema.clone()),
        }
    }
}

/// The CLI's `--effort` levels that OpenAI's `reasoning_effort` maps onto.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

const MAX_STOP: usize = 4;
const MAX_N: u32 = 10;

pub fn validate(req: ChatRequest, cfg: &ValidationConfig) -> Result<ValidChatRequest, ChatError> {
    let ChatRequest {
        model,
        messages,
        tools,
        tool_choice,
        parallel_tool_calls,
        response_format,
        stop,
        n,
        max_tokens,
        session_id,
        metadata,
        sampling,
        reasoning_effort,
        thinking_budget,
        response,
    } = req;

    if model.is_empty() {
        return Err(ChatError::invalid("`model` is required.", "model"));
    }
    let model = cfg.models.resolve(&model)?;
    let ignored_params = ignored_params(&sampling, cfg.strict_params)?;
    if session_id.is_some() {
        return Err(ChatError::invalid_with_code(
            "Server-side sessions (`session_id`) are not supported by this gateway yet.",
            "session_id",
            "unsupported_parameter",
        ));
    }
    // The session layer takes the turn over before the engine sees the request.
    if response.is_some() {
        return Err(ChatError::unsupported(
            "Stored responses (`store`, `previous_response_id`) are not supported by this \
             gateway's backend.",
            "previous_response_id",
        ));
    }
    let n = match n.unwrap_or(1) {
        n @ 1..=MAX_N => n,
        other => {
            return Err(ChatError::invalid(
                format!("`n` must be between 1 and {MAX_N}; got {other}."),
                "n",
            ));
        }
    };
    if max_tokens == Some(0) {
        return Err(ChatError::invalid(
            "`max_tokens` must be at least 1; got 0.",
            "max_tokens",
        ));
    }
    check_thinking_budget(thinking_budget, max_tokens)?;
    if stop.len() > MAX_STOP {
        return Err(ChatError::invalid(
            format!(
                "`stop` takes at most {MAX_STOP} sequences; got {}.",
                stop.len()
            ),
            "stop",
        ));
    }
    check_stop(&stop)?;
    check_metadata(&metadata)?;
    let effort = match reasoning_effort.as_deref() {
        None => None,
        Some("minimal" | "low") => Some(Effort::Low),
        Some("medium") => Some(Effort::Medium),
        Some("high") => Some(Effort::High),
        Some(other) => {
            return Err(ChatError::invalid(
                format!(
                    "`reasoning_effort` must be one of minimal, low, medium, high; got `{}`.",
                    shown(other)
                ),
                "reasoning_effort",
            ));
        }
    };
    let (tools, tool_mode) = tools_and_mode(tools, tool_choice, parallel_tool_calls)?;
    let output = output_mode(response_format)?;

    if messages.len() > cfg.max_messages {
        return Err(ChatError::invalid_with_code(
            format!(
                "`messages` has {} messages; this gateway accepts at most {}.",
                messages.len(),
                cfg.max_messages
            ),
            "messages",
            "too_many_messages",
        ));
    }
    let prompt_tokens = prompt_tokens(&messages, &tools);
    if prompt_tokens > cfg.max_prompt_tokens {
        return Err(ChatError::invalid_with_code(
            format!(
                "The prompt is about {prompt_tokens} tokens (counted with tiktoken); this gateway \
                 accepts at most {}.",
                cfg.max_prompt_tokens
            ),
            "messages",
            "context_length_exceeded",
        ));
    }
    let limits = ImageLimits {
        max_bytes: cfg.max_image_bytes,
        max_count: cfg.max_images,
        allow_remote: cfg.remote_images,
    };
    let (system_prompt, mut turns) = split_messages(messages, limits)?;
    let prompt = turns.pop().ok_or_else(|| {
        ChatError::invalid(
            "`messages` must contain at least one user message.",
            "messages",
        )
    })?;
    if prompt.role != TurnRole::User {
        return Err(ChatError::invalid(
            "The last message must be a user or tool message: Claude continues a conversation \
             from the user's turn.",
            "messages",
        ));
    }
    Ok(ValidChatRequest {
        model,
        system_prompt,
        history: turns,
        prompt,
        tools,
        tool_mode,
        output,
        max_tokens,
        stop,
        n,
        effort,
        thinking_budget,
        ignored_params,
    })
}

/// The least thinking budget Anthropic's API takes.
const MIN_THINKING_BUDGET: u32 = 1024;

/// Anthropic's rules for a thinking budget: at least 1024 tokens, and fewer than `max_tokens`
/// (the thinking is part of the answer's tokens).
fn check_thinking_budget(budget: Option<u32>, max_tokens: Option<u32>) -> Result<(), ChatError> {
    let Some(budget) = budget else {
        return Ok(());
    };
    if budget < MIN_THINKING_BUDGET {
        return Err(ChatError::invalid(
            format!(
                "`thinking_budget_tokens` must be at least {MIN_THINKING_BUDGET}; got {budget}."
            ),
            "thinking_budget_tokens",
        ));
    }
    if let Some(max) = max_tokens.filter(|&max| budget >= max) {
        return Err(ChatError::invalid(
            format!(
                "`thinking_budget_tokens` must be less than `max_tokens`; got {budget} with \
                 `max_tokens` {max}."
            ),
            "thinking_budget_tokens",
        ));
    }
    Ok(())
}

/// Tokens of every text of the request and of the tool schemas, by tiktoken.
fn prompt_tokens(messages: &[super::types::Message], tools: &[Tool]) -> usize {
    let mut total = 0;
    for m in messages {
        total += super::tokens::count(&m.joined_text());
        for call in &m.tool_calls {
            total += super::tokens::count(&call.arguments);
        }
    }
    for t in tools {
        total += super::tokens::count(t.description.as_deref().unwrap_or(""));
        if let Some(p) = &t.parameters {
            total += super::tokens::count(&p.to_string());
        }
    }
    total
}

fn tools_and_mode(
    tools: Vec<Tool>,
    choice: Option<ToolChoice>,
    parallel: Option<bool>,
) -> Result<(Vec<Tool>, ToolMode), ChatError> {
    if tools.len() > MAX_TOOLS {
        return Err(ChatError::invalid(
            format!(
                "`tools` has {} functions; at most {MAX_TOOLS} are accepted.",
                tools.len()
            ),
            "tools",
        ));
    }
    let mut seen = HashSet::new();
    for (i, tool) in tools.iter().enumerate() {
        check_tool(i, tool)?;
        if !seen.insert(tool.name.as_str()) {
            return Err(ChatError::invalid(
                format!("Two tools are named `{}`.", tool.name),
                format!("tools[{i}].function.name"),
            ));
        }
    }
    let parallel = parallel.unwrap_or(true);
    let (tools, required) = match choice {
        Some(_) if tools.is_empty() => {
            return Err(ChatError::invalid(
                "`tool_choice` needs `tools`.",
                "tool_choice",
            ));
        }
        None | Some(ToolChoice::Auto) => (tools, None),
        Some(ToolChoice::None) => (Vec::new(), None),
        Some(ToolChoice::Required) => (tools, Some(RequiredTool::Any)),
        Some(ToolChoice::Function(name)) => {
            // Only the named function is offered, so it is the one Claude can call.
            let chosen: Vec<Tool> = tools.into_iter().filter(|t| t.name == name).collect();
            if chosen.is_empty() {
                return Err(ChatError::invalid(
                    format!(
                        "`tool_choice` names `{}`, which is not in `tools`.",
                        shown(&name)
                    ),
                    "tool_choice",
                ));
            }
            (chosen, Some(RequiredTool::Named(name)))
        }
    };
    Ok((tools, ToolMode { parallel, required }))
}

fn output_mode(format: ResponseFormat) -> Result<OutputMode, ChatError> {
    Ok(match format {
        ResponseFormat::Text => OutputMode::Text,
        ResponseFormat::JsonObject => OutputMode::JsonObject,
        ResponseFormat::JsonSchema(spec) => {
            if !spec.schema.is_object() {
                return Err(ChatError::invalid(
                    format!(
                        "`response_format.json_schema.schema` must be a JSON Schema object; got \
                         {}.",
                        json_kind(&spec.schema)
                    ),
                    "response_format.json_schema.schema",
                ));
            }
            if let Err(e) = jsonschema::validator_for(&spec.schema) {
                return Err(ChatError::invalid(
                    format!("`response_format.json_schema.schema` is not a valid JSON Schema: {e}"),
                    "response_format.json_schema.schema",
                ));
            }
            if spec.schema.get("type").and_then(Value::as_str) != Some("object") {
                return Err(ChatError::invalid(
                    "`response_format.json_schema.schema` must describe an object \
                     (`\"type\": \"object\"`): Claude returns structured output as a tool input.",
                    "response_format.json_schema.schema",
                ));
            }
            OutputMode::JsonSchema {
                name: spec.name,
                schema: spec.schema,
            }
        }
    })
}

/// Names of the set parameters that Claude cannot honour; an error for `logprobs: true` and, in
/// strict mode, for any of them.
fn ignored_params(s: &SamplingParams, strict: bool) -> Result<Vec<String>, ChatError> {
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

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
