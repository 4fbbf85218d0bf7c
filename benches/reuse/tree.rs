//! A process and its descendants as `/proc` shows them: their CPU time (the root's own plus
//! what it has reaped, plus every live descendant's), their resident memory, and a sampler
//! thread that records, every ~50 ms, the peak resident memory of the tree and every direct
//! child it ever saw (the `claude` processes a gateway spawned). Linux only; `/proc/<pid>/stat`
//! counts CPU in USER_HZ ticks (100 per second) and resident memory in 4 KiB pages on x86-64.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

const TICKS_PER_SEC: f64 = 100.0;
const PAGE_KB: u64 = 4;

/// What `/proc/<pid>/stat` says of one process.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    pub pid: u32,
    pub ppid: u32,
    /// utime + stime, ticks.
    pub own: u64,
    /// cutime + cstime (reaped children), ticks.
    pub reaped: u64,
    pub rss_kb: u64,
}

/// Parses one `/proc/<pid>/stat`; `None` when the process is gone.
pub fn stat(pid: u32) -> Option<Stat> {
    parse_stat(
        pid,
        &std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?,
    )
}

/// Parses the text of a `/proc/<pid>/stat`.
pub fn parse_stat(pid: u32, text: &str) -> Option<Stat> {
    // Fields after the parenthesised command, numbered from 3 (state).
    let rest: Vec<&str> = text
        .get(text.rfind(')')? + 2..)?
        .split_whitespace()
        .collect();
    let field = |n: usize| rest.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        pid,
        ppid: field(4)? as u32,
        own: field(14)? + field(15)?,
        reaped: field(16)? + field(17)?,
        rss_kb: field(24)? * PAGE_KB,
    })
}

/// `root` and its live descendants.
pub fn tree(root: u32) -> Vec<Stat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let all: Vec<Stat> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(stat)
        .collect();
    let mut children: HashMap<u32, Vec<Stat>> = HashMap::new();
    let mut out = Vec::new();
    for s in all {
        if s.pid == root {
            out.push(s);
        } else {
            children.entry(s.ppid).or_default().push(s);
        }
    }
    let mut i = 0;
    while i < out.len() {
        out.extend(children.remove(&out[i].pid).unwrap_or_default());
        i += 1;
    }
    out
}

/// CPU-seconds the tree has used so far: every member's own time and what each has reaped.
pub fn cpu_secs(root: u32) -> f64 {
    secs(tree(root).iter().map(|s| s.own + s.reaped).sum())
}

/// Ticks as seconds.
pub fn secs(ticks: u64) -> f64 {
    ticks as f64 / TICKS_PER_SEC
}

/// Waits until the tree uses less than 5% of a core over two half seconds in a row (warm
/// pools filled, the CLI's model discovery done, parked processes idle), at most `limit`.
pub async fn settle(root: u32, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    let (mut before, mut quiet) = (cpu_secs(root), 0);
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = cpu_secs(root);
        quiet = if now - before < 0.025 { quiet + 1 } else { 0 };
        if quiet == 2 {
            return;
        }
        before = now;
    }
    eprintln!("process tree of {root} still busy after {limit:?}");
}

/// What a sampler saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Peak resident memory of the whole tree, kB.
    pub peak_rss_kb: u64,
    /// Most direct children alive at once.
    pub peak_children: usize,
    /// Every direct child seen.
    pub children: HashSet<u32>,
}

/// A thread reading the tree every `every` until stopped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Seen>,
}

impl Sampler {
    pub fn start(root: u32, every: Duration) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = Seen::default();
            loop {
                let last = flag.load(Ordering::Relaxed);
                let members = tree(root);
                let rss = members.iter().map(|s| s.rss_kb).sum();
                seen.peak_rss_kb = seen.peak_rss_kb.max(rss);
                let children: Vec<u32> = members
                    .iter()
                    .filter(|s| s.ppid == root)
                    .map(|s| s.pid)
                    .collect();
                seen.peak_children = seen.peak_children.max(children.len());
                seen.children.extend(children);
                if last {
                    return seen;
                }
                std::thread::sleep(every);
            }
        });
        Sampler { stop, thread }
    }

    /// Takes one last sample and returns everything seen.
    pub fn stop(self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("sampler thread")
    }
}
