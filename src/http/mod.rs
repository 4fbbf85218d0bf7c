//! The OpenAI-compatible HTTP façade (axum): wire types, conversions to and from the domain, the
//! SSE transcoder, OpenAI-shaped errors, and the router with request ids and tracing.

pub mod access;
pub mod convert;
pub mod dashboard;
pub mod docs;
pub mod error;
pub mod handlers;
pub mod messages;
pub mod openai;
pub mod quota;
pub mod responses;
pub mod routes;
pub mod sessions;
pub mod sse;
pub mod usage;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Request, StatusCode};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use handlers::AppState;

/// The whole HTTP API over `state`'s backend.
pub fn router(
    state: AppState,
    max_body_bytes: usize,
    access: std::sync::Arc<crate::access::Access>,
) -> Router {
    let ledger = state.ledger.clone();
    let (api, doc) = routes::api().split_for_parts();
    api.merge(docs::routes(docs::finish(doc)))
        .merge(dashboard::routes(access.clone()))
        .fallback(|| async { handlers::no_route(StatusCode::NOT_FOUND) })
        .method_not_allowed_fallback(|| async {
            handlers::no_route(StatusCode::METHOD_NOT_ALLOWED)
        })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        // Inside the guard: it reads the tenant the guard admitted.
        .layer(axum::middleware::from_fn_with_state(
            ledger,
            usage::budget_headers,
        ))
        // Inside the request-id and trace layers, so refusals carry an id and are traced.
        .layer(axum::middleware::from_fn_with_state(
            access,
            access::guard,
        ))
        // Outside the guard, so its refusals of Messages requests carry `request-id` too.
        .layer(axum::middleware::from_fn(messages::error::with_request_id))
        // Outside the access guard, so refusals are counted too; under the route template.
        .layer(axum::middleware::from_fn(crate::metrics::track_http))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                // The route template, not the raw path: a path is client text.
                let route = req
                    .extensions()
                    .get::<axum::extract::MatchedPath>()
                    .map_or("unmatched", |p| p.as_str());
                tracing::info_span!("http", method = %req.method(), route = %route, request_id = %id)
            }),
        )
        // The trace's `http.server` span (with `--otlp-endpoint`), under the route template.
        .layer(axum::middleware::from_fn(crate::traces::layers::http_server))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        // Outermost: a client id that is not short and plain is dropped, so a new one is made.
        .layer(axum::middleware::map_request(drop_unsafe_request_id))
        .with_state(state)
}

/// Removes an `x-request-id` that `metrics::request_id_ok` refuses: ids are logged at info.
async fn drop_unsafe_request_id(mut req: axum::extract::Request) -> axum::extract::Request {
    let unsafe_id = req
        .headers()
        .get("x-request-id")
        .is_some_and(|v| !v.to_str().is_ok_and(crate::metrics::request_id_ok));
    if unsafe_id {
        req.headers_mut().remove("x-request-id");
    }
    req
}
