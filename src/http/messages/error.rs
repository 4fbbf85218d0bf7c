//! Anthropic-shaped errors: the one mapping of `ChatError` to a status and a
//! `{"type":"error","error":{"type","message"},"request_id"}` body for this dialect (the access
//! guard's refusals included), and the JSON extractor whose rejections (malformed JSON, a
//! missing `max_tokens`, a body over the limit) get the same shape instead of OpenAI's.

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::chat::ChatError;

use super::super::error::{ApiError, OpenAiBytes, parse_json};

/// A `ChatError` on its way out of a Messages route.
#[derive(Debug)]
pub struct MessagesError(pub ChatError);

impl From<ChatError> for MessagesError {
    fn from(e: ChatError) -> Self {
        MessagesError(e)
    }
}

impl From<ApiError> for MessagesError {
    fn from(e: ApiError) -> Self {
        MessagesError(e.0)
    }
}

/// The HTTP status and Anthropic `error.type` of an error. Exhaustive: a new variant must be
/// placed.
pub fn status_and_type(err: &ChatError) -> (StatusCode, &'static str) {
    const OVERLOADED: u16 = 529;
    match err {
        ChatError::InvalidRequest { .. } => (StatusCode::BAD_REQUEST, "invalid_request_error"),
        ChatError::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "request_too_large"),
        ChatError::ModelNotFound { .. }
        | ChatError::SessionNotFound { .. }
        | ChatError::ResponseNotFound { .. } => (StatusCode::NOT_FOUND, "not_found_error"),
        ChatError::SessionConflict { .. } => (StatusCode::CONFLICT, "invalid_request_error"),
        ChatError::Unauthorized { .. } => (StatusCode::UNAUTHORIZED, "authentication_error"),
        ChatError::Forbidden { .. } => (StatusCode::FORBIDDEN, "permission_error"),
        ChatError::RateLimited { .. } | ChatError::QuotaExceeded { .. } => {
            (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error")
        }
        ChatError::Overloaded { .. } => (
            StatusCode::from_u16(OVERLOADED).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            "overloaded_error",
        ),
        ChatError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "overloaded_error"),
        ChatError::CliNotFound { .. } => (StatusCode::SERVICE_UNAVAILABLE, "api_error"),
        ChatError::UpstreamAuth { .. }
        | ChatError::Upstream { .. }
        | ChatError::CliFailed { .. } => (StatusCode::BAD_GATEWAY, "api_error"),
        ChatError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "api_error"),
        ChatError::Internal { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "api_error"),
        // Asking again does not help: a client error in kind, with 501 as its status.
        ChatError::NotImplemented { .. } => (StatusCode::NOT_IMPLEMENTED, "invalid_request_error"),
    }
}

/// The `error` object of `err` (also the payload of an in-stream `error` event).
pub fn error_json(err: &ChatError, request_id: Option<&str>) -> serde_json::Value {
    let (_, kind) = status_and_type(err);
    let mut body = json!({"type": "error", "error": {"type": kind, "message": err.to_string()}});
    if let Some(id) = request_id.filter(|id| !id.is_empty()) {
        body["request_id"] = json!(id);
    }
    body
}

impl IntoResponse for MessagesError {
    fn into_response(self) -> Response {
        let (status, kind) = status_and_type(&self.0);
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), error = %self.0, "request failed");
        } else {
            // A refusal's message quotes what the client sent: only at debug (STYLE.md habit 8).
            tracing::info!(
                status = status.as_u16(),
                code = self.0.code().unwrap_or("-"),
                "request refused"
            );
            tracing::debug!(error = %self.0, "request refused");
        }
        // `request_id` in the body and the `request-id` header come from the request-id layer
        // (`with_request_id`), which sees the id; here it is not known.
        let mut response = (status, axum::Json(error_json(&self.0, None))).into_response();
        // For the dashboard's recent errors (the code only: a message quotes the client).
        response
            .extensions_mut()
            .insert(crate::metrics::recent::ErrorCode::of(&self.0, kind));
        let headers = response.headers_mut();
        if let Some(secs) = self.0.retry_after()
            && let Ok(value) = HeaderValue::from_str(&secs.to_string())
        {
            headers.insert(header::RETRY_AFTER, value);
        }
        if let ChatError::NotImplemented { .. } | ChatError::QuotaExceeded { .. } = &self.0 {
            // The Anthropic SDKs retry every 5xx and 429 unless told not to: a 501 stays a 501,
            // and a spent budget stays spent until its window resets.
            headers.insert("x-should-retry", HeaderValue::from_static("false"));
        }
        response
    }
}

/// `axum::Json`, but every rejection is an Anthropic `invalid_request_error` (or
/// `request_too_large`) naming the offending field.
pub struct MessagesJson<T>(pub T);

impl<S, T> FromRequest<S> for MessagesJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = MessagesError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let OpenAiBytes(bytes) = OpenAiBytes::from_request(req, state).await?;
        parse_json(&bytes).map(MessagesJson).map_err(MessagesError)
    }
}

/// Whether the request is answered in this dialect (its errors are Anthropic-shaped): the
/// Messages routes, and the model routes when an Anthropic client asks (`anthropic-version`
/// or `?beta=true`, see `models::wants_anthropic`).
pub fn is_anthropic_request(request: &Request) -> bool {
    let path = request.uri().path();
    path == "/v1/messages"
        || path.starts_with("/v1/messages/")
        || ((path == "/v1/models" || path.starts_with("/v1/models/"))
            && super::models::wants_anthropic(request.headers(), request.uri().query()))
}

/// Middleware for the Anthropic-shaped routes: the request id also as Anthropic's `request-id`
/// header, and in the body of an error.
pub async fn with_request_id(request: Request, next: axum::middleware::Next) -> Response {
    if !is_anthropic_request(&request) {
        return next.run(request).await;
    }
    let id = request.headers().get("x-request-id").cloned();
    let mut response = next.run(request).await;
    let Some(id) = id else {
        return response;
    };
    let is_error_json = !response.status().is_success()
        && response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    response.headers_mut().insert("request-id", id.clone());
    if !is_error_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return (parts.status, parts.headers).into_response();
    };
    let body = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(mut value) if value["type"] == "error" => {
            value["request_id"] = json!(id.to_str().unwrap_or_default());
            axum::body::Body::from(value.to_string())
        }
        _ => axum::body::Body::from(bytes),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_types_are_anthropics() {
        let cases = [
            (ChatError::invalid("x", "p"), 400, "invalid_request_error"),
            (
                ChatError::Unauthorized {
                    message: "k".into(),
                },
                401,
                "authentication_error",
            ),
            (ChatError::model_not_found("m"), 404, "not_found_error"),
            (
                ChatError::PayloadTooLarge {
                    message: "b".into(),
                },
                413,
                "request_too_large",
            ),
            (
                ChatError::RateLimited {
                    message: "r".into(),
                    retry_after: Some(2),
                },
                429,
                "rate_limit_error",
            ),
            (ChatError::internal("i"), 500, "api_error"),
            (
                ChatError::Overloaded {
                    message: "o".into(),
                },
                529,
                "overloaded_error",
            ),
            (
                ChatError::Unavailable {
                    message: "u".into(),
                },
                503,
                "overloaded_error",
            ),
        ];
        for (err, status, kind) in cases {
            let (s, k) = status_and_type(&err);
            assert_eq!((s.as_u16(), k), (status, kind), "{err:?}");
            assert_eq!(
                error_json(&err, Some("req_1")),
                json!({"type": "error", "error": {"type": kind, "message": err.to_string()},
                       "request_id": "req_1"})
            );
        }
        let limited = MessagesError(ChatError::RateLimited {
            message: "r".into(),
            retry_after: Some(2),
        })
        .into_response();
        assert_eq!(limited.headers()[header::RETRY_AFTER], "2");
    }
}
