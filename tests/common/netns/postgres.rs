//! PostgreSQL as a host of its own: `host.postgres()` initialises a fresh data directory
//! (trust auth, also from the cluster's /24; no fsync: a test's data need not survive a power
//! cut), runs `postgres` as the `postgres` user inside the host's namespace on its address, and
//! creates the database `db`. The server binaries are found as `.ci/start-postgres` finds them;
//! missing, the test fails (`skip::missing`) saying how to install them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{Host, HostProc};

pub const PG_PORT: u16 = 5432;

/// A PostgreSQL server in a host. Its data directory goes with it.
pub struct Postgres {
    /// `postgres://postgres@ADDR:5432/db`
    pub url: String,
    pub proc: HostProc,
    /// From initdb to the database created.
    pub started_in: Duration,
    data: tempfile::TempDir,
}

/// The newest server's bin directory (Debian keeps them out of PATH).
fn server_bin() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let e = e.ok()?;
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists() && bin.join("postgres").exists())
        .collect();
    dirs.sort();
    if let Some((_, bin)) = dirs.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|d| d.join("initdb").exists() && d.join("postgres").exists())
}

/// The uid and gid of the `postgres` user the server runs as (it refuses to run as root).
fn postgres_user() -> Result<(u32, u32)> {
    let id = |flag: &str| -> Result<u32> {
        let out = std::process::Command::new("id")
            .args([flag, "postgres"])
            .output()?;
        if !out.status.success() {
            bail!("no `postgres` user: run .ci/start-postgres once (it creates it)");
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
    };
    Ok((id("-u")?, id("-g")?))
}

async fn run_checked(cmd: &mut tokio::process::Command, what: &str) -> Result<()> {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        cmd.stdin(Stdio::null()).kill_on_drop(true).output(),
    )
    .await
    .with_context(|| format!("{what} took over 60 s"))??;
    if !out.status.success() {
        bail!(
            "{what}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

impl Host {
    /// A fresh PostgreSQL server here, with the database `db`. `None` only when its binaries
    /// are missing and the run opted out of such tests.
    pub async fn postgres(&self) -> Result<Option<Postgres>> {
        let Some(bin) = server_bin() else {
            crate::common::skip::missing(
                "PostgreSQL server binaries (initdb, postgres)",
                "run .ci/start-postgres, which installs Debian's postgresql",
            );
            return Ok(None);
        };
        let started = Instant::now();
        let (uid, gid) = postgres_user()?;
        // Outside the cluster's (root-only) directory: the server's user must reach it.
        let data = tempfile::Builder::new().prefix("cgw-pg").tempdir()?;
        std::os::unix::fs::chown(data.path(), Some(uid), Some(gid))?;
        let as_postgres = [
            "--reuid",
            "postgres",
            "--regid",
            "postgres",
            "--clear-groups",
        ];
        run_checked(
            tokio::process::Command::new("setpriv")
                .args(as_postgres)
                .arg(bin.join("initdb"))
                .arg("-D")
                .arg(data.path())
                .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
                .arg("--no-instructions"),
            "initdb",
        )
        .await?;
        let hba = data.path().join("pg_hba.conf");
        let [a, b, c, _] = self.addr().octets();
        let subnet = format!("{a}.{b}.{c}.0/24");
        let mut rules = std::fs::read_to_string(&hba)?;
        rules.push_str(&format!("host all all {subnet} trust\n"));
        std::fs::write(&hba, rules)?;
        let addr = self.addr().to_string();
        let mut server = std::process::Command::new("setpriv");
        server
            .args(as_postgres)
            .arg(bin.join("postgres"))
            .arg("-D")
            .arg(data.path())
            .args(["-c", &format!("listen_addresses={addr}")])
            .args(["-c", &format!("port={PG_PORT}")])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", data.path().display()))
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=200"]);
        let mut proc = self.spawn("postgres", &server)?;
        wait_ready(&mut proc, data.path()).await?;
        let mut psql = tokio::process::Command::new("ip");
        psql.args(["netns", "exec", self.netns()])
            .arg(bin.join("psql"))
            .args(["-X", "-q", "-h", &addr, "-p", &PG_PORT.to_string()])
            .args(["-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1"])
            .args(["-c", "CREATE DATABASE db"]);
        run_checked(&mut psql, "CREATE DATABASE").await?;
        Ok(Some(Postgres {
            url: format!("postgres://postgres@{addr}:{PG_PORT}/db"),
            proc,
            started_in: started.elapsed(),
            data,
        }))
    }
}

/// Until the server logs that it accepts connections (bounded; fails if it exits first).
async fn wait_ready(proc: &mut HostProc, data: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if proc.stderr().contains("ready to accept connections") {
            return Ok(());
        }
        if let Some(status) = proc.wait_exit(Duration::from_millis(25)).await {
            bail!(
                "postgres ({}) exited: {status}\n{}",
                data.display(),
                proc.stderr()
            );
        }
        if Instant::now() > deadline {
            bail!("postgres not ready within 30 s:\n{}", proc.stderr());
        }
    }
}

impl Postgres {
    /// The data directory (owned by `postgres`).
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Before its data directory is removed under it.
        self.proc.kill9();
    }
}
