//! `POST /v1/messages` and `POST /v1/messages/count_tokens`: convert the request, call the
//! backend, and drive the stream state machine — into server-sent events with `stream: true`,
//! into one message otherwise. As for the other dialects, a stream is committed (200) only once
//! the backend produced its first event, so refusals and failures to start are real statuses in
//! Anthropic's error shape; a failure after that ends the stream with an `error` event. While
//! Claude is silent the stream carries Anthropic's `ping` events (axum's keep-alive).

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::Serialize;
use utoipa::ToSchema;

use crate::chat::types::ChatEvent;
use crate::chat::{ChatError, Tenant};

use super::super::handlers::{AppState, request_context, set_ignored, shutting_down};
use super::betas;
use super::convert::{self, Converted};
use super::error::{MessagesError, MessagesJson};
use super::stream::{MessageStream, SseEvent};
use super::types::{CountTokensRequest, MessagesRequest};

/// How often a silent stream gets a `ping`.
const PING_EVERY: Duration = Duration::from_secs(10);

#[utoipa::path(
    post,
    path = "/v1/messages",
    operation_id = "create_message",
    tag = "messages",
    summary = "Create a message (Anthropic Messages API)",
    description = "Answers `messages` with Claude in Anthropic's own format, whole (a `message` \
        object) or, with `stream: true`, as Anthropic's server-sent events: `message_start`, \
        `content_block_start` / `content_block_delta` / `content_block_stop` per block, \
        `message_delta`, `message_stop` (`ping` while Claude is silent, `error` on a failure \
        after the first event). The gateway's own API keys are accepted in `x-api-key` as in \
        `Authorization: Bearer`. Errors are Anthropic-shaped \
        (`{\"type\":\"error\",\"error\":{\"type\",\"message\"}}`).",
    request_body = MessagesRequest,
    responses(
        (
            status = 200,
            description = "The message, or with `stream: true` a stream of `event: <type>` / \
                `data: {event}` server-sent events.",
            content(("application/json"), ("text/event-stream")),
            headers((
                "x-ignored-params" = String,
                description = "Comma-separated request parameters that were accepted but not \
                    honoured (`temperature, top_k`); absent when there were none."
            )),
        ),
        (status = 400, description = "`invalid_request_error`."),
        (status = 401, description = "`authentication_error`."),
        (status = 429, description = "`rate_limit_error`, with `retry-after`."),
        (status = 529, description = "`overloaded_error`."),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    tenant: Tenant,
    headers: HeaderMap,
    MessagesJson(body): MessagesJson<MessagesRequest>,
) -> Result<Response, MessagesError> {
    crate::metrics::note_model(&body.model);
    let ctx = request_context(&headers, tenant, crate::chat::Api::Messages);
    let betas = betas::check(&headers).map_err(MessagesError)?;
    let Converted {
        request,
        stream,
        thinking,
    } = convert::create_request(body).map_err(in_dialect)?;
    let model = request.model.clone();
    let stops = request.stop.clone();
    let started = tokio::select! {
        started = state.backend.stream(request, ctx) => started.map_err(in_dialect)?,
        () = state.abort.cancelled() => return Err(MessagesError(shutting_down())),
    };
    let mut ignored = started.meta.ignored_params.clone();
    ignored.extend(betas);
    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    let mut machine = MessageStream::new(id, model, thinking, stops);
    let mut events = started.events;
    if !stream {
        let message = tokio::select! {
            message = whole(machine, events) => message?,
            () = state.abort.cancelled() => return Err(MessagesError(shutting_down())),
        };
        let mut response = Json(message).into_response();
        set_ignored(&mut response, &ignored);
        return Ok(response);
    }
    let abort = state.abort.clone();
    let body = async_stream::stream! {
        for event in machine.start() {
            yield frame(&event);
        }
        loop {
            let item = tokio::select! {
                item = events.next() => item,
                () = abort.cancelled() => Some(Err(shutting_down())),
            };
            let out = match item {
                None => machine.finish(),
                Some(Ok(event)) => machine.push(event),
                Some(Err(err)) => {
                    tracing::warn!(error = %err, "message stream failed after it started");
                    machine.fail(&err)
                }
            };
            for event in out {
                yield frame(&event);
            }
            if machine.ended() {
                break;
            }
        }
    };
    let ping = Event::default().event("ping").data(r#"{"type": "ping"}"#);
    let mut response = Sse::new(body)
        .keep_alive(KeepAlive::new().interval(PING_EVERY).event(ping))
        .into_response();
    set_ignored(&mut response, &ignored);
    Ok(response)
}

/// The non-streaming answer: the same machine run to its end; a failure is an HTTP error.
async fn whole(
    mut machine: MessageStream,
    mut events: BoxStream<'static, Result<ChatEvent, ChatError>>,
) -> Result<serde_json::Value, MessagesError> {
    while let Some(event) = events.next().await {
        machine.push(event.map_err(in_dialect)?);
    }
    machine.finish();
    Ok(machine.message())
}

fn frame(event: &SseEvent) -> Result<Event, Infallible> {
    Ok(Event::default()
        .event(event.name)
        .data(event.data.to_string()))
}

/// Anthropic's `{"input_tokens": N}`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TokenCount {
    /// The input tokens the request would cost.
    pub input_tokens: u64,
}

#[utoipa::path(
    post,
    path = "/v1/messages/count_tokens",
    operation_id = "count_message_tokens",
    tag = "messages",
    summary = "Count the input tokens of a message request (Anthropic Messages API)",
    description = "Takes the body of `POST /v1/messages` (`max_tokens` not needed) and answers \
        `{\"input_tokens\": N}` when the backend can count exactly. The claude CLI cannot (its \
        only count is a context-window estimate), so a valid request is answered 501 with an \
        Anthropic-shaped error saying why, never a guess; an invalid one gets the same 400 as \
        `POST /v1/messages`.",
    request_body = CountTokensRequest,
    responses(
        (status = 200, description = "The count.", body = TokenCount),
        (status = 400, description = "`invalid_request_error`."),
        (status = 501, description = "The backend cannot count exactly."),
    ),
)]
pub async fn count_tokens(
    State(state): State<AppState>,
    tenant: Tenant,
    headers: HeaderMap,
    MessagesJson(body): MessagesJson<CountTokensRequest>,
) -> Result<Json<TokenCount>, MessagesError> {
    crate::metrics::note_model(&body.model);
    let ctx = request_context(&headers, tenant, crate::chat::Api::Messages);
    betas::check(&headers).map_err(MessagesError)?;
    let Converted {
        request,
        stream: _,
        thinking: _,
    } = convert::create_request(body.into()).map_err(in_dialect)?;
    let input_tokens = tokio::select! {
        count = state.backend.count_input_tokens(request, ctx) => count.map_err(in_dialect)?,
        () = state.abort.cancelled() => return Err(MessagesError(shutting_down())),
    };
    Ok(Json(TokenCount { input_tokens }))
}

/// The domain's validation names chat-completions fields; a Messages client sent others.
fn in_dialect(err: ChatError) -> MessagesError {
    const RENAMES: &[(&str, &str)] = &[
        ("`stop`", "`stop_sequences`"),
        ("`reasoning_effort`", "`thinking`"),
        ("`max_completion_tokens`", "`max_tokens`"),
        ("`thinking_budget_tokens`", "`thinking.budget_tokens`"),
    ];
    MessagesError(match err {
        ChatError::InvalidRequest {
            mut message,
            param,
            code,
        } => {
            for (from, to) in RENAMES {
                message = message.replace(from, to);
            }
            let param = param.map(|p| {
                if p == "thinking_budget_tokens" {
                    "thinking.budget_tokens".to_string()
                } else {
                    p
                }
            });
            ChatError::InvalidRequest {
                message,
                param,
                code,
            }
        }
        other => other,
    })
}
