//! A `ChatBackend` that is another gateway's gRPC port (`--upstream`): the HTTP façade then runs
//! no CLI itself. Domain requests go out as protobuf, statuses come back as the same
//! `ChatError`s the worker raised (see `error.rs`), and the request id travels as metadata, as
//! do `--upstream-api-key` when the worker wants a key and the caller's tenant
//! (`x-gateway-tenant`), which the worker honours when that key is one of its admin keys. The
//! channel (TLS, connect timeout) and the per-call deadlines come from `upstream.rs`.

use futures::StreamExt;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::chat::models::ModelInfo;
use crate::chat::types::{ChatCompletion, ChatRequest, CompletionMeta};
use crate::chat::{BackendHealth, ChatBackend, ChatError, ChatStream, RequestContext};

use crate::access::UpstreamKey;

use super::convert;
use super::pb;
use super::pb::chat_service_client::ChatServiceClient;
use super::pb::model_service_client::ModelServiceClient;
use super::upstream::{Deadline, Deadlines, UpstreamConfig, for_tenant};

/// The connection to the worker; every call on it carries `--upstream-api-key`.
pub type WorkerChannel = InterceptedService<Channel, UpstreamKey>;

/// A worker's status as the façade's error. The worker refusing the façade's own key is the
/// façade's misconfiguration, not the client's fault: a 502, not the worker's 401.
pub fn from_status(status: &Status) -> ChatError {
    match super::error::from_status(status) {
        ChatError::Unauthorized { .. } => ChatError::UpstreamAuth {
            message: "The upstream gateway refused this gateway's API key: set \
                      --upstream-api-key (UPSTREAM_API_KEY) to one of the worker's --api-keys."
                .into(),
        },
        other => other,
    }
}

pub struct RemoteBackend {
    target: String,
    channel: WorkerChannel,
    deadlines: Deadlines,
}

impl RemoteBackend {
    /// Connects lazily: a worker that is not up yet is an `Unavailable` per request, not a
    /// startup failure. A URL, TLS file or key setting that is wrong is.
    pub fn new(config: &UpstreamConfig) -> Result<Self, String> {
        let endpoint = super::upstream::endpoint(config)?;
        Ok(RemoteBackend {
            target: config.url.clone(),
            channel: InterceptedService::new(
                endpoint.connect_lazy(),
                UpstreamKey::new(config.api_key.as_ref())?,
            ),
            deadlines: config.deadlines,
        })
    }

    /// The connection to the worker, shared with its other services.
    pub fn channel(&self) -> WorkerChannel {
        self.channel.clone()
    }

    pub fn deadlines(&self) -> Deadlines {
        self.deadlines
    }

    fn request<T>(message: T, ctx: &RequestContext, deadline: Deadline) -> Request<T> {
        let mut request = for_tenant(deadline.request(message), &ctx.tenant);
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
        // One deadline from the request to the stream's last chunk.
        let deadline = Deadline::after(self.deadlines.completion);
        let response = deadline
            .run(client.stream_chat_completion(Self::request(message, &ctx, deadline)))
            .await
            .map_err(|s| from_status(&s))?;
        let mut inbound = response.into_inner();
        let first = deadline
            .run(inbound.message())
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
        let rest = deadline.bound(inbound).flat_map(|item| {
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
        let deadline = Deadline::after(self.deadlines.completion);
        let response = deadline
            .run(client.create_chat_completion(Self::request(message, &ctx, deadline)))
            .await
            .map_err(|s| from_status(&s))?;
        Ok(convert::completion_from_pb(response.into_inner()))
    }

    async fn count_input_tokens(
        &self,
        req: ChatRequest,
        ctx: RequestContext,
    ) -> Result<u64, ChatError> {
        let message = pb::CountInputTokensRequest {
            params: Some(convert::chat_params(req)),
        };
        let mut client = ChatServiceClient::new(self.channel.clone());
        let deadline = Deadline::after(self.deadlines.call);
        let response = deadline
            .run(client.count_input_tokens(Self::request(message, &ctx, deadline)))
            .await
            .map_err(|s| from_status(&s))?;
        Ok(response.into_inner().input_tokens)
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, ChatError> {
        let mut client = ModelServiceClient::new(self.channel.clone());
        let deadline = Deadline::after(self.deadlines.call);
        let response = deadline
            .run(client.list_models(deadline.request(pb::ListModelsRequest {})))
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
        let deadline = Deadline::after(self.deadlines.call);
        let request = deadline.request(pb::GetModelRequest { id: id.to_string() });
        let response = deadline
            .run(client.get_model(request))
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
        let deadline = Deadline::after(self.deadlines.call);
        let call = client.check(deadline.request(check));
        let (ready, detail) = match deadline.run(call).await {
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
