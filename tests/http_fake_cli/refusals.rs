//! Requests refused before any CLI runs.

use super::*;

// ------------------------------------------------------------------------------------------
// 4a. Errors: requests refused before any CLI runs
// ------------------------------------------------------------------------------------------

#[tokio::test]
pub(crate) async fn malformed_and_mistyped_bodies_name_the_problem() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let url = completions(&fake);

        let (status, body) = post_raw(&url, "{not json").await;
        assert_error((status, &body), 400, None, Some("invalid_json"));
        assert_eq!(body["error"]["type"], "invalid_request_error");

        let (status, body) = post_raw(&url, r#"{"model":"gpt-4o"}"#).await;
        assert_error((status, &body), 400, Some("messages"), None);
        assert!(message_of(&body).contains("messages"), "{body}");

        let bad_max = json!({"model": "gpt-4o", "max_tokens": "lots",
                             "messages": [{"role": "user", "content": "hi"}]});
        let (status, _, body) = post_json(&url, &bad_max).await;
        assert_error((status, &body), 400, Some("max_tokens"), None);

        let bad_role =
            json!({"model": "gpt-4o", "messages": [{"role": "wizard", "content": "hi"}]});
        let (status, _, body) = post_json(&url, &bad_role).await;
        assert_error((status, &body), 400, Some("messages[0].role"), None);
        assert!(message_of(&body).contains("wizard"), "{body}");

        assert!(fake.runs().is_empty(), "no CLI for a refused request");
    })
    .await;
}

#[tokio::test]
pub(crate) async fn requests_claude_cannot_serve_are_refused() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let url = completions(&fake);

        let (status, _, body) = post_json(&url, &chat_body("gpt-9-ultra", "hi")).await;
        assert_error((status, &body), 404, Some("model"), Some("model_not_found"));
        assert!(message_of(&body).contains("gpt-9-ultra"), "{body}");

        let ends_with_assistant = json!({"model": "gpt-4o", "messages": [
            {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]});
        let (status, _, body) = post_json(&url, &ends_with_assistant).await;
        assert_error((status, &body), 400, Some("messages"), None);

        let remote_image = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is it?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]});
        let (status, _, body) = post_json(&url, &remote_image).await;
        assert_error(
            (status, &body),
            400,
            Some("messages[0].content[1].image_url"),
            Some("invalid_image_url"),
        );

        let mut logprobs = chat_body("gpt-4o", "hi");
        logprobs["logprobs"] = json!(true);
        let (status, _, body) = post_json(&url, &logprobs).await;
        assert_error(
            (status, &body),
            400,
            Some("logprobs"),
            Some("unsupported_parameter"),
        );

        assert!(fake.runs().is_empty(), "no CLI for a refused request");
    })
    .await;
}

#[tokio::test]
pub(crate) async fn refusals_are_real_statuses_when_streaming_too() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let url = completions(&fake);
        let response = client()
            .post(&url)
            .json(&stream_body("gpt-9-ultra", "hi", false))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 404);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let body: Value = response.json().await.unwrap();
        assert_error((404, &body), 404, Some("model"), Some("model_not_found"));
        assert!(fake.runs().is_empty());
    })
    .await;
}

#[tokio::test]
pub(crate) async fn strict_params_refuses_what_claude_cannot_honour() {
    bounded(async {
        let fake = FakeCliGateway::start(&["--strict-params"]).await;
        let mut body = chat_body("gpt-4o", "hi");
        body["temperature"] = json!(0.2);
        let (status, _, body) = post_json(&completions(&fake), &body).await;
        assert_error(
            (status, &body),
            400,
            Some("temperature"),
            Some("unsupported_parameter"),
        );
        assert!(message_of(&body).contains("--strict-params"), "{body}");
        assert!(fake.runs().is_empty());
    })
    .await;
}

#[tokio::test]
pub(crate) async fn without_strict_params_ignored_params_are_reported_in_a_header() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let mut body = chat_body("gpt-4o", "hi");
        body["temperature"] = json!(0.2);
        body["seed"] = json!(7);
        let (status, headers, reply) = post_json(&completions(&fake), &body).await;
        assert_eq!(status, 200, "{reply}");
        assert_valid("CreateChatCompletionResponse", &reply);
        assert_eq!(headers["x-ignored-params"], "temperature, seed");

        body["stream"] = json!(true);
        let (status, headers, events) = post_sse(&completions(&fake), &body).await;
        assert_eq!(status, 200);
        assert_eq!(headers["x-ignored-params"], "temperature, seed");
        assert_eq!(content_of(&chunks(&events)), "Echo: hi");
    })
    .await;
}

#[tokio::test]
pub(crate) async fn unknown_routes_and_methods_get_openai_errors() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, body) = get_json(&fake.gw.url("/v1/nothing-here")).await;
        assert_error((status, &body), 404, None, Some("unknown_url"));
        let (status, body) = get_json(&fake.gw.url("/v1/chat/completions")).await;
        assert_eq!(status, 405, "{body}");
        assert_valid("ErrorResponse", &body);
    })
    .await;
}

#[tokio::test]
pub(crate) async fn oversized_bodies_are_refused_with_413() {
    bounded(async {
        let fake = FakeCliGateway::start(&["--max-body-bytes", "2000"]).await;
        let big = chat_body("gpt-4o", &"x".repeat(5000));
        let (status, body) = post_raw(&completions(&fake), big.to_string()).await;
        assert_error((status, &body), 413, None, Some("payload_too_large"));
        assert!(fake.runs().is_empty());
    })
    .await;
}
