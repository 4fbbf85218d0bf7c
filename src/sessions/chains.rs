//! Stored responses (the Responses API's `store` and `previous_response_id`) on the session
//! mechanism: a response chain is a session of kind `chain`, and a stored response is a point in
//! its history with the dialect's record beside it. Nothing here is a second conversation store.
//!
//! A turn with a `ResponseTurn` runs on the chain's history up to the previous response. When
//! that response is still its chain's last, the turn continues the chain (in its live `claude`
//! process when that still holds exactly this conversation, as a session turn does) and is
//! appended with a compare-and-set; otherwise — a branch from an earlier response, or another
//! turn landed first — the history up to the previous response is copied into a new chain. So a
//! response is never lost to a race: at worst it starts a branch. Like a session turn, the
//! response is stored in one transaction before the stream's last event (usage) is passed on,
//! and a failed or cancelled turn stores nothing.
//!
//! `ResponseApi` is what the protocols call to read and delete stored responses (local here,
//! remote over gRPC in a façade). Another tenant's response reads as a missing one.

use std::sync::Arc;

use futures::StreamExt;

use crate::chat::backend::Accumulator;
use crate::chat::types::{
    ChatEvent, ChatRequest, ContentPart, FinishReason, Message, ReasoningDelta, ResponseTurn, Role,
    Usage,
};
use crate::chat::{ChatBackend, ChatError, ChatStream, RequestContext, Tenant};

use super::mapping::{reply_message, store_error, valid_id};
use super::store::{ChainBase, NewResponse, NewSession, ResponseOutcome, SessionStore, StoreError};

/// A stored response as the protocols show it.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseRecord {
    pub id: String,
    /// Unix seconds of the commit.
    pub created_at: i64,
    /// The dialect's record of the request (`ResponseTurn::document`).
    pub document: String,
    /// This turn's input messages as the chain keeps them (instructions are not kept).
    pub input: Vec<Message>,
    /// Claude's reply.
    pub reply: Message,
    pub usage: Usage,
    pub finish: FinishReason,
}

/// Stored responses for one tenant, whichever side of the wire the store is on.
#[async_trait::async_trait]
pub trait ResponseApi: Send + Sync {
    async fn get_response(&self, tenant: &Tenant, id: &str) -> Result<ResponseRecord, ChatError>;
    async fn delete_response(&self, tenant: &Tenant, id: &str) -> Result<(), ChatError>;
}

/// Where a response's turn starts: the chain's history up to the previous response, and where
/// its messages will be appended.
struct ChainPoint {
    history: Vec<Message>,
    base: ChainBase,
    /// The key of the chain's live process, when the turn continues the chain's last response.
    live: Option<String>,
}

/// A new chain's session id.
fn chain_id() -> String {
    format!("chain_{}", uuid::Uuid::new_v4().simple())
}

/// A new chain session to append to, and the key its live process will be kept under.
fn new_chain(model: &str) -> (ChainBase, String) {
    let id = chain_id();
    let key = live_key(&id);
    let base = ChainBase::New(NewSession {
        id: Some(id),
        model: (!model.is_empty()).then(|| model.to_string()),
        system: None,
        metadata: Default::default(),
    });
    (base, key)
}

/// The live-process key of a chain session: its id is random and never reused.
fn live_key(session: &str) -> String {
    format!("{session}@chain")
}

impl ChainPoint {
    async fn find(
        store: &dyn SessionStore,
        tenant: &Tenant,
        previous: Option<&str>,
        model: &str,
    ) -> Result<Self, ChatError> {
        let Some(previous) = previous else {
            let (base, key) = new_chain(model);
            return Ok(ChainPoint {
                history: Vec::new(),
                base,
                live: Some(key),
            });
        };
        let stored = store
            .get_response(tenant, previous)
            .await
            .map_err(|e| store_error(previous, e))?
            .ok_or_else(|| ChatError::response_not_found(previous, Some("previous_response_id")))?;
        if stored.at_tip {
            return Ok(ChainPoint {
                base: ChainBase::Existing {
                    expected_len: stored.history.len(),
                    session: stored.session.clone(),
                },
                live: Some(live_key(&stored.session)),
                history: stored.history,
            });
        }
        // A branch from an earlier response: a new chain with the history up to it.
        let (base, key) = new_chain(model);
        Ok(ChainPoint {
            history: stored.history,
            base,
            live: Some(key),
        })
    }
}

/// A Responses turn through the session layer: runs it on its chain and, when it is to be
/// stored, commits it before passing the usage (the stream's last event) on.
pub async fn response_turn(
    store: &Arc<dyn SessionStore>,
    inner: &Arc<dyn ChatBackend>,
    mut req: ChatRequest,
    mut ctx: RequestContext,
) -> Result<ChatStream, ChatError> {
    let Some(turn) = req.response.take() else {
        return inner.stream(req, ctx).await;
    };
    if req.session_id.is_some() {
        return Err(ChatError::invalid(
            "A turn of a stored response chain cannot also name a session (`session_id`).",
            "session_id",
        ));
    }
    if req.n.unwrap_or(1) > 1 {
        return Err(ChatError::invalid(
            "A stored response has one answer: `n` must be 1.",
            "n",
        ));
    }
    let ResponseTurn {
        id,
        previous,
        store: keep,
        instructions,
        document,
    } = turn;
    if !valid_id(&id) {
        return Err(ChatError::invalid(
            format!("A response id is 1 to 128 letters, digits, `_`, `-` or `.`; got `{id}`."),
            "response.id",
        ));
    }
    let store = store.clone();
    let point =
        ChainPoint::find(store.as_ref(), &ctx.tenant, previous.as_deref(), &req.model).await?;
    let input = on_chain(&mut req, &point.history, instructions);
    if !keep {
        // Nothing will be kept: the chain's live process stays for the turns that are.
        return inner.stream(req, ctx).await;
    }
    ctx.session = point.live.clone();
    let tenant = ctx.tenant.clone();
    let model = req.model.clone();
    let ChatStream { meta, mut events } = inner.stream(req, ctx).await?;
    let reply_meta = meta.clone();
    let events = async_stream::stream! {
        let mut acc = Accumulator::default();
        let mut thinking = Thinking::default();
        let mut finish = FinishReason::Stop;
        while let Some(item) = events.next().await {
            match item {
                Ok(ChatEvent::Usage(usage)) => {
                    let mut reply = reply_message(acc, &reply_meta);
                    // Claude's thinking goes first in its turn, as it was written.
                    let text = std::mem::take(&mut reply.content);
                    reply.content = thinking.blocks;
                    reply.content.extend(text);
                    let commit = Commit {
                        id: id.clone(),
                        document: document.clone(),
                        outcome: ResponseOutcome { usage, finish },
                        history: point.history,
                        input,
                        reply,
                    };
                    match commit.run(store.as_ref(), &tenant, point.base, &model).await {
                        Ok(()) => yield Ok(ChatEvent::Usage(usage)),
                        Err(e) => yield Err(e),
                    }
                    return;
                }
                Ok(event) => {
                    match &event {
                        ChatEvent::Finish { index: 0, reason } => finish = *reason,
                        ChatEvent::Reasoning { index: 0, delta } => thinking.push(delta),
                        _ => {}
                    }
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

/// Puts the chain's history up to the previous response before the request's input (after its
/// instructions), and returns the input as the chain keeps it: without the instructions.
fn on_chain(req: &mut ChatRequest, history: &[Message], instructions: bool) -> Vec<Message> {
    let skip = usize::from(instructions && req.messages.first().is_some_and(is_system));
    let input: Vec<Message> = req.messages.iter().skip(skip).cloned().collect();
    let mut messages = Vec::with_capacity(history.len() + req.messages.len());
    messages.extend(req.messages.drain(..skip));
    messages.extend(history.iter().cloned());
    messages.append(&mut req.messages);
    req.messages = messages;
    input
}

/// The request as a turn of its chain would send it (the chain's history put in), for what
/// only looks at a request: counting its tokens.
pub async fn with_chain(
    store: &dyn SessionStore,
    mut req: ChatRequest,
    tenant: &Tenant,
) -> Result<ChatRequest, ChatError> {
    let Some(turn) = req.response.take() else {
        return Ok(req);
    };
    if let Some(previous) = turn.previous.as_deref() {
        let point = ChainPoint::find(store, tenant, Some(previous), &req.model).await?;
        on_chain(&mut req, &point.history, turn.instructions);
    }
    Ok(req)
}

/// Claude's thinking blocks as a turn streams them, for the stored reply.
#[derive(Default)]
struct Thinking {
    blocks: Vec<ContentPart>,
    text: String,
}

impl Thinking {
    fn push(&mut self, delta: &ReasoningDelta) {
        match delta {
            ReasoningDelta::Text(text) => self.text.push_str(text),
            ReasoningDelta::Signature { signature, model } => {
                self.blocks.push(ContentPart::Thinking {
                    thinking: std::mem::take(&mut self.text),
                    signature: signature.clone(),
                    model: model.clone(),
                });
            }
            ReasoningDelta::Redacted { data, model } => {
                self.blocks.push(ContentPart::RedactedThinking {
                    data: data.clone(),
                    model: model.clone(),
                });
            }
        }
    }
}

fn is_system(m: &Message) -> bool {
    matches!(m.role, Role::System)
}

/// A finished turn to store as a response.
struct Commit {
    id: String,
    document: String,
    outcome: ResponseOutcome,
    /// The chain's history before the turn.
    history: Vec<Message>,
    input: Vec<Message>,
    reply: Message,
}

impl Commit {
    /// Appends the turn where it was placed; when another turn took the chain's end first,
    /// branches into a new chain with the same history instead.
    async fn run(
        self,
        store: &dyn SessionStore,
        tenant: &Tenant,
        base: ChainBase,
        model: &str,
    ) -> Result<(), ChatError> {
        let Commit {
            id,
            document,
            outcome,
            history,
            mut input,
            reply,
        } = self;
        let input_start = history.len();
        input.push(reply);
        let response = NewResponse {
            id: id.clone(),
            input_start,
            document,
            outcome,
        };
        let whole = |input: &[Message]| history.iter().chain(input).cloned().collect::<Vec<_>>();
        let (messages, base) = match base {
            ChainBase::New(new) => (whole(&input), ChainBase::New(new)),
            existing @ ChainBase::Existing { .. } => (input.clone(), existing),
        };
        match store
            .commit_response(tenant, base, messages, response.clone())
            .await
        {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => {
                tracing::debug!(response = %id, "the chain moved on: storing the response as a branch");
                store
                    .commit_response(tenant, new_chain(model).0, whole(&input), response)
                    .await
                    .map(|_| ())
                    .map_err(|e| store_error(&id, e))
            }
            Err(StoreError::AlreadyExists(_)) => Err(ChatError::invalid_with_code(
                format!("A response `{id}` already exists; nothing was stored."),
                "response.id",
                "response_exists",
            )),
            Err(e) => Err(store_error(&id, e)),
        }
    }
}
