//! The HTTP routes: chat completions (whole or streamed as SSE), models, health and the index.
//! Handlers only convert: OpenAI JSON to the domain request, the backend's answer back to OpenAI
//! JSON. A streamed answer is committed (200) only once the backend produced its first event.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::json;

use crate::chat::models::ModelInfo;
use crate::chat::{Api, ChatBackend, ChatError, RequestContext, Tenant};

use super::convert;
use super::error::{ApiError, OpenAiJson};
use super::openai;
use super::sse::ChunkTranscoder;

#[derive(Clone)]
pub struct AppState {
    pub backend: Arc<dyn ChatBackend>,
    pub sessions: Arc<dyn crate::sessions::SessionApi>,
    pub responses: Arc<dyn crate::sessions::ResponseApi>,
    /// When the process started (Unix seconds): the `created` of every model.
    pub started: i64,
    /// Cancelled when the shutdown grace period is over: what is still running ends with an
    /// error (a final in-stream event when streaming).
    pub abort: tokio_util::sync::CancellationToken,
    /// Cancelled as soon as shutdown begins: `/health/ready` answers 503 from then on.
    pub draining: tokio_util::sync::CancellationToken,
    /// Seals and opens the thinking in Responses reasoning items (`--reasoning-key-file`).
    pub reasoning_key: super::responses::seal::SealKey,
    /// The usage ledger and budgets (`/v1/usage`, `/v1/budgets`), when `--usage-ledger` is on.
    pub ledger: Option<Arc<crate::usage::Ledger>>,
}

pub(crate) fn shutting_down() -> ChatError {
    ChatError::Unavailable {
        message: "The gateway is shutting down; this answer was cut short.".into(),
    }
}

pub const IGNORED_PARAMS_HEADER: &str = "x-ignored-params";

pub(crate) fn request_context(headers: &HeaderMap, tenant: Tenant, api: Api) -> RequestContext {
    RequestContext {
        tenant,
        api,
        forwarded: false,
        request_id: headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
        session: None,
    }
}

#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    tag = "chat",
    summary = "Create a chat completion",
    description = "Answers the conversation with Claude, whole (`application/json`) or, with \
        `stream: true`, as server-sent events (`text/event-stream`). A streamed answer is \
        committed (200) only once Claude produced its first event: refusals and failures before \
        that are real error statuses. Naming a session (`session_id`, or the `x-session-id` \
        header) runs the turn on its stored history and appends the turn to it on success.",
    params((
        "x-session-id" = Option<String>, Header,
        description = "A session to continue, as the body's `session_id` (the body wins)."
    )),
    request_body = openai::ChatCompletionRequest,
    responses(
        (
            status = 200,
            description = "The answer: a `chat.completion`, or with `stream: true` a stream of \
                `data: {chat.completion.chunk}` events ended by `data: [DONE]`.",
            content(
                (openai::ChatCompletion = "application/json"),
                (openai::ChatCompletionChunk = "text/event-stream"),
            ),
            headers((
                "x-ignored-params" = String,
                description = "Comma-separated request parameters that were accepted but not \
                    honoured (`temperature, seed`); absent when there were none."
            )),
        ),
        super::docs::RequestErrors,
        super::docs::ServerErrors,
    ),
)]
pub async fn chat_completions(
    State(state): State<AppState>,
    tenant: Tenant,
    headers: HeaderMap,
    OpenAiJson(body): OpenAiJson<openai::ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    crate::metrics::note_model(&body.model);
    let ctx = request_context(&headers, tenant, Api::ChatCompletions);
    let session = headers
        .get("x-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (request, mode) = convert::chat_request(body, session)?;
    if !mode.stream {
        let completion = tokio::select! {
            completion = state.backend.complete(request, ctx) => completion?,
            () = state.abort.cancelled() => return Err(ApiError(shutting_down())),
        };
        let ignored = completion.meta.ignored_params.clone();
        let mut response =
            Json(convert::completion(completion, mode.legacy_functions)).into_response();
        set_ignored(&mut response, &ignored);
        return Ok(response);
    }
    let stream = state.backend.stream(request, ctx).await?;
    let ignored = stream.meta.ignored_params.clone();
    let mut transcoder = ChunkTranscoder::new(stream.meta, mode.include_usage)
        .legacy_functions(mode.legacy_functions);
    let mut events = stream.events;
    let abort = state.abort.clone();
    let body = async_stream::stream! {
        loop {
            let item = tokio::select! {
                item = events.next() => item,
                () = abort.cancelled() => Some(Err(shutting_down())),
            };
            let Some(item) = item else { break };
            match item {
                Ok(event) => {
                    if let Some(data) = transcoder.push(event) {
                        yield Ok::<_, Infallible>(Event::default().data(data));
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "stream failed after it started");
                    yield Ok(Event::default().data(transcoder.error(&err)));
                    break;
                }
            }
        }
        yield Ok(Event::default().data("[DONE]"));
    };
    let mut response = Sse::new(body)
        .keep_alive(KeepAlive::default())
        .into_response();
    set_ignored(&mut response, &ignored);
    Ok(response)
}

pub(crate) fn set_ignored(response: &mut Response, ignored: &[String]) {
    if ignored.is_empty() {
        return;
    }
    if let Ok(value) = HeaderValue::from_str(&ignored.join(", ")) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(IGNORED_PARAMS_HEADER), value);
    }
}

fn model_json(m: ModelInfo, created: i64) -> openai::Model {
    openai::Model {
        id: m.id,
        object: "model",
        created,
        owned_by: "anthropic",
    }
}

#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "models",
    summary = "List the model ids",
    description = "The model table: OpenAI ids and the Claude aliases (`--model-map` changes \
        it). Any `claude-*` id is accepted too, without being listed. A request with an \
        `anthropic-version` header or `?beta=true` (an Anthropic client) gets Anthropic's list \
        shape instead (`data[]` of `type: model` with `id`, `display_name`, `created_at`; \
        `has_more`, `first_id`, `last_id`), with the `claude-*` ids only.",
    responses(
        (status = 200, description = "The model ids clients may send.", body = openai::ModelList),
        super::docs::ServerErrors,
    ),
)]
pub async fn list_models(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let models = state.backend.list_models().await?;
    if super::messages::models::wants_anthropic(&headers, query.as_deref()) {
        let list = super::messages::models::anthropic_list(&models, state.started);
        return Ok(Json(list).into_response());
    }
    Ok(Json(openai::ModelList {
        object: "list",
        data: models
            .into_iter()
            .map(|m| model_json(m, state.started))
            .collect(),
    })
    .into_response())
}

#[utoipa::path(
    get,
    path = "/v1/models/{id}",
    tag = "models",
    summary = "Describe one model id",
    description = "OpenAI's model object; with an `anthropic-version` header or `?beta=true`, \
        Anthropic's (`type: model`, `id`, `display_name`, `created_at`), its errors in \
        Anthropic's shape.",
    params(("id" = String, Path, description = "A model id, e.g. `gpt-4o` or `sonnet`.")),
    responses(
        (status = 200, description = "The model.", body = openai::Model),
        super::docs::ModelNotFound,
        super::docs::ServerErrors,
    ),
)]
pub async fn get_model(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    use super::messages::{error::MessagesError, models};
    let anthropic = models::wants_anthropic(&headers, query.as_deref());
    match state.backend.get_model(&id).await {
        Ok(_) if anthropic => Json(models::anthropic_model(&id, state.started)).into_response(),
        Ok(model) => Json(model_json(model, state.started)).into_response(),
        Err(err) if anthropic => MessagesError(err).into_response(),
        Err(err) => ApiError::from(err).into_response(),
    }
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "service",
    summary = "Whether the gateway can answer",
    responses(
        (status = 200, description = "Ready.", body = super::docs::schemas::Health),
        (
            status = 503,
            description = "Not ready: the CLI is missing or the remote worker does not answer.",
            body = super::docs::schemas::Health,
        ),
    ),
)]
pub async fn health(State(state): State<AppState>) -> Response {
    let health = state.backend.health().await;
    let status = if health.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if health.ready { "ok" } else { "unavailable" },
        "version": env!("CARGO_PKG_VERSION"),
        "cli": health.cli,
        "upstream": health.upstream,
        "warm_processes": health.warm_processes,
    });
    (status, Json(body)).into_response()
}

/// Liveness: the process is up and answering; 200 whatever the CLI's state.
#[utoipa::path(
    get,
    path = "/health/live",
    tag = "service",
    summary = "Whether the process is up (liveness)",
    description = "200 for as long as the process answers, whatever the CLI's state: restart \
        the gateway only when this fails.",
    responses((status = 200, description = "Alive.", body = super::docs::schemas::Live)),
)]
pub async fn health_live() -> Json<serde_json::Value> {
    Json(json!({ "status": "alive" }))
}

/// Readiness: 200 when completions can be served now; 503 with the reasons while the CLI is
/// missing (or the remote worker is not serving) or the gateway is draining for shutdown.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "service",
    summary = "Whether completions can be served now (readiness)",
    description = "503 while the CLI is missing, the `--upstream` worker is not serving, or the \
        gateway is draining after SIGTERM (for `--shutdown-delay-secs`, so load balancers stop \
        sending first).",
    responses(
        (status = 200, description = "Ready.", body = super::docs::schemas::Ready),
        (
            status = 503,
            description = "Not ready, with the reasons.",
            body = super::docs::schemas::NotReady,
        ),
    ),
)]
pub async fn health_ready(State(state): State<AppState>) -> Response {
    let mut reasons = Vec::new();
    if state.draining.is_cancelled() {
        reasons.push("draining: the gateway is shutting down".to_string());
    }
    let health = state.backend.health().await;
    if !health.ready {
        reasons.push(match (&health.cli, &health.upstream) {
            (Some(cli), _) => format!(
                "claude CLI not usable: {}",
                cli.error.as_deref().unwrap_or("no version")
            ),
            (None, Some(upstream)) => format!("upstream not serving: {upstream}"),
            (None, None) => "backend not ready".to_string(),
        });
    }
    // The account's usage windows are details: a spent window is not unreadiness (other
    // gateways may run on other accounts), but a balancer or a person may want to see it.
    let quota = crate::chat::quota::board().snapshot();
    let mut body = if reasons.is_empty() {
        json!({ "status": "ready" })
    } else {
        json!({ "status": "not_ready", "reasons": reasons })
    };
    if !quota.is_empty() {
        body["quota"] = json!(quota);
    }
    if reasons.is_empty() {
        return Json(body).into_response();
    }
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

#[utoipa::path(
    get,
    path = "/",
    tag = "service",
    summary = "The service's name, version and endpoints",
    responses((status = 200, description = "The index.", body = super::docs::schemas::Index)),
)]
pub async fn index() -> Json<serde_json::Value> {
    Json(json!({
        "name": "claude-gateway",
        "version": env!("CARGO_PKG_VERSION"),
        "description": "OpenAI-compatible API for Claude, driving the claude CLI",
        "endpoints": [
            "POST /v1/chat/completions",
            "POST /v1/responses",
            "GET /v1/responses/{response_id}",
            "DELETE /v1/responses/{response_id}",
            "GET /v1/responses/{response_id}/input_items",
            "POST /v1/responses/input_tokens",
            "POST /v1/messages",
            "POST /v1/messages/count_tokens",
            "GET /v1/models",
            "GET /v1/models/{id}",
            "POST /v1/sessions",
            "GET /v1/sessions",
            "GET /v1/sessions/{id}",
            "DELETE /v1/sessions/{id}",
            "POST /v1/sessions/{id}/clear",
            "GET /v1/usage",
            "GET /v1/budgets",
            "GET /v1/budgets/{key}",
            "PUT /v1/budgets/{key}",
            "DELETE /v1/budgets/{key}",
            "GET /v1/quota",
            "GET /health",
            "GET /health/live",
            "GET /health/ready",
            "GET /metrics",
            "GET /",
            "GET /openapi.json",
            "GET /docs",
            "GET /redoc",
        ],
        "grpc_services": [
            "claude_gateway.v1.ChatService",
            "claude_gateway.v1.ModelService",
            "claude_gateway.v1.SessionService",
            "claude_gateway.v1.ResponseService",
            "grpc.health.v1.Health",
        ],
    }))
}

/// An OpenAI-shaped error for a request no route takes: 404 for an unknown path, 405 for a
/// known path with the wrong method.
pub fn no_route(status: StatusCode) -> Response {
    let message = if status == StatusCode::METHOD_NOT_ALLOWED {
        "This route does not take that method. See GET / for the endpoints this gateway serves."
    } else {
        "Unknown route. See GET / for the endpoints this gateway serves."
    };
    let mut response = ApiError(ChatError::InvalidRequest {
        message: message.into(),
        param: None,
        code: Some("unknown_url".into()),
    })
    .into_response();
    *response.status_mut() = status;
    response
}
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    summary = "Prometheus metrics",
    description = "Every family is prefixed `claude_gateway_`: requests, their durations and \
        statuses by route and model (HTTP) or method and code (gRPC), in-flight requests, \
        processes by state and queued requests, time to first token, process start-up, tokens \
        and cost.",
    responses((
        status = 200,
        description = "The metrics, in the Prometheus text format 0.0.4 (with `; \
            charset=utf-8`).",
        content_type = "text/plain; version=0.0.4",
        body = super::docs::schemas::Metrics,
    )),
)]
pub async fn metrics() -> Response {
    crate::metrics::serve().await
}
