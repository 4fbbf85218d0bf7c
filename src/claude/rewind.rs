//! Resetting a recycled process's conversation to empty, so it can serve another request of the
//! same configuration and tenant as if it had just started.
//!
//! The reset is the CLI's `rewind_conversation` control request (2.1.330; the SDK uses it to
//! edit an earlier message): the conversation is cut back to before the process's first user
//! message. Measured against a fake API, the next request is then byte-identical to a fresh
//! process's (but for the CLI's session id in `metadata`), in 1–3 ms and without an API call.
//! The alternatives measured worse: a `/clear` user message resets in ~40 ms but leaves a
//! ~400-character `<local-command-caveat>` block and a changed billing header in the next
//! request; `get_context_usage` (an emptiness check) costs 50–60 ms and two or three
//! `count_tokens` API calls.
//!
//! The answer is the check: `rewound:true` with no message before the target
//! (`precedingAssistantUuid: null`) means nothing is left of the conversation. Anything else — a
//! refusal (`stale_target`, `target_not_found`, `turn_running` five times over ~75 ms), an error,
//! silence past the timeout, a dead process — discards the process.

use std::time::Duration;

use serde_json::{Value, json};

use super::lines::CliLine;
use super::parked::Marks;
use super::process::ClaudeProcess;

const REWIND_ID: &str = "rewind_1";

/// The control request that empties a conversation whose first and last user lines are marked.
pub fn rewind_request(marks: &Marks) -> Option<String> {
    let first = marks.first_user.as_deref()?;
    let last = marks.last_user.as_deref()?;
    Some(
        json!({"type": "control_request", "request_id": REWIND_ID, "request": {
            "subtype": "rewind_conversation",
            "target_message_uuid": first,
            "last_seen_user_message_uuid": last,
        }})
        .to_string(),
    )
}

/// Whether the CLI's answer says the conversation is now empty.
pub fn emptied(response: &Value) -> Result<(), String> {
    if response.get("subtype").and_then(Value::as_str) != Some("success") {
        let error = response.get("error").and_then(Value::as_str).unwrap_or("");
        return Err(format!("the CLI refused the rewind: {error}"));
    }
    let body = response.get("response").unwrap_or(&Value::Null);
    if body.get("rewound").and_then(Value::as_bool) != Some(true) {
        let reason = body.get("reason").and_then(Value::as_str).unwrap_or("none");
        return Err(format!(
            "the conversation was not rewound (reason: {reason})"
        ));
    }
    if !body
        .get("precedingAssistantUuid")
        .is_none_or(Value::is_null)
    {
        return Err("a message is left before the rewound one".into());
    }
    Ok(())
}

/// Whether the CLI refused because its turn is still winding down: the `result` line is out but
/// the CLI has not yet marked the turn over (the fake CLI has that window between two threads;
/// a refusal there is worth another try, not the process).
fn still_turning(response: &Value) -> bool {
    response.pointer("/response/reason").and_then(Value::as_str) == Some("turn_running")
}

/// How often a `turn_running` refusal is asked again, and how long to wait before each.
const TURN_RETRIES: u32 = 5;
const TURN_RETRY_WAIT: Duration = Duration::from_millis(5);

/// Empties the conversation of `process`; on success its marks start over. `timeout` bounds
/// the whole reset, retries included.
pub async fn rewind(
    process: &mut ClaudeProcess,
    marks: &mut Marks,
    timeout: Duration,
) -> Result<(), String> {
    let Some(request) = rewind_request(marks) else {
        // Nothing was ever written: the conversation is empty already.
        return Ok(());
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let mut attempt = 0;
    let answer = loop {
        let answer = ask(process, &request, deadline, timeout).await?;
        if !still_turning(&answer) || attempt == TURN_RETRIES {
            break answer;
        }
        attempt += 1;
        tokio::time::sleep(TURN_RETRY_WAIT * attempt).await;
    };
    emptied(&answer)?;
    marks.first_user = None;
    marks.last_user = None;
    Ok(())
}

/// Writes the rewind and waits, until `deadline`, for its answer.
async fn ask(
    process: &mut ClaudeProcess,
    request: &str,
    deadline: tokio::time::Instant,
    timeout: Duration,
) -> Result<Value, String> {
    process
        .write_line(request)
        .await
        .map_err(|e| format!("cannot write the rewind: {e}"))?;
    tokio::time::timeout_at(deadline, async {
        while let Some(line) = process.next_line().await {
            if let Some(CliLine::ControlResponse { response }) = CliLine::parse(&line)
                && response.get("request_id").and_then(Value::as_str) == Some(REWIND_ID)
            {
                return Some(response);
            }
        }
        None
    })
    .await
    .map_err(|_| format!("no answer to the rewind within {} ms", timeout.as_millis()))?
    .ok_or_else(|| "the process exited".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_emptied_conversation_passes() {
        let ok = json!({"subtype":"success","request_id":"rewind_1","response":{"rewound":true,"targetMessageUuid":"a","prefillText":"Hi","precedingAssistantUuid":null}});
        assert_eq!(emptied(&ok), Ok(()));
        let stale = json!({"subtype":"success","request_id":"rewind_1","response":{"rewound":false,"prefillText":null,"precedingAssistantUuid":null,"error":"stale target","reason":"stale_target"}});
        assert!(emptied(&stale).unwrap_err().contains("stale_target"));
        let middle = json!({"subtype":"success","request_id":"rewind_1","response":{"rewound":true,"targetMessageUuid":"b","prefillText":"x","precedingAssistantUuid":"c"}});
        assert!(emptied(&middle).is_err());
        let error = json!({"subtype":"error","request_id":"rewind_1","error":"boom"});
        assert!(emptied(&error).unwrap_err().contains("boom"));
        let turning = json!({"subtype":"success","request_id":"rewind_1","response":{"rewound":false,"prefillText":null,"precedingAssistantUuid":null,"error":"turn running","reason":"turn_running"}});
        assert!(still_turning(&turning) && !still_turning(&stale) && !still_turning(&ok));
        assert!(emptied(&turning).is_err());
    }

    #[test]
    fn the_request_names_the_first_and_last_user_lines() {
        assert_eq!(rewind_request(&Marks::default()), None);
        let mut marks = Marks::default();
        marks.wrote_user("u1");
        marks.wrote_user("u2");
        let request: Value = serde_json::from_str(&rewind_request(&marks).unwrap()).unwrap();
        assert_eq!(request["request"]["subtype"], "rewind_conversation");
        assert_eq!(request["request"]["target_message_uuid"], "u1");
        assert_eq!(request["request"]["last_seen_user_message_uuid"], "u2");
    }
}
