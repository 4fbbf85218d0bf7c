//! Per-key budgets: requests, tokens (in + out) and USD (Claude's reported cost) per UTC day and
//! per UTC calendar month. A budget comes from the key file (`budget.requests.day=100`) or from
//! the admin API (stored, overriding the file's for that key, metric and window). Pure: the
//! spend is read by `Ledger::status`, and what is decided from it lives here.
//!
//! A key is over a budget once what it used in the window reaches the limit: the request that
//! would start then is refused with `QuotaExceeded` (429 `insufficient_quota`), naming the
//! budget and when its window resets. Tokens and cost are known only after a request ran, so the
//! last request admitted under a budget may end past it.

use crate::chat::ChatError;

use super::time::{day_bounds, month_bounds};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    Requests,
    Tokens,
    Usd,
}

impl Metric {
    pub const ALL: [Metric; 3] = [Metric::Requests, Metric::Tokens, Metric::Usd];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Requests => "requests",
            Metric::Tokens => "tokens",
            Metric::Usd => "usd",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Metric::ALL.into_iter().find(|m| m.as_str() == text)
    }

    /// How the metric reads in a sentence: "100 requests", "1000000 tokens", "$5.00".
    fn amount(self, value: f64) -> String {
        match self {
            Metric::Requests => format!("{value} requests"),
            Metric::Tokens => format!("{value} tokens"),
            Metric::Usd => format!("${value:.2}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Window {
    Day,
    Month,
}

impl Window {
    pub const ALL: [Window; 2] = [Window::Day, Window::Month];

    pub fn as_str(self) -> &'static str {
        match self {
            Window::Day => "day",
            Window::Month => "month",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Window::ALL.into_iter().find(|w| w.as_str() == text)
    }

    /// The window `now_ms` falls in, `[start, end)` in Unix milliseconds.
    pub fn bounds(self, now_ms: i64) -> (i64, i64) {
        match self {
            Window::Day => day_bounds(now_ms),
            Window::Month => month_bounds(now_ms),
        }
    }
}

/// One limit of one key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub metric: Metric,
    pub window: Window,
    pub limit: f64,
}

impl Budget {
    /// A limit as given: finite and not negative (0 refuses everything).
    pub fn new(metric: Metric, window: Window, limit: f64) -> Result<Self, String> {
        if !limit.is_finite() || limit < 0.0 {
            return Err(format!(
                "the {} per {} budget must be a number of at least 0, not {limit}",
                metric.as_str(),
                window.as_str()
            ));
        }
        Ok(Budget {
            metric,
            window,
            limit,
        })
    }

    /// A key file field: `budget.<requests|tokens|usd>.<day|month>=<limit>`. `None` when the
    /// field is not a budget at all.
    pub fn from_field(name: &str, value: &str) -> Option<Result<Self, String>> {
        let rest = name.strip_prefix("budget.")?;
        let parsed = (|| {
            let (metric, window) = rest.split_once('.').ok_or_else(|| {
                format!("`{name}` is not budget.<requests|tokens|usd>.<day|month>")
            })?;
            let metric = Metric::parse(metric)
                .ok_or_else(|| format!("`{name}`: the metric is requests, tokens or usd"))?;
            let window = Window::parse(window)
                .ok_or_else(|| format!("`{name}`: the window is day or month"))?;
            let limit = value
                .parse::<f64>()
                .map_err(|_| format!("`{name}` must be a number, not `{value}`"))?;
            Budget::new(metric, window, limit)
        })();
        Some(parsed)
    }
}

/// `overrides` replace `base`'s budgets of the same metric and window; the result is in metric,
/// then window order.
pub fn merge(base: &[Budget], overrides: &[Budget]) -> Vec<Budget> {
    let mut merged: Vec<Budget> = base
        .iter()
        .filter(|b| {
            !overrides
                .iter()
                .any(|o| o.metric == b.metric && o.window == b.window)
        })
        .chain(overrides)
        .copied()
        .collect();
    merged.sort_by_key(|b| (b.metric, b.window));
    merged.dedup_by_key(|b| (b.metric, b.window));
    merged
}

/// What a key used in the current day and month.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spend {
    pub day: Totals,
    pub month: Totals,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub requests: f64,
    pub tokens: f64,
    pub usd: f64,
}

impl Totals {
    pub fn get(&self, metric: Metric) -> f64 {
        match metric {
            Metric::Requests => self.requests,
            Metric::Tokens => self.tokens,
            Metric::Usd => self.usd,
        }
    }

    pub fn add(&mut self, other: &Totals) {
        self.requests += other.requests;
        self.tokens += other.tokens;
        self.usd += other.usd;
    }
}

impl Spend {
    pub fn used(&self, window: Window) -> &Totals {
        match window {
            Window::Day => &self.day,
            Window::Month => &self.month,
        }
    }
}

/// A budget with what is used of it now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetState {
    pub budget: Budget,
    pub used: f64,
    /// `limit - used`, never below 0.
    pub remaining: f64,
    /// Unix seconds when the window ends and the budget is whole again.
    pub resets_at: i64,
}

impl BudgetState {
    pub fn exhausted(&self) -> bool {
        self.used >= self.budget.limit
    }

    /// The `x-budget-*` headers of this budget, as (name, value) pairs.
    pub fn headers(&self) -> [(String, String); 3] {
        let suffix = format!(
            "{}-{}",
            self.budget.metric.as_str(),
            self.budget.window.as_str()
        );
        [
            (
                format!("x-budget-limit-{suffix}"),
                number(self.budget.limit),
            ),
            (
                format!("x-budget-remaining-{suffix}"),
                number(self.remaining),
            ),
            (
                format!("x-budget-reset-{suffix}"),
                self.resets_at.to_string(),
            ),
        ]
    }

    /// The refusal of a request over this budget, `now_ms` being the time of the decision.
    pub fn refusal(&self, now_ms: i64) -> ChatError {
        let Budget {
            metric,
            window,
            limit,
        } = self.budget;
        let wait = (self.resets_at - now_ms.div_euclid(1000)).max(1);
        let reset = super::time::day_label(self.resets_at * 1000);
        ChatError::QuotaExceeded {
            message: format!(
                "You exceeded your budget of {} per {} for this API key (used {}). The budget \
                 resets at {reset}T00:00:00Z, in {}; ask the gateway's operator to raise it.",
                metric.amount(limit),
                window.as_str(),
                metric.amount(round(self.used)),
                hms(wait),
            ),
            retry_after: Some(wait as u64),
        }
    }
}

/// Each of `budgets` with what `spend` used of it, at `now_ms`.
pub fn states(budgets: &[Budget], spend: &Spend, now_ms: i64) -> Vec<BudgetState> {
    budgets
        .iter()
        .map(|&budget| {
            let used = spend.used(budget.window).get(budget.metric);
            BudgetState {
                budget,
                used,
                remaining: (budget.limit - used).max(0.0),
                resets_at: budget.window.bounds(now_ms).1 / 1000,
            }
        })
        .collect()
}

/// Costs add up in binary fractions: shown to 6 decimals.
pub fn round(value: f64) -> f64 {
    (value * 1e6).round() / 1e6
}

/// `6h0m0s`, `12m5s`, `40s`: OpenAI's way of saying when a limit resets.
fn hms(secs: i64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// A header value: integers without a fraction.
fn number(value: f64) -> String {
    let value = round(value);
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(metric: Metric, window: Window, limit: f64) -> Budget {
        Budget::new(metric, window, limit).unwrap()
    }

    #[test]
    fn key_file_fields_name_a_metric_and_a_window() {
        let b = Budget::from_field("budget.requests.day", "100")
            .unwrap()
            .unwrap();
        assert_eq!(b, budget(Metric::Requests, Window::Day, 100.0));
        let b = Budget::from_field("budget.usd.month", "5.5")
            .unwrap()
            .unwrap();
        assert_eq!(b, budget(Metric::Usd, Window::Month, 5.5));
        assert!(Budget::from_field("name", "x").is_none());
        for (name, value) in [
            ("budget.requests", "1"),
            ("budget.calls.day", "1"),
            ("budget.usd.week", "1"),
            ("budget.usd.day", "lots"),
            ("budget.usd.day", "-1"),
        ] {
            assert!(Budget::from_field(name, value).unwrap().is_err(), "{name}");
        }
    }

    #[test]
    fn the_api_overrides_the_file_per_metric_and_window() {
        let file = [
            budget(Metric::Usd, Window::Day, 5.0),
            budget(Metric::Requests, Window::Day, 100.0),
        ];
        let api = [budget(Metric::Usd, Window::Day, 1.0)];
        assert_eq!(
            merge(&file, &api),
            [
                budget(Metric::Requests, Window::Day, 100.0),
                budget(Metric::Usd, Window::Day, 1.0)
            ]
        );
    }

    #[test]
    fn a_spent_budget_refuses_naming_itself_and_its_reset() {
        let now = super::super::time::parse_time("2026-12-02T18:00:00Z").unwrap() * 1000;
        let spend = Spend {
            day: Totals {
                requests: 2.0,
                tokens: 10.0,
                usd: 0.5,
            },
            month: Totals {
                requests: 7.0,
                tokens: 70.0,
                usd: 3.5,
            },
        };
        let all = states(
            &[
                budget(Metric::Requests, Window::Day, 2.0),
                budget(Metric::Usd, Window::Month, 10.0),
            ],
            &spend,
            now,
        );
        assert!(all[0].exhausted() && !all[1].exhausted());
        assert_eq!(all[1].remaining, 6.5);
        let headers = all[0].headers();
        assert_eq!(
            headers[1],
            ("x-budget-remaining-requests-day".into(), "0".into())
        );
        assert_eq!(
            headers[2].1,
            super::super::time::parse_time("2026-12-03")
                .unwrap()
                .to_string()
        );
        let ChatError::QuotaExceeded {
            message,
            retry_after,
        } = all[0].refusal(now)
        else {
            panic!("not a quota error")
        };
        assert_eq!(retry_after, Some(6 * 3600));
        assert!(message.contains("2 requests per day"), "{message}");
        assert!(
            message.contains("2026-12-03T00:00:00Z, in 6h0m0s"),
            "{message}"
        );
    }
}
