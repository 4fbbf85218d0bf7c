//! Property tests of the gateway's two parsers of untrusted input and of the stop-sequence
//! matcher, in process (no binary, no sockets). The HTTP request path (`parse_json` →
//! `chat_request` → `validate`) and the CLI's stream-json path (`CliLine::parse` →
//! `TurnState::push`) get arbitrary bytes, arbitrary strings and arbitrary JSON shaped like what
//! they expect (generated recursively, with the field names and tags they look for): they must
//! never panic, and a refused request must be a client error. The stop matcher, fed a text split
//! at random points, must release exactly the text before the first stop sequence. Cases are
//! bounded so the file runs in seconds.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use claude_gateway::chat::ChatError;
use claude_gateway::chat::stop::{StopMatcher, StopOutcome};
use claude_gateway::chat::types::Tool;
use claude_gateway::chat::validate::{OutputMode, RequiredTool, ValidationConfig, validate};
use claude_gateway::claude::lines::CliLine;
use claude_gateway::claude::turn::{TurnConfig, TurnState};
use claude_gateway::http::convert::chat_request;
use claude_gateway::http::error::parse_json;
use claude_gateway::http::openai::ChatCompletionRequest;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Map, Value, json};

/// Cases per property: enough to reach the odd corners, few enough to run in seconds.
const CASES: u32 = 256;

/// A runner with a fixed seed: every run checks the same cases, so a failure reproduces.
/// `PROPTEST_CASES=N` explores N random cases instead.
fn runner() -> TestRunner {
    if std::env::var_os("PROPTEST_CASES").is_some() {
        return TestRunner::new(Config {
            failure_persistence: None,
            ..Config::default()
        });
    }
    let config = Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
}

/// Runs a property under a time limit, on a blocking thread (proptest is synchronous).
async fn bounded(property: impl FnOnce() + Send + 'static) {
    let run = tokio::task::spawn_blocking(property);
    match tokio::time::timeout(Duration::from_secs(120), run).await {
        Ok(Ok(())) => {}
        Ok(Err(panic)) => std::panic::resume_unwind(panic.into_panic()),
        Err(_) => panic!("property exceeded its time limit"),
    }
}

// ------------------------------------------------------------------------------------------
// Generators
// ------------------------------------------------------------------------------------------

/// Strings that matter to the parsers (roles, types, models, directives) mixed with noise.
fn word() -> impl Strategy<Value = String> {
    let mut special = names(
        "user assistant system developer tool function text image_url input_audio file refusal \
         gpt-4o sonnet haiku claude-x o1 auto none required json_object json_schema low high \
         init api_retry success error end_turn max_tokens tool_use init_1 StructuredOutput \
         mcp__gw__f f data:image/png;base64,iVBORw0KGgo= http://127.0.0.1/x.png é日本 END",
    );
    special.extend(["", "\u{0}", " "]);
    prop_oneof![
        prop::sample::select(special).prop_map(str::to_string),
        ".{0,24}",
    ]
}

/// A list written as one string, one name per word.
fn names(list: &'static str) -> Vec<&'static str> {
    list.split_whitespace().collect()
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-3i64..12).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
    ]
}

/// Any JSON value, with object keys drawn mostly from `keys`.
fn json_with_keys(keys: &'static str) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        number(),
        word().prop_map(Value::from),
    ];
    let key = prop_oneof![
        4 => prop::sample::select(names(keys)).prop_map(str::to_string),
        1 => ".{0,8}",
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const REQUEST_KEYS: &str = "model messages role content type text image_url url detail name tool_calls \
    tool_call_id id function arguments parameters description strict stream stream_options \
    include_usage max_tokens max_completion_tokens n stop temperature tools tool_choice \
    parallel_tool_calls functions function_call response_format json_schema schema metadata \
    session_id reasoning_effort logprobs user seed properties required items";

fn any_request_json() -> impl Strategy<Value = Value> {
    json_with_keys(REQUEST_KEYS)
}

fn content_part() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => word().prop_map(|t| json!({"type": "text", "text": t})),
        1 => word().prop_map(|u| json!({"type": "image_url", "image_url": {"url": u}})),
        1 => word().prop_map(|u| json!({"type": "image_url", "image_url": u})),
        1 => any_request_json(),
    ]
}

fn role() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => prop::sample::select(vec!["user", "user", "system", "developer", "assistant", "tool"])
            .prop_map(Value::from),
        1 => word().prop_map(Value::from),
        1 => any_request_json(),
    ]
}

fn message() -> impl Strategy<Value = Value> {
    let content = prop_oneof![
        6 => word().prop_map(Value::from),
        3 => vec(content_part(), 0..4).prop_map(Value::Array),
        1 => Just(Value::Null),
        1 => any_request_json(),
    ];
    let tool_call = (word(), word(), word()).prop_map(|(id, name, args)| {
        json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}})
    });
    (
        role(),
        content,
        prop::option::weighted(0.2, vec(tool_call, 0..3)),
        prop::option::weighted(0.2, word()),
        prop::option::weighted(0.1, any_request_json()),
    )
        .prop_map(|(role, content, calls, call_id, extra)| {
            let mut m = json!({"role": role, "content": content});
            if let Some(calls) = calls {
                m["tool_calls"] = Value::Array(calls);
            }
            if let Some(id) = call_id {
                m["tool_call_id"] = Value::from(id);
            }
            if let Some(Value::Object(extra)) = extra {
                m.as_object_mut().unwrap().extend(extra);
            }
            m
        })
}

fn tool_json() -> impl Strategy<Value = Value> {
    let parameters = prop_oneof![
        Just(json!({"type": "object", "properties": {"city": {"type": "string"}}})),
        any_request_json(),
    ];
    (word(), prop::option::of(parameters)).prop_map(|(name, parameters)| {
        json!({"type": "function", "function": {"name": name, "parameters": parameters}})
    })
}

/// A plausible value for an optional request field (a word for those without a typed
/// generator).
fn plausible(name: &'static str) -> BoxedStrategy<Value> {
    match name {
        "stream" | "parallel_tool_calls" | "logprobs" => {
            any::<bool>().prop_map(Value::from).boxed()
        }
        "max_tokens" | "max_completion_tokens" | "n" | "seed" => prop_oneof![
            4 => (0u32..12).prop_map(Value::from),
            1 => number(),
        ]
        .boxed(),
        "temperature" => (0.0f64..2.0).prop_map(Value::from).boxed(),
        "stop" => prop_oneof![
            word().prop_map(Value::from),
            vec(word(), 0..6).prop_map(|v| json!(v)),
        ]
        .boxed(),
        "tools" => vec(tool_json(), 0..4).prop_map(Value::Array).boxed(),
        "tool_choice" => prop_oneof![
            word().prop_map(Value::from),
            word().prop_map(|n| json!({"type": "function", "function": {"name": n}})),
        ]
        .boxed(),
        "response_format" => prop_oneof![
            word().prop_map(|t| json!({"type": t})),
            (word(), any_request_json()).prop_map(|(n, s)| {
                json!({"type": "json_schema", "json_schema": {"name": n, "schema": s}})
            }),
        ]
        .boxed(),
        "stream_options" => any::<bool>()
            .prop_map(|b| json!({"include_usage": b}))
            .boxed(),
        "reasoning_effort" => prop::sample::select(vec!["low", "medium", "high", "minimal", "x"])
            .prop_map(Value::from)
            .boxed(),
        "metadata" => btree_map("[a-z]{1,4}", word(), 0..3)
            .prop_map(|m| json!(m))
            .boxed(),
        _ => word().prop_map(Value::from).boxed(),
    }
}

/// Optional request fields, each present now and then, mostly with a plausible value.
fn optional_fields() -> impl Strategy<Value = Map<String, Value>> {
    let fields = names(
        "stream stream_options max_tokens max_completion_tokens n stop temperature seed tools \
         tool_choice parallel_tool_calls response_format reasoning_effort logprobs metadata \
         session_id user functions",
    );
    let each: Vec<BoxedStrategy<Option<(String, Value)>>> = fields
        .into_iter()
        .map(|name| {
            let value = prop_oneof![5 => plausible(name), 1 => any_request_json()];
            prop::option::weighted(0.12, value.prop_map(move |v| (name.to_string(), v))).boxed()
        })
        .collect();
    each.prop_map(|pairs| pairs.into_iter().flatten().collect())
}

/// JSON shaped roughly like a chat request: the right top-level fields with plausible or
/// arbitrary values, sometimes with a field missing or of the wrong type; half of the cases
/// start from a valid conversation so the later checks are reached too.
fn request_like() -> impl Strategy<Value = Value> {
    let model = prop_oneof![
        6 => prop::sample::select(vec!["gpt-4o", "gpt-4o-mini", "sonnet", "claude-x", "o1"])
            .prop_map(Value::from),
        2 => word().prop_map(Value::from),
        1 => any_request_json(),
    ];
    let user_content = prop_oneof![
        3 => word().prop_map(Value::from),
        1 => vec(content_part(), 1..3).prop_map(Value::Array),
    ];
    let valid_messages = (prop::option::of(word()), user_content).prop_map(|(system, user)| {
        let mut messages = Vec::new();
        if let Some(system) = system {
            messages.push(json!({"role": "system", "content": system}));
        }
        messages.push(json!({"role": "user", "content": user}));
        Value::Array(messages)
    });
    let messages = prop_oneof![
        6 => valid_messages,
        4 => vec(message(), 0..5).prop_map(Value::Array),
        1 => any_request_json(),
    ];
    (
        prop::option::weighted(0.95, model),
        prop::option::weighted(0.95, messages),
        optional_fields(),
    )
        .prop_map(|(model, messages, mut fields)| {
            if let Some(model) = model {
                fields.insert("model".into(), model);
            }
            if let Some(messages) = messages {
                fields.insert("messages".into(), messages);
            }
            Value::Object(fields)
        })
}

// ------------------------------------------------------------------------------------------
// The HTTP request path
// ------------------------------------------------------------------------------------------

/// Errors a client can cause with a request body: all 4xx, never a 5xx.
fn is_client_error(err: &ChatError) -> bool {
    match err {
        ChatError::InvalidRequest { message, .. }
        | ChatError::ModelNotFound { message }
        | ChatError::PayloadTooLarge { message } => !message.is_empty(),
        ChatError::SessionNotFound { .. }
        | ChatError::ResponseNotFound { .. }
        | ChatError::SessionConflict { .. }
        | ChatError::Unauthorized { .. }
        | ChatError::Forbidden { .. }
        | ChatError::QuotaExceeded { .. }
        | ChatError::CliNotFound { .. }
        | ChatError::RateLimited { .. }
        | ChatError::UpstreamAuth { .. }
        | ChatError::Overloaded { .. }
        | ChatError::Upstream { .. }
        | ChatError::CliFailed { .. }
        | ChatError::Timeout { .. }
        | ChatError::Unavailable { .. }
        | ChatError::Internal { .. }
        | ChatError::NotImplemented { .. } => false,
    }
}

/// The whole path a request body takes before the engine; `Ok` when it would run.
fn through_the_request_path(bytes: &[u8], cfg: &ValidationConfig) -> Result<(), ChatError> {
    let req: ChatCompletionRequest = parse_json(bytes)?;
    let (req, _mode) = chat_request(req, None)?;
    validate(req, cfg)?;
    Ok(())
}

fn check_request_bytes(bytes: &[u8], cfg: &ValidationConfig) -> Result<(), TestCaseError> {
    if let Err(err) = through_the_request_path(bytes, cfg) {
        prop_assert!(is_client_error(&err), "not a client error: {err:?}");
    }
    Ok(())
}

#[tokio::test]
async fn the_request_path_never_panics_on_arbitrary_bytes() {
    bounded(|| {
        let cfg = ValidationConfig::default();
        let bytes = prop_oneof![
            vec(any::<u8>(), 0..512),
            // Mostly JSON punctuation, so the parser gets past the first byte.
            vec(
                prop::sample::select(b"{}[]\":,0123456789.eE+-truefalsnl \\u".to_vec()),
                0..256
            ),
            // A valid request with bytes flipped.
            (
                vec((0usize..64, any::<u8>()), 1..6),
                Just(br#"{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]}"#.to_vec())
            )
                .prop_map(|(flips, mut body)| {
                    for (at, byte) in flips {
                        let at = at % body.len();
                        body[at] = byte;
                    }
                    body
                }),
        ];
        runner()
            .run(&bytes, |bytes| check_request_bytes(&bytes, &cfg))
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn the_request_path_never_panics_on_request_shaped_json() {
    bounded(|| {
        let cfg = ValidationConfig::default();
        let strict = ValidationConfig {
            strict_params: true,
            max_messages: 2,
            max_images: 1,
            max_prompt_tokens: 8,
            ..ValidationConfig::default()
        };
        let (accepted, total) = (std::cell::Cell::new(0u32), std::cell::Cell::new(0u32));
        runner()
            .run(&request_like(), |req| {
                let bytes = serde_json::to_vec(&req).unwrap();
                total.set(total.get() + 1);
                check_request_bytes(&bytes, &strict)?;
                if through_the_request_path(&bytes, &cfg).is_ok() {
                    accepted.set(accepted.get() + 1);
                }
                check_request_bytes(&bytes, &cfg)
            })
            .unwrap();
        // Not a property, a sign the generator reaches past the first check.
        eprintln!(
            "request-shaped JSON: {} of {} cases valid",
            accepted.get(),
            total.get()
        );
    })
    .await;
}

#[tokio::test]
async fn the_request_path_never_panics_on_arbitrary_json() {
    bounded(|| {
        let cfg = ValidationConfig::default();
        runner()
            .run(&any_request_json(), |value| {
                check_request_bytes(&serde_json::to_vec(&value).unwrap(), &cfg)
            })
            .unwrap();
    })
    .await;
}

// ------------------------------------------------------------------------------------------
// The stream-json path
// ------------------------------------------------------------------------------------------

const LINE_KEYS: &str = "type subtype event index delta content_block message usage text partial_json id \
    name stop_reason request_id request response result is_error num_turns errors error \
    api_error_status error_status retry_delay_ms structured_output input_tokens output_tokens \
    model content tool_name input server_name method params jsonrpc arguments \
    is_api_error_message terminal_reason";

const LINE_TYPES: &str = "system stream_event assistant user result control_request control_response \
    command_lifecycle something_new";

const EVENT_TYPES: &str = "message_start content_block_start content_block_delta content_block_stop \
    message_delta message_stop ping";

fn any_line_json() -> impl Strategy<Value = Value> {
    json_with_keys(LINE_KEYS)
}

fn small_index() -> impl Strategy<Value = Value> {
    prop_oneof![4 => (0u32..4).prop_map(Value::from), 1 => number()]
}

/// A stream event shaped like the ones `--include-partial-messages` forwards.
fn stream_event() -> impl Strategy<Value = Value> {
    let block = prop_oneof![
        Just(json!({"type": "text", "text": ""})),
        Just(json!({"type": "thinking", "thinking": ""})),
        (word(), word()).prop_map(|(id, name)| json!({"type": "tool_use", "id": id, "name": name})),
        any_line_json(),
    ];
    let delta = prop_oneof![
        word().prop_map(|t| json!({"type": "text_delta", "text": t})),
        word().prop_map(|p| json!({"type": "input_json_delta", "partial_json": p})),
        Just(json!({"type": "thinking_delta", "thinking": "hm"})),
        Just(json!({"type": "signature_delta", "signature": "s"})),
        any_line_json(),
    ];
    (
        prop::sample::select(names(EVENT_TYPES)),
        small_index(),
        block,
        delta,
        word(),
        any_line_json(),
    )
        .prop_map(|(kind, index, block, delta, stop, usage)| {
            json!({
                "type": kind, "index": index, "content_block": block, "delta": match kind {
                    "message_delta" => json!({"stop_reason": stop}),
                    _ => delta,
                },
                "message": {"model": "claude-x", "usage": usage}, "usage": usage,
            })
        })
}

/// A control request the CLI could send: permission prompts and MCP messages for the
/// gateway's tool server, or anything else.
fn control_request() -> impl Strategy<Value = Value> {
    let method = prop::sample::select(names(
        "initialize tools/list tools/call ping notifications/initialized other",
    ));
    let request = prop_oneof![
        (word(), any_line_json()).prop_map(|(tool, input)| {
            json!({"subtype": "can_use_tool", "tool_name": tool, "input": input})
        }),
        (method, prop::option::of(number()), any_line_json()).prop_map(|(m, id, params)| {
            json!({"subtype": "mcp_message", "server_name": "gw",
                   "message": {"jsonrpc": "2.0", "method": m, "id": id, "params": params}})
        }),
        any_line_json(),
    ];
    (word(), request).prop_map(
        |(id, request)| json!({"type": "control_request", "request_id": id, "request": request}),
    )
}

/// One stdout line object with a `type` from the known set and fields of the right names.
fn line_object() -> impl Strategy<Value = Value> {
    let result = (
        word(),
        any::<bool>(),
        0u32..3,
        prop::option::of(word()),
        prop::option::of(prop_oneof![
            Just(429u16),
            Just(529),
            Just(401),
            any::<u16>()
        ]),
        any_line_json(),
    )
        .prop_map(|(subtype, is_error, turns, text, status, extra)| {
            json!({"type": "result", "subtype": subtype, "is_error": is_error, "num_turns": turns,
                   "result": text, "api_error_status": status, "structured_output": extra,
                   "usage": {"input_tokens": 3, "output_tokens": 2}, "errors": [text]})
        });
    let system = (
        word(),
        prop::option::of(any::<u16>()),
        prop::option::of(any::<u64>()),
    )
        .prop_map(|(subtype, status, delay)| {
            json!({"type": "system", "subtype": subtype, "error_status": status,
                   "retry_delay_ms": delay, "model": "claude-x"})
        });
    let response = (word(), word(), word()).prop_map(|(id, subtype, error)| {
        json!({"type": "control_response",
               "response": {"request_id": id, "subtype": subtype, "error": error}})
    });
    let typed = (prop::sample::select(names(LINE_TYPES)), any_line_json()).prop_map(|(t, v)| {
        let mut obj = match v {
            Value::Object(m) => m,
            other => Map::from_iter([("message".to_string(), other)]),
        };
        obj.insert("type".into(), Value::from(t));
        Value::Object(obj)
    });
    prop_oneof![
        4 => stream_event().prop_map(|event| json!({"type": "stream_event", "event": event})),
        2 => result,
        1 => system,
        1 => response,
        2 => control_request(),
        2 => typed,
    ]
}

fn tool(name: &str) -> Tool {
    Tool {
        name: name.into(),
        description: None,
        parameters: Some(json!({"type": "object", "properties": {"city": {"type": "string"}}})),
        strict: None,
    }
}

/// Turn configurations covering the branches of `TurnState`: plain text with stop sequences,
/// client tools with and without a required one, JSON output.
fn turn_config() -> impl Strategy<Value = TurnConfig> {
    let output = prop_oneof![
        Just(None),
        Just(Some(OutputMode::JsonObject)),
        Just(Some(OutputMode::JsonSchema {
            name: "answer".into(),
            schema: json!({"type": "object", "required": ["a"],
                           "properties": {"a": {"type": "integer"}}}),
        })),
    ];
    let required = prop_oneof![
        Just(None),
        Just(Some(RequiredTool::Any)),
        Just(Some(RequiredTool::Named("f".into()))),
    ];
    (
        0usize..3,
        vec("[a-eE ]{1,3}", 0..3),
        any::<bool>(),
        any::<bool>(),
        required,
        output,
    )
        .prop_map(
            |(history, stop, with_tools, parallel, required, output)| TurnConfig {
                history_user_lines: history,
                stop,
                tools: if with_tools {
                    vec![tool("f"), tool("get_weather")]
                } else {
                    Vec::new()
                },
                parallel_tools: parallel,
                required_tool: required,
                output,
                ..TurnConfig::default()
            },
        )
}

/// Feeds lines to a fresh turn; the lines that do not parse are skipped, as the run does.
fn push_all(cfg: TurnConfig, lines: &[String]) {
    let mut turn = TurnState::new(cfg);
    for line in lines {
        if let Some(parsed) = CliLine::parse(line) {
            let _ = turn.push(parsed);
        }
    }
    let _ = (turn.is_done(), turn.emitted_text(), turn.ended_on_result());
}

#[tokio::test]
async fn the_stream_json_path_never_panics_on_arbitrary_strings() {
    bounded(|| {
        let lines = vec(
            prop_oneof![
                ".{0,64}",
                // JSON-ish noise: braces, quotes and the type names.
                r#"\{("type":"(system|result|stream_event|assistant|control_request)",?)?.{0,40}\}?"#,
            ],
            0..12,
        );
        runner()
            .run(&(turn_config(), lines), |(cfg, lines)| {
                push_all(cfg, &lines);
                Ok(())
            })
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn the_stream_json_path_never_panics_on_typed_json_lines() {
    bounded(|| {
        let lines = vec(line_object().prop_map(|v| v.to_string()), 0..24);
        runner()
            .run(&(turn_config(), lines), |(cfg, lines)| {
                push_all(cfg, &lines);
                Ok(())
            })
            .unwrap();
    })
    .await;
}

// ------------------------------------------------------------------------------------------
// Stop sequences
// ------------------------------------------------------------------------------------------

/// What a client must get: the text before the first occurrence of any stop sequence, or all of
/// it, and the stop that matched (of two starting at one place, the shorter).
fn expected_stop(text: &str, stops: &[String]) -> (String, Option<String>) {
    let first = stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()).map(|at| (at, s.len(), s)))
        .min();
    match first {
        Some((at, _, stop)) => (text[..at].to_string(), Some(stop.clone())),
        None => (text.to_string(), None),
    }
}

/// What the matcher releases for `text` pushed in `chunks` pieces, and the stop it names.
fn released(stops: &[String], chunks: &[&str]) -> (String, Option<String>) {
    let mut matcher = StopMatcher::new(stops.to_vec());
    let name = |which: u32| stops[which as usize].clone();
    let mut out = String::new();
    for chunk in chunks {
        match matcher.push(chunk) {
            StopOutcome::Continue(text) => out.push_str(&text),
            StopOutcome::Stopped(text, which) => {
                out.push_str(&text);
                return (out, Some(name(which)));
            }
        }
    }
    let (held, which) = matcher.finish();
    out.push_str(&held);
    (out, which.map(name))
}

/// Splits `text` at the given char positions (modulo its length, deduplicated, sorted).
fn split_at_chars<'a>(text: &'a str, cuts: &[usize]) -> Vec<&'a str> {
    let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    let mut at: Vec<usize> = if bounds.is_empty() {
        Vec::new()
    } else {
        cuts.iter().map(|c| bounds[c % bounds.len()]).collect()
    };
    at.sort_unstable();
    at.dedup();
    let mut pieces = Vec::new();
    let mut from = 0;
    for cut in at {
        pieces.push(&text[from..cut]);
        from = cut;
    }
    pieces.push(&text[from..]);
    pieces
}

/// A text, and stop sequences that are mostly pieces of it (so they occur, overlap and
/// straddle chunk boundaries) with some arbitrary ones.
fn text_and_stops() -> impl Strategy<Value = (String, Vec<String>)> {
    let piece = (any::<usize>(), 1usize..5);
    let arbitrary = "[abé日 ]{0,4}";
    (
        "[abé日 ]{0,40}",
        vec(
            prop_oneof![piece.prop_map(Ok), arbitrary.prop_map(Err)],
            0..5,
        ),
    )
        .prop_map(|(text, picks)| {
            let chars: Vec<char> = text.chars().collect();
            let stops = picks
                .into_iter()
                .map(|pick| match pick {
                    Ok((from, len)) if !chars.is_empty() => {
                        let from = from % chars.len();
                        chars[from..(from + len).min(chars.len())].iter().collect()
                    }
                    Ok(_) => String::new(),
                    Err(arbitrary) => arbitrary,
                })
                .collect();
            (text, stops)
        })
}

/// A stop sequence with another one inside it (not at its start), in some text: the inner one
/// can complete in an earlier chunk than the outer one that starts first.
fn nested_stops() -> impl Strategy<Value = (String, Vec<String>)> {
    (
        "[ab ]{0,6}",
        "[abé日]{2,6}",
        any::<usize>(),
        any::<usize>(),
        "[abé日 ]{0,10}",
    )
        .prop_map(|(before, outer, from, len, after)| {
            let chars: Vec<char> = outer.chars().collect();
            let from = 1 + from % (chars.len() - 1);
            let to = from + 1 + len % (chars.len() - from);
            let inner: String = chars[from..to].iter().collect();
            (format!("{before}{outer}{after}"), vec![inner, outer])
        })
}

#[tokio::test]
async fn stop_sequences_release_exactly_the_text_before_the_first_one() {
    bounded(|| {
        // The smallest case the property found: "日éa" starts first, but "é" completes first,
        // inside the first chunk, so the text between the two starts was released.
        let stops = ["é".to_string(), "日éa".to_string()];
        assert_eq!(
            released(&stops, &["日日é", "a日éé"]),
            released(&stops, &["日日éa日éé"]),
            "where the chunks are cut must not change the answer"
        );
        let cuts = vec(any::<usize>(), 0..8);
        runner()
            .run(
                &(prop_oneof![text_and_stops(), nested_stops()], cuts),
                |((text, stops), cuts)| {
                    let chunks = split_at_chars(&text, &cuts);
                    let got = released(&stops, &chunks);
                    let want = expected_stop(&text, &stops);
                    prop_assert_eq!(&got, &want, "stops {:?}, chunks {:?}", stops, chunks);
                    Ok(())
                },
            )
            .unwrap();
    })
    .await;
}
