//! One worker's gRPC port (`--upstream`) as the façade calls it (`cluster/` chooses which):
//! the façade then runs no CLI itself. Domain requests go out as protobuf, statuses come back as the same
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
use crate::chat::types::{ChatRequest, CompletionMeta};
use crate::chat::{BackendHealth, ChatError, ChatStream, RequestContext};

use crate::access::UpstreamKey;
use crate::traces::layers::GrpcClient;

use super::convert;
use super::pb;
use super::pb::chat_service_client::ChatServiceClient;
use super::pb::model_service_client::ModelServiceClient;
use super::upstream::{Deadline, Deadlines, UpstreamConfig, for_tenant};

/// The connection to the worker; every call on it carries `--upstream-api-key`, and the
/// request's trace context when traces are on.
pub type WorkerChannel = InterceptedService<GrpcClient<Channel>, UpstreamKey>;

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
                GrpcClient::new(endpoint.connect_lazy()),
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

/// A call the worker did not start: the error, and whether another worker may take it.
#[derive(Debug)]
pub struct Refusal {
    pub error: ChatError,
    /// Nothing of the request can have run: the worker was unreachable, refused the
    /// connection, was overloaded or shutting down, or died before its first event.
    pub retry: bool,
}

impl Refusal {
    fn of(status: &Status) -> Self {
        Refusal {
            error: from_status(status),
            retry: may_retry(status),
        }
    }
}

/// Whether a call that ended with `status` before its first event may go to another worker.
/// UNAVAILABLE and RESOURCE_EXHAUSTED are the worker saying so; a status made on this side from
/// a transport error (it has a source: a refused or reset connection, a worker killed mid-call)
/// means the worker never answered. A deadline is not retried: the time is spent.
pub fn may_retry(status: &Status) -> bool {
    use tonic::Code;
    match status.code() {
        Code::Unavailable | Code::ResourceExhausted => true,
        Code::DeadlineExceeded => false,
        Code::Unknown | Code::Internal | Code::Cancelled => {
            std::error::Error::source(status).is_some()
        }
        _ => false,
    }
}

impl RemoteBackend {
    /// Starts a streamed completion and waits for its first message: until then a failure is a
    /// `Refusal` that says whether another worker may take the request; after it, the failure
    /// is an error event in the stream, never a retry.
    pub async fn open(
        &self,
        params: pb::ChatCompletionParams,
        ctx: &RequestContext,
    ) -> Result<ChatStream, Refusal> {
        let message = pb::StreamChatCompletionRequest {
            params: Some(params),
        };
        let mut client = ChatServiceClient::new(self.channel.clone());
        // One deadline from the request to the stream's last chunk.
        let deadline = Deadline::after(self.deadlines.completion);
        let response = deadline
            .run(client.stream_chat_completion(Self::request(message, ctx, deadline)))
            .await
            .map_err(|s| Refusal::of(&s))?;
        let mut inbound = response.into_inner();
        let first = deadline
            .run(inbound.message())
            .await
            .map_err(|s| Refusal::of(&s))?
            .ok_or_else(|| Refusal {
                error: ChatError::Unavailable {
                    message: "The upstream gateway ended the stream before its first chunk.".into(),
                },
                retry: true,
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
}

impl RemoteBackend {
    /// How many input tokens the worker counts for `req`.
    pub async fn count(&self, req: ChatRequest, ctx: &RequestContext) -> Result<u64, Status> {
        let message = pb::CountInputTokensRequest {
            params: Some(convert::chat_params(req)),
        };
        let mut client = ChatServiceClient::new(self.channel.clone());
        let deadline = Deadline::after(self.deadlines.call);
        let response = deadline
            .run(client.count_input_tokens(Self::request(message, ctx, deadline)))
            .await?;
        Ok(response.into_inner().input_tokens)
    }

    /// The worker's model catalogue.
    pub async fn models(&self) -> Result<Vec<ModelInfo>, Status> {
        let mut client = ModelServiceClient::new(self.channel.clone());
        let deadline = Deadline::after(self.deadlines.call);
        let response = deadline
            .run(client.list_models(deadline.request(pb::ListModelsRequest {})))
            .await?;
        Ok(response
            .into_inner()
            .models
            .into_iter()
            .map(convert::model_from_pb)
            .collect())
    }

    /// One model of the worker's catalogue (NOT_FOUND is the worker's answer, an error).
    pub async fn model(&self, id: &str) -> Result<Option<ModelInfo>, Status> {
        let mut client = ModelServiceClient::new(self.channel.clone());
        let deadline = Deadline::after(self.deadlines.call);
        let request = deadline.request(pb::GetModelRequest { id: id.to_string() });
        let response = deadline.run(client.get_model(request)).await?;
        Ok(response.into_inner().model.map(convert::model_from_pb))
    }

    /// Asks the worker's chat service whether it serves (`claude-gateway doctor`).
    pub async fn health(&self) -> BackendHealth {
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
