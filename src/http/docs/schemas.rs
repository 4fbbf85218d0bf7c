//! Documentation-only types: the OpenAPI schemas of what `openai.rs` keeps as raw JSON (messages,
//! tools, `tool_choice`, `response_format`, `stop`) because `convert.rs` parses it field by field
//! to name the exact path of an error, plus the small fixed-value enums and the bodies the
//! handlers build with `json!` (health, the index, sessions). Nothing here is constructed or
//! parsed: the types exist for `#[derive(ToSchema)]`, and describe exactly what `convert.rs` and
//! the handlers accept and write.

use std::collections::BTreeMap;

use utoipa::ToSchema;
use utoipa::openapi::schema::{Object, Type};

// ---- messages ------------------------------------------------------------------------------

/// One message of the conversation, told apart by `role`. `system` and `developer` messages
/// become the system prompt; earlier turns are replayed to Claude as native messages.
#[derive(ToSchema)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum ChatMessage {
    System(InstructionMessage),
    Developer(InstructionMessage),
    User(UserMessage),
    Assistant(AssistantInputMessage),
    Tool(ToolMessage),
    /// Legacy (deprecated by OpenAI): the result of the `function_call` of the assistant message
    /// just before it.
    Function(FunctionMessage),
}

/// A `system` or `developer` message: instructions, joined into Claude's system prompt.
#[derive(ToSchema)]
pub struct InstructionMessage {
    pub content: TextContent,
    /// Accepted; not used.
    pub name: Option<String>,
}

/// A `user` message: text and images.
#[derive(ToSchema)]
pub struct UserMessage {
    pub content: UserContent,
    /// Accepted; not used.
    pub name: Option<String>,
}

/// An earlier `assistant` turn: text, tool calls, or both.
#[derive(ToSchema)]
pub struct AssistantInputMessage {
    /// May be omitted or `null` when the message only carries `tool_calls`.
    pub content: Option<AssistantContent>,
    /// Accepted; not used.
    pub name: Option<String>,
    pub tool_calls: Option<Vec<InputToolCall>>,
    /// Legacy single function call; answered by the `function` message after it.
    pub function_call: Option<InputFunctionCall>,
}

/// A function call of an earlier assistant turn, as the completion answered it; replayed to
/// Claude as a native `tool_use` block with this id.
#[derive(ToSchema)]
pub struct InputToolCall {
    #[schema(example = "call_abc123")]
    pub id: String,
    #[serde(rename = "type")]
    #[schema(inline)]
    pub kind: FunctionType,
    pub function: InputFunctionCall,
}

/// The function and arguments of an earlier call.
#[derive(ToSchema)]
pub struct InputFunctionCall {
    pub name: String,
    /// The arguments, as a JSON text.
    #[schema(example = "{\"city\":\"Paris\"}")]
    pub arguments: String,
}

/// The result of one tool call, matched to it by `tool_call_id`.
#[derive(ToSchema)]
pub struct ToolMessage {
    pub content: TextContent,
    pub tool_call_id: String,
}

/// Legacy result of a `function_call`.
#[derive(ToSchema)]
pub struct FunctionMessage {
    pub content: TextContent,
    pub name: String,
}

/// A string, or an array of text parts.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum TextContent {
    Text(String),
    Parts(Vec<TextPart>),
}

/// A text content part.
#[derive(ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TextPart {
    Text { text: String },
}

/// A string, or an array of text and image parts.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum UserContent {
    Text(String),
    Parts(Vec<UserContentPart>),
}

/// A content part of a user message. `input_audio` and `file` parts are refused with a 400
/// (`unsupported_content_type`).
#[derive(ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum UserContentPart {
    Text { text: String },
    ImageUrl { image_url: ImageUrl },
}

/// An image: a `data:image/png;base64,…` URL (PNG, JPEG, GIF or WebP), or an `http(s)` URL when
/// the gateway is allowed to fetch images. Either the URL itself or an object.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum ImageUrl {
    Url(String),
    Object(ImageUrlObject),
}

#[derive(ToSchema)]
pub struct ImageUrlObject {
    pub url: String,
    #[schema(inline)]
    pub detail: Option<ImageDetail>,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImageDetail {
    Auto,
    Low,
    High,
}

/// A string, or an array of text and refusal parts.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum AssistantContent {
    Text(String),
    Parts(Vec<AssistantContentPart>),
}

#[derive(ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AssistantContentPart {
    Text { text: String },
    Refusal { refusal: String },
}

// ---- tools ---------------------------------------------------------------------------------

/// A function Claude may call.
#[derive(ToSchema)]
pub struct Tool {
    #[schema(inline)]
    pub r#type: FunctionType,
    pub function: FunctionDefinition,
}

/// The only tool type.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FunctionType {
    Function,
}

#[derive(ToSchema)]
pub struct FunctionDefinition {
    pub name: String,
    pub description: Option<String>,
    /// The arguments, as a JSON Schema object.
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Value>,
    pub strict: Option<bool>,
}

/// `none`, `auto`, `required`, or the one function Claude must call.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum ToolChoice {
    Mode(#[schema(inline)] ToolChoiceMode),
    Function(NamedToolChoice),
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ToolChoiceMode {
    None,
    Auto,
    Required,
}

#[derive(ToSchema)]
pub struct NamedToolChoice {
    #[schema(inline)]
    pub r#type: FunctionType,
    pub function: FunctionName,
}

#[derive(ToSchema)]
pub struct FunctionName {
    pub name: String,
}

/// Legacy `function_call`: `none`, `auto`, or `{"name": …}`.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum FunctionCallChoice {
    Mode(#[schema(inline)] ToolChoiceMode),
    Function(FunctionName),
}

// ---- other request fields ------------------------------------------------------------------

/// Plain text, any JSON object, or JSON matching a schema.
#[derive(ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchemaFormat },
}

#[derive(ToSchema)]
pub struct JsonSchemaFormat {
    /// Defaults to `response`.
    pub name: Option<String>,
    pub description: Option<String>,
    /// A JSON Schema object; `{}` when omitted.
    #[schema(value_type = Option<Object>)]
    pub schema: Option<serde_json::Value>,
    pub strict: Option<bool>,
}

/// One stop sequence, or several.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

/// `minimal` is taken as `low`.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReasoningEffort {
    Minimal,
    Low,
    Medium,
    High,
}

// ---- fixed values of responses ------------------------------------------------------------

#[derive(ToSchema)]
pub enum ChatCompletionObject {
    #[serde(rename = "chat.completion")]
    ChatCompletion,
}

#[derive(ToSchema)]
pub enum ChatCompletionChunkObject {
    #[serde(rename = "chat.completion.chunk")]
    ChatCompletionChunk,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ListObject {
    List,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModelObject {
    Model,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AssistantRole {
    Assistant,
}

/// `length` when `max_tokens` was reached, `tool_calls` when Claude called functions.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    InvalidRequestError,
    RateLimitError,
    ServerError,
}

/// A property that is always `null` (log probabilities: Claude reports none).
pub fn null() -> Object {
    Object::with_type(Type::Null)
}

// ---- bodies the handlers build with `json!` ---------------------------------------------

/// Whether the gateway can answer: the `claude` CLI is there (local engine) or the remote worker
/// answers (`--upstream`).
#[derive(ToSchema)]
pub struct Health {
    #[schema(inline)]
    pub status: HealthStatus,
    /// The gateway's version.
    pub version: String,
    /// The local CLI; `null` in front of a remote worker.
    #[schema(required)]
    pub cli: Option<CliStatus>,
    /// The remote worker's address; `null` with a local engine.
    #[schema(required)]
    pub upstream: Option<String>,
    /// Idle CLI processes kept warm for the next requests, when the engine keeps a pool.
    pub warm_processes: Option<u64>,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Ok,
    Unavailable,
}

/// Whether the `claude` binary is there and which version it is.
#[derive(ToSchema)]
pub struct CliStatus {
    pub found: bool,
    /// The configured binary, resolved through PATH when found.
    pub path: String,
    #[schema(required)]
    pub version: Option<String>,
    /// Why the CLI cannot be used, when it cannot.
    pub error: Option<String>,
}

/// The service's name, version and endpoints.
#[derive(ToSchema)]
pub struct Index {
    pub name: String,
    pub version: String,
    pub description: String,
    /// `METHOD /path` of each HTTP endpoint.
    pub endpoints: Vec<String>,
    /// The gRPC services on the gRPC port.
    pub grpc_services: Vec<String>,
}

/// Liveness: the process is up and answering, whatever the CLI's state.
#[derive(ToSchema)]
pub struct Live {
    #[schema(inline)]
    pub status: LiveStatus,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LiveStatus {
    Alive,
}

/// Readiness: completions can be served now.
#[derive(ToSchema)]
pub struct Ready {
    #[schema(inline)]
    pub status: ReadyStatus,
    /// The Claude account's usage windows, when the CLI has reported any (`GET /v1/quota`).
    pub quota: Option<Vec<QuotaWindow>>,
}

/// `GET /v1/quota`.
#[derive(ToSchema)]
pub struct QuotaList {
    #[schema(inline)]
    pub object: ListObject,
    pub data: Vec<QuotaWindow>,
}

/// One usage window of the Claude account, as the CLI last reported it.
#[derive(ToSchema)]
pub struct QuotaWindow {
    /// `five_hour`, `seven_day`, `seven_day_opus`, `seven_day_sonnet`,
    /// `seven_day_overage_included` or `overage`.
    pub window: String,
    /// `allowed`, `allowed_warning` or `rejected`.
    pub status: String,
    /// Fraction of the window used (usually 0–1).
    #[schema(required)]
    pub utilization: Option<f64>,
    /// When the window resets, Unix seconds.
    #[schema(required)]
    pub resets_at: Option<i64>,
    /// Usage beyond the subscription, when reported.
    #[schema(required)]
    pub overage: Option<QuotaOverage>,
    /// When this state was reported, Unix seconds.
    pub updated_at: i64,
}

#[derive(ToSchema)]
pub struct QuotaOverage {
    #[schema(required)]
    pub status: Option<String>,
    #[schema(required)]
    pub resets_at: Option<i64>,
    pub in_use: bool,
    #[schema(required)]
    pub disabled_reason: Option<String>,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReadyStatus {
    Ready,
}

/// Not ready, and why.
#[derive(ToSchema)]
pub struct NotReady {
    #[schema(inline)]
    pub status: NotReadyStatus,
    /// One line per reason: `draining: the gateway is shutting down`, `claude CLI not usable:
    /// …`, `upstream not serving: …`.
    #[schema(min_items = 1)]
    pub reasons: Vec<String>,
    /// The Claude account's usage windows, when the CLI has reported any.
    pub quota: Option<Vec<QuotaWindow>>,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotReadyStatus {
    NotReady,
}

// ---- sessions ----------------------------------------------------------------------------

/// The body of `POST /v1/sessions`. Every field is optional, and so is the body itself: an empty
/// request creates a session with a generated id. Empty strings count as absent.
#[derive(ToSchema)]
#[schema(example = json!({"id": "ada-1", "model": "sonnet", "system_prompt": "You are terse.",
    "metadata": {"user": "ada"}}))]
pub struct CreateSession {
    /// The session's id: up to 128 letters, digits, `_`, `-` or `.`; `sess_<uuid>` when absent.
    /// An id a live session already has is a 400 (`session_exists`).
    #[schema(pattern = r"^[A-Za-z0-9_.-]{0,128}$")]
    pub id: Option<String>,
    /// The model id of turns whose request has an empty `model`.
    pub model: Option<String>,
    /// The system prompt of every turn, put before the history unless the history or the turn
    /// brings its own `system` or `developer` message. `system` is accepted as an alias.
    pub system_prompt: Option<String>,
    /// Your labels for the session, string to string; the gateway does not read them.
    pub metadata: Option<BTreeMap<String, String>>,
}

/// A session with its history (`GET /v1/sessions/{id}`; creating and clearing return it too).
#[derive(ToSchema)]
pub struct Session {
    #[schema(example = "sess_8fad599609b74742bbfea9f190a9ed58")]
    pub id: String,
    #[schema(inline)]
    pub object: SessionObject,
    /// The model id of turns whose request has an empty `model`.
    #[schema(required)]
    pub model: Option<String>,
    /// The session's system prompt.
    #[schema(required)]
    pub system_prompt: Option<String>,
    /// The labels given at creation.
    pub metadata: BTreeMap<String, String>,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds of the last creation, stored turn or clear.
    pub updated: i64,
    /// How many messages `messages` holds.
    pub message_count: u64,
    /// The history, oldest first, as OpenAI messages: each stored turn's request messages, then
    /// Claude's reply.
    pub messages: Vec<ChatMessage>,
}

/// A session as `GET /v1/sessions` lists it: a `Session` without its `messages`.
#[derive(ToSchema)]
pub struct SessionSummary {
    pub id: String,
    #[schema(inline)]
    pub object: SessionObject,
    #[schema(required)]
    pub model: Option<String>,
    #[schema(required)]
    pub system_prompt: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds of the last creation, stored turn or clear.
    pub updated: i64,
    /// The length of the session's history.
    pub message_count: u64,
}

/// One page of sessions, oldest first (by creation time, then id).
#[derive(ToSchema)]
pub struct SessionList {
    #[schema(inline)]
    pub object: ListObject,
    pub data: Vec<SessionSummary>,
    /// Whether more sessions follow this page.
    pub has_more: bool,
    /// The `after` of the next page; `null` on the last one.
    #[schema(required)]
    pub next_after: Option<String>,
}

/// What `DELETE /v1/sessions/{id}` answers.
#[derive(ToSchema)]
pub struct SessionDeleted {
    pub id: String,
    #[schema(inline)]
    pub object: SessionDeletedObject,
    /// Always `true`: deleting an unknown session is a 404.
    pub deleted: bool,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionObject {
    Session,
}

#[derive(ToSchema)]
pub enum SessionDeletedObject {
    #[serde(rename = "session.deleted")]
    SessionDeleted,
}

/// Prometheus text exposition format 0.0.4: `# HELP` and `# TYPE` lines, then one sample per
/// line.
#[derive(ToSchema)]
#[schema(
    example = "# HELP claude_gateway_in_flight_requests Requests being served now (a \
    stream until its end), by protocol.\n\
    # TYPE claude_gateway_in_flight_requests gauge\n\
    claude_gateway_in_flight_requests{protocol=\"http\"} 1\n"
)]
pub struct Metrics(pub String);
