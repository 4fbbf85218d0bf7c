//! Cancellation: a client that goes away takes its process with it.

use super::*;

// ------------------------------------------------------------------------------------------
// 6. Cancellation: a client that goes away takes its process with it
// ------------------------------------------------------------------------------------------

#[tokio::test]
pub(crate) async fn dropping_a_stream_mid_answer_kills_the_cli() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let mut sock = raw_request(
            &fake.gw,
            &stream_body("gpt-4o", "CANCEL1 [[hang_after:1]]", false),
        )
        .await;
        // The first content chunk ("Echo: ") has arrived; the CLI now stalls.
        let seen = read_until(&mut sock, r#""content":"Echo: ""#).await;
        assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
        let run = wait_for_run(&fake, "CANCEL1").await;
        hang_up_and_expect_kill(&fake, sock, &run).await;
        // The gateway itself carries on.
        let (status, _, body) = post_json(&completions(&fake), &chat_body("gpt-4o", "after")).await;
        assert_eq!(status, 200);
        assert_eq!(body["choices"][0]["message"]["content"], "Echo: after");
    })
    .await;
}

#[tokio::test]
pub(crate) async fn dropping_a_stream_kills_a_cli_that_ignores_sigterm() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        // This CLI never produces a token, so the response is not committed yet either.
        let sock = raw_request(
            &fake.gw,
            &stream_body("gpt-4o", "CANCEL2 [[ignore_sigterm]]", false),
        )
        .await;
        let run = wait_for_run(&fake, "CANCEL2").await;
        eventually("the fake CLI to ignore SIGTERM", || {
            ignores_sigterm(run_pid(&run))
        })
        .await;
        hang_up_and_expect_kill(&fake, sock, &run).await;
    })
    .await;
}

#[tokio::test]
pub(crate) async fn dropping_a_non_streaming_request_kills_the_cli() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let sock = raw_request(&fake.gw, &chat_body("gpt-4o", "CANCEL3 [[hang]]")).await;
        let run = wait_for_run(&fake, "CANCEL3").await;
        hang_up_and_expect_kill(&fake, sock, &run).await;
    })
    .await;
}
