//! Unit tests of the OpenAPI document: routes, schemas, access rules, references.

use serde_json::{Value, json};

use super::modify::API_KEY_SCHEME;

use super::*;

fn doc() -> Value {
    serde_json::to_value(crate::http::routes::openapi()).expect("the document serializes")
}

#[test]
fn the_document_is_openapi_3_1_with_every_route() {
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], env!("CARGO_PKG_NAME"));
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    for (path, method, ok) in [
        ("/v1/chat/completions", "post", "200"),
        ("/v1/models", "get", "200"),
        ("/v1/models/{id}", "get", "200"),
        ("/v1/sessions", "post", "201"),
        ("/v1/sessions", "get", "200"),
        ("/v1/sessions/{id}", "get", "200"),
        ("/v1/sessions/{id}", "delete", "200"),
        ("/v1/sessions/{id}/clear", "post", "200"),
        ("/health", "get", "200"),
        ("/health/live", "get", "200"),
        ("/health/ready", "get", "200"),
        ("/metrics", "get", "200"),
        ("/", "get", "200"),
        ("/openapi.json", "get", "200"),
        ("/docs", "get", "303"),
        ("/redoc", "get", "200"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} missing");
        assert!(
            op["responses"][ok]["headers"]["x-request-id"].is_object(),
            "{method} {path} has no x-request-id header"
        );
    }
}

#[test]
fn the_modifiers_shape_what_the_derives_cannot() {
    let doc = doc();
    // An optional body may be absent, not `null`.
    let body = &doc["paths"]["/v1/sessions"]["post"]["requestBody"];
    assert!(body["required"].is_null() || body["required"] == false);
    assert_eq!(
        body["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/CreateSession"
    );
    // The access rules follow `Route::of_http_path`.
    let security = |path: &str| doc["paths"][path]["get"]["security"].clone();
    let optional_key = json!([{API_KEY_SCHEME: []}, {}]);
    assert_eq!(security("/v1/models"), optional_key);
    assert_eq!(security("/health/ready"), optional_key);
    assert!(security("/openapi.json").is_null());
    let ready = &doc["paths"]["/health/ready"]["get"]["responses"];
    assert!(ready["401"].is_object());
    assert!(ready["429"].is_null());
    assert!(ready["200"]["headers"]["x-ratelimit-limit-requests"].is_null());
    let chat = &doc["paths"]["/v1/chat/completions"]["post"]["responses"];
    assert!(chat["200"]["headers"]["x-ratelimit-remaining-requests"].is_object());
    assert!(chat["401"]["headers"]["x-ratelimit-remaining-requests"].is_null());
    assert!(chat["429"]["headers"]["Retry-After"].is_object());
    let request = &doc["components"]["schemas"]["ChatCompletionRequest"];
    let session_id = request["properties"]["session_id"]["description"]
        .as_str()
        .unwrap();
    assert!(session_id.contains("session_not_found"), "{session_id}");
}

#[test]
fn every_reference_resolves() {
    let doc = doc();
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} does not resolve"
        );
    }
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[test]
fn the_redoc_page_loads_nothing_from_elsewhere() {
    assert!(!REDOC_HTML.contains("http"));
    assert!(REDOC_HTML.contains(REDOC_JS_PATH));
    assert!(REDOC_JS.len() > 500_000);
    assert!(REDOC_JS.starts_with(b"/*! For license information"));
}
