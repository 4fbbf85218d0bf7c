//! `POST /v1/responses/input_tokens` on the fake CLI: a valid Responses body is refused with 501
//! `not_implemented` in OpenAI's shape (the claude CLI gives no exact count), with
//! `x-should-retry: false` so the OpenAI SDKs do not retry it; an invalid one gets the same 400
//! or 404 as `POST /v1/responses`; no CLI process is started and no slot of the budget is used.

use super::*;

#[tokio::test]
async fn input_tokens_are_refused_with_a_501_and_start_no_process() {
    bounded(async {
        // One process in the budget: a count that took it would show as a queued request.
        let fake = FakeCliGateway::start(&["--max-processes", "1"]).await;
        let url = fake.gw.url("/v1/responses/input_tokens");
        let body = json!({
            "model": "gpt-4o",
            "instructions": "Be brief.",
            "input": [
                {"role": "user", "content": "My name is Ada. #count-1"},
                {"role": "assistant", "content": [{"type": "output_text", "text": "Hi Ada."}]},
                {"role": "user", "content": [{"type": "input_text", "text": "Count this."}]},
            ],
            "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
            "stream": true,
        });
        let (status, headers, text) = post_with_headers(&url, &body, &[]).await;
        let answer: Value = serde_json::from_str(&text).expect("JSON");
        assert_error((status, &answer), 501, None, Some("not_implemented"));
        assert_eq!(answer["error"]["type"], "invalid_request_error");
        assert!(message_of(&answer).contains("get_context_usage"), "{answer}");
        assert_eq!(headers["x-should-retry"], "false");
        assert_eq!(headers["content-type"], "application/json");

        // Invalid requests are refused as `POST /v1/responses` refuses them.
        let (status, answer) = post_raw(&url, r#"{"model":"gpt-9","input":"x"}"#).await;
        assert_error((status, &answer), 404, Some("model"), Some("model_not_found"));
        let (status, answer) = post_raw(&url, r#"{"model":"gpt-4o","input":[{"type":"nope"}]}"#).await;
        assert_eq!(status, 400, "{answer}");
        assert_valid("ErrorResponse", &answer);
        let (status, answer) = post_raw(&url, "{not json").await;
        assert_error((status, &answer), 400, None, Some("invalid_json"));

        assert!(run_with(&fake, "#count-1").is_none(), "a count ran the CLI");
        let (_, metrics) = get_text(&fake.gw.url("/metrics")).await;
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with("claude_gateway_http_requests_total{")
                    && l.contains("route=\"/v1/responses/input_tokens\"")
                    && l.contains("status=\"501\"")
            })
            .unwrap_or_else(|| panic!("no 501 count in\n{metrics}"));
        assert!(line.ends_with(" 1"), "{line}");
        assert!(
            metrics.lines().any(|l| l == "claude_gateway_processes{state=\"serving\"} 0"),
            "{metrics}"
        );
    })
    .await;
}

async fn get_text(url: &str) -> (u16, String) {
    let response = client().get(url).send().await.expect("request sent");
    (
        response.status().as_u16(),
        response.text().await.expect("body"),
    )
}
