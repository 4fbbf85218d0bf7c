//! The wire types of OpenAI's Responses API, as serde structs. The request is read leniently
//! (unknown fields kept in `extra`, `null` as absent) and its item lists stay JSON, parsed field
//! by field in `convert.rs` so errors name their path (`input[2].content[0].image_url`). What the
//! gateway writes (`Response`, its output items and the stream events) is shaped exactly as the
//! `Response`, `OutputItem` and `ResponseStreamEvent` schemas of OpenAI's OpenAPI document require.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::doc;

/// The body of `POST /v1/responses`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(
    description = "A Responses API request. `null` counts as absent. Parameters Claude cannot \
        honour (`temperature`, `top_p`, `user`, `truncation`, `prompt_cache_key`, …) \
        are accepted and listed in the `x-ignored-params` response header, or refused with a 400 \
        under `--strict-params`. Responses are stored by default (`store`) and continued with \
        `previous_response_id`; `conversation`, `prompt` and `background` are refused with a \
        400.",
    example = json!({"model": "gpt-4o", "instructions": "Be brief.", "input": "Hello"})
)]
pub struct CreateResponseRequest {
    /// An OpenAI model id mapped to a Claude model, a Claude alias or a `claude-*` id.
    #[schema(example = "gpt-4o")]
    pub model: String,
    /// A string (one user message) or a list of items: `message`, `function_call`,
    /// `function_call_output`, `custom_tool_call`, `custom_tool_call_output`.
    #[serde(default)]
    #[schema(value_type = Option<doc::ResponseInput>)]
    pub input: Option<Value>,
    /// Goes before the input as the system prompt.
    #[serde(default)]
    pub instructions: Option<String>,
    /// Stream the answer as server-sent events (`response.created` … `response.completed`).
    #[serde(default)]
    pub stream: Option<bool>,
    /// Accepted and not used (`include_obfuscation` has no meaning here).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub stream_options: Option<Value>,
    /// `function`, `custom` and `namespace` tools (a custom tool is offered to Claude as a
    /// function with one string field, a namespace's tools as `<namespace>__<name>`); hosted
    /// tools are not offered and are listed in `x-ignored-params` (a 400 under
    /// `--strict-params`).
    #[serde(default)]
    #[schema(value_type = Option<Vec<doc::ResponseTool>>)]
    pub tools: Option<Value>,
    /// `none`, `auto`, `required`, `{"type":"function","name":…}` or
    /// `{"type":"custom","name":…}` (with `namespace` for a namespaced tool).
    #[serde(default)]
    #[schema(value_type = Option<doc::ResponseToolChoice>)]
    pub tool_choice: Option<Value>,
    /// Whether Claude may call several functions in one turn (default true).
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    /// Most tokens to generate; a cut answer is `status: "incomplete"`.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub max_output_tokens: Option<u32>,
    /// `{"format": {"type": "text" | "json_object" | "json_schema", …}}`.
    #[serde(default)]
    #[schema(value_type = Option<doc::TextParam>)]
    pub text: Option<Value>,
    /// `{"effort": "low" | "medium" | "high", "summary": "auto" | "concise" | "detailed"}`:
    /// the CLI's `--effort`, and Claude's thinking as the reasoning items' summary.
    #[serde(default)]
    #[schema(value_type = Option<doc::ReasoningParam>)]
    pub reasoning: Option<Value>,
    /// Echoed in the response; not sent to Claude.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Accepted, not honoured (`x-ignored-params`).
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Accepted, not honoured (`x-ignored-params`).
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Above 0 is refused with a 400: Claude reports no log probabilities.
    #[serde(default)]
    pub top_logprobs: Option<u32>,
    /// Accepted, not honoured (`x-ignored-params`).
    #[serde(default)]
    pub user: Option<String>,
    /// Keep the response (default true, as OpenAI's): it can then be retrieved, listed
    /// (`input_items`), deleted and continued with `previous_response_id`, by the same API key.
    #[serde(default)]
    pub store: Option<bool>,
    /// `true` is refused with a 400: run in the foreground, optionally with `stream: true`.
    #[serde(default)]
    pub background: Option<bool>,
    /// A stored response to continue: its conversation (input and output, not its
    /// instructions) goes before `input`. Unknown, deleted, expired, `store: false` or another
    /// key's: 404.
    #[serde(default)]
    pub previous_response_id: Option<String>,
    /// Everything else: OpenAI fields the gateway does not use, and unknown fields.
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: BTreeMap<String, Value>,
}

/// OpenAI request fields with no effect here; when sent (non-null) they are reported in
/// `x-ignored-params`. Fields not in this list and not above are silently ignored.
pub const KNOWN_UNUSED_FIELDS: &[&str] = &[
    "include",
    "max_tool_calls",
    "moderation",
    "prompt_cache_key",
    "prompt_cache_options",
    "prompt_cache_retention",
    "safety_identifier",
    "service_tier",
    "truncation",
];

/// OpenAI request fields that need state this gateway does not keep (conversations, stored
/// prompts): refused with a 400.
pub const STATEFUL_FIELDS: &[&str] = &["conversation", "prompt"];

/// What the response object repeats of the request, as OpenAI's does. Kept in the stored
/// response's document, so a stored response shows it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Echo {
    pub model: String,
    pub instructions: Option<String>,
    pub max_output_tokens: Option<u32>,
    pub parallel_tool_calls: bool,
    pub tools: Vec<Value>,
    pub tool_choice: Value,
    pub text: Value,
    pub reasoning: Option<Value>,
    pub metadata: BTreeMap<String, String>,
}

/// The response `id` before any output: in progress, echoing the request.
pub fn initial_response(id: String, echo: Echo, created_at: i64) -> ResponseObject {
    let Echo {
        model,
        instructions,
        max_output_tokens,
        parallel_tool_calls,
        tools,
        tool_choice,
        text,
        reasoning,
        metadata,
    } = echo;
    ResponseObject {
        id,
        object: "response",
        created_at,
        status: "in_progress",
        completed_at: None,
        error: None,
        incomplete_details: None,
        instructions,
        max_output_tokens,
        model,
        output: Vec::new(),
        parallel_tool_calls,
        previous_response_id: None,
        reasoning,
        store: false,
        temperature: None,
        top_p: None,
        text,
        tool_choice,
        tools,
        truncation: "disabled",
        usage: None,
        metadata,
    }
}

/// The response object (`object: "response"`), whole or inside the stream's lifecycle events.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ResponseObject {
    #[schema(example = "resp_0123456789abcdef0123456789abcdef")]
    pub id: String,
    /// Always `response`.
    #[schema(value_type = String, example = "response")]
    pub object: &'static str,
    /// Unix seconds.
    pub created_at: i64,
    /// `in_progress`, `completed`, `incomplete` or `failed`.
    #[schema(value_type = String, example = "completed")]
    pub status: &'static str,
    /// Unix seconds; only when `status` is `completed`.
    pub completed_at: Option<i64>,
    pub error: Option<ResponseError>,
    pub incomplete_details: Option<IncompleteDetails>,
    pub instructions: Option<String>,
    pub max_output_tokens: Option<u32>,
    /// The model id the client sent.
    pub model: String,
    pub output: Vec<OutputItem>,
    pub parallel_tool_calls: bool,
    /// The stored response this one continues.
    pub previous_response_id: Option<String>,
    #[schema(value_type = Option<doc::ReasoningParam>)]
    pub reasoning: Option<Value>,
    /// Whether the response is stored (the request's `store`, default true).
    pub store: bool,
    /// Always `null`: sampling parameters are not honoured.
    pub temperature: Option<f64>,
    /// Always `null`: sampling parameters are not honoured.
    pub top_p: Option<f64>,
    #[schema(value_type = doc::TextParam)]
    pub text: Value,
    #[schema(value_type = doc::ResponseToolChoice)]
    pub tool_choice: Value,
    #[schema(value_type = Vec<doc::ResponseTool>)]
    pub tools: Vec<Value>,
    /// Always `disabled`.
    #[schema(value_type = String)]
    pub truncation: &'static str,
    /// On the final response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<ResponseUsage>,
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ResponseError {
    /// `rate_limit_exceeded`, `context_length_exceeded` or `server_error`.
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct IncompleteDetails {
    /// `max_output_tokens` or `content_filter`.
    #[schema(value_type = String)]
    pub reason: &'static str,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, ToSchema)]
pub struct ResponseUsage {
    /// Cache reads and writes included.
    pub input_tokens: u32,
    pub input_tokens_details: InputTokensDetails,
    pub output_tokens: u32,
    pub output_tokens_details: OutputTokensDetails,
    pub total_tokens: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, ToSchema)]
pub struct InputTokensDetails {
    pub cached_tokens: u32,
    /// Always 0: the gateway's usage does not separate cache writes.
    pub cache_write_tokens: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, ToSchema)]
pub struct OutputTokensDetails {
    pub reasoning_tokens: u32,
}

/// An item of `output`: an assistant message, a function call or a custom tool call (a call of a
/// namespaced tool carries its `namespace`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputItem {
    Reasoning(ReasoningItem),
    Message(OutputMessage),
    FunctionCall(FunctionCallItem),
    CustomToolCall(CustomToolCallItem),
}

impl OutputItem {
    pub fn id(&self) -> &str {
        match self {
            OutputItem::Reasoning(r) => &r.id,
            OutputItem::Message(m) => &m.id,
            OutputItem::FunctionCall(f) => &f.id,
            OutputItem::CustomToolCall(c) => &c.id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct OutputMessage {
    #[schema(example = "msg_0123456789abcdef0123456789abcdef")]
    pub id: String,
    /// `in_progress`, `completed` or `incomplete`.
    #[schema(value_type = String)]
    pub status: &'static str,
    /// Always `assistant`.
    #[schema(value_type = String)]
    pub role: &'static str,
    pub content: Vec<OutputText>,
}

/// An `output_text` content part.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct OutputText {
    /// Always `output_text`.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub kind: &'static str,
    pub text: String,
    /// Always empty.
    #[schema(value_type = Vec<Object>)]
    pub annotations: Vec<Value>,
    /// Always empty: Claude reports no log probabilities.
    #[schema(value_type = Vec<Object>)]
    pub logprobs: Vec<Value>,
}

impl OutputText {
    pub fn new(text: String) -> Self {
        OutputText {
            kind: "output_text",
            text,
            annotations: Vec::new(),
            logprobs: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FunctionCallItem {
    #[schema(example = "fc_0123456789abcdef0123456789abcdef")]
    pub id: String,
    /// The id a `function_call_output` answers.
    pub call_id: String,
    /// The namespace of a namespaced function (`name` is then its name inside it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    /// JSON text of the arguments.
    pub arguments: String,
    /// `in_progress`, `completed` or `incomplete`.
    #[schema(value_type = String)]
    pub status: &'static str,
}

/// Claude's thinking: its text as the one summary part when `reasoning.summary` asked for it, and
/// sealed (with its signature) in `encrypted_content` when `include` asked for that.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ReasoningItem {
    #[schema(example = "rs_0123456789abcdef0123456789abcdef")]
    pub id: String,
    pub summary: Vec<SummaryText>,
    /// Opaque; send the item back in `input` to replay the thinking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encrypted_content: Option<String>,
}

/// A `summary_text` part of a reasoning item.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SummaryText {
    /// Always `summary_text`.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub kind: &'static str,
    pub text: String,
}

impl SummaryText {
    pub fn new(text: String) -> Self {
        SummaryText {
            kind: "summary_text",
            text,
        }
    }
}

/// A call of a `custom` tool: its free-form `input` (what Claude wrote in the one string field of
/// the function the tool was offered as).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CustomToolCallItem {
    #[schema(example = "ctc_0123456789abcdef0123456789abcdef")]
    pub id: String,
    /// The id a `custom_tool_call_output` answers.
    pub call_id: String,
    /// The namespace of a namespaced custom tool (`name` is then its name inside it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    pub input: String,
    /// `in_progress`, `completed` or `incomplete`.
    #[schema(value_type = String)]
    pub status: &'static str,
}

/// One server-sent event of a streamed response: its `type` (also the SSE `event:` name), its
/// place in the stream, and its payload.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StreamEvent {
    #[serde(flatten)]
    pub payload: EventPayload,
    /// 0, 1, 2, … in the order the events are sent.
    pub sequence_number: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(tag = "type")]
pub enum EventPayload {
    #[serde(rename = "response.created")]
    Created { response: ResponseObject },
    #[serde(rename = "response.in_progress")]
    InProgress { response: ResponseObject },
    #[serde(rename = "response.output_item.added")]
    OutputItemAdded { output_index: u32, item: OutputItem },
    #[serde(rename = "response.reasoning_summary_part.added")]
    ReasoningSummaryPartAdded {
        item_id: String,
        output_index: u32,
        summary_index: u32,
        part: SummaryText,
    },
    #[serde(rename = "response.reasoning_summary_text.delta")]
    ReasoningSummaryTextDelta {
        item_id: String,
        output_index: u32,
        summary_index: u32,
        delta: String,
    },
    #[serde(rename = "response.reasoning_summary_text.done")]
    ReasoningSummaryTextDone {
        item_id: String,
        output_index: u32,
        summary_index: u32,
        text: String,
    },
    #[serde(rename = "response.reasoning_summary_part.done")]
    ReasoningSummaryPartDone {
        item_id: String,
        output_index: u32,
        summary_index: u32,
        part: SummaryText,
    },
    #[serde(rename = "response.content_part.added")]
    ContentPartAdded {
        item_id: String,
        output_index: u32,
        content_index: u32,
        part: OutputText,
    },
    #[serde(rename = "response.output_text.delta")]
    OutputTextDelta {
        item_id: String,
        output_index: u32,
        content_index: u32,
        delta: String,
        #[schema(value_type = Vec<Object>)]
        logprobs: Vec<Value>,
    },
    #[serde(rename = "response.output_text.done")]
    OutputTextDone {
        item_id: String,
        output_index: u32,
        content_index: u32,
        text: String,
        #[schema(value_type = Vec<Object>)]
        logprobs: Vec<Value>,
    },
    #[serde(rename = "response.content_part.done")]
    ContentPartDone {
        item_id: String,
        output_index: u32,
        content_index: u32,
        part: OutputText,
    },
    #[serde(rename = "response.function_call_arguments.delta")]
    FunctionCallArgumentsDelta {
        item_id: String,
        output_index: u32,
        delta: String,
    },
    #[serde(rename = "response.function_call_arguments.done")]
    FunctionCallArgumentsDone {
        item_id: String,
        output_index: u32,
        name: String,
        arguments: String,
    },
    #[serde(rename = "response.custom_tool_call_input.delta")]
    CustomToolCallInputDelta {
        item_id: String,
        output_index: u32,
        delta: String,
    },
    #[serde(rename = "response.custom_tool_call_input.done")]
    CustomToolCallInputDone {
        item_id: String,
        output_index: u32,
        input: String,
    },
    #[serde(rename = "response.output_item.done")]
    OutputItemDone { output_index: u32, item: OutputItem },
    #[serde(rename = "response.completed")]
    Completed { response: ResponseObject },
    #[serde(rename = "response.incomplete")]
    Incomplete { response: ResponseObject },
    #[serde(rename = "response.failed")]
    Failed { response: ResponseObject },
}

impl EventPayload {
    /// The event's `type`, which is also its SSE `event:` name.
    pub fn kind(&self) -> &'static str {
        match self {
            EventPayload::Created { .. } => "response.created",
            EventPayload::InProgress { .. } => "response.in_progress",
            EventPayload::OutputItemAdded { .. } => "response.output_item.added",
            EventPayload::ReasoningSummaryPartAdded { .. } => {
                "response.reasoning_summary_part.added"
            }
            EventPayload::ReasoningSummaryTextDelta { .. } => {
                "response.reasoning_summary_text.delta"
            }
            EventPayload::ReasoningSummaryTextDone { .. } => "response.reasoning_summary_text.done",
            EventPayload::ReasoningSummaryPartDone { .. } => "response.reasoning_summary_part.done",
            EventPayload::ContentPartAdded { .. } => "response.content_part.added",
            EventPayload::OutputTextDelta { .. } => "response.output_text.delta",
            EventPayload::OutputTextDone { .. } => "response.output_text.done",
            EventPayload::ContentPartDone { .. } => "response.content_part.done",
            EventPayload::FunctionCallArgumentsDelta { .. } => {
                "response.function_call_arguments.delta"
            }
            EventPayload::FunctionCallArgumentsDone { .. } => {
                "response.function_call_arguments.done"
            }
            EventPayload::CustomToolCallInputDelta { .. } => {
                "response.custom_tool_call_input.delta"
            }
            EventPayload::CustomToolCallInputDone { .. } => "response.custom_tool_call_input.done",
            EventPayload::OutputItemDone { .. } => "response.output_item.done",
            EventPayload::Completed { .. } => "response.completed",
            EventPayload::Incomplete { .. } => "response.incomplete",
            EventPayload::Failed { .. } => "response.failed",
        }
    }
}
