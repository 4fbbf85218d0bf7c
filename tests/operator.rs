//! The operator's view, over real sockets with the fake CLI: the Claude account's usage windows
//! (the CLI's `rate_limit_event`, emitted by the fake on `[[rate_limit_event]]` from the
//! recorded fixture) at `GET /v1/quota`, in `/metrics` and in `/health/ready`, refusing
//! `priority=low` keys above `--quota-low-priority-threshold`, and reaching a façade through its
//! worker's load reports; and who may see the dashboard (login form, 403 for user keys, the
//! session cookie, `--dashboard-open-on-loopback`, the CSP). Every test body is bounded.
#![allow(clippy::unwrap_used)]

mod common;

use std::future::Future;
use std::time::Duration;

use common::*;
use serde_json::Value;

const TEST_TIMEOUT: Duration = Duration::from_secs(60);

async fn bounded(body: impl Future<Output = ()>) {
    tokio::time::timeout(TEST_TIMEOUT, body)
        .await
        .expect("test exceeded its time limit");
}

const KEY_FILE: &str = "\
sk-admin role=admin name=ops
sk-user name=alice
sk-batch name=batch priority=low
";

async fn keyed(extra: &[&str]) -> (FakeCliGateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys");
    std::fs::write(&file, KEY_FILE).unwrap();
    let mut args = vec!["--api-keys-file", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    let gw = FakeCliGateway::start(&args).await;
    (gw, dir)
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn get(url: &str, key: Option<&str>) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = client().get(url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

async fn chat(gw: &Gateway, key: &str, text: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&chat_body("sonnet", text))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.json().await.unwrap())
}

fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn quota_windows_reach_the_endpoint_metrics_and_readiness() {
    bounded(async {
        let (gw, _dir) = keyed(&[]).await;
        let (status, _, body) = get(&gw.gw.url("/v1/quota"), Some("sk-admin")).await;
        assert_eq!(status, 200, "{body}");
        let empty: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(empty["data"].as_array().unwrap().len(), 0, "{body}");

        let (status, _, _) = chat(&gw.gw, "sk-user", "Hello [[rate_limit_event]]").await;
        assert_eq!(status, 200);

        let (status, _, body) = get(&gw.gw.url("/v1/quota"), Some("sk-admin")).await;
        assert_eq!(status, 200, "{body}");
        let quota: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(quota["object"], "list");
        let data = quota["data"].as_array().unwrap();
        assert_eq!(data.len(), 2, "{body}");
        let five = &data[0];
        assert_eq!(five["window"], "five_hour");
        assert_eq!(five["status"], "allowed_warning");
        assert_eq!(five["utilization"], 0.93);
        let resets = five["resets_at"].as_i64().unwrap() - now();
        assert!((7_100..=7_300).contains(&resets), "resets in {resets} s");
        assert_eq!(five["overage"]["status"], "allowed");
        assert_eq!(five["overage"]["in_use"], false);
        assert_eq!(data[1]["window"], "seven_day");
        assert_eq!(data[1]["utilization"], 0.41);

        // Not a tenant's business: a user key is refused.
        let (status, _, body) = get(&gw.gw.url("/v1/quota"), Some("sk-user")).await;
        assert_eq!(status, 403, "{body}");
        let error: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["error"]["code"], "permission_denied");

        let (_, _, text) = get(&gw.gw.url("/metrics"), None).await;
        let util = metric(
            &text,
            "claude_gateway_quota_utilization{window=\"five_hour\"}",
        );
        assert_eq!(util, Some(0.93), "{text}");
        let at = metric(
            &text,
            "claude_gateway_quota_resets_at_seconds{window=\"seven_day\"}",
        );
        assert_eq!(at, data[1]["resets_at"].as_f64());
        for (status, value) in [
            ("allowed_warning", 1.0),
            ("allowed", 0.0),
            ("rejected", 0.0),
        ] {
            let prefix =
                format!("claude_gateway_quota_status{{status=\"{status}\",window=\"five_hour\"}}");
            assert_eq!(metric(&text, &prefix), Some(value), "{prefix}\n{text}");
        }

        let (status, _, body) = get(&gw.gw.url("/health/ready"), None).await;
        assert_eq!(status, 200, "{body}");
        let ready: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(ready["status"], "ready");
        assert_eq!(ready["quota"][0]["window"], "five_hour");
    })
    .await;
}

#[tokio::test]
async fn low_priority_keys_wait_while_a_window_is_above_the_threshold() {
    bounded(async {
        let (gw, _dir) = keyed(&["--quota-low-priority-threshold", "0.9"]).await;
        // Below the threshold everybody is served.
        let (status, _, _) = chat(&gw.gw, "sk-user", "Hi [[rate_limit_event:0.5]]").await;
        assert_eq!(status, 200);
        let (status, _, body) = chat(&gw.gw, "sk-batch", "Hi").await;
        assert_eq!(status, 200, "{body}");
        let before = gw.prompts();

        // Now the five-hour window is 93% used: the low-priority key waits for its reset.
        let (status, _, _) = chat(&gw.gw, "sk-user", "Hi [[rate_limit_event]]").await;
        assert_eq!(status, 200);
        let (status, headers, body) = chat(&gw.gw, "sk-batch", "Hi").await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("five_hour") && message.contains("93%"),
            "{message}"
        );
        let retry: i64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((7_100..=7_200).contains(&retry), "retry-after {retry}");
        assert_eq!(
            gw.prompts(),
            before + 1,
            "the refused request reached the CLI"
        );
        // Normal keys go on.
        let (status, _, _) = chat(&gw.gw, "sk-user", "Hi").await;
        assert_eq!(status, 200);
    })
    .await;
}

#[tokio::test]
async fn a_facade_shows_its_workers_quota_windows() {
    bounded(async {
        let worker = FakeCliGateway::start(&[]).await;
        let facade = Gateway::builder()
            .args(["--upstream", worker.gw.grpc.as_str()])
            .start()
            .await;
        let (status, _, body) = post_json(
            &facade.url("/v1/chat/completions"),
            &chat_body("sonnet", "Hi [[rate_limit_event]]"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        // The worker's next load report carries the windows (reports follow changes).
        let url = facade.url("/v1/quota");
        let mut windows = Vec::new();
        for _ in 0..100 {
            let (_, _, body) = get(&url, None).await;
            let quota: Value = serde_json::from_str(&body).unwrap();
            windows = quota["data"].as_array().unwrap().clone();
            if !windows.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            windows.len(),
            2,
            "the façade never saw its worker's windows"
        );
        assert_eq!(windows[0]["window"], "five_hour");
        assert_eq!(windows[0]["utilization"], 0.93);
        let (_, _, text) = get(&facade.url("/metrics"), None).await;
        assert_eq!(
            metric(
                &text,
                "claude_gateway_quota_utilization{window=\"seven_day\"}"
            ),
            Some(0.41)
        );
    })
    .await;
}

/// The `cg_dashboard=TOKEN` of a `Set-Cookie`, with its attributes.
fn session_cookie(headers: &reqwest::header::HeaderMap) -> (String, String) {
    let set = headers["set-cookie"].to_str().unwrap().to_string();
    let pair = set.split(';').next().unwrap().trim().to_string();
    (pair, set)
}

#[tokio::test]
async fn the_dashboard_takes_an_admin_login_and_refuses_everyone_else() {
    bounded(async {
        let (gw, _dir) = keyed(&[]).await;
        let http = no_redirects();

        // Nobody: the login form, with the strict CSP; the data is 401.
        let (status, headers, body) = get(&gw.gw.url("/dashboard"), None).await;
        assert_eq!(status, 401);
        assert!(
            body.contains("name=\"key\"") && body.contains("/dashboard/login"),
            "{body}"
        );
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'self'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(
            !body.contains("<script>") && !body.contains("style="),
            "inline code: {body}"
        );
        let (status, _, body) = get(&gw.gw.url("/dashboard/data"), None).await;
        assert_eq!(status, 401, "{body}");

        // A user key: 403, by header and by the form.
        let (status, _, body) = get(&gw.gw.url("/dashboard/data"), Some("sk-user")).await;
        assert_eq!(status, 403, "{body}");
        let error: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["error"]["code"], "permission_denied");
        let login = gw.gw.url("/dashboard/login");
        let response = http
            .post(&login)
            .form(&[("key", "sk-user")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403);
        assert!(response.headers().get("set-cookie").is_none());
        let response = http
            .post(&login)
            .form(&[("key", "sk-nope")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);

        // An admin key: a session cookie (never the key), then the page and its data.
        let response = http
            .post(&login)
            .form(&[("key", "sk-admin")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        assert_eq!(response.headers()["location"], "/dashboard");
        let (cookie, set) = session_cookie(response.headers());
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        assert!(
            cookie.starts_with("cg_dashboard=") && !cookie.contains("sk-admin"),
            "{cookie}"
        );
        assert_eq!(cookie.len(), "cg_dashboard=".len() + 64, "{cookie}");
        let with = |path: &str| http.get(gw.gw.url(path)).header("cookie", cookie.clone());
        let page = with("/dashboard").send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert!(
            page.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("'self'")
        );
        let page = page.text().await.unwrap();
        assert!(
            page.contains("/dashboard/app.js") && !page.contains("<script>"),
            "{page}"
        );
        let data = with("/dashboard/data").send().await.unwrap();
        assert_eq!(data.status(), 200);
        let data: Value = data.json().await.unwrap();
        assert!(data["numbers"]["ttft"]["bounds"].is_array(), "{data}");
        assert!(data["load"]["capacity"].as_u64().unwrap() > 0, "{data}");
        // The cookie opens the operator reads the page makes, and nothing else.
        assert_eq!(with("/v1/quota").send().await.unwrap().status(), 200);
        for read in ["/v1/usage?group_by=key", "/v1/budgets"] {
            let answer = with(read).send().await.unwrap();
            assert_eq!(answer.status(), 200, "{read}");
            let body: Value = answer.json().await.unwrap();
            assert_eq!(body["object"], "list", "{read}: {body}");
        }
        assert_eq!(with("/v1/models").send().await.unwrap().status(), 401);
        let post = http
            .post(gw.gw.url("/v1/chat/completions"))
            .header("cookie", cookie.clone())
            .json(&chat_body("sonnet", "Hi"))
            .send()
            .await
            .unwrap();
        assert_eq!(post.status(), 401);
        // An admin key by header works without a login; the assets are public.
        let (status, _, _) = get(&gw.gw.url("/dashboard/data"), Some("sk-admin")).await;
        assert_eq!(status, 200);
        let (status, headers, _) = get(&gw.gw.url("/dashboard/app.js"), None).await;
        assert_eq!(status, 200);
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/javascript")
        );

        // Logging out ends the session.
        let out = http
            .post(gw.gw.url("/dashboard/logout"))
            .header("cookie", cookie.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(out.status(), 303);
        assert_eq!(with("/dashboard/data").send().await.unwrap().status(), 401);
    })
    .await;
}

#[tokio::test]
async fn open_on_loopback_lets_local_clients_in_without_a_login() {
    bounded(async {
        let (closed, _d1) = keyed(&[]).await;
        let (status, _, _) = get(&closed.gw.url("/dashboard/data"), None).await;
        assert_eq!(status, 401);
        let (open, _d2) = keyed(&["--dashboard-open-on-loopback"]).await;
        let (status, _, body) = get(&open.gw.url("/dashboard"), None).await;
        assert_eq!(status, 200);
        assert!(body.contains("/dashboard/app.js"), "{body}");
        let (status, _, _) = get(&open.gw.url("/dashboard/data"), None).await;
        assert_eq!(status, 200);
        let (status, _, _) = get(&open.gw.url("/v1/quota"), None).await;
        assert_eq!(status, 200);
        // The API itself still needs a key.
        let (status, _, _) = get(&open.gw.url("/v1/models"), None).await;
        assert_eq!(status, 401);
    })
    .await;
}
