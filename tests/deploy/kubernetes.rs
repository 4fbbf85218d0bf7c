//! deploy/kubernetes/: valid for the pinned Kubernetes version, every file listed in the
//! kustomization, the façade wired to the workers' headless Service, Secrets for every
//! credential, probes, draining and memory consistent with the gateway's flags.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

use super::{
    GATEWAY_MIB, KUBERNETES_VERSION, MIB_PER_PROCESS, assert_known_env, common, known, mebibytes,
    read, repo, yaml_docs,
};

fn kube_dir() -> PathBuf {
    repo("deploy/kubernetes")
}

/// The files kustomization.yaml lists, parsed.
fn kube_resources() -> Option<Vec<(String, Vec<Value>)>> {
    let kustomization = yaml_docs(&kube_dir().join("kustomization.yaml"))?;
    let resources = kustomization[0]["resources"].as_array().unwrap().clone();
    let mut out = Vec::new();
    for file in resources {
        let file = file.as_str().unwrap().to_string();
        let docs = yaml_docs(&kube_dir().join(&file))?;
        out.push((file, docs));
    }
    Some(out)
}

fn all_docs(resources: &[(String, Vec<Value>)]) -> Vec<Value> {
    resources.iter().flat_map(|(_, d)| d.clone()).collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/kubernetes"))
}

fn container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1, "one gateway container per pod");
    &containers[0]
}

/// A container's `env`, name → the entry (`value` or `valueFrom`).
fn env_of(container: &Value) -> BTreeMap<String, Value> {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

fn value<'a>(env: &'a BTreeMap<String, Value>, name: &str) -> &'a str {
    env.get(name)
        .and_then(|e| e["value"].as_str())
        .unwrap_or_else(|| panic!("{name} has no literal value"))
}

fn secs(env: &BTreeMap<String, Value>, name: &str) -> u64 {
    value(env, name).parse().unwrap()
}

#[test]
fn every_manifest_is_valid_for_kubernetes_1_30() {
    let Some(validate) = common::tool("venv/bin/kubernetes-validate") else {
        return;
    };
    let Some(resources) = kube_resources() else {
        return;
    };
    let mut files: Vec<PathBuf> = resources.iter().map(|(f, _)| kube_dir().join(f)).collect();
    files.push(kube_dir().join("secrets.example.yaml"));
    let out = std::process::Command::new(&validate)
        .args(["--strict", "--kubernetes-version", KUBERNETES_VERSION])
        .args(&files)
        .output()
        .unwrap();
    let report = common::describe("kubernetes-validate", &out);
    assert!(out.status.success(), "{report}");
    // One "passed" line per resource: nothing was silently left out.
    let mut expected = 0;
    for file in &files {
        expected += yaml_docs(file).unwrap().len();
    }
    let passed = common::text(&out.stdout)
        .matches(" passed for resource ")
        .count();
    assert_eq!(passed, expected, "{report}");

    // The validator is strict: a field Kubernetes does not have fails it.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("workers.yaml");
    let workers = read("deploy/kubernetes/workers.yaml");
    let typo = workers.replacen(
        "terminationGracePeriodSeconds:",
        "terminationGraceSeconds:",
        1,
    );
    assert_ne!(typo, workers);
    std::fs::write(&broken, typo).unwrap();
    let out = std::process::Command::new(&validate)
        .args(["--strict", "--kubernetes-version", KUBERNETES_VERSION])
        .arg(&broken)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "{}",
        common::describe("broken", &out)
    );
    assert!(common::text(&out.stdout).contains("terminationGraceSeconds"));
}

#[test]
fn kustomization_lists_every_manifest() {
    let Some(resources) = kube_resources() else {
        return;
    };
    let listed: BTreeSet<String> = resources.iter().map(|(f, _)| f.clone()).collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(kube_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".yaml"))
        .filter(|f| f != "kustomization.yaml" && !f.ends_with(".example.yaml"))
        .collect();
    assert_eq!(listed, on_disk);
    let docs = all_docs(&resources);
    let kinds: BTreeSet<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    for kind in ["Namespace", "Deployment", "Service", "PodDisruptionBudget"] {
        assert!(kinds.contains(kind), "no {kind}");
    }
    assert!(
        !kinds.contains("Secret"),
        "real Secrets are created out of band"
    );
}

#[test]
fn manifests_set_only_flags_the_binary_knows() {
    let Some(resources) = kube_resources() else {
        return;
    };
    let (_, longs) = known();
    let docs = all_docs(&resources);
    let deployments: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "Deployment").collect();
    assert_eq!(deployments.len(), 2, "workers and façades");
    for deployment in deployments {
        let name = deployment["metadata"]["name"].as_str().unwrap();
        let c = container(deployment);
        let env = env_of(c);
        assert!(env.len() > 5, "{name}: configured by environment");
        assert_known_env(name, env.keys().map(String::as_str));
        for arg in ["command", "args"]
            .iter()
            .filter_map(|k| c[k].as_array())
            .flatten()
        {
            let flag = arg.as_str().unwrap().split('=').next().unwrap();
            if flag.starts_with("--") {
                assert!(longs.contains(flag), "{name}: unknown flag {flag}");
            }
        }
        // The binary listens on 127.0.0.1 by default; pods must listen on every interface.
        assert_eq!(value(&env, "HTTP_ADDR"), "0.0.0.0:8000", "{name}");
        assert_eq!(value(&env, "GRPC_ADDR"), "0.0.0.0:50051", "{name}");
    }
}

#[test]
fn the_facade_reaches_the_workers_through_the_headless_service() {
    let Some(resources) = kube_resources() else {
        return;
    };
    let docs = all_docs(&resources);
    let kustomization = yaml_docs(&kube_dir().join("kustomization.yaml")).unwrap();
    let namespace = kustomization[0]["namespace"].as_str().unwrap();
    assert_eq!(find(&docs, "Namespace", namespace)["kind"], "Namespace");

    let workers = find(&docs, "Deployment", "claude-gateway-worker");
    let facade = find(&docs, "Deployment", "claude-gateway-facade");
    let headless = find(&docs, "Service", "claude-gateway-workers");
    assert_eq!(
        headless["spec"]["clusterIP"], "None",
        "workers' Service must be headless"
    );
    assert_eq!(
        headless["spec"]["selector"], workers["spec"]["template"]["metadata"]["labels"],
        "the headless Service selects the worker pods"
    );
    let port = &headless["spec"]["ports"][0];
    assert_eq!(port["port"], 50051);

    let env = env_of(container(facade));
    let upstream = format!("http://claude-gateway-workers.{namespace}.svc.cluster.local:50051");
    assert_eq!(value(&env, "UPSTREAM"), upstream);
    // A key over plain http:// to another host is refused at startup without
    // UPSTREAM_INSECURE; with the manifest's value the façade goes on to reach the worker.
    assert_eq!(value(&env, "UPSTREAM_INSECURE"), "true");
    let refused = facade_doctor(&upstream, "false");
    assert!(
        refused.contains("refusing to send --upstream-api-key"),
        "{refused}"
    );
    let accepted = facade_doctor(&upstream, value(&env, "UPSTREAM_INSECURE"));
    assert!(
        accepted.contains("unreachable") && !accepted.contains("refusing"),
        "{accepted}"
    );
    let client = find(&docs, "Service", "claude-gateway");
    assert_eq!(
        client["spec"]["selector"],
        facade["spec"]["template"]["metadata"]["labels"]
    );
    let ports: BTreeSet<&str> = client["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["targetPort"].as_str().unwrap())
        .collect();
    assert_eq!(ports, BTreeSet::from(["http", "grpc"]));
}

/// Every secret a pod reads (env `secretKeyRef`, secret volumes) is one secrets.example.yaml
/// describes, with that key; and the credentials come from Secrets, never literals.
#[test]
fn every_secret_reference_is_described_and_no_secret_is_inline() {
    let Some(resources) = kube_resources() else {
        return;
    };
    let examples = yaml_docs(&kube_dir().join("secrets.example.yaml")).unwrap();
    let described: BTreeSet<(String, String)> = examples
        .iter()
        .flat_map(|s| {
            let name = s["metadata"]["name"].as_str().unwrap().to_string();
            let keys: Vec<String> = s["stringData"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            keys.into_iter().map(move |k| (name.clone(), k))
        })
        .collect();
    let docs = all_docs(&resources);
    let mut referenced = BTreeSet::new();
    for deployment in docs.iter().filter(|d| d["kind"] == "Deployment") {
        let env = env_of(container(deployment));
        for entry in env.values() {
            if let Some(r) = entry["valueFrom"].get("secretKeyRef") {
                referenced.insert((
                    r["name"].as_str().unwrap().into(),
                    r["key"].as_str().unwrap().into(),
                ));
            }
        }
        for volume in deployment["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .unwrap()
        {
            if let Some(secret) = volume.get("secret") {
                for item in secret["items"].as_array().unwrap() {
                    referenced.insert((
                        secret["secretName"].as_str().unwrap().into(),
                        item["key"].as_str().unwrap().into(),
                    ));
                }
            }
        }
        for name in [
            "SESSION_STORE",
            "RATE_LIMIT_STORE",
            "ANTHROPIC_API_KEY",
            "UPSTREAM_API_KEY",
        ] {
            if let Some(entry) = env.get(name) {
                assert!(
                    entry.get("value").is_none(),
                    "{name} must come from a Secret"
                );
            }
        }
    }
    let missing: Vec<_> = referenced.difference(&described).collect();
    assert!(
        missing.is_empty(),
        "not in secrets.example.yaml: {missing:?}"
    );

    let workers = env_of(container(find(
        &docs,
        "Deployment",
        "claude-gateway-worker",
    )));
    let facade = env_of(container(find(
        &docs,
        "Deployment",
        "claude-gateway-facade",
    )));
    let store = |env: &BTreeMap<String, Value>, name: &str| {
        env[name]["valueFrom"]["secretKeyRef"]["name"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // Sessions and rate limits live in one PostgreSQL, whose URL is one Secret.
    assert_eq!(
        store(&workers, "SESSION_STORE"),
        store(&facade, "RATE_LIMIT_STORE")
    );
    assert!(workers.contains_key("ANTHROPIC_API_KEY") && !facade.contains_key("ANTHROPIC_API_KEY"));
    assert!(
        workers.contains_key("GATEWAY_API_KEYS_FILE") && facade.contains_key("UPSTREAM_API_KEY")
    );
    // The worker keys file admits the façade's key as an admin (so tenants pass through).
    let keys = examples
        .iter()
        .find(|s| s["metadata"]["name"] == "claude-gateway-worker-keys");
    let line = keys.unwrap()["stringData"]["keys"].as_str().unwrap();
    let upstream_key = examples
        .iter()
        .find(|s| s["metadata"]["name"] == "claude-gateway-facade")
        .unwrap()["stringData"]["upstream-api-key"]
        .as_str()
        .unwrap();
    assert!(
        line.starts_with(&format!("{upstream_key} ")) && line.contains("role=admin"),
        "{line}"
    );
}

#[test]
fn probes_draining_and_memory_follow_the_gateway() {
    let Some(resources) = kube_resources() else {
        return;
    };
    let docs = all_docs(&resources);
    for name in ["claude-gateway-worker", "claude-gateway-facade"] {
        let deployment = find(&docs, "Deployment", name);
        let pod = &deployment["spec"]["template"]["spec"];
        let c = container(deployment);
        let env = env_of(c);
        assert_eq!(
            c["livenessProbe"]["httpGet"]["path"], "/health/live",
            "{name}"
        );
        assert_eq!(
            c["readinessProbe"]["httpGet"]["path"], "/health/ready",
            "{name}"
        );
        // SIGTERM → not ready at once, still serving for the delay, then the grace for running
        // requests, then 2 s for the cut streams' last event (src/lib.rs `run`).
        let needed = secs(&env, "SHUTDOWN_DELAY_SECS") + secs(&env, "SHUTDOWN_GRACE_SECS") + 2;
        let period = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
        assert!(
            period >= needed,
            "{name}: {period} s < {needed} s needed to drain"
        );
        // The readiness probe notices draining well within the delay.
        let probe = &c["readinessProbe"];
        let noticed =
            probe["periodSeconds"].as_u64().unwrap() * probe["failureThreshold"].as_u64().unwrap();
        assert!(noticed < secs(&env, "SHUTDOWN_DELAY_SECS"), "{name}");
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_ne!(pod["securityContext"]["runAsUser"], 0, "{name}");
        assert_eq!(
            c["securityContext"]["readOnlyRootFilesystem"], true,
            "{name}"
        );
        assert_eq!(
            c["securityContext"]["allowPrivilegeEscalation"], false,
            "{name}"
        );
        let mounts: BTreeSet<&str> = c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["mountPath"].as_str().unwrap())
            .collect();
        assert!(mounts.contains("/tmp"), "{name}: a writable /tmp");
        let labels = &deployment["spec"]["template"]["metadata"]["labels"];
        let pdb = docs.iter().find(|d| {
            d["kind"] == "PodDisruptionBudget" && d["spec"]["selector"]["matchLabels"] == *labels
        });
        assert!(
            pdb.is_some(),
            "{name}: no PodDisruptionBudget selects its pods"
        );
    }

    let workers = find(&docs, "Deployment", "claude-gateway-worker");
    let c = container(workers);
    let env = env_of(c);
    let grpc = &c["startupProbe"]["grpc"];
    assert_eq!(grpc["port"], 50051);
    assert_eq!(grpc["service"], "claude_gateway.v1.ChatService");
    assert!(
        read("src/grpc/mod.rs")
            .contains("CHAT_SERVICE_NAME: &str = \"claude_gateway.v1.ChatService\"")
    );
    // The CLI writes its state under HOME: a writable volume there.
    assert!(
        c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["mountPath"] == "/home/gateway")
    );
    // Memory is the processes' budget: MAX_PROCESSES × 250 MiB + the gateway, request = limit.
    let processes: u64 = value(&env, "MAX_PROCESSES").parse().unwrap();
    let request = mebibytes(c["resources"]["requests"]["memory"].as_str().unwrap());
    let limit = mebibytes(c["resources"]["limits"]["memory"].as_str().unwrap());
    assert!(
        request >= processes * MIB_PER_PROCESS + GATEWAY_MIB,
        "{request} MiB for {processes}"
    );
    assert!(
        request < (processes + 1) * MIB_PER_PROCESS + GATEWAY_MIB,
        "{request} MiB over-asks"
    );
    assert_eq!(request, limit);
}

/// What `claude-gateway doctor` says of a façade configured like the manifest's, with a key
/// (here, outside the cluster, the worker's name does not resolve: the check fails either way,
/// but for a different reason).
fn facade_doctor(upstream: &str, insecure: &str) -> String {
    let home = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::BIN)
        .arg("doctor")
        .env("UPSTREAM", upstream)
        .env("UPSTREAM_API_KEY", "facade-key")
        .env("UPSTREAM_INSECURE", insecure)
        .env("UPSTREAM_CONNECT_TIMEOUT_SECS", "2")
        .env("UPSTREAM_TIMEOUT_SECS", "2")
        .env("HOME", home.path())
        .current_dir(home.path())
        .output()
        .unwrap();
    common::text(&out.stdout)
}
