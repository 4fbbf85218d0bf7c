//! The tonic services: `ChatService` and `ModelService` over any `ChatBackend`. They convert
//! protobuf to the domain and back and nothing else; a streamed call fails with a status before
//! its first message, and ends with a status when the run fails later. The response stream owns
//! the run, so a cancelled call kills its process.

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::chat::{Api, ChatBackend, RequestContext, Tenant};

use super::access::Forwarded;

use super::convert;
use super::error::to_status;
use super::pb;

fn context<T>(req: &Request<T>) -> Result<RequestContext, Status> {
    let request_id = req
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    Ok(RequestContext {
        request_id,
        session: None,
        tenant: tenant(req)?,
        api: Api::Grpc,
        forwarded: req.extensions().get::<Forwarded>().is_some(),
    })
}

/// The tenant the access layer admitted the call for (`access/grpc.rs`). A service outside that
/// layer has none, and fails closed rather than act for somebody.
pub fn tenant<T>(req: &Request<T>) -> Result<Tenant, Status> {
    req.extensions()
        .get::<Tenant>()
        .cloned()
        .ok_or_else(|| Status::internal("this service is not behind the access layer: no tenant"))
}

pub struct ChatGrpc {
    backend: Arc<dyn ChatBackend>,
    /// Cancelled when the shutdown grace period is over.
    abort: CancellationToken,
}

impl ChatGrpc {
    pub fn new(backend: Arc<dyn ChatBackend>, abort: CancellationToken) -> Self {
        ChatGrpc { backend, abort }
    }
}

fn shutting_down() -> Status {
    Status::unavailable("The gateway is shutting down; this answer was cut short.")
}

#[tonic::async_trait]
impl pb::chat_service_server::ChatService for ChatGrpc {
    async fn create_chat_completion(
        &self,
        request: Request<pb::CreateChatCompletionRequest>,
    ) -> Result<Response<pb::CreateChatCompletionResponse>, Status> {
        let ctx = context(&request)?;
        let pb::CreateChatCompletionRequest { params } = request.into_inner();
        let req = convert::chat_request(params).map_err(|e| to_status(&e))?;
        let completion = tokio::select! {
            completion = self.backend.complete(req, ctx) => completion.map_err(|e| to_status(&e))?,
            () = self.abort.cancelled() => return Err(shutting_down()),
        };
        Ok(Response::new(convert::completion_to_pb(completion)))
    }

    async fn count_input_tokens(
        &self,
        request: Request<pb::CountInputTokensRequest>,
    ) -> Result<Response<pb::CountInputTokensResponse>, Status> {
        let ctx = context(&request)?;
        let pb::CountInputTokensRequest { params } = request.into_inner();
        let req = convert::chat_request(params).map_err(|e| to_status(&e))?;
        let input_tokens = tokio::select! {
            count = self.backend.count_input_tokens(req, ctx) => count.map_err(|e| to_status(&e))?,
            () = self.abort.cancelled() => return Err(shutting_down()),
        };
        Ok(Response::new(pb::CountInputTokensResponse { input_tokens }))
    }

    type StreamChatCompletionStream =
        BoxStream<'static, Result<pb::StreamChatCompletionResponse, Status>>;

    async fn stream_chat_completion(
        &self,
        request: Request<pb::StreamChatCompletionRequest>,
    ) -> Result<Response<Self::StreamChatCompletionStream>, Status> {
        let ctx = context(&request)?;
        let pb::StreamChatCompletionRequest { params } = request.into_inner();
        let req = convert::chat_request(params).map_err(|e| to_status(&e))?;
        let stream = self
            .backend
            .stream(req, ctx)
            .await
            .map_err(|e| to_status(&e))?;
        let meta = stream.meta;
        let mut events = stream.events;
        let abort = self.abort.clone();
        let out = async_stream::stream! {
            let mut first = true;
            loop {
                let item = tokio::select! {
                    item = events.next() => item,
                    () = abort.cancelled() => {
                        yield Err(shutting_down());
                        break;
                    }
                };
                match item {
                    Some(Ok(event)) => {
                        yield Ok(convert::event_to_pb(&meta, event, first));
                        first = false;
                    }
                    Some(Err(err)) => {
                        yield Err(to_status(&err));
                        break;
                    }
                    None => break,
                }
            }
        };
        Ok(Response::new(Box::pin(out)))
    }
}

pub struct ModelGrpc {
    backend: Arc<dyn ChatBackend>,
    started: i64,
}

impl ModelGrpc {
    pub fn new(backend: Arc<dyn ChatBackend>, started: i64) -> Self {
        ModelGrpc { backend, started }
    }
}

#[tonic::async_trait]
impl pb::model_service_server::ModelService for ModelGrpc {
    async fn list_models(
        &self,
        _request: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        let models = self
            .backend
            .list_models()
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::ListModelsResponse {
            models: models
                .into_iter()
                .map(|m| convert::model_to_pb(m, self.started))
                .collect(),
        }))
    }

    async fn get_model(
        &self,
        request: Request<pb::GetModelRequest>,
    ) -> Result<Response<pb::GetModelResponse>, Status> {
        let pb::GetModelRequest { id } = request.into_inner();
        let model = self
            .backend
            .get_model(&id)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::GetModelResponse {
            model: Some(convert::model_to_pb(model, self.started)),
        }))
    }
}
