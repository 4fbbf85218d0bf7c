//! `POST /v1/responses` on the fake CLI: the whole response and the event stream (every event
//! and response checked against OpenAI's schemas, the orderings clients rely on, SSE `event:`
//! names equal to `type`), `max_output_tokens` as an incomplete response, structured output,
//! what reaches the CLI, ignored and refused parameters, and failures before and after the
//! first event.

use super::*;

fn responses(fake: &FakeCliGateway) -> String {
    fake.gw.url("/v1/responses")
}

/// One server-sent event: its `event:` name and its JSON.
struct Sse {
    name: String,
    data: Value,
}

/// POSTs a streaming request; returns the status, headers and events (the body read to its end).
async fn post_stream(url: &str, body: &Value) -> (u16, HeaderMap, Vec<Sse>, String) {
    let response = client().post(url).json(body).send().await.expect("sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let mut events = Vec::new();
    for frame in text.split("\n\n").filter(|f| !f.trim().is_empty()) {
        let mut name = String::new();
        let mut data = String::new();
        for line in frame.lines() {
            if let Some(v) = line.strip_prefix("event: ") {
                name = v.to_string();
            } else if let Some(v) = line.strip_prefix("data: ") {
                data.push_str(v);
            }
        }
        if data.is_empty() {
            continue; // a keep-alive comment
        }
        let data = serde_json::from_str(&data).unwrap_or_else(|_| panic!("not JSON: {data}"));
        events.push(Sse { name, data });
    }
    (status, headers, events, text)
}

fn schema_of(kind: &str) -> &'static str {
    match kind {
        "response.created" => "ResponseCreatedEvent",
        "response.in_progress" => "ResponseInProgressEvent",
        "response.output_item.added" => "ResponseOutputItemAddedEvent",
        "response.content_part.added" => "ResponseContentPartAddedEvent",
        "response.output_text.delta" => "ResponseTextDeltaEvent",
        "response.output_text.done" => "ResponseTextDoneEvent",
        "response.content_part.done" => "ResponseContentPartDoneEvent",
        "response.function_call_arguments.delta" => "ResponseFunctionCallArgumentsDeltaEvent",
        "response.function_call_arguments.done" => "ResponseFunctionCallArgumentsDoneEvent",
        "response.reasoning_summary_part.added" => "ResponseReasoningSummaryPartAddedEvent",
        "response.reasoning_summary_text.delta" => "ResponseReasoningSummaryTextDeltaEvent",
        "response.reasoning_summary_text.done" => "ResponseReasoningSummaryTextDoneEvent",
        "response.reasoning_summary_part.done" => "ResponseReasoningSummaryPartDoneEvent",
        "response.output_item.done" => "ResponseOutputItemDoneEvent",
        "response.completed" => "ResponseCompletedEvent",
        "response.incomplete" => "ResponseIncompleteEvent",
        "response.failed" => "ResponseFailedEvent",
        other => panic!("unexpected event type {other}"),
    }
}

/// What every stream must satisfy: each event valid, named as its type, numbered 0, 1, 2, …,
/// created then in_progress first, one terminal event last. Returns the types.
fn assert_well_formed(events: &[Sse]) -> Vec<String> {
    assert!(events.len() >= 3, "too few events");
    let mut kinds = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let kind = e.data["type"].as_str().expect("a type").to_string();
        assert_eq!(e.name, kind, "SSE event name");
        assert_eq!(e.data["sequence_number"], i as u64, "{}", e.data);
        assert_valid("ResponseStreamEvent", &e.data);
        assert_valid(schema_of(&kind), &e.data);
        if let Some(r) = e.data.get("response") {
            assert_valid("Response", r);
            assert_eq!(r["id"], events[0].data["response"]["id"]);
        }
        kinds.push(kind);
    }
    assert_eq!(kinds[0], "response.created");
    assert_eq!(kinds[1], "response.in_progress");
    let terminal = [
        "response.completed",
        "response.incomplete",
        "response.failed",
    ];
    assert!(
        terminal.contains(&kinds[kinds.len() - 1].as_str()),
        "{kinds:?}"
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| terminal.contains(&k.as_str()))
            .count(),
        1,
        "{kinds:?}"
    );
    kinds
}

fn deltas(events: &[Sse]) -> String {
    events
        .iter()
        .filter(|e| e.data["type"] == "response.output_text.delta")
        .map(|e| e.data["delta"].as_str().expect("delta").to_string())
        .collect()
}

#[tokio::test]
pub(crate) async fn a_whole_response_is_a_valid_response_object() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let body = json!({"model": "gpt-4o", "instructions": "RESPINSTR be brief",
            "input": "RESP1 [[words:3]]", "metadata": {"order": "42"},
            "temperature": 0.5, "truncation": "auto", "store": true});
        let (status, headers, r) = post_json(&responses(&fake), &body).await;
        assert_eq!(status, 200, "{r}");
        assert_valid("Response", &r);
        assert!(r["id"].as_str().unwrap().starts_with("resp_"), "{r}");
        assert_eq!(r["object"], "response");
        assert_eq!(r["status"], "completed");
        assert!(r["completed_at"].as_i64().is_some());
        assert_eq!(r["model"], "gpt-4o");
        assert_eq!(r["instructions"], "RESPINSTR be brief");
        assert_eq!(r["metadata"], json!({"order": "42"}));
        assert_eq!(r["store"], true, "stored, as asked");
        let output = r["output"].as_array().unwrap();
        assert_eq!(output.len(), 1, "{r}");
        assert_eq!(output[0]["type"], "message");
        assert!(output[0]["id"].as_str().unwrap().starts_with("msg_"));
        assert_eq!(output[0]["role"], "assistant");
        assert_eq!(output[0]["status"], "completed");
        assert_eq!(output[0]["content"][0]["type"], "output_text");
        assert_eq!(output[0]["content"][0]["text"], "w1 w2 w3");
        let usage = &r["usage"];
        assert!(usage["input_tokens"].as_u64().unwrap() > 0, "{usage}");
        assert_eq!(usage["output_tokens"], 3, "{usage}");
        assert_eq!(
            usage["total_tokens"].as_u64(),
            Some(usage["input_tokens"].as_u64().unwrap() + 3)
        );
        assert_eq!(
            headers["x-ignored-params"].to_str().unwrap(),
            "temperature, truncation"
        );
        // The instructions and the input reached the CLI.
        let run = run_with(&fake, "RESP1").expect("the run");
        assert!(
            run["stdin"].to_string().contains("RESPINSTR be brief"),
            "{run}"
        );
    })
    .await;
}

#[tokio::test]
pub(crate) async fn a_stream_is_the_documented_event_sequence() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let body = json!({"model": "gpt-4o", "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "RESP2 [[words:4]]"}]}],
            "stream": true, "temperature": 0.3});
        let (status, headers, events, raw) = post_stream(&responses(&fake), &body).await;
        assert_eq!(status, 200, "{raw}");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        assert_eq!(headers["x-ignored-params"], "temperature");
        assert!(
            !raw.contains("[DONE]"),
            "the Responses stream has no [DONE]"
        );
        let kinds = assert_well_formed(&events);
        let n = kinds.len();
        assert_eq!(
            kinds[2..5],
            [
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta"
            ]
        );
        assert_eq!(
            kinds[n - 4..],
            [
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        assert_eq!(deltas(&events), "w1 w2 w3 w4");
        let item_id = events[2].data["item"]["id"].as_str().unwrap();
        for e in &events[3..n - 2] {
            assert_eq!(e.data["item_id"], item_id, "{}", e.data);
            assert_eq!(e.data["output_index"], 0);
            assert_eq!(e.data["content_index"], 0);
        }
        assert_eq!(events[n - 4].data["text"], "w1 w2 w3 w4");
        let done = &events[n - 1].data["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["output"][0]["content"][0]["text"], "w1 w2 w3 w4");
        assert_eq!(done["usage"]["output_tokens"], 4);
        assert_eq!(events[0].data["response"]["status"], "in_progress");
    })
    .await;
}

#[tokio::test]
pub(crate) async fn max_output_tokens_cut_is_incomplete_whole_and_streamed() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let body = json!({"model": "gpt-4o", "input": "[[words:3]] [[max_tokens_stop]]",
            "max_output_tokens": 3});
        let (status, _, r) = post_json(&responses(&fake), &body).await;
        assert_eq!(status, 200, "{r}");
        assert_valid("Response", &r);
        assert_eq!(r["status"], "incomplete");
        assert_eq!(
            r["incomplete_details"],
            json!({"reason": "max_output_tokens"})
        );
        assert_eq!(r["max_output_tokens"], 3);
        assert_eq!(r["output"][0]["status"], "incomplete");

        let mut body = body;
        body["stream"] = json!(true);
        let (status, _, events, _) = post_stream(&responses(&fake), &body).await;
        assert_eq!(status, 200);
        let kinds = assert_well_formed(&events);
        assert_eq!(kinds.last().unwrap(), "response.incomplete");
        let last = &events.last().unwrap().data["response"];
        assert_eq!(last["incomplete_details"]["reason"], "max_output_tokens");
    })
    .await;
}

#[tokio::test]
pub(crate) async fn json_schema_text_format_answers_with_the_structured_output() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let schema = json!({"type": "object", "properties": {"city": {"type": "string"}},
            "required": ["city"], "additionalProperties": false});
        let body = json!({"model": "gpt-4o",
            "input": "RESP3 [[structured:{\"city\":\"Paris\"}]]",
            "text": {"format": {"type": "json_schema", "name": "place", "schema": schema,
                                "strict": true}}});
        let (status, _, r) = post_json(&responses(&fake), &body).await;
        assert_eq!(status, 200, "{r}");
        assert_valid("Response", &r);
        let text = r["output"][0]["content"][0]["text"].as_str().unwrap();
        let parsed: Value = serde_json::from_str(text).unwrap();
        assert_eq!(parsed, json!({"city": "Paris"}));
        assert_eq!(r["text"]["format"]["name"], "place");
        let run = run_with(&fake, "RESP3").expect("the run");
        assert!(
            run.to_string().contains("\\\"city\\\""),
            "the schema reached the CLI: {run}"
        );
    })
    .await;
}

#[tokio::test]
pub(crate) async fn refusals_before_the_first_event_are_http_errors() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let url = responses(&fake);
        let cases = [
            (
                json!({"model": "gpt-4o", "input": "x", "previous_response_id": "resp_1"}),
                404,
                Some("previous_response_id"),
                Some("response_not_found"),
            ),
            (
                json!({"model": "gpt-4o", "input": "x", "background": true}),
                400,
                Some("background"),
                Some("unsupported_parameter"),
            ),
            (
                json!({"model": "gpt-4o", "input": "x", "stream": true,
                       "tool_choice": {"type": "web_search_preview"},
                       "tools": [{"type": "web_search_preview"}]}),
                400,
                Some("tool_choice.type"),
                Some("unsupported_parameter"),
            ),
            (
                json!({"model": "gpt-4o", "input": "x", "tools": [
                    {"type": "namespace", "name": "n", "description": "",
                     "tools": [{"type": "function", "name": "x".repeat(60)}]}]}),
                400,
                Some("tools[0].tools[0].name"),
                None,
            ),
            (
                json!({"model": "no-such-model", "input": "x", "stream": true}),
                404,
                Some("model"),
                Some("model_not_found"),
            ),
            (
                json!({"model": "gpt-4o", "input": "x", "max_output_tokens": 0}),
                400,
                Some("max_output_tokens"),
                None,
            ),
            (
                json!({"model": "gpt-4o", "input": [
                    {"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}),
                400,
                Some("input"),
                None,
            ),
            (json!({"input": "x"}), 400, Some("model"), None),
        ];
        for (body, status, param, code) in cases {
            let (got, _, answer) = post_json(&url, &body).await;
            assert_error((got, &answer), status, param, code);
        }
        // Anthropic's 429 before any output: a real 429, streaming or not.
        for stream in [false, true] {
            let body = json!({"model": "gpt-4o", "input": "[[api_error:429]]", "stream": stream});
            let (got, _, answer) = post_json(&url, &body).await;
            assert_error((got, &answer), 429, None, Some("rate_limit_exceeded"));
        }
        assert!(
            fake.runs()
                .iter()
                .all(|r| !r.to_string().contains("web_search"))
        );
    })
    .await;
}

#[tokio::test]
pub(crate) async fn strict_params_refuses_what_would_be_ignored() {
    bounded(async {
        let fake = FakeCliGateway::start(&["--strict-params"]).await;
        let body = json!({"model": "gpt-4o", "input": "x", "truncation": "auto"});
        let (status, _, answer) = post_json(&responses(&fake), &body).await;
        assert_error(
            (status, &answer),
            400,
            Some("truncation"),
            Some("unsupported_parameter"),
        );
        // A hosted tool, otherwise left out and reported, is refused.
        let body = json!({"model": "gpt-4o", "input": "x",
            "tools": [{"type": "function", "name": "f"}, {"type": "web_search"}]});
        let (status, _, answer) = post_json(&responses(&fake), &body).await;
        assert_error(
            (status, &answer),
            400,
            Some("tools.web_search"),
            Some("unsupported_parameter"),
        );
        assert!(message_of(&answer).contains("--strict-params"), "{answer}");
    })
    .await;
}

#[tokio::test]
pub(crate) async fn a_crash_after_the_first_event_ends_with_response_failed() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let body = json!({"model": "gpt-4o", "input": "RESPCRASH a b [[crash_mid_stream]]",
            "stream": true});
        let (status, _, events, raw) = post_stream(&responses(&fake), &body).await;
        assert_eq!(status, 200, "{raw}");
        let kinds = assert_well_formed(&events);
        assert_eq!(kinds.last().unwrap(), "response.failed", "{kinds:?}");
        assert_eq!(deltas(&events), "Echo: RESPCRASH ");
        let failed = &events.last().unwrap().data["response"];
        assert_eq!(failed["status"], "failed");
        assert_eq!(failed["error"]["code"], "server_error");
        assert_eq!(failed["output"][0]["status"], "incomplete");
        assert_cleaned_up(&fake, &run_with(&fake, "RESPCRASH").unwrap()).await;

        // Not streaming, the same crash is a 502, as for chat completions.
        let body = json!({"model": "gpt-4o", "input": "RESPCRASH2 [[crash_mid_stream]]"});
        let (status, _, answer) = post_json(&responses(&fake), &body).await;
        assert_error((status, &answer), 502, None, Some("cli_failed"));
    })
    .await;
}

/// Behind `--upstream` the façade runs no CLI: the Responses request goes to the worker over
/// the unchanged gRPC contract, and comes back the same.
#[tokio::test]
pub(crate) async fn responses_work_behind_upstream() {
    bounded(async {
        let worker = FakeCliGateway::start(&[]).await;
        let facade = Gateway::builder()
            .args(["--upstream", worker.gw.grpc.as_str()])
            .args(["--claude-bin", "/nonexistent/claude"])
            .start()
            .await;
        let url = facade.url("/v1/responses");
        let body = json!({"model": "gpt-4o", "instructions": "Be brief.",
            "input": "RESPUP [[words:2]]", "top_p": 0.9});
        let (status, headers, r) = post_json(&url, &body).await;
        assert_eq!(status, 200, "{r}");
        assert_valid("Response", &r);
        assert_eq!(r["output"][0]["content"][0]["text"], "w1 w2");
        assert_eq!(headers["x-ignored-params"], "top_p");
        let run = run_with(&worker, "RESPUP").expect("the worker ran the CLI");
        assert_eq!(run["stdin"][0]["request"]["systemPrompt"][0], "Be brief.");

        let mut body = body;
        body["stream"] = json!(true);
        let (status, _, events, _) = post_stream(&url, &body).await;
        assert_eq!(status, 200);
        assert_well_formed(&events);
        assert_eq!(deltas(&events), "w1 w2");

        // Thinking crosses gRPC both ways: the reasoning item and its sealed content come from
        // the worker's stream, and the sealed item sent back reaches the worker's CLI natively.
        let question = json!({"role": "user", "content": "RESPUPTHINK [[thinking]]"});
        let body = json!({"model": "gpt-4o", "input": [question],
            "reasoning": {"summary": "auto"}, "include": ["reasoning.encrypted_content"]});
        let (status, _, r) = post_json(&url, &body).await;
        assert_eq!(status, 200, "{r}");
        assert_valid("Response", &r);
        let item = &r["output"][0];
        assert_eq!(item["type"], "reasoning", "{r}");
        assert_eq!(
            item["summary"][0]["text"],
            "Let me think about this. I will answer briefly."
        );
        let history = json!([question, item, r["output"][1],
            {"role": "user", "content": "RESPUPTHINK2"}]);
        let (status, _, r) = post_json(&url, &json!({"model": "gpt-4o", "input": history})).await;
        assert_eq!(status, 200, "{r}");
        let run = run_with(&worker, "RESPUPTHINK2").expect("the worker ran the CLI");
        let thinking = stdin_blocks(&run, "assistant", "thinking");
        assert_eq!(thinking.len(), 1, "{run}");
        assert!(
            thinking[0]["signature"]
                .as_str()
                .unwrap()
                .starts_with("sig_fake_")
        );
        // The model that wrote it crossed gRPC too: the replayed line names it.
        let line = run["stdin"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["type"] == "assistant")
            .unwrap();
        assert!(
            line["message"]["model"]
                .as_str()
                .is_some_and(|m| m.starts_with("claude-")),
            "{line}"
        );

        let body = json!({"model": "gpt-4o", "input": "[[api_error:429]]", "stream": true});
        let (status, _, answer) = post_json(&url, &body).await;
        assert_error((status, &answer), 429, None, Some("rate_limit_exceeded"));
    })
    .await;
}

/// A client that goes away mid-stream takes the CLI process with it: the event stream owns it.
#[tokio::test]
pub(crate) async fn hanging_up_mid_stream_kills_the_cli() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let addr = fake.gw.http.strip_prefix("http://").expect("http URL");
        let mut sock = TcpStream::connect(addr).await.expect("connect");
        let body = json!({"model": "gpt-4o", "input": "RESPHANG a b c [[hang_after:2]]",
            "stream": true})
        .to_string();
        let head = format!(
            "POST /v1/responses HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n",
            body.len()
        );
        sock.write_all(head.as_bytes()).await.expect("head sent");
        sock.write_all(body.as_bytes()).await.expect("body sent");
        read_until(&mut sock, "response.output_text.delta").await;
        let run = wait_for_run(&fake, "RESPHANG").await;
        hang_up_and_expect_kill(&fake, sock, &run).await;
    })
    .await;
}

/// The content blocks of type `kind` in the `role` lines the gateway wrote on the CLI's stdin.
fn stdin_blocks(run: &Value, role: &str, kind: &str) -> Vec<Value> {
    run["stdin"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["type"] == role)
        .flat_map(|l| {
            l["message"]["content"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|b| b["type"] == kind)
        .collect()
}

#[tokio::test]
pub(crate) async fn custom_tool_items_replay_as_tool_use_and_tool_result() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let body = json!({"model": "gpt-4o",
            "tools": [{"type": "custom", "name": "shell", "description": "Runs a command",
                       "format": {"type": "grammar", "syntax": "regex", "definition": "[a-z -]+"}}],
            "tool_choice": "auto",
            "input": [
                {"role": "user", "content": "RESPCUSTOM list the files"},
                {"type": "custom_tool_call", "call_id": "call_c1", "name": "shell",
                 "input": "ls -a\n\"q\""},
                {"type": "custom_tool_call_output", "call_id": "call_c1", "output": "a.txt b.txt"},
                {"role": "user", "content": "RESPCUSTOM2 and now?"}]});
        let (status, _, r) = post_json(&responses(&fake), &body).await;
        assert_eq!(status, 200, "{r}");
        assert_valid("Response", &r);
        // The tool is echoed as the custom tool it is.
        assert_eq!(
            r["tools"][0],
            json!({"type": "custom", "name": "shell", "description": "Runs a command",
                   "format": {"type": "grammar", "syntax": "regex", "definition": "[a-z -]+"}})
        );
        let run = run_with(&fake, "RESPCUSTOM2").expect("the run");
        let uses = stdin_blocks(&run, "assistant", "tool_use");
        assert_eq!(uses.len(), 1, "{run}");
        assert_eq!(uses[0]["id"], "call_c1");
        assert_eq!(uses[0]["name"], "mcp__gw__shell");
        assert_eq!(uses[0]["input"], json!({"input": "ls -a\n\"q\""}));
        let results = stdin_blocks(&run, "user", "tool_result");
        assert_eq!(results.len(), 1, "{run}");
        assert_eq!(results[0]["tool_use_id"], "call_c1");
        assert!(
            results[0]["content"].to_string().contains("a.txt b.txt"),
            "{run}"
        );
    })
    .await;
}

/// The tools the gateway listed to the CLI (its answer to the MCP `tools/list`), by name.
fn listed_tools(run: &Value) -> Vec<Value> {
    run["stdin"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["response"]["response"]["mcp_response"]["result"]["tools"].as_array())
        .flatten()
        .cloned()
        .collect()
}

#[tokio::test]
pub(crate) async fn namespaced_tools_are_offered_flat_and_hosted_ones_left_out() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let spawn_params = json!({"type": "object",
            "properties": {"task": {"type": "string"}}, "required": ["task"]});
        let body = json!({"model": "gpt-4o",
            "tools": [
                {"type": "function", "name": "exec_command", "parameters": {"type": "object"}},
                {"type": "namespace", "name": "multi_agent_v1",
                 "description": "Tools for spawning and managing sub-agents.",
                 "tools": [
                    {"type": "function", "name": "spawn_agent", "description": "Spawns one.",
                     "strict": false, "parameters": spawn_params},
                    {"type": "custom", "name": "note"}]},
                {"type": "web_search", "external_web_access": false}],
            "input": [
                {"role": "user", "content": "RESPNS spawn a helper"},
                {"type": "function_call", "call_id": "call_n1", "namespace": "multi_agent_v1",
                 "name": "spawn_agent", "arguments": "{\"task\":\"look\"}"},
                {"type": "function_call_output", "call_id": "call_n1", "output": "agent-7 spawned"},
                {"role": "user", "content": "RESPNS2 and now?"}]});
        for stream in [false, true] {
            let mut body = body.clone();
            body["stream"] = json!(stream);
            let (status, headers, r) = if stream {
                let (status, headers, events, raw) = post_stream(&responses(&fake), &body).await;
                assert_eq!(status, 200, "{raw}");
                assert_well_formed(&events);
                let last = events.last().expect("events").data["response"].clone();
                (status, headers, last)
            } else {
                post_json(&responses(&fake), &body).await
            };
            assert_eq!(status, 200, "{r}");
            assert_valid("Response", &r);
            // Web search is not offered, and says so; the echo lists what Claude could call.
            assert_eq!(headers["x-ignored-params"], "tools.web_search");
            let echoed: Vec<&Value> = r["tools"].as_array().unwrap().iter().collect();
            assert_eq!(echoed.len(), 2, "{r}");
            assert_eq!(echoed[1]["type"], "namespace");
            assert_eq!(echoed[1]["tools"][0]["name"], "spawn_agent");
        }

        let run = run_with(&fake, "RESPNS2").expect("the run");
        // Claude was offered the inner tools under combined names, with their schemas.
        let listed = listed_tools(&run);
        let names: Vec<&str> = listed.iter().filter_map(|t| t["name"].as_str()).collect();
        assert_eq!(
            names,
            [
                "exec_command",
                "multi_agent_v1__spawn_agent",
                "multi_agent_v1__note"
            ],
            "{run}"
        );
        assert_eq!(listed[1]["inputSchema"]["required"], json!(["task"]));
        let described = listed[1]["description"].as_str().unwrap();
        assert!(described.contains("Spawns one.") && described.contains("sub-agents"));
        assert!(!run.to_string().contains("web_search"), "{run}");
        // The namespaced call replayed natively under its combined name.
        let uses = stdin_blocks(&run, "assistant", "tool_use");
        assert_eq!(uses.len(), 1, "{run}");
        assert_eq!(uses[0]["id"], "call_n1");
        assert_eq!(uses[0]["name"], "mcp__gw__multi_agent_v1__spawn_agent");
        assert_eq!(uses[0]["input"], json!({"task": "look"}));
        let results = stdin_blocks(&run, "user", "tool_result");
        assert_eq!(results[0]["tool_use_id"], "call_n1");
        assert!(
            results[0]["content"]
                .to_string()
                .contains("agent-7 spawned")
        );

        // A combined name another tool already has is refused, naming both.
        let clash = json!({"model": "gpt-4o", "input": "x", "tools": [
            {"type": "function", "name": "multi_agent_v1__spawn_agent"},
            {"type": "namespace", "name": "multi_agent_v1", "description": "d",
             "tools": [{"type": "function", "name": "spawn_agent"}]}]});
        let (status, _, answer) = post_json(&responses(&fake), &clash).await;
        assert_error((status, &answer), 400, Some("tools[1].tools[0].name"), None);
        assert!(message_of(&answer).contains("`tools[0]`"), "{answer}");
    })
    .await;
}

#[tokio::test]
pub(crate) async fn thinking_is_a_reasoning_item_and_its_sealed_form_replays_natively() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let url = responses(&fake);
        let question = json!({"role": "user", "content": "RESPTHINK hi [[thinking]]"});
        let body = json!({"model": "gpt-4o", "input": [question], "stream": true,
            "reasoning": {"effort": "high", "summary": "concise"},
            "include": ["reasoning.encrypted_content"]});
        let (status, headers, events, raw) = post_stream(&url, &body).await;
        assert_eq!(status, 200, "{raw}");
        assert!(headers.get("x-ignored-params").is_none(), "{headers:?}");
        let kinds = assert_well_formed(&events);
        assert_eq!(
            kinds[2..4],
            [
                "response.output_item.added",
                "response.reasoning_summary_part.added"
            ]
        );
        let thought = "Let me think about this. I will answer briefly.";
        let summary: String = events
            .iter()
            .filter(|e| e.data["type"] == "response.reasoning_summary_text.delta")
            .map(|e| e.data["delta"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(summary, thought);
        assert!(!deltas(&events).contains("Let me think"), "{raw}");
        let done = &events.last().unwrap().data["response"];
        let item = &done["output"][0];
        assert_eq!(item["type"], "reasoning");
        assert_eq!(item["summary"][0]["text"], thought);
        assert!(item["encrypted_content"].is_string(), "{item}");
        assert_eq!(done["output"][1]["type"], "message");
        // The effort reached the CLI.
        let run = run_with(&fake, "RESPTHINK hi").expect("the run");
        assert!(run["argv"].to_string().contains("high"), "{run}");

        // Sent back (stateless), the item is Claude's signed thinking block again.
        let history = json!([question, item, done["output"][1],
            {"role": "user", "content": "RESPTHINK2 more"}]);
        let (status, _, r) = post_json(&url, &json!({"model": "gpt-4o", "input": history})).await;
        assert_eq!(status, 200, "{r}");
        let run = run_with(&fake, "RESPTHINK2").expect("the run");
        let thinking = stdin_blocks(&run, "assistant", "thinking");
        assert_eq!(thinking.len(), 1, "{run}");
        // The line names the model that wrote the thinking (the CLI keeps thinking only for
        // its own model).
        let line = run["stdin"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["type"] == "assistant")
            .unwrap();
        assert!(
            line["message"]["model"]
                .as_str()
                .is_some_and(|m| m.starts_with("claude-")),
            "{line}"
        );
        assert_eq!(thinking[0]["thinking"], thought);
        assert!(
            thinking[0]["signature"]
                .as_str()
                .unwrap()
                .starts_with("sig_fake_")
        );

        // Tampered: a 400 naming the item. Without `encrypted_content`: left out, reported.
        let mut bad = item.clone();
        bad["encrypted_content"] =
            json!(format!("{}x", item["encrypted_content"].as_str().unwrap()));
        let tampered = json!([question, bad, done["output"][1], {"role": "user", "content": "x"}]);
        let (status, _, answer) =
            post_json(&url, &json!({"model": "gpt-4o", "input": tampered})).await;
        assert_error(
            (status, &answer),
            400,
            Some("input[1].encrypted_content"),
            Some("invalid_encrypted_content"),
        );
        let mut plain = item.clone();
        plain.as_object_mut().unwrap().remove("encrypted_content");
        let body = json!({"model": "gpt-4o", "input": [question, plain, done["output"][1],
            {"role": "user", "content": "RESPTHINK3"}]});
        let (status, headers, r) = post_json(&url, &body).await;
        assert_eq!(status, 200, "{r}");
        assert_eq!(headers["x-ignored-params"], "input.reasoning");
        let run = run_with(&fake, "RESPTHINK3").expect("the run");
        assert!(
            stdin_blocks(&run, "assistant", "thinking").is_empty(),
            "{run}"
        );
    })
    .await;
}
