//! How `claude` processes are started: one program, the allow-listed environment every process
//! gets, and the private working root, for cold spawns, warm-pool refills and model discovery
//! alike; a spawn spec (`argv.rs`) adds the flags.

use std::ffi::OsString;
use std::path::PathBuf;

use super::argv::{SpawnSpec, build_args};
use super::process::Launch;

/// Environment variables passed through to the CLI when the gateway has them: what it needs to
/// find itself, to authenticate, and to reach Anthropic through a proxy.
const PASS_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "CLAUDE_CONFIG_DIR",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "NO_PROXY",
    "https_proxy",
    "http_proxy",
    "no_proxy",
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
];

/// How processes are started: the same program, environment and working root as a cold run.
#[derive(Debug, Clone)]
pub struct Launcher {
    pub program: PathBuf,
    pub env: Vec<(OsString, OsString)>,
    pub work_root: PathBuf,
}

impl Launcher {
    pub fn launch(&self, spec: &SpawnSpec) -> Launch {
        Launch {
            program: self.program.clone(),
            args: build_args(spec),
            env: self.env.clone(),
            work_root: self.work_root.clone(),
        }
    }
}

/// The environment every CLI process gets: the allow-listed variables the gateway has, and the
/// settings that keep the CLI quiet and quick to fail.
pub fn base_env(max_retries: u32, extra_env: &[String]) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = PASS_ENV
        .iter()
        .copied()
        .chain(extra_env.iter().map(String::as_str))
        .filter_map(|name| std::env::var_os(name).map(|v| (OsString::from(name), v)))
        .collect();
    let mut set = |k: &str, v: String| env.push((k.into(), v.into()));
    set("CLAUDE_CODE_MAX_RETRIES", max_retries.to_string());
    set("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into());
    set("DISABLE_TELEMETRY", "1".into());
    set("DISABLE_AUTOUPDATER", "1".into());
    set("DISABLE_ERROR_REPORTING", "1".into());
    env
}
