//! The session routes of the HTTP API (`/v1/sessions…`), over the `SessionApi` (local store,
//! or a remote worker's over gRPC). Sessions are continued by naming them in a chat request
//! (`session_id` in the body or the `x-session-id` header).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::sessions::{NewSession, PageRequest, Session, SessionSummary};

use super::error::{ApiError, parse_json};
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
        "messages": s.history,
    })
}

pub async fn create(
    State(state): State<AppState>,
    body: axum::body::Bytes,
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
        .create(NewSession {
            id: id.filter(|i| !i.is_empty()),
            model: model.filter(|m| !m.is_empty()),
            system: system_prompt.filter(|s| !s.is_empty()),
            metadata: metadata.unwrap_or_default(),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(session_json(&session))).into_response())
}

pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let page = state
        .sessions
        .list(PageRequest {
            limit: q.limit.unwrap_or(20),
            after: q.after.filter(|a| !a.is_empty()),
        })
        .await?;
    Ok(Json(json!({
        "object": "list",
        "data": page.items.iter().map(summary_json).collect::<Vec<_>>(),
        "has_more": page.has_more,
        "next_after": page.next,
    })))
}

pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let session = state.sessions.get(&id).await?;
    Ok(Json(session_json(&session)))
}

pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.sessions.delete(&id).await?;
    Ok(Json(
        json!({"id": id, "object": "session.deleted", "deleted": true}),
    ))
}

pub async fn clear(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.sessions.clear(&id).await?;
    let session = state.sessions.get(&id).await?;
    Ok(Json(session_json(&session)))
}
