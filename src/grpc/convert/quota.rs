//! The account's usage windows (`chat::quota`) ⇄ `pb::QuotaWindow`, as a worker reports them
//! with its load. Every field destructured: a new one is a compile error here.

use crate::chat::quota::{Overage, QuotaWindow};
use crate::grpc::pb;

pub fn quota_to_pb(window: QuotaWindow) -> pb::QuotaWindow {
    let QuotaWindow {
        window,
        status,
        utilization,
        resets_at,
        overage,
        updated_at,
    } = window;
    pb::QuotaWindow {
        window,
        status,
        utilization,
        resets_at,
        overage: overage.map(|o| {
            let Overage {
                status,
                resets_at,
                in_use,
                disabled_reason,
            } = o;
            pb::QuotaOverage {
                status,
                resets_at,
                in_use,
                disabled_reason,
            }
        }),
        updated_at,
    }
}

pub fn quota_from_pb(window: pb::QuotaWindow) -> QuotaWindow {
    let pb::QuotaWindow {
        window,
        status,
        utilization,
        resets_at,
        overage,
        updated_at,
    } = window;
    QuotaWindow {
        window,
        status,
        utilization,
        resets_at,
        overage: overage.map(|o| {
            let pb::QuotaOverage {
                status,
                resets_at,
                in_use,
                disabled_reason,
            } = o;
            Overage {
                status,
                resets_at,
                in_use,
                disabled_reason,
            }
        }),
        updated_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_survives_the_round_trip() {
        let window = QuotaWindow {
            window: "five_hour".into(),
            status: "allowed_warning".into(),
            utilization: Some(0.93),
            resets_at: Some(1_795_007_200),
            overage: Some(Overage {
                status: Some("allowed".into()),
                resets_at: None,
                in_use: true,
                disabled_reason: None,
            }),
            updated_at: 7,
        };
        assert_eq!(quota_from_pb(quota_to_pb(window.clone())), window);
    }
}
