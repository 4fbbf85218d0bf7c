//! The CLI's failures as gateway errors: an error `result` line (PROTOCOL.md §4.4, §10) mapped
//! onto `ChatError` by the API status it reports.

use crate::chat::ChatError;

use super::lines::ResultLine;

/// Maps an error `result` (PROTOCOL.md §4.4, §10) onto the gateway's error.
pub fn result_error(
    result: &ResultLine,
    last_retry: Option<(Option<u16>, Option<u64>)>,
) -> ChatError {
    let text = result
        .result
        .clone()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| result.errors.join("; "));
    let text = if text.is_empty() {
        format!("the turn ended with `{}`", result.subtype)
    } else {
        text
    };
    match result.api_error_status {
        Some(429) => ChatError::RateLimited {
            message: format!("Anthropic rate-limited the request: {text}"),
            retry_after: last_retry
                .filter(|(status, _)| *status == Some(429))
                .and_then(|(_, delay)| delay)
                .map(|ms| ms.div_ceil(1000).max(1)),
        },
        Some(status @ (401 | 403)) => upstream_auth(status.to_string(), &text),
        Some(529) => ChatError::Overloaded {
            message: format!("Anthropic is overloaded: {text}"),
        },
        Some(status) => ChatError::Upstream {
            message: format!("The Anthropic API failed (HTTP {status}): {text}"),
        },
        None if text.contains("Not logged in") || text.contains("/login") => {
            upstream_auth("no credentials".into(), &text)
        }
        None if result.terminal_reason.as_deref() == Some("api_error") => ChatError::Upstream {
            message: format!("The Anthropic API could not be reached: {text}"),
        },
        None => ChatError::cli_failed(format!(
            "The claude CLI ended the turn with an error ({}): {text}",
            result.subtype
        )),
    }
}

fn upstream_auth(status: String, text: &str) -> ChatError {
    ChatError::UpstreamAuth {
        message: format!(
            "The gateway's claude CLI is not authenticated with Anthropic ({status}: {text}). \
             The operator must log in with `claude` or set ANTHROPIC_API_KEY for the gateway."
        ),
    }
}
