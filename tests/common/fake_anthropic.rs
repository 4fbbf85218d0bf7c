//! A fake of the Anthropic Messages API for integration tests. It owns a small axum server on
//! `127.0.0.1:<random port>` that accepts everything the real `claude` CLI (2.1.330) sends to
//! `POST /v1/messages?beta=true` (array `system`, `{"role":"system"}` entries in `messages`,
//! `output_config`, tools, thinking, context_management, metadata, ...), records every request
//! body and its headers, and answers like the real API: SSE (`message_start`, `ping`,
//! `content_block_*`, `message_delta`, `message_stop`) when `"stream":true`, a JSON `Message`
//! otherwise, or an Anthropic-shaped error. Any other path (`HEAD /api/hello`, ...) gets 200 `{}`.
//!
//! The answer is steered by directives in the text of the last `role:"user"` message:
//!
//! | directive | effect |
//! |---|---|
//! | (none) | text `You said: <that text without directives and <system-reminder>s>` |
//! | `[[reply:TEXT]]` | text `TEXT` (up to the first `]]`) |
//! | `[[words:N]]` | text `w1 w2 ... wN` |
//! | `[[delay_ms:N]]` | sleep N ms before each content delta |
//! | `[[first_delay_ms:N]]` | sleep N ms before answering at all |
//! | `[[error:STATUS]]` | HTTP STATUS with the real error body (`rate_limit_error`, ...) |
//! | `[[error_once:STATUS]]` | as `error`, only for the first request carrying this exact directive (`[[error_once:500:tag]]` makes it unique) |
//! | `[[retry_after:N]]` | adds `retry-after: N` to an error |
//! | `[[tool:NAME:{json}]]` | "Let me check." + a `tool_use` of the offered tool `NAME` or `*__NAME` (repeatable; ignored if not offered) |
//! | `[[json:{json}]]` | input for the `StructuredOutput` tool (`--json-schema`) |
//! | `[[thinking]]` | a thinking block (2 `thinking_delta` + `signature_delta`) first |
//! | `[[redacted_thinking]]` | a `redacted_thinking` block (`data: redacted_fake_N`, whole in its `content_block_start`) first |
//! | `[[cache_read:N]]` | `cache_read_input_tokens: N` in usage |
//!
//! `POST /v1/messages/count_tokens` answers `{"input_tokens": N}` by the same rule as the usage
//! below (≈ chars of system + messages + tools JSON / 4, `count_of`), records each body
//! (`count_requests`), and fails with `fail_counts(Some(status))`.
//!
//! A last user message carrying `tool_result`s is answered `Tool said: <result text>` (`Done.` for
//! `StructuredOutput`; `reply`/`words` still win), unless a result's text carries `[[tool:..]]`
//! directives: then those tools are called again ("Let me check." + `tool_use`s), so a client
//! can script an agent loop of any length through the results it sends. When `StructuredOutput` is offered and no tool
//! directive applies, it is called with `[[json:..]]` or an object made of the schema's `required`
//! properties. Text is streamed one word per delta (deltas concatenate to the exact text) and cut
//! to `max_tokens` words (`stop_reason:"max_tokens"`). Usage: input ≈ chars of system + messages +
//! tools JSON / 4, output = number of deltas.
#![allow(dead_code)]

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// A running fake; the server shuts down when this is dropped.
pub struct FakeAnthropic {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// Dropping the sender triggers the server's graceful shutdown.
    _shutdown: oneshot::Sender<()>,
}

type Headers = Vec<(String, String)>;

#[derive(Default)]
struct Shared {
    log: Mutex<Vec<(Value, Headers)>>,
    /// `[[error_once:..]]` directives that have already failed once.
    fired: Mutex<HashSet<String>>,
    counter: AtomicU64,
    /// Bodies of every `POST /v1/messages/count_tokens`.
    counts: Mutex<Vec<Value>>,
    /// The status every count fails with; 0 when counts succeed.
    count_status: AtomicU16,
}

impl Shared {
    fn next(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Locks ignoring poisoning: a panicking test must not break the other requests.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeAnthropic {
    /// Binds `127.0.0.1:0` and serves in a background task of the current tokio runtime.
    pub async fn start() -> FakeAnthropic {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake_anthropic: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("fake_anthropic: local_addr");
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::disable())
            .with_state(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let stop = async {
                let _ = rx.await;
            };
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await;
        });
        FakeAnthropic {
            addr,
            shared,
            _shutdown: tx,
        }
    }

    /// `http://127.0.0.1:PORT`, for `ANTHROPIC_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// JSON bodies of every `POST /v1/messages` received, in order (a non-JSON body is recorded
    /// as a JSON string).
    pub fn requests(&self) -> Vec<Value> {
        let log = lock(&self.shared.log);
        log.iter().map(|(body, _)| body.clone()).collect()
    }

    /// Headers of the same requests (lower-case names, in the order received).
    pub fn request_headers(&self) -> Vec<Headers> {
        let log = lock(&self.shared.log);
        log.iter().map(|(_, headers)| headers.clone()).collect()
    }

    /// JSON bodies of every `POST /v1/messages/count_tokens` received, in order.
    pub fn count_requests(&self) -> Vec<Value> {
        lock(&self.shared.counts).clone()
    }

    /// From now on every count fails with `status` (an Anthropic error), or succeeds (`None`).
    pub fn fail_counts(&self, status: Option<u16>) {
        self.shared
            .count_status
            .store(status.unwrap_or(0), Ordering::Relaxed);
    }

    /// Forgets the recorded requests (which `error_once` directives already fired is kept).
    pub fn clear(&self) {
        lock(&self.shared.log).clear();
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_end_matches('/');
    if method == Method::POST && path == "/v1/messages" {
        return messages(&shared, &headers, &body).await;
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(req) if path == "/v1/messages/count_tokens" => {
            lock(&shared.counts).push(req.clone());
            match shared.count_status.load(Ordering::Relaxed) {
                0 => axum::Json(json!({"input_tokens": count_of(&req)})).into_response(),
                status => {
                    let id = format!("req_fake_{:012}", shared.next());
                    error_response(status, None, &id)
                }
            }
        }
        _ => axum::Json(json!({})).into_response(),
    }
}

async fn messages(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    let req = serde_json::from_slice::<Value>(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
    let headers = headers.iter().map(|(name, value)| {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        (name.to_string(), value)
    });
    lock(&shared.log).push((req.clone(), headers.collect()));
    let n = shared.next();
    let request_id = format!("req_fake_{n:012}");
    if !req.is_object() {
        return error_response(400, None, &request_id);
    }

    let (text, tool_results) = last_user_message(&req);
    let d = Directives::parse(&text);
    if d.first_delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(d.first_delay_ms)).await;
    }
    let once = {
        let mut fired = lock(&shared.fired);
        let mut once = d.error_once.iter();
        once.find(|(key, _)| fired.insert(key.clone()))
            .map(|(_, status)| *status)
    };
    if let Some(status) = d.error.or(once) {
        return error_response(status, d.retry_after.as_deref(), &request_id);
    }

    // Decide the content, cut the text to max_tokens words (dropping tool calls after it).
    let (text, mut calls) = plan(&req, &tool_results, &d);
    let mut words = text.as_deref().map(chunks).unwrap_or_default();
    let mut stop_reason = if calls.is_empty() {
        "end_turn"
    } else {
        "tool_use"
    };
    let max_tokens = req["max_tokens"].as_u64().unwrap_or(u64::MAX);
    if words.len() as u64 > max_tokens {
        words.truncate(max_tokens as usize);
        calls.clear();
        stop_reason = "max_tokens";
    }
    let mut blocks = Vec::new();
    if d.redacted_thinking {
        let data = format!("redacted_fake_{}", shared.next());
        blocks.push(Block {
            start: json!({"type": "redacted_thinking", "data": data}),
            deltas: Vec::new(),
            full: json!({"type": "redacted_thinking", "data": data}),
        });
    }
    if d.thinking {
        blocks.push(thinking_block(&format!("sig_fake_{}", shared.next())));
    }
    if text.is_some() {
        blocks.push(text_block(&words));
    }
    for (name, input) in calls {
        let id = format!("toolu_fake_{}", shared.next());
        blocks.push(tool_block(&id, &name, input));
    }

    let output_tokens = blocks.iter().map(|b| b.deltas.len()).sum::<usize>().max(1);
    let usage = json!({
        "input_tokens": count_of(&req),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": d.cache_read,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    });
    let mut message = json!({
        "id": format!("msg_fake_{n:012}"), "type": "message", "role": "assistant",
        "model": req["model"].as_str().unwrap_or("claude-fake"),
        "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage,
    });
    if req["stream"] != true {
        message["content"] = blocks.into_iter().map(|b| b.full).collect();
        message["stop_reason"] = json!(stop_reason);
        return ([("request-id", request_id)], axum::Json(message)).into_response();
    }

    // Streaming: the SSE events, each flagged whether it is a content delta (to be delayed).
    message["usage"]["output_tokens"] = json!(1);
    let mut events = vec![
        (false, json!({"type": "message_start", "message": message})),
        (false, json!({"type": "ping"})),
    ];
    for (index, block) in blocks.into_iter().enumerate() {
        let start =
            json!({"type": "content_block_start", "index": index, "content_block": block.start});
        events.push((false, start));
        for delta in block.deltas {
            let delta = json!({"type": "content_block_delta", "index": index, "delta": delta});
            events.push((true, delta));
        }
        events.push((false, json!({"type": "content_block_stop", "index": index})));
    }
    let delta = json!({"stop_reason": stop_reason, "stop_sequence": null});
    let usage = json!({"output_tokens": output_tokens});
    events.push((
        false,
        json!({"type": "message_delta", "delta": delta, "usage": usage}),
    ));
    events.push((false, json!({"type": "message_stop"})));

    let delay = Duration::from_millis(d.delay_ms);
    let stream = async_stream::stream! {
        for (is_delta, data) in events {
            if is_delta && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let name = data["type"].as_str().unwrap_or_default();
            yield Ok::<Bytes, Infallible>(Bytes::from(format!("event: {name}\ndata: {data}\n\n")));
        }
    };
    let headers = [
        ("content-type", "text/event-stream; charset=utf-8"),
        ("cache-control", "no-cache"),
        ("request-id", &request_id),
    ];
    (headers, Body::from_stream(stream)).into_response()
}

/// An Anthropic error: `{"type":"error","error":{"type":..,"message":..},"request_id":..}`.
fn error_response(status: u16, retry_after: Option<&str>, request_id: &str) -> Response {
    let kind = match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    };
    let error = json!({"type": kind, "message": format!("fake {status} {kind}")});
    let body = json!({"type": "error", "error": error, "request_id": request_id});
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, [("request-id", request_id)], axum::Json(body)).into_response();
    if let Some(value) = retry_after.and_then(|v| v.parse().ok()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// The fake's token count of a request (its usage and its `count_tokens` answer): characters of
/// the `system`, `messages` and `tools` JSON / 4, at least 1.
pub fn count_of(req: &Value) -> usize {
    let parts = ["system", "messages", "tools"].map(|k| req.get(k));
    let chars: usize = parts
        .iter()
        .flatten()
        .map(|v| v.to_string().chars().count())
        .sum();
    (chars / 4).max(1)
}

/// One content block: its `content_block_start` payload, its deltas, its non-streaming form.
struct Block {
    start: Value,
    deltas: Vec<Value>,
    full: Value,
}

fn text_block(words: &[String]) -> Block {
    Block {
        start: json!({"type": "text", "text": ""}),
        deltas: words
            .iter()
            .map(|w| json!({"type": "text_delta", "text": w}))
            .collect(),
        full: json!({"type": "text", "text": words.concat()}),
    }
}

fn thinking_block(signature: &str) -> Block {
    let parts = ["Let me think ", "about this."];
    let mut deltas: Vec<Value> = parts
        .iter()
        .map(|p| json!({"type": "thinking_delta", "thinking": p}))
        .collect();
    deltas.push(json!({"type": "signature_delta", "signature": signature}));
    Block {
        start: json!({"type": "thinking", "thinking": "", "signature": ""}),
        deltas,
        full: json!({"type": "thinking", "thinking": parts.concat(), "signature": signature}),
    }
}

/// A `tool_use` whose input JSON is streamed in two fragments.
fn tool_block(id: &str, name: &str, input: Value) -> Block {
    let json = input.to_string();
    let mut mid = json.len() / 2;
    while !json.is_char_boundary(mid) {
        mid -= 1;
    }
    let (a, b) = json.split_at(mid);
    Block {
        start: json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
        deltas: [a, b]
            .map(|p| json!({"type": "input_json_delta", "partial_json": p}))
            .into(),
        full: json!({"type": "tool_use", "id": id, "name": name, "input": input}),
    }
}

/// Splits into words, each keeping the spaces after it, so the chunks concatenate to `text`.
fn chunks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        if c != ' ' && cur.ends_with(' ') && !cur.trim_start_matches(' ').is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The text (if any) and the tool calls `(offered name, input)` of a successful answer.
fn plan(
    req: &Value,
    tool_results: &[(String, String)],
    d: &Directives,
) -> (Option<String>, Vec<(String, Value)>) {
    let tools = req["tools"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let offered = |want: &str| {
        let suffix = format!("__{want}");
        let mut names = tools.iter().filter_map(|t| t["name"].as_str());
        names
            .find(|n| *n == want || n.ends_with(&suffix))
            .map(str::to_owned)
    };
    let words = d.words.map(|n| {
        (1..=n)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    });
    let explicit = d.reply.clone().or(words);

    if !tool_results.is_empty() {
        let said: Vec<&str> = tool_results.iter().map(|(_, text)| text.as_str()).collect();
        let again = Directives::parse(&said.join("\n"));
        let calls: Vec<_> = again
            .tools
            .iter()
            .filter_map(|(want, input)| Some((offered(want)?, input.clone())))
            .collect();
        if !calls.is_empty() {
            return (Some("Let me check.".to_owned()), calls);
        }
        let structured = tool_results
            .iter()
            .any(|(id, _)| tool_name(req, id) == Some("StructuredOutput"));
        let text = match explicit {
            _ if structured => "Done.".to_owned(),
            Some(text) => text,
            None => format!("Tool said: {}", said.join("; ")),
        };
        return (Some(text), vec![]);
    }
    let calls: Vec<_> = d
        .tools
        .iter()
        .filter_map(|(want, input)| Some((offered(want)?, input.clone())))
        .collect();
    if !calls.is_empty() {
        return (
            Some(explicit.unwrap_or_else(|| "Let me check.".to_owned())),
            calls,
        );
    }
    if let Some(schema) = tools.iter().find(|t| t["name"] == "StructuredOutput") {
        let input = d
            .json
            .clone()
            .unwrap_or_else(|| minimal(&schema["input_schema"], 0));
        return (None, vec![("StructuredOutput".to_owned(), input)]);
    }
    let echo = || {
        format!("You said: {}", strip_reminders(&d.stripped).trim())
            .trim_end()
            .to_owned()
    };
    (Some(explicit.unwrap_or_else(echo)), vec![])
}

/// Name of the `tool_use` with this id in an earlier assistant message.
fn tool_name<'a>(req: &'a Value, id: &str) -> Option<&'a str> {
    let messages = req["messages"].as_array()?;
    let mut blocks = messages
        .iter()
        .filter_map(|m| m["content"].as_array())
        .flatten();
    blocks.find(|b| b["type"] == "tool_use" && b["id"] == id)?["name"].as_str()
}

/// A minimal value satisfying `schema`: required properties only, strings "x", numbers 1.
fn minimal(schema: &Value, depth: usize) -> Value {
    if let Some(v) = schema.get("const").or_else(|| schema.get("enum")?.get(0)) {
        return v.clone();
    }
    let ty = match &schema["type"] {
        Value::Array(types) => types.first().and_then(Value::as_str),
        ty => ty.as_str(),
    };
    match ty.unwrap_or(if depth == 0 { "object" } else { "string" }) {
        "string" => json!("x"),
        "integer" | "number" => json!(1),
        "boolean" => json!(true),
        "array" => json!([]),
        "null" => Value::Null,
        _ if depth > 8 => json!({}),
        _ => {
            let required = schema["required"].as_array().into_iter().flatten();
            let props = required.filter_map(Value::as_str);
            let props = props.map(|k| (k.to_owned(), minimal(&schema["properties"][k], depth + 1)));
            Value::Object(props.collect())
        }
    }
}

/// Removes the `<system-reminder>…</system-reminder>` spans the CLI adds to user messages.
fn strip_reminders(text: &str) -> String {
    let (open, close) = ("<system-reminder>", "</system-reminder>");
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(open) {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find(close)
            .map(|end| start + end + close.len());
        rest = end.map_or("", |end| &rest[end..]);
    }
    out.push_str(rest);
    out
}

/// The text blocks (joined by newlines) and the `(tool_use_id, text)` of the `tool_result`
/// blocks of the last `role:"user"` message; `content` may be a string or an array.
fn last_user_message(req: &Value) -> (String, Vec<(String, String)>) {
    let messages = req["messages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let content = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(|m| &m["content"]);
    let (mut texts, mut results) = (Vec::new(), Vec::new());
    match content {
        Some(Value::String(s)) => texts.push(s.clone()),
        Some(Value::Array(blocks)) => {
            for b in blocks {
                match b["type"].as_str() {
                    Some("text") => texts.push(b["text"].as_str().unwrap_or_default().to_owned()),
                    Some("tool_result") => {
                        let id = b["tool_use_id"].as_str().unwrap_or_default().to_owned();
                        results.push((id, content_text(&b["content"])));
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
    (texts.join("\n"), results)
}

/// Text of a `tool_result` content: a string or an array of text blocks.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => {
            let texts: Vec<&str> = blocks.iter().filter_map(|b| b["text"].as_str()).collect();
            texts.join("\n")
        }
        _ => String::new(),
    }
}

/// Directives found in the last user text, plus that text with them removed.
#[derive(Default)]
struct Directives {
    reply: Option<String>,
    words: Option<usize>,
    delay_ms: u64,
    first_delay_ms: u64,
    error: Option<u16>,
    /// (full directive text, status)
    error_once: Vec<(String, u16)>,
    retry_after: Option<String>,
    tools: Vec<(String, Value)>,
    json: Option<Value>,
    thinking: bool,
    redacted_thinking: bool,
    cache_read: u64,
    stripped: String,
}

impl Directives {
    fn parse(text: &str) -> Directives {
        let mut d = Directives::default();
        let mut rest = text;
        while let Some(start) = rest.find("[[") {
            d.stripped.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            match d.take(after) {
                Some(used) => rest = &after[used..],
                None => {
                    d.stripped.push_str("[[");
                    rest = after;
                }
            }
        }
        d.stripped.push_str(rest);
        d
    }

    /// Parses one directive at the start of `s` (just after `[[`); returns the bytes used
    /// through the closing `]]`, or `None` (changing nothing) if it is not a valid directive.
    fn take(&mut self, s: &str) -> Option<usize> {
        let name_len = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
        let name = &s[..name_len];
        if s[name_len..].starts_with("]]") {
            // `thinking` and `redacted_thinking` are the directives without an argument.
            self.thinking |= name == "thinking";
            self.redacted_thinking |= name == "redacted_thinking";
            return matches!(name, "thinking" | "redacted_thinking").then_some(name_len + 2);
        }
        let body = s[name_len..].strip_prefix(':')?;
        let at = name_len + 1;
        if name == "tool" {
            let colon = body.find(':')?;
            let (input, used) = json_then_close(&body[colon + 1..])?;
            self.tools.push((body[..colon].trim().to_owned(), input));
            return Some(at + colon + 1 + used);
        }
        if name == "json" {
            let (input, used) = json_then_close(body)?;
            self.json = Some(input);
            return Some(at + used);
        }
        let end = body.find("]]")?;
        let arg = &body[..end];
        let num = || arg.trim().parse::<u64>().ok();
        match name {
            "reply" => self.reply = Some(arg.to_owned()),
            "words" => self.words = Some(num()?.min(100_000) as usize),
            "delay_ms" => self.delay_ms = num()?,
            "first_delay_ms" => self.first_delay_ms = num()?,
            "cache_read" => self.cache_read = num()?,
            "retry_after" => self.retry_after = Some(arg.trim().to_owned()),
            "error" => self.error = Some(status(arg)?),
            "error_once" => {
                let status = status(arg)?;
                self.error_once
                    .push((format!("[[error_once:{arg}]]"), status));
            }
            _ => return None,
        }
        Some(at + end + 2)
    }
}

/// `STATUS` or `STATUS:tag` → an HTTP error status (400–599).
fn status(arg: &str) -> Option<u16> {
    let code = arg.split(':').next()?.trim().parse::<u16>().ok()?;
    (400..=599).contains(&code).then_some(code)
}

/// Parses a JSON value followed by `]]`; returns it and the bytes used through `]]`.
fn json_then_close(s: &str) -> Option<(Value, usize)> {
    let mut values = serde_json::Deserializer::from_str(s).into_iter::<Value>();
    let value = values.next()?.ok()?;
    let end = values.byte_offset();
    let spaces = s[end..].len() - s[end..].trim_start().len();
    s[end + spaces..]
        .starts_with("]]")
        .then_some((value, end + spaces + 2))
}
