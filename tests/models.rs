//! Model discovery: the concrete `claude-*` ids the CLI resolves its aliases to are learned at
//! startup from one `initialize`-only process and listed on both protocols beside the aliases
//! and mapped OpenAI ids; a CLI that never answers holds up neither startup nor the listing.
//! On the fake CLI (its `initialize` lists the same models as the real 2.1.330); the real CLI
//! is covered in `real_cli.rs`.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use claude_gateway::grpc::pb;
use claude_gateway::grpc::pb::model_service_client::ModelServiceClient;
use common::*;
use serde_json::Value;

async fn listed_ids(gw: &Gateway) -> Vec<String> {
    let response = client().get(gw.url("/v1/models")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn learned_ids_are_listed_on_both_protocols_and_run_as_model() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let g = FakeCliGateway::start(&["--discover-models", "true"]).await;
        let ids = listed_ids(&g.gw).await;
        for id in [
            "claude-fable-5-2",
            "claude-haiku-5-5",
            "claude-opus-5-5",
            "claude-sonnet-5-5",
            "sonnet",
            "gpt-4o",
        ] {
            assert!(ids.iter().any(|i| i == id), "{id} missing in {ids:?}");
        }
        assert_eq!(g.runs().len(), 1, "one discovery process, at startup");

        let mut grpc = ModelServiceClient::connect(g.gw.grpc.clone())
            .await
            .unwrap();
        let listed = grpc
            .list_models(pb::ListModelsRequest {})
            .await
            .unwrap()
            .into_inner();
        let grpc_ids: Vec<&str> = listed.models.iter().map(|m| m.id.as_str()).collect();
        assert!(grpc_ids.contains(&"claude-fable-5-2"), "{grpc_ids:?}");
        let one = grpc
            .get_model(pb::GetModelRequest {
                id: "claude-fable-5-2".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(one.model.unwrap().cli_model, "claude-fable-5-2");
        let response = client()
            .get(g.gw.url("/v1/models/claude-fable-5-2"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);

        let (status, _, body) = post_json(
            &g.gw.url("/v1/chat/completions"),
            &chat_body("claude-fable-5-2", "Hi"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let runs = g.runs();
        let argv: Vec<&str> = runs.last().unwrap()["argv"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let at = argv.iter().position(|a| *a == "--model").unwrap();
        assert_eq!(argv.get(at + 1), Some(&"claude-fable-5-2"), "{argv:?}");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_cli_that_never_answers_holds_up_neither_startup_nor_listing() {
    use std::os::unix::fs::PermissionsExt;
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let cli = dir.path().join("claude");
        // Answers --version; anything else reads nothing and never answers.
        std::fs::write(
            &cli,
            "#!/bin/sh\n[ \"$1\" = --version ] && { echo '2.1.330 (Claude Code)'; exit 0; }\nexec sleep 30\n",
        )
        .unwrap();
        std::fs::set_permissions(&cli, std::fs::Permissions::from_mode(0o755)).unwrap();
        let started = Instant::now();
        let gw = Gateway::builder()
            .args(["--claude-bin", cli.to_str().unwrap(), "--discover-models", "true"])
            .start()
            .await;
        let ids = listed_ids(&gw).await;
        let took = started.elapsed();
        assert!(ids.iter().any(|i| i == "gpt-4o"), "{ids:?}");
        assert!(!ids.iter().any(|i| i.starts_with("claude-")), "{ids:?}");
        assert!(took < Duration::from_secs(15), "startup and listing took {took:?}");
        eprintln!("startup + first listing with a silent CLI: {took:?}");
    })
    .await
    .unwrap();
}
