//! The dashboard in a real browser: a gateway on the fake CLI serves a few requests (one that
//! reports the account's usage windows, one refused), then Debian's headless Chromium, driven
//! through Selenium (`tests/python/dashboard_browser.py`), logs in with the admin key, waits for
//! the page to show the request just made, checks that nothing it loaded came from anywhere but
//! the gateway, and saves `target/dashboard.png` (and `target/dashboard-dark.png`) for CI to keep.
//! The key table is the usage ledger's rows and the key's budgets from the keys file, with their
//! bars; the recent list leaves out the page's own reads of `/v1/usage` and `/v1/budgets`.
//! `docs/dashboard.png` in the README is a copy of `target/dashboard.png`.
//! The browser, its driver and Selenium missing fail the test (`skip.rs`).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use tokio::process::Command;

const TEST_TIMEOUT: Duration = Duration::from_secs(120);

fn system_tool(path: &str, install: &str) -> Option<PathBuf> {
    let path = PathBuf::from(path);
    if path.exists() {
        return Some(path);
    }
    skip::missing(&path.display().to_string(), install);
    None
}

#[tokio::test]
async fn the_dashboard_shows_a_fresh_request_in_a_real_browser_with_no_outside_request() {
    let install = "apt-get install chromium chromium-driver (.ci/install-tools)";
    let (Some(python), Some(chromium), Some(driver)) = (
        tool("venv/bin/python"),
        system_tool("/usr/bin/chromium", install),
        system_tool("/usr/bin/chromedriver", install),
    ) else {
        return;
    };
    tokio::time::timeout(TEST_TIMEOUT, async {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        std::fs::write(
            &keys,
            "sk-dash-admin role=admin name=ops\n\
             sk-dash-user name=alice budget.requests.day=10 budget.usd.month=5\n",
        )
        .unwrap();
        let gw = FakeCliGateway::start(&["--api-keys-file", keys.to_str().unwrap()]).await;
        let send = |key: &'static str, body: serde_json::Value| {
            let url = gw.gw.url("/v1/chat/completions");
            async move {
                client()
                    .post(url)
                    .bearer_auth(key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
        let body = |text: &str| chat_body("sonnet", text);
        assert_eq!(
            send(
                "sk-dash-user",
                body("Hello [[rate_limit_event]] [[delay_ms:20]]")
            )
            .await,
            200
        );
        assert_eq!(
            send("sk-dash-user", body("A second one [[first_delay_ms:150]]")).await,
            200
        );
        let refused = serde_json::json!({"model": "sonnet", "messages": []});
        assert_eq!(send("sk-dash-user", refused).await, 400);

        let shot = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap()
            .join("dashboard.png");
        let _ = std::fs::remove_file(&shot);
        let out = run(Command::new(&python)
            .arg(repo_path("tests/python/dashboard_browser.py"))
            .args([
                gw.gw.http.as_str(),
                "sk-dash-admin",
                shot.to_str().unwrap(),
                "/v1/chat/completions",
            ])
            .env("CHROMIUM_BIN", &chromium)
            .env("CHROMEDRIVER_BIN", &driver)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("PYTHONDONTWRITEBYTECODE", "1"))
        .await;
        assert!(
            out.status.success(),
            "{}\n--- gateway stderr ---\n{}",
            describe("the browser script", &out),
            gw.gw.stderr()
        );
        let seen: serde_json::Value =
            serde_json::from_str(text(&out.stdout).lines().last().unwrap()).unwrap();
        eprintln!("browser saw: {seen:#}");
        assert!(
            seen["recent"]
                .as_str()
                .unwrap()
                .contains("POST /v1/chat/completions"),
            "{seen}"
        );
        assert!(
            seen["recent"].as_str().unwrap().contains("invalid_request")
                || seen["recent"].as_str().unwrap().contains("400"),
            "{seen}"
        );
        assert_eq!(seen["cards"]["c-completions"], "3", "{seen}");
        assert!(seen["quota"].as_str().unwrap().contains("93%"), "{seen}");
        // The usage ledger's own rows for the two completions (the refused one has none), and
        // alice's budgets from the keys file with what is spent.
        let keys = seen["keys"].as_str().unwrap();
        assert!(keys.contains("alice 2 "), "{seen}");
        assert!(keys.contains("2 / 10 requests per day"), "{seen}");
        assert!(
            keys.contains("$5.00") && keys.contains("per month"),
            "{seen}"
        );
        // The page's own polls of the operator's endpoints are not traffic.
        let recent = seen["recent"].as_str().unwrap();
        assert!(
            !recent.contains("/v1/usage") && !recent.contains("/v1/budgets"),
            "{seen}"
        );
        let distinct: Vec<&str> = seen["distinct"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_str().unwrap())
            .collect();
        for path in [
            "/dashboard",
            "/dashboard/style.css",
            "/dashboard/app.js",
            "/dashboard/data",
        ] {
            assert!(
                distinct.contains(&format!("{}{path}", gw.gw.http).as_str()),
                "{path} not loaded: {distinct:?}"
            );
        }
        let size = std::fs::metadata(&shot).unwrap().len();
        assert!(size > 20_000, "the screenshot is {size} bytes");
    })
    .await
    .expect("test exceeded its time limit");
}
