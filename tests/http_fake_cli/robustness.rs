//! Robustness against a misbehaving CLI.

use super::failures::split_in_stream_error;
use super::streaming::assert_well_formed_stream;
use super::*;

// ------------------------------------------------------------------------------------------
// 5. Robustness against a misbehaving CLI
// ------------------------------------------------------------------------------------------

#[tokio::test]
pub(crate) async fn garbage_and_unknown_stdout_lines_are_skipped() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let text = "[[invalid_json_lines]] [[reply:Still fine.]]";
        let (status, _, body) = post_json(&completions(&fake), &chat_body("gpt-4o", text)).await;
        assert_eq!(status, 200, "{body}");
        assert_valid("CreateChatCompletionResponse", &body);
        assert_eq!(body["choices"][0]["message"]["content"], "Still fine.");
        assert_eq!(body["choices"][0]["finish_reason"], "stop");

        let (status, _, events) =
            post_sse(&completions(&fake), &stream_body("gpt-4o", text, true)).await;
        assert_eq!(status, 200);
        let chunks = chunks(&events);
        assert_well_formed_stream(&chunks, "gpt-4o");
        assert_eq!(content_of(&chunks), "Still fine.");
    })
    .await;
}

#[tokio::test]
pub(crate) async fn a_stderr_flood_does_not_deadlock() {
    bounded(async {
        // Without reuse, so the process ends with its request and its cleanup can be checked.
        let fake = FakeCliGateway::start(&["--reuse-processes=false"]).await;
        let started = Instant::now();
        let (status, _, body) = post_json(
            &completions(&fake),
            &chat_body("gpt-4o", "FLOOD [[stderr_flood]] [[reply:Survived.]]"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["choices"][0]["message"]["content"], "Survived.");
        assert!(started.elapsed() < Duration::from_secs(20));
        assert_cleaned_up(&fake, &run_with(&fake, "FLOOD").unwrap()).await;
    })
    .await;
}

#[tokio::test]
pub(crate) async fn exit_without_result_is_an_error() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, _, body) = post_json(
            &completions(&fake),
            &chat_body("gpt-4o", "NORESULT [[exit_without_result]]"),
        )
        .await;
        assert_error((status, &body), 502, None, Some("cli_failed"));
        assert_cleaned_up(&fake, &run_with(&fake, "NORESULT").unwrap()).await;

        // Streaming: the text went out, then the missing end is reported in the stream.
        let (status, _, events) = post_sse(
            &completions(&fake),
            &stream_body("gpt-4o", "NORESULT2 [[exit_without_result]]", false),
        )
        .await;
        assert_eq!(status, 200);
        let (chunks, error) = split_in_stream_error(&events);
        assert_eq!(
            content_of(&chunks),
            "Echo: NORESULT2 [[exit_without_result]]"
        );
        assert_eq!(error["error"]["code"], "cli_failed", "{error}");
    })
    .await;
}

#[tokio::test]
pub(crate) async fn concurrent_requests_each_get_their_own_answer() {
    bounded(async {
        // Without reuse, so every process ends with its request and the cleanup can be checked.
        let fake = FakeCliGateway::start(&["--reuse-processes=false"]).await;
        let url = completions(&fake);
        let requests = (0..4).map(|i| {
            let url = url.clone();
            async move {
                let text = format!("PAR{i} [[delay_ms:50]]");
                let (status, _, body) = post_json(&url, &chat_body("gpt-4o", &text)).await;
                (status, body, text)
            }
        });
        for (status, body, text) in futures::future::join_all(requests).await {
            assert_eq!(status, 200, "{body}");
            assert_eq!(
                body["choices"][0]["message"]["content"],
                format!("Echo: {text}")
            );
        }
        let pids: std::collections::HashSet<u64> = fake
            .runs()
            .iter()
            .filter_map(|r| r["pid"].as_u64())
            .collect();
        assert_eq!(pids.len(), 4, "one process per request");
        let gateway = fake.gw.pid();
        eventually("all runs cleaned up", || fake_children(gateway).is_empty()).await;
    })
    .await;
}
