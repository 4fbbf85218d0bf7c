//! OpenAI-shaped errors over HTTP: the one mapping of `ChatError` to a status and an
//! `{"error":{"message","type","param","code"}}` body, plus the JSON body extractor that turns
//! malformed or mistyped bodies into the same shape instead of axum's plain-text rejections.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::chat::ChatError;

use super::openai::{ErrorBody, ErrorResponse};

/// A `ChatError` on its way out as an HTTP response.
#[derive(Debug)]
pub struct ApiError(pub ChatError);

impl From<ChatError> for ApiError {
    fn from(e: ChatError) -> Self {
        ApiError(e)
    }
}

/// The HTTP status and OpenAI `type` of an error. Exhaustive: a new variant must be placed.
pub fn status_and_type(err: &ChatError) -> (StatusCode, &'static str) {
    let status = match err {
        ChatError::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
        ChatError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        ChatError::ModelNotFound { .. }
        | ChatError::SessionNotFound { .. }
        | ChatError::ResponseNotFound { .. } => StatusCode::NOT_FOUND,
        ChatError::SessionConflict { .. } => StatusCode::CONFLICT,
        ChatError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
        ChatError::Forbidden { .. } => StatusCode::FORBIDDEN,
        ChatError::RateLimited { .. } | ChatError::QuotaExceeded { .. } => {
            StatusCode::TOO_MANY_REQUESTS
        }
        ChatError::UpstreamAuth { .. }
        | ChatError::Upstream { .. }
        | ChatError::CliFailed { .. } => StatusCode::BAD_GATEWAY,
        ChatError::CliNotFound { .. }
        | ChatError::Overloaded { .. }
        | ChatError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        ChatError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        ChatError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        ChatError::NotImplemented { .. } => StatusCode::NOT_IMPLEMENTED,
    };
    // OpenAI names a spent quota by its own type as well as its code.
    let kind = match err {
        ChatError::QuotaExceeded { .. } => "insufficient_quota",
        _ => err.kind().as_str(),
    };
    (status, kind)
}

/// The OpenAI error body of `err`.
pub fn error_body(err: &ChatError) -> ErrorResponse {
    let (_, kind) = status_and_type(err);
    ErrorResponse {
        error: ErrorBody {
            message: err.to_string(),
            kind,
            param: err.param().map(str::to_string),
            code: err.code().map(str::to_string),
        },
    }
}

impl IntoResponse for ApiError {
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
        let mut response = (status, axum::Json(error_body(&self.0))).into_response();
        // For the dashboard's recent errors (the code only: a message quotes the client).
        response
            .extensions_mut()
            .insert(crate::metrics::recent::ErrorCode::of(&self.0, kind));
        if let Some(secs) = self.0.retry_after()
            && let Ok(value) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if let ChatError::NotImplemented { .. } | ChatError::QuotaExceeded { .. } = &self.0 {
            // The OpenAI SDKs retry every 5xx and 429 unless told not to: a 501 stays a 501, and
            // a spent budget stays spent until its window resets.
            response
                .headers_mut()
                .insert("x-should-retry", HeaderValue::from_static("false"));
        }
        if let ChatError::Unauthorized { .. } = &self.0 {
            // RFC 6750: a 401 names the scheme the client should use.
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// `axum::Json`, but every rejection is an OpenAI error naming the offending field.
pub struct OpenAiJson<T>(pub T);

impl<S, T> FromRequest<S> for OpenAiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let OpenAiBytes(bytes) = OpenAiBytes::from_request(req, state).await?;
        parse_json(&bytes).map(OpenAiJson).map_err(ApiError)
    }
}

/// The raw body, with the body-size limit (413) and read failures in OpenAI's shape.
pub struct OpenAiBytes(pub axum::body::Bytes);

impl<S> FromRequest<S> for OpenAiBytes
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::body::Bytes::from_request(req, state)
            .await
            .map(OpenAiBytes)
            .map_err(|e| {
                ApiError(if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ChatError::PayloadTooLarge {
                        message: format!(
                            "The request body is larger than this gateway accepts ({e}); send \
                             smaller images or fewer messages."
                        ),
                    }
                } else {
                    ChatError::InvalidRequest {
                        message: format!("Could not read the request body: {e}"),
                        param: None,
                        code: None,
                    }
                })
            })
    }
}

/// Query parameters, with malformed ones reported in OpenAI's shape.
pub struct OpenAiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for OpenAiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| OpenAiQuery(q.0))
            .map_err(|e| {
                ApiError(ChatError::InvalidRequest {
                    message: format!("Invalid query parameters: {}", e.body_text()),
                    param: None,
                    code: None,
                })
            })
    }
}

/// Deserializes `bytes`, reporting syntax errors and the path of type errors.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ChatError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ChatError::InvalidRequest {
                message: format!(
                    "We could not parse the JSON body of your request ({inner}). The body must \
                     be a JSON object."
                ),
                param: None,
                code: Some("invalid_json".into()),
            };
        }
        let detail = strip_position(&inner.to_string());
        if path == "." || path.is_empty() {
            // A missing top-level field: serde names it in the message.
            let param = missing_field(&detail);
            ChatError::InvalidRequest {
                message: format!("Invalid request body: {detail}."),
                param,
                code: None,
            }
        } else {
            ChatError::InvalidRequest {
                message: format!("Invalid value for `{path}`: {detail}."),
                param: Some(path),
                code: None,
            }
        }
    })
}

fn strip_position(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn missing_field(detail: &str) -> Option<String> {
    let rest = detail.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        model: String,
        max_tokens: Option<u32>,
    }

    #[test]
    fn syntax_errors_and_field_errors_are_named() {
        let e = parse_json::<Body>(b"{not json").unwrap_err();
        assert_eq!(e.code(), Some("invalid_json"));
        let e = parse_json::<Body>(b"{}").unwrap_err();
        assert_eq!(e.param(), Some("model"));
        let e = parse_json::<Body>(br#"{"model":"x","max_tokens":"lots"}"#).unwrap_err();
        assert_eq!(e.param(), Some("max_tokens"));
        assert!(e.to_string().contains("invalid type"), "{e}");
    }

    #[test]
    fn every_error_has_a_status_and_type() {
        let err = ChatError::RateLimited {
            message: "slow down".into(),
            retry_after: Some(3),
        };
        let response = ApiError(err).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        let (status, _) = status_and_type(&ChatError::UpstreamAuth {
            message: String::new(),
        });
        assert_eq!(status, StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn not_implemented_is_a_501_the_sdks_do_not_retry() {
        let err = ChatError::NotImplemented {
            message: "no count".into(),
        };
        assert_eq!(
            error_body(&err).error.code.as_deref(),
            Some("not_implemented")
        );
        let response = ApiError(err).into_response();
        assert_eq!(response.status(), StatusCode::NOT_IMPLEMENTED);
        assert_eq!(response.headers()["x-should-retry"], "false");
        let other = ApiError(ChatError::internal("x")).into_response();
        assert!(other.headers().get("x-should-retry").is_none());
    }

    #[test]
    fn a_spent_budget_is_openais_insufficient_quota_and_not_retried() {
        let err = ChatError::QuotaExceeded {
            message: "The usd/day budget is spent".into(),
            retry_after: Some(60),
        };
        let body = error_body(&err).error;
        assert_eq!(
            (body.kind, body.code.as_deref()),
            ("insufficient_quota", Some("insufficient_quota"))
        );
        let response = ApiError(err).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "60");
        assert_eq!(response.headers()["x-should-retry"], "false");
        let back = ChatError::from_parts(Some("insufficient_quota"), "m".into(), Some(60));
        assert!(matches!(
            back,
            Some(ChatError::QuotaExceeded {
                retry_after: Some(60),
                ..
            })
        ));
    }
}
