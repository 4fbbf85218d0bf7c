//! Protobuf ⇄ domain, the one place where generated types meet the domain: `request` for what
//! clients send, `response` for what they get back, `quota` for the usage windows a worker
//! reports with its load.

mod quota;
mod request;
mod response;

pub use quota::{quota_from_pb, quota_to_pb};

pub use request::{chat_params, chat_request, message, message_to_pb};
pub use response::{
    completion_from_pb, completion_to_pb, event_to_pb, events_from_pb, finish_from_pb,
    finish_to_pb, model_from_pb, model_to_pb, usage_from_pb, usage_to_pb,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::types as d;
    use crate::grpc::pb;

    #[test]
    fn a_request_survives_the_round_trip() {
        let req = d::ChatRequest {
            model: "gpt-4o".into(),
            messages: vec![
                d::Message::text(d::Role::System, "Be brief."),
                d::Message {
                    role: d::Role::User,
                    content: vec![
                        d::ContentPart::Text("Hi".into()),
                        d::ContentPart::ImageUrl {
                            url: "data:image/png;base64,AA==".into(),
                            detail: d::ImageDetail::High,
                        },
                        d::ContentPart::Document(d::Document {
                            source: d::DocumentSource::Pdf {
                                data: "JVBERg==".into(),
                            },
                            title: Some("Report".into()),
                            context: Some("Q3".into()),
                        }),
                        d::ContentPart::Document(d::Document {
                            source: d::DocumentSource::Text {
                                data: "notes".into(),
                            },
                            title: None,
                            context: None,
                        }),
                    ],
                    name: Some("ada".into()),
                    tool_calls: vec![],
                    tool_call_id: None,
                },
                d::Message {
                    role: d::Role::Assistant,
                    content: vec![
                        d::ContentPart::Thinking {
                            thinking: "Let me think.".into(),
                            signature: "sig_1".into(),
                            model: "claude-sonnet-5-5".into(),
                        },
                        d::ContentPart::RedactedThinking {
                            data: "EmwK".into(),
                            model: "claude-sonnet-5-5".into(),
                        },
                    ],
                    name: None,
                    tool_calls: vec![d::ToolCall {
                        id: "t1".into(),
                        name: "f".into(),
                        arguments: "{}".into(),
                    }],
                    tool_call_id: None,
                },
                d::Message {
                    tool_call_id: Some("t1".into()),
                    ..d::Message::text(d::Role::Tool, "42")
                },
            ],
            tools: vec![d::Tool {
                name: "f".into(),
                description: Some("does f".into()),
                parameters: Some(
                    serde_json::json!({"type":"object","properties":{"n":{"type":"integer","minimum":1}}}),
                ),
                strict: Some(true),
            }],
            tool_choice: Some(d::ToolChoice::Function("f".into())),
            parallel_tool_calls: Some(false),
            response_format: d::ResponseFormat::JsonSchema(d::JsonSchemaFormat {
                name: "s".into(),
                description: None,
                schema: serde_json::json!({"type":"object"}),
                strict: Some(true),
            }),
            stop: vec!["END".into()],
            n: Some(2),
            max_tokens: Some(10),
            session_id: Some("sess".into()),
            metadata: [("k".to_string(), "v".to_string())].into(),
            sampling: d::SamplingParams {
                temperature: Some(0.5),
                seed: Some(3),
                user: Some("u".into()),
                other: vec!["store".into()],
                ..Default::default()
            },
            reasoning_effort: Some("high".into()),
            thinking_budget: Some(2048),
            response: Some(d::ResponseTurn {
                id: "resp_1".into(),
                previous: Some("resp_0".into()),
                store: true,
                instructions: true,
                document: r#"{"echo":{}}"#.into(),
            }),
        };
        assert_eq!(chat_request(Some(chat_params(req.clone()))).unwrap(), req);
    }

    #[test]
    fn a_document_without_a_source_is_refused_by_its_place() {
        let m = pb::ChatMessage {
            role: pb::Role::User as i32,
            content: vec![pb::ContentPart {
                part: Some(pb::content_part::Part::Document(pb::Document {
                    source: None,
                    title: None,
                    context: None,
                })),
            }],
            ..Default::default()
        };
        let e = message(3, m).unwrap_err();
        assert_eq!(e.param(), Some("messages[3].content[0].document.source"));
    }

    #[test]
    fn events_survive_the_round_trip() {
        let meta = d::CompletionMeta {
            id: "c".into(),
            created: 1,
            model: "m".into(),
            ignored_params: vec!["seed".into()],
        };
        let events = vec![
            d::ChatEvent::Role { index: 0 },
            d::ChatEvent::Reasoning {
                index: 0,
                delta: d::ReasoningDelta::Text("Let me think.".into()),
            },
            d::ChatEvent::Reasoning {
                index: 0,
                delta: d::ReasoningDelta::Signature {
                    signature: "sig_1".into(),
                    model: "claude-sonnet-5-5".into(),
                },
            },
            d::ChatEvent::Reasoning {
                index: 0,
                delta: d::ReasoningDelta::Redacted {
                    data: "EmwK".into(),
                    model: "claude-sonnet-5-5".into(),
                },
            },
            d::ChatEvent::Text {
                index: 0,
                text: "hi".into(),
            },
            d::ChatEvent::ToolCall {
                index: 1,
                call: d::ToolCallDelta {
                    index: 0,
                    id: Some("t".into()),
                    name: Some("f".into()),
                    arguments: "{".into(),
                },
            },
            d::ChatEvent::Finish {
                index: 0,
                reason: d::FinishReason::Length,
            },
            d::ChatEvent::Finish {
                index: 1,
                reason: d::FinishReason::StopSequence(2),
            },
            d::ChatEvent::Usage(d::Usage {
                prompt_tokens: 5,
                completion_tokens: 2,
                cached_tokens: 1,
                cache_creation_tokens: 2,
                reasoning_tokens: 0,
                estimated: true,
                cost_usd: 0.5,
            }),
        ];
        for (i, e) in events.into_iter().enumerate() {
            let msg = event_to_pb(&meta, e.clone(), i == 0);
            assert_eq!(msg.ignored_params.is_empty(), i != 0);
            assert_eq!(events_from_pb(msg), vec![e]);
        }
    }

    #[test]
    fn bad_json_text_is_invalid_argument() {
        let params = pb::ChatCompletionParams {
            model: "gpt-4o".into(),
            tools: vec![pb::Tool {
                function: Some(pb::FunctionDefinition {
                    name: "f".into(),
                    parameters_json: "{oops".into(),
                    ..Default::default()
                }),
            }],
            ..Default::default()
        };
        let err = chat_request(Some(params)).unwrap_err();
        assert_eq!(err.param(), Some("tools[0].function.parameters_json"));
    }
}
