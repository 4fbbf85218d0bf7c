//! The gRPC contract over real sockets with tonic clients: unary and streaming chat, statuses
//! with their OpenAI trailers, the model service, health, cancellation, and the HTTP façade
//! running in front of another instance's gRPC port (`--upstream`).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use claude_gateway::grpc::pb;
use claude_gateway::grpc::pb::chat_service_client::ChatServiceClient;
use claude_gateway::grpc::pb::model_service_client::ModelServiceClient;
use common::openai_schema::assert_valid;
use common::*;
use tonic::Code;

fn user(text: &str) -> pb::ChatMessage {
    pb::ChatMessage {
        role: pb::Role::User as i32,
        content: vec![pb::ContentPart {
            part: Some(pb::content_part::Part::Text(text.into())),
        }],
        ..Default::default()
    }
}

fn params(model: &str, text: &str) -> Option<pb::ChatCompletionParams> {
    Some(pb::ChatCompletionParams {
        model: model.into(),
        messages: vec![user(text)],
        ..Default::default()
    })
}

async fn chat_client(gw: &Gateway) -> ChatServiceClient<tonic::transport::Channel> {
    ChatServiceClient::connect(gw.grpc.clone()).await.unwrap()
}

fn within<F: std::future::Future>(secs: u64, f: F) -> tokio::time::Timeout<F> {
    tokio::time::timeout(Duration::from_secs(secs), f)
}

#[tokio::test]
async fn unary_and_streaming_completions() {
    within(60, async {
        let g = FakeCliGateway::start(&[]).await;
        let mut client = chat_client(&g.gw).await;
        let response = client
            .create_chat_completion(pb::CreateChatCompletionRequest {
                params: params("gpt-4o", "Hello [[cache_read:3]]"),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.model, "gpt-4o");
        assert!(response.id.starts_with("chatcmpl-"));
        let choice = &response.choices[0];
        assert_eq!(
            choice.message.as_ref().unwrap().content.as_deref(),
            Some("Echo: Hello [[cache_read:3]]")
        );
        assert_eq!(choice.finish_reason, pb::FinishReason::Stop as i32);
        let usage = response.usage.unwrap();
        assert_eq!(usage.cached_tokens, 3);
        assert_eq!(
            usage.total_tokens,
            usage.prompt_tokens + usage.completion_tokens
        );

        let mut stream = client
            .stream_chat_completion(pb::StreamChatCompletionRequest {
                params: params("sonnet", "[[words:4]]"),
            })
            .await
            .unwrap()
            .into_inner();
        let mut messages = Vec::new();
        while let Some(m) = stream.message().await.unwrap() {
            messages.push(m);
        }
        let first = &messages[0];
        assert_eq!(
            first.choices[0].delta.as_ref().unwrap().role,
            pb::Role::Assistant as i32
        );
        let text: String = messages
            .iter()
            .flat_map(|m| &m.choices)
            .filter_map(|c| c.delta.as_ref()?.content.clone())
            .collect();
        assert_eq!(text, "w1 w2 w3 w4");
        let finish = &messages[messages.len() - 2];
        assert_eq!(
            finish.choices[0].finish_reason,
            pb::FinishReason::Stop as i32
        );
        let last = messages.last().unwrap();
        assert!(last.choices.is_empty());
        assert!(last.usage.as_ref().unwrap().completion_tokens > 0);
        assert!(
            messages
                .iter()
                .all(|m| m.id == first.id && m.model == "sonnet")
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn errors_are_statuses_with_openai_trailers() {
    within(60, async {
        let g = FakeCliGateway::start(&[]).await;
        let mut client = chat_client(&g.gw).await;
        let status = client
            .create_chat_completion(pb::CreateChatCompletionRequest {
                params: params("gpt-9", "Hi"),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(
            status.metadata().get("error-code").unwrap(),
            "model_not_found"
        );
        assert_eq!(status.metadata().get("error-param").unwrap(), "model");

        let status = client
            .create_chat_completion(pb::CreateChatCompletionRequest {
                params: Some(pb::ChatCompletionParams {
                    model: "gpt-4o".into(),
                    ..Default::default()
                }),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.metadata().get("error-param").unwrap(), "messages");

        // Failing before the first message: the call itself fails, not the stream.
        let status = client
            .stream_chat_completion(pb::StreamChatCompletionRequest {
                params: params("gpt-4o", "[[api_error:429]]"),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(status.metadata().get("retry-after").unwrap(), "2");

        // Failing after it: the stream ends with the status.
        let mut stream = client
            .stream_chat_completion(pb::StreamChatCompletionRequest {
                params: params("gpt-4o", "[[crash_mid_stream]]"),
            })
            .await
            .unwrap()
            .into_inner();
        let mut got_message = false;
        let end = loop {
            match stream.message().await {
                Ok(Some(_)) => got_message = true,
                Ok(None) => panic!("stream ended without an error"),
                Err(status) => break status,
            }
        };
        assert!(got_message);
        assert_eq!(end.code(), Code::Internal);
        assert_eq!(end.metadata().get("error-code").unwrap(), "cli_failed");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn models_and_health() {
    within(60, async {
        let g = FakeCliGateway::start(&[]).await;
        let mut models = ModelServiceClient::connect(g.gw.grpc.clone())
            .await
            .unwrap();
        let list = models
            .list_models(pb::ListModelsRequest {})
            .await
            .unwrap()
            .into_inner();
        let gpt4o = list.models.iter().find(|m| m.id == "gpt-4o").unwrap();
        assert_eq!(gpt4o.cli_model, "sonnet");
        let one = models
            .get_model(pb::GetModelRequest {
                id: "claude-sonnet-4-5".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(one.model.unwrap().cli_model, "claude-sonnet-4-5");
        let missing = models
            .get_model(pb::GetModelRequest { id: "nope".into() })
            .await
            .unwrap_err();
        assert_eq!(missing.code(), Code::NotFound);

        let channel = tonic::transport::Endpoint::from_shared(g.gw.grpc.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "claude_gateway.v1.ChatService".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            status.status(),
            tonic_health::pb::health_check_response::ServingStatus::Serving
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_cancelled_call_kills_its_process() {
    within(60, async {
        let g = FakeCliGateway::start(&[]).await;
        let mut client = chat_client(&g.gw).await;
        let mut stream = client
            .stream_chat_completion(pb::StreamChatCompletionRequest {
                params: params("gpt-4o", "[[hang_after:1]]"),
            })
            .await
            .unwrap()
            .into_inner();
        stream.message().await.unwrap().unwrap();
        let pid = g.runs()[0]["pid"].as_u64().unwrap();
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
        drop(stream);
        drop(client);
        eventually("the CLI process is killed", || {
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
        })
        .await;
    })
    .await
    .unwrap();
}

/// The HTTP façade with `--upstream` runs no CLI: everything goes to the worker over gRPC, and
/// the worker's errors come back as the same OpenAI errors.
#[tokio::test]
async fn http_facade_in_front_of_a_remote_worker() {
    within(90, async {
        let worker = FakeCliGateway::start(&[]).await;
        let facade = Gateway::builder()
            .args(["--upstream", worker.gw.grpc.as_str()])
            .args(["--claude-bin", "/nonexistent/claude"])
            .start()
            .await;
        let url = facade.url("/v1/chat/completions");

        let (status, headers, body) = post_json(
            &url,
            &serde_json::json!({"model": "gpt-4o", "temperature": 0.5,
                "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_valid("CreateChatCompletionResponse", &body);
        assert_eq!(body["choices"][0]["message"]["content"], "Echo: Hi");
        assert_eq!(headers["x-ignored-params"], "temperature");
        // The worker ran the CLI with the façade's request.
        let runs = worker.runs();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0]["stdin"][0]["request"]["systemPrompt"][0], "Be brief.");

        let mut body = chat_body("gpt-4o", "[[words:3]]");
        body["stream"] = true.into();
        body["stream_options"] = serde_json::json!({"include_usage": true});
        let (status, _, events) = post_sse(&url, &body).await;
        assert_eq!(status, 200);
        let chunks = chunks(&events);
        for c in &chunks {
            assert_valid("CreateChatCompletionStreamResponse", c);
        }
        assert_eq!(content_of(&chunks), "w1 w2 w3");
        assert!(chunks.last().unwrap()["usage"]["total_tokens"].as_u64().unwrap() > 0);

        let (status, _, body) = post_json(&url, &chat_body("gpt-9", "Hi")).await;
        assert_eq!(status, 404);
        assert_eq!(body["error"]["code"], "model_not_found");
        let (status, headers, body) = post_json(&url, &chat_body("gpt-4o", "[[api_error:429]]")).await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(headers["retry-after"], "2");
        let (status, _, body) = post_json(&facade.url("/v1/models/gpt-4o-mini"), &serde_json::json!({})).await;
        assert_eq!(status, 405, "{body}");
        let models: serde_json::Value = client()
            .get(facade.url("/v1/models"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_valid("ListModelsResponse", &models);
        let health = client().get(facade.url("/health")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        let health: serde_json::Value = health.json().await.unwrap();
        assert!(health["upstream"].as_str().unwrap().contains("SERVING"), "{health}");

        // A façade whose worker is down answers 503, not a hang or a panic.
        drop(worker);
        let (status, _, body) = post_json(&url, &chat_body("gpt-4o", "Hi")).await;
        assert_eq!(status, 503, "{body}");
        assert_valid("ErrorResponse", &body);
    })
    .await
    .unwrap();
}

/// Stored responses over gRPC alone: a completion with a `ResponseTurn` is stored, read back and
/// continued by `ResponseService`, errors are statuses with the `error-code` trailer.
#[tokio::test]
async fn stored_responses_over_grpc() {
    use claude_gateway::grpc::pb::response_service_client::ResponseServiceClient;
    within(60, async {
        let g = FakeCliGateway::start(&[]).await;
        let mut chat = chat_client(&g.gw).await;
        let mut responses = ResponseServiceClient::connect(g.gw.grpc.clone())
            .await
            .unwrap();
        let turn = |id: &str, previous: &str, text: &str| pb::CreateChatCompletionRequest {
            params: Some(pb::ChatCompletionParams {
                response: Some(pb::ResponseTurn {
                    id: id.into(),
                    previous_response_id: previous.into(),
                    store: true,
                    leading_instructions: false,
                    document: format!(r#"{{"mine":"{id}"}}"#),
                }),
                ..params("sonnet", text).unwrap()
            }),
        };
        chat.create_chat_completion(turn("resp_g1", "", "My name is Ada."))
            .await
            .unwrap();
        chat.create_chat_completion(turn("resp_g2", "resp_g1", "Who am I?"))
            .await
            .unwrap();
        let got = responses
            .get_response(pb::GetResponseRequest {
                id: "resp_g2".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .response
            .unwrap();
        assert_eq!(got.document, r#"{"mine":"resp_g2"}"#);
        assert_eq!(got.input.len(), 1, "only this turn's input");
        let reply = got.reply.unwrap();
        assert_eq!(reply.role, pb::Role::Assistant as i32);
        assert_eq!(
            reply.content[0].part,
            Some(pb::content_part::Part::Text("Echo: Who am I?".into()))
        );
        assert_eq!(got.finish_reason, pb::FinishReason::Stop as i32);
        assert_eq!(
            g.runs().len(),
            1,
            "the second turn continued the first's process"
        );

        let code = |s: &tonic::Status| {
            s.metadata()
                .get("error-code")
                .map(|v| v.to_str().unwrap().to_string())
        };
        let missing = chat
            .create_chat_completion(turn("resp_g3", "resp_nope", "x"))
            .await
            .unwrap_err();
        assert_eq!(missing.code(), Code::NotFound);
        assert_eq!(code(&missing).as_deref(), Some("response_not_found"));
        let bad = chat
            .create_chat_completion(turn("not an id", "", "x"))
            .await
            .unwrap_err();
        assert_eq!(bad.code(), Code::InvalidArgument);
        let taken = chat
            .create_chat_completion(turn("resp_g1", "", "again"))
            .await
            .unwrap_err();
        assert_eq!(taken.code(), Code::InvalidArgument);
        assert_eq!(code(&taken).as_deref(), Some("response_exists"));

        responses
            .delete_response(pb::DeleteResponseRequest {
                id: "resp_g1".into(),
            })
            .await
            .unwrap();
        let gone = responses
            .get_response(pb::GetResponseRequest {
                id: "resp_g1".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(gone.code(), Code::NotFound);
        assert_eq!(code(&gone).as_deref(), Some("response_not_found"));
    })
    .await
    .unwrap();
}

/// `CountInputTokens`: the claude engine cannot count exactly, so a valid request is
/// UNIMPLEMENTED with the reason and the `not_implemented` trailer, an invalid one the usual
/// status, and no CLI runs; a façade with `--upstream` forwards it and answers 501 in OpenAI's
/// shape with the worker's reason.
#[tokio::test]
async fn input_tokens_are_unimplemented_over_grpc_and_behind_a_facade() {
    within(90, async {
        let worker = FakeCliGateway::start(&[]).await;
        let mut client = chat_client(&worker.gw).await;
        let status = client
            .count_input_tokens(pb::CountInputTokensRequest {
                params: params("gpt-4o", "Count me #grpc-count"),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
        assert!(status.message().contains("get_context_usage"), "{status:?}");
        let trailer = |k: &str| {
            status
                .metadata()
                .get(k)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(trailer("error-code"), "not_implemented");
        assert_eq!(trailer("error-type"), "invalid_request_error");
        let status = client
            .count_input_tokens(pb::CountInputTokensRequest {
                params: params("gpt-9", "Count me"),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        // The session layer puts a session's history in first: an unknown one is not found.
        let mut in_session = params("gpt-4o", "Count me");
        in_session.as_mut().unwrap().session_id = "no-such-session".into();
        let status = client
            .count_input_tokens(pb::CountInputTokensRequest { params: in_session })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        let code = status.metadata().get("error-code").unwrap();
        assert_eq!(code.to_str().unwrap(), "session_not_found");
        assert!(
            !worker
                .runs()
                .iter()
                .any(|r| r["stdin"].to_string().contains("#grpc-count")),
            "a count must not run the CLI"
        );

        let facade = Gateway::builder()
            .args(["--upstream", worker.gw.grpc.as_str()])
            .args(["--claude-bin", "/nonexistent/claude"])
            .start()
            .await;
        let url = facade.url("/v1/responses/input_tokens");
        let body = serde_json::json!({"model": "gpt-4o", "input": "Count me #facade-count",
            "instructions": "Be brief."});
        let (status, headers, body) = post_json(&url, &body).await;
        assert_eq!(status, 501, "{body}");
        assert_valid("ErrorResponse", &body);
        assert_eq!(body["error"]["code"], "not_implemented");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("get_context_usage"),
            "{body}"
        );
        assert_eq!(headers["x-should-retry"], "false");
        let (status, _, body) =
            post_json(&url, &serde_json::json!({"model": "gpt-9", "input": "x"})).await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["error"]["code"], "model_not_found");
        assert!(
            !worker
                .runs()
                .iter()
                .any(|r| r["stdin"].to_string().contains("#facade-count")),
            "a count must not run the CLI"
        );
    })
    .await
    .unwrap();
}
