//! The borders where a trace enters and leaves the process: the HTTP middleware (`http.server`,
//! honouring the client's `traceparent`), the gRPC server layer (`grpc.server`, honouring the
//! façade's), and the gRPC client service around a worker's channel (`grpc.client`, writing
//! `traceparent` into the call's metadata). Each span lasts until its response body ends, so a
//! streamed completion is inside it; with traces off each one passes the call through.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::{HeaderMap, Request, Response};
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tracing::{Instrument, Span};

use super::{enabled, spans};

type GrpcRequest = Request<tonic::body::Body>;
type GrpcResponse = Response<tonic::body::Body>;
type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// axum middleware: the `http.server` span of a request, up to the end of its body.
pub async fn http_server(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if !enabled() {
        return next.run(req).await;
    }
    // The route template, not the raw path: a path is client text.
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let span = spans::http_server(req.method(), &route, req.headers());
    let response = next.run(req).instrument(span.clone()).await;
    spans::http_status(&span, response.status().as_u16());
    response.map(|body| axum::body::Body::new(Held::new(body, span, false)))
}

/// The tonic server layer of `grpc.server` spans, for the methods the server knows (the
/// health and load checks only when the caller sends a `traceparent`: they are not requests).
#[derive(Debug, Clone)]
pub struct GrpcServerLayer {
    known: Arc<HashSet<String>>,
}

impl GrpcServerLayer {
    /// `known`: the served methods as `package.Service/Method`.
    pub fn new(known: HashSet<String>) -> Self {
        GrpcServerLayer {
            known: Arc::new(known),
        }
    }
}

impl<S> tower::Layer<S> for GrpcServerLayer {
    type Service = GrpcServer<S>;

    fn layer(&self, inner: S) -> GrpcServer<S> {
        GrpcServer {
            inner,
            known: self.known.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct GrpcServer<S> {
    inner: S,
    known: Arc<HashSet<String>>,
}

/// Calls that are the cluster's own housekeeping, not a client's request.
fn housekeeping(service: &str) -> bool {
    service == "grpc.health.v1.Health"
        || service == "claude_gateway.v1.WorkerService"
        || service.starts_with("grpc.reflection.")
}

impl<S> tower::Service<GrpcRequest> for GrpcServer<S>
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

    fn call(&mut self, request: GrpcRequest) -> Self::Future {
        let (service, method) = labels(request.uri().path(), &self.known);
        let traced =
            enabled() && (!housekeeping(service) || request.headers().contains_key("traceparent"));
        if !traced {
            return Box::pin(self.inner.call(request));
        }
        let span = spans::grpc_server(service, method, request.headers());
        let response = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        Box::pin(
            async move {
                let response = response.await?;
                let span = Span::current();
                record_grpc_status(&span, response.headers());
                Ok(response.map(|body| tonic::body::Body::new(Held::new(body, span, true))))
            }
            .instrument(span),
        )
    }
}

/// A worker's channel as the façade uses it: each call made within a traced request gets a
/// `grpc.client` span, and the worker gets its context as `traceparent`.
#[derive(Debug, Clone)]
pub struct GrpcClient<S> {
    inner: S,
}

impl<S> GrpcClient<S> {
    pub fn new(inner: S) -> Self {
        GrpcClient { inner }
    }
}

impl<S, E> tower::Service<GrpcRequest> for GrpcClient<S>
where
    S: tower::Service<GrpcRequest, Response = GrpcResponse, Error = E>,
    S::Future: Send + 'static,
    E: Send + 'static,
{
    type Response = GrpcResponse;
    type Error = E;
    type Future = BoxFuture<GrpcResponse, E>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: GrpcRequest) -> Self::Future {
        // Background calls (health, load watches) run in no span: they start no trace.
        if !enabled() || Span::current().is_none() {
            return Box::pin(self.inner.call(request));
        }
        let path = request.uri().path();
        let (service, method) = path
            .strip_prefix('/')
            .and_then(|p| p.split_once('/'))
            .unwrap_or(("unknown", "unknown"));
        let span = spans::grpc_client(service, method);
        spans::inject(&span, request.headers_mut());
        let response = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        Box::pin(
            async move {
                let response = response.await?;
                let span = Span::current();
                record_grpc_status(&span, response.headers());
                Ok(response.map(|body| tonic::body::Body::new(Held::new(body, span, true))))
            }
            .instrument(span),
        )
    }
}

/// `(service, method)` of a known gRPC path, else `("unknown", "unknown")`: a path is client text.
fn labels<'a>(path: &'a str, known: &HashSet<String>) -> (&'a str, &'a str) {
    match path.strip_prefix('/') {
        Some(full) if known.contains(full) => full.split_once('/').unwrap_or(UNKNOWN),
        _ => UNKNOWN,
    }
}

const UNKNOWN: (&str, &str) = ("unknown", "unknown");

fn record_grpc_status(span: &Span, headers: &HeaderMap) {
    if let Some(code) = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
    {
        spans::grpc_status(span, code);
    }
}

/// A response body that keeps its span open until it ends (or is dropped), entered while the
/// body is polled, and reads the gRPC status from the trailers when `grpc` is set.
struct Held<B> {
    inner: B,
    span: Option<Span>,
    grpc: bool,
}

impl<B> Held<B> {
    fn new(inner: B, span: Span, grpc: bool) -> Self {
        Held {
            inner,
            span: Some(span),
            grpc,
        }
    }
}

impl<B> HttpBody for Held<B>
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
        let _entered = this.span.as_ref().map(Span::enter);
        let poll = Pin::new(&mut this.inner).poll_frame(cx);
        match &poll {
            Poll::Ready(Some(Ok(frame))) => {
                if let (true, Some(trailers), Some(span)) =
                    (this.grpc, frame.trailers_ref(), this.span.as_ref())
                {
                    record_grpc_status(span, trailers);
                }
            }
            Poll::Ready(None) => {
                drop(_entered);
                this.span = None;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_methods_name_a_span_and_housekeeping_is_told_apart() {
        let known: HashSet<String> =
            ["claude_gateway.v1.ChatService/StreamChatCompletion".into()].into();
        assert_eq!(
            labels(
                "/claude_gateway.v1.ChatService/StreamChatCompletion",
                &known
            ),
            ("claude_gateway.v1.ChatService", "StreamChatCompletion")
        );
        // A path is client text: an unknown one is not copied into the trace.
        assert_eq!(labels("/ignore.previous/instructions", &known), UNKNOWN);
        assert_eq!(labels("", &known), UNKNOWN);
        assert!(housekeeping("grpc.health.v1.Health"));
        assert!(housekeeping("claude_gateway.v1.WorkerService"));
        assert!(housekeeping("grpc.reflection.v1.ServerReflection"));
        assert!(!housekeeping("claude_gateway.v1.ChatService"));
    }
}
