//! Domain types of a chat completion: what both protocols (OpenAI JSON over HTTP, protobuf over
//! gRPC) are converted into and out of. They mirror `proto/claude_gateway/v1/chat.proto` one to one
//! so the conversions in `grpc/convert.rs` and `http/convert.rs` can be exhaustive.

use std::collections::BTreeMap;

/// A chat-completion request as a client sent it, before validation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    pub parallel_tool_calls: Option<bool>,
    pub response_format: ResponseFormat,
    pub stop: Vec<String>,
    pub n: Option<u32>,
    pub max_tokens: Option<u32>,
    pub session_id: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub sampling: SamplingParams,
    pub reasoning_effort: Option<String>,
    /// Anthropic's `thinking.budget_tokens`: the most tokens Claude may think, on models whose
    /// thinking takes a budget (4.x); adaptive models decide for themselves.
    pub thinking_budget: Option<u32>,
    /// A turn of a stored response chain (the Responses API), handled by the session layer.
    pub response: Option<ResponseTurn>,
}

/// A turn the session layer keeps as a stored response, and the stored response it continues.
/// The chain lives in a session (kind `chain`) like any conversation: the turn runs on the
/// chain's history up to `previous`, in the chain's live process when it still holds exactly
/// that, and is appended atomically when it succeeds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResponseTurn {
    /// The id the new response gets (`resp_…`), chosen by the dialect.
    pub id: String,
    /// The stored response this turn continues.
    pub previous: Option<String>,
    /// Whether to keep this response (OpenAI's `store`, true by default there).
    pub store: bool,
    /// Whether the request's messages start with its instructions: a system message that is
    /// sent but not kept in the chain (instructions do not carry over to the next response).
    pub instructions: bool,
    /// What the dialect records to show the response again (its echo and input items), opaque
    /// to everything below it.
    pub document: String,
}

/// OpenAI knobs with no CLI equivalent. Kept so they can be reported (or refused), never used.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SamplingParams {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub seed: Option<i64>,
    pub logit_bias: BTreeMap<String, f64>,
    pub user: Option<String>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<u32>,
    /// Other request fields the client sent that the gateway does not use.
    pub other: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub content: Vec<ContentPart>,
    pub name: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    pub tool_call_id: Option<String>,
}

impl Message {
    /// A message whose content is one text part.
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Message {
            role,
            content: vec![ContentPart::Text(text.into())],
            name: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    /// All text parts joined, images skipped.
    pub fn joined_text(&self) -> String {
        let mut out = String::new();
        for part in &self.content {
            if let ContentPart::Text(text) = part {
                out.push_str(text);
            }
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ContentPart {
    Text(String),
    ImageUrl {
        url: String,
        detail: ImageDetail,
    },
    /// Claude's thinking in an earlier assistant turn, with the signature the Anthropic API
    /// checks when it is sent back (only assistant messages carry it; other doors ignore it).
    Thinking {
        thinking: String,
        signature: String,
        /// The Claude model that wrote it (empty if unknown): the CLI replays thinking only in
        /// turns of that same model.
        model: String,
    },
    /// Thinking the Anthropic API returned encrypted (`redacted_thinking`), sent back as it was
    /// in a later assistant turn; like a signature, `data` is only good for `model`.
    RedactedThinking {
        data: String,
        model: String,
    },
    /// A document for Claude to read (Anthropic's `document` block; OpenAI's `file` part).
    Document(Document),
}

/// A document a user message carries: its source, and the optional title and context Claude
/// reads with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub source: DocumentSource,
    pub title: Option<String>,
    pub context: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DocumentSource {
    /// A PDF as base64 text, as the client sent it (checked by validation).
    Pdf { data: String },
    /// Plain text (`text/plain`).
    Text { data: String },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ImageDetail {
    #[default]
    Unspecified,
    Auto,
    Low,
    High,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the parameters, as the client wrote it.
    pub parameters: Option<serde_json::Value>,
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// JSON text of the arguments.
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    None,
    Auto,
    Required,
    Function(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub enum ResponseFormat {
    #[default]
    Text,
    JsonObject,
    JsonSchema(JsonSchemaFormat),
}

#[derive(Debug, Clone, PartialEq)]
pub struct JsonSchemaFormat {
    pub name: String,
    pub description: Option<String>,
    pub schema: serde_json::Value,
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    /// A stop sequence of the request ended the answer: its index in `ChatRequest::stop`.
    /// OpenAI's dialects say `stop`; Anthropic's names the sequence.
    StopSequence(u32),
    Length,
    ToolCalls,
    ContentFilter,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop | FinishReason::StopSequence(_) => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
        }
    }
}

/// Token accounting of a completion.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Input tokens, cache reads and writes included.
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub cached_tokens: u32,
    /// Input tokens written to Claude's prompt cache (part of `prompt_tokens`).
    pub cache_creation_tokens: u32,
    pub reasoning_tokens: u32,
    /// True when these are the gateway's tiktoken estimates, not Claude's numbers.
    pub estimated: bool,
    pub cost_usd: f64,
}

impl Usage {
    pub fn total_tokens(&self) -> u32 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }

    /// Adds another run's usage (n > 1 choices).
    pub fn add(&mut self, other: &Usage) {
        self.prompt_tokens = self.prompt_tokens.saturating_add(other.prompt_tokens);
        self.completion_tokens = self
            .completion_tokens
            .saturating_add(other.completion_tokens);
        self.cached_tokens = self.cached_tokens.saturating_add(other.cached_tokens);
        self.cache_creation_tokens = self
            .cache_creation_tokens
            .saturating_add(other.cache_creation_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(other.reasoning_tokens);
        self.estimated |= other.estimated;
        self.cost_usd += other.cost_usd;
    }
}

/// Identity of one completion, fixed before the first chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionMeta {
    pub id: String,
    pub created: i64,
    /// The model id the client asked for.
    pub model: String,
    pub ignored_params: Vec<String>,
}

/// One step of a streamed completion, for one choice (or the usage at the end).
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    /// A choice starts: its first chunk carries the assistant role.
    Role { index: u32 },
    /// More text for a choice.
    Text { index: u32, text: String },
    /// A piece of a tool call: id and name on its first piece, then argument fragments.
    ToolCall { index: u32, call: ToolCallDelta },
    /// A piece of Claude's thinking (before the answer it leads to); dialects without a place
    /// for it ignore it.
    Reasoning { index: u32, delta: ReasoningDelta },
    /// A choice is complete.
    Finish { index: u32, reason: FinishReason },
    /// Accounting for the whole completion; the last event.
    Usage(Usage),
}

/// A thinking block as it streams: its text in pieces, then its signature, which ends it.
#[derive(Debug, Clone, PartialEq)]
pub enum ReasoningDelta {
    Text(String),
    /// `model`: the Claude model that wrote the block (empty if unknown); a signature is only
    /// good for that model.
    Signature {
        signature: String,
        model: String,
    },
    /// A whole `redacted_thinking` block (encrypted thinking, nothing to show), good for
    /// `model` only.
    Redacted {
        data: String,
        model: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolCallDelta {
    pub index: u32,
    pub id: Option<String>,
    pub name: Option<String>,
    pub arguments: String,
}

/// A whole completion (the non-streaming answer).
#[derive(Debug, Clone, PartialEq)]
pub struct ChatCompletion {
    pub meta: CompletionMeta,
    pub choices: Vec<Choice>,
    pub usage: Usage,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub index: u32,
    pub content: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    pub finish_reason: FinishReason,
}
