//! A `ChatBackend` that is another gateway's gRPC port (`--upstream`): the HTTP façade then runs
//! no CLI itself. Domain requests go out as protobuf, statuses come back as the same
//! `ChatError`s the worker raised (see `error.rs`), and the request id travels as metadata.

use futures::StreamExt;
use tonic::Request;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::chat::models::ModelInfo;
use crate::chat::types::{ChatCompletion, ChatRequest, CompletionMeta};
use crate::chat::{BackendHealth, ChatBackend, ChatError, ChatStream, RequestContext};

use super::convert;
use super::error::from_status;
use super::pb;
use super::pb::chat_service_client::ChatServiceClient;
use super::pb::model_service_client::ModelServiceClient;

pub struct RemoteBackend {
    target: String,
    channel: Channel,
}

impl RemoteBackend {
    /// Connects lazily: a worker that is not up yet is an `Unavailable` per request, not a
    /// startup failure.
    pub fn new(target: &str) -> Result<Self, String> {
        let endpoint = Endpoint::from_shared(target.to_string())
            .map_err(|e| format!("invalid --upstream `{target}`: {e}"))?
            .connect_timeout(std::time::Duration::from_secs(5))
            .tcp_nodelay(true);
        Ok(RemoteBackend {
            target: target.to_string(),
            channel: endpoint.connect_lazy(),
        })
    }

    fn request<T>(message: T, ctx: &RequestContext) -> Request<T> {
        let mut request = Request::new(message);
        if let Ok(value) = ctx.request_id.parse() {
            request.metadata_mut().insert("x-request-id", value);
        }
        request
    }
}

#[async_trait::async_trait]
impl ChatBackend for RemoteBackend {
    async fn stream(&self, req: ChatRequest, ctx: RequestContext) -> Result<ChatStream, ChatError> {
        let message = pb::StreamChatCompletionRequest {
            params: Some(convert::chat_params(req)),
        };
        let mut client = ChatServiceClient::new(self.channel.clone());
        let response = client
            .stream_chat_completion(Self::request(message, &ctx))
            .await
            .map_err(|s| from_status(&s))?;
        let mut inbound = response.into_inner();
        let first = inbound
            .message()
            .await
            .map_err(|s| from_status(&s))?
            .ok_or_else(|| ChatError::Unavailable {
                message: "The upstream gateway ended the stream before its first chunk.".into(),
            })?;
        let meta = CompletionMeta {
            id: first.id.clone(),
            created: first.created,
            model: first.model.clone(),
            ignored_params: first.ignored_params.clone(),
        };
        let head = futures::stream::iter(convert::events_from_pb(first).into_iter().map(Ok));
        let rest = inbound.flat_map(|item| {
            let events: Vec<_> = match item {
                Ok(message) => convert::events_from_pb(message)
                    .into_iter()
                    .map(Ok)
                    .collect(),
                Err(status) => vec![Err(from_status(&status))],
            };
            futures::stream::iter(events)
        });
        Ok(ChatStream {
            meta,
            events: Box::pin(head.chain(rest)),
        })
    }

    async fn complete(
        &self,
        req: ChatRequest,
        ctx: RequestContext,
    ) -> Result<ChatCompletion, ChatError> {
        let message = pb::CreateChatCompletionRequest {
            params: Some(convert::chat_params(req)),
        };
        let mut client = ChatServiceClient::new(self.channel.clone());
        let response = client
            .create_chat_completion(Self::request(message, &ctx))
            .await
            .map_err(|s| from_status(&s))?;
        Ok(convert::completion_from_pb(response.into_inner()))
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, ChatError> {
        let mut client = ModelServiceClient::new(self.channel.clone());
        let response = client
            .list_models(pb::ListModelsRequest {})
            .await
            .map_err(|s| from_status(&s))?;
        Ok(response
            .into_inner()
            .models
            .into_iter()
            .map(convert::model_from_pb)
            .collect())
    }

    async fn get_model(&self, id: &str) -> Result<ModelInfo, ChatError> {
        let mut client = ModelServiceClient::new(self.channel.clone());
        let response = client
            .get_model(pb::GetModelRequest { id: id.to_string() })
            .await
            .map_err(|s| from_status(&s))?;
        response
            .into_inner()
            .model
            .map(convert::model_from_pb)
            .ok_or_else(|| ChatError::model_not_found(id))
    }

    async fn health(&self) -> BackendHealth {
        let mut client = HealthClient::new(self.channel.clone());
        let check = tonic_health::pb::HealthCheckRequest {
            service: super::CHAT_SERVICE_NAME.to_string(),
        };
        let (ready, detail) = match client.check(check).await {
            Ok(r) => {
                let status = r.into_inner().status();
                (
                    status == ServingStatus::Serving,
                    status.as_str_name().to_string(),
                )
            }
            Err(s) => (false, format!("unreachable: {}", s.message())),
        };
        BackendHealth {
            ready,
            cli: None,
            upstream: Some(format!("{}: {detail}", self.target)),
            warm_processes: None,
        }
    }
}
