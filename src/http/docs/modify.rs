//! Post-processing of the generated document: request-id headers on every operation, the access
//! rules (optional bearer key, 401, rate-limit headers) by the same route classifier the guard
//! uses, and optional request bodies.

use serde_json::json;
use utoipa::Modify;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{Schema, SchemaType};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Object, Ref, RefOr, Required, Type};

use crate::access::Route;

/// Adds what every route shares: the optional `x-request-id` request header and the
/// `x-request-id` response header (`SetRequestIdLayer`/`PropagateRequestIdLayer` in `mod.rs`).
pub(super) struct RequestIds;

impl Modify for RequestIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            operations(item).for_each(add_request_id);
        }
    }
}

/// The operations of one path.
fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.post,
        &mut item.put,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .flatten()
}

fn string() -> RefOr<Schema> {
    RefOr::T(Object::with_type(Type::String).into())
}

fn integer() -> RefOr<Schema> {
    RefOr::T(Object::with_type(Type::Integer).into())
}

fn add_request_id(operation: &mut Operation) {
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

/// The name of the bearer security scheme.
pub const API_KEY_SCHEME: &str = "api_key";

const API_KEY_DESCRIPTION: &str = "One of the gateway's API keys, sent as `Authorization: \
    Bearer KEY` (what the OpenAI SDKs send as their `api_key`). Keys are optional: only a \
    gateway started with `--api-keys` or `--api-keys-file` wants one, so every operation that \
    names this scheme also lists the empty requirement `{}` (without keys, no key is needed and \
    one sent is ignored). With keys, the `/v1` routes need one; health and metrics only with \
    `--public-health false`; the index and the documentation never.";

const RATE_LIMIT_HEADERS: [(&str, &str); 3] = [
    (
        "x-ratelimit-limit-requests",
        "With `--rate-limit-rpm`: the requests per minute this key (or, without keys, this client \
         address) may make.",
    ),
    (
        "x-ratelimit-remaining-requests",
        "With `--rate-limit-rpm`: the requests left in the budget after this one.",
    ),
    (
        "x-ratelimit-reset-requests",
        "With `--rate-limit-rpm`: when the budget is whole again (`20s`, `1m0s`).",
    ),
];

/// The access rules of `crate::access`, on the operations they apply to (placed by
/// `Route::of_http_path`, as the guard places them): the optional bearer key and its 401 on API
/// and health routes, and the rate limit's headers and 429 on API routes. Documentation routes
/// are always open and get nothing.
pub(super) struct AccessRules;

impl Modify for AccessRules {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                API_KEY_SCHEME,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(API_KEY_DESCRIPTION))
                        .build(),
                ),
            );
        for (path, item) in openapi.paths.paths.iter_mut() {
            let route = Route::of_http_path(path);
            if route == Route::Open {
                continue;
            }
            for operation in operations(item) {
                operation.security = Some(vec![
                    SecurityRequirement::new(API_KEY_SCHEME, Vec::<String>::new()),
                    SecurityRequirement::default(),
                ]);
                let responses = &mut operation.responses.responses;
                if route == Route::Api {
                    add_rate_limit(responses);
                }
                responses.insert("401".into(), RefOr::T(unauthorized(route)));
            }
        }
    }
}

/// The `x-ratelimit-*` headers on every response (the guard writes them on whatever the route
/// answers), and the 429 of a spent budget, merged into a 429 the route documents already.
fn add_rate_limit(responses: &mut std::collections::BTreeMap<String, RefOr<Response>>) {
    const OVER_BUDGET: &str = "Over this gateway's `--rate-limit-rpm` (`rate_limit_exceeded`, \
        with `Retry-After` and the `x-ratelimit-*` headers).";
    match responses.get_mut("429") {
        Some(RefOr::T(response)) => {
            response.description = format!("{OVER_BUDGET} Or: {}", response.description);
        }
        _ => {
            let response = ResponseBuilder::new()
                .description(OVER_BUDGET)
                .content("application/json", error_content(rate_limited_example()))
                .build();
            responses.insert("429".into(), RefOr::T(response));
        }
    }
    if let Some(RefOr::T(response)) = responses.get_mut("429") {
        response
            .headers
            .entry("Retry-After".into())
            .or_insert_with(|| header(integer(), "Seconds to wait before retrying."));
    }
    for response in responses.values_mut() {
        if let RefOr::T(response) = response {
            for (name, description) in RATE_LIMIT_HEADERS {
                let schema = if name.starts_with("x-ratelimit-reset") {
                    string()
                } else {
                    integer()
                };
                response
                    .headers
                    .insert(name.into(), header(schema, description));
            }
        }
    }
}

fn unauthorized(route: Route) -> Response {
    let when = match route {
        Route::Health => {
            "Only with `--public-health false` and `--api-keys`: no gateway API key, or a wrong \
             one (`invalid_api_key`)."
        }
        Route::Api | Route::Open => {
            "Only with `--api-keys` (or `--api-keys-file`): no gateway API key, or a wrong one \
             (`invalid_api_key`)."
        }
    };
    ResponseBuilder::new()
        .description(when)
        .content(
            "application/json",
            error_content(json!({"error": {
                "message": "Incorrect API key provided in the Authorization header. It is not \
                    one of this gateway's API keys; ask its operator for a valid key.",
                "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}})),
        )
        .header(
            "WWW-Authenticate",
            header(string(), "`Bearer`: the scheme the key goes in (RFC 6750)."),
        )
        .build()
}

fn rate_limited_example() -> serde_json::Value {
    json!({"error": {
        "message": "Rate limit reached for requests: this gateway allows 60 requests per minute \
            per API key. Please try again in 1s.",
        "type": "rate_limit_error", "param": null, "code": "rate_limit_exceeded"}})
}

fn error_content(example: serde_json::Value) -> utoipa::openapi::content::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("ErrorResponse")))
        .example(Some(example))
        .build()
}

fn header(schema: RefOr<Schema>, description: &str) -> Header {
    HeaderBuilder::new()
        .schema(schema)
        .description(Some(description))
        .build()
}

/// An optional request body (`request_body(content = Option<T>)`) is one that may be left out,
/// not one that may be `null`: utoipa already leaves it not `required`, and this turns its
/// `oneOf: [null, T]` schema back into `T` (a `null` body is a 400 like any other non-object).
pub(super) struct OptionalBodies;

impl Modify for OptionalBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in operations(item) {
                let Some(body) = operation.request_body.as_mut() else {
                    continue;
                };
                if body.required == Some(Required::True) {
                    continue;
                }
                for content in body.content.values_mut() {
                    if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema
                        && let [null, schema] = one_of.items.as_slice()
                        && is_null(null)
                    {
                        content.schema = Some(schema.clone());
                    }
                }
            }
        }
    }
}

fn is_null(schema: &RefOr<Schema>) -> bool {
    matches!(schema, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null))
}
