//! The cap on live `claude` processes serving requests, with a bounded wait queue. Each choice
//! of a completion holds one permit for as long as its process lives (the permit travels with
//! the run, so it is released by drop, whatever way the request ends). A full queue is a 429
//! with Retry-After; a request that waited too long is a 503.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::chat::ChatError;

#[derive(Debug, Clone, Copy)]
pub struct LimitConfig {
    pub max_processes: usize,
    pub max_queue: usize,
    pub queue_timeout: Duration,
}

pub struct Limiter {
    cfg: LimitConfig,
    permits: Arc<Semaphore>,
    queued: Arc<AtomicUsize>,
}

/// Counts a waiting request for as long as it waits (also when its future is dropped).
struct Queued(Arc<AtomicUsize>);

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Limiter {
    pub fn new(cfg: LimitConfig) -> Self {
        Limiter {
            permits: Arc::new(Semaphore::new(cfg.max_processes.max(1))),
            queued: Arc::new(AtomicUsize::new(0)),
            cfg,
        }
    }

    /// Processes serving requests right now.
    pub fn in_use(&self) -> usize {
        self.cfg.max_processes.max(1) - self.permits.available_permits()
    }

    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// `n` permits (one per choice), at once or after waiting in the queue.
    pub async fn acquire(&self, n: u32) -> Result<OwnedSemaphorePermit, ChatError> {
        let max = self.cfg.max_processes.max(1);
        if n as usize > max {
            return Err(ChatError::invalid(
                format!(
                    "`n` is {n}, but this gateway runs at most {max} claude processes at once."
                ),
                "n",
            ));
        }
        if let Ok(permit) = self.permits.clone().try_acquire_many_owned(n) {
            return Ok(permit);
        }
        let position = self.queued.fetch_add(1, Ordering::SeqCst);
        let _queued = Queued(self.queued.clone());
        if position >= self.cfg.max_queue {
            return Err(ChatError::RateLimited {
                message: format!(
                    "The gateway is at capacity: {max} claude processes are busy and {} requests \
                     are waiting. Retry shortly.",
                    self.cfg.max_queue
                ),
                retry_after: Some(1),
            });
        }
        match tokio::time::timeout(
            self.cfg.queue_timeout,
            self.permits.clone().acquire_many_owned(n),
        )
        .await
        {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(ChatError::internal("the process limiter was closed")),
            Err(_) => Err(ChatError::Unavailable {
                message: format!(
                    "No claude process became free within {} s; the gateway is overloaded.",
                    self.cfg.queue_timeout.as_secs()
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(max_processes: usize, max_queue: usize, wait_ms: u64) -> Limiter {
        Limiter::new(LimitConfig {
            max_processes,
            max_queue,
            queue_timeout: Duration::from_millis(wait_ms),
        })
    }

    #[tokio::test]
    async fn full_queue_is_429_and_long_waits_are_503() {
        let l = Arc::new(limiter(1, 1, 200));
        let held = l.acquire(1).await.unwrap();
        assert_eq!(l.in_use(), 1);
        let waiter = {
            let l = l.clone();
            tokio::spawn(async move { l.acquire(1).await })
        };
        while l.queued() == 0 {
            tokio::task::yield_now().await;
        }
        let err = l.acquire(1).await.unwrap_err();
        assert!(matches!(
            err,
            ChatError::RateLimited {
                retry_after: Some(1),
                ..
            }
        ));
        let err = waiter.await.unwrap().unwrap_err();
        assert!(matches!(err, ChatError::Unavailable { .. }));
        drop(held);
        assert_eq!(l.in_use(), 0);
        assert_eq!(l.queued(), 0);
    }

    #[tokio::test]
    async fn a_waiter_gets_the_permit_when_it_is_released() {
        let l = Arc::new(limiter(2, 4, 5_000));
        let held = l.acquire(2).await.unwrap();
        let waiter = {
            let l = l.clone();
            tokio::spawn(async move { l.acquire(1).await.map(|_| ()) })
        };
        tokio::task::yield_now().await;
        drop(held);
        waiter.await.unwrap().unwrap();
        assert!(
            l.acquire(3).await.is_err(),
            "more than the cap can never fit"
        );
    }
}
