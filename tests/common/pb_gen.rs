//! proptest generators of `CreateChatCompletionRequest` params, shared by the gRPC fuzz test
//! (`grpc_inputs.rs`, over a socket) and the in-process properties (`properties_grpc.rs`): half
//! plausible requests with an odd corner, half wild ones (random roles, content and JSON text,
//! enum values out of range, huge and empty fields).

use claude_gateway::grpc::pb;
use proptest::prelude::*;

pub fn text(t: &str) -> pb::ContentPart {
    pb::ContentPart {
        part: Some(pb::content_part::Part::Text(t.into())),
    }
}

pub fn user(t: &str) -> pb::ChatMessage {
    pb::ChatMessage {
        role: pb::Role::User as i32,
        content: vec![text(t)],
        ..Default::default()
    }
}

pub fn tool(name: &str, parameters_json: &str) -> pb::Tool {
    pb::Tool {
        function: Some(pb::FunctionDefinition {
            name: name.into(),
            parameters_json: parameters_json.into(),
            ..Default::default()
        }),
    }
}

/// Text of every size class: empty, short (ASCII, Unicode, control characters), and huge.
pub fn any_text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => Just(String::new()),
        6 => "[a-zA-Z0-9_ .-]{1,12}",
        3 => any::<String>(),
        1 => (1usize..200_000).prop_map(|n| "x".repeat(n)),
        1 => Just("[[words:2]]".to_string()),
    ]
    .boxed()
}

/// JSON-ish text: objects, non-objects and garbage.
pub fn json_text() -> BoxedStrategy<String> {
    prop_oneof![
        Just(String::new()),
        Just("[1,2]".to_string()),
        Just("{\"type\":\"object\"}".to_string()),
        Just("{\"type\":\"array\"}".to_string()),
        Just("{\"properties\":{\"a\":{\"type\":12}}}".to_string()),
        Just("null".to_string()),
        Just("\"s\"".to_string()),
        Just("{oops".to_string()),
        Just("{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}".to_string()),
        any::<String>(),
    ]
    .boxed()
}

/// Enum values in and out of range.
pub fn any_enum() -> BoxedStrategy<i32> {
    prop_oneof![4 => 0..6i32, 1 => any::<i32>()].boxed()
}

pub fn any_name() -> BoxedStrategy<String> {
    prop_oneof![
        Just("f".to_string()),
        Just("get_weather".to_string()),
        any_text()
    ]
    .boxed()
}

pub fn content_part() -> BoxedStrategy<pb::ContentPart> {
    prop_oneof![
        4 => any_text().prop_map(|t| pb::ContentPart { part: Some(pb::content_part::Part::Text(t)) }),
        1 => Just(pb::ContentPart { part: None }),
        1 => (prop_oneof![
                Just("data:image/png;base64,iVBORw0KGgo=".to_string()),
                Just("data:image/png;base64,@@".to_string()),
                Just("https://127.0.0.1:1/x.png".to_string()),
                any_text(),
            ], any_enum())
            .prop_map(|(url, detail)| pb::ContentPart {
                part: Some(pb::content_part::Part::ImageUrl(pb::ImageUrl { url, detail })),
            }),
    ]
    .boxed()
}

pub fn tool_call() -> BoxedStrategy<pb::ToolCall> {
    (
        prop_oneof![Just("t1".to_string()), any_text()],
        proptest::option::of((any_name(), json_text())),
    )
        .prop_map(|(id, function)| pb::ToolCall {
            id,
            function: function.map(|(name, arguments)| pb::FunctionCall { name, arguments }),
        })
        .boxed()
}

pub fn message() -> BoxedStrategy<pb::ChatMessage> {
    (
        any_enum(),
        proptest::collection::vec(content_part(), 0..3),
        any_text(),
        proptest::collection::vec(tool_call(), 0..2),
        prop_oneof![Just("t1".to_string()), any_text()],
    )
        .prop_map(
            |(role, content, name, tool_calls, tool_call_id)| pb::ChatMessage {
                role,
                content,
                name,
                tool_calls,
                tool_call_id,
            },
        )
        .boxed()
}

pub fn function() -> BoxedStrategy<pb::Tool> {
    proptest::option::of((any_name(), any_text(), json_text(), any::<Option<bool>>()))
        .prop_map(|f| pb::Tool {
            function: f.map(|(name, description, parameters_json, strict)| {
                pb::FunctionDefinition {
                    name,
                    description,
                    parameters_json,
                    strict,
                }
            }),
        })
        .boxed()
}

/// Half the calls: well-formed requests with an odd corner or two (a tool, a schema, stop
/// sequences, images, history), most of which the fake CLI answers.
pub fn plausible_params() -> BoxedStrategy<pb::ChatCompletionParams> {
    let tool = (
        prop_oneof![Just("f".to_string()), "[a-z_]{1,10}"],
        prop_oneof![
            4 => Just(r#"{"type":"object","properties":{"city":{"type":"string"}}}"#.to_string()),
            2 => Just(String::new()),
            1 => json_text(),
        ],
    )
        .prop_map(|(name, schema)| tool(&name, &schema));
    let message = prop_oneof![
        4 => "[a-zA-Z ]{1,20}".prop_map(|t| user(&t)),
        1 => "[a-zA-Z ]{1,20}".prop_map(|t| pb::ChatMessage {
            role: pb::Role::System as i32,
            content: vec![text(&t)],
            ..Default::default()
        }),
        1 => "[a-zA-Z ]{1,20}".prop_map(|t| pb::ChatMessage {
            role: pb::Role::Assistant as i32,
            content: vec![text(&t)],
            ..Default::default()
        }),
        1 => content_part().prop_map(|p| pb::ChatMessage {
            role: pb::Role::User as i32,
            content: vec![text("What is this?"), p],
            ..Default::default()
        }),
    ];
    (
        prop_oneof![Just("gpt-4o"), Just("sonnet"), Just("haiku")],
        proptest::collection::vec(message, 0..3),
        proptest::collection::vec(tool, 0..2),
        proptest::collection::vec("[a-zA-Z.\n]{1,8}", 0..3),
        proptest::option::of(1..3u32),
        proptest::option::of(1..200u32),
        prop_oneof![
            3 => Just(pb::ResponseFormatType::Unspecified as i32),
            1 => Just(pb::ResponseFormatType::JsonObject as i32)
        ],
    )
        .prop_map(
            |(model, mut messages, tools, stop, n, max_tokens, format)| {
                messages.push(user("[[words:2]]"));
                pb::ChatCompletionParams {
                    model: model.into(),
                    messages,
                    tools,
                    stop,
                    n,
                    max_tokens,
                    response_format: Some(pb::ResponseFormat {
                        r#type: format,
                        json_schema: None,
                    }),
                    ..Default::default()
                }
            },
        )
        .boxed()
}

pub fn params() -> BoxedStrategy<pb::ChatCompletionParams> {
    prop_oneof![plausible_params(), wild_params()].boxed()
}

/// The other half: every field random, enum values out of range, huge and empty texts.
pub fn wild_params() -> BoxedStrategy<pb::ChatCompletionParams> {
    let tool_choice = proptest::option::of(prop_oneof![
        any_enum().prop_map(|m| pb::ToolChoice {
            choice: Some(pb::tool_choice::Choice::Mode(m))
        }),
        any_name().prop_map(|n| pb::ToolChoice {
            choice: Some(pb::tool_choice::Choice::FunctionName(n))
        }),
        Just(pb::ToolChoice { choice: None }),
    ]);
    let response_format = proptest::option::of(
        (any_enum(), proptest::option::of((any_text(), json_text()))).prop_map(
            |(r#type, schema)| pb::ResponseFormat {
                r#type,
                json_schema: schema.map(|(name, schema_json)| pb::JsonSchemaFormat {
                    name,
                    schema_json,
                    ..Default::default()
                }),
            },
        ),
    );
    let sampling = proptest::option::of(
        (
            proptest::option::of(any::<f64>()),
            proptest::option::of(any::<bool>()),
            proptest::option::of(any::<u32>()),
            proptest::collection::vec(any_text(), 0..2),
        )
            .prop_map(
                |(temperature, logprobs, top_logprobs, other)| pb::SamplingParams {
                    temperature,
                    logprobs,
                    top_logprobs,
                    other,
                    ..Default::default()
                },
            ),
    );
    let head = (
        prop_oneof![
            4 => Just("gpt-4o".to_string()),
            1 => Just("sonnet".to_string()),
            1 => Just("claude-sonnet-4-5".to_string()),
            1 => any_text(),
        ],
        proptest::collection::vec(message(), 0..4),
        proptest::collection::vec(function(), 0..3),
        tool_choice,
        proptest::option::of(any::<bool>()),
        response_format,
    );
    let tail = (
        proptest::collection::vec(any_text(), 0..6),
        proptest::option::of(prop_oneof![0..12u32, any::<u32>()]),
        proptest::option::of(prop_oneof![0..64u32, any::<u32>()]),
        sampling,
        prop_oneof![
            3 => Just(String::new()),
            1 => Just("high".to_string()),
            1 => any_text()
        ],
        proptest::option::of(response_turn()),
        proptest::option::of(prop_oneof![1000..1100u32, any::<u32>()]),
    );
    (head, tail)
        .prop_map(
            |(
                (model, mut messages, tools, tool_choice, parallel_tool_calls, response_format),
                (stop, n, max_tokens, sampling, reasoning_effort, response, thinking_budget_tokens),
            )| {
                // Most requests end with a user message, so many get past validation to the CLI.
                messages.push(user("[[words:2]]"));
                pb::ChatCompletionParams {
                    model,
                    messages,
                    tools,
                    tool_choice,
                    parallel_tool_calls,
                    response_format,
                    stop,
                    n,
                    max_tokens,
                    session_id: String::new(),
                    metadata: Default::default(),
                    sampling,
                    reasoning_effort,
                    response,
                    thinking_budget_tokens,
                }
            },
        )
        .boxed()
}

/// A stored-response turn: mostly well-formed fresh ids, some invalid ids, previous ids that
/// name nothing, random documents.
fn response_turn() -> impl Strategy<Value = pb::ResponseTurn> {
    (
        prop_oneof![
            4 => "[a-z0-9]{8,24}".prop_map(|s| format!("resp_{s}")),
            1 => any_text(),
        ],
        prop_oneof![
            3 => Just(String::new()),
            1 => Just("resp_missing".to_string()),
            1 => any_text(),
        ],
        any::<bool>(),
        any::<bool>(),
        any_text(),
    )
        .prop_map(
            |(id, previous_response_id, store, leading_instructions, document)| pb::ResponseTurn {
                id,
                previous_response_id,
                store,
                leading_instructions,
                document,
            },
        )
}
