//! `POST /v1/responses/input_tokens`: the body of `POST /v1/responses`, converted the same way
//! (so a bad one gets the same 400), handed to the backend's `count_input_tokens`. The answer is
//! OpenAI's `{"object":"response.input_tokens","input_tokens":N}` when the backend counts, and
//! its error (501 `not_implemented` from the claude engine, which cannot count exactly: see
//! `claude::input_tokens`) otherwise — never an estimate.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;
use utoipa::{IntoResponses, ToSchema};

use crate::chat::Tenant;
use crate::chat::types::ResponseTurn;

use super::super::error::{ApiError, OpenAiJson};
use super::super::handlers::{AppState, request_context, shutting_down};
use super::super::openai::ErrorResponse;
use super::convert::{self, Converted};
use super::handler::in_dialect;
use super::types::CreateResponseRequest;

/// OpenAI's `TokenCountsResource`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct InputTokens {
    /// Always `response.input_tokens`.
    #[schema(example = "response.input_tokens")]
    pub object: &'static str,
    /// The input tokens the request would cost.
    pub input_tokens: u64,
}

/// The refusal of a request the backend cannot count.
#[derive(IntoResponses)]
pub enum CountErrors {
    /// The backend cannot count exactly (`not_implemented`; the claude CLI offers only an
    /// estimate). Sent with `x-should-retry: false`: asking again does not help.
    #[response(status = 501, example = json!({"error": {
        "message": "Counting input tokens is not implemented: the claude CLI offers only a \
            context-window estimate …", "type": "invalid_request_error", "param": null,
        "code": "not_implemented"}}))]
    NotImplemented(ErrorResponse),
}

#[utoipa::path(
    post,
    path = "/v1/responses/input_tokens",
    tag = "responses",
    summary = "Count the input tokens of a response request (OpenAI Responses API)",
    description = "Takes the body of `POST /v1/responses` (`stream` is ignored) and answers \
        `{\"object\": \"response.input_tokens\", \"input_tokens\": N}` when the backend can \
        count exactly. The claude CLI cannot (its only count, `get_context_usage`, is a \
        context-window estimate that falls back to a character-based guess when the Anthropic \
        API cannot count), so a valid request is answered 501 `not_implemented`, with the \
        reason; an invalid one gets the same 400 as `POST /v1/responses`.",
    request_body = CreateResponseRequest,
    responses(
        (status = 200, description = "The count.", body = InputTokens),
        super::super::docs::RequestErrors,
        CountErrors,
        super::super::docs::ServerErrors,
    ),
)]
pub async fn count(
    State(state): State<AppState>,
    tenant: Tenant,
    headers: HeaderMap,
    OpenAiJson(body): OpenAiJson<CreateResponseRequest>,
) -> Result<Json<InputTokens>, ApiError> {
    crate::metrics::note_model(&body.model);
    let ctx = request_context(&headers, tenant, crate::chat::Api::Responses);
    // `stream`, `store` and the echo only matter to a response being created; the previous
    // response's conversation is counted too.
    let Converted {
        mut request,
        stream: _,
        echo: _,
        store: _,
        previous_response_id,
        instructions,
        input: _,
        reasoning: _,
    } = convert::create_request(body, &state.reasoning_key)?;
    request.response = Some(ResponseTurn {
        id: String::new(),
        previous: previous_response_id,
        store: false,
        instructions,
        document: String::new(),
    });
    let input_tokens = tokio::select! {
        count = state.backend.count_input_tokens(request, ctx) => count.map_err(in_dialect)?,
        () = state.abort.cancelled() => return Err(ApiError(shutting_down())),
    };
    Ok(Json(InputTokens {
        object: "response.input_tokens",
        input_tokens,
    }))
}
