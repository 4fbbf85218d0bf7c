//! The seam between the protocols and the engine. The HTTP façade and the gRPC service both talk
//! to a `ChatBackend`: in one process it is the local engine (`claude::Engine`); in front of a
//! remote worker it is the gRPC client (`grpc::RemoteBackend`), so HTTP never needs to know where
//! the CLI runs.

use futures::StreamExt;
use futures::stream::BoxStream;

use super::error::ChatError;
use super::models::ModelInfo;
use super::types::{
    ChatCompletion, ChatEvent, ChatRequest, Choice, CompletionMeta, FinishReason, ToolCall, Usage,
};

/// Per-request context that travels with a request across protocols.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The `x-request-id` of the request, on every log line about it.
    pub request_id: String,
    /// The session the request continues, once the session layer has put its stored history
    /// into the request: the engine may then continue a live process of that session instead
    /// of replaying the history into a new one.
    pub session: Option<String>,
    /// Who the request acts for (from its API key): a `session_id` of another tenant's session
    /// is a missing session.
    pub tenant: super::Tenant,
    /// The API door the request came through, as the usage ledger records it.
    pub api: Api,
    /// A façade's call on its caller's behalf (an honoured `x-gateway-tenant`): the façade
    /// records its usage and checks its budgets, so this gateway does neither.
    pub forwarded: bool,
}

/// The API a request came through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Api {
    #[default]
    ChatCompletions,
    Responses,
    Messages,
    Grpc,
}

impl Api {
    /// The name the usage ledger (`GET /v1/usage`) shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Api::ChatCompletions => "chat.completions",
            Api::Responses => "responses",
            Api::Messages => "messages",
            Api::Grpc => "grpc",
        }
    }
}

/// A completion being streamed. Only handed out once the first event is known to come, so a
/// failure to start is an `Err` (a real HTTP status), never a broken stream. Dropping it cancels
/// the run: the stream owns the process.
pub struct ChatStream {
    pub meta: CompletionMeta,
    pub events: BoxStream<'static, Result<ChatEvent, ChatError>>,
}

#[async_trait::async_trait]
pub trait ChatBackend: Send + Sync + 'static {
    /// Starts a completion and returns once its first event is ready.
    async fn stream(&self, req: ChatRequest, ctx: RequestContext) -> Result<ChatStream, ChatError>;

    /// Runs a completion to its end.
    async fn complete(
        &self,
        req: ChatRequest,
        ctx: RequestContext,
    ) -> Result<ChatCompletion, ChatError> {
        collect(self.stream(req, ctx).await?).await
    }

    /// How many input tokens `req` would cost Claude, counted, never estimated (OpenAI's
    /// `POST /v1/responses/input_tokens`). A backend that cannot count answers `NotImplemented`
    /// with the reason, which is what this default does.
    async fn count_input_tokens(
        &self,
        req: ChatRequest,
        ctx: RequestContext,
    ) -> Result<u64, ChatError> {
        let _ = (req, ctx);
        Err(ChatError::NotImplemented {
            message: "This backend cannot count input tokens.".into(),
        })
    }

    /// Every model id accepted.
    async fn list_models(&self) -> Result<Vec<ModelInfo>, ChatError>;

    /// One model id, or `ModelNotFound`.
    async fn get_model(&self, id: &str) -> Result<ModelInfo, ChatError>;

    /// Whether completions can be served now, and why not.
    async fn health(&self) -> BackendHealth;

    /// What its processes are doing now, when the backend runs them (or, in front of workers,
    /// their sum).
    fn load(&self) -> Option<Load> {
        None
    }
}

/// The process budget's processes by state, and the requests waiting (for a process or for a
/// session's turn): what `/metrics` shows and what a worker reports to the façades in front of
/// it (`WorkerService`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    pub serving: usize,
    pub warm: usize,
    /// Parked for their session's next turn.
    pub session: usize,
    /// Parked after a stateless request: to be continued or recycled.
    pub idle: usize,
    /// Parked at a client's tool calls, waiting for their results.
    pub tools: usize,
    pub queued: usize,
    /// The most processes run at once (`--max-processes`).
    pub capacity: usize,
}

/// What `/health` and `grpc.health.v1` report about a backend.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BackendHealth {
    pub ready: bool,
    /// The local CLI, when the backend runs it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cli: Option<CliStatus>,
    /// The remote worker, when the backend is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Idle warm processes, when the backend keeps a pool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm_processes: Option<usize>,
}

/// Whether the `claude` binary is there and which version it is.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CliStatus {
    pub found: bool,
    /// The configured binary, resolved through PATH when found.
    pub path: String,
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Folds a stream into the whole completion.
pub async fn collect(stream: ChatStream) -> Result<ChatCompletion, ChatError> {
    let ChatStream { meta, mut events } = stream;
    let mut acc = Accumulator::default();
    while let Some(event) = events.next().await {
        acc.push(event?);
    }
    Ok(acc.finish(meta))
}

/// Builds choices from events; pure so the non-streaming path is testable without a process.
#[derive(Debug, Default)]
pub struct Accumulator {
    choices: Vec<PartialChoice>,
    usage: Usage,
}

#[derive(Debug, Default)]
struct PartialChoice {
    content: String,
    has_content: bool,
    tool_calls: Vec<ToolCall>,
    finish_reason: Option<FinishReason>,
}

impl Accumulator {
    fn choice(&mut self, index: u32) -> &mut PartialChoice {
        let i = index as usize;
        if self.choices.len() <= i {
            self.choices.resize_with(i + 1, PartialChoice::default);
        }
        &mut self.choices[i]
    }

    pub fn push(&mut self, event: ChatEvent) {
        match event {
            ChatEvent::Role { index } => {
                self.choice(index);
            }
            ChatEvent::Text { index, text } => {
                let choice = self.choice(index);
                choice.content.push_str(&text);
                choice.has_content = true;
            }
            ChatEvent::ToolCall { index, call } => {
                let choice = self.choice(index);
                let i = call.index as usize;
                if choice.tool_calls.len() <= i {
                    choice.tool_calls.resize_with(i + 1, || ToolCall {
                        id: String::new(),
                        name: String::new(),
                        arguments: String::new(),
                    });
                }
                let slot = &mut choice.tool_calls[i];
                if let Some(id) = call.id {
                    slot.id = id;
                }
                if let Some(name) = call.name {
                    slot.name = name;
                }
                slot.arguments.push_str(&call.arguments);
            }
            // The chat-completions answer has no place for Claude's thinking.
            ChatEvent::Reasoning { .. } => {}
            ChatEvent::Finish { index, reason } => {
                self.choice(index).finish_reason = Some(reason);
            }
            ChatEvent::Usage(usage) => self.usage = usage,
        }
    }

    pub fn finish(self, meta: CompletionMeta) -> ChatCompletion {
        let choices = self
            .choices
            .into_iter()
            .enumerate()
            .map(|(i, c)| Choice {
                index: i as u32,
                content: (c.has_content || c.tool_calls.is_empty()).then_some(c.content),
                tool_calls: c.tool_calls,
                finish_reason: c.finish_reason.unwrap_or(FinishReason::Stop),
            })
            .collect();
        ChatCompletion {
            meta,
            choices,
            usage: self.usage,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accumulates_text_and_usage() {
        let mut acc = Accumulator::default();
        acc.push(ChatEvent::Role { index: 0 });
        acc.push(ChatEvent::Text {
            index: 0,
            text: "Hel".into(),
        });
        acc.push(ChatEvent::Text {
            index: 0,
            text: "lo".into(),
        });
        acc.push(ChatEvent::Finish {
            index: 0,
            reason: FinishReason::Length,
        });
        acc.push(ChatEvent::Usage(Usage {
            prompt_tokens: 3,
            completion_tokens: 2,
            ..Usage::default()
        }));
        let meta = CompletionMeta {
            id: "chatcmpl-1".into(),
            created: 1,
            model: "gpt-4o".into(),
            ignored_params: vec![],
        };
        let done = acc.finish(meta);
        assert_eq!(done.choices[0].content.as_deref(), Some("Hello"));
        assert_eq!(done.choices[0].finish_reason, FinishReason::Length);
        assert_eq!(done.usage.total_tokens(), 5);
    }
}
