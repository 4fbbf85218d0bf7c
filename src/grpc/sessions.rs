//! The gRPC `SessionService`: the server over any `SessionApi`, and `RemoteSessions`, the
//! `SessionApi` a façade uses to manage the sessions of its remote worker. Stored histories are
//! OpenAI message JSON; on the wire they are `ChatMessage`s.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::chat::{ChatError, Tenant};
use crate::sessions::{NewSession, Page, PageRequest, Session, SessionApi, SessionSummary};

use super::convert;
use super::error::to_status;
use super::pb;
use super::pb::session_service_client::SessionServiceClient;
use super::service::tenant;
// The worker connection, carrying --upstream-api-key; its refusals are the façade's 502s.
use super::remote::{WorkerChannel as Channel, from_status};
use super::upstream::{Deadline, for_tenant};

/// A session with its history: the summary's fields, and the history as `ChatMessage`s.
fn session_to_pb(s: Session) -> Result<pb::Session, ChatError> {
    let Session {
        id,
        model,
        system,
        metadata,
        created_at,
        updated_at,
        history,
    } = s;
    let history: Vec<pb::ChatMessage> = history.into_iter().map(convert::message_to_pb).collect();
    let summary = SessionSummary {
        id,
        model,
        system,
        metadata,
        created_at,
        updated_at,
        message_count: history.len(),
    };
    Ok(pb::Session {
        history,
        ..summary_to_pb(summary)
    })
}

fn summary_to_pb(s: SessionSummary) -> pb::Session {
    let SessionSummary {
        id,
        model,
        system,
        metadata,
        created_at,
        updated_at,
        message_count,
    } = s;
    pb::Session {
        id,
        model: model.unwrap_or_default(),
        system_prompt: system.unwrap_or_default(),
        metadata: metadata.into_iter().collect(),
        created: created_at,
        updated: updated_at,
        message_count: message_count as u32,
        history: Vec::new(),
    }
}

/// The inverse of `session_to_pb`.
fn session_from_pb(mut s: pb::Session) -> Result<Session, ChatError> {
    let history = std::mem::take(&mut s.history)
        .into_iter()
        .enumerate()
        .map(|(i, m)| convert::message(i, m))
        .collect::<Result<Vec<_>, _>>()?;
    let SessionSummary {
        id,
        model,
        system,
        metadata,
        created_at,
        updated_at,
        message_count: _,
    } = summary_from_pb(s);
    Ok(Session {
        id,
        model,
        system,
        metadata,
        created_at,
        updated_at,
        history,
    })
}

fn summary_from_pb(s: pb::Session) -> SessionSummary {
    let pb::Session {
        id,
        model,
        system_prompt,
        metadata,
        created,
        updated,
        message_count,
        history: _,
    } = s;
    SessionSummary {
        id,
        model: (!model.is_empty()).then_some(model),
        system: (!system_prompt.is_empty()).then_some(system_prompt),
        metadata: metadata.into_iter().collect(),
        created_at: created,
        updated_at: updated,
        message_count: message_count as usize,
    }
}

fn status(e: ChatError) -> Status {
    to_status(&e)
}

fn new_session(r: pb::CreateSessionRequest) -> NewSession {
    let pb::CreateSessionRequest {
        id,
        model,
        system_prompt,
        metadata,
    } = r;
    NewSession {
        id: (!id.is_empty()).then_some(id),
        model: (!model.is_empty()).then_some(model),
        system: (!system_prompt.is_empty()).then_some(system_prompt),
        metadata: metadata.into_iter().collect(),
    }
}

pub struct SessionGrpc {
    api: Arc<dyn SessionApi>,
}

impl SessionGrpc {
    pub fn new(api: Arc<dyn SessionApi>) -> Self {
        SessionGrpc { api }
    }
}

#[tonic::async_trait]
impl pb::session_service_server::SessionService for SessionGrpc {
    async fn create_session(
        &self,
        request: Request<pb::CreateSessionRequest>,
    ) -> Result<Response<pb::CreateSessionResponse>, Status> {
        let tenant = tenant(&request)?;
        let session = self
            .api
            .create(&tenant, new_session(request.into_inner()))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CreateSessionResponse {
            session: Some(session_to_pb(session).map_err(status)?),
        }))
    }

    async fn get_session(
        &self,
        request: Request<pb::GetSessionRequest>,
    ) -> Result<Response<pb::GetSessionResponse>, Status> {
        let tenant = tenant(&request)?;
        let pb::GetSessionRequest { id } = request.into_inner();
        let session = self.api.get(&tenant, &id).await.map_err(status)?;
        Ok(Response::new(pb::GetSessionResponse {
            session: Some(session_to_pb(session).map_err(status)?),
        }))
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let tenant = tenant(&request)?;
        let pb::ListSessionsRequest { limit, after } = request.into_inner();
        let page = self
            .api
            .list(
                &tenant,
                PageRequest {
                    limit: if limit == 0 { 20 } else { limit as usize },
                    after: (!after.is_empty()).then_some(after),
                },
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListSessionsResponse {
            sessions: page.items.into_iter().map(summary_to_pb).collect(),
            has_more: page.has_more,
            next_after: page.next.unwrap_or_default(),
        }))
    }

    async fn delete_session(
        &self,
        request: Request<pb::DeleteSessionRequest>,
    ) -> Result<Response<pb::DeleteSessionResponse>, Status> {
        let tenant = tenant(&request)?;
        let pb::DeleteSessionRequest { id } = request.into_inner();
        self.api.delete(&tenant, &id).await.map_err(status)?;
        Ok(Response::new(pb::DeleteSessionResponse {}))
    }

    async fn clear_session(
        &self,
        request: Request<pb::ClearSessionRequest>,
    ) -> Result<Response<pb::ClearSessionResponse>, Status> {
        let tenant = tenant(&request)?;
        let pb::ClearSessionRequest { id } = request.into_inner();
        self.api.clear(&tenant, &id).await.map_err(status)?;
        Ok(Response::new(pb::ClearSessionResponse {}))
    }
}

/// The sessions of a remote worker, for a façade (`--upstream`), each call made for the façade's
/// caller and bounded by `deadline` (`--upstream-timeout-secs`).
pub struct RemoteSessions {
    client: SessionServiceClient<Channel>,
    deadline: std::time::Duration,
}

impl RemoteSessions {
    pub fn new(channel: Channel, deadline: std::time::Duration) -> Self {
        RemoteSessions {
            client: SessionServiceClient::new(channel),
            deadline,
        }
    }

    fn deadline(&self) -> Deadline {
        Deadline::after(self.deadline)
    }
}

fn remote(s: Status) -> ChatError {
    from_status(&s)
}

#[async_trait::async_trait]
impl SessionApi for RemoteSessions {
    async fn create(&self, tenant: &Tenant, new: NewSession) -> Result<Session, ChatError> {
        let NewSession {
            id,
            model,
            system,
            metadata,
        } = new;
        let request = pb::CreateSessionRequest {
            id: id.unwrap_or_default(),
            model: model.unwrap_or_default(),
            system_prompt: system.unwrap_or_default(),
            metadata: metadata.into_iter().collect(),
        };
        let (mut client, deadline) = (self.client.clone(), self.deadline());
        let response = deadline
            .run(client.create_session(for_tenant(deadline.request(request), tenant)))
            .await
            .map_err(remote)?;
        session_from_pb(response.into_inner().session.unwrap_or_default())
    }

    async fn get(&self, tenant: &Tenant, id: &str) -> Result<Session, ChatError> {
        let request = pb::GetSessionRequest { id: id.to_string() };
        let (mut client, deadline) = (self.client.clone(), self.deadline());
        let response = deadline
            .run(client.get_session(for_tenant(deadline.request(request), tenant)))
            .await
            .map_err(remote)?;
        session_from_pb(response.into_inner().session.unwrap_or_default())
    }

    async fn list(
        &self,
        tenant: &Tenant,
        page: PageRequest,
    ) -> Result<Page<SessionSummary>, ChatError> {
        let request = pb::ListSessionsRequest {
            limit: page.limit as u32,
            after: page.after.unwrap_or_default(),
        };
        let (mut client, deadline) = (self.client.clone(), self.deadline());
        let response = deadline
            .run(client.list_sessions(for_tenant(deadline.request(request), tenant)))
            .await
            .map_err(remote)?;
        let pb::ListSessionsResponse {
            sessions,
            has_more,
            next_after,
        } = response.into_inner();
        Ok(Page {
            items: sessions.into_iter().map(summary_from_pb).collect(),
            has_more,
            next: (!next_after.is_empty()).then_some(next_after),
        })
    }

    async fn delete(&self, tenant: &Tenant, id: &str) -> Result<(), ChatError> {
        let request = pb::DeleteSessionRequest { id: id.to_string() };
        let (mut client, deadline) = (self.client.clone(), self.deadline());
        deadline
            .run(client.delete_session(for_tenant(deadline.request(request), tenant)))
            .await
            .map_err(remote)?;
        Ok(())
    }

    async fn clear(&self, tenant: &Tenant, id: &str) -> Result<(), ChatError> {
        let request = pb::ClearSessionRequest { id: id.to_string() };
        let (mut client, deadline) = (self.client.clone(), self.deadline());
        deadline
            .run(client.clear_session(for_tenant(deadline.request(request), tenant)))
            .await
            .map_err(remote)?;
        Ok(())
    }
}
