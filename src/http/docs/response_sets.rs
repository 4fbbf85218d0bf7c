//! The response sets the API's operations share (`#[utoipa::path(responses(...))]`): the
//! refusals of a request, the failures behind the gateway, the session routes' errors. A leaf
//! module, so each handler names its responses without the document knowing the handlers.

use utoipa::IntoResponses;

use crate::http::openai::ErrorResponse;

/// Refusals of a chat request.
#[derive(IntoResponses)]
pub enum RequestErrors {
    /// Malformed JSON (`invalid_json`), a missing or mistyped field (named in `param`), a value
    /// out of range, a feature Claude lacks (`unsupported_parameter`,
    /// `unsupported_content_type`), or `n` above 1 in a session.
    #[response(status = 400, example = json!({"error": {
        "message": "`messages[0].role` is required.", "type": "invalid_request_error",
        "param": "messages[0].role", "code": null}}))]
    BadRequest(ErrorResponse),
    /// The model id is neither in the model table nor a Claude id (`model_not_found`), or the
    /// `session_id` names no live session of the caller's tenant (`session_not_found`).
    #[response(status = 404, example = json!({"error": {
        "message": "The model `gpt-9` does not exist.", "type": "invalid_request_error",
        "param": "model", "code": "model_not_found"}}))]
    ModelNotFound(ErrorResponse),
    /// Another replica appended a turn to the session while this one ran (`session_conflict`);
    /// nothing was stored, send it again.
    #[response(status = 409, example = json!({"error": {
        "message": "Another turn changed session `ada-1` first (its history had 4 messages, \
            this turn was computed on 2); nothing was stored. Send it again.",
        "type": "invalid_request_error", "param": "session_id", "code": "session_conflict"}}))]
    SessionConflict(ErrorResponse),
    /// The body is larger than `--max-body-bytes` (`payload_too_large`).
    #[response(status = 413)]
    PayloadTooLarge(ErrorResponse),
    /// Claude rate-limited the gateway, or every process is busy and the queue is full
    /// (`rate_limit_exceeded`, with `Retry-After` when the wait is known).
    #[response(
        status = 429,
        headers(("Retry-After" = u64, description = "Seconds to wait, when known.")),
    )]
    RateLimited(ErrorResponse),
}

/// Failures behind the gateway, each with its `code`.
#[derive(IntoResponses)]
pub enum ServerErrors {
    /// An unexpected local failure (`internal_error`).
    #[response(status = 500)]
    Internal(ErrorResponse),
    /// The gateway's Claude credentials were rejected (`upstream_auth_failed`), another Anthropic
    /// API failure (`upstream_error`), or the CLI crashed or exited early (`cli_failed`).
    #[response(status = 502)]
    BadGateway(ErrorResponse),
    /// Claude is overloaded (`overloaded`), the CLI is not installed (`cli_not_found`), or the
    /// remote worker is unreachable (`unavailable`).
    #[response(status = 503)]
    Unavailable(ErrorResponse),
    /// `--request-timeout-secs` reached (`timeout`).
    #[response(status = 504)]
    Timeout(ErrorResponse),
}

/// Refusals of `POST /v1/sessions`.
#[derive(IntoResponses)]
pub enum CreateSessionErrors {
    /// Malformed JSON (`invalid_json`), a mistyped field (named in `param`), an `id` that is not
    /// up to 128 letters, digits, `_`, `-` or `.`, or the `id` of a live session, whichever
    /// tenant owns it (`session_exists`: ids are one namespace).
    #[response(status = 400, example = json!({"error": {
        "message": "A session `ada-1` already exists.", "type": "invalid_request_error",
        "param": "id", "code": "session_exists"}}))]
    BadRequest(ErrorResponse),
}

/// Refusals of `GET /v1/sessions`.
#[derive(IntoResponses)]
pub enum ListSessionsErrors {
    /// `after` names no live session of the caller's tenant (`param: after`).
    #[response(status = 400, example = json!({"error": {
        "message": "The cursor `after=ada-9` names no session.", "type": "invalid_request_error",
        "param": "after", "code": null}}))]
    BadRequest(ErrorResponse),
}

/// A session route's `{id}` that names no live session.
#[derive(IntoResponses)]
pub enum SessionNotFound {
    /// The session never existed, was deleted, expired after `--session-ttl-secs` idle, or
    /// belongs to another tenant than the API key's (`session_not_found`; the same answer).
    #[response(status = 404, example = json!({"error": {
        "message": "No session `ada-1` (it never existed, was deleted, or expired).",
        "type": "invalid_request_error", "param": "session_id", "code": "session_not_found"}}))]
    NotFound(ErrorResponse),
}

/// A `/v1/responses/{id}` route's `{id}` that names no stored response.
#[derive(IntoResponses)]
pub enum ResponseNotFound {
    /// The response was never stored (`store: false`), was deleted, expired with its chain
    /// after `--session-ttl-secs` idle, or belongs to another API key's tenant
    /// (`response_not_found`; the same answer).
    #[response(status = 404, example = json!({"error": {
        "message": "No response with id `resp_1` (it was never stored, was deleted or \
            expired, or was created with `store: false`).",
        "type": "invalid_request_error", "param": null, "code": "response_not_found"}}))]
    NotFound(ErrorResponse),
}

/// Failures of the session store, or of the worker that keeps it.
#[derive(IntoResponses)]
pub enum SessionServerErrors {
    /// The session store failed (`internal_error`).
    #[response(status = 500)]
    Internal(ErrorResponse),
    /// In front of a worker (`--upstream`): the worker refused this gateway's key
    /// (`upstream_auth_failed`).
    #[response(status = 502)]
    BadGateway(ErrorResponse),
    /// In front of a worker (`--upstream`): the worker is unreachable (`unavailable`).
    #[response(status = 503)]
    Unavailable(ErrorResponse),
}

/// `GET /v1/models/{id}` of an id the gateway does not take.
#[derive(IntoResponses)]
pub enum ModelNotFound {
    /// Unknown model id (`model_not_found`).
    #[response(status = 404)]
    NotFound(ErrorResponse),
}
