//! `anthropic-beta` flags. Most change nothing a client of this gateway can see (Claude Code
//! sends half a dozen with every request; the CLI inside sends its own): they are passed over and
//! reported in `x-ignored-params` as `anthropic-beta:<name>`. A few switch on what the gateway
//! cannot give — server-side tools, Anthropic's file store, MCP servers reached by the API, a
//! larger context window — and a client sending one would rely on it: those are refused with a
//! 400 that names the beta and says why, before anything runs.

use axum::http::HeaderMap;

use crate::chat::ChatError;

/// Beta families (by name prefix; the date suffix changes) that cannot be honoured, and why.
const REFUSED: &[(&str, &str)] = &[
    (
        "mcp-client-",
        "MCP servers reached by the API (`mcp_servers`); Claude gets no network tools here",
    ),
    (
        "files-api-",
        "Anthropic's Files API; this gateway keeps no files (send the content inline)",
    ),
    (
        "code-execution-",
        "server-side code execution; client tools are returned to the caller, never run",
    ),
    (
        "computer-use-",
        "the computer-use tools; client tools are returned to the caller, never run",
    ),
    ("web-search-", "the server-side web search tool"),
    ("web-fetch-", "the server-side web fetch tool"),
    ("skills-", "Agent Skills in a code-execution container"),
    (
        "context-1m-",
        "the 1M-token context window, which the claude CLI does not switch on per request",
    ),
];

/// The betas of a request, each once, as `anthropic-beta:<name>` for `x-ignored-params`; a 400
/// naming the first one that cannot be honoured.
pub fn check(headers: &HeaderMap) -> Result<Vec<String>, ChatError> {
    let mut out: Vec<String> = Vec::new();
    let names = headers
        .get_all("anthropic-beta")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|b| !b.is_empty());
    for beta in names {
        if let Some((_, why)) = REFUSED.iter().find(|(prefix, _)| beta.starts_with(prefix)) {
            return Err(ChatError::invalid(
                format!(
                    "The beta `{beta}` enables {why}. This gateway runs Claude through the claude \
                     CLI and cannot honour it; send the request without this beta."
                ),
                "anthropic-beta",
            ));
        }
        let name = format!("anthropic-beta:{beta}");
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                "anthropic-beta",
                HeaderValue::from_str(v).expect("a header value"),
            );
        }
        h
    }

    #[test]
    fn claude_codes_betas_are_reported_once_each() {
        let got = check(&headers(&[
            "claude-code-20250219,interleaved-thinking-2025-05-14",
            " context-management-2025-06-27 , claude-code-20250219",
        ]))
        .expect("accepted");
        assert_eq!(
            got,
            [
                "anthropic-beta:claude-code-20250219",
                "anthropic-beta:interleaved-thinking-2025-05-14",
                "anthropic-beta:context-management-2025-06-27",
            ]
        );
    }

    #[test]
    fn a_beta_that_cannot_be_honoured_is_refused_by_name() {
        for beta in [
            "mcp-client-2025-04-04",
            "files-api-2025-04-14",
            "code-execution-2025-08-25",
            "context-1m-2025-08-07",
        ] {
            let err = check(&headers(&["claude-code-20250219", beta])).expect_err(beta);
            assert_eq!(err.param(), Some("anthropic-beta"));
            assert!(err.to_string().contains(beta), "{err}");
        }
    }
}
