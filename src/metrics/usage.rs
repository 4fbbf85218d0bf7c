//! What the usage ledger and the budgets count (`usage/`): rows recorded and rows dropped when
//! the writer falls behind, the time a batch takes to write, and the requests refused by a
//! budget, by metric and window.

use std::sync::LazyLock;

use prometheus::{Histogram, IntCounter, IntCounterVec, Registry};

use super::{histogram_opts, opts, register};

/// Batch write times, in seconds: SQLite commits in a millisecond or so, PostgreSQL over a
/// network in a few.
const WRITE_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

struct Usage {
    registry: Registry,
    rows: IntCounter,
    dropped: IntCounter,
    refusals: IntCounterVec,
    batch_write: Histogram,
}

static USAGE: LazyLock<Usage> = LazyLock::new(|| {
    let r = Registry::new();
    Usage {
        rows: register(
            &r,
            IntCounter::with_opts(opts(
                "usage_rows_total",
                "Usage ledger rows written to the store.",
            )),
        ),
        dropped: register(
            &r,
            IntCounter::with_opts(opts(
                "usage_rows_dropped_total",
                "Usage ledger rows dropped: the writer's queue was full, or the store failed \
                 to take a batch.",
            )),
        ),
        refusals: register(
            &r,
            IntCounterVec::new(
                opts(
                    "budget_refusals_total",
                    "Requests refused (429 insufficient_quota) because a key's budget was spent, \
                     by metric (`requests`, `tokens`, `usd`) and window (`day`, `month`).",
                ),
                &["metric", "window"],
            ),
        ),
        batch_write: register(
            &r,
            Histogram::with_opts(histogram_opts(
                "usage_batch_write_seconds",
                "Time to write one batch of usage ledger rows to the store.",
                WRITE_BUCKETS,
            )),
        ),
        registry: r,
    }
});

/// `n` rows written.
pub fn rows_written(n: usize) {
    USAGE.rows.inc_by(n as u64);
}

/// `n` rows lost.
pub fn rows_dropped(n: usize) {
    USAGE.dropped.inc_by(n as u64);
}

/// A batch took `secs` to write.
pub fn batch_written(secs: f64) {
    USAGE.batch_write.observe(secs);
}

/// A request refused by the `metric`/`window` budget.
pub fn budget_refused(metric: &str, window: &str) {
    USAGE.refusals.with_label_values(&[metric, window]).inc();
}

pub(super) fn gather() -> Vec<prometheus::proto::MetricFamily> {
    USAGE.registry.gather()
}
