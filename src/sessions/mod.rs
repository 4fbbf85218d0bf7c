//! Server-side chat sessions that survive restarts and are shared by replicas: the
//! `SessionStore` trait, its two backends, and `open_store`, which picks one from a location.
//!
//! - `store`: the contract (records, `StoreError`, `StoreConfig`, the trait) and the helpers the
//!   backends share. A history is domain `Message`s.
//! - `record`: how a message is written down: a serde record owned here (not OpenAI's JSON, not
//!   proto), with a reader that still accepts the OpenAI JSON older gateways stored.
//! - `sqlite`: the default, an embedded SQLite file in a data directory (WAL,
//!   `synchronous=FULL`).
//! - `service`: sessions in the chat path (`SessionBackend`) and their management (`SessionApi`).
//! - `chains`: stored responses (the Responses API) as points in chain sessions, and their
//!   management (`ResponseApi`).
//! - `postgres`: the shared backend for several replicas, chosen by a `postgres://` URL.
//!
//! Why PostgreSQL rather than Redis for the shared store: a turn is appended as one transaction
//! that checks the history length and writes every message, or nothing; Postgres gives that with
//! row locks and acknowledges a commit only after its WAL is flushed, where Redis would need Lua
//! scripts for the check-and-append and its default persistence (RDB snapshots, or AOF with
//! `everysec`) can lose acknowledged writes on a crash. Sessions are also relational enough
//! (list by creation time with cursors, purge by idle time) for SQL, and the SQLite backend
//! shares the schema and the logic.
//!
//! Consistency: `append(id, expected_len, messages)` is a compare-and-set on the history length,
//! so two turns computed from the same history cannot both land: the second gets `Conflict`.
//! Sessions idle past the configured TTL read as absent everywhere before they are purged.

mod chains;
mod mapping;
mod postgres;
mod record;
mod service;
mod sqlite;
mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use chains::{ResponseApi, ResponseRecord};
pub use postgres::PgStore;
pub use service::{SessionApi, SessionBackend, Sessions};
pub use sqlite::SqliteStore;
pub use store::{
    AppendOutcome, ChainBase, MAX_PAGE, NewResponse, NewSession, Page, PageRequest,
    ResponseOutcome, Result, Session, SessionStore, SessionSummary, StoreConfig, StoreError,
    StoredResponse, generate_id,
};

/// The file name of the SQLite database inside a data directory.
pub const SQLITE_FILE: &str = "sessions.db";

/// Where a store lives, parsed from the one string the operator configures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A `postgres://` or `postgresql://` URL.
    Postgres(String),
    /// The SQLite database file.
    Sqlite(PathBuf),
}

impl StoreLocation {
    /// `postgres://…` and `postgresql://…` are PostgreSQL URLs. Anything else is SQLite:
    /// `sqlite://PATH` or a plain `PATH`, where a path ending in `.db`, `.sqlite` or `.sqlite3`
    /// names the database file and any other path a directory holding `sessions.db`.
    pub fn parse(location: &str) -> Result<Self> {
        let location = location.trim();
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            return Ok(StoreLocation::Postgres(location.to_owned()));
        }
        let path = location
            .strip_prefix("sqlite://")
            .or_else(|| location.strip_prefix("sqlite:"))
            .unwrap_or(location);
        if path.is_empty() || path.contains("://") || path.starts_with(":memory:") {
            return Err(StoreError::Backend(format!(
                "session store location {location:?} is neither a postgres:// URL nor a \
                 directory or sqlite:// path"
            )));
        }
        let path = Path::new(path);
        let is_file = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "db" | "sqlite" | "sqlite3"));
        Ok(StoreLocation::Sqlite(if is_file {
            path.to_owned()
        } else {
            path.join(SQLITE_FILE)
        }))
    }
}

/// Opens the store at `location` (see `StoreLocation::parse`), creating its tables, and for
/// SQLite its directory, if absent.
pub async fn open_store(location: &str, cfg: StoreConfig) -> Result<Arc<dyn SessionStore>> {
    Ok(open_store_and_pool(location, cfg).await?.0)
}

/// The database behind a store: the usage ledger and budgets (`usage::store`) live in the same
/// file or database, in the tables this module's migrations made.
#[derive(Clone)]
pub enum StorePool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// `open_store`, and the store's connection pool for the usage ledger.
pub async fn open_store_and_pool(
    location: &str,
    cfg: StoreConfig,
) -> Result<(Arc<dyn SessionStore>, StorePool)> {
    Ok(match StoreLocation::parse(location)? {
        StoreLocation::Postgres(url) => {
            let store = PgStore::open(&url, &cfg).await?;
            // Not the URL: it may hold a password.
            tracing::info!(backend = "postgres", "session store opened");
            let pool = StorePool::Postgres(store.pool().clone());
            (Arc::new(store), pool)
        }
        StoreLocation::Sqlite(file) => {
            let store = SqliteStore::open(&file, &cfg).await?;
            tracing::info!(backend = "sqlite", path = %file.display(), "session store opened");
            let pool = StorePool::Sqlite(store.pool().clone());
            (Arc::new(store), pool)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(path: &str) -> Result<StoreLocation> {
        Ok(StoreLocation::Sqlite(PathBuf::from(path)))
    }

    #[test]
    fn locations_pick_the_backend_and_the_file() {
        let url = "postgresql://gw@db:5432/gw?sslmode=require";
        assert_eq!(
            StoreLocation::parse(url),
            Ok(StoreLocation::Postgres(url.to_owned()))
        );
        assert_eq!(
            StoreLocation::parse("postgres://h/d"),
            Ok(StoreLocation::Postgres("postgres://h/d".to_owned()))
        );
        assert_eq!(
            StoreLocation::parse("/var/lib/gw"),
            sqlite("/var/lib/gw/sessions.db")
        );
        assert_eq!(StoreLocation::parse("data"), sqlite("data/sessions.db"));
        assert_eq!(
            StoreLocation::parse("sqlite:///var/lib/gw"),
            sqlite("/var/lib/gw/sessions.db")
        );
        assert_eq!(
            StoreLocation::parse("sqlite://rel/chat.sqlite3"),
            sqlite("rel/chat.sqlite3")
        );
        assert_eq!(StoreLocation::parse("sqlite:x.db"), sqlite("x.db"));
    }

    #[test]
    fn other_schemes_and_memory_are_refused() {
        for bad in [
            "",
            "  ",
            "redis://localhost",
            "sqlite::memory:",
            "sqlite://",
        ] {
            assert!(
                matches!(StoreLocation::parse(bad), Err(StoreError::Backend(_))),
                "{bad:?}"
            );
        }
    }
}
