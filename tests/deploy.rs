//! The deployment files say what the binary understands and agree with each other: the
//! Kubernetes manifests (deploy/kubernetes/) are valid for Kubernetes 1.30 (`kubernetes-validate
//! --strict`, from `.tools`, offline: it bundles the schemas), list only flags and environment
//! variables `claude-gateway` knows, wire the façade to the workers' headless Service, drain
//! within their termination grace period and size memory from the measured cost of a claude
//! process; docker-compose.yml runs PostgreSQL, two workers and a façade wired the same way; the
//! Dockerfile pins the CLI of tools/package.json, builds with the MSRV, runs as a non-root user,
//! its HEALTHCHECK command really answers for a running gateway, and the CLI's native binary
//! works alone as the runtime stage runs it (no Node.js, empty HOME). The image itself cannot be
//! built here (no Docker); what can be checked offline is.

#![allow(clippy::unwrap_used)]

mod common;
#[path = "deploy/image.rs"]
mod image;
#[path = "deploy/kubernetes.rs"]
mod kubernetes;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use serde_json::Value;

use claude_gateway::config::Config;

/// The Kubernetes version the manifests are validated against (the `grpc:` probe is GA since
/// 1.27).
pub const KUBERNETES_VERSION: &str = "1.30.0";

/// Measured peak RSS of one claude process is 214 MB (BENCHMARKS.md, PROTOCOL.md §1); the
/// manifests budget 250 MiB each, plus 64 MiB for the gateway (48.6 MB measured at 100 streams).
pub const MIB_PER_PROCESS: u64 = 250;
pub const GATEWAY_MIB: u64 = 64;

/// Variables the gateway reads or hands to the CLI without being a flag of its own (the CLI's
/// allow-listed environment, src/claude/launch.rs), and what every process has.
pub const PASSED_TO_THE_CLI: &[&str] = &["ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"];
pub const PROCESS_ENV: &[&str] = &["HOME", "RUST_LOG"];

pub fn repo(rel: &str) -> PathBuf {
    common::repo_path(rel)
}

pub fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every YAML document of `path` as JSON, parsed by PyYAML from `.tools` (None: the tool is
/// missing and the run allowed skipping).
pub fn yaml_docs(path: &Path) -> Option<Vec<Value>> {
    let python = common::tool("venv/bin/python")?;
    let script = "import json, sys, yaml\n\
                  docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None]\n\
                  print(json.dumps(docs))";
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::describe("PyYAML", &out));
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

/// `2100Mi`, `2Gi` → MiB.
pub fn mebibytes(quantity: &str) -> u64 {
    if let Some(n) = quantity.strip_suffix("Mi") {
        return n.parse().unwrap();
    }
    if let Some(n) = quantity.strip_suffix("Gi") {
        return n.parse::<u64>().unwrap() * 1024;
    }
    panic!("unexpected memory quantity {quantity}")
}

/// The environment variables and long flags `claude-gateway` declares (its clap Config).
pub fn known() -> (BTreeSet<String>, BTreeSet<String>) {
    let command = Config::command();
    let envs = command
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    let longs = command
        .get_arguments()
        .filter_map(|a| a.get_long())
        .map(|l| format!("--{l}"))
        .collect();
    (envs, longs)
}

/// Panics naming every variable of `names` (set in `place`) the binary would not read.
pub fn assert_known_env<'a>(place: &str, names: impl IntoIterator<Item = &'a str>) {
    let (envs, _) = known();
    let launch = read("src/claude/launch.rs");
    for name in PASSED_TO_THE_CLI {
        assert!(
            launch.contains(&format!("\"{name}\"")),
            "{name} is not allow-listed"
        );
    }
    let unknown: Vec<&str> = names
        .into_iter()
        .filter(|n| {
            !envs.contains(*n) && !PASSED_TO_THE_CLI.contains(n) && !PROCESS_ENV.contains(n)
        })
        .collect();
    assert!(
        unknown.is_empty(),
        "{place} sets variables the binary does not know: {unknown:?}"
    );
}
