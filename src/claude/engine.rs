//! The local engine: a `ChatBackend` that answers each completion with `claude` processes, one
//! per requested choice. It validates the request, builds each process's flags and environment
//! from `EngineConfig`, starts the runs side by side, and merges their events by choice index.
//! The returned stream owns the processes: dropping it (client gone, timeout, shutdown) kills them.
//! Each process holds a slot of one process budget (`limit.rs`) whatever its state — serving,
//! warm in the pool, parked between requests (`parked.rs`) — so the cap bounds them all. A
//! choice starts in the first of: a parked process that holds its conversation (continued), a
//! parked process of its configuration (rewound and reused), a warm one, one handed over as it
//! finishes while the request waits, a new one (spawned in its turn in the start line,
//! `starts.rs`). Remote images are downloaded only once the request has its place in that
//! budget; the models it lists include the CLI's concrete ids, learned once at startup
//! (`catalog`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::watch;
use tokio::time::{Instant, timeout_at};
use tracing::{Instrument, info_span};

use crate::chat::Load;
use crate::chat::models::ModelInfo;
use crate::chat::types::{ChatEvent, ChatRequest, CompletionMeta, Usage};
use crate::chat::validate::{ValidChatRequest, ValidationConfig, validate};
use crate::chat::{BackendHealth, ChatBackend, ChatError, ChatStream, RequestContext};
use crate::fetch::{FetchConfig, fetch_remote_images};
use crate::traces::spans::{self as trace, ProcessOrigin};

use super::argv::SpawnSpec;
use super::catalog;
use super::launch::{Launcher, base_env};
use super::limit::{LimitConfig, Limiter, Slot, WaitQueue};
use super::parked::{Kept, ParkConfig, Parked, Pause, ReuseKey};
use super::pool::{Pool, PoolConfig};
use super::probe::CliProbe;
use super::process::ClaudeProcess;
use super::rewind::rewind;
use super::run::{Boot, Run};
use super::starts::{Starting, Starts};

#[path = "engine_reuse.rs"]
mod reuse;
#[path = "engine_sessions.rs"]
mod sessions;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub claude_bin: PathBuf,
    /// Run the CLI with `--bare` (API-key auth only).
    pub bare: bool,
    /// `CLAUDE_CODE_MAX_RETRIES` for the CLI.
    pub max_retries: u32,
    pub request_timeout: Duration,
    pub validation: ValidationConfig,
    /// Parent directory of the per-run private working directories.
    pub work_root: PathBuf,
    /// Extra environment variable names to pass through to the CLI.
    pub extra_env: Vec<String>,
    pub fetch: FetchConfig,
    /// Models kept warm and how many processes each; `None` runs every request cold.
    pub pool: Option<PoolSettings>,
    pub limits: LimitConfig,
    /// Longest silence on the CLI's stdout before a run is given up (504).
    pub idle_timeout: Duration,
    /// Retries of a choice that failed before any output (spawn failure, early exit, 529).
    pub start_retries: u32,
    /// Which processes are parked between requests, and for how long.
    pub park: ParkConfig,
    /// Processes booting at once (0: no limit).
    pub max_starting: usize,
    /// Learn the CLI's concrete model ids at startup (one short `initialize`-only process).
    pub discover_models: bool,
}

#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// CLI models (aliases or ids) to keep warm.
    pub models: Vec<String>,
    /// Warm processes kept per model at least.
    pub per_model: usize,
    /// At most, when recent demand asks for more.
    pub max_per_model: usize,
    pub max_idle: Duration,
}

pub struct Engine {
    cfg: EngineConfig,
    probe: CliProbe,
    launcher: Launcher,
    pool: Option<Pool>,
    budget: Arc<Limiter>,
    parked: Option<Arc<Parked>>,
    starts: Arc<Starts>,
    /// The CLI's concrete `claude-*` ids; `None` while they are being learned.
    cli_models: watch::Receiver<Option<Vec<String>>>,
}

/// How long a model listing waits for the startup discovery of the CLI's ids.
const CLI_MODELS_WAIT: Duration = Duration::from_secs(5);

/// Where one choice starts: in a warm process (bringing its slot), in a process to spawn in a
/// slot of the budget (maybe with its place in the start line already), or in a parked process
/// (bringing its slot) to continue or to rewind and reuse.
enum Start {
    Warm(Box<ClaudeProcess>, Slot),
    Cold(Slot, Option<Starting>),
    Parked(Box<Kept>, Reuse),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Reuse {
    /// It holds the request's history: only the new messages go in.
    Continue,
    /// Same configuration and tenant: rewound to empty, then given the whole conversation.
    Recycle,
}

/// How long a recycled process may take to confirm its rewind.
const REWIND_TIMEOUT: Duration = Duration::from_secs(5);

impl Engine {
    /// The engine, with its warm pool started when configured (needs a tokio runtime).
    pub fn new(cfg: EngineConfig) -> Self {
        let probe = CliProbe::new(cfg.claude_bin.clone());
        let launcher = Launcher {
            program: cfg.claude_bin.clone(),
            env: base_env(cfg.max_retries, &cfg.extra_env),
            work_root: cfg.work_root.clone(),
        };
        let budget = Arc::new(Limiter::new(cfg.limits));
        let starts = Starts::new(cfg.max_starting);
        let pool = cfg.pool.as_ref().filter(|p| p.max_per_model > 0).map(|p| {
            let specs = p
                .models
                .iter()
                .map(|model| SpawnSpec {
                    model: model.clone(),
                    bare: cfg.bare,
                    effort: None,
                })
                .collect();
            Pool::start(
                PoolConfig {
                    specs,
                    min_per_spec: p.per_model,
                    max_per_spec: p.max_per_model.max(p.per_model),
                    max_idle: p.max_idle,
                },
                launcher.clone(),
                budget.clone(),
                starts.clone(),
            )
        });
        let parked = (cfg.park.sessions > 0 || cfg.park.reuse).then(|| {
            let parked = Parked::new(cfg.park, budget.clone());
            let weak = Arc::downgrade(&parked);
            tokio::spawn(async move {
                while let Some(parked) = weak.upgrade() {
                    parked.sweep();
                    drop(parked);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
            parked
        });
        let cli_models = learn_cli_models(&cfg, &launcher);
        Engine {
            cli_models,
            parked,
            starts,
            budget,
            cfg,
            probe,
            launcher,
            pool,
        }
    }

    /// The budget's processes by state, and the requests waiting (for a process or a turn).
    pub fn load(&self) -> Load {
        let warm = self.pool.as_ref().map_or(0, Pool::idle_count);
        let (session, idle, tools) = self.parked.as_ref().map_or((0, 0, 0), |p| p.counts());
        Load {
            serving: self
                .budget
                .in_use()
                .saturating_sub(warm + session + idle + tools),
            warm,
            session,
            idle,
            tools,
            queued: self.budget.queued(),
            capacity: self.budget.capacity(),
        }
    }

    /// The queue requests wait in, for the session-lock waits to count in it too.
    pub fn queue(&self) -> Arc<WaitQueue> {
        self.budget.queue()
    }

    /// Where `n` choices start: warm processes first (their slots become serving slots), then
    /// slots from the budget for the rest (which may evict idle processes, or wait).
    async fn admit(&self, n: u32, spec: &SpawnSpec) -> Result<Vec<Start>, ChatError> {
        self.budget.fits(n)?;
        let mut starts = Vec::new();
        while starts.len() < n as usize
            && let Some((process, slot)) = self.warm(spec)
        {
            starts.push(Start::Warm(Box::new(process), slot));
        }
        let cold = self.budget.acquire(n - starts.len() as u32).await?;
        starts.extend(cold.into_iter().map(|slot| Start::Cold(slot, None)));
        Ok(starts)
    }

    /// Downloads the request's remote images, within the request's deadline. Called once the
    /// request is valid and has its place in the budget: the one step that reaches other servers.
    async fn fetch_images(
        &self,
        req: &mut ValidChatRequest,
        deadline: Instant,
    ) -> Result<(), ChatError> {
        timeout_at(deadline, fetch_remote_images(req, &self.cfg.fetch))
            .await
            .map_err(|_| ChatError::timeout(self.cfg.request_timeout))?
    }

    /// The next start of a choice that holds `slot` and no process: a warm process if one fits
    /// (its slot replaces this one), else a spawn in this slot.
    fn restart(&self, spec: &SpawnSpec, slot: Slot) -> Start {
        match self.warm(spec) {
            Some((process, warm_slot)) => {
                drop(slot);
                Start::Warm(Box::new(process), warm_slot)
            }
            None => Start::Cold(slot, None),
        }
    }

    /// Starts one choice, retrying (bounded, with backoff) failures that happened before any
    /// output: a process that could not start or exited early, an overloaded API.
    /// The choice keeps its slot across attempts: a failed process is gone, its place is not.
    async fn start_choice(
        &self,
        spec: &SpawnSpec,
        req: &ValidChatRequest,
        first: Start,
        turn: tracing::Span,
    ) -> Result<Run, ChatError> {
        let mut attempt = 0;
        let mut next = first;
        let idle = self.cfg.idle_timeout;
        loop {
            let (result, slot) = match next {
                Start::Warm(process, slot) => {
                    tracing::debug!(pid = process.pid(), "took a warm claude process");
                    trace::process_origin(&turn, ProcessOrigin::Warm, process.pid());
                    (
                        Run::start(*process, req, idle, Boot::Fresh(None)).await,
                        slot,
                    )
                }
                Start::Cold(slot, starting) => {
                    // Its turn in the start line first: boots one after another, not all at once.
                    let starting = match starting {
                        Some(starting) => starting,
                        None => self.starts.acquire().await,
                    };
                    let spawning = trace::claude_process(&turn);
                    match self.spawn(spec) {
                        Ok(process) => {
                            trace::process_origin(&turn, ProcessOrigin::Spawned, process.pid());
                            trace::process_pid(&spawning, process.pid());
                            let boot = Boot::Fresh(Some(starting));
                            let run = Run::start(process, req, idle, boot).instrument(spawning);
                            (run.await, slot)
                        }
                        Err(err) => (Err(err), slot),
                    }
                }
                Start::Parked(kept, how) => match self.run_parked(*kept, how, req, &turn).await {
                    // A parked process that broke (died, refused its reset) is gone; the
                    // choice starts over elsewhere in its slot, costing no attempt. Any other
                    // failure (the API refusing) is the answer.
                    (Err(ChatError::CliFailed { message }), slot) => {
                        tracing::debug!(%message, "discarded a parked process");
                        next = self.restart(spec, slot);
                        continue;
                    }
                    other => other,
                },
            };
            match result {
                Ok(mut run) => {
                    run.hold(slot);
                    return Ok(run);
                }
                Err(err) if attempt < self.cfg.start_retries && retryable(&err) => {
                    attempt += 1;
                    let pause = Duration::from_millis(250 << attempt.min(4));
                    tracing::warn!(attempt, error = %err, "retrying a run that failed before any output");
                    tokio::time::sleep(pause).await;
                    next = self.restart(spec, slot);
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// A choice in a parked process: continued (with the new messages, or with the results of
    /// the calls it stopped at), or rewound to empty and given the whole conversation. Returns
    /// the process's slot with the outcome (the process is gone if it failed).
    async fn run_parked(
        &self,
        kept: Kept,
        how: Reuse,
        req: &ValidChatRequest,
        turn: &tracing::Span,
    ) -> (Result<Run, ChatError>, Slot) {
        let Kept {
            mut process,
            mut marks,
            pause,
            slot,
            ..
        } = kept;
        let (pid, idle) = (process.pid(), self.cfg.idle_timeout);
        let result = match (how, pause) {
            (Reuse::Continue, Pause::Clean) => {
                tracing::debug!(pid, "continuing a parked process's conversation");
                trace::process_origin(turn, ProcessOrigin::Continued, pid);
                Run::continue_turn(process, marks, req, idle).await
            }
            (Reuse::Continue, Pause::AtTools { prompts, .. }) => {
                tracing::debug!(pid, "continuing a parked process with tool results");
                trace::process_origin(turn, ProcessOrigin::Continued, pid);
                Run::resume_tools(process, (marks, prompts), req, idle).await
            }
            (Reuse::Recycle, _) => match rewind(&mut process, &mut marks, REWIND_TIMEOUT).await {
                Ok(()) => {
                    tracing::debug!(pid, "recycled a parked process");
                    trace::process_origin(turn, ProcessOrigin::Recycled, pid);
                    Run::start(process, req, idle, Boot::Recycled(marks)).await
                }
                Err(reason) => {
                    drop(process);
                    Err(ChatError::cli_failed(format!(
                        "could not reset a recycled process: {reason}"
                    )))
                }
            },
        };
        (result, slot)
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// A warm process that fits, with its slot.
    fn warm(&self, spec: &SpawnSpec) -> Option<(ClaudeProcess, Slot)> {
        self.pool.as_ref()?.take(spec)
    }

    /// A new process (its slot is the caller's).
    fn spawn(&self, spec: &SpawnSpec) -> Result<ClaudeProcess, ChatError> {
        let process = ClaudeProcess::spawn(&self.launcher.launch(spec))?;
        tracing::debug!(pid = process.pid(), "spawned claude");
        Ok(process)
    }
}

#[async_trait::async_trait]
impl ChatBackend for Engine {
    async fn stream(&self, req: ChatRequest, ctx: RequestContext) -> Result<ChatStream, ChatError> {
        let received = std::time::Instant::now();
        let mut valid = validate(req, &self.cfg.validation)?;
        let timeout = self.cfg.request_timeout;
        let deadline = Instant::now() + timeout;
        let meta = CompletionMeta {
            id: format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
            created: unix_now(),
            model: valid.model.id.clone(),
            ignored_params: valid.ignored_params.clone(),
        };
        // A root: the processes' stderr tasks stay in this span after the request (a parked
        // process outlives it), and must not keep the request's trace spans open.
        let span = info_span!(parent: None, "claude_run", request_id = %ctx.request_id, model = %valid.model.cli_model);
        let spec = SpawnSpec {
            model: valid.model.cli_model.clone(),
            bare: self.cfg.bare,
            effort: valid.effort,
        };
        let key = ReuseKey::new(&ctx.tenant, &valid, self.cfg.bare);
        let session = ctx
            .session
            .clone()
            .zip(self.parked.clone())
            .filter(|_| sessions::eligible(&valid))
            .map(|(session, parked)| (session, parked, key.clone()));
        // The trace's spans of each choice's turn (disabled when traces are off).
        let turns: Vec<_> = (0..valid.n)
            .map(|i| trace::claude_turn(&spec.model, i))
            .collect();
        let turn = |i: usize| turns.get(i).cloned().unwrap_or_else(tracing::Span::none);
        let firsts: Vec<_> = turns.iter().map(trace::first_token).collect();
        let runs = match &session {
            Some(session) => {
                let place = self.place_in_session(session, &spec, &valid);
                let turn_place = timeout_at(deadline, place.instrument(trace::queue_wait()))
                    .await
                    .map_err(|_| ChatError::timeout(timeout))??;
                // Remote images only for a valid request that has its place (see `fetch`).
                self.fetch_images(&mut valid, deadline).await?;
                let started = self.start_in_session(turn_place, &spec, &valid, turn(0));
                vec![
                    timeout_at(deadline, started.instrument(span.clone()))
                        .await
                        .map_err(|_| ChatError::timeout(timeout))??,
                ]
            }
            None if ctx.session.is_none() && self.reusing() => {
                // The conversation as the client sent it, before remote images are fetched.
                let (conversation, turns) = reuse::conversation_of(&valid);
                let admit = self.admit_reusing((&key, conversation), &spec, &valid);
                let starts = timeout_at(deadline, admit.instrument(trace::queue_wait()))
                    .await
                    .map_err(|_| ChatError::timeout(timeout))??;
                self.fetch_images(&mut valid, deadline).await?;
                let starts = starts.into_iter().enumerate().map(|(i, start)| {
                    self.start_choice(&spec, &valid, start, turn(i))
                        .instrument(span.clone())
                });
                let mut runs = timeout_at(deadline, futures::future::try_join_all(starts))
                    .await
                    .map_err(|_| ChatError::timeout(timeout))??;
                for run in &mut runs {
                    self.park_after(run, &key, &turns, &valid);
                }
                runs
            }
            None => {
                let admit = self.admit(valid.n, &spec).instrument(trace::queue_wait());
                let starts = timeout_at(deadline, admit)
                    .await
                    .map_err(|_| ChatError::timeout(timeout))??;
                self.fetch_images(&mut valid, deadline).await?;
                let starts = starts.into_iter().enumerate().map(|(i, start)| {
                    self.start_choice(&spec, &valid, start, turn(i))
                        .instrument(span.clone())
                });
                timeout_at(deadline, futures::future::try_join_all(starts))
                    .await
                    .map_err(|_| ChatError::timeout(timeout))??
            }
        };
        let mut streams: Vec<_> = runs
            .into_iter()
            .zip(turns.iter().cloned().zip(firsts))
            .enumerate()
            .map(|(i, (run, (turn, first)))| {
                let events = run.into_events(i as u32, deadline, timeout, span.clone());
                trace::observe_turn(events, turn, first)
            })
            .collect();
        let events = if streams.len() == 1 {
            streams.remove(0)
        } else {
            merge_choices(streams)
        };
        // Each run holds its process's slot: the budget is released as the stream goes.
        let events = crate::metrics::observe_run(events, &meta.model, received);
        Ok(ChatStream { meta, events })
    }

    async fn count_input_tokens(
        &self,
        req: ChatRequest,
        _ctx: RequestContext,
    ) -> Result<u64, ChatError> {
        // A bad request is a 400 here too; a valid one cannot be counted (see `input_tokens`).
        validate(req, &self.cfg.validation)?;
        Err(ChatError::NotImplemented {
            message: super::input_tokens::NOT_COUNTED.into(),
        })
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, ChatError> {
        let mut learned = self.cli_models.clone();
        // Right after startup the discovery may still run; it takes about a second.
        let _ = tokio::time::timeout(CLI_MODELS_WAIT, learned.wait_for(Option::is_some)).await;
        let ids = learned.borrow().clone().unwrap_or_default();
        Ok(self.cfg.validation.models.list_with(&ids))
    }

    async fn get_model(&self, id: &str) -> Result<ModelInfo, ChatError> {
        self.cfg.validation.models.resolve(id)
    }

    async fn health(&self) -> BackendHealth {
        let cli = self.probe.status().await;
        BackendHealth {
            ready: cli.found && cli.version.is_some(),
            cli: Some(cli),
            upstream: None,
            warm_processes: self.pool.as_ref().map(Pool::idle_count),
        }
    }

    fn load(&self) -> Option<Load> {
        Some(Engine::load(self))
    }
}

/// Starts learning the CLI's concrete model ids in the background (off the request path);
/// the receiver holds them once known (empty when discovery is off or failed).
fn learn_cli_models(
    cfg: &EngineConfig,
    launcher: &Launcher,
) -> watch::Receiver<Option<Vec<String>>> {
    if !cfg.discover_models {
        return watch::channel(Some(Vec::new())).1;
    }
    let (tx, rx) = watch::channel(None);
    let (launcher, bare) = (launcher.clone(), cfg.bare);
    tokio::spawn(async move {
        let ids = match catalog::discover(&launcher, bare).await {
            Ok(ids) => {
                tracing::info!(models = ?ids, "learned the CLI's model ids");
                ids
            }
            Err(error) => {
                tracing::warn!(%error, "could not learn the CLI's model ids; /v1/models lists the aliases and mapped ids only");
                Vec::new()
            }
        };
        let _ = tx.send(Some(ids));
    });
    rx
}

/// Failures before any output that another attempt may not repeat.
fn retryable(err: &ChatError) -> bool {
    match err {
        ChatError::CliFailed { .. } | ChatError::Overloaded { .. } | ChatError::Internal { .. } => {
            true
        }
        ChatError::InvalidRequest { .. }
        | ChatError::PayloadTooLarge { .. }
        | ChatError::ModelNotFound { .. }
        | ChatError::SessionNotFound { .. }
        | ChatError::ResponseNotFound { .. }
        | ChatError::SessionConflict { .. }
        | ChatError::Unauthorized { .. }
        | ChatError::Forbidden { .. }
        | ChatError::QuotaExceeded { .. }
        | ChatError::CliNotFound { .. }
        | ChatError::RateLimited { .. }
        | ChatError::UpstreamAuth { .. }
        | ChatError::Upstream { .. }
        | ChatError::Timeout { .. }
        | ChatError::Unavailable { .. }
        | ChatError::NotImplemented { .. } => false,
    }
}

/// Interleaves the choices' events as they come; their usages are added up and sent once, last.
fn merge_choices(
    streams: Vec<BoxStream<'static, Result<ChatEvent, ChatError>>>,
) -> BoxStream<'static, Result<ChatEvent, ChatError>> {
    let mut merged = futures::stream::select_all(streams);
    Box::pin(async_stream::stream! {
        let mut total = Usage::default();
        while let Some(item) = merged.next().await {
            match item {
                Ok(ChatEvent::Usage(usage)) => total.add(&usage),
                Ok(event) => yield Ok(event),
                Err(err) => {
                    yield Err(err);
                    return;
                }
            }
        }
        yield Ok(ChatEvent::Usage(total));
    })
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
