//! Reasoning items in the Responses state machine: one item per thinking block, the summary
//! events only when `reasoning.summary` asks, the sealed thinking when `include` asks, an empty
//! item first when reasoning was asked for and Claude did not think, and nothing of the thinking
//! in `output_text`. Every event is checked against OpenAI's schemas by `run`.

use serde_json::json;

use super::*;
use crate::chat::types::ReasoningDelta;

fn think(t: &str) -> ChatEvent {
    ChatEvent::Reasoning {
        index: 0,
        delta: ReasoningDelta::Text(t.into()),
    }
}

fn signature(s: &str) -> ChatEvent {
    ChatEvent::Reasoning {
        index: 0,
        delta: ReasoningDelta::Signature {
            signature: s.into(),
            model: "claude-sonnet-5-5".into(),
        },
    }
}

#[test]
fn thinking_with_a_summary_then_text() {
    let mut m = machine(json!({"model": "gpt-4o", "input": "Hi",
        "reasoning": {"effort": "high", "summary": "auto"},
        "include": ["reasoning.encrypted_content"]}));
    let events = run(
        &mut m,
        vec![
            think("Let me think "),
            think("about this."),
            signature("sig_1"),
            text("Hello"),
            finish(FinishReason::Stop),
            usage_event(),
        ],
        None,
    );
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(
        events[2]["item"],
        json!({"type": "reasoning", "id": "rs_1", "summary": []})
    );
    assert_eq!(
        events[3]["part"],
        json!({"type": "summary_text", "text": ""})
    );
    assert_eq!(events[4]["delta"], "Let me think ");
    assert_eq!(events[4]["item_id"], "rs_1");
    assert_eq!(events[4]["summary_index"], 0);
    assert_eq!(events[6]["text"], "Let me think about this.");
    assert_eq!(events[7]["part"]["text"], "Let me think about this.");
    let item = &events[8]["item"];
    assert_eq!(
        item["summary"],
        json!([{"type": "summary_text", "text": "Let me think about this."}])
    );
    // The sealed thinking opens to the text, the signature and the model; nothing of it shows.
    let sealed = item["encrypted_content"].as_str().unwrap();
    let opened = key().open(sealed).unwrap();
    assert_eq!(opened.thinking, "Let me think about this.");
    assert_eq!(opened.signature, "sig_1");
    assert_eq!(opened.model, "claude-sonnet-5-5", "the model that wrote it");
    let done = &events[15]["response"];
    assert_eq!(done["output"][0]["type"], "reasoning");
    assert_eq!(done["output"][1]["content"][0]["text"], "Hello");
    assert_eq!(done["output"][1]["id"], "msg_2");
    assert_eq!(
        done["reasoning"],
        json!({"effort": "high", "summary": "auto"})
    );
}

#[test]
fn thinking_without_a_summary_shows_nothing_of_it() {
    // Claude thought though the request did not ask: an item, with no text and nothing sealed.
    let mut m = machine(json!({"model": "gpt-4o", "input": "Weather?",
        "tools": [{"type": "function", "name": "get_weather"}]}));
    let events = run(
        &mut m,
        vec![
            think("The user wants "),
            think("the weather."),
            signature("sig_1"),
            call(0, Some(("toolu_a", "get_weather")), "{}"),
            finish(FinishReason::ToolCalls),
        ],
        None,
    );
    assert_eq!(
        types(&events)[2..],
        [
            "response.output_item.added",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(
        events[3]["item"],
        json!({"type": "reasoning", "id": "rs_1", "summary": []})
    );
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains("the weather"), "thinking leaked: {all}");
}

#[test]
fn two_thinking_blocks_are_two_items_and_the_summary_shows_each() {
    let mut m = machine(json!({"model": "gpt-4o", "input": "x",
        "reasoning": {"summary": "detailed"}, "include": ["reasoning.encrypted_content"],
        "tools": [{"type": "function", "name": "f"}]}));
    let events = run(
        &mut m,
        vec![
            think("First."),
            signature("sig_1"),
            think("Second."),
            signature("sig_2"),
            call(0, Some(("toolu_a", "f")), "{}"),
            finish(FinishReason::ToolCalls),
        ],
        None,
    );
    let out = &events.last().unwrap()["response"]["output"];
    assert_eq!(out[0]["summary"][0]["text"], "First.");
    assert_eq!(out[1]["summary"][0]["text"], "Second.");
    assert_eq!(out[2]["type"], "function_call");
    let second = key()
        .open(out[1]["encrypted_content"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        (second.thinking.as_str(), second.signature.as_str()),
        ("Second.", "sig_2")
    );
    let summaries = types(&events)
        .iter()
        .filter(|t| **t == "response.reasoning_summary_part.done")
        .count();
    assert_eq!(summaries, 2);
}

#[test]
fn asked_for_reasoning_without_thinking_still_gets_an_item_first() {
    for summary in [json!(null), json!("auto")] {
        let mut m = machine(json!({"model": "gpt-4o", "input": "x",
            "reasoning": {"effort": "low", "summary": summary}}));
        let events = run(&mut m, vec![text("Hi"), finish(FinishReason::Stop)], None);
        assert_eq!(
            types(&events)[2..5],
            [
                "response.output_item.added",
                "response.output_item.done",
                "response.output_item.added",
            ]
        );
        assert_eq!(
            events[3]["item"],
            json!({"type": "reasoning", "id": "rs_1", "summary": []})
        );
        assert_eq!(events[4]["item"]["type"], "message");
    }
    // An empty answer too.
    let mut m = machine(json!({"model": "gpt-4o", "input": "x", "reasoning": {"effort": "low"}}));
    let events = run(&mut m, vec![finish(FinishReason::Stop)], None);
    assert_eq!(
        events.last().unwrap()["response"]["output"][0]["type"],
        "reasoning"
    );
    // Not asked, not thought: no item.
    let mut m = plain();
    let events = run(&mut m, vec![text("Hi")], None);
    assert_eq!(
        events.last().unwrap()["response"]["output"][0]["type"],
        "message"
    );
}

#[test]
fn a_failure_mid_thinking_keeps_what_was_thought_unsealed() {
    let mut m = machine(json!({"model": "gpt-4o", "input": "x",
        "reasoning": {"summary": "auto"}, "include": ["reasoning.encrypted_content"]}));
    let events = run(
        &mut m,
        vec![think("Half a tho")],
        Some(ChatError::internal("boom")),
    );
    let r = &events.last().unwrap()["response"];
    assert_eq!(r["status"], "failed");
    assert_eq!(r["output"][0]["summary"][0]["text"], "Half a tho");
    assert!(
        r["output"][0].get("encrypted_content").is_none(),
        "no signature, nothing to seal"
    );
}
