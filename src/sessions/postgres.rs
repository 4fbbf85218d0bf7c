//! The shared session store: PostgreSQL, for several gateway replicas behind one load balancer.
//!
//! Every method is one transaction, acknowledged after `COMMIT` returns. The connections ask
//! for `synchronous_commit=on` (Postgres's default, set explicitly so a server-wide `off`
//! cannot make an acknowledged turn vanish in a server crash): `COMMIT` returns once the WAL
//! record is flushed.
//!
//! `append` is a compare-and-set `UPDATE … WHERE len = expected`: the row lock serialises
//! concurrent turns on one session, and under READ COMMITTED a waiting `UPDATE` re-checks its
//! `WHERE` against the row the winner committed, so exactly one of them matches. Table creation
//! and purging take advisory locks, so replicas starting or purging together do not trip over
//! each other. Timestamps come from the replica's clock (kept monotonic per session with
//! `GREATEST`); replicas are expected to run NTP, and TTLs are minutes, not milliseconds.
//!
//! Opening migrates in place under the migration lock, in one transaction (PostgreSQL's DDL is
//! transactional): a version 1 store (no `session_schema` table, no `tenant` column) gets the
//! column, its sessions going to the anonymous tenant, and the version row 2. A fresh store takes
//! the same path from freshly made version 1 tables.
//!
//! The tables go to the first schema of the connection's `search_path`; a URL can choose it
//! with `?options[search_path]=name`.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::store::{
    AppendOutcome, Cas, NewSession, Page, PageRequest, Result, SCHEMA_VERSION, Session, SessionRow,
    SessionStore, SessionSummary, StoreConfig, StoreError, bodies, clamp_limit, created, cutoff_ms,
    from_db, generate_id, now_ms, page_of, schema_version, secs, to_db,
};
use super::store::{
    ChainBase, NewResponse, RESPONSE_COLUMNS, ResponseRow, StoredResponse, outcome_text,
};
use crate::chat::Tenant;
use crate::chat::types::Message;

const DEFAULT_CONNECTIONS: u32 = 8;
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Advisory lock classes ("SESM", "SESP"), each paired with the hash of the schema the tables
/// live in, so stores in different schemas of one database do not wait for each other.
const MIGRATE_LOCK: i32 = 0x5345_534d;
const PURGE_LOCK: i32 = 0x5345_5350;

// `COLLATE "C"`: ids order bytewise, as in SQLite, whatever the database's locale.
/// Version 1, as the first gateways with sessions created it.
const SCHEMA_V1: &str = r#"
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

const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS session_schema (version BIGINT NOT NULL)";

/// Version 1 → 2: sessions get an owner; the existing ones belong to the anonymous tenant.
const MIGRATE_V2: &str = r#"
ALTER TABLE sessions ADD COLUMN tenant TEXT COLLATE "C" NOT NULL DEFAULT 'anonymous';
CREATE INDEX IF NOT EXISTS sessions_by_tenant ON sessions (tenant, created_ms, id);
DELETE FROM session_schema;
INSERT INTO session_schema (version) VALUES (2);
"#;

/// Version 2 → 3: stored responses. Each points into the history of a chain session (kind
/// `chain`, not listed with the sessions), and goes with it.
const MIGRATE_V3: &str = r#"
ALTER TABLE sessions ADD COLUMN kind TEXT NOT NULL DEFAULT 'session';
CREATE TABLE IF NOT EXISTS responses (
    id TEXT COLLATE "C" PRIMARY KEY,
    tenant TEXT COLLATE "C" NOT NULL,
    session_id TEXT COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    input_start BIGINT NOT NULL,
    len BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    document TEXT NOT NULL,
    outcome TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_by_session ON responses (session_id);
DELETE FROM session_schema;
INSERT INTO session_schema (version) VALUES (3);
"#;

/// Version 3 → 4: the usage ledger (one row per completed request, see `usage/`) and the
/// budgets set through the admin API. `period`, `amount`: `window` and `limit` are SQL words.
const MIGRATE_V4: &str = r#"
CREATE TABLE IF NOT EXISTS usage (
    ts_ms BIGINT NOT NULL,
    tenant TEXT COLLATE "C" NOT NULL,
    api TEXT NOT NULL,
    model TEXT NOT NULL,
    status TEXT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cached_input_tokens BIGINT NOT NULL,
    cost_usd DOUBLE PRECISION NOT NULL,
    duration_ms BIGINT NOT NULL,
    ttft_ms BIGINT
);
CREATE INDEX IF NOT EXISTS usage_by_tenant ON usage (tenant, ts_ms);
CREATE INDEX IF NOT EXISTS usage_by_time ON usage (ts_ms);
CREATE TABLE IF NOT EXISTS budgets (
    tenant TEXT COLLATE "C" NOT NULL,
    metric TEXT NOT NULL,
    period TEXT NOT NULL,
    amount DOUBLE PRECISION NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, metric, period)
);
DELETE FROM session_schema;
INSERT INTO session_schema (version) VALUES (4);
"#;

pub struct PgStore {
    pool: PgPool,
    idle_ttl: Option<Duration>,
}

impl PgStore {
    /// Connects to `url` (`postgres://…` or `postgresql://…`) and creates the tables if absent.
    pub async fn open(url: &str, cfg: &StoreConfig) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Backend(format!("bad PostgreSQL URL: {e}")))?
            .options([("synchronous_commit", "on")]);
        let pool = PgPoolOptions::new()
            .max_connections(cfg.max_connections.unwrap_or(DEFAULT_CONNECTIONS).max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Backend(format!("cannot connect to PostgreSQL: {e}")))?;
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))")
            .bind(MIGRATE_LOCK)
            .execute(&mut *tx)
            .await?;
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
        Ok(PgStore {
            pool,
            idle_ttl: cfg.idle_ttl,
        })
    }

    /// The connection pool, for the usage ledger that shares the database (`usage::store`).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn cutoff(&self, now: i64) -> i64 {
        cutoff_ms(now, self.idle_ttl)
    }

    /// The compare-and-set append of `bodies` to session `id`, inside `tx`.
    async fn append_in(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
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
        let seqs = (expected_len..len)
            .map(to_db)
            .collect::<Result<Vec<i64>>>()?;
        let now = now_ms();
        let cutoff = self.cutoff(now);
        // Compare-and-set on the length: the row only moves if no other turn landed.
        let updated: Option<i64> = sqlx::query_scalar(
            "UPDATE sessions SET len = $1, updated_ms = GREATEST(updated_ms, $2)
             WHERE id = $3 AND len = $4 AND updated_ms >= $5 AND ($6 OR tenant = $7)
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
                "SELECT len FROM sessions
                 WHERE id = $1 AND updated_ms >= $2 AND ($3 OR tenant = $4)",
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
        if !bodies.is_empty() {
            sqlx::query(
                "INSERT INTO session_messages (session_id, seq, body)
                 SELECT $1, t.seq, t.body FROM UNNEST($2::BIGINT[], $3::TEXT[]) AS t (seq, body)",
            )
            .bind(id)
            .bind(&seqs)
            .bind(bodies)
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
impl SessionStore for PgStore {
    async fn create(&self, owner: &Tenant, new: NewSession) -> Result<Session> {
        let id = new.id.clone().unwrap_or_else(generate_id);
        let metadata = serde_json::to_string(&new.metadata)?;
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        // An expired session that was not purged yet gives its id up.
        sqlx::query("DELETE FROM sessions WHERE id = $1 AND updated_ms < $2")
            .bind(&id)
            .bind(self.cutoff(now))
            .execute(&mut *tx)
            .await?;
        let inserted = sqlx::query(
            "INSERT INTO sessions (id, model, system, metadata, created_ms, updated_ms, len, tenant)
             VALUES ($1, $2, $3, $4, $5, $5, 0, $6) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&id)
        .bind(&new.model)
        .bind(&new.system)
        .bind(&metadata)
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
        // One snapshot for both reads, so the session row and its messages agree.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?;
        let row = sqlx::query(
            "SELECT id, model, system, metadata, created_ms, updated_ms, len FROM sessions
             WHERE id = $1 AND updated_ms >= $2 AND ($3 OR tenant = $4)",
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
            "SELECT body FROM session_messages WHERE session_id = $1 ORDER BY seq",
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
                     WHERE id = $1 AND updated_ms >= $2 AND ($3 OR tenant = $4)",
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
             WHERE updated_ms >= $1 AND (created_ms, id) > ($2, $3) AND ($4 OR tenant = $5)
               AND kind = 'session'
             ORDER BY created_ms, id LIMIT $6",
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
            "DELETE FROM sessions WHERE id = $1 AND ($2 OR tenant = $3) RETURNING updated_ms",
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
        let mut tx = self.pool.begin().await?;
        let touched = sqlx::query(
            "UPDATE sessions SET len = 0, updated_ms = GREATEST(updated_ms, $1)
             WHERE id = $2 AND updated_ms >= $3 AND ($4 OR tenant = $5)",
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
        sqlx::query("DELETE FROM session_messages WHERE session_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // Responses pointing into the history go with it.
        sqlx::query("DELETE FROM responses WHERE session_id = $1")
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
        let mut tx = self.pool.begin().await?;
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
        let mut tx = self.pool.begin().await?;
        let (session, expected_len) = match base {
            ChainBase::Existing {
                session,
                expected_len,
            } => (session, expected_len),
            ChainBase::New(new) => {
                let id = new.id.clone().unwrap_or_else(generate_id);
                sqlx::query(
                    "INSERT INTO sessions
                       (id, model, system, metadata, created_ms, updated_ms, len, tenant, kind)
                     VALUES ($1, $2, $3, $4, $5, $5, 0, $6, 'chain')",
                )
                .bind(&id)
                .bind(&new.model)
                .bind(&new.system)
                .bind(serde_json::to_string(&new.metadata)?)
                .bind(now_ms())
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
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
        // REPEATABLE READ: the response row and its chain's messages come from one snapshot.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RESPONSE_COLUMNS} FROM responses r JOIN sessions s ON s.id = r.session_id
             WHERE r.id = $1 AND s.updated_ms >= $2 AND ($3 OR r.tenant = $4)"
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
            "SELECT body FROM session_messages WHERE session_id = $1 AND seq < $2 ORDER BY seq",
        )
        .bind(&row.session_id)
        .bind(row.len)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(row.into_stored(&bodies)?))
    }

    async fn delete_response(&self, tenant: &Tenant, id: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        // The chain's row lock: two deletes of its last responses cannot both leave it behind.
        let session: Option<String> = sqlx::query_scalar(
            "SELECT s.id FROM responses r JOIN sessions s ON s.id = r.session_id
             WHERE r.id = $1 AND s.updated_ms >= $2 AND ($3 OR r.tenant = $4)
             FOR UPDATE OF s",
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
        let deleted = sqlx::query("DELETE FROM responses WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // The last response of a chain takes the chain's history with it.
        sqlx::query(
            "DELETE FROM sessions WHERE id = $1 AND kind = 'chain'
               AND NOT EXISTS (SELECT 1 FROM responses WHERE session_id = $1)",
        )
        .bind(&session)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(deleted > 0)
    }

    async fn purge_expired(&self, idle_ttl: Duration, max_count: Option<usize>) -> Result<usize> {
        let mut tx = self.pool.begin().await?;
        // Another replica purging right now does this replica's work too.
        let locked: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1, hashtext(current_schema()))")
                .bind(PURGE_LOCK)
                .fetch_one(&mut *tx)
                .await?;
        if !locked {
            return Ok(0);
        }
        let mut deleted = sqlx::query("DELETE FROM sessions WHERE updated_ms < $1")
            .bind(cutoff_ms(now_ms(), Some(idle_ttl)))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if let Some(max) = max_count {
            deleted += sqlx::query(
                "DELETE FROM sessions WHERE id IN (
                     SELECT id FROM sessions ORDER BY updated_ms DESC, id DESC OFFSET $1
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
