//! `POST /v1/responses`: converts the request, starts the backend, and drives the stream state
//! machine — into server-sent events with `stream: true`, into one `Response` object otherwise.
//! As for chat completions, a stream is committed (200) only once the backend produced its first
//! event, so refusals and failures to start are real HTTP statuses; a failure after that ends the
//! stream with `response.failed`.

use std::convert::Infallible;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::chat::ChatError;
use crate::chat::types::{ChatEvent, ResponseTurn};

use super::super::error::{ApiError, OpenAiJson};
use super::super::handlers::{AppState, request_context, set_ignored, shutting_down};
use super::convert::{self, Converted};
use super::stored::{Document, ShownReasoning, item_ids};
use super::stream::ResponseStream;
use super::types::{CreateResponseRequest, ResponseObject, StreamEvent, initial_response};
use crate::chat::Tenant;

#[utoipa::path(
    post,
    path = "/v1/responses",
    tag = "responses",
    summary = "Create a model response (OpenAI Responses API)",
    description = "Answers `input` (a string, or message, function_call and \
        function_call_output items) with Claude, whole (`application/json`, a `response` \
        object) or, with `stream: true`, as server-sent events: `response.created`, \
        `response.in_progress`, the output items with their deltas, and one of \
        `response.completed`, `response.incomplete` or `response.failed`. A streamed answer is \
        committed (200) only once Claude produced its first event. With `store` (default \
        true) the response is kept for the API key that made it, and `previous_response_id` \
        continues a stored one; `background` is refused with a 400.",
    request_body = CreateResponseRequest,
    responses(
        (
            status = 200,
            description = "The response, or with `stream: true` a stream of `event: <type>` / \
                `data: {event}` server-sent events, each with a `sequence_number`.",
            content(
                (ResponseObject = "application/json"),
                (StreamEvent = "text/event-stream"),
            ),
            headers((
                "x-ignored-params" = String,
                description = "Comma-separated request parameters that were accepted but not \
                    honoured (`temperature, truncation`); absent when there were none."
            )),
        ),
        super::super::docs::RequestErrors,
        super::super::docs::ServerErrors,
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    tenant: Tenant,
    headers: HeaderMap,
    OpenAiJson(body): OpenAiJson<CreateResponseRequest>,
) -> Result<Response, ApiError> {
    crate::metrics::note_model(&body.model);
    let ctx = request_context(&headers, tenant, crate::chat::Api::Responses);
    let Converted {
        mut request,
        stream,
        echo,
        store,
        previous_response_id,
        instructions,
        input,
        reasoning,
    } = convert::create_request(body, &state.reasoning_key)?;
    let id = crate::chat::affinity::continuing_id(previous_response_id.as_deref());
    let created_at = unix_now();
    let mut document = Document::new(
        echo.clone(),
        created_at,
        previous_response_id.clone(),
        input.as_ref(),
    );
    document.reasoning = ShownReasoning::of(&reasoning);
    request.response = Some(ResponseTurn {
        id: id.clone(),
        previous: previous_response_id.clone(),
        store,
        instructions,
        document: document.to_text(),
    });
    let started = tokio::select! {
        started = state.backend.stream(request, ctx) => started.map_err(in_dialect)?,
        () = state.abort.cancelled() => return Err(ApiError(shutting_down())),
    };
    let ignored = started.meta.ignored_params.clone();
    let mut response = initial_response(id.clone(), echo, created_at);
    response.previous_response_id = previous_response_id;
    response.store = store;
    let mut machine = ResponseStream::new(response, item_ids(&id)).with_reasoning(reasoning);
    let mut events = started.events;
    if !stream {
        let response = tokio::select! {
            response = whole(machine, events) => response?,
            () = state.abort.cancelled() => return Err(ApiError(shutting_down())),
        };
        let mut response = Json(response).into_response();
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
                None => machine.finish(unix_now()),
                Some(Ok(event)) => machine.push(event),
                Some(Err(err)) => {
                    tracing::warn!(error = %err, "response stream failed after it started");
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
    let mut response = Sse::new(body)
        .keep_alive(KeepAlive::default())
        .into_response();
    set_ignored(&mut response, &ignored);
    Ok(response)
}

/// The non-streaming answer: the same machine run to its end. A failure after the start is an
/// HTTP error, as for chat completions.
async fn whole(
    mut machine: ResponseStream,
    mut events: BoxStream<'static, Result<ChatEvent, ChatError>>,
) -> Result<ResponseObject, ApiError> {
    while let Some(event) = events.next().await {
        machine.push(event.map_err(in_dialect)?);
    }
    machine.finish(unix_now());
    Ok(machine.response().clone())
}

fn frame(event: &StreamEvent) -> Result<Event, Infallible> {
    let data = serde_json::to_string(event).unwrap_or_else(|_| "{}".into());
    Ok(Event::default().event(event.payload.kind()).data(data))
}

pub(super) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The domain's validation names chat-completions fields; a Responses client sent others.
pub(super) fn in_dialect(err: ChatError) -> ApiError {
    const RENAMES: &[(&str, &str)] = &[
        ("messages", "input"),
        ("max_tokens", "max_output_tokens"),
        ("reasoning_effort", "reasoning.effort"),
        ("response_format", "text.format"),
    ];
    ApiError(match err {
        ChatError::InvalidRequest {
            mut message,
            param,
            code,
        } => {
            let param = param.map(|p| {
                RENAMES
                    .iter()
                    .find_map(|(from, to)| {
                        // Message indices do not match input items: name the input only.
                        let rest = p.strip_prefix(from)?;
                        Some(if *from == "messages" {
                            (*to).to_string()
                        } else {
                            format!("{to}{rest}")
                        })
                    })
                    .unwrap_or(p)
            });
            for (from, to) in RENAMES {
                message = message.replace(&format!("`{from}"), &format!("`{to}"));
            }
            ChatError::InvalidRequest {
                message,
                param,
                code,
            }
        }
        other => other,
    })
}
