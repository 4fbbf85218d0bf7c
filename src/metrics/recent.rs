//! The last requests and the last errors the HTTP API answered, for the dashboard: two small
//! bounded rings, filled by `track_http` when a response ends. Message-free on purpose: a route
//! template, a status, the error code, the model label, a duration and a time — never a path,
//! a prompt or an error message (those quote client text). Health, metrics and the dashboard's
//! own polling are left out, so the rings show traffic, not probes.

use std::collections::VecDeque;
use std::sync::{LazyLock, Mutex};

use serde::Serialize;

use crate::chat::ChatError;

/// Requests kept; errors kept (apart, so a burst of successes does not push errors out).
const MAX_REQUESTS: usize = 50;
const MAX_ERRORS: usize = 50;

/// The error code of a refused or failed response, put in its extensions by the error mappings.
#[derive(Debug, Clone)]
pub struct ErrorCode(pub String);

impl ErrorCode {
    /// The error's code, or its dialect's type (`kind`) when it has none.
    pub fn of(error: &ChatError, kind: &str) -> Self {
        ErrorCode(error.code().unwrap_or(kind).to_string())
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RecentRequest {
    /// Unix milliseconds when the response ended.
    pub at_ms: i64,
    pub method: String,
    pub route: String,
    pub model: String,
    pub status: u16,
    /// The error code, on a 4xx/5xx.
    pub code: Option<String>,
    pub duration_ms: u64,
}

#[derive(Default)]
struct Rings {
    requests: VecDeque<RecentRequest>,
    errors: VecDeque<RecentRequest>,
}

static RINGS: LazyLock<Mutex<Rings>> = LazyLock::new(Mutex::default);

/// Whether a request is traffic worth showing: not the gateway's own pages and probes, and not
/// a successful read of the operator's endpoints (the dashboard itself polls `/v1/usage` and
/// `/v1/budgets`; a refused one is still an error worth seeing).
pub fn shown(method: &str, route: &str, status: u16) -> bool {
    let operator_read = method == "GET"
        && status < 400
        && ["/v1/usage", "/v1/budgets", "/v1/quota"]
            .iter()
            .any(|p| route.starts_with(p));
    !operator_read
        && ![
            "/health",
            "/metrics",
            "/dashboard",
            "/docs",
            "/redoc",
            "/openapi.json",
        ]
        .iter()
        .any(|p| route.starts_with(p))
        && route != "/"
        && route != "unmatched"
}

/// Records a finished request (newest first).
pub fn record(entry: RecentRequest) {
    if !shown(&entry.method, &entry.route, entry.status) {
        return;
    }
    let Ok(mut rings) = RINGS.lock() else {
        return;
    };
    if entry.status >= 400 {
        push(&mut rings.errors, entry.clone(), MAX_ERRORS);
    }
    push(&mut rings.requests, entry, MAX_REQUESTS);
}

fn push(ring: &mut VecDeque<RecentRequest>, entry: RecentRequest, max: usize) {
    ring.push_front(entry);
    ring.truncate(max);
}

/// The recent requests and the recent errors, newest first.
pub fn snapshot() -> (Vec<RecentRequest>, Vec<RecentRequest>) {
    RINGS
        .lock()
        .map(|r| {
            (
                r.requests.iter().cloned().collect(),
                r.errors.iter().cloned().collect(),
            )
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(route: &str, status: u16) -> RecentRequest {
        RecentRequest {
            at_ms: 1,
            method: "POST".into(),
            route: route.into(),
            model: "m".into(),
            status,
            code: None,
            duration_ms: 3,
        }
    }

    #[test]
    fn rings_are_bounded_newest_first_and_skip_probes() {
        let mut ring = VecDeque::new();
        for i in 0..60 {
            push(&mut ring, entry(&format!("/v1/r{i}"), 200), 50);
        }
        assert_eq!(ring.len(), 50);
        assert_eq!(ring[0].route, "/v1/r59");
        assert!(!shown("GET", "/health/ready", 200));
        assert!(!shown("GET", "/dashboard/data", 200));
        assert!(shown("POST", "/v1/chat/completions", 200));
        assert!(!shown("GET", "/v1/usage", 200));
        assert!(!shown("GET", "/v1/budgets/{key}", 200));
        assert!(shown("GET", "/v1/usage", 403));
        assert!(shown("PUT", "/v1/budgets/{key}", 200));
    }
}
