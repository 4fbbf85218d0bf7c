//! `GET` and `DELETE /v1/responses/{id}` and `GET /v1/responses/{id}/input_items`: stored
//! responses read back through the `ResponseApi` (the local store, or the worker's over gRPC in
//! a façade), for the API key's tenant only.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::chat::{ChatError, Tenant};

use super::super::error::{ApiError, OpenAiQuery};
use super::super::handlers::AppState;
use super::stored::{render, stored_input_items};
use super::types::ResponseObject;

/// Longest page of `input_items`.
const MAX_ITEMS_PAGE: usize = 100;

#[utoipa::path(
    get,
    path = "/v1/responses/{response_id}",
    tag = "responses",
    operation_id = "get_response",
    summary = "Retrieve a stored response",
    description = "The response as its creating request answered it (output, usage, status). \
        Only the API key's tenant sees it.",
    params(("response_id" = String, Path, description = "The response's id (`resp_…`).")),
    responses(
        (status = 200, description = "The response.", body = ResponseObject),
        super::super::docs::ResponseNotFound,
        super::super::docs::SessionServerErrors,
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<Json<ResponseObject>, ApiError> {
    let record = state.responses.get_response(&tenant, &id).await?;
    Ok(Json(render(record, &state.reasoning_key)?))
}

#[utoipa::path(
    delete,
    path = "/v1/responses/{response_id}",
    tag = "responses",
    operation_id = "delete_response",
    summary = "Delete a stored response",
    description = "Deletes the response; it can no longer be retrieved or continued. Its \
        conversation goes with the last stored response of its chain.",
    params(("response_id" = String, Path, description = "The response's id (`resp_…`).")),
    responses(
        (
            status = 200,
            description = "Deleted: `{\"id\", \"object\": \"response\", \"deleted\": true}`.",
            body = Object,
        ),
        super::super::docs::ResponseNotFound,
        super::super::docs::SessionServerErrors,
    ),
)]
pub async fn delete(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.responses.delete_response(&tenant, &id).await?;
    Ok(Json(
        json!({"id": id, "object": "response", "deleted": true}),
    ))
}

#[derive(Debug, Deserialize)]
pub struct ItemsQuery {
    pub limit: Option<usize>,
    pub order: Option<String>,
    pub after: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/responses/{response_id}/input_items",
    tag = "responses",
    operation_id = "list_input_items",
    summary = "List a stored response's input items",
    description = "The items the response was created from (not those of the responses it \
        continued), each with an `id`, paged as OpenAI pages: `order` `desc` (default) or \
        `asc`, `limit` 1…100 (default 20), `after` an item id.",
    params(
        ("response_id" = String, Path, description = "The response's id (`resp_…`)."),
        ("limit" = Option<usize>, Query, description = "Items per page: 20 when absent, 1…100."),
        ("order" = Option<String>, Query, description = "`desc` (default) or `asc`."),
        ("after" = Option<String>, Query, description = "List the items after this item id."),
    ),
    responses(
        (
            status = 200,
            description = "A `list` of items with `first_id`, `last_id` and `has_more`.",
            body = Object,
        ),
        super::super::docs::ResponseNotFound,
        super::super::docs::SessionServerErrors,
    ),
)]
pub async fn input_items(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    OpenAiQuery(q): OpenAiQuery<ItemsQuery>,
) -> Result<Json<Value>, ApiError> {
    let record = state.responses.get_response(&tenant, &id).await?;
    let items = stored_input_items(&record)?;
    Ok(Json(page(items, &q)?))
}

/// One page of `items` as `q` asks for it.
fn page(mut items: Vec<Value>, q: &ItemsQuery) -> Result<Value, ChatError> {
    match q.order.as_deref() {
        None | Some("desc") => items.reverse(),
        Some("asc") => {}
        Some(other) => {
            return Err(ChatError::invalid(
                format!("`order` is `asc` or `desc`; got `{other}`."),
                "order",
            ));
        }
    }
    let limit = q.limit.unwrap_or(20);
    if !(1..=MAX_ITEMS_PAGE).contains(&limit) {
        return Err(ChatError::invalid(
            format!("`limit` is 1 to {MAX_ITEMS_PAGE}; got {limit}."),
            "limit",
        ));
    }
    let start = match q.after.as_deref().filter(|a| !a.is_empty()) {
        None => 0,
        Some(after) => {
            let at = items
                .iter()
                .position(|i| i.get("id").and_then(Value::as_str) == Some(after))
                .ok_or_else(|| {
                    ChatError::invalid(
                        format!("`after={after}` names no input item of this response."),
                        "after",
                    )
                })?;
            at + 1
        }
    };
    let rest = items.get(start..).unwrap_or_default();
    let data: Vec<Value> = rest.iter().take(limit).cloned().collect();
    let id_of = |v: Option<&Value>| v.and_then(|i| i.get("id")).cloned().unwrap_or(Value::Null);
    Ok(json!({
        "object": "list",
        "first_id": id_of(data.first()),
        "last_id": id_of(data.last()),
        "has_more": rest.len() > data.len(),
        "data": data,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> Vec<Value> {
        (0..n).map(|i| json!({"id": format!("i{i}")})).collect()
    }

    fn q(limit: Option<usize>, order: Option<&str>, after: Option<&str>) -> ItemsQuery {
        ItemsQuery {
            limit,
            order: order.map(str::to_string),
            after: after.map(str::to_string),
        }
    }

    #[test]
    fn pages_go_newest_first_by_default_and_follow_the_cursor() {
        let first = page(items(5), &q(Some(2), None, None)).unwrap();
        assert_eq!(first["first_id"], "i4");
        assert_eq!(first["last_id"], "i3");
        assert_eq!(first["has_more"], true);
        let next = page(items(5), &q(Some(2), None, Some("i3"))).unwrap();
        assert_eq!(next["first_id"], "i2");
        let last = page(items(5), &q(Some(2), Some("asc"), Some("i2"))).unwrap();
        assert_eq!(last["data"], json!([{"id": "i3"}, {"id": "i4"}]));
        assert_eq!(last["has_more"], false);
    }

    #[test]
    fn bad_paging_is_a_400_naming_the_parameter() {
        for (query, param) in [
            (q(Some(0), None, None), "limit"),
            (q(Some(101), None, None), "limit"),
            (q(None, Some("up"), None), "order"),
            (q(None, None, Some("nope")), "after"),
        ] {
            let err = page(items(3), &query).unwrap_err();
            assert_eq!(err.param(), Some(param));
        }
    }
}
