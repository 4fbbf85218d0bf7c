//! The cluster-wide rate limit (`--rate-limit-store postgres://…`): the same GCRA as the
//! in-memory limiter, with each identity's theoretical arrival time in one PostgreSQL row that
//! every gateway sharing the database spends from, so a key's budget holds whichever façade or
//! worker a request reaches.
//!
//! Exact at the limit: a decision is one `INSERT … ON CONFLICT (identity) DO UPDATE … RETURNING`,
//! which locks the row, so concurrent decisions on one identity are serialised by PostgreSQL and
//! none can spend what another spent. Time is the database's clock (`now()`), never an
//! instance's, so clock skew between instances moves nothing.
//!
//! Cheap on the hot path: one round trip per identity is in flight at a time per instance. The
//! requests of that identity arriving meanwhile wait for it and then go together, in one
//! statement deciding `k` requests at once (`Gcra::admits` in SQL: as many as fit, the arrival
//! time advanced by that many intervals), each told its own quota in arrival order. A burst of
//! any size costs a handful of statements, not one per request. The connections commit with
//! `synchronous_commit=off` (no wait for the WAL flush; a database crash may forget its last
//! milliseconds of spending), which takes a decision from a few milliseconds to well under one.
//!
//! Failing open: when the database does not answer within `DECIDE_TIMEOUT` (1 s) or errs, the
//! requests waiting on it are decided by this process's in-memory limiter, with a warning and
//! the `claude_gateway_rate_limit_store_errors_total` metric, and the store is left alone for
//! `BACKOFF` so an outage costs one bounded wait, not one per request. The limit guards capacity
//! and fairness, not secrets: an outage of the counters should not become an outage of the API,
//! and each instance still holds every key to the limit on its own meanwhile (at worst, the
//! limit times the number of instances).
//!
//! Rows are bounded like the map: a row whose arrival time is past is a whole budget, the same
//! as no row, and a sweep deletes those every `SWEEP_EVERY`. The table goes to the first schema
//! of the connection's `search_path` (`?options[search_path]=name` chooses it).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::sync::oneshot;

use super::limiter::{Gcra, Identity, Quota, RateLimiter};

/// Longest wait for the database on a request's path (a connection and the statement).
pub const DECIDE_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest wait for the store at start.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the store is bypassed after it failed.
const BACKOFF: Duration = Duration::from_secs(5);
/// Connections per instance: decisions are short, and one identity holds at most one.
const CONNECTIONS: u32 = 4;
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Most requests one statement decides; the rest wait for the next.
const MAX_BATCH: usize = 10_000;
/// Advisory lock class ("RATE") for table creation, paired with the schema's hash.
const CREATE_LOCK: i32 = 0x5241_5445;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS rate_limits (
    identity TEXT COLLATE "C" PRIMARY KEY,
    tat_ns BIGINT NOT NULL,
    admitted INTEGER NOT NULL
)
"#;

/// One decision for `k` ($2) requests of one identity ($1), with the interval ($3) and the
/// tolerance ($4) in nanoseconds. `spent` is the budget spent before (the arrival time past now,
/// or zero); `admitted` = `Gcra::admits(spent, k)`. Returns what is spent after and how many
/// were admitted (kept in the row only so `RETURNING` can tell).
const DECIDE: &str = r#"
WITH clock AS (SELECT (extract(epoch FROM now()) * 1000000)::bigint * 1000 AS now_ns)
INSERT INTO rate_limits AS r (identity, tat_ns, admitted)
SELECT $1, now_ns + least($2, $4 / $3 + 1) * $3, least($2, $4 / $3 + 1) FROM clock
ON CONFLICT (identity) DO UPDATE SET
    tat_ns = CASE
        WHEN greatest(r.tat_ns - (SELECT now_ns FROM clock), 0) > $4 THEN r.tat_ns
        ELSE greatest(r.tat_ns, (SELECT now_ns FROM clock)) + $3 * least($2,
            ($4 - greatest(r.tat_ns - (SELECT now_ns FROM clock), 0)) / $3 + 1)
    END,
    admitted = CASE
        WHEN greatest(r.tat_ns - (SELECT now_ns FROM clock), 0) > $4 THEN 0
        ELSE least($2, ($4 - greatest(r.tat_ns - (SELECT now_ns FROM clock), 0)) / $3 + 1)
    END
RETURNING r.tat_ns - (SELECT now_ns FROM clock) AS spent_ns, r.admitted
"#;

const SWEEP: &str = "DELETE FROM rate_limits \
    WHERE tat_ns < (extract(epoch FROM now()) * 1000000)::bigint * 1000";

/// A request waiting for its identity's next statement: told its quota, or `None` when the
/// store failed and the caller decides locally.
type Waiter = oneshot::Sender<Option<Quota>>;

/// The PostgreSQL-backed limiter. Cheap to clone.
#[derive(Clone)]
pub struct SharedLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    gcra: Gcra,
    /// The fallback while the store is failing.
    local: RateLimiter,
    /// Per identity with a statement in flight: who waits for the next one.
    waiting: Mutex<HashMap<String, Vec<Waiter>>>,
    /// Until when the store is bypassed, after a failure.
    backoff_until: Mutex<Option<Instant>>,
    statements: AtomicU64,
}

impl SharedLimiter {
    /// Connects to `url` and creates the table when absent; a bad URL or an unreachable
    /// database is an error, so a misconfigured gateway does not start.
    pub async fn open(url: &str, per_minute: u32) -> Result<Self, String> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err("--rate-limit-store must be a postgres:// or postgresql:// URL".into());
        }
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| format!("--rate-limit-store: bad PostgreSQL URL: {e}"))?
            // Counters need no flush to disk before the answer: a database crash may forget
            // its last few milliseconds of spending, which at worst lets that many requests
            // through again; everyone sees a decision as soon as it commits either way.
            .options([
                ("statement_timeout", "1000"),
                ("lock_timeout", "1000"),
                ("synchronous_commit", "off"),
            ]);
        // One connection first, for its own error: the pool would only say it timed out.
        let probe = sqlx::PgConnection::connect_with(&options);
        match tokio::time::timeout(OPEN_TIMEOUT, probe).await {
            Ok(Ok(conn)) => drop(conn.close().await),
            Ok(Err(e)) => return Err(format!("cannot connect to the rate-limit store: {e}")),
            Err(_) => {
                return Err(format!(
                    "the rate-limit store did not answer within {OPEN_TIMEOUT:?}"
                ));
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(CONNECTIONS)
            .min_connections(1)
            .acquire_timeout(DECIDE_TIMEOUT * 2)
            .connect_lazy_with(options);
        let create = async {
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))")
                .bind(CREATE_LOCK)
                .execute(&mut *tx)
                .await?;
            sqlx::raw_sql(SCHEMA).execute(&mut *tx).await?;
            tx.commit().await
        };
        match tokio::time::timeout(OPEN_TIMEOUT, create).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("cannot use the rate-limit store: {e}")),
            Err(_) => {
                return Err(format!(
                    "the rate-limit store did not answer within {OPEN_TIMEOUT:?}"
                ));
            }
        }
        let inner = Arc::new(Inner {
            pool,
            gcra: Gcra::new(per_minute),
            local: RateLimiter::new(per_minute),
            waiting: Mutex::new(HashMap::new()),
            backoff_until: Mutex::new(None),
            statements: AtomicU64::new(0),
        });
        tokio::spawn(sweep(Arc::downgrade(&inner)));
        Ok(SharedLimiter { inner })
    }

    /// Spends one request of the budget named `id` (`local` is the same identity for the
    /// fallback). Waits at most about `DECIDE_TIMEOUT`.
    pub async fn check(&self, id: &str, local: Identity) -> Quota {
        let inner = &self.inner;
        if inner.backing_off() {
            return inner.local.check(local, Instant::now());
        }
        let (tx, rx) = oneshot::channel();
        let first = {
            let mut waiting = inner.waiting.lock().unwrap_or_else(PoisonError::into_inner);
            match waiting.get_mut(id) {
                Some(queue) => {
                    queue.push(tx);
                    false
                }
                None => {
                    waiting.insert(id.to_owned(), vec![tx]);
                    true
                }
            }
        };
        if first {
            // Its own task, so a caller that goes away does not strand the others.
            tokio::spawn(fly(inner.clone(), id.to_owned()));
        }
        match tokio::time::timeout(DECIDE_TIMEOUT * 2, rx).await {
            Ok(Ok(Some(quota))) => quota,
            _ => inner.local.check(local, Instant::now()),
        }
    }

    /// Deletes the rows whose budget is whole again (what the periodic sweep does); returns how
    /// many.
    pub async fn sweep_now(&self) -> Result<u64, String> {
        self.inner.sweep().await
    }

    /// Statements sent so far (decisions, not sweeps): with the requests served, how well
    /// bursts are batched.
    pub fn statements(&self) -> u64 {
        self.inner.statements.load(Ordering::Relaxed)
    }
}

impl Inner {
    fn backing_off(&self) -> bool {
        let until = self
            .backoff_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        until.is_some_and(|t| Instant::now() < t)
    }

    fn failed(&self, error: &str) {
        tracing::warn!(
            error,
            backoff_secs = BACKOFF.as_secs(),
            "rate-limit store failed; deciding in memory meanwhile"
        );
        crate::metrics::rate_limit_store_error();
        *self
            .backoff_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + BACKOFF);
    }

    async fn sweep(&self) -> Result<u64, String> {
        let swept =
            tokio::time::timeout(DECIDE_TIMEOUT * 5, sqlx::query(SWEEP).execute(&self.pool));
        match swept.await {
            Ok(Ok(done)) => Ok(done.rows_affected()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer within 5 s".into()),
        }
    }

    /// The requests waiting on `id`, up to `MAX_BATCH`; none (and the entry gone, so the next
    /// request starts a new flight) when nobody waits.
    fn next_batch(&self, id: &str) -> Vec<Waiter> {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(queue) = waiting.get_mut(id) else {
            return Vec::new();
        };
        if queue.is_empty() {
            waiting.remove(id);
            return Vec::new();
        }
        let rest = queue.split_off(queue.len().min(MAX_BATCH));
        std::mem::replace(queue, rest)
    }

    /// One statement deciding `k` requests: what is spent after, and how many were admitted.
    async fn decide(&self, id: &str, k: u32) -> Result<(Duration, u32), String> {
        let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        self.statements.fetch_add(1, Ordering::Relaxed);
        let query = sqlx::query_as::<_, (i64, i32)>(DECIDE)
            .bind(id)
            .bind(i64::from(k))
            .bind(nanos(self.gcra.interval()))
            .bind(nanos(self.gcra.tolerance()))
            .fetch_one(&self.pool);
        let (spent, admitted) = tokio::time::timeout(DECIDE_TIMEOUT, query)
            .await
            .map_err(|_| format!("no answer within {} ms", DECIDE_TIMEOUT.as_millis()))?
            .map_err(|e| e.to_string())?;
        let spent = Duration::from_nanos(u64::try_from(spent).unwrap_or(0));
        Ok((spent, u32::try_from(admitted).unwrap_or(0).min(k)))
    }
}

/// Decides `id`'s waiting requests, a batch per statement, until none is left.
async fn fly(inner: Arc<Inner>, id: String) {
    loop {
        let batch = inner.next_batch(&id);
        if batch.is_empty() {
            return;
        }
        if inner.backing_off() {
            // The store just failed: those queued behind it decide in memory now, rather than
            // wait for another timeout.
            for waiter in batch {
                let _ = waiter.send(None);
            }
            continue;
        }
        let k = u32::try_from(batch.len()).unwrap_or(u32::MAX);
        match inner.decide(&id, k).await {
            Ok((spent, admitted)) => {
                for (i, waiter) in (0..).zip(batch) {
                    // A waiter gone (its client left) forfeits its place; nothing to undo.
                    let _ = waiter.send(Some(inner.gcra.quota(spent, admitted, i)));
                }
            }
            Err(error) => {
                inner.failed(&error);
                for waiter in batch {
                    let _ = waiter.send(None);
                }
            }
        }
    }
}

/// Deletes whole budgets every `SWEEP_EVERY` while the limiter lives.
async fn sweep(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        match inner.sweep().await {
            Ok(rows) => tracing::debug!(rows, "rate limits swept"),
            Err(error) => tracing::debug!(error, "rate-limit sweep failed"),
        }
    }
}
