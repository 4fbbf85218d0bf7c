//! Gateway API keys and the per-key rate limit, end to end over real sockets on the fake CLI:
//! refusals in OpenAI's shape over HTTP and as UNAUTHENTICATED / RESOURCE_EXHAUSTED over gRPC,
//! keys from the flag, a file and the environment, the open health and docs routes, a façade
//! sending its `--upstream-api-key` to a keyed worker, the `x-ratelimit-*` headers, and the
//! official Python SDK raising `AuthenticationError` and `RateLimitError`.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use claude_gateway::grpc::pb;
use claude_gateway::grpc::pb::chat_service_client::ChatServiceClient;
use claude_gateway::grpc::pb::model_service_client::ModelServiceClient;
use common::openai_schema::assert_valid;
use common::*;
use reqwest::header::HeaderMap;
use serde_json::Value;
use tonic::Code;

fn within<F: std::future::Future>(secs: u64, f: F) -> tokio::time::Timeout<F> {
    tokio::time::timeout(Duration::from_secs(secs), f)
}

/// GET or POST (when there is a body) `url`, with `Authorization: Bearer key` when given.
async fn call(url: &str, key: Option<&str>, body: Option<&Value>) -> (u16, HeaderMap, Value) {
    let mut request = match body {
        Some(body) => client().post(url).json(body),
        None => client().get(url),
    };
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, json)
}

async fn chat(gw: &Gateway, key: Option<&str>) -> (u16, HeaderMap, Value) {
    call(
        &gw.url("/v1/chat/completions"),
        key,
        Some(&chat_body("gpt-4o", "Hello")),
    )
    .await
}

/// A 401 in OpenAI's shape, with `WWW-Authenticate: Bearer`; returns its message.
fn assert_unauthorized(status: u16, headers: &HeaderMap, body: &Value) -> String {
    assert_eq!(status, 401, "{body}");
    assert_valid("ErrorResponse", body);
    assert_eq!(body["error"]["code"], "invalid_api_key", "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["param"].is_null());
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert!(
        headers.contains_key("x-request-id"),
        "refusals carry a request id"
    );
    body["error"]["message"].as_str().unwrap().to_string()
}

fn user(text: &str) -> pb::ChatMessage {
    pb::ChatMessage {
        role: pb::Role::User as i32,
        content: vec![pb::ContentPart {
            part: Some(pb::content_part::Part::Text(text.into())),
        }],
        ..Default::default()
    }
}

fn grpc_chat(key: Option<&str>) -> tonic::Request<pb::CreateChatCompletionRequest> {
    with_key(
        pb::CreateChatCompletionRequest {
            params: Some(pb::ChatCompletionParams {
                model: "gpt-4o".into(),
                messages: vec![user("Hello")],
                ..Default::default()
            }),
        },
        key,
    )
}

fn with_key<T>(message: T, key: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(key) = key {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
    }
    request
}

async fn channel(gw: &Gateway) -> tonic::transport::Channel {
    tonic::transport::Channel::from_shared(gw.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn chat_client(gw: &Gateway) -> ChatServiceClient<tonic::transport::Channel> {
    ChatServiceClient::connect(gw.grpc.clone()).await.unwrap()
}

async fn grpc_health(gw: &Gateway, key: Option<&str>) -> Result<i32, tonic::Status> {
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel(gw).await);
    let check = tonic_health::pb::HealthCheckRequest {
        service: String::new(),
    };
    health
        .check(with_key(check, key))
        .await
        .map(|r| r.into_inner().status)
}

fn assert_no_key_logged(gw: &Gateway, keys: &[&str]) {
    let log = gw.stderr();
    for key in keys {
        assert!(!log.contains(key), "a key reached the log: {key}");
    }
}

#[tokio::test]
async fn keys_from_the_flag_and_a_file_are_required_over_http() {
    within(90, async {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys.txt");
        std::fs::write(
            &file,
            "# the team\nsk-file-1\n\n  sk-file-2  # ci\n#sk-disabled\n",
        )
        .unwrap();
        let g = FakeCliGateway::start(&[
            "--api-keys",
            "sk-flag-1,sk-flag-2",
            "--api-keys-file",
            file.to_str().unwrap(),
        ])
        .await;

        let (status, headers, body) = chat(&g.gw, None).await;
        let message = assert_unauthorized(status, &headers, &body);
        assert!(message.contains("didn't provide an API key"), "{message}");

        let (status, headers, body) = chat(&g.gw, Some("sk-wrong")).await;
        let message = assert_unauthorized(status, &headers, &body);
        assert!(
            message.starts_with("Incorrect API key provided"),
            "{message}"
        );
        assert!(
            !message.contains("sk-wrong"),
            "the key is echoed: {message}"
        );

        // Not the Bearer scheme: as good as no key.
        let response = client()
            .get(g.gw.url("/v1/models"))
            .header("authorization", "Basic sk-flag-1")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);

        for key in ["sk-flag-1", "sk-flag-2", "sk-file-1", "sk-file-2"] {
            let (status, headers, body) = chat(&g.gw, Some(key)).await;
            assert_eq!(status, 200, "{key}: {body}");
            assert_eq!(body["choices"][0]["message"]["content"], "Echo: Hello");
            assert!(!headers.contains_key("x-ratelimit-limit-requests"));
        }
        let (status, _, _) = call(&g.gw.url("/v1/models"), Some("sk-file-2"), None).await;
        assert_eq!(status, 200);
        // Every other route needs the key too, unknown ones included.
        for path in ["/v1/models", "/v1/models/gpt-4o", "/v1/nothing-here"] {
            let (status, headers, body) = call(&g.gw.url(path), None, None).await;
            assert_unauthorized(status, &headers, &body);
        }
        assert!(
            g.runs().len() == 4,
            "refused requests must not reach the CLI"
        );

        // Health and the docs stay open by default.
        for path in ["/health", "/", "/openapi.json", "/redoc"] {
            let (status, _, body) = call(&g.gw.url(path), None, None).await;
            assert_eq!(status, 200, "{path}: {body}");
        }
        assert_no_key_logged(&g.gw, &["sk-flag-1", "sk-file-1", "sk-wrong"]);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn without_keys_everything_is_open() {
    within(60, async {
        let g = FakeCliGateway::start(&[]).await;
        let (status, _, body) = chat(&g.gw, None).await;
        assert_eq!(status, 200, "{body}");
        let (status, _, _) = chat(&g.gw, Some("anything")).await;
        assert_eq!(status, 200);
        let mut client = chat_client(&g.gw).await;
        client
            .create_chat_completion(grpc_chat(None))
            .await
            .unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn health_needs_a_key_with_public_health_false() {
    within(60, async {
        let g = FakeCliGateway::start(&["--api-keys", "sk-ops", "--public-health", "false"]).await;
        for path in ["/health", "/health/ready", "/metrics"] {
            let (status, headers, body) = call(&g.gw.url(path), None, None).await;
            assert_unauthorized(status, &headers, &body);
        }
        let (status, _, body) = call(&g.gw.url("/health"), Some("sk-ops"), None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "ok", "{body}");
        // The docs stay open: they describe the API and run nothing.
        let (status, _, _) = call(&g.gw.url("/openapi.json"), None, None).await;
        assert_eq!(status, 200);

        let err = grpc_health(&g.gw, None).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
        let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
        assert_eq!(grpc_health(&g.gw, Some("sk-ops")).await.unwrap(), serving);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn grpc_needs_the_key_in_the_authorization_metadata() {
    within(60, async {
        let g = FakeCliGateway::start(&["--api-keys", "sk-g1,sk-g2"]).await;
        let mut client = chat_client(&g.gw).await;
        for key in [None, Some("sk-wrong"), Some("")] {
            let status = client
                .create_chat_completion(grpc_chat(key))
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::Unauthenticated, "{key:?}: {status:?}");
            let md = status.metadata();
            assert_eq!(md.get("error-code").unwrap(), "invalid_api_key");
            assert_eq!(md.get("error-type").unwrap(), "invalid_request_error");
            assert!(status.message().contains("authorization"), "{status:?}");
        }
        let reply = client
            .create_chat_completion(grpc_chat(Some("sk-g2")))
            .await
            .unwrap()
            .into_inner();
        let message = reply.choices[0].message.as_ref().unwrap();
        assert_eq!(message.content.as_deref(), Some("Echo: Hello"));

        let mut models = ModelServiceClient::connect(g.gw.grpc.clone())
            .await
            .unwrap();
        let status = models
            .list_models(pb::ListModelsRequest {})
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
        let list = models
            .list_models(with_key(pb::ListModelsRequest {}, Some("sk-g1")))
            .await
            .unwrap();
        assert!(!list.into_inner().models.is_empty());

        // Health is public by default; reflection is always open.
        assert!(grpc_health(&g.gw, None).await.is_ok());
        assert!(
            reflection_services(&g.gw)
                .await
                .contains(&"claude_gateway.v1.ChatService".to_string())
        );
        assert_no_key_logged(&g.gw, &["sk-g1", "sk-g2", "sk-wrong"]);
    })
    .await
    .unwrap();
}

/// The services listed by gRPC server reflection, asked without a key.
async fn reflection_services(gw: &Gateway) -> Vec<String> {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut client = ServerReflectionClient::new(channel(gw).await);
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection answer: {other:?}"),
    }
}

/// A façade in front of a keyed worker: with `UPSTREAM_API_KEY` it gets through (and checks
/// its own clients' keys, from `GATEWAY_API_KEYS`); without it, its clients get a 502 that
/// blames the gateway, not a 401 that would blame them.
#[tokio::test]
async fn a_facade_sends_its_upstream_api_key_to_a_keyed_worker() {
    within(90, async {
        let worker = FakeCliGateway::start(&["--api-keys", "sk-worker"]).await;
        let facade = Gateway::builder()
            .args(["--upstream", worker.gw.grpc.as_str()])
            .env("UPSTREAM_API_KEY", "sk-worker")
            .env("GATEWAY_API_KEYS", "sk-facade")
            .start()
            .await;
        let (status, _, body) = chat(&facade, Some("sk-facade")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["choices"][0]["message"]["content"], "Echo: Hello");
        let (status, _, body) = call(&facade.url("/v1/models"), Some("sk-facade"), None).await;
        assert_eq!(status, 200, "{body}");
        let (status, headers, body) = chat(&facade, None).await;
        assert_unauthorized(status, &headers, &body);
        // The façade's key is its own: the worker does not take it.
        let (status, headers, body) = chat(&worker.gw, Some("sk-facade")).await;
        assert_unauthorized(status, &headers, &body);
        let (status, _, body) = call(&facade.url("/health"), None, None).await;
        assert_eq!(status, 200, "{body}");
        assert_no_key_logged(&facade, &["sk-worker", "sk-facade"]);

        let keyless = Gateway::builder()
            .args(["--upstream", worker.gw.grpc.as_str()])
            .start()
            .await;
        let (status, _, body) = chat(&keyless, None).await;
        assert_eq!(status, 502, "{body}");
        assert_valid("ErrorResponse", &body);
        assert_eq!(body["error"]["code"], "upstream_auth_failed");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("--upstream-api-key"), "{message}");
    })
    .await
    .unwrap();
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn the_rate_limit_is_per_key_and_reported_like_openai() {
    within(90, async {
        let g = FakeCliGateway::start(&["--api-keys", "sk-a,sk-b", "--rate-limit-rpm", "3"]).await;
        let mut remaining = Vec::new();
        for _ in 0..3 {
            let (status, headers, body) = chat(&g.gw, Some("sk-a")).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(header(&headers, "x-ratelimit-limit-requests"), "3");
            remaining.push(header(&headers, "x-ratelimit-remaining-requests").to_string());
            assert!(header(&headers, "x-ratelimit-reset-requests").ends_with('s'));
        }
        assert_eq!(remaining, ["2", "1", "0"]);

        let (status, headers, body) = chat(&g.gw, Some("sk-a")).await;
        assert_eq!(status, 429, "{body}");
        assert_valid("ErrorResponse", &body);
        assert_eq!(body["error"]["code"], "rate_limit_exceeded");
        let retry_after: u64 = header(&headers, "retry-after").parse().unwrap();
        assert!((1..=20).contains(&retry_after), "Retry-After {retry_after}");
        assert_eq!(header(&headers, "x-ratelimit-limit-requests"), "3");
        assert_eq!(header(&headers, "x-ratelimit-remaining-requests"), "0");
        assert!(header(&headers, "x-ratelimit-reset-requests").ends_with('s'));
        assert_eq!(g.prompts(), 3, "a refused request must not reach the CLI");

        // Another key has its own budget; health is not counted.
        let (status, headers, _) = chat(&g.gw, Some("sk-b")).await;
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "x-ratelimit-remaining-requests"), "2");
        let (status, headers, _) = call(&g.gw.url("/health"), Some("sk-a"), None).await;
        assert_eq!(status, 200);
        assert!(!headers.contains_key("x-ratelimit-limit-requests"));

        // One budget for both protocols.
        let mut client = chat_client(&g.gw).await;
        let status = client
            .create_chat_completion(grpc_chat(Some("sk-a")))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert_eq!(
            status.metadata().get("error-code").unwrap(),
            "rate_limit_exceeded"
        );
        let retry: u64 = status
            .metadata()
            .get("retry-after")
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=20).contains(&retry), "retry-after {retry}");
        let reply = client
            .create_chat_completion(grpc_chat(Some("sk-b")))
            .await
            .unwrap();
        assert_eq!(
            reply
                .metadata()
                .get("x-ratelimit-remaining-requests")
                .unwrap(),
            "1"
        );
    })
    .await
    .unwrap();
}

/// Without keys the budget is per client address: here, all of 127.0.0.1.
#[tokio::test]
async fn without_keys_the_rate_limit_is_per_client() {
    within(60, async {
        let g = FakeCliGateway::start(&["--rate-limit-rpm", "2"]).await;
        let mut client = chat_client(&g.gw).await;
        for _ in 0..2 {
            client
                .create_chat_completion(grpc_chat(None))
                .await
                .unwrap();
        }
        let status = client
            .create_chat_completion(grpc_chat(None))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.metadata().get("retry-after").is_some());
        let (status, headers, body) = chat(&g.gw, None).await;
        assert_eq!(status, 429, "{body}");
        assert!(headers.contains_key("retry-after"));
        assert!(
            grpc_health(&g.gw, None).await.is_ok(),
            "health is not counted"
        );
    })
    .await
    .unwrap();
}

const SDK_SCRIPT: &str = r#"
import sys, openai
url = sys.argv[1]
try:
    openai.OpenAI(base_url=url, api_key="sk-wrong", max_retries=0).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Hello"}])
    sys.exit("a wrong key was accepted")
except openai.AuthenticationError as e:
    assert e.status_code == 401 and e.code == "invalid_api_key", (e.status_code, e.code)
    print("AuthenticationError:", e.message)
good = openai.OpenAI(base_url=url, api_key="sk-right", max_retries=0)
reply = good.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hello"}])
assert reply.choices[0].message.content == "Echo: Hello", reply
good.models.list()
try:
    good.models.list()
    sys.exit("the third request got through a limit of 2 per minute")
except openai.RateLimitError as e:
    assert e.response.headers["x-ratelimit-remaining-requests"] == "0"
    print("RateLimitError:", e.message)
"#;

#[tokio::test]
async fn the_python_sdk_raises_authentication_and_rate_limit_errors() {
    let Some(python) = tool("venv/bin/python") else {
        return;
    };
    within(90, async {
        let g = FakeCliGateway::start(&["--api-keys", "sk-right", "--rate-limit-rpm", "2"]).await;
        let out = tokio::process::Command::new(&python)
            .args(["-c", SDK_SCRIPT, &format!("{}/v1", g.gw.http)])
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .kill_on_drop(true)
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.contains("AuthenticationError:"), "{stdout}");
        assert!(stdout.contains("RateLimitError:"), "{stdout}");
    })
    .await
    .unwrap();
}
