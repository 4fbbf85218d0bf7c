//! One run: a `claude` process answering one choice of one completion. `Run::start` spawns it,
//! writes the conversation (waiting where the CLI must acknowledge a line first) and reads until
//! the answer has begun; `Run::into_events` turns the rest into chat events. The run owns the
//! process, so dropping the event stream kills it.

use std::collections::VecDeque;
use std::time::Duration;

use futures::stream::BoxStream;
use tokio::time::{Instant, timeout_at};
use tracing::{Instrument, debug};

use crate::chat::ChatError;
use crate::chat::types::ChatEvent;
use crate::chat::validate::ValidChatRequest;

use super::input::run_input;
use super::lines::CliLine;
use super::process::ClaudeProcess;
use super::turn::{TurnConfig, TurnOutput, TurnState};

pub struct Run {
    process: ClaudeProcess,
    state: TurnState,
    pending: VecDeque<TurnOutput>,
}

impl Run {
    /// Writes the conversation to a fresh process (just spawned or warm) and reads until the
    /// answer has begun (or failed).
    pub async fn start(process: ClaudeProcess, req: &ValidChatRequest) -> Result<Run, ChatError> {
        let started_at = Instant::now();
        let input = run_input(req);
        let mut run = Run {
            process,
            state: TurnState::new(TurnConfig {
                history_user_lines: input.history_user_lines,
                stop: req.stop.clone(),
                tools: req.tools.clone(),
                parallel_tools: req.tool_mode.parallel,
                required_tool: req.tool_mode.required.clone(),
                output: req.output.cli_schema().map(|_| req.output.clone()),
            }),
            pending: VecDeque::new(),
        };
        // Lines go out back to back (the CLI reads stdin while it starts up and while it
        // handles the MCP handshake); only a replayed user line waits for its acknowledgement.
        for line in &input.lines {
            run.write(&line.json).await?;
            if line.await_ack {
                let before = run.state.unacknowledged_history();
                while run.state.unacknowledged_history() == before {
                    run.read_into_pending().await?;
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
        }
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
        let Some(line) = self.process.next_line().await else {
            let report = self.process.exit_report().await;
            return Err(ChatError::cli_failed(format!(
                "The claude CLI exited before finishing its answer: {report}"
            )));
        };
        let Some(parsed) = CliLine::parse(&line) else {
            debug!(len = line.len(), "ignored a stdout line that is not JSON");
            return Ok(Vec::new());
        };
        let mut outputs = Vec::new();
        for output in self.state.push(parsed) {
            match output {
                TurnOutput::Write(reply) => self.write(&reply).await?,
                other => outputs.push(other),
            }
        }
        Ok(outputs)
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
            loop {
                while let Some(output) = self.pending.pop_front() {
                    match output {
                        TurnOutput::Started | TurnOutput::Write(_) => {}
                        TurnOutput::Text(text) => yield Ok(ChatEvent::Text { index, text }),
                        TurnOutput::ToolCall(call) => yield Ok(ChatEvent::ToolCall { index, call }),
                        TurnOutput::Finished { reason, usage } => {
                            yield Ok(ChatEvent::Finish { index, reason });
                            yield Ok(ChatEvent::Usage(usage));
                            return;
                        }
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
            }
        };
        Box::pin(stream)
    }
}
