//! The gateway binary as a process in a host, started the way `Gateway` starts it (the fake
//! CLI, an allow-listed environment, no warm pool, no model discovery, its "listening" line
//! read from stdout) but bound to the host's own address on fixed ports: a worker restarted on
//! the same host is back at the same URL, as a façade's `--upstream` expects.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::{Host, HostProc};
use crate::common::{BIN, fake_cli, fake_prompts, fake_runs};

/// Every gateway in a host listens on these ports of the host's address.
pub const HTTP_PORT: u16 = 8080;
pub const GRPC_PORT: u16 = 50051;

static STARTS: AtomicU32 = AtomicU32::new(0);

/// A gateway running in a host. Killed (SIGKILL) when dropped.
pub struct GatewayProc {
    pub proc: HostProc,
    pub pid: u32,
    /// `http://ADDR:8080`
    pub http_url: String,
    /// `http://ADDR:50051` (what a façade's `--upstream` names)
    pub grpc_url: String,
    /// FAKE_CLAUDE_LOG_DIR of this gateway's fake CLI runs.
    pub fake_log: PathBuf,
    /// From spawning to the listening line.
    pub started_in: Duration,
    host: Host,
}

impl Host {
    /// Starts the gateway here with `args` after the harness's own (fake CLI, addresses,
    /// `--pool-size 0`, `--discover-models false`, sessions in a directory of the host unless
    /// `args` has `--session-store`).
    pub async fn gateway(&self, args: &[&str]) -> Result<GatewayProc> {
        self.gateway_with_env(args, &[]).await
    }

    /// `gateway` with variables set in its environment (after the harness removed the
    /// caller's `ANTHROPIC_*`): the real CLI's key and the fake API's URL.
    pub async fn gateway_with_env(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<GatewayProc> {
        let n = STARTS.fetch_add(1, Ordering::Relaxed);
        let label = format!("gw{n}");
        let root = self.path(&label);
        let fake_log = root.join("fake-cli");
        std::fs::create_dir_all(&fake_log)?;
        let addr = self.addr();
        let fake = fake_cli();
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(["--http-addr", &format!("{addr}:{HTTP_PORT}")])
            .args(["--grpc-addr", &format!("{addr}:{GRPC_PORT}")])
            .args(["--pool-size", "0", "--discover-models", "false"])
            .arg("--claude-bin")
            .arg(&fake)
            .args(["--pass-env", "FAKE_CLAUDE_LOG_DIR"])
            .args(args);
        if !args.contains(&"--session-store") {
            cmd.arg("--session-store").arg(root.join("sessions"));
        }
        cmd.env_remove("ANTHROPIC_API_KEY")
            .env_remove("ANTHROPIC_BASE_URL")
            .env_remove("PORT")
            .env("RUST_LOG", "claude_gateway=debug,info")
            .env("FAKE_CLAUDE_LOG_DIR", &fake_log)
            .envs(env.iter().copied())
            .current_dir(&root);
        let started = Instant::now();
        let mut proc = self.spawn_with(&label, &cmd, true)?;
        let stdout = proc.child.stdout.take().context("no stdout pipe")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = match tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(_) => bail!(
                "gateway in {} exited before listening:\n{}",
                self.name(),
                proc.stderr()
            ),
            Err(_) => bail!("gateway in {} did not listen within 30 s", self.name()),
        };
        let started_in = started.elapsed();
        let expect = format!("http={addr}:{HTTP_PORT} grpc={addr}:{GRPC_PORT}");
        if !line.contains(&expect) {
            bail!("unexpected listening line `{line}` (wanted {expect})");
        }
        // The rest of stdout goes to its log, so the gateway never blocks on a full pipe.
        let mut log = tokio::fs::File::create(&proc.stdout_log).await?;
        log.write_all(format!("{line}\n").as_bytes()).await?;
        tokio::spawn(async move {
            while let Ok(Some(l)) = lines.next_line().await {
                let _ = log.write_all(format!("{l}\n").as_bytes()).await;
            }
        });
        Ok(GatewayProc {
            pid: proc.pid,
            proc,
            http_url: url(addr, HTTP_PORT),
            grpc_url: url(addr, GRPC_PORT),
            fake_log,
            started_in,
            host: self.clone(),
        })
    }
}

fn url(addr: Ipv4Addr, port: u16) -> String {
    format!("http://{addr}:{port}")
}

impl GatewayProc {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.http_url)
    }

    pub fn kill9(&self) {
        self.proc.kill9();
    }

    pub fn sigterm(&self) {
        self.proc.sigterm();
    }

    pub async fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        self.proc.wait_exit(limit).await
    }

    pub fn stderr(&self) -> String {
        self.proc.stderr()
    }

    /// Prompts this gateway's fake CLI processes got: the requests that reached this worker.
    pub fn prompts(&self) -> usize {
        fake_prompts(&self.fake_log)
    }

    /// Every fake CLI run's log of this gateway.
    pub fn runs(&self) -> Vec<Value> {
        fake_runs(&self.fake_log)
    }

    /// Fake CLI processes alive anywhere in this gateway's host (its children, and any
    /// orphan of an earlier gateway there); not the gateway, whose argv names the fake too.
    pub fn live_fake_clis(&self) -> Vec<u32> {
        let mut found = self.host.processes_matching("fake_claude.py");
        found.retain(|p| *p != self.pid);
        found
    }
}

/// POSTs a streaming request and collects its SSE `data:` payloads until the body ends (or
/// breaks: a worker killed under it), telling `first` when the first one arrived. Run it in a
/// host (`spawn_task`); a test kills a worker once `first` fired, so the kill is mid-stream.
pub async fn stream_telling_first(
    url: String,
    body: Value,
    first: tokio::sync::oneshot::Sender<()>,
) -> (u16, Vec<String>) {
    use futures::StreamExt;
    let response = match crate::common::client().post(&url).json(&body).send().await {
        Ok(r) => r,
        Err(e) => return (0, vec![format!("send failed: {e}")]),
    };
    let status = response.status().as_u16();
    let mut first = Some(first);
    let (mut events, mut buf) = (Vec::new(), String::new());
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            events.push("body broke".to_string());
            break;
        };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            for data in frame.lines().filter_map(|l| l.strip_prefix("data: ")) {
                events.push(data.to_string());
                if let Some(tx) = first.take() {
                    let _ = tx.send(());
                }
            }
        }
    }
    (status, events)
}
