//! The usage ledger's HTTP routes: `GET /v1/usage` (sums of the ledger's rows over a time range,
//! grouped, as JSON or CSV), `GET /v1/budgets` and `GET/PUT/DELETE /v1/budgets/{key}` (the
//! per-key budgets and what is left of them), and the middleware that puts the `x-budget-*`
//! headers on every answer to a key with budgets.
//!
//! A user key sees its own rows and budgets only; an admin key sees every tenant's, may filter
//! `/v1/usage` with `key=`, and alone may read or change one key's budgets (`Forbidden`
//! otherwise). "Key" in this API is the tenant id of the key (`name=` in the key file).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::chat::{ChatError, Tenant};
use crate::usage::budget::{self, Budget, BudgetState, Metric, Window};
use crate::usage::time::{month_bounds, parse_time};
use crate::usage::{Group, GroupBy, Ledger, UsageQuery};

use super::error::{ApiError, OpenAiBytes, OpenAiQuery, parse_json};
use super::handlers::AppState;

fn ledger(state: &AppState) -> Result<&Arc<Ledger>, ApiError> {
    state.ledger.as_ref().ok_or_else(|| {
        ApiError(ChatError::NotImplemented {
            message: "The usage ledger is off on this gateway (--usage-ledger false).".into(),
        })
    })
}

fn store_failed(e: String) -> ApiError {
    tracing::warn!("usage ledger: {e}");
    ApiError(ChatError::Unavailable {
        message: "The usage ledger's store cannot answer now; try again.".into(),
    })
}

fn admin_only(tenant: &Tenant) -> Result<(), ApiError> {
    if tenant.is_admin() {
        Ok(())
    } else {
        Err(ApiError(ChatError::Forbidden {
            message: "Only an admin API key may read or change a key's budgets; \
                      GET /v1/budgets shows your own."
                .into(),
        }))
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct UsageParams {
    pub from: Option<String>,
    pub to: Option<String>,
    pub group_by: Option<String>,
    pub format: Option<String>,
    pub key: Option<String>,
}

/// The ledger question `params` ask for `tenant`, and whether the answer is CSV.
fn usage_query(
    tenant: &Tenant,
    params: UsageParams,
    headers: &HeaderMap,
) -> Result<(UsageQuery, bool), ApiError> {
    let now = ledger_now_secs();
    let time = |value: Option<String>, name: &str, default: i64| match value {
        None => Ok(default),
        Some(v) => parse_time(&v).ok_or_else(|| {
            ApiError(ChatError::invalid(
                format!(
                    "`{name}` must be Unix seconds or an RFC 3339 time \
                     (2026-12-02T10:00:00Z, or a date), not `{v}`."
                ),
                name,
            ))
        }),
    };
    let from = time(params.from, "from", month_bounds(now * 1000).0 / 1000)?;
    let to = time(params.to, "to", now + 1)?;
    if to <= from {
        return Err(ApiError(ChatError::invalid(
            format!("`to` ({to}) must be after `from` ({from})."),
            "to",
        )));
    }
    let group_by = match params.group_by.as_deref().map(str::trim) {
        None => vec![GroupBy::Key, GroupBy::Model, GroupBy::Day],
        Some("") => Vec::new(),
        Some(list) => {
            let mut fields = Vec::new();
            for name in list.split(',').map(str::trim) {
                let field = GroupBy::parse(name).ok_or_else(|| {
                    ApiError(ChatError::invalid(
                        format!(
                            "`group_by` takes key, model, day, api and status, \
                             comma-separated; not `{name}`."
                        ),
                        "group_by",
                    ))
                })?;
                if !fields.contains(&field) {
                    fields.push(field);
                }
            }
            fields
        }
    };
    let csv = match params.format.as_deref() {
        Some("csv") => true,
        Some("json") => false,
        Some(other) => {
            return Err(ApiError(ChatError::invalid(
                format!("`format` is json or csv, not `{other}`."),
                "format",
            )));
        }
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/csv")),
    };
    let tenant_filter = match (tenant.is_admin(), params.key) {
        (true, key) => key.filter(|k| !k.is_empty()),
        (false, Some(key)) if key != tenant.id() => {
            return Err(ApiError(ChatError::Forbidden {
                message: "A user API key sees its own usage only: `key` may name only its own \
                          tenant."
                    .into(),
            }));
        }
        (false, _) => Some(tenant.id().to_owned()),
    };
    Ok((
        UsageQuery {
            from,
            to,
            tenant: tenant_filter,
            group_by,
        },
        csv,
    ))
}

fn ledger_now_secs() -> i64 {
    crate::usage::ledger_now_ms() / 1000
}

fn group_json(group: &Group) -> Value {
    let mut row = serde_json::Map::new();
    for (field, value) in &group.keys {
        row.insert(field.as_str().into(), Value::String(value.clone()));
    }
    row.insert("requests".into(), group.requests.into());
    row.insert("input_tokens".into(), group.input_tokens.into());
    row.insert("output_tokens".into(), group.output_tokens.into());
    row.insert(
        "cached_input_tokens".into(),
        group.cached_input_tokens.into(),
    );
    row.insert("cost_usd".into(), json!(budget::round(group.cost_usd)));
    row.insert("duration_ms".into(), group.duration_ms.into());
    row.insert("ttft_ms_avg".into(), json!(group.ttft_ms_avg));
    Value::Object(row)
}

/// A CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

const SUMS: [&str; 7] = [
    "requests",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cost_usd",
    "duration_ms",
    "ttft_ms_avg",
];

fn usage_csv(group_by: &[GroupBy], groups: &[Group]) -> String {
    let mut out: String = group_by
        .iter()
        .map(|g| g.as_str())
        .chain(SUMS)
        .collect::<Vec<_>>()
        .join(",");
    out.push_str("\r\n");
    for g in groups {
        let mut fields: Vec<String> = g.keys.iter().map(|(_, v)| csv_field(v)).collect();
        fields.extend([
            g.requests.to_string(),
            g.input_tokens.to_string(),
            g.output_tokens.to_string(),
            g.cached_input_tokens.to_string(),
            budget::round(g.cost_usd).to_string(),
            g.duration_ms.to_string(),
            g.ttft_ms_avg.map(|t| t.to_string()).unwrap_or_default(),
        ]);
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

#[utoipa::path(
    get,
    path = "/v1/usage",
    tag = "usage",
    operation_id = "get_usage",
    summary = "Usage of the API keys",
    description = "Sums of the usage ledger (one row per completed request, on every API) over \
        `[from, to)`, grouped by `group_by`. A user key sees its own usage; an admin key sees \
        every key's, or one's with `key=`. JSON by default; CSV with `format=csv` or \
        `Accept: text/csv`. Fields not in `group_by` are absent from each row.",
    params(
        ("from" = Option<String>, Query, description = "Unix seconds or RFC 3339; default: \
            the start of the current UTC month."),
        ("to" = Option<String>, Query, description = "Unix seconds or RFC 3339, exclusive; \
            default: now."),
        ("group_by" = Option<String>, Query, description = "Comma-separated key, model, day, \
            api, status; default `key,model,day`; empty: one total row."),
        ("format" = Option<String>, Query, description = "`json` (default) or `csv`."),
        ("key" = Option<String>, Query, description = "Admin keys: only this key's usage."),
    ),
    responses(
        (status = 200, description = "`{object: list, from, to, group_by, data: [...]}`, or \
            CSV with a header line."),
        super::docs::RequestErrors,
        super::docs::ServerErrors,
    ),
)]
pub async fn get_usage(
    State(state): State<AppState>,
    tenant: Tenant,
    headers: HeaderMap,
    OpenAiQuery(params): OpenAiQuery<UsageParams>,
) -> Result<Response, ApiError> {
    let ledger = ledger(&state)?;
    let (query, csv) = usage_query(&tenant, params, &headers)?;
    let groups = ledger.usage(&query).await.map_err(store_failed)?;
    if csv {
        let body = usage_csv(&query.group_by, &groups);
        return Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response());
    }
    Ok(Json(json!({
        "object": "list",
        "from": query.from,
        "to": query.to,
        "group_by": query.group_by.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "data": groups.iter().map(group_json).collect::<Vec<_>>(),
    }))
    .into_response())
}

fn state_json(state: &BudgetState) -> Value {
    json!({
        "metric": state.budget.metric.as_str(),
        "window": state.budget.window.as_str(),
        "limit": state.budget.limit,
        "used": budget::round(state.used),
        "remaining": budget::round(state.remaining),
        "resets_at": state.resets_at,
    })
}

fn key_json(key: &str, states: &[BudgetState]) -> Value {
    json!({
        "key": key,
        "budgets": states.iter().map(state_json).collect::<Vec<_>>(),
    })
}

#[utoipa::path(
    get,
    path = "/v1/budgets",
    tag = "usage",
    operation_id = "list_budgets",
    summary = "Budgets of the API keys",
    description = "Every key with budgets (an admin key), or the caller's own: each budget \
        with what is used of it in the current UTC day or month, what remains and when it resets.",
    responses(
        (status = 200, description = "`{object: list, data: [{key, budgets: [...]}]}`"),
        super::docs::ServerErrors,
    ),
)]
pub async fn list_budgets(
    State(state): State<AppState>,
    tenant: Tenant,
) -> Result<Response, ApiError> {
    let ledger = ledger(&state)?;
    let only = (!tenant.is_admin()).then(|| tenant.id());
    let all = ledger.all_budgets(only).await.map_err(store_failed)?;
    Ok(Json(json!({
        "object": "list",
        "data": all.iter().map(|(k, s)| key_json(k, s)).collect::<Vec<_>>(),
    }))
    .into_response())
}

fn checked_key(key: &str) -> Result<(), ApiError> {
    if crate::chat::tenant::valid_id(key) {
        Ok(())
    } else {
        Err(ApiError(ChatError::invalid(
            "The key in the path is not a tenant id (the key file's `name=`, or `key-…`).",
            "key",
        )))
    }
}

async fn one_key(ledger: &Ledger, key: &str) -> Result<Response, ApiError> {
    let states = ledger.status(key).await.map_err(store_failed)?;
    Ok(Json(key_json(key, &states)).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/budgets/{key}",
    tag = "usage",
    operation_id = "get_budgets",
    summary = "One key's budgets",
    description = "Admin keys only: the key's budgets (the key file's, overridden by those set \
        through this API) with what is used of them.",
    params(("key" = String, Path, description = "The key's tenant id.")),
    responses(
        (status = 200, description = "`{key, budgets: [...]}`"),
        super::docs::RequestErrors,
        super::docs::ServerErrors,
    ),
)]
pub async fn get_budgets(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let ledger = ledger(&state)?;
    admin_only(&tenant)?;
    checked_key(&key)?;
    one_key(ledger, &key).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetBody {
    metric: String,
    window: String,
    limit: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutBudgets {
    budgets: Vec<BudgetBody>,
}

fn parse_budgets(body: PutBudgets) -> Result<Vec<Budget>, ApiError> {
    let invalid = |message: String| ApiError(ChatError::invalid(message, "budgets"));
    let mut out: Vec<Budget> = Vec::new();
    for b in body.budgets {
        let metric = Metric::parse(&b.metric).ok_or_else(|| {
            invalid(format!(
                "`metric` is requests, tokens or usd, not `{}`.",
                b.metric
            ))
        })?;
        let window = Window::parse(&b.window)
            .ok_or_else(|| invalid(format!("`window` is day or month, not `{}`.", b.window)))?;
        let budget = Budget::new(metric, window, b.limit).map_err(invalid)?;
        if out.iter().any(|o| o.metric == metric && o.window == window) {
            return Err(invalid(format!(
                "The {} per {} budget is given twice.",
                metric.as_str(),
                window.as_str()
            )));
        }
        out.push(budget);
    }
    Ok(out)
}

#[utoipa::path(
    put,
    path = "/v1/budgets/{key}",
    tag = "usage",
    operation_id = "put_budgets",
    summary = "Set one key's budgets",
    description = "Admin keys only. Replaces the budgets set through this API for the key: \
        `{\"budgets\": [{\"metric\": \"usd\", \"window\": \"day\", \"limit\": 5.0}]}`; each \
        overrides the key file's budget of the same metric and window. Kept in the store: they \
        survive restarts and hold on every replica sharing it.",
    params(("key" = String, Path, description = "The key's tenant id.")),
    responses(
        (status = 200, description = "`{key, budgets: [...]}` as they now stand"),
        super::docs::RequestErrors,
        super::docs::ServerErrors,
    ),
)]
pub async fn put_budgets(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(key): Path<String>,
    OpenAiBytes(body): OpenAiBytes,
) -> Result<Response, ApiError> {
    let ledger = ledger(&state)?;
    admin_only(&tenant)?;
    checked_key(&key)?;
    let budgets = parse_budgets(parse_json(&body)?)?;
    ledger
        .set_budgets(&key, &budgets)
        .await
        .map_err(store_failed)?;
    one_key(ledger, &key).await
}

#[utoipa::path(
    delete,
    path = "/v1/budgets/{key}",
    tag = "usage",
    operation_id = "delete_budgets",
    summary = "Remove one key's API budgets",
    description = "Admin keys only. Removes the budgets set through this API for the key; the \
        key file's apply again.",
    params(("key" = String, Path, description = "The key's tenant id.")),
    responses(
        (status = 200, description = "`{key, budgets: [...]}` as they now stand"),
        super::docs::RequestErrors,
        super::docs::ServerErrors,
    ),
)]
pub async fn delete_budgets(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let ledger = ledger(&state)?;
    admin_only(&tenant)?;
    checked_key(&key)?;
    ledger.set_budgets(&key, &[]).await.map_err(store_failed)?;
    one_key(ledger, &key).await
}

/// `axum::middleware::from_fn_with_state(ledger, budget_headers)`, inside the access guard:
/// every API answer to a key with budgets carries `x-budget-limit-`, `x-budget-remaining-` and
/// `x-budget-reset-<metric>-<window>`, read after the answer was made (a whole completion's row
/// already counts; a stream's is still running).
pub async fn budget_headers(
    State(ledger): State<Option<Arc<Ledger>>>,
    request: Request,
    next: Next,
) -> Response {
    let tenant = request.extensions().get::<Tenant>().cloned();
    let api = crate::access::Route::of_http_path(request.uri().path()) == crate::access::Route::Api;
    let mut response = next.run(request).await;
    let (Some(ledger), Some(tenant), true) = (ledger, tenant, api) else {
        return response;
    };
    let budgets = ledger.budget_headers(tenant.id()).await;
    crate::access::write_budgets(response.headers_mut(), budgets);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_a_header_line_and_quotes_what_needs_it() {
        let group = Group {
            keys: vec![
                (GroupBy::Key, "alice".into()),
                (GroupBy::Model, "a,b".into()),
            ],
            requests: 2,
            cost_usd: 0.1 + 0.2,
            ttft_ms_avg: None,
            ..Group::default()
        };
        let csv = usage_csv(&[GroupBy::Key, GroupBy::Model], &[group]);
        assert_eq!(
            csv,
            "key,model,requests,input_tokens,output_tokens,cached_input_tokens,cost_usd,\
             duration_ms,ttft_ms_avg\r\nalice,\"a,b\",2,0,0,0,0.3,0,\r\n"
        );
    }
}
