//! `claude-gateway doctor`: checks, without spending a token, what the gateway needs to answer —
//! its configuration, the `claude` CLI's path and version, how the CLI authenticates (the
//! CLI's own `auth status`, run with the environment the gateway gives it), the working
//! directory, the concrete model ids the CLI resolves its aliases to — or, with `--upstream`,
//! that the worker is serving. It prints a checklist with what to fix, and exits non-zero when
//! completions could not be served.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use crate::claude::launch::{Launcher, base_env};
use crate::claude::probe::{CliProbe, resolve};
use crate::config::Config;

/// The CLI version the gateway is tested against (the fixtures and the CI install).
pub const TESTED_CLI_VERSION: &str = "2.1.330";
const INSTALL: &str = "npm install -g @anthropic-ai/claude-code@2.1.330";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Pass,
    Warn,
    Fail,
}

/// One line of the checklist.
#[derive(Debug, Clone)]
pub struct Check {
    pub mark: Mark,
    pub name: &'static str,
    pub detail: String,
    /// What to do about it, for a warning or a failure.
    pub fix: Option<String>,
}

fn check(mark: Mark, name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        mark,
        name,
        detail: detail.into(),
        fix: None,
    }
}

impl Check {
    fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// Runs the checks, prints them, and exits 0 when the gateway could serve completions.
pub fn main(config: &Config) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("claude-gateway doctor: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let checks = runtime.block_on(checks(config));
    print!("{}", render(&checks));
    if checks.iter().any(|c| c.mark == Mark::Fail) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The checklist as printed.
pub fn render(checks: &[Check]) -> String {
    let mut out = format!("claude-gateway {} doctor\n", env!("CARGO_PKG_VERSION"));
    for c in checks {
        let mark = match c.mark {
            Mark::Pass => "✓",
            Mark::Warn => "!",
            Mark::Fail => "✗",
        };
        let _ = writeln!(out, "{mark} {}: {}", c.name, c.detail);
        if let Some(fix) = &c.fix {
            let _ = writeln!(out, "    fix: {fix}");
        }
    }
    let failed = checks.iter().filter(|c| c.mark == Mark::Fail).count();
    if failed == 0 {
        out.push_str("ready: the gateway can serve completions\n");
    } else {
        let _ = writeln!(
            out,
            "not ready: {failed} problem{} to fix",
            if failed == 1 { "" } else { "s" }
        );
    }
    out
}

pub async fn checks(config: &Config) -> Vec<Check> {
    let store = rate_limit_store(config).await;
    if !config.upstream.is_empty() {
        let mut out = Vec::new();
        for url in &config.upstream {
            out.push(upstream(config, url).await);
        }
        out.extend(store);
        return out;
    }
    let mut out: Vec<Check> = store.into_iter().collect();
    let engine = config.engine_config();
    out.push(match &engine {
        Ok(_) => check(Mark::Pass, "configuration", "valid"),
        Err(e) => check(Mark::Fail, "configuration", e.clone()).fix("correct that flag"),
    });
    let bin = engine
        .as_ref()
        .map_or_else(|_| config.claude_bin.clone(), |e| e.claude_bin.clone());
    let Some(path) = resolve(&bin) else {
        out.push(
            check(
                Mark::Fail,
                "claude CLI",
                format!("`{}` not found", bin.display()),
            )
            .fix(format!(
                "{INSTALL}, or point --claude-bin / CLAUDE_BIN at it"
            )),
        );
        return out;
    };
    out.push(check(Mark::Pass, "claude CLI", path.display().to_string()));
    let status = CliProbe::new(path.clone()).status().await;
    let Some(version) = status.version else {
        let why = status.error.unwrap_or_else(|| "no version".into());
        out.push(check(Mark::Fail, "version", why).fix(format!("reinstall it: {INSTALL}")));
        return out;
    };
    out.push(version_check(&version));
    let env = engine
        .as_ref()
        .map(|e| base_env(e.max_retries, &e.extra_env))
        .ok();
    out.push(auth(config, &path, env).await);
    if let Ok(engine) = &engine {
        out.push(work_dir(&engine.work_root));
        out.push(models(engine, &path).await);
    }
    out
}

/// The concrete model ids the installed CLI resolves its aliases to (what `/v1/models` lists
/// beside the aliases); asked of the CLI itself, so an upgraded CLI shows its new ids.
async fn models(engine: &crate::claude::EngineConfig, cli: &Path) -> Check {
    let launcher = Launcher {
        program: cli.to_path_buf(),
        env: base_env(engine.max_retries, &engine.extra_env),
        work_root: engine.work_root.clone(),
    };
    match crate::claude::catalog::discover(&launcher, engine.bare).await {
        Ok(ids) => check(Mark::Pass, "models", ids.join(", ")),
        Err(e) => check(Mark::Warn, "models", e).fix(
            "/v1/models will list only the aliases and mapped ids; check that the CLI starts \
             (`claude --version`)",
        ),
    }
}

fn version_check(version: &str) -> Check {
    let number = version.split_whitespace().next().unwrap_or_default();
    if number == TESTED_CLI_VERSION {
        check(Mark::Pass, "version", format!("{number} (the tested one)"))
    } else {
        check(
            Mark::Warn,
            "version",
            format!("{version}; the gateway is tested with {TESTED_CLI_VERSION}"),
        )
        .fix(format!("pin it: {INSTALL}"))
    }
}

/// How the CLI will authenticate, from the CLI itself (`claude auth status`, which reads the
/// stored login and makes no API call), with the environment the gateway gives it.
async fn auth(config: &Config, cli: &Path, env: Option<Vec<(OsString, OsString)>>) -> Check {
    let bare = match config.bare() {
        Ok(bare) => bare,
        Err(e) => {
            return check(Mark::Fail, "auth", e)
                .fix("export ANTHROPIC_API_KEY=…, or use --auth login with a logged-in CLI");
        }
    };
    if bare {
        return check(
            Mark::Pass,
            "auth",
            "API key (ANTHROPIC_API_KEY; the CLI runs with --bare); the key itself is checked by \
             the first request",
        );
    }
    match auth_status(cli, env).await {
        Some(status) if status["loggedIn"] == true => {
            let method = status["authMethod"].as_str().unwrap_or("unknown");
            check(Mark::Pass, "auth", format!("logged in ({method})"))
        }
        Some(_) => check(Mark::Fail, "auth", "the CLI is not logged in").fix(login_fix()),
        None => stored_login(),
    }
}

fn login_fix() -> String {
    let home = std::env::var("CLAUDE_CONFIG_DIR")
        .map(|d| format!("CLAUDE_CONFIG_DIR={d}"))
        .or_else(|_| std::env::var("HOME").map(|h| format!("HOME={h}")))
        .unwrap_or_default();
    format!(
        "run `claude auth login` as the user the gateway runs as ({home}), or set \
         ANTHROPIC_API_KEY (the CLI then runs with --bare)"
    )
}

/// `claude auth status --json`, or `None` when the CLI has no such command or its answer is
/// not the JSON expected.
async fn auth_status(
    cli: &Path,
    env: Option<Vec<(OsString, OsString)>>,
) -> Option<serde_json::Value> {
    let mut cmd = tokio::process::Command::new(cli);
    cmd.args(["auth", "status", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if let Some(env) = env {
        cmd.env_clear().envs(env);
    }
    let output = tokio::time::timeout(Duration::from_secs(15), cmd.output())
        .await
        .ok()?
        .ok()?;
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    status.get("loggedIn")?.as_bool()?;
    Some(status)
}

/// When the CLI cannot say: whether a login is stored where it looks (never reading it).
fn stored_login() -> Check {
    let token = ["CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN"]
        .into_iter()
        .find(|k| std::env::var(k).is_ok_and(|v| !v.is_empty()));
    if let Some(name) = token {
        return check(Mark::Pass, "auth", format!("token in {name}"));
    }
    let dir = std::env::var_os("CLAUDE_CONFIG_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".claude")));
    let credentials = dir.map(|d| d.join(".credentials.json"));
    match credentials {
        Some(file) if file.is_file() => check(
            Mark::Warn,
            "auth",
            format!(
                "the CLI did not answer `auth status`; a stored login exists ({})",
                file.display()
            ),
        )
        .fix("if requests fail with upstream_auth_failed, run `claude auth login` again"),
        _ => check(
            Mark::Fail,
            "auth",
            "the CLI did not answer `auth status`, and no stored login or token was found",
        )
        .fix(login_fix()),
    }
}

fn work_dir(root: &Path) -> Check {
    match tempfile::Builder::new()
        .prefix("claude-gateway-doctor-")
        .tempdir_in(root)
    {
        Ok(_) => check(
            Mark::Pass,
            "work dir",
            format!("{} is writable", root.display()),
        ),
        Err(e) => check(
            Mark::Fail,
            "work dir",
            format!("cannot create a directory in {}: {e}", root.display()),
        )
        .fix("point --work-dir / WORK_DIR at a writable directory"),
    }
}

/// The `--rate-limit-store`, when one is used: reachable, and its table usable.
async fn rate_limit_store(config: &Config) -> Option<Check> {
    let url = config.access_config().rate_limit_store?;
    if config.rate_limit_rpm == 0 {
        return None;
    }
    Some(
        match crate::access::SharedLimiter::open(&url, config.rate_limit_rpm).await {
            Ok(_) => check(Mark::Pass, "rate-limit store", "PostgreSQL answers"),
            Err(e) => check(Mark::Fail, "rate-limit store", e)
                .fix("correct --rate-limit-store, or start that PostgreSQL"),
        },
    )
}

async fn upstream(config: &Config, url: &str) -> Check {
    let remote = match crate::grpc::remote::RemoteBackend::new(&config.upstream_config(url)) {
        Ok(remote) => remote,
        Err(e) => return check(Mark::Fail, "upstream", e).fix("correct --upstream"),
    };
    let health = remote.health().await;
    let detail = health.upstream.unwrap_or_else(|| url.to_string());
    if health.ready {
        check(
            Mark::Pass,
            "upstream",
            format!("{detail} (no CLI runs here)"),
        )
    } else {
        check(Mark::Fail, "upstream", detail).fix(
            "start the worker, or run `claude-gateway doctor` on it to see why it is not serving",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_other_than_the_tested_one_warn() {
        assert_eq!(version_check("2.1.330 (Claude Code)").mark, Mark::Pass);
        let other = version_check("2.1.197 (Claude Code)");
        assert_eq!(other.mark, Mark::Warn);
        assert!(other.fix.unwrap().contains("@2.1.330"));
    }

    #[test]
    fn the_summary_counts_failures() {
        let checks = [
            check(Mark::Pass, "a", "fine"),
            check(Mark::Fail, "b", "broken").fix("mend it"),
        ];
        let text = render(&checks);
        assert!(text.contains("✓ a: fine\n"));
        assert!(text.contains("✗ b: broken\n    fix: mend it\n"));
        assert!(text.ends_with("not ready: 1 problem to fix\n"));
    }
}
