//! The one mapping of `ChatError` to a gRPC status and back. The status code is what generic
//! gRPC clients see; trailers carry the OpenAI fields (`error-type`, `error-code`,
//! `error-param`, `retry-after`) so a façade in front of a remote worker rebuilds the exact
//! error.

use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

use crate::chat::ChatError;

fn code_of(err: &ChatError) -> Code {
    match err {
        ChatError::InvalidRequest { .. } => Code::InvalidArgument,
        ChatError::PayloadTooLarge { .. } => Code::InvalidArgument,
        ChatError::ModelNotFound { .. } => Code::NotFound,
        ChatError::SessionNotFound { .. } => Code::NotFound,
        ChatError::ResponseNotFound { .. } => Code::NotFound,
        ChatError::SessionConflict { .. } => Code::Aborted,
        ChatError::Unauthorized { .. } => Code::Unauthenticated,
        ChatError::Forbidden { .. } => Code::PermissionDenied,
        ChatError::QuotaExceeded { .. } => Code::ResourceExhausted,
        ChatError::CliNotFound { .. } => Code::Unavailable,
        ChatError::RateLimited { .. } => Code::ResourceExhausted,
        ChatError::UpstreamAuth { .. } => Code::Internal,
        ChatError::Overloaded { .. } => Code::Unavailable,
        ChatError::Upstream { .. } => Code::Internal,
        ChatError::CliFailed { .. } => Code::Internal,
        ChatError::Timeout { .. } => Code::DeadlineExceeded,
        ChatError::Unavailable { .. } => Code::Unavailable,
        ChatError::Internal { .. } => Code::Internal,
        ChatError::NotImplemented { .. } => Code::Unimplemented,
    }
}

/// Bytes of a status message or `error-param` sent back: they travel in the trailers, and a
/// client's header-list limit (16 KiB in grpc-go and hyper) turns a longer one into a transport
/// error instead of the status. Messages quote what the client sent, which can be any size.
const MAX_STATUS_TEXT_BYTES: usize = 2048;

fn capped(text: String) -> String {
    if text.len() <= MAX_STATUS_TEXT_BYTES {
        return text;
    }
    let mut end = MAX_STATUS_TEXT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

pub fn to_status(err: &ChatError) -> Status {
    let mut status = Status::new(code_of(err), capped(err.to_string()));
    let md = status.metadata_mut();
    md.insert(
        "error-type",
        MetadataValue::from_static(err.kind().as_str()),
    );
    if let Some(code) = err.code().and_then(|c| c.parse().ok()) {
        md.insert("error-code", code);
    }
    if let Some(param) = err
        .param()
        .filter(|p| p.len() <= MAX_STATUS_TEXT_BYTES)
        .and_then(|p| p.parse().ok())
    {
        md.insert("error-param", param);
    }
    if let Some(secs) = err.retry_after() {
        md.insert("retry-after", MetadataValue::from(secs));
    }
    status
}

pub fn from_status(status: &Status) -> ChatError {
    let md = status.metadata();
    let get = |k: &str| md.get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
    let message = status.message().to_string();
    let code = get("error-code");
    let param = get("error-param");
    let retry_after = get("retry-after").and_then(|v| v.parse().ok());
    if status.code() == Code::InvalidArgument && code.as_deref() != Some("payload_too_large") {
        return ChatError::InvalidRequest {
            message,
            param,
            code,
        };
    }
    if code.as_deref() == Some("response_not_found") {
        return ChatError::ResponseNotFound { message, param };
    }
    if let Some(err) = ChatError::from_parts(code.as_deref(), message.clone(), retry_after) {
        return err;
    }
    // Not one of ours: a transport failure or a status from something in between.
    match status.code() {
        Code::Unavailable | Code::Cancelled | Code::Unknown => ChatError::Unavailable {
            message: format!("The upstream gateway is unreachable: {message}"),
        },
        Code::DeadlineExceeded => ChatError::Timeout { message },
        Code::ResourceExhausted => ChatError::RateLimited {
            message,
            retry_after,
        },
        Code::NotFound => ChatError::ModelNotFound { message },
        Code::Unauthenticated => ChatError::Unauthorized { message },
        // A worker too old to have the method answers this without our trailers.
        Code::Unimplemented => ChatError::NotImplemented {
            message: format!("The upstream gateway does not offer this: {message}"),
        },
        _ => ChatError::Internal {
            message: format!("upstream gateway: {message}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_round_trips() {
        let errors = [
            ChatError::invalid("bad", "messages[0]"),
            ChatError::InvalidRequest {
                message: "x".into(),
                param: None,
                code: Some("invalid_json".into()),
            },
            ChatError::PayloadTooLarge {
                message: "big".into(),
            },
            ChatError::model_not_found("gpt-9"),
            ChatError::SessionNotFound {
                message: "s".into(),
            },
            ChatError::response_not_found("resp_1", Some("previous_response_id")),
            ChatError::response_not_found("resp_2", None),
            ChatError::SessionConflict {
                message: "c".into(),
            },
            ChatError::Unauthorized {
                message: "k".into(),
            },
            ChatError::cli_not_found("claude", "not found"),
            ChatError::RateLimited {
                message: "slow".into(),
                retry_after: Some(4),
            },
            ChatError::UpstreamAuth {
                message: "a".into(),
            },
            ChatError::Overloaded {
                message: "o".into(),
            },
            ChatError::Upstream {
                message: "u".into(),
            },
            ChatError::cli_failed("c"),
            ChatError::timeout(std::time::Duration::from_secs(3)),
            ChatError::Unavailable {
                message: "n".into(),
            },
            ChatError::internal("i"),
            ChatError::NotImplemented {
                message: "no".into(),
            },
        ];
        for err in errors {
            assert_eq!(from_status(&to_status(&err)), err);
        }
    }

    #[test]
    fn foreign_statuses_are_mapped_by_code() {
        let err = from_status(&Status::unavailable("connection refused"));
        assert_eq!(err.code(), Some("unavailable"));
    }
}
