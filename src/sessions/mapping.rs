//! What the session layer's stored things mean to a client: store failures as `ChatError`s, the
//! id rule, and the reply a streamed turn stores. Shared by sessions (`service`) and response
//! chains (`chains`).

use crate::chat::ChatError;
use crate::chat::backend::Accumulator;
use crate::chat::types::{CompletionMeta, ContentPart, Message, Role};

use super::store::StoreError;

pub(super) fn not_found(id: &str) -> ChatError {
    ChatError::SessionNotFound {
        message: format!("No session `{id}` (it never existed, was deleted, or expired)."),
    }
}

pub(super) fn store_error(id: &str, err: StoreError) -> ChatError {
    match err {
        StoreError::NotFound(_) => not_found(id),
        StoreError::AlreadyExists(_) => ChatError::invalid_with_code(
            format!("A session `{id}` already exists."),
            "id",
            "session_exists",
        ),
        StoreError::Conflict { expected, actual } => ChatError::SessionConflict {
            message: format!(
                "Another turn changed session `{id}` first (its history had {actual} messages, \
                 this turn was computed on {expected}); nothing was stored. Send it again."
            ),
        },
        StoreError::Backend(message) => ChatError::internal(format!("session store: {message}")),
    }
}

pub(super) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Choice 0 of what was streamed, as the assistant message to store.
pub(super) fn reply_message(acc: Accumulator, meta: &CompletionMeta) -> Message {
    let completion = acc.finish(meta.clone());
    let choice = completion.choices.into_iter().next();
    let (content, tool_calls) = choice.map_or((None, Vec::new()), |c| (c.content, c.tool_calls));
    Message {
        role: Role::Assistant,
        content: content.into_iter().map(ContentPart::Text).collect(),
        name: None,
        tool_calls,
        tool_call_id: None,
    }
}
