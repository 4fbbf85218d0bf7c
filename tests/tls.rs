//! The façade ⇄ worker link when it crosses a network: a worker serving gRPC over TLS with
//! client certificates (mutual TLS), a façade reaching it with `--upstream https://…`, its CA
//! and its own certificate; refusals (no client certificate, one from another CA, a worker
//! certificate the façade does not trust, a key over plain http:// to another host); and a
//! worker that accepts connections but never answers, which must cost the client a 504 at the
//! deadline, not a hang. Certificates are made here with rcgen, nothing leaves 127.0.0.1.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::openai_schema::assert_valid;
use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio::process::Command;

fn within<F: std::future::Future>(secs: u64, f: F) -> tokio::time::Timeout<F> {
    tokio::time::timeout(Duration::from_secs(secs), f)
}

/// A CA and the certificates it signed, as PEM files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// `ca.pem`; `server.pem`/`server.key` for 127.0.0.1 and localhost; `client.pem`/
    /// `client.key`; and `rogue-client.*`, a client certificate from another CA.
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ours = ca("claude-gateway test CA");
        std::fs::write(dir.path().join("ca.pem"), ours.pem()).unwrap();
        let mut server = leaf(
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        server
            .0
            .distinguished_name
            .push(DnType::CommonName, "worker");
        write_leaf(dir.path(), "server", server, &ours);
        let client = leaf(&[], ExtendedKeyUsagePurpose::ClientAuth);
        write_leaf(dir.path(), "client", client, &ours);
        let rogue = ca("someone else's CA");
        let client = leaf(&[], ExtendedKeyUsagePurpose::ClientAuth);
        write_leaf(dir.path(), "rogue-client", client, &rogue);
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(names: &[&str], usage: ExtendedKeyUsagePurpose) -> (CertificateParams, KeyPair) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params.extended_key_usages = vec![usage];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    (params, KeyPair::generate().unwrap())
}

fn write_leaf(
    dir: &Path,
    name: &str,
    (params, key): (CertificateParams, KeyPair),
    issuer: &CertifiedIssuer<'static, KeyPair>,
) {
    let cert = params.signed_by(&key, issuer).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
}

/// The worker's gRPC address as the https:// URL a façade dials.
fn https(grpc: &str) -> String {
    grpc.replacen("http://", "https://", 1)
}

async fn chat(gw: &Gateway, text: &str) -> (u16, serde_json::Value) {
    let (status, _, body) =
        post_json(&gw.url("/v1/chat/completions"), &chat_body("gpt-4o", text)).await;
    (status, body)
}

/// A façade in front of an mTLS worker: a completion (plain and streamed), the models and
/// the worker's health go through with the CA and the client certificate; without the
/// certificate, with one from another CA, or without trusting the worker's CA, the handshake
/// fails and the client gets a 503 in OpenAI's shape while the worker runs nothing.
#[tokio::test]
async fn a_facade_reaches_a_worker_over_mutual_tls() {
    within(120, async {
        let pki = Pki::new();
        let worker = FakeCliGateway::start(&[
            "--grpc-tls-cert",
            &pki.path("server.pem"),
            "--grpc-tls-key",
            &pki.path("server.key"),
            "--grpc-tls-client-ca",
            &pki.path("ca.pem"),
            "--api-keys",
            "sk-worker",
        ])
        .await;
        let upstream = https(&worker.gw.grpc);
        let facade = Gateway::builder()
            .args(["--upstream", upstream.as_str()])
            .args(["--upstream-ca", &pki.path("ca.pem")])
            .args(["--upstream-tls-cert", &pki.path("client.pem")])
            .args(["--upstream-tls-key", &pki.path("client.key")])
            .env("UPSTREAM_API_KEY", "sk-worker")
            .start()
            .await;
        let (status, body) = chat(&facade, "Hi").await;
        assert_eq!(status, 200, "{body}");
        assert_valid("CreateChatCompletionResponse", &body);
        assert_eq!(body["choices"][0]["message"]["content"], "Echo: Hi");
        let mut body = chat_body("gpt-4o", "[[words:3]]");
        body["stream"] = true.into();
        let (status, _, events) = post_sse(&facade.url("/v1/chat/completions"), &body).await;
        assert_eq!(status, 200);
        assert_eq!(content_of(&chunks(&events)), "w1 w2 w3");
        let health: serde_json::Value = client()
            .get(facade.url("/health"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let detail = health["upstream"].as_str().unwrap();
        assert!(
            detail.starts_with("https://") && detail.ends_with(": SERVING"),
            "{health}"
        );
        assert_eq!(worker.prompts(), 2);

        let no_cert = Gateway::builder()
            .args(["--upstream", upstream.as_str()])
            .args(["--upstream-ca", &pki.path("ca.pem")])
            .env("UPSTREAM_API_KEY", "sk-worker")
            .start()
            .await;
        let rogue_cert = Gateway::builder()
            .args(["--upstream", upstream.as_str()])
            .args(["--upstream-ca", &pki.path("ca.pem")])
            .args(["--upstream-tls-cert", &pki.path("rogue-client.pem")])
            .args(["--upstream-tls-key", &pki.path("rogue-client.key")])
            .env("UPSTREAM_API_KEY", "sk-worker")
            .start()
            .await;
        // The web PKI roots, the default, do not include the test CA.
        let untrusting = Gateway::builder()
            .args(["--upstream", upstream.as_str()])
            .args(["--upstream-tls-cert", &pki.path("client.pem")])
            .args(["--upstream-tls-key", &pki.path("client.key")])
            .env("UPSTREAM_API_KEY", "sk-worker")
            .start()
            .await;
        for (name, refused) in [
            ("no client certificate", &no_cert),
            ("a client certificate from another CA", &rogue_cert),
            ("a worker certificate it does not trust", &untrusting),
        ] {
            let (status, body) = chat(refused, "Hi").await;
            assert_eq!(status, 503, "{name}: {body}");
            assert_valid("ErrorResponse", &body);
        }
        assert!(
            untrusting.stderr().contains("UnknownIssuer"),
            "the façade logs why: {}",
            untrusting.stderr()
        );
        assert_eq!(worker.prompts(), 2, "a refused façade ran nothing");

        // Plain h2c to the TLS port gets nowhere either.
        let plain = tonic::transport::Endpoint::from_shared(worker.gw.grpc.clone())
            .unwrap()
            .connect()
            .await;
        let plain_failed = match plain {
            Err(_) => true,
            Ok(channel) => tonic_health::pb::health_client::HealthClient::new(channel)
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await
                .is_err(),
        };
        assert!(
            plain_failed,
            "a plaintext client was answered by the TLS port"
        );
        // The refused handshakes did not bring the worker down.
        let (status, body) = chat(&facade, "Again").await;
        assert_eq!(status, 200, "{body}");
    })
    .await
    .unwrap();
}

/// `--upstream-api-key` over plain http:// to a host that is not this machine is refused
/// before anything listens or connects, with a message naming the way out.
#[tokio::test]
async fn a_key_in_clear_text_to_another_host_is_refused_at_startup() {
    within(60, async {
        let out = run(Command::new(BIN).args([
            "--http-addr",
            "127.0.0.1:0",
            "--grpc-addr",
            "127.0.0.1:0",
            "--upstream",
            "http://worker.invalid:50051",
            "--upstream-api-key",
            "sk-worker",
        ]))
        .await;
        let why = describe("the gateway", &out);
        assert!(!out.status.success(), "{why}");
        assert!(!text(&out.stdout).contains("listening"), "{why}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("refusing to send --upstream-api-key in clear text")
                && stderr.contains("--upstream-insecure"),
            "{why}"
        );
        assert!(
            !stderr.contains("sk-worker"),
            "the key itself is not printed: {why}"
        );

        // TLS files with a plain URL would be silently unused: refused too.
        let out = run(Command::new(BIN).args([
            "--upstream",
            "http://127.0.0.1:9",
            "--upstream-ca",
            "/nonexistent/ca.pem",
        ]))
        .await;
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains("need an https://"),
            "{}",
            text(&out.stderr)
        );
    })
    .await
    .unwrap();
}

/// A TCP listener that accepts every connection and never answers: a hung worker.
async fn silent_worker() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (addr.to_string(), task)
}

/// A worker that never answers, over h2c and over TLS (where even the handshake hangs):
/// completions (plain and streamed) end with a 504 at `--request-timeout-secs`, models and
/// sessions at `--upstream-timeout-secs`, in OpenAI's shape.
#[tokio::test]
async fn a_worker_that_never_answers_costs_a_504_not_a_hang() {
    within(120, async {
        let pki = Pki::new();
        let (addr, _worker) = silent_worker().await;
        let ca = ["--upstream-ca".to_string(), pki.path("ca.pem")];
        for (upstream, tls) in [
            (format!("http://{addr}"), &[][..]),
            (format!("https://{addr}"), &ca[..]),
        ] {
            let started = Instant::now();
            let facade = Gateway::builder()
                .args(["--upstream", upstream.as_str()])
                .args(tls.iter().cloned())
                .args([
                    "--request-timeout-secs",
                    "2",
                    "--upstream-timeout-secs",
                    "1",
                ])
                // The deadline, not the connect timeout, is what bounds the TLS handshake.
                .args(["--upstream-connect-timeout-secs", "60"])
                .start()
                .await;
            // The startup health check is bounded too.
            assert!(started.elapsed() < Duration::from_secs(10), "{upstream}");

            let mut streamed = chat_body("gpt-4o", "Hi");
            streamed["stream"] = true.into();
            for (what, body, limit) in [
                ("completion", chat_body("gpt-4o", "Hi"), 2.0),
                ("streamed completion", streamed, 2.0),
            ] {
                let started = Instant::now();
                let (status, _, body) = post_json(&facade.url("/v1/chat/completions"), &body).await;
                let took = started.elapsed().as_secs_f64();
                assert_eq!(status, 504, "{upstream} {what}: {body}");
                assert_valid("ErrorResponse", &body);
                assert_eq!(body["error"]["code"], "timeout", "{body}");
                let message = body["error"]["message"].as_str().unwrap();
                assert!(message.contains("2 s deadline"), "{message}");
                assert!(
                    (limit - 0.2..limit + 3.0).contains(&took),
                    "{upstream} {what} took {took:.2} s"
                );
                eprintln!("{upstream} {what}: 504 after {took:.2} s");
            }
            for path in ["/v1/models", "/v1/sessions"] {
                let started = Instant::now();
                let response = client().get(facade.url(path)).send().await.unwrap();
                let took = started.elapsed().as_secs_f64();
                assert_eq!(response.status(), 504, "{upstream} {path}");
                let body: serde_json::Value = response.json().await.unwrap();
                assert_valid("ErrorResponse", &body);
                assert!(
                    (0.8..4.0).contains(&took),
                    "{upstream} {path} took {took:.2} s"
                );
                eprintln!("{upstream} {path}: 504 after {took:.2} s");
            }
        }
    })
    .await
    .unwrap();
}

/// A gRPC client of the TLS worker at `grpc`, trusting the test CA, from `local` (an address
/// of the loopback range).
async fn tls_models_client(
    pki: &Pki,
    grpc: &str,
    local: std::net::IpAddr,
) -> claude_gateway::grpc::pb::model_service_client::ModelServiceClient<tonic::transport::Channel> {
    let ca = std::fs::read(pki.path("ca.pem")).unwrap();
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(ca));
    let channel = tonic::transport::Endpoint::from_shared(https(grpc))
        .unwrap()
        .local_address(Some(local))
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    claude_gateway::grpc::pb::model_service_client::ModelServiceClient::new(channel)
}

/// Over TLS the keyless rate limit still counts per client address (the access layer finds
/// the TCP peer under TLS too): one address spending its budget does not spend another's.
#[tokio::test]
async fn the_per_address_rate_limit_holds_over_tls() {
    within(60, async {
        let pki = Pki::new();
        let worker = FakeCliGateway::start(&[
            "--grpc-tls-cert",
            &pki.path("server.pem"),
            "--grpc-tls-key",
            &pki.path("server.key"),
            "--rate-limit-rpm",
            "1",
        ])
        .await;
        let list = || claude_gateway::grpc::pb::ListModelsRequest {};
        let mut first = tls_models_client(&pki, &worker.gw.grpc, [127, 0, 0, 1].into()).await;
        first.list_models(list()).await.unwrap();
        let refused = first.list_models(list()).await.unwrap_err();
        assert_eq!(
            refused.code(),
            tonic::Code::ResourceExhausted,
            "{refused:?}"
        );
        let mut second = tls_models_client(&pki, &worker.gw.grpc, [127, 0, 0, 2].into()).await;
        second.list_models(list()).await.unwrap();
    })
    .await
    .unwrap();
}
