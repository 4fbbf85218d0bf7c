//! Model map configuration.

use super::*;

// ------------------------------------------------------------------------------------------
// 8. Model map configuration
// ------------------------------------------------------------------------------------------

#[tokio::test]
pub(crate) async fn model_map_flag_overrides_the_cli_model() {
    bounded(async {
        let fake = FakeCliGateway::start(&["--model-map", "gpt-4o=opus,team-model=haiku"]).await;
        let url = completions(&fake);
        for (model, cli) in [("gpt-4o", "opus"), ("team-model", "haiku")] {
            let marker = format!("MAP-{model}");
            let (status, _, body) = post_json(&url, &chat_body(model, &marker)).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["model"], model, "the requested id is echoed");
            let run = run_with(&fake, &marker).unwrap();
            assert_eq!(flag_value(&run, "--model").as_deref(), Some(cli), "{model}");
        }
        let (status, list) = get_json(&fake.gw.url("/v1/models")).await;
        assert_eq!(status, 200);
        assert!(
            list["data"].to_string().contains("\"team-model\""),
            "{list}"
        );
    })
    .await;
}

#[tokio::test]
pub(crate) async fn model_map_env_var_works_too() {
    bounded(async {
        let fake = start_with_env(&[], &[("MODEL_MAP", r#"{"gpt-4o":"haiku","gpt-4":""}"#)]).await;
        let (status, _, body) =
            post_json(&completions(&fake), &chat_body("gpt-4o", "ENVMAP")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["model"], "gpt-4o");
        let run = run_with(&fake, "ENVMAP").unwrap();
        assert_eq!(flag_value(&run, "--model").as_deref(), Some("haiku"));
        // An empty target removes the id.
        let (status, _, body) = post_json(&completions(&fake), &chat_body("gpt-4", "x")).await;
        assert_error((status, &body), 404, Some("model"), Some("model_not_found"));
    })
    .await;
}
