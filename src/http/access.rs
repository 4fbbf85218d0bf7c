//! The HTTP side of `Access`: an axum middleware that reads `Authorization` (or Anthropic's
//! `x-api-key`) and the client address, refuses with the OpenAI-shaped 401 (`invalid_api_key`,
//! plus `WWW-Authenticate: Bearer`; Anthropic-shaped on the Messages routes) or 429 (`rate_limit_exceeded`, plus `Retry-After`), and puts the `x-ratelimit-*`
//! headers on every rate-limited response, refused or not. An admitted request carries its
//! `Tenant` in its extensions, which handlers take with the `Tenant` extractor below.
//!
//! The dashboard's paths skip `admit`: the guard puts the `Viewer` (`Access::console`: login
//! cookie, admin key, or loopback) into the request for the dashboard's handlers to decide, and
//! lets the dashboard's cookie (or loopback) stand for an admin key on the read-only operator
//! endpoints its page reads (`Route::console_read`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::messages::error::MessagesError;
use crate::access::{Access, Protocol, Route, Viewer, write_quota};
use crate::chat::{ChatError, Tenant};

/// `axum::middleware::from_fn_with_state(access, access::http::guard)`.
pub async fn guard(
    State(access): State<Arc<Access>>,
    mut request: Request,
    next: Next,
) -> Response {
    if access.is_open() {
        request.extensions_mut().insert(Tenant::anonymous());
        request
            .extensions_mut()
            .insert(Viewer::Admin(Tenant::anonymous()));
        return next.run(request).await;
    }
    if console(&access, &mut request) {
        return next.run(request).await;
    }
    let route = Route::of_http_path(request.uri().path());
    // Anthropic's clients send the key as `x-api-key`; it is read as a bearer token.
    let api_key = request
        .headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(|k| format!("Bearer {k}"));
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .or(api_key.as_deref());
    let anthropic = super::messages::error::is_anthropic_request(&request);
    // Present when the server runs with `into_make_service_with_connect_info`.
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    match access
        .admit(route, Protocol::Http, authorization, peer)
        .await
    {
        Ok(admitted) => {
            request.extensions_mut().insert(admitted.tenant);
            let mut response = next.run(request).await;
            write_quota(response.headers_mut(), admitted.quota.as_ref());
            response
        }
        Err(refusal) if anthropic => {
            let mut response = MessagesError(refusal.error).into_response();
            write_quota(response.headers_mut(), refusal.quota.as_ref());
            response
        }
        Err(refusal) => {
            let mut response = ApiError(refusal.error).into_response();
            write_quota(response.headers_mut(), refusal.quota.as_ref());
            response
        }
    }
}

/// The dashboard login's cookie.
pub const CONSOLE_COOKIE: &str = "cg_dashboard";

/// For the dashboard's paths (and the operator reads its cookie opens): puts the `Viewer` (and
/// an admin's tenant) in the extensions and says `true`, to run the request without `admit`.
/// `false` for every other request, which goes through `admit`.
fn console(access: &Access, request: &mut Request) -> bool {
    let path = request.uri().path();
    let dashboard = Route::is_console(path);
    let read = request.method() == axum::http::Method::GET && Route::console_read(path);
    if !dashboard && !read {
        return false;
    }
    let token = cookie(request.headers(), CONSOLE_COOKIE);
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    // On the operator reads a key goes the usual way (rate limit, its own tenant).
    let authorization = if dashboard {
        request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
    } else {
        None
    };
    let viewer = access.console(token.as_deref(), authorization, peer);
    match (&viewer, dashboard) {
        (Viewer::Admin(tenant), _) => {
            let tenant = tenant.clone();
            request.extensions_mut().insert(tenant);
        }
        (_, false) => return false,
        (_, true) => {}
    }
    request.extensions_mut().insert(viewer);
    true
}

/// The value of cookie `name` in the `Cookie` headers.
pub fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The tenant the guard admitted the request for. A route outside the guard has none, and fails
/// closed (500) rather than act for somebody.
impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Tenant>().cloned().ok_or_else(|| {
            ApiError(ChatError::internal(
                "this route is not behind the access guard: no tenant",
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{KeyEntry, KeySet};
    use axum::Router;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use tower::ServiceExt;

    fn app(keys: &[&str], rpm: u32) -> Router {
        let keys: Vec<KeyEntry> = keys
            .iter()
            .map(|k| KeyEntry::user(k.parse().unwrap()))
            .collect();
        let access = Arc::new(Access::new(KeySet::new(&keys), true, rpm));
        Router::new()
            .route("/v1/models", get(|| async { "models" }))
            .route(
                "/v1/whoami",
                get(|t: Tenant| async move { t.id().to_owned() }),
            )
            .route("/health", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(access, guard))
    }

    async fn get_with(app: &Router, path: &str, key: Option<&str>) -> Response {
        let mut request = Request::builder().uri(path);
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        app.clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn refusals_are_openai_shaped() {
        let app = app(&["k1"], 1);
        let response = get_with(&app, "/v1/models", None).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "invalid_api_key");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert!(body["error"]["param"].is_null());

        let ok = get_with(&app, "/v1/models", Some("k1")).await;
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(ok.headers()["x-ratelimit-limit-requests"], "1");
        assert_eq!(ok.headers()["x-ratelimit-remaining-requests"], "0");
        assert_eq!(ok.headers()["x-ratelimit-reset-requests"], "1m0s");
        let limited = get_with(&app, "/v1/models", Some("k1")).await;
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.headers()[header::RETRY_AFTER], "60");
        assert_eq!(limited.headers()["x-ratelimit-remaining-requests"], "0");
        let health = get_with(&app, "/health", None).await;
        assert_eq!(health.status(), StatusCode::OK);
        assert!(health.headers().get("x-ratelimit-limit-requests").is_none());
    }

    async fn body_text(response: Response) -> String {
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn handlers_get_the_tenant_of_the_key() {
        let keyed = app(&["k1", "k2"], 0);
        let one = body_text(get_with(&keyed, "/v1/whoami", Some("k1")).await).await;
        let two = body_text(get_with(&keyed, "/v1/whoami", Some("k2")).await).await;
        assert!(
            one.starts_with("key-") && two.starts_with("key-"),
            "{one} {two}"
        );
        assert_ne!(one, two);
        let open = app(&[], 0);
        let anonymous = body_text(get_with(&open, "/v1/whoami", None).await).await;
        assert_eq!(anonymous, crate::chat::tenant::ANONYMOUS);
        // Outside the guard there is no tenant: refused, not anonymous.
        let bare = Router::new().route("/t", get(|t: Tenant| async move { t.id().to_owned() }));
        assert_eq!(
            get_with(&bare, "/t", None).await.status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
