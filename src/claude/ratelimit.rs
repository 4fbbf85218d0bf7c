//! The CLI's `rate_limit_event` line (2.1.330; `tests/fixtures/cli-runs/rate-limit-event.md`):
//! the account's usage windows as the API's `anthropic-ratelimit-unified-*` headers said, printed
//! on subscription (OAuth) logins only. `windows` turns one into the domain's `QuotaWindow`s:
//! the top-level fields describe the window `rateLimitType` names (with overage), and
//! `unifiedWindows` carries the five-hour and weekly windows side by side.

use serde::Deserialize;

use crate::chat::quota::{Overage, QuotaWindow};

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitInfo {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub resets_at: Option<i64>,
    #[serde(default)]
    pub rate_limit_type: Option<String>,
    #[serde(default)]
    pub utilization: Option<f64>,
    #[serde(default)]
    pub overage_status: Option<String>,
    #[serde(default)]
    pub overage_resets_at: Option<i64>,
    #[serde(default)]
    pub overage_disabled_reason: Option<String>,
    #[serde(default)]
    pub is_using_overage: Option<bool>,
    #[serde(default)]
    pub unified_windows: std::collections::BTreeMap<String, UnifiedWindow>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UnifiedWindow {
    #[serde(default)]
    pub utilization: Option<f64>,
    #[serde(default)]
    pub resets_at: Option<i64>,
    #[serde(default)]
    pub status: Option<String>,
}

impl RateLimitInfo {
    /// The windows this event reports, stamped `now` (Unix seconds).
    pub fn windows(&self, now: i64) -> Vec<QuotaWindow> {
        let overage = (self.overage_status.is_some()
            || self.overage_resets_at.is_some()
            || self.is_using_overage.is_some())
        .then(|| Overage {
            status: self.overage_status.clone(),
            resets_at: self.overage_resets_at,
            in_use: self.is_using_overage.unwrap_or(false),
            disabled_reason: self.overage_disabled_reason.clone(),
        });
        let mut out: Vec<QuotaWindow> = self
            .unified_windows
            .iter()
            .map(|(name, w)| QuotaWindow {
                window: name.clone(),
                status: w.status.clone().unwrap_or_else(|| "allowed".into()),
                utilization: w.utilization,
                resets_at: w.resets_at,
                overage: None,
                updated_at: now,
            })
            .collect();
        // The named window: its top-level numbers fill what `unifiedWindows` left out.
        let name = self
            .rate_limit_type
            .clone()
            .unwrap_or_else(|| "five_hour".into());
        let status = self.status.clone().unwrap_or_else(|| "allowed".into());
        match out.iter_mut().find(|w| w.window == name) {
            Some(w) => {
                w.utilization = w.utilization.or(self.utilization);
                w.resets_at = w.resets_at.or(self.resets_at);
                w.overage = overage;
                if self.status.is_some() {
                    w.status = status;
                }
            }
            None => out.push(QuotaWindow {
                window: name,
                status,
                utilization: self.utilization,
                resets_at: self.resets_at,
                overage,
                updated_at: now,
            }),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::claude::lines::CliLine;

    const FIXTURE: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/cli-runs/rate-limit-event.jsonl"
    ));

    #[test]
    fn the_recorded_line_gives_both_windows_with_overage_on_the_named_one() {
        let Some(CliLine::RateLimitEvent { rate_limit_info }) = CliLine::parse(FIXTURE.trim())
        else {
            panic!("not a rate_limit_event: {FIXTURE}");
        };
        let windows = rate_limit_info.windows(42);
        assert_eq!(windows.len(), 2);
        let five = &windows[0];
        assert_eq!(five.window, "five_hour");
        assert_eq!(five.status, "allowed_warning");
        assert_eq!(five.utilization, Some(0.93));
        assert_eq!(five.resets_at, Some(1_795_007_200));
        assert_eq!(five.updated_at, 42);
        let overage = five.overage.as_ref().unwrap();
        assert_eq!(overage.status.as_deref(), Some("allowed"));
        assert!(!overage.in_use);
        let week = &windows[1];
        assert_eq!(week.window, "seven_day");
        assert_eq!(week.utilization, Some(0.41));
        assert!(week.overage.is_none());
    }

    #[test]
    fn a_bare_event_is_its_named_window() {
        let line = r#"{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":9,"rateLimitType":"seven_day"},"uuid":"u","session_id":"s"}"#;
        let Some(CliLine::RateLimitEvent { rate_limit_info }) = CliLine::parse(line) else {
            panic!("not parsed");
        };
        let windows = rate_limit_info.windows(1);
        assert_eq!(windows.len(), 1);
        assert_eq!(windows[0].window, "seven_day");
        assert_eq!(windows[0].status, "rejected");
        assert_eq!(windows[0].utilization, None);
        assert!(windows[0].overage.is_none());
    }
}
