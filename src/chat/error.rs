//! The one error type of the gateway. Every failure a client can see is a `ChatError`; it maps
//! once to an OpenAI error body with an HTTP status (`http/error.rs`) and once to a gRPC status
//! (`grpc/error.rs`). Messages are written for the API user: what was wrong, the limit, what was
//! sent.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChatError {
    /// The request is malformed or asks for something impossible (400).
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<String>,
        code: Option<String>,
    },
    /// The request body is larger than the configured limit (413).
    #[error("{message}")]
    PayloadTooLarge { message: String },
    /// The model id is not in the model map and is not a Claude id (404).
    #[error("{message}")]
    ModelNotFound { message: String },
    /// The session does not exist or has expired (404).
    #[error("{message}")]
    SessionNotFound { message: String },
    /// The stored response does not exist, was deleted, expired, was not stored
    /// (`store: false`), or is another tenant's (404). `param` names the field that named it
    /// (`previous_response_id`), if one did.
    #[error("{message}")]
    ResponseNotFound {
        message: String,
        param: Option<String>,
    },
    /// Another turn changed the session first (409).
    #[error("{message}")]
    SessionConflict { message: String },
    /// The client sent no gateway API key, or a wrong one (401).
    #[error("{message}")]
    Unauthorized { message: String },
    /// The key is known but may not do this: an admin-only route asked by a user key (403).
    #[error("{message}")]
    Forbidden { message: String },
    /// The key has spent one of its budgets (429 `insufficient_quota`); `retry_after` is the
    /// seconds until that budget's window resets.
    #[error("{message}")]
    QuotaExceeded {
        message: String,
        retry_after: Option<u64>,
    },
    /// The `claude` binary cannot be started (503).
    #[error("{message}")]
    CliNotFound { message: String },
    /// Anthropic rate-limited the CLI (429).
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: Option<u64>,
    },
    /// Anthropic rejected the gateway's own credentials (502: the client did nothing wrong).
    #[error("{message}")]
    UpstreamAuth { message: String },
    /// Anthropic is overloaded (503).
    #[error("{message}")]
    Overloaded { message: String },
    /// Any other failure of the Anthropic API (502).
    #[error("{message}")]
    Upstream { message: String },
    /// The CLI crashed, exited early or printed something unusable (502).
    #[error("{message}")]
    CliFailed { message: String },
    /// The request ran out of time (504).
    #[error("{message}")]
    Timeout { message: String },
    /// The gateway cannot take the request now: a remote worker is unreachable (503).
    #[error("{message}")]
    Unavailable { message: String },
    /// A bug or an unexpected local failure (500).
    #[error("{message}")]
    Internal { message: String },
    /// An operation this backend does not offer, and why (501; gRPC `UNIMPLEMENTED`). Asking
    /// again does not help.
    #[error("{message}")]
    NotImplemented { message: String },
}

/// The broad class of an error, which each protocol names in its own way (OpenAI's `type`,
/// the `error-type` gRPC trailer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The client sent something wrong (or nothing it may send).
    InvalidRequest,
    /// The client, or the gateway on its behalf, is sending too much.
    RateLimit,
    /// The gateway or Claude failed; the client did nothing wrong.
    Server,
}

impl ErrorKind {
    /// OpenAI's `error.type` of this kind (also the gRPC `error-type` trailer).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request_error",
            ErrorKind::RateLimit => "rate_limit_error",
            ErrorKind::Server => "server_error",
        }
    }
}

impl ChatError {
    /// The class of this error. Exhaustive: a new variant must be placed.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ChatError::InvalidRequest { .. }
            | ChatError::PayloadTooLarge { .. }
            | ChatError::ModelNotFound { .. }
            | ChatError::SessionNotFound { .. }
            | ChatError::ResponseNotFound { .. }
            | ChatError::SessionConflict { .. }
            | ChatError::Unauthorized { .. }
            | ChatError::Forbidden { .. }
            | ChatError::NotImplemented { .. } => ErrorKind::InvalidRequest,
            ChatError::RateLimited { .. } | ChatError::QuotaExceeded { .. } => ErrorKind::RateLimit,
            ChatError::CliNotFound { .. }
            | ChatError::UpstreamAuth { .. }
            | ChatError::Overloaded { .. }
            | ChatError::Upstream { .. }
            | ChatError::CliFailed { .. }
            | ChatError::Timeout { .. }
            | ChatError::Unavailable { .. }
            | ChatError::Internal { .. } => ErrorKind::Server,
        }
    }

    pub fn invalid(message: impl Into<String>, param: impl Into<String>) -> Self {
        ChatError::InvalidRequest {
            message: message.into(),
            param: Some(param.into()),
            code: None,
        }
    }

    pub fn invalid_with_code(
        message: impl Into<String>,
        param: impl Into<String>,
        code: &str,
    ) -> Self {
        ChatError::InvalidRequest {
            message: message.into(),
            param: Some(param.into()),
            code: Some(code.to_string()),
        }
    }

    /// A parameter this gateway cannot honour (`unsupported_parameter`), named in `param`.
    pub fn unsupported(message: impl Into<String>, param: impl Into<String>) -> Self {
        ChatError::invalid_with_code(message, param, "unsupported_parameter")
    }

    pub fn model_not_found(model: &str) -> Self {
        ChatError::ModelNotFound {
            message: format!(
                "The model `{model}` does not exist. Use an id from GET /v1/models, a CLI alias \
                 (sonnet, haiku, opus) or a Claude model id (claude-…)."
            ),
        }
    }

    pub fn cli_not_found(path: &str, detail: &str) -> Self {
        ChatError::CliNotFound {
            message: format!(
                "The claude CLI could not be started ({path}: {detail}). Install it with \
                 `npm install -g @anthropic-ai/claude-code`, log in with `claude` (or set \
                 ANTHROPIC_API_KEY), or point --claude-bin / CLAUDE_BIN at it."
            ),
        }
    }

    /// No stored response `id` for the caller; `param` names the field that named it.
    pub fn response_not_found(id: &str, param: Option<&str>) -> Self {
        ChatError::ResponseNotFound {
            message: format!(
                "No response with id `{id}` (it was never stored, was deleted or expired, or \
                 was created with `store: false`)."
            ),
            param: param.map(str::to_string),
        }
    }

    pub fn timeout(after: Duration) -> Self {
        ChatError::Timeout {
            message: format!("The request timed out after {} s.", after.as_secs_f64()),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ChatError::Internal {
            message: message.into(),
        }
    }

    pub fn cli_failed(message: impl Into<String>) -> Self {
        ChatError::CliFailed {
            message: message.into(),
        }
    }

    /// The stable machine-readable code of this error (OpenAI's `error.code`).
    pub fn code(&self) -> Option<&str> {
        match self {
            ChatError::InvalidRequest { code, .. } => code.as_deref(),
            ChatError::PayloadTooLarge { .. } => Some("payload_too_large"),
            ChatError::ModelNotFound { .. } => Some("model_not_found"),
            ChatError::SessionNotFound { .. } => Some("session_not_found"),
            ChatError::ResponseNotFound { .. } => Some("response_not_found"),
            ChatError::SessionConflict { .. } => Some("session_conflict"),
            ChatError::Unauthorized { .. } => Some("invalid_api_key"),
            ChatError::Forbidden { .. } => Some("permission_denied"),
            ChatError::QuotaExceeded { .. } => Some("insufficient_quota"),
            ChatError::CliNotFound { .. } => Some("cli_not_found"),
            ChatError::RateLimited { .. } => Some("rate_limit_exceeded"),
            ChatError::UpstreamAuth { .. } => Some("upstream_auth_failed"),
            ChatError::Overloaded { .. } => Some("overloaded"),
            ChatError::Upstream { .. } => Some("upstream_error"),
            ChatError::CliFailed { .. } => Some("cli_failed"),
            ChatError::Timeout { .. } => Some("timeout"),
            ChatError::Unavailable { .. } => Some("unavailable"),
            ChatError::Internal { .. } => Some("internal_error"),
            ChatError::NotImplemented { .. } => Some("not_implemented"),
        }
    }

    /// Seconds the client should wait before asking again, when the error says.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ChatError::RateLimited { retry_after, .. }
            | ChatError::QuotaExceeded { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The request field the error is about (OpenAI's `error.param`).
    pub fn param(&self) -> Option<&str> {
        match self {
            ChatError::InvalidRequest { param, .. } => param.as_deref(),
            ChatError::ModelNotFound { .. } => Some("model"),
            ChatError::ResponseNotFound { param, .. } => param.as_deref(),
            ChatError::SessionNotFound { .. } | ChatError::SessionConflict { .. } => {
                Some("session_id")
            }
            ChatError::PayloadTooLarge { .. }
            | ChatError::Unauthorized { .. }
            | ChatError::Forbidden { .. }
            | ChatError::QuotaExceeded { .. }
            | ChatError::CliNotFound { .. }
            | ChatError::RateLimited { .. }
            | ChatError::UpstreamAuth { .. }
            | ChatError::Overloaded { .. }
            | ChatError::Upstream { .. }
            | ChatError::CliFailed { .. }
            | ChatError::Timeout { .. }
            | ChatError::Unavailable { .. }
            | ChatError::Internal { .. }
            | ChatError::NotImplemented { .. } => None,
        }
    }

    /// Rebuilds an error from its code and message (the inverse of `code()`), as a remote
    /// worker's status arrives over gRPC. `None` when the code is not one of ours.
    pub fn from_parts(
        code: Option<&str>,
        message: String,
        retry_after: Option<u64>,
    ) -> Option<Self> {
        Some(match code {
            Some("payload_too_large") => ChatError::PayloadTooLarge { message },
            Some("model_not_found") => ChatError::ModelNotFound { message },
            Some("session_not_found") => ChatError::SessionNotFound { message },
            Some("response_not_found") => ChatError::ResponseNotFound {
                message,
                param: None,
            },
            Some("session_conflict") => ChatError::SessionConflict { message },
            Some("invalid_api_key") => ChatError::Unauthorized { message },
            Some("permission_denied") => ChatError::Forbidden { message },
            Some("insufficient_quota") => ChatError::QuotaExceeded {
                message,
                retry_after,
            },
            Some("cli_not_found") => ChatError::CliNotFound { message },
            Some("rate_limit_exceeded") => ChatError::RateLimited {
                message,
                retry_after,
            },
            Some("upstream_auth_failed") => ChatError::UpstreamAuth { message },
            Some("overloaded") => ChatError::Overloaded { message },
            Some("upstream_error") => ChatError::Upstream { message },
            Some("cli_failed") => ChatError::CliFailed { message },
            Some("timeout") => ChatError::Timeout { message },
            Some("unavailable") => ChatError::Unavailable { message },
            Some("internal_error") => ChatError::Internal { message },
            Some("not_implemented") => ChatError::NotImplemented { message },
            _ => return None,
        })
    }
}
