//! The hosts themselves: the real CLI on two worker hosts behind a façade host, and a façade
//! that follows a DNS name as workers join and leave it.

use super::*;

/// The real CLI (pinned) on two worker hosts, each against a fake Anthropic API on its own
/// loopback, behind a façade host: a completion, a stream, and a conversation whose resent
/// history keeps it on one worker, in one live CLI process, across hosts.
#[tokio::test]
async fn the_real_cli_serves_a_conversation_through_a_facade_across_hosts() {
    within(110, async {
        let Some(cli) = real_cli() else {
            return;
        };
        let cli = cli.display().to_string();
        let net = Netns::new("real").unwrap().unwrap();
        let hosts: Vec<Host> = (1..=2u8)
            .map(|i| net.host(&format!("w{i}"), 10 + i).unwrap())
            .collect();
        let facade_host = net.host("f1", 21).unwrap();
        let client = net.host("c", 30).unwrap();
        let mut apis = Vec::new();
        let mut workers = Vec::new();
        for host in &hosts {
            // Bound on that host's own 127.0.0.1: only its worker reaches it.
            let api = host.run(fake_anthropic::FakeAnthropic::start()).await;
            let base = api.base_url();
            let args = ["--claude-bin", cli.as_str(), "--claude-max-retries", "0"];
            let env = [("ANTHROPIC_API_KEY", "sk-test"), ("ANTHROPIC_BASE_URL", base.as_str())];
            workers.push(host.gateway_with_env(&args, &env).await.unwrap());
            apis.push(api);
        }
        let upstream = format!("{},{}", workers[0].grpc_url, workers[1].grpc_url);
        let facade = start(&facade_host, &["--upstream".into(), upstream]).await;
        let url = facade.url("/v1/chat/completions");
        let health = facade.url("/health");
        let turns = client
            .run(async move {
                serving(health, 2).await;
                let http = crate::common::client();
                let whole: Value = http
                    .post(&url)
                    .json(&json!({"model": "sonnet", "messages": [{"role": "user", "content": "Hello across hosts"}]}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert_eq!(
                    whole["choices"][0]["message"]["content"],
                    "You said: Hello across hosts",
                    "{whole}"
                );
                let streamed = http
                    .post(&url)
                    .json(&json!({"model": "sonnet", "stream": true,
                        "messages": [{"role": "user", "content": "[[words:5]] streamed"}]}))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                assert!(streamed.contains("w5") && streamed.trim_end().ends_with("data: [DONE]"), "{streamed}");
                // Three turns, the history resent each time.
                let mut messages = vec![json!({"role": "user", "content": "CONV-1 My name is Ada."})];
                let mut said = Vec::new();
                for turn in 2..=4 {
                    let answer: Value = http
                        .post(&url)
                        .json(&json!({"model": "sonnet", "messages": messages}))
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    let reply = answer["choices"][0]["message"].clone();
                    said.push(reply["content"].as_str().unwrap_or_default().to_string());
                    messages.push(reply);
                    messages.push(json!({"role": "user", "content": format!("CONV-{turn} more")}));
                }
                said
            })
            .await;
        assert_eq!(turns[0], "You said: CONV-1 My name is Ada.");
        // Where each conversation turn reached the API, and in which CLI session: a turn is
        // the highest CONV-n its request carries.
        let mut conv: Vec<(usize, usize, String)> = apis
            .iter()
            .enumerate()
            .flat_map(|(w, api)| {
                api.requests()
                    .into_iter()
                    .zip(api.request_headers())
                    .filter_map(move |(body, headers)| {
                        let text = body.to_string();
                        let turn = (1..=3).rev().find(|n| text.contains(&format!("CONV-{n}")))?;
                        let session = headers
                            .iter()
                            .find(|(k, _)| k == "x-claude-code-session-id")
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default();
                        Some((turn, w, session))
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        conv.sort();
        eprintln!("conversation turns (turn, worker, CLI session): {conv:?}");
        assert_eq!(conv.len(), 3, "{conv:?}");
        // The 2nd and 3rd turns resend the history: one worker, one live process (the first
        // went wherever load was lowest).
        assert_eq!(
            (conv[1].1, &conv[1].2),
            (conv[2].1, &conv[2].2),
            "turns 2 and 3 must continue one process: {conv:?}"
        );
        assert!(workers.iter().all(|w| w.stderr().contains("claude CLI found")));
    })
    .await;
}

/// `/etc/netns/<ns>/hosts`, which `ip netns exec` mounts over `/etc/hosts` for what it starts:
/// a DNS name of the façade host's own, rewritten in place while the façade runs. Removed
/// when dropped.
struct HostsFile(std::path::PathBuf);

impl HostsFile {
    fn new(host: &Host) -> Self {
        let dir = std::path::Path::new("/etc/netns").join(host.netns());
        std::fs::create_dir_all(&dir).unwrap();
        let file = HostsFile(dir.join("hosts"));
        file.write(&[]);
        file
    }

    /// The name `workers.test` for `addrs`, written into the same inode (the mount holds it).
    fn write(&self, addrs: &[std::net::Ipv4Addr]) {
        use std::io::Write;
        let mut text = String::from("127.0.0.1 localhost\n");
        for a in addrs {
            text.push_str(&format!("{a} workers.test\n"));
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.0)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }
}

impl Drop for HostsFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A façade given one DNS name (as a Kubernetes headless Service is) takes every address it
/// resolves to as a worker, and follows the answer as workers come and go.
#[tokio::test]
async fn a_dns_name_is_every_worker_it_resolves_to_and_is_followed() {
    within(110, async {
        let net = Netns::new("dns").unwrap().unwrap();
        let hosts: Vec<Host> = (1..=3u8)
            .map(|i| net.host(&format!("w{i}"), 10 + i).unwrap())
            .collect();
        let facade_host = net.host("f1", 21).unwrap();
        let client = net.host("c", 30).unwrap();
        let workers = futures::future::join_all(hosts.iter().map(|h| start(h, &[]))).await;
        let names = HostsFile::new(&facade_host);
        names.write(&[hosts[0].addr(), hosts[1].addr()]);
        let args = [
            "--upstream".to_string(),
            format!("http://workers.test:{}", common::netns::gateway::GRPC_PORT),
            "--upstream-resolve-secs".into(),
            "1".into(),
        ];
        let facade = start(&facade_host, &args).await;
        let health = facade.url("/health");
        let seen = client.run(serving(health.clone(), 2)).await;
        assert!(
            seen.contains(&hosts[0].addr().to_string())
                && seen.contains(&hosts[1].addr().to_string()),
            "{seen}"
        );
        // A third pod becomes ready: it joins within a resolve period and gets requests.
        names.write(&[hosts[0].addr(), hosts[1].addr(), hosts[2].addr()]);
        client.run(serving(health.clone(), 3)).await;
        let shots = (0..30).map(|i| shot_to(&facade, i, "hi", false)).collect();
        let outcomes = fire_from(&client, shots, 6).await;
        assert!(
            outcomes.iter().all(|o| *o == Outcome::Answered),
            "{outcomes:?}"
        );
        let spread: Vec<usize> = workers.iter().map(GatewayProc::prompts).collect();
        assert!(
            spread.iter().all(|n| *n > 0),
            "every resolved worker serves: {spread:?}"
        );
        // The first leaves the answer: it is no longer a worker, the others stay.
        names.write(&[hosts[1].addr(), hosts[2].addr()]);
        let seen = client.run(serving(health.clone(), 2)).await;
        assert!(!seen.contains(&format!("{}:", hosts[0].addr())), "{seen}");
        let before = workers[0].prompts();
        let shots = (0..12)
            .map(|i| shot_to(&facade, i, "after", false))
            .collect();
        let outcomes = fire_from(&client, shots, 4).await;
        assert!(
            outcomes.iter().all(|o| *o == Outcome::Answered),
            "{outcomes:?}"
        );
        assert_eq!(
            workers[0].prompts(),
            before,
            "a worker gone from the answer got requests"
        );
        drop(names);
    })
    .await;
}
