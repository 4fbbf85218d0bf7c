//! The numbers the dashboard draws, read from the same registry `/metrics` renders, so the page
//! and a Prometheus scrape cannot disagree: requests in flight, completions and errors counted,
//! tokens and cost, and the time-to-first-token and completion-latency histograms summed over
//! their labels (bucket counts, not cumulative, plus estimated p50 and p95).

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use serde::Serialize;

use super::METRICS;

/// The routes whose latency is a completion's (the others are lookups and probes).
const COMPLETION_ROUTES: &[&str] = &["/v1/chat/completions", "/v1/responses", "/v1/messages"];

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Histogram {
    /// Upper bounds of the buckets, in seconds; the last bucket (`+Inf`) has none.
    pub bounds: Vec<f64>,
    /// Observations per bucket (`bounds.len() + 1` of them).
    pub counts: Vec<u64>,
    pub count: u64,
    pub sum_seconds: f64,
    pub p50_seconds: Option<f64>,
    pub p95_seconds: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Numbers {
    pub in_flight_http: i64,
    pub in_flight_grpc: i64,
    /// Completion requests answered over HTTP, and how many of them were errors (4xx/5xx).
    pub completions: u64,
    pub completion_errors: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    pub ttft: Histogram,
    pub latency: Histogram,
}

/// The numbers now.
pub fn numbers() -> Numbers {
    let m = &*METRICS;
    let mut out = Numbers {
        in_flight_http: m.in_flight.with_label_values(&["http"]).get(),
        in_flight_grpc: m.in_flight.with_label_values(&["grpc"]).get(),
        ttft: histogram(&m.ttft.collect(), |_| true),
        latency: histogram(&m.http_duration.collect(), |labels| {
            label(labels, "route").is_some_and(|r| COMPLETION_ROUTES.contains(&r))
        }),
        ..Numbers::default()
    };
    for family in m.http_requests.collect() {
        for metric in family.get_metric() {
            let labels = metric.get_label();
            if !label(labels, "route").is_some_and(|r| COMPLETION_ROUTES.contains(&r)) {
                continue;
            }
            let n = metric.get_counter().get_value() as u64;
            out.completions += n;
            if label(labels, "status").is_some_and(|s| s >= "400") {
                out.completion_errors += n;
            }
        }
    }
    for family in m.tokens.collect() {
        for metric in family.get_metric() {
            let n = metric.get_counter().get_value() as u64;
            match label(metric.get_label(), "type") {
                Some("input") => out.input_tokens += n,
                Some("output") => out.output_tokens += n,
                _ => {}
            }
        }
    }
    out.cost_usd = m
        .cost
        .collect()
        .iter()
        .flat_map(|f| f.get_metric())
        .map(|metric| metric.get_counter().get_value())
        .sum();
    out
}

fn label<'a>(labels: &'a [prometheus::proto::LabelPair], name: &str) -> Option<&'a str> {
    labels.iter().find(|l| l.name() == name).map(|l| l.value())
}

/// The histograms of `families` whose labels `keep`, summed.
fn histogram(
    families: &[MetricFamily],
    keep: impl Fn(&[prometheus::proto::LabelPair]) -> bool,
) -> Histogram {
    let mut out = Histogram::default();
    let mut cumulative: Vec<u64> = Vec::new();
    for metric in families.iter().flat_map(|f| f.get_metric()) {
        if !keep(metric.get_label()) {
            continue;
        }
        let h = metric.get_histogram();
        if out.bounds.is_empty() {
            out.bounds = h.get_bucket().iter().map(|b| b.upper_bound()).collect();
            cumulative = vec![0; out.bounds.len()];
        }
        for (total, bucket) in cumulative.iter_mut().zip(h.get_bucket()) {
            *total += bucket.cumulative_count();
        }
        out.count += h.get_sample_count();
        out.sum_seconds += h.get_sample_sum();
    }
    let mut below = 0;
    for c in &cumulative {
        out.counts.push(c.saturating_sub(below));
        below = *c;
    }
    out.counts.push(out.count.saturating_sub(below));
    out.p50_seconds = quantile(&out.bounds, &cumulative, out.count, 0.5);
    out.p95_seconds = quantile(&out.bounds, &cumulative, out.count, 0.95);
    out
}

/// The `q` quantile, interpolated inside its bucket as Prometheus' `histogram_quantile` does.
fn quantile(bounds: &[f64], cumulative: &[u64], count: u64, q: f64) -> Option<f64> {
    if count == 0 {
        return None;
    }
    let rank = q * count as f64;
    let mut lower = (0.0, 0u64);
    for (bound, c) in bounds.iter().zip(cumulative) {
        if *c as f64 >= rank {
            let in_bucket = (*c - lower.1) as f64;
            let frac = if in_bucket > 0.0 {
                (rank - lower.1 as f64) / in_bucket
            } else {
                1.0
            };
            return Some(lower.0 + (bound - lower.0) * frac);
        }
        lower = (*bound, *c);
    }
    // In the +Inf bucket: the highest bound is all that is known.
    bounds.last().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_inside_their_bucket() {
        let bounds = [0.1, 0.5, 1.0];
        let cumulative = [0, 10, 10];
        let median = quantile(&bounds, &cumulative, 10, 0.5).unwrap();
        assert!((median - 0.3).abs() < 1e-9, "{median}");
        assert_eq!(quantile(&bounds, &cumulative, 0, 0.5), None);
        assert_eq!(quantile(&bounds, &[0, 0, 0], 4, 0.95), Some(1.0));
    }

    #[test]
    fn numbers_read_the_registry() {
        let n = numbers();
        assert_eq!(n.ttft.counts.len(), n.ttft.bounds.len() + 1);
        assert_eq!(n.latency.counts.len(), n.latency.bounds.len() + 1);
    }
}
