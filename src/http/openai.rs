//! OpenAI wire types of the chat-completions and models APIs, as serde structs. Requests are
//! read leniently (unknown fields ignored, `null` as absent); responses are written exactly as
//! `CreateChatCompletionResponse`, `CreateChatCompletionStreamResponse`, `ListModelsResponse` and
//! `ErrorResponse` of OpenAI's OpenAPI document require. The `ToSchema` derives and `#[schema]`
//! attributes feed the gateway's own OpenAPI document (`docs.rs`) and change no serde behaviour;
//! fields kept as raw JSON are described by the documentation-only types of `docs::schemas`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::docs::schemas as doc;

/// The top level of a `POST /v1/chat/completions` body. `messages`, `stop`, `tools`,
/// `tool_choice` and `response_format` stay JSON here and are parsed field by field in
/// `convert.rs`, so an error can name the exact path (`messages[2].content[0].image_url`).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(description = "A chat completion request. `null` counts as absent. Parameters Claude \
    cannot honour (`temperature`, `top_p`, `seed`, penalties, `logit_bias`, `user`, and \
    OpenAI-only fields such as `store` or `service_tier`) are accepted and listed in the \
    `x-ignored-params` response header, or refused with a 400 under `--strict-params`. Unknown \
    fields are ignored.", example = json!({"model": "gpt-4o", "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]}))]
pub struct ChatCompletionRequest {
    /// An OpenAI model id (`gpt-4o`, …) mapped to a Claude model, a Claude alias (`sonnet`,
    /// `haiku`, `opus`) or a `claude-*` id; `GET /v1/models` lists them.
    #[schema(example = "gpt-4o")]
    pub model: String,
    /// The conversation, oldest first.
    #[schema(value_type = Vec<doc::ChatMessage>)]
    pub messages: Vec<Value>,
    /// Stream the answer as server-sent events, one `chat.completion.chunk` per `data:` line,
    /// ended by `data: [DONE]`.
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// Most tokens to generate; with `max_completion_tokens` too, the smaller wins.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub max_tokens: Option<u32>,
    /// Most tokens to generate; with `max_tokens` too, the smaller wins.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub max_completion_tokens: Option<u32>,
    /// Independent choices to generate (default 1).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10)]
    pub n: Option<u32>,
    /// Up to 4 non-empty sequences that end the answer where they first appear.
    #[serde(default)]
    #[schema(value_type = Option<doc::Stop>)]
    pub stop: Option<Value>,
    /// Accepted, not honoured (`x-ignored-params`).
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Accepted, not honoured (`x-ignored-params`).
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Accepted, not honoured (`x-ignored-params`).
    #[serde(default)]
    pub presence_penalty: Option<f64>,
    /// Accepted, not honoured (`x-ignored-params`).
    #[serde(default)]
    pub frequency_penalty: Option<f64>,
    /// Accepted, not honoured (`x-ignored-params`).
    #[serde(default)]
    pub seed: Option<i64>,
    /// Accepted, not honoured (`x-ignored-params`).
    #[serde(default)]
    pub logit_bias: Option<BTreeMap<String, f64>>,
    /// Accepted, not honoured (`x-ignored-params`).
    #[serde(default)]
    pub user: Option<String>,
    /// `true` is refused with a 400: Claude reports no log probabilities.
    #[serde(default)]
    pub logprobs: Option<bool>,
    /// Above 0 is refused with a 400: Claude reports no log probabilities.
    #[serde(default)]
    pub top_logprobs: Option<u32>,
    /// Functions Claude may call; its calls come back as `tool_calls`.
    #[serde(default)]
    #[schema(value_type = Option<Vec<doc::Tool>>)]
    pub tools: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<doc::ToolChoice>)]
    pub tool_choice: Option<Value>,
    /// Whether Claude may call several functions in one turn (default true).
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    /// Legacy form of `tools`: the function definitions alone.
    #[serde(default)]
    #[schema(deprecated, value_type = Option<Vec<doc::FunctionDefinition>>)]
    pub functions: Option<Value>,
    /// Legacy form of `tool_choice`; `tool_choice` wins when both are sent.
    #[serde(default)]
    #[schema(deprecated, value_type = Option<doc::FunctionCallChoice>)]
    pub function_call: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<doc::ResponseFormat>)]
    pub response_format: Option<Value>,
    /// Accepted; not sent to Claude.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// A server-side session to continue (`POST /v1/sessions` makes one; the `x-session-id`
    /// header works too, the body wins). Its system prompt and stored history go before
    /// `messages`, its `model` is used when `model` is empty, and after a successful turn
    /// `messages` and the reply are appended in one atomic write; a failed turn stores nothing.
    /// An unknown or expired session is a 404 (`session_not_found`); a turn another replica
    /// overtook is a 409 (`session_conflict`); `n` above 1 is a 400.
    #[serde(default)]
    pub session_id: Option<String>,
    /// How hard Claude thinks (the CLI's effort level).
    #[serde(default)]
    #[schema(value_type = Option<doc::ReasoningEffort>)]
    pub reasoning_effort: Option<String>,
    /// Everything else: OpenAI fields the gateway does not use, and unknown fields.
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct StreamOptions {
    /// Add a last chunk with the usage and no choices (every other chunk has `usage: null`).
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// OpenAI request fields that exist but have no effect here; when sent (non-null) they are
/// reported in `x-ignored-params`. Fields not in this list and not above are silently ignored.
pub const KNOWN_UNUSED_FIELDS: &[&str] = &[
    "modalities",
    "moderation",
    "prediction",
    "prompt_cache_key",
    "prompt_cache_options",
    "prompt_cache_retention",
    "safety_identifier",
    "service_tier",
    "store",
    "verbosity",
    "web_search_options",
];

/// A whole answer (`chat.completion`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatCompletion {
    #[schema(example = "chatcmpl-123")]
    pub id: String,
    #[schema(value_type = doc::ChatCompletionObject, inline)]
    pub object: &'static str,
    /// Unix seconds.
    pub created: i64,
    /// The model id the client sent.
    pub model: String,
    /// `n` choices.
    pub choices: Vec<Choice>,
    pub usage: CompletionUsage,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Choice {
    pub index: u32,
    pub message: AssistantMessage,
    #[schema(value_type = doc::FinishReason, inline)]
    pub finish_reason: &'static str,
    #[schema(schema_with = doc::null, required)]
    pub logprobs: Option<()>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssistantMessage {
    #[schema(value_type = doc::AssistantRole, inline)]
    pub role: &'static str,
    /// `null` when the answer is only tool calls.
    #[schema(required)]
    pub content: Option<String>,
    /// Always `null`.
    #[schema(required)]
    pub refusal: Option<String>,
    /// Only when Claude called functions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The call, for requests that used the legacy `functions` (instead of `tool_calls`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_call: Option<FunctionCall>,
}

/// One function call.
#[derive(Debug, Serialize, ToSchema)]
pub struct ToolCall {
    #[schema(example = "call_abc123")]
    pub id: String,
    #[serde(rename = "type")]
    #[schema(value_type = doc::FunctionType, inline)]
    pub kind: &'static str,
    pub function: FunctionCall,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FunctionCall {
    pub name: String,
    /// The arguments, as a JSON text.
    #[schema(example = "{\"city\":\"Paris\"}")]
    pub arguments: String,
}

#[derive(Debug, Serialize, Clone, PartialEq, ToSchema)]
pub struct CompletionUsage {
    /// Input tokens, cache reads and writes included.
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
    pub prompt_tokens_details: PromptTokensDetails,
    pub completion_tokens_details: CompletionTokensDetails,
    /// Not OpenAI's: true when the numbers are the gateway's tiktoken estimates.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub estimated: bool,
}

#[derive(Debug, Serialize, Clone, PartialEq, ToSchema)]
pub struct PromptTokensDetails {
    pub cached_tokens: u32,
}

#[derive(Debug, Serialize, Clone, PartialEq, ToSchema)]
pub struct CompletionTokensDetails {
    pub reasoning_tokens: u32,
}

/// One `chat.completion.chunk`.
#[derive(Debug, Serialize, Clone, PartialEq, ToSchema)]
#[schema(
    description = "One event of a streamed answer: the JSON of each `data:` line. The \
    first chunk of a choice carries `delta.role`; the stream ends with `data: [DONE]`. A failure \
    after the first chunk arrives as a `data:` line holding an `ErrorResponse`, then \
    `data: [DONE]`."
)]
pub struct ChatCompletionChunk {
    pub id: String,
    #[schema(value_type = doc::ChatCompletionChunkObject, inline)]
    pub object: &'static str,
    /// Unix seconds.
    pub created: i64,
    pub model: String,
    pub choices: Vec<ChunkChoice>,
    /// With `include_usage`: `null` on every chunk but the last, which has empty `choices`.
    #[serde(skip_serializing_if = "UsageField::is_absent")]
    #[schema(value_type = Option<CompletionUsage>)]
    pub usage: UsageField,
}

#[derive(Debug, Clone, PartialEq)]
pub enum UsageField {
    Absent,
    Null,
    Usage(CompletionUsage),
}

impl UsageField {
    fn is_absent(&self) -> bool {
        matches!(self, UsageField::Absent)
    }
}

impl Serialize for UsageField {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            UsageField::Absent | UsageField::Null => s.serialize_none(),
            UsageField::Usage(u) => u.serialize(s),
        }
    }
}

#[derive(Debug, Serialize, Clone, PartialEq, ToSchema)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: ChunkDelta,
    /// `null` until the choice's last chunk.
    #[schema(value_type = Option<doc::FinishReason>, inline, required)]
    pub finish_reason: Option<&'static str>,
    #[schema(schema_with = doc::null, required)]
    pub logprobs: Option<()>,
}

#[derive(Debug, Serialize, Clone, PartialEq, Default, ToSchema)]
pub struct ChunkDelta {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = doc::AssistantRole, inline)]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ChunkToolCall>,
    /// Pieces of the call, for requests that used the legacy `functions`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_call: Option<ChunkFunction>,
}

/// A piece of a function call: the first one of a call has its `id`, `type` and `name`, the
/// following ones more of its `arguments`.
#[derive(Debug, Serialize, Clone, PartialEq, ToSchema)]
pub struct ChunkToolCall {
    pub index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = doc::FunctionType, inline)]
    pub kind: Option<&'static str>,
    pub function: ChunkFunction,
}

#[derive(Debug, Serialize, Clone, PartialEq, ToSchema)]
pub struct ChunkFunction {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub arguments: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    #[schema(value_type = doc::ListObject, inline)]
    pub object: &'static str,
    pub data: Vec<Model>,
}

/// A model id clients may send.
#[derive(Debug, Serialize, ToSchema)]
pub struct Model {
    #[schema(example = "gpt-4o")]
    pub id: String,
    #[schema(value_type = doc::ModelObject, inline)]
    pub object: &'static str,
    /// When the gateway started (Unix seconds).
    pub created: i64,
    #[schema(value_type = String, example = "anthropic")]
    pub owned_by: &'static str,
}

/// Every error has this shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorBody,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What was wrong, the limit, and what was sent.
    pub message: String,
    #[serde(rename = "type")]
    #[schema(value_type = doc::ErrorType, inline)]
    pub kind: &'static str,
    /// The offending request field, as a path (`messages[2].content[0].image_url`).
    #[schema(required)]
    pub param: Option<String>,
    /// A machine-readable code (`model_not_found`, `rate_limit_exceeded`, …).
    #[schema(required)]
    pub code: Option<String>,
}
