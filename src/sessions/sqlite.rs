//! The default session store: one SQLite file in the gateway's data directory, for a single
//! instance (or several processes on one host; SQLite's file locks do not work across hosts).
//!
//! Durability: WAL journal with `synchronous=FULL`, so each commit fsyncs the WAL before it
//! returns, and every method returns only after its commit. With WAL, `NORMAL` would already
//! survive a `kill -9` (the WAL is in the OS page cache), but not a power loss; a turn takes
//! seconds of model time, so one fsync per turn costs nothing that matters.
//!
//! Every write runs in a `BEGIN IMMEDIATE` transaction: it takes SQLite's write lock before it
//! reads, so two writers never both read the same history length and then race for the lock
//! (a deferred transaction would fail that race with `SQLITE_BUSY_SNAPSHOT`, which no busy
//! timeout retries). Waiting for the lock is bounded by the busy timeout.
//!
//! Opening migrates in place, in one `BEGIN IMMEDIATE` transaction: a version 1 store (no
//! `session_schema` table, no `tenant` column) gets the column, its sessions going to the
//! anonymous tenant, and the version row 2. A fresh store is made the same way: version 1 tables
//! first, then the same migration, so the upgrade path is the one every store takes.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::store::{
    AppendOutcome, Cas, ChainBase, NewResponse, NewSession, RESPONSE_COLUMNS, ResponseRow,
    StoredResponse, outcome_text,
};
use super::store::{
    Page, PageRequest, Result, SCHEMA_VERSION, Session, SessionRow, SessionStore, SessionSummary,
    StoreConfig, StoreError, bodies, clamp_limit, created, cutoff_ms, from_db, generate_id, now_ms,
    page_of, schema_version, secs, to_db,
};
use crate::chat::Tenant;
use crate::chat::types::Message;

const DEFAULT_CONNECTIONS: u32 = 4;
/// How long a writer waits for another's transaction before it fails with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// Version 1, as the first gateways with sessions created it.
const SCHEMA_V1: &str = "
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

const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS session_schema (version INTEGER NOT NULL)";

/// Version 1 → 2: sessions get an owner; the existing ones belong to the anonymous tenant.
const MIGRATE_V2: &str = "
ALTER TABLE sessions ADD COLUMN tenant TEXT NOT NULL DEFAULT 'anonymous';
CREATE INDEX IF NOT EXISTS sessions_by_tenant ON sessions (tenant, created_ms, id);
DELETE FROM session_schema;
INSERT INTO session_schema (version) VALUES (2);
";

/// Version 2 → 3: stored responses. Each points into the history of a chain session (kind
/// `chain`, not listed with the sessions), and goes with it.
const MIGRATE_V3: &str = "
ALTER TABLE sessions ADD COLUMN kind TEXT NOT NULL DEFAULT 'session';
CREATE TABLE IF NOT EXISTS responses (
    id TEXT NOT NULL PRIMARY KEY,
    tenant TEXT NOT NULL,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    input_start INTEGER NOT NULL,
    len INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    document TEXT NOT NULL,
    outcome TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_by_session ON responses (session_id);
DELETE FROM session_schema;
INSERT INTO session_schema (version) VALUES (3);
";

/// Version 3 → 4: the usage ledger (one row per completed request, see `usage/`) and the
/// budgets set through the admin API. `period`, `amount`: `window` and `limit` are SQL words.
const MIGRATE_V4: &str = "
CREATE TABLE IF NOT EXISTS usage (
    ts_ms INTEGER NOT NULL,
    tenant TEXT NOT NULL,
    api TEXT NOT NULL,
    model TEXT NOT NULL,
    status TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cached_input_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    duration_ms INTEGER NOT NULL,
    ttft_ms INTEGER
);
CREATE INDEX IF NOT EXISTS usage_by_tenant ON usage (tenant, ts_ms);
CREATE INDEX IF NOT EXISTS usage_by_time ON usage (ts_ms);
CREATE TABLE IF NOT EXISTS budgets (
    tenant TEXT NOT NULL,
    metric TEXT NOT NULL,
    period TEXT NOT NULL,
    amount REAL NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, metric, period)
);
DELETE FROM session_schema;
INSERT INTO session_schema (version) VALUES (4);
";

pub struct SqliteStore {
    pool: SqlitePool,
    idle_ttl: Option<Duration>,
}

impl SqliteStore {
    /// Opens (creating it, and its directory, if absent) the database file and its tables.
    pub async fn open(file: &Path, cfg: &StoreConfig) -> Result<Self> {
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await.map_err(|e| {
                StoreError::Backend(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(file)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(cfg.max_connections.unwrap_or(DEFAULT_CONNECTIONS).max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", file.display())))?;
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::raw_sql(SCHEMA_V1).execute(&mut *tx).await?;
        sqlx::raw_sql(VERSION_TABLE).execute(&mut *tx).await?;
        let found: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM session_schema")
            .fetch_one(&mut *tx)
            .await?;
        let version = schema_version(found)?;
        if version < 2 {
            sqlx::raw_sql(MIGRATE_V2).execute(&mut *tx).await?;
        }
        if version < 3 {
            sqlx::raw_sql(MIGRATE_V3).execute(&mut *tx).await?;
        }
        if version < 4 {
            sqlx::raw_sql(MIGRATE_V4).execute(&mut *tx).await?;
        }
        if version < SCHEMA_VERSION {
            tracing::info!(
                from = version,
                to = SCHEMA_VERSION,
                "session store migrated"
            );
        }
        tx.commit().await?;
        Ok(SqliteStore {
            pool,
            idle_ttl: cfg.idle_ttl,
        })
    }

    /// The connection pool, for the usage ledger that shares the file (`usage::store`).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn cutoff(&self, now: i64) -> i64 {
        cutoff_ms(now, self.idle_ttl)
    }

    /// The compare-and-set append of `bodies` to session `id`, inside `tx`.
    async fn append_in(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
        tenant: &Tenant,
        cas: Cas<'_>,
    ) -> Result<AppendOutcome> {
        let Cas {
            id,
            expected_len,
            bodies,
        } = cas;
        // Past i64::MAX, `to_db` refuses it.
        let len = expected_len.saturating_add(bodies.len());
        let now = now_ms();
        let cutoff = self.cutoff(now);
        // Compare-and-set on the length: the row only moves if no other turn landed.
        let updated: Option<i64> = sqlx::query_scalar(
            "UPDATE sessions SET len = ?, updated_ms = MAX(updated_ms, ?)
             WHERE id = ? AND len = ? AND updated_ms >= ? AND (? OR tenant = ?)
             RETURNING updated_ms",
        )
        .bind(to_db(len)?)
        .bind(now)
        .bind(id)
        .bind(to_db(expected_len)?)
        .bind(cutoff)
        .bind(tenant.is_admin())
        .bind(tenant.id())
        .fetch_optional(&mut **tx)
        .await?;
        let Some(updated) = updated else {
            let actual: Option<i64> = sqlx::query_scalar(
                "SELECT len FROM sessions WHERE id = ? AND updated_ms >= ? AND (? OR tenant = ?)",
            )
            .bind(id)
            .bind(cutoff)
            .bind(tenant.is_admin())
            .bind(tenant.id())
            .fetch_optional(&mut **tx)
            .await?;
            return Err(match actual {
                None => StoreError::NotFound(id.to_owned()),
                Some(actual) => StoreError::Conflict {
                    expected: expected_len,
                    actual: from_db(actual)?,
                },
            });
        };
        for (seq, body) in (expected_len..).zip(bodies) {
            sqlx::query("INSERT INTO session_messages (session_id, seq, body) VALUES (?, ?, ?)")
                .bind(id)
                .bind(to_db(seq)?)
                .bind(body)
                .execute(&mut **tx)
                .await?;
        }
        Ok(AppendOutcome {
            len,
            updated_at: secs(updated),
        })
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create(&self, owner: &Tenant, new: NewSession) -> Result<Session> {
        let id = new.id.clone().unwrap_or_else(generate_id);
        let metadata = serde_json::to_string(&new.metadata)?;
        let now = now_ms();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // An expired session that was not purged yet gives its id up.
        sqlx::query("DELETE FROM sessions WHERE id = ? AND updated_ms < ?")
            .bind(&id)
            .bind(self.cutoff(now))
            .execute(&mut *tx)
            .await?;
        let inserted = sqlx::query(
            "INSERT INTO sessions (id, model, system, metadata, created_ms, updated_ms, len, tenant)
             VALUES (?, ?, ?, ?, ?, ?, 0, ?) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&id)
        .bind(&new.model)
        .bind(&new.system)
        .bind(&metadata)
        .bind(now)
        .bind(now)
        .bind(owner.id())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(StoreError::AlreadyExists(id));
        }
        tx.commit().await?;
        Ok(created(id, new, now))
    }

    async fn get(&self, tenant: &Tenant, id: &str) -> Result<Option<Session>> {
        // A deferred transaction: its first read pins a WAL snapshot, so the session row and
        // its messages agree.
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "SELECT id, model, system, metadata, created_ms, updated_ms, len FROM sessions
             WHERE id = ? AND updated_ms >= ? AND (? OR tenant = ?)",
        )
        .bind(id)
        .bind(self.cutoff(now_ms()))
        .bind(tenant.is_admin())
        .bind(tenant.id())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let bodies: Vec<String> = sqlx::query_scalar(
            "SELECT body FROM session_messages WHERE session_id = ? ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(SessionRow::decode(&row)?.into_session(&bodies)?))
    }

    async fn list(&self, tenant: &Tenant, page: PageRequest) -> Result<Page<SessionSummary>> {
        let limit = clamp_limit(page.limit);
        let cutoff = self.cutoff(now_ms());
        let (after_ms, after_id) = match page.after {
            None => (i64::MIN, String::new()),
            Some(after) => {
                let created: Option<i64> = sqlx::query_scalar(
                    "SELECT created_ms FROM sessions
                     WHERE id = ? AND updated_ms >= ? AND (? OR tenant = ?)",
                )
                .bind(&after)
                .bind(cutoff)
                .bind(tenant.is_admin())
                .bind(tenant.id())
                .fetch_optional(&self.pool)
                .await?;
                (
                    created.ok_or_else(|| StoreError::NotFound(after.clone()))?,
                    after,
                )
            }
        };
        let rows = sqlx::query(
            "SELECT id, model, system, metadata, created_ms, updated_ms, len FROM sessions
             WHERE updated_ms >= ? AND (created_ms, id) > (?, ?) AND (? OR tenant = ?)
               AND kind = 'session'
             ORDER BY created_ms, id LIMIT ?",
        )
        .bind(cutoff)
        .bind(after_ms)
        .bind(after_id)
        .bind(tenant.is_admin())
        .bind(tenant.id())
        .bind(to_db(limit + 1)?)
        .fetch_all(&self.pool)
        .await?;
        let items = rows
            .iter()
            .map(|r| SessionRow::decode(r)?.into_summary())
            .collect::<Result<Vec<_>>>()?;
        Ok(page_of(items, limit))
    }

    async fn delete(&self, tenant: &Tenant, id: &str) -> Result<bool> {
        let updated: Option<i64> = sqlx::query_scalar(
            "DELETE FROM sessions WHERE id = ? AND (? OR tenant = ?) RETURNING updated_ms",
        )
        .bind(id)
        .bind(tenant.is_admin())
        .bind(tenant.id())
        .fetch_optional(&self.pool)
        .await?;
        // An expired session is deleted all the same, but it was not there to delete.
        Ok(updated.is_some_and(|u| u >= self.cutoff(now_ms())))
    }

    async fn clear(&self, tenant: &Tenant, id: &str) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let touched = sqlx::query(
            "UPDATE sessions SET len = 0, updated_ms = MAX(updated_ms, ?)
             WHERE id = ? AND updated_ms >= ? AND (? OR tenant = ?)",
        )
        .bind(now)
        .bind(id)
        .bind(self.cutoff(now))
        .bind(tenant.is_admin())
        .bind(tenant.id())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if touched == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM session_messages WHERE session_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // Responses pointing into the history go with it.
        sqlx::query("DELETE FROM responses WHERE session_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn append(
        &self,
        tenant: &Tenant,
        id: &str,
        expected_len: usize,
        messages: Vec<Message>,
    ) -> Result<AppendOutcome> {
        let bodies = bodies(&messages)?;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let outcome = self
            .append_in(
                &mut tx,
                tenant,
                Cas {
                    id,
                    expected_len,
                    bodies: &bodies,
                },
            )
            .await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn commit_response(
        &self,
        tenant: &Tenant,
        base: ChainBase,
        messages: Vec<Message>,
        response: NewResponse,
    ) -> Result<AppendOutcome> {
        let bodies = bodies(&messages)?;
        let outcome = outcome_text(&response.outcome)?;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let (session, expected_len) = match base {
            ChainBase::Existing {
                session,
                expected_len,
            } => (session, expected_len),
            ChainBase::New(new) => {
                let id = new.id.clone().unwrap_or_else(generate_id);
                let now = now_ms();
                sqlx::query(
                    "INSERT INTO sessions
                       (id, model, system, metadata, created_ms, updated_ms, len, tenant, kind)
                     VALUES (?, ?, ?, ?, ?, ?, 0, ?, 'chain')",
                )
                .bind(&id)
                .bind(&new.model)
                .bind(&new.system)
                .bind(serde_json::to_string(&new.metadata)?)
                .bind(now)
                .bind(now)
                .bind(tenant.id())
                .execute(&mut *tx)
                .await?;
                (id, 0)
            }
        };
        let appended = self
            .append_in(
                &mut tx,
                tenant,
                Cas {
                    id: &session,
                    expected_len,
                    bodies: &bodies,
                },
            )
            .await?;
        sqlx::query(
            "INSERT INTO responses
               (id, tenant, session_id, input_start, len, created_ms, document, outcome)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&response.id)
        .bind(tenant.id())
        .bind(&session)
        .bind(to_db(response.input_start)?)
        .bind(to_db(appended.len)?)
        .bind(now_ms())
        .bind(&response.document)
        .bind(&outcome)
        .execute(&mut *tx)
        .await
        .map_err(|e| match e.as_database_error() {
            Some(db) if db.is_unique_violation() => StoreError::AlreadyExists(response.id.clone()),
            _ => StoreError::from(e),
        })?;
        tx.commit().await?;
        Ok(appended)
    }

    async fn get_response(&self, tenant: &Tenant, id: &str) -> Result<Option<StoredResponse>> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RESPONSE_COLUMNS} FROM responses r JOIN sessions s ON s.id = r.session_id
             WHERE r.id = ? AND s.updated_ms >= ? AND (? OR r.tenant = ?)"
        )))
        .bind(id)
        .bind(self.cutoff(now_ms()))
        .bind(tenant.is_admin())
        .bind(tenant.id())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let row = ResponseRow::decode(&row)?;
        let bodies: Vec<String> = sqlx::query_scalar(
            "SELECT body FROM session_messages WHERE session_id = ? AND seq < ? ORDER BY seq",
        )
        .bind(&row.session_id)
        .bind(row.len)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(row.into_stored(&bodies)?))
    }

    async fn delete_response(&self, tenant: &Tenant, id: &str) -> Result<bool> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let session: Option<String> = sqlx::query_scalar(
            "SELECT r.session_id FROM responses r JOIN sessions s ON s.id = r.session_id
             WHERE r.id = ? AND s.updated_ms >= ? AND (? OR r.tenant = ?)",
        )
        .bind(id)
        .bind(self.cutoff(now_ms()))
        .bind(tenant.is_admin())
        .bind(tenant.id())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(session) = session else {
            return Ok(false);
        };
        sqlx::query("DELETE FROM responses WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // The last response of a chain takes the chain's history with it.
        sqlx::query(
            "DELETE FROM sessions WHERE id = ? AND kind = 'chain'
               AND NOT EXISTS (SELECT 1 FROM responses WHERE session_id = ?)",
        )
        .bind(&session)
        .bind(&session)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn purge_expired(&self, idle_ttl: Duration, max_count: Option<usize>) -> Result<usize> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut deleted = sqlx::query("DELETE FROM sessions WHERE updated_ms < ?")
            .bind(cutoff_ms(now_ms(), Some(idle_ttl)))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if let Some(max) = max_count {
            deleted += sqlx::query(
                "DELETE FROM sessions WHERE id IN (
                     SELECT id FROM sessions ORDER BY updated_ms DESC, id DESC LIMIT -1 OFFSET ?
                 )",
            )
            .bind(to_db(max)?)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        usize::try_from(deleted).map_err(|e| StoreError::Backend(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_migration_gives_old_sessions_to_the_anonymous_tenant() {
        let default = format!("DEFAULT '{}'", crate::chat::tenant::ANONYMOUS);
        assert!(MIGRATE_V2.contains(&default));
        assert!(MIGRATE_V3.contains("VALUES (3)"));
        assert!(MIGRATE_V4.contains(&format!("VALUES ({SCHEMA_VERSION})")));
    }
}
