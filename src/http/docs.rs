//! The HTTP API's own OpenAPI 3.1 document (`GET /openapi.json`) and the two pages that render
//! it, Swagger UI (`/docs`) and ReDoc (`/redoc`), all served from the binary with no network at
//! build or run time. The document is derived (utoipa) from the real wire types of `openai.rs`, the
//! documentation-only types of `schemas` and the `#[utoipa::path]` blocks on the handlers, so it
//! cannot drift from what the routes read and write. Swagger UI comes from `utoipa-swagger-ui`'s
//! `vendored` zip (embedded at build time, in debug builds too); ReDoc, which `utoipa-redoc` would
//! load from a CDN, is a checked-in bundle (`assets/`, see its README) served by `redoc_js`.
//!
//! Every route the router serves is an operation of the document: the API's routes are declared
//! once, in `http::routes`, through utoipa-axum's `OpenApiRouter`, which both serves them and
//! puts their `#[utoipa::path]` operations into the document. The pages and assets of the two UI
//! crates are described by the documentation-only functions of `served_elsewhere`. What every
//! route shares is added by modifiers (`finish`): the access rules (`AccessRules`: the optional bearer key, its 401 and the rate
//! limit's 429 and `x-ratelimit-*` headers, placed by the same `access::Route` classification the
//! guard uses) and the request ids (`RequestIds`).

mod modify;
mod response_sets;
pub mod schemas;

pub use response_sets::*;

use modify::{AccessRules, OptionalBodies, RequestIds};

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::{Modify, OpenApi};
use utoipa_redoc::{Redoc, Servable};
use utoipa_swagger_ui::{Config, SwaggerUi};

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
        sent one).\n\n\
        Access: a gateway started with `--api-keys` (or `--api-keys-file`) wants one of its keys \
        as `Authorization: Bearer KEY` on the `/v1` routes (401 `invalid_api_key` otherwise), and \
        on health and metrics too with `--public-health false`; the index and the documentation \
        are always open. With `--rate-limit-rpm` the `/v1` routes answer with the \
        `x-ratelimit-*` headers, and 429 `rate_limit_exceeded` with `Retry-After` once the \
        budget is spent. Without keys and a rate limit everything is open."),
    paths(
        served_elsewhere::openapi_json,
        served_elsewhere::swagger_ui,
        served_elsewhere::swagger_ui_page,
        served_elsewhere::swagger_ui_asset,
        served_elsewhere::redoc,
        redoc_js,
        redoc_notices,
    ),
    components(schemas(ErrorResponse)),
    tags(
        (name = "chat", description = "Chat completions, whole or streamed"),
        (name = "responses", description = "OpenAI's Responses API, whole or streamed event by \
            event; stateless (responses are not stored yet)"),
        (name = "messages", description = "Anthropic's Messages API, whole or streamed as \
            Anthropic's events, for clients that speak Claude natively"),
        (name = "sessions", description = "Server-side conversations: a chat request naming a \
            session (`session_id`, or the `x-session-id` header) runs on its stored history, and \
            a successful turn is appended to it. A session belongs to the tenant of the API key \
            that created it: other keys get 404 `session_not_found` for it, as for a missing \
            one, and do not list it; admin keys reach every tenant's sessions"),
        (name = "models", description = "The model ids clients may send"),
        (name = "usage", description = "The usage ledger and per-key budgets"),
        (name = "service", description = "Health, metrics and discovery"),
        (name = "documentation", description = "This document and the pages that render it"),
    ),
)]
pub struct ApiDoc;

/// The whole document, from the operations the router declares (`http::routes`, which starts
/// from `ApiDoc`: the documentation's own routes) plus what every route shares, added once all
/// are there: the optional bodies, the access rules and the request ids.
pub fn finish(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let modifiers: [&dyn Modify; 3] = [&OptionalBodies, &AccessRules, &RequestIds];
    for modifier in modifiers {
        modifier.modify(&mut doc);
    }
    doc
}

/// `/openapi.json` (serving `doc`), `/docs` (Swagger UI) and `/redoc` (ReDoc) with their assets.
pub fn routes<S: Clone + Send + Sync + 'static>(doc: utoipa::openapi::OpenApi) -> Router<S> {
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

#[utoipa::path(
    get,
    path = "/redoc/redoc.standalone.js",
    tag = "documentation",
    summary = "The ReDoc bundle",
    responses((
        status = 200,
        description = "ReDoc's standalone script, served from the binary.",
        content_type = "text/javascript",
        body = String,
    )),
)]
async fn redoc_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        REDOC_JS,
    )
}

#[utoipa::path(
    get,
    path = "/redoc/redoc.standalone.js.LICENSE.txt",
    tag = "documentation",
    summary = "The ReDoc bundle's licence notices",
    responses((
        status = 200,
        description = "The third-party licence notices of the bundle.",
        content_type = "text/plain",
        body = String,
    )),
)]
async fn redoc_notices() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        REDOC_NOTICES,
    )
}

/// Operations of routes whose handlers carry no `#[utoipa::path]`: the pages and assets of
/// `utoipa-swagger-ui` and `utoipa-redoc`.
/// The functions only carry the `#[utoipa::path]` blocks; nothing calls them.
mod served_elsewhere {
    #![allow(dead_code)]

    #[utoipa::path(
        get,
        path = "/openapi.json",
        tag = "documentation",
        summary = "This document",
        responses((
            status = 200,
            description = "The OpenAPI 3.1 document of the HTTP API.",
            content_type = "application/json",
            body = Object,
        )),
    )]
    fn openapi_json() {}

    #[utoipa::path(
        get,
        path = "/docs",
        tag = "documentation",
        summary = "Swagger UI",
        responses((
            status = 303,
            description = "Redirects to the page, `/docs/`.",
            headers(("Location" = String, description = "`/docs/`")),
        )),
    )]
    fn swagger_ui() {}

    #[utoipa::path(
        get,
        path = "/docs/",
        tag = "documentation",
        summary = "Swagger UI's page",
        responses((
            status = 200,
            description = "Swagger UI on this document, loading its assets from `/docs/` only.",
            content_type = "text/html",
            body = String,
        )),
    )]
    fn swagger_ui_page() {}

    #[utoipa::path(
        get,
        path = "/docs/{file}",
        tag = "documentation",
        summary = "Swagger UI's assets",
        params(("file" = String, Path, description = "An asset of the page, e.g. \
            `swagger-ui-bundle.js`, `swagger-ui.css`, `swagger-initializer.js`.")),
        responses(
            (
                status = 200,
                description = "The asset, with its own type (`text/javascript`, `text/css`, \
                    `image/png`, …).",
                content_type = "*/*",
                body = String,
            ),
            (status = 404, description = "No such asset (an empty body)."),
        ),
    )]
    fn swagger_ui_asset() {}

    #[utoipa::path(
        get,
        path = "/redoc",
        tag = "documentation",
        summary = "ReDoc",
        responses((
            status = 200,
            description = "ReDoc on this document, its script served from `/redoc/`.",
            content_type = "text/html",
            body = String,
        )),
    )]
    fn redoc() {}
}

#[cfg(test)]
mod tests;
