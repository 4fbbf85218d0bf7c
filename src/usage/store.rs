//! The ledger's tables in the session store's database (schema version 4, made by
//! `sessions::{sqlite,postgres}`): `usage`, one row per completed request, and `budgets`, the
//! limits set through the admin API. One SQL text serves both backends: it is written with `?`
//! placeholders, numbered `$1…` for PostgreSQL, and every aggregate is cast so both return the
//! same types (PostgreSQL's `SUM(bigint)` is a `numeric`).

use sqlx::Row;

use crate::sessions::StorePool;

use super::budget::{Budget, Metric, Spend, Totals, Window};
use super::{Group, GroupBy, UsageQuery, UsageRow};

pub type Result<T> = std::result::Result<T, String>;

fn db(e: sqlx::Error) -> String {
    format!("usage store: {e}")
}

/// `?` placeholders numbered for PostgreSQL. The ledger's SQL has no `?` inside strings.
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

/// A value bound to a statement of either backend.
#[derive(Debug, Clone)]
enum Value {
    Int(i64),
    Float(f64),
    Text(String),
    OptInt(Option<i64>),
}

macro_rules! bind_all {
    ($query:expr, $values:expr) => {{
        let mut q = $query;
        for v in $values {
            q = match v {
                Value::Int(i) => q.bind(*i),
                Value::Float(f) => q.bind(*f),
                Value::Text(t) => q.bind(t.clone()),
                Value::OptInt(o) => q.bind(*o),
            };
        }
        q
    }};
}

/// What `fetch` gives back: the rows, decoded by column name, the same on both backends.
trait Columns {
    fn text(&self, name: &str) -> Result<Option<String>>;
    fn int(&self, name: &str) -> Result<Option<i64>>;
    fn float(&self, name: &str) -> Result<Option<f64>>;
}

macro_rules! columns {
    ($row:ty) => {
        impl Columns for $row {
            fn text(&self, name: &str) -> Result<Option<String>> {
                self.try_get(name).map_err(db)
            }
            fn int(&self, name: &str) -> Result<Option<i64>> {
                self.try_get(name).map_err(db)
            }
            fn float(&self, name: &str) -> Result<Option<f64>> {
                self.try_get(name).map_err(db)
            }
        }
    };
}
columns!(sqlx::sqlite::SqliteRow);
columns!(sqlx::postgres::PgRow);

/// The ledger's view of the store.
#[derive(Clone)]
pub struct UsageStore {
    pool: StorePool,
}

impl UsageStore {
    pub fn new(pool: StorePool) -> Self {
        UsageStore { pool }
    }

    async fn execute(&self, sql: &str, values: &[Value]) -> Result<u64> {
        match &self.pool {
            StorePool::Sqlite(pool) => {
                let q = bind_all!(sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())), values);
                Ok(q.execute(pool).await.map_err(db)?.rows_affected())
            }
            StorePool::Postgres(pool) => {
                let q = bind_all!(sqlx::query(sqlx::AssertSqlSafe(numbered(sql))), values);
                Ok(q.execute(pool).await.map_err(db)?.rows_affected())
            }
        }
    }

    /// Runs `sql` and decodes each row with `decode`.
    async fn fetch<T>(
        &self,
        sql: &str,
        values: &[Value],
        decode: impl Fn(&dyn Columns) -> Result<T>,
    ) -> Result<Vec<T>> {
        match &self.pool {
            StorePool::Sqlite(pool) => {
                let q = bind_all!(sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())), values);
                let rows = q.fetch_all(pool).await.map_err(db)?;
                rows.iter().map(|r| decode(r)).collect()
            }
            StorePool::Postgres(pool) => {
                let q = bind_all!(sqlx::query(sqlx::AssertSqlSafe(numbered(sql))), values);
                let rows = q.fetch_all(pool).await.map_err(db)?;
                rows.iter().map(|r| decode(r)).collect()
            }
        }
    }

    /// Writes `rows` in one statement (one transaction).
    pub async fn insert(&self, rows: &[UsageRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut sql = String::from(
            "INSERT INTO usage (ts_ms, tenant, api, model, status, input_tokens, output_tokens, \
             cached_input_tokens, cost_usd, duration_ms, ttft_ms) VALUES ",
        );
        let mut values = Vec::with_capacity(rows.len() * 11);
        for (i, row) in rows.iter().enumerate() {
            sql.push_str(if i == 0 { "" } else { ", " });
            sql.push_str("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
            values.extend([
                Value::Int(row.ts_ms),
                Value::Text(row.tenant.clone()),
                Value::Text(row.api.to_owned()),
                Value::Text(row.model.clone()),
                Value::Text(row.status.clone()),
                Value::Int(i64::from(row.input_tokens)),
                Value::Int(i64::from(row.output_tokens)),
                Value::Int(i64::from(row.cached_input_tokens)),
                Value::Float(row.cost_usd),
                Value::Int(row.duration_ms),
                Value::OptInt(row.ttft_ms),
            ]);
        }
        self.execute(&sql, &values).await.map(drop)
    }

    /// Deletes the rows older than `before_ms`; how many.
    pub async fn purge(&self, before_ms: i64) -> Result<u64> {
        self.execute(
            "DELETE FROM usage WHERE ts_ms < ?",
            &[Value::Int(before_ms)],
        )
        .await
    }

    /// What `tenant` used since `month_start` (Unix ms), and since `day_start` within it.
    pub async fn spend(&self, tenant: &str, day_start: i64, month_start: i64) -> Result<Spend> {
        let sql = "SELECT \
            CAST(COALESCE(SUM(CASE WHEN ts_ms >= ? THEN 1 ELSE 0 END), 0) AS BIGINT) AS dr, \
            CAST(COALESCE(SUM(CASE WHEN ts_ms >= ? THEN input_tokens + output_tokens ELSE 0 END), 0) AS BIGINT) AS dt, \
            CAST(COALESCE(SUM(CASE WHEN ts_ms >= ? THEN cost_usd ELSE 0 END), 0) AS DOUBLE PRECISION) AS du, \
            CAST(COUNT(*) AS BIGINT) AS mr, \
            CAST(COALESCE(SUM(input_tokens + output_tokens), 0) AS BIGINT) AS mt, \
            CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) AS mu \
            FROM usage WHERE tenant = ? AND ts_ms >= ?";
        let values = [
            Value::Int(day_start),
            Value::Int(day_start),
            Value::Int(day_start),
            Value::Text(tenant.to_owned()),
            Value::Int(month_start),
        ];
        let rows = self
            .fetch(sql, &values, |r| {
                let totals = |req: &str, tok: &str, usd: &str| -> Result<Totals> {
                    Ok(Totals {
                        requests: r.int(req)?.unwrap_or(0) as f64,
                        tokens: r.int(tok)?.unwrap_or(0) as f64,
                        usd: r.float(usd)?.unwrap_or(0.0),
                    })
                };
                Ok(Spend {
                    day: totals("dr", "dt", "du")?,
                    month: totals("mr", "mt", "mu")?,
                })
            })
            .await?;
        Ok(rows.into_iter().next().unwrap_or_default())
    }

    /// The rows of `query`, summed over its groups.
    pub async fn aggregate(&self, query: &UsageQuery) -> Result<Vec<Group>> {
        let day = match self.pool {
            StorePool::Sqlite(_) => "strftime('%Y-%m-%d', ts_ms / 1000, 'unixepoch')",
            StorePool::Postgres(_) => {
                "to_char(to_timestamp(ts_ms / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
            }
        };
        let columns: Vec<(GroupBy, String)> = query
            .group_by
            .iter()
            .map(|g| {
                let expr = match g {
                    GroupBy::Key => "tenant".to_owned(),
                    GroupBy::Model => "model".to_owned(),
                    GroupBy::Day => day.to_owned(),
                    GroupBy::Api => "api".to_owned(),
                    GroupBy::Status => "status".to_owned(),
                };
                (*g, expr)
            })
            .collect();
        let mut sql = String::from("SELECT ");
        for (g, expr) in &columns {
            sql.push_str(&format!("{expr} AS g_{}, ", g.as_str()));
        }
        sql.push_str(
            "CAST(COUNT(*) AS BIGINT) AS requests, \
             CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, \
             CAST(SUM(output_tokens) AS BIGINT) AS output_tokens, \
             CAST(SUM(cached_input_tokens) AS BIGINT) AS cached_input_tokens, \
             CAST(SUM(cost_usd) AS DOUBLE PRECISION) AS cost_usd, \
             CAST(SUM(duration_ms) AS BIGINT) AS duration_ms, \
             CAST(AVG(ttft_ms) AS DOUBLE PRECISION) AS ttft_ms_avg \
             FROM usage WHERE ts_ms >= ? AND ts_ms < ?",
        );
        let mut values = vec![
            Value::Int(query.from.saturating_mul(1000)),
            Value::Int(query.to.saturating_mul(1000)),
        ];
        if let Some(tenant) = &query.tenant {
            sql.push_str(" AND tenant = ?");
            values.push(Value::Text(tenant.clone()));
        }
        if !columns.is_empty() {
            let list: Vec<String> = columns
                .iter()
                .map(|(g, _)| format!("g_{}", g.as_str()))
                .collect();
            let list = list.join(", ");
            sql.push_str(&format!(" GROUP BY {list} ORDER BY {list}"));
        } else {
            // One total row, or none when nothing was recorded.
            sql.push_str(" HAVING COUNT(*) > 0");
        }
        self.fetch(&sql, &values, |r| {
            let mut group = Group::default();
            for (g, _) in &columns {
                let value = r.text(&format!("g_{}", g.as_str()))?;
                group.keys.push((*g, value.unwrap_or_default()));
            }
            group.requests = r.int("requests")?.unwrap_or(0);
            group.input_tokens = r.int("input_tokens")?.unwrap_or(0);
            group.output_tokens = r.int("output_tokens")?.unwrap_or(0);
            group.cached_input_tokens = r.int("cached_input_tokens")?.unwrap_or(0);
            group.cost_usd = r.float("cost_usd")?.unwrap_or(0.0);
            group.duration_ms = r.int("duration_ms")?.unwrap_or(0);
            group.ttft_ms_avg = r.float("ttft_ms_avg")?.map(|v| v.round() as i64);
            Ok(group)
        })
        .await
    }

    /// The budgets set through the API: `tenant`'s, or every tenant's.
    pub async fn budgets(&self, tenant: Option<&str>) -> Result<Vec<(String, Budget)>> {
        let mut sql = String::from("SELECT tenant, metric, period, amount FROM budgets");
        let mut values = Vec::new();
        if let Some(tenant) = tenant {
            sql.push_str(" WHERE tenant = ?");
            values.push(Value::Text(tenant.to_owned()));
        }
        sql.push_str(" ORDER BY tenant, metric, period");
        let rows = self
            .fetch(&sql, &values, |r| {
                Ok((
                    r.text("tenant")?.unwrap_or_default(),
                    r.text("metric")?.unwrap_or_default(),
                    r.text("period")?.unwrap_or_default(),
                    r.float("amount")?.unwrap_or(0.0),
                ))
            })
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(tenant, metric, period, amount)| {
                let budget = Budget::new(Metric::parse(&metric)?, Window::parse(&period)?, amount);
                Some((tenant, budget.ok()?))
            })
            .collect())
    }

    /// Replaces `tenant`'s API budgets with `budgets` (none: the key file's apply again).
    pub async fn set_budgets(&self, tenant: &str, budgets: &[Budget], now_ms: i64) -> Result<()> {
        // One statement each; a reader in between sees the old or the new set of one metric.
        self.execute(
            "DELETE FROM budgets WHERE tenant = ?",
            &[Value::Text(tenant.to_owned())],
        )
        .await?;
        for b in budgets {
            self.execute(
                "INSERT INTO budgets (tenant, metric, period, amount, updated_ms) \
                 VALUES (?, ?, ?, ?, ?)",
                &[
                    Value::Text(tenant.to_owned()),
                    Value::Text(b.metric.as_str().to_owned()),
                    Value::Text(b.window.as_str().to_owned()),
                    Value::Float(b.limit),
                    Value::Int(now_ms),
                ],
            )
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        assert_eq!(
            numbered("SELECT ? WHERE a = ? AND b = ?"),
            "SELECT $1 WHERE a = $2 AND b = $3"
        );
    }
}
