//! The OpenAI HTTP API of the real gateway binary over real sockets, with
//! `tests/fixtures/fake_claude.py` standing in for the `claude` CLI. The fake is steered by
//! `[[directives]]` in the last user message and logs every run (argv, cwd, env, stdin, pid), so
//! these tests check both what a client sees (statuses, OpenAI-valid bodies and chunks, headers,
//! timing) and what reaches the CLI, how its failures surface, and that no process or private
//! directory outlives its request. Every test body is bounded by `bounded`; nothing sleeps for
//! readiness.

mod common;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::openai_schema::assert_valid;
use common::*;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// ------------------------------------------------------------------------------------------
// Harness
// ------------------------------------------------------------------------------------------

/// No test may take longer than this, whatever the gateway does.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A 1×1 PNG, small enough to inline.
const PNG_B64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

/// Runs a test body under the suite's time limit.
async fn bounded(body: impl Future<Output = ()>) {
    tokio::time::timeout(TEST_TIMEOUT, body)
        .await
        .expect("test exceeded its time limit");
}

/// A gateway on the fake CLI like `FakeCliGateway::start`, with extra environment variables.
async fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> FakeCliGateway {
    let log_dir = tempfile::tempdir().expect("temp dir");
    let mut builder = Gateway::builder()
        .args(["--claude-bin", fake_cli().to_str().expect("UTF-8 path")])
        .args(["--pass-env", "FAKE_CLAUDE_LOG_DIR"])
        .args(extra.iter().copied())
        .env(
            "FAKE_CLAUDE_LOG_DIR",
            log_dir.path().to_str().expect("UTF-8 path"),
        );
    for (k, v) in env {
        builder = builder.env(k, *v);
    }
    FakeCliGateway {
        gw: builder.start().await,
        log_dir,
    }
}

/// A gateway on the fake CLI whose per-run directories go into a private work dir.
async fn start_with_work_dir(extra: &[&str]) -> (FakeCliGateway, tempfile::TempDir) {
    let work = tempfile::tempdir().expect("temp dir");
    let mut args = vec!["--work-dir", work.path().to_str().expect("UTF-8 path")];
    args.extend_from_slice(extra);
    (FakeCliGateway::start(&args).await, work)
}

fn completions(fake: &FakeCliGateway) -> String {
    fake.gw.url("/v1/chat/completions")
}

fn stream_body(model: &str, text: &str, include_usage: bool) -> Value {
    let mut body = chat_body(model, text);
    body["stream"] = json!(true);
    if include_usage {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

/// POSTs `body` with extra request headers; returns (status, headers, body text).
async fn post_with_headers(
    url: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, HeaderMap, String) {
    let mut request = client().post(url).json(body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.text().await.expect("response body"),
    )
}

/// POSTs raw bytes as `application/json` (for bodies that are not valid requests).
async fn post_raw(url: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let response = client()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    let text = response.text().await.expect("response body");
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, json)
}

async fn get_json(url: &str) -> (u16, Value) {
    let response = client().get(url).send().await.expect("request sent");
    let status = response.status().as_u16();
    let text = response.text().await.expect("response body");
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, json)
}

/// Checks an OpenAI error answer: the status, the schema, and `param` and `code` exactly
/// (`None` meaning `null`).
fn assert_error(got: (u16, &Value), status: u16, param: Option<&str>, code: Option<&str>) {
    let (got_status, body) = got;
    assert_eq!(got_status, status, "{body}");
    assert_valid("ErrorResponse", body);
    assert_eq!(body["error"]["param"].as_str(), param, "param of {body}");
    assert_eq!(body["error"]["code"].as_str(), code, "code of {body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "an error needs a message: {body}");
}

fn message_of(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

// ---- the fake CLI's run logs and its processes -------------------------------------------

/// The run whose stdin carried `needle` (a marker unique to one request).
fn run_with(fake: &FakeCliGateway, needle: &str) -> Option<Value> {
    fake.runs()
        .into_iter()
        .find(|r| r["stdin"].to_string().contains(needle))
}

/// Waits until the fake CLI has received the request marked `needle`, and returns its log.
async fn wait_for_run(fake: &FakeCliGateway, needle: &str) -> Value {
    eventually("the fake CLI received the request", || {
        run_with(fake, needle).is_some()
    })
    .await;
    run_with(fake, needle).expect("the run just seen")
}

fn run_pid(run: &Value) -> u32 {
    u32::try_from(run["pid"].as_u64().expect("run log has a pid")).expect("pid fits u32")
}

/// The per-run private directory: the parent of the CLI's working directory.
fn run_dir(run: &Value) -> PathBuf {
    Path::new(run["cwd"].as_str().expect("run log has a cwd"))
        .parent()
        .expect("cwd has a parent")
        .to_path_buf()
}

fn argv(run: &Value) -> Vec<String> {
    run["argv"]
        .as_array()
        .expect("run log has argv")
        .iter()
        .map(|a| a.as_str().expect("string argument").to_string())
        .collect()
}

/// The value following `flag` in the run's argv.
fn flag_value(run: &Value, flag: &str) -> Option<String> {
    let args = argv(run);
    let at = args.iter().position(|a| a == flag)?;
    args.get(at + 1).cloned()
}

/// `/proc/<pid>/stat` fields after the command name: state, ppid, pgrp, …
fn proc_stat(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Whether `pid` is a live process; a zombie waiting to be reaped counts as gone.
fn alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|f| f[0] != "Z" && f[0] != "X")
}

/// Whether `pid` has SIGTERM ignored (bit 15 of `SigIgn` in `/proc/<pid>/status`).
fn ignores_sigterm(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("SigIgn:"))?;
            u64::from_str_radix(line["SigIgn:".len()..].trim(), 16).ok()
        })
        .is_some_and(|mask| mask & (1 << (15 - 1)) != 0)
}

/// Live fake CLI processes whose parent is the gateway.
fn fake_children(gateway_pid: u32) -> Vec<u32> {
    processes_matching("fake_claude.py")
        .into_iter()
        .filter(|pid| alive(*pid))
        .filter(|pid| {
            proc_stat(*pid).is_some_and(|f| f[1].parse::<u32>().ok() == Some(gateway_pid))
        })
        .collect()
}

/// After a run ended (any way): its process is gone, its private directory is removed, and
/// the gateway has no fake CLI child left.
async fn assert_cleaned_up(fake: &FakeCliGateway, run: &Value) {
    let (pid, dir) = (run_pid(run), run_dir(run));
    eventually(&format!("fake CLI pid {pid} to be gone"), || !alive(pid)).await;
    eventually(&format!("{} to be removed", dir.display()), || {
        !dir.exists()
    })
    .await;
    let gateway = fake.gw.pid();
    eventually("no fake CLI child of the gateway left", || {
        fake_children(gateway).is_empty()
    })
    .await;
}

// ---- a bare HTTP/1.1 client, for tests that control exactly when the client goes away -----

async fn raw_request(gw: &Gateway, body: &Value) -> TcpStream {
    let addr = gw.http.strip_prefix("http://").expect("http URL");
    let mut sock = TcpStream::connect(addr)
        .await
        .expect("connect to the gateway");
    let body = body.to_string();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes())
        .await
        .expect("request head sent");
    sock.write_all(body.as_bytes())
        .await
        .expect("request body sent");
    sock
}

/// Reads until `needle` has arrived; returns everything read.
async fn read_until(sock: &mut TcpStream, needle: &str) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let n = sock.read(&mut buf).await.expect("read from the gateway");
        assert!(
            n > 0,
            "connection closed before {needle:?}: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// Closes the connection and checks the run's process is killed promptly.
async fn hang_up_and_expect_kill(fake: &FakeCliGateway, sock: TcpStream, run: &Value) {
    let pid = run_pid(run);
    assert!(alive(pid), "the fake CLI should still be running");
    let hung_up = Instant::now();
    drop(sock);
    assert_cleaned_up(fake, run).await;
    let took = hung_up.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "the CLI outlived its client by {took:?}"
    );
}

// ------------------------------------------------------------------------------------------
// 1. Non-streaming completions
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn completion_is_a_valid_openai_response_echoing_the_model() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, headers, body) =
            post_json(&completions(&fake), &chat_body("gpt-4o", "Hello there")).await;
        assert_eq!(status, 200, "{body}\n{}", fake.gw.stderr());
        assert_valid("CreateChatCompletionResponse", &body);
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        assert_eq!(body["object"], "chat.completion");
        assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert_eq!(body["model"], "gpt-4o");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!((body["created"].as_i64().unwrap() - now).abs() < 60);
        let choices = body["choices"].as_array().unwrap();
        assert_eq!(choices.len(), 1);
        assert_eq!(choices[0]["index"], 0);
        assert_eq!(choices[0]["message"]["role"], "assistant");
        assert_eq!(choices[0]["message"]["content"], "Echo: Hello there");
        assert_eq!(choices[0]["finish_reason"], "stop");
        assert!(headers.get("x-ignored-params").is_none());
    })
    .await;
}

#[tokio::test]
async fn completion_usage_reports_prompt_completion_and_cached_tokens() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let text = "Count these [[words:5]] [[cache_read:7]]";
        let (status, _, body) = post_json(&completions(&fake), &chat_body("gpt-4o", text)).await;
        assert_eq!(status, 200, "{body}");
        assert_valid("CreateChatCompletionResponse", &body);
        assert_eq!(body["choices"][0]["message"]["content"], "w1 w2 w3 w4 w5");
        let usage = &body["usage"];
        // The fake bills len(text)/4 + 1 fresh input tokens and one output token per delta;
        // OpenAI's prompt_tokens include cache reads.
        let fresh = (text.len() / 4 + 1) as u64;
        assert_eq!(usage["prompt_tokens"].as_u64(), Some(fresh + 7), "{usage}");
        assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 7);
        assert_eq!(usage["completion_tokens"], 5);
        assert_eq!(usage["total_tokens"].as_u64(), Some(fresh + 7 + 5));
        assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 0);
        assert!(usage.get("estimated").is_none(), "real numbers: {usage}");
    })
    .await;
}

#[tokio::test]
async fn thinking_is_counted_as_reasoning_tokens_and_not_shown() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, _, body) = post_json(
            &completions(&fake),
            &chat_body("gpt-4o", "[[thinking]] [[reply:Four.]]"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_valid("CreateChatCompletionResponse", &body);
        assert_eq!(body["choices"][0]["message"]["content"], "Four.");
        // The fake's thinking text is 47 characters, estimated as 25/4 + 22/4 = 11 tokens.
        let details = &body["usage"]["completion_tokens_details"];
        assert_eq!(details["reasoning_tokens"], 11, "{}", body["usage"]);
    })
    .await;
}

#[tokio::test]
async fn max_tokens_stop_finishes_with_length() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, _, body) = post_json(
            &completions(&fake),
            &chat_body("gpt-4o", "[[words:3]] [[max_tokens_stop]]"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_valid("CreateChatCompletionResponse", &body);
        assert_eq!(body["choices"][0]["message"]["content"], "w1 w2 w3");
        assert_eq!(body["choices"][0]["finish_reason"], "length");
    })
    .await;
}

#[tokio::test]
async fn request_id_header_is_set_and_echoed() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let url = completions(&fake);
        let (status, headers, _) = post_json(&url, &chat_body("gpt-4o", "Hi")).await;
        assert_eq!(status, 200);
        let generated = headers["x-request-id"].to_str().unwrap();
        assert!(!generated.is_empty());

        let mine = [("x-request-id", "req-test-42")];
        let (status, headers, _) = post_with_headers(&url, &chat_body("gpt-4o", "Hi"), &mine).await;
        assert_eq!(status, 200);
        assert_eq!(headers["x-request-id"], "req-test-42");
        // Errors and streams carry it too.
        let (status, headers, _) =
            post_with_headers(&url, &chat_body("no-such-model", "Hi"), &mine).await;
        assert_eq!(status, 404);
        assert_eq!(headers["x-request-id"], "req-test-42");
        let (status, headers, text) =
            post_with_headers(&url, &stream_body("gpt-4o", "Hi", false), &mine).await;
        assert_eq!(status, 200);
        assert_eq!(headers["x-request-id"], "req-test-42");
        assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    })
    .await;
}

// ------------------------------------------------------------------------------------------
// 2. Streaming
// ------------------------------------------------------------------------------------------

/// Checks what every stream must satisfy: OpenAI-valid chunks sharing id, created and model,
/// the role first, one `finish_reason` on the last choice chunk. Returns the choice chunks.
fn assert_well_formed_stream(chunks: &[Value], model: &str) -> Vec<Value> {
    assert!(!chunks.is_empty(), "no chunks");
    for chunk in chunks {
        assert_valid("CreateChatCompletionStreamResponse", chunk);
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], chunks[0]["id"], "ids differ: {chunk}");
        assert_eq!(
            chunk["created"], chunks[0]["created"],
            "created differs: {chunk}"
        );
        assert_eq!(chunk["model"], model, "{chunk}");
    }
    assert!(
        chunks[0]["id"]
            .as_str()
            .expect("string id")
            .starts_with("chatcmpl-")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let with_choices: Vec<Value> = chunks
        .iter()
        .filter(|c| !c["choices"].as_array().expect("choices array").is_empty())
        .cloned()
        .collect();
    let (last, rest) = with_choices.split_last().expect("a chunk with choices");
    assert_eq!(last["choices"][0]["finish_reason"], "stop", "{last}");
    for chunk in rest {
        assert!(chunk["choices"][0]["finish_reason"].is_null(), "{chunk}");
        assert!(chunk["choices"][0]["delta"].get("role").is_none() || chunk == &chunks[0]);
    }
    with_choices
}

#[tokio::test]
async fn stream_sends_role_then_content_over_several_chunks_then_stop_then_done() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, headers, events) = post_sse(
            &completions(&fake),
            &stream_body("gpt-4o", "[[words:5]]", false),
        )
        .await;
        assert_eq!(status, 200, "{}", fake.gw.stderr());
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let chunks = chunks(&events);
        let choice_chunks = assert_well_formed_stream(&chunks, "gpt-4o");
        assert_eq!(choice_chunks.len(), chunks.len(), "no usage chunk unasked");
        assert_eq!(content_of(&chunks), "w1 w2 w3 w4 w5");
        let content_chunks = chunks
            .iter()
            .filter(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .is_some_and(|t| !t.is_empty())
            })
            .count();
        assert_eq!(content_chunks, 5, "one chunk per word");
        for chunk in &chunks {
            assert!(chunk.get("usage").is_none(), "usage key unasked: {chunk}");
        }
    })
    .await;
}

#[tokio::test]
async fn stream_include_usage_adds_a_final_usage_chunk() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, _, events) = post_sse(
            &completions(&fake),
            &stream_body("gpt-3.5-turbo", "[[words:5]] [[cache_read:3]]", true),
        )
        .await;
        assert_eq!(status, 200);
        let chunks = chunks(&events);
        let choice_chunks = assert_well_formed_stream(&chunks, "gpt-3.5-turbo");
        assert_eq!(choice_chunks.len() + 1, chunks.len());
        let (last, rest) = chunks.split_last().unwrap();
        assert_eq!(last["choices"], json!([]), "{last}");
        let usage = &last["usage"];
        assert_eq!(usage["completion_tokens"], 5, "{usage}");
        assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 3);
        assert!(usage["prompt_tokens"].as_u64().unwrap() > 3);
        assert_eq!(
            usage["total_tokens"].as_u64().unwrap(),
            usage["prompt_tokens"].as_u64().unwrap() + 5
        );
        for chunk in rest {
            assert!(
                chunk.get("usage").is_some_and(Value::is_null),
                "usage must be null before the last chunk: {chunk}"
            );
        }
        assert_eq!(content_of(&chunks), "w1 w2 w3 w4 w5");
    })
    .await;
}

#[tokio::test]
async fn stream_tokens_are_not_buffered() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, _, events) = post_sse(
            &completions(&fake),
            &stream_body("gpt-4o", "[[words:4]] [[delay_ms:200]]", false),
        )
        .await;
        assert_eq!(status, 200);
        let times: Vec<Instant> = events
            .iter()
            .filter(|e| {
                serde_json::from_str::<Value>(&e.data).is_ok_and(|c| {
                    c["choices"][0]["delta"]["content"]
                        .as_str()
                        .is_some_and(|t| !t.is_empty())
                })
            })
            .map(|e| e.at)
            .collect();
        assert_eq!(times.len(), 4, "one chunk per word");
        // The fake waits 200 ms before each word: passed through, they arrive ~600 ms apart.
        let spread = times[3] - times[0];
        assert!(
            spread >= Duration::from_millis(500),
            "content arrived within {spread:?}: buffered"
        );
        for pair in times.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_millis(100), "{times:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn stream_of_thinking_shows_only_the_answer() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, _, events) = post_sse(
            &completions(&fake),
            &stream_body("gpt-4o", "[[thinking]] [[reply:Four.]]", true),
        )
        .await;
        assert_eq!(status, 200);
        let chunks = chunks(&events);
        assert_well_formed_stream(&chunks, "gpt-4o");
        assert_eq!(content_of(&chunks), "Four.");
        let usage = &chunks.last().unwrap()["usage"];
        assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 11);
    })
    .await;
}

#[tokio::test]
async fn stream_of_a_cut_answer_finishes_with_length() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, _, events) = post_sse(
            &completions(&fake),
            &stream_body("gpt-4o", "[[words:3]] [[max_tokens_stop]]", true),
        )
        .await;
        assert_eq!(status, 200);
        let chunks = chunks(&events);
        for chunk in &chunks {
            assert_valid("CreateChatCompletionStreamResponse", chunk);
        }
        assert_eq!(content_of(&chunks), "w1 w2 w3");
        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "length", "{finish}");
        assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 3);
    })
    .await;
}

#[tokio::test]
async fn stop_sequences_cut_the_answer_and_end_the_run() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let mut body = chat_body("gpt-4o", "STOPMARK [[words:6]]");
        body["stop"] = json!(["w4", "never"]);
        let (status, _, reply) = post_json(&completions(&fake), &body).await;
        assert_eq!(status, 200, "{reply}");
        assert_valid("CreateChatCompletionResponse", &reply);
        assert_eq!(reply["choices"][0]["message"]["content"], "w1 w2 w3 ");
        assert_eq!(reply["choices"][0]["finish_reason"], "stop");
        assert!(reply["usage"]["completion_tokens"].as_u64().unwrap() > 0);
        assert_cleaned_up(&fake, &run_with(&fake, "STOPMARK").unwrap()).await;

        body["stream"] = json!(true);
        let (status, _, events) = post_sse(&completions(&fake), &body).await;
        assert_eq!(status, 200);
        let chunks = chunks(&events);
        assert_well_formed_stream(&chunks, "gpt-4o");
        assert_eq!(content_of(&chunks), "w1 w2 w3 ");
    })
    .await;
}

#[tokio::test]
async fn unicode_survives_both_pipes() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let text = "héllo wörld — 日本語 🌍";
        let reply = format!("[[reply:{text}]]");
        let (status, _, body) = post_json(&completions(&fake), &chat_body("gpt-4o", &reply)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["choices"][0]["message"]["content"], text);
        let (status, _, events) =
            post_sse(&completions(&fake), &stream_body("gpt-4o", &reply, false)).await;
        assert_eq!(status, 200);
        assert_eq!(content_of(&chunks(&events)), text);
    })
    .await;
}

// ------------------------------------------------------------------------------------------
// 3. What reaches the CLI
// ------------------------------------------------------------------------------------------

/// Environment variables the CLI may see: the gateway's pass-through list, the ones it sets, and
/// the test's `--pass-env FAKE_CLAUDE_LOG_DIR`.
const ALLOWED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "CLAUDE_CONFIG_DIR",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "NO_PROXY",
    "https_proxy",
    "http_proxy",
    "no_proxy",
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
    "CLAUDE_CODE_MAX_RETRIES",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
    "DISABLE_TELEMETRY",
    "DISABLE_AUTOUPDATER",
    "DISABLE_ERROR_REPORTING",
    "CLAUDE_CODE_MAX_OUTPUT_TOKENS",
    "CLAUDE_CODE_TMPDIR",
    "TMPDIR",
    "FAKE_CLAUDE_LOG_DIR",
];

/// Variables the fake's interpreter adds on its own way up, whatever the gateway passed: Python
/// sets LC_CTYPE under a C locale (PEP 538), and when `python3` is a pyenv shim (a bash script)
/// bash adds PWD/SHLVL/_ and pyenv its PYENV_* variables.
fn added_by_interpreter(name: &str) -> bool {
    matches!(name, "LC_CTYPE" | "PWD" | "OLDPWD" | "SHLVL" | "_")
        || name.starts_with("PYENV_")
        || name.starts_with("_PYENV_")
}

#[tokio::test]
async fn prompts_travel_on_stdin_never_on_argv() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let body = json!({"model": "gpt-4o", "messages": [
            {"role": "system", "content": "Be brief, SYSMARK."},
            {"role": "user", "content": "My name is Ada. HISTMARK"},
            {"role": "assistant", "content": "Hi Ada."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
            {"role": "user", "content": "What is my name? PROMPTMARK"},
        ]});
        let (status, _, reply) = post_json(&completions(&fake), &body).await;
        assert_eq!(status, 200, "{reply}");
        assert_eq!(
            reply["choices"][0]["message"]["content"],
            "Echo: What is my name? PROMPTMARK"
        );
        let runs = fake.runs();
        assert_eq!(runs.len(), 1, "one process per request");
        let run = &runs[0];

        let args = argv(run).join(" ");
        for secret in ["SYSMARK", "HISTMARK", "PROMPTMARK", "Ada", "English"] {
            assert!(!args.contains(secret), "{secret} on argv: {args}");
        }

        let stdin = run["stdin"].as_array().unwrap();
        assert_eq!(stdin.len(), 4, "{stdin:#?}");
        assert_eq!(stdin[0]["type"], "control_request");
        assert_eq!(stdin[0]["request"]["subtype"], "initialize");
        assert_eq!(
            stdin[0]["request"]["systemPrompt"],
            json!(["Be brief, SYSMARK.\n\nAnswer in English."])
        );
        assert_eq!(stdin[1]["type"], "user");
        assert_eq!(stdin[1]["shouldQuery"], false);
        assert_eq!(stdin[1]["message"]["role"], "user");
        assert_eq!(
            stdin[1]["message"]["content"][0],
            json!({"type": "text", "text": "My name is Ada. HISTMARK"})
        );
        assert_eq!(stdin[2]["type"], "assistant");
        assert_eq!(stdin[2]["message"]["role"], "assistant");
        assert_eq!(stdin[2]["message"]["content"][0]["text"], "Hi Ada.");
        assert_eq!(stdin[3]["type"], "user");
        assert_ne!(stdin[3]["shouldQuery"], false, "the last line must query");
        assert_eq!(
            stdin[3]["message"]["content"],
            json!([{"type": "text", "text": "What is my name? PROMPTMARK"}])
        );
    })
    .await;
}

#[tokio::test]
async fn argv_isolates_the_cli_and_maps_the_model() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, _, _) = post_json(&completions(&fake), &chat_body("gpt-4o", "ARGV1")).await;
        assert_eq!(status, 200);
        let run = run_with(&fake, "ARGV1").unwrap();
        let args = argv(&run);
        assert_eq!(flag_value(&run, "--tools").as_deref(), Some(""), "{args:?}");
        assert_eq!(flag_value(&run, "--setting-sources").as_deref(), Some(""));
        assert_eq!(flag_value(&run, "--model").as_deref(), Some("sonnet"));
        assert_eq!(
            flag_value(&run, "--input-format").as_deref(),
            Some("stream-json")
        );
        assert_eq!(
            flag_value(&run, "--output-format").as_deref(),
            Some("stream-json")
        );
        for flag in [
            "--strict-mcp-config",
            "--no-session-persistence",
            "--verbose",
        ] {
            assert!(args.iter().any(|a| a == flag), "{flag} missing: {args:?}");
        }
        for forbidden in [
            "--dangerously-skip-permissions",
            "-p",
            "--print",
            "--system-prompt",
        ] {
            assert!(
                !args.iter().any(|a| a == forbidden),
                "{forbidden}: {args:?}"
            );
        }
        assert!(!args.iter().any(|a| a.contains("dangerously")), "{args:?}");
        // Login mode (no ANTHROPIC_API_KEY for the gateway): no --bare.
        assert!(!args.iter().any(|a| a == "--bare"), "{args:?}");
        // The CLI's own retry default takes minutes to give up; the gateway's is 2.
        assert_eq!(run["env"]["CLAUDE_CODE_MAX_RETRIES"], "2");
        assert!(run["env"].get("CLAUDE_CODE_MAX_OUTPUT_TOKENS").is_none());

        // Other ids: the fast tier, an alias, a Claude id passed through.
        for (model, cli) in [
            ("gpt-3.5-turbo", "haiku"),
            ("opus", "opus"),
            ("claude-sonnet-4-5", "claude-sonnet-4-5"),
        ] {
            let marker = format!("ARGV-{model}");
            let (status, _, body) =
                post_json(&completions(&fake), &chat_body(model, &marker)).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["model"], model);
            let run = run_with(&fake, &marker).unwrap();
            assert_eq!(flag_value(&run, "--model").as_deref(), Some(cli), "{model}");
        }
    })
    .await;
}

#[tokio::test]
async fn image_data_url_arrives_as_a_native_image_block() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let url = format!("data:image/png;base64,{PNG_B64}");
        let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this? IMGMARK"},
            {"type": "image_url", "image_url": {"url": url, "detail": "low"}},
        ]}]});
        let (status, _, reply) = post_json(&completions(&fake), &body).await;
        assert_eq!(status, 200, "{reply}");
        let run = run_with(&fake, "IMGMARK").unwrap();
        let last = run["stdin"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(
            last["message"]["content"],
            json!([
                {"type": "text", "text": "What is this? IMGMARK"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
            ])
        );
        assert!(!argv(&run).join(" ").contains(PNG_B64));
    })
    .await;
}

#[tokio::test]
async fn cli_env_is_allow_listed_and_sets_retries() {
    bounded(async {
        let fake = start_with_env(
            &["--claude-max-retries", "3"],
            &[("SECRET_TOKEN", "x"), ("AWS_SECRET_ACCESS_KEY", "y")],
        )
        .await;
        let (status, _, _) = post_json(
            &completions(&fake),
            &json!({"model": "gpt-4o", "max_tokens": 50,
                    "messages": [{"role": "user", "content": "ENVMARK"}]}),
        )
        .await;
        assert_eq!(status, 200);
        let run = run_with(&fake, "ENVMARK").unwrap();
        let env = run["env"].as_object().unwrap();
        for name in env.keys() {
            assert!(
                ALLOWED_ENV.contains(&name.as_str()) || added_by_interpreter(name),
                "{name} reached the CLI: {:?}",
                env.keys().collect::<Vec<_>>()
            );
        }
        assert!(!env.contains_key("SECRET_TOKEN"));
        assert!(!env.contains_key("AWS_SECRET_ACCESS_KEY"));
        assert!(
            !env.contains_key("RUST_LOG"),
            "the gateway's own env leaked"
        );
        assert_eq!(env["CLAUDE_CODE_MAX_RETRIES"], "3");
        assert_eq!(env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"], "50");
        assert_eq!(
            env["FAKE_CLAUDE_LOG_DIR"].as_str(),
            fake.log_dir.path().to_str()
        );
        if let Ok(path) = std::env::var("PATH") {
            // A pyenv shim prepends its own directory; the gateway's PATH must follow.
            let seen = env["PATH"].as_str().unwrap();
            assert!(seen.ends_with(&path), "PATH passes through: {seen}");
        }
        // Temp files of the CLI stay inside the run's private directory.
        let dir = run_dir(&run);
        for var in ["TMPDIR", "CLAUDE_CODE_TMPDIR"] {
            let tmp = env[var].as_str().unwrap();
            assert!(
                Path::new(tmp).starts_with(&dir),
                "{var}={tmp} outside {dir:?}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn cli_runs_in_an_empty_private_directory_removed_afterwards() {
    bounded(async {
        let (fake, work) = start_with_work_dir(&[]).await;
        let (status, _, _) = post_json(&completions(&fake), &chat_body("gpt-4o", "CWDMARK")).await;
        assert_eq!(status, 200);
        let run = run_with(&fake, "CWDMARK").unwrap();
        assert_eq!(run["cwd_entries"], json!([]), "cwd was not empty");
        let cwd = PathBuf::from(run["cwd"].as_str().unwrap());
        assert!(cwd.starts_with(work.path()), "{cwd:?} not under --work-dir");
        assert_ne!(cwd, work.path(), "each run gets its own directory");
        // The fake runs as its own process group leader (so the group can be killed).
        assert_eq!(run["pgid"], run["pid"]);
        assert_eq!(run["ppid"].as_u64(), Some(u64::from(fake.gw.pid())));
        assert_cleaned_up(&fake, &run).await;
        eventually("the work dir to be empty again", || {
            std::fs::read_dir(work.path()).unwrap().next().is_none()
        })
        .await;
    })
    .await;
}

// ------------------------------------------------------------------------------------------
// 4a. Errors: requests refused before any CLI runs
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn malformed_and_mistyped_bodies_name_the_problem() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let url = completions(&fake);

        let (status, body) = post_raw(&url, "{not json").await;
        assert_error((status, &body), 400, None, Some("invalid_json"));
        assert_eq!(body["error"]["type"], "invalid_request_error");

        let (status, body) = post_raw(&url, r#"{"model":"gpt-4o"}"#).await;
        assert_error((status, &body), 400, Some("messages"), None);
        assert!(message_of(&body).contains("messages"), "{body}");

        let bad_max = json!({"model": "gpt-4o", "max_tokens": "lots",
                             "messages": [{"role": "user", "content": "hi"}]});
        let (status, _, body) = post_json(&url, &bad_max).await;
        assert_error((status, &body), 400, Some("max_tokens"), None);

        let bad_role =
            json!({"model": "gpt-4o", "messages": [{"role": "wizard", "content": "hi"}]});
        let (status, _, body) = post_json(&url, &bad_role).await;
        assert_error((status, &body), 400, Some("messages[0].role"), None);
        assert!(message_of(&body).contains("wizard"), "{body}");

        assert!(fake.runs().is_empty(), "no CLI for a refused request");
    })
    .await;
}

#[tokio::test]
async fn requests_claude_cannot_serve_are_refused() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let url = completions(&fake);

        let (status, _, body) = post_json(&url, &chat_body("gpt-9-ultra", "hi")).await;
        assert_error((status, &body), 404, Some("model"), Some("model_not_found"));
        assert!(message_of(&body).contains("gpt-9-ultra"), "{body}");

        let ends_with_assistant = json!({"model": "gpt-4o", "messages": [
            {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]});
        let (status, _, body) = post_json(&url, &ends_with_assistant).await;
        assert_error((status, &body), 400, Some("messages"), None);

        let remote_image = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is it?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]});
        let (status, _, body) = post_json(&url, &remote_image).await;
        assert_error(
            (status, &body),
            400,
            Some("messages[0].content[1].image_url"),
            Some("invalid_image_url"),
        );

        let mut logprobs = chat_body("gpt-4o", "hi");
        logprobs["logprobs"] = json!(true);
        let (status, _, body) = post_json(&url, &logprobs).await;
        assert_error(
            (status, &body),
            400,
            Some("logprobs"),
            Some("unsupported_parameter"),
        );

        assert!(fake.runs().is_empty(), "no CLI for a refused request");
    })
    .await;
}

#[tokio::test]
async fn refusals_are_real_statuses_when_streaming_too() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let url = completions(&fake);
        let response = client()
            .post(&url)
            .json(&stream_body("gpt-9-ultra", "hi", false))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 404);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let body: Value = response.json().await.unwrap();
        assert_error((404, &body), 404, Some("model"), Some("model_not_found"));
        assert!(fake.runs().is_empty());
    })
    .await;
}

#[tokio::test]
async fn strict_params_refuses_what_claude_cannot_honour() {
    bounded(async {
        let fake = FakeCliGateway::start(&["--strict-params"]).await;
        let mut body = chat_body("gpt-4o", "hi");
        body["temperature"] = json!(0.2);
        let (status, _, body) = post_json(&completions(&fake), &body).await;
        assert_error(
            (status, &body),
            400,
            Some("temperature"),
            Some("unsupported_parameter"),
        );
        assert!(message_of(&body).contains("--strict-params"), "{body}");
        assert!(fake.runs().is_empty());
    })
    .await;
}

#[tokio::test]
async fn without_strict_params_ignored_params_are_reported_in_a_header() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let mut body = chat_body("gpt-4o", "hi");
        body["temperature"] = json!(0.2);
        body["seed"] = json!(7);
        let (status, headers, reply) = post_json(&completions(&fake), &body).await;
        assert_eq!(status, 200, "{reply}");
        assert_valid("CreateChatCompletionResponse", &reply);
        assert_eq!(headers["x-ignored-params"], "temperature, seed");

        body["stream"] = json!(true);
        let (status, headers, events) = post_sse(&completions(&fake), &body).await;
        assert_eq!(status, 200);
        assert_eq!(headers["x-ignored-params"], "temperature, seed");
        assert_eq!(content_of(&chunks(&events)), "Echo: hi");
    })
    .await;
}

#[tokio::test]
async fn unknown_routes_and_methods_get_openai_errors() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, body) = get_json(&fake.gw.url("/v1/nothing-here")).await;
        assert_error((status, &body), 404, None, Some("unknown_url"));
        let (status, body) = get_json(&fake.gw.url("/v1/chat/completions")).await;
        assert_eq!(status, 405, "{body}");
        assert_valid("ErrorResponse", &body);
    })
    .await;
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    bounded(async {
        let fake = FakeCliGateway::start(&["--max-body-bytes", "2000"]).await;
        let big = chat_body("gpt-4o", &"x".repeat(5000));
        let (status, body) = post_raw(&completions(&fake), big.to_string()).await;
        assert_error((status, &body), 413, None, Some("payload_too_large"));
        assert!(fake.runs().is_empty());
    })
    .await;
}

// ------------------------------------------------------------------------------------------
// 4b. Errors: the CLI or Anthropic failing
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn missing_cli_binary_is_503_saying_how_to_install() {
    bounded(async {
        let gw = Gateway::builder()
            .args(["--claude-bin", "/nonexistent/claude"])
            .start()
            .await;
        let url = gw.url("/v1/chat/completions");
        let (status, _, body) = post_json(&url, &chat_body("gpt-4o", "hi")).await;
        assert_error((status, &body), 503, None, Some("cli_not_found"));
        assert!(
            message_of(&body).contains("npm install -g @anthropic-ai/claude-code"),
            "{body}"
        );
        let response = client()
            .post(&url)
            .json(&stream_body("gpt-4o", "hi", false))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 503, "not a 200 stream");
        let body: Value = response.json().await.unwrap();
        assert_error((503, &body), 503, None, Some("cli_not_found"));
    })
    .await;
}

/// How one `[[api_error:S]]` of the fake must surface.
struct ApiErrorCase {
    directive: &'static str,
    status: u16,
    code: &'static str,
    message_has: &'static str,
}

const API_ERRORS: &[ApiErrorCase] = &[
    ApiErrorCase {
        directive: "429",
        status: 429,
        code: "rate_limit_exceeded",
        message_has: "rate-limited",
    },
    ApiErrorCase {
        directive: "401",
        status: 502,
        code: "upstream_auth_failed",
        message_has: "not authenticated",
    },
    ApiErrorCase {
        directive: "403",
        status: 502,
        code: "upstream_auth_failed",
        message_has: "not authenticated",
    },
    ApiErrorCase {
        directive: "529",
        status: 503,
        code: "overloaded",
        message_has: "overloaded",
    },
    ApiErrorCase {
        directive: "500",
        status: 502,
        code: "upstream_error",
        message_has: "500",
    },
    ApiErrorCase {
        directive: "conn",
        status: 502,
        code: "upstream_error",
        message_has: "Connection refused",
    },
];

#[tokio::test]
async fn anthropic_errors_map_to_statuses_and_the_process_is_cleaned_up() {
    bounded(async {
        let (fake, work) = start_with_work_dir(&[]).await;
        let url = completions(&fake);
        for case in API_ERRORS {
            let marker = format!("APIERR-{}", case.directive);
            let text = format!("{marker} [[api_error:{}]]", case.directive);
            let (status, headers, body) = post_json(&url, &chat_body("gpt-4o", &text)).await;
            assert_error((status, &body), case.status, None, Some(case.code));
            assert!(
                message_of(&body).contains(case.message_has),
                "{}: {body}",
                case.directive
            );
            if case.status == 429 {
                // The fake's api_retry says retry_delay_ms 2000.
                assert_eq!(headers["retry-after"], "2");
            } else {
                assert!(headers.get("retry-after").is_none());
            }
            let run = run_with(&fake, &marker).unwrap();
            assert_cleaned_up(&fake, &run).await;
        }
        assert!(std::fs::read_dir(work.path()).unwrap().next().is_none());
    })
    .await;
}

#[tokio::test]
async fn anthropic_errors_before_the_first_token_are_real_statuses_when_streaming() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let url = completions(&fake);
        for (directive, status, code) in [
            ("429", 429, "rate_limit_exceeded"),
            ("401", 502, "upstream_auth_failed"),
            ("529", 503, "overloaded"),
        ] {
            let text = format!("[[api_error:{directive}]]");
            let response = client()
                .post(&url)
                .json(&stream_body("gpt-4o", &text, true))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), status, "{directive}");
            if status == 429 {
                assert_eq!(response.headers()["retry-after"], "2");
            }
            let body: Value = response.json().await.unwrap();
            assert_error((status, &body), status, None, Some(code));
        }
    })
    .await;
}

#[tokio::test]
async fn crash_before_output_is_502_and_cleaned_up() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let url = completions(&fake);
        let (status, _, body) =
            post_json(&url, &chat_body("gpt-4o", "CRASH1 [[crash_before_output]]")).await;
        assert_error((status, &body), 502, None, Some("cli_failed"));
        assert_cleaned_up(&fake, &run_with(&fake, "CRASH1").unwrap()).await;

        let response = client()
            .post(&url)
            .json(&stream_body(
                "gpt-4o",
                "CRASH2 [[crash_before_output]]",
                false,
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 502, "not a 200 stream");
        let body: Value = response.json().await.unwrap();
        assert_error((502, &body), 502, None, Some("cli_failed"));
        assert_cleaned_up(&fake, &run_with(&fake, "CRASH2").unwrap()).await;
    })
    .await;
}

#[tokio::test]
async fn hang_times_out_with_504_and_the_process_is_killed() {
    bounded(async {
        let fake = FakeCliGateway::start(&["--request-timeout-secs", "2"]).await;
        let started = Instant::now();
        let (status, _, body) =
            post_json(&completions(&fake), &chat_body("gpt-4o", "HANG1 [[hang]]")).await;
        let took = started.elapsed();
        assert_error((status, &body), 504, None, Some("timeout"));
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_millis(4500),
            "timed out after {took:?}"
        );
        assert_cleaned_up(&fake, &run_with(&fake, "HANG1").unwrap()).await;

        // Streaming, still before the first token: a real 504.
        let started = Instant::now();
        let response = client()
            .post(completions(&fake))
            .json(&stream_body("gpt-4o", "HANG2 [[hang]]", false))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 504);
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(4500),
            "timed out after {took:?}"
        );
        let body: Value = response.json().await.unwrap();
        assert_error((504, &body), 504, None, Some("timeout"));
        assert_cleaned_up(&fake, &run_with(&fake, "HANG2").unwrap()).await;
    })
    .await;
}

#[tokio::test]
async fn timeout_kills_a_cli_that_ignores_sigterm() {
    bounded(async {
        let fake = FakeCliGateway::start(&["--request-timeout-secs", "2"]).await;
        let url = completions(&fake);
        let request = tokio::spawn(async move {
            post_json(&url, &chat_body("gpt-4o", "NOTERM1 [[ignore_sigterm]]")).await
        });
        let run = wait_for_run(&fake, "NOTERM1").await;
        eventually("the fake CLI to ignore SIGTERM", || {
            ignores_sigterm(run_pid(&run))
        })
        .await;
        let (status, _, body) = request.await.unwrap();
        assert_error((status, &body), 504, None, Some("timeout"));
        assert_cleaned_up(&fake, &run).await;
    })
    .await;
}

/// Splits a stream that failed after it started into (chunks before the error, the error).
fn split_in_stream_error(events: &[SseEvent]) -> (Vec<Value>, Value) {
    let mut all = chunks(events);
    let error = all.pop().expect("an error event before [DONE]");
    assert!(
        error.get("error").is_some(),
        "last event is not an error: {error}"
    );
    assert_valid("ErrorResponse", &error);
    (all, error)
}

#[tokio::test]
async fn crash_mid_stream_is_an_in_stream_error_after_some_content() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, _, events) = post_sse(
            &completions(&fake),
            &stream_body(
                "gpt-4o",
                "MIDCRASH one two three [[crash_mid_stream]]",
                true,
            ),
        )
        .await;
        assert_eq!(status, 200);
        let (chunks, error) = split_in_stream_error(&events);
        for chunk in &chunks {
            assert_valid("CreateChatCompletionStreamResponse", chunk);
            assert!(chunk["choices"][0]["finish_reason"].is_null(), "{chunk}");
        }
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(
            content_of(&chunks),
            "Echo: MIDCRASH ",
            "the two deltas sent"
        );
        assert_eq!(error["error"]["code"], "cli_failed", "{error}");
        assert_eq!(error["error"]["type"], "server_error");
        assert_cleaned_up(&fake, &run_with(&fake, "MIDCRASH").unwrap()).await;

        // Not streaming, the same crash is a 502.
        let (status, _, body) = post_json(
            &completions(&fake),
            &chat_body("gpt-4o", "MIDCRASH2 [[crash_mid_stream]]"),
        )
        .await;
        assert_error((status, &body), 502, None, Some("cli_failed"));
    })
    .await;
}

#[tokio::test]
async fn timeout_mid_stream_is_an_in_stream_error_after_some_content() {
    bounded(async {
        let fake = FakeCliGateway::start(&["--request-timeout-secs", "2"]).await;
        let started = Instant::now();
        let (status, _, events) = post_sse(
            &completions(&fake),
            &stream_body("gpt-4o", "MIDHANG a b c [[hang_after:2]]", false),
        )
        .await;
        let took = started.elapsed();
        assert_eq!(status, 200);
        assert!(took < Duration::from_millis(4500), "ended after {took:?}");
        let (chunks, error) = split_in_stream_error(&events);
        for chunk in &chunks {
            assert_valid("CreateChatCompletionStreamResponse", chunk);
        }
        assert_eq!(content_of(&chunks), "Echo: MIDHANG ");
        assert_eq!(error["error"]["code"], "timeout", "{error}");
        assert_cleaned_up(&fake, &run_with(&fake, "MIDHANG").unwrap()).await;
    })
    .await;
}

// ------------------------------------------------------------------------------------------
// 5. Robustness against a misbehaving CLI
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn garbage_and_unknown_stdout_lines_are_skipped() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let text = "[[invalid_json_lines]] [[reply:Still fine.]]";
        let (status, _, body) = post_json(&completions(&fake), &chat_body("gpt-4o", text)).await;
        assert_eq!(status, 200, "{body}");
        assert_valid("CreateChatCompletionResponse", &body);
        assert_eq!(body["choices"][0]["message"]["content"], "Still fine.");
        assert_eq!(body["choices"][0]["finish_reason"], "stop");

        let (status, _, events) =
            post_sse(&completions(&fake), &stream_body("gpt-4o", text, true)).await;
        assert_eq!(status, 200);
        let chunks = chunks(&events);
        assert_well_formed_stream(&chunks, "gpt-4o");
        assert_eq!(content_of(&chunks), "Still fine.");
    })
    .await;
}

#[tokio::test]
async fn a_stderr_flood_does_not_deadlock() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let started = Instant::now();
        let (status, _, body) = post_json(
            &completions(&fake),
            &chat_body("gpt-4o", "FLOOD [[stderr_flood]] [[reply:Survived.]]"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["choices"][0]["message"]["content"], "Survived.");
        assert!(started.elapsed() < Duration::from_secs(20));
        assert_cleaned_up(&fake, &run_with(&fake, "FLOOD").unwrap()).await;
    })
    .await;
}

#[tokio::test]
async fn exit_without_result_is_an_error() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, _, body) = post_json(
            &completions(&fake),
            &chat_body("gpt-4o", "NORESULT [[exit_without_result]]"),
        )
        .await;
        assert_error((status, &body), 502, None, Some("cli_failed"));
        assert_cleaned_up(&fake, &run_with(&fake, "NORESULT").unwrap()).await;

        // Streaming: the text went out, then the missing end is reported in the stream.
        let (status, _, events) = post_sse(
            &completions(&fake),
            &stream_body("gpt-4o", "NORESULT2 [[exit_without_result]]", false),
        )
        .await;
        assert_eq!(status, 200);
        let (chunks, error) = split_in_stream_error(&events);
        assert_eq!(
            content_of(&chunks),
            "Echo: NORESULT2 [[exit_without_result]]"
        );
        assert_eq!(error["error"]["code"], "cli_failed", "{error}");
    })
    .await;
}

#[tokio::test]
async fn concurrent_requests_each_get_their_own_answer() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let url = completions(&fake);
        let requests = (0..4).map(|i| {
            let url = url.clone();
            async move {
                let text = format!("PAR{i} [[delay_ms:50]]");
                let (status, _, body) = post_json(&url, &chat_body("gpt-4o", &text)).await;
                (status, body, text)
            }
        });
        for (status, body, text) in futures::future::join_all(requests).await {
            assert_eq!(status, 200, "{body}");
            assert_eq!(
                body["choices"][0]["message"]["content"],
                format!("Echo: {text}")
            );
        }
        let pids: std::collections::HashSet<u64> = fake
            .runs()
            .iter()
            .filter_map(|r| r["pid"].as_u64())
            .collect();
        assert_eq!(pids.len(), 4, "one process per request");
        let gateway = fake.gw.pid();
        eventually("all runs cleaned up", || fake_children(gateway).is_empty()).await;
    })
    .await;
}

// ------------------------------------------------------------------------------------------
// 6. Cancellation: a client that goes away takes its process with it
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn dropping_a_stream_mid_answer_kills_the_cli() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let mut sock = raw_request(
            &fake.gw,
            &stream_body("gpt-4o", "CANCEL1 [[hang_after:1]]", false),
        )
        .await;
        // The first content chunk ("Echo: ") has arrived; the CLI now stalls.
        let seen = read_until(&mut sock, r#""content":"Echo: ""#).await;
        assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
        let run = wait_for_run(&fake, "CANCEL1").await;
        hang_up_and_expect_kill(&fake, sock, &run).await;
        // The gateway itself carries on.
        let (status, _, body) = post_json(&completions(&fake), &chat_body("gpt-4o", "after")).await;
        assert_eq!(status, 200);
        assert_eq!(body["choices"][0]["message"]["content"], "Echo: after");
    })
    .await;
}

#[tokio::test]
async fn dropping_a_stream_kills_a_cli_that_ignores_sigterm() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        // This CLI never produces a token, so the response is not committed yet either.
        let sock = raw_request(
            &fake.gw,
            &stream_body("gpt-4o", "CANCEL2 [[ignore_sigterm]]", false),
        )
        .await;
        let run = wait_for_run(&fake, "CANCEL2").await;
        eventually("the fake CLI to ignore SIGTERM", || {
            ignores_sigterm(run_pid(&run))
        })
        .await;
        hang_up_and_expect_kill(&fake, sock, &run).await;
    })
    .await;
}

#[tokio::test]
async fn dropping_a_non_streaming_request_kills_the_cli() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let sock = raw_request(&fake.gw, &chat_body("gpt-4o", "CANCEL3 [[hang]]")).await;
        let run = wait_for_run(&fake, "CANCEL3").await;
        hang_up_and_expect_kill(&fake, sock, &run).await;
    })
    .await;
}

// ------------------------------------------------------------------------------------------
// 7. Models, health and the index
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn models_are_listed_and_looked_up() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, list) = get_json(&fake.gw.url("/v1/models")).await;
        assert_eq!(status, 200, "{list}");
        assert_valid("ListModelsResponse", &list);
        assert_eq!(list["object"], "list");
        let ids: Vec<&str> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        for id in ["gpt-4o", "gpt-3.5-turbo", "sonnet", "haiku", "opus"] {
            assert!(ids.contains(&id), "{id} not in {ids:?}");
        }
        for model in list["data"].as_array().unwrap() {
            assert_valid("Model", model);
        }

        let (status, model) = get_json(&fake.gw.url("/v1/models/gpt-4o")).await;
        assert_eq!(status, 200, "{model}");
        assert_valid("Model", &model);
        assert_eq!(model["id"], "gpt-4o");
        assert_eq!(model["object"], "model");

        let (status, body) = get_json(&fake.gw.url("/v1/models/nope")).await;
        assert_error((status, &body), 404, Some("model"), Some("model_not_found"));
        assert!(fake.runs().is_empty(), "listing models runs no CLI");
    })
    .await;
}

#[tokio::test]
async fn health_reports_the_cli_version() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, body) = get_json(&fake.gw.url("/health")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "ok");
        assert_eq!(body["cli"]["found"], true);
        assert_eq!(body["cli"]["version"], "2.1.330 (Claude Code)");
        assert_eq!(body["cli"]["path"].as_str(), fake_cli().to_str());
    })
    .await;
}

#[tokio::test]
async fn health_is_503_when_the_cli_is_missing() {
    bounded(async {
        let gw = Gateway::builder()
            .args(["--claude-bin", "/nonexistent/claude"])
            .start()
            .await;
        let (status, body) = get_json(&gw.url("/health")).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["status"], "unavailable");
        assert_eq!(body["cli"]["found"], false);
        assert!(body["cli"]["version"].is_null());
        let error = body["cli"]["error"].as_str().unwrap_or_default();
        assert!(error.contains("npm install"), "{body}");
    })
    .await;
}

#[tokio::test]
async fn index_lists_the_endpoints() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, body) = get_json(&fake.gw.url("/")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["name"], "claude-gateway");
        let endpoints = body["endpoints"].to_string();
        for endpoint in [
            "POST /v1/chat/completions",
            "GET /v1/models",
            "GET /v1/models/{id}",
            "GET /health",
        ] {
            assert!(endpoints.contains(endpoint), "{endpoint} in {endpoints}");
        }
    })
    .await;
}

// ------------------------------------------------------------------------------------------
// 8. Model map configuration
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn model_map_flag_overrides_the_cli_model() {
    bounded(async {
        let fake = FakeCliGateway::start(&["--model-map", "gpt-4o=opus,team-model=haiku"]).await;
        let url = completions(&fake);
        for (model, cli) in [("gpt-4o", "opus"), ("team-model", "haiku")] {
            let marker = format!("MAP-{model}");
            let (status, _, body) = post_json(&url, &chat_body(model, &marker)).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["model"], model, "the requested id is echoed");
            let run = run_with(&fake, &marker).unwrap();
            assert_eq!(flag_value(&run, "--model").as_deref(), Some(cli), "{model}");
        }
        let (status, list) = get_json(&fake.gw.url("/v1/models")).await;
        assert_eq!(status, 200);
        assert!(
            list["data"].to_string().contains("\"team-model\""),
            "{list}"
        );
    })
    .await;
}

#[tokio::test]
async fn model_map_env_var_works_too() {
    bounded(async {
        let fake = start_with_env(&[], &[("MODEL_MAP", r#"{"gpt-4o":"haiku","gpt-4":""}"#)]).await;
        let (status, _, body) =
            post_json(&completions(&fake), &chat_body("gpt-4o", "ENVMAP")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["model"], "gpt-4o");
        let run = run_with(&fake, "ENVMAP").unwrap();
        assert_eq!(flag_value(&run, "--model").as_deref(), Some("haiku"));
        // An empty target removes the id.
        let (status, _, body) = post_json(&completions(&fake), &chat_body("gpt-4", "x")).await;
        assert_error((status, &body), 404, Some("model"), Some("model_not_found"));
    })
    .await;
}
