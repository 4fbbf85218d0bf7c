//! docker-compose.yml (PostgreSQL, two workers, one façade, wired as on Kubernetes) and the
//! Dockerfile (pins, user, environment, and a HEALTHCHECK that really answers).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use claude_gateway::config::Config;

use super::{GATEWAY_MIB, MIB_PER_PROCESS, assert_known_env, common, read, repo, yaml_docs};

#[test]
fn compose_runs_postgres_two_workers_and_a_facade() {
    let Some(docs) = yaml_docs(&repo("docker-compose.yml")) else {
        return;
    };
    let services = docs[0]["services"].as_object().unwrap();
    let env = |name: &str| -> BTreeMap<String, String> {
        services[name]["environment"]
            .as_object()
            .unwrap_or_else(|| panic!("{name}: environment as a mapping"))
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect()
    };
    assert!(
        services["postgres"]["image"]
            .as_str()
            .unwrap()
            .starts_with("postgres:")
    );
    let (workers, facades): (Vec<&String>, Vec<&String>) = services
        .keys()
        .filter(|s| *s != "postgres")
        .partition(|s| !env(s).contains_key("UPSTREAM"));
    assert_eq!(workers.len(), 2, "{workers:?}");
    assert_eq!(facades.len(), 1, "{facades:?}");
    for service in workers.iter().chain(&facades) {
        let vars = env(service);
        assert_known_env(service, vars.keys().map(String::as_str));
        assert_eq!(vars["HTTP_ADDR"], "0.0.0.0:8000", "{service}");
        assert_eq!(vars["GRPC_ADDR"], "0.0.0.0:50051", "{service}");
        assert_eq!(
            services[service.as_str()]["depends_on"]["postgres"]["condition"],
            "service_healthy"
        );
        // `docker compose stop` waits this long before SIGKILL: enough to drain.
        let stop = services[service.as_str()]["stop_grace_period"]
            .as_str()
            .unwrap();
        let stop: u64 = stop.strip_suffix('s').unwrap().parse().unwrap();
        let needed: u64 = ["SHUTDOWN_DELAY_SECS", "SHUTDOWN_GRACE_SECS"]
            .iter()
            .map(|k| vars[*k].parse::<u64>().unwrap())
            .sum::<u64>()
            + 2;
        assert!(stop >= needed, "{service}: {stop} s < {needed} s");
    }
    let facade = env(facades[0]);
    let upstream = facade["UPSTREAM"].strip_prefix("http://").unwrap();
    let (host, port) = upstream.split_once(':').unwrap();
    assert_eq!(port, "50051");
    for worker in &workers {
        let vars = env(worker);
        assert!(
            vars["SESSION_STORE"].starts_with("postgres://gateway:"),
            "{worker}"
        );
        assert!(
            vars["SESSION_STORE"].ends_with("@postgres:5432/claude_gateway"),
            "{worker}"
        );
        // The façade's one name answers with every worker, like the headless Service.
        let aliases = &services[worker.as_str()]["networks"]["default"]["aliases"];
        assert!(
            aliases.as_array().unwrap().iter().any(|a| a == host),
            "{worker}"
        );
        assert_eq!(
            vars["GATEWAY_ADMIN_API_KEYS"], facade["UPSTREAM_API_KEY"],
            "{worker}"
        );
        let processes: u64 = vars["MAX_PROCESSES"].parse().unwrap();
        let limit = services[worker.as_str()]["mem_limit"].as_str().unwrap();
        let limit: u64 = limit.strip_suffix('m').unwrap().parse().unwrap();
        assert!(
            limit >= processes * MIB_PER_PROCESS + GATEWAY_MIB,
            "{worker}: {limit}m"
        );
    }
    assert_eq!(facade["RATE_LIMIT_STORE"], env(workers[0])["SESSION_STORE"]);
    assert_eq!(facade["UPSTREAM_INSECURE"], "true");
    // Published on the host's loopback only.
    let ports = services[facades[0].as_str()]["ports"].as_array().unwrap();
    assert!(
        ports
            .iter()
            .all(|p| p.as_str().unwrap().starts_with("127.0.0.1:"))
    );
}

/// The Dockerfile's instructions, continuation lines joined, comments dropped, as
/// (INSTRUCTION, rest).
fn dockerfile() -> Vec<(String, String)> {
    let text = read("Dockerfile");
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (instruction, rest) = current.split_once(' ').unwrap();
                out.push((instruction.to_uppercase(), rest.trim().to_string()));
                current.clear();
            }
        }
    }
    out
}

/// The environment the runtime image sets (`ENV K=V …`).
fn image_env() -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for (_, rest) in dockerfile().iter().filter(|(i, _)| i == "ENV") {
        for pair in rest.split_whitespace() {
            let (k, v) = pair.split_once('=').unwrap();
            env.insert(k.to_string(), v.to_string());
        }
    }
    env
}

/// The JSON-array form of an instruction (`CMD ["a", "b"]`), as argv.
fn exec_form(rest: &str) -> Vec<String> {
    let start = rest
        .find('[')
        .unwrap_or_else(|| panic!("not in exec form: {rest}"));
    serde_json::from_str(&rest[start..]).unwrap()
}

#[test]
fn the_dockerfile_pins_the_cli_and_the_toolchain_and_runs_as_a_user() {
    let lines = dockerfile();
    let of = |instruction: &str| -> Vec<&String> {
        lines
            .iter()
            .filter(|(i, _)| i == instruction)
            .map(|(_, r)| r)
            .collect()
    };
    let stages = of("FROM");
    assert_eq!(stages.len(), 3, "build, cli, runtime: {stages:?}");
    assert_eq!(
        stages[0].split_whitespace().next().unwrap(),
        format!("rust:{}-bookworm", rust_version()),
        "the builder is Cargo.toml's rust-version (the MSRV CI checks)"
    );
    assert!(
        stages[2].starts_with("debian:bookworm-slim"),
        "{}",
        stages[2]
    );
    let runs = of("RUN")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    assert!(runs.contains("cargo build --release --locked"), "{runs}");

    // The CLI: exactly tools/package.json's version, installed from npm, checked at build time.
    let package: Value = serde_json::from_str(&read("tools/package.json")).unwrap();
    let pinned = package["dependencies"]["@anthropic-ai/claude-code"]
        .as_str()
        .unwrap();
    assert_eq!(pinned, claude_gateway::doctor::TESTED_CLI_VERSION);
    let text = read("Dockerfile");
    let installs: Vec<&str> = text.split("@anthropic-ai/claude-code@").skip(1).collect();
    assert!(
        !installs.is_empty(),
        "the Dockerfile installs the CLI from npm"
    );
    for install in installs {
        let version: String = install
            .chars()
            .take_while(|c| *c != ' ' && *c != '\n')
            .collect();
        assert_eq!(version, pinned);
    }
    assert!(runs.contains("npm install --global"), "{runs}");
    assert!(
        runs.contains(&format!("grep -q '^{}'", pinned.replace('.', "\\.") + " ")),
        "{runs}"
    );

    // Non-root, by number (Kubernetes' runAsNonRoot can only verify a numeric user).
    let user = of("USER");
    let last = user.last().expect("a USER instruction");
    let uid = last.split(':').next().unwrap();
    assert!(uid.parse::<u32>().is_ok_and(|u| u != 0), "USER {last}");
    let manifests = read("deploy/kubernetes/workers.yaml");
    assert!(
        manifests.contains(&format!("runAsUser: {uid}")),
        "manifests run as the image's user"
    );

    // The environment the image sets is the binary's, listening on every interface.
    let env = image_env();
    assert_known_env("Dockerfile", env.keys().map(String::as_str));
    assert_eq!(env["HTTP_ADDR"], "0.0.0.0:8000");
    assert_eq!(env["GRPC_ADDR"], "0.0.0.0:50051");
    let exposed: BTreeSet<&str> = of("EXPOSE")
        .iter()
        .flat_map(|r| r.split_whitespace())
        .collect();
    assert_eq!(exposed, BTreeSet::from(["8000", "50051"]));
    // The binary's own default stays loopback.
    let config = Config::try_parse_args(["claude-gateway"]).unwrap();
    if std::env::var_os("HTTP_ADDR").is_none() && std::env::var_os("PORT").is_none() {
        assert!(config.http_addr().ip().is_loopback());
    }

    let health = of("HEALTHCHECK");
    assert_eq!(health.len(), 1);
    let argv = exec_form(health[0]);
    assert_eq!(argv[..2], ["claude-gateway", "doctor"]);
    let entrypoint = exec_form(of("ENTRYPOINT")[0]);
    assert_eq!(entrypoint.last().unwrap(), "claude-gateway");

    let ignored = read(".dockerignore");
    for path in ["target", ".tools", ".git", ".env"] {
        assert!(
            ignored.lines().any(|l| l.trim() == path),
            ".dockerignore misses {path}"
        );
    }
}

/// The HEALTHCHECK command, run as the image would run it (the port swapped for the test's),
/// passes for a serving gateway and fails for one that is not there.
#[tokio::test]
async fn the_image_healthcheck_passes_for_a_serving_gateway_only() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (_, rest) = dockerfile()
            .into_iter()
            .find(|(i, _)| i == "HEALTHCHECK")
            .unwrap();
        let argv = exec_form(&rest);
        let target = "http://127.0.0.1:50051";
        assert!(argv.iter().any(|a| a == target), "{argv:?}");
        let gateway = common::FakeCliGateway::start(&[]).await;
        let home = tempfile::tempdir().unwrap();
        let run = |url: String| {
            let args: Vec<String> = argv[1..]
                .iter()
                .map(|a| if a == target { url.clone() } else { a.clone() })
                .collect();
            let mut cmd = tokio::process::Command::new(common::BIN);
            cmd.args(args)
                .env_remove("UPSTREAM")
                .env_remove("ANTHROPIC_API_KEY")
                .env("HOME", home.path())
                .current_dir(home.path());
            cmd
        };
        let up = common::run(&mut run(gateway.gw.grpc.clone())).await;
        assert_eq!(
            up.status.code(),
            Some(0),
            "{}",
            common::describe("healthy", &up)
        );
        let down = common::run(&mut run("http://127.0.0.1:9".into())).await;
        assert_eq!(
            down.status.code(),
            Some(1),
            "{}",
            common::describe("down", &down)
        );
    })
    .await
    .expect("test exceeded its time limit");
}

/// Cargo.toml's `rust-version` (the MSRV `.ci/run` builds with).
fn rust_version() -> String {
    read("Cargo.toml")
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .expect("Cargo.toml has a rust-version")
        .trim_matches('"')
        .to_string()
}

/// The runtime stage has no Node.js and copies only the CLI's native binary out of
/// node_modules: that binary alone at another path, with nothing on PATH, an empty HOME and the
/// image's environment, passes `doctor` (version, auth, work dir, and a real start of the CLI
/// for model discovery) — and writes its state under HOME, which is why the manifests mount a
/// writable volume there.
#[tokio::test]
async fn the_cli_binary_alone_passes_doctor_in_the_image_environment() {
    let Some(cli) = common::real_cli() else {
        return;
    };
    tokio::time::timeout(Duration::from_secs(90), async {
        let root = tempfile::tempdir().unwrap();
        let (bin, home, work) = (
            root.path().join("bin"),
            root.path().join("home"),
            root.path().join("tmp"),
        );
        for dir in [&bin, &home, &work] {
            std::fs::create_dir(dir).unwrap();
        }
        let claude = bin.join("claude");
        let cli = std::fs::canonicalize(cli).unwrap();
        if std::fs::hard_link(&cli, &claude).is_err() {
            std::fs::copy(&cli, &claude).unwrap();
        }
        let mut env = image_env();
        assert_eq!(env["CLAUDE_BIN"], "/usr/local/bin/claude");
        assert_eq!(env["HOME"], "/home/gateway");
        env.insert("CLAUDE_BIN".into(), claude.display().to_string());
        env.insert("HOME".into(), home.display().to_string());
        env.insert("WORK_DIR".into(), work.display().to_string());
        let mut cmd = tokio::process::Command::new(common::BIN);
        cmd.arg("doctor")
            .env_clear()
            .envs(&env)
            .env("PATH", root.path().join("empty"))
            .env("ANTHROPIC_API_KEY", "sk-test")
            .current_dir(&home);
        let out = common::run(&mut cmd).await;
        let report = common::describe("doctor", &out);
        assert_eq!(out.status.code(), Some(0), "{report}");
        let text = common::text(&out.stdout);
        let version = format!("✓ version: {} ", claude_gateway::doctor::TESTED_CLI_VERSION);
        assert!(
            text.contains(&version) && text.contains("✓ models:"),
            "{report}"
        );
        assert!(
            home.join(".claude.json").exists(),
            "the CLI keeps its state in HOME"
        );
    })
    .await
    .expect("test exceeded its time limit");
}
