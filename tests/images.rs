//! Images: data URLs reach the CLI as native image blocks; remote URLs are refused unless the
//! operator turns fetching on, and then only public addresses, within size and type limits.
//! Served from a local image server; the fake CLI's log shows what reached its stdin.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// An image server that counts the requests it gets and the most it served at once.
struct CountingServer {
    url: String,
    hits: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

async fn counting_server(delay: Duration) -> CountingServer {
    let hits = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let (h, p) = (hits.clone(), peak.clone());
    let app = Router::new()
        .route(
            "/cat.png",
            get(move || async move {
                // Held open a while, so downloads that could overlap do.
                tokio::time::sleep(delay).await;
                PNG
            }),
        )
        .route(
            "/slow.png",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                PNG
            }),
        )
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let (hits, peak, in_flight) = (h.clone(), p.clone(), in_flight.clone());
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    let response = next.run(req).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    response
                }
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    CountingServer {
        url: format!("http://{addr}"),
        hits,
        peak,
    }
}

/// One user message asking about `n` remote images at `url`.
fn with_images(url: &str, n: usize) -> Value {
    let mut content = vec![json!({"type": "text", "text": "What are these?"})];
    content.extend(
        (0..n).map(|i| json!({"type": "image_url", "image_url": {"url": format!("{url}?i={i}")}})),
    );
    json!({"model": "gpt-4o", "messages": [{"role": "user", "content": content}]})
}

const FETCH_LOCAL: &[&str] = &["--fetch-images", "--fetch-images-allow-private"];

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    FETCH_LOCAL
        .iter()
        .copied()
        .chain(extra.iter().copied())
        .collect()
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_thousand_remote_images_are_refused_before_any_download() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let server = counting_server(Duration::ZERO).await;
        let cat = format!("{}/cat.png", server.url);
        // Loopback is allowed, and validation's image count would let 1,000 through: only the
        // fetch budget stands between the request and 1,000 downloads.
        let g = FakeCliGateway::start(&args(&["--max-images", "2000"])).await;
        let url = g.gw.url("/v1/chat/completions");
        let (status, _, body) = post_json(&url, &with_images(&cat, 1000)).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["code"], "image_fetch_budget_exceeded");
        assert!(
            message(&body).contains("--fetch-images-max-count"),
            "{body}"
        );
        assert_eq!(
            body["error"]["param"], "messages[0].content[9].image_url",
            "the first image over the default count of 8"
        );
        // Over the validation count: refused by validation, no download either.
        let g20 = FakeCliGateway::start(FETCH_LOCAL).await;
        let (status, _, body) = post_json(
            &g20.gw.url("/v1/chat/completions"),
            &with_images(&cat, 1000),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert!(message(&body).contains("At most 20 images"), "{body}");
        // An unknown model is refused before anything is fetched.
        let mut unknown = with_images(&cat, 1);
        unknown["model"] = json!("no-such-model");
        let (status, _, body) = post_json(&url, &unknown).await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(
            server.hits.load(Ordering::SeqCst),
            0,
            "no request reached the server"
        );
        assert!(g.runs().is_empty() && g20.runs().is_empty());
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn remote_images_in_assistant_turns_are_not_fetched() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let server = counting_server(Duration::ZERO).await;
        let g = FakeCliGateway::start(FETCH_LOCAL).await;
        let image =
            json!({"type": "image_url", "image_url": {"url": format!("{}/cat.png", server.url)}});
        let req = json!({"model": "gpt-4o", "messages": [
            {"role": "user", "content": "Draw a cat."},
            {"role": "assistant", "content": [{"type": "text", "text": "Here:"}, image]},
            {"role": "user", "content": "Thanks."}
        ]});
        let (status, _, body) = post_json(&g.gw.url("/v1/chat/completions"), &req).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["param"], "messages[1].content[1]");
        let system = json!({"model": "gpt-4o", "messages": [
            {"role": "system", "content": [image]},
            {"role": "user", "content": "Hi"}
        ]});
        let (status, _, body) = post_json(&g.gw.url("/v1/chat/completions"), &system).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(server.hits.load(Ordering::SeqCst), 0);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn the_download_budget_bounds_count_bytes_and_time() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let server = counting_server(Duration::ZERO).await;
        let cat = format!("{}/cat.png", server.url);
        let g = FakeCliGateway::start(&args(&[
            "--fetch-images-max-count",
            "2",
            "--fetch-images-max-total-bytes",
            "100",
            "--fetch-images-total-timeout-secs",
            "1",
        ]))
        .await;
        let url = g.gw.url("/v1/chat/completions");
        let (status, _, body) = post_json(&url, &with_images(&cat, 3)).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            message(&body).contains("--fetch-images-max-count"),
            "{body}"
        );
        assert_eq!(
            server.hits.load(Ordering::SeqCst),
            0,
            "count is checked first"
        );

        // One 70-byte PNG fits in 100 bytes; two do not.
        let (status, _, body) = post_json(&url, &with_images(&cat, 1)).await;
        assert_eq!(status, 200, "{body}");
        let (status, _, body) = post_json(&url, &with_images(&cat, 2)).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["code"], "image_fetch_budget_exceeded");
        assert!(
            message(&body).contains("--fetch-images-max-total-bytes"),
            "{body}"
        );

        let started = std::time::Instant::now();
        let slow = with_images(&format!("{}/slow.png", server.url), 1);
        let (status, _, body) = post_json(&url, &slow).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            message(&body).contains("--fetch-images-total-timeout-secs"),
            "{body}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(g.runs().len(), 1, "only the request within budget ran");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn downloads_run_a_few_at_once() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let server = counting_server(Duration::from_millis(150)).await;
        let g = FakeCliGateway::start(&args(&[
            "--fetch-images-concurrency",
            "3",
            "--fetch-images-max-count",
            "9",
        ]))
        .await;
        let req = with_images(&format!("{}/cat.png", server.url), 9);
        let (status, _, body) = post_json(&g.gw.url("/v1/chat/completions"), &req).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(server.hits.load(Ordering::SeqCst), 9);
        let peak = server.peak.load(Ordering::SeqCst);
        assert!(
            (2..=3).contains(&peak),
            "at most 3 at once, and they overlap: {peak}"
        );
        assert_eq!(image_blocks(&g.runs()[0]).len(), 9, "all inlined, in order");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn names_resolving_to_private_addresses_are_refused_before_connecting() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let server = counting_server(Duration::ZERO).await;
        let port = server.url.rsplit(':').next().unwrap();
        let g = FakeCliGateway::start(&["--fetch-images"]).await;
        let url = g.gw.url("/v1/chat/completions");
        for image in [
            format!("http://localhost:{port}/cat.png"),
            format!("http://[::ffff:127.0.0.1]:{port}/cat.png"),
            format!("http://[64:ff9b::7f00:1]:{port}/cat.png"),
        ] {
            let (status, _, body) = post_json(&url, &with_image(&image)).await;
            assert_eq!(status, 400, "{image}: {body}");
            assert_eq!(body["error"]["code"], "invalid_image_url", "{body}");
            assert!(
                message(&body).contains("private, loopback or reserved"),
                "{body}"
            );
        }
        assert_eq!(server.hits.load(Ordering::SeqCst), 0);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_request_not_admitted_fetches_nothing() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let server = counting_server(Duration::ZERO).await;
        let g = FakeCliGateway::start(&args(&["--max-processes", "1", "--max-queue", "0"])).await;
        let url = g.gw.url("/v1/chat/completions");
        // The one process is busy: its stream has started (so it holds the permit) and hangs.
        let mut busy = chat_body("gpt-4o", "[[hang_after:1]]");
        busy["stream"] = json!(true);
        let held = client().post(&url).json(&busy).send().await.unwrap();
        assert_eq!(held.status(), 200);
        let (status, _, body) =
            post_json(&url, &with_images(&format!("{}/cat.png", server.url), 1)).await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(
            server.hits.load(Ordering::SeqCst),
            0,
            "refused before downloading"
        );
        drop(held);
    })
    .await
    .unwrap();
}
