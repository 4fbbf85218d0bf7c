//! The façade in front of one or many workers (`--upstream`): a `ChatBackend` that sends each
//! request to one worker and, when that worker fails before the request's first event, to
//! another.
//!
//! - `members`: the workers now (addresses, DNS names resolved again), and which one the next
//!   attempt goes to; `member`: one worker, its health and load watches, its requests;
//!   `pick`: the pure choices (two random choices over load, rendezvous for affinity).
//! - Failover: an attempt that fails before its first event with a failure that means nothing
//!   ran (see `remote::may_retry`: unreachable, refused, overloaded, shutting down, killed
//!   mid-start) goes to a worker not tried yet, up to `MAX_ATTEMPTS`. Once the first event
//!   came, the stream is the client's: a later failure is an error event in it, never a retry,
//!   so no request runs twice. A session turn is stored by its worker only when it ends, so
//!   a retried turn cannot have been stored.
//! - Non-streamed completions run as streams here too, so both follow the same rule.
//! - Sessions and stored responses live in the workers' shared store: their calls go to the
//!   session's rendezvous worker (`stores`), or any, and are retried on UNAVAILABLE.

mod member;
mod members;
mod pick;
mod stores;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::chat::models::ModelInfo;
use crate::chat::types::ChatRequest;
use crate::chat::{
    BackendHealth, ChatBackend, ChatError, ChatStream, Load, RequestContext, affinity,
};
use crate::metrics::upstream as metrics;

use super::convert;
use super::remote::{Refusal, may_retry};
use super::upstream::{Deadlines, UpstreamConfig};

pub use members::Members;
pub use stores::{ClusterResponses, ClusterSessions};

pub struct ClusterBackend {
    members: Arc<Members>,
    deadlines: Deadlines,
    /// Stops the DNS refresh when the backend is dropped.
    _stop: tokio_util::sync::DropGuard,
}

impl ClusterBackend {
    /// The workers of `configs`, resolved once before this returns and again every `resolve`.
    pub async fn start(configs: Vec<UpstreamConfig>, resolve: Duration) -> Result<Self, String> {
        let deadlines = configs
            .first()
            .map(|c| c.deadlines)
            .ok_or("--upstream needs at least one worker URL")?;
        let members = Members::new(configs)?;
        let stop = CancellationToken::new();
        members
            .discover(resolve.max(Duration::from_secs(1)), stop.clone())
            .await;
        let weak = Arc::downgrade(&members);
        metrics::set_state_source(move || weak.upgrade().map(|m| m.counts()).unwrap_or_default());
        Ok(ClusterBackend {
            members,
            deadlines,
            _stop: stop.drop_guard(),
        })
    }

    pub fn members(&self) -> Arc<Members> {
        self.members.clone()
    }

    pub fn deadlines(&self) -> Deadlines {
        self.deadlines
    }
}

/// A unary call's status as a refusal that may be retried.
fn refusal(status: tonic::Status) -> Refusal {
    Refusal {
        retry: may_retry(&status),
        error: super::remote::from_status(&status),
    }
}

#[async_trait::async_trait]
impl ChatBackend for ClusterBackend {
    async fn stream(&self, req: ChatRequest, ctx: RequestContext) -> Result<ChatStream, ChatError> {
        let key = affinity::key(&req, &ctx.tenant);
        let params = convert::chat_params(req);
        let ctx = &ctx;
        self.members
            .on_any(key.as_deref(), |member| {
                let params = params.clone();
                async move {
                    let guard = member.begin();
                    let ChatStream { meta, events } = member.remote.open(params, ctx).await?;
                    // The request counts on its worker until its stream ends or is dropped.
                    let events = events.map(move |event| {
                        let _on = &guard;
                        event
                    });
                    Ok(ChatStream {
                        meta,
                        events: Box::pin(events),
                    })
                }
            })
            .await
    }

    async fn count_input_tokens(
        &self,
        req: ChatRequest,
        ctx: RequestContext,
    ) -> Result<u64, ChatError> {
        let key = affinity::key(&req, &ctx.tenant);
        let req = &req;
        let ctx = &ctx;
        self.members
            .on_any(key.as_deref(), |member| async move {
                member.remote.count(req.clone(), ctx).await.map_err(refusal)
            })
            .await
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, ChatError> {
        self.members
            .on_any(None, |member| async move {
                member.remote.models().await.map_err(refusal)
            })
            .await
    }

    async fn get_model(&self, id: &str) -> Result<ModelInfo, ChatError> {
        self.members
            .on_any(None, |member| async move {
                member.remote.model(id).await.map_err(refusal)
            })
            .await?
            .ok_or_else(|| ChatError::model_not_found(id))
    }

    /// Ready while at least one worker serves; the detail names each worker's state.
    async fn health(&self) -> BackendHealth {
        let states = self.members.states();
        let ready = states.iter().any(|(_, s)| *s == "serving");
        let detail = if states.is_empty() {
            "no worker resolved yet".to_string()
        } else {
            states
                .iter()
                .map(|(name, state)| format!("{name}: {}", state.to_uppercase()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        BackendHealth {
            ready,
            cli: None,
            upstream: Some(detail),
            warm_processes: None,
        }
    }

    /// The workers' reported loads, summed.
    fn load(&self) -> Option<Load> {
        let mut sum = Load::default();
        for load in self.members.all().iter().filter_map(|m| m.load()) {
            sum.serving += load.serving;
            sum.warm += load.warm;
            sum.session += load.session;
            sum.idle += load.idle;
            sum.tools += load.tools;
            sum.queued += load.queued;
            sum.capacity += load.capacity;
        }
        Some(sum)
    }
}
