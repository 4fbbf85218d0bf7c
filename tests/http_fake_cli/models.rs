//! Models, health and the index.

use super::*;

// ------------------------------------------------------------------------------------------
// 7. Models, health and the index
// ------------------------------------------------------------------------------------------

#[tokio::test]
pub(crate) async fn models_are_listed_and_looked_up() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, list) = get_json(&fake.gw.url("/v1/models")).await;
        assert_eq!(status, 200, "{list}");
        assert_valid("ListModelsResponse", &list);
        assert_eq!(list["object"], "list");
        let ids: Vec<&str> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        for id in ["gpt-4o", "gpt-3.5-turbo", "sonnet", "haiku", "opus"] {
            assert!(ids.contains(&id), "{id} not in {ids:?}");
        }
        for model in list["data"].as_array().unwrap() {
            assert_valid("Model", model);
        }

        let (status, model) = get_json(&fake.gw.url("/v1/models/gpt-4o")).await;
        assert_eq!(status, 200, "{model}");
        assert_valid("Model", &model);
        assert_eq!(model["id"], "gpt-4o");
        assert_eq!(model["object"], "model");

        let (status, body) = get_json(&fake.gw.url("/v1/models/nope")).await;
        assert_error((status, &body), 404, Some("model"), Some("model_not_found"));
        assert!(fake.runs().is_empty(), "listing models runs no CLI");
    })
    .await;
}

#[tokio::test]
pub(crate) async fn health_reports_the_cli_version() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, body) = get_json(&fake.gw.url("/health")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "ok");
        assert_eq!(body["cli"]["found"], true);
        assert_eq!(body["cli"]["version"], "2.1.330 (Claude Code)");
        assert_eq!(body["cli"]["path"].as_str(), fake_cli().to_str());
    })
    .await;
}

#[tokio::test]
pub(crate) async fn health_is_503_when_the_cli_is_missing() {
    bounded(async {
        let gw = Gateway::builder()
            .args(["--claude-bin", "/nonexistent/claude"])
            .start()
            .await;
        let (status, body) = get_json(&gw.url("/health")).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["status"], "unavailable");
        assert_eq!(body["cli"]["found"], false);
        assert!(body["cli"]["version"].is_null());
        let error = body["cli"]["error"].as_str().unwrap_or_default();
        assert!(error.contains("npm install"), "{body}");
    })
    .await;
}

#[tokio::test]
pub(crate) async fn index_lists_the_endpoints() {
    bounded(async {
        let fake = FakeCliGateway::start(&[]).await;
        let (status, body) = get_json(&fake.gw.url("/")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["name"], "claude-gateway");
        let endpoints = body["endpoints"].to_string();
        for endpoint in [
            "POST /v1/chat/completions",
            "GET /v1/models",
            "GET /v1/models/{id}",
            "GET /health",
        ] {
            assert!(endpoints.contains(endpoint), "{endpoint} in {endpoints}");
        }
    })
    .await;
}
