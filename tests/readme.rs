//! README.md tells a newcomer the truth: its configuration table lists exactly the flags
//! `claude-gateway --help` prints, each with its environment variable, and the Rust version it
//! names is the `rust-version` of Cargo.toml, which is no older than what the dependencies need.
//! (`.ci/run` also builds the crate with that toolchain.)

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_claude-gateway");

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

/// `--flag` → its `[env: NAME=]`, from `--help` (clap prints the env of a flag after its help).
fn help_flags() -> BTreeMap<String, Option<String>> {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let mut flags = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in help.lines() {
        let trimmed = line.trim_start();
        // Option lines are indented 2 to 6 spaces; help text (possible values too) deeper.
        if trimmed.starts_with('-') && line.len() - trimmed.len() <= 6 {
            current = trimmed
                .split([' ', ',', '='])
                .find(|w| w.starts_with("--"))
                .map(|w| w.trim_end_matches(['<', '>']).to_string());
            if let Some(flag) = &current {
                flags.insert(flag.clone(), None);
            }
        }
        if let (Some(flag), Some(at)) = (&current, line.find("[env: ")) {
            let env = &line[at + 6..];
            let name = env.split(['=', ']']).next().unwrap().to_string();
            flags.insert(flag.clone(), Some(name));
        }
    }
    flags.remove("--help");
    flags.remove("--version");
    flags
}

/// `--flag` → env, from the rows of README's configuration table.
fn readme_flags() -> BTreeMap<String, String> {
    let readme = readme();
    let table = readme
        .split("## Configuration")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap();
    table
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let flag = cells.get(1)?.strip_prefix("`--")?.strip_suffix('`')?;
            let env = cells.get(2)?.trim_matches('`');
            Some((format!("--{flag}"), env.to_string()))
        })
        .collect()
}

#[test]
fn the_configuration_table_lists_every_flag_with_its_variable() {
    let help = help_flags();
    let table = readme_flags();
    assert!(
        help.len() > 20,
        "parsed too few flags from --help: {help:?}"
    );
    let missing: Vec<_> = help.keys().filter(|f| !table.contains_key(*f)).collect();
    assert!(
        missing.is_empty(),
        "flags in --help but not in README's configuration table: {missing:?}"
    );
    let stale: Vec<_> = table.keys().filter(|f| !help.contains_key(*f)).collect();
    assert!(
        stale.is_empty(),
        "README's configuration table lists flags --help does not have: {stale:?}"
    );
    for (flag, env) in &help {
        let env = env.as_deref().unwrap_or("–");
        assert_eq!(table[flag], env, "the variable of {flag} in README");
    }
}

fn version_of(text: &str) -> (u32, u32) {
    let mut parts = text.split('.').map(|p| p.trim().parse::<u32>().unwrap());
    (parts.next().unwrap(), parts.next().unwrap_or(0))
}

#[test]
fn the_stated_rust_version_is_the_real_minimum() {
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let declared = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    let declared = version_of(declared);
    let readme = readme();
    let stated = readme
        .split("a Rust toolchain (")
        .nth(1)
        .and_then(|rest| rest.split(" or newer").next())
        .unwrap();
    assert_eq!(
        version_of(stated),
        declared,
        "README vs Cargo.toml rust-version"
    );
    // The newest rust-version any locked dependency declares: the real floor. Not `--offline`:
    // metadata covers every platform's dependencies, and a build fetches only this one's.
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (floor, who) = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] != "claude-gateway")
        .filter_map(|p| {
            Some((
                version_of(p["rust_version"].as_str()?),
                p["name"].to_string(),
            ))
        })
        .max()
        .unwrap();
    assert!(
        declared >= floor,
        "Cargo.toml says rust-version {declared:?}, but {who} needs {floor:?}"
    );
}
