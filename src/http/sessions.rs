//! The session routes of the HTTP API (`/v1/sessions…`), over the `SessionApi` (local store,
//! or a remote worker's over gRPC). Sessions are continued by naming them in a chat request
//! (`session_id` in the body or the `x-session-id` header).
//!
//! Every route acts for the caller's `Tenant` (from its API key): it sees and changes only its own
//! sessions, another tenant's being a 404 `session_not_found` like a missing one; admin keys
//! reach all.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::chat::Tenant;
use crate::chat::message_json::message_to_json;
use crate::sessions::{NewSession, PageRequest, Session, SessionSummary};

use super::error::{ApiError, OpenAiBytes, OpenAiQuery, parse_json};
use super::handlers::AppState;

#[derive(Debug, Default, Deserialize)]
pub struct CreateSession {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// The session's system prompt (`system` is accepted too, as the seed had it).
    #[serde(default, alias = "system")]
    pub system_prompt: Option<String>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    pub limit: Option<usize>,
    pub after: Option<String>,
}

fn summary_json(s: &SessionSummary) -> Value {
    json!({
        "id": s.id,
        "object": "session",
        "model": s.model,
        "system_prompt": s.system,
        "metadata": s.metadata,
        "created": s.created_at,
        "updated": s.updated_at,
        "message_count": s.message_count,
    })
}

fn session_json(s: &Session) -> Value {
    json!({
        "id": s.id,
        "object": "session",
        "model": s.model,
        "system_prompt": s.system,
        "metadata": s.metadata,
        "created": s.created_at,
        "updated": s.updated_at,
        "message_count": s.history.len(),
        "messages": s.history.iter().map(message_to_json).collect::<Vec<_>>(),
    })
}

#[utoipa::path(
    post,
    path = "/v1/sessions",
    tag = "sessions",
    operation_id = "create_session",
    summary = "Create a session",
    description = "Creates an empty session, owned by the API key's tenant. The body is \
        optional: without one (or with `{}`) \
        the session gets a generated id and no model, system prompt or metadata.",
    request_body(
        content = Option<super::docs::schemas::CreateSession>,
        content_type = "application/json",
        description = "The session's id, model, system prompt and metadata, all optional.",
    ),
    responses(
        (
            status = 201,
            description = "The new session, with an empty history.",
            body = super::docs::schemas::Session,
        ),
        super::docs::CreateSessionErrors,
        super::docs::SessionServerErrors,
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    tenant: Tenant,
    OpenAiBytes(body): OpenAiBytes,
) -> Result<Response, ApiError> {
    // The body is optional: an empty POST creates a session with a generated id.
    let CreateSession {
        id,
        model,
        system_prompt,
        metadata,
    } = if body.iter().all(u8::is_ascii_whitespace) {
        CreateSession::default()
    } else {
        parse_json(&body)?
    };
    let session = state
        .sessions
        .create(
            &tenant,
            NewSession {
                id: id.filter(|i| !i.is_empty()),
                model: model.filter(|m| !m.is_empty()),
                system: system_prompt.filter(|s| !s.is_empty()),
                metadata: metadata.unwrap_or_default(),
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(session_json(&session))).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/sessions",
    tag = "sessions",
    operation_id = "list_sessions",
    summary = "List the sessions",
    description = "The caller's live sessions (an admin key's: every tenant's), oldest first \
        (by creation time, then id), a page at a time: pass a page's `next_after` as `after` to \
        get the next one.",
    params(
        (
            "limit" = Option<usize>, Query,
            description = "Sessions per page: 20 when absent, clamped to 1…1000.",
        ),
        (
            "after" = Option<String>, Query,
            description = "The id of the last session of the previous page (its `next_after`).",
        ),
    ),
    responses(
        (
            status = 200,
            description = "One page of sessions.",
            body = super::docs::schemas::SessionList,
        ),
        super::docs::ListSessionsErrors,
        super::docs::SessionServerErrors,
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    tenant: Tenant,
    OpenAiQuery(q): OpenAiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let page = state
        .sessions
        .list(
            &tenant,
            PageRequest {
                limit: q.limit.unwrap_or(20),
                after: q.after.filter(|a| !a.is_empty()),
            },
        )
        .await?;
    Ok(Json(json!({
        "object": "list",
        "data": page.items.iter().map(summary_json).collect::<Vec<_>>(),
        "has_more": page.has_more,
        "next_after": page.next,
    })))
}

#[utoipa::path(
    get,
    path = "/v1/sessions/{id}",
    tag = "sessions",
    operation_id = "get_session",
    summary = "Get a session and its history",
    params(("id" = String, Path, description = "The session's id.")),
    responses(
        (
            status = 200,
            description = "The session, with its history as OpenAI messages.",
            body = super::docs::schemas::Session,
        ),
        super::docs::SessionNotFound,
        super::docs::SessionServerErrors,
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let session = state.sessions.get(&tenant, &id).await?;
    Ok(Json(session_json(&session)))
}

#[utoipa::path(
    delete,
    path = "/v1/sessions/{id}",
    tag = "sessions",
    operation_id = "delete_session",
    summary = "Delete a session",
    description = "Deletes the session and its history, on every replica sharing the store.",
    params(("id" = String, Path, description = "The session's id.")),
    responses(
        (status = 200, description = "Deleted.", body = super::docs::schemas::SessionDeleted),
        super::docs::SessionNotFound,
        super::docs::SessionServerErrors,
    ),
)]
pub async fn delete(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.sessions.delete(&tenant, &id).await?;
    Ok(Json(
        json!({"id": id, "object": "session.deleted", "deleted": true}),
    ))
}

#[utoipa::path(
    post,
    path = "/v1/sessions/{id}/clear",
    tag = "sessions",
    operation_id = "clear_session",
    summary = "Clear a session's history",
    description = "Empties the history and keeps the session (id, model, system prompt, \
        metadata). Waits for a turn running on it on this replica to finish first.",
    params(("id" = String, Path, description = "The session's id.")),
    responses(
        (
            status = 200,
            description = "The session, with an empty history.",
            body = super::docs::schemas::Session,
        ),
        super::docs::SessionNotFound,
        super::docs::SessionServerErrors,
    ),
)]
pub async fn clear(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.sessions.clear(&tenant, &id).await?;
    let session = state.sessions.get(&tenant, &id).await?;
    Ok(Json(session_json(&session)))
}
