//! The gRPC door against hostile input, over real sockets with tonic clients and the fake CLI:
//! a tool schema that is not an object (once a panic of the request task) is refused the same
//! way on both doors; a message over `--max-body-bytes` is refused with a status, not a hang;
//! calls to made-up methods share one metric label; and a few hundred random
//! `CreateChatCompletionRequest`s (random roles, content, JSON text, enum values out of range,
//! huge and empty fields) each end with a gRPC status while the log shows no panic.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use claude_gateway::grpc::pb;
use claude_gateway::grpc::pb::chat_service_client::ChatServiceClient;
use common::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use tonic::Code;

fn within<F: std::future::Future>(secs: u64, f: F) -> tokio::time::Timeout<F> {
    tokio::time::timeout(Duration::from_secs(secs), f)
}

fn text(t: &str) -> pb::ContentPart {
    pb::ContentPart {
        part: Some(pb::content_part::Part::Text(t.into())),
    }
}

fn user(t: &str) -> pb::ChatMessage {
    pb::ChatMessage {
        role: pb::Role::User as i32,
        content: vec![text(t)],
        ..Default::default()
    }
}

fn tool(name: &str, parameters_json: &str) -> pb::Tool {
    pb::Tool {
        function: Some(pb::FunctionDefinition {
            name: name.into(),
            parameters_json: parameters_json.into(),
            ..Default::default()
        }),
    }
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
// Fuzz: random requests into the service
// ------------------------------------------------------------------------------------------

/// Random requests sent; each is a real call, so the count is kept modest for the small CI box.
const FUZZ_CALLS: usize = 300;

/// Text of every size class: empty, short (ASCII, Unicode, control characters), and huge.
fn any_text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => Just(String::new()),
        6 => "[a-zA-Z0-9_ .-]{1,12}",
        3 => any::<String>(),
        1 => (1usize..200_000).prop_map(|n| "x".repeat(n)),
        1 => Just("[[words:2]]".to_string()),
    ]
    .boxed()
}

/// JSON-ish text: objects, non-objects and garbage.
fn json_text() -> BoxedStrategy<String> {
    prop_oneof![
        Just(String::new()),
        Just("[1,2]".to_string()),
        Just("{\"type\":\"object\"}".to_string()),
        Just("{\"type\":\"array\"}".to_string()),
        Just("{\"properties\":{\"a\":{\"type\":12}}}".to_string()),
        Just("null".to_string()),
        Just("\"s\"".to_string()),
        Just("{oops".to_string()),
        Just("{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}".to_string()),
        any::<String>(),
    ]
    .boxed()
}

/// Enum values in and out of range.
fn any_enum() -> BoxedStrategy<i32> {
    prop_oneof![4 => 0..6i32, 1 => any::<i32>()].boxed()
}

fn any_name() -> BoxedStrategy<String> {
    prop_oneof![
        Just("f".to_string()),
        Just("get_weather".to_string()),
        any_text()
    ]
    .boxed()
}

fn content_part() -> BoxedStrategy<pb::ContentPart> {
    prop_oneof![
        4 => any_text().prop_map(|t| pb::ContentPart { part: Some(pb::content_part::Part::Text(t)) }),
        1 => Just(pb::ContentPart { part: None }),
        1 => (prop_oneof![
                Just("data:image/png;base64,iVBORw0KGgo=".to_string()),
                Just("data:image/png;base64,@@".to_string()),
                Just("https://127.0.0.1:1/x.png".to_string()),
                any_text(),
            ], any_enum())
            .prop_map(|(url, detail)| pb::ContentPart {
                part: Some(pb::content_part::Part::ImageUrl(pb::ImageUrl { url, detail })),
            }),
    ]
    .boxed()
}

fn tool_call() -> BoxedStrategy<pb::ToolCall> {
    (
        prop_oneof![Just("t1".to_string()), any_text()],
        proptest::option::of((any_name(), json_text())),
    )
        .prop_map(|(id, function)| pb::ToolCall {
            id,
            function: function.map(|(name, arguments)| pb::FunctionCall { name, arguments }),
        })
        .boxed()
}

fn message() -> BoxedStrategy<pb::ChatMessage> {
    (
        any_enum(),
        proptest::collection::vec(content_part(), 0..3),
        any_text(),
        proptest::collection::vec(tool_call(), 0..2),
        prop_oneof![Just("t1".to_string()), any_text()],
    )
        .prop_map(
            |(role, content, name, tool_calls, tool_call_id)| pb::ChatMessage {
                role,
                content,
                name,
                tool_calls,
                tool_call_id,
            },
        )
        .boxed()
}

fn function() -> BoxedStrategy<pb::Tool> {
    proptest::option::of((any_name(), any_text(), json_text(), any::<Option<bool>>()))
        .prop_map(|f| pb::Tool {
            function: f.map(|(name, description, parameters_json, strict)| {
                pb::FunctionDefinition {
                    name,
                    description,
                    parameters_json,
                    strict,
                }
            }),
        })
        .boxed()
}

/// Half the calls: well-formed requests with an odd corner or two (a tool, a schema, stop
/// sequences, images, history), most of which the fake CLI answers.
fn plausible_params() -> BoxedStrategy<pb::ChatCompletionParams> {
    let tool = (
        prop_oneof![Just("f".to_string()), "[a-z_]{1,10}"],
        prop_oneof![
            4 => Just(r#"{"type":"object","properties":{"city":{"type":"string"}}}"#.to_string()),
            2 => Just(String::new()),
            1 => json_text(),
        ],
    )
        .prop_map(|(name, schema)| tool(&name, &schema));
    let message = prop_oneof![
        4 => "[a-zA-Z ]{1,20}".prop_map(|t| user(&t)),
        1 => "[a-zA-Z ]{1,20}".prop_map(|t| pb::ChatMessage {
            role: pb::Role::System as i32,
            content: vec![text(&t)],
            ..Default::default()
        }),
        1 => "[a-zA-Z ]{1,20}".prop_map(|t| pb::ChatMessage {
            role: pb::Role::Assistant as i32,
            content: vec![text(&t)],
            ..Default::default()
        }),
        1 => content_part().prop_map(|p| pb::ChatMessage {
            role: pb::Role::User as i32,
            content: vec![text("What is this?"), p],
            ..Default::default()
        }),
    ];
    (
        prop_oneof![Just("gpt-4o"), Just("sonnet"), Just("haiku")],
        proptest::collection::vec(message, 0..3),
        proptest::collection::vec(tool, 0..2),
        proptest::collection::vec("[a-zA-Z.\n]{1,8}", 0..3),
        proptest::option::of(1..3u32),
        proptest::option::of(1..200u32),
        prop_oneof![
            3 => Just(pb::ResponseFormatType::Unspecified as i32),
            1 => Just(pb::ResponseFormatType::JsonObject as i32)
        ],
    )
        .prop_map(
            |(model, mut messages, tools, stop, n, max_tokens, format)| {
                messages.push(user("[[words:2]]"));
                pb::ChatCompletionParams {
                    model: model.into(),
                    messages,
                    tools,
                    stop,
                    n,
                    max_tokens,
                    response_format: Some(pb::ResponseFormat {
                        r#type: format,
                        json_schema: None,
                    }),
                    ..Default::default()
                }
            },
        )
        .boxed()
}

fn params() -> BoxedStrategy<pb::ChatCompletionParams> {
    prop_oneof![plausible_params(), wild_params()].boxed()
}

/// The other half: every field random, enum values out of range, huge and empty texts.
fn wild_params() -> BoxedStrategy<pb::ChatCompletionParams> {
    let tool_choice = proptest::option::of(prop_oneof![
        any_enum().prop_map(|m| pb::ToolChoice {
            choice: Some(pb::tool_choice::Choice::Mode(m))
        }),
        any_name().prop_map(|n| pb::ToolChoice {
            choice: Some(pb::tool_choice::Choice::FunctionName(n))
        }),
        Just(pb::ToolChoice { choice: None }),
    ]);
    let response_format = proptest::option::of(
        (any_enum(), proptest::option::of((any_text(), json_text()))).prop_map(
            |(r#type, schema)| pb::ResponseFormat {
                r#type,
                json_schema: schema.map(|(name, schema_json)| pb::JsonSchemaFormat {
                    name,
                    schema_json,
                    ..Default::default()
                }),
            },
        ),
    );
    let sampling = proptest::option::of(
        (
            proptest::option::of(any::<f64>()),
            proptest::option::of(any::<bool>()),
            proptest::option::of(any::<u32>()),
            proptest::collection::vec(any_text(), 0..2),
        )
            .prop_map(
                |(temperature, logprobs, top_logprobs, other)| pb::SamplingParams {
                    temperature,
                    logprobs,
                    top_logprobs,
                    other,
                    ..Default::default()
                },
            ),
    );
    let head = (
        prop_oneof![
            4 => Just("gpt-4o".to_string()),
            1 => Just("sonnet".to_string()),
            1 => Just("claude-sonnet-4-5".to_string()),
            1 => any_text(),
        ],
        proptest::collection::vec(message(), 0..4),
        proptest::collection::vec(function(), 0..3),
        tool_choice,
        proptest::option::of(any::<bool>()),
        response_format,
    );
    let tail = (
        proptest::collection::vec(any_text(), 0..6),
        proptest::option::of(prop_oneof![0..12u32, any::<u32>()]),
        proptest::option::of(prop_oneof![0..64u32, any::<u32>()]),
        sampling,
        prop_oneof![
            3 => Just(String::new()),
            1 => Just("high".to_string()),
            1 => any_text()
        ],
    );
    (head, tail)
        .prop_map(
            |(
                (model, mut messages, tools, tool_choice, parallel_tool_calls, response_format),
                (stop, n, max_tokens, sampling, reasoning_effort),
            )| {
                // Most requests end with a user message, so many get past validation to the CLI.
                messages.push(user("[[words:2]]"));
                pb::ChatCompletionParams {
                    model,
                    messages,
                    tools,
                    tool_choice,
                    parallel_tool_calls,
                    response_format,
                    stop,
                    n,
                    max_tokens,
                    session_id: String::new(),
                    metadata: Default::default(),
                    sampling,
                    reasoning_effort,
                }
            },
        )
        .boxed()
}

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
        let strategy = params();
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
