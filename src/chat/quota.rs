//! The Claude account's usage windows, as the CLI last reported them: on a subscription (OAuth)
//! login the CLI prints a `rate_limit_event` line whenever the API's
//! `anthropic-ratelimit-unified-*` headers change (the 5-hour session window, the weekly
//! windows, overage). The gateway keeps the latest state per window here, in one board per
//! process: every process of one gateway runs on the same login, so the state is the
//! account's, not a request's. A façade merges in what its workers report with their load.
//!
//! `/v1/quota`, `/metrics` (`claude_gateway_quota_*`), `/health/ready` and the dashboard read it;
//! `--quota-low-priority-threshold` refuses low-priority keys while a window is above it.

use std::collections::BTreeMap;
use std::sync::{LazyLock, Mutex};

use serde::Serialize;

/// One usage window of the account.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuotaWindow {
    /// `five_hour`, `seven_day`, `seven_day_opus`, `seven_day_sonnet`,
    /// `seven_day_overage_included` or `overage`, as the CLI names them.
    pub window: String,
    /// `allowed`, `allowed_warning` (past a warning threshold) or `rejected`.
    pub status: String,
    /// Fraction of the window used (usually 0–1; above 1 past the cap).
    pub utilization: Option<f64>,
    /// When the window resets, Unix seconds.
    pub resets_at: Option<i64>,
    /// Pay-as-you-go usage beyond the subscription, when the CLI said anything about it.
    pub overage: Option<Overage>,
    /// When this state was reported, Unix seconds.
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overage {
    /// `allowed`, `allowed_warning`, `rejected`, or absent.
    pub status: Option<String>,
    pub resets_at: Option<i64>,
    /// The account is spending overage now.
    pub in_use: bool,
    /// Why overage is off (`org_level_disabled_until`, …).
    pub disabled_reason: Option<String>,
}

impl QuotaWindow {
    /// Seconds until the window resets, from `now` (0 when past or unknown).
    pub fn resets_in(&self, now: i64) -> u64 {
        self.resets_at.map_or(0, |at| (at - now).max(0) as u64)
    }
}

/// The latest state of every window reported so far.
#[derive(Debug, Default)]
pub struct QuotaBoard {
    windows: Mutex<BTreeMap<String, QuotaWindow>>,
}

static BOARD: LazyLock<QuotaBoard> = LazyLock::new(QuotaBoard::default);

/// This process's board.
pub fn board() -> &'static QuotaBoard {
    &BOARD
}

/// Now, Unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl QuotaBoard {
    /// Records `windows`, each replacing the earlier state of its window unless that is newer
    /// (a façade's workers report in any order).
    pub fn record(&self, windows: impl IntoIterator<Item = QuotaWindow>) {
        let Ok(mut board) = self.windows.lock() else {
            return;
        };
        for window in windows {
            match board.get(&window.window) {
                Some(known) if known.updated_at > window.updated_at => {}
                _ => {
                    board.insert(window.window.clone(), window);
                }
            }
        }
    }

    /// Every window, by name.
    pub fn snapshot(&self) -> Vec<QuotaWindow> {
        self.windows
            .lock()
            .map(|b| b.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The first window used above `threshold` that has not reset yet, if any.
    pub fn above(&self, threshold: f64, now: i64) -> Option<QuotaWindow> {
        self.snapshot().into_iter().find(|w| {
            w.utilization.is_some_and(|u| u >= threshold) && w.resets_at.is_none_or(|at| at > now)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(name: &str, utilization: f64, updated_at: i64) -> QuotaWindow {
        QuotaWindow {
            window: name.into(),
            status: "allowed".into(),
            utilization: Some(utilization),
            resets_at: Some(2_000),
            overage: None,
            updated_at,
        }
    }

    #[test]
    fn the_newest_state_of_each_window_wins() {
        let board = QuotaBoard::default();
        board.record([window("five_hour", 0.5, 10), window("seven_day", 0.1, 10)]);
        board.record([window("five_hour", 0.2, 5)]);
        board.record([window("five_hour", 0.95, 11)]);
        let got = board.snapshot();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].window, "five_hour");
        assert_eq!(got[0].utilization, Some(0.95));
        assert_eq!(board.above(0.9, 1_000).unwrap().window, "five_hour");
        // Once the window has reset, its old utilization no longer counts.
        assert!(board.above(0.9, 2_000).is_none());
        assert_eq!(got[0].resets_in(1_500), 500);
        assert_eq!(got[0].resets_in(3_000), 0);
    }
}
