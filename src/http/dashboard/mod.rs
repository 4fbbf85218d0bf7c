//! The live dashboard: `GET /dashboard` serves one page (HTML, CSS and script embedded in the
//! binary, hand-drawn SVG charts, no external asset) that polls `GET /dashboard/data` every two
//! seconds: requests in flight, the queue, claude processes by state, time-to-first-token and
//! latency histograms, recent requests and errors, live sessions and the account's usage
//! windows; its key table reads the usage ledger's `/v1/usage` and `/v1/budgets` (same origin,
//! with the login cookie), and says the ledger is off when they are not served.
//!
//! Who sees it is the guard's `Viewer` (`http::access`): an admin key, a login of one (the form
//! posts the key once; the answer is an HttpOnly, SameSite=Strict cookie holding a random
//! session token, never the key), or any loopback client with `--dashboard-open-on-loopback`.
//! A non-admin key gets 403; nobody gets the login form (401). Every page carries a strict
//! Content-Security-Policy: no inline script, nothing from another origin.

mod data;

use std::sync::Arc;

use axum::extract::{Extension, Form};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::access::{CONSOLE_COOKIE, cookie};
use super::error::ApiError;
use super::handlers::AppState;
use crate::access::{Access, Viewer};
use crate::chat::ChatError;

const PAGE: &str = include_str!("page.html");
const LOGIN: &str = include_str!("login.html");
const APP_JS: &str = include_str!("app.js");
const STYLE_CSS: &str = include_str!("style.css");

/// Only this origin's files; no inline script or style; never framed.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' \
                       data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
                       base-uri 'none'; object-src 'none'";

/// The dashboard's routes; `access` for the login form.
pub fn routes(access: Arc<Access>) -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(page))
        .route("/dashboard/data", get(data::data))
        .route("/dashboard/login", post(login))
        .route("/dashboard/logout", post(logout))
        .route("/dashboard/app.js", get(app_js))
        .route("/dashboard/style.css", get(style_css))
        .layer(Extension(access))
}

/// The headers every dashboard answer carries.
fn hardened(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn html(status: StatusCode, body: String) -> Response {
    hardened(
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
    )
}

/// The login form, with `note` under it (already HTML-safe: our own text).
fn login_page(status: StatusCode, note: &str) -> Response {
    html(status, LOGIN.replace("{{note}}", note))
}

fn forbidden() -> ChatError {
    ChatError::Forbidden {
        message: "The dashboard is for the gateway's operator: this API key is not an admin key \
                  (--admin-api-keys, or role=admin in --api-keys-file)."
            .into(),
    }
}

/// `GET /dashboard`.
async fn page(viewer: Option<Extension<Viewer>>) -> Response {
    match viewer.map(|v| v.0) {
        Some(Viewer::Admin(_)) => html(StatusCode::OK, PAGE.to_string()),
        Some(Viewer::NotAdmin) => hardened(ApiError(forbidden()).into_response()),
        Some(Viewer::Nobody) | None => login_page(StatusCode::UNAUTHORIZED, ""),
    }
}

#[derive(Deserialize)]
struct LoginForm {
    key: String,
}

/// `POST /dashboard/login`: an admin key in, a session cookie out.
async fn login(Extension(access): Extension<Arc<Access>>, Form(form): Form<LoginForm>) -> Response {
    match access.viewer_of_key(form.key.trim()) {
        Viewer::Admin(tenant) => {
            let token = access.console.open(tenant);
            let cookie = format!(
                "{CONSOLE_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
                crate::access::console::TTL.as_secs()
            );
            let mut response = hardened(
                (StatusCode::SEE_OTHER, [(header::LOCATION, "/dashboard")]).into_response(),
            );
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Viewer::NotAdmin => login_page(
            StatusCode::FORBIDDEN,
            "That key is valid, but not an admin key: the dashboard needs one.",
        ),
        Viewer::Nobody => login_page(
            StatusCode::UNAUTHORIZED,
            "That is not one of this gateway's API keys.",
        ),
    }
}

/// `POST /dashboard/logout`: the session ends, the cookie is cleared.
async fn logout(Extension(access): Extension<Arc<Access>>, headers: HeaderMap) -> Response {
    if let Some(token) = cookie(&headers, CONSOLE_COOKIE) {
        access.console.close(&token);
    }
    let mut response =
        hardened((StatusCode::SEE_OTHER, [(header::LOCATION, "/dashboard")]).into_response());
    let clear = format!("{CONSOLE_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(value) = HeaderValue::from_str(&clear) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// The page's assets are public: they hold no data, and the login form needs the style.
async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    hardened(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

/// The JSON answer for a viewer who may not see the data.
fn refused(viewer: Option<Viewer>) -> Option<Response> {
    let error = match viewer {
        Some(Viewer::Admin(_)) => return None,
        Some(Viewer::NotAdmin) => forbidden(),
        Some(Viewer::Nobody) | None => ChatError::Unauthorized {
            message: "Log in to the dashboard (/dashboard) with an admin API key, or send one \
                      as Authorization: Bearer YOUR_KEY."
                .into(),
        },
    };
    Some(hardened(ApiError(error).into_response()))
}

/// Serializes `body` as a dashboard answer.
fn json(body: serde_json::Value) -> Response {
    hardened(Json(body).into_response())
}
