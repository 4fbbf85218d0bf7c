//! Non-streaming completions: valid bodies, usage, request ids.

use super::*;

// ------------------------------------------------------------------------------------------
// 1. Non-streaming completions
// ------------------------------------------------------------------------------------------

#[tokio::test]
pub(crate) async fn completion_is_a_valid_openai_response_echoing_the_model() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, headers, body) =
            post_json(&completions(&fake), &chat_body("gpt-4o", "Hello there")).await;
        assert_eq!(status, 200, "{body}\n{}", fake.gw.stderr());
        assert_valid("CreateChatCompletionResponse", &body);
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        assert_eq!(body["object"], "chat.completion");
        assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert_eq!(body["model"], "gpt-4o");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!((body["created"].as_i64().unwrap() - now).abs() < 60);
        let choices = body["choices"].as_array().unwrap();
        assert_eq!(choices.len(), 1);
        assert_eq!(choices[0]["index"], 0);
        assert_eq!(choices[0]["message"]["role"], "assistant");
        assert_eq!(choices[0]["message"]["content"], "Echo: Hello there");
        assert_eq!(choices[0]["finish_reason"], "stop");
        assert!(headers.get("x-ignored-params").is_none());
    })
    .await;
}

#[tokio::test]
pub(crate) async fn completion_usage_reports_prompt_completion_and_cached_tokens() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let text = "Count these [[words:5]] [[cache_read:7]]";
        let (status, _, body) = post_json(&completions(&fake), &chat_body("gpt-4o", text)).await;
        assert_eq!(status, 200, "{body}");
        assert_valid("CreateChatCompletionResponse", &body);
        assert_eq!(body["choices"][0]["message"]["content"], "w1 w2 w3 w4 w5");
        let usage = &body["usage"];
        // The fake bills len(text)/4 + 1 fresh input tokens and one output token per delta;
        // OpenAI's prompt_tokens include cache reads.
        let fresh = (text.len() / 4 + 1) as u64;
        assert_eq!(usage["prompt_tokens"].as_u64(), Some(fresh + 7), "{usage}");
        assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 7);
        assert_eq!(usage["completion_tokens"], 5);
        assert_eq!(usage["total_tokens"].as_u64(), Some(fresh + 7 + 5));
        assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 0);
        assert!(usage.get("estimated").is_none(), "real numbers: {usage}");
    })
    .await;
}

#[tokio::test]
pub(crate) async fn thinking_is_counted_as_reasoning_tokens_and_not_shown() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, _, body) = post_json(
            &completions(&fake),
            &chat_body("gpt-4o", "[[thinking]] [[reply:Four.]]"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_valid("CreateChatCompletionResponse", &body);
        assert_eq!(body["choices"][0]["message"]["content"], "Four.");
        // The fake's thinking text is 47 characters, estimated as 25/4 + 22/4 = 11 tokens.
        let details = &body["usage"]["completion_tokens_details"];
        assert_eq!(details["reasoning_tokens"], 11, "{}", body["usage"]);
    })
    .await;
}

#[tokio::test]
pub(crate) async fn max_tokens_stop_finishes_with_length() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, _, body) = post_json(
            &completions(&fake),
            &chat_body("gpt-4o", "[[words:3]] [[max_tokens_stop]]"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_valid("CreateChatCompletionResponse", &body);
        assert_eq!(body["choices"][0]["message"]["content"], "w1 w2 w3");
        assert_eq!(body["choices"][0]["finish_reason"], "length");
    })
    .await;
}

#[tokio::test]
pub(crate) async fn request_id_header_is_set_and_echoed() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let url = completions(&fake);
        let (status, headers, _) = post_json(&url, &chat_body("gpt-4o", "Hi")).await;
        assert_eq!(status, 200);
        let generated = headers["x-request-id"].to_str().unwrap();
        assert!(!generated.is_empty());

        let mine = [("x-request-id", "req-test-42")];
        let (status, headers, _) = post_with_headers(&url, &chat_body("gpt-4o", "Hi"), &mine).await;
        assert_eq!(status, 200);
        assert_eq!(headers["x-request-id"], "req-test-42");
        // Errors and streams carry it too.
        let (status, headers, _) =
            post_with_headers(&url, &chat_body("no-such-model", "Hi"), &mine).await;
        assert_eq!(status, 404);
        assert_eq!(headers["x-request-id"], "req-test-42");
        let (status, headers, text) =
            post_with_headers(&url, &stream_body("gpt-4o", "Hi", false), &mine).await;
        assert_eq!(status, 200);
        assert_eq!(headers["x-request-id"], "req-test-42");
        assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    })
    .await;
}
