//! The API documentation the gateway binary serves: `/openapi.json` is an OpenAPI 3.1 document of
//! every route whose schemas are the real ones (the chat request lists every field the gateway
//! reads; requests the gateway accepts and the responses it writes validate against the
//! documented schemas), Swagger UI at `/docs` and ReDoc at `/redoc` load every asset from the
//! binary itself, and, when `.ci/install-tools` installed it, `openapi-spec-validator` accepts the
//! document. Each test runs the binary on the fake CLI; every body is bounded by `bounded`.
#![allow(clippy::unwrap_used)]

mod common;

use std::future::Future;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A 1×1 PNG.
const PNG_B64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

/// The routes and their methods, as the router serves them.
const ROUTES: &[(&str, &str)] = &[
    ("/v1/chat/completions", "post"),
    ("/v1/models", "get"),
    ("/v1/models/{id}", "get"),
    ("/health", "get"),
    ("/", "get"),
];

async fn bounded(body: impl Future<Output = ()>) {
    tokio::time::timeout(TEST_TIMEOUT, body)
        .await
        .expect("test exceeded its time limit");
}

/// GETs `url`: (status, content type, body bytes).
async fn get(url: &str) -> (u16, String, Vec<u8>) {
    let response = client().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (
        status,
        content_type,
        response.bytes().await.unwrap().to_vec(),
    )
}

async fn get_json(url: &str) -> Value {
    let (status, content_type, body) = get(url).await;
    assert_eq!(status, 200, "GET {url}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    serde_json::from_slice(&body).unwrap()
}

async fn openapi(fake: &FakeCliGateway) -> Value {
    get_json(&fake.gw.url("/openapi.json")).await
}

/// `$ref` → the schema it names, which must exist.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.strip_prefix("#/components/schemas/").unwrap();
            let target = &doc["components"]["schemas"][name];
            assert!(target.is_object(), "{r} does not resolve");
            target
        }
        None => schema,
    }
}

/// What is wrong with `value` against the document's schema `name` (OpenAPI 3.1 schemas are
/// JSON Schema 2020-12).
fn violations(doc: &Value, name: &str, value: &Value) -> Vec<String> {
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "$ref": format!("#/components/schemas/{name}"),
    });
    let validator = jsonschema::draft202012::new(&schema)
        .unwrap_or_else(|e| panic!("schema {name} does not compile: {e}"));
    validator
        .iter_errors(value)
        .map(|e| format!("  at {:?}: {e}", e.instance_path().as_str()))
        .collect()
}

/// Panics with every violation unless `value` is valid against the document's schema `name`.
fn assert_matches(doc: &Value, name: &str, value: &Value) {
    let errors = violations(doc, name, value);
    assert!(
        errors.is_empty(),
        "not a valid {name}:\n{}\n{value:#}",
        errors.join("\n")
    );
}

/// Every string and object key anywhere under `value` (enum values and property names of nested
/// `oneOf`s, `$ref`s).
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                strings(v, out);
            }
        }
        _ => {}
    }
}

/// `name` and everything it references, inlined as text (for "is this mentioned" checks).
fn expanded(doc: &Value, name: &str, depth: usize) -> Vec<String> {
    let mut out = vec![name.to_string()];
    if depth == 0 {
        return out;
    }
    let mut all = Vec::new();
    strings(&doc["components"]["schemas"][name], &mut all);
    for s in all {
        match s.strip_prefix("#/components/schemas/") {
            Some(child) => out.extend(expanded(doc, child, depth - 1)),
            None => out.push(s),
        }
    }
    out
}

#[tokio::test]
async fn openapi_json_is_a_3_1_document_of_every_route() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let doc = openapi(&fake).await;
        assert!(
            doc["openapi"].as_str().unwrap().starts_with("3.1"),
            "{}",
            doc["openapi"]
        );
        assert_eq!(doc["info"]["title"], "claude-gateway");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));

        let paths = doc["paths"].as_object().unwrap();
        let mut documented: Vec<(String, String)> = paths
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| ["get", "post", "put", "patch", "delete"].contains(&k.as_str()))
                    .map(|m| (path.clone(), m.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        documented.sort();
        let mut expected: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(p, m)| (p.to_string(), m.to_string()))
            .collect();
        expected.sort();
        assert_eq!(documented, expected);

        // The index's own list of endpoints is documented too.
        let index = get_json(&fake.gw.url("/")).await;
        for endpoint in index["endpoints"].as_array().unwrap() {
            let (method, path) = endpoint.as_str().unwrap().split_once(' ').unwrap();
            assert!(
                doc["paths"][path][method.to_lowercase()].is_object(),
                "{endpoint} is not documented"
            );
        }
        assert_eq!(
            doc["paths"]["/v1/models/{id}"]["get"]["parameters"][0]["in"],
            "path"
        );
    })
    .await;
}

#[tokio::test]
async fn the_chat_request_schema_lists_every_field_the_gateway_reads() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let doc = openapi(&fake).await;
        let op = &doc["paths"]["/v1/chat/completions"]["post"];
        let body = &op["requestBody"]["content"]["application/json"]["schema"];
        let request = resolve(&doc, body);
        let mut required: Vec<&str> = request["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        required.sort_unstable();
        assert_eq!(required, ["messages", "model"]);
        let properties = request["properties"].as_object().unwrap();
        for field in [
            "model",
            "messages",
            "tools",
            "tool_choice",
            "parallel_tool_calls",
            "response_format",
            "stop",
            "n",
            "max_tokens",
            "max_completion_tokens",
            "stream",
            "stream_options",
            "temperature",
            "top_p",
            "presence_penalty",
            "frequency_penalty",
            "seed",
            "logit_bias",
            "user",
            "logprobs",
            "top_logprobs",
            "functions",
            "function_call",
            "metadata",
            "session_id",
            "reasoning_effort",
        ] {
            assert!(
                properties.contains_key(field),
                "no `{field}` in {request:#}"
            );
        }

        // Messages: every role, string or parts content, image parts, assistant tool calls.
        let message = expanded(&doc, "ChatMessage", 4);
        for word in [
            "system",
            "developer",
            "user",
            "assistant",
            "tool",
            "image_url",
            "tool_call_id",
            "ToolCall",
            "TextPart",
            "UserContentPart",
        ] {
            assert!(message.iter().any(|s| s == word), "messages lack `{word}`");
        }
        let schemas = &doc["components"]["schemas"];
        assert!(schemas["AssistantInputMessage"]["properties"]["tool_calls"].is_object());
        assert!(schemas["ImageUrlObject"]["properties"]["detail"].is_object());
        for (name, words) in [
            (
                "ToolChoice",
                &["none", "auto", "required", "NamedToolChoice"][..],
            ),
            (
                "ResponseFormat",
                &["text", "json_object", "json_schema"][..],
            ),
            (
                "Tool",
                &["function", "parameters", "FunctionDefinition"][..],
            ),
        ] {
            let text = expanded(&doc, name, 2);
            for word in words {
                assert!(text.iter().any(|s| s == word), "{name} lacks `{word}`");
            }
        }
    })
    .await;
}

#[tokio::test]
async fn every_response_is_documented_with_schemas_that_resolve() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let doc = openapi(&fake).await;
        let responses = &doc["paths"]["/v1/chat/completions"]["post"]["responses"];
        let ok = &responses["200"];
        for (media, name) in [
            ("application/json", "ChatCompletion"),
            ("text/event-stream", "ChatCompletionChunk"),
        ] {
            let schema = &ok["content"][media]["schema"];
            assert_eq!(schema["$ref"], format!("#/components/schemas/{name}"));
            assert_eq!(resolve(&doc, schema)["type"], "object");
        }
        assert!(ok["headers"]["x-ignored-params"].is_object());
        for status in ["400", "404", "413", "429", "500", "502", "503", "504"] {
            let schema = &responses[status]["content"]["application/json"]["schema"];
            assert_eq!(
                schema["$ref"], "#/components/schemas/ErrorResponse",
                "status {status}"
            );
        }
        assert!(responses["429"]["headers"]["Retry-After"].is_object());

        for (path, method) in ROUTES {
            let responses = doc["paths"][path][method]["responses"].as_object().unwrap();
            assert!(responses.contains_key("200"), "{method} {path}");
            for (status, response) in responses {
                assert!(
                    response["headers"]["x-request-id"].is_object(),
                    "{method} {path} {status} lacks x-request-id"
                );
                for media in response["content"].as_object().into_iter().flatten() {
                    resolve(&doc, &media.1["schema"]);
                }
            }
        }
        let mut all = Vec::new();
        strings(&doc, &mut all);
        for r in all.iter().filter(|s| s.starts_with("#/")) {
            let name = r.strip_prefix("#/components/schemas/").unwrap();
            assert!(doc["components"]["schemas"][name].is_object(), "{r}");
        }
    })
    .await;
}

/// A request using every documented part of the chat request that the gateway accepts.
fn rich_request() -> Value {
    json!({
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
            {"role": "user", "name": "ann", "content": [
                {"type": "text", "text": "And this picture? [[reply:Fine.]]"},
                {"type": "image_url", "image_url": {
                    "url": format!("data:image/png;base64,{PNG_B64}"), "detail": "low"}}]}
        ],
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "description": "Weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": "auto",
        "parallel_tool_calls": true,
        "response_format": {"type": "text"},
        "stop": ["END"],
        "n": 1,
        "max_tokens": 200,
        "max_completion_tokens": 100,
        "stream": false,
        "temperature": 0.2,
        "top_p": 0.9,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "seed": 7,
        "logit_bias": {"50256": -100},
        "user": "user-1",
        "logprobs": false,
        "metadata": {"team": "docs"},
        "reasoning_effort": "low",
        "store": false
    })
}

#[tokio::test]
async fn real_requests_and_responses_match_the_documented_schemas() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let doc = openapi(&fake).await;
        let url = fake.gw.url("/v1/chat/completions");

        let request = rich_request();
        assert_matches(&doc, "ChatCompletionRequest", &request);
        let (status, headers, body) = post_json(&url, &request).await;
        assert_eq!(status, 200, "{body}");
        assert!(headers.contains_key("x-ignored-params"));
        assert_matches(&doc, "ChatCompletion", &body);
        // The check has teeth: a wrong fixed value and a missing required field are caught.
        let mut broken = body.clone();
        broken["object"] = json!("chat.completion.chunk");
        broken["choices"][0]
            .as_object_mut()
            .unwrap()
            .remove("finish_reason");
        assert_eq!(violations(&doc, "ChatCompletion", &broken).len(), 2);
        assert!(!violations(&doc, "ChatCompletionRequest", &json!({"model": "gpt-4o"})).is_empty());

        let mut stream = chat_body("gpt-4o", "[[words:3]]");
        stream["stream"] = json!(true);
        stream["stream_options"] = json!({"include_usage": true});
        assert_matches(&doc, "ChatCompletionRequest", &stream);
        let (status, _, events) = post_sse(&url, &stream).await;
        assert_eq!(status, 200);
        let chunks = chunks(&events);
        assert!(chunks.len() > 2);
        for chunk in &chunks {
            assert_matches(&doc, "ChatCompletionChunk", chunk);
        }

        for bad in [
            json!({"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}),
            json!({"model": "gpt-4o"}),
        ] {
            let (status, _, body) = post_json(&url, &bad).await;
            assert!(status == 404 || status == 400, "{status} {body}");
            assert_matches(&doc, "ErrorResponse", &body);
        }

        assert_matches(
            &doc,
            "ModelList",
            &get_json(&fake.gw.url("/v1/models")).await,
        );
        assert_matches(
            &doc,
            "Model",
            &get_json(&fake.gw.url("/v1/models/gpt-4o")).await,
        );
        assert_matches(&doc, "Health", &get_json(&fake.gw.url("/health")).await);
        assert_matches(&doc, "Index", &get_json(&fake.gw.url("/")).await);
    })
    .await;
}

/// The values of every `attr="…"` in `html`.
fn attributes(html: &str, attr: &str) -> Vec<String> {
    let needle = format!("{attr}=\"");
    html.match_indices(&needle)
        .map(|(i, _)| {
            let rest = &html[i + needle.len()..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .collect()
}

fn assert_local(url: &str) {
    assert!(
        !url.contains("//") && !url.starts_with("http"),
        "asset {url} is not served by the gateway"
    );
}

#[tokio::test]
async fn swagger_ui_and_every_asset_it_loads_are_served_by_the_binary() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let response = client().get(fake.gw.url("/docs")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let page = response.url().clone();
        assert_eq!(page.path(), "/docs/");
        let html = response.text().await.unwrap();
        assert!(html.contains("swagger-ui"), "{html}");
        let assets: Vec<String> = attributes(&html, "src")
            .into_iter()
            .chain(attributes(&html, "href"))
            .collect();
        assert!(assets.iter().any(|a| a.ends_with("swagger-ui-bundle.js")));
        assert!(assets.iter().any(|a| a.ends_with("swagger-ui.css")));
        for asset in &assets {
            assert_local(asset);
            let (status, content_type, body) = get(page.join(asset).unwrap().as_str()).await;
            assert_eq!(status, 200, "{asset}");
            let min = if asset.ends_with("bundle.js") {
                500_000
            } else {
                150
            };
            assert!(body.len() >= min, "{asset}: {} bytes", body.len());
            if asset.ends_with(".js") {
                assert!(
                    content_type.contains("javascript"),
                    "{asset}: {content_type}"
                );
            }
        }
        // The initializer points at our document and turns off the online validator badge.
        let (_, _, init) = get(page.join("swagger-initializer.js").unwrap().as_str()).await;
        let init = String::from_utf8(init).unwrap();
        assert!(init.contains("\"url\": \"/openapi.json\""), "{init}");
        assert!(init.contains("\"validatorUrl\": \"none\""), "{init}");
    })
    .await;
}

#[tokio::test]
async fn redoc_loads_its_script_from_the_binary() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, content_type, html) = get(&fake.gw.url("/redoc")).await;
        assert_eq!(status, 200);
        assert!(content_type.starts_with("text/html"), "{content_type}");
        let html = String::from_utf8(html).unwrap();
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "{html}"
        );
        assert!(html.contains("Redoc.init(\"/openapi.json\""), "{html}");
        let scripts = attributes(&html, "src");
        assert_eq!(scripts, ["/redoc/redoc.standalone.js"]);
        for script in &scripts {
            assert_local(script);
            let (status, content_type, body) = get(&fake.gw.url(script)).await;
            assert_eq!(status, 200);
            assert!(content_type.contains("javascript"), "{content_type}");
            assert!(body.len() > 500_000, "{} bytes", body.len());
            assert!(body.starts_with(b"/*! For license information"));
        }
        let (status, _, notices) =
            get(&fake.gw.url("/redoc/redoc.standalone.js.LICENSE.txt")).await;
        assert_eq!(status, 200);
        assert!(!notices.is_empty());
    })
    .await;
}

#[tokio::test]
async fn the_document_passes_openapi_spec_validator() {
    bounded(async {
        let Some(python) = tool("venv/bin/python") else {
            return;
        };
        let probe = tokio::process::Command::new(&python)
            .args(["-c", "import openapi_spec_validator"])
            .output()
            .await
            .unwrap();
        if !probe.status.success() {
            assert!(
                std::env::var("REQUIRE_REAL_CLI").is_err(),
                "openapi-spec-validator is not installed; run .ci/install-tools"
            );
            eprintln!("SKIPPED: openapi-spec-validator not installed");
            return;
        }
        let fake = FakeCliGateway::start(&[]).await;
        let doc = openapi(&fake).await;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("openapi.json");
        std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
        let script = "import json, sys\n\
                      from openapi_spec_validator import OpenAPIV31SpecValidator\n\
                      spec = json.load(open(sys.argv[1]))\n\
                      errors = [str(e) for e in OpenAPIV31SpecValidator(spec).iter_errors()]\n\
                      print('\\n'.join(errors))\n\
                      sys.exit(1 if errors else 0)\n";
        let out = tokio::process::Command::new(&python)
            .args(["-c", script, path.to_str().unwrap()])
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "openapi-spec-validator refused the document:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    })
    .await;
}
