//! `--rate-limit-store`: per-key rate limits shared through PostgreSQL by every gateway using
//! the database. Each test gets a fresh schema of the database named by
//! `SESSION_TEST_POSTGRES_URL` (`.ci/start-postgres`); without it the tests fail, unless the run
//! opted out visibly (`tests/common/skip.rs`).
//!
//! End to end: two gateway binaries on the fake CLI, one asked over HTTP and one over gRPC,
//! share one budget of 10 requests a minute: the 11th is refused whichever door it knocks on,
//! with the headers the in-memory limiter gives for the same sequence, and a concurrent burst of
//! 30 across both admits exactly 10. In process: two `Access` on one store batch a burst into a
//! few statements, a store that stops answering costs one bounded wait (then the in-memory
//! limiter decides, until the store answers again), an unreachable store is an error at start
//! (and in `doctor`), and whole budgets are swept.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use claude_gateway::access::{Access, AccessConfig, Protocol, Route};
use claude_gateway::grpc::pb;
use claude_gateway::grpc::pb::model_service_client::ModelServiceClient;
use common::*;
use sqlx::Connection;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

fn within<F: std::future::Future>(secs: u64, f: F) -> tokio::time::Timeout<F> {
    tokio::time::timeout(Duration::from_secs(secs), f)
}

/// The URL of a fresh schema in the test database, or `None` when there is none and the run
/// opted out (else the test fails).
async fn fresh_store() -> Option<String> {
    let base = std::env::var("SESSION_TEST_POSTGRES_URL").unwrap_or_default();
    if base.is_empty() {
        skip::missing(
            "PostgreSQL (SESSION_TEST_POSTGRES_URL)",
            "run `export \"$(.ci/start-postgres)\"`",
        );
        return None;
    }
    let schema = format!("rl_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options[search_path]={schema}"))
}

/// What one request was told: its status and the rate-limit headers.
#[derive(Debug, Clone, PartialEq)]
struct Told {
    ok: bool,
    limit: String,
    remaining: String,
    reset_ms: u64,
    retry_after: Option<String>,
}

fn reset_ms(value: &str) -> u64 {
    // Go-style, as `openai_duration` writes it: `999ms`, `6s`, `53.99s`, `1m0s`.
    if let Some(ms) = value.strip_suffix("ms") {
        return ms.parse().unwrap();
    }
    let (minutes, rest) = value.split_once('m').unwrap_or(("0", value));
    let secs: f64 = rest.trim_end_matches('s').parse().unwrap();
    minutes.parse::<u64>().unwrap() * 60_000 + (secs * 1000.0).round() as u64
}

async fn over_http(gw: &Gateway, key: &str) -> Told {
    let response = client()
        .get(gw.url("/v1/models"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let h = response.headers().clone();
    let get = |name: &str| h.get(name).map(|v| v.to_str().unwrap().to_owned());
    Told {
        ok: response.status() == 200,
        limit: get("x-ratelimit-limit-requests").unwrap(),
        remaining: get("x-ratelimit-remaining-requests").unwrap(),
        reset_ms: reset_ms(&get("x-ratelimit-reset-requests").unwrap()),
        retry_after: get("retry-after"),
    }
}

async fn over_grpc(gw: &Gateway, key: &str) -> Told {
    let mut client = ModelServiceClient::connect(gw.grpc.clone()).await.unwrap();
    let mut request = tonic::Request::new(pb::ListModelsRequest::default());
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    let (ok, metadata) = match client.list_models(request).await {
        Ok(reply) => (true, reply.metadata().clone()),
        Err(status) => {
            assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
            (false, status.metadata().clone())
        }
    };
    let get = |name: &str| metadata.get(name).map(|v| v.to_str().unwrap().to_owned());
    Told {
        ok,
        limit: get("x-ratelimit-limit-requests").unwrap(),
        remaining: get("x-ratelimit-remaining-requests").unwrap(),
        reset_ms: reset_ms(&get("x-ratelimit-reset-requests").unwrap()),
        retry_after: get("retry-after"),
    }
}

/// The headers must agree exactly but for the reset, which moves with the clock.
fn assert_same(shared: &[Told], local: &[Told]) {
    assert_eq!(shared.len(), local.len());
    for (i, (s, l)) in shared.iter().zip(local).enumerate() {
        let (mut s0, mut l0) = (s.clone(), l.clone());
        (s0.reset_ms, l0.reset_ms) = (0, 0);
        assert_eq!(s0, l0, "request {}: {s:?} vs {l:?}", i + 1);
        assert!(
            s.reset_ms.abs_diff(l.reset_ms) < 2000,
            "request {}: {s:?} vs {l:?}",
            i + 1
        );
    }
}

#[tokio::test]
async fn two_gateways_share_one_budget_across_http_and_grpc() {
    within(120, async {
        let Some(store) = fresh_store().await else {
            return;
        };
        let flags = |keys: &'static str| {
            vec![
                "--api-keys",
                keys,
                "--rate-limit-rpm",
                "10",
                "--rate-limit-store",
                store.as_str(),
            ]
        };
        // The keys in a different order: a key's budget is not its place in the list.
        let one = FakeCliGateway::start(&flags("sk-a,sk-b,sk-burst")).await;
        let two = FakeCliGateway::start(&flags("sk-burst,sk-b,sk-a")).await;
        let local = FakeCliGateway::start(&["--api-keys", "sk-a", "--rate-limit-rpm", "10"]).await;

        // Alternating: odd requests over HTTP to one, even over gRPC to the other.
        let mut shared = Vec::new();
        let mut alone = Vec::new();
        for i in 0..11 {
            if i % 2 == 0 {
                shared.push(over_http(&one.gw, "sk-a").await);
                alone.push(over_http(&local.gw, "sk-a").await);
            } else {
                shared.push(over_grpc(&two.gw, "sk-a").await);
                alone.push(over_grpc(&local.gw, "sk-a").await);
            }
        }
        let remaining: Vec<&str> = shared.iter().map(|t| t.remaining.as_str()).collect();
        assert_eq!(
            remaining,
            ["9", "8", "7", "6", "5", "4", "3", "2", "1", "0", "0"]
        );
        assert!(shared[..10].iter().all(|t| t.ok && t.limit == "10"));
        let eleventh = &shared[10];
        assert!(!eleventh.ok, "{eleventh:?}");
        assert_eq!(eleventh.retry_after.as_deref(), Some("6"), "{eleventh:?}");
        assert_same(&shared, &alone);
        // The 12th, on the other door, is refused too.
        assert!(!over_http(&one.gw, "sk-a").await.ok);
        assert!(!over_grpc(&two.gw, "sk-a").await.ok);

        // Another key is unaffected, on either.
        let b = over_grpc(&two.gw, "sk-b").await;
        assert!(b.ok && b.remaining == "9", "{b:?}");
        let b = over_http(&one.gw, "sk-b").await;
        assert!(b.ok && b.remaining == "8", "{b:?}");

        // A burst of 30 at once, 15 at each door: exactly 10 get in.
        let http = (0..15).map(|_| async { over_http(&one.gw, "sk-burst").await.ok });
        let grpc = (0..15).map(|_| async { over_grpc(&two.gw, "sk-burst").await.ok });
        let (http, grpc) = tokio::join!(
            futures::future::join_all(http),
            futures::future::join_all(grpc)
        );
        let admitted = http.iter().chain(&grpc).filter(|ok| **ok).count();
        assert_eq!(admitted, 10, "http {http:?} grpc {grpc:?}");

        // What the store adds to a whole HTTP request (here refused ones: GET /v1/models).
        let (with, without) = (p50_http(&one.gw).await, p50_http(&local.gw).await);
        println!(
            "p50 of a rate-limited HTTP request: {with:?} with the store, {without:?} without"
        );
    })
    .await
    .unwrap();
}

/// The median time of 40 GET /v1/models with key `sk-a`.
async fn p50_http(gw: &Gateway) -> Duration {
    let mut took = Vec::new();
    for _ in 0..40 {
        let start = Instant::now();
        over_http(gw, "sk-a").await;
        took.push(start.elapsed());
    }
    took.sort();
    took[took.len() / 2]
}

fn config(keys: &[&str], rpm: u32, store: Option<&str>) -> AccessConfig {
    AccessConfig {
        api_keys: keys.iter().map(|k| k.parse().unwrap()).collect(),
        rate_limit_rpm: rpm,
        rate_limit_store: store.map(str::to_owned),
        ..AccessConfig::default()
    }
}

async fn admit(access: &Access, key: &str) -> bool {
    let auth = format!("Bearer {key}");
    access
        .admit(Route::Api, Protocol::Http, Some(&auth), None)
        .await
        .is_ok()
}

/// Statements per request under a burst, and the latency a decision adds. On two threads, so
/// requests arrive while statements are in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_batched_into_few_statements() {
    within(120, async {
        let Some(store) = fresh_store().await else {
            return;
        };
        let keys = ["sk-1", "sk-2"];
        let a = Arc::new(
            Access::open(&config(&keys, 10, Some(&store)))
                .await
                .unwrap(),
        );
        let b = Arc::new(
            Access::open(&config(&keys, 10, Some(&store)))
                .await
                .unwrap(),
        );
        let burst = (0..30).map(|i| {
            let access = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { admit(&access, "sk-1").await })
        });
        let admitted = futures::future::join_all(burst)
            .await
            .into_iter()
            .filter(|r| *r.as_ref().unwrap())
            .count();
        assert_eq!(admitted, 10);
        let statements =
            a.shared_limiter().unwrap().statements() + b.shared_limiter().unwrap().statements();
        println!(
            "burst of 30 over 2 instances: {statements} statements, {:.2} per request",
            statements as f64 / 30.0
        );
        assert!(statements <= 8, "{statements} statements for 30 requests");

        // The latency one admitted request pays, sequential, with the store and without.
        let big = Access::open(&config(&keys, 1_000_000, Some(&store)))
            .await
            .unwrap();
        let mem = Access::open(&config(&keys, 1_000_000, None)).await.unwrap();
        let p50 = |access: Access| async move {
            let mut took = Vec::new();
            for _ in 0..200 {
                let start = Instant::now();
                assert!(admit(&access, "sk-2").await);
                took.push(start.elapsed());
            }
            took.sort();
            took[took.len() / 2]
        };
        let (with, without) = (p50(big).await, p50(mem).await);
        println!("p50 of one decision: {with:?} with the store, {without:?} in memory");
        assert!(with < Duration::from_millis(50), "{with:?}");
    })
    .await
    .unwrap();
}

/// A TCP relay to PostgreSQL that can be made to stop answering: bytes from the gateway are then
/// swallowed, as by a partitioned network.
async fn stalling_relay(target: &str) -> (String, Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::atomic::AtomicBool;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stalled = Arc::new(AtomicBool::new(false));
    let (flag, target) = (stalled.clone(), target.to_owned());
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(&target).await.unwrap();
            let flag = flag.clone();
            tokio::spawn(async move {
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = relay(&mut cr, &mut sw, flag.clone());
                let down = relay(&mut sr, &mut cw, flag);
                let _ = tokio::join!(up, down);
            });
        }
    });
    (addr.to_string(), stalled)
}

async fn relay(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    stalled: Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            return;
        }
        if !stalled.load(std::sync::atomic::Ordering::SeqCst) {
            let Ok(()) = to.write_all(&buf[..n]).await else {
                return;
            };
        }
    }
}

#[tokio::test]
async fn a_store_that_stops_answering_costs_one_bounded_wait_then_counts_again() {
    within(60, async {
        let Some(store) = fresh_store().await else {
            return;
        };
        let url = reqwest::Url::parse(&store).unwrap();
        let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
        let (relay, stalled) = stalling_relay(&target).await;
        let through = store.replacen(&target, &relay, 1);
        let access = Access::open(&config(&["sk-1"], 3, Some(&through)))
            .await
            .unwrap();
        assert!(admit(&access, "sk-1").await);
        stalled.store(true, std::sync::atomic::Ordering::SeqCst);

        // The store does not answer: five requests at once are decided within the timeout,
        // from memory (3 a minute: 3 in, 2 out), none waiting for a second timeout.
        let start = Instant::now();
        let five = (0..5).map(|_| admit(&access, "sk-1"));
        let admitted = futures::future::join_all(five).await;
        let waited = start.elapsed();
        assert_eq!(admitted.iter().filter(|ok| **ok).count(), 3, "{admitted:?}");
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_millis(1800),
            "{waited:?}"
        );
        // Then the store is left alone for a while: no more waits, and the limit still holds.
        let start = Instant::now();
        assert!(!admit(&access, "sk-1").await);
        assert!(
            start.elapsed() < Duration::from_millis(100),
            "{:?}",
            start.elapsed()
        );
        // The store answers again: once the back-off is over, the shared budget counts again
        // (one request of sk-1 spent there before the stall, this one the second of three).
        stalled.store(false, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(5200)).await;
        let limiter = access.shared_limiter().unwrap();
        let before = limiter.statements();
        let auth = Some("Bearer sk-1");
        let again = access.admit(Route::Api, Protocol::Http, auth, None).await;
        assert_eq!(again.unwrap().quota.unwrap().remaining, 1);
        assert_eq!(limiter.statements(), before + 1);
        let metrics = claude_gateway::metrics::render();
        let errors = metrics
            .lines()
            .find_map(|l| l.strip_prefix("claude_gateway_rate_limit_store_errors_total "))
            .unwrap();
        assert!(errors.parse::<u64>().unwrap() >= 1, "{errors}");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_bad_or_unreachable_store_is_an_error_at_start() {
    within(60, async {
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let unreachable = format!("postgres://gw@127.0.0.1:{port}/gw");
        let start = Instant::now();
        let err = Access::open(&config(&["k"], 10, Some(&unreachable)))
            .await
            .err()
            .unwrap();
        assert!(
            err.contains("cannot connect to the rate-limit store"),
            "{err}"
        );
        assert!(start.elapsed() < Duration::from_secs(5));
        let err = Access::open(&config(&["k"], 10, Some("redis://127.0.0.1/0")))
            .await
            .err()
            .unwrap();
        assert!(err.contains("postgres://"), "{err}");

        // The binary says so and exits.
        let out = tokio::process::Command::new(BIN)
            .args(["--rate-limit-rpm", "10", "--rate-limit-store", &unreachable])
            .args(["--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"])
            .args(["--pool-size", "0", "--discover-models", "false"])
            .args(["--claude-bin", fake_cli().to_str().unwrap()])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .unwrap();
        assert!(!out.status.success());
        let stderr = text(&out.stderr);
        assert!(stderr.contains("rate-limit store"), "{stderr}");
        assert!(
            !stderr.contains(&unreachable),
            "the URL may hold a password: {stderr}"
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn whole_budgets_are_swept() {
    within(60, async {
        let Some(store) = fresh_store().await else {
            return;
        };
        // 60 000 a minute: one request's worth is back after a millisecond.
        let access = Access::open(&config(&["sk-1", "sk-2"], 60_000, Some(&store)))
            .await
            .unwrap();
        assert!(admit(&access, "sk-1").await && admit(&access, "sk-2").await);
        let mut conn = sqlx::PgConnection::connect(&store).await.unwrap();
        let rows = || sqlx::query_scalar::<_, i64>("SELECT count(*) FROM rate_limits");
        assert_eq!(rows().fetch_one(&mut conn).await.unwrap(), 2);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let limiter = access.shared_limiter().unwrap();
        assert_eq!(limiter.sweep_now().await.unwrap(), 2);
        assert_eq!(rows().fetch_one(&mut conn).await.unwrap(), 0);
        // The raw key is nowhere in the table.
        assert!(admit(&access, "sk-1").await);
        let ids: Vec<String> = sqlx::query_scalar("SELECT identity FROM rate_limits")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert_eq!(ids.len(), 1);
        assert!(
            ids[0].starts_with("key:") && !ids[0].contains("sk-1"),
            "{ids:?}"
        );
    })
    .await
    .unwrap();
}
