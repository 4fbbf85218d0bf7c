//! Tenancy end to end, over real sockets: with two keys A and B, B cannot list, get, clear,
//! delete or continue A's session — through the official Python SDK over HTTP, through tonic (and
//! `buf curl`) over gRPC, on a gateway and on a `--upstream` façade in front of a worker — and an
//! admin key sees both. The worker honours a façade's `x-gateway-tenant` only from its admin key (or when it
//! has no keys), never from an ordinary key. Every test runs on the fake CLI, bounded.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use claude_gateway::grpc::pb;
use claude_gateway::grpc::pb::chat_service_client::ChatServiceClient;
use claude_gateway::grpc::pb::session_service_client::SessionServiceClient;
use common::*;
use tokio::process::Command;
use tonic::transport::Channel;

fn within<F: std::future::Future>(secs: u64, f: F) -> tokio::time::Timeout<F> {
    tokio::time::timeout(Duration::from_secs(secs), f)
}

/// A key file naming A's and B's tenants and an admin.
const KEY_FILE: &str = "\
# tenancy test keys
key-a name=alice
key-b name=bob     # trailing comment
key-admin role=admin name=root
";

async fn keyed_gateway() -> (FakeCliGateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys");
    std::fs::write(&file, KEY_FILE).unwrap();
    let gw = FakeCliGateway::start(&["--api-keys-file", file.to_str().unwrap()]).await;
    (gw, dir)
}

/// A worker whose only key is the façade's admin key (and one ordinary key, to prove that one
/// cannot act for others), and a façade in front of it holding the tenants' keys.
async fn facade_and_worker() -> (Gateway, FakeCliGateway, tempfile::TempDir) {
    let worker = FakeCliGateway::start(&[
        "--api-keys",
        "worker-user",
        "--admin-api-keys",
        "worker-admin",
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys");
    std::fs::write(&file, KEY_FILE).unwrap();
    let facade = Gateway::builder()
        .args(["--upstream", worker.gw.grpc.as_str()])
        .args(["--upstream-api-key", "worker-admin"])
        .args(["--api-keys-file", file.to_str().unwrap()])
        .start()
        .await;
    (facade, worker, dir)
}

/// Runs `tests/python/test_tenancy.py` against `gw` with A's, B's and the admin's keys.
async fn pytest_tenancy(gw: &Gateway, keys: [&str; 3], what: &str) {
    let Some(python) = tool("venv/bin/python") else {
        return;
    };
    eprintln!("the tenancy tests through the SDK, {what}");
    let record = tempfile::tempdir().unwrap();
    let mut cmd = clients::client_command(&python, gw, &record.path().join("record"));
    cmd.env("TENANT_A_KEY", keys[0])
        .env("TENANT_B_KEY", keys[1])
        .env("TENANT_ADMIN_KEY", keys[2]);
    clients::pytest_in(cmd, gw, "tests/python/test_tenancy.py").await;
}

#[tokio::test]
async fn python_sdk_two_keys_on_a_gateway() {
    within(120, async {
        let (gw, _keys) = keyed_gateway().await;
        pytest_tenancy(&gw.gw, ["key-a", "key-b", "key-admin"], "gateway").await;
        // Unnamed keys too: their tenants are digests of the keys.
        let unnamed = FakeCliGateway::start(&[
            "--api-keys",
            "plain-a,plain-b",
            "--admin-api-keys",
            "plain-admin",
        ])
        .await;
        let keys = ["plain-a", "plain-b", "plain-admin"];
        pytest_tenancy(&unnamed.gw, keys, "unnamed keys").await;
        assert!(
            !unnamed.gw.stderr().contains("plain-a"),
            "a key reached the log"
        );
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn python_sdk_two_keys_through_a_facade() {
    within(120, async {
        let (facade, _worker, _keys) = facade_and_worker().await;
        pytest_tenancy(&facade, ["key-a", "key-b", "key-admin"], "façade").await;
    })
    .await
    .expect("timed out");
}

// ---------------------------------------------------------------------------------------------
// gRPC, through tonic

/// `message` with `authorization: Bearer key` and any extra metadata.
fn with_key<T>(message: T, key: &str, extra: &[(&'static str, &str)]) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let md = request.metadata_mut();
    md.insert("authorization", format!("Bearer {key}").parse().unwrap());
    for (name, value) in extra {
        md.insert(*name, value.parse().unwrap());
    }
    request
}

fn user_turn(session_id: &str) -> pb::CreateChatCompletionRequest {
    pb::CreateChatCompletionRequest {
        params: Some(pb::ChatCompletionParams {
            model: "sonnet".into(),
            session_id: session_id.into(),
            messages: vec![pb::ChatMessage {
                role: pb::Role::User as i32,
                content: vec![pb::ContentPart {
                    part: Some(pb::content_part::Part::Text("Hi".into())),
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

struct Grpc {
    sessions: SessionServiceClient<Channel>,
    chat: ChatServiceClient<Channel>,
}

impl Grpc {
    async fn connect(url: &str) -> Self {
        let channel = Channel::from_shared(url.to_string())
            .unwrap()
            .connect()
            .await
            .unwrap();
        Grpc {
            sessions: SessionServiceClient::new(channel.clone()),
            chat: ChatServiceClient::new(channel),
        }
    }

    async fn create(&mut self, key: &str, id: &str) -> pb::Session {
        let request = pb::CreateSessionRequest {
            id: id.into(),
            ..Default::default()
        };
        self.sessions
            .create_session(with_key(request, key, &[]))
            .await
            .unwrap()
            .into_inner()
            .session
            .unwrap()
    }

    async fn ids(&mut self, key: &str, extra: &[(&'static str, &str)]) -> Vec<String> {
        let request = pb::ListSessionsRequest {
            limit: 1000,
            after: String::new(),
        };
        let list = self
            .sessions
            .list_sessions(with_key(request, key, extra))
            .await
            .unwrap()
            .into_inner();
        list.sessions.into_iter().map(|s| s.id).collect()
    }

    /// Every call B could make on `id`, each expected to be NOT_FOUND, with its message.
    async fn all_not_found(&mut self, key: &str, id: &str) -> Vec<String> {
        let get = pb::GetSessionRequest { id: id.into() };
        let clear = pb::ClearSessionRequest { id: id.into() };
        let delete = pb::DeleteSessionRequest { id: id.into() };
        let statuses = [
            self.sessions
                .get_session(with_key(get, key, &[]))
                .await
                .unwrap_err(),
            self.sessions
                .clear_session(with_key(clear, key, &[]))
                .await
                .unwrap_err(),
            self.sessions
                .delete_session(with_key(delete, key, &[]))
                .await
                .unwrap_err(),
            self.chat
                .create_chat_completion(with_key(user_turn(id), key, &[]))
                .await
                .unwrap_err(),
            self.chat
                .stream_chat_completion(with_key(
                    pb::StreamChatCompletionRequest {
                        params: user_turn(id).params,
                    },
                    key,
                    &[],
                ))
                .await
                .map(|_| ())
                .unwrap_err(),
        ];
        statuses
            .into_iter()
            .map(|s| {
                assert_eq!(s.code(), tonic::Code::NotFound, "{s:?}");
                s.message().replace(id, "ID")
            })
            .collect()
    }
}

/// The gRPC half of the contract on one port: A's session is invisible and unusable to B,
/// exactly like a missing one, and visible to the admin.
async fn grpc_isolation(url: &str, tag: &str) {
    let mut grpc = Grpc::connect(url).await;
    let mine = format!("{tag}-a");
    grpc.create("key-a", &mine).await;
    grpc.chat
        .create_chat_completion(with_key(user_turn(&mine), "key-a", &[]))
        .await
        .unwrap();
    assert!(grpc.ids("key-a", &[]).await.contains(&mine));
    assert!(!grpc.ids("key-b", &[]).await.contains(&mine));
    let theirs = grpc.all_not_found("key-b", &mine).await;
    let absent = grpc.all_not_found("key-b", &format!("{tag}-never")).await;
    assert_eq!(theirs, absent, "another tenant's session must look missing");
    // An id another tenant holds is taken, for everyone alike.
    let taken = grpc
        .sessions
        .create_session(with_key(
            pb::CreateSessionRequest {
                id: mine.clone(),
                ..Default::default()
            },
            "key-b",
            &[],
        ))
        .await
        .unwrap_err();
    assert_eq!(taken.code(), tonic::Code::InvalidArgument);
    let theirs_b = format!("{tag}-b");
    grpc.create("key-b", &theirs_b).await;
    let all = grpc.ids("key-admin", &[]).await;
    assert!(all.contains(&mine) && all.contains(&theirs_b), "{all:?}");
    let got = grpc
        .sessions
        .get_session(with_key(
            pb::GetSessionRequest { id: mine.clone() },
            "key-admin",
            &[],
        ))
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    assert_eq!(got.message_count, 2, "B's attempts changed A's session");
}

#[tokio::test]
async fn grpc_two_keys_on_a_gateway_and_through_a_facade() {
    within(120, async {
        let (gw, _keys) = keyed_gateway().await;
        grpc_isolation(&gw.gw.grpc, "direct").await;
        let (facade, worker, _keys) = facade_and_worker().await;
        grpc_isolation(&facade.grpc, "facade").await;
        // On the worker, the sessions made through the façade belong to the façade's callers:
        // its admin key sees them, its ordinary key does not.
        let mut on_worker = Grpc::connect(&worker.gw.grpc).await;
        let all = on_worker.ids("worker-admin", &[]).await;
        assert!(all.contains(&"facade-a".to_string()), "{all:?}");
        assert!(on_worker.ids("worker-user", &[]).await.is_empty());
        // The façade forwarded alice's tenant: naming it from the admin key finds her session.
        let alice = on_worker
            .ids("worker-admin", &[("x-gateway-tenant", "alice")])
            .await;
        assert_eq!(alice, vec!["facade-a".to_string()]);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn only_an_admin_key_or_an_open_worker_may_name_the_tenant() {
    within(60, async {
        let worker = FakeCliGateway::start(&[
            "--api-keys",
            "worker-user",
            "--admin-api-keys",
            "worker-admin",
        ])
        .await;
        let mut grpc = Grpc::connect(&worker.gw.grpc).await;
        let as_alice = [("x-gateway-tenant", "alice")];
        let request = pb::CreateSessionRequest {
            id: "alices".into(),
            ..Default::default()
        };
        grpc.sessions
            .create_session(with_key(request, "worker-admin", &as_alice))
            .await
            .unwrap();
        // An ordinary key naming alice (or an admin) is still itself.
        let admin_too = [
            ("x-gateway-tenant", "alice"),
            ("x-gateway-tenant-admin", "true"),
        ];
        assert!(grpc.ids("worker-user", &as_alice).await.is_empty());
        assert!(grpc.ids("worker-user", &admin_too).await.is_empty());
        grpc.all_not_found("worker-user", "alices").await;
        // A malformed tenant from the admin key is refused, not taken as the admin itself.
        let bad = pb::ListSessionsRequest::default();
        let status = grpc
            .sessions
            .list_sessions(with_key(
                bad,
                "worker-admin",
                &[("x-gateway-tenant", "a b")],
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");

        // A worker without keys trusts its network: the metadata names the tenant.
        let open = FakeCliGateway::start(&[]).await;
        let mut grpc = Grpc::connect(&open.gw.grpc).await;
        let mut request = tonic::Request::new(pb::CreateSessionRequest {
            id: "bobs".into(),
            ..Default::default()
        });
        request
            .metadata_mut()
            .insert("x-gateway-tenant", "bob".parse().unwrap());
        grpc.sessions.create_session(request).await.unwrap();
        let anonymous = grpc
            .sessions
            .list_sessions(pb::ListSessionsRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(anonymous.sessions.is_empty(), "{anonymous:?}");
        let mut as_bob = tonic::Request::new(pb::ListSessionsRequest::default());
        as_bob
            .metadata_mut()
            .insert("x-gateway-tenant", "bob".parse().unwrap());
        let bobs = grpc
            .sessions
            .list_sessions(as_bob)
            .await
            .unwrap()
            .into_inner();
        assert_eq!(bobs.sessions.len(), 1);
    })
    .await
    .expect("timed out");
}

// ---------------------------------------------------------------------------------------------
// buf curl, over gRPC with server reflection

/// `buf curl` of `method` (`Service/Method`, or a SessionService method) on `base` with key `key`
/// and the JSON request `data`.
async fn buf_curl(
    buf: &std::path::Path,
    base: &str,
    key: &str,
    method: &str,
    data: &str,
) -> std::process::Output {
    let method = if method.contains('/') {
        method.to_string()
    } else {
        format!("SessionService/{method}")
    };
    run(Command::new(buf)
        .args(["curl", "--protocol", "grpc", "--http2-prior-knowledge"])
        .args(["-H", &format!("authorization: Bearer {key}")])
        .args(["-d", data])
        .arg(format!("{base}/claude_gateway.v1.{method}"))
        .current_dir(repo_path(""))
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost"))
    .await
}

#[tokio::test]
async fn buf_curl_two_keys() {
    within(90, async {
        let Some(buf) = tool("node_modules/.bin/buf") else {
            return;
        };
        let (gw, _keys) = keyed_gateway().await;
        let base = gw.gw.grpc.as_str();
        let out = buf_curl(&buf, base, "key-a", "CreateSession", r#"{"id":"curl-a"}"#).await;
        assert!(out.status.success(), "{}", describe("CreateSession", &out));
        let out = buf_curl(&buf, base, "key-a", "ListSessions", "{}").await;
        assert!(
            text(&out.stdout).contains("curl-a"),
            "{}",
            describe("A lists", &out)
        );
        let out = buf_curl(&buf, base, "key-b", "ListSessions", "{}").await;
        assert!(out.status.success(), "{}", describe("B lists", &out));
        assert!(
            !text(&out.stdout).contains("curl-a"),
            "{}",
            describe("B lists", &out)
        );
        for method in ["GetSession", "ClearSession", "DeleteSession"] {
            let out = buf_curl(&buf, base, "key-b", method, r#"{"id":"curl-a"}"#).await;
            assert!(!out.status.success(), "{}", describe(method, &out));
            assert!(
                text(&out.stderr).contains("not_found") || text(&out.stderr).contains("NotFound"),
                "{}",
                describe(method, &out)
            );
        }
        let out = buf_curl(&buf, base, "key-admin", "GetSession", r#"{"id":"curl-a"}"#).await;
        assert!(out.status.success(), "{}", describe("admin gets", &out));
        assert!(text(&out.stdout).contains("curl-a"));

        // A stored response, made over gRPC by A: B's key finds nothing, A's finds it.
        let turn = r#"{"params":{"model":"sonnet","messages":[{"role":"ROLE_USER","content":[{"text":"Hi"}]}],
            "response":{"id":"resp_curl","store":true,"document":"{}"}}}"#;
        let out = buf_curl(&buf, base, "key-a", "ChatService/CreateChatCompletion", turn).await;
        assert!(out.status.success(), "{}", describe("A's stored turn", &out));
        let get = r#"{"id":"resp_curl"}"#;
        for method in ["ResponseService/GetResponse", "ResponseService/DeleteResponse"] {
            let out = buf_curl(&buf, base, "key-b", method, get).await;
            assert!(!out.status.success(), "{}", describe(method, &out));
            assert!(
                text(&out.stderr).contains("not_found") || text(&out.stderr).contains("NotFound"),
                "{}",
                describe(method, &out)
            );
        }
        let out = buf_curl(&buf, base, "key-a", "ResponseService/GetResponse", get).await;
        assert!(out.status.success(), "{}", describe("A gets", &out));
        assert!(text(&out.stdout).contains("Echo: Hi"), "{}", describe("A gets", &out));
    })
    .await
    .expect("timed out");
}
