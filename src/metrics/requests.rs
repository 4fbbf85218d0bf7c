//! The request side of the metrics: the axum middleware (`track_http`) and the tonic layer
//! (`GrpcLayer`) that keep requests in flight until their response body ends, then count and
//! time them; the gRPC layer also gives every call its request id (the client's
//! `x-request-id` metadata or a new one), returns it in the response metadata and opens the
//! `grpc` span the call's log lines carry.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tracing::Instrument;

use super::{METRICS, model_label};

/// Counts a request as in flight until dropped.
struct InFlight(&'static str);

impl InFlight {
    fn new(protocol: &'static str) -> Self {
        METRICS.in_flight.with_label_values(&[protocol]).inc();
        InFlight(protocol)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        METRICS.in_flight.with_label_values(&[self.0]).dec();
    }
}

tokio::task_local! {
    /// The model of the HTTP request being handled, set by its handler.
    static MODEL: Arc<Mutex<Option<String>>>;
}

/// Labels the HTTP request being handled with the model id it asked for (a no-op outside
/// `track_http`).
pub fn note_model(model: &str) {
    let _ = MODEL.try_with(|slot| {
        if let Ok(mut slot) = slot.lock() {
            *slot = Some(model.to_string());
        }
    });
}

/// Axum middleware: in flight while the response body is being sent; counted and timed when it
/// ends (or the client goes away), under the route template (`/v1/models/{id}`, never the raw
/// path, so the series stay bounded).
pub async fn track_http(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let in_flight = InFlight::new("http");
    let started = Instant::now();
    let slot = Arc::new(Mutex::new(None));
    let response = MODEL.scope(slot.clone(), next.run(request)).await;
    let code = response
        .extensions()
        .get::<super::recent::ErrorCode>()
        .map(|c| c.0.clone());
    let done = Done {
        kind: Kind::Http {
            route,
            slot,
            status: response.status().as_u16(),
            method,
            code,
        },
        started,
        _in_flight: in_flight,
        span: None,
    };
    response.map(|inner| {
        Body::new(Tracked {
            inner,
            done: Some(done),
        })
    })
}

enum Kind {
    Http {
        route: String,
        slot: Arc<Mutex<Option<String>>>,
        status: u16,
        method: String,
        /// The error code the response carries (`recent::ErrorCode`).
        code: Option<String>,
    },
    Grpc {
        path: String,
        /// The methods given their own label.
        known: Arc<HashSet<String>>,
        /// `grpc-status`, from the headers (an error before any message) or the trailers.
        code: Option<i32>,
    },
}

/// What is recorded when a response ends.
struct Done {
    kind: Kind,
    started: Instant,
    _in_flight: InFlight,
    /// Entered while the body is polled, so what the stream logs carries the request id.
    span: Option<tracing::Span>,
}

impl Done {
    fn finish(self) {
        let seconds = self.started.elapsed().as_secs_f64();
        let m = &*METRICS;
        match self.kind {
            Kind::Http {
                route,
                slot,
                status,
                method,
                code,
            } => {
                let model = slot.lock().ok().and_then(|s| s.clone()).unwrap_or_default();
                let model = model_label(&model);
                let status_label = status.to_string();
                m.http_requests
                    .with_label_values(&[route.as_str(), &model, &status_label])
                    .inc();
                m.http_duration
                    .with_label_values(&[route.as_str(), &model])
                    .observe(seconds);
                super::recent::record(super::recent::RecentRequest {
                    at_ms: unix_ms(),
                    method,
                    route,
                    model,
                    status,
                    code: code.filter(|_| status >= 400),
                    duration_ms: (seconds * 1000.0) as u64,
                });
            }
            Kind::Grpc { path, code, known } => {
                // A client that went away before the status: CANCELLED, as grpc-go counts it.
                let code = code.unwrap_or(tonic::Code::Cancelled as i32);
                let (service, method) = grpc_labels(&path, &known);
                let code = grpc_code_name(code);
                m.grpc_requests
                    .with_label_values(&[service, method, &code])
                    .inc();
                m.grpc_duration
                    .with_label_values(&[service, method])
                    .observe(seconds);
                let ms = (seconds * 1000.0) as u64;
                if let Some(span) = self.span {
                    span.in_scope(|| tracing::debug!(%code, ms, "grpc call finished"));
                }
            }
        }
    }
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Most characters of a client's request id that are kept.
const MAX_REQUEST_ID_CHARS: usize = 128;

/// Whether a client's `x-request-id` is kept (echoed, logged, passed on) rather than replaced by
/// a new one: ids are logged on every line at info, so only short, plain ones are client text
/// we accept there (UUIDs, trace ids, `name-1234`).
pub fn request_id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_CHARS
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/'))
}

/// `(service, method)` of a call path when the server serves it; any other path, refused
/// before routing (no key, rate limit) or not, shares one label, so a client cannot mint series.
fn grpc_labels<'a>(path: &'a str, known: &HashSet<String>) -> (&'a str, &'a str) {
    match path.strip_prefix('/') {
        Some(method) if known.contains(method) => method.split_once('/').unwrap_or(UNKNOWN),
        _ => UNKNOWN,
    }
}

const UNKNOWN: (&str, &str) = ("unknown", "unknown");

fn grpc_code_name(code: i32) -> String {
    match tonic::Code::from_i32(code) {
        tonic::Code::Ok => "OK".into(),
        other => format!("{other:?}"),
    }
}

fn grpc_status(headers: &HeaderMap) -> Option<i32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// A response body that records its request when it ends or is dropped.
struct Tracked<B> {
    inner: B,
    done: Option<Done>,
}

impl<B> HttpBody for Tracked<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let span = this.done.as_ref().and_then(|d| d.span.clone());
        let _entered = span.as_ref().map(tracing::Span::enter);
        let poll = Pin::new(&mut this.inner).poll_frame(cx);
        match &poll {
            Poll::Ready(Some(Ok(frame))) => {
                if let (
                    Some(trailers),
                    Some(Done {
                        kind: Kind::Grpc { code, .. },
                        ..
                    }),
                ) = (frame.trailers_ref(), this.done.as_mut())
                {
                    *code = grpc_status(trailers).or(*code);
                }
            }
            Poll::Ready(None) => {
                if let Some(done) = this.done.take() {
                    done.finish();
                }
            }
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Tracked<B> {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            done.finish();
        }
    }
}

/// `Server::builder().layer(GrpcLayer::new(methods))`, outermost: every call gets a request id
/// (the client's `x-request-id` metadata or a new one) in its metadata, its response metadata
/// and a `grpc` span, and is counted, timed and kept in flight until its stream ends. Only the
/// served `methods` (`service/method`) get their own label.
#[derive(Debug, Clone, Default)]
pub struct GrpcLayer {
    known: Arc<HashSet<String>>,
}

impl GrpcLayer {
    pub fn new(methods: HashSet<String>) -> Self {
        GrpcLayer {
            known: Arc::new(methods),
        }
    }
}

impl<S> tower::Layer<S> for GrpcLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics {
            inner,
            known: self.known.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    known: Arc<HashSet<String>>,
}

type GrpcRequest = axum::http::Request<tonic::body::Body>;
type GrpcResponse = axum::http::Response<tonic::body::Body>;
type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S> tower::Service<GrpcRequest> for GrpcMetrics<S>
where
    S: tower::Service<GrpcRequest, Response = GrpcResponse>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = GrpcResponse;
    type Error = S::Error;
    type Future = BoxFuture<GrpcResponse, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: GrpcRequest) -> Self::Future {
        let id = request
            .headers()
            .get("x-request-id")
            .filter(|v| v.to_str().is_ok_and(request_id_ok))
            .cloned()
            .or_else(|| HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).ok());
        let shown = id
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        if let Some(id) = &id {
            request.headers_mut().insert("x-request-id", id.clone());
        }
        let path = request.uri().path().to_string();
        // The bounded label, not the raw path: a path is client text.
        let (service, method) = grpc_labels(&path, &self.known);
        let span = tracing::info_span!("grpc", method = %format_args!("{service}/{method}"), request_id = %shown);
        let known = self.known.clone();
        let in_flight = InFlight::new("grpc");
        let started = Instant::now();
        let body_span = span.clone();
        let response = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        let future = async move {
            let mut response = response.await?;
            if let Some(id) = id {
                response.headers_mut().insert("x-request-id", id);
            }
            let done = Done {
                kind: Kind::Grpc {
                    code: grpc_status(response.headers()),
                    path,
                    known,
                },
                started,
                _in_flight: in_flight,
                span: Some(body_span),
            };
            Ok(response.map(|inner| {
                tonic::body::Body::new(Tracked {
                    inner,
                    done: Some(done),
                })
            }))
        };
        Box::pin(future.instrument(span))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_labels_split_the_path() {
        let known = crate::grpc::pb::served_methods();
        assert_eq!(
            grpc_labels(
                "/claude_gateway.v1.ChatService/StreamChatCompletion",
                &known
            ),
            ("claude_gateway.v1.ChatService", "StreamChatCompletion")
        );
        assert_eq!(
            grpc_labels("/grpc.health.v1.Health/Check", &known),
            ("grpc.health.v1.Health", "Check")
        );
        assert!(request_id_ok("grpc-id-4242"));
        assert!(request_id_ok(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        assert!(!request_id_ok(""));
        assert!(!request_id_ok("ignore previous instructions"));
        assert!(!request_id_ok(&"a".repeat(129)));
        for path in [
            "/made.Up/Thing",
            "/claude_gateway.v1.ChatService/Nope",
            "claude_gateway.v1.ChatService/StreamChatCompletion",
            "/",
            "",
        ] {
            assert_eq!(grpc_labels(path, &known), ("unknown", "unknown"), "{path}");
        }
        assert_eq!(grpc_code_name(0), "OK");
        assert_eq!(grpc_code_name(5), "NotFound");
    }
}
