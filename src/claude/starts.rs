//! The start line: how many `claude` processes may boot at once. A cold start costs the CLI
//! ~0.7 CPU-seconds before it reads its input; sixty of them started together on two cores all
//! finish late (measured: first byte after 34 s at the median), while started a few at a time,
//! first come first served, each is ready in about its own boot time and the burst is served at
//! the machine's real rate — by the processes that have booted and, as they finish their turns,
//! by those recycled (`parked.rs`).
//!
//! A `Starting` permit is held from the spawn until the process's first line on stdout (it has
//! booted); the semaphore is fair, so requests start in arrival order. The boot times seen are
//! averaged, for the warm pool's refills (which have no first line to wait for) and its sizing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Boot time assumed before any was measured (PROTOCOL.md §12: 0.7–0.9 s on 2 cores).
const FIRST_GUESS: Duration = Duration::from_millis(800);

pub struct Starts {
    /// `None`: unlimited (`--max-starting 0`).
    permits: Option<Arc<Semaphore>>,
    /// Exponentially weighted average of measured boot times, in microseconds.
    boot_us: AtomicU64,
}

/// A place in the start line, held while one process boots.
pub struct Starting {
    _permit: Option<OwnedSemaphorePermit>,
    since: Instant,
    starts: Arc<Starts>,
}

impl Starting {
    /// The process printed its first line: it has booted, the next may start.
    pub fn booted(self) {
        self.starts.record(self.since.elapsed());
    }
}

impl Starts {
    /// `max` processes booting at once (0: no limit).
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Starts {
            permits: (max > 0).then(|| Arc::new(Semaphore::new(max))),
            boot_us: AtomicU64::new(FIRST_GUESS.as_micros() as u64),
        })
    }

    /// Waits for a place in the line (first come, first served).
    pub async fn acquire(self: &Arc<Self>) -> Starting {
        let permit = match &self.permits {
            Some(permits) => permits.clone().acquire_owned().await.ok(),
            None => None,
        };
        Starting {
            _permit: permit,
            since: Instant::now(),
            starts: self.clone(),
        }
    }

    /// A place only if one is free right now (the warm pool's refills never queue).
    pub fn try_acquire(self: &Arc<Self>) -> Option<Starting> {
        let permit = match &self.permits {
            Some(permits) => Some(permits.clone().try_acquire_owned().ok()?),
            None => None,
        };
        Some(Starting {
            _permit: permit,
            since: Instant::now(),
            starts: self.clone(),
        })
    }

    /// The average boot time seen so far.
    pub fn boot_time(&self) -> Duration {
        Duration::from_micros(self.boot_us.load(Ordering::Relaxed))
    }

    fn record(&self, took: Duration) {
        let took = took.as_micros().min(u128::from(u32::MAX)) as u64;
        let _ = self
            .boot_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |avg| {
                Some((avg * 7 + took) / 8)
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn starts_wait_in_line_and_boot_times_are_averaged() {
        let starts = Starts::new(1);
        let first = starts.acquire().await;
        assert!(starts.try_acquire().is_none());
        let waiting = tokio::spawn({
            let starts = starts.clone();
            async move { starts.acquire().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        first.booted();
        let second = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
        assert!(starts.boot_time() < FIRST_GUESS);
        drop(second);
        assert!(Starts::new(0).try_acquire().is_some());
    }
}
