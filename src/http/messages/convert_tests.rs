use serde_json::{Value, json};

use super::*;
use crate::chat::error::ChatError;

fn convert(body: Value) -> Result<Converted, ChatError> {
    let req: MessagesRequest = serde_json::from_value(body).expect("a request");
    create_request(req)
}

fn base(messages: Value) -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": messages})
}

#[test]
fn system_text_images_and_fields_reach_the_domain() {
    let mut body = base(json!([{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
    ]}]));
    body["system"] = json!([{"type": "text", "text": "Be brief."},
                           {"type": "text", "text": "Be kind.", "cache_control": {"type": "ephemeral"}}]);
    body["stop_sequences"] = json!(["END"]);
    body["temperature"] = json!(0.5);
    body["top_k"] = json!(5);
    body["metadata"] = json!({"user_id": "u1"});
    body["service_tier"] = json!("auto");
    let c = convert(body).unwrap();
    let r = c.request;
    assert_eq!(
        r.messages[0],
        Message::text(Role::System, "Be brief.\n\nBe kind.")
    );
    assert_eq!(r.messages[1].role, Role::User);
    assert_eq!(
        r.messages[1].content,
        vec![
            ContentPart::Text("What is this?".into()),
            ContentPart::ImageUrl {
                url: "data:image/png;base64,AA==".into(),
                detail: ImageDetail::Unspecified
            },
            ContentPart::ImageUrl {
                url: "https://example.com/a.png".into(),
                detail: ImageDetail::Unspecified
            },
        ]
    );
    assert_eq!(r.max_tokens, Some(100));
    assert_eq!(r.stop, vec!["END".to_string()]);
    assert_eq!(r.sampling.temperature, Some(0.5));
    let mut other = r.sampling.other.clone();
    other.sort();
    assert_eq!(
        other,
        vec!["cache_control", "metadata.user_id", "service_tier", "top_k"]
    );
    assert!(!c.stream && !c.thinking);
}

#[test]
fn a_tool_round_trip_becomes_calls_and_tool_messages() {
    let mut body = base(json!([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Call it.", "signature": "sig"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "Sunny"}], "is_error": true},
            {"type": "text", "text": "Thanks"},
        ]},
    ]));
    body["tools"] =
        json!([{"name": "weather", "description": "Weather", "input_schema": {"type": "object"}}]);
    body["tool_choice"] = json!({"type": "any", "disable_parallel_tool_use": true});
    let r = convert(body).unwrap().request;
    assert_eq!(r.tools.len(), 1);
    assert_eq!(r.tools[0].name, "weather");
    assert_eq!(r.tools[0].parameters, Some(json!({"type": "object"})));
    assert_eq!(r.tool_choice, Some(ToolChoice::Required));
    assert_eq!(r.parallel_tool_calls, Some(false));
    let assistant = &r.messages[1];
    assert_eq!(
        assistant.content[0],
        ContentPart::Thinking {
            thinking: "Call it.".into(),
            signature: "sig".into(),
            model: "claude-sonnet-4-5".into()
        }
    );
    assert_eq!(assistant.tool_calls[0].id, "toolu_1");
    assert_eq!(assistant.tool_calls[0].arguments, r#"{"city":"Paris"}"#);
    assert_eq!(r.messages[2].role, Role::Tool);
    assert_eq!(r.messages[2].tool_call_id.as_deref(), Some("toolu_1"));
    assert_eq!(
        r.messages[2].content,
        vec![ContentPart::Text("Sunny".into())]
    );
    assert_eq!(r.messages[3], Message::text(Role::User, "Thanks"));
    assert_eq!(r.sampling.other, vec!["is_error".to_string()]);
}

#[test]
fn thinking_budgets_are_kept_and_map_to_efforts() {
    for (thinking, effort, shown) in [
        (
            json!({"type": "enabled", "budget_tokens": 1024}),
            Some("low"),
            true,
        ),
        (
            json!({"type": "enabled", "budget_tokens": 8000}),
            Some("medium"),
            true,
        ),
        (
            json!({"type": "enabled", "budget_tokens": 32000}),
            Some("high"),
            true,
        ),
        (json!({"type": "adaptive"}), None, true),
        (json!({"type": "disabled"}), None, false),
    ] {
        let mut body = base(json!([{"role": "user", "content": "Hi"}]));
        body["thinking"] = thinking.clone();
        let c = convert(body).unwrap();
        assert_eq!(c.request.reasoning_effort.as_deref(), effort, "{thinking}");
        assert_eq!(c.thinking, shown, "{thinking}");
        let budget = thinking["budget_tokens"].as_u64().map(|b| b as u32);
        assert_eq!(c.request.thinking_budget, budget, "{thinking}");
    }
    let mut body = base(json!([{"role": "user", "content": "Hi"}]));
    body["thinking"] = json!({"type": "enabled"});
    assert_eq!(
        convert(body).unwrap_err().param(),
        Some("thinking.budget_tokens")
    );
}

#[test]
fn documents_and_redacted_thinking_reach_the_domain() {
    let c = convert(base(json!([
        {"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERg=="},
             "title": "Report", "context": "Q3", "citations": {"enabled": false}},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"}},
            {"type": "text", "text": "Compare."}]},
        {"role": "assistant", "content": [
            {"type": "redacted_thinking", "data": "EmwK"},
            {"type": "text", "text": "Done."}]},
        {"role": "user", "content": "Again"}])))
    .unwrap();
    let m = &c.request.messages;
    assert_eq!(
        m[0].content[..2],
        [
            ContentPart::Document(Document {
                source: crate::chat::types::DocumentSource::Pdf {
                    data: "JVBERg==".into()
                },
                title: Some("Report".into()),
                context: Some("Q3".into()),
            }),
            ContentPart::Document(Document {
                source: crate::chat::types::DocumentSource::Text {
                    data: "notes".into()
                },
                title: None,
                context: None,
            }),
        ]
    );
    assert_eq!(
        m[1].content[0],
        ContentPart::RedactedThinking {
            data: "EmwK".into(),
            model: "claude-sonnet-4-5".into(),
        }
    );
}

#[test]
fn what_the_domain_cannot_carry_is_refused_by_name() {
    let mut body = base(json!([{"role": "user", "content": "Hi"}]));
    body["tools"] = json!([{"type": "web_search_20250305", "name": "web_search"}]);
    let e = convert(body).unwrap_err();
    assert_eq!(e.param(), Some("tools[0].type"));
    assert!(e.to_string().contains("web_search_20250305"), "{e}");

    for (source, param) in [
        (
            json!({"type": "url", "url": "https://example.com/a.pdf"}),
            "messages[0].content[0].source.type",
        ),
        (
            json!({"type": "content", "content": [{"type": "text", "text": "x"}]}),
            "messages[0].content[0].source.type",
        ),
        (
            json!({"type": "base64", "media_type": "application/msword", "data": "AA=="}),
            "messages[0].content[0].source.media_type",
        ),
        (
            json!({"type": "text", "media_type": "application/pdf", "data": "x"}),
            "messages[0].content[0].source.media_type",
        ),
    ] {
        let doc =
            base(json!([{"role": "user", "content": [{"type": "document", "source": source}]}]));
        let e = convert(doc).unwrap_err();
        assert_eq!(e.param(), Some(param), "{e}");
    }
    let cited = base(json!([{"role": "user", "content": [{"type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "x"},
        "citations": {"enabled": true}}]}]));
    let e = convert(cited).unwrap_err();
    assert_eq!(e.param(), Some("messages[0].content[0].citations.enabled"));

    let doc_from_claude = base(json!([
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": [{"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}]}]));
    let e = convert(doc_from_claude).unwrap_err();
    assert_eq!(e.param(), Some("messages[1].content[0].type"));

    let role = base(json!([{"role": "robot", "content": "Hi"}]));
    assert_eq!(convert(role).unwrap_err().param(), Some("messages[0].role"));
    let bad_system = base(json!([{"role": "system", "content": [{"type": "image"}]}]));
    assert_eq!(
        convert(bad_system).unwrap_err().param(),
        Some("messages[0].content[0]")
    );
    let choice = {
        let mut b = base(json!([{"role": "user", "content": "Hi"}]));
        b["tool_choice"] = json!({"type": "tool"});
        b
    };
    assert_eq!(
        convert(choice).unwrap_err().param(),
        Some("tool_choice.name")
    );
}

#[test]
fn missing_max_tokens_is_a_parse_error_naming_it() {
    let e = crate::http::error::parse_json::<MessagesRequest>(
        br#"{"model":"claude-sonnet-4-5","messages":[]}"#,
    )
    .unwrap_err();
    assert_eq!(e.param(), Some("max_tokens"));
}

#[test]
fn a_system_entry_in_messages_joins_the_system_prompt_as_claude_code_sends_it() {
    let body = base(json!([
        {"role": "user", "content": "Hello"},
        {"role": "system", "content": [{"type": "text", "text": "ctx one"}, {"type": "text", "text": "ctx two"}],
         "output_config": {"effort": "medium"}}]));
    let converted = convert(body).unwrap();
    let system: Vec<_> = converted
        .request
        .messages
        .iter()
        .filter(|m| m.role == Role::System)
        .map(|m| m.joined_text())
        .collect();
    assert_eq!(system, vec!["ctx one\nctx two".to_string()]);
    let ignored = &converted.request.sampling.other;
    assert!(
        ignored.iter().any(|p| p == "messages[1].output_config"),
        "{ignored:?}"
    );
}
