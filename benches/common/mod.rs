//! What the benchmarks share: the gateway binary started on port 0 (`Gateway`), the instant
//! fake CLI compiled from `tests/fixtures/instant_claude.c` into `target/tmp`, latency statistics,
//! a process's resident memory from `/proc`, and the Markdown section each benchmark prints and
//! saves for `benches/run.sh` to collect into BENCHMARKS.md.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const GATEWAY_BIN: &str = env!("CARGO_BIN_EXE_claude-gateway");

pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Cargo's scratch directory for benchmarks (`target/tmp`).
pub fn target_tmp() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

/// The instant fake CLI, compiled with the system `cc` when its source is newer than the binary.
pub fn instant_cli() -> PathBuf {
    let src = repo("tests/fixtures/instant_claude.c");
    let bin = target_tmp().join("instant_claude");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if modified(&bin).is_none() || modified(&bin) < modified(&src) {
        let status = std::process::Command::new(std::env::var("CC").unwrap_or("cc".into()))
            .args(["-O2", "-o"])
            .arg(&bin)
            .arg(&src)
            .status()
            .expect("run cc (a C compiler is needed to build the instant fake CLI)");
        assert!(status.success(), "cc failed to compile {}", src.display());
    }
    bin
}

/// A running `claude-gateway` (from `target/release`), killed when dropped.
pub struct Gateway {
    pub child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// `http://127.0.0.1:PORT` of its gRPC port.
    pub grpc: String,
}

impl Gateway {
    /// Starts the binary on port 0 with `args` and `env` and waits for its listening line.
    /// Logs stay at the default level (`info`) and go to /dev/null.
    pub async fn start(args: &[&str], env: &[(&str, &str)]) -> Gateway {
        let mut child = Command::new(GATEWAY_BIN)
            .args(["--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"])
            .args(args)
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start claude-gateway");
        let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), out.next_line())
            .await
            .expect("gateway listening line within 30 s")
            .expect("read gateway stdout")
            .expect("gateway exited before listening");
        let http = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http="))
            .expect("http= in the listening line");
        let grpc = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("grpc="))
            .expect("grpc= in the listening line");
        let grpc = format!("http://{grpc}");
        tokio::spawn(async move { while let Ok(Some(_)) = out.next_line().await {} });
        Gateway {
            child,
            base: format!("http://{http}"),
            grpc,
        }
    }

    pub fn chat_url(&self) -> String {
        format!("{}/v1/chat/completions", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("gateway running")
    }

    /// Waits until the warm pool holds at least `n` idle processes (it grows with demand).
    pub async fn pool_ready(&self, client: &reqwest::Client, n: u64) {
        for _ in 0..400 {
            let health: serde_json::Value = client
                .get(format!("{}/health", self.base))
                .send()
                .await
                .expect("GET /health")
                .json()
                .await
                .expect("health JSON");
            if health["warm_processes"].as_u64().is_some_and(|w| w >= n) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the warm pool never refilled");
    }
}

/// Whether this build of the gateway has a flag (another engineer may still be adding it).
pub fn gateway_has_flag(flag: &str) -> bool {
    let help = std::process::Command::new(GATEWAY_BIN)
        .arg("--help")
        .output()
        .expect("claude-gateway --help");
    String::from_utf8_lossy(&help.stdout).contains(flag)
}

/// `--max-processes N` (and a queue of 2N) when the gateway has those flags, so a load test is
/// not capped by them.
pub fn max_processes_args(n: usize) -> Vec<String> {
    let mut args = Vec::new();
    for (flag, value) in [("--max-processes", n), ("--max-queue", 2 * n)] {
        if gateway_has_flag(flag) {
            args.extend([flag.to_string(), value.to_string()]);
        }
    }
    args
}

/// The real `claude` CLI (`CLAUDE_REAL_BIN`, else the pinned one in `.tools/`); exits with a
/// note when it is not installed.
pub fn real_cli() -> PathBuf {
    let cli = std::env::var_os("CLAUDE_REAL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo(".tools/node_modules/.bin/claude"));
    if !cli.exists() {
        eprintln!("{} missing: run .ci/install-tools first", cli.display());
        std::process::exit(2);
    }
    cli
}

/// `--reuse-processes=false` when the gateway has the flag: these benchmarks measure the paths
/// they name (a spawn per request, a warm process), not process reuse (`benches/reuse.rs`).
pub fn no_reuse_args() -> Vec<String> {
    if gateway_has_flag("--reuse-processes") {
        vec!["--reuse-processes=false".to_string()]
    } else {
        Vec::new()
    }
}

/// A field of `/proc/<pid>/status` in kB (`VmRSS`, `VmHWM`): this process only, never its
/// children.
pub fn proc_status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Live children of `pid`.
pub fn child_count(pid: u32) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    // Fields after the parenthesised command: state, ppid, ...
                    let rest = &s[s.rfind(')')? + 2..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .count()
}

/// The `q` quantile (0..=1) of `samples`, nearest rank.
pub fn quantile(samples: &[Duration], q: f64) -> Duration {
    assert!(!samples.is_empty(), "no samples");
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn median(samples: &[Duration]) -> Duration {
    quantile(samples, 0.5)
}

/// Milliseconds with `digits` decimals.
pub fn ms(d: Duration, digits: usize) -> String {
    format!("{:.*}", digits, d.as_secs_f64() * 1000.0)
}

pub fn mb(kb: u64) -> String {
    format!("{:.1}", kb as f64 / 1024.0)
}

pub fn verdict(met: bool) -> &'static str {
    if met { "**met**" } else { "**missed**" }
}

/// Prints a benchmark's Markdown section and saves it as `target/tmp/bench-<name>.md`, where
/// `benches/run.sh` collects it.
pub fn report(name: &str, markdown: &str) {
    println!("\n{markdown}");
    let path = target_tmp().join(format!("bench-{name}.md"));
    std::fs::write(&path, markdown).expect("write the benchmark's Markdown");
}
