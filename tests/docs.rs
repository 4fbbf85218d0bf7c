//! The API documentation the gateway binary serves: `/openapi.json` is an OpenAPI 3.1 document of
//! every route whose schemas are the real ones (the chat request lists every field the gateway
//! reads; requests the gateway accepts and the responses it writes validate against the
//! documented schemas), Swagger UI at `/docs` and ReDoc at `/redoc` load every asset from the
//! binary itself, and `openapi-spec-validator` (installed by `.ci/install-tools`) accepts the
//! document. Each test runs the binary on the fake CLI; every body is bounded by `bounded`.
//!
//! "Every route" is checked three ways: the documented operations are exactly `ROUTES`; each of
//! them is served and every other method on its path is a 405; and the router declares no route
//! but through `src/http/routes.rs`, whose `OpenApiRouter` documents what it serves. The access
//! rules (the optional bearer key, its 401, the rate limit's 429 and headers) are checked
//! against a gateway that has keys and a rate limit.
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
    ("/v1/responses", "post"),
    ("/v1/responses/{response_id}", "get"),
    ("/v1/responses/{response_id}", "delete"),
    ("/v1/responses/{response_id}/input_items", "get"),
    ("/v1/responses/input_tokens", "post"),
    ("/v1/messages", "post"),
    ("/v1/messages/count_tokens", "post"),
    ("/v1/models", "get"),
    ("/v1/models/{id}", "get"),
    ("/v1/sessions", "post"),
    ("/v1/sessions", "get"),
    ("/v1/sessions/{id}", "get"),
    ("/v1/sessions/{id}", "delete"),
    ("/v1/sessions/{id}/clear", "post"),
    ("/v1/usage", "get"),
    ("/v1/budgets", "get"),
    ("/v1/budgets/{key}", "get"),
    ("/v1/budgets/{key}", "put"),
    ("/v1/budgets/{key}", "delete"),
    ("/v1/quota", "get"),
    ("/health", "get"),
    ("/health/live", "get"),
    ("/health/ready", "get"),
    ("/metrics", "get"),
    ("/", "get"),
    ("/openapi.json", "get"),
    ("/docs", "get"),
    ("/docs/", "get"),
    ("/docs/{file}", "get"),
    ("/redoc", "get"),
    ("/redoc/redoc.standalone.js", "get"),
    ("/redoc/redoc.standalone.js.LICENSE.txt", "get"),
];

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The documentation routes: served by `docs::routes()`, always open, and (but for the pages
/// themselves) assets the index does not list.
fn is_documentation(path: &str) -> bool {
    ["/openapi.json", "/docs", "/redoc"]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

/// `path` with its parameters filled in, for a request.
fn concrete(path: &str) -> String {
    path.replace("/v1/models/{id}", "/v1/models/gpt-4o")
        .replace("{id}", "no-such-session")
        .replace("{file}", "swagger-ui.css")
}

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

/// The `(path, method)` operations of the document.
fn documented(doc: &Value) -> Vec<(String, String)> {
    let mut ops: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| METHODS.contains(&k.as_str()))
                .map(|m| (path.clone(), m.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    ops.sort();
    ops
}

fn sorted(routes: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut routes: Vec<(String, String)> = routes
        .iter()
        .map(|(p, m)| (p.to_string(), m.to_string()))
        .collect();
    routes.sort();
    routes
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
        assert_eq!(documented(&doc), sorted(ROUTES));

        // The API's routes are declared once, as `routes!` of `http/routes.rs` (which documents
        // them as it serves them); the router adds no route of its own and merges nothing but
        // the documentation's routes: a route served without being documented fails here.
        for file in ["src/http/mod.rs", "src/http/routes.rs"] {
            let source = std::fs::read_to_string(repo_path(file)).unwrap();
            assert!(
                !source.contains(".route("),
                "{file} declares a route by hand"
            );
            assert!(!source.contains(".nest("), "{file} nests other routers");
            assert!(
                !source.contains(".route_service("),
                "{file} declares a service"
            );
        }
        let source = std::fs::read_to_string(repo_path("src/http/mod.rs")).unwrap();
        let merges: Vec<&str> = source
            .match_indices(".merge(")
            .map(|(i, _)| &source[i..])
            .collect();
        // The documentation's routes, and the dashboard's: a page for people (HTML, its script
        // and style, a login form), not an API operation for clients, so not in the document.
        assert_eq!(merges.len(), 2, "the router merges other routers");
        assert!(merges[0].starts_with(".merge(docs::routes("));
        assert!(merges[1].starts_with(".merge(dashboard::routes("));

        // Every documented operation is served, and no other method on its path is.
        let mut paths: Vec<&str> = ROUTES.iter().map(|(p, _)| *p).collect();
        paths.dedup();
        for path in paths {
            let url = fake.gw.url(&concrete(path));
            for method in METHODS {
                let verb = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let response = client().request(verb, &url).send().await.unwrap();
                let status = response.status().as_u16();
                let body = response.text().await.unwrap();
                if ROUTES.contains(&(path, method)) {
                    assert!(
                        status != 405 && !body.contains("unknown_url"),
                        "{method} {path} is not served: {status} {body}"
                    );
                } else {
                    assert_eq!(status, 405, "{method} {path} is served: {body}");
                }
            }
        }

        // The index lists every endpoint but the documentation's assets, and only those.
        let index = get_json(&fake.gw.url("/")).await;
        let mut listed: Vec<(String, String)> = index["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let (method, path) = e.as_str().unwrap().split_once(' ').unwrap();
                (path.to_string(), method.to_lowercase())
            })
            .collect();
        listed.sort();
        let pages = ["/openapi.json", "/docs", "/redoc"];
        let expected: Vec<(String, String)> = documented(&doc)
            .into_iter()
            .filter(|(p, _)| !is_documentation(p) || pages.contains(&p.as_str()))
            .collect();
        assert_eq!(listed, expected);
        for (path, method) in &listed {
            assert!(
                doc["paths"][path][method].is_object(),
                "{method} {path} is not documented"
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
async fn the_access_rules_are_documented_where_they_apply() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let doc = openapi(&fake).await;
        let scheme = &doc["components"]["securitySchemes"]["api_key"];
        assert_eq!(scheme["type"], "http");
        assert_eq!(scheme["scheme"], "bearer");
        let description = scheme["description"].as_str().unwrap();
        for word in ["--api-keys", "optional", "--public-health"] {
            assert!(description.contains(word), "{description}");
        }
        for (path, method) in ROUTES {
            let op = &doc["paths"][path][method];
            let responses = &op["responses"];
            if is_documentation(path) || *path == "/" {
                assert!(op["security"].is_null(), "{method} {path} has security");
                assert!(responses["401"].is_null(), "{method} {path} has a 401");
                continue;
            }
            // Keys are optional: the bearer key, or nothing.
            assert_eq!(
                op["security"],
                json!([{"api_key": []}, {}]),
                "{method} {path}"
            );
            let unauthorized = &responses["401"];
            assert_eq!(
                unauthorized["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorResponse",
                "{method} {path}"
            );
            assert!(unauthorized["headers"]["WWW-Authenticate"].is_object());
            if path.starts_with("/v1/") {
                let limited = &responses["429"];
                assert!(limited["headers"]["Retry-After"].is_object(), "{path}");
                for (status, response) in responses.as_object().unwrap() {
                    let has = |h: &str| response["headers"][h].is_object();
                    let quota = [
                        "x-ratelimit-limit-requests",
                        "x-ratelimit-remaining-requests",
                        "x-ratelimit-reset-requests",
                    ];
                    assert_eq!(
                        quota.iter().all(|h| has(h)),
                        status != "401",
                        "{method} {path} {status}"
                    );
                }
            } else {
                // Health and metrics are never rate-limited.
                assert!(responses["429"].is_null(), "{method} {path}");
                assert!(
                    unauthorized["description"]
                        .as_str()
                        .unwrap()
                        .contains("--public-health")
                );
            }
        }
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
            "InputToolCall",
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
        for status in [
            "400", "401", "404", "409", "413", "429", "500", "502", "503", "504",
        ] {
            let schema = &responses[status]["content"]["application/json"]["schema"];
            assert_eq!(
                schema["$ref"], "#/components/schemas/ErrorResponse",
                "status {status}"
            );
        }
        assert!(responses["429"]["headers"]["Retry-After"].is_object());

        for (path, method) in ROUTES {
            let responses = doc["paths"][path][method]["responses"].as_object().unwrap();
            assert!(
                responses
                    .keys()
                    .any(|s| s.starts_with('2') || s.starts_with('3')),
                "{method} {path} has no success"
            );
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

/// The schema `$ref`'d by `status`'s `media` content of an operation, by name.
fn response_schema<'a>(doc: &'a Value, op: &'a Value, status: &str, media: &str) -> &'a str {
    let schema = &op["responses"][status]["content"][media]["schema"];
    let name = schema["$ref"]
        .as_str()
        .unwrap_or_else(|| panic!("{status} {media}: {schema}"))
        .strip_prefix("#/components/schemas/")
        .unwrap();
    resolve(doc, schema);
    name
}

#[tokio::test]
async fn the_session_routes_and_the_operator_routes_have_their_schemas() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let doc = openapi(&fake).await;
        let paths = &doc["paths"];
        let json = "application/json";

        // Creating: an optional body (absent is fine, `null` is not), 201 with the session.
        let create = &paths["/v1/sessions"]["post"];
        let body = &create["requestBody"];
        assert_ne!(body["required"], true, "the body is optional");
        assert_eq!(
            body["content"][json]["schema"]["$ref"],
            "#/components/schemas/CreateSession"
        );
        let fields = resolve(&doc, &body["content"][json]["schema"])["properties"]
            .as_object()
            .unwrap();
        for field in ["id", "model", "system_prompt", "metadata"] {
            assert!(fields.contains_key(field), "CreateSession lacks `{field}`");
        }
        assert_eq!(response_schema(&doc, create, "201", json), "Session");
        assert_eq!(response_schema(&doc, create, "400", json), "ErrorResponse");

        let list = &paths["/v1/sessions"]["get"];
        let params: Vec<&str> = list["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "query")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(params, ["limit", "after"]);
        assert_eq!(response_schema(&doc, list, "200", json), "SessionList");
        assert_eq!(response_schema(&doc, list, "400", json), "ErrorResponse");

        for (path, method, ok) in [
            ("/v1/sessions/{id}", "get", "Session"),
            ("/v1/sessions/{id}", "delete", "SessionDeleted"),
            ("/v1/sessions/{id}/clear", "post", "Session"),
        ] {
            let op = &paths[path][method];
            assert_eq!(op["parameters"][0]["in"], "path", "{method} {path}");
            assert_eq!(response_schema(&doc, op, "200", json), ok);
            assert_eq!(response_schema(&doc, op, "404", json), "ErrorResponse");
            let not_found = op["responses"]["404"].to_string();
            assert!(not_found.contains("session_not_found"), "{not_found}");
        }
        for path in [
            "/v1/sessions",
            "/v1/sessions/{id}",
            "/v1/sessions/{id}/clear",
        ] {
            for (method, op) in paths[path].as_object().unwrap() {
                assert_eq!(op["tags"], json!(["sessions"]), "{method} {path}");
                for status in ["500", "502", "503"] {
                    assert_eq!(response_schema(&doc, op, status, json), "ErrorResponse");
                }
            }
        }
        // A session's history is OpenAI messages; the list shows summaries without them.
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["Session"]["properties"]["messages"]["items"]["$ref"],
            "#/components/schemas/ChatMessage"
        );
        assert!(schemas["SessionSummary"]["properties"]["messages"].is_null());
        assert_eq!(
            schemas["SessionList"]["properties"]["data"]["items"]["$ref"],
            "#/components/schemas/SessionSummary"
        );
        for (name, field, value) in [
            ("Session", "object", "session"),
            ("SessionDeleted", "object", "session.deleted"),
            ("SessionList", "object", "list"),
        ] {
            assert_eq!(schemas[name]["properties"][field]["enum"], json!([value]));
        }

        // Chat completions continue sessions, by body field or header.
        let chat = &paths["/v1/chat/completions"]["post"];
        let field = &schemas["ChatCompletionRequest"]["properties"]["session_id"];
        let description = field["description"].as_str().unwrap();
        assert!(!description.contains("refused"), "{description}");
        assert!(description.contains("session_not_found"), "{description}");
        assert!(
            chat["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "x-session-id" && p["in"] == "header")
        );
        assert!(
            chat["responses"]["409"]
                .to_string()
                .contains("session_conflict")
        );

        // Health, readiness and metrics.
        let op = |path: &str| &paths[path]["get"];
        assert_eq!(
            response_schema(&doc, op("/health/live"), "200", json),
            "Live"
        );
        assert_eq!(
            response_schema(&doc, op("/health/ready"), "200", json),
            "Ready"
        );
        assert_eq!(
            response_schema(&doc, op("/health/ready"), "503", json),
            "NotReady"
        );
        let metrics = "text/plain; version=0.0.4";
        assert_eq!(
            response_schema(&doc, op("/metrics"), "200", metrics),
            "Metrics"
        );
        assert_eq!(schemas["Metrics"]["type"], "string");
        assert_eq!(
            op("/docs")["responses"]["303"]["headers"]["Location"]["schema"]["type"],
            "string"
        );
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
        assert_matches(&doc, "Live", &get_json(&fake.gw.url("/health/live")).await);
        assert_matches(
            &doc,
            "Ready",
            &get_json(&fake.gw.url("/health/ready")).await,
        );
        let (status, content_type, metrics) = get(&fake.gw.url("/metrics")).await;
        assert_eq!(status, 200);
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        let metrics = String::from_utf8(metrics).unwrap();
        assert!(metrics.contains("# TYPE claude_gateway_"), "{metrics}");
        assert_matches(&doc, "Metrics", &json!(metrics));

        sessions_match_the_documented_schemas(&fake, &doc).await;

        // Not ready, and why: a gateway without its CLI.
        let missing = Gateway::builder()
            .args(["--claude-bin", "/nonexistent/claude"])
            .start()
            .await;
        for (path, name) in [("/health/ready", "NotReady"), ("/health", "Health")] {
            let (status, body) = send(reqwest::Method::GET, &missing.url(path)).await;
            assert_eq!(status, 503, "{path}: {body}");
            documented_status(&doc, path, "get", status);
            assert_matches(&doc, name, &body);
        }
    })
    .await;
}

/// Sends a request without a body: (status, JSON body).
async fn send(method: reqwest::Method, url: &str) -> (u16, Value) {
    let response = client().request(method, url).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, body)
}

/// Panics unless `status` is a documented response of `method path`.
fn documented_status(doc: &Value, path: &str, method: &str, status: u16) {
    assert!(
        doc["paths"][path][method]["responses"][status.to_string()].is_object(),
        "{method} {path} answered an undocumented {status}"
    );
}

/// A session's life through the HTTP API, every request and response checked against the
/// document: create (with a body, and without one), list in pages, turns naming the session by
/// body field and by header, get, clear, delete, and the refusals of each route.
async fn sessions_match_the_documented_schemas(fake: &FakeCliGateway, doc: &Value) {
    use reqwest::Method;
    let sessions = fake.gw.url("/v1/sessions");
    let chat = fake.gw.url("/v1/chat/completions");

    let create = json!({"id": "docs-1", "model": "gpt-4o", "system_prompt": "Be brief.",
        "metadata": {"team": "docs"}});
    assert_matches(doc, "CreateSession", &create);
    let (status, _, session) = post_json(&sessions, &create).await;
    assert_eq!(status, 201, "{session}");
    assert_matches(doc, "Session", &session);
    assert_eq!(session["system_prompt"], "Be brief.");
    let (status, generated) = send(Method::POST, &sessions).await;
    assert_eq!(status, 201, "{generated}");
    assert_matches(doc, "Session", &generated);
    assert!(generated["model"].is_null());

    let page = get_json(&format!("{sessions}?limit=1")).await;
    assert_matches(doc, "SessionList", &page);
    assert_eq!(page["has_more"], true);
    let after = page["next_after"].as_str().unwrap();
    let rest = get_json(&format!("{sessions}?limit=1&after={after}")).await;
    assert_matches(doc, "SessionList", &rest);
    assert_eq!(rest["has_more"], false);
    assert!(rest["next_after"].is_null());
    // A summary is not a session: it has no history.
    assert!(!violations(doc, "Session", &rest["data"][0]).is_empty());

    // A turn with every kind of message, so the stored history shows them all; then one by
    // header.
    let mut turn = rich_request();
    turn["session_id"] = json!("docs-1");
    assert_matches(doc, "ChatCompletionRequest", &turn);
    let (status, _, reply) = post_json(&chat, &turn).await;
    assert_eq!(status, 200, "{reply}");
    assert_matches(doc, "ChatCompletion", &reply);
    let response = client()
        .post(&chat)
        .header("x-session-id", "docs-1")
        .json(&chat_body("gpt-4o", "And again."))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_matches(doc, "ChatCompletion", &response.json().await.unwrap());

    let session = get_json(&fake.gw.url("/v1/sessions/docs-1")).await;
    assert_matches(doc, "Session", &session);
    let turns = turn["messages"].as_array().unwrap().len() + 1 + 2;
    assert_eq!(session["messages"].as_array().unwrap().len(), turns);
    assert_eq!(session["message_count"], turns);

    let (status, cleared) = send(Method::POST, &fake.gw.url("/v1/sessions/docs-1/clear")).await;
    assert_eq!(status, 200, "{cleared}");
    assert_matches(doc, "Session", &cleared);
    assert_eq!(cleared["messages"], json!([]));
    let (status, deleted) = send(Method::DELETE, &fake.gw.url("/v1/sessions/docs-1")).await;
    assert_eq!(status, 200, "{deleted}");
    assert_matches(doc, "SessionDeleted", &deleted);

    // The refusals: each status documented for its route, each body an `ErrorResponse`.
    let gone = ("session_id", "docs-1");
    let mut refusals = vec![
        (
            Method::GET,
            "/v1/sessions/{id}",
            None,
            404,
            "session_not_found",
        ),
        (
            Method::DELETE,
            "/v1/sessions/{id}",
            None,
            404,
            "session_not_found",
        ),
        (
            Method::POST,
            "/v1/sessions/{id}/clear",
            None,
            404,
            "session_not_found",
        ),
        (Method::GET, "/v1/sessions", Some(json!(null)), 400, ""),
        (
            Method::POST,
            "/v1/sessions",
            Some(json!({"id": generated["id"]})),
            400,
            "session_exists",
        ),
        (
            Method::POST,
            "/v1/sessions",
            Some(json!({"id": "no spaces"})),
            400,
            "",
        ),
        (Method::POST, "/v1/sessions", Some(json!(null)), 400, ""),
    ];
    let mut orphan = chat_body("gpt-4o", "Hello?");
    orphan[gone.0] = json!(gone.1);
    refusals.push((
        Method::POST,
        "/v1/chat/completions",
        Some(orphan),
        404,
        "session_not_found",
    ));
    for (method, template, body, status, code) in refusals {
        let mut url = fake.gw.url(&template.replace("{id}", gone.1));
        if template == "/v1/sessions" && method == Method::GET {
            url = format!("{url}?after={}", gone.1);
        }
        let mut request = client().request(method.clone(), &url);
        if let Some(body) = body.filter(|_| method != Method::GET) {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let got = response.status().as_u16();
        let error: Value = response.json().await.unwrap();
        assert_eq!(got, status, "{method} {template}: {error}");
        documented_status(doc, template, &method.as_str().to_lowercase(), got);
        assert_matches(doc, "ErrorResponse", &error);
        if !code.is_empty() {
            assert_eq!(error["error"]["code"], code, "{method} {template}");
        }
    }
}

#[tokio::test]
async fn keys_and_rate_limits_answer_as_documented() {
    bounded(async {
        let fake =
            FakeCliGateway::start(&["--api-keys", "docs-key", "--rate-limit-rpm", "2"]).await;
        // The documentation is open, whatever the keys.
        let doc = openapi(&fake).await;
        let url = fake.gw.url("/v1/models");
        let op = &doc["paths"]["/v1/models"]["get"];
        let documented_headers = |status: &str| -> Vec<String> {
            op["responses"][status]["headers"]
                .as_object()
                .unwrap()
                .keys()
                .map(|h| h.to_lowercase())
                .collect()
        };

        let response = client().get(&url).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401);
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert!(documented_headers("401").contains(&"www-authenticate".to_string()));
        let error: Value = response.json().await.unwrap();
        assert_matches(&doc, "ErrorResponse", &error);
        assert_eq!(error["error"]["code"], "invalid_api_key");

        let quota = [
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
        ];
        for remaining in ["1", "0"] {
            let response = client()
                .get(&url)
                .bearer_auth("docs-key")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 200);
            for header in quota {
                assert!(response.headers().contains_key(header), "{header}");
                assert!(documented_headers("200").contains(&header.to_string()));
            }
            assert_eq!(response.headers()["x-ratelimit-limit-requests"], "2");
            assert_eq!(
                response.headers()["x-ratelimit-remaining-requests"],
                remaining
            );
            assert_matches(&doc, "ModelList", &response.json().await.unwrap());
        }
        let response = client()
            .get(&url)
            .bearer_auth("docs-key")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 429);
        for header in quota.into_iter().chain(["retry-after"]) {
            assert!(response.headers().contains_key(header), "{header}");
            assert!(documented_headers("429").contains(&header.to_string()));
        }
        let error: Value = response.json().await.unwrap();
        assert_matches(&doc, "ErrorResponse", &error);
        assert_eq!(error["error"]["code"], "rate_limit_exceeded");

        // Health stays open and is not counted.
        let response = client()
            .get(fake.gw.url("/health/ready"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert!(
            !response
                .headers()
                .contains_key("x-ratelimit-limit-requests")
        );
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
            common::skip::missing("openapi-spec-validator", "run .ci/install-tools");
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

/// `POST /v1/responses`: its request schema lists what the gateway reads, and real answers,
/// whole and streamed, match the response and event schemas the document gives.
#[tokio::test]
async fn the_responses_route_is_documented_as_it_answers() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let doc = openapi(&fake).await;
        let op = &doc["paths"]["/v1/responses"]["post"];
        let body = &op["requestBody"]["content"]["application/json"]["schema"];
        let request = resolve(&doc, body);
        assert_eq!(request["required"], json!(["model"]));
        let properties = request["properties"].as_object().unwrap();
        for field in [
            "model",
            "input",
            "instructions",
            "stream",
            "tools",
            "tool_choice",
            "parallel_tool_calls",
            "max_output_tokens",
            "text",
            "reasoning",
            "metadata",
            "temperature",
            "top_p",
            "user",
            "store",
            "background",
            "previous_response_id",
        ] {
            assert!(
                properties.contains_key(field),
                "no `{field}` in {request:#}"
            );
        }
        assert_eq!(
            response_schema(&doc, op, "200", "application/json"),
            "ResponseObject"
        );
        assert_eq!(
            response_schema(&doc, op, "200", "text/event-stream"),
            "StreamEvent"
        );
        assert!(op["responses"]["200"]["headers"]["x-ignored-params"].is_object());

        let url = fake.gw.url("/v1/responses");
        let request = json!({"model": "gpt-4o", "instructions": "Be brief.",
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "[[words:2]]"}]}],
            "metadata": {"k": "v"}, "max_output_tokens": 50, "temperature": 0.1});
        assert_matches(&doc, "CreateResponseRequest", &request);
        let (status, _, answer) = post_json(&url, &request).await;
        assert_eq!(status, 200, "{answer}");
        assert_matches(&doc, "ResponseObject", &answer);
        let mut broken = answer.clone();
        broken.as_object_mut().unwrap().remove("output");
        assert!(!violations(&doc, "ResponseObject", &broken).is_empty());

        let mut streamed = request;
        streamed["stream"] = json!(true);
        let (status, _, events) = post_sse(&url, &streamed).await;
        assert_eq!(status, 200);
        assert!(events.len() > 5);
        for event in &events {
            let event: Value = serde_json::from_str(&event.data).unwrap();
            assert_matches(&doc, "StreamEvent", &event);
        }

        let (status, _, error) = post_json(&url, &json!({"model": "gpt-9", "input": "x"})).await;
        assert_eq!(status, 404);
        documented_status(&doc, "/v1/responses", "post", status);
        assert_matches(&doc, "ErrorResponse", &error);
    })
    .await;
}

/// `POST /v1/responses/input_tokens`: documented with the Responses request body, OpenAI's
/// `TokenCountsResource` shape for a count, and the 501 it answers on the claude engine.
#[tokio::test]
async fn the_input_tokens_route_is_documented_as_it_answers() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let doc = openapi(&fake).await;
        let path = "/v1/responses/input_tokens";
        let op = &doc["paths"][path]["post"];
        assert_eq!(
            op["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/CreateResponseRequest"
        );
        assert_eq!(
            response_schema(&doc, op, "200", "application/json"),
            "InputTokens"
        );
        let count = json!({"object": "response.input_tokens", "input_tokens": 12});
        assert_matches(&doc, "InputTokens", &count);
        assert!(
            !violations(
                &doc,
                "InputTokens",
                &json!({"object": "response.input_tokens"})
            )
            .is_empty()
        );

        let url = fake.gw.url(path);
        for (request, expected) in [
            (json!({"model": "gpt-4o", "input": "Count me."}), 501),
            (json!({"model": "gpt-9", "input": "x"}), 404),
            (json!({"model": "gpt-4o", "input": 3}), 400),
        ] {
            // The 400 is for a body the schema refuses too.
            assert_eq!(
                violations(&doc, "CreateResponseRequest", &request).is_empty(),
                expected != 400
            );
            let (status, _, error) = post_json(&url, &request).await;
            assert_eq!(status, expected, "{error}");
            documented_status(&doc, path, "post", status);
            assert_matches(&doc, "ErrorResponse", &error);
        }
    })
    .await;
}
