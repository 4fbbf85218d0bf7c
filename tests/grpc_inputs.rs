//! The gRPC door against hostile input, over real sockets with tonic clients and the fake CLI:
//! a tool schema that is not an object (once a panic of the request task) is refused the same
//! way on both doors; a message over `--max-body-bytes` is refused with a status, not a hang;
//! calls to made-up methods share one metric label; and a few hundred random
//! `CreateChatCompletionRequest`s (random roles, content, JSON text, enum values out of range,
//! huge and empty fields) each end with a gRPC status while the log shows no panic.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/pb_gen.rs"]
mod pb_gen;

use std::time::Duration;

use claude_gateway::grpc::pb;
use claude_gateway::grpc::pb::chat_service_client::ChatServiceClient;
use common::*;
use pb_gen::{tool, user};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use tonic::Code;

fn within<F: std::future::Future>(secs: u64, f: F) -> tokio::time::Timeout<F> {
    tokio::time::timeout(Duration::from_secs(secs), f)
}

fn with_tools(tools: Vec<pb::Tool>) -> Option<pb::ChatCompletionParams> {
    Some(pb::ChatCompletionParams {
        model: "gpt-4o".into(),
        messages: vec![user("Hi")],
        tools,
        ..Default::default()
    })
}

async fn chat_client(gw: &Gateway) -> ChatServiceClient<tonic::transport::Channel> {
    ChatServiceClient::connect(gw.grpc.clone()).await.unwrap()
}

fn assert_no_panic(gw: &Gateway) {
    let log = gw.stderr();
    assert!(!log.contains("panicked"), "the gateway panicked:\n{log}");
}

/// Issue 9: `parameters_json: "[1,2]"` reached the MCP `tools/list` answer and panicked the
/// request task (serde_json's `IndexMut` on an array); HTTP refused it in its conversion only.
#[tokio::test]
async fn a_non_object_tool_schema_is_refused_alike_on_both_doors() {
    within(60, async {
        let g = FakeCliGateway::start(&[]).await;
        let mut client = chat_client(&g.gw).await;
        for schema in ["[1,2]", "\"object\"", "42", "null", "true"] {
            let status = client
                .create_chat_completion(pb::CreateChatCompletionRequest {
                    params: with_tools(vec![tool("f", schema)]),
                })
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{schema}: {status:?}");
            assert_eq!(
                status.metadata().get("error-param").unwrap(),
                "tools[0].function.parameters",
                "{schema}"
            );
            let status = client
                .stream_chat_completion(pb::StreamChatCompletionRequest {
                    params: with_tools(vec![tool("f", schema)]),
                })
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{schema}");
        }
        let (status, _, body) = post_json(
            &g.gw.url("/v1/chat/completions"),
            &serde_json::json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}],
                "tools": [{"type": "function", "function": {"name": "f", "parameters": [1, 2]}}]}),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["param"], "tools[0].function.parameters");
        assert!(
            g.runs().is_empty(),
            "no CLI was started for a refused request"
        );

        // A valid schema without `type` is listed to Claude as an object schema.
        let response = client
            .create_chat_completion(pb::CreateChatCompletionRequest {
                params: with_tools(vec![tool("f", r#"{"properties":{"a":{"type":"string"}}}"#)]),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.choices.len(), 1);
        let runs = g.runs();
        let listed = runs[0]["stdin"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|line| {
                line.pointer("/response/response/mcp_response/result/tools")
                    .cloned()
            })
            .unwrap_or_else(|| panic!("no tools/list answer on stdin: {}", runs[0]["stdin"]));
        assert_eq!(listed[0]["name"], "f");
        assert_eq!(listed[0]["inputSchema"]["type"], "object");
        assert_no_panic(&g.gw);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn limits_name_the_field_on_the_grpc_door() {
    within(60, async {
        let g = FakeCliGateway::start(&[]).await;
        let mut client = chat_client(&g.gw).await;
        let mut long_stop = with_tools(vec![]).unwrap();
        long_stop.stop = vec!["END".into(), "x".repeat(10_000)];
        let many_tools = with_tools((0..200).map(|i| tool(&format!("f{i}"), "")).collect());
        let long_name = with_tools(vec![tool(&"n".repeat(100_000), "")]);
        let mut long_description = tool("f", "");
        if let Some(f) = long_description.function.as_mut() {
            f.description = "d".repeat(100_000);
        }
        for (params, param) in [
            (Some(long_stop), "stop[1]"),
            (many_tools, "tools"),
            (long_name, "tools[0].function.name"),
            (
                with_tools(vec![long_description]),
                "tools[0].function.description",
            ),
        ] {
            let status = client
                .create_chat_completion(pb::CreateChatCompletionRequest { params })
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{param}: {status:?}");
            assert_eq!(status.metadata().get("error-param").unwrap(), param);
            assert!(
                status.message().len() < 1000,
                "the message quotes a bounded part of what was sent: {}",
                status.message()
            );
        }
        assert_no_panic(&g.gw);
    })
    .await
    .unwrap();
}

/// `--max-body-bytes` bounds gRPC messages too: just over it is refused with a status at once.
#[tokio::test]
async fn a_message_over_max_body_bytes_is_refused_with_a_status() {
    within(60, async {
        let limit = 64 * 1024;
        let g = FakeCliGateway::start(&["--max-body-bytes", &limit.to_string()]).await;
        let mut client = chat_client(&g.gw)
            .await
            .max_encoding_message_size(usize::MAX);
        let request = |len: usize| pb::CreateChatCompletionRequest {
            params: Some(pb::ChatCompletionParams {
                model: "gpt-4o".into(),
                messages: vec![user(&"a".repeat(len))],
                ..Default::default()
            }),
        };
        // The encoded message is the text plus a few bytes of framing.
        let over = client
            .create_chat_completion(request(limit))
            .await
            .unwrap_err();
        assert!(
            matches!(over.code(), Code::OutOfRange | Code::ResourceExhausted),
            "{over:?}"
        );
        let under = client.create_chat_completion(request(limit - 100)).await;
        assert!(under.is_ok(), "{under:?}");
        assert_no_panic(&g.gw);
    })
    .await
    .unwrap();
}

/// Calls refused before routing (here: no API key) to random made-up methods must not each
/// create a new label value.
#[tokio::test]
async fn refused_calls_to_made_up_methods_share_one_metric_label() {
    within(60, async {
        let g = FakeCliGateway::start(&["--api-keys", "sk-metrics"]).await;
        let channel = tonic::transport::Endpoint::from_shared(g.gw.grpc.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut grpc = tonic::client::Grpc::new(channel);
        for i in 0..20 {
            grpc.ready().await.unwrap();
            let path = format!("/x.Y{i}/Method{}", uuid::Uuid::new_v4().simple());
            let status = grpc
                .unary::<_, pb::ListModelsResponse, _>(
                    tonic::Request::new(pb::ListModelsRequest {}),
                    path.parse().unwrap(),
                    tonic_prost::ProstCodec::default(),
                )
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::Unauthenticated);
        }
        let metrics = client()
            .get(g.gw.url("/metrics"))
            .bearer_auth("sk-metrics")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let lines: Vec<&str> = metrics
            .lines()
            .filter(|l| l.starts_with("claude_gateway_grpc_requests_total{"))
            .collect();
        assert!(
            lines
                .iter()
                .all(|l| !l.contains("x.Y") && !l.contains("Method")),
            "{lines:#?}"
        );
        let unknown = lines
            .iter()
            .find(|l| l.contains("method=\"unknown\"") && l.contains("Unauthenticated"))
            .unwrap_or_else(|| panic!("no unknown label: {lines:#?}"));
        assert!(unknown.ends_with(" 20"), "{unknown}");
        let log = g.gw.stderr();
        assert!(!log.contains("x.Y1/"), "the raw path was logged:\n{log}");
    })
    .await
    .unwrap();
}

// ------------------------------------------------------------------------------------------
// Fuzz: random requests into the service (generators in `common/pb_gen.rs`)
// ------------------------------------------------------------------------------------------

/// Random requests sent; each is a real call, so the count is kept modest for the small CI box.
const FUZZ_CALLS: usize = 300;

/// How a call may end: OK, or a status the gateway made from one of its errors (it carries
/// `error-type`), or tonic's own OUT_OF_RANGE for a message over the size limit. Never CANCELLED
/// or UNKNOWN, nor a transport error: that is what a panicking request task looks like.
fn check_status(status: &tonic::Status) -> Result<Code, String> {
    let code = status.code();
    let ours = status.metadata().get("error-type").is_some();
    match code {
        Code::Cancelled | Code::Unknown => Err(format!("{status:?}")),
        Code::OutOfRange => Ok(code),
        _ if ours => Ok(code),
        _ => Err(format!("not a gateway status: {status:?}")),
    }
}

#[tokio::test]
async fn random_requests_always_end_with_a_status_and_never_panic() {
    within(400, async {
        let g = FakeCliGateway::start(&[]).await;
        let mut client = chat_client(&g.gw)
            .await
            .max_encoding_message_size(usize::MAX);
        // A fixed seed: every run sends the same requests, so a failure reproduces.
        let mut runner = TestRunner::new_with_rng(
            Config::default(),
            TestRng::deterministic_rng(RngAlgorithm::ChaCha),
        );
        let strategy = pb_gen::params();
        let mut codes = std::collections::BTreeMap::<String, usize>::new();
        for i in 0..FUZZ_CALLS {
            let params = strategy.new_tree(&mut runner).unwrap().current();
            let shown = format!("{params:?}");
            let shown: String = shown.chars().take(600).collect();
            let stream = i % 3 == 0;
            let end = if stream {
                let call = client.stream_chat_completion(pb::StreamChatCompletionRequest {
                    params: Some(params),
                });
                match within(30, call).await.expect("a call hung") {
                    Err(status) => check_status(&status),
                    Ok(response) => {
                        let mut stream = response.into_inner();
                        loop {
                            match within(30, stream.message()).await.expect("a stream hung") {
                                Ok(Some(_)) => {}
                                Ok(None) => break Ok(Code::Ok),
                                Err(status) => break check_status(&status),
                            }
                        }
                    }
                }
            } else {
                let call = client.create_chat_completion(pb::CreateChatCompletionRequest {
                    params: Some(params),
                });
                match within(30, call).await.expect("a call hung") {
                    Ok(_) => Ok(Code::Ok),
                    Err(status) => check_status(&status),
                }
            };
            let code = end.unwrap_or_else(|e| panic!("call {i} ended badly: {e}\n{shown}"));
            *codes.entry(format!("{code:?}")).or_default() += 1;
        }
        eprintln!("codes of {FUZZ_CALLS} random calls: {codes:?}");
        assert!(
            codes.contains_key("Ok"),
            "some requests were valid: {codes:?}"
        );
        assert!(
            codes.contains_key("InvalidArgument"),
            "some requests were refused: {codes:?}"
        );
        assert_no_panic(&g.gw);
    })
    .await
    .unwrap();
}

/// What a client sends (its model id, its texts, a request id that is not a plain id) appears in
/// no log line above debug, on either door; plain request ids are still echoed.
#[tokio::test]
async fn client_text_stays_out_of_the_log_above_debug() {
    within(60, async {
        let g = FakeCliGateway::start(&[]).await;
        let mut client = chat_client(&g.gw).await;
        let mut params = with_tools(vec![tool("f", "[1,2]")]).unwrap();
        params.model = "SECRET-model".into();
        let mut request = tonic::Request::new(pb::CreateChatCompletionRequest {
            params: Some(params),
        });
        request
            .metadata_mut()
            .insert("x-request-id", "SECRET id with spaces".parse().unwrap());
        let status = client.create_chat_completion(request).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        let id = status
            .metadata()
            .get("x-request-id")
            .unwrap()
            .to_str()
            .unwrap();
        assert_eq!(id.len(), 36, "a new UUID instead of the unsafe id: {id}");
        let status = client
            .create_chat_completion(pb::CreateChatCompletionRequest {
                params: with_tools(vec![tool("SECRET name", "")]),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);

        let response = client_request(&g.gw, "SECRET id with spaces").await;
        assert_eq!(response.status(), 404);
        let id = response.headers()["x-request-id"].to_str().unwrap();
        assert_eq!(id.len(), 36, "{id}");
        let response = client_request(&g.gw, "plain-id-77").await;
        assert_eq!(response.headers()["x-request-id"], "plain-id-77");

        let log = g.gw.stderr();
        assert!(
            log.contains("SECRET"),
            "debug lines keep the detail:\n{log}"
        );
        let loud: Vec<String> = log
            .lines()
            .map(without_colours)
            .filter(|l| l.contains(" INFO ") || l.contains(" WARN ") || l.contains(" ERROR "))
            .filter(|l| l.contains("SECRET"))
            .collect();
        assert!(loud.is_empty(), "client text above debug: {loud:#?}");
        assert_no_panic(&g.gw);
    })
    .await
    .unwrap();
}

/// A log line without its ANSI colour codes (`ESC [ … m`).
fn without_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_escape = false;
    for c in line.chars() {
        match (in_escape, c) {
            (false, '\u{1b}') => in_escape = true,
            (false, c) => out.push(c),
            (true, 'm') => in_escape = false,
            (true, _) => {}
        }
    }
    out
}

async fn client_request(gw: &Gateway, id: &str) -> reqwest::Response {
    client()
        .post(gw.url("/v1/chat/completions"))
        .header("x-request-id", id)
        .json(&serde_json::json!({"model": "SECRET-http-model",
            "messages": [{"role": "user", "content": "SECRET text"}]}))
        .send()
        .await
        .unwrap()
}
