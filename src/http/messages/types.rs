//! The wire types of Anthropic's Messages API. The request is read leniently: the fields the
//! gateway knows are typed, the nested content (`system`, `messages`, `tools`, `tool_choice`,
//! `thinking`) stays JSON and is parsed block by block in `convert.rs` so errors name their path
//! (`messages[1].content[0].source`), and unknown fields are kept in `extra` to be reported in
//! `x-ignored-params`, not refused. What the gateway writes is JSON built in `stream.rs` with the
//! key order of Anthropic's API (serde_json's `preserve_order` keeps it).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

/// The body of `POST /v1/messages` (and of `POST /v1/messages/count_tokens`, where
/// `max_tokens` is not required).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(
    description = "An Anthropic Messages API request. `null` counts as absent. `temperature`, \
        `top_p`, `top_k` and `metadata.user_id` are accepted and listed in the \
        `x-ignored-params` response header; server tools, `document` blocks with a `url` or \
        `content` source and `citations.enabled` are refused with a 400.",
    example = json!({"model": "claude-sonnet-4-5", "max_tokens": 1024,
                     "messages": [{"role": "user", "content": "Hello"}]})
)]
pub struct MessagesRequest {
    /// A Claude model id (`claude-…`), a CLI alias, or an id of the model map.
    pub model: String,
    /// Most tokens to generate (required, as Anthropic requires it).
    pub max_tokens: u32,
    /// The conversation: `user` and `assistant` messages, content a string or blocks.
    #[schema(value_type = Vec<Object>)]
    pub messages: Value,
    /// The system prompt: a string or a list of text blocks.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub system: Option<Value>,
    /// Custom tools (`name`, `description`, `input_schema`); server tools are refused.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub tools: Option<Value>,
    /// `{"type":"auto"|"any"|"none"}` or `{"type":"tool","name":…}`, with
    /// `disable_parallel_tool_use`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub tool_choice: Option<Value>,
    /// Texts that end the answer.
    #[serde(default)]
    pub stop_sequences: Option<Vec<String>>,
    /// `{"type":"enabled","budget_tokens":N}`, `{"type":"adaptive"}` or `{"type":"disabled"}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub thinking: Option<Value>,
    /// Stream the answer as server-sent events.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Accepted; `user_id` is reported as ignored.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// Accepted, not honoured (the claude CLI has no sampling settings).
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Accepted, not honoured.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Accepted, not honoured.
    #[serde(default)]
    pub top_k: Option<u32>,
    /// Any other field: reported in `x-ignored-params`.
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: BTreeMap<String, Value>,
}

/// The body of `POST /v1/messages/count_tokens`: a Messages request without `max_tokens`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CountTokensRequest {
    /// A Claude model id (`claude-…`), a CLI alias, or an id of the model map.
    pub model: String,
    /// The conversation, as in `POST /v1/messages`.
    #[schema(value_type = Vec<Object>)]
    pub messages: Value,
    /// The system prompt.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub system: Option<Value>,
    /// Custom tools.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub tools: Option<Value>,
    /// As in `POST /v1/messages`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub tool_choice: Option<Value>,
    /// As in `POST /v1/messages`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub thinking: Option<Value>,
    /// Any other field: not used for counting.
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: BTreeMap<String, Value>,
}

impl From<CountTokensRequest> for MessagesRequest {
    fn from(req: CountTokensRequest) -> Self {
        let CountTokensRequest {
            model,
            messages,
            system,
            tools,
            tool_choice,
            thinking,
            extra,
        } = req;
        MessagesRequest {
            model,
            // Counting generates nothing; the domain needs some limit.
            max_tokens: 1,
            messages,
            system,
            tools,
            tool_choice,
            stop_sequences: None,
            thinking,
            stream: None,
            metadata: None,
            temperature: None,
            top_p: None,
            top_k: None,
            extra,
        }
    }
}
