//! `GET /v1/quota`: the Claude account's usage windows as the
//! CLI last reported them (`chat::quota`; a façade's include its workers'). Admin keys only
//! (or anybody on a gateway without keys, or the dashboard's login cookie): the windows are
//! the operator's account, not a tenant's.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::ApiError;
use crate::chat::{ChatError, Tenant};

/// Whether `tenant` may read the operator's endpoints: an admin, or the anonymous tenant of a
/// gateway without keys.
pub fn is_operator(tenant: &Tenant) -> bool {
    tenant.is_admin() || tenant.id() == crate::chat::tenant::ANONYMOUS
}

pub fn forbidden() -> ApiError {
    ApiError(ChatError::Forbidden {
        message: "This endpoint is for the gateway's operator: use an admin API key \
                  (--admin-api-keys, or role=admin in --api-keys-file)."
            .into(),
    })
}

#[utoipa::path(
    get,
    path = "/v1/quota",
    tag = "service",
    summary = "The Claude account's usage windows (admin)",
    description = "The latest state of each usage window of the Claude account the CLI runs on \
        (five_hour, seven_day, …: status, utilization, reset time, overage), as the CLI \
        reports it in its rate_limit_event lines. Those come only with a subscription (OAuth) \
        login; with an API key the list stays empty.",
    responses(
        (status = 200, description = "The windows.", body = super::docs::schemas::QuotaList),
    ),
)]
pub async fn quota(tenant: Tenant) -> Response {
    if !is_operator(&tenant) {
        return forbidden().into_response();
    }
    let data = crate::chat::quota::board().snapshot();
    Json(json!({ "object": "list", "data": data })).into_response()
}
