//! The spans of a request, one constructor each, with OpenTelemetry's semantic-convention
//! attribute names where there are some (`http.*`, `rpc.*`, `gen_ai.usage.*`), and the W3C
//! `traceparent`/`tracestate` carriers for HTTP headers and gRPC metadata (both are an
//! `http::HeaderMap`). Every span is of `TARGET`: disabled, and free, when traces are off.

use std::time::Instant;

use axum::http::{self, HeaderMap};
use futures::StreamExt;
use futures::stream::BoxStream;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::TARGET;
use crate::chat::ChatError;
use crate::chat::types::ChatEvent;

/// How a turn got its `claude` process: the `claude.process` attribute of `claude_turn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessOrigin {
    /// Started for this turn.
    Spawned,
    /// Taken from the warm pool.
    Warm,
    /// A parked process of an earlier request, rewound to empty.
    Recycled,
    /// A parked process whose conversation this request extends.
    Continued,
    /// The process kept for the request's session.
    Session,
}

impl ProcessOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessOrigin::Spawned => "spawned",
            ProcessOrigin::Warm => "warm",
            ProcessOrigin::Recycled => "recycled",
            ProcessOrigin::Continued => "continued",
            ProcessOrigin::Session => "session",
        }
    }
}

/// The server span of one HTTP request; its parent is the client's `traceparent`, if any.
/// `route` is the route template (never the raw path: that is client text).
pub fn http_server(method: &http::Method, route: &str, headers: &HeaderMap) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        "http.server",
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = Empty,
    );
    adopt_remote_parent(&span, headers);
    span
}

/// Records the response status on an `http.server` span; a 5xx marks it failed.
pub fn http_status(span: &Span, status: u16) {
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
}

/// The façade's client span of a call to a worker (`service`/`method` from the gRPC path).
pub fn grpc_client(service: &str, method: &str) -> Span {
    tracing::info_span!(
        target: TARGET,
        "grpc.client",
        otel.kind = "client",
        otel.status_code = Empty,
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
        rpc.grpc.status_code = Empty,
    )
}

/// The server span of one gRPC call; its parent is the caller's `traceparent`, if any.
pub fn grpc_server(service: &str, method: &str, headers: &HeaderMap) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        "grpc.server",
        otel.kind = "server",
        otel.status_code = Empty,
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
        rpc.grpc.status_code = Empty,
    );
    adopt_remote_parent(&span, headers);
    span
}

/// Records a call's `grpc-status` on a `grpc.client` or `grpc.server` span.
pub fn grpc_status(span: &Span, code: i32) {
    span.record("rpc.grpc.status_code", code);
    // Server errors, as OpenTelemetry's gRPC conventions count them.
    if matches!(code, 2 | 4 | 12 | 13 | 14 | 15) {
        span.record("otel.status_code", "ERROR");
    }
}

/// The wait for a place to run: a free slot of the process budget (after evicting idle
/// processes, or in the queue), a parked process, or the session's process.
pub fn queue_wait() -> Span {
    tracing::info_span!(target: TARGET, "queue_wait")
}

/// One choice's turn in a `claude` process, from its start to its last event.
pub fn claude_turn(model: &str, index: u32) -> Span {
    tracing::info_span!(
        target: TARGET,
        "claude_turn",
        gen_ai.system = "anthropic",
        gen_ai.request.model = %model,
        claude.choice = index,
        claude.process = Empty,
        claude.pid = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        claude.usage.cached_tokens = Empty,
        claude.usage.estimated = Empty,
        claude.cost_usd = Empty,
        claude.finish_reason = Empty,
        otel.status_code = Empty,
        otel.status_description = Empty,
    )
}

/// Says on a `claude_turn` how the turn got its process (the last attempt wins).
pub fn process_origin(turn: &Span, origin: ProcessOrigin, pid: Option<u32>) {
    turn.record("claude.process", origin.as_str());
    process_pid(turn, pid);
}

/// Records the process id on a `claude_turn` or `claude_process` span.
pub fn process_pid(span: &Span, pid: Option<u32>) {
    if let Some(pid) = pid {
        span.record("claude.pid", pid);
    }
}

/// Starting a new `claude` process for `turn`, until it has taken its prompt. Never entered
/// while the process is spawned: its tasks would hold the span, and with it the request's.
pub fn claude_process(turn: &Span) -> Span {
    tracing::info_span!(target: TARGET, parent: turn, "claude_process", claude.pid = Empty)
}

/// The turn's events with the turn's spans around them: `claude_turn` lives as long as the
/// stream, `first_token` ends at the first text, reasoning or tool call, and the usage (tokens,
/// cost) and the finish reason land on the turn.
pub fn observe_turn(
    events: BoxStream<'static, Result<ChatEvent, ChatError>>,
    turn: Span,
    first_token: Span,
) -> BoxStream<'static, Result<ChatEvent, ChatError>> {
    if turn.is_disabled() {
        return events;
    }
    let mut first_token = Some(first_token);
    let started = Instant::now();
    events
        .map(move |event| {
            match &event {
                Ok(
                    ChatEvent::Text { .. }
                    | ChatEvent::ToolCall { .. }
                    | ChatEvent::Reasoning { .. },
                ) => {
                    if let Some(span) = first_token.take() {
                        span.record(
                            "claude.first_token_ms",
                            started.elapsed().as_millis() as u64,
                        );
                    }
                }
                Ok(ChatEvent::Finish { reason, .. }) => {
                    turn.record("claude.finish_reason", reason.as_str());
                }
                Ok(ChatEvent::Usage(usage)) => {
                    turn.record("gen_ai.usage.input_tokens", usage.prompt_tokens);
                    turn.record("gen_ai.usage.output_tokens", usage.completion_tokens);
                    turn.record("claude.usage.cached_tokens", usage.cached_tokens);
                    turn.record("claude.usage.estimated", usage.estimated);
                    turn.record("claude.cost_usd", usage.cost_usd);
                }
                Ok(ChatEvent::Role { .. }) => {}
                Err(err) => {
                    turn.record("otel.status_code", "ERROR");
                    turn.record("otel.status_description", err.to_string().as_str());
                }
            }
            event
        })
        .boxed()
}

/// The `first_token` span of a turn: from the turn's start to its first output.
pub fn first_token(turn: &Span) -> Span {
    tracing::info_span!(target: TARGET, parent: turn, "first_token", claude.first_token_ms = Empty)
}

/// Makes the remote caller's span (`traceparent`, `tracestate`) the parent of `span`.
fn adopt_remote_parent(span: &Span, headers: &HeaderMap) {
    if span.is_disabled() || !headers.contains_key("traceparent") {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&HeaderCarrier(headers));
    let _ = span.set_parent(parent);
}

/// Writes `span`'s context into `headers` as `traceparent` (and `tracestate`).
pub fn inject(span: &Span, headers: &mut HeaderMap) {
    TraceContextPropagator::new().inject_context(&span.context(), &mut HeaderCarrierMut(headers));
}

struct HeaderCarrier<'a>(&'a HeaderMap);

impl Extractor for HeaderCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderCarrierMut<'a>(&'a mut HeaderMap);

impl Injector for HeaderCarrierMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}
