//! `Ledger`: the writer of usage rows and the keeper of budgets; `LedgerBackend`: the
//! `ChatBackend` decorator every API's request passes through.
//!
//! A run's row is sent when its stream is dropped (finished, failed, or cancelled by the
//! client going away), so the decorator needs no task of its own. Rows go into a bounded channel
//! with `try_send`: a full channel drops the row and counts it, a response never waits for the
//! store. The writer task takes up to `batch` rows, or what came within `interval` of the first,
//! and writes them in one statement.
//!
//! Budgets are decided from the store (so a restart, and every replica on a shared PostgreSQL,
//! see the spend) plus the rows this process sent but has not written yet (so a burst cannot
//! outrun the batch interval). The store's answer (a tenant's spend, its API budgets) is kept
//! for `FRESH` (1 s), with what this process wrote since added to it, so a decision is mostly
//! memory; another replica's requests and budget changes count here within that second. The
//! writer writes a batch, counts it as written and forgets its pending rows under one lock the
//! decision reads under, so a row is never counted twice or missed. Requests still
//! running are not counted: `n` concurrent requests of a key may all start under a budget.
//! When the store cannot answer in time, the decision lets the request through (logged): an
//! outage of the ledger's database does not stop the gateway.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::{RwLock, mpsc};

use crate::chat::backend::{BackendHealth, Load};
use crate::chat::error::ErrorKind;
use crate::chat::models::ModelInfo;
use crate::chat::types::{ChatEvent, ChatRequest};
use crate::chat::{ChatBackend, ChatError, ChatStream, RequestContext, Tenant};

use super::budget::{self, Budget, BudgetState, Spend, Totals};
use super::store::UsageStore;
use super::{Group, UsageQuery, UsageRow};

/// Longest an answer waits for its `x-budget-*` headers before it goes without them.
const HEADERS_TIMEOUT: Duration = Duration::from_millis(500);
/// Longest a budget decision waits for the store before it lets the request through.
const DECIDE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long what the store said (the budgets set through the API, a tenant's spend) is taken
/// from memory before the store is asked again. What this process writes or sets counts at
/// once; what another replica does, within this.
const FRESH: Duration = Duration::from_secs(1);
/// Tenants kept in those memories at most (then they start over).
const REMEMBERED: usize = 10_000;
/// How often rows past the retention are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// How the ledger runs.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// Rows waiting for the writer at most; more are dropped.
    pub capacity: usize,
    /// Rows per write at most.
    pub batch: usize,
    /// How long the writer gathers a batch after its first row.
    pub interval: Duration,
    /// Rows older than this are deleted; `None` keeps them.
    pub retention: Option<Duration>,
    /// The key file's budgets, by tenant id.
    pub file_budgets: HashMap<String, Vec<Budget>>,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            capacity: 10_000,
            batch: 100,
            interval: Duration::from_millis(200),
            retention: Some(Duration::from_secs(90 * 86_400)),
            file_budgets: HashMap::new(),
        }
    }
}

/// Rows sent and not yet written, by tenant, and the lock that makes writing them and deciding
/// from them one step each.
#[derive(Default)]
struct Pending {
    totals: Mutex<HashMap<String, Totals>>,
    /// What this process has written, by tenant, since it started or since this memory last
    /// started over (the generation counts how often): what a spend read earlier lacks.
    written: Mutex<(u64, HashMap<String, Totals>)>,
    gate: RwLock<()>,
}

fn row_totals(row: &UsageRow, sign: f64) -> Totals {
    Totals {
        requests: sign,
        tokens: sign * (f64::from(row.input_tokens) + f64::from(row.output_tokens)),
        usd: sign * row.cost_usd,
    }
}

impl Pending {
    fn change(&self, row: &UsageRow, sign: f64) {
        let Ok(mut totals) = self.totals.lock() else {
            return;
        };
        let entry = totals.entry(row.tenant.clone()).or_default();
        entry.add(&row_totals(row, sign));
        if entry.requests <= 0.0 {
            totals.remove(&row.tenant);
        }
    }

    /// Counts `rows` as written (under the gate's write lock).
    fn wrote(&self, rows: &[UsageRow]) {
        let Ok(mut written) = self.written.lock() else {
            return;
        };
        let (generation, written) = &mut *written;
        for row in rows {
            if written.len() >= REMEMBERED && !written.contains_key(&row.tenant) {
                written.clear();
                *generation += 1;
            }
            written
                .entry(row.tenant.clone())
                .or_default()
                .add(&row_totals(row, 1.0));
        }
    }

    fn of(&self, tenant: &str) -> Totals {
        self.totals
            .lock()
            .ok()
            .and_then(|t| t.get(tenant).copied())
            .unwrap_or_default()
    }

    /// What this process wrote for `tenant`, and the memory's generation.
    fn written_of(&self, tenant: &str) -> (u64, Totals) {
        self.written
            .lock()
            .map_or((u64::MAX, Totals::default()), |w| {
                (w.0, w.1.get(tenant).copied().unwrap_or_default())
            })
    }
}

/// A tenant's spend as read from the store, with what this process had written by then.
struct ReadSpend {
    read_at: Instant,
    /// The day's and the month's starts it was read for.
    bounds: (i64, i64),
    spend: Spend,
    /// `Pending::written_of` then.
    written_then: (u64, Totals),
}

pub struct Ledger {
    store: UsageStore,
    sender: mpsc::Sender<UsageRow>,
    pending: Arc<Pending>,
    file_budgets: HashMap<String, Vec<Budget>>,
    /// The API budgets by tenant, as last read from the store, and when.
    api_budgets: Mutex<HashMap<String, (Instant, Vec<Budget>)>>,
    /// Counts this process's budget changes: a read that a change overtook is not remembered.
    budget_changes: AtomicU64,
    /// The spend by tenant, as last read from the store.
    spends: Mutex<HashMap<String, ReadSpend>>,
}

/// Keeps `value` for `tenant` in a memory of the store's answers, which starts over once it
/// holds `REMEMBERED` tenants.
fn remember<V>(memory: &mut HashMap<String, V>, tenant: &str, value: V) {
    if memory.len() >= REMEMBERED {
        memory.clear();
    }
    memory.insert(tenant.to_owned(), value);
}

fn minus(a: Totals, b: Totals) -> Totals {
    Totals {
        requests: a.requests - b.requests,
        tokens: a.tokens - b.tokens,
        usd: a.usd - b.usd,
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Ledger {
    /// Starts the writer (and the purger, with a retention) on the current runtime.
    pub fn start(store: UsageStore, config: LedgerConfig) -> Arc<Ledger> {
        let (sender, receiver) = mpsc::channel(config.capacity.max(1));
        let pending = Arc::new(Pending::default());
        tokio::spawn(write_loop(
            store.clone(),
            receiver,
            pending.clone(),
            config.batch.max(1),
            config.interval,
        ));
        if let Some(retention) = config.retention {
            let store = store.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(PURGE_EVERY);
                loop {
                    every.tick().await;
                    let before = now_ms() - retention.as_millis() as i64;
                    match store.purge(before).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(rows = n, "usage rows past the retention deleted"),
                        Err(e) => tracing::warn!("cannot purge the usage ledger: {e}"),
                    }
                }
            });
        }
        Arc::new(Ledger {
            store,
            sender,
            pending,
            file_budgets: config.file_budgets,
            api_budgets: Mutex::default(),
            budget_changes: AtomicU64::new(0),
            spends: Mutex::default(),
        })
    }

    /// Queues `row` for the writer, or drops it when the queue is full. Never waits.
    pub fn record(&self, row: UsageRow) {
        self.pending.change(&row, 1.0);
        if let Err(e) = self.sender.try_send(row) {
            let row = match e {
                mpsc::error::TrySendError::Full(row) | mpsc::error::TrySendError::Closed(row) => {
                    row
                }
            };
            self.pending.change(&row, -1.0);
            crate::metrics::usage::rows_dropped(1);
            tracing::warn!("usage ledger queue full: a row was dropped");
        }
    }

    /// Waits, at most `within`, until every row sent so far is written: on shutdown, so the
    /// last requests' rows are not lost with the process.
    pub async fn flush(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.pending.totals.lock().map_or(true, |t| t.is_empty()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::warn!("shutting down with usage rows not yet written");
    }

    /// `tenant`'s budgets: the key file's, overridden by those set through the API.
    pub async fn budgets_of(&self, tenant: &str) -> Result<Vec<Budget>, String> {
        let file = self.file_budgets.get(tenant).map_or(&[][..], Vec::as_slice);
        let cached = self.api_budgets.lock().ok().and_then(|c| {
            c.get(tenant)
                .filter(|(at, _)| at.elapsed() < FRESH)
                .map(|(_, b)| b.clone())
        });
        if let Some(stored) = cached {
            return Ok(budget::merge(file, &stored));
        }
        let read_at = Instant::now();
        let changes = self.budget_changes.load(Ordering::SeqCst);
        let stored: Vec<Budget> = self
            .store
            .budgets(Some(tenant))
            .await?
            .into_iter()
            .map(|(_, b)| b)
            .collect();
        if let Ok(mut cache) = self.api_budgets.lock()
            && self.budget_changes.load(Ordering::SeqCst) == changes
        {
            remember(&mut cache, tenant, (read_at, stored.clone()));
        }
        Ok(budget::merge(file, &stored))
    }

    /// What `tenant` spent in the current day and month, written or pending: the store's
    /// answer (at most `FRESH` old) plus what this process wrote since and has not written yet.
    async fn spend(&self, tenant: &str, now: i64) -> Result<Spend, String> {
        let bounds = (
            budget::Window::Day.bounds(now).0,
            budget::Window::Month.bounds(now).0,
        );
        // The writer changes the store and `written` under the write side: neither moves while
        // this reads them.
        let _gate = self.pending.gate.read().await;
        let written = self.pending.written_of(tenant);
        let remembered = self.spends.lock().ok().and_then(|spends| {
            spends
                .get(tenant)
                .filter(|r| {
                    r.bounds == bounds
                        && r.read_at.elapsed() < FRESH
                        && r.written_then.0 == written.0
                })
                .map(|r| (r.spend, r.written_then.1))
        });
        let (mut spend, since) = match remembered {
            Some((spend, then)) => (spend, minus(written.1, then)),
            None => {
                let read_at = Instant::now();
                let spend = self.store.spend(tenant, bounds.0, bounds.1).await?;
                if let Ok(mut spends) = self.spends.lock() {
                    let read = ReadSpend {
                        read_at,
                        bounds,
                        spend,
                        written_then: written,
                    };
                    remember(&mut spends, tenant, read);
                }
                (spend, Totals::default())
            }
        };
        let mut unread = self.pending.of(tenant);
        unread.add(&since);
        spend.day.add(&unread);
        spend.month.add(&unread);
        Ok(spend)
    }

    /// `tenant`'s budgets with what is used of them now (empty: no budgets).
    pub async fn status(&self, tenant: &str) -> Result<Vec<BudgetState>, String> {
        let budgets = self.budgets_of(tenant).await?;
        if budgets.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let spend = self.spend(tenant, now).await?;
        Ok(budget::states(&budgets, &spend, now))
    }

    /// The `x-budget-*` headers (HTTP) or metadata (gRPC) of `tenant`'s budgets now: none
    /// without budgets, or when the store does not answer within `HEADERS_TIMEOUT`.
    pub async fn budget_headers(&self, tenant: &str) -> Vec<(String, String)> {
        match tokio::time::timeout(HEADERS_TIMEOUT, self.status(tenant)).await {
            Ok(Ok(states)) => states.iter().flat_map(BudgetState::headers).collect(),
            Ok(Err(_)) | Err(_) => Vec::new(),
        }
    }

    /// `Ok` when `tenant` may start a request; `QuotaExceeded` naming the spent budget when not.
    pub async fn check(&self, tenant: &Tenant) -> Result<(), ChatError> {
        let states = match tokio::time::timeout(DECIDE_TIMEOUT, self.status(tenant.id())).await {
            Ok(Ok(states)) => states,
            Ok(Err(e)) => {
                tracing::warn!("budget not checked, the usage store failed: {e}");
                return Ok(());
            }
            Err(_) => {
                tracing::warn!("budget not checked, the usage store did not answer in time");
                return Ok(());
            }
        };
        match states.iter().find(|s| s.exhausted()) {
            None => Ok(()),
            Some(spent) => {
                crate::metrics::usage::budget_refused(
                    spent.budget.metric.as_str(),
                    spent.budget.window.as_str(),
                );
                Err(spent.refusal(now_ms()))
            }
        }
    }

    /// The ledger's answer to `query`.
    pub async fn usage(&self, query: &UsageQuery) -> Result<Vec<Group>, String> {
        self.store.aggregate(query).await
    }

    /// The tenants with budgets (the key file's and the API's), `only` one of them when given,
    /// each with the state of its budgets.
    pub async fn all_budgets(
        &self,
        only: Option<&str>,
    ) -> Result<Vec<(String, Vec<BudgetState>)>, String> {
        let mut tenants: Vec<String> = match only {
            Some(tenant) => vec![tenant.to_owned()],
            None => {
                let mut all: Vec<String> = self.file_budgets.keys().cloned().collect();
                all.extend(self.store.budgets(None).await?.into_iter().map(|(t, _)| t));
                all
            }
        };
        tenants.sort();
        tenants.dedup();
        let mut out = Vec::with_capacity(tenants.len());
        for tenant in tenants {
            let states = self.status(&tenant).await?;
            if !states.is_empty() || only.is_some() {
                out.push((tenant, states));
            }
        }
        Ok(out)
    }

    /// Replaces `tenant`'s API budgets (empty: back to the key file's).
    pub async fn set_budgets(&self, tenant: &str, budgets: &[Budget]) -> Result<(), String> {
        let result = self.store.set_budgets(tenant, budgets, now_ms()).await;
        // Read again at the next decision, whether or not the write went through (and a read
        // under way now is not remembered: it may predate the write).
        if let Ok(mut cache) = self.api_budgets.lock() {
            self.budget_changes.fetch_add(1, Ordering::SeqCst);
            cache.remove(tenant);
        }
        result
    }
}

async fn write_loop(
    store: UsageStore,
    mut receiver: mpsc::Receiver<UsageRow>,
    pending: Arc<Pending>,
    batch: usize,
    interval: Duration,
) {
    let mut rows = Vec::with_capacity(batch);
    while let Some(first) = receiver.recv().await {
        rows.push(first);
        let deadline = tokio::time::Instant::now() + interval;
        while rows.len() < batch {
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(row)) => rows.push(row),
                Ok(None) | Err(_) => break,
            }
        }
        let started = Instant::now();
        let gate = pending.gate.write().await;
        let written = store.insert(&rows).await;
        if written.is_ok() {
            pending.wrote(&rows);
        }
        for row in &rows {
            pending.change(row, -1.0);
        }
        drop(gate);
        crate::metrics::usage::batch_written(started.elapsed().as_secs_f64());
        match written {
            Ok(()) => crate::metrics::usage::rows_written(rows.len()),
            Err(e) => {
                crate::metrics::usage::rows_dropped(rows.len());
                tracing::warn!(rows = rows.len(), "cannot write usage rows: {e}");
            }
        }
        rows.clear();
    }
}

/// The decorator: budgets before a run, a ledger row after it.
pub struct LedgerBackend {
    inner: Arc<dyn ChatBackend>,
    ledger: Arc<Ledger>,
}

impl LedgerBackend {
    pub fn new(inner: Arc<dyn ChatBackend>, ledger: Arc<Ledger>) -> Self {
        LedgerBackend { inner, ledger }
    }
}

/// Whether a failure to start means something ran (or was attempted on the CLI's behalf) and
/// so deserves a row. Refusals of the request itself (400, 404, 409, 413, 401, 403, and the
/// budgets' own 429) ran nothing.
fn ran(error: &ChatError) -> bool {
    !matches!(error, ChatError::QuotaExceeded { .. }) && error.kind() != ErrorKind::InvalidRequest
}

/// One run being watched; its row is sent when it is dropped.
struct Observation {
    ledger: Arc<Ledger>,
    row: UsageRow,
    started: Instant,
    /// `None` until the run ends one way or another.
    status: Option<String>,
    discard: bool,
}

impl Observation {
    fn see(&mut self, item: &Result<ChatEvent, ChatError>) {
        if self.row.ttft_ms.is_none() {
            self.row.ttft_ms = Some(self.started.elapsed().as_millis() as i64);
        }
        match item {
            Ok(ChatEvent::Usage(usage)) => {
                self.row.input_tokens = usage.prompt_tokens;
                self.row.output_tokens = usage.completion_tokens;
                self.row.cached_input_tokens = usage.cached_tokens;
                self.row.cost_usd = usage.cost_usd;
                self.status.get_or_insert_with(|| "ok".to_owned());
            }
            Ok(_) => {}
            Err(error) => self.fail(error),
        }
    }

    fn fail(&mut self, error: &ChatError) {
        self.status = Some(error.code().unwrap_or("error").to_owned());
    }
}

impl Drop for Observation {
    fn drop(&mut self) {
        if self.discard {
            return;
        }
        let mut row = self.row.clone();
        row.status = self.status.take().unwrap_or_else(|| "cancelled".to_owned());
        row.duration_ms = self.started.elapsed().as_millis() as i64;
        row.ts_ms = now_ms();
        self.ledger.record(row);
    }
}

#[async_trait::async_trait]
impl ChatBackend for LedgerBackend {
    async fn stream(&self, req: ChatRequest, ctx: RequestContext) -> Result<ChatStream, ChatError> {
        if ctx.forwarded {
            return self.inner.stream(req, ctx).await;
        }
        self.ledger.check(&ctx.tenant).await?;
        let mut observation = Observation {
            ledger: self.ledger.clone(),
            row: UsageRow {
                ts_ms: 0,
                tenant: ctx.tenant.id().to_owned(),
                api: ctx.api.as_str(),
                model: req.model.clone(),
                status: String::new(),
                input_tokens: 0,
                output_tokens: 0,
                cached_input_tokens: 0,
                cost_usd: 0.0,
                duration_ms: 0,
                ttft_ms: None,
            },
            started: Instant::now(),
            status: None,
            discard: false,
        };
        match self.inner.stream(req, ctx).await {
            Err(error) => {
                observation.discard = !ran(&error);
                observation.fail(&error);
                Err(error)
            }
            Ok(ChatStream { meta, events }) => {
                observation.row.model = meta.model.clone();
                let events = events.map(move |item| {
                    observation.see(&item);
                    item
                });
                Ok(ChatStream {
                    meta,
                    events: Box::pin(events),
                })
            }
        }
    }

    async fn count_input_tokens(
        &self,
        req: ChatRequest,
        ctx: RequestContext,
    ) -> Result<u64, ChatError> {
        self.inner.count_input_tokens(req, ctx).await
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, ChatError> {
        self.inner.list_models().await
    }

    async fn get_model(&self, id: &str) -> Result<ModelInfo, ChatError> {
        self.inner.get_model(id).await
    }

    async fn health(&self) -> BackendHealth {
        self.inner.health().await
    }

    fn load(&self) -> Option<Load> {
        self.inner.load()
    }
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
