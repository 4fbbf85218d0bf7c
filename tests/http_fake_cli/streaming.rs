//! Streaming: chunk order, usage chunk, no buffering, stop sequences, unicode.

use super::*;

// ------------------------------------------------------------------------------------------
// 2. Streaming
// ------------------------------------------------------------------------------------------

/// Checks what every stream must satisfy: OpenAI-valid chunks sharing id, created and model,
/// the role first, one `finish_reason` on the last choice chunk. Returns the choice chunks.
pub(crate) fn assert_well_formed_stream(chunks: &[Value], model: &str) -> Vec<Value> {
    assert!(!chunks.is_empty(), "no chunks");
    for chunk in chunks {
        assert_valid("CreateChatCompletionStreamResponse", chunk);
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], chunks[0]["id"], "ids differ: {chunk}");
        assert_eq!(
            chunk["created"], chunks[0]["created"],
            "created differs: {chunk}"
        );
        assert_eq!(chunk["model"], model, "{chunk}");
    }
    assert!(
        chunks[0]["id"]
            .as_str()
            .expect("string id")
            .starts_with("chatcmpl-")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let with_choices: Vec<Value> = chunks
        .iter()
        .filter(|c| !c["choices"].as_array().expect("choices array").is_empty())
        .cloned()
        .collect();
    let (last, rest) = with_choices.split_last().expect("a chunk with choices");
    assert_eq!(last["choices"][0]["finish_reason"], "stop", "{last}");
    for chunk in rest {
        assert!(chunk["choices"][0]["finish_reason"].is_null(), "{chunk}");
        assert!(chunk["choices"][0]["delta"].get("role").is_none() || chunk == &chunks[0]);
    }
    with_choices
}

#[tokio::test]
pub(crate) async fn stream_sends_role_then_content_over_several_chunks_then_stop_then_done() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, headers, events) = post_sse(
            &completions(&fake),
            &stream_body("gpt-4o", "[[words:5]]", false),
        )
        .await;
        assert_eq!(status, 200, "{}", fake.gw.stderr());
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let chunks = chunks(&events);
        let choice_chunks = assert_well_formed_stream(&chunks, "gpt-4o");
        assert_eq!(choice_chunks.len(), chunks.len(), "no usage chunk unasked");
        assert_eq!(content_of(&chunks), "w1 w2 w3 w4 w5");
        let content_chunks = chunks
            .iter()
            .filter(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .is_some_and(|t| !t.is_empty())
            })
            .count();
        assert_eq!(content_chunks, 5, "one chunk per word");
        for chunk in &chunks {
            assert!(chunk.get("usage").is_none(), "usage key unasked: {chunk}");
        }
    })
    .await;
}

#[tokio::test]
pub(crate) async fn stream_include_usage_adds_a_final_usage_chunk() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, _, events) = post_sse(
            &completions(&fake),
            &stream_body("gpt-3.5-turbo", "[[words:5]] [[cache_read:3]]", true),
        )
        .await;
        assert_eq!(status, 200);
        let chunks = chunks(&events);
        let choice_chunks = assert_well_formed_stream(&chunks, "gpt-3.5-turbo");
        assert_eq!(choice_chunks.len() + 1, chunks.len());
        let (last, rest) = chunks.split_last().unwrap();
        assert_eq!(last["choices"], json!([]), "{last}");
        let usage = &last["usage"];
        assert_eq!(usage["completion_tokens"], 5, "{usage}");
        assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 3);
        assert!(usage["prompt_tokens"].as_u64().unwrap() > 3);
        assert_eq!(
            usage["total_tokens"].as_u64().unwrap(),
            usage["prompt_tokens"].as_u64().unwrap() + 5
        );
        for chunk in rest {
            assert!(
                chunk.get("usage").is_some_and(Value::is_null),
                "usage must be null before the last chunk: {chunk}"
            );
        }
        assert_eq!(content_of(&chunks), "w1 w2 w3 w4 w5");
    })
    .await;
}

#[tokio::test]
pub(crate) async fn stream_tokens_are_not_buffered() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, _, events) = post_sse(
            &completions(&fake),
            &stream_body("gpt-4o", "[[words:4]] [[delay_ms:200]]", false),
        )
        .await;
        assert_eq!(status, 200);
        let times: Vec<Instant> = events
            .iter()
            .filter(|e| {
                serde_json::from_str::<Value>(&e.data).is_ok_and(|c| {
                    c["choices"][0]["delta"]["content"]
                        .as_str()
                        .is_some_and(|t| !t.is_empty())
                })
            })
            .map(|e| e.at)
            .collect();
        assert_eq!(times.len(), 4, "one chunk per word");
        // The fake waits 200 ms before each word: passed through, they arrive ~600 ms apart.
        let spread = times[3] - times[0];
        assert!(
            spread >= Duration::from_millis(500),
            "content arrived within {spread:?}: buffered"
        );
        for pair in times.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_millis(100), "{times:?}");
        }
    })
    .await;
}

#[tokio::test]
pub(crate) async fn stream_of_thinking_shows_only_the_answer() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, _, events) = post_sse(
            &completions(&fake),
            &stream_body("gpt-4o", "[[thinking]] [[reply:Four.]]", true),
        )
        .await;
        assert_eq!(status, 200);
        let chunks = chunks(&events);
        assert_well_formed_stream(&chunks, "gpt-4o");
        assert_eq!(content_of(&chunks), "Four.");
        let usage = &chunks.last().unwrap()["usage"];
        assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 11);
    })
    .await;
}

#[tokio::test]
pub(crate) async fn stream_of_a_cut_answer_finishes_with_length() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, _, events) = post_sse(
            &completions(&fake),
            &stream_body("gpt-4o", "[[words:3]] [[max_tokens_stop]]", true),
        )
        .await;
        assert_eq!(status, 200);
        let chunks = chunks(&events);
        for chunk in &chunks {
            assert_valid("CreateChatCompletionStreamResponse", chunk);
        }
        assert_eq!(content_of(&chunks), "w1 w2 w3");
        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "length", "{finish}");
        assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 3);
    })
    .await;
}

#[tokio::test]
pub(crate) async fn stop_sequences_cut_the_answer_and_end_the_run() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let mut body = chat_body("gpt-4o", "STOPMARK [[words:6]]");
        body["stop"] = json!(["w4", "never"]);
        let (status, _, reply) = post_json(&completions(&fake), &body).await;
        assert_eq!(status, 200, "{reply}");
        assert_valid("CreateChatCompletionResponse", &reply);
        assert_eq!(reply["choices"][0]["message"]["content"], "w1 w2 w3 ");
        assert_eq!(reply["choices"][0]["finish_reason"], "stop");
        assert!(reply["usage"]["completion_tokens"].as_u64().unwrap() > 0);
        assert_cleaned_up(&fake, &run_with(&fake, "STOPMARK").unwrap()).await;

        body["stream"] = json!(true);
        let (status, _, events) = post_sse(&completions(&fake), &body).await;
        assert_eq!(status, 200);
        let chunks = chunks(&events);
        assert_well_formed_stream(&chunks, "gpt-4o");
        assert_eq!(content_of(&chunks), "w1 w2 w3 ");
    })
    .await;
}

#[tokio::test]
pub(crate) async fn unicode_survives_both_pipes() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let text = "héllo wörld — 日本語 🌍";
        let reply = format!("[[reply:{text}]]");
        let (status, _, body) = post_json(&completions(&fake), &chat_body("gpt-4o", &reply)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["choices"][0]["message"]["content"], text);
        let (status, _, events) =
            post_sse(&completions(&fake), &stream_body("gpt-4o", &reply, false)).await;
        assert_eq!(status, 200);
        assert_eq!(content_of(&chunks(&events)), text);
    })
    .await;
}
