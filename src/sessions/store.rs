//! The session-store contract: the records a store keeps (`Session`, its summary, the page and
//! append results), the one error enum, the configuration, and the `SessionStore` trait both
//! backends implement. Also the small pieces both backends share: the clock in milliseconds, the
//! idle cutoff, id generation and the integer conversions between Rust sizes and SQL `BIGINT`s.
//! Nothing here knows SQL.
//!
//! Every session has an owner, the `Tenant` that created it. Each method takes the caller's
//! tenant and answers as if another tenant's session did not exist (`None`, `false`,
//! `NotFound`), except for admins, who reach every session. Ids are one namespace for all
//! tenants: `create` with an id another tenant holds is `AlreadyExists`, as for one's own, which
//! tells that the id is taken and nothing else (generated ids are random and never collide).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use crate::chat::Tenant;
use crate::chat::types::{FinishReason, Message, Usage};

use super::record;

/// The version of the schema this code writes. 1: the first, without owners; 2: `sessions.tenant`
/// (sessions of a version 1 store belong to the anonymous tenant); 3: stored responses (the
/// `responses` table, and `sessions.kind`: `chain` for the sessions response chains live in).
/// Recorded in the `session_schema` table; a store opened by this code is migrated to it in
/// place.
pub const SCHEMA_VERSION: i64 = 4;

/// Longest page `list` returns, whatever the caller asks for.
pub const MAX_PAGE: usize = 1000;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// No live session has this id (never created, deleted, or idle past the TTL).
    #[error("no session with id {0:?}")]
    NotFound(String),
    /// `create` was given an id a live session already has.
    #[error("a session with id {0:?} already exists")]
    AlreadyExists(String),
    /// `append` was based on a history of `expected` messages but the store holds `actual`:
    /// another turn landed first. The caller re-reads and retries, or answers 409.
    #[error("the session's history has {actual} messages, the append expected {expected}")]
    Conflict { expected: usize, actual: usize },
    /// The database failed or holds something this code cannot read.
    #[error("session store: {0}")]
    Backend(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

impl From<record::RecordError> for StoreError {
    fn from(e: record::RecordError) -> Self {
        StoreError::Backend(e.0)
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Backend(format!("stored JSON: {e}"))
    }
}

/// How a store is opened; the location (path or URL) is passed beside it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreConfig {
    /// Sessions idle (not appended to, cleared or created) longer than this read as absent
    /// everywhere, before `purge_expired` removes them. `None`: they never expire.
    pub idle_ttl: Option<Duration>,
    /// Connections in the pool; `None` picks a default for the backend.
    pub max_connections: Option<u32>,
}

/// What `create` is given. `id: None` makes the store generate `sess_<uuid>`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewSession {
    pub id: Option<String>,
    pub model: Option<String>,
    pub system: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// A session with its full history, oldest first, as the caller appended it (stored as
/// `record::StoredMessage`s).
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id: String,
    pub model: Option<String>,
    pub system: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last create, append or clear.
    pub updated_at: i64,
    pub history: Vec<Message>,
}

/// A session as `list` shows it: everything but the history, and the history's length.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSummary {
    pub id: String,
    pub model: Option<String>,
    pub system: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub message_count: usize,
}

/// One page of `list`: `limit` is clamped to `1..=MAX_PAGE`; `after` is the id of the last
/// session of the previous page (OpenAI's `after` cursor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: usize,
    pub after: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Whether more items follow this page.
    pub has_more: bool,
    /// The `after` of the next page, when `has_more`.
    pub next: Option<String>,
}

/// A committed append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The history's length after the append: the `expected_len` of the next one.
    pub len: usize,
    pub updated_at: i64,
}

/// Where a stored response's turn is appended: the chain session it continues (at the length
/// its previous response left it, a compare-and-set as for `append`), or a new chain session
/// (the first response of a chain, or a branch from a response that is no longer the tip).
#[derive(Debug, Clone, PartialEq)]
pub enum ChainBase {
    Existing {
        session: String,
        expected_len: usize,
    },
    New(NewSession),
}

/// How a stored response's turn ended, kept beside it (the reply itself is the last message of
/// the history it points at).
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseOutcome {
    pub usage: Usage,
    pub finish: FinishReason,
}

/// What `commit_response` stores beside the appended messages.
#[derive(Debug, Clone, PartialEq)]
pub struct NewResponse {
    /// The id the dialect gave the response (`resp_…`); unique in the store.
    pub id: String,
    /// Where this response's own input starts in the chain's history.
    pub input_start: usize,
    /// The dialect's record of the request (its echo and input items): opaque to the store.
    pub document: String,
    pub outcome: ResponseOutcome,
}

/// A stored response: a point in its chain session's history, with what `NewResponse` kept.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    pub id: String,
    /// The chain session, and its creation time (Unix seconds): they name its live process.
    pub session: String,
    pub session_created_at: i64,
    /// The chain's history through this response: its input from `input_start`, its reply last.
    pub history: Vec<Message>,
    pub input_start: usize,
    /// Whether the chain session's history ends at this response (a continuation appends to
    /// it; otherwise it branches into a new chain).
    pub at_tip: bool,
    /// Unix seconds of the commit.
    pub created_at: i64,
    pub document: String,
    pub outcome: ResponseOutcome,
}

/// Server-side chat sessions. Every method that returns `Ok` has committed: what it wrote is
/// durable and visible to every replica sharing the store.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Creates an empty session owned by `owner`. A live session with the same id, whoever owns
    /// it → `AlreadyExists`; an expired one that was not purged yet is replaced.
    async fn create(&self, owner: &Tenant, new: NewSession) -> Result<Session>;

    /// The session with its history, or `None` if absent, idle past the TTL, or not the
    /// tenant's.
    async fn get(&self, tenant: &Tenant, id: &str) -> Result<Option<Session>>;

    /// The tenant's live sessions (an admin's: everyone's) ordered by creation time then id. An
    /// `after` that names none of them → `NotFound`.
    async fn list(&self, tenant: &Tenant, page: PageRequest) -> Result<Page<SessionSummary>>;

    /// Deletes the session and its history; `false` if the tenant had no live one by that id.
    async fn delete(&self, tenant: &Tenant, id: &str) -> Result<bool>;

    /// Empties the history and keeps the session; `false` if the tenant had no live one by
    /// that id.
    async fn clear(&self, tenant: &Tenant, id: &str) -> Result<bool>;

    /// Appends a whole turn in one transaction if the history still has `expected_len`
    /// messages (else `Conflict`, and nothing is written), and bumps `updated_at`. Another
    /// tenant's session is `NotFound`.
    async fn append(
        &self,
        tenant: &Tenant,
        id: &str,
        expected_len: usize,
        messages: Vec<Message>,
    ) -> Result<AppendOutcome>;

    /// Appends a response's turn (`messages`) to its chain and stores the response beside it,
    /// in one transaction: on `ChainBase::New` the chain session is created (kind `chain`, not
    /// listed by `list`) with the messages; on `Existing` the append is a compare-and-set as in
    /// `append` (`Conflict`, `NotFound` alike). The response belongs to `tenant`.
    async fn commit_response(
        &self,
        tenant: &Tenant,
        base: ChainBase,
        messages: Vec<Message>,
        response: NewResponse,
    ) -> Result<AppendOutcome>;

    /// A stored response with its chain's history up to it, or `None` if absent, expired with
    /// its chain, or not the tenant's.
    async fn get_response(&self, tenant: &Tenant, id: &str) -> Result<Option<StoredResponse>>;

    /// Deletes a stored response (and its chain session when no response of it is left);
    /// `false` if the tenant had no live one by that id.
    async fn delete_response(&self, tenant: &Tenant, id: &str) -> Result<bool>;

    /// Deletes the sessions idle longer than `idle_ttl`, then the least recently updated ones
    /// beyond `max_count`. Returns how many were deleted.
    async fn purge_expired(&self, idle_ttl: Duration, max_count: Option<usize>) -> Result<usize>;
}

/// A new session id: `sess_` and 32 hex digits.
pub fn generate_id() -> String {
    format!("sess_{}", uuid::Uuid::new_v4().simple())
}

/// Now, in Unix milliseconds: the stores keep milliseconds so a TTL of a second means one.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Unix seconds of a stored millisecond timestamp.
pub fn secs(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

/// The oldest `updated` (ms) a session may have and still be alive `now`; `i64::MIN` when
/// sessions never expire.
pub fn cutoff_ms(now: i64, idle_ttl: Option<Duration>) -> i64 {
    match idle_ttl {
        Some(ttl) => now.saturating_sub(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)),
        None => i64::MIN,
    }
}

/// A length or count as the `BIGINT` the schema stores.
pub fn to_db(n: usize) -> Result<i64> {
    i64::try_from(n).map_err(|_| StoreError::Backend(format!("{n} does not fit a BIGINT")))
}

/// A stored `BIGINT` length or count back as a `usize`.
pub fn from_db(n: i64) -> Result<usize> {
    usize::try_from(n).map_err(|_| StoreError::Backend(format!("stored count {n} is negative")))
}

/// The schema version of a store whose `session_schema` holds `found` (none: version 1, which
/// had no such table), for the backend to migrate from; a version from a newer gateway is an
/// error (its rows may mean more than this code knows).
pub fn schema_version(found: Option<i64>) -> Result<i64> {
    match found.unwrap_or(1) {
        v @ 1..=SCHEMA_VERSION => Ok(v),
        v => Err(StoreError::Backend(format!(
            "the session store has schema version {v}; this gateway knows up to \
             {SCHEMA_VERSION}: upgrade the gateway, or use another store"
        ))),
    }
}

/// The columns of a `sessions` row, as both backends select them.
pub struct SessionRow {
    pub id: String,
    pub model: Option<String>,
    pub system: Option<String>,
    /// A JSON object of strings.
    pub metadata: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub len: i64,
}

impl SessionRow {
    /// Reads a row of either backend that selected `id, model, system, metadata, created_ms,
    /// updated_ms, len`.
    pub fn decode<'r, R>(row: &'r R) -> Result<Self>
    where
        R: sqlx::Row,
        &'static str: sqlx::ColumnIndex<R>,
        String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        Ok(SessionRow {
            id: row.try_get("id")?,
            model: row.try_get("model")?,
            system: row.try_get("system")?,
            metadata: row.try_get("metadata")?,
            created_ms: row.try_get("created_ms")?,
            updated_ms: row.try_get("updated_ms")?,
            len: row.try_get("len")?,
        })
    }

    pub fn into_summary(self) -> Result<SessionSummary> {
        Ok(SessionSummary {
            metadata: serde_json::from_str(&self.metadata)?,
            message_count: from_db(self.len)?,
            id: self.id,
            model: self.model,
            system: self.system,
            created_at: secs(self.created_ms),
            updated_at: secs(self.updated_ms),
        })
    }

    /// The session, with the bodies of its `session_messages` rows in `seq` order.
    pub fn into_session(self, bodies: &[String]) -> Result<Session> {
        let history = decode_history(bodies, self.len, |stored| {
            format!(
                "session {:?} records {} messages but {stored} are stored",
                self.id, self.len
            )
        })?;
        Ok(Session {
            metadata: serde_json::from_str(&self.metadata)?,
            id: self.id,
            model: self.model,
            system: self.system,
            created_at: secs(self.created_ms),
            updated_at: secs(self.updated_ms),
            history,
        })
    }
}

/// A compare-and-set append as both backends run it inside a transaction: `bodies` go after
/// the first `expected_len` messages of session `id`, if it still has exactly that many.
pub struct Cas<'a> {
    pub id: &'a str,
    pub expected_len: usize,
    pub bodies: &'a [String],
}

/// The columns of a `responses` row joined with its chain session, as both backends select
/// them (`RESPONSE_COLUMNS`).
pub struct ResponseRow {
    pub id: String,
    pub session_id: String,
    pub input_start: i64,
    pub len: i64,
    pub created_ms: i64,
    pub document: String,
    pub outcome: String,
    pub session_len: i64,
    pub session_created_ms: i64,
}

/// The select list `ResponseRow::decode` reads, from `responses r JOIN sessions s`.
pub const RESPONSE_COLUMNS: &str = "r.id, r.session_id, r.input_start, r.len, r.created_ms, \
    r.document, r.outcome, s.len AS session_len, s.created_ms AS session_created_ms";

impl ResponseRow {
    pub fn decode<'r, R>(row: &'r R) -> Result<Self>
    where
        R: sqlx::Row,
        &'static str: sqlx::ColumnIndex<R>,
        String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        Ok(ResponseRow {
            id: row.try_get("id")?,
            session_id: row.try_get("session_id")?,
            input_start: row.try_get("input_start")?,
            len: row.try_get("len")?,
            created_ms: row.try_get("created_ms")?,
            document: row.try_get("document")?,
            outcome: row.try_get("outcome")?,
            session_len: row.try_get("session_len")?,
            session_created_ms: row.try_get("session_created_ms")?,
        })
    }

    /// The response, with the bodies of its chain's first `len` messages in `seq` order.
    pub fn into_stored(self, bodies: &[String]) -> Result<StoredResponse> {
        let history = decode_history(bodies, self.len, |stored| {
            format!(
                "response {:?} points at {} messages of its chain but {stored} are stored",
                self.id, self.len
            )
        })?;
        Ok(StoredResponse {
            at_tip: self.len == self.session_len,
            input_start: from_db(self.input_start)?,
            outcome: {
                let (usage, finish) = record::decode_outcome(&self.outcome)?;
                ResponseOutcome { usage, finish }
            },
            id: self.id,
            session: self.session_id,
            session_created_at: secs(self.session_created_ms),
            history,
            created_at: secs(self.created_ms),
            document: self.document,
        })
    }
}

/// The `outcome` column of a response.
pub fn outcome_text(outcome: &ResponseOutcome) -> Result<String> {
    Ok(record::encode_outcome(&outcome.usage, outcome.finish)?)
}

/// The messages of `bodies` (in `seq` order), which must be the `expected` count a row records;
/// otherwise a backend error saying so (`mismatch` gets the stored count).
fn decode_history(
    bodies: &[String],
    expected: i64,
    mismatch: impl FnOnce(usize) -> String,
) -> Result<Vec<Message>> {
    if to_db(bodies.len())? != expected {
        return Err(StoreError::Backend(mismatch(bodies.len())));
    }
    Ok(bodies
        .iter()
        .enumerate()
        .map(|(seq, b)| record::decode(b, seq))
        .collect::<Result<Vec<Message>, _>>()?)
}

/// The session `create` made: what it was given, stamped `now_ms`.
pub fn created(id: String, new: NewSession, now_ms: i64) -> Session {
    let NewSession {
        id: _,
        model,
        system,
        metadata,
    } = new;
    Session {
        id,
        model,
        system,
        metadata,
        created_at: secs(now_ms),
        updated_at: secs(now_ms),
        history: Vec::new(),
    }
}

/// Each message as the text the `body` column stores.
pub fn bodies(messages: &[Message]) -> Result<Vec<String>> {
    Ok(messages
        .iter()
        .map(record::encode)
        .collect::<Result<_, _>>()?)
}

/// The `Page` of `rows` fetched with `LIMIT limit + 1`.
pub fn page_of(mut rows: Vec<SessionSummary>, limit: usize) -> Page<SessionSummary> {
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    let next = if has_more {
        rows.last().map(|s| s.id.clone())
    } else {
        None
    };
    Page {
        items: rows,
        has_more,
        next,
    }
}

/// `limit` clamped to what a page may hold.
pub fn clamp_limit(limit: usize) -> usize {
    limit.clamp(1, MAX_PAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoff_is_now_minus_ttl_or_never() {
        assert_eq!(cutoff_ms(10_000, Some(Duration::from_millis(1500))), 8_500);
        assert_eq!(cutoff_ms(10_000, None), i64::MIN);
        assert_eq!(cutoff_ms(10, Some(Duration::MAX)), 10 - i64::MAX);
    }

    #[test]
    fn generated_ids_are_prefixed_and_unique() {
        let (a, b) = (generate_id(), generate_id());
        assert!(a.starts_with("sess_") && a.len() == 37, "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn page_of_reports_the_next_cursor_only_when_more_follow() {
        let row = |id: &str| SessionSummary {
            id: id.into(),
            model: None,
            system: None,
            metadata: BTreeMap::new(),
            created_at: 0,
            updated_at: 0,
            message_count: 0,
        };
        let page = page_of(vec![row("a"), row("b"), row("c")], 2);
        assert_eq!(page.items.len(), 2);
        assert!(page.has_more);
        assert_eq!(page.next.as_deref(), Some("b"));
        let last = page_of(vec![row("c")], 2);
        assert!(!last.has_more);
        assert_eq!(last.next, None);
    }

    #[test]
    fn sizes_round_trip_and_negatives_are_refused() {
        assert_eq!(to_db(42), Ok(42));
        assert_eq!(from_db(42), Ok(42));
        assert!(from_db(-1).is_err());
        assert_eq!(secs(1_999), 1);
        assert_eq!(clamp_limit(0), 1);
        assert_eq!(clamp_limit(5_000), MAX_PAGE);
    }
}
