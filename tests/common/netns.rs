//! Hosts for cluster tests, as Linux network namespaces on this one machine. `Netns::new(tag)`
//! makes a cluster: a "switch" namespace holding a bridge, and `cluster.host(name, octet)` adds a
//! namespace joined to that bridge by a veth pair, with `lo` up and the address
//! `10.A.B.octet/24` (A.B derived per cluster). Nothing is created or bound in the root
//! namespace, so clusters of parallel tests (and test binaries) never see each other.
//!
//! A `Host` runs programs (`spawn`, through `ip netns exec`, which execs: the child's pid is the
//! program's) with stdout/stderr in files for the post-mortem, runs async test code on a tokio
//! runtime whose threads joined the namespace (`run`, `spawn_task`), and lists the processes in
//! it. Gateways and PostgreSQL in a host live in `netns/gateway.rs` and `netns/postgres.rs`.
//!
//! Dropping the cluster kills every process in its namespaces (by namespace, so a whole process
//! tree goes, whoever its parent is), stops the hosts' runtimes and deletes the namespaces; on a
//! panic it first prints the tail of every process's logs and keeps them. `Netns::new` also
//! removes namespaces left by a crashed earlier run (named after a pid that is gone).
//! Needs root: without it the test fails (`skip::missing`, like any missing tool).

pub mod gateway;
pub mod postgres;

use std::collections::BTreeSet;
use std::future::Future;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Every namespace of these tests starts with this (and then the pid of the test process).
pub const PREFIX: &str = "cgw-";
const NETNS_DIR: &str = "/run/netns";

static CLUSTERS: AtomicU32 = AtomicU32::new(0);

/// One cluster: the switch namespace, the hosts on it, the logs of what ran there.
pub struct Netns {
    base: String,
    subnet: [u8; 2],
    switch: String,
    shared: Arc<Shared>,
    started: Instant,
}

/// What the cluster and its hosts share: the namespaces to delete, the logs to print, the
/// runtimes to stop, and the temp dir holding logs and data.
struct Shared {
    namespaces: Mutex<Vec<String>>,
    logs: Mutex<Vec<(String, PathBuf)>>,
    runtimes: Mutex<Vec<RuntimeStop>>,
    octets: Mutex<BTreeSet<u8>>,
    dir: Mutex<Option<tempfile::TempDir>>,
    dir_path: PathBuf,
}

/// A host: a network namespace on the cluster's bridge, with a tokio runtime inside it.
#[derive(Clone)]
pub struct Host {
    name: String,
    netns: String,
    addr: Ipv4Addr,
    runtime: tokio::runtime::Handle,
    shared: Arc<Shared>,
}

struct RuntimeStop {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A program running in a host. Killed (SIGKILL) when dropped; the cluster's teardown kills
/// whatever it left in the namespace.
pub struct HostProc {
    pub child: tokio::process::Child,
    pub pid: u32,
    pub stdout_log: PathBuf,
    pub stderr_log: PathBuf,
}

/// Runs `ip ARGS`, failing with its stderr.
fn ip(args: &[&str]) -> Result<()> {
    let out = std::process::Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("cannot run `ip` (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Whether this process may create namespaces (fails the test otherwise, or returns false when
/// the run opted out of such tests).
pub fn require_root() -> bool {
    if nix::unistd::Uid::effective().is_root() {
        return true;
    }
    super::skip::missing(
        "root (network namespaces for the cluster tests)",
        "run the cluster tests as root, as CI does",
    );
    false
}

impl Netns {
    /// A new cluster tagged `tag` (letters and digits, unique among the tests of one binary).
    /// `None` only when not root and the run opted out (see `require_root`).
    pub fn new(tag: &str) -> Result<Option<Netns>> {
        if !require_root() {
            return Ok(None);
        }
        remove_stale();
        let pid = std::process::id();
        let n = CLUSTERS.fetch_add(1, Ordering::Relaxed);
        let base = format!("{PREFIX}{pid}-{n}{tag}");
        let mix = tag
            .bytes()
            .fold(n, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        let subnet = [64 + (pid % 128) as u8, (mix % 256) as u8];
        let dir = tempfile::Builder::new().prefix(&base).tempdir()?;
        let shared = Arc::new(Shared {
            namespaces: Mutex::new(Vec::new()),
            logs: Mutex::new(Vec::new()),
            runtimes: Mutex::new(Vec::new()),
            octets: Mutex::new(BTreeSet::new()),
            dir_path: dir.path().to_path_buf(),
            dir: Mutex::new(Some(dir)),
        });
        let cluster = Netns {
            switch: format!("{base}-sw"),
            base,
            subnet,
            shared,
            started: Instant::now(),
        };
        cluster.add_namespace(&cluster.switch)?;
        ip(&[
            "-n",
            &cluster.switch,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
        ])?;
        ip(&["-n", &cluster.switch, "link", "set", "br0", "up"])?;
        Ok(Some(cluster))
    }

    fn add_namespace(&self, name: &str) -> Result<()> {
        ip(&["netns", "add", name])?;
        lock(&self.shared.namespaces).push(name.to_string());
        Ok(())
    }

    /// The address `10.A.B.octet` of this cluster's /24.
    pub fn addr(&self, octet: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet[0], self.subnet[1], octet)
    }

    /// Where this cluster keeps logs and data (kept after a failed test).
    pub fn dir(&self) -> &Path {
        &self.shared.dir_path
    }

    /// Adds host `name` (letters and digits) at `10.A.B.octet` on the bridge.
    pub fn host(&self, name: &str, octet: u8) -> Result<Host> {
        if !(1..=254).contains(&octet) || !lock(&self.shared.octets).insert(octet) {
            bail!("host {name}: octet {octet} is taken or not in 1..=254");
        }
        let netns = format!("{}-{name}", self.base);
        self.add_namespace(&netns)?;
        // The bridge side lives in the switch namespace, so its name only has to be unique
        // there (and fits the 15 bytes of an interface name).
        let port = format!("v{octet}");
        let addr = self.addr(octet);
        let sw = self.switch.as_str();
        ip(&[
            "-n", sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &netns,
        ])?;
        ip(&["-n", sw, "link", "set", &port, "master", "br0", "up"])?;
        ip(&["-n", &netns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            &netns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &netns, "link", "set", "eth0", "up"])?;
        let runtime = self.start_runtime(&netns)?;
        Ok(Host {
            name: name.to_string(),
            netns,
            addr,
            runtime,
            shared: self.shared.clone(),
        })
    }

    /// A thread that enters `netns` and drives a multi-thread runtime built there: its worker
    /// and blocking threads are created by threads already inside, so they are inside too.
    fn start_runtime(&self, netns: &str) -> Result<tokio::runtime::Handle> {
        let file = std::fs::File::open(Path::new(NETNS_DIR).join(netns))?;
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("netns-{netns}"))
            .spawn(move || {
                let runtime = nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(anyhow::Error::from)
                    .and_then(|()| {
                        tokio::runtime::Builder::new_multi_thread()
                            .worker_threads(2)
                            .enable_all()
                            .build()
                            .map_err(anyhow::Error::from)
                    });
                match runtime {
                    Ok(rt) => {
                        let _ = handle_tx.send(Ok(rt.handle().clone()));
                        let _ = rt.block_on(stopped);
                        rt.shutdown_timeout(Duration::from_secs(2));
                    }
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                    }
                }
            })?;
        let handle = handle_rx
            .recv()
            .context("the namespace's runtime thread died")??;
        lock(&self.shared.runtimes).push(RuntimeStop {
            stop: Some(stop),
            thread: Some(thread),
        });
        Ok(handle)
    }

    /// Time since `new`, for the timings a test prints.
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Host {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's name (for `ip netns exec`).
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The host's address on the bridge.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// Runs `fut` on this host's runtime (its sockets in this namespace) and waits for it.
    /// A panic inside is resumed here, so assertions in `fut` fail the test.
    pub async fn run<F, T>(&self, fut: F) -> T
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        match self.spawn_task(fut).await {
            Ok(v) => v,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("task on host {} ended: {e}", self.name),
        }
    }

    /// Spawns `fut` on this host's runtime; the handle may be awaited from any runtime.
    pub fn spawn_task<F, T>(&self, fut: F) -> tokio::task::JoinHandle<T>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.runtime.spawn(fut)
    }

    /// Starts `cmd` in this host (`ip netns exec`), in its own process group, stdin null,
    /// stdout and stderr in `<cluster dir>/<host>-<label>.{out,err}`. The program, arguments,
    /// environment changes and working directory of `cmd` are kept.
    pub fn spawn(&self, label: &str, cmd: &std::process::Command) -> Result<HostProc> {
        self.spawn_with(label, cmd, false)
    }

    /// `spawn`, with stdout piped (read it from `child.stdout`) instead of logged when `piped`.
    pub fn spawn_with(
        &self,
        label: &str,
        cmd: &std::process::Command,
        piped: bool,
    ) -> Result<HostProc> {
        let stem = self.shared.dir_path.join(format!("{}-{label}", self.name));
        let stdout_log = stem.with_extension("out");
        let stderr_log = stem.with_extension("err");
        let mut wrapped = tokio::process::Command::new("ip");
        wrapped
            .args(["netns", "exec", &self.netns])
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => wrapped.env(k, v),
                None => wrapped.env_remove(k),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            wrapped.current_dir(dir);
        }
        let stdout = if piped {
            Stdio::piped()
        } else {
            Stdio::from(std::fs::File::create(&stdout_log)?)
        };
        let child = wrapped
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(std::fs::File::create(&stderr_log)?)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {cmd:?} in {}", self.netns))?;
        let pid = child.id().context("child exited at once")?;
        let mut logs = lock(&self.shared.logs);
        logs.push((format!("{}/{label} stdout", self.name), stdout_log.clone()));
        logs.push((format!("{}/{label} stderr", self.name), stderr_log.clone()));
        Ok(HostProc {
            child,
            pid,
            stdout_log,
            stderr_log,
        })
    }

    /// Live processes in this namespace (what `ip netns pids` lists; zombies have left it).
    pub fn pids(&self) -> Vec<u32> {
        pids_in(&self.netns)
    }

    /// Live processes in this host whose command line (arguments joined by spaces) contains
    /// `needle`.
    pub fn processes_matching(&self, needle: &str) -> Vec<u32> {
        self.pids()
            .into_iter()
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                    let args: Vec<_> = c.split(|b| *b == 0).map(String::from_utf8_lossy).collect();
                    args.join(" ").contains(needle)
                })
            })
            .collect()
    }

    /// A file under the cluster's directory for this host (data, configuration).
    pub fn path(&self, name: &str) -> PathBuf {
        self.shared.dir_path.join(format!("{}-{name}", self.name))
    }
}

impl HostProc {
    pub fn kill9(&self) {
        let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
    }

    pub fn sigterm(&self) {
        let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGTERM);
    }

    /// Its exit status, or `None` if it is still running after `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_log).unwrap_or_default()
    }
}

/// The inode of a namespace file, or of a process's `ns/net` link target.
fn netns_inode(netns: &str) -> Option<u64> {
    std::fs::metadata(Path::new(NETNS_DIR).join(netns))
        .ok()
        .map(|m| m.ino())
}

/// The network namespace inode of `pid` (from `net:[INODE]`).
pub fn pid_netns(pid: u32) -> Option<u64> {
    std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|m| m.ino())
}

/// Live processes whose network namespace is `netns` (as `ip netns pids` does it).
fn pids_in(netns: &str) -> Vec<u32> {
    let Some(inode) = netns_inode(netns) else {
        return Vec::new();
    };
    let me = std::process::id();
    super::procs::all_pids()
        .into_iter()
        .filter(|pid| *pid != me && super::procs::alive(*pid) && pid_netns(*pid) == Some(inode))
        .collect()
}

/// Kills every process in `netns` and waits (bounded) until none is left, then deletes it.
fn destroy(netns: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = pids_in(netns);
        if pids.is_empty() || Instant::now() > deadline {
            if !pids.is_empty() {
                eprintln!("netns {netns}: processes {pids:?} survived SIGKILL for 10 s");
            }
            break;
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Another test binary's stale sweep may have deleted it first.
    if let Err(e) = ip(&["netns", "del", netns])
        && netns_inode(netns).is_some()
    {
        eprintln!("netns teardown: {e}");
    }
}

/// Namespaces of ours named after a test process that no longer exists: left by a crash.
fn remove_stale() {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for name in entries.filter_map(|e| e.ok()?.file_name().into_string().ok()) {
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            destroy(&name);
        }
    }
}

/// The namespaces of the tests (all of ours, by prefix), as `ip netns` lists them.
pub fn listed_namespaces() -> Vec<String> {
    std::fs::read_dir(NETNS_DIR)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(PREFIX))
                .collect()
        })
        .unwrap_or_default()
}

impl Netns {
    /// The namespace names of this cluster (switch first).
    pub fn namespaces(&self) -> Vec<String> {
        lock(&self.shared.namespaces).clone()
    }
}

/// The last `lines` lines of a file.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for Netns {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        if failed {
            for (what, path) in lock(&self.shared.logs).iter() {
                eprintln!("--- {what} ({}) ---\n{}", path.display(), tail(path, 40));
            }
        }
        // Hosts last: their processes go before the switch, and nothing waits on a runtime
        // whose namespace is gone.
        for netns in lock(&self.shared.namespaces).iter().rev() {
            destroy(netns);
        }
        for mut rt in lock(&self.shared.runtimes).drain(..) {
            if let Some(stop) = rt.stop.take() {
                let _ = stop.send(());
            }
            if let Some(thread) = rt.thread.take() {
                let _ = thread.join();
            }
        }
        if let Some(dir) = lock(&self.shared.dir).take()
            && failed
        {
            eprintln!("cluster logs kept in {}", dir.keep().display());
        }
    }
}
