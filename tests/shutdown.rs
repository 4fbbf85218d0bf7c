//! Shutdown: on SIGTERM both servers stop accepting, readiness turns false on both protocols,
//! in-flight streams may finish within the grace period, and after it they get a final error
//! event; the gateway exits and no `claude` process survives it.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use serde_json::{Value, json};

fn sigterm(gw: &Gateway) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(gw.pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
}

async fn open_stream(gw: &Gateway, text: &str) -> reqwest::Response {
    let body =
        json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": text}]});
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r
}

/// Every `data:` payload until the body ends.
async fn drain(r: reqwest::Response) -> Vec<String> {
    let mut out = String::new();
    let mut body = r.bytes_stream();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(c) => out.push_str(&String::from_utf8_lossy(&c)),
            Err(_) => break,
        }
    }
    out.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn an_in_flight_stream_finishes_within_the_grace_period() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let mut g = FakeCliGateway::start(&["--shutdown-grace-secs", "20"]).await;
        let r = open_stream(&g.gw, "[[words:8]] [[delay_ms:150]]").await;
        sigterm(&g.gw);
        let events = drain(r).await;
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        let content: String = events[..events.len() - 1]
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e).ok())
            .filter_map(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect();
        assert_eq!(content, "w1 w2 w3 w4 w5 w6 w7 w8", "the answer was not cut");
        let status = g.gw.child.wait().await.unwrap();
        assert!(status.success(), "{status}");
        let pid = g.runs()[0]["pid"].as_u64().unwrap();
        eventually("the CLI is gone with the gateway", || {
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
        })
        .await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn after_the_grace_period_streams_get_a_final_error_and_processes_die() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let mut g = FakeCliGateway::start(&["--shutdown-grace-secs", "1"]).await;
        let r = open_stream(&g.gw, "[[hang_after:1]]").await;
        let started = std::time::Instant::now();
        sigterm(&g.gw);
        // No new connections once shutdown began.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(client().get(g.gw.url("/health")).send().await.is_err());
        let events = drain(r).await;
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        let error: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
        assert_eq!(error["error"]["code"], "unavailable", "{error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("shutting down")
        );
        common::openai_schema::assert_valid("ErrorResponse", &error);
        let status = g.gw.child.wait().await.unwrap();
        assert!(status.success(), "{status}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let pid = g.runs()[0]["pid"].as_u64().unwrap();
        eventually("the CLI died with the gateway", || {
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
        })
        .await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn grpc_health_is_not_serving_while_draining() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let g = FakeCliGateway::start(&["--shutdown-delay-secs", "3"]).await;
        let channel = tonic::transport::Endpoint::from_shared(g.gw.grpc.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let check = || tonic_health::pb::HealthCheckRequest {
            service: "claude_gateway.v1.ChatService".into(),
        };
        use tonic_health::pb::health_check_response::ServingStatus;
        assert_eq!(
            health.check(check()).await.unwrap().into_inner().status(),
            ServingStatus::Serving
        );
        sigterm(&g.gw);
        let mut status = ServingStatus::Serving;
        for _ in 0..40 {
            status = health.check(check()).await.unwrap().into_inner().status();
            if status == ServingStatus::NotServing {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(status, ServingStatus::NotServing);
        let ready = client()
            .get(g.gw.url("/health/ready"))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 503);
    })
    .await
    .unwrap();
}
