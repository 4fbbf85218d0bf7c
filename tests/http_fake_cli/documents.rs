//! Documents and redacted thinking on the fake CLI: a PDF and a text document reach the CLI's
//! stdin as native `document` blocks from every dialect (Messages `document`, chat completions
//! `file`, Responses `input_file`); what cannot be honoured (URL sources, citations, `file_id`,
//! other media types, a document over the size limit) is a 400 naming its place before any run;
//! Claude's `redacted_thinking` comes back whole (streamed and not) and, sent back, is replayed
//! natively in its assistant turn with the model it is bound to.

use super::*;

/// `%PDF-1.4` and an end-of-file marker, base64.
const PDF_B64: &str = "JVBERi0xLjQKJSVFT0YK";

/// The content blocks of the user line marked `marker` that a run got on stdin (a process
/// serves several requests).
fn user_blocks(run: &Value, marker: &str) -> Vec<Value> {
    let lines = run["stdin"].as_array().into_iter().flatten();
    let mut line = lines.filter(|l| l["type"] == "user" && l.to_string().contains(marker));
    line.next()
        .and_then(|l| l["message"]["content"].as_array().cloned())
        .unwrap_or_default()
}

fn lines_blocks(run: &Value, kind: &str) -> Vec<Value> {
    run["stdin"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["type"] == kind)
        .flat_map(|l| {
            l["message"]["content"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

#[tokio::test]
pub(crate) async fn documents_reach_the_cli_natively_from_every_dialect() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        // Messages: a PDF with title and context, and a text source.
        let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 256, "messages": [
            {"role": "user", "content": [
                {"type": "document", "title": "Report", "context": "Q3",
                 "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_B64}},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"}},
                {"type": "text", "text": "DOCMSG summarise"}]}]});
        let (status, _, text) = post_with_headers(&fake.gw.url("/v1/messages"), &body, &[]).await;
        assert_eq!(status, 200, "{text}");
        let run = run_with(&fake, "DOCMSG").expect("the run");
        let blocks = user_blocks(&run, "DOCMSG");
        assert_eq!(
            blocks[..2],
            [
                json!({"type": "document", "source": {"type": "base64",
                       "media_type": "application/pdf", "data": PDF_B64},
                       "title": "Report", "context": "Q3"}),
                json!({"type": "document", "source": {"type": "text",
                       "media_type": "text/plain", "data": "notes"}}),
            ],
            "{run}"
        );

        // Chat completions: a `file` part with file_data, named by its filename.
        let chat = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": [
            {"type": "file", "file": {"filename": "a.pdf",
                                      "file_data": format!("data:application/pdf;base64,{PDF_B64}")}},
            {"type": "text", "text": "DOCCHAT read"}]}]});
        let (status, _, text) = post_with_headers(&completions(&fake), &chat, &[]).await;
        assert_eq!(status, 200, "{text}");
        let run = run_with(&fake, "DOCCHAT").expect("the run");
        assert_eq!(
            user_blocks(&run, "DOCCHAT")[0],
            json!({"type": "document", "source": {"type": "base64",
                   "media_type": "application/pdf", "data": PDF_B64}, "title": "a.pdf"}),
            "{run}"
        );

        // Responses: an `input_file` with a base64 text file.
        let responses = json!({"model": "gpt-4o", "input": [{"role": "user", "content": [
            {"type": "input_file", "filename": "n.txt", "file_data": "data:text/plain;base64,aGVsbG8="},
            {"type": "input_text", "text": "DOCRESP read"}]}]});
        let (status, _, text) =
            post_with_headers(&fake.gw.url("/v1/responses"), &responses, &[]).await;
        assert_eq!(status, 200, "{text}");
        let run = run_with(&fake, "DOCRESP").expect("the run");
        assert_eq!(
            user_blocks(&run, "DOCRESP")[0],
            json!({"type": "document", "source": {"type": "text",
                   "media_type": "text/plain", "data": "hello"}, "title": "n.txt"}),
            "{run}"
        );
    })
    .await;
}

#[tokio::test]
pub(crate) async fn documents_that_cannot_be_honoured_are_400s_naming_their_place() {
    bounded(async {
        let fake = FakeCliGateway::start(&["--max-image-bytes", "64"]).await;
        let messages = fake.gw.url("/v1/messages");
        let big = "A".repeat(200);
        for (doc, param) in [
            (json!({"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}),
             "source.type"),
            (json!({"type": "document", "citations": {"enabled": true},
                    "source": {"type": "text", "media_type": "text/plain", "data": "x"}}),
             "citations.enabled"),
            (json!({"type": "document",
                    "source": {"type": "base64", "media_type": "application/msword", "data": PDF_B64}}),
             "application/msword"),
            (json!({"type": "document",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": big}}),
             "limit is 64 bytes"),
        ] {
            let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 256, "messages": [
                {"role": "user", "content": [doc, {"type": "text", "text": "DOCBAD"}]}]});
            let (status, _, text) = post_with_headers(&messages, &body, &[]).await;
            assert_eq!(status, 400, "{text}");
            let err: Value = serde_json::from_str(&text).expect("JSON");
            assert_eq!(err["error"]["type"], "invalid_request_error", "{err}");
            assert!(text.contains(param), "{param}: {text}");
        }
        // Chat completions: a file_id names its place, and so does a document over the limit.
        for (file, param, code) in [
            (json!({"file_id": "file-abc"}), "messages[0].content[0].file.file_id", "unsupported_parameter"),
            (json!({"file_data": format!("data:application/pdf;base64,{big}")}),
             "messages[0].content[0].source.data", "document_too_large"),
        ] {
            let chat = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": [
                {"type": "file", "file": file}, {"type": "text", "text": "DOCBAD"}]}]});
            let (status, _, text) = post_with_headers(&completions(&fake), &chat, &[]).await;
            let body: Value = serde_json::from_str(&text).expect("JSON");
            assert_error((status, &body), 400, Some(param), Some(code));
        }
        assert!(run_with(&fake, "DOCBAD").is_none(), "a refused request ran");
    })
    .await;
}

#[tokio::test]
pub(crate) async fn redacted_thinking_comes_back_whole_and_is_replayed_natively() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let url = fake.gw.url("/v1/messages");
        let question = json!({"role": "user", "content": "REDACT1 hi [[redacted_thinking]]"});
        let mut b = json!({"model": "claude-sonnet-4-5", "max_tokens": 4096,
            "thinking": {"type": "enabled", "budget_tokens": 2048}, "messages": [question]});
        let (status, _, text) = post_with_headers(&url, &b, &[]).await;
        assert_eq!(status, 200, "{text}");
        let m: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(m["content"][0]["type"], "redacted_thinking", "{m}");
        let data = m["content"][0]["data"].as_str().expect("data").to_string();
        assert!(data.starts_with("redacted_fake_"), "{m}");
        assert_eq!(m["content"][1]["type"], "text", "{m}");

        b["stream"] = json!(true);
        let (status, _, raw) = post_with_headers(&url, &b, &[]).await;
        assert_eq!(status, 200, "{raw}");
        let start = raw
            .split("\n\n")
            .find(|f| f.contains("content_block_start"))
            .expect("a block start");
        assert!(start.contains(r#""type":"redacted_thinking""#), "{raw}");
        assert!(start.contains(r#""data":"redacted_fake_"#), "{raw}");

        let history = json!([question,
            {"role": "assistant", "content": [
                {"type": "redacted_thinking", "data": data},
                {"type": "text", "text": "Hello."}]},
            {"role": "user", "content": "REDACT2 more"}]);
        let again = json!({"model": "claude-sonnet-4-5", "max_tokens": 4096,
            "thinking": {"type": "enabled", "budget_tokens": 2048}, "messages": history});
        let (status, _, text) = post_with_headers(&url, &again, &[]).await;
        assert_eq!(status, 200, "{text}");
        let run = run_with(&fake, "REDACT2").expect("the run");
        let said: Vec<&Value> = run["stdin"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|l| l["type"] == "assistant")
            .collect();
        assert_eq!(said.len(), 1, "{run}");
        assert_eq!(
            said[0]["message"]["content"][0],
            json!({"type": "redacted_thinking", "data": data}),
            "{run}"
        );
        // Bound to its model: the CLI replays it only in a turn naming the model it runs.
        assert_eq!(said[0]["message"]["model"], "claude-sonnet-4-5", "{run}");
        assert_eq!(lines_blocks(&run, "assistant").len(), 2);
    })
    .await;
}
