//! criterion micro-benchmarks of the gateway's per-token and per-request hot paths, each beside a
//! baseline measured in the same run: parsing the same bytes into a `serde_json::Value`, the
//! least any JSON-speaking proxy must do.
//!
//! - a stream-json text delta → `CliLine::parse` → `TurnState::push` → `ChunkTranscoder::push`
//!   (the SSE chunk's JSON); and a whole real answer (the 13 lines of
//!   `tests/fixtures/cli-runs/04-stream-json-partial.out`) → its chunks;
//! - a request body → `parse_json::<ChatCompletionRequest>` → `http::convert::chat_request` →
//!   `grpc::convert::chat_params` (the proto request the façade sends upstream), for a short
//!   request and a 20-message conversation with tools; and the local engine's path from the same
//!   body to the CLI's stdin lines (`validate`, which counts prompt tokens, and `run_input`).
//!
//! Run with `cargo bench --bench hotpaths`; after criterion's own report it prints a Markdown
//! table of the medians and their ratios to the baselines.

mod common;

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use claude_gateway::chat::types::{ChatEvent, CompletionMeta};
use claude_gateway::chat::validate::{ValidationConfig, validate};
use claude_gateway::claude::input::run_input;
use claude_gateway::claude::lines::CliLine;
use claude_gateway::claude::turn::{TurnConfig, TurnOutput, TurnState};
use claude_gateway::http::error::parse_json;
use claude_gateway::http::openai::ChatCompletionRequest;
use claude_gateway::http::sse::ChunkTranscoder;
use criterion::{BatchSize, Criterion};
use serde_json::{Value, json};

const ANSWER: &str = include_str!("../tests/fixtures/cli-runs/04-stream-json-partial.out");

fn delta_line() -> &'static str {
    ANSWER
        .lines()
        .find(|l| l.contains("\"text_delta\""))
        .expect("a text delta in the fixture")
}

fn meta() -> CompletionMeta {
    CompletionMeta {
        id: "chatcmpl-0123456789abcdef0123456789abcdef".into(),
        created: 1_795_000_000,
        model: "gpt-4o".into(),
        ignored_params: Vec::new(),
    }
}

/// What the gateway does with one stdout line: parse, step the turn, transcode its outputs into
/// chunk JSON (as `run.rs` and the SSE handler do).
fn line_to_chunks(
    line: &str,
    turn: &mut TurnState,
    sse: &mut ChunkTranscoder,
    out: &mut Vec<String>,
) {
    let Some(parsed) = CliLine::parse(line) else {
        return;
    };
    for output in turn.push(parsed) {
        let events = match output {
            TurnOutput::Started => vec![ChatEvent::Role { index: 0 }],
            TurnOutput::Text(text) => vec![ChatEvent::Text { index: 0, text }],
            TurnOutput::ToolCall(call) => vec![ChatEvent::ToolCall { index: 0, call }],
            TurnOutput::Reasoning(delta) => vec![ChatEvent::Reasoning { index: 0, delta }],
            TurnOutput::Finished { reason, usage } => vec![
                ChatEvent::Finish { index: 0, reason },
                ChatEvent::Usage(usage),
            ],
            TurnOutput::Write(_) | TurnOutput::Failed(_) => Vec::new(),
        };
        out.extend(events.into_iter().filter_map(|e| sse.push(e)));
    }
}

fn fresh() -> (TurnState, ChunkTranscoder, Vec<String>) {
    (
        TurnState::new(TurnConfig::default()),
        ChunkTranscoder::new(meta(), true),
        Vec::with_capacity(16),
    )
}

fn lines(c: &mut Criterion) {
    let delta = delta_line();
    let mut g = c.benchmark_group("line_to_chunk");
    g.bench_function("delta_serde_value", |b| {
        b.iter(|| serde_json::from_str::<Value>(black_box(delta)).expect("JSON"))
    });
    g.bench_function("delta_gateway", |b| {
        b.iter_batched_ref(
            fresh,
            |(turn, sse, out)| line_to_chunks(black_box(delta), turn, sse, out),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("answer_serde_value", |b| {
        b.iter(|| {
            for line in black_box(ANSWER).lines() {
                black_box(serde_json::from_str::<Value>(line).expect("JSON"));
            }
        })
    });
    g.bench_function("answer_gateway", |b| {
        b.iter_batched_ref(
            fresh,
            |(turn, sse, out)| {
                for line in black_box(ANSWER).lines() {
                    line_to_chunks(line, turn, sse, out);
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn short_request() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "model": "gpt-4o", "stream": true, "stream_options": {"include_usage": true},
        "temperature": 0.2,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant. Be brief."},
            {"role": "user", "content": "Write a haiku about pipes."}
        ]
    }))
    .expect("JSON")
}

fn conversation_request() -> Vec<u8> {
    let mut messages = vec![json!({"role": "system", "content": "You are a helpful assistant."})];
    for i in 0..19 {
        let (role, text) = if i % 2 == 0 {
            (
                "user",
                format!(
                    "Question {i}: what is the weather like in city number {i}, and should I bring an umbrella?"
                ),
            )
        } else {
            (
                "assistant",
                format!(
                    "Answer {i}: it is mild and partly cloudy there today; a light jacket will do, no umbrella needed."
                ),
            )
        };
        messages.push(json!({"role": role, "content": text}));
    }
    serde_json::to_vec(&json!({
        "model": "gpt-4o", "stream": true, "max_tokens": 512,
        "messages": messages,
        "tools": [
            {"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
             "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                 "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}},
            {"type": "function", "function": {"name": "get_time", "description": "Local time in a city",
             "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
        ],
        "tool_choice": "auto"
    }))
    .expect("JSON")
}

fn to_proto(body: &[u8]) -> impl Sized {
    let req: ChatCompletionRequest = parse_json(body).expect("parses");
    let (domain, _mode) = claude_gateway::http::convert::chat_request(req, None).expect("converts");
    claude_gateway::grpc::convert::chat_params(domain)
}

fn to_cli_lines(body: &[u8], cfg: &ValidationConfig) -> impl Sized {
    let req: ChatCompletionRequest = parse_json(body).expect("parses");
    let (domain, _mode) = claude_gateway::http::convert::chat_request(req, None).expect("converts");
    run_input(&validate(domain, cfg).expect("valid"), true)
}

fn requests(c: &mut Criterion) {
    let cfg = ValidationConfig::default();
    // The tokenizer is loaded once per process; keep that out of the timings.
    claude_gateway::chat::tokens::count("warm up");
    let mut g = c.benchmark_group("request");
    for (name, body) in [
        ("short", short_request()),
        ("conversation", conversation_request()),
    ] {
        g.bench_function(format!("{name}_serde_value"), |b| {
            b.iter(|| serde_json::from_slice::<Value>(black_box(&body)).expect("JSON"))
        });
        g.bench_function(format!("{name}_to_proto"), |b| {
            b.iter(|| to_proto(black_box(&body)))
        });
        g.bench_function(format!("{name}_to_cli_lines"), |b| {
            b.iter(|| to_cli_lines(black_box(&body), &cfg))
        });
    }
    g.finish();
}

/// criterion's output directory (`target/criterion`, as it picks by default).
fn criterion_dir() -> PathBuf {
    common::target_tmp()
        .parent()
        .expect("target dir")
        .join("criterion")
}

/// The median of one benchmark in ns, from criterion's `estimates.json`.
fn median_ns(group: &str, id: &str) -> f64 {
    let path = criterion_dir()
        .join(group)
        .join(id)
        .join("new")
        .join("estimates.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: Value = serde_json::from_str(&text).expect("estimates JSON");
    v["median"]["point_estimate"].as_f64().expect("median")
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 10_000.0 {
        format!("{:.1} µs", ns / 1000.0)
    } else if ns >= 1000.0 {
        format!("{:.2} µs", ns / 1000.0)
    } else {
        format!("{ns:.0} ns")
    }
}

fn markdown() -> String {
    let (mut turn, mut sse, mut chunks) = fresh();
    for line in ANSWER.lines() {
        line_to_chunks(line, &mut turn, &mut sse, &mut chunks);
    }
    let delta = format!("one text delta ({} B) → SSE chunk", delta_line().len());
    let answer = format!(
        "a whole answer ({} lines, {:.1} KB) → its {} chunks",
        ANSWER.lines().count(),
        ANSWER.len() as f64 / 1024.0,
        chunks.len()
    );
    let rows = [
        (
            delta.as_str(),
            "line_to_chunk",
            "delta_gateway",
            "delta_serde_value",
        ),
        (
            answer.as_str(),
            "line_to_chunk",
            "answer_gateway",
            "answer_serde_value",
        ),
        (
            "short request JSON → proto request",
            "request",
            "short_to_proto",
            "short_serde_value",
        ),
        (
            "short request JSON → validated → CLI stdin lines",
            "request",
            "short_to_cli_lines",
            "short_serde_value",
        ),
        (
            "20-message request with tools → proto request",
            "request",
            "conversation_to_proto",
            "conversation_serde_value",
        ),
        (
            "20-message request with tools → validated → CLI stdin lines",
            "request",
            "conversation_to_cli_lines",
            "conversation_serde_value",
        ),
    ];
    let mut md = String::from(
        "criterion medians; the baseline parses the same bytes into a `serde_json::Value`.\n\n\
         | hot path | gateway | baseline: `serde_json::Value` | ratio |\n|---|---|---|---|\n",
    );
    for (name, group, id, base) in rows {
        let (t, b) = (median_ns(group, id), median_ns(group, base));
        md.push_str(&format!(
            "| {name} | {} | {} | {:.2}× |\n",
            fmt_ns(t),
            fmt_ns(b),
            t / b
        ));
    }
    md
}

fn main() {
    let mut c = Criterion::default()
        .output_directory(&criterion_dir())
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .configure_from_args();
    lines(&mut c);
    requests(&mut c);
    c.final_summary();
    common::report("hotpaths", &markdown());
}
