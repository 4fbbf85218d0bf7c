//! The warm pool: `claude` processes started ahead of time and left waiting on stdin, so a
//! request skips the CLI's ~200 ms startup (PROTOCOL.md §12, §16.4). A process is configured
//! only when a request takes it, through the same `initialize` request a cold run sends, and the
//! model is fixed at spawn (`--model`; `set_model` would cost an extra API call), so there is one
//! pool per spawn spec (model, auth mode, effort). Taken processes are replaced in the
//! background; idle ones are recycled after `max_idle`; dead ones are dropped. Dropping the pool
//! kills every idle process.
//!
//! The pool's depth follows demand: per spec, the requests that came to it over the last
//! `DEMAND_WINDOW` times the measured boot time (how many arrive while one process boots),
//! twice over for headroom, between `min_per_spec` and `max_per_spec`; when demand falls the
//! extra processes go. Refills take their turn in the start line (`starts.rs`) only when it is
//! free, so they never delay a request's own start.
//!
//! Warm processes count in the process budget: a refill starts one only when a slot is free and
//! no request waits, a taken process brings its slot to the request, and a request that finds
//! the budget full may evict the oldest warm process (`Idle`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::argv::SpawnSpec;
use super::launch::Launcher;
use super::limit::{Idle, Limiter, Slot};
use super::process::ClaudeProcess;
use super::starts::Starts;

#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The spawn specs kept warm (one per model the operator expects).
    pub specs: Vec<SpawnSpec>,
    /// Depth of each spec's pool with no demand, and at most.
    pub min_per_spec: usize,
    pub max_per_spec: usize,
    /// Idle processes older than this are replaced.
    pub max_idle: Duration,
}

/// How far back the pool counts the requests that came to it.
const DEMAND_WINDOW: Duration = Duration::from_secs(30);

/// The depth that covers `arrivals` requests over `DEMAND_WINDOW` when a process takes `boot`
/// to start: those arriving during one boot, twice over, within the bounds.
fn depth(arrivals: usize, boot: Duration, min: usize, max: usize) -> usize {
    let per_boot = arrivals as f64 * boot.as_secs_f64() / DEMAND_WINDOW.as_secs_f64();
    ((per_boot * 2.0).ceil() as usize).clamp(min, max.max(min))
}

/// How long a refill waits after a take.
const REFILL_DELAY: Duration = Duration::from_millis(300);

struct Warm {
    process: ClaudeProcess,
    born: Instant,
    /// After the process: released once it is killed.
    slot: Slot,
}

struct Shared {
    cfg: PoolConfig,
    launcher: Launcher,
    budget: Arc<Limiter>,
    starts: Arc<Starts>,
    idle: Mutex<HashMap<SpawnSpec, VecDeque<Warm>>>,
    /// When requests came to the pool, per spec, within `DEMAND_WINDOW`.
    demand: Mutex<HashMap<SpawnSpec, VecDeque<Instant>>>,
    wake: Notify,
}

impl Shared {
    /// How deep `spec`'s pool should be now.
    fn target(&self, spec: &SpawnSpec) -> usize {
        let arrivals = self.demand.lock().map_or(0, |mut demand| {
            let seen = demand.entry(spec.clone()).or_default();
            while seen.front().is_some_and(|t| t.elapsed() > DEMAND_WINDOW) {
                seen.pop_front();
            }
            seen.len()
        });
        depth(
            arrivals,
            self.starts.boot_time(),
            self.cfg.min_per_spec,
            self.cfg.max_per_spec,
        )
    }

    fn arrived(&self, spec: &SpawnSpec) {
        if let Ok(mut demand) = self.demand.lock() {
            let seen = demand.entry(spec.clone()).or_default();
            seen.push_back(Instant::now());
            // Far more than any depth needs; bounds the memory.
            if seen.len() > 10_000 {
                seen.pop_front();
            }
        }
    }
}

pub struct Pool {
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl Pool {
    /// Starts the pool and its refill task (on the current tokio runtime); its processes count
    /// in `budget`.
    pub fn start(
        cfg: PoolConfig,
        launcher: Launcher,
        budget: Arc<Limiter>,
        starts: Arc<Starts>,
    ) -> Pool {
        let shared = Arc::new(Shared {
            cfg,
            launcher,
            budget: budget.clone(),
            starts,
            idle: Mutex::new(HashMap::new()),
            demand: Mutex::new(HashMap::new()),
            wake: Notify::new(),
        });
        let holder: Arc<dyn Idle> = shared.clone();
        budget.watch_idle(Arc::downgrade(&holder));
        let stop = CancellationToken::new();
        tokio::spawn(refill(shared.clone(), stop.clone()));
        Pool { shared, stop }
    }

    /// A warm process for `spec` with its slot, if one is ready; its replacement is started in
    /// the background.
    pub fn take(&self, spec: &SpawnSpec) -> Option<(ClaudeProcess, Slot)> {
        if !self.shared.cfg.specs.contains(spec) {
            return None;
        }
        self.shared.arrived(spec);
        let taken = {
            let mut idle = self.shared.idle.lock().ok()?;
            let queue = idle.get_mut(spec)?;
            let mut found = None;
            while let Some(mut warm) = queue.pop_back() {
                if warm.process.is_alive() && warm.born.elapsed() < self.shared.cfg.max_idle {
                    found = Some((warm.process, warm.slot));
                    break;
                }
            }
            found
        };
        self.shared.wake.notify_one();
        taken
    }

    /// Idle processes per spec, for metrics and tests.
    pub fn idle_count(&self) -> usize {
        self.shared
            .idle
            .lock()
            .map(|idle| idle.values().map(VecDeque::len).sum())
            .unwrap_or(0)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Ok(mut idle) = self.shared.idle.lock() {
            // Dropping the processes kills their process groups.
            idle.clear();
        }
    }
}

impl Idle for Shared {
    fn oldest(&self) -> Option<Instant> {
        let idle = self.idle.lock().ok()?;
        idle.values().filter_map(|q| q.back()).map(|w| w.born).min()
    }

    fn evict_oldest(&self) -> Option<Slot> {
        let mut idle = self.idle.lock().ok()?;
        let queue = idle
            .values_mut()
            .filter(|q| !q.is_empty())
            .min_by_key(|q| q.back().map(|w| w.born))?;
        let Warm { process, slot, .. } = queue.pop_back()?;
        tracing::debug!(pid = process.pid(), "evicted a warm process for a request");
        drop(process);
        Some(slot)
    }
}

/// Keeps every spec as deep as its demand asks: one spawn at a time, in the start line when it
/// is free (spawning is CPU-heavy for the CLI), woken by `take` or every second to recycle old
/// or dead processes and to shed those demand no longer asks for.
async fn refill(shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        let mut spawned = false;
        let mut failed = false;
        for spec in &shared.cfg.specs {
            let target = shared.target(spec);
            let missing = {
                let Ok(mut idle) = shared.idle.lock() else {
                    return;
                };
                let queue = idle.entry(spec.clone()).or_default();
                queue
                    .retain_mut(|w| w.process.is_alive() && w.born.elapsed() < shared.cfg.max_idle);
                // Beyond the target, the oldest go (dropping kills them).
                queue.truncate(target);
                target.saturating_sub(queue.len())
            };
            if missing == 0 || stop.is_cancelled() {
                continue;
            }
            // A full budget (or a waiting request) skips the refill until the next round, and
            // so does a start line with no free place.
            let Some(slot) = shared.budget.try_idle_slot() else {
                continue;
            };
            let Some(starting) = shared.starts.try_acquire() else {
                continue;
            };
            match ClaudeProcess::spawn(&shared.launcher.launch(spec)) {
                Ok(process) => {
                    // It boots with nobody reading it: its place in the line is held for as
                    // long as boots take.
                    let boot = shared.starts.boot_time();
                    tokio::spawn(async move {
                        tokio::time::sleep(boot).await;
                        drop(starting);
                    });
                    tracing::debug!(model = %spec.model, pid = process.pid(), "warm process ready");
                    if let Ok(mut idle) = shared.idle.lock() {
                        idle.entry(spec.clone()).or_default().push_front(Warm {
                            process,
                            born: Instant::now(),
                            slot,
                        });
                    }
                    spawned = true;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot start a warm claude process");
                    failed = true;
                }
            }
        }
        if spawned && !failed {
            continue;
        }
        // After a failed spawn (CLI missing?), retry slowly instead of in a loop.
        let pause = Duration::from_secs(if failed { 15 } else { 1 });
        tokio::select! {
            () = stop.cancelled() => return,
            () = shared.wake.notified(), if !failed => {
                // A process was just taken: let it have the CPU for its first tokens before a
                // replacement's startup (~0.25 s of CPU) competes with it.
                tokio::time::sleep(REFILL_DELAY).await;
            }
            () = tokio::time::sleep(pause) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_depth_follows_arrivals_times_boot_time_within_bounds() {
        let boot = Duration::from_millis(750);
        // No demand: the floor.
        assert_eq!(depth(0, boot, 1, 8), 1);
        assert_eq!(depth(0, boot, 0, 8), 0);
        // One request a second, 0.75 s boots: 0.75 arriving per boot, twice over → 2.
        assert_eq!(depth(30, boot, 1, 8), 2);
        // Ten a second: 7.5 per boot → 15, capped.
        assert_eq!(depth(300, boot, 1, 8), 8);
        // A ceiling below the floor is the floor.
        assert_eq!(depth(300, boot, 2, 1), 2);
    }
}
