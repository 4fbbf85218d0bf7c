//! The process budget and the wait queue. Every live `claude` process holds one `Slot` of the
//! budget, whatever it is doing: serving a request, waiting warm in the pool, or kept between a
//! session's turns. The slot travels with the process (pool → run → live session) and is
//! released by drop, after the process, so no state change counts a process twice or loses it.
//!
//! A request that finds the budget full first evicts idle processes (warm or live-session,
//! least recently used first, through the `Idle` holders registered here) and only then waits.
//! Waiting happens in one `WaitQueue`, shared with the session-lock waits: beyond `max_queue`
//! waiters a request is refused at once (429 with Retry-After), and one that waited longer than
//! `queue_timeout` gets a 503.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::chat::ChatError;

#[derive(Debug, Clone, Copy)]
pub struct LimitConfig {
    pub max_processes: usize,
    pub max_queue: usize,
    pub queue_timeout: Duration,
}

/// One process's place in the budget. Declared after the process in whatever holds both, so
/// the process is killed before its place is given to another.
#[derive(Debug)]
pub struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

/// A holder of idle processes (the warm pool, the parked processes) that gives one up on demand.
pub trait Idle: Send + Sync {
    /// When its least recently used process became idle, if it holds any.
    fn oldest(&self) -> Option<Instant>;
    /// Kills that process and hands over its slot.
    fn evict_oldest(&self) -> Option<Slot>;
}

/// Work waiting its turn: for a process, or for a session's turn lock.
pub struct WaitQueue {
    max: usize,
    timeout: Duration,
    waiting: Arc<AtomicUsize>,
}

/// Counts a waiter for as long as it waits (also when its future is dropped).
struct Waiting(Arc<AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl WaitQueue {
    pub fn new(max: usize, timeout: Duration) -> Self {
        WaitQueue {
            max,
            timeout,
            waiting: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn len(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits for `ready` as one queued request: refused at once when the queue is full,
    /// given up after the queue timeout. `what` ends the sentences of the errors ("a free
    /// claude process", "session `x`'s previous turn").
    pub async fn wait<T>(
        &self,
        what: &str,
        ready: impl Future<Output = T>,
    ) -> Result<T, ChatError> {
        let position = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(self.waiting.clone());
        if position >= self.max {
            return Err(ChatError::RateLimited {
                message: format!(
                    "The gateway is at capacity: {} requests are already waiting (for a free \
                     claude process or a session's turn), this one waited for {what}. Retry \
                     shortly.",
                    self.max
                ),
                retry_after: Some(1),
            });
        }
        tokio::time::timeout(self.timeout, ready)
            .await
            .map_err(|_| ChatError::Unavailable {
                message: format!(
                    "Waited {} s for {what} without getting it; the gateway is overloaded.",
                    self.timeout.as_secs()
                ),
            })
    }
}

pub struct Limiter {
    max: usize,
    permits: Arc<Semaphore>,
    queue: Arc<WaitQueue>,
    /// The queued requests that wait for a slot (not for a session's turn).
    for_slots: Arc<AtomicUsize>,
    idle: Mutex<Vec<Weak<dyn Idle>>>,
}

impl Limiter {
    pub fn new(cfg: LimitConfig) -> Self {
        let max = cfg.max_processes.max(1);
        Limiter {
            max,
            permits: Arc::new(Semaphore::new(max)),
            queue: Arc::new(WaitQueue::new(cfg.max_queue, cfg.queue_timeout)),
            for_slots: Arc::new(AtomicUsize::new(0)),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The queue requests wait in, for other waits that must count as queued work.
    pub fn queue(&self) -> Arc<WaitQueue> {
        self.queue.clone()
    }

    /// The most processes at once (`--max-processes`).
    pub fn capacity(&self) -> usize {
        self.max
    }

    /// Live processes counted by the budget (serving, warm and live-session alike).
    pub fn in_use(&self) -> usize {
        self.max - self.permits.available_permits()
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Lets `holder`'s idle processes be evicted when a request needs their slots.
    pub fn watch_idle(&self, holder: Weak<dyn Idle>) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.retain(|h| h.strong_count() > 0);
            idle.push(holder);
        }
    }

    /// A slot for a process nobody asked for yet (a pool refill): only when one is free and no
    /// request waits for one, so idle processes never take a place a request is waiting for.
    pub fn try_idle_slot(&self) -> Option<Slot> {
        if self.wanted() {
            return None;
        }
        self.permits.clone().try_acquire_owned().ok().map(Slot)
    }

    /// Whether a request waits for a slot, so a process that turned idle should give its slot
    /// back instead of being kept. A turn waiting for its session does not count: it is the one
    /// most likely to continue in the process being kept.
    pub fn wanted(&self) -> bool {
        self.for_slots.load(Ordering::SeqCst) > 0
    }

    /// Whether `n` choices can ever run at once.
    pub fn fits(&self, n: u32) -> Result<(), ChatError> {
        let max = self.max;
        if n as usize > max {
            return Err(ChatError::invalid(
                format!(
                    "`n` is {n}, but this gateway runs at most {max} claude processes at once."
                ),
                "n",
            ));
        }
        Ok(())
    }

    /// `n` slots (one per choice): free ones, else evicted idle ones (least recently used
    /// first), else after waiting in the queue.
    pub async fn acquire(&self, n: u32) -> Result<Vec<Slot>, ChatError> {
        self.fits(n)?;
        let wanted = n as usize;
        let mut slots = Vec::with_capacity(wanted);
        while slots.len() < wanted {
            match self.permits.clone().try_acquire_owned() {
                Ok(permit) => slots.push(Slot(permit)),
                Err(_) => match self.evict_lru() {
                    Some(slot) => slots.push(slot),
                    None => break,
                },
            }
        }
        if slots.len() == wanted {
            return Ok(slots);
        }
        // Not enough even after evicting: give back the partial set and wait for all `n` at
        // once, so two requests of several choices cannot each hold half of what they need.
        drop(slots);
        self.for_slots.fetch_add(1, Ordering::SeqCst);
        let _for_slots = Waiting(self.for_slots.clone());
        let permits = self.permits.clone();
        let permit = self
            .queue
            .wait("a free claude process", permits.acquire_many_owned(n))
            .await?
            .map_err(|_| ChatError::internal("the process budget was closed"))?;
        Ok(split(permit))
    }

    /// The slot of the least recently used idle process across all holders.
    fn evict_lru(&self) -> Option<Slot> {
        let holders: Vec<Arc<dyn Idle>> = self
            .idle
            .lock()
            .ok()?
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        // `oldest` then `evict_oldest` is not atomic: another request may take that process
        // first, so look again a few times.
        for _ in 0..4 {
            let victim = holders
                .iter()
                .filter_map(|h| h.oldest().map(|t| (t, h)))
                .min_by_key(|(t, _)| *t)?;
            if let Some(slot) = victim.1.evict_oldest() {
                return Some(slot);
            }
        }
        None
    }
}

/// One slot per permit of `permit`.
fn split(mut permit: OwnedSemaphorePermit) -> Vec<Slot> {
    let mut slots = Vec::with_capacity(permit.num_permits());
    while permit.num_permits() > 1 {
        match permit.split(1) {
            Some(one) => slots.push(Slot(one)),
            None => break,
        }
    }
    slots.push(Slot(permit));
    slots
}

#[cfg(test)]
#[path = "limit_tests.rs"]
mod tests;
