//! The local engine: a `ChatBackend` that answers each completion with one `claude` process.
//! It validates the request, spawns the CLI with the flags and environment of `EngineConfig`,
//! writes the conversation on stdin, and turns the CLI's lines into chat events. The returned
//! stream owns the process: dropping it (client gone, timeout, shutdown) kills the process group.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use futures::stream::BoxStream;
use tokio::time::{Instant, timeout_at};
use tracing::{Instrument, debug, info_span};

use crate::chat::models::ModelInfo;
use crate::chat::types::{ChatEvent, ChatRequest, CompletionMeta};
use crate::chat::validate::{ValidChatRequest, ValidationConfig, validate};
use crate::chat::{BackendHealth, ChatBackend, ChatError, ChatStream, RequestContext};

use super::argv::{SpawnSpec, build_args};
use super::input::run_input;
use super::lines::CliLine;
use super::probe::CliProbe;
use super::process::{ClaudeProcess, Launch};
use super::turn::{TurnOutput, TurnState};

/// Environment variables passed through to the CLI when the gateway has them: what it needs to
/// find itself, to authenticate, and to reach Anthropic through a proxy.
const PASS_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "CLAUDE_CONFIG_DIR",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "NO_PROXY",
    "https_proxy",
    "http_proxy",
    "no_proxy",
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
];

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
}

pub struct Engine {
    cfg: EngineConfig,
    probe: CliProbe,
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Self {
        let probe = CliProbe::new(cfg.claude_bin.clone());
        Engine { cfg, probe }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    fn launch(&self, req: &ValidChatRequest) -> Launch {
        let spec = SpawnSpec {
            model: req.model.cli_model.clone(),
            bare: self.cfg.bare,
            effort: req.effort,
        };
        Launch {
            program: self.cfg.claude_bin.clone(),
            args: build_args(&spec),
            env: self.child_env(req),
            work_root: self.cfg.work_root.clone(),
        }
    }

    fn child_env(&self, req: &ValidChatRequest) -> Vec<(OsString, OsString)> {
        let mut env: Vec<(OsString, OsString)> = PASS_ENV
            .iter()
            .copied()
            .chain(self.cfg.extra_env.iter().map(String::as_str))
            .filter_map(|name| std::env::var_os(name).map(|v| (OsString::from(name), v)))
            .collect();
        let mut set = |k: &str, v: String| env.push((k.into(), v.into()));
        set("CLAUDE_CODE_MAX_RETRIES", self.cfg.max_retries.to_string());
        set("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into());
        set("DISABLE_TELEMETRY", "1".into());
        set("DISABLE_AUTOUPDATER", "1".into());
        set("DISABLE_ERROR_REPORTING", "1".into());
        if let Some(max) = req.max_tokens {
            // The API cuts the answer at the client's limit; the turn ends on that cut.
            set("CLAUDE_CODE_MAX_OUTPUT_TOKENS", max.to_string());
        }
        env
    }
}

#[async_trait::async_trait]
impl ChatBackend for Engine {
    async fn stream(&self, req: ChatRequest, ctx: RequestContext) -> Result<ChatStream, ChatError> {
        let valid = validate(req, &self.cfg.validation)?;
        let deadline = Instant::now() + self.cfg.request_timeout;
        let meta = CompletionMeta {
            id: format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
            created: unix_now(),
            model: valid.model.id.clone(),
            ignored_params: valid.ignored_params.clone(),
        };
        let span =
            info_span!("claude_run", request_id = %ctx.request_id, model = %valid.model.cli_model);
        let launch = self.launch(&valid);
        let timeout = self.cfg.request_timeout;
        let run = timeout_at(
            deadline,
            Run::start(launch, &valid).instrument(span.clone()),
        )
        .await
        .map_err(|_| ChatError::timeout(timeout))??;
        Ok(ChatStream {
            meta,
            events: run.into_events(deadline, timeout, span),
        })
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, ChatError> {
        Ok(self.cfg.validation.models.list())
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
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A started run: the process, the turn state, and outputs already decoded but not yet sent.
struct Run {
    process: ClaudeProcess,
    state: TurnState,
    pending: VecDeque<TurnOutput>,
}

impl Run {
    /// Spawns, writes the conversation, and reads until the answer has begun (or failed).
    async fn start(launch: Launch, req: &ValidChatRequest) -> Result<Run, ChatError> {
        let started_at = Instant::now();
        let process = ClaudeProcess::spawn(&launch)?;
        debug!(pid = process.pid(), "spawned claude");
        let input = run_input(req);
        let mut run = Run {
            process,
            state: TurnState::new(input.history_user_lines, req.stop.clone()),
            pending: VecDeque::new(),
        };
        for line in &input.lines {
            if let Err(e) = run.process.write_line(&line.json).await {
                let report = run.process.exit_report().await;
                return Err(ChatError::cli_failed(format!(
                    "The claude CLI stopped reading its input ({e}); it exited: {report}"
                )));
            }
            if line.await_ack {
                let before = run.state.unacknowledged_history();
                while run.state.unacknowledged_history() == before {
                    for output in run.read_one().await? {
                        if let TurnOutput::Failed(err) = output {
                            return Err(err);
                        }
                    }
                }
            }
        }
        loop {
            let outputs = run.next_outputs().await?;
            let mut started = false;
            for output in outputs {
                match output {
                    TurnOutput::Failed(err) => return Err(err),
                    TurnOutput::Started => started = true,
                    other => {
                        started = true;
                        run.pending.push_back(other);
                    }
                }
            }
            if started {
                debug!(
                    ms = started_at.elapsed().as_millis() as u64,
                    "first event from claude"
                );
                return Ok(run);
            }
        }
    }

    /// Reads lines until the turn state produces something; EOF before the end is a failure.
    async fn next_outputs(&mut self) -> Result<Vec<TurnOutput>, ChatError> {
        loop {
            let outputs = self.read_one().await?;
            if !outputs.is_empty() {
                return Ok(outputs);
            }
        }
    }

    /// Reads and decodes one stdout line.
    async fn read_one(&mut self) -> Result<Vec<TurnOutput>, ChatError> {
        let Some(line) = self.process.next_line().await else {
            let report = self.process.exit_report().await;
            return Err(ChatError::cli_failed(format!(
                "The claude CLI exited before finishing its answer: {report}"
            )));
        };
        match CliLine::parse(&line) {
            Some(parsed) => Ok(self.state.push(parsed)),
            None => {
                debug!(len = line.len(), "ignored a stdout line that is not JSON");
                Ok(Vec::new())
            }
        }
    }

    fn into_events(
        mut self,
        deadline: Instant,
        timeout: Duration,
        span: tracing::Span,
    ) -> BoxStream<'static, Result<ChatEvent, ChatError>> {
        let stream = async_stream::stream! {
            yield Ok(ChatEvent::Role { index: 0 });
            loop {
                while let Some(output) = self.pending.pop_front() {
                    match output {
                        TurnOutput::Started => {}
                        TurnOutput::Text(text) => yield Ok(ChatEvent::Text { index: 0, text }),
                        TurnOutput::Finished { reason, usage } => {
                            yield Ok(ChatEvent::Finish { index: 0, reason });
                            yield Ok(ChatEvent::Usage(usage));
                            return;
                        }
                        TurnOutput::Failed(err) => {
                            yield Err(err);
                            return;
                        }
                    }
                }
                match timeout_at(deadline, self.next_outputs().instrument(span.clone())).await {
                    Ok(Ok(outputs)) => self.pending.extend(outputs),
                    Ok(Err(err)) => {
                        yield Err(err);
                        return;
                    }
                    Err(_) => {
                        yield Err(ChatError::timeout(timeout));
                        return;
                    }
                }
            }
        };
        Box::pin(stream)
    }
}
