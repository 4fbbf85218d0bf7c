//! The CLI or Anthropic failing: statuses, in-stream errors, cleanup.

use super::*;

// ------------------------------------------------------------------------------------------
// 4b. Errors: the CLI or Anthropic failing
// ------------------------------------------------------------------------------------------

#[tokio::test]
pub(crate) async fn missing_cli_binary_is_503_saying_how_to_install() {
    bounded(async {
        let gw = Gateway::builder()
            .args(["--claude-bin", "/nonexistent/claude"])
            .start()
            .await;
        let url = gw.url("/v1/chat/completions");
        let (status, _, body) = post_json(&url, &chat_body("gpt-4o", "hi")).await;
        assert_error((status, &body), 503, None, Some("cli_not_found"));
        assert!(
            message_of(&body).contains("npm install -g @anthropic-ai/claude-code"),
            "{body}"
        );
        let response = client()
            .post(&url)
            .json(&stream_body("gpt-4o", "hi", false))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 503, "not a 200 stream");
        let body: Value = response.json().await.unwrap();
        assert_error((503, &body), 503, None, Some("cli_not_found"));
    })
    .await;
}

/// How one `[[api_error:S]]` of the fake must surface.
struct ApiErrorCase {
    directive: &'static str,
    status: u16,
    code: &'static str,
    message_has: &'static str,
}

const API_ERRORS: &[ApiErrorCase] = &[
    ApiErrorCase {
        directive: "429",
        status: 429,
        code: "rate_limit_exceeded",
        message_has: "rate-limited",
    },
    ApiErrorCase {
        directive: "401",
        status: 502,
        code: "upstream_auth_failed",
        message_has: "not authenticated",
    },
    ApiErrorCase {
        directive: "403",
        status: 502,
        code: "upstream_auth_failed",
        message_has: "not authenticated",
    },
    ApiErrorCase {
        directive: "529",
        status: 503,
        code: "overloaded",
        message_has: "overloaded",
    },
    ApiErrorCase {
        directive: "500",
        status: 502,
        code: "upstream_error",
        message_has: "500",
    },
    ApiErrorCase {
        directive: "conn",
        status: 502,
        code: "upstream_error",
        message_has: "Connection refused",
    },
];

#[tokio::test]
pub(crate) async fn anthropic_errors_map_to_statuses_and_the_process_is_cleaned_up() {
    bounded(async {
        let (fake, work) = start_with_work_dir(&[]).await;
        let url = completions(&fake);
        for case in API_ERRORS {
            let marker = format!("APIERR-{}", case.directive);
            let text = format!("{marker} [[api_error:{}]]", case.directive);
            let (status, headers, body) = post_json(&url, &chat_body("gpt-4o", &text)).await;
            assert_error((status, &body), case.status, None, Some(case.code));
            assert!(
                message_of(&body).contains(case.message_has),
                "{}: {body}",
                case.directive
            );
            if case.status == 429 {
                // The fake's api_retry says retry_delay_ms 2000.
                assert_eq!(headers["retry-after"], "2");
            } else {
                assert!(headers.get("retry-after").is_none());
            }
            let run = run_with(&fake, &marker).unwrap();
            assert_cleaned_up(&fake, &run).await;
        }
        assert!(std::fs::read_dir(work.path()).unwrap().next().is_none());
    })
    .await;
}

#[tokio::test]
pub(crate) async fn anthropic_errors_before_the_first_token_are_real_statuses_when_streaming() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let url = completions(&fake);
        for (directive, status, code) in [
            ("429", 429, "rate_limit_exceeded"),
            ("401", 502, "upstream_auth_failed"),
            ("529", 503, "overloaded"),
        ] {
            let text = format!("[[api_error:{directive}]]");
            let response = client()
                .post(&url)
                .json(&stream_body("gpt-4o", &text, true))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), status, "{directive}");
            if status == 429 {
                assert_eq!(response.headers()["retry-after"], "2");
            }
            let body: Value = response.json().await.unwrap();
            assert_error((status, &body), status, None, Some(code));
        }
    })
    .await;
}

#[tokio::test]
pub(crate) async fn crash_before_output_is_502_and_cleaned_up() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let url = completions(&fake);
        let (status, _, body) =
            post_json(&url, &chat_body("gpt-4o", "CRASH1 [[crash_before_output]]")).await;
        assert_error((status, &body), 502, None, Some("cli_failed"));
        assert_cleaned_up(&fake, &run_with(&fake, "CRASH1").unwrap()).await;

        let response = client()
            .post(&url)
            .json(&stream_body(
                "gpt-4o",
                "CRASH2 [[crash_before_output]]",
                false,
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 502, "not a 200 stream");
        let body: Value = response.json().await.unwrap();
        assert_error((502, &body), 502, None, Some("cli_failed"));
        assert_cleaned_up(&fake, &run_with(&fake, "CRASH2").unwrap()).await;
    })
    .await;
}

#[tokio::test]
pub(crate) async fn hang_times_out_with_504_and_the_process_is_killed() {
    bounded(async {
        let fake = FakeCliGateway::start(&["--request-timeout-secs", "2"]).await;
        let started = Instant::now();
        let (status, _, body) =
            post_json(&completions(&fake), &chat_body("gpt-4o", "HANG1 [[hang]]")).await;
        let took = started.elapsed();
        assert_error((status, &body), 504, None, Some("timeout"));
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_millis(4500),
            "timed out after {took:?}"
        );
        assert_cleaned_up(&fake, &run_with(&fake, "HANG1").unwrap()).await;

        // Streaming, still before the first token: a real 504.
        let started = Instant::now();
        let response = client()
            .post(completions(&fake))
            .json(&stream_body("gpt-4o", "HANG2 [[hang]]", false))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 504);
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(4500),
            "timed out after {took:?}"
        );
        let body: Value = response.json().await.unwrap();
        assert_error((504, &body), 504, None, Some("timeout"));
        assert_cleaned_up(&fake, &run_with(&fake, "HANG2").unwrap()).await;
    })
    .await;
}

#[tokio::test]
pub(crate) async fn timeout_kills_a_cli_that_ignores_sigterm() {
    bounded(async {
        let fake = FakeCliGateway::start(&["--request-timeout-secs", "2"]).await;
        let url = completions(&fake);
        let request = tokio::spawn(async move {
            post_json(&url, &chat_body("gpt-4o", "NOTERM1 [[ignore_sigterm]]")).await
        });
        let run = wait_for_run(&fake, "NOTERM1").await;
        eventually("the fake CLI to ignore SIGTERM", || {
            ignores_sigterm(run_pid(&run))
        })
        .await;
        let (status, _, body) = request.await.unwrap();
        assert_error((status, &body), 504, None, Some("timeout"));
        assert_cleaned_up(&fake, &run).await;
    })
    .await;
}

/// Splits a stream that failed after it started into (chunks before the error, the error).
pub(crate) fn split_in_stream_error(events: &[SseEvent]) -> (Vec<Value>, Value) {
    let mut all = chunks(events);
    let error = all.pop().expect("an error event before [DONE]");
    assert!(
        error.get("error").is_some(),
        "last event is not an error: {error}"
    );
    assert_valid("ErrorResponse", &error);
    (all, error)
}

#[tokio::test]
pub(crate) async fn crash_mid_stream_is_an_in_stream_error_after_some_content() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, _, events) = post_sse(
            &completions(&fake),
            &stream_body(
                "gpt-4o",
                "MIDCRASH one two three [[crash_mid_stream]]",
                true,
            ),
        )
        .await;
        assert_eq!(status, 200);
        let (chunks, error) = split_in_stream_error(&events);
        for chunk in &chunks {
            assert_valid("CreateChatCompletionStreamResponse", chunk);
            assert!(chunk["choices"][0]["finish_reason"].is_null(), "{chunk}");
        }
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(
            content_of(&chunks),
            "Echo: MIDCRASH ",
            "the two deltas sent"
        );
        assert_eq!(error["error"]["code"], "cli_failed", "{error}");
        assert_eq!(error["error"]["type"], "server_error");
        assert_cleaned_up(&fake, &run_with(&fake, "MIDCRASH").unwrap()).await;

        // Not streaming, the same crash is a 502.
        let (status, _, body) = post_json(
            &completions(&fake),
            &chat_body("gpt-4o", "MIDCRASH2 [[crash_mid_stream]]"),
        )
        .await;
        assert_error((status, &body), 502, None, Some("cli_failed"));
    })
    .await;
}

#[tokio::test]
pub(crate) async fn timeout_mid_stream_is_an_in_stream_error_after_some_content() {
    bounded(async {
        let fake = FakeCliGateway::start(&["--request-timeout-secs", "2"]).await;
        let started = Instant::now();
        let (status, _, events) = post_sse(
            &completions(&fake),
            &stream_body("gpt-4o", "MIDHANG a b c [[hang_after:2]]", false),
        )
        .await;
        let took = started.elapsed();
        assert_eq!(status, 200);
        assert!(took < Duration::from_millis(4500), "ended after {took:?}");
        let (chunks, error) = split_in_stream_error(&events);
        for chunk in &chunks {
            assert_valid("CreateChatCompletionStreamResponse", chunk);
        }
        assert_eq!(content_of(&chunks), "Echo: MIDHANG ");
        assert_eq!(error["error"]["code"], "timeout", "{error}");
        assert_cleaned_up(&fake, &run_with(&fake, "MIDHANG").unwrap()).await;
    })
    .await;
}
