//! One run: a `claude` process answering one choice of one completion. `Run::start` writes the
//! conversation to a new (or recycled) process, waiting where the CLI must acknowledge a line
//! first, and reads until the answer has begun; `Run::continue_turn` and `Run::resume_tools`
//! go on in a process that holds the conversation already. `Run::into_events` turns the rest
//! into chat events. The run owns the process and its slot of the process budget, so dropping
//! the event stream kills the one and then releases the other; a run that ends where its
//! process can serve again hands both to its keep hook instead (`parked.rs`).

use std::collections::VecDeque;
use std::time::Duration;

use futures::stream::BoxStream;
use tokio::time::{Instant, timeout_at};
use tracing::{Instrument, debug};

use crate::chat::ChatError;
use crate::chat::types::ChatEvent;
use crate::chat::validate::{Block, ValidChatRequest};

use super::control::ToolAnswers;
use super::input::{InputLine, run_input, turn_line};
use super::limit::Slot;
use super::lines::CliLine;
use super::parked::Marks;
use super::process::ClaudeProcess;
use super::starts::Starting;
use super::turn::{TurnConfig, TurnOutput, TurnState};

/// What to do with the process when its turn ended where it can serve again: it is handed over
/// with its slot instead of being killed.
pub type KeepHook = Box<dyn FnOnce(Ending) + Send>;

/// A run that ended where its process can serve again: on its turn's `result`, or at the end
/// of an API message of client calls (the CLI then waits at their permission prompt).
pub struct Ending {
    pub process: ClaudeProcess,
    pub marks: Marks,
    /// The reply's text.
    pub reply: String,
    /// The client calls it stopped at (id, name, arguments); `None` when it ended on `result`.
    pub calls: Option<Vec<(String, String, String)>>,
    /// The permission prompts of those calls already read, unanswered (request id, request).
    pub prompts: Vec<(String, serde_json::Value)>,
    /// The process's conversation is what the client saw: no reminder to call a tool went in.
    pub exact: bool,
    /// After the process: released once it is killed.
    pub slot: Slot,
}

/// How the process of `Run::start` came: new (to be configured; holding a place in the start
/// line until it has booted, when it was spawned for this run), or recycled (configured, its
/// conversation rewound to empty).
pub enum Boot {
    Fresh(Option<Starting>),
    Recycled(Marks),
}

pub struct Run {
    process: ClaudeProcess,
    /// After the process: released once it is killed.
    slot: Option<Slot>,
    keep: Option<KeepHook>,
    state: TurnState,
    pending: VecDeque<TurnOutput>,
    /// Longest silence on stdout tolerated before the run is given up.
    idle_timeout: Duration,
    marks: Marks,
    /// The start-line place of a process still booting: given up at its first line.
    booting: Option<Starting>,
}

/// What the turn's state machine needs of the request.
fn turn_config(req: &ValidChatRequest, history_user_lines: usize, marks: &Marks) -> TurnConfig {
    TurnConfig {
        history_user_lines,
        stop: req.stop.clone(),
        tools: req.tools.clone(),
        parallel_tools: req.tool_mode.parallel,
        required_tool: req.tool_mode.required.clone(),
        output: req.output.cli_schema().map(|_| req.output.clone()),
        answers: ToolAnswers::default(),
        spent_usd: marks.spent_usd,
        continued: false,
    }
}

impl Run {
    fn new(process: ClaudeProcess, state: TurnState, idle_timeout: Duration, marks: Marks) -> Run {
        Run {
            process,
            slot: None,
            keep: None,
            state,
            pending: VecDeque::new(),
            idle_timeout,
            marks,
            booting: None,
        }
    }

    /// Writes the conversation to a process without one (just spawned, warm, or recycled) and
    /// reads until the answer has begun (or failed).
    pub async fn start(
        process: ClaudeProcess,
        req: &ValidChatRequest,
        idle_timeout: Duration,
        boot: Boot,
    ) -> Result<Run, ChatError> {
        let started_at = Instant::now();
        let mut startup = crate::metrics::StartupTimer::start();
        let (configure, marks, booting) = match boot {
            Boot::Fresh(starting) => (true, Marks::default(), starting),
            Boot::Recycled(marks) => (false, marks, None),
        };
        let input = run_input(req, configure);
        let state = TurnState::new(turn_config(req, input.history_user_lines, &marks));
        let mut run = Run::new(process, state, idle_timeout, marks);
        run.booting = booting;
        // Lines go out back to back (the CLI reads stdin while it starts up and while it
        // handles the MCP handshake); only a replayed user line waits for its acknowledgement.
        for line in &input.lines {
            run.write_input(line).await?;
            if line.await_ack {
                let before = run.state.unacknowledged_history();
                while run.state.unacknowledged_history() == before {
                    run.read_into_pending().await?;
                    startup.line();
                }
            }
        }
        // Any output at all (the message start, text, a call, the end) means the answer began.
        loop {
            if !run.pending.is_empty() {
                debug!(
                    ms = started_at.elapsed().as_millis() as u64,
                    "first event from claude"
                );
                return Ok(run);
            }
            run.read_into_pending().await?;
            startup.line();
        }
    }

    /// The next turn in a live process that already holds the conversation (its earlier turns
    /// and its configuration): only the new user message is written.
    pub async fn continue_turn(
        process: ClaudeProcess,
        marks: Marks,
        req: &ValidChatRequest,
        idle_timeout: Duration,
    ) -> Result<Run, ChatError> {
        let state = TurnState::new(turn_config(req, 0, &marks));
        let mut run = Run::new(process, state, idle_timeout, marks);
        run.write_input(&turn_line(&req.prompt, true)).await?;
        while run.pending.is_empty() {
            run.read_into_pending().await?;
        }
        Ok(run)
    }

    /// Continues a process stopped at the client's calls with the client's results (the
    /// request's prompt): nothing is written but the answers to the CLI's permission prompts
    /// and tool calls, and Claude goes on with the same turn.
    pub async fn resume_tools(
        process: ClaudeProcess,
        (marks, prompts): (Marks, Vec<(String, serde_json::Value)>),
        req: &ValidChatRequest,
        idle_timeout: Duration,
    ) -> Result<Run, ChatError> {
        let results = req.prompt.blocks.iter().filter_map(|b| match b {
            Block::ToolResult {
                tool_use_id,
                content,
            } => Some((tool_use_id.clone(), content.clone())),
            _ => None,
        });
        let mut cfg = turn_config(req, 0, &marks);
        cfg.answers = ToolAnswers::new(results);
        cfg.continued = true;
        let mut run = Run::new(process, TurnState::new(cfg), idle_timeout, marks);
        // The prompts read before the process was parked are answered first; the CLI asks for
        // the next call only once the previous one has its result.
        for (request_id, request) in prompts {
            let outputs = run.state.push(CliLine::ControlRequest {
                request_id,
                request,
            });
            let rest = run.handle(outputs).await?;
            run.pending.extend(rest);
        }
        while run.pending.is_empty() {
            run.read_into_pending().await?;
        }
        Ok(run)
    }

    /// The run's place in the process budget, held for as long as the run (or the process, if
    /// kept) lives.
    pub fn hold(&mut self, slot: Slot) {
        self.slot = Some(slot);
    }

    /// Keep the process with `hook` if the turn ends cleanly (on its `result`).
    pub fn keep_with(&mut self, hook: KeepHook) {
        self.keep = Some(hook);
    }

    async fn write_input(&mut self, line: &InputLine) -> Result<(), ChatError> {
        self.write(&line.json).await?;
        if let Some(uuid) = &line.user {
            self.marks.wrote_user(uuid);
        }
        Ok(())
    }

    async fn write(&mut self, line: &str) -> Result<(), ChatError> {
        if let Err(e) = self.process.write_line(line).await {
            let report = self.process.exit_report().await;
            return Err(ChatError::cli_failed(format!(
                "The claude CLI stopped reading its input ({e}); it exited: {report}"
            )));
        }
        Ok(())
    }

    /// Reads one stdout line, writes whatever it asks to be written, and queues the rest. A
    /// failure before the answer began is returned as the error of the request.
    async fn read_into_pending(&mut self) -> Result<(), ChatError> {
        for output in self.read_one().await? {
            match output {
                TurnOutput::Failed(err) => return Err(err),
                other => self.pending.push_back(other),
            }
        }
        Ok(())
    }

    /// Reads and decodes one stdout line; stdin answers are written here, not returned.
    async fn read_one(&mut self) -> Result<Vec<TurnOutput>, ChatError> {
        let line = tokio::time::timeout(self.idle_timeout, self.process.next_line())
            .await
            .map_err(|_| ChatError::Timeout {
                message: format!(
                    "The claude CLI produced no output for {} s.",
                    self.idle_timeout.as_secs()
                ),
            })?;
        // The first line of a new process: it has booted (at EOF its place is just freed).
        if let Some(booted) = self.booting.take()
            && line.is_some()
        {
            booted.booted();
        }
        let Some(line) = line else {
            let report = self.process.exit_report().await;
            return Err(ChatError::cli_failed(format!(
                "The claude CLI exited before finishing its answer: {report}"
            )));
        };
        let Some(parsed) = CliLine::parse(&line) else {
            debug!(len = line.len(), "ignored a stdout line that is not JSON");
            return Ok(Vec::new());
        };
        if let CliLine::RateLimitEvent { rate_limit_info } = &parsed {
            let now = crate::chat::quota::unix_now();
            crate::chat::quota::board().record(rate_limit_info.windows(now));
        }
        let outputs = self.state.push(parsed);
        self.handle(outputs).await
    }

    /// Writes the lines the turn asks for; returns the rest.
    async fn handle(&mut self, outputs: Vec<TurnOutput>) -> Result<Vec<TurnOutput>, ChatError> {
        let mut rest = Vec::new();
        for output in outputs {
            match output {
                TurnOutput::Write(reply) => self.write(&reply).await?,
                other => rest.push(other),
            }
        }
        Ok(rest)
    }

    /// The rest of the run as events of choice `index`, ending at `deadline`.
    pub fn into_events(
        mut self,
        index: u32,
        deadline: Instant,
        timeout: Duration,
        span: tracing::Span,
    ) -> BoxStream<'static, Result<ChatEvent, ChatError>> {
        let stream = async_stream::stream! {
            yield Ok(ChatEvent::Role { index });
            let (reason, usage) = 'run: loop {
                while let Some(output) = self.pending.pop_front() {
                    match output {
                        TurnOutput::Started | TurnOutput::Write(_) => {}
                        TurnOutput::Text(text) => yield Ok(ChatEvent::Text { index, text }),
                        TurnOutput::ToolCall(call) => yield Ok(ChatEvent::ToolCall { index, call }),
                        TurnOutput::Reasoning(delta) => yield Ok(ChatEvent::Reasoning { index, delta }),
                        TurnOutput::Finished { reason, usage } => break 'run (reason, usage),
                        TurnOutput::Failed(err) => {
                            yield Err(err);
                            return;
                        }
                    }
                }
                match timeout_at(deadline, self.read_one().instrument(span.clone())).await {
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
            };
            yield Ok(ChatEvent::Finish { index, reason });
            // Handed over before the usage (the last event), so the next request finds it.
            let Run { process, slot, keep, mut state, mut marks, .. } = self;
            marks.spent_usd = state.spent_usd();
            let prompts = state.take_held();
            let calls = state.pending_calls().map(<[_]>::to_vec);
            match (keep, slot) {
                (Some(keep), Some(slot)) if state.ended_on_result() || calls.is_some() => {
                    let reply = state.emitted_text().to_string();
                    let exact = !state.nudged();
                    keep(Ending { process, marks, reply, calls, prompts, exact, slot });
                }
                // The process goes first, then its place in the budget.
                (_, slot) => {
                    drop(process);
                    drop(slot);
                }
            }
            yield Ok(ChatEvent::Usage(usage));
        };
        Box::pin(stream)
    }
}
