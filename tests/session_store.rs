//! The session-store suite. Each scenario is written once, as an async fn over
//! `Arc<dyn SessionStore>` opened from a `Target`, and the `suite!` macro runs it twice: against
//! SQLite in a fresh temp directory (`sqlite::*`) and against PostgreSQL in a fresh schema of
//! the database named by `SESSION_TEST_POSTGRES_URL` (`postgres::*`; see
//! `.ci/start-postgres`). Without that variable the Postgres tests fail, unless the run opted
//! out visibly (`tests/common/skip.rs`).
//!
//! The crash test re-runs this binary as a child (`crash_writer`, ignored unless run by name)
//! that appends in a loop and prints each acknowledged length, kills it with SIGKILL, and checks
//! that a reopened store holds everything acknowledged.

#![allow(clippy::unwrap_used)]

#[path = "common/skip.rs"]
mod skip;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use claude_gateway::sessions::{
    NewSession, PageRequest, SessionStore, StoreConfig, StoreError, open_store,
};
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Bound on every scenario.
const TIMEOUT: Duration = Duration::from_secs(90);
const CRASH_LOCATION: &str = "SESSION_CRASH_WRITER_LOCATION";
const CRASH_SESSION: &str = "SESSION_CRASH_WRITER_SESSION";

/// Where one scenario's store lives: a temp directory, or a schema of its own in the test
/// database, dropped when the scenario passes.
enum Target {
    Sqlite(tempfile::TempDir),
    Postgres { base: String, schema: String },
}

impl Target {
    fn sqlite() -> Self {
        Target::Sqlite(tempfile::tempdir().unwrap())
    }

    /// A fresh schema, or `None` when no Postgres is configured and the run opted out of such
    /// tests (else the test fails).
    async fn postgres(test: &str) -> Option<Self> {
        let base = std::env::var("SESSION_TEST_POSTGRES_URL").unwrap_or_default();
        if base.is_empty() {
            skip::missing(
                &format!("PostgreSQL for postgres::{test} (SESSION_TEST_POSTGRES_URL)"),
                "run `export \"$(.ci/start-postgres)\"`",
            );
            return None;
        }
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut conn)
            .await
            .unwrap();
        Some(Target::Postgres { base, schema })
    }

    /// The string `open_store` is given: a plain directory, or the URL with the schema first
    /// on the search path.
    fn location(&self) -> String {
        match self {
            Target::Sqlite(dir) => dir.path().display().to_string(),
            Target::Postgres { base, schema } => {
                let sep = if base.contains('?') { '&' } else { '?' };
                format!("{base}{sep}options[search_path]={schema}")
            }
        }
    }

    async fn open(&self, idle_ttl: Option<Duration>) -> Arc<dyn SessionStore> {
        let cfg = StoreConfig {
            idle_ttl,
            max_connections: None,
        };
        open_store(&self.location(), cfg).await.unwrap()
    }

    async fn cleanup(self) {
        if let Target::Postgres { base, schema } = self {
            let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
}

/// Runs each scenario against both backends, bounded by `TIMEOUT`.
macro_rules! suite {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let target = super::Target::sqlite();
                    tokio::time::timeout(super::TIMEOUT, super::$scenario(&target))
                        .await
                        .expect("scenario timed out");
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let Some(target) = super::Target::postgres(stringify!($scenario)).await else {
                        return;
                    };
                    tokio::time::timeout(super::TIMEOUT, super::$scenario(&target))
                        .await
                        .expect("scenario timed out");
                    target.cleanup().await;
                }
            )*
        }
    };
}

suite!(
    create_get_delete,
    list_pages_in_creation_order,
    append_conflict_and_clear,
    readers_never_see_half_a_turn,
    concurrent_turns_one_wins,
    expiry_and_purge,
    reopen_finds_the_data,
    kill_9_loses_no_acknowledged_turn,
);

fn msg(i: usize) -> Value {
    json!({"role": "user", "content": format!("message {i}")})
}

fn named(id: &str) -> NewSession {
    NewSession {
        id: Some(id.to_owned()),
        ..NewSession::default()
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn create_get_delete(target: &Target) {
    let store = target.open(None).await;
    let new = NewSession {
        id: None,
        model: Some("sonnet".into()),
        system: Some("Be brief.".into()),
        metadata: BTreeMap::from([("user".into(), "u1".into()), ("é".into(), "✓".into())]),
    };
    let made = store.create(new.clone()).await.unwrap();
    assert!(
        made.id.starts_with("sess_") && made.id.len() == 37,
        "{}",
        made.id
    );
    assert_eq!(
        (&made.model, &made.system, &made.metadata),
        (&new.model, &new.system, &new.metadata)
    );
    assert!(made.history.is_empty());
    assert_eq!(made.created_at, made.updated_at);
    assert!((made.created_at - now_secs()).abs() <= 2);
    assert_eq!(store.get(&made.id).await.unwrap(), Some(made.clone()));

    let chat = store.create(named("chat-1")).await.unwrap();
    assert_eq!(chat.id, "chat-1");
    assert_eq!(
        store.create(named("chat-1")).await,
        Err(StoreError::AlreadyExists("chat-1".into()))
    );
    assert_eq!(store.get("nope").await.unwrap(), None);

    assert!(store.delete("chat-1").await.unwrap());
    assert_eq!(store.get("chat-1").await.unwrap(), None);
    assert!(!store.delete("chat-1").await.unwrap());
    // A deleted id can be taken again; the other session is untouched.
    store.create(named("chat-1")).await.unwrap();
    assert_eq!(store.get(&made.id).await.unwrap(), Some(made));
}

async fn list_pages_in_creation_order(target: &Target) {
    let store = target.open(None).await;
    let ids = ["s3", "s1", "s4", "s0", "s2"];
    for id in ids {
        store.create(named(id)).await.unwrap();
        // Creation times are kept in milliseconds: make each one distinct, so the order is
        // the creation order and not the id tie-break.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    store.append("s4", 0, vec![msg(0), msg(1)]).await.unwrap();

    let page = |limit, after: Option<&str>| PageRequest {
        limit,
        after: after.map(str::to_owned),
    };
    let ids_of = |items: &[claude_gateway::sessions::SessionSummary]| {
        items.iter().map(|s| s.id.clone()).collect::<Vec<_>>()
    };
    let first = store.list(page(2, None)).await.unwrap();
    assert_eq!(ids_of(&first.items), ["s3", "s1"]);
    assert!(first.has_more);
    assert_eq!(first.next.as_deref(), Some("s1"));
    let second = store.list(page(2, Some("s1"))).await.unwrap();
    assert_eq!(ids_of(&second.items), ["s4", "s0"]);
    assert_eq!(second.items[0].message_count, 2);
    assert_eq!(second.items[1].message_count, 0);
    let third = store.list(page(2, Some("s0"))).await.unwrap();
    assert_eq!(ids_of(&third.items), ["s2"]);
    assert!(!third.has_more);
    assert_eq!(third.next, None);

    let all = store.list(page(0, None)).await.unwrap();
    assert_eq!(all.items.len(), 1, "a limit of 0 is clamped to 1");
    let all = store.list(page(100, None)).await.unwrap();
    assert_eq!(ids_of(&all.items), ids);
    assert!(!all.has_more);

    assert_eq!(
        store.list(page(2, Some("missing"))).await,
        Err(StoreError::NotFound("missing".into()))
    );
    store.delete("s4").await.unwrap();
    let after_delete = store.list(page(10, Some("s1"))).await.unwrap();
    assert_eq!(ids_of(&after_delete.items), ["s0", "s2"]);
}

async fn append_conflict_and_clear(target: &Target) {
    let store = target.open(None).await;
    let made = store
        .create(NewSession {
            model: Some("haiku".into()),
            ..named("a")
        })
        .await
        .unwrap();
    let turn1 = vec![
        json!({"role": "user", "content": "What's the weather in Paris? 🌧"}),
        json!({"role": "assistant", "content": null, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}
        }]}),
        json!({"role": "tool", "tool_call_id": "call_1", "content": "{\"c\": 11.5, \"rain\": true}"}),
    ];
    let turn2 = vec![
        json!({"role": "assistant", "content": "Rainy, 11.5 °C."}),
        json!({"role": "user", "content": [{"type": "text", "text": "thanks"}], "n": 1e300}),
    ];
    let out = store.append("a", 0, turn1.clone()).await.unwrap();
    assert_eq!(out.len, 3);
    assert!(out.updated_at >= made.created_at);
    let out = store.append("a", 3, turn2.clone()).await.unwrap();
    assert_eq!(out.len, 5);
    let history = [turn1.clone(), turn2.clone()].concat();
    let got = store.get("a").await.unwrap().unwrap();
    assert_eq!(got.history, history);
    assert_eq!(got.model.as_deref(), Some("haiku"));
    assert_eq!(got.updated_at, out.updated_at);

    // A turn computed from a stale history writes nothing.
    assert_eq!(
        store.append("a", 3, vec![msg(9)]).await,
        Err(StoreError::Conflict {
            expected: 3,
            actual: 5
        })
    );
    assert_eq!(
        store.append("a", 7, vec![msg(9)]).await,
        Err(StoreError::Conflict {
            expected: 7,
            actual: 5
        })
    );
    assert_eq!(store.get("a").await.unwrap().unwrap().history, history);
    assert_eq!(
        store.append("ghost", 0, vec![msg(0)]).await,
        Err(StoreError::NotFound("ghost".into()))
    );

    // An empty append is a touch with the same check.
    assert_eq!(store.append("a", 5, Vec::new()).await.unwrap().len, 5);

    assert!(store.clear("a").await.unwrap());
    let cleared = store.get("a").await.unwrap().unwrap();
    assert!(cleared.history.is_empty());
    assert_eq!(cleared.model.as_deref(), Some("haiku"));
    assert_eq!(cleared.created_at, made.created_at);
    assert!(matches!(
        store.append("a", 5, vec![msg(0)]).await,
        Err(StoreError::Conflict {
            expected: 5,
            actual: 0
        })
    ));
    assert_eq!(store.append("a", 0, vec![msg(0)]).await.unwrap().len, 1);
    assert_eq!(store.get("a").await.unwrap().unwrap().history, [msg(0)]);
    assert!(!store.clear("ghost").await.unwrap());
}

async fn readers_never_see_half_a_turn(target: &Target) {
    const TURNS: usize = 40;
    const PER_TURN: usize = 3;
    let store = target.open(None).await;
    store.create(named("busy")).await.unwrap();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for turn in 0..TURNS {
                let start = turn * PER_TURN;
                let messages = (start..start + PER_TURN).map(msg).collect();
                store.append("busy", start, messages).await.unwrap();
            }
        })
    };
    let mut reads = 0;
    let mut seen = std::collections::BTreeSet::new();
    loop {
        let done = writer.is_finished();
        let history = store.get("busy").await.unwrap().unwrap().history;
        assert_eq!(history.len() % PER_TURN, 0, "a reader saw half a turn");
        assert!(history.iter().enumerate().all(|(i, m)| *m == msg(i)));
        seen.insert(history.len());
        reads += 1;
        if done {
            break;
        }
    }
    writer.await.unwrap();
    assert!(seen.contains(&(TURNS * PER_TURN)));
    assert!(reads > 1);
}

async fn concurrent_turns_one_wins(target: &Target) {
    let store = target.open(None).await;
    store.create(named("race")).await.unwrap();
    let mut expected = 0;
    let mut history = Vec::new();
    for round in 0..3 {
        let barrier = Arc::new(tokio::sync::Barrier::new(8));
        let tasks = (0..8)
            .map(|task| {
                let (store, barrier) = (store.clone(), barrier.clone());
                let turn = vec![
                    json!({"role": "user", "content": format!("round {round} from task {task}")}),
                    json!({"role": "assistant", "content": format!("reply {round}/{task}")}),
                ];
                tokio::spawn(async move {
                    barrier.wait().await;
                    (turn.clone(), store.append("race", expected, turn).await)
                })
            })
            .collect::<Vec<_>>();
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                (turn, Ok(out)) => {
                    assert_eq!(out.len, expected + 2);
                    winners.push(turn);
                }
                (_, Err(e)) => assert_eq!(
                    e,
                    StoreError::Conflict {
                        expected,
                        actual: expected + 2
                    }
                ),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one turn lands");
        history.extend(winners.remove(0));
        expected += 2;
        assert_eq!(store.get("race").await.unwrap().unwrap().history, history);
    }
}

/// The one place this suite waits on the clock: a TTL cannot be faked across a database.
async fn expiry_and_purge(target: &Target) {
    let ttl = Duration::from_secs(1);
    let plain = target.open(None).await;
    let expiring = target.open(Some(ttl)).await;
    for id in ["a", "b", "k1", "k2", "k3"] {
        plain.create(named(id)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(900)).await;
    expiring.append("b", 0, vec![msg(0)]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // a, k1, k2, k3: idle 1.2 s, past the TTL; b: 0.3 s, well within it.

    assert_eq!(expiring.get("a").await.unwrap(), None);
    assert_eq!(expiring.get("b").await.unwrap().unwrap().history, [msg(0)]);
    assert!(plain.get("a").await.unwrap().is_some(), "not purged yet");
    assert_eq!(
        expiring.append("a", 0, vec![msg(0)]).await,
        Err(StoreError::NotFound("a".into()))
    );
    assert!(!expiring.clear("a").await.unwrap());
    let live = expiring
        .list(PageRequest {
            limit: 10,
            after: None,
        })
        .await
        .unwrap();
    assert_eq!(
        live.items.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["b"]
    );
    assert_eq!(
        expiring
            .list(PageRequest {
                limit: 10,
                after: Some("a".into())
            })
            .await,
        Err(StoreError::NotFound("a".into()))
    );
    // An expired id can be taken again, fresh.
    let again = expiring.create(named("k1")).await.unwrap();
    assert!(
        expiring
            .get("k1")
            .await
            .unwrap()
            .unwrap()
            .history
            .is_empty()
    );
    plain.append("k2", 0, vec![msg(1)]).await.unwrap();

    // Idle past the TTL: a and k3 (k1 was re-created, b and k2 were touched).
    assert_eq!(plain.purge_expired(ttl, None).await.unwrap(), 2);
    assert_eq!(plain.get("a").await.unwrap(), None);
    assert_eq!(plain.get("k3").await.unwrap(), None);
    // Beyond max_count, the least recently updated go: b first, then k1 and k2.
    assert_eq!(
        plain
            .purge_expired(Duration::from_secs(3600), Some(2))
            .await
            .unwrap(),
        1
    );
    assert_eq!(plain.get("b").await.unwrap(), None);
    assert_eq!(plain.get("k1").await.unwrap(), Some(again));
    assert_eq!(
        plain
            .purge_expired(Duration::from_secs(3600), Some(0))
            .await
            .unwrap(),
        2
    );
    let empty = plain
        .list(PageRequest {
            limit: 10,
            after: None,
        })
        .await
        .unwrap();
    assert!(empty.items.is_empty());
}

async fn reopen_finds_the_data(target: &Target) {
    let store = target.open(None).await;
    let made = store.create(named("keep")).await.unwrap();
    store.append("keep", 0, vec![msg(0), msg(1)]).await.unwrap();
    drop(store);
    if let Target::Sqlite(dir) = target {
        assert!(dir.path().join("sessions.db").is_file());
    }
    let reopened = target.open(None).await;
    let got = reopened.get("keep").await.unwrap().unwrap();
    assert_eq!(got.history, [msg(0), msg(1)]);
    assert_eq!(got.created_at, made.created_at);
    assert_eq!(
        reopened.append("keep", 2, vec![msg(2)]).await.unwrap().len,
        3
    );
}

async fn kill_9_loses_no_acknowledged_turn(target: &Target) {
    const KILL_AFTER: usize = 25;
    target
        .open(None)
        .await
        .create(named("crash"))
        .await
        .unwrap();
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["crash_writer", "--exact", "--ignored", "--nocapture"])
        .args(["--test-threads=1", "-q"])
        .env(CRASH_LOCATION, target.location())
        .env(CRASH_SESSION, "crash")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked = 0;
    let mut seen = 0;
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(len) = line.strip_prefix("ack ") {
            acked = len.parse().unwrap();
            seen += 1;
            if seen == KILL_AFTER {
                child.start_kill().unwrap(); // SIGKILL, mid-append
            }
        }
    }
    let status = child.wait().await.unwrap();
    assert!(!status.success(), "the writer was killed, not finished");
    assert!(acked >= KILL_AFTER, "the writer acknowledged {acked}");

    let store = target.open(None).await;
    let history = store.get("crash").await.unwrap().unwrap().history;
    // Every acknowledged append is there, intact; at most the one in flight landed as well.
    assert!(
        history.len() == acked || history.len() == acked + 1,
        "acknowledged {acked}, stored {}",
        history.len()
    );
    assert!(history.iter().enumerate().all(|(i, m)| *m == msg(i)));
    let next = history.len();
    assert_eq!(
        store
            .append("crash", next, vec![msg(next)])
            .await
            .unwrap()
            .len,
        next + 1
    );
}

/// The child of `kill_9_loses_no_acknowledged_turn`: appends one message at a time and prints
/// `ack <len>` after each commit, until killed (or after a bound, so a stray run ends). Does
/// nothing unless that test set its environment.
#[test]
#[ignore = "a helper process for kill_9_loses_no_acknowledged_turn"]
fn crash_writer() {
    let (Ok(location), Ok(id)) = (std::env::var(CRASH_LOCATION), std::env::var(CRASH_SESSION))
    else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = open_store(&location, StoreConfig::default()).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut stdout = std::io::stdout().lock();
        for len in 0..100_000 {
            let out = store.append(&id, len, vec![msg(len)]).await.unwrap();
            writeln!(stdout, "ack {}", out.len).unwrap();
            stdout.flush().unwrap();
            if tokio::time::Instant::now() > deadline {
                break;
            }
        }
    });
}
