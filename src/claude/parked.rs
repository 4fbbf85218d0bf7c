//! Processes between requests. After a clean turn a `claude` process is not killed but parked
//! here, configured and holding its conversation, so a later request skips the CLI's cold start
//! (~0.7 CPU-seconds) in one of three ways:
//! - a session's next turn continues its session's process (`take_session`);
//! - a stateless request whose history is exactly the conversation a process holds continues
//!   it, writing only the new messages (`take_continuation`) — chat UIs that resend the history,
//!   agent loops; a process stopped at the client's tool calls is continued by the results;
//! - any other request of the same configuration and tenant takes an idle process, whose
//!   conversation is rewound to empty first (`take_recyclable`, `rewind.rs`).
//!
//! A process is found by its `ReuseKey` — the tenant and everything of a request that
//! configured it (model, effort, system prompt, tools, output schema, token limit) — so no
//! process ever serves another tenant, or a configuration it was not started with. A parked
//! process keeps its slot of the process budget; it is handed straight to a request that waits
//! for its key (a burst is served by processes as they finish), dropped when a request waits for
//! a slot, evicted least recently used first when the budget is full (`Idle`), and dropped when
//! idle past its limit.

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::chat::Tenant;
use crate::chat::validate::{Block, Turn, ValidChatRequest};

use super::limit::{Idle, Limiter, Slot};
use super::process::ClaudeProcess;

/// Who may take a process: one tenant, one configuration.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReuseKey {
    tenant: String,
    config: u64,
}

impl ReuseKey {
    /// The key of the processes that can serve `req` for `tenant`: everything of a request
    /// that reaches the CLI at spawn or in `initialize` (`argv.rs`, `input.rs`).
    pub fn new(tenant: &Tenant, req: &ValidChatRequest, bare: bool) -> Self {
        let mut h = DefaultHasher::new();
        req.model.cli_model.hash(&mut h);
        bare.hash(&mut h);
        format!("{:?}", req.effort).hash(&mut h);
        req.system_prompt.hash(&mut h);
        format!("{:?}", req.tools).hash(&mut h);
        req.output.cli_schema().map(|s| s.to_string()).hash(&mut h);
        format!("{:?}", req.tool_mode.required).hash(&mut h);
        req.max_tokens.hash(&mut h);
        req.thinking_budget.hash(&mut h);
        ReuseKey {
            tenant: tenant.id().to_string(),
            config: h.finish(),
        }
    }
}

/// The conversation a process holds.
pub fn conversation(turns: &[Turn]) -> u64 {
    let mut h = DefaultHasher::new();
    for turn in turns {
        format!("{:?}", turn.role).hash(&mut h);
        // Thinking is left out: a kept process's turns record the reply's text, and the
        // thinking of a reply it wrote is in its conversation whether a client sends it back
        // (a stored response chain keeps it) or not.
        for block in turn
            .blocks
            .iter()
            .filter(|b| !matches!(b, Block::Thinking { .. }))
        {
            format!("{block:?}").hash(&mut h);
        }
    }
    h.finish()
}

/// What the gateway knows of a live process beyond its conversation: the `uuid`s of the first
/// and last user lines it wrote (a rewind names both) and what the CLI has counted as spent
/// so far (its `total_cost_usd` only ever grows).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Marks {
    pub first_user: Option<String>,
    pub last_user: Option<String>,
    pub spent_usd: f64,
}

impl Marks {
    pub fn wrote_user(&mut self, uuid: &str) {
        if self.first_user.is_none() {
            self.first_user = Some(uuid.to_string());
        }
        self.last_user = Some(uuid.to_string());
    }
}

/// Where a parked process stopped.
#[derive(Debug, Clone, PartialEq)]
pub enum Pause {
    /// After its turn's `result`: idle, its conversation complete.
    Clean,
    /// At the client's tool calls (these ids, in order): the CLI waits for permission to run
    /// the first; the follow-up request's results let them proceed (`control.rs`). The
    /// permission prompts already read (request id, request) are answered first.
    AtTools {
        calls: Vec<String>,
        prompts: Vec<(String, serde_json::Value)>,
    },
}

/// A process with what it holds, as a run hands it over and a request takes it.
pub struct Kept {
    pub process: ClaudeProcess,
    pub marks: Marks,
    pub pause: Pause,
    /// The conversation's hash, as the next request would send it (`conversation`); `None`
    /// when the process holds more than the client saw (a structured-output tool round, a
    /// reminder to call a tool), so it can only be recycled, never continued.
    pub conversation: Option<u64>,
    /// After the process: released once it is killed.
    pub slot: Slot,
}

/// How long processes stay parked, and how many sessions keep theirs.
#[derive(Debug, Clone, Copy)]
pub struct ParkConfig {
    /// Sessions whose process is kept (0: every session turn replays its history).
    pub sessions: usize,
    pub session_idle: Duration,
    /// Recycle and continue stateless requests' processes (off: killed after their turn).
    pub reuse: bool,
    pub reuse_idle: Duration,
    /// How long a process stopped at tool calls waits for their results.
    pub tool_wait: Duration,
}

struct Held {
    kept: Kept,
    key: ReuseKey,
    /// The session it belongs to; `None` for a stateless request's process.
    session: Option<String>,
    last_used: Instant,
    expires: Instant,
}

impl Held {
    fn usable(&mut self) -> bool {
        Instant::now() < self.expires && self.kept.process.is_alive()
    }
}

struct Waiter {
    key: ReuseKey,
    tx: oneshot::Sender<Kept>,
}

#[derive(Default)]
struct Inner {
    held: Vec<Held>,
    waiters: VecDeque<Waiter>,
}

pub struct Parked {
    inner: Mutex<Inner>,
    cfg: ParkConfig,
    budget: Arc<Limiter>,
}

/// A request's place in line for a process of its key (`Parked::wait_for`).
pub struct Handoff(oneshot::Receiver<Kept>);

impl Handoff {
    /// The process handed over, when one is.
    pub async fn recv(&mut self) -> Option<Kept> {
        (&mut self.0).await.ok()
    }

    /// Leaves the line; a process handed over meanwhile is returned, not lost.
    pub fn leave(mut self) -> Option<Kept> {
        self.0.close();
        self.0.try_recv().ok()
    }
}

impl Parked {
    /// The registry, its processes counted in (and evictable by) `budget`.
    pub fn new(cfg: ParkConfig, budget: Arc<Limiter>) -> Arc<Self> {
        let parked = Arc::new(Parked {
            inner: Mutex::new(Inner::default()),
            cfg,
            budget: budget.clone(),
        });
        let holder: Arc<dyn Idle> = parked.clone();
        budget.watch_idle(Arc::downgrade(&holder));
        parked
    }

    pub fn config(&self) -> ParkConfig {
        self.cfg
    }

    /// The session's process, if it holds exactly this conversation in this configuration; it
    /// is removed either way (a session's turns run one at a time).
    pub fn take_session(&self, session: &str, key: &ReuseKey, conversation: u64) -> Option<Kept> {
        let mut inner = self.inner.lock().ok()?;
        let at = inner
            .held
            .iter()
            .position(|h| h.session.as_deref() == Some(session))?;
        let mut held = inner.held.swap_remove(at);
        let fits = held.key == *key
            && held.kept.conversation == Some(conversation)
            && held.kept.pause == Pause::Clean
            && held.usable();
        fits.then_some(held.kept)
    }

    /// A stateless request's process that holds exactly `conversation` (the request's history)
    /// in this configuration, for the request to continue.
    pub fn take_continuation(&self, key: &ReuseKey, conversation: u64) -> Option<Kept> {
        self.take(|h| {
            h.session.is_none() && h.key == *key && h.kept.conversation == Some(conversation)
        })
    }

    /// An idle stateless process of this configuration, to be rewound and reused: the least
    /// recently used, so the freshest conversations stay continuable.
    pub fn take_recyclable(&self, key: &ReuseKey) -> Option<Kept> {
        self.take(|h| h.session.is_none() && h.key == *key && h.kept.pause == Pause::Clean)
    }

    fn take(&self, fits: impl Fn(&Held) -> bool) -> Option<Kept> {
        let mut inner = self.inner.lock().ok()?;
        loop {
            let at = inner
                .held
                .iter()
                .enumerate()
                .filter(|(_, h)| fits(h))
                .min_by_key(|(_, h)| h.last_used)
                .map(|(i, _)| i)?;
            let mut held = inner.held.swap_remove(at);
            if held.usable() {
                return Some(held.kept);
            }
        }
    }

    /// Gets in line for the next process of `key` that finishes a clean turn.
    pub fn wait_for(&self, key: &ReuseKey) -> Option<Handoff> {
        let mut inner = self.inner.lock().ok()?;
        let (tx, rx) = oneshot::channel();
        inner.waiters.retain(|w| !w.tx.is_closed());
        inner.waiters.push_back(Waiter {
            key: key.clone(),
            tx,
        });
        Some(Handoff(rx))
    }

    /// Parks a process after its turn: a session's for the session's next turn; a stateless
    /// one handed to the first request waiting for its key, else kept — unless a request
    /// waits for a slot, which then gets this one's.
    pub fn park(&self, key: ReuseKey, session: Option<String>, kept: Kept) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let mut kept = kept;
        if session.is_none() {
            if !self.cfg.reuse {
                return;
            }
            if kept.pause == Pause::Clean {
                while let Some(at) = inner.waiters.iter().position(|w| w.key == key) {
                    let Some(waiter) = inner.waiters.remove(at) else {
                        break;
                    };
                    match waiter.tx.send(kept) {
                        Ok(()) => return,
                        // That request stopped waiting.
                        Err(back) => kept = back,
                    }
                }
            }
        }
        if self.budget.wanted() {
            tracing::debug!("a request waits for a process: not keeping this one");
            return;
        }
        let now = Instant::now();
        let limit = match (&session, &kept.pause) {
            (_, Pause::AtTools { .. }) => self.cfg.tool_wait,
            (Some(_), Pause::Clean) => self.cfg.session_idle,
            (None, Pause::Clean) => self.cfg.reuse_idle,
        };
        inner.held.retain_mut(Held::usable);
        if let Some(session) = &session {
            inner.held.retain(|h| h.session.as_ref() != Some(session));
        }
        inner.held.push(Held {
            kept,
            key,
            session,
            last_used: now,
            expires: now + limit,
        });
        // Beyond the sessions' cap, their least recently used process goes.
        while inner.held.iter().filter(|h| h.session.is_some()).count() > self.cfg.sessions {
            let Some(at) = inner
                .held
                .iter()
                .enumerate()
                .filter(|(_, h)| h.session.is_some())
                .min_by_key(|(_, h)| h.last_used)
                .map(|(i, _)| i)
            else {
                break;
            };
            inner.held.swap_remove(at);
        }
    }

    /// Drops the processes idle past their limit (or dead).
    pub fn sweep(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.held.retain_mut(Held::usable);
        }
    }

    /// Parked processes: (sessions', stateless idle, stopped at tool calls).
    pub fn counts(&self) -> (usize, usize, usize) {
        let Ok(inner) = self.inner.lock() else {
            return (0, 0, 0);
        };
        let sessions = inner.held.iter().filter(|h| h.session.is_some()).count();
        let tools = inner
            .held
            .iter()
            .filter(|h| h.session.is_none() && matches!(h.kept.pause, Pause::AtTools { .. }))
            .count();
        (sessions, inner.held.len() - sessions - tools, tools)
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.held.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Idle for Parked {
    fn oldest(&self) -> Option<Instant> {
        self.inner
            .lock()
            .ok()?
            .held
            .iter()
            .map(|h| h.last_used)
            .min()
    }

    fn evict_oldest(&self) -> Option<Slot> {
        let mut inner = self.inner.lock().ok()?;
        let at = inner
            .held
            .iter()
            .enumerate()
            .min_by_key(|(_, h)| h.last_used)
            .map(|(i, _)| i)?;
        let Kept { process, slot, .. } = inner.held.swap_remove(at).kept;
        tracing::debug!(
            pid = process.pid(),
            "evicted a parked process for a request"
        );
        drop(process);
        Some(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claude::limit::LimitConfig;
    use crate::claude::process::Launch;

    fn budget(max: usize) -> Arc<Limiter> {
        Arc::new(Limiter::new(LimitConfig {
            max_processes: max,
            max_queue: 4,
            queue_timeout: Duration::from_secs(1),
        }))
    }

    fn cfg(reuse_idle: Duration) -> ParkConfig {
        ParkConfig {
            sessions: 2,
            session_idle: Duration::from_secs(60),
            reuse: true,
            reuse_idle,
            tool_wait: Duration::from_secs(60),
        }
    }

    /// A stand-in process (`cat` waits on its stdin like an idle CLI) in a slot of `budget`.
    async fn kept(budget: &Limiter, conversation: u64) -> Kept {
        let dir = std::env::temp_dir();
        let process = ClaudeProcess::spawn(&Launch {
            program: "cat".into(),
            args: vec![],
            env: vec![("PATH".into(), std::env::var_os("PATH").unwrap_or_default())],
            work_root: dir,
        })
        .expect("cat starts");
        let slot = budget.acquire(1).await.expect("a slot").pop().expect("one");
        Kept {
            process,
            marks: Marks::default(),
            pause: Pause::Clean,
            conversation: Some(conversation),
            slot,
        }
    }

    fn key(tenant: &str, config: u64) -> ReuseKey {
        ReuseKey {
            tenant: tenant.into(),
            config,
        }
    }

    #[tokio::test]
    async fn a_process_serves_only_its_tenant_and_configuration() {
        let budget = budget(4);
        let parked = Parked::new(cfg(Duration::from_secs(60)), budget.clone());
        parked.park(key("a", 1), None, kept(&budget, 7).await);
        assert!(
            parked.take_recyclable(&key("b", 1)).is_none(),
            "another tenant"
        );
        assert!(
            parked.take_recyclable(&key("a", 2)).is_none(),
            "another configuration"
        );
        assert!(
            parked.take_continuation(&key("a", 1), 8).is_none(),
            "another history"
        );
        assert!(parked.take_continuation(&key("a", 1), 7).is_some());
        assert!(parked.is_empty());
    }

    #[tokio::test]
    async fn a_waiting_request_gets_the_next_process_of_its_key() {
        let budget = budget(4);
        let parked = Parked::new(cfg(Duration::from_secs(60)), budget.clone());
        let other = parked.wait_for(&key("b", 1)).expect("in line");
        let mut mine = parked.wait_for(&key("a", 1)).expect("in line");
        parked.park(key("a", 1), None, kept(&budget, 1).await);
        let handed = tokio::time::timeout(Duration::from_secs(1), mine.recv()).await;
        assert!(handed.expect("handed at once").is_some());
        assert!(parked.is_empty(), "handed over, not parked");
        // One handed over as a waiter leaves is returned by `leave`, not lost.
        parked.park(key("b", 1), None, kept(&budget, 2).await);
        assert!(other.leave().is_some());
        drop(mine);
    }

    #[tokio::test]
    async fn idle_processes_expire_and_the_oldest_is_evicted_first() {
        let budget = budget(4);
        let parked = Parked::new(cfg(Duration::ZERO), budget.clone());
        parked.park(key("a", 1), None, kept(&budget, 1).await);
        assert!(parked.take_recyclable(&key("a", 1)).is_none(), "expired");
        parked.sweep();
        assert!(parked.is_empty());
        assert_eq!(budget.in_use(), 0, "its slot came back");

        let parked = Parked::new(cfg(Duration::from_secs(60)), budget.clone());
        parked.park(key("a", 1), None, kept(&budget, 1).await);
        tokio::time::sleep(Duration::from_millis(5)).await;
        parked.park(key("a", 2), None, kept(&budget, 2).await);
        let slot = parked.evict_oldest().expect("one to evict");
        drop(slot);
        assert!(
            parked.take_recyclable(&key("a", 1)).is_none(),
            "the oldest went"
        );
        assert!(parked.take_recyclable(&key("a", 2)).is_some());
    }

    #[tokio::test]
    async fn without_reuse_only_sessions_keep_their_process() {
        let budget = budget(4);
        let mut off = cfg(Duration::from_secs(60));
        off.reuse = false;
        let parked = Parked::new(off, budget.clone());
        parked.park(key("a", 1), None, kept(&budget, 1).await);
        assert!(parked.is_empty());
        parked.park(key("a", 1), Some("s1".into()), kept(&budget, 1).await);
        assert!(parked.take_session("s1", &key("a", 1), 1).is_some());
    }
}
