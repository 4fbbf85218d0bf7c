//! Finds the configured `claude` binary and asks its version (`claude --version` takes ~7 ms and
//! spends no tokens), for `/health`, readiness and the startup log. Results are cached briefly so
//! health checks cannot be used to spawn processes in a loop.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::chat::CliStatus;

const CACHE_FOR: Duration = Duration::from_secs(10);

pub struct CliProbe {
    bin: PathBuf,
    cache: Mutex<Option<(Instant, CliStatus)>>,
}

impl CliProbe {
    pub fn new(bin: PathBuf) -> Self {
        CliProbe {
            bin,
            cache: Mutex::new(None),
        }
    }

    pub async fn status(&self) -> CliStatus {
        let mut cache = self.cache.lock().await;
        if let Some((at, status)) = cache.as_ref()
            && at.elapsed() < CACHE_FOR
        {
            return status.clone();
        }
        let status = probe(&self.bin).await;
        *cache = Some((Instant::now(), status.clone()));
        status
    }
}

/// `bin` itself when it names a path, else the first executable of that name on PATH.
pub fn resolve(bin: &Path) -> Option<PathBuf> {
    if bin.components().count() > 1 {
        return bin.is_file().then(|| bin.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(bin))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

async fn probe(bin: &Path) -> CliStatus {
    let Some(path) = resolve(bin) else {
        return CliStatus {
            found: false,
            path: bin.display().to_string(),
            version: None,
            error: Some(format!(
                "`{}` not found; install it with `npm install -g @anthropic-ai/claude-code` or \
                 set --claude-bin / CLAUDE_BIN",
                bin.display()
            )),
        };
    };
    let mut cmd = tokio::process::Command::new(&path);
    cmd.arg("--version")
        .env_clear()
        .envs(
            ["PATH", "HOME"]
                .iter()
                .filter_map(|k| Some((k, std::env::var_os(k)?))),
        )
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(10), cmd.output()).await;
    let display = path.display().to_string();
    match output {
        Ok(Ok(out)) if out.status.success() => CliStatus {
            found: true,
            path: display,
            version: Some(String::from_utf8_lossy(&out.stdout).trim().to_string()),
            error: None,
        },
        Ok(Ok(out)) => CliStatus {
            found: true,
            path: display,
            version: None,
            error: Some(format!(
                "`--version` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        },
        Ok(Err(e)) => CliStatus {
            found: false,
            path: display,
            version: None,
            error: Some(format!("cannot run it: {e}")),
        },
        Err(_) => CliStatus {
            found: true,
            path: display,
            version: None,
            error: Some("`--version` did not answer within 10 s".into()),
        },
    }
}
