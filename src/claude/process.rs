//! One supervised `claude` child: spawned in its own process group inside a fresh private
//! working directory, with an allow-listed environment; stdout read as bounded lines, stderr
//! drained into a bounded tail. Dropping a `ClaudeProcess` kills the whole group and removes the
//! directory, so whoever owns it (the response stream) cancels it by going away.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use tracing::Instrument;

use crate::chat::ChatError;

/// Longest stdout line accepted (a line echoing a big image can be large).
const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;
/// How much of stderr is kept for logs and error messages.
const STDERR_TAIL_BYTES: usize = 8 * 1024;

/// Everything needed to start one child.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The complete environment of the child; nothing else is inherited.
    pub env: Vec<(OsString, OsString)>,
    /// Parent of the per-run private directories.
    pub work_root: PathBuf,
}

pub struct ClaudeProcess {
    child: Child,
    /// The child's process group (it leads it): killed as a whole, also after the child itself
    /// exited, since what it started may still run there.
    pgid: Option<u32>,
    stdin: Option<ChildStdin>,
    stdout: FramedRead<ChildStdout, LinesCodec>,
    stderr_tail: Arc<Mutex<Vec<u8>>>,
    /// Removed after the child is killed (fields drop after `Drop::drop`).
    _dir: tempfile::TempDir,
}

impl ClaudeProcess {
    pub fn spawn(launch: &Launch) -> Result<Self, ChatError> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        // Private: no other local user may enter the run's directory or read its temp files.
        let dir = tempfile::Builder::new()
            .prefix("claude-gateway-run-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(&launch.work_root)
            .map_err(|e| {
                ChatError::internal(format!(
                    "cannot create a working directory in {}: {e}",
                    launch.work_root.display()
                ))
            })?;
        let cwd = dir.path().join("cwd");
        let tmp = dir.path().join("tmp");
        for d in [&cwd, &tmp] {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(d)
                .map_err(|e| ChatError::internal(format!("cannot create {}: {e}", d.display())))?;
        }
        // Checked here because with setpriv in front a missing CLI would only show as an early
        // exit, not as the "not installed" it is.
        if super::probe::resolve(&launch.program).is_none() {
            return Err(ChatError::cli_not_found(
                &launch.program.display().to_string(),
                "no such executable",
            ));
        }
        let mut cmd = match setpriv() {
            Some(setpriv) => {
                let mut cmd = Command::new(setpriv);
                cmd.args(["--pdeathsig", "KILL", "--"]).arg(&launch.program);
                cmd
            }
            None => {
                let mut cmd = Command::new(&launch.program);
                die_with_parent(&mut cmd);
                cmd
            }
        };
        cmd.args(&launch.args)
            .env_clear()
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            // The CLI leaks a temp dir per run (PROTOCOL.md §13); keep it inside ours.
            .env("CLAUDE_CODE_TMPDIR", &tmp)
            .env("TMPDIR", &tmp)
            .current_dir(&cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                ChatError::cli_not_found(&launch.program.display().to_string(), &e.to_string())
            }
            _ => ChatError::internal(format!("cannot start {}: {e}", launch.program.display())),
        })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(ChatError::internal("child pipes missing"));
        };
        let stderr_tail = Arc::new(Mutex::new(Vec::new()));
        // In the run's span: the stderr line it logs carries the request id.
        tokio::spawn(drain_stderr(stderr, stderr_tail.clone(), child.id()).in_current_span());
        Ok(ClaudeProcess {
            pgid: child.id(),
            child,
            stdin: Some(stdin),
            stdout: FramedRead::new(stdout, LinesCodec::new_with_max_length(MAX_LINE_BYTES)),
            stderr_tail,
            _dir: dir,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// False once the child has exited (checked without waiting).
    pub fn is_alive(&mut self) -> bool {
        let alive = matches!(self.child.try_wait(), Ok(None));
        if !alive {
            self.kill_group();
        }
        alive
    }

    /// SIGKILL to the whole process group (once).
    fn kill_group(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            kill_group(pgid);
        }
    }

    /// Writes one JSON line. The CLI dies on a malformed line, so callers pass whole objects.
    pub async fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| std::io::Error::other("stdin already closed"))?;
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        stdin.write_all(&buf).await?;
        stdin.flush().await
    }

    /// Closes stdin: the CLI finishes the current turn and exits.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next stdout line; `None` at EOF. Over-long lines are skipped.
    pub async fn next_line(&mut self) -> Option<String> {
        loop {
            match self.stdout.next().await? {
                Ok(line) => return Some(line),
                Err(LinesCodecError::MaxLineLengthExceeded) => {
                    tracing::warn!("skipped a stdout line longer than {MAX_LINE_BYTES} bytes");
                }
                Err(LinesCodecError::Io(e)) => {
                    tracing::debug!("stdout read failed: {e}");
                    return None;
                }
            }
        }
    }

    /// After stdout closed: how the child ended (waits briefly) and the tail of its stderr.
    pub async fn exit_report(&mut self) -> String {
        // Its output is closed, so the CLI is done: whatever it left in its group goes too.
        // Killed before reaping, while the leader's group id cannot have been reused.
        self.kill_group();
        let status =
            tokio::time::timeout(std::time::Duration::from_secs(2), self.child.wait()).await;
        let status = match status {
            Ok(Ok(status)) => status.to_string(),
            Ok(Err(e)) => format!("unknown status ({e})"),
            Err(_) => "still running".to_string(),
        };
        let tail = self.stderr_tail();
        let last = tail
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        if last.is_empty() {
            status
        } else {
            format!("{status}; stderr: {last}")
        }
    }

    pub fn stderr_tail(&self) -> String {
        let tail = self
            .stderr_tail
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default();
        String::from_utf8_lossy(&tail).into_owned()
    }
}

impl Drop for ClaudeProcess {
    fn drop(&mut self) {
        self.kill_group();
    }
}

/// SIGKILL to the child's process group (it leads its own group, so pgid == pid).
fn kill_group(pid: u32) {
    let Ok(pid) = i32::try_from(pid) else { return };
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// util-linux's `setpriv`, when it is there and knows `--pdeathsig`. Put in front of the CLI it
/// asks the kernel to SIGKILL the child if the gateway dies (even by SIGKILL) and then execs
/// the CLI, so the child needs no `pre_exec` hook: std can then start it with `posix_spawn`
/// instead of a full `fork` of the gateway (~1 ms of CPU and a blocked worker per request).
fn setpriv() -> Option<&'static std::path::Path> {
    static SETPRIV: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    SETPRIV
        .get_or_init(|| {
            let path = super::probe::resolve(std::path::Path::new("setpriv"))?;
            let works = std::process::Command::new(&path)
                .args(["--pdeathsig", "KILL", "--", "true"])
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            works.then_some(path)
        })
        .as_deref()
}

/// Ask the kernel to SIGKILL the child if the gateway dies without cleaning up (e.g. SIGKILL),
/// from a hook in the forked child (used when `setpriv` is not available).
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2), which
    // is async-signal-safe; it allocates nothing and touches no locks.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)
        });
    }
}

/// Reads stderr to its end so the child never blocks on a full pipe, keeping only the tail.
async fn drain_stderr(
    mut stderr: tokio::process::ChildStderr,
    tail: Arc<Mutex<Vec<u8>>>,
    pid: Option<u32>,
) {
    let mut buf = vec![0u8; 8192];
    loop {
        match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Ok(mut t) = tail.lock() {
                    t.extend_from_slice(&buf[..n]);
                    if t.len() > STDERR_TAIL_BYTES {
                        let cut = t.len() - STDERR_TAIL_BYTES;
                        t.drain(..cut);
                    }
                }
            }
        }
    }
    let tail = tail.lock().map(|t| t.clone()).unwrap_or_default();
    if !tail.is_empty() {
        tracing::debug!(pid, stderr = %String::from_utf8_lossy(&tail), "claude stderr (tail)");
    }
}
