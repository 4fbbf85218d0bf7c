//! Unit tests of `validate.rs`.

use super::*;
use crate::chat::limits::{MAX_STOP_CHARS, MAX_TOOL_DESCRIPTION_CHARS};
use crate::chat::types::{JsonSchemaFormat, Message, Role};

fn req(messages: Vec<Message>) -> ChatRequest {
    ChatRequest {
        model: "gpt-4o".into(),
        messages,
        ..ChatRequest::default()
    }
}

fn tool(name: &str) -> Tool {
    Tool {
        name: name.into(),
        description: None,
        parameters: None,
        strict: None,
    }
}

#[test]
fn system_history_and_prompt_are_split() {
    let valid = validate(
        req(vec![
            Message::text(Role::System, "Be brief."),
            Message::text(Role::User, "My name is Ada."),
            Message::text(Role::Assistant, "Hi Ada."),
            Message::text(Role::Developer, "Answer in English."),
            Message::text(Role::User, "What is my name?"),
        ]),
        &ValidationConfig::default(),
    )
    .unwrap();
    assert_eq!(valid.model.cli_model, "sonnet");
    assert_eq!(
        valid.system_prompt.as_deref(),
        Some("Be brief.\n\nAnswer in English.")
    );
    assert_eq!(valid.history.len(), 2);
    assert_eq!(valid.history[1].role, TurnRole::Assistant);
    assert_eq!(
        valid.prompt.blocks,
        vec![Block::Text("What is my name?".into())]
    );
    assert_eq!(valid.n, 1);
    assert_eq!(valid.output, OutputMode::Text);
}

#[test]
fn last_message_must_be_user_or_tool() {
    let err = validate(
        req(vec![
            Message::text(Role::User, "Hi"),
            Message::text(Role::Assistant, "Hello"),
        ]),
        &ValidationConfig::default(),
    )
    .unwrap_err();
    assert_eq!(err.param(), Some("messages"));
    let err = validate(req(vec![]), &ValidationConfig::default()).unwrap_err();
    assert_eq!(err.param(), Some("messages"));
}

#[test]
fn tool_choice_shapes_what_is_offered() {
    let mut r = req(vec![Message::text(Role::User, "Hi")]);
    r.tools = vec![tool("a"), tool("b")];
    let cfg = ValidationConfig::default();
    let v = validate(r.clone(), &cfg).unwrap();
    assert_eq!(v.tools.len(), 2);
    assert_eq!(v.tool_mode.required, None);
    r.tool_choice = Some(ToolChoice::None);
    assert!(validate(r.clone(), &cfg).unwrap().tools.is_empty());
    r.tool_choice = Some(ToolChoice::Required);
    assert_eq!(
        validate(r.clone(), &cfg).unwrap().tool_mode.required,
        Some(RequiredTool::Any)
    );
    r.tool_choice = Some(ToolChoice::Function("b".into()));
    let v = validate(r.clone(), &cfg).unwrap();
    assert_eq!(v.tools.len(), 1);
    assert_eq!(v.tools[0].name, "b");
    r.tool_choice = Some(ToolChoice::Function("zzz".into()));
    assert_eq!(
        validate(r.clone(), &cfg).unwrap_err().param(),
        Some("tool_choice")
    );
    r.tool_choice = None;
    r.tools = vec![tool("bad name")];
    assert_eq!(
        validate(r.clone(), &cfg).unwrap_err().param(),
        Some("tools[0].function.name")
    );
    r.tools = vec![tool("a"), tool("a")];
    assert!(validate(r, &cfg).is_err());
}

#[test]
fn response_formats_are_checked() {
    let mut r = req(vec![Message::text(Role::User, "Hi")]);
    let cfg = ValidationConfig::default();
    r.response_format = ResponseFormat::JsonObject;
    assert_eq!(
        validate(r.clone(), &cfg).unwrap().output,
        OutputMode::JsonObject
    );
    let schema = |s: serde_json::Value| {
        ResponseFormat::JsonSchema(JsonSchemaFormat {
            name: "x".into(),
            description: None,
            schema: s,
            strict: Some(true),
        })
    };
    r.response_format =
        schema(serde_json::json!({"type":"object","properties":{"a":{"type":"string"}}}));
    assert!(matches!(
        validate(r.clone(), &cfg).unwrap().output,
        OutputMode::JsonSchema { .. }
    ));
    r.response_format = schema(serde_json::json!({"type":"array"}));
    assert!(validate(r.clone(), &cfg).is_err());
    r.response_format = schema(serde_json::json!({"type":"object","properties":{"a":{"type":12}}}));
    assert_eq!(
        validate(r, &cfg).unwrap_err().param(),
        Some("response_format.json_schema.schema")
    );
}

#[test]
fn sampling_params_are_reported_or_refused() {
    let mut r = req(vec![Message::text(Role::User, "Hi")]);
    r.sampling = SamplingParams {
        temperature: Some(0.2),
        seed: Some(7),
        other: vec!["store".into()],
        ..SamplingParams::default()
    };
    let valid = validate(r.clone(), &ValidationConfig::default()).unwrap();
    assert_eq!(valid.ignored_params, vec!["temperature", "seed", "store"]);
    let strict = ValidationConfig {
        strict_params: true,
        ..ValidationConfig::default()
    };
    let err = validate(r.clone(), &strict).unwrap_err();
    assert_eq!(err.param(), Some("temperature"));
    r.sampling.logprobs = Some(true);
    let err = validate(r, &ValidationConfig::default()).unwrap_err();
    assert_eq!(err.param(), Some("logprobs"));
}

#[test]
fn message_count_and_prompt_size_are_limited() {
    let cfg = ValidationConfig {
        max_messages: 2,
        max_prompt_tokens: 5,
        ..ValidationConfig::default()
    };
    let three = req(vec![
        Message::text(Role::User, "a"),
        Message::text(Role::Assistant, "b"),
        Message::text(Role::User, "c"),
    ]);
    assert_eq!(
        validate(three, &cfg).unwrap_err().code(),
        Some("too_many_messages")
    );
    let long = req(vec![Message::text(
        Role::User,
        "one two three four five six seven",
    )]);
    let err = validate(long, &cfg).unwrap_err();
    assert_eq!(err.code(), Some("context_length_exceeded"));
    assert!(err.to_string().contains("at most 5"), "{err}");
}

#[test]
fn tool_and_stop_limits_name_the_field_the_limit_and_what_was_sent() {
    let cfg = ValidationConfig::default();
    let base = req(vec![Message::text(Role::User, "Hi")]);
    let err_of = |r: ChatRequest| validate(r, &cfg).unwrap_err();

    let mut r = base.clone();
    r.stop = vec!["ok".into(), "s".repeat(MAX_STOP_CHARS + 1)];
    let err = err_of(r.clone());
    assert_eq!(err.param(), Some("stop[1]"));
    assert!(err.to_string().contains("257 characters"), "{err}");
    assert!(
        err.to_string().contains(&MAX_STOP_CHARS.to_string()),
        "{err}"
    );
    r.stop = vec!["é".repeat(MAX_STOP_CHARS)];
    assert!(
        validate(r.clone(), &cfg).is_ok(),
        "the limit counts characters"
    );
    r.stop = vec![String::new()];
    assert_eq!(err_of(r).param(), Some("stop[0]"));

    let mut r = base.clone();
    r.metadata = (0..17).map(|i| (format!("k{i}"), "v".into())).collect();
    assert_eq!(err_of(r.clone()).param(), Some("metadata"));
    r.metadata = [("k".to_string(), "v".repeat(513))].into();
    assert!(err_of(r).to_string().contains("value of 513"));

    let mut r = base.clone();
    r.tools = (0..=MAX_TOOLS).map(|i| tool(&format!("f{i}"))).collect();
    assert_eq!(err_of(r).param(), Some("tools"));

    let mut r = base.clone();
    r.tools = vec![tool(&"n".repeat(10_000))];
    let err = err_of(r);
    assert_eq!(err.param(), Some("tools[0].function.name"));
    assert!(err.to_string().contains("10000 characters"), "{err}");
    assert!(err.to_string().len() < 300, "{err}");

    let mut r = base.clone();
    let mut described = tool("f");
    described.description = Some("d".repeat(MAX_TOOL_DESCRIPTION_CHARS + 1));
    r.tools = vec![described];
    assert_eq!(err_of(r).param(), Some("tools[0].function.description"));

    for bad in [
        serde_json::json!([1, 2]),
        serde_json::json!("s"),
        serde_json::json!(null),
        serde_json::json!({"type": "array"}),
    ] {
        let mut r = base.clone();
        let mut t = tool("f");
        t.parameters = Some(bad.clone());
        r.tools = vec![t];
        let err = err_of(r);
        assert_eq!(err.param(), Some("tools[0].function.parameters"), "{bad}");
        assert!(err.to_string().contains("got "), "{err}");
    }
    let mut r = base;
    r.response_format = ResponseFormat::JsonSchema(JsonSchemaFormat {
        name: "x".into(),
        description: None,
        schema: serde_json::json!([1, 2]),
        strict: None,
    });
    let err = err_of(r);
    assert_eq!(err.param(), Some("response_format.json_schema.schema"));
    assert!(err.to_string().contains("an array"), "{err}");
}

#[test]
fn stop_n_and_max_tokens_are_checked() {
    let cfg = ValidationConfig::default();
    let mut r = req(vec![Message::text(Role::User, "Hi")]);
    r.stop = vec!["a".into(), "b".into(), "c".into(), "d".into(), "e".into()];
    assert_eq!(validate(r.clone(), &cfg).unwrap_err().param(), Some("stop"));
    r.stop = vec![];
    r.max_tokens = Some(0);
    assert_eq!(
        validate(r.clone(), &cfg).unwrap_err().param(),
        Some("max_tokens")
    );
    r.max_tokens = None;
    for (n, ok) in [(0, false), (1, true), (10, true), (11, false)] {
        r.n = Some(n);
        assert_eq!(validate(r.clone(), &cfg).is_ok(), ok, "n={n}");
    }
}

#[test]
fn a_thinking_budget_follows_anthropics_rules() {
    let with = |budget: u32, max_tokens: Option<u32>| {
        let mut r = req(vec![Message::text(Role::User, "Hi")]);
        r.thinking_budget = Some(budget);
        r.max_tokens = max_tokens;
        validate(r, &ValidationConfig::default())
    };
    assert_eq!(with(2048, Some(4096)).unwrap().thinking_budget, Some(2048));
    assert_eq!(with(1024, None).unwrap().thinking_budget, Some(1024));
    for (budget, max_tokens, says) in [
        (1023, None, "at least 1024"),
        (4096, Some(4096), "less than `max_tokens`"),
    ] {
        let err = with(budget, max_tokens).unwrap_err();
        assert_eq!(err.param(), Some("thinking_budget_tokens"));
        assert!(err.to_string().contains(says), "{err}");
    }
}
