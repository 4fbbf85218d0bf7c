//! What a façade in front of several workers (`grpc/cluster`) counts: each attempt of a request
//! on a worker by its outcome, and the workers by state. Worker labels are addresses; a worker
//! that leaves the DNS answer has its series removed, so churn does not grow them.

use std::sync::{LazyLock, Mutex};

use prometheus::{IntCounterVec, IntGaugeVec, Registry};

use super::{opts, register};

struct Upstream {
    registry: Registry,
    attempts: IntCounterVec,
    workers: IntGaugeVec,
    in_flight: IntGaugeVec,
}

static UPSTREAM: LazyLock<Upstream> = LazyLock::new(|| {
    let r = Registry::new();
    Upstream {
        attempts: register(
            &r,
            IntCounterVec::new(
                opts(
                    "upstream_attempts_total",
                    "Calls sent to a worker (completions, token counts, models, sessions, stored \
                     responses), by worker and outcome: `ok` (it answered; a completion: its \
                     first event came), `retried` (it failed before that and went to another \
                     worker), `failed` (it failed and was not retried).",
                ),
                &["worker", "outcome"],
            ),
        ),
        workers: register(
            &r,
            IntGaugeVec::new(
                opts(
                    "upstream_workers",
                    "Workers by state: `serving`, `draining`, `not_serving`, `unreachable`.",
                ),
                &["state"],
            ),
        ),
        in_flight: register(
            &r,
            IntGaugeVec::new(
                opts(
                    "upstream_in_flight_requests",
                    "Requests this façade has on each worker now.",
                ),
                &["worker"],
            ),
        ),
        registry: r,
    }
});

/// One attempt of a request on `worker`.
pub fn attempt(worker: &str, outcome: &str) {
    UPSTREAM
        .attempts
        .with_label_values(&[worker, outcome])
        .inc();
}

/// A request started (`+1`) or ended (`-1`) on `worker`.
pub fn in_flight(worker: &str, delta: i64) {
    UPSTREAM.in_flight.with_label_values(&[worker]).add(delta);
}

type StateSource = Box<dyn Fn() -> Vec<(&'static str, usize)> + Send + Sync>;

static STATES: Mutex<Option<StateSource>> = Mutex::new(None);

/// Where the number of workers in each state is read from when the metrics are scraped.
pub fn set_state_source(source: impl Fn() -> Vec<(&'static str, usize)> + Send + Sync + 'static) {
    if let Ok(mut states) = STATES.lock() {
        *states = Some(Box::new(source));
    }
}

/// Drops the series of a worker that is gone.
pub fn forget(worker: &str) {
    for outcome in ["ok", "retried", "failed"] {
        let _ = UPSTREAM.attempts.remove_label_values(&[worker, outcome]);
    }
    let _ = UPSTREAM.in_flight.remove_label_values(&[worker]);
}

pub(super) fn gather() -> Vec<prometheus::proto::MetricFamily> {
    let states = STATES.lock().ok().and_then(|s| s.as_ref().map(|f| f()));
    for (state, n) in states.unwrap_or_default() {
        UPSTREAM.workers.with_label_values(&[state]).set(n as i64);
    }
    UPSTREAM.registry.gather()
}
