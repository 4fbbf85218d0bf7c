//! The gRPC `ResponseService`: the server over any `ResponseApi`, and `RemoteResponses`, the
//! `ResponseApi` a façade uses to read and delete the stored responses of its remote worker.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::chat::types::FinishReason;
use crate::chat::{ChatError, Tenant};
use crate::sessions::{ResponseApi, ResponseRecord};

use super::convert;
use super::error::to_status;
use super::pb;
use super::pb::response_service_client::ResponseServiceClient;
use super::remote::{WorkerChannel as Channel, from_status};
use super::service::tenant;
use super::upstream::{Deadline, for_tenant};

fn record_to_pb(r: ResponseRecord) -> pb::StoredResponse {
    let ResponseRecord {
        id,
        created_at,
        document,
        input,
        reply,
        usage,
        finish,
    } = r;
    pb::StoredResponse {
        id,
        created: created_at,
        document,
        reply: Some(convert::message_to_pb(reply)),
        usage: Some(convert::usage_to_pb(&usage)),
        finish_reason: convert::finish_to_pb(finish) as i32,
        input: input.into_iter().map(convert::message_to_pb).collect(),
    }
}

fn record_from_pb(r: pb::StoredResponse) -> Result<ResponseRecord, ChatError> {
    let pb::StoredResponse {
        id,
        created,
        document,
        reply,
        usage,
        finish_reason,
        input,
    } = r;
    Ok(ResponseRecord {
        id,
        created_at: created,
        document,
        input: input
            .into_iter()
            .enumerate()
            .map(|(i, m)| convert::message(i, m))
            .collect::<Result<_, _>>()?,
        reply: convert::message(0, reply.unwrap_or_default())?,
        usage: convert::usage_from_pb(usage.unwrap_or_default()),
        finish: convert::finish_from_pb(finish_reason, None).unwrap_or(FinishReason::Stop),
    })
}

pub struct ResponseGrpc {
    api: Arc<dyn ResponseApi>,
}

impl ResponseGrpc {
    pub fn new(api: Arc<dyn ResponseApi>) -> Self {
        ResponseGrpc { api }
    }
}

#[tonic::async_trait]
impl pb::response_service_server::ResponseService for ResponseGrpc {
    async fn get_response(
        &self,
        request: Request<pb::GetResponseRequest>,
    ) -> Result<Response<pb::GetResponseResponse>, Status> {
        let tenant = tenant(&request)?;
        let pb::GetResponseRequest { id } = request.into_inner();
        let record = self
            .api
            .get_response(&tenant, &id)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::GetResponseResponse {
            response: Some(record_to_pb(record)),
        }))
    }

    async fn delete_response(
        &self,
        request: Request<pb::DeleteResponseRequest>,
    ) -> Result<Response<pb::DeleteResponseResponse>, Status> {
        let tenant = tenant(&request)?;
        let pb::DeleteResponseRequest { id } = request.into_inner();
        self.api
            .delete_response(&tenant, &id)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::DeleteResponseResponse {}))
    }
}

/// The stored responses of a remote worker, for a façade (`--upstream`), each call made for the
/// façade's caller and bounded by `deadline` (`--upstream-timeout-secs`).
pub struct RemoteResponses {
    client: ResponseServiceClient<Channel>,
    deadline: std::time::Duration,
}

impl RemoteResponses {
    pub fn new(channel: Channel, deadline: std::time::Duration) -> Self {
        RemoteResponses {
            client: ResponseServiceClient::new(channel),
            deadline,
        }
    }
}

#[async_trait::async_trait]
impl ResponseApi for RemoteResponses {
    async fn get_response(&self, tenant: &Tenant, id: &str) -> Result<ResponseRecord, ChatError> {
        let request = pb::GetResponseRequest { id: id.to_string() };
        let (mut client, deadline) = (self.client.clone(), Deadline::after(self.deadline));
        let response = deadline
            .run(client.get_response(for_tenant(deadline.request(request), tenant)))
            .await
            .map_err(|s| from_status(&s))?;
        let record = response.into_inner().response.ok_or_else(|| {
            ChatError::internal("the worker answered GetResponse without a response")
        })?;
        record_from_pb(record)
    }

    async fn delete_response(&self, tenant: &Tenant, id: &str) -> Result<(), ChatError> {
        let request = pb::DeleteResponseRequest { id: id.to_string() };
        let (mut client, deadline) = (self.client.clone(), Deadline::after(self.deadline));
        deadline
            .run(client.delete_response(for_tenant(deadline.request(request), tenant)))
            .await
            .map_err(|s| from_status(&s))?;
        Ok(())
    }
}
