//! What the operator's view costs a request: the usage ledger, per-key budgets and OpenTelemetry
//! traces, each against the same gateway with them off, in the same run. Two parts:
//!
//! 1. Request path. Four gateways on the instant fake CLI (cold spawns: `--pool-size 0`, no
//!    reuse, as the cold rows of `overhead`), one key each: the baseline with
//!    `--usage-ledger false`; the ledger on (SQLite, the default); the ledger on with three
//!    budgets on the key (requests a day, tokens a day, USD a month: every request is a budget
//!    decision); traces on (`--otlp-endpoint`, OTLP/HTTP to a sink in this process), ledger off.
//!    Sequential non-streamed requests, interleaved in rounds; then 16 clients at once.
//! 2. The store, in process: a 100-row batch write against the baseline of writing the same 100
//!    rows one statement each (what recording on the request path would cost); a budget
//!    decision for a key with two budgets and one for a key without, from the ledger's memory,
//!    and the store's read behind them (once a second per key). SQLite, and PostgreSQL when
//!    `SESSION_TEST_POSTGRES_URL` is set.
//!
//! Run with `cargo bench --bench operator`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use claude_gateway::usage::budget::{Budget, Metric, Window};
use claude_gateway::usage::store::UsageStore;
use claude_gateway::usage::{Ledger, LedgerConfig, UsageRow, ledger_now_ms};
use serde_json::json;

use common::{Gateway, median, ms, quantile, verdict};

const ROUNDS: usize = 4;
const PER_ROUND: usize = 50;
const CONCURRENT_CLIENTS: usize = 16;
const CONCURRENT_EACH: usize = 10;
/// The target: each feature adds at most this much to the baseline's p50 at c=1.
const TARGET: f64 = 1.10;

struct Path {
    name: &'static str,
    gateway: Gateway,
    latencies: Vec<Duration>,
}

/// An OTLP/HTTP sink on 127.0.0.1 that answers 200 and counts the bytes it got.
async fn otlp_sink() -> (String, Arc<AtomicU64>) {
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(body.len() as u64, Ordering::Relaxed);
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the sink");
    let addr = listener.local_addr().expect("sink address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), received)
}

async fn once(client: &reqwest::Client, url: &str) -> Duration {
    let body =
        json!({"model": "sonnet", "messages": [{"role": "user", "content": "Hello [[words:4]]"}]});
    let started = Instant::now();
    let response = client
        .post(url)
        .bearer_auth("bench-key")
        .json(&body)
        .send()
        .await
        .expect("POST");
    let status = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(status, 200, "{text}");
    started.elapsed()
}

async fn request_path(out: &mut String) -> Vec<(String, f64)> {
    let cli = common::instant_cli();
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = |name: &str, text: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).expect("keys file");
        file.display().to_string()
    };
    let plain = keys("plain", "bench-key name=bench\n");
    let budgeted = keys(
        "budgeted",
        "bench-key name=bench budget.requests.day=100000000 budget.tokens.day=100000000000 \
         budget.usd.month=100000000\n",
    );
    let (sink, received) = otlp_sink().await;
    let cli = cli.display().to_string();
    let mut paths = Vec::new();
    for (name, keys_file, extra) in [
        (
            "ledger off (baseline)",
            &plain,
            vec!["--usage-ledger", "false"],
        ),
        ("ledger on", &plain, vec![]),
        ("ledger on, three budgets on the key", &budgeted, vec![]),
        (
            "traces on (OTLP/HTTP), ledger off",
            &plain,
            vec![
                "--usage-ledger",
                "false",
                "--otlp-endpoint",
                sink.as_str(),
                "--otlp-protocol",
                "http/protobuf",
            ],
        ),
    ] {
        let store = dir.path().join(format!("store-{}", paths.len()));
        let store = store.display().to_string();
        let mut args = vec![
            "--claude-bin",
            cli.as_str(),
            "--pool-size",
            "0",
            "--discover-models",
            "false",
            "--session-store",
            store.as_str(),
            "--api-keys-file",
            keys_file.as_str(),
        ];
        args.extend(extra);
        let no_reuse = common::no_reuse_args();
        args.extend(no_reuse.iter().map(String::as_str));
        let max = common::max_processes_args(2 * CONCURRENT_CLIENTS);
        args.extend(max.iter().map(String::as_str));
        paths.push(Path {
            name,
            gateway: Gateway::start(&args, &[]).await,
            latencies: Vec::new(),
        });
    }
    let client = reqwest::Client::new();
    for path in &paths {
        for _ in 0..10 {
            once(&client, &path.gateway.chat_url()).await;
        }
    }
    for round in 0..ROUNDS {
        // Alternate the order so no path always follows the same one.
        let order: Vec<usize> = if round % 2 == 0 {
            (0..paths.len()).collect()
        } else {
            (0..paths.len()).rev().collect()
        };
        for i in order {
            let url = paths[i].gateway.chat_url();
            for _ in 0..PER_ROUND {
                let took = once(&client, &url).await;
                paths[i].latencies.push(took);
            }
        }
    }
    let mut concurrent = Vec::new();
    for path in &paths {
        let started = Instant::now();
        let url = path.gateway.chat_url();
        let clients: Vec<_> = (0..CONCURRENT_CLIENTS)
            .map(|_| {
                let (client, url) = (client.clone(), url.clone());
                tokio::spawn(async move {
                    for _ in 0..CONCURRENT_EACH {
                        once(&client, &url).await;
                    }
                })
            })
            .collect();
        for c in clients {
            c.await.expect("client");
        }
        let n = (CONCURRENT_CLIENTS * CONCURRENT_EACH) as f64;
        concurrent.push(n / started.elapsed().as_secs_f64());
    }
    // The ledger's rows are written in batches after the answers; they are all there.
    let (status, usage) = {
        let mut last = (0, serde_json::Value::Null);
        for _ in 0..100 {
            let response = client
                .get(format!("{}/v1/usage?group_by=", paths[1].gateway.base))
                .bearer_auth("bench-key")
                .send()
                .await
                .expect("GET /v1/usage");
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.expect("usage JSON");
            let requests = body["data"][0]["requests"].as_u64().unwrap_or(0);
            last = (status, body);
            if requests as usize >= 10 + ROUNDS * PER_ROUND + CONCURRENT_CLIENTS * CONCURRENT_EACH {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        last
    };
    assert_eq!(status, 200, "{usage}");
    let recorded = usage["data"][0]["requests"].as_u64().unwrap_or(0);
    let sent = 10 + ROUNDS * PER_ROUND + CONCURRENT_CLIENTS * CONCURRENT_EACH;
    assert_eq!(recorded as usize, sent, "{usage}");
    // Let the exporter's batch go out before the byte count is read.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let traced_bytes = received.load(Ordering::Relaxed);
    assert!(traced_bytes > 0, "the sink received no spans");

    let base = median(&paths[0].latencies);
    let base_rate = concurrent[0];
    out.push_str(&format!(
        "Instant fake CLI, cold spawns (`--pool-size 0`, no reuse), one key on every gateway. \
         c=1: {ROUNDS} interleaved rounds of {PER_ROUND} sequential non-streamed requests per \
         path (after 10 to warm up); latency is request → whole answer. c={CONCURRENT_CLIENTS}: \
         {CONCURRENT_CLIENTS} clients × {CONCURRENT_EACH} requests, one path after the other.\n\n\
         | path | p50 (ms) | p99 (ms) | p50 vs baseline | throughput at c={CONCURRENT_CLIENTS} (req/s) | vs baseline |\n\
         |---|---|---|---|---|---|\n"
    ));
    let mut ratios = Vec::new();
    for (i, (path, rate)) in paths.iter().zip(&concurrent).enumerate() {
        let p50 = median(&path.latencies);
        let ratio = p50.as_secs_f64() / base.as_secs_f64();
        out.push_str(&format!(
            "| {} | {} | {} | {:.2}× | {:.0} | {:.2}× |\n",
            path.name,
            ms(p50, 2),
            ms(quantile(&path.latencies, 0.99), 2),
            ratio,
            rate,
            rate / base_rate,
        ));
        if i > 0 {
            ratios.push((path.name.to_string(), ratio));
        }
    }
    out.push_str(&format!(
        "\nThe ledger recorded all {recorded} requests of its gateway (`GET /v1/usage` after the \
         run); the traced gateway's exporter sent {:.1} kB ({:.2} kB a request).\n\n",
        traced_bytes as f64 / 1024.0,
        traced_bytes as f64 / 1024.0 / sent as f64,
    ));
    ratios
}

fn row(i: usize) -> UsageRow {
    UsageRow {
        ts_ms: ledger_now_ms(),
        tenant: format!("tenant-{}", i % 10),
        api: "chat.completions",
        model: "claude-sonnet-4-5".into(),
        status: "ok".into(),
        input_tokens: 100,
        output_tokens: 20,
        cached_input_tokens: 0,
        cost_usd: 0.001,
        duration_ms: 900,
        ttft_ms: Some(80),
    }
}

/// One store's row of part 2.
async fn store_timings(name: &str, location: &str) -> String {
    let cfg = claude_gateway::sessions::StoreConfig::default();
    let (_, pool) = claude_gateway::sessions::open_store_and_pool(location, cfg)
        .await
        .expect("open the store");
    let store = UsageStore::new(pool);
    let batch: Vec<_> = (0..100).map(row).collect();
    let (mut batched, mut single) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let started = Instant::now();
        store.insert(&batch).await.expect("insert");
        batched.push(started.elapsed());
        let started = Instant::now();
        for r in &batch {
            store.insert(std::slice::from_ref(r)).await.expect("insert");
        }
        single.push(started.elapsed());
    }
    let mut file_budgets = std::collections::HashMap::new();
    file_budgets.insert(
        "tenant-1".to_string(),
        vec![Budget::new(Metric::Requests, Window::Day, 1e9).expect("budget")],
    );
    let ledger = Ledger::start(
        store.clone(),
        LedgerConfig {
            file_budgets,
            ..LedgerConfig::default()
        },
    );
    ledger
        .set_budgets(
            "tenant-1",
            &[Budget::new(Metric::Usd, Window::Month, 1e9).expect("budget")],
        )
        .await
        .expect("set budgets");
    let budgeted = claude_gateway::chat::Tenant::new("tenant-1", false).expect("tenant");
    let plain = claude_gateway::chat::Tenant::new("tenant-2", false).expect("tenant");
    let (mut decisions, mut free) = (Vec::new(), Vec::new());
    for _ in 0..200 {
        let started = Instant::now();
        ledger.check(&budgeted).await.expect("check");
        decisions.push(started.elapsed());
        let started = Instant::now();
        ledger.check(&plain).await.expect("check");
        free.push(started.elapsed());
    }
    // What a decision reads from the store when its memory of the key is over a second old.
    let now = ledger_now_ms();
    let (day, month) = (Window::Day.bounds(now).0, Window::Month.bounds(now).0);
    let mut reads = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        store.budgets(Some("tenant-1")).await.expect("budgets");
        store.spend("tenant-1", day, month).await.expect("spend");
        reads.push(started.elapsed());
    }
    let state = ledger.status("tenant-1").await.expect("status");
    assert_eq!(state.len(), 2, "both budgets");
    // 4,000 rows in 10 tenants: tenant-1 holds 400 of them this month.
    assert_eq!(state[0].used, 400.0, "{state:?}");
    let (b, s) = (median(&batched), median(&single));
    let (d, f, r) = (median(&decisions), median(&free), median(&reads));
    let us = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e6);
    format!(
        "| {name} | {} | {} | {:.3}× | {} (p99 {}) | {} | {} (p99 {}) |\n",
        ms(b, 2),
        ms(s, 2),
        b.as_secs_f64() / s.as_secs_f64(),
        us(d),
        us(quantile(&decisions, 0.99)),
        us(f),
        ms(r, 3),
        ms(quantile(&reads, 0.99), 3),
    )
}

async fn fresh_pg_schema(base: &str) -> String {
    use sqlx::Connection;
    let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(base)
        .await
        .expect("connect to PostgreSQL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await
        .expect("create schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options[search_path]={schema}")
}

#[tokio::main]
async fn main() {
    let mut out = String::new();
    let ratios = request_path(&mut out).await;
    out.push_str(
        "The store, in process: 20 times a 100-row batch, and the same 100 rows one statement \
         each (the table grows to 4,000 rows); 200 budget decisions for a key with two budgets \
         (one from the keys file, one set through the API; 400 rows this month), interleaved \
         with 200 for a key without budgets: both from the ledger's memory of the store's \
         answer, kept a second; then 200 times the store's read behind it (the key's API \
         budgets and its day's and month's spend), which a decision makes once a second per \
         key. Medians.\n\n\
         | store | 100-row batch (ms) | 100 one-row writes (baseline, ms) | batch vs baseline | \
         budget decision (µs) | decision without budgets (µs) | the store's read, once a second \
         (ms) |\n|---|---|---|---|---|---|---|\n",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    out.push_str(&store_timings("SQLite (file)", &dir.path().display().to_string()).await);
    match std::env::var("SESSION_TEST_POSTGRES_URL") {
        Ok(base) if !base.is_empty() => {
            let location = fresh_pg_schema(&base).await;
            out.push_str(&store_timings("PostgreSQL (local)", &location).await);
        }
        _ => out.push_str(
            "\nPostgreSQL not measured: `SESSION_TEST_POSTGRES_URL` is unset (`export \
             \"$(.ci/start-postgres)\"`).\n",
        ),
    }
    out.push('\n');
    for (name, ratio) in ratios {
        out.push_str(&format!(
            "- Target ≤ {TARGET:.2}× the baseline's p50 at c=1 — {name}: {ratio:.2}× → {}\n",
            verdict(ratio <= TARGET)
        ));
    }
    common::report("operator", &out);
}
