//! The HTTP API's own OpenAPI 3.1 document (`GET /openapi.json`) and the two pages that render
//! it, Swagger UI (`/docs`) and ReDoc (`/redoc`), all served from the binary with no network at
//! build or run time. The document is derived (utoipa) from the real wire types of `openai.rs`, the
//! documentation-only types of `schemas` and the `#[utoipa::path]` blocks on the handlers, so it
//! cannot drift from what the routes read and write. Swagger UI comes from `utoipa-swagger-ui`'s
//! `vendored` zip (embedded at build time, in debug builds too); ReDoc, which `utoipa-redoc` would
//! load from a CDN, is a checked-in bundle (`assets/`, see its README) served by `redoc_js`.

pub mod schemas;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::{Object, RefOr, Required, Type};
use utoipa::{IntoResponses, Modify, OpenApi};
use utoipa_redoc::{Redoc, Servable};
use utoipa_swagger_ui::{Config, SwaggerUi};

use super::handlers;
use super::openai::ErrorResponse;

/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/openapi.json";
/// Swagger UI (its assets under `/docs/`).
pub const SWAGGER_PATH: &str = "/docs";
/// ReDoc.
pub const REDOC_PATH: &str = "/redoc";
/// The vendored ReDoc bundle.
pub const REDOC_JS_PATH: &str = "/redoc/redoc.standalone.js";
/// The bundle's third-party licence notices.
pub const REDOC_NOTICES_PATH: &str = "/redoc/redoc.standalone.js.LICENSE.txt";
/// The version of `assets/redoc.standalone.js` (npm package `redoc`).
pub const REDOC_VERSION: &str = "2.5.4";

static REDOC_JS: &[u8] = include_bytes!("assets/redoc.standalone.js");
static REDOC_NOTICES: &str = include_str!("assets/redoc.standalone.js.LICENSE.txt");

/// utoipa-redoc's page without its CDN script and Google Fonts link: the script is ours, and
/// ReDoc falls back to local fonts. `$spec` becomes the document's URL, `$config` `{}`.
const REDOC_HTML: &str = r#"<!DOCTYPE html>
<html lang="en">
  <head>
    <title>claude-gateway API reference</title>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <style>
      body {
        margin: 0;
        padding: 0;
      }
    </style>
  </head>
  <body>
    <div id="redoc-container"></div>
    <script src="/redoc/redoc.standalone.js"></script>
    <script>
      Redoc.init($spec, $config, document.getElementById("redoc-container"));
    </script>
  </body>
</html>
"#;

#[derive(OpenApi)]
#[openapi(
    info(description = "An OpenAI-compatible API for Claude: point an OpenAI client at `/v1` and \
        the answers come from Anthropic's `claude` CLI. Every error has OpenAI's shape \
        (`ErrorResponse`); every response carries an `x-request-id` header (the client's, when it \
        sent one)."),
    paths(
        handlers::chat_completions,
        handlers::list_models,
        handlers::get_model,
        handlers::health,
        handlers::index,
    ),
    components(schemas(ErrorResponse)),
    tags(
        (name = "chat", description = "Chat completions, whole or streamed"),
        (name = "models", description = "The model ids clients may send"),
        (name = "service", description = "Health and discovery"),
    ),
    modifiers(&RequestIds),
)]
pub struct ApiDoc;

/// The document, built once per router.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `/openapi.json`, `/docs` (Swagger UI) and `/redoc` (ReDoc) with their assets.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let doc = openapi();
    let swagger = SwaggerUi::new(SWAGGER_PATH)
        .url(OPENAPI_PATH, doc)
        // "none": no validator badge, which would load an image from validator.swagger.io.
        .config(Config::from(OPENAPI_PATH).validator_url("none"));
    Router::new()
        .merge(swagger)
        .merge(Redoc::with_url(REDOC_PATH, OPENAPI_PATH).custom_html(REDOC_HTML))
        .route(REDOC_JS_PATH, get(redoc_js))
        .route(REDOC_NOTICES_PATH, get(redoc_notices))
}

async fn redoc_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        REDOC_JS,
    )
}

async fn redoc_notices() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        REDOC_NOTICES,
    )
}

/// Adds what every route shares: the optional `x-request-id` request header and the
/// `x-request-id` response header (`SetRequestIdLayer`/`PropagateRequestIdLayer` in `mod.rs`).
struct RequestIds;

impl Modify for RequestIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                add_request_id(operation);
            }
        }
    }
}

fn add_request_id(operation: &mut Operation) {
    let string = || RefOr::T(Object::with_type(Type::String).into());
    operation.parameters.get_or_insert_with(Vec::new).push(
        ParameterBuilder::new()
            .name("x-request-id")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "Your id for the request: echoed back and logged; a UUID is made when absent.",
            ))
            .schema(Some(string()))
            .build(),
    );
    for response in operation.responses.responses.values_mut() {
        if let RefOr::T(response) = response {
            response.headers.insert(
                "x-request-id".into(),
                HeaderBuilder::new()
                    .schema(string())
                    .description(Some("The request's id, as sent or as made by the gateway."))
                    .build(),
            );
        }
    }
}

/// Refusals of a chat request.
#[derive(IntoResponses)]
pub enum RequestErrors {
    /// Malformed JSON (`invalid_json`), a missing or mistyped field (named in `param`), a value
    /// out of range, or a feature Claude lacks (`unsupported_parameter`,
    /// `unsupported_content_type`).
    #[response(status = 400, example = json!({"error": {
        "message": "`messages[0].role` is required.", "type": "invalid_request_error",
        "param": "messages[0].role", "code": null}}))]
    BadRequest(ErrorResponse),
    /// The model id is neither in the model table nor a Claude id (`model_not_found`).
    #[response(status = 404, example = json!({"error": {
        "message": "The model `gpt-9` does not exist.", "type": "invalid_request_error",
        "param": "model", "code": "model_not_found"}}))]
    ModelNotFound(ErrorResponse),
    /// The body is larger than `--max-body-bytes` (`payload_too_large`).
    #[response(status = 413)]
    PayloadTooLarge(ErrorResponse),
    /// Claude rate-limited the gateway (`rate_limit_exceeded`).
    #[response(
        status = 429,
        headers(("Retry-After" = u64, description = "Seconds to wait, when Claude said.")),
    )]
    RateLimited(ErrorResponse),
}

/// Failures behind the gateway, each with its `code`.
#[derive(IntoResponses)]
pub enum ServerErrors {
    /// An unexpected local failure (`internal_error`).
    #[response(status = 500)]
    Internal(ErrorResponse),
    /// The gateway's Claude credentials were rejected (`upstream_auth_failed`), another Anthropic
    /// API failure (`upstream_error`), or the CLI crashed or exited early (`cli_failed`).
    #[response(status = 502)]
    BadGateway(ErrorResponse),
    /// Claude is overloaded (`overloaded`), the CLI is not installed (`cli_not_found`), or the
    /// remote worker is unreachable (`unavailable`).
    #[response(status = 503)]
    Unavailable(ErrorResponse),
    /// `--request-timeout-secs` reached (`timeout`).
    #[response(status = 504)]
    Timeout(ErrorResponse),
}

/// `GET /v1/models/{id}` of an id the gateway does not take.
#[derive(IntoResponses)]
pub enum ModelNotFound {
    /// Unknown model id (`model_not_found`).
    #[response(status = 404)]
    NotFound(ErrorResponse),
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn doc() -> Value {
        serde_json::to_value(openapi()).expect("the document serializes")
    }

    #[test]
    fn the_document_is_openapi_3_1_with_every_route() {
        let doc = doc();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["title"], env!("CARGO_PKG_NAME"));
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        for (path, method) in [
            ("/v1/chat/completions", "post"),
            ("/v1/models", "get"),
            ("/v1/models/{id}", "get"),
            ("/health", "get"),
            ("/", "get"),
        ] {
            let op = &doc["paths"][path][method];
            assert!(op.is_object(), "{method} {path} missing");
            assert!(
                op["responses"]["200"]["headers"]["x-request-id"].is_object(),
                "{method} {path} has no x-request-id header"
            );
        }
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
}
