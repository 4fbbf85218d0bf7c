//! What the tests see of processes through /proc: a process's state and parent, whether it is
//! alive or already dying, a gateway's live children and its RSS, and a `Sampler` that records
//! the peak number of a gateway's live children every few ms while a test runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// `/proc/<pid>/stat` fields after the command name: state, ppid, pgrp, session, tty, tpgid,
/// flags, …
pub fn proc_stat(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

pub fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .collect()
}

/// Not a zombie (a process gone but not yet reaped).
pub fn alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|f| f[0] != "Z" && f[0] != "X")
}

/// Already on its way out: in the kernel's exit path (PF_EXITING) or with a SIGKILL pending.
pub fn dying(pid: u32) -> bool {
    const PF_EXITING: u64 = 0x4;
    const SIGKILL_BIT: u64 = 1 << (9 - 1);
    let exiting = proc_stat(pid)
        .and_then(|f| f.get(6)?.parse::<u64>().ok())
        .is_some_and(|flags| flags & PF_EXITING != 0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let killed = status
        .lines()
        .filter(|l| l.starts_with("SigPnd:") || l.starts_with("ShdPnd:"))
        .filter_map(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
        .any(|mask| mask & SIGKILL_BIT != 0);
    exiting || killed
}

/// Live children of `parent` (for a gateway: its CLI processes).
pub fn live_children(parent: u32) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|pid| {
            alive(*pid) && proc_stat(*pid).is_some_and(|f| f[1].parse().ok() == Some(parent))
        })
        .collect()
}

pub fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Samples the gateway's live CLI children every few ms until stopped: the peak of all of
/// them, and the peak of those not already killed (see `dying`).
pub struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(usize, usize, usize)>,
}

impl Sampler {
    pub fn start(gateway: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::task::spawn_blocking(move || {
            let (mut peak_all, mut peak_running, mut samples) = (0, 0, 0);
            while !flag.load(Ordering::Relaxed) {
                let children = live_children(gateway);
                // Checked again after the whole scan: a child seen early may have been killed
                // and reaped (its place taken by one seen later) before this look; a pid that
                // is gone is not running.
                let running = children
                    .iter()
                    .filter(|p| alive(**p) && !dying(**p))
                    .count();
                peak_all = peak_all.max(children.len());
                peak_running = peak_running.max(running);
                samples += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            (peak_all, peak_running, samples)
        });
        Sampler { stop, task }
    }

    /// (peak of all live children, peak of those not dying, samples taken)
    pub async fn finish(self) -> (usize, usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// The limits of the burst tests: 4 processes, a queue of 8, 2 s of waiting, runs in `work`.
pub fn burst_limits(work: &std::path::Path) -> Vec<String> {
    [
        "--work-dir",
        work.to_str().unwrap(),
        "--max-processes",
        "4",
        "--max-queue",
        "8",
        "--queue-timeout-secs",
        "2",
        // Processes are still handed from one request to the next waiting one, but none stays
        // parked afterwards: what is left after the burst must go.
        "--reuse-idle-secs",
        "0",
    ]
    .map(String::from)
    .to_vec()
}
