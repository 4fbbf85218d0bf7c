//! Sessions in the chat path. `SessionApi` is what the protocols call to manage sessions (local
//! here, remote over gRPC in a façade); `SessionBackend` wraps the engine so a completion with a
//! `session_id` runs on the stored history and, when it succeeds, appends the new messages and
//! the reply in one atomic write. A failed or cancelled turn writes nothing.
//!
//! Concurrent turns on one session are serialized on this replica (the second waits for the
//! first, as queued work: bounded by `--max-queue` and `--queue-timeout-secs` like a wait for a
//! process, so it answers 429 or 503 the same way); across replicas the append is a
//! compare-and-set on the history length, and a turn that lost the race answers 409
//! `session_conflict` with nothing stored.
//!
//! Every call acts for a `Tenant`: another tenant's session answers exactly as a missing one
//! (`SessionNotFound`), for management and for a chat turn's `session_id` (the tenant of
//! `RequestContext`); admins reach every session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::StreamExt;

use crate::chat::backend::Accumulator;
use crate::chat::models::ModelInfo;
use crate::chat::types::{ChatEvent, ChatRequest, Message, Role};
use crate::chat::{BackendHealth, ChatBackend, ChatError, ChatStream, RequestContext, Tenant};
use crate::claude::limit::WaitQueue;

use super::chains::{ResponseApi, ResponseRecord};
use super::mapping::{not_found, reply_message, store_error, valid_id};
use super::store::{
    NewSession, Page, PageRequest, Session, SessionStore, SessionSummary, StoreError,
};

/// Session management for one tenant, whichever side of the wire the store is on.
#[async_trait::async_trait]
pub trait SessionApi: Send + Sync {
    /// A new session owned by `tenant`.
    async fn create(&self, tenant: &Tenant, new: NewSession) -> Result<Session, ChatError>;
    async fn get(&self, tenant: &Tenant, id: &str) -> Result<Session, ChatError>;
    /// The tenant's sessions; an admin's are everyone's.
    async fn list(
        &self,
        tenant: &Tenant,
        page: PageRequest,
    ) -> Result<Page<SessionSummary>, ChatError>;
    async fn delete(&self, tenant: &Tenant, id: &str) -> Result<(), ChatError>;
    async fn clear(&self, tenant: &Tenant, id: &str) -> Result<(), ChatError>;
}

/// Local sessions: the store, and a lock per session that serializes its turns.
pub struct Sessions {
    store: Arc<dyn SessionStore>,
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
    /// Where a turn waiting for the previous one is counted, and bounded.
    queue: Arc<WaitQueue>,
}

impl Sessions {
    /// Sessions whose turn waits count as queued work in `queue` (the engine's).
    pub fn with_queue(store: Arc<dyn SessionStore>, queue: Arc<WaitQueue>) -> Arc<Self> {
        Arc::new(Sessions {
            store,
            locks: Mutex::new(HashMap::new()),
            queue,
        })
    }

    /// The session's turn: at once when no other turn holds it, else after waiting in the
    /// queue (429 when it is full, 503 past its timeout). A busy session that is missing or
    /// another tenant's is a 404 at once, not after the wait.
    async fn turn(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> Result<tokio::sync::OwnedMutexGuard<()>, ChatError> {
        let lock = self.lock(id);
        if let Ok(turn) = lock.clone().try_lock_owned() {
            return Ok(turn);
        }
        self.get(tenant, id).await?;
        self.queue
            .wait("the session's previous turn to end", lock.lock_owned())
            .await
    }

    fn lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let Ok(mut locks) = self.locks.lock() else {
            return Arc::new(tokio::sync::Mutex::new(()));
        };
        locks.retain(|_, weak| weak.strong_count() > 0);
        if let Some(lock) = locks.get(id).and_then(Weak::upgrade) {
            return lock;
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(id.to_string(), Arc::downgrade(&lock));
        lock
    }

    /// Purges expired sessions every minute, for as long as the returned task runs.
    pub fn start_purger(self: &Arc<Self>, idle_ttl: Duration, max_count: Option<usize>) {
        let store = self.store.clone();
        tokio::spawn(async move {
            loop {
                match store.purge_expired(idle_ttl, max_count).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(purged = n, "expired sessions purged"),
                    Err(e) => tracing::warn!(error = %e, "session purge failed"),
                }
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        });
    }
}

#[async_trait::async_trait]
impl SessionApi for Sessions {
    async fn create(&self, tenant: &Tenant, new: NewSession) -> Result<Session, ChatError> {
        let id = new.id.clone().unwrap_or_default();
        if !id.is_empty() && !valid_id(&id) {
            return Err(ChatError::invalid(
                format!("A session id is 1 to 128 letters, digits, `_`, `-` or `.`; got `{id}`."),
                "id",
            ));
        }
        self.store
            .create(tenant, new)
            .await
            .map_err(|e| store_error(&id, e))
    }

    async fn get(&self, tenant: &Tenant, id: &str) -> Result<Session, ChatError> {
        self.store
            .get(tenant, id)
            .await
            .map_err(|e| store_error(id, e))?
            .ok_or_else(|| not_found(id))
    }

    async fn list(
        &self,
        tenant: &Tenant,
        page: PageRequest,
    ) -> Result<Page<SessionSummary>, ChatError> {
        let after = page.after.clone().unwrap_or_default();
        self.store.list(tenant, page).await.map_err(|e| match e {
            StoreError::NotFound(_) => ChatError::invalid(
                format!("The cursor `after={after}` names no session."),
                "after",
            ),
            other => store_error(&after, other),
        })
    }

    async fn delete(&self, tenant: &Tenant, id: &str) -> Result<(), ChatError> {
        match self
            .store
            .delete(tenant, id)
            .await
            .map_err(|e| store_error(id, e))?
        {
            true => Ok(()),
            false => Err(not_found(id)),
        }
    }

    async fn clear(&self, tenant: &Tenant, id: &str) -> Result<(), ChatError> {
        let _turn = self.turn(tenant, id).await?;
        match self
            .store
            .clear(tenant, id)
            .await
            .map_err(|e| store_error(id, e))?
        {
            true => Ok(()),
            false => Err(not_found(id)),
        }
    }
}

/// The engine with sessions: requests carrying a `session_id` run on the stored history.
pub struct SessionBackend {
    inner: Arc<dyn ChatBackend>,
    sessions: Arc<Sessions>,
}

impl SessionBackend {
    pub fn new(inner: Arc<dyn ChatBackend>, sessions: Arc<Sessions>) -> Self {
        SessionBackend { inner, sessions }
    }
}

#[async_trait::async_trait]
impl ChatBackend for SessionBackend {
    async fn stream(
        &self,
        req: ChatRequest,
        mut ctx: RequestContext,
    ) -> Result<ChatStream, ChatError> {
        if req.response.is_some() {
            return super::chains::response_turn(&self.sessions.store, &self.inner, req, ctx).await;
        }
        let Some(id) = req.session_id.clone() else {
            return self.inner.stream(req, ctx).await;
        };
        if req.n.unwrap_or(1) > 1 {
            return Err(ChatError::invalid(
                "A turn in a session has one answer: `n` must be 1 with `session_id`.",
                "n",
            ));
        }
        // Held until the turn is stored (or dropped): one turn at a time per session here.
        let turn = self.sessions.turn(&ctx.tenant, &id).await?;
        let session = self.sessions.get(&ctx.tenant, &id).await?;
        let expected = session.history.len();
        let new_messages = req.messages.clone();
        let full = with_history(req, &session)?;
        // Keyed by creation time too: a session deleted and made again is another conversation.
        ctx.session = Some(format!("{}@{}", id, session.created_at));
        let tenant = ctx.tenant.clone();
        let ChatStream { meta, mut events } = self.inner.stream(full, ctx).await?;
        let store = self.sessions.store.clone();
        let reply_meta = meta.clone();
        let events = async_stream::stream! {
            let _turn = turn;
            let mut acc = Accumulator::default();
            while let Some(item) = events.next().await {
                match item {
                    // Usage is the last event: the turn succeeded, store it before saying so.
                    Ok(ChatEvent::Usage(usage)) => {
                        let mut stored = new_messages;
                        stored.push(reply_message(acc, &reply_meta));
                        match store.append(&tenant, &id, expected, stored).await {
                            Ok(_) => yield Ok(ChatEvent::Usage(usage)),
                            Err(e) => yield Err(store_error(&id, e)),
                        }
                        return;
                    }
                    Ok(event) => {
                        acc.push(event.clone());
                        yield Ok(event);
                    }
                    Err(err) => {
                        yield Err(err);
                        return;
                    }
                }
            }
        };
        Ok(ChatStream {
            meta,
            events: Box::pin(events),
        })
    }

    /// A request in a session is counted with the session's history before it, as its turn
    /// would run; nothing is locked or stored.
    async fn count_input_tokens(
        &self,
        req: ChatRequest,
        ctx: RequestContext,
    ) -> Result<u64, ChatError> {
        let req = super::chains::with_chain(self.sessions.store.as_ref(), req, &ctx.tenant).await?;
        let req = match req.session_id.clone() {
            Some(id) => with_history(req, &self.sessions.get(&ctx.tenant, &id).await?)?,
            None => req,
        };
        self.inner.count_input_tokens(req, ctx).await
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, ChatError> {
        self.inner.list_models().await
    }

    async fn get_model(&self, id: &str) -> Result<ModelInfo, ChatError> {
        self.inner.get_model(id).await
    }

    async fn health(&self) -> BackendHealth {
        self.inner.health().await
    }

    fn load(&self) -> Option<crate::chat::Load> {
        self.inner.load()
    }
}

/// The request with the stored system prompt (unless the turn brings its own) and history put
/// before its messages, and the session's model when the request names none.
fn with_history(mut req: ChatRequest, session: &Session) -> Result<ChatRequest, ChatError> {
    let history = session.history.clone();
    let brings_system = req
        .messages
        .iter()
        .chain(history.iter())
        .any(|m| matches!(m.role, Role::System | Role::Developer));
    let mut messages = Vec::with_capacity(history.len() + req.messages.len() + 1);
    if let Some(system) = session.system.as_ref().filter(|_| !brings_system) {
        messages.push(Message::text(Role::System, system.clone()));
    }
    messages.extend(history);
    messages.append(&mut req.messages);
    req.messages = messages;
    if req.model.is_empty() {
        req.model = session.model.clone().unwrap_or_default();
    }
    req.session_id = None;
    Ok(req)
}

#[async_trait::async_trait]
impl ResponseApi for Sessions {
    async fn get_response(&self, tenant: &Tenant, id: &str) -> Result<ResponseRecord, ChatError> {
        let stored = self
            .store
            .get_response(tenant, id)
            .await
            .map_err(|e| store_error(id, e))?
            .ok_or_else(|| ChatError::response_not_found(id, None))?;
        let mut history = stored.history;
        let reply = history.pop().unwrap_or_else(|| Message {
            role: Role::Assistant,
            content: Vec::new(),
            name: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
        });
        let input = history.split_off(stored.input_start.min(history.len()));
        Ok(ResponseRecord {
            id: stored.id,
            created_at: stored.created_at,
            document: stored.document,
            input,
            reply,
            usage: stored.outcome.usage,
            finish: stored.outcome.finish,
        })
    }

    async fn delete_response(&self, tenant: &Tenant, id: &str) -> Result<(), ChatError> {
        match self
            .store
            .delete_response(tenant, id)
            .await
            .map_err(|e| store_error(id, e))?
        {
            true => Ok(()),
            false => Err(ChatError::response_not_found(id, None)),
        }
    }
}
