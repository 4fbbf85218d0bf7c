//! Which conversation a request continues, as a key the façade routes by (`grpc/cluster`): a
//! request with the same key goes to the same worker, where the conversation's live process
//! is. A session is its id; a stored response chain is the tag every response id of the chain
//! ends with (`continuing_id` makes ids that way); a stateless request that resends its
//! history is what opened the conversation, which every later turn repeats. A request that
//! continues nothing has no key and goes wherever load is lowest.

use sha2::{Digest, Sha256};

use super::Tenant;
use super::types::{ChatRequest, Role};

/// The random tag a response id ends with and its continuations keep (`continuing_id`).
const CHAIN_TAG_LEN: usize = 8;

/// The key that keeps a conversation on one worker, or `None` for a request that starts one.
pub fn key(req: &ChatRequest, tenant: &Tenant) -> Option<Vec<u8>> {
    if let Some(session) = &req.session_id {
        return Some(session_key(tenant, session));
    }
    let mut key = Sha256::new().chain_update(tenant.id()).chain_update([0]);
    let turn = req.response.as_ref();
    let resent = req
        .messages
        .iter()
        .any(|m| matches!(m.role, Role::Assistant | Role::Tool));
    if let Some(previous) = turn.and_then(|t| t.previous.as_deref()) {
        // A stored chain: every response of it ends with the first one's tag.
        key.update(b"chain\0");
        key.update(chain_tag(previous));
    } else if resent {
        // A resent history (chat, or Responses input with earlier output items): what opened
        // the conversation is in every later turn.
        key.update(b"history\0");
        key.update(&req.model);
        for message in &req.messages {
            key.update([0]);
            key.update(message.joined_text());
            if !matches!(message.role, Role::System | Role::Developer) {
                break;
            }
        }
    } else if let Some(turn) = turn.filter(|t| t.store) {
        // The first response of a chain that will be kept: placed by its own tag, so the
        // second finds its process where the first left it.
        key.update(b"chain\0");
        key.update(chain_tag(&turn.id));
    } else {
        return None;
    }
    Some(key.finalize().to_vec())
}

/// The key of a session's turns, and of the calls that manage it.
pub fn session_key(tenant: &Tenant, id: &str) -> Vec<u8> {
    Sha256::new()
        .chain_update(tenant.id())
        .chain_update(b"\0session\0")
        .chain_update(id)
        .finalize()
        .to_vec()
}

/// The part of a response id that names its chain: the tag `continuing_id` carries over, or the
/// whole id when it is not one of ours.
fn chain_tag(id: &str) -> &str {
    match ours(id) {
        Some(hex) => &hex[hex.len() - CHAIN_TAG_LEN..],
        None => id,
    }
}

/// The hex part of a `resp_` id this gateway made: `resp_` and 32 lowercase hex digits.
fn ours(id: &str) -> Option<&str> {
    let hex = id.strip_prefix("resp_")?;
    (hex.len() == 32
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(hex)
}

/// A new response id (`resp_` and 32 hex digits, random) that keeps the chain tag of the
/// response it continues, so every response of a chain has the same affinity.
pub fn continuing_id(previous: Option<&str>) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    match previous.and_then(ours) {
        Some(hex) => format!(
            "resp_{}{}",
            &random[..32 - CHAIN_TAG_LEN],
            &hex[hex.len() - CHAIN_TAG_LEN..]
        ),
        None => format!("resp_{random}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::types::{Message, ResponseTurn};

    #[test]
    fn continuations_share_a_key_and_first_requests_have_none() {
        let tenant = Tenant::default();
        let first = ChatRequest {
            model: "sonnet".into(),
            messages: vec![
                Message::text(Role::System, "be brief"),
                Message::text(Role::User, "hi"),
            ],
            ..ChatRequest::default()
        };
        assert_eq!(key(&first, &tenant), None);
        let mut second = first.clone();
        second.messages.extend([
            Message::text(Role::Assistant, "hello"),
            Message::text(Role::User, "more"),
        ]);
        let mut third = second.clone();
        third.messages.extend([
            Message::text(Role::Assistant, "sure"),
            Message::text(Role::User, "again"),
        ]);
        let expected = key(&second, &tenant).unwrap();
        assert_eq!(key(&third, &tenant).unwrap(), expected);
        let mut other = second.clone();
        other.messages[1] = Message::text(Role::User, "hello there");
        assert_ne!(key(&other, &tenant).unwrap(), expected);
        // Another tenant's identical conversation is keyed apart.
        let admin = Tenant::new("other", false).unwrap();
        assert_ne!(key(&second, &admin).unwrap(), expected);

        let session = ChatRequest {
            session_id: Some("s1".into()),
            ..first.clone()
        };
        assert!(key(&session, &tenant).is_some());
        assert_ne!(key(&session, &tenant), key(&second, &tenant));
    }

    #[test]
    fn a_response_chain_keeps_one_key_from_its_first_response_on() {
        let tenant = Tenant::default();
        let turn = |id: String, previous: Option<String>| ChatRequest {
            response: Some(ResponseTurn {
                id,
                previous,
                store: true,
                ..ResponseTurn::default()
            }),
            messages: vec![Message::text(Role::User, "hi")],
            ..ChatRequest::default()
        };
        let first = continuing_id(None);
        assert!(ours(&first).is_some(), "{first}");
        let second = continuing_id(Some(&first));
        let third = continuing_id(Some(&second));
        assert!(ours(&third).is_some() && second != first && third != second);
        let expected = key(&turn(first.clone(), None), &tenant).unwrap();
        assert_eq!(
            key(&turn(second.clone(), Some(first)), &tenant).unwrap(),
            expected
        );
        assert_eq!(key(&turn(third, Some(second)), &tenant).unwrap(), expected);
        // Not kept and continuing nothing: balanced by load. Resending its history instead of
        // naming it: keyed by that history.
        let mut unstored = turn(continuing_id(None), None);
        if let Some(t) = unstored.response.as_mut() {
            t.store = false;
        }
        assert_eq!(key(&unstored, &tenant), None);
        unstored.messages.extend([
            Message::text(Role::Assistant, "a"),
            Message::text(Role::User, "b"),
        ]);
        assert!(key(&unstored, &tenant).is_some());
        // An id that is not ours is its own chain's key.
        let foreign = key(&turn("x".into(), Some("my-own-id".into())), &tenant);
        assert_ne!(foreign.unwrap(), expected);
        assert!(continuing_id(Some("my-own-id")).starts_with("resp_"));
    }
}
