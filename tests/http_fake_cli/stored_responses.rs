//! Stored responses on the fake CLI: `store` (default true), `GET`/`DELETE /v1/responses/{id}`,
//! `input_items` paging, `previous_response_id` continuing in the chain's live process (only
//! the new input reaches it) or replayed natively into a new one (a branch, a restart), tenants
//! as walls, `store: false`, and the same through a façade in front of a worker over gRPC.

use super::*;

async fn create(gw: &Gateway, body: &Value) -> Value {
    let (status, _, r) = post_json(&gw.url("/v1/responses"), body).await;
    assert_eq!(status, 200, "{r}");
    assert_valid("Response", &r);
    r
}

async fn get(gw: &Gateway, path: &str) -> (u16, Value) {
    let r = client().get(gw.url(path)).send().await.expect("sent");
    (r.status().as_u16(), r.json().await.expect("JSON"))
}

async fn get_as(gw: &Gateway, path: &str, key: &str) -> (u16, Value) {
    let r = client()
        .get(gw.url(path))
        .bearer_auth(key)
        .send()
        .await
        .expect("sent");
    (r.status().as_u16(), r.json().await.expect("JSON"))
}

/// Whether a retrieved response is the one its creating request answered: equal but for
/// `completed_at`, which the store records at its commit (the creating answer reads the clock a
/// moment later, so the second may differ by one).
fn same_response(got: &Value, created: &Value) -> bool {
    let (mut a, mut b) = (got.clone(), created.clone());
    let at = |v: &mut Value| {
        v.as_object_mut()
            .and_then(|o| o.remove("completed_at"))
            .and_then(|t| t.as_i64())
    };
    let (ta, tb) = (at(&mut a), at(&mut b));
    a == b && matches!((ta, tb), (Some(x), Some(y)) if (y - x).abs() <= 1)
}

fn text_of(r: &Value) -> String {
    r["output"]
        .as_array()
        .expect("output")
        .iter()
        .filter(|i| i["type"] == "message")
        .flat_map(|i| i["content"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["text"].as_str().map(str::to_string))
        .collect()
}

/// The user lines a run's stdin carried, and whether each was replayed history.
fn user_lines(run: &Value) -> Vec<(String, bool)> {
    run["stdin"]
        .as_array()
        .expect("stdin")
        .iter()
        .filter(|l| l["type"] == "user")
        .map(|l| {
            let text = l["message"]["content"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            (text, l["shouldQuery"] == false)
        })
        .collect()
}

#[tokio::test]
async fn a_stored_response_is_retrieved_listed_and_deleted() {
    bounded(async {
        let g = FakeCliGateway::start(&[]).await;
        let first = create(
            &g.gw,
            &json!({"model": "gpt-4o", "instructions": "Be brief.", "metadata": {"k": "v"},
                "input": [{"role": "user", "content": "Hello there."},
                          {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Second."}]}]}),
        )
        .await;
        assert_eq!(first["store"], true);
        let id = first["id"].as_str().expect("id");
        let (status, got) = get(&g.gw, &format!("/v1/responses/{id}")).await;
        assert_eq!(status, 200, "{got}");
        assert_valid("Response", &got);
        // The same object: ids of items, text, usage, echo.
        assert!(same_response(&got, &first), "{got}\n{first}");

        let (status, items) = get(&g.gw, &format!("/v1/responses/{id}/input_items")).await;
        assert_eq!(status, 200, "{items}");
        assert_valid("ResponseItemList", &items);
        let data = items["data"].as_array().expect("data");
        assert_eq!(data.len(), 2);
        // Newest first by default.
        assert_eq!(data[0]["content"][0]["text"], "Second.");
        assert_eq!(items["first_id"], data[0]["id"]);
        let (_, asc) = get(
            &g.gw,
            &format!("/v1/responses/{id}/input_items?order=asc&limit=1"),
        )
        .await;
        assert_valid("ResponseItemList", &asc);
        assert_eq!(asc["data"][0]["content"][0]["text"], "Hello there.");
        assert_eq!(asc["has_more"], true);
        let after = asc["last_id"].as_str().expect("last_id");
        let (_, rest) = get(
            &g.gw,
            &format!("/v1/responses/{id}/input_items?order=asc&after={after}"),
        )
        .await;
        assert_eq!(rest["data"][0]["content"][0]["text"], "Second.");
        assert_eq!(rest["has_more"], false);
        let (status, bad) = get(&g.gw, &format!("/v1/responses/{id}/input_items?limit=0")).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(bad["error"]["param"], "limit");

        let r = client()
            .delete(g.gw.url(&format!("/v1/responses/{id}")))
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status(), 200);
        let deleted: Value = r.json().await.expect("JSON");
        assert_eq!(
            deleted,
            json!({"id": id, "object": "response", "deleted": true})
        );
        for path in [
            format!("/v1/responses/{id}"),
            format!("/v1/responses/{id}/input_items"),
        ] {
            let (status, body) = get(&g.gw, &path).await;
            assert_eq!(status, 404, "{body}");
            assert_valid("ErrorResponse", &body);
            assert_eq!(body["error"]["code"], "response_not_found");
        }
        let again = client()
            .delete(g.gw.url(&format!("/v1/responses/{id}")))
            .send()
            .await
            .expect("sent");
        assert_eq!(again.status(), 404);
        // Chains are not sessions in the sessions listing.
        let (_, sessions) = get(&g.gw, "/v1/sessions").await;
        assert_eq!(sessions["data"], json!([]));
    })
    .await;
}

#[tokio::test]
async fn previous_response_id_continues_in_the_live_process_and_branches_by_replay() {
    bounded(async {
        let g = FakeCliGateway::start(&[]).await;
        let one = create(
            &g.gw,
            &json!({"model": "gpt-4o", "instructions": "Be brief.", "input": "My name is Ada."}),
        )
        .await;
        let two = create(
            &g.gw,
            &json!({"model": "gpt-4o", "instructions": "Be brief.", "input": "What is my name?",
                "previous_response_id": one["id"]}),
        )
        .await;
        assert_eq!(two["previous_response_id"], one["id"]);
        assert_eq!(text_of(&two), "Echo: What is my name?");
        let runs = g.runs();
        assert_eq!(
            runs.len(),
            1,
            "the second response (same instructions) continued the first one's process"
        );
        assert_eq!(
            user_lines(&runs[0]),
            vec![
                ("My name is Ada.".to_string(), false),
                ("What is my name?".to_string(), false)
            ]
        );

        // A branch from the first response: its history is replayed into a new process.
        let branch = create(
            &g.gw,
            &json!({"model": "gpt-4o", "input": "Where do I live?",
                "previous_response_id": one["id"]}),
        )
        .await;
        let runs = g.runs();
        assert_eq!(runs.len(), 2);
        let replayed = user_lines(&runs[1]);
        assert_eq!(
            replayed,
            vec![
                ("My name is Ada.".to_string(), true),
                ("Where do I live?".to_string(), false)
            ],
            "the first exchange replayed, the second response not in the branch"
        );
        let assistant: Vec<&Value> = runs[1]["stdin"]
            .as_array()
            .expect("stdin")
            .iter()
            .filter(|l| l["type"] == "assistant")
            .collect();
        assert_eq!(
            assistant[0]["message"]["content"][0]["text"],
            "Echo: My name is Ada."
        );
        // Instructions do not carry over: the branch sent none.
        let init = &runs[1]["stdin"][0]["request"];
        assert!(
            init["systemPrompt"]
                .as_array()
                .is_none_or(|p| !p.iter().any(|s| s == "Be brief.")),
            "{init}"
        );
        // The continued chain goes on from the branch too.
        let three = create(
            &g.gw,
            &json!({"model": "gpt-4o", "input": "Thanks.", "previous_response_id": branch["id"]}),
        )
        .await;
        assert_eq!(text_of(&three), "Echo: Thanks.");
        assert_eq!(g.runs().len(), 2, "the branch's process was continued");

        // Unknown ids are 404s naming the parameter, before any process starts.
        let (status, _, err) = post_json(
            &g.gw.url("/v1/responses"),
            &json!({"model": "gpt-4o", "input": "x", "previous_response_id": "resp_nope"}),
        )
        .await;
        assert_eq!(status, 404, "{err}");
        assert_valid("ErrorResponse", &err);
        assert_eq!(err["error"]["param"], "previous_response_id");
        assert_eq!(err["error"]["code"], "response_not_found");
        assert_eq!(g.runs().len(), 2);
        let _ = two;
    })
    .await;
}

#[tokio::test]
async fn store_false_keeps_nothing_and_streamed_responses_are_stored_too() {
    bounded(async {
        let g = FakeCliGateway::start(&[]).await;
        let unstored = create(
            &g.gw,
            &json!({"model": "gpt-4o", "input": "Secret.", "store": false}),
        )
        .await;
        assert_eq!(unstored["store"], false);
        let id = unstored["id"].as_str().expect("id");
        assert_eq!(get(&g.gw, &format!("/v1/responses/{id}")).await.0, 404);
        let (status, _, err) = post_json(
            &g.gw.url("/v1/responses"),
            &json!({"model": "gpt-4o", "input": "x", "previous_response_id": id}),
        )
        .await;
        assert_eq!(status, 404, "{err}");

        // A streamed response is stored before its terminal event.
        let (status, _, events) = post_sse(
            &g.gw.url("/v1/responses"),
            &json!({"model": "gpt-4o", "input": "[[words:3]]", "stream": true}),
        )
        .await;
        assert_eq!(status, 200);
        let last: Value = serde_json::from_str(&events.last().expect("events").data).expect("JSON");
        assert_eq!(last["type"], "response.completed");
        let final_response = &last["response"];
        let id = final_response["id"].as_str().expect("id");
        let (status, got) = get(&g.gw, &format!("/v1/responses/{id}")).await;
        assert_eq!(status, 200);
        assert!(
            same_response(&got, final_response),
            "{got}\n{final_response}"
        );
        // A failed turn stores nothing.
        let (status, _, failed) = post_json(
            &g.gw.url("/v1/responses"),
            &json!({"model": "gpt-4o", "input": "[[api_error:500]]"}),
        )
        .await;
        assert!(status >= 500, "{failed}");
    })
    .await;
}

#[tokio::test]
async fn another_keys_responses_are_missing_ones() {
    bounded(async {
        let keys = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(keys.path(), "sk-ada name=ada\nsk-bob name=bob\n").expect("keys");
        let g =
            FakeCliGateway::start(&["--api-keys-file", keys.path().to_str().expect("UTF-8")]).await;
        let r = client()
            .post(g.gw.url("/v1/responses"))
            .bearer_auth("sk-ada")
            .json(&json!({"model": "gpt-4o", "input": "Mine."}))
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status(), 200);
        let mine: Value = r.json().await.expect("JSON");
        let id = mine["id"].as_str().expect("id");
        assert_eq!(
            get_as(&g.gw, &format!("/v1/responses/{id}"), "sk-ada")
                .await
                .0,
            200
        );
        for path in [
            format!("/v1/responses/{id}"),
            format!("/v1/responses/{id}/input_items"),
        ] {
            let (status, body) = get_as(&g.gw, &path, "sk-bob").await;
            assert_eq!(status, 404, "{body}");
            assert_eq!(body["error"]["code"], "response_not_found");
        }
        let r = client()
            .post(g.gw.url("/v1/responses"))
            .bearer_auth("sk-bob")
            .json(&json!({"model": "gpt-4o", "input": "Yours?", "previous_response_id": id}))
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status(), 404);
        let r = client()
            .delete(g.gw.url(&format!("/v1/responses/{id}")))
            .bearer_auth("sk-bob")
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status(), 404);
        assert_eq!(
            get_as(&g.gw, &format!("/v1/responses/{id}"), "sk-ada")
                .await
                .0,
            200
        );
    })
    .await;
}

#[tokio::test]
async fn a_facade_stores_and_continues_on_its_worker() {
    bounded(async {
        let worker = FakeCliGateway::start(&[]).await;
        let facade = Gateway::builder()
            .args(["--upstream", worker.gw.grpc.as_str()])
            .start()
            .await;
        let one = create(
            &facade,
            &json!({"model": "gpt-4o", "input": "My name is Ada."}),
        )
        .await;
        let id = one["id"].as_str().expect("id");
        // Stored on the worker: both doors see it.
        assert!(same_response(
            &get(&facade, &format!("/v1/responses/{id}")).await.1,
            &one
        ));
        assert!(same_response(
            &get(&worker.gw, &format!("/v1/responses/{id}")).await.1,
            &one
        ));
        let two = create(
            &facade,
            &json!({"model": "gpt-4o", "input": "And now?", "previous_response_id": id}),
        )
        .await;
        assert_eq!(text_of(&two), "Echo: And now?");
        assert_eq!(
            worker.runs().len(),
            1,
            "continued in the worker's live process"
        );
        let (_, items) = get(
            &facade,
            &format!(
                "/v1/responses/{}/input_items",
                two["id"].as_str().expect("id")
            ),
        )
        .await;
        assert_valid("ResponseItemList", &items);
        assert_eq!(items["data"][0]["content"][0]["text"], "And now?");
        let r = client()
            .delete(facade.url(&format!("/v1/responses/{id}")))
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status(), 200);
        let (status, body) = get(&facade, &format!("/v1/responses/{id}")).await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["error"]["code"], "response_not_found");
        // The second response keeps the conversation it was built on.
        assert_eq!(
            get(
                &facade,
                &format!("/v1/responses/{}", two["id"].as_str().expect("id"))
            )
            .await
            .0,
            200
        );
    })
    .await;
}

#[tokio::test]
async fn a_stored_responses_thinking_is_shown_again_and_replayed_natively() {
    bounded(async {
        let g = FakeCliGateway::start(&[]).await;
        let first = create(
            &g.gw,
            &json!({"model": "gpt-4o", "input": "RESPSTORETHINK [[thinking]]",
                "reasoning": {"effort": "high", "summary": "auto"}}),
        )
        .await;
        assert_eq!(first["output"][0]["type"], "reasoning", "{first}");
        let id = first["id"].as_str().expect("id");
        let (status, got) = get(&g.gw, &format!("/v1/responses/{id}")).await;
        assert_eq!(status, 200, "{got}");
        assert!(
            same_response(&got, &first),
            "the reasoning item and its summary shown again: {got}\n{first}"
        );
        // Continued as it is (the thinking kept in the chain): still the live process.
        create(
            &g.gw,
            &json!({"model": "gpt-4o", "input": "RESPSTORETHINK1",
                "reasoning": {"effort": "high", "summary": "auto"}, "previous_response_id": id}),
        )
        .await;
        assert_eq!(g.runs().len(), 1, "continued in the live process");
        // Continued with other instructions (so not in the live process): the replayed assistant
        // turn carries Claude's signed thinking.
        create(
            &g.gw,
            &json!({"model": "gpt-4o", "instructions": "Other.", "input": "RESPSTORETHINK2",
                "previous_response_id": id}),
        )
        .await;
        let runs = g.runs();
        let replay = runs
            .iter()
            .find(|r| r["stdin"].to_string().contains("RESPSTORETHINK2"))
            .expect("the continuation's run");
        let assistant = replay["stdin"]
            .as_array()
            .expect("stdin")
            .iter()
            .find(|l| l["type"] == "assistant")
            .expect("the replayed assistant turn");
        let blocks = assistant["message"]["content"].as_array().expect("blocks");
        assert_eq!(blocks[0]["type"], "thinking", "{assistant}");
        assert!(
            blocks[0]["signature"]
                .as_str()
                .is_some_and(|s| s.starts_with("sig_fake_")),
            "{assistant}"
        );
    })
    .await;
}
