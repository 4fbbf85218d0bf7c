//! OpenTelemetry traces (`--otlp-endpoint`), received by an OTLP collector in the test (a
//! tonic `TraceService`, or an axum handler for http/protobuf, both on opentelemetry-proto's
//! types): one request is one trace with the gateway's spans and their parent links, across a
//! façade and its worker too; a client's `traceparent` is the parent; nothing leaves the
//! gateway without the flag.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;

use crate::*;

/// One span as the collector got it.
#[derive(Debug, Clone)]
struct Got {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    /// Start and end, Unix nanoseconds.
    times: (u64, u64),
    attrs: HashMap<String, String>,
}

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Got>>>,
}

impl Collector {
    fn take(&self, request: ExportTraceServiceRequest) {
        let mut spans = self.spans.lock().unwrap();
        for resource in request.resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .map(|kv| value(kv.value.as_ref().and_then(|v| v.value.as_ref())))
                .unwrap_or_default();
            for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                spans.push(Got {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent: hex(&span.parent_span_id),
                    times: (span.start_time_unix_nano, span.end_time_unix_nano),
                    attrs: span
                        .attributes
                        .iter()
                        .map(|kv| {
                            let v = value(kv.value.as_ref().and_then(|v| v.value.as_ref()));
                            (kv.key.clone(), v)
                        })
                        .collect(),
                });
            }
        }
    }

    fn spans(&self) -> Vec<Got> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits (bounded) until spans of every name in `names` arrived from `service`.
    async fn wait_for(&self, service: &str, names: &[&str]) -> Vec<Got> {
        for _ in 0..200 {
            let spans = self.spans();
            let has = |n: &&str| spans.iter().any(|s| s.service == service && s.name == *n);
            if names.iter().all(has) {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{service} never exported all of {names:?}; got {:#?}",
            self.spans()
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn value(v: Option<&AnyValue>) -> String {
    match v {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.take(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// An OTLP/gRPC collector on 127.0.0.1; its URL.
async fn grpc_collector() -> (Collector, String) {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let service = TraceServiceServer::new(collector.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
    });
    (collector, url)
}

/// An OTLP/HTTP (protobuf) collector on 127.0.0.1; its base URL (the gateway adds /v1/traces).
async fn http_collector() -> (Collector, String) {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let state = collector.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: bytes::Bytes| async move {
            let request = ExportTraceServiceRequest::decode(body).unwrap();
            state.take(request);
            let reply = ExportTraceServiceResponse {
                partial_success: None,
            };
            (
                [("content-type", "application/x-protobuf")],
                reply.encode_to_vec(),
            )
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (collector, url)
}

/// A fake-CLI gateway exporting to `endpoint` as `service`, batches sent every 50 ms.
async fn traced(endpoint: &str, protocol: &str, service: &str) -> FakeCliGateway {
    start_with_env(
        &[
            "--otlp-endpoint",
            endpoint,
            "--otlp-protocol",
            protocol,
            "--otlp-service-name",
            service,
        ],
        &[("OTEL_BSP_SCHEDULE_DELAY", "50")],
    )
    .await
}

/// A traced fake-CLI gateway (OTLP/gRPC, service `gw`) with more flags.
async fn traced_with(endpoint: &str, extra: &[&str]) -> FakeCliGateway {
    let mut args = vec!["--otlp-endpoint", endpoint, "--otlp-service-name", "gw"];
    args.extend_from_slice(extra);
    start_with_env(&args, &[("OTEL_BSP_SCHEDULE_DELAY", "50")]).await
}

fn one<'a>(spans: &'a [Got], service: &str, name: &str) -> &'a Got {
    let found: Vec<_> = spans
        .iter()
        .filter(|s| s.service == service && s.name == name)
        .collect();
    assert_eq!(found.len(), 1, "one {name} of {service}: {spans:#?}");
    found[0]
}

/// The spans of one local request: all in one trace, each with its parent.
fn assert_request_tree(spans: &[Got], service: &str) -> String {
    let http = one(spans, service, "http.server");
    let trace = http.trace_id.clone();
    for span in spans.iter().filter(|s| s.service == service) {
        assert_eq!(span.trace_id, trace, "one trace: {spans:#?}");
    }
    assert_eq!(http.attrs["http.request.method"], "POST");
    assert_eq!(http.attrs["http.route"], "/v1/chat/completions");
    assert_eq!(http.attrs["http.response.status_code"], "200");
    let queue = one(spans, service, "queue_wait");
    assert_eq!(queue.parent, http.span_id, "queue_wait under http.server");
    let turn = one(spans, service, "claude_turn");
    assert_eq!(turn.parent, http.span_id, "claude_turn under http.server");
    assert_eq!(turn.attrs["claude.process"], "spawned", "{turn:#?}");
    assert_eq!(turn.attrs["gen_ai.request.model"], "sonnet");
    assert!(
        turn.attrs["gen_ai.usage.output_tokens"]
            .parse::<u32>()
            .unwrap()
            > 0,
        "{turn:#?}"
    );
    assert!(turn.attrs.contains_key("claude.cost_usd"), "{turn:#?}");
    let process = one(spans, service, "claude_process");
    assert_eq!(
        process.parent, turn.span_id,
        "claude_process under claude_turn"
    );
    assert!(process.attrs.contains_key("claude.pid"), "{process:#?}");
    let first = one(spans, service, "first_token");
    assert_eq!(first.parent, turn.span_id, "first_token under claude_turn");
    trace
}

const LOCAL: &[&str] = &[
    "http.server",
    "queue_wait",
    "claude_turn",
    "claude_process",
    "first_token",
];

#[tokio::test]
async fn one_request_is_one_trace_with_the_gateway_spans() {
    bounded(async {
        let (collector, url) = grpc_collector().await;
        let fake = traced(&url, "grpc", "gw").await;
        let (status, _, body) = post_json(&completions(&fake), &chat_body("sonnet", "hi")).await;
        assert_eq!(status, 200, "{body}");
        let spans = collector.wait_for("gw", LOCAL).await;
        assert_eq!(spans.len(), LOCAL.len(), "nothing else: {spans:#?}");
        let first = assert_request_tree(&spans, "gw");

        // The same request again reuses the parked process: a new trace, saying so.
        let (status, _, body) = post_json(&completions(&fake), &chat_body("sonnet", "hi")).await;
        assert_eq!(status, 200, "{body}");
        let turn = loop {
            let spans = collector.spans();
            if let Some(t) = spans
                .iter()
                .find(|s| s.name == "claude_turn" && s.trace_id != first)
            {
                break t.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(turn.attrs["claude.process"], "recycled", "{turn:#?}");
    })
    .await;
}

#[tokio::test]
async fn a_streamed_request_is_traced_to_its_last_event() {
    bounded(async {
        let (collector, url) = grpc_collector().await;
        let fake = traced(&url, "grpc", "gw").await;
        let body = stream_body("sonnet", "[[words:4]] [[delay_ms:50]]", true);
        let (status, _, events) = post_sse(&completions(&fake), &body).await;
        assert_eq!(status, 200);
        assert!(events.iter().any(|e| e.data == "[DONE]"));
        let spans = collector.wait_for("gw", LOCAL).await;
        assert_request_tree(&spans, "gw");
        let http = one(&spans, "gw", "http.server");
        let turn = one(&spans, "gw", "claude_turn");
        let first = one(&spans, "gw", "first_token");
        // The request's span covers the whole stream; the first token comes before the end.
        assert!(http.times.1 >= turn.times.1, "{http:#?} {turn:#?}");
        assert!(first.times.1 <= turn.times.1, "{first:#?} {turn:#?}");
        assert_eq!(turn.attrs["claude.finish_reason"], "stop", "{turn:#?}");
    })
    .await;
}

#[tokio::test]
async fn a_turn_in_a_warm_process_says_so_and_spawns_nothing() {
    bounded(async {
        let (collector, url) = grpc_collector().await;
        let fake = traced_with(&url, &["--pool-size", "1", "--pool-models", "sonnet"]).await;
        let gateway = fake.gw.pid();
        eventually("the pool to have its process", || {
            fake_children(gateway).len() == 1
        })
        .await;
        let (status, _, body) = post_json(&completions(&fake), &chat_body("sonnet", "hi")).await;
        assert_eq!(status, 200, "{body}");
        let names = ["http.server", "queue_wait", "claude_turn", "first_token"];
        let spans = collector.wait_for("gw", &names).await;
        let turn = one(&spans, "gw", "claude_turn");
        assert_eq!(turn.attrs["claude.process"], "warm", "{turn:#?}");
        // The pool's replacement starts in the background: no part of the request's trace.
        let mut got: Vec<_> = spans.iter().map(|s| s.name.as_str()).collect();
        got.sort_unstable();
        let mut want = names.to_vec();
        want.sort_unstable();
        assert_eq!(got, want, "{spans:#?}");
    })
    .await;
}

#[tokio::test]
async fn a_sessions_second_turn_runs_in_the_process_kept_for_it() {
    bounded(async {
        let (collector, url) = grpc_collector().await;
        let fake = traced(&url, "grpc", "gw").await;
        let (status, _, session) = post_json(&fake.gw.url("/v1/sessions"), &json!({})).await;
        assert_eq!(status, 201, "{session}");
        let id = session["id"].as_str().unwrap().to_string();
        let mut origins = Vec::new();
        for text in ["one", "two"] {
            let body = json!({"model": "sonnet", "session_id": id,
                "messages": [{"role": "user", "content": text}]});
            let (status, _, reply) = post_json(&completions(&fake), &body).await;
            assert_eq!(status, 200, "{reply}");
            let turn = loop {
                let spans = collector.spans();
                let turns: Vec<_> = spans.iter().filter(|s| s.name == "claude_turn").collect();
                if turns.len() > origins.len() {
                    break turns[origins.len()].clone();
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            origins.push(turn.attrs["claude.process"].clone());
        }
        assert_eq!(origins, ["spawned", "session"]);
    })
    .await;
}

#[tokio::test]
async fn a_facade_and_its_worker_share_one_trace_across_the_grpc_hop() {
    bounded(async {
        let (collector, url) = grpc_collector().await;
        let worker = traced(&url, "grpc", "worker").await;
        let facade = Gateway::builder()
            .args(["--upstream", &worker.gw.grpc])
            .args(["--otlp-endpoint", &url, "--otlp-service-name", "facade"])
            .env("OTEL_BSP_SCHEDULE_DELAY", "50")
            .start()
            .await;
        let (status, _, body) = post_json(
            &facade.url("/v1/chat/completions"),
            &chat_body("sonnet", "hi"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        collector
            .wait_for("facade", &["http.server", "grpc.client"])
            .await;
        let spans = collector
            .wait_for("worker", &["grpc.server", "claude_turn", "first_token"])
            .await;
        let http = one(&spans, "facade", "http.server");
        let client = one(&spans, "facade", "grpc.client");
        let server = one(&spans, "worker", "grpc.server");
        let turn = one(&spans, "worker", "claude_turn");
        // One trace: health and load checks between them start none.
        for span in &spans {
            assert_eq!(span.trace_id, http.trace_id, "one trace: {spans:#?}");
        }
        assert_eq!(
            client.parent, http.span_id,
            "grpc.client under the façade's request"
        );
        assert_eq!(
            server.parent, client.span_id,
            "the worker's span under the façade's call"
        );
        assert_eq!(
            turn.parent, server.span_id,
            "the turn under the worker's call"
        );
        assert_eq!(client.attrs["rpc.system"], "grpc");
        assert_eq!(client.attrs["rpc.service"], "claude_gateway.v1.ChatService");
        assert_eq!(server.attrs["rpc.service"], "claude_gateway.v1.ChatService");
        assert_eq!(server.attrs["rpc.method"], client.attrs["rpc.method"]);
        assert_eq!(server.attrs["rpc.grpc.status_code"], "0", "{server:#?}");
        assert_eq!(turn.attrs["claude.process"], "spawned");
    })
    .await;
}

#[tokio::test]
async fn the_clients_traceparent_is_the_parent() {
    bounded(async {
        let (collector, url) = grpc_collector().await;
        let fake = traced(&url, "grpc", "gw").await;
        let (trace, parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
        let response = client()
            .post(completions(&fake))
            .header("traceparent", format!("00-{trace}-{parent}-01"))
            .json(&chat_body("sonnet", "hi"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let spans = collector.wait_for("gw", LOCAL).await;
        let http = one(&spans, "gw", "http.server");
        assert_eq!(http.trace_id, trace);
        assert_eq!(http.parent, parent);
        assert_eq!(assert_request_tree(&spans, "gw"), trace);
    })
    .await;
}

#[tokio::test]
async fn a_grpc_callers_traceparent_is_the_parent_of_the_grpc_server_span() {
    use claude_gateway::grpc::pb;
    bounded(async {
        let (collector, url) = grpc_collector().await;
        let fake = traced(&url, "grpc", "gw").await;
        let (trace, parent) = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
        let mut client = pb::chat_service_client::ChatServiceClient::connect(fake.gw.grpc.clone())
            .await
            .unwrap();
        let mut request = tonic::Request::new(pb::CreateChatCompletionRequest {
            params: Some(pb::ChatCompletionParams {
                model: "sonnet".into(),
                messages: vec![pb::ChatMessage {
                    role: pb::Role::User as i32,
                    content: vec![pb::ContentPart {
                        part: Some(pb::content_part::Part::Text("hi".into())),
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }),
        });
        let value = format!("00-{trace}-{parent}-01").parse().unwrap();
        request.metadata_mut().insert("traceparent", value);
        client.create_chat_completion(request).await.unwrap();
        let spans = collector
            .wait_for("gw", &["grpc.server", "claude_turn"])
            .await;
        let server = one(&spans, "gw", "grpc.server");
        assert_eq!(
            (server.trace_id.as_str(), server.parent.as_str()),
            (trace, parent)
        );
        assert_eq!(server.attrs["rpc.method"], "CreateChatCompletion");
        assert_eq!(server.attrs["rpc.grpc.status_code"], "0", "{server:#?}");
        let turn = one(&spans, "gw", "claude_turn");
        assert_eq!(turn.parent, server.span_id, "the turn under the gRPC call");
        assert_eq!(turn.trace_id, trace);
    })
    .await;
}

#[tokio::test]
async fn http_protobuf_export_works_and_is_flushed_at_shutdown() {
    bounded(async {
        let (collector, url) = http_collector().await;
        // The default 5 s batch delay: the spans arrive by the flush at SIGTERM.
        let mut fake = start_with_env(
            &[
                "--otlp-endpoint",
                &url,
                "--otlp-protocol",
                "http/protobuf",
                "--otlp-service-name",
                "gw",
            ],
            &[],
        )
        .await;
        let (status, _, body) = post_json(&completions(&fake), &chat_body("sonnet", "hi")).await;
        assert_eq!(status, 200, "{body}");
        let pid = nix::unistd::Pid::from_raw(fake.gw.pid() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let exit = tokio::time::timeout(Duration::from_secs(20), fake.gw.child.wait())
            .await
            .expect("the gateway exits after SIGTERM")
            .unwrap();
        assert!(exit.success(), "{exit:?}: {}", fake.gw.stderr());
        let spans = collector.spans();
        assert_eq!(spans.len(), LOCAL.len(), "{spans:#?}");
        assert_request_tree(&spans, "gw");
    })
    .await;
}

#[tokio::test]
async fn nothing_is_exported_without_the_flag() {
    bounded(async {
        let (collector, url) = grpc_collector().await;
        // The SDK's own variables do not switch traces on: only --otlp-endpoint does.
        let fake = start_with_env(&[], &[("OTEL_EXPORTER_OTLP_ENDPOINT", url.as_str())]).await;
        let response = client()
            .post(completions(&fake))
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .json(&chat_body("sonnet", "hi"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        // Long past the 50 ms batches of the traced tests, and past a SIGTERM's flush.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let pid = nix::unistd::Pid::from_raw(fake.gw.pid() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let mut gw = fake.gw;
        let _ = tokio::time::timeout(Duration::from_secs(20), gw.child.wait()).await;
        assert!(collector.spans().is_empty(), "{:#?}", collector.spans());
    })
    .await;
}
