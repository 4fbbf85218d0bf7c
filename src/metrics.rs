//! Prometheus metrics, served by `GET /metrics` in the text format. One registry per process:
//! the HTTP middleware and the gRPC layer (`requests.rs`) count requests by route or method,
//! model and status, time them to their last byte and keep the in-flight gauge; the engine
//! records what only it sees (time to the first token, a process's start-up, tokens in and out,
//! the CLI's `total_cost_usd`); the process budget's numbers (processes by state, queued
//! requests) are read when the metrics are scraped.
//!
//! `prometheus` rather than `metrics` + an exporter: typed metrics in an explicit registry, an
//! f64 counter for the cost, a text encoder with no HTTP server or global recorder to install.
//! Model labels are capped (`MAX_MODEL_LABELS`) so clients cannot grow the series unboundedly.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use futures::stream::BoxStream;
use prometheus::{
    CounterVec, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::chat::ChatError;
use crate::chat::types::ChatEvent;

pub mod recent;
mod requests;
pub mod snapshot;
pub mod upstream;
pub mod usage;

pub use requests::{GrpcLayer, GrpcMetrics, note_model, request_id_ok, track_http};

/// Distinct model ids given their own label; later ones are counted as `other`.
const MAX_MODEL_LABELS: usize = 64;
/// Request durations, in seconds: from a few ms (models, health) to long completions.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// Time to the first token and process start-up, in seconds.
const FIRST_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 60.0,
];

pub use crate::chat::Load;

type LoadSource = Box<dyn Fn() -> Option<Load> + Send + Sync>;

struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    grpc_requests: IntCounterVec,
    grpc_duration: HistogramVec,
    in_flight: IntGaugeVec,
    queued: IntGauge,
    live_processes: IntGauge,
    processes: IntGaugeVec,
    ttft: HistogramVec,
    spawn: Histogram,
    tokens: IntCounterVec,
    cost: CounterVec,
    rate_limit_store_errors: IntCounter,
    quota_utilization: GaugeVec,
    quota_resets_at: IntGaugeVec,
    quota_status: IntGaugeVec,
    models: Mutex<HashSet<String>>,
    load: Mutex<Option<LoadSource>>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Registers `metric`. Names and labels are constants, so a failure is a bug, caught by the
/// unit tests the first time the registry is built.
fn register<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<M>,
) -> M {
    let metric = metric.expect("metric options are valid");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(format!("claude_gateway_{name}"), help)
}

fn histogram_opts(name: &str, help: &str, buckets: &[f64]) -> HistogramOpts {
    HistogramOpts::new(format!("claude_gateway_{name}"), help).buckets(buckets.to_vec())
}

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new();
        let m = Metrics {
            http_requests: register(
                &r,
                IntCounterVec::new(
                    opts(
                        "http_requests_total",
                        "HTTP requests answered, by route template, requested model and status.",
                    ),
                    &["route", "model", "status"],
                ),
            ),
            http_duration: register(
                &r,
                HistogramVec::new(
                    histogram_opts(
                        "http_request_duration_seconds",
                        "HTTP requests from arrival to the last byte of the response.",
                        LATENCY_BUCKETS,
                    ),
                    &["route", "model"],
                ),
            ),
            grpc_requests: register(
                &r,
                IntCounterVec::new(
                    opts(
                        "grpc_requests_total",
                        "gRPC calls answered, by service, method and status code.",
                    ),
                    &["service", "method", "code"],
                ),
            ),
            grpc_duration: register(
                &r,
                HistogramVec::new(
                    histogram_opts(
                        "grpc_request_duration_seconds",
                        "gRPC calls from arrival to the end of the response stream.",
                        LATENCY_BUCKETS,
                    ),
                    &["service", "method"],
                ),
            ),
            in_flight: register(
                &r,
                IntGaugeVec::new(
                    opts(
                        "in_flight_requests",
                        "Requests being served now (a stream until its end), by protocol.",
                    ),
                    &["protocol"],
                ),
            ),
            queued: register(
                &r,
                IntGauge::with_opts(opts(
                    "queued_requests",
                    "Requests waiting for a free claude process or for their session's turn.",
                )),
            ),
            live_processes: register(
                &r,
                IntGauge::with_opts(opts(
                    "live_processes",
                    "claude processes alive now, in every state (the process budget's count).",
                )),
            ),
            processes: register(
                &r,
                IntGaugeVec::new(
                    opts(
                        "processes",
                        "claude processes alive now, by state: serving a request, warm in the \
                         pool, or kept for a session's next turn.",
                    ),
                    &["state"],
                ),
            ),
            ttft: register(
                &r,
                HistogramVec::new(
                    histogram_opts(
                        "time_to_first_token_seconds",
                        "From a completion reaching the engine to its first text or tool-call \
                         event.",
                        FIRST_BUCKETS,
                    ),
                    &["model"],
                ),
            ),
            spawn: register(
                &r,
                Histogram::with_opts(histogram_opts(
                    "process_spawn_seconds",
                    "From a claude process being handed its request (started now, warm from \
                     the pool, or reused) to its first stdout line.",
                    FIRST_BUCKETS,
                )),
            ),
            tokens: register(
                &r,
                IntCounterVec::new(
                    opts(
                        "tokens_total",
                        "Tokens of completions by model; type input (the prompt, cache reads and \
                         writes included) or output.",
                    ),
                    &["model", "type"],
                ),
            ),
            cost: register(
                &r,
                CounterVec::new(
                    opts(
                        "cost_usd_total",
                        "What completions cost in USD by model, as the claude CLI reports it \
                         (total_cost_usd).",
                    ),
                    &["model"],
                ),
            ),
            rate_limit_store_errors: register(
                &r,
                IntCounter::with_opts(opts(
                    "rate_limit_store_errors_total",
                    "Rate-limit decisions the --rate-limit-store failed (an error or no answer \
                     within 1 s), decided by this process's in-memory limiter instead.",
                )),
            ),
            quota_utilization: register(
                &r,
                GaugeVec::new(
                    opts(
                        "quota_utilization",
                        "Fraction of the Claude account's usage window used, as the CLI last \
                         reported it (subscription logins only).",
                    ),
                    &["window"],
                ),
            ),
            quota_resets_at: register(
                &r,
                IntGaugeVec::new(
                    opts(
                        "quota_resets_at_seconds",
                        "When the Claude account's usage window resets, Unix seconds.",
                    ),
                    &["window"],
                ),
            ),
            quota_status: register(
                &r,
                IntGaugeVec::new(
                    opts(
                        "quota_status",
                        "1 for the status the CLI last reported for the usage window (allowed, \
                         allowed_warning, rejected), 0 for the others.",
                    ),
                    &["window", "status"],
                ),
            ),
            models: Mutex::new(HashSet::new()),
            load: Mutex::new(None),
            registry: r,
        };
        for protocol in ["http", "grpc"] {
            m.in_flight.with_label_values(&[protocol]);
        }
        m
    }
}

/// The label of a model id: itself while fewer than `MAX_MODEL_LABELS` ids were seen, `-` when
/// there is none, `other` beyond the cap.
fn model_label(id: &str) -> String {
    match METRICS.models.lock() {
        Ok(mut seen) => label_in(&mut seen, id),
        Err(_) => "other".into(),
    }
}

fn label_in(seen: &mut HashSet<String>, id: &str) -> String {
    if id.is_empty() {
        return "-".into();
    }
    if id.len() <= 100 && (seen.contains(id) || seen.len() < MAX_MODEL_LABELS) {
        seen.insert(id.to_string());
        return id.to_string();
    }
    "other".into()
}

/// The rate-limit store failed a decision (`access::shared_limiter`).
pub fn rate_limit_store_error() {
    METRICS.rate_limit_store_errors.inc();
}

/// Where the process and queue gauges are read from when scraped, or `None` once the source is
/// gone. The engine's process budget is the one source of truth.
pub fn set_load_source(source: impl Fn() -> Option<Load> + Send + Sync + 'static) {
    if let Ok(mut load) = METRICS.load.lock() {
        *load = Some(Box::new(source));
    }
}

/// The whole registry in Prometheus' text format.
pub fn render() -> String {
    let m = &*METRICS;
    let sample = m
        .load
        .lock()
        .ok()
        .and_then(|l| l.as_ref().and_then(|f| f()));
    if let Some(load) = sample {
        m.live_processes
            .set((load.serving + load.warm + load.session + load.idle + load.tools) as i64);
        for (state, n) in [
            ("serving", load.serving),
            ("warm", load.warm),
            ("session", load.session),
            ("idle", load.idle),
            ("tools", load.tools),
        ] {
            m.processes.with_label_values(&[state]).set(n as i64);
        }
        m.queued.set(load.queued as i64);
    }
    render_quota(m);
    let mut families = m.registry.gather();
    families.extend(upstream::gather());
    families.extend(usage::gather());
    let mut out = String::new();
    if let Err(e) = TextEncoder::new().encode_utf8(&families, &mut out) {
        tracing::error!("cannot encode the metrics: {e}");
    }
    out
}

/// The quota gauges, from the board (the window names are the CLI's, a short fixed set).
fn render_quota(m: &Metrics) {
    for window in crate::chat::quota::board().snapshot() {
        let name = window.window.as_str();
        if let Some(u) = window.utilization {
            m.quota_utilization.with_label_values(&[name]).set(u);
        }
        if let Some(at) = window.resets_at {
            m.quota_resets_at.with_label_values(&[name]).set(at);
        }
        for status in ["allowed", "allowed_warning", "rejected"] {
            m.quota_status
                .with_label_values(&[name, status])
                .set(i64::from(window.status == status));
        }
    }
}

/// `GET /metrics`.
pub async fn serve() -> Response {
    let content_type = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
    ([(header::CONTENT_TYPE, content_type)], render()).into_response()
}

/// Watches a completion's events as they leave the engine: the time from `received` to the
/// first text or tool-call event, and the usage (tokens, cost) of the last one.
pub fn observe_run(
    events: BoxStream<'static, Result<ChatEvent, ChatError>>,
    model: &str,
    received: Instant,
) -> BoxStream<'static, Result<ChatEvent, ChatError>> {
    let model = model_label(model);
    let mut first = true;
    Box::pin(events.inspect(move |item| match item {
        Ok(ChatEvent::Text { .. } | ChatEvent::ToolCall { .. }) if first => {
            first = false;
            METRICS
                .ttft
                .with_label_values(&[model.as_str()])
                .observe(received.elapsed().as_secs_f64());
        }
        Ok(ChatEvent::Usage(usage)) => {
            let m = &*METRICS;
            m.tokens
                .with_label_values(&[model.as_str(), "input"])
                .inc_by(u64::from(usage.prompt_tokens));
            m.tokens
                .with_label_values(&[model.as_str(), "output"])
                .inc_by(u64::from(usage.completion_tokens));
            if usage.cost_usd.is_finite() && usage.cost_usd > 0.0 {
                m.cost
                    .with_label_values(&[model.as_str()])
                    .inc_by(usage.cost_usd);
            }
        }
        _ => {}
    }))
}

/// Times a process's start-up as a request feels it: from `start` (the process handed its
/// request) to `line` (its first stdout line), recorded once.
pub struct StartupTimer(Option<Instant>);

impl StartupTimer {
    pub fn start() -> Self {
        StartupTimer(Some(Instant::now()))
    }

    pub fn line(&mut self) {
        if let Some(at) = self.0.take() {
            METRICS.spawn.observe(at.elapsed().as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::types::Usage;

    fn value(text: &str, prefix: &str) -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    }

    #[test]
    fn every_family_renders_with_its_help() {
        StartupTimer::start().line();
        let text = render();
        for name in [
            "in_flight_requests",
            "queued_requests",
            "live_processes",
            "process_spawn_seconds",
        ] {
            assert!(
                text.contains(&format!("# HELP claude_gateway_{name} ")),
                "{name} missing:\n{text}"
            );
        }
        assert!(text.contains("claude_gateway_in_flight_requests{protocol=\"grpc\"}"));
    }

    #[tokio::test]
    async fn a_run_records_ttft_tokens_and_cost() {
        let events: Vec<Result<ChatEvent, ChatError>> = vec![
            Ok(ChatEvent::Role { index: 0 }),
            Ok(ChatEvent::Text {
                index: 0,
                text: "hi".into(),
            }),
            Ok(ChatEvent::Text {
                index: 0,
                text: "!".into(),
            }),
            Ok(ChatEvent::Usage(Usage {
                prompt_tokens: 7,
                completion_tokens: 3,
                cost_usd: 0.25,
                ..Usage::default()
            })),
        ];
        let stream = observe_run(
            Box::pin(futures::stream::iter(events)),
            "unit-test-model",
            Instant::now(),
        );
        assert_eq!(stream.count().await, 4);
        let text = render();
        let label = "model=\"unit-test-model\"";
        assert_eq!(
            value(
                &text,
                &format!("claude_gateway_time_to_first_token_seconds_count{{{label}}}")
            ),
            1.0
        );
        assert_eq!(
            value(
                &text,
                &format!("claude_gateway_tokens_total{{{label},type=\"input\"}}")
            ),
            7.0
        );
        assert_eq!(
            value(&text, &format!("claude_gateway_cost_usd_total{{{label}}}")),
            0.25
        );
    }

    #[test]
    fn model_labels_are_capped() {
        let mut seen = HashSet::new();
        assert_eq!(label_in(&mut seen, ""), "-");
        for i in 0..MAX_MODEL_LABELS {
            assert_eq!(label_in(&mut seen, &format!("m{i}")), format!("m{i}"));
        }
        assert_eq!(label_in(&mut seen, "one-too-many"), "other");
        assert_eq!(label_in(&mut seen, "m0"), "m0");
        assert_eq!(label_in(&mut seen, &"x".repeat(500)), "other");
    }
}
