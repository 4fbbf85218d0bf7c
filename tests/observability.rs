//! Observability of the real binary over real sockets, with the fake CLI: the Prometheus
//! families at `/metrics` after HTTP and gRPC traffic (counts by route, model and status,
//! histograms, tokens and the CLI's cost), request ids (echoed, generated, carried through
//! `--upstream` into the worker's logs, on every JSON log line of a request), no prompt or
//! completion text in the logs at `info`, liveness and readiness (a missing CLI, draining after
//! SIGTERM) and `claude-gateway doctor`. Every test body is bounded; nothing sleeps for
//! readiness.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use claude_gateway::grpc::pb;
use claude_gateway::grpc::pb::chat_service_client::ChatServiceClient;
use claude_gateway::grpc::pb::model_service_client::ModelServiceClient;
use common::*;
use serde_json::{Value, json};

const TEST_TIMEOUT: Duration = Duration::from_secs(60);

async fn bounded(body: impl Future<Output = ()>) {
    tokio::time::timeout(TEST_TIMEOUT, body)
        .await
        .expect("test exceeded its time limit");
}

// ------------------------------------------------------------------------------------------
// The Prometheus text format
// ------------------------------------------------------------------------------------------

struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses `name{k="v",…} value` lines (label values may hold `{`, `}` and escaped quotes).
fn parse_samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let name_end = line.find(['{', ' ']).unwrap();
        let name = line[..name_end].to_string();
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices();
            let mut key = String::new();
            let mut end = 0;
            while let Some((i, c)) = chars.next() {
                match c {
                    '}' => {
                        end = i + 1;
                        break;
                    }
                    ',' => {}
                    '=' => {
                        let _ = chars.next(); // the opening quote
                        let mut value = String::new();
                        while let Some((_, c)) = chars.next() {
                            match c {
                                '\\' => value.push(chars.next().unwrap().1),
                                '"' => break,
                                c => value.push(c),
                            }
                        }
                        labels.insert(std::mem::take(&mut key), value);
                    }
                    c => key.push(c),
                }
            }
            rest = &body[end..];
        }
        let value = rest.trim().split(' ').next().unwrap();
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap(),
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

/// The sum of the samples named `name` whose labels include `labels`.
fn sum(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

async fn scrape(gw: &Gateway) -> Vec<Sample> {
    let response = client().get(gw.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    parse_samples(&response.text().await.unwrap())
}

// ------------------------------------------------------------------------------------------
// Metrics
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn metrics_count_http_requests_latency_tokens_and_cost() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let url = fake.gw.url("/v1/chat/completions");
        for _ in 0..2 {
            let (status, _, _) = post_json(&url, &chat_body("gpt-4o", "Hello there")).await;
            assert_eq!(status, 200);
        }
        let mut body = chat_body("gpt-4o", "[[words:5]]");
        body["stream"] = json!(true);
        let (status, _, events) = post_sse(&url, &body).await;
        assert_eq!(status, 200);
        assert_eq!(events.last().unwrap().data, "[DONE]");
        let (status, _, _) = post_json(&url, &chat_body("no-such-model", "Hi")).await;
        assert_eq!(status, 404);
        let (status, _, _) = post_json(&url, &json!({"messages": "not a list"})).await;
        assert_eq!(status, 400);
        for path in ["/v1/models/gpt-4o", "/v1/models/sonnet", "/no/such/route"] {
            client().get(fake.gw.url(path)).send().await.unwrap();
        }

        let m = scrape(&fake.gw).await;
        let requests = "claude_gateway_http_requests_total";
        let chat = ("route", "/v1/chat/completions");
        assert_eq!(
            sum(
                &m,
                requests,
                &[chat, ("model", "gpt-4o"), ("status", "200")]
            ),
            3.0
        );
        assert_eq!(
            sum(
                &m,
                requests,
                &[chat, ("model", "no-such-model"), ("status", "404")]
            ),
            1.0
        );
        // A body that does not parse has no model.
        assert_eq!(
            sum(&m, requests, &[chat, ("model", "-"), ("status", "400")]),
            1.0
        );
        // Route templates, never raw paths.
        assert_eq!(
            sum(
                &m,
                requests,
                &[("route", "/v1/models/{id}"), ("status", "200")]
            ),
            2.0
        );
        assert_eq!(
            sum(&m, requests, &[("route", "unmatched"), ("status", "404")]),
            1.0
        );
        assert!(
            !m.iter()
                .any(|s| s.labels.get("route").is_some_and(|r| r.contains("sonnet")))
        );

        let gpt4o = [("model", "gpt-4o")];
        let duration = "claude_gateway_http_request_duration_seconds_count";
        assert_eq!(sum(&m, duration, &[chat, gpt4o[0]]), 3.0);
        let ttft = "claude_gateway_time_to_first_token_seconds";
        assert_eq!(sum(&m, &format!("{ttft}_count"), &gpt4o), 3.0);
        assert!(sum(&m, &format!("{ttft}_sum"), &gpt4o) > 0.0);
        assert!(sum(&m, "claude_gateway_process_spawn_seconds_count", &[]) >= 3.0);
        let tokens = "claude_gateway_tokens_total";
        assert!(sum(&m, tokens, &[gpt4o[0], ("type", "input")]) > 0.0);
        assert!(sum(&m, tokens, &[gpt4o[0], ("type", "output")]) > 0.0);
        assert!(sum(&m, "claude_gateway_cost_usd_total", &gpt4o) > 0.0);

        // The scrape itself is the one request in flight; no process is left running.
        assert_eq!(
            sum(
                &m,
                "claude_gateway_in_flight_requests",
                &[("protocol", "http")]
            ),
            1.0
        );
        // The requests' process is parked for the next one (idle); none serves.
        let state = |s| sum(&m, "claude_gateway_processes", &[("state", s)]);
        assert_eq!(state("serving"), 0.0);
        assert_eq!(
            sum(&m, "claude_gateway_live_processes", &[]),
            state("idle") + state("warm")
        );
        assert_eq!(sum(&m, "claude_gateway_queued_requests", &[]), 0.0);
    })
    .await;
}

#[tokio::test]
async fn a_stream_is_in_flight_until_it_ends() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let mut body = chat_body("sonnet", "[[hang_after:1]]");
        body["stream"] = json!(true);
        let response = client()
            .post(fake.gw.url("/v1/chat/completions"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let m = scrape(&fake.gw).await;
        let in_flight = [("protocol", "http")];
        assert_eq!(
            sum(&m, "claude_gateway_in_flight_requests", &in_flight),
            2.0
        );
        assert_eq!(sum(&m, "claude_gateway_live_processes", &[]), 1.0);
        drop(response);
        for _ in 0..100 {
            let m = scrape(&fake.gw).await;
            if sum(&m, "claude_gateway_in_flight_requests", &in_flight) == 1.0 {
                let chat = [("route", "/v1/chat/completions"), ("status", "200")];
                assert_eq!(sum(&m, "claude_gateway_http_requests_total", &chat), 1.0);
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the dropped stream stayed in flight");
    })
    .await;
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

fn params(model: &str, text: &str) -> Option<pb::ChatCompletionParams> {
    Some(pb::ChatCompletionParams {
        model: model.into(),
        messages: vec![user(text)],
        ..Default::default()
    })
}

fn with_id<T>(message: T, id: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("x-request-id", id.parse().unwrap());
    request
}

#[tokio::test]
async fn grpc_calls_are_counted_and_carry_a_request_id() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let mut chat = ChatServiceClient::connect(fake.gw.grpc.clone())
            .await
            .unwrap();
        let message = pb::CreateChatCompletionRequest {
            params: params("gpt-4o", "Hello"),
        };
        let response = chat
            .create_chat_completion(with_id(message, "grpc-id-4242"))
            .await
            .unwrap();
        assert_eq!(
            response.metadata().get("x-request-id").unwrap(),
            "grpc-id-4242"
        );

        let message = pb::StreamChatCompletionRequest {
            params: params("sonnet", "[[words:3]]"),
        };
        let response = chat.stream_chat_completion(message).await.unwrap();
        let generated = response
            .metadata()
            .get("x-request-id")
            .unwrap()
            .to_str()
            .unwrap();
        assert_eq!(generated.len(), 36, "a UUID: {generated}");
        let mut stream = response.into_inner();
        while stream.message().await.unwrap().is_some() {}

        let mut models = ModelServiceClient::connect(fake.gw.grpc.clone())
            .await
            .unwrap();
        let err = models
            .get_model(pb::GetModelRequest {
                id: "no-such-model".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
        assert!(err.metadata().get("x-request-id").is_some());

        let m = scrape(&fake.gw).await;
        let calls = "claude_gateway_grpc_requests_total";
        let service = ("service", "claude_gateway.v1.ChatService");
        let ok = ("code", "OK");
        assert_eq!(
            sum(
                &m,
                calls,
                &[service, ("method", "CreateChatCompletion"), ok]
            ),
            1.0
        );
        assert_eq!(
            sum(
                &m,
                calls,
                &[service, ("method", "StreamChatCompletion"), ok]
            ),
            1.0
        );
        assert_eq!(
            sum(&m, calls, &[("method", "GetModel"), ("code", "NotFound")]),
            1.0
        );
        let durations = "claude_gateway_grpc_request_duration_seconds_count";
        assert_eq!(sum(&m, durations, &[service]), 2.0);
        assert_eq!(
            sum(
                &m,
                "claude_gateway_in_flight_requests",
                &[("protocol", "grpc")]
            ),
            0.0
        );
        assert_eq!(
            sum(&m, "claude_gateway_time_to_first_token_seconds_count", &[]),
            2.0
        );
        // The run's log lines carry the call's id.
        let log = fake.gw.stderr();
        assert!(
            log.lines()
                .any(|l| l.contains("grpc-id-4242") && l.contains("claude_run")),
            "{log}"
        );
    })
    .await;
}

// ------------------------------------------------------------------------------------------
// Request ids and logs
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn request_ids_are_echoed_generated_and_reach_the_workers_logs() {
    bounded(async {
        let worker = FakeCliGateway::start(&[]).await;
        let facade = Gateway::builder()
            .args(["--upstream", worker.gw.grpc.as_str()])
            .start()
            .await;
        let url = facade.url("/v1/chat/completions");
        let response = client()
            .post(&url)
            .header("x-request-id", "facade-trace-9001")
            .json(&chat_body("gpt-4o", "Hello"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-request-id"], "facade-trace-9001");

        let (status, headers, _) = post_json(&url, &chat_body("gpt-4o", "Hello")).await;
        assert_eq!(status, 200);
        let generated = headers["x-request-id"].to_str().unwrap().to_string();
        assert_eq!(generated.len(), 36, "a UUID: {generated}");

        // The worker logged both requests' runs under the façade's ids.
        let log = worker.gw.stderr();
        for id in ["facade-trace-9001", generated.as_str()] {
            assert!(
                log.lines()
                    .any(|l| l.contains(id) && l.contains("claude_run")),
                "no worker line for {id}:\n{log}"
            );
        }
        // Metrics are counted on both sides; the worker alone saw the run (a whole completion
        // goes to the worker as a stream too: retried only before its first event).
        let m = scrape(&facade).await;
        let chat = [("route", "/v1/chat/completions"), ("status", "200")];
        assert_eq!(sum(&m, "claude_gateway_http_requests_total", &chat), 2.0);
        assert_eq!(sum(&m, "claude_gateway_tokens_total", &[]), 0.0);
        let m = scrape(&worker.gw).await;
        let calls = [("method", "StreamChatCompletion"), ("code", "OK")];
        assert_eq!(sum(&m, "claude_gateway_grpc_requests_total", &calls), 2.0);
        assert!(sum(&m, "claude_gateway_tokens_total", &[]) > 0.0);
    })
    .await;
}

#[tokio::test]
async fn every_json_log_line_of_a_request_carries_its_id() {
    bounded(async {
        let gw = Gateway::builder()
            .args(["--claude-bin", fake_cli().to_str().unwrap()])
            .args(["--log-format", "json"])
            .env("RUST_LOG", "claude_gateway=debug,tower_http=debug,info")
            .start()
            .await;
        let startup_lines = gw.stderr().lines().count();
        for stream in [false, true] {
            let mut body = chat_body("sonnet", "[[words:3]]");
            body["stream"] = json!(stream);
            let response = client()
                .post(gw.url("/v1/chat/completions"))
                .header("x-request-id", format!("json-id-{stream}"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            response.text().await.unwrap();
        }
        // A CLI that fails writes stderr, which is logged (at debug) by a task of its own.
        let response = client()
            .post(gw.url("/v1/chat/completions"))
            .header("x-request-id", "json-id-crash")
            .json(&chat_body("sonnet", "[[crash_before_output]]"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 502);
        eventually("the CLI's stderr to be logged", || {
            gw.stderr().contains("claude stderr")
        })
        .await;
        let log = gw.stderr();
        let lines: Vec<Value> = log
            .lines()
            .skip(startup_lines)
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
            .collect();
        assert!(lines.len() >= 4, "too few lines to judge:\n{log}");
        for line in &lines {
            let spans = line["spans"].to_string();
            assert!(
                ["false", "true", "crash"]
                    .iter()
                    .any(|id| spans.contains(&format!("\"request_id\":\"json-id-{id}\""))),
                "a line without the request id: {line}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn prompts_and_completions_are_not_logged_at_info() {
    bounded(async {
        let gw = Gateway::builder()
            .args(["--claude-bin", fake_cli().to_str().unwrap()])
            .env("RUST_LOG", "info")
            .start()
            .await;
        let url = gw.url("/v1/chat/completions");
        let prompt = "purple-elephant-7731 [[reply:zebra-quartz-5520]]";
        let body = json!({"model": "sonnet", "messages": [
            {"role": "system", "content": "system-secret-8842"},
            {"role": "user", "content": prompt},
        ]});
        let (status, _, reply) = post_json(&url, &body).await;
        assert_eq!(status, 200);
        assert_eq!(
            reply["choices"][0]["message"]["content"],
            "zebra-quartz-5520"
        );
        let mut streamed = body.clone();
        streamed["stream"] = json!(true);
        let (status, _, _) = post_sse(&url, &streamed).await;
        assert_eq!(status, 200);
        let mut chat = ChatServiceClient::connect(gw.grpc.clone()).await.unwrap();
        chat.create_chat_completion(pb::CreateChatCompletionRequest {
            params: params("sonnet", prompt),
        })
        .await
        .unwrap();

        let log = gw.stderr();
        assert!(log.contains("listening"), "{log}");
        for secret in ["purple-elephant", "zebra-quartz", "system-secret"] {
            assert!(!log.contains(secret), "`{secret}` logged at info:\n{log}");
        }
    })
    .await;
}

// ------------------------------------------------------------------------------------------
// Liveness and readiness
// ------------------------------------------------------------------------------------------

async fn get_json(url: &str) -> (u16, Value) {
    let response = client().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn readiness_follows_the_cli_and_liveness_does_not() {
    bounded(async {
        let missing = Gateway::builder()
            .args(["--claude-bin", "/nonexistent/claude"])
            .start()
            .await;
        let (status, body) = get_json(&missing.url("/health/ready")).await;
        assert_eq!(status, 503);
        assert_eq!(body["status"], "not_ready");
        let reasons = body["reasons"].to_string();
        assert!(reasons.contains("/nonexistent/claude"), "{reasons}");
        let (status, body) = get_json(&missing.url("/health/live")).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("alive")));
        let (status, _) = get_json(&missing.url("/health")).await;
        assert_eq!(status, 503);

        let fake = FakeCliGateway::start(&[]).await;
        let (status, body) = get_json(&fake.gw.url("/health/ready")).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("ready")));
        let (status, _) = get_json(&fake.gw.url("/health/live")).await;
        assert_eq!(status, 200);
    })
    .await;
}

#[tokio::test]
async fn readiness_turns_false_as_soon_as_shutdown_begins() {
    bounded(async {
        let mut fake = FakeCliGateway::start(&["--shutdown-delay-secs", "2"]).await;
        let url = fake.gw.url("/v1/chat/completions");
        let mut body = chat_body("sonnet", "[[words:40]] [[delay_ms:100]]");
        body["stream"] = json!(true);
        let mut response = client().post(&url).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.chunk().await.unwrap().expect("a first chunk");
        let (status, _) = get_json(&fake.gw.url("/health/ready")).await;
        assert_eq!(status, 200);

        let pid = nix::unistd::Pid::from_raw(fake.gw.pid() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let mut ready = (0, Value::Null);
        for _ in 0..100 {
            ready = get_json(&fake.gw.url("/health/ready")).await;
            if ready.0 == 503 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(ready.0, 503, "{}", ready.1);
        assert!(
            ready.1["reasons"].to_string().contains("draining"),
            "{}",
            ready.1
        );
        let (status, _) = get_json(&fake.gw.url("/health/live")).await;
        assert_eq!(status, 200);

        // The stream in flight still finishes, then the gateway exits.
        let mut rest = String::new();
        while let Some(chunk) = response.chunk().await.unwrap() {
            rest.push_str(&String::from_utf8_lossy(&chunk));
        }
        assert!(rest.contains("[DONE]") && !rest.contains("error"), "{rest}");
        let exit = tokio::time::timeout(Duration::from_secs(20), fake.gw.child.wait())
            .await
            .expect("the gateway exits after draining")
            .unwrap();
        assert!(exit.success(), "{exit}");
    })
    .await;
}

// ------------------------------------------------------------------------------------------
// doctor
// ------------------------------------------------------------------------------------------

/// Runs `claude-gateway doctor` with `args` and an environment without credentials.
async fn doctor(args: &[&str], env: &[(&str, &str)], home: &Path) -> (i32, String) {
    let output = tokio::process::Command::new(BIN)
        .arg("doctor")
        .args(args)
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("CLAUDE_CODE_OAUTH_TOKEN")
        .env_remove("ANTHROPIC_AUTH_TOKEN")
        .env_remove("CLAUDE_CONFIG_DIR")
        .env("HOME", home)
        .envs(env.iter().copied())
        .current_dir(home)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.code().unwrap_or(-1), text)
}

/// A stand-in CLI that answers `--version` and `auth status` like the real one.
fn scripted_cli(dir: &Path, version: &str, logged_in: bool) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("claude");
    let status =
        json!({"loggedIn": logged_in, "authMethod": if logged_in { "claude.ai" } else { "none" }});
    let script = format!(
        "#!/bin/sh\ncase \"$1\" in\n  --version) echo '{version} (Claude Code)';;\n  auth) echo '{status}'; [ {code} = 0 ];;\n  *) exit 2;;\nesac\n",
        code = if logged_in { 0 } else { 1 }
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn doctor_reports_a_usable_cli() {
    bounded(async {
        let home = tempfile::tempdir().unwrap();
        let cli = scripted_cli(home.path(), "2.1.330", true);
        let (code, out) = doctor(&["--claude-bin", &cli], &[], home.path()).await;
        assert_eq!(code, 0, "{out}");
        assert!(out.contains(&format!("✓ claude CLI: {cli}")), "{out}");
        assert!(out.contains("✓ version: 2.1.330"), "{out}");
        assert!(out.contains("✓ auth: logged in (claude.ai)"), "{out}");
        // A CLI that cannot answer `initialize` only costs the model listing its claude-* ids.
        assert!(out.contains("! models:"), "{out}");
        assert!(
            out.contains("ready: the gateway can serve completions"),
            "{out}"
        );

        // An API key means --bare; the fake CLI (no `auth status`) is then enough.
        let fake = fake_cli();
        let key = [("ANTHROPIC_API_KEY", "sk-test-not-printed")];
        let (code, out) =
            doctor(&["--claude-bin", fake.to_str().unwrap()], &key, home.path()).await;
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("✓ auth: API key"), "{out}");
        assert!(!out.contains("sk-test-not-printed"), "{out}");
        // The concrete ids behind the aliases, from the CLI's own `initialize` answer.
        assert!(
            out.contains("✓ models: claude-fable-5-2, claude-haiku-5-5, claude-opus-5-5"),
            "{out}"
        );
    })
    .await;
}

#[tokio::test]
async fn doctor_says_what_to_fix() {
    bounded(async {
        let home = tempfile::tempdir().unwrap();
        let (code, out) = doctor(&["--claude-bin", "/nonexistent/claude"], &[], home.path()).await;
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains("✗ claude CLI: `/nonexistent/claude` not found"),
            "{out}"
        );
        assert!(
            out.contains("fix: npm install -g @anthropic-ai/claude-code@2.1.330"),
            "{out}"
        );
        assert!(out.contains("not ready: 1 problem to fix"), "{out}");

        let cli = scripted_cli(home.path(), "2.1.197", false);
        let (code, out) = doctor(&["--claude-bin", &cli], &[], home.path()).await;
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("! version: 2.1.197"), "{out}");
        assert!(out.contains("✗ auth: the CLI is not logged in"), "{out}");
        assert!(out.contains("claude auth login"), "{out}");

        // The fake CLI has no `auth status`: with no stored login either, that is a failure;
        // `--auth api-key` without a key is one too.
        let fake = fake_cli();
        let (code, out) = doctor(&["--claude-bin", fake.to_str().unwrap()], &[], home.path()).await;
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("no stored login or token"), "{out}");
        let args = ["--claude-bin", fake.to_str().unwrap(), "--auth", "api-key"];
        let (code, out) = doctor(&args, &[], home.path()).await;
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("needs ANTHROPIC_API_KEY"), "{out}");

        // A stored login is trusted with a warning when the CLI cannot be asked.
        std::fs::create_dir_all(home.path().join(".claude")).unwrap();
        std::fs::write(home.path().join(".claude/.credentials.json"), "{}").unwrap();
        let (code, out) = doctor(&["--claude-bin", fake.to_str().unwrap()], &[], home.path()).await;
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("! auth: the CLI did not answer"), "{out}");
    })
    .await;
}

#[tokio::test]
async fn doctor_checks_the_upstream_instead_of_a_cli() {
    bounded(async {
        let home = tempfile::tempdir().unwrap();
        let worker = FakeCliGateway::start(&[]).await;
        let (code, out) = doctor(&["--upstream", worker.gw.grpc.as_str()], &[], home.path()).await;
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("✓ upstream:"), "{out}");
        let (code, out) = doctor(&["--upstream", "http://127.0.0.1:9"], &[], home.path()).await;
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("✗ upstream:"), "{out}");
    })
    .await;
}
