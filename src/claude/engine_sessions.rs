//! Turns of a session in the engine: where a turn runs (the session's live process when it
//! holds exactly this conversation, else a place in the process budget like any choice) and how
//! the process is kept for the next turn when this one ends cleanly. A child of `engine`, so it
//! reaches the engine's budget, pool and registry.

use std::ffi::OsString;
use std::sync::Arc;

use crate::chat::ChatError;
use crate::chat::validate::{Block, Turn, TurnRole, ValidChatRequest};

use super::super::argv::SpawnSpec;
use super::super::limit::Slot;
use super::super::live::{self, Kept, LiveSessions};
use super::super::process::ClaudeProcess;
use super::super::run::Run;
use super::Engine;

/// Where a session's turn starts: the session's live process (with its slot), or a place in
/// the budget like any choice.
pub(super) enum SessionStart {
    Held(Box<ClaudeProcess>, Slot),
    New(super::Start),
}

/// A session's turn with its place, and what it will be kept under (`place_in_session`).
pub(super) struct SessionTurn {
    key: String,
    registry: Arc<LiveSessions>,
    place: SessionStart,
    fingerprint: u64,
    turns: Vec<Turn>,
}

impl Engine {
    /// Where a session's turn runs: the session's live process when it holds exactly this
    /// conversation, else a place in the budget like any choice. Also what the turn is kept
    /// under afterwards: the configuration's fingerprint and the turns as the client sent them
    /// (before any remote image is fetched), so the next turn finds the process by the same hash.
    pub(super) async fn place_in_session(
        &self,
        (key, registry): &(String, Arc<LiveSessions>),
        spec: &SpawnSpec,
        env: &[(OsString, OsString)],
        req: &ValidChatRequest,
    ) -> Result<SessionTurn, ChatError> {
        let fingerprint = live::fingerprint(req, self.cfg.bare);
        let place = match registry.take(key, fingerprint, live::conversation(&req.history)) {
            Some((process, slot)) => SessionStart::Held(Box::new(process), slot),
            None => {
                let start = self.admit(1, spec, env).await?.pop();
                SessionStart::New(
                    start.ok_or_else(|| ChatError::internal("no place for the session's turn"))?,
                )
            }
        };
        let mut turns = req.history.clone();
        turns.push(req.prompt.clone());
        Ok(SessionTurn {
            key: key.clone(),
            registry: registry.clone(),
            place,
            fingerprint,
            turns,
        })
    }

    /// A turn of a session at its place: continued in the live process, else started like any
    /// run (replaying the history); either way the process is kept for the next turn if this
    /// one ends cleanly.
    pub(super) async fn start_in_session(
        &self,
        turn: SessionTurn,
        spec: &SpawnSpec,
        env: &[(OsString, OsString)],
        req: &ValidChatRequest,
    ) -> Result<Run, ChatError> {
        let SessionTurn {
            key,
            registry,
            place,
            fingerprint,
            mut turns,
        } = turn;
        let mut run = match place {
            SessionStart::Held(process, slot) => {
                tracing::debug!(pid = process.pid(), "continuing the session's live process");
                match Run::continue_turn(*process, req, self.cfg.idle_timeout).await {
                    Ok(mut run) => {
                        run.hold(slot);
                        run
                    }
                    // The kept process broke (died, stopped reading): replay into a new one,
                    // in its slot. Any other failure (the API refusing) is the turn's answer.
                    Err(ChatError::CliFailed { message }) => {
                        tracing::debug!(%message, "the live process failed; replaying the history");
                        let start = self.restart(spec, env, slot);
                        self.start_choice(spec, env, req, start).await?
                    }
                    Err(other) => return Err(other),
                }
            }
            SessionStart::New(start) => self.start_choice(spec, env, req, start).await?,
        };
        run.keep_with(Box::new(move |process, slot, reply| {
            if !reply.is_empty() {
                turns.push(Turn {
                    role: TurnRole::Assistant,
                    blocks: vec![Block::Text(reply)],
                });
            }
            let conversation = live::conversation(&turns);
            registry.put(
                key,
                Kept {
                    process,
                    slot,
                    fingerprint,
                    conversation,
                },
            );
        }));
        Ok(run)
    }
}
