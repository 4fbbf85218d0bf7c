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

use claude_gateway::chat::Tenant;
use claude_gateway::chat::message_json::parse_message;
use claude_gateway::chat::types::{FinishReason, Message, Role, Usage};
use claude_gateway::sessions::{
    ChainBase, NewResponse, NewSession, PageRequest, ResponseOutcome, SessionStore, StoreConfig,
    StoreError, open_store,
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

    /// Runs `sql` (several statements) on the target's database, outside any store.
    async fn execute(&self, sql: &str) {
        match self {
            Target::Sqlite(dir) => {
                let file = dir.path().join("sessions.db");
                let url = format!("sqlite://{}?mode=rwc", file.display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            Target::Postgres { base, schema } => {
                let mut conn = sqlx::PgConnection::connect(base).await.unwrap();
                let sql = format!("SET search_path TO {schema};\n{sql}");
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }

    /// The one integer `query` selects.
    async fn scalar(&self, query: &str) -> i64 {
        let query = sqlx::AssertSqlSafe(query.to_owned());
        match self {
            Target::Sqlite(dir) => {
                let file = dir.path().join("sessions.db");
                let url = format!("sqlite://{}", file.display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::query_scalar(query)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap()
            }
            Target::Postgres { base, schema } => {
                let mut conn = sqlx::PgConnection::connect(base).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SET search_path TO {schema}")))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                sqlx::query_scalar(query)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap()
            }
        }
    }

    /// Today's tables as the first gateway with sessions (schema version 1) created them.
    fn version_1_schema(&self) -> &'static str {
        match self {
            Target::Sqlite(_) => SQLITE_V1,
            Target::Postgres { .. } => POSTGRES_V1,
        }
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

/// Version 1 of the SQLite schema, copied from the code before sessions had owners.
const SQLITE_V1: &str = "
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT NOT NULL PRIMARY KEY,
    model TEXT,
    system TEXT,
    metadata TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    len INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS sessions_by_created ON sessions (created_ms, id);
CREATE INDEX IF NOT EXISTS sessions_by_updated ON sessions (updated_ms, id);
CREATE TABLE IF NOT EXISTS session_messages (
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
";

/// Version 1 of the PostgreSQL schema, likewise.
const POSTGRES_V1: &str = r#"
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT COLLATE "C" PRIMARY KEY,
    model TEXT,
    system TEXT,
    metadata TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    len BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS sessions_by_created ON sessions (created_ms, id);
CREATE INDEX IF NOT EXISTS sessions_by_updated ON sessions (updated_ms, id);
CREATE TABLE IF NOT EXISTS session_messages (
    session_id TEXT COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
"#;

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
    owners_see_only_their_sessions,
    a_version_1_store_upgrades_in_place,
    responses_are_points_in_chain_sessions,
);

/// The tenant the single-tenant scenarios run as.
fn me() -> Tenant {
    Tenant::anonymous()
}

fn msg(i: usize) -> Message {
    Message::text(Role::User, format!("message {i}"))
}

/// A message written as OpenAI JSON, as the tests had them before the store kept records.
fn m(value: Value) -> Message {
    parse_message(0, value).unwrap()
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
    let made = store.create(&me(), new.clone()).await.unwrap();
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
    assert_eq!(
        store.get(&me(), &made.id).await.unwrap(),
        Some(made.clone())
    );

    let chat = store.create(&me(), named("chat-1")).await.unwrap();
    assert_eq!(chat.id, "chat-1");
    assert_eq!(
        store.create(&me(), named("chat-1")).await,
        Err(StoreError::AlreadyExists("chat-1".into()))
    );
    assert_eq!(store.get(&me(), "nope").await.unwrap(), None);

    assert!(store.delete(&me(), "chat-1").await.unwrap());
    assert_eq!(store.get(&me(), "chat-1").await.unwrap(), None);
    assert!(!store.delete(&me(), "chat-1").await.unwrap());
    // A deleted id can be taken again; the other session is untouched.
    store.create(&me(), named("chat-1")).await.unwrap();
    assert_eq!(store.get(&me(), &made.id).await.unwrap(), Some(made));
}

async fn list_pages_in_creation_order(target: &Target) {
    let store = target.open(None).await;
    let ids = ["s3", "s1", "s4", "s0", "s2"];
    for id in ids {
        store.create(&me(), named(id)).await.unwrap();
        // Creation times are kept in milliseconds: make each one distinct, so the order is
        // the creation order and not the id tie-break.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    store
        .append(&me(), "s4", 0, vec![msg(0), msg(1)])
        .await
        .unwrap();

    let page = |limit, after: Option<&str>| PageRequest {
        limit,
        after: after.map(str::to_owned),
    };
    let ids_of = |items: &[claude_gateway::sessions::SessionSummary]| {
        items.iter().map(|s| s.id.clone()).collect::<Vec<_>>()
    };
    let first = store.list(&me(), page(2, None)).await.unwrap();
    assert_eq!(ids_of(&first.items), ["s3", "s1"]);
    assert!(first.has_more);
    assert_eq!(first.next.as_deref(), Some("s1"));
    let second = store.list(&me(), page(2, Some("s1"))).await.unwrap();
    assert_eq!(ids_of(&second.items), ["s4", "s0"]);
    assert_eq!(second.items[0].message_count, 2);
    assert_eq!(second.items[1].message_count, 0);
    let third = store.list(&me(), page(2, Some("s0"))).await.unwrap();
    assert_eq!(ids_of(&third.items), ["s2"]);
    assert!(!third.has_more);
    assert_eq!(third.next, None);

    let all = store.list(&me(), page(0, None)).await.unwrap();
    assert_eq!(all.items.len(), 1, "a limit of 0 is clamped to 1");
    let all = store.list(&me(), page(100, None)).await.unwrap();
    assert_eq!(ids_of(&all.items), ids);
    assert!(!all.has_more);

    assert_eq!(
        store.list(&me(), page(2, Some("missing"))).await,
        Err(StoreError::NotFound("missing".into()))
    );
    store.delete(&me(), "s4").await.unwrap();
    let after_delete = store.list(&me(), page(10, Some("s1"))).await.unwrap();
    assert_eq!(ids_of(&after_delete.items), ["s0", "s2"]);
}

async fn append_conflict_and_clear(target: &Target) {
    let store = target.open(None).await;
    let made = store
        .create(
            &me(),
            NewSession {
                model: Some("haiku".into()),
                ..named("a")
            },
        )
        .await
        .unwrap();
    let turn1 = vec![
        m(json!({"role": "user", "content": "What's the weather in Paris? 🌧"})),
        m(
            json!({"role": "assistant", "content": null, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}
            }]}),
        ),
        m(
            json!({"role": "tool", "tool_call_id": "call_1", "content": "{\"c\": 11.5, \"rain\": true}"}),
        ),
    ];
    let turn2 = vec![
        m(json!({"role": "assistant", "content": "Rainy, 11.5 °C."})),
        m(json!({"role": "user", "content": [{"type": "text", "text": "thanks"}], "n": 1e300})),
    ];
    let out = store.append(&me(), "a", 0, turn1.clone()).await.unwrap();
    assert_eq!(out.len, 3);
    assert!(out.updated_at >= made.created_at);
    let out = store.append(&me(), "a", 3, turn2.clone()).await.unwrap();
    assert_eq!(out.len, 5);
    let history = [turn1.clone(), turn2.clone()].concat();
    let got = store.get(&me(), "a").await.unwrap().unwrap();
    assert_eq!(got.history, history);
    assert_eq!(got.model.as_deref(), Some("haiku"));
    assert_eq!(got.updated_at, out.updated_at);

    // A turn computed from a stale history writes nothing.
    assert_eq!(
        store.append(&me(), "a", 3, vec![msg(9)]).await,
        Err(StoreError::Conflict {
            expected: 3,
            actual: 5
        })
    );
    assert_eq!(
        store.append(&me(), "a", 7, vec![msg(9)]).await,
        Err(StoreError::Conflict {
            expected: 7,
            actual: 5
        })
    );
    assert_eq!(
        store.get(&me(), "a").await.unwrap().unwrap().history,
        history
    );
    assert_eq!(
        store.append(&me(), "ghost", 0, vec![msg(0)]).await,
        Err(StoreError::NotFound("ghost".into()))
    );

    // An empty append is a touch with the same check.
    assert_eq!(
        store.append(&me(), "a", 5, Vec::new()).await.unwrap().len,
        5
    );

    assert!(store.clear(&me(), "a").await.unwrap());
    let cleared = store.get(&me(), "a").await.unwrap().unwrap();
    assert!(cleared.history.is_empty());
    assert_eq!(cleared.model.as_deref(), Some("haiku"));
    assert_eq!(cleared.created_at, made.created_at);
    assert!(matches!(
        store.append(&me(), "a", 5, vec![msg(0)]).await,
        Err(StoreError::Conflict {
            expected: 5,
            actual: 0
        })
    ));
    assert_eq!(
        store.append(&me(), "a", 0, vec![msg(0)]).await.unwrap().len,
        1
    );
    assert_eq!(
        store.get(&me(), "a").await.unwrap().unwrap().history,
        [msg(0)]
    );
    assert!(!store.clear(&me(), "ghost").await.unwrap());
}

async fn readers_never_see_half_a_turn(target: &Target) {
    const TURNS: usize = 40;
    const PER_TURN: usize = 3;
    let store = target.open(None).await;
    store.create(&me(), named("busy")).await.unwrap();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for turn in 0..TURNS {
                let start = turn * PER_TURN;
                let messages = (start..start + PER_TURN).map(msg).collect();
                store.append(&me(), "busy", start, messages).await.unwrap();
            }
        })
    };
    let mut reads = 0;
    let mut seen = std::collections::BTreeSet::new();
    loop {
        let done = writer.is_finished();
        let history = store.get(&me(), "busy").await.unwrap().unwrap().history;
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
    store.create(&me(), named("race")).await.unwrap();
    let mut expected = 0;
    let mut history = Vec::new();
    for round in 0..3 {
        let barrier = Arc::new(tokio::sync::Barrier::new(8));
        let tasks = (0..8)
            .map(|task| {
                let (store, barrier) = (store.clone(), barrier.clone());
                let turn = vec![
                    m(json!({"role": "user", "content": format!("round {round} from task {task}")})),
                    m(json!({"role": "assistant", "content": format!("reply {round}/{task}")})),
                ];
                tokio::spawn(async move {
                    barrier.wait().await;
                    (
                        turn.clone(),
                        store.append(&me(), "race", expected, turn).await,
                    )
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
        assert_eq!(
            store.get(&me(), "race").await.unwrap().unwrap().history,
            history
        );
    }
}

/// The one place this suite waits on the clock: a TTL cannot be faked across a database.
async fn expiry_and_purge(target: &Target) {
    let ttl = Duration::from_secs(1);
    let plain = target.open(None).await;
    let expiring = target.open(Some(ttl)).await;
    for id in ["a", "b", "k1", "k2", "k3"] {
        plain.create(&me(), named(id)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(900)).await;
    expiring.append(&me(), "b", 0, vec![msg(0)]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // a, k1, k2, k3: idle 1.2 s, past the TTL; b: 0.3 s, well within it.

    assert_eq!(expiring.get(&me(), "a").await.unwrap(), None);
    assert_eq!(
        expiring.get(&me(), "b").await.unwrap().unwrap().history,
        [msg(0)]
    );
    assert!(
        plain.get(&me(), "a").await.unwrap().is_some(),
        "not purged yet"
    );
    assert_eq!(
        expiring.append(&me(), "a", 0, vec![msg(0)]).await,
        Err(StoreError::NotFound("a".into()))
    );
    assert!(!expiring.clear(&me(), "a").await.unwrap());
    let live = expiring
        .list(
            &me(),
            PageRequest {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        live.items.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["b"]
    );
    assert_eq!(
        expiring
            .list(
                &me(),
                PageRequest {
                    limit: 10,
                    after: Some("a".into())
                }
            )
            .await,
        Err(StoreError::NotFound("a".into()))
    );
    // An expired id can be taken again, fresh.
    let again = expiring.create(&me(), named("k1")).await.unwrap();
    assert!(
        expiring
            .get(&me(), "k1")
            .await
            .unwrap()
            .unwrap()
            .history
            .is_empty()
    );
    plain.append(&me(), "k2", 0, vec![msg(1)]).await.unwrap();

    // Idle past the TTL: a and k3 (k1 was re-created, b and k2 were touched).
    assert_eq!(plain.purge_expired(ttl, None).await.unwrap(), 2);
    assert_eq!(plain.get(&me(), "a").await.unwrap(), None);
    assert_eq!(plain.get(&me(), "k3").await.unwrap(), None);
    // Beyond max_count, the least recently updated go: b first, then k1 and k2.
    assert_eq!(
        plain
            .purge_expired(Duration::from_secs(3600), Some(2))
            .await
            .unwrap(),
        1
    );
    assert_eq!(plain.get(&me(), "b").await.unwrap(), None);
    assert_eq!(plain.get(&me(), "k1").await.unwrap(), Some(again));
    assert_eq!(
        plain
            .purge_expired(Duration::from_secs(3600), Some(0))
            .await
            .unwrap(),
        2
    );
    let empty = plain
        .list(
            &me(),
            PageRequest {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert!(empty.items.is_empty());
}

async fn reopen_finds_the_data(target: &Target) {
    let store = target.open(None).await;
    let made = store.create(&me(), named("keep")).await.unwrap();
    store
        .append(&me(), "keep", 0, vec![msg(0), msg(1)])
        .await
        .unwrap();
    drop(store);
    if let Target::Sqlite(dir) = target {
        assert!(dir.path().join("sessions.db").is_file());
    }
    let reopened = target.open(None).await;
    let got = reopened.get(&me(), "keep").await.unwrap().unwrap();
    assert_eq!(got.history, [msg(0), msg(1)]);
    assert_eq!(got.created_at, made.created_at);
    assert_eq!(
        reopened
            .append(&me(), "keep", 2, vec![msg(2)])
            .await
            .unwrap()
            .len,
        3
    );
}

async fn kill_9_loses_no_acknowledged_turn(target: &Target) {
    const KILL_AFTER: usize = 25;
    target
        .open(None)
        .await
        .create(&me(), named("crash"))
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
    let history = store.get(&me(), "crash").await.unwrap().unwrap().history;
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
            .append(&me(), "crash", next, vec![msg(next)])
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
            let out = store.append(&me(), &id, len, vec![msg(len)]).await.unwrap();
            writeln!(stdout, "ack {}", out.len).unwrap();
            stdout.flush().unwrap();
            if tokio::time::Instant::now() > deadline {
                break;
            }
        }
    });
}

fn tenant(id: &str, admin: bool) -> Tenant {
    Tenant::new(id, admin).unwrap()
}

async fn ids(store: &dyn SessionStore, who: &Tenant) -> Vec<String> {
    let page = store.list(who, page(100, None)).await.unwrap();
    page.items.into_iter().map(|s| s.id).collect()
}

fn page(limit: usize, after: Option<&str>) -> PageRequest {
    PageRequest {
        limit,
        after: after.map(str::to_owned),
    }
}

/// Each tenant lists, reads, appends to, clears and deletes only its own sessions; another's
/// answers as a missing one; an admin reaches all; ids are one namespace.
async fn owners_see_only_their_sessions(target: &Target) {
    let store = target.open(None).await;
    let (alice, bob, root) = (
        tenant("alice", false),
        tenant("bob", false),
        tenant("root", true),
    );
    store.create(&alice, named("a1")).await.unwrap();
    store.create(&alice, named("a2")).await.unwrap();
    store.create(&bob, named("b1")).await.unwrap();
    store.append(&alice, "a1", 0, vec![msg(0)]).await.unwrap();
    assert_eq!(ids(&*store, &alice).await, ["a1", "a2"]);
    assert_eq!(ids(&*store, &bob).await, ["b1"]);
    assert_eq!(ids(&*store, &root).await, ["a1", "a2", "b1"]);
    assert!(ids(&*store, &Tenant::anonymous()).await.is_empty());
    // Paging: a cursor naming another tenant's session is no cursor; one's own pages on.
    assert_eq!(
        store.list(&bob, page(1, Some("a1"))).await,
        Err(StoreError::NotFound("a1".into()))
    );
    let next = store.list(&alice, page(1, Some("a1"))).await.unwrap();
    assert_eq!(next.items.len(), 1);
    assert_eq!(next.items[0].id, "a2");

    assert_eq!(store.get(&bob, "a1").await.unwrap(), None);
    assert!(!store.clear(&bob, "a1").await.unwrap());
    assert!(!store.delete(&bob, "a1").await.unwrap());
    assert_eq!(
        store.append(&bob, "a1", 1, vec![msg(1)]).await,
        Err(StoreError::NotFound("a1".into()))
    );
    // Nothing of that touched it.
    let a1 = store.get(&alice, "a1").await.unwrap().unwrap();
    assert_eq!(a1.history, [msg(0)]);
    // The id is taken, whoever asks.
    assert_eq!(
        store.create(&bob, named("a1")).await,
        Err(StoreError::AlreadyExists("a1".into()))
    );

    // The admin reaches everything, and what it creates is its own.
    assert_eq!(store.get(&root, "a1").await.unwrap(), Some(a1));
    store.append(&root, "b1", 0, vec![msg(5)]).await.unwrap();
    assert!(store.clear(&root, "b1").await.unwrap());
    assert!(store.delete(&root, "a2").await.unwrap());
    store.create(&root, named("r1")).await.unwrap();
    assert_eq!(ids(&*store, &alice).await, ["a1"]);
    assert_eq!(ids(&*store, &bob).await, ["b1"]);
    assert!(store.get(&alice, "r1").await.unwrap().is_none());
    assert!(store.delete(&alice, "a1").await.unwrap());
}

/// A store made by the code before tenancy (version 1: no version table, no owner column, and
/// messages stored as OpenAI JSON) upgrades when opened: its sessions belong to the anonymous
/// tenant, the version is 4 (owners, stored responses, then the usage ledger), its messages read, and a second open
/// changes nothing. A version from a newer gateway is refused.
async fn a_version_1_store_upgrades_in_place(target: &Target) {
    target.execute(target.version_1_schema()).await;
    let now = now_secs() * 1000;
    target
        .execute(&format!(
            "INSERT INTO sessions (id, model, system, metadata, created_ms, updated_ms, len)
             VALUES ('old-1', 'sonnet', 'Be brief.', '{{\"k\":\"v\"}}', {now}, {now}, 2),
                    ('old-2', NULL, NULL, '{{}}', {later}, {later}, 0);
             INSERT INTO session_messages (session_id, seq, body) VALUES
                 ('old-1', 0, '{{\"role\":\"user\",\"content\":\"Hi\"}}'),
                 ('old-1', 1, '{{\"role\":\"assistant\",\"content\":\"Hello.\"}}');",
            later = now + 1
        ))
        .await;

    let store = target.open(None).await;
    let anonymous = Tenant::anonymous();
    let old = store.get(&anonymous, "old-1").await.unwrap().unwrap();
    assert_eq!(old.model.as_deref(), Some("sonnet"));
    assert_eq!(old.system.as_deref(), Some("Be brief."));
    assert_eq!(old.metadata.get("k").map(String::as_str), Some("v"));
    assert_eq!(
        old.history,
        [
            Message::text(Role::User, "Hi"),
            Message::text(Role::Assistant, "Hello.")
        ]
    );
    assert_eq!(ids(&*store, &anonymous).await, ["old-1", "old-2"]);
    let alice = tenant("alice", false);
    assert!(ids(&*store, &alice).await.is_empty());
    assert_eq!(store.get(&alice, "old-1").await.unwrap(), None);
    assert_eq!(
        ids(&*store, &tenant("root", true)).await,
        ["old-1", "old-2"]
    );
    assert_eq!(
        target
            .scalar("SELECT MAX(version) FROM session_schema")
            .await,
        4
    );
    assert_eq!(
        target
            .scalar("SELECT COUNT(*) FROM sessions WHERE tenant = 'anonymous'")
            .await,
        2
    );
    // The upgraded store works as a new one: turns append, new sessions have owners.
    store
        .append(&anonymous, "old-1", 2, vec![msg(2)])
        .await
        .unwrap();
    store.create(&alice, named("new-1")).await.unwrap();
    // Old bodies stay OpenAI JSON (still read); the new one is the store's own record.
    let records = "SELECT COUNT(*) FROM session_messages WHERE body LIKE '{\"record\":1,%'";
    assert_eq!(target.scalar(records).await, 1);
    drop(store);

    let reopened = target.open(None).await;
    assert_eq!(
        target.scalar("SELECT COUNT(*) FROM session_schema").await,
        1
    );
    assert_eq!(
        target
            .scalar("SELECT MAX(version) FROM session_schema")
            .await,
        4
    );
    let old = reopened.get(&anonymous, "old-1").await.unwrap().unwrap();
    assert_eq!(old.history.len(), 3);
    // Version 4: the usage ledger and budgets tables are there, empty.
    assert_eq!(target.scalar("SELECT COUNT(*) FROM usage").await, 0);
    assert_eq!(target.scalar("SELECT COUNT(*) FROM budgets").await, 0);
    assert_eq!(ids(&*reopened, &alice).await, ["new-1"]);
    drop(reopened);

    // Upgraded sessions are plain sessions, and the upgraded store keeps responses.
    assert_eq!(
        target
            .scalar("SELECT COUNT(*) FROM sessions WHERE kind = 'session'")
            .await,
        3
    );
    let reopened = target.open(None).await;
    reopened
        .commit_response(
            &alice,
            chain("chain-up"),
            vec![msg(0), reply(0)],
            response("resp_up", 0),
        )
        .await
        .unwrap();
    assert!(
        reopened
            .get_response(&alice, "resp_up")
            .await
            .unwrap()
            .is_some()
    );
    drop(reopened);

    target
        .execute("UPDATE session_schema SET version = 5")
        .await;
    let cfg = StoreConfig::default();
    let Err(err) = open_store(&target.location(), cfg).await else {
        panic!("a store of a newer schema version was opened");
    };
    assert!(err.to_string().contains("schema version 5"), "{err}");
}

fn chain(id: &str) -> ChainBase {
    ChainBase::New(NewSession {
        id: Some(id.to_owned()),
        model: Some("sonnet".into()),
        system: None,
        metadata: BTreeMap::new(),
    })
}

fn reply(i: usize) -> Message {
    Message::text(Role::Assistant, format!("reply {i}"))
}

fn response(id: &str, input_start: usize) -> NewResponse {
    NewResponse {
        id: id.to_owned(),
        input_start,
        document: format!("{{\"doc\":\"{id}\"}}"),
        outcome: ResponseOutcome {
            usage: Usage {
                prompt_tokens: 7,
                completion_tokens: 3,
                ..Usage::default()
            },
            finish: FinishReason::Stop,
        },
    }
}

/// A chain session holds the conversation; each response points into it. Continuing the tip
/// appends (compare-and-set), a stale tip conflicts, a branch is a new chain with a copied
/// history; chains are not listed as sessions; other tenants see nothing; deleting the last
/// response of a chain removes the chain; clearing or expiring the chain takes its responses.
async fn responses_are_points_in_chain_sessions(target: &Target) {
    let store = target.open(Some(Duration::from_secs(2))).await;
    let (ada, bob) = (tenant("ada", false), tenant("bob", false));
    let first = store
        .commit_response(
            &ada,
            chain("chain-1"),
            vec![msg(0), reply(0)],
            response("resp_1", 0),
        )
        .await
        .unwrap();
    assert_eq!(first.len, 2);
    let one = store.get_response(&ada, "resp_1").await.unwrap().unwrap();
    assert_eq!(one.session, "chain-1");
    assert_eq!(one.history, [msg(0), reply(0)]);
    assert_eq!((one.input_start, one.at_tip), (0, true));
    assert_eq!(one.document, r#"{"doc":"resp_1"}"#);
    assert_eq!(one.outcome, response("resp_1", 0).outcome);
    // Continuing the tip appends to the chain.
    let existing = |expected_len| ChainBase::Existing {
        session: "chain-1".into(),
        expected_len,
    };
    store
        .commit_response(
            &ada,
            existing(2),
            vec![msg(1), reply(1)],
            response("resp_2", 2),
        )
        .await
        .unwrap();
    let two = store.get_response(&ada, "resp_2").await.unwrap().unwrap();
    assert_eq!(two.history.len(), 4);
    assert_eq!((two.input_start, two.at_tip), (2, true));
    let one = store.get_response(&ada, "resp_1").await.unwrap().unwrap();
    assert_eq!(
        one.history,
        [msg(0), reply(0)],
        "a response sees its own point only"
    );
    assert!(!one.at_tip);
    // A turn computed on the old tip conflicts, and nothing of it is stored.
    assert_eq!(
        store
            .commit_response(
                &ada,
                existing(2),
                vec![msg(9), reply(9)],
                response("resp_x", 2)
            )
            .await,
        Err(StoreError::Conflict {
            expected: 2,
            actual: 4
        })
    );
    assert_eq!(store.get_response(&ada, "resp_x").await.unwrap(), None);
    // A branch: a new chain with the history up to the first response.
    store
        .commit_response(
            &ada,
            chain("chain-2"),
            vec![msg(0), reply(0), msg(5), reply(5)],
            response("resp_b", 2),
        )
        .await
        .unwrap();
    let b = store.get_response(&ada, "resp_b").await.unwrap().unwrap();
    assert_eq!((b.session.as_str(), b.input_start), ("chain-2", 2));
    // Chains are not sessions to list.
    store.create(&ada, named("plain")).await.unwrap();
    assert_eq!(ids(&*store, &ada).await, ["plain"]);
    // Another tenant sees, continues and deletes nothing.
    assert_eq!(store.get_response(&bob, "resp_1").await.unwrap(), None);
    assert!(!store.delete_response(&bob, "resp_1").await.unwrap());
    assert_eq!(
        store
            .commit_response(&bob, existing(4), vec![msg(3)], response("resp_bob", 4))
            .await,
        Err(StoreError::NotFound("chain-1".into()))
    );
    assert!(
        store
            .get_response(&tenant("root", true), "resp_1")
            .await
            .unwrap()
            .is_some()
    );
    // Deleting: the chain stays while a response points into it, and goes with the last one.
    assert!(store.delete_response(&ada, "resp_b").await.unwrap());
    assert!(
        store.get(&ada, "chain-2").await.unwrap().is_none(),
        "the branch's chain is gone"
    );
    assert!(store.delete_response(&ada, "resp_1").await.unwrap());
    assert!(!store.delete_response(&ada, "resp_1").await.unwrap());
    assert!(store.get_response(&ada, "resp_2").await.unwrap().is_some());
    assert!(store.get(&ada, "chain-1").await.unwrap().is_some());
    // Clearing the chain takes its responses.
    assert!(store.clear(&ada, "chain-1").await.unwrap());
    assert_eq!(store.get_response(&ada, "resp_2").await.unwrap(), None);
    // Expiry: a response goes with its chain's idle TTL.
    store
        .commit_response(
            &ada,
            chain("chain-3"),
            vec![msg(0), reply(0)],
            response("resp_3", 0),
        )
        .await
        .unwrap();
    assert!(store.get_response(&ada, "resp_3").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(store.get_response(&ada, "resp_3").await.unwrap(), None);
    assert!(!store.delete_response(&ada, "resp_3").await.unwrap());
}
