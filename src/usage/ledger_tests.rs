//! The ledger's memory of the store: this process's own requests count at once, another
//! replica's (a second `Ledger` on the same store) within `FRESH`.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use super::*;
use crate::usage::budget::{Metric, Window};

async fn store(dir: &tempfile::TempDir) -> UsageStore {
    let location = dir.path().display().to_string();
    let cfg = crate::sessions::StoreConfig::default();
    let (_, pool) = crate::sessions::open_store_and_pool(&location, cfg)
        .await
        .unwrap();
    UsageStore::new(pool)
}

fn ledger(store: &UsageStore, requests_a_day: Option<f64>) -> Arc<Ledger> {
    let mut file_budgets = HashMap::new();
    if let Some(limit) = requests_a_day {
        file_budgets.insert(
            "alice".to_string(),
            vec![Budget::new(Metric::Requests, Window::Day, limit).unwrap()],
        );
    }
    Ledger::start(
        store.clone(),
        LedgerConfig {
            file_budgets,
            interval: Duration::from_millis(20),
            ..LedgerConfig::default()
        },
    )
}

fn row() -> UsageRow {
    UsageRow {
        ts_ms: now_ms(),
        tenant: "alice".into(),
        api: "chat.completions",
        model: "claude-sonnet-4-5".into(),
        status: "ok".into(),
        input_tokens: 10,
        output_tokens: 2,
        cached_input_tokens: 0,
        cost_usd: 0.01,
        duration_ms: 5,
        ttft_ms: Some(1),
    }
}

fn alice() -> Tenant {
    Tenant::new("alice", false).unwrap()
}

#[tokio::test]
async fn own_rows_count_at_once_pending_or_written_while_the_spend_is_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let ledger = ledger(&store, Some(3.0));
    // Read (and remember) a spend of nothing.
    ledger.check(&alice()).await.unwrap();
    ledger.record(row());
    // Pending, not written: counted.
    assert_eq!(ledger.status("alice").await.unwrap()[0].used, 1.0);
    ledger.record(row());
    ledger.record(row());
    ledger.flush(Duration::from_secs(5)).await;
    // Written after the spend was read, within the second it is remembered: counted once.
    let state = ledger.status("alice").await.unwrap();
    assert_eq!(state[0].used, 3.0, "{state:?}");
    let refused = ledger.check(&alice()).await.unwrap_err();
    assert!(
        matches!(refused, ChatError::QuotaExceeded { .. }),
        "{refused:?}"
    );
    // And from the store once the memory is stale: still exactly three.
    tokio::time::sleep(FRESH + Duration::from_millis(50)).await;
    assert_eq!(ledger.status("alice").await.unwrap()[0].used, 3.0);
}

#[tokio::test]
async fn another_replicas_rows_and_budgets_count_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let (here, there) = (ledger(&store, Some(2.0)), ledger(&store, Some(2.0)));
    here.check(&alice()).await.unwrap();
    there.record(row());
    there.record(row());
    there.flush(Duration::from_secs(5)).await;
    assert_eq!(there.status("alice").await.unwrap()[0].used, 2.0);
    // `here` read the spend before those rows existed and may admit for up to `FRESH`…
    let mut waited = Duration::ZERO;
    while here.check(&alice()).await.is_ok() {
        assert!(waited <= FRESH + Duration::from_millis(100), "{waited:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
        waited += Duration::from_millis(25);
    }
    // …and a budget set through `there`'s API reaches `here` the same way, while `there`
    // applies it at once.
    let lifted = [Budget::new(Metric::Requests, Window::Day, 100.0).unwrap()];
    there.set_budgets("alice", &lifted).await.unwrap();
    there.check(&alice()).await.unwrap();
    let mut waited = Duration::ZERO;
    while here.check(&alice()).await.is_err() {
        assert!(waited <= FRESH + Duration::from_millis(100), "{waited:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
        waited += Duration::from_millis(25);
    }
    assert_eq!(here.status("alice").await.unwrap()[0].budget.limit, 100.0);
}
