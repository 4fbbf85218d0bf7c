//! Sessions and stored responses behind several workers. They live in the store the workers
//! share (PostgreSQL), so any worker can answer; a call about one session goes to the worker
//! its turns go to (the same rendezvous key), which also holds its live process. A call that
//! finds a worker unavailable is tried on another.

use std::sync::Arc;
use std::time::Duration;

use crate::chat::{ChatError, Tenant, affinity};
use crate::grpc::remote::Refusal;
use crate::grpc::responses::RemoteResponses;
use crate::grpc::sessions::RemoteSessions;
use crate::sessions::{
    NewSession, Page, PageRequest, ResponseApi, ResponseRecord, Session, SessionApi, SessionSummary,
};

use super::Members;

/// A worker's answer, retried elsewhere when the worker was unavailable.
fn refusal<T>(result: Result<T, ChatError>) -> Result<T, Refusal> {
    result.map_err(|error| Refusal {
        retry: matches!(error, ChatError::Unavailable { .. }),
        error,
    })
}

pub struct ClusterSessions {
    members: Arc<Members>,
    deadline: Duration,
}

impl ClusterSessions {
    pub fn new(members: Arc<Members>, deadline: Duration) -> Self {
        ClusterSessions { members, deadline }
    }
}

#[async_trait::async_trait]
impl SessionApi for ClusterSessions {
    async fn create(&self, tenant: &Tenant, new: NewSession) -> Result<Session, ChatError> {
        let new = &new;
        self.members
            .on_any(None, |m| async move {
                let sessions = RemoteSessions::new(m.remote.channel(), self.deadline);
                refusal(sessions.create(tenant, new.clone()).await)
            })
            .await
    }

    async fn get(&self, tenant: &Tenant, id: &str) -> Result<Session, ChatError> {
        let key = affinity::session_key(tenant, id);
        self.members
            .on_any(Some(&key), |m| async move {
                let sessions = RemoteSessions::new(m.remote.channel(), self.deadline);
                refusal(sessions.get(tenant, id).await)
            })
            .await
    }

    async fn list(
        &self,
        tenant: &Tenant,
        page: PageRequest,
    ) -> Result<Page<SessionSummary>, ChatError> {
        let page = &page;
        self.members
            .on_any(None, |m| async move {
                let sessions = RemoteSessions::new(m.remote.channel(), self.deadline);
                refusal(sessions.list(tenant, page.clone()).await)
            })
            .await
    }

    async fn delete(&self, tenant: &Tenant, id: &str) -> Result<(), ChatError> {
        let key = affinity::session_key(tenant, id);
        self.members
            .on_any(Some(&key), |m| async move {
                let sessions = RemoteSessions::new(m.remote.channel(), self.deadline);
                refusal(sessions.delete(tenant, id).await)
            })
            .await
    }

    async fn clear(&self, tenant: &Tenant, id: &str) -> Result<(), ChatError> {
        let key = affinity::session_key(tenant, id);
        self.members
            .on_any(Some(&key), |m| async move {
                let sessions = RemoteSessions::new(m.remote.channel(), self.deadline);
                refusal(sessions.clear(tenant, id).await)
            })
            .await
    }
}

pub struct ClusterResponses {
    members: Arc<Members>,
    deadline: Duration,
}

impl ClusterResponses {
    pub fn new(members: Arc<Members>, deadline: Duration) -> Self {
        ClusterResponses { members, deadline }
    }
}

#[async_trait::async_trait]
impl ResponseApi for ClusterResponses {
    async fn get_response(&self, tenant: &Tenant, id: &str) -> Result<ResponseRecord, ChatError> {
        self.members
            .on_any(None, |m| async move {
                let responses = RemoteResponses::new(m.remote.channel(), self.deadline);
                refusal(responses.get_response(tenant, id).await)
            })
            .await
    }

    async fn delete_response(&self, tenant: &Tenant, id: &str) -> Result<(), ChatError> {
        self.members
            .on_any(None, |m| async move {
                let responses = RemoteResponses::new(m.remote.channel(), self.deadline);
                refusal(responses.delete_response(tenant, id).await)
            })
            .await
    }
}
