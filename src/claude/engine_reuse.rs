//! Stateless requests in the engine, with reuse on: where their choices start among the parked
//! processes (`parked.rs`), and how their processes are parked afterwards. A child of `engine`,
//! so it reaches the engine's budget, start line, pool and registry.
//!
//! The first choice continues a parked process that holds exactly the request's history (a
//! process stopped at tool calls only when the request's last message answers exactly those
//! calls; one whose calls are answered otherwise is killed and the history replayed); the
//! others take recycled processes of the key, then warm ones. A choice still without a process
//! waits for a slot and its turn in the start line — and takes a process of its key that
//! finishes meanwhile instead, whichever comes first.

use std::collections::HashSet;

use crate::chat::ChatError;
use crate::chat::turns::call_input;
use crate::chat::validate::{Block, Turn, TurnRole, ValidChatRequest};

use super::super::argv::SpawnSpec;
use super::super::parked::{self, Kept, Pause, ReuseKey};
use super::super::run::{Ending, Run};
use super::{Engine, Reuse, Start};

/// The hash of the request's history (what a process to continue must hold) and the turns the
/// request's process will hold after its reply (history and prompt).
pub(super) fn conversation_of(req: &ValidChatRequest) -> (u64, Vec<Turn>) {
    let mut turns = req.history.clone();
    let held = parked::conversation(&turns);
    turns.push(req.prompt.clone());
    (held, turns)
}

/// Whether the request's last message answers exactly the calls a process stopped at: tool
/// results only, one for each call.
fn answers_exactly(prompt: &Turn, calls: &[String]) -> bool {
    let mut open: HashSet<&str> = calls.iter().map(String::as_str).collect();
    prompt.role == TurnRole::User
        && prompt.blocks.iter().all(|b| match b {
            Block::ToolResult { tool_use_id, .. } => open.remove(tool_use_id.as_str()),
            _ => false,
        })
        && open.is_empty()
}

/// The assistant turn a client sends back for a reply: its text, then its calls as the client
/// received them (arguments parsed as validation parses them); `None` when an argument string
/// is no JSON object, which no follow-up can match.
fn reply_turn(reply: &str, calls: &[(String, String, String)]) -> Option<Turn> {
    let mut blocks = Vec::new();
    if !reply.is_empty() {
        blocks.push(Block::Text(reply.to_string()));
    }
    for (id, name, arguments) in calls {
        let input = call_input(arguments).ok()?;
        blocks.push(Block::ToolUse {
            id: id.clone(),
            name: name.clone(),
            input,
        });
    }
    Some(Turn {
        role: TurnRole::Assistant,
        blocks,
    })
}

impl Engine {
    /// Whether stateless requests' processes are parked and reused.
    pub(super) fn reusing(&self) -> bool {
        self.parked.as_ref().is_some_and(|p| p.config().reuse)
    }

    /// Where the request's choices start, parked processes of its key first.
    pub(super) async fn admit_reusing(
        &self,
        (key, conversation): (&ReuseKey, u64),
        spec: &SpawnSpec,
        req: &ValidChatRequest,
    ) -> Result<Vec<Start>, ChatError> {
        let Some(registry) = self.parked.clone() else {
            return self.admit(req.n, spec).await;
        };
        self.budget.fits(req.n)?;
        let n = req.n as usize;
        let mut starts = Vec::with_capacity(n);
        if let Some(kept) = registry.take_continuation(key, conversation) {
            match &kept.pause {
                Pause::AtTools { calls, .. } if !answers_exactly(&req.prompt, calls) => {
                    tracing::debug!("tool results do not match the parked calls: replaying");
                    let Kept { process, slot, .. } = kept;
                    // The process first, then its slot: the choice spawns in it.
                    drop(process);
                    starts.push(self.restart(spec, slot));
                }
                _ => starts.push(Start::Parked(Box::new(kept), Reuse::Continue)),
            }
        }
        while starts.len() < n
            && let Some(kept) = registry.take_recyclable(key)
        {
            starts.push(Start::Parked(Box::new(kept), Reuse::Recycle));
        }
        while starts.len() < n
            && let Some((process, slot)) = self.warm(spec)
        {
            starts.push(Start::Warm(Box::new(process), slot));
        }
        match n - starts.len() {
            0 => {}
            1 => starts.push(self.wait_or_spawn(key).await?),
            more => {
                let slots = self.budget.acquire(more as u32).await?;
                starts.extend(slots.into_iter().map(|slot| Start::Cold(slot, None)));
            }
        }
        Ok(starts)
    }

    /// A slot and a turn in the start line for a new process — or, if it comes first, a
    /// process of the key that finishes its turn meanwhile.
    async fn wait_or_spawn(&self, key: &ReuseKey) -> Result<Start, ChatError> {
        let Some(mut handoff) = self.parked.as_ref().and_then(|p| p.wait_for(key)) else {
            let slot = self.one_slot().await?;
            return Ok(Start::Cold(slot, Some(self.starts.acquire().await)));
        };
        let spawn = async {
            let slot = self.one_slot().await?;
            Ok::<_, ChatError>((slot, self.starts.acquire().await))
        };
        tokio::select! {
            biased;
            Some(kept) = handoff.recv() => {
                tracing::debug!("took a process that finished while this request waited");
                Ok(Start::Parked(Box::new(kept), Reuse::Recycle))
            }
            place = spawn => {
                let (slot, starting) = place?;
                // One handed over at the same moment is used, not lost.
                Ok(match handoff.leave() {
                    Some(kept) => Start::Parked(Box::new(kept), Reuse::Recycle),
                    None => Start::Cold(slot, Some(starting)),
                })
            }
        }
    }

    async fn one_slot(&self) -> Result<super::Slot, ChatError> {
        self.budget
            .acquire(1)
            .await?
            .pop()
            .ok_or_else(|| ChatError::internal("no slot for the request"))
    }

    /// After its turn, the run's process is parked under the request's key with the
    /// conversation it then holds: `turns` and the reply (text, or the calls it stopped at).
    pub(super) fn park_after(
        &self,
        run: &mut Run,
        key: &ReuseKey,
        turns: &[Turn],
        req: &ValidChatRequest,
    ) {
        let Some(registry) = self.parked.clone() else {
            return;
        };
        let (key, mut turns) = (key.clone(), turns.to_vec());
        // Structured output is a tool round in the CLI's conversation, JSON text in the client's.
        let plain = req.output.cli_schema().is_none();
        run.keep_with(Box::new(move |ending: Ending| {
            let Ending {
                process,
                marks,
                reply,
                calls,
                prompts,
                exact,
                slot,
            } = ending;
            let pause = match &calls {
                Some(calls) => Pause::AtTools {
                    calls: calls.iter().map(|(id, ..)| id.clone()).collect(),
                    prompts,
                },
                None => Pause::Clean,
            };
            let Some(said) = reply_turn(&reply, calls.as_deref().unwrap_or_default()) else {
                return;
            };
            if !said.blocks.is_empty() {
                turns.push(said);
            }
            let kept = Kept {
                process,
                marks,
                pause,
                conversation: (exact && plain).then(|| parked::conversation(&turns)),
                slot,
            };
            registry.park(key, None, kept);
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(id: &str) -> Block {
        Block::ToolResult {
            tool_use_id: id.into(),
            content: "ok".into(),
        }
    }

    #[test]
    fn only_results_for_exactly_the_parked_calls_continue_it() {
        let calls = vec!["a".to_string(), "b".to_string()];
        let turn = |blocks| Turn {
            role: TurnRole::User,
            blocks,
        };
        assert!(answers_exactly(
            &turn(vec![result("b"), result("a")]),
            &calls
        ));
        assert!(!answers_exactly(&turn(vec![result("a")]), &calls));
        assert!(!answers_exactly(
            &turn(vec![result("a"), result("a")]),
            &calls
        ));
        assert!(!answers_exactly(
            &turn(vec![result("a"), result("b"), Block::Text("and?".into())]),
            &calls
        ));
        assert!(!answers_exactly(
            &turn(vec![result("a"), result("c")]),
            &calls
        ));
    }

    #[test]
    fn the_reply_turn_is_what_a_client_sends_back() {
        let calls = vec![(
            "toolu_1".to_string(),
            "f".to_string(),
            r#"{"x": 1}"#.to_string(),
        )];
        let turn = reply_turn("Let me check.", &calls).unwrap();
        assert_eq!(turn.blocks.len(), 2);
        assert!(matches!(&turn.blocks[1], Block::ToolUse { input, .. } if input["x"] == 1));
        let empty = reply_turn("", &[("t".into(), "f".into(), String::new())]).unwrap();
        assert!(matches!(&empty.blocks[0], Block::ToolUse { input, .. } if input.is_object()));
        assert!(reply_turn("", &[("t".into(), "f".into(), "[1]".into())]).is_none());
    }
}
