//! The Responses request conversion: items, tools, formats, and the refusals with their params.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::chat::types::{ContentPart, ImageDetail};
use crate::http::error::parse_json;
use serde_json::json;

fn convert(body: &str) -> Result<Converted, ChatError> {
    create_request(parse_json(body.as_bytes())?, &key())
}

/// One key for the whole test binary, so what one conversion seals another opens.
fn key() -> SealKey {
    static KEY: std::sync::OnceLock<SealKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| SealKey::random().unwrap()).clone()
}

#[test]
fn a_string_input_with_instructions() {
    let c = convert(
        r#"{"model":"gpt-4o","instructions":"Be brief.","input":"Hi","max_output_tokens":9,
            "metadata":{"k":"v"},"temperature":0.2,"truncation":"auto","store":true,"include":[],
            "service_tier":null,
            "reasoning":{"effort":"high","summary":"auto"}}"#,
    )
    .unwrap();
    assert!(!c.stream);
    let r = &c.request;
    assert_eq!(
        r.messages,
        vec![
            Message::text(Role::System, "Be brief."),
            Message::text(Role::User, "Hi")
        ]
    );
    assert_eq!(r.max_tokens, Some(9));
    assert_eq!(r.reasoning_effort.as_deref(), Some("high"));
    assert_eq!(r.sampling.temperature, Some(0.2));
    // `reasoning.summary` is honoured now: no longer reported; `store` is honoured too.
    assert_eq!(r.sampling.other, vec!["truncation"]);
    assert!(c.store && c.instructions);
    assert_eq!(c.previous_response_id, None);
    assert_eq!(c.input, Some(json!("Hi")));
    assert!(c.reasoning.requested && c.reasoning.summary);
    assert!(c.reasoning.seal.is_none(), "include did not ask for it");
    assert_eq!(
        c.echo.reasoning,
        Some(json!({"effort": "high", "summary": "auto"}))
    );
    assert_eq!(c.echo.metadata["k"], "v");
    assert_eq!(c.echo.tool_choice, json!("auto"));
    assert_eq!(c.echo.text, json!({"format": {"type": "text"}}));
}

#[test]
fn items_become_messages_tool_calls_and_tool_results() {
    let c = convert(
        r#"{"model":"gpt-4o","stream":true,"input":[
            {"role":"developer","content":"Use tools."},
            {"type":"message","role":"user","content":[{"type":"input_text","text":"Weather?"},
                {"type":"input_image","image_url":"data:image/png;base64,AAAA","detail":"low"}]},
            {"type":"message","role":"assistant","content":[{"type":"output_text","text":"Checking."}]},
            {"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"},
            {"type":"function_call","call_id":"call_2","name":"get_weather","arguments":"{}"},
            {"type":"function_call_output","call_id":"call_1","output":"sunny"},
            {"type":"function_call_output","call_id":"call_2","output":[{"type":"input_text","text":"rain"}]},
            {"type":"reasoning","id":"rs_1","summary":[]}],
          "tools":[{"type":"function","name":"get_weather","parameters":{"type":"object"},"strict":true}],
          "tool_choice":{"type":"function","name":"get_weather"},"parallel_tool_calls":false}"#,
    )
    .unwrap();
    assert!(c.stream);
    let m = &c.request.messages;
    assert_eq!(m.len(), 5, "{m:#?}");
    assert_eq!(m[0].role, Role::Developer);
    assert_eq!(
        m[1].content[1],
        ContentPart::ImageUrl {
            url: "data:image/png;base64,AAAA".into(),
            detail: ImageDetail::Low
        }
    );
    assert_eq!(m[2].role, Role::Assistant);
    assert_eq!(m[2].joined_text(), "Checking.");
    assert_eq!(m[2].tool_calls.len(), 2);
    assert_eq!(m[2].tool_calls[0].id, "call_1");
    assert_eq!(m[2].tool_calls[0].arguments, "{\"city\":\"Paris\"}");
    assert_eq!(m[3].role, Role::Tool);
    assert_eq!(m[3].tool_call_id.as_deref(), Some("call_1"));
    assert_eq!(m[4].joined_text(), "rain");
    assert_eq!(c.request.sampling.other, vec!["input.reasoning"]);
    assert_eq!(c.request.tools[0].name, "get_weather");
    assert_eq!(c.request.tools[0].strict, Some(true));
    assert_eq!(
        c.request.tool_choice,
        Some(ToolChoice::Function("get_weather".into()))
    );
    assert_eq!(c.request.parallel_tool_calls, Some(false));
    assert!(!c.echo.parallel_tool_calls);
    assert_eq!(c.echo.tools[0]["strict"], true);
}

#[test]
fn text_format_json_schema() {
    let c = convert(
        r#"{"model":"gpt-4o","input":"x","text":{"format":{"type":"json_schema","name":"p",
            "schema":{"type":"object","properties":{"a":{"type":"string"}}},"strict":true}}}"#,
    )
    .unwrap();
    let ResponseFormat::JsonSchema(f) = &c.request.response_format else {
        panic!("{:?}", c.request.response_format)
    };
    assert_eq!(f.name, "p");
    assert_eq!(f.strict, Some(true));
    assert_eq!(c.echo.text["format"]["type"], "json_schema");
    assert_eq!(c.echo.text["format"]["schema"]["type"], "object");
}

#[test]
fn refusals_name_the_field_and_the_reason() {
    let cases = [
        (r#"{"input":"x"}"#, "model", None),
        (
            r#"{"model":"m","input":"x","background":true}"#,
            "background",
            Some("unsupported_parameter"),
        ),
        (
            r#"{"model":"m","input":"x","conversation":"conv_1"}"#,
            "conversation",
            Some("unsupported_parameter"),
        ),
        (
            r#"{"model":"m","input":"x","tools":[{"type":"wizardry"}]}"#,
            "tools[0].type",
            None,
        ),
        (
            r#"{"model":"m","input":"x","tools":[{"type":"namespace","name":"ns","description":"d","tools":[{"type":"function","name":"f"}]},{"type":"function","name":"ns__f"}]}"#,
            "tools[1].name",
            None,
        ),
        (
            r#"{"model":"m","input":"x","tools":[{"type":"function","name":"f"},{"type":"custom","name":"c","format":{"type":"grammar","syntax":"lark"}}]}"#,
            "tools[1].format.definition",
            None,
        ),
        (
            r#"{"model":"m","input":[{"type":"custom_tool_call","call_id":"c1","name":"c"}]}"#,
            "input[0].input",
            None,
        ),
        (r#"{"model":"m","input":5}"#, "input", None),
        (
            r#"{"model":"m","input":[{"type":"message","role":"wizard","content":"x"}]}"#,
            "input[0].role",
            None,
        ),
        (
            r#"{"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_id":"f"}]}]}"#,
            "input[0].content[0].file_id",
            Some("unsupported_content_type"),
        ),
        (
            r#"{"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_data":"data:image/tiff;base64,AA=="}]}]}"#,
            "input[0].content[0].file_data",
            Some("invalid_document_format"),
        ),
        (
            r#"{"model":"m","input":[{"role":"user","content":[{"type":"input_audio"}]}]}"#,
            "input[0].content[0].type",
            Some("unsupported_content_type"),
        ),
        (
            r#"{"model":"m","input":[{"type":"function_call_output","output":"x"}]}"#,
            "input[0].call_id",
            None,
        ),
        (
            r#"{"model":"m","input":[{"type":"item_reference","id":"msg_1"}]}"#,
            "input[0].type",
            Some("unsupported_parameter"),
        ),
        (
            r#"{"model":"m","input":"x","text":{"format":{"type":"yaml"}}}"#,
            "text.format.type",
            None,
        ),
        (
            r#"{"model":"m","input":"x","tool_choice":{"type":"web_search_preview"}}"#,
            "tool_choice.type",
            Some("unsupported_parameter"),
        ),
    ];
    for (body, param, code) in cases {
        let err = convert(body).unwrap_err();
        assert_eq!(err.param(), Some(param), "{body}: {err}");
        assert_eq!(err.code(), code, "{body}: {err}");
    }
}

#[test]
fn hosted_tools_are_not_offered_and_reported_as_ignored() {
    let c = convert(
        r#"{"model":"m","input":"x","tools":[{"type":"web_search","external_web_access":true},
            {"type":"function","name":"f"},{"type":"web_search"},{"type":"file_search"}]}"#,
    )
    .unwrap();
    let names: Vec<&str> = c.request.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["f"]);
    assert_eq!(
        c.request.sampling.other,
        vec!["tools.web_search", "tools.file_search"]
    );
    // The echo lists what Claude could call.
    assert_eq!(c.echo.tools.len(), 1);
    assert_eq!(c.echo.tools[0]["name"], "f");
}

#[test]
fn namespaced_tools_are_offered_under_combined_names_and_their_calls_replay() {
    let c = convert(
        r#"{"model":"m","tools":[
              {"type":"function","name":"exec_command"},
              {"type":"namespace","name":"multi_agent_v1","description":"Sub-agents.",
               "tools":[{"type":"function","name":"spawn_agent","parameters":{"type":"object"}},
                        {"type":"custom","name":"note"}]}],
            "tool_choice":{"type":"function","namespace":"multi_agent_v1","name":"spawn_agent"},
            "input":[{"role":"user","content":"Spawn one"},
                     {"type":"function_call","call_id":"call_1","namespace":"multi_agent_v1",
                      "name":"spawn_agent","arguments":"{}"},
                     {"type":"function_call_output","call_id":"call_1","output":"spawned"},
                     {"type":"custom_tool_call","call_id":"call_2","namespace":"multi_agent_v1",
                      "name":"note","input":"hi"},
                     {"type":"custom_tool_call_output","call_id":"call_2","output":"noted"}]}"#,
    )
    .unwrap();
    let names: Vec<&str> = c.request.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "exec_command",
            "multi_agent_v1__spawn_agent",
            "multi_agent_v1__note"
        ]
    );
    assert_eq!(
        c.request.tool_choice,
        Some(ToolChoice::Function("multi_agent_v1__spawn_agent".into()))
    );
    let calls = &c.request.messages[1];
    assert_eq!(calls.tool_calls[0].name, "multi_agent_v1__spawn_agent");
    assert_eq!(
        c.request.messages[2].tool_call_id.as_deref(),
        Some("call_1")
    );
    assert_eq!(
        c.request.messages[3].tool_calls[0].name,
        "multi_agent_v1__note"
    );
    assert_eq!(
        c.request.messages[3].tool_calls[0].arguments,
        r#"{"input":"hi"}"#
    );
    // The echo keeps the namespace as sent, inner names unchanged.
    assert_eq!(c.echo.tools[1]["type"], "namespace");
    assert_eq!(c.echo.tools[1]["tools"][0]["name"], "spawn_agent");
    assert!(c.request.sampling.other.is_empty());
}

#[test]
fn stored_state_is_asked_for_with_store_and_previous_response_id() {
    let c = convert(r#"{"model":"m","input":"x","store":false,"previous_response_id":"resp_1"}"#)
        .unwrap();
    assert!(!c.store && !c.instructions);
    assert_eq!(c.previous_response_id.as_deref(), Some("resp_1"));
    assert!(c.request.sampling.other.is_empty());
    // An empty id is no id, as the SDKs send it.
    let c = convert(r#"{"model":"m","input":"x","previous_response_id":""}"#).unwrap();
    assert!(c.store);
    assert_eq!(c.previous_response_id, None);
}

#[test]
fn custom_tools_are_functions_with_one_string_field_and_their_items_replay() {
    let c = convert(
        r#"{"model":"m","tools":[{"type":"custom","name":"shell","description":"Runs a command"}],
            "tool_choice":{"type":"custom","name":"shell"},
            "input":[{"role":"user","content":"List files"},
                     {"type":"custom_tool_call","call_id":"call_1","name":"shell","input":"ls -a\n"},
                     {"type":"custom_tool_call_output","call_id":"call_1","output":"a b"}]}"#,
    )
    .unwrap();
    let tool = &c.request.tools[0];
    assert_eq!(tool.name, "shell");
    assert_eq!(tool.description.as_deref(), Some("Runs a command"));
    let params = tool.parameters.as_ref().unwrap();
    assert_eq!(params["properties"]["input"]["type"], "string");
    assert_eq!(
        c.request.tool_choice,
        Some(ToolChoice::Function("shell".into()))
    );
    let call = &c.request.messages[1];
    assert_eq!(call.role, Role::Assistant);
    assert_eq!(call.tool_calls[0].id, "call_1");
    let args: serde_json::Value = serde_json::from_str(&call.tool_calls[0].arguments).unwrap();
    assert_eq!(args, serde_json::json!({"input": "ls -a\n"}));
    let result = &c.request.messages[2];
    assert_eq!(result.role, Role::Tool);
    assert_eq!(result.tool_call_id.as_deref(), Some("call_1"));
    assert_eq!(
        c.echo.tools[0],
        serde_json::json!({"type":"custom","name":"shell","description":"Runs a command"})
    );
}

#[test]
fn sealed_reasoning_items_replay_as_thinking_at_the_start_of_their_turn() {
    use crate::http::responses::seal::SealedThinking;
    let sealed = |model: &str, sig: &str| {
        key()
            .seal(&SealedThinking {
                thinking: format!("thought {sig}"),
                signature: sig.into(),
                model: model.into(),
            })
            .unwrap()
    };
    let body = json!({"model": "gpt-4o", "include": ["reasoning.encrypted_content"], "input": [
        {"role": "user", "content": "Weather?"},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": sealed("claude-a", "s1")},
        {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": sealed("claude-a", "s2")},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "Sunny"},
        {"type": "reasoning", "id": "rs_3", "summary": [{"type": "summary_text", "text": "x"}]},
        {"role": "user", "content": "Thanks"}]});
    let c = convert(&body.to_string()).unwrap();
    let turn = &c.request.messages[1];
    assert_eq!(turn.role, Role::Assistant);
    assert_eq!(
        turn.content,
        vec![
            ContentPart::Thinking {
                thinking: "thought s1".into(),
                signature: "s1".into(),
                model: "claude-a".into()
            },
            ContentPart::Thinking {
                thinking: "thought s2".into(),
                signature: "s2".into(),
                model: "claude-a".into()
            },
            ContentPart::Text("Checking.".into()),
        ]
    );
    assert_eq!(turn.tool_calls[0].id, "c1");
    assert_eq!(c.request.messages.len(), 4, "{:?}", c.request.messages);
    // Items without sealed content are left out and reported; `include` is honoured, so it
    // is not.
    assert_eq!(c.request.sampling.other, vec!["input.reasoning"]);
    assert!(c.reasoning.seal.is_some());
    assert!(
        !c.reasoning.requested,
        "include alone does not ask for reasoning"
    );

    // Altered, foreign or garbage content is refused, naming the item.
    let mut altered = sealed("gpt-4o", "s1");
    altered.insert(10, 'x');
    let foreign = SealKey::random()
        .unwrap()
        .seal(&SealedThinking {
            thinking: "t".into(),
            signature: "s".into(),
            model: "gpt-4o".into(),
        })
        .unwrap();
    for bad in [altered, foreign, "gAAAAABopenai".to_string()] {
        let body = json!({"model": "gpt-4o", "input": [
            {"role": "user", "content": "x"},
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": bad},
            {"role": "assistant", "content": "y"}, {"role": "user", "content": "z"}]});
        let err = convert(&body.to_string()).unwrap_err();
        assert_eq!(err.param(), Some("input[1].encrypted_content"), "{err}");
        assert_eq!(err.code(), Some("invalid_encrypted_content"), "{err}");
    }
    // Other `include` values are reported.
    let c = convert(r#"{"model":"m","input":"x","include":["reasoning.encrypted_content","message.output_text.logprobs"]}"#).unwrap();
    assert_eq!(c.request.sampling.other, vec!["include"]);
    let err = convert(r#"{"model":"m","input":"x","reasoning":{"summary":"long"}}"#).unwrap_err();
    assert_eq!(err.param(), Some("reasoning.summary"));
}
