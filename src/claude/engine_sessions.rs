//! Turns of a session in the engine: where a turn runs (the session's parked process when it
//! holds exactly this conversation, else a place in the process budget like any choice) and how
//! the process is parked for the next turn when this one ends cleanly. A child of `engine`, so
//! it reaches the engine's budget, pool and registry.

use std::sync::Arc;

use crate::chat::ChatError;
use crate::chat::validate::{Block, OutputMode, Turn, TurnRole, ValidChatRequest};

use super::super::argv::SpawnSpec;
use super::super::parked::{self, Kept, Parked, ReuseKey};
use super::super::run::{Ending, Run};
use super::{Engine, Reuse, Start};

/// Whether a session's turn can run in (and leave behind) a kept process: plain text turns
/// only, since tools, JSON output, stop sequences and token limits end a run by cutting it or
/// need a per-process configuration.
pub(super) fn eligible(req: &ValidChatRequest) -> bool {
    req.tools.is_empty()
        && req.output == OutputMode::Text
        && req.stop.is_empty()
        && req.max_tokens.is_none()
        && req.thinking_budget.is_none()
        && req.n == 1
}

/// A session's turn with its place, and what it will be kept under (`place_in_session`).
pub(super) struct SessionTurn {
    session: String,
    registry: Arc<Parked>,
    place: Start,
    /// The place is the process kept for this session.
    kept: bool,
    key: ReuseKey,
    turns: Vec<Turn>,
}

impl Engine {
    /// Where a session's turn runs: the session's parked process when it holds exactly this
    /// conversation, else a place in the budget like any choice. Also what the turn is kept
    /// under afterwards: the key and the turns as the client sent them (before any remote image
    /// is fetched), so the next turn finds the process by the same hash.
    pub(super) async fn place_in_session(
        &self,
        (session, registry, key): &(String, Arc<Parked>, ReuseKey),
        spec: &SpawnSpec,
        req: &ValidChatRequest,
    ) -> Result<SessionTurn, ChatError> {
        let (held, turns) = super::reuse::conversation_of(req);
        let place = match registry.take_session(session, key, held) {
            Some(kept) => (Start::Parked(Box::new(kept), Reuse::Continue), true),
            // Else like a stateless request: a parked process of its key may serve it.
            None => {
                let starts = if self.reusing() {
                    self.admit_reusing((key, held), spec, req).await?
                } else {
                    self.admit(1, spec).await?
                };
                let place = starts
                    .into_iter()
                    .next()
                    .ok_or_else(|| ChatError::internal("no place for the session's turn"))?;
                (place, false)
            }
        };
        let (place, kept) = place;
        Ok(SessionTurn {
            session: session.clone(),
            registry: registry.clone(),
            place,
            kept,
            key: key.clone(),
            turns,
        })
    }

    /// A turn of a session at its place: continued in the parked process, else started like
    /// any run (replaying the history); either way the process is parked for the next turn if
    /// this one ends cleanly.
    pub(super) async fn start_in_session(
        &self,
        turn: SessionTurn,
        spec: &SpawnSpec,
        req: &ValidChatRequest,
        trace_turn: tracing::Span,
    ) -> Result<Run, ChatError> {
        let SessionTurn {
            session,
            registry,
            place,
            kept,
            key,
            mut turns,
        } = turn;
        let mut run = self
            .start_choice(spec, req, place, trace_turn.clone())
            .await?;
        if kept {
            use crate::traces::spans::{ProcessOrigin, process_origin};
            process_origin(&trace_turn, ProcessOrigin::Session, None);
        }
        run.keep_with(Box::new(move |ending: Ending| {
            let Ending {
                process,
                marks,
                reply,
                calls,
                slot,
                ..
            } = ending;
            // Eligible turns have no tools, so they end on their `result`.
            if calls.is_some() {
                return;
            }
            if !reply.is_empty() {
                turns.push(Turn {
                    role: TurnRole::Assistant,
                    blocks: vec![Block::Text(reply)],
                });
            }
            let kept = Kept {
                process,
                marks,
                pause: parked::Pause::Clean,
                conversation: Some(parked::conversation(&turns)),
                slot,
            };
            registry.park(key, Some(session), kept);
        }));
        Ok(run)
    }
}
