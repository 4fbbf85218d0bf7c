//! The benchmark's Markdown: one table of every measure next to its baseline, the ratio and
//! the target (met or missed), then how each part was measured and anything that failed.

use std::time::Duration;

use crate::common::{median, ms, quantile, verdict};
use crate::{
    AgentResult, BurstResult, IN_FLIGHT, Mode, ROUNDS, SAMPLE_EVERY, Saturation, SideResult,
};
use crate::{BURST, SEQUENTIAL, WINDOW};

/// Reuse off, no warm pool, no start line: every request spawns at once.
pub const BASELINE: &[&str] = &[
    "--reuse-processes=false",
    "--pool-size",
    "0",
    "--max-starting",
    "0",
];
/// Replaying, as before reuse: reuse off, the warm pool as by default.
pub const REPLAY: &[&str] = &["--reuse-processes=false"];
/// Cold spawns: reuse and the pool off.
pub const COLD: &[&str] = &["--reuse-processes=false", "--pool-size", "0"];
/// Every gateway's limits, so that nothing is refused.
pub const LIMITS: &[&str] = &[
    "--max-processes",
    "64",
    "--max-queue",
    "200",
    "--queue-timeout-secs",
    "300",
];

fn ratio(a: f64, b: f64) -> f64 {
    a / b
}

/// What ran; a part left out by `REUSE_BENCH_ONLY` is `None`.
#[derive(Default)]
pub struct Results {
    /// CPU-seconds of one bare cold CLI run.
    pub cold_cpu: Option<f64>,
    /// (reuse, baseline)
    pub burst: Option<(BurstResult, BurstResult)>,
    /// (reuse, cold)
    pub sequential: Option<(SideResult, SideResult)>,
    /// The tool loop, then the chat loop.
    pub agent: Vec<AgentResult>,
    /// (reuse, baseline)
    pub saturation: Option<(Saturation, Saturation)>,
    pub cores: f64,
    pub load: String,
    pub took: Duration,
    pub version: String,
}

/// The table's rows and the notes under it.
#[derive(Default)]
struct Page {
    rows: String,
    notes: String,
}

impl Page {
    fn row(&mut self, name: &str, cells: [String; 4]) {
        let [a, b, ratio, target] = cells;
        self.rows
            .push_str(&format!("| {name} | {a} | {b} | {ratio} | {target} |\n"));
    }

    fn note(&mut self, text: String) {
        self.notes.push_str(&format!("- {text}\n"));
    }

    /// A ratio row: reuse, baseline, their ratio, and the target when there is one.
    fn compare(&mut self, name: &str, (a, b): (f64, f64), digits: usize, target: Option<f64>) {
        let x = ratio(a, b);
        let target = target.map_or(String::new(), |t| format!("≤ {t}× {}", verdict(x <= t)));
        let num = |v: f64| match v.is_nan() {
            true => "n/a".to_string(),
            false => format!("{v:.digits$}"),
        };
        let x = match x.is_nan() {
            true => "n/a".to_string(),
            false => format!("{x:.2}×"),
        };
        let cells = [num(a), num(b), x, target];
        self.row(name, cells);
    }
}

pub fn markdown(r: &Results) -> String {
    let mut page = Page::default();
    if let Some((reuse, base)) = &r.burst {
        burst(&mut page, reuse, base);
    }
    if let Some((reuse, cold)) = &r.sequential {
        sequential(&mut page, reuse, cold);
    }
    for agent in &r.agent {
        agent_loop(&mut page, agent);
    }
    floor(&mut page, r);
    format!(
        "Real claude CLI {}, fake Anthropic API, {} cores (load average before: {}). \
         Baseline = the same binary with `{}`; replay = `{}`; cold = `{}`; every gateway \
         `{}`.\n\n\
         | measure | reuse | baseline | ratio | target |\n|---|---|---|---|---|\n{}\n{}\
         - The whole benchmark took {} s.\n",
        r.version,
        r.cores,
        r.load,
        BASELINE.join(" "),
        REPLAY.join(" "),
        COLD.join(" "),
        LIMITS.join(" "),
        page.rows,
        page.notes,
        r.took.as_secs()
    )
}

fn burst(page: &mut Page, reuse: &BurstResult, base: &BurstResult) {
    let q = |b: &BurstResult, p: f64| {
        if b.first_tokens.is_empty() {
            return f64::NAN;
        }
        quantile(&b.first_tokens, p).as_secs_f64()
    };
    let name = format!("burst of {BURST} streams: first token p50 (s)");
    page.compare(&name, (q(reuse, 0.5), q(base, 0.5)), 2, Some(0.3));
    page.compare(
        "burst: first token p99 (s)",
        (q(reuse, 0.99), q(base, 0.99)),
        2,
        None,
    );
    let wall = (reuse.wall.as_secs_f64(), base.wall.as_secs_f64());
    page.compare("burst: wall time (s)", wall, 2, Some(0.6));
    let mem = |b: &BurstResult| b.seen.peak_rss_kb as f64 / 1024.0;
    page.compare(
        "burst: peak RSS, gateway + children (MB)",
        (mem(reuse), mem(base)),
        0,
        None,
    );
    let procs = |b: &BurstResult| {
        format!(
            "{} ({} at once)",
            b.seen.children.len(),
            b.seen.peak_children
        )
    };
    let cells = [procs(reuse), procs(base), String::new(), String::new()];
    page.row("burst: claude processes seen (most alive at once)", cells);
    let failed = |b: &BurstResult| b.failed.len().to_string();
    let cells = [failed(reuse), failed(base), String::new(), "0".into()];
    page.row("burst: answers not 200 or not the text sent", cells);
    page.note(format!(
        "Burst: {BURST} concurrent streams, one system prompt, one tenant, ~3 s each at the \
         API (30 words, 100 ms apart), baseline first; first token = first content delta; peak \
         RSS and processes sampled from /proc every {} ms.",
        SAMPLE_EVERY.as_millis()
    ));
    for (name, b) in [("reuse", reuse), ("baseline", base)] {
        if !b.failed.is_empty() {
            page.note(format!("Burst failures ({name}): {}", b.failed.join("; ")));
        }
    }
}

fn sequential(page: &mut Page, reuse: &SideResult, cold: &SideResult) {
    let cells = [
        reuse.spawned.to_string(),
        cold.spawned.to_string(),
        String::new(),
        format!("≤ 2 {}", verdict(reuse.spawned <= 2)),
    ];
    page.row(
        &format!("{SEQUENTIAL} sequential requests: claude processes spawned"),
        cells,
    );
    page.compare(
        "sequential: CPU per request, children included (CPU-s)",
        (reuse.cpu_per_request, cold.cpu_per_request),
        3,
        Some(0.15),
    );
    page.compare(
        "sequential: CPU from one request to the next, median (CPU-s)",
        (reuse.cpu_per_turn, cold.cpu_per_turn),
        3,
        None,
    );
    let latency = |s: &SideResult| s.latency.as_secs_f64() * 1000.0;
    page.compare(
        "sequential: latency p50 (ms)",
        (latency(reuse), latency(cold)),
        0,
        None,
    );
    page.note(
        "Sequential: reuse (defaults) and cold interleaved request by request, each gateway \
         settled (its tree under 5% of a core) first; CPU = utime + stime of the gateway and \
         every descendant, reaped ones included, from before the first request until the tree \
         is idle after the last; processes spawned = claude pids first seen during the run."
            .into(),
    );
    for (name, s) in [("reuse", reuse), ("cold", cold)] {
        if !s.failed.is_empty() {
            page.note(format!(
                "Sequential failures ({name}): {}",
                s.failed.join("; ")
            ));
        }
    }
}

fn agent_loop(page: &mut Page, a: &AgentResult) {
    let (name, target) = match a.mode {
        Mode::Tools => (
            format!("agent loop, {ROUNDS} tool round trips (SDK)"),
            Some(0.2),
        ),
        Mode::Chat => (
            format!("chat, {ROUNDS} turns resending the history (SDK)"),
            None,
        ),
    };
    let p50 = |d: &[Duration]| match d {
        [] => f64::NAN,
        d => median(d).as_secs_f64() * 1000.0,
    };
    page.compare(
        &format!("{name}: step latency p50 (ms)"),
        (p50(&a.reuse), p50(&a.replay)),
        0,
        target,
    );
    let total = |d: &[Duration]| d.iter().sum::<Duration>().as_secs_f64() * 1000.0;
    page.compare(
        &format!("{name}: all steps (ms)"),
        (total(&a.reuse), total(&a.replay)),
        0,
        None,
    );
    let all = a.identical == ROUNDS && a.compared == ROUNDS;
    let cells = [
        format!("{} of {}", a.identical, a.compared),
        String::new(),
        String::new(),
        format!("all {ROUNDS} {}", verdict(all)),
    ];
    page.row(
        &format!("{name}: API request bodies identical to the replay's"),
        cells,
    );
    let control = match a.control {
        Some(true) => "identical",
        Some(false) => "**different**",
        None => "missing",
    };
    let list = |d: &[Duration]| d.iter().map(|d| ms(*d, 0)).collect::<Vec<_>>().join(", ");
    page.note(format!(
        "{name}: reuse (defaults) vs replay, the steps interleaved, each path on its own \
         fake API; bodies compared as JSON text without `metadata.user_id` (the first \
         requests, fresh processes on both paths, as a control: {control}). Steps (ms), reuse: \
         {}; replay: {}.",
        list(&a.reuse),
        list(&a.replay)
    ));
    for error in &a.errors {
        page.note(format!(
            "**{name} failed**, {error} (steps done: {} with reuse, {} replaying; the \
             gateways ran with `{}`).",
            a.reuse.len(),
            a.replay.len(),
            crate::agent::AGENT_IDLE_TIMEOUT.join(" ")
        ));
    }
    for d in &a.differences {
        page.note(format!("{name}, body difference: {d}"));
    }
}

fn floor(page: &mut Page, r: &Results) {
    let per_turn = r.sequential.as_ref().map(|(reuse, _)| reuse.cpu_per_turn);
    if let Some(cold) = r.cold_cpu {
        let cells = [
            String::new(),
            format!("{cold:.2}"),
            String::new(),
            String::new(),
        ];
        page.row("one cold CLI run, bare `claude -p` (CPU-s)", cells);
    }
    let Some((reuse, base)) = &r.saturation else {
        return;
    };
    page.compare(
        &format!("saturation, {IN_FLIGHT} in flight, instant API: requests/s"),
        (reuse.per_sec, base.per_sec),
        2,
        None,
    );
    page.compare(
        "saturation: CPU per request (CPU-s)",
        (reuse.cpu_per_request, base.cpu_per_request),
        3,
        None,
    );
    let share = |s: &Saturation, cpu: Option<f64>| match cpu {
        Some(cpu) => format!(
            "{:.0}% of {:.1}/s",
            100.0 * s.per_sec * cpu / r.cores,
            r.cores / cpu
        ),
        None => "n/a".into(),
    };
    let cells = [
        share(reuse, per_turn),
        share(base, r.cold_cpu),
        String::new(),
        String::new(),
    ];
    page.row("saturation: share of what the cores allow", cells);
    page.note(format!(
        "Floor: what the cores allow = {} cores / CPU-s per request: a cold CLI run for the \
         baseline, a warm process's turn for reuse (the sequential reuse run's median CPU from \
         one request to the next, gateway and children). \
         Saturation: {IN_FLIGHT} clients asking one after another for {} s after one warm-up \
         round; requests/s = every request sent in that window over the time until the last \
         one ended ({} and {} done within the window, {} and {} failed).",
        r.cores,
        WINDOW.as_secs(),
        reuse.done,
        base.done,
        reuse.failed,
        base.failed
    ));
}
