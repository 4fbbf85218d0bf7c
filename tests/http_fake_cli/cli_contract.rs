//! What reaches the CLI: stdin not argv, isolating flags, images, environment, private directory.

use super::*;

// ------------------------------------------------------------------------------------------
// 3. What reaches the CLI
// ------------------------------------------------------------------------------------------

/// Environment variables the CLI may see: the gateway's pass-through list, the ones it sets, and
/// the test's `--pass-env FAKE_CLAUDE_LOG_DIR`.
pub(crate) const ALLOWED_ENV: &[&str] = &[
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
    "CLAUDE_CODE_MAX_RETRIES",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
    "DISABLE_TELEMETRY",
    "DISABLE_AUTOUPDATER",
    "DISABLE_ERROR_REPORTING",
    "CLAUDE_CODE_MAX_OUTPUT_TOKENS",
    "CLAUDE_CODE_TMPDIR",
    "TMPDIR",
    "FAKE_CLAUDE_LOG_DIR",
];

/// Variables the fake's interpreter adds on its own way up, whatever the gateway passed: Python
/// sets LC_CTYPE under a C locale (PEP 538), and when `python3` is a pyenv shim (a bash script)
/// bash adds PWD/SHLVL/_ and pyenv its PYENV_* variables.
pub(crate) fn added_by_interpreter(name: &str) -> bool {
    matches!(name, "LC_CTYPE" | "PWD" | "OLDPWD" | "SHLVL" | "_")
        || name.starts_with("PYENV_")
        || name.starts_with("_PYENV_")
}

#[tokio::test]
pub(crate) async fn prompts_travel_on_stdin_never_on_argv() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let body = json!({"model": "gpt-4o", "messages": [
            {"role": "system", "content": "Be brief, SYSMARK."},
            {"role": "user", "content": "My name is Ada. HISTMARK"},
            {"role": "assistant", "content": "Hi Ada."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
            {"role": "user", "content": "What is my name? PROMPTMARK"},
        ]});
        let (status, _, reply) = post_json(&completions(&fake), &body).await;
        assert_eq!(status, 200, "{reply}");
        assert_eq!(
            reply["choices"][0]["message"]["content"],
            "Echo: What is my name? PROMPTMARK"
        );
        let runs = fake.runs();
        assert_eq!(runs.len(), 1, "one process per request");
        let run = &runs[0];

        let args = argv(run).join(" ");
        for secret in ["SYSMARK", "HISTMARK", "PROMPTMARK", "Ada", "English"] {
            assert!(!args.contains(secret), "{secret} on argv: {args}");
        }

        let stdin = run["stdin"].as_array().unwrap();
        assert_eq!(stdin.len(), 4, "{stdin:#?}");
        assert_eq!(stdin[0]["type"], "control_request");
        assert_eq!(stdin[0]["request"]["subtype"], "initialize");
        assert_eq!(
            stdin[0]["request"]["systemPrompt"],
            json!(["Be brief, SYSMARK.\n\nAnswer in English."])
        );
        assert_eq!(stdin[1]["type"], "user");
        assert_eq!(stdin[1]["shouldQuery"], false);
        assert_eq!(stdin[1]["message"]["role"], "user");
        assert_eq!(
            stdin[1]["message"]["content"][0],
            json!({"type": "text", "text": "My name is Ada. HISTMARK"})
        );
        assert_eq!(stdin[2]["type"], "assistant");
        assert_eq!(stdin[2]["message"]["role"], "assistant");
        assert_eq!(stdin[2]["message"]["content"][0]["text"], "Hi Ada.");
        assert_eq!(stdin[3]["type"], "user");
        assert_ne!(stdin[3]["shouldQuery"], false, "the last line must query");
        assert_eq!(
            stdin[3]["message"]["content"],
            json!([{"type": "text", "text": "What is my name? PROMPTMARK"}])
        );
    })
    .await;
}

#[tokio::test]
pub(crate) async fn argv_isolates_the_cli_and_maps_the_model() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, _, _) = post_json(&completions(&fake), &chat_body("gpt-4o", "ARGV1")).await;
        assert_eq!(status, 200);
        let run = run_with(&fake, "ARGV1").unwrap();
        let args = argv(&run);
        assert_eq!(flag_value(&run, "--tools").as_deref(), Some(""), "{args:?}");
        assert_eq!(flag_value(&run, "--setting-sources").as_deref(), Some(""));
        assert_eq!(flag_value(&run, "--model").as_deref(), Some("sonnet"));
        assert_eq!(
            flag_value(&run, "--input-format").as_deref(),
            Some("stream-json")
        );
        assert_eq!(
            flag_value(&run, "--output-format").as_deref(),
            Some("stream-json")
        );
        for flag in [
            "--strict-mcp-config",
            "--no-session-persistence",
            "--verbose",
        ] {
            assert!(args.iter().any(|a| a == flag), "{flag} missing: {args:?}");
        }
        for forbidden in [
            "--dangerously-skip-permissions",
            "-p",
            "--print",
            "--system-prompt",
        ] {
            assert!(
                !args.iter().any(|a| a == forbidden),
                "{forbidden}: {args:?}"
            );
        }
        assert!(!args.iter().any(|a| a.contains("dangerously")), "{args:?}");
        // Login mode (no ANTHROPIC_API_KEY for the gateway): no --bare.
        assert!(!args.iter().any(|a| a == "--bare"), "{args:?}");
        // The CLI's own retry default takes minutes to give up; the gateway's is 2.
        assert_eq!(run["env"]["CLAUDE_CODE_MAX_RETRIES"], "2");
        assert!(run["env"].get("CLAUDE_CODE_MAX_OUTPUT_TOKENS").is_none());

        // Other ids: the fast tier, an alias, a Claude id passed through.
        for (model, cli) in [
            ("gpt-3.5-turbo", "haiku"),
            ("opus", "opus"),
            ("claude-sonnet-4-5", "claude-sonnet-4-5"),
        ] {
            let marker = format!("ARGV-{model}");
            let (status, _, body) =
                post_json(&completions(&fake), &chat_body(model, &marker)).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["model"], model);
            let run = run_with(&fake, &marker).unwrap();
            assert_eq!(flag_value(&run, "--model").as_deref(), Some(cli), "{model}");
        }
    })
    .await;
}

#[tokio::test]
pub(crate) async fn image_data_url_arrives_as_a_native_image_block() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let url = format!("data:image/png;base64,{PNG_B64}");
        let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this? IMGMARK"},
            {"type": "image_url", "image_url": {"url": url, "detail": "low"}},
        ]}]});
        let (status, _, reply) = post_json(&completions(&fake), &body).await;
        assert_eq!(status, 200, "{reply}");
        let run = run_with(&fake, "IMGMARK").unwrap();
        let last = run["stdin"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(
            last["message"]["content"],
            json!([
                {"type": "text", "text": "What is this? IMGMARK"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
            ])
        );
        assert!(!argv(&run).join(" ").contains(PNG_B64));
    })
    .await;
}

#[tokio::test]
pub(crate) async fn cli_env_is_allow_listed_and_sets_retries() {
    bounded(async {
        let fake = start_with_env(
            &["--claude-max-retries", "3"],
            &[("SECRET_TOKEN", "x"), ("AWS_SECRET_ACCESS_KEY", "y")],
        )
        .await;
        let (status, _, _) = post_json(
            &completions(&fake),
            &json!({"model": "gpt-4o", "max_tokens": 50,
                    "messages": [{"role": "user", "content": "ENVMARK"}]}),
        )
        .await;
        assert_eq!(status, 200);
        let run = run_with(&fake, "ENVMARK").unwrap();
        let env = run["env"].as_object().unwrap();
        for name in env.keys() {
            assert!(
                ALLOWED_ENV.contains(&name.as_str()) || added_by_interpreter(name),
                "{name} reached the CLI: {:?}",
                env.keys().collect::<Vec<_>>()
            );
        }
        assert!(!env.contains_key("SECRET_TOKEN"));
        assert!(!env.contains_key("AWS_SECRET_ACCESS_KEY"));
        assert!(
            !env.contains_key("RUST_LOG"),
            "the gateway's own env leaked"
        );
        assert_eq!(env["CLAUDE_CODE_MAX_RETRIES"], "3");
        // Given to the running process on stdin (a warm one can serve it), which the CLI
        // applies to its own environment.
        assert_eq!(env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"], "50");
        let limit = run["stdin"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["request"]["subtype"] == "apply_flag_settings")
            .expect("the token limit is set on stdin");
        assert_eq!(
            limit["request"]["settings"]["env"]["CLAUDE_CODE_MAX_OUTPUT_TOKENS"],
            "50"
        );
        assert_eq!(
            env["FAKE_CLAUDE_LOG_DIR"].as_str(),
            fake.log_dir.path().to_str()
        );
        if let Ok(path) = std::env::var("PATH") {
            // A pyenv shim prepends its own directory; the gateway's PATH must follow.
            let seen = env["PATH"].as_str().unwrap();
            assert!(seen.ends_with(&path), "PATH passes through: {seen}");
        }
        // Temp files of the CLI stay inside the run's private directory.
        let dir = run_dir(&run);
        for var in ["TMPDIR", "CLAUDE_CODE_TMPDIR"] {
            let tmp = env[var].as_str().unwrap();
            assert!(
                Path::new(tmp).starts_with(&dir),
                "{var}={tmp} outside {dir:?}"
            );
        }
    })
    .await;
}

#[tokio::test]
pub(crate) async fn cli_runs_in_an_empty_private_directory_removed_afterwards() {
    bounded(async {
        // Without reuse the process ends with its request (reuse keeps it: `reuse.rs`).
        let (fake, work) = start_with_work_dir(&["--reuse-processes=false"]).await;
        let (status, _, _) = post_json(&completions(&fake), &chat_body("gpt-4o", "CWDMARK")).await;
        assert_eq!(status, 200);
        let run = run_with(&fake, "CWDMARK").unwrap();
        assert_eq!(run["cwd_entries"], json!([]), "cwd was not empty");
        let cwd = PathBuf::from(run["cwd"].as_str().unwrap());
        assert!(cwd.starts_with(work.path()), "{cwd:?} not under --work-dir");
        assert_ne!(cwd, work.path(), "each run gets its own directory");
        // The fake runs as its own process group leader (so the group can be killed).
        assert_eq!(run["pgid"], run["pid"]);
        assert_eq!(run["ppid"].as_u64(), Some(u64::from(fake.gw.pid())));
        assert_cleaned_up(&fake, &run).await;
        eventually("the work dir to be empty again", || {
            std::fs::read_dir(work.path()).unwrap().next().is_none()
        })
        .await;
    })
    .await;
}
