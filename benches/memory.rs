//! The gateway's own memory: resident set (`VmRSS` of `/proc/<pid>/status`, the gateway process
//! only; the `claude` children are separate processes, so excluded by construction) idle after
//! startup, after its first request, at the peak of 100 concurrent streams held open by a slow
//! fake CLI (one token every 100 ms for 3 s), and once they are done. `--pool-size 0`, and
//! `--max-processes` raised to 128 when the build has it, so all 100 run at once. Run with
//! `cargo bench --bench memory`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;

use common::{Gateway, mb, proc_status_kb, verdict};

const STREAMS: usize = 100;
const SLOW_PROMPT: &str = "Tell me slowly [[words:30]] [[delay_ms:100]]";
const TARGET_MB: f64 = 50.0;

/// One streamed completion, read to its end; returns how many content chunks came.
async fn stream(client: &reqwest::Client, url: &str, prompt: &str) -> usize {
    let body = json!({"model": "sonnet", "stream": true,
        "messages": [{"role": "user", "content": prompt}]});
    let response = client.post(url).json(&body).send().await.expect("request");
    assert!(response.status().is_success(), "{}", response.status());
    let mut text = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        text.extend_from_slice(&chunk.expect("chunk"));
    }
    let text = String::from_utf8_lossy(&text);
    assert!(text.contains("[DONE]"), "stream did not finish: {text}");
    text.matches("\"content\":\"w").count()
}

/// Peaks of the gateway's RSS and of its number of children, sampled every 20 ms while alive.
struct Sampler {
    running: Arc<AtomicBool>,
    peak_rss: Arc<AtomicU64>,
    peak_children: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let running = Arc::new(AtomicBool::new(true));
        let peak_rss = Arc::new(AtomicU64::new(0));
        let peak_children = Arc::new(AtomicUsize::new(0));
        let task = {
            let (running, peak_rss, peak_children) =
                (running.clone(), peak_rss.clone(), peak_children.clone());
            tokio::spawn(async move {
                while running.load(Ordering::SeqCst) {
                    peak_rss.fetch_max(proc_status_kb(pid, "VmRSS"), Ordering::SeqCst);
                    peak_children.fetch_max(common::child_count(pid), Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        Sampler {
            running,
            peak_rss,
            peak_children,
            task,
        }
    }

    /// (peak RSS in kB, most children at once).
    async fn stop(self) -> (u64, usize) {
        self.running.store(false, Ordering::SeqCst);
        self.task.await.expect("sampler");
        (
            self.peak_rss.load(Ordering::SeqCst),
            self.peak_children.load(Ordering::SeqCst),
        )
    }
}

/// `STREAMS` slow streams at once, all read to their end; how long they took.
async fn hold_streams(client: &reqwest::Client, url: &str) -> Duration {
    let start = Instant::now();
    let streams: Vec<_> = (0..STREAMS)
        .map(|_| {
            let (client, url) = (client.clone(), url.to_string());
            tokio::spawn(async move { stream(&client, &url, SLOW_PROMPT).await })
        })
        .collect();
    for s in streams {
        assert_eq!(s.await.expect("stream task"), 30, "every token arrives");
    }
    start.elapsed()
}

#[tokio::main]
async fn main() {
    let cli = common::instant_cli();
    let mut limits = common::max_processes_args(128);
    limits.extend(common::no_reuse_args());
    let args: Vec<&str> = ["--claude-bin", cli.to_str().expect("utf-8 path")]
        .into_iter()
        .chain(["--pool-size", "0"])
        .chain(limits.iter().map(String::as_str))
        .collect();
    let gw = Gateway::start(&args, &[("ANTHROPIC_API_KEY", "sk-bench")]).await;
    let pid = gw.pid();
    let client = reqwest::Client::new();

    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = proc_status_kb(pid, "VmRSS");
    stream(&client, &gw.chat_url(), "Hello").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after_first = proc_status_kb(pid, "VmRSS");
    let sampler = Sampler::start(pid);
    let held = hold_streams(&client, &gw.chat_url()).await;
    let (peak, children) = sampler.stop().await;
    let hwm = proc_status_kb(pid, "VmHWM");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = proc_status_kb(pid, "VmRSS");

    let within = |kb: u64| kb as f64 / 1024.0 <= TARGET_MB;
    let mut md = format!(
        "Gateway process only (`VmRSS`), `--pool-size 0`; {STREAMS} concurrent streams of the \
         instant fake CLI printing 30 tokens 100 ms apart (all {STREAMS} done in {:.1} s; at \
         most {children} `claude` children alive at once). RSS sampled every 20 ms.\n\n",
        held.as_secs_f64()
    );
    md.push_str("| state | RSS (MB) | target ≤ 50 MB |\n|---|---|---|\n");
    for (state, kb) in [
        ("idle, after startup", idle),
        (
            "after the first request (tokenizer and lazy state loaded)",
            after_first,
        ),
        ("peak with 100 concurrent slow streams (sampled)", peak),
        ("peak (kernel high-water mark `VmHWM`)", hwm),
        ("after the 100 streams finished", after),
    ] {
        md.push_str(&format!(
            "| {state} | {} | {} |\n",
            mb(kb),
            verdict(within(kb))
        ));
    }
    let per_stream = (peak.saturating_sub(after_first)) as f64 / STREAMS as f64;
    md.push_str(&format!(
        "\nAbout {per_stream:.0} kB of gateway memory per open stream (peak − after first \
         request, / {STREAMS}).\n"
    ));
    common::report("memory", &md);
}
