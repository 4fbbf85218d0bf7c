//! The API's routes, declared once: utoipa-axum's `OpenApiRouter` serves each handler and puts
//! its `#[utoipa::path]` operation into the OpenAPI document, so the list of routes and the
//! document cannot disagree. `router()` in `mod.rs` wraps these in the shared layers.

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::docs::{self, ApiDoc};
use super::handlers::{self, AppState};
use super::{messages, quota, responses, sessions, usage};

/// Every route of the API, with its operation.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(handlers::index))
        .routes(routes!(handlers::health))
        .routes(routes!(handlers::health_live))
        .routes(routes!(handlers::health_ready))
        .routes(routes!(handlers::metrics))
        .routes(routes!(handlers::list_models))
        .routes(routes!(handlers::get_model))
        .routes(routes!(handlers::chat_completions))
        .routes(routes!(responses::handler::create))
        .routes(routes!(responses::lookup::get, responses::lookup::delete))
        .routes(routes!(responses::lookup::input_items))
        .routes(routes!(responses::input_tokens::count))
        .routes(routes!(messages::handler::create))
        .routes(routes!(messages::handler::count_tokens))
        .routes(routes!(sessions::create, sessions::list))
        .routes(routes!(sessions::get, sessions::delete))
        .routes(routes!(sessions::clear))
        .routes(routes!(usage::get_usage))
        .routes(routes!(usage::list_budgets))
        .routes(routes!(
            usage::get_budgets,
            usage::put_budgets,
            usage::delete_budgets
        ))
        .routes(routes!(quota::quota))
}

/// The whole OpenAPI document of the HTTP API, as `/openapi.json` serves it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    docs::finish(api().into_openapi())
}
