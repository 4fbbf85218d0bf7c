//! Documentation-only types: the shapes of the request fields `types.rs` keeps as raw JSON (so
//! `convert.rs` can name the exact path of an error), for the gateway's OpenAPI document. They
//! derive `ToSchema` only and are never built.

#![allow(dead_code)]

use utoipa::ToSchema;

use crate::http::docs::schemas::{FunctionType, ReasoningEffort, ToolChoiceMode};

/// A string (one user message) or a list of input items.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum ResponseInput {
    Text(String),
    Items(Vec<InputItem>),
}

/// One input item: a `message` (`type` may be left out), a `function_call` or
/// `custom_tool_call` (an earlier call of the assistant), a `function_call_output` /
/// `custom_tool_call_output` (its result), or a `reasoning` item an earlier response gave.
#[derive(ToSchema)]
pub struct InputItem {
    #[schema(inline)]
    pub r#type: Option<InputItemType>,
    /// `message`: `user`, `assistant`, `system` or `developer`.
    pub role: Option<String>,
    /// `message`: a string, or `input_text` / `input_image` / `output_text` parts.
    pub content: Option<MessageContent>,
    /// `function_call` and `function_call_output`: the call's id.
    pub call_id: Option<String>,
    /// `function_call`: the function.
    pub name: Option<String>,
    /// `function_call`: JSON text of the arguments.
    pub arguments: Option<String>,
    /// `custom_tool_call`: the free-form input.
    pub input: Option<String>,
    /// `reasoning`: the sealed thinking this gateway produced; replayed as Claude's thinking.
    pub encrypted_content: Option<String>,
    /// `function_call_output`: what the function returned.
    pub output: Option<MessageContent>,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InputItemType {
    Message,
    FunctionCall,
    FunctionCallOutput,
    CustomToolCall,
    CustomToolCallOutput,
    Reasoning,
}

#[derive(ToSchema)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<InputContentPart>),
}

/// `input_text` / `output_text` with `text`, or `input_image` with `image_url` (a data URL or an
/// http(s) URL) and `detail`.
#[derive(ToSchema)]
pub struct InputContentPart {
    #[schema(inline)]
    pub r#type: InputContentPartType,
    pub text: Option<String>,
    pub image_url: Option<String>,
    pub detail: Option<String>,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InputContentPartType {
    InputText,
    OutputText,
    InputImage,
}

/// A tool Claude may call: a function, a custom tool with free-form input, or a namespace of
/// those.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum ResponseTool {
    Function(FunctionTool),
    Custom(CustomTool),
    Namespace(NamespaceTool),
}

/// A group of function and custom tools (`type: "namespace"`); Claude sees each as
/// `<namespace>__<name>`, and its calls come back with `namespace` and the inner `name`.
#[derive(ToSchema)]
pub struct NamespaceTool {
    /// Always `namespace`.
    pub r#type: String,
    /// Letters, digits, `_` and `-`.
    pub name: String,
    pub description: String,
    /// `function` and `custom` tools, as at the top level.
    #[schema(value_type = Vec<Object>)]
    pub tools: Vec<serde_json::Value>,
}

/// A function Claude may call.
#[derive(ToSchema)]
pub struct FunctionTool {
    #[schema(inline)]
    pub r#type: FunctionType,
    pub name: String,
    pub description: Option<String>,
    /// The arguments, as a JSON Schema object.
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Value>,
    pub strict: Option<bool>,
}

/// A tool whose input is free-form text (`type: "custom"`), offered to Claude as a function with
/// one string field.
#[derive(ToSchema)]
pub struct CustomTool {
    /// Always `custom`.
    pub r#type: String,
    pub name: String,
    pub description: Option<String>,
    /// `{"type":"text"}` or `{"type":"grammar","syntax":"lark"|"regex","definition":…}`.
    #[schema(value_type = Option<Object>)]
    pub format: Option<serde_json::Value>,
}

/// `none`, `auto`, `required`, or the one function (or custom tool) Claude must call.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum ResponseToolChoice {
    Mode(#[schema(inline)] ToolChoiceMode),
    Function(NamedFunction),
}

/// `{"type": "function" | "custom", "name": …}`, with `namespace` for a namespaced tool.
#[derive(ToSchema)]
pub struct NamedFunction {
    /// `function` or `custom`.
    pub r#type: String,
    pub name: String,
    pub namespace: Option<String>,
}

#[derive(ToSchema)]
pub struct TextParam {
    pub format: Option<TextFormat>,
}

/// `text`, `json_object`, or `json_schema` with `name`, `schema` and `strict`.
#[derive(ToSchema)]
pub struct TextFormat {
    #[schema(inline)]
    pub r#type: TextFormatType,
    pub name: Option<String>,
    pub description: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub schema: Option<serde_json::Value>,
    pub strict: Option<bool>,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TextFormatType {
    Text,
    JsonObject,
    JsonSchema,
}

/// `effort` is the CLI's `--effort`; `summary` (`auto`, `concise`, `detailed`) puts Claude's
/// thinking text in the reasoning items' summary.
#[derive(ToSchema)]
pub struct ReasoningParam {
    #[schema(inline)]
    pub effort: Option<ReasoningEffort>,
    pub summary: Option<String>,
}
