//! Live session processes: after a clean turn in a session, its `claude` process is kept
//! (stdin open, conversation in memory) so the next turn writes only the new user message —
//! the CLI's native multi-turn — instead of spawning a process and replaying the history. A
//! process is reused only if it was configured the same way (fingerprint) and holds exactly the
//! conversation the store has (hash of the turns); anything else falls back to replay. Idle
//! processes expire, and the least recently used go first when the cap is reached.
//!
//! A kept process keeps the slot it served with in the process budget; it is not kept when a
//! request waits for a slot, and a request that finds the budget full may evict the least
//! recently used one (`Idle`).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::chat::validate::{Block, OutputMode, Turn, ValidChatRequest};

use super::limit::{Idle, Limiter, Slot};
use super::process::ClaudeProcess;

struct Live {
    process: ClaudeProcess,
    fingerprint: u64,
    conversation: u64,
    last_used: Instant,
    /// After the process: released once it is killed.
    slot: Slot,
}

pub struct LiveSessions {
    map: Mutex<HashMap<String, Live>>,
    max: usize,
    idle: Duration,
    budget: Arc<Limiter>,
}

/// A process kept for a session's next turn, as `LiveSessions::put` takes it.
pub struct Kept {
    pub process: ClaudeProcess,
    pub slot: Slot,
    pub fingerprint: u64,
    pub conversation: u64,
}

/// How a process was configured: everything of a request that reaches the CLI at start.
pub fn fingerprint(req: &ValidChatRequest, bare: bool) -> u64 {
    let mut h = DefaultHasher::new();
    req.model.cli_model.hash(&mut h);
    bare.hash(&mut h);
    format!("{:?}", req.effort).hash(&mut h);
    req.system_prompt.hash(&mut h);
    h.finish()
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

/// Whether a turn can run in (and leave behind) a live process: plain text turns only, since
/// tools, JSON output, stop sequences and token limits end a run by cutting it or need a
/// per-process configuration.
pub fn eligible(req: &ValidChatRequest) -> bool {
    req.tools.is_empty()
        && req.output == OutputMode::Text
        && req.stop.is_empty()
        && req.max_tokens.is_none()
        && req.n == 1
}

impl LiveSessions {
    /// The registry, its processes counted in (and evictable by) `budget`.
    pub fn new(max: usize, idle: Duration, budget: Arc<Limiter>) -> Arc<Self> {
        let live = Arc::new(LiveSessions {
            map: Mutex::new(HashMap::new()),
            max,
            idle,
            budget: budget.clone(),
        });
        let holder: Arc<dyn Idle> = live.clone();
        budget.watch_idle(Arc::downgrade(&holder));
        live
    }

    /// The session's live process with its slot, if it fits this turn; it is removed either way.
    pub fn take(
        &self,
        key: &str,
        fingerprint: u64,
        conversation: u64,
    ) -> Option<(ClaudeProcess, Slot)> {
        let mut live = self.map.lock().ok()?.remove(key)?;
        let fits = live.fingerprint == fingerprint
            && live.conversation == conversation
            && live.last_used.elapsed() < self.idle
            && live.process.is_alive();
        fits.then_some((live.process, live.slot))
    }

    /// Keeps a process after a clean turn, unless a request waits for its slot; expired ones
    /// and the least recently used beyond the cap are dropped (which kills them).
    pub fn put(&self, key: String, kept: Kept) {
        if self.budget.wanted() {
            tracing::debug!("a request waits for a process: not keeping the session's");
            return;
        }
        let Ok(mut map) = self.map.lock() else { return };
        map.retain(|_, l| l.last_used.elapsed() < self.idle);
        let Kept {
            process,
            slot,
            fingerprint,
            conversation,
        } = kept;
        map.insert(
            key,
            Live {
                process,
                fingerprint,
                conversation,
                last_used: Instant::now(),
                slot,
            },
        );
        while map.len() > self.max {
            let Some(oldest) = map
                .iter()
                .min_by_key(|(_, l)| l.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            map.remove(&oldest);
        }
    }

    /// Drops the processes idle past the limit.
    pub fn sweep(&self) {
        if let Ok(mut map) = self.map.lock() {
            map.retain(|_, l| l.last_used.elapsed() < self.idle);
        }
    }

    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Idle for LiveSessions {
    fn oldest(&self) -> Option<Instant> {
        self.map.lock().ok()?.values().map(|l| l.last_used).min()
    }

    fn evict_oldest(&self) -> Option<Slot> {
        let mut map = self.map.lock().ok()?;
        let oldest = map
            .iter()
            .min_by_key(|(_, l)| l.last_used)
            .map(|(k, _)| k.clone())?;
        let Live { process, slot, .. } = map.remove(&oldest)?;
        tracing::debug!(
            pid = process.pid(),
            "evicted a session process for a request"
        );
        drop(process);
        Some(slot)
    }
}
