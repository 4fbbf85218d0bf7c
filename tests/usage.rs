//! The usage ledger and budgets end to end, over real sockets on the fake CLI: a row for each
//! API (chat completions, whole and streamed, the Responses API, the Messages API, gRPC) and for
//! each way a run fails (the CLI failing, a timeout, the client going away), none for requests
//! refused before anything ran (401, 400, a spent budget); `GET /v1/usage` per key (B never
//! sees A's rows), grouped, as JSON and CSV; budgets from the key file and from the admin API
//! refusing in OpenAI's, Anthropic's and gRPC's shapes; a budget that holds across a restart
//! (SQLite file) and across two façades sharing a PostgreSQL store; the official `openai` and
//! `anthropic` Python SDKs reading the budget headers and not retrying a spent budget
//! (`tests/python/test_budgets.py`). Every test is bounded.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use claude_gateway::grpc::pb;
use claude_gateway::grpc::pb::chat_service_client::ChatServiceClient;
use common::*;
use serde_json::{Value, json};
use sqlx::Connection;
use tonic::transport::Channel;

fn within<F: std::future::Future>(secs: u64, f: F) -> tokio::time::Timeout<F> {
    tokio::time::timeout(Duration::from_secs(secs), f)
}

const KEYS: &str = "\
key-a name=alice
key-b name=bob
key-admin role=admin name=root
";

fn key_file(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys");
    std::fs::write(&file, text).unwrap();
    let path = file.display().to_string();
    (dir, path)
}

async fn send(
    method: reqwest::Method,
    url: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = client().request(method, url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

async fn post(url: &str, key: &str, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
    let (status, headers, text) = send(reqwest::Method::POST, url, Some(key), Some(body)).await;
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

async fn get_json(url: &str, key: &str) -> (u16, Value) {
    let (status, _, text) = send(reqwest::Method::GET, url, Some(key), None).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn sum(data: &Value, field: &str) -> i64 {
    data["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[field].as_i64().unwrap())
        .sum()
}

/// `key`'s usage (`query` appended) once it counts `requests` requests; panics after 10 s.
async fn usage_when(gw: &str, key: &str, query: &str, requests: i64) -> Value {
    let url = format!("{gw}/v1/usage?{query}");
    for _ in 0..200 {
        let (status, body) = get_json(&url, key).await;
        assert_eq!(status, 200, "{body}");
        if sum(&body, "requests") == requests {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the ledger never showed {requests} requests: {}",
        get_json(&url, key).await.1
    );
}

/// The group of `data` whose `field` is `value`.
fn group<'a>(data: &'a Value, field: &str, value: &str) -> &'a Value {
    data["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[field] == value)
        .unwrap_or_else(|| panic!("no {field}={value} in {data}"))
}

fn messages_body(text: &str) -> Value {
    json!({"model": "sonnet", "max_tokens": 64, "messages": [{"role": "user", "content": text}]})
}

fn grpc_request(key: &str, text: &str) -> tonic::Request<pb::CreateChatCompletionRequest> {
    let mut request = tonic::Request::new(pb::CreateChatCompletionRequest {
        params: Some(pb::ChatCompletionParams {
            model: "sonnet".into(),
            messages: vec![pb::ChatMessage {
                role: pb::Role::User as i32,
                content: vec![pb::ContentPart {
                    part: Some(pb::content_part::Part::Text(text.into())),
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    request
}

async fn grpc_chat(url: &str) -> ChatServiceClient<Channel> {
    let channel = Channel::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    ChatServiceClient::new(channel)
}

#[tokio::test]
async fn every_api_records_one_row_and_refusals_none() {
    within(60, async {
        let (_keys, file) = key_file(KEYS);
        let gw = FakeCliGateway::start(&["--api-keys-file", &file]).await;
        let url = |p: &str| gw.gw.url(p);
        let (status, _, _) = post(&url("/v1/chat/completions"), "key-a", &chat_body("sonnet", "one")).await;
        assert_eq!(status, 200);
        let mut streamed = chat_body("sonnet", "two");
        streamed["stream"] = json!(true);
        streamed["stream_options"] = json!({"include_usage": true});
        let (status, _, events) = post_sse(&url("/v1/chat/completions"), &streamed).await;
        // post_sse sends no key: a 401, which runs nothing.
        assert_eq!(status, 401, "{}", events.len());
        let (status, _, text) = send(
            reqwest::Method::POST,
            &url("/v1/chat/completions"),
            Some("key-a"),
            Some(&streamed),
        )
        .await;
        assert_eq!(status, 200);
        assert!(text.contains("[DONE]"), "{text}");
        let (status, _, body) = post(
            &url("/v1/responses"),
            "key-a",
            &json!({"model": "sonnet", "input": "three"}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (status, _, body) = post(&url("/v1/messages"), "key-a", &messages_body("four")).await;
        assert_eq!(status, 200, "{body}");
        let mut chat = grpc_chat(&gw.gw.grpc).await;
        chat.create_chat_completion(grpc_request("key-a", "five"))
            .await
            .unwrap();
        // Refused before anything ran: no key, a wrong key, a malformed request.
        let (status, _, _) = post(&url("/v1/chat/completions"), "key-x", &chat_body("sonnet", "x")).await;
        assert_eq!(status, 401);
        let (status, _, body) = post(&url("/v1/chat/completions"), "key-a", &json!({"model": "sonnet"})).await;
        assert_eq!(status, 400, "{body}");
        let (status, _, body) = post(
            &url("/v1/chat/completions"),
            "key-a",
            &json!({"model": "sonnet", "messages": [{"role": "user", "content": "x"}], "logprobs": true}),
        )
        .await;
        assert_eq!(status, 400, "{body}");

        let usage = usage_when(&gw.gw.http, "key-a", "group_by=api,status", 5).await;
        assert_eq!(gw.prompts(), 5);
        for (api, n) in [
            ("chat.completions", 2),
            ("responses", 1),
            ("messages", 1),
            ("grpc", 1),
        ] {
            let row = group(&usage, "api", api);
            assert_eq!(row["requests"], n, "{usage}");
            assert_eq!(row["status"], "ok", "{usage}");
            assert!(row["input_tokens"].as_i64().unwrap() > 0, "{row}");
            assert!(row["output_tokens"].as_i64().unwrap() > 0, "{row}");
            assert!(row["cost_usd"].as_f64().unwrap() > 0.0, "{row}");
            assert!(row["duration_ms"].as_i64().is_some(), "{row}");
            assert!(row["ttft_ms_avg"].as_i64().is_some(), "{row}");
            // Fields not grouped by are absent.
            assert!(row.get("key").is_none() && row.get("model").is_none(), "{row}");
        }
        assert_eq!(usage["group_by"], json!(["api", "status"]));
        assert_eq!(usage["object"], "list");
        // Nothing late: the refused requests never become rows.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let (_, again) = get_json(&url("/v1/usage?group_by="), "key-a").await;
        assert_eq!(sum(&again, "requests"), 5, "{again}");
        let metrics = reqwest::get(url("/metrics")).await.unwrap().text().await.unwrap();
        assert!(metrics.contains("claude_gateway_usage_rows_total 5"), "{metrics}");
        assert!(metrics.contains("claude_gateway_usage_batch_write_seconds_count"));
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn failures_timeouts_and_cancels_are_rows_with_their_status() {
    within(60, async {
        let (_keys, file) = key_file(KEYS);
        let gw = FakeCliGateway::start(&[
            "--api-keys-file",
            &file,
            "--start-retries",
            "0",
            "--claude-max-retries",
            "0",
            "--idle-timeout-secs",
            "2",
        ])
        .await;
        let url = gw.gw.url("/v1/chat/completions");
        let (status, _, body) = post(
            &url,
            "key-a",
            &chat_body("sonnet", "[[crash_before_output]]"),
        )
        .await;
        assert_eq!(status, 502, "{body}");
        let (status, _, body) = post(&url, "key-a", &chat_body("sonnet", "[[hang]]")).await;
        assert_eq!(status, 504, "{body}");
        // A streamed answer the client walks away from.
        let mut streamed = chat_body("sonnet", "[[words:100]] [[delay_ms:100]]");
        streamed["stream"] = json!(true);
        let mut response = client()
            .post(&url)
            .bearer_auth("key-a")
            .json(&streamed)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.chunk().await.unwrap().unwrap();
        drop(response);

        let usage = usage_when(&gw.gw.http, "key-a", "group_by=status", 3).await;
        assert_eq!(
            group(&usage, "status", "cli_failed")["requests"],
            1,
            "{usage}"
        );
        assert_eq!(group(&usage, "status", "timeout")["requests"], 1, "{usage}");
        assert_eq!(
            group(&usage, "status", "cancelled")["requests"],
            1,
            "{usage}"
        );
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn usage_is_per_key_and_comes_as_csv() {
    within(60, async {
        let (_keys, file) = key_file(KEYS);
        let gw = FakeCliGateway::start(&["--api-keys-file", &file]).await;
        let chat = gw.gw.url("/v1/chat/completions");
        for (key, n) in [("key-a", 1), ("key-b", 2)] {
            for _ in 0..n {
                let (status, _, _) = post(&chat, key, &chat_body("sonnet", "hi")).await;
                assert_eq!(status, 200);
            }
        }
        let http = &gw.gw.http;
        let alice = usage_when(http, "key-a", "", 1).await;
        let rows = alice["data"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "{alice}");
        assert_eq!(rows[0]["key"], "alice");
        assert!(rows[0]["model"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(rows[0]["day"].as_str().unwrap().len(), 10);
        assert_eq!(alice["group_by"], json!(["key", "model", "day"]));
        let bob = usage_when(http, "key-b", "group_by=key", 2).await;
        assert_eq!(bob["data"].as_array().unwrap().len(), 1, "{bob}");
        assert_eq!(bob["data"][0]["key"], "bob");
        // Alice may not look at Bob's rows, even by asking.
        let (status, body) = get_json(&format!("{http}/v1/usage?key=bob"), "key-a").await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"]["code"], "permission_denied");
        // The admin sees both, and one on asking.
        let all = usage_when(http, "key-admin", "group_by=key", 3).await;
        assert_eq!(group(&all, "key", "alice")["requests"], 1);
        assert_eq!(group(&all, "key", "bob")["requests"], 2);
        let only = usage_when(http, "key-admin", "group_by=key&key=bob", 2).await;
        assert_eq!(only["data"].as_array().unwrap().len(), 1);
        // A time range that ends before the rows: nothing.
        let (_, empty) = get_json(&format!("{http}/v1/usage?from=2020-01-01&to=2020-02-01T00:00:00Z"), "key-admin").await;
        assert_eq!(empty["data"], json!([]), "{empty}");
        assert_eq!(empty["from"], 1_577_836_800);
        let (status, body) = get_json(&format!("{http}/v1/usage?group_by=colour"), "key-a").await;
        assert_eq!(status, 400, "{body}");
        // CSV, by parameter or by Accept.
        let (status, headers, csv) = send(
            reqwest::Method::GET,
            &format!("{http}/v1/usage?group_by=key,api&format=csv"),
            Some("key-admin"),
            None,
        )
        .await;
        assert_eq!(status, 200);
        assert!(headers["content-type"].to_str().unwrap().starts_with("text/csv"));
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "key,api,requests,input_tokens,output_tokens,cached_input_tokens,cost_usd,duration_ms,ttft_ms_avg"
        );
        assert_eq!(lines.len(), 3, "{csv}");
        assert!(lines[1].starts_with("alice,chat.completions,1,"), "{csv}");
        assert!(lines[2].starts_with("bob,chat.completions,2,"), "{csv}");
        let response = client()
            .get(format!("{http}/v1/usage?group_by=key"))
            .bearer_auth("key-b")
            .header("accept", "text/csv")
            .send()
            .await
            .unwrap();
        let text = response.text().await.unwrap();
        assert!(text.starts_with("key,requests,"), "{text}");
        assert!(!text.contains("alice"), "{text}");
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn budgets_refuse_in_every_dialect_before_anything_runs() {
    within(60, async {
        let (_keys, file) = key_file(
            "key-a name=alice budget.requests.day=2 budget.tokens.month=1000000\nkey-b name=bob\n\
             key-c name=carol budget.requests.day=5\nkey-admin role=admin name=root\n",
        );
        let gw = FakeCliGateway::start(&["--api-keys-file", &file]).await;
        let chat = gw.gw.url("/v1/chat/completions");
        let (status, headers, _) = post(&chat, "key-a", &chat_body("sonnet", "one")).await;
        assert_eq!(status, 200);
        assert_eq!(headers["x-budget-limit-requests-day"], "2");
        assert_eq!(headers["x-budget-remaining-requests-day"], "1");
        assert!(headers.contains_key("x-budget-reset-requests-day"));
        assert!(headers.contains_key("x-budget-remaining-tokens-month"));
        let (status, headers, _) = post(&chat, "key-a", &chat_body("sonnet", "two")).await;
        assert_eq!(status, 200);
        assert_eq!(headers["x-budget-remaining-requests-day"], "0");
        // Spent: OpenAI's shape…
        let (status, headers, body) = post(&chat, "key-a", &chat_body("sonnet", "three")).await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(body["error"]["code"], "insufficient_quota");
        assert_eq!(body["error"]["type"], "insufficient_quota");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("2 requests per day"), "{message}");
        assert!(message.contains("T00:00:00Z"), "{message}");
        assert!(headers.contains_key("retry-after"));
        assert_eq!(headers["x-should-retry"], "false");
        assert_eq!(headers["x-budget-remaining-requests-day"], "0");
        // …Anthropic's on /v1/messages…
        let (status, _, body) =
            post(&gw.gw.url("/v1/messages"), "key-a", &messages_body("four")).await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "rate_limit_error");
        // …and gRPC's.
        let mut grpc = grpc_chat(&gw.gw.grpc).await;
        let status = grpc
            .create_chat_completion(grpc_request("key-a", "five"))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
        assert_eq!(
            status.metadata().get("error-code").unwrap(),
            "insufficient_quota"
        );
        assert!(
            status.message().contains("2 requests per day"),
            "{status:?}"
        );
        let left = status.metadata().get("x-budget-remaining-requests-day");
        assert_eq!(left.unwrap(), "0", "{status:?}");
        // Bob has no budget and no headers.
        let (status, headers, _) = post(&chat, "key-b", &chat_body("sonnet", "bob")).await;
        assert_eq!(status, 200);
        assert!(!headers.contains_key("x-budget-remaining-requests-day"));
        // Nothing ran for the refusals.
        usage_when(&gw.gw.http, "key-a", "group_by=", 2).await;
        assert_eq!(gw.prompts(), 3);
        // gRPC answers carry the same numbers as metadata: a whole answer counts itself…
        let answer = grpc
            .create_chat_completion(grpc_request("key-c", "unary"))
            .await
            .unwrap();
        let remaining = |m: &tonic::metadata::MetadataMap| {
            m.get("x-budget-remaining-requests-day")
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(remaining(answer.metadata()).as_deref(), Some("4"));
        assert!(
            answer
                .metadata()
                .contains_key("x-budget-reset-requests-day")
        );
        // …a stream's head comes before it ends, so it does not.
        let unary = grpc_request("key-c", "streamed");
        let (metadata, _, unary) = unary.into_parts();
        let stream = tonic::Request::from_parts(
            metadata,
            Default::default(),
            pb::StreamChatCompletionRequest {
                params: unary.params,
            },
        );
        let mut events = grpc.stream_chat_completion(stream).await.unwrap();
        assert_eq!(remaining(events.metadata()).as_deref(), Some("4"));
        while events.get_mut().message().await.unwrap().is_some() {}
        assert_eq!(gw.prompts(), 5);

        // A USD budget through the admin API: a tiny one, spent by one request.
        let budgets = gw.gw.url("/v1/budgets/bob");
        let put = json!({"budgets": [{"metric": "usd", "window": "day", "limit": 0.000001}]});
        let (status, _, body) =
            send(reqwest::Method::PUT, &budgets, Some("key-b"), Some(&put)).await;
        assert_eq!(status, 403, "{body}");
        let (status, _, body) = send(
            reqwest::Method::PUT,
            &budgets,
            Some("key-admin"),
            Some(&put),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["key"], "bob");
        assert_eq!(body["budgets"][0]["metric"], "usd");
        assert_eq!(body["budgets"][0]["window"], "day");
        assert!(body["budgets"][0]["used"].as_f64().unwrap() > 0.0, "{body}");
        assert_eq!(body["budgets"][0]["remaining"], 0.0);
        let (status, _, body) = post(&chat, "key-b", &chat_body("sonnet", "more")).await;
        assert_eq!(status, 429, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("$0.00 per day")
        );
        // The list: the admin's has every key with budgets, Bob's only his own.
        let (status, list) = get_json(&gw.gw.url("/v1/budgets"), "key-admin").await;
        assert_eq!(status, 200);
        assert_eq!(list["object"], "list");
        let keys: Vec<&str> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["key"].as_str().unwrap())
            .collect();
        assert_eq!(keys, ["alice", "bob", "carol"], "{list}");
        let alice = &list["data"][0]["budgets"];
        assert_eq!(alice[0]["metric"], "requests");
        assert_eq!(alice[0]["limit"], 2.0);
        assert_eq!(alice[0]["used"], 2.0);
        assert!(
            alice[0]["resets_at"].as_i64().unwrap() % 86_400 == 0,
            "{alice}"
        );
        let (_, own) = get_json(&gw.gw.url("/v1/budgets"), "key-b").await;
        assert_eq!(own["data"].as_array().unwrap().len(), 1, "{own}");
        assert_eq!(own["data"][0]["key"], "bob");
        // Deleted: Bob is free again.
        let (status, _, _) = send(reqwest::Method::DELETE, &budgets, Some("key-admin"), None).await;
        assert_eq!(status, 200);
        let (status, _, _) = post(&chat, "key-b", &chat_body("sonnet", "free")).await;
        assert_eq!(status, 200);
        let metrics = reqwest::get(gw.gw.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains(
                "claude_gateway_budget_refusals_total{metric=\"requests\",window=\"day\"} 3"
            ),
            "{metrics}"
        );
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_budget_holds_across_a_restart() {
    within(90, async {
        let (_keys, file) = key_file("key-a name=alice budget.requests.day=1\n");
        let store = tempfile::tempdir().unwrap();
        let store_path = store.path().display().to_string();
        let args = [
            "--api-keys-file",
            file.as_str(),
            "--session-store",
            store_path.as_str(),
        ];
        let gw = FakeCliGateway::start(&args).await;
        let chat = gw.gw.url("/v1/chat/completions");
        let (status, _, _) = post(&chat, "key-a", &chat_body("sonnet", "one")).await;
        assert_eq!(status, 200);
        // Stopped at once (SIGTERM): the row still in the writer's queue is written first.
        let mut gw = gw;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(gw.gw.pid() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let exit = gw.gw.child.wait().await.unwrap();
        assert!(exit.success(), "{exit:?}: {}", gw.gw.stderr());
        drop(gw);
        let gw = FakeCliGateway::start(&args).await;
        let (status, _, body) = post(
            &gw.gw.url("/v1/chat/completions"),
            "key-a",
            &chat_body("sonnet", "two"),
        )
        .await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(body["error"]["code"], "insufficient_quota");
        assert_eq!(gw.prompts(), 0);
    })
    .await
    .expect("timed out");
}

/// The URL of a fresh schema in the test database, or `None` when there is none and the run
/// opted out (else the test fails).
async fn fresh_pg_store() -> Option<String> {
    let base = std::env::var("SESSION_TEST_POSTGRES_URL").unwrap_or_default();
    if base.is_empty() {
        skip::missing(
            "PostgreSQL (SESSION_TEST_POSTGRES_URL)",
            "run `export \"$(.ci/start-postgres)\"`",
        );
        return None;
    }
    let schema = format!("usage_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options[search_path]={schema}"))
}

#[tokio::test]
async fn two_facades_on_one_postgres_share_budgets_and_the_worker_records_nothing() {
    within(90, async {
        let Some(pg) = fresh_pg_store().await else {
            return;
        };
        let worker = FakeCliGateway::start(&["--admin-api-keys", "worker-admin"]).await;
        let (_keys, file) = key_file(KEYS);
        let facade = || async {
            Gateway::builder()
                .args(["--upstream", worker.gw.grpc.as_str()])
                .args(["--upstream-api-key", "worker-admin"])
                .args(["--api-keys-file", file.as_str()])
                .args(["--usage-store", pg.as_str()])
                .start()
                .await
        };
        let (one, two) = (facade().await, facade().await);
        // A budget set on one façade…
        let put = json!({"budgets": [{"metric": "requests", "window": "day", "limit": 2}]});
        let (status, _, body) = send(
            reqwest::Method::PUT,
            &one.url("/v1/budgets/alice"),
            Some("key-admin"),
            Some(&put),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        // …is spent on both…
        for gw in [&one, &two] {
            let (status, headers, body) = post(
                &gw.url("/v1/chat/completions"),
                "key-a",
                &chat_body("sonnet", "hi"),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            assert!(headers.contains_key("x-budget-remaining-requests-day"));
        }
        usage_when(&one.http, "key-a", "group_by=", 2).await;
        // …and holds on both, once each has read the other's spend (a replica keeps what the
        // store said for a second).
        tokio::time::sleep(Duration::from_millis(1100)).await;
        for gw in [&one, &two] {
            let (status, _, body) = post(
                &gw.url("/v1/chat/completions"),
                "key-a",
                &chat_body("sonnet", "more"),
            )
            .await;
            assert_eq!(status, 429, "{body}");
            assert_eq!(body["error"]["code"], "insufficient_quota");
        }
        let all = usage_when(&two.http, "key-admin", "group_by=key,api", 2).await;
        assert_eq!(group(&all, "key", "alice")["api"], "chat.completions");
        assert_eq!(worker.prompts(), 2);
        // The worker served both, and left the recording to the façades.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let (status, mine) = get_json(&worker.gw.url("/v1/usage?group_by="), "worker-admin").await;
        assert_eq!(status, 200, "{mine}");
        assert_eq!(mine["data"], json!([]), "{mine}");
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn the_openai_and_anthropic_sdks_see_budgets_and_do_not_retry_a_spent_one() {
    let Some(python) = tool("venv/bin/python") else {
        return;
    };
    within(120, async {
        let (keys, file) = key_file(
            "sk-sdk-openai name=sdk-openai budget.requests.day=1\n\
             sk-sdk-anthropic name=sdk-anthropic budget.requests.day=1\n",
        );
        let gw = FakeCliGateway::start(&["--api-keys-file", &file]).await;
        let mut cmd = clients::client_command(&python, &gw.gw, &keys.path().join("record"));
        cmd.env("GATEWAY_URL", gw.gw.http.as_str())
            .env("OPENAI_KEY", "sk-sdk-openai")
            .env("ANTHROPIC_KEY", "sk-sdk-anthropic")
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("ANTHROPIC_BASE_URL");
        clients::pytest_in(cmd, &gw.gw, "tests/python/test_budgets.py").await;
        // One run each: the refusals ran nothing.
        assert_eq!(gw.prompts(), 2);
    })
    .await
    .expect("timed out");
}
