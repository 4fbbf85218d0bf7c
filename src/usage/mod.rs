//! The usage ledger and per-key budgets. Every completed request, on every API (chat
//! completions, the Responses API, the Messages API, gRPC), becomes one row: who (the tenant of
//! its key), which API and model, tokens in, out and cached, Claude's reported cost
//! (`total_cost_usd`), duration, time to the first event, and how it ended (`ok`, the error
//! code, or `cancelled`). Rows go to the session store's database (`usage` table, schema 4).
//!
//! - `ledger`: `LedgerBackend`, the `ChatBackend` decorator that checks budgets before a run and
//!   observes each run's stream, and the writer task. Rows go through a bounded channel and are
//!   written in batches off the request path; a full channel drops the row (counted), never
//!   waits.
//! - `budget`: budgets (requests, tokens, USD per UTC day and month), pure.
//! - `store`: the SQL of both backends.
//! - `time`: UTC calendar arithmetic and the times `/v1/usage` accepts.
//!
//! The HTTP side (`GET /v1/usage`, `/v1/budgets…`, the `x-budget-*` headers) is `http::usage`.

pub mod budget;
mod ledger;
pub mod store;
pub mod time;

pub use ledger::{Ledger, LedgerBackend, LedgerConfig, now_ms as ledger_now_ms};

/// One completed request, as the ledger stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow {
    /// When it ended, Unix milliseconds.
    pub ts_ms: i64,
    pub tenant: String,
    pub api: &'static str,
    pub model: String,
    /// `ok`, the error's code (`cli_failed`, `timeout`, …), or `cancelled`.
    pub status: String,
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub cached_input_tokens: u32,
    pub cost_usd: f64,
    pub duration_ms: i64,
    /// Time to the first event, when there was one.
    pub ttft_ms: Option<i64>,
}

/// What `/v1/usage` can group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Key,
    Model,
    Day,
    Api,
    Status,
}

impl GroupBy {
    pub const ALL: [GroupBy; 5] = [
        GroupBy::Key,
        GroupBy::Model,
        GroupBy::Day,
        GroupBy::Api,
        GroupBy::Status,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Key => "key",
            GroupBy::Model => "model",
            GroupBy::Day => "day",
            GroupBy::Api => "api",
            GroupBy::Status => "status",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        GroupBy::ALL.into_iter().find(|g| g.as_str() == text)
    }
}

/// A question to the ledger: `[from, to)` in Unix seconds, one tenant's rows or everyone's.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageQuery {
    pub from: i64,
    pub to: i64,
    pub tenant: Option<String>,
    pub group_by: Vec<GroupBy>,
}

/// One group's sums.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    /// The group's value of each `group_by` field, in its order.
    pub keys: Vec<(GroupBy, String)>,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_input_tokens: i64,
    pub cost_usd: f64,
    pub duration_ms: i64,
    /// Over the rows that had a first event.
    pub ttft_ms_avg: Option<i64>,
}
