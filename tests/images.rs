//! Images: data URLs reach the CLI as native image blocks; remote URLs are refused unless the
//! operator turns fetching on, and then only public addresses, within size and type limits.
//! Served from a local image server; the fake CLI's log shows what reached its stdin.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use axum::Router;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use base64::Engine as _;
use common::*;
use serde_json::{Value, json};

/// A 1×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x64, 0xf8, 0xcf, 0x50,
    0x0f, 0x00, 0x03, 0x86, 0x01, 0x80, 0x5a, 0x34, 0x7d, 0x6b, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

async fn image_server() -> String {
    let app = Router::new()
        .route(
            "/cat.png",
            get(|| async { ([("content-type", "image/png")], PNG) }),
        )
        .route("/moved", get(|| async { Redirect::temporary("/cat.png") }))
        .route(
            "/page.html",
            get(|| async { "<html>not an image</html>".into_response() }),
        )
        .route("/big.png", get(|| async { [0x89u8; 4096].to_vec() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn with_image(url: &str) -> Value {
    json!({"model": "gpt-4o", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": url}}
    ]}]})
}

fn image_blocks(run: &Value) -> Vec<Value> {
    run["stdin"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["type"] == "user")
        .flat_map(|l| {
            l["message"]["content"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|b| b["type"] == "image")
        .collect()
}

#[tokio::test]
async fn data_urls_arrive_as_native_image_blocks() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let g = FakeCliGateway::start(&[]).await;
        let data = base64::engine::general_purpose::STANDARD.encode(PNG);
        let (status, _, body) = post_json(
            &g.gw.url("/v1/chat/completions"),
            &with_image(&format!("data:image/png;base64,{data}")),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let blocks = image_blocks(&g.runs()[0]);
        assert_eq!(
            blocks,
            vec![json!({"type":"image","source":{"type":"base64","media_type":"image/png","data":data}})]
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn remote_urls_are_refused_when_fetching_is_off() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let server = image_server().await;
        let g = FakeCliGateway::start(&[]).await;
        let (status, _, body) = post_json(
            &g.gw.url("/v1/chat/completions"),
            &with_image(&format!("{server}/cat.png")),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(body["error"]["code"], "invalid_image_url");
        assert_eq!(body["error"]["param"], "messages[0].content[1].image_url");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("turned off"),
            "{body}"
        );
        assert!(g.runs().is_empty(), "no CLI was started");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn fetching_refuses_loopback_and_private_addresses() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let server = image_server().await;
        let g = FakeCliGateway::start(&["--fetch-images"]).await;
        let (status, _, body) = post_json(
            &g.gw.url("/v1/chat/completions"),
            &with_image(&format!("{server}/cat.png")),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("loopback"),
            "{body}"
        );
        let (status, _, body) = post_json(
            &g.gw.url("/v1/chat/completions"),
            &with_image("http://169.254.169.254/latest/meta-data/"),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert!(g.runs().is_empty());
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn fetched_images_are_inlined_with_limits() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let server = image_server().await;
        let g = FakeCliGateway::start(&[
            "--fetch-images",
            "--fetch-images-allow-private",
            "--max-image-bytes",
            "1000",
        ])
        .await;
        let url = g.gw.url("/v1/chat/completions");
        for path in ["/cat.png", "/moved"] {
            let (status, _, body) = post_json(&url, &with_image(&format!("{server}{path}"))).await;
            assert_eq!(status, 200, "{path}: {body}");
        }
        let data = base64::engine::general_purpose::STANDARD.encode(PNG);
        for run in g.runs() {
            assert_eq!(image_blocks(&run)[0]["source"]["data"], data);
            assert_eq!(image_blocks(&run)[0]["source"]["media_type"], "image/png");
        }
        let (status, _, body) = post_json(&url, &with_image(&format!("{server}/page.html"))).await;
        assert_eq!(status, 400);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not a PNG"),
            "{body}"
        );
        let (status, _, body) = post_json(&url, &with_image(&format!("{server}/big.png"))).await;
        assert_eq!(status, 400);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("1000-byte limit"),
            "{body}"
        );
    })
    .await
    .unwrap();
}
