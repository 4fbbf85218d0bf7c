//! The cluster harness proven on what the gateway does today: hosts as network namespaces
//! (`tests/common/netns.rs`) are isolated from each other and from the root namespace, joined
//! only by their bridge; code run in a host (on every thread of its runtime) lives in it; a
//! process started in a host is the program itself, in that namespace; a façade host fronts a
//! worker host whose sessions are in PostgreSQL on a third host, for a client on a fourth; a
//! worker killed with -9 leaves no fake CLI behind and the façade answers with an error at once;
//! and a dropped cluster leaves no namespace and no process. Run as root (CI does).
//! The multi-worker scenarios of issue 12 are in `cluster_scenarios.rs`.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::netns::gateway::stream_telling_first;
use common::netns::{Host, Netns, listed_namespaces, pid_netns};
use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn within<F: std::future::Future>(secs: u64, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("test did not finish within {secs} s"))
}

/// Connecting from `from` to `addr`: Ok when something accepted and echoed a byte.
async fn reach(from: &Host, addr: String) -> Result<(), String> {
    from.run(async move {
        let connect = TcpStream::connect(&addr);
        let mut s = match tokio::time::timeout(Duration::from_secs(2), connect).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("timed out".into()),
        };
        s.write_all(b"x").await.map_err(|e| e.to_string())?;
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.map_err(|e| e.to_string())?;
        Ok(())
    })
    .await
}

/// An echo-one-byte server on `addr` in `host`, until the cluster goes.
async fn echo_server(host: &Host, addr: String) {
    let listener = host
        .run(async move { TcpListener::bind(&addr).await.unwrap() })
        .await;
    host.spawn_task(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut b = [0u8; 1];
            if s.read_exact(&mut b).await.is_ok() {
                let _ = s.write_all(&b).await;
            }
        }
    });
}

/// The network namespace of the thread running this.
fn thread_netns() -> (u64, String) {
    // The thread's id, not its name: tokio names all its workers alike.
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino();
    (inode, format!("{:?}", std::thread::current().id()))
}

#[tokio::test]
async fn hosts_are_isolated_and_joined_only_by_their_bridge() {
    within(60, async {
        let started = Instant::now();
        let cluster = Netns::new("iso").unwrap().unwrap();
        let a = cluster.host("a", 1).unwrap();
        let b = cluster.host("b", 2).unwrap();
        eprintln!("switch + 2 hosts set up in {:.1?}", started.elapsed());
        let names = cluster.namespaces();
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(names.iter().all(|n| listed_namespaces().contains(n)));

        // Every thread of a's runtime is in a's namespace: the workers (tasks spread over
        // them) and the blocking pool.
        let want = std::fs::metadata(format!("/run/netns/{}", a.netns()))
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap();
        let mut threads = std::collections::BTreeSet::new();
        for _ in 0..40 {
            let (inode, name) = a
                .run(async {
                    tokio::task::yield_now().await;
                    thread_netns()
                })
                .await;
            assert_eq!(
                inode, want,
                "a task of host a ran outside it (thread {name})"
            );
            threads.insert(name);
        }
        let (inode, _) = a
            .run(async { tokio::task::spawn_blocking(thread_netns).await.unwrap() })
            .await;
        assert_eq!(inode, want, "a blocking thread of host a is outside it");
        assert_ne!(
            thread_netns().0,
            want,
            "the test thread itself stays in the root namespace"
        );
        eprintln!("host a's tasks ran on threads {threads:?}");

        // A listener on a's loopback is a's alone; one on a's address is reachable across the
        // bridge; the root namespace has no address in the cluster's subnet (a connection from
        // there would leave by the machine's own default route, never reaching a host).
        echo_server(&a, "127.0.0.1:7000".into()).await;
        echo_server(&a, format!("{}:7001", a.addr())).await;
        assert_eq!(reach(&a, "127.0.0.1:7000".into()).await, Ok(()));
        let from_b = reach(&b, "127.0.0.1:7000".into()).await;
        assert!(from_b.is_err(), "b reached a's loopback: {from_b:?}");
        assert_eq!(reach(&b, format!("{}:7001", a.addr())).await, Ok(()));
        let root_addrs = std::process::Command::new("ip")
            .args(["-o", "addr"])
            .output()
            .unwrap();
        let subnet = a.addr().to_string();
        let subnet = &subnet[..subnet.rfind('.').unwrap() + 1];
        let root_addrs = String::from_utf8_lossy(&root_addrs.stdout);
        assert!(
            !root_addrs.contains(subnet),
            "the root namespace has an address in the cluster's subnet: {root_addrs}"
        );

        // `spawn` runs the program itself (ip netns exec execs) in the namespace; a process
        // tree started there is found by namespace, whoever its parent.
        let mut sleep = std::process::Command::new("sleep");
        sleep.arg("300");
        let proc = a.spawn("sleep", &sleep).unwrap();
        eventually("sleep has exec'd", || {
            std::fs::read_link(format!("/proc/{}/exe", proc.pid))
                .is_ok_and(|exe| exe.ends_with("sleep"))
        })
        .await;
        assert_eq!(pid_netns(proc.pid), Some(want));
        let mut tree = std::process::Command::new("sh");
        tree.args(["-c", "sleep 300 & sleep 300 & echo started; wait"]);
        let mut tree = a.spawn("tree", &tree).unwrap();
        eventually("the tree's sleeps are up", || {
            procs::live_children(tree.pid).len() == 2
        })
        .await;
        // Both sleeps of the tree, the lone one, and sh (whose arguments mention it).
        assert_eq!(a.processes_matching("sleep 300").len(), 4);
        let pids = a.pids();
        assert!(
            pids.contains(&proc.pid) && pids.contains(&tree.pid),
            "{pids:?}"
        );
        assert!(b.pids().is_empty(), "nothing runs in b: {:?}", b.pids());
        proc.sigterm();
        let mut proc = proc;
        let status = proc.wait_exit(Duration::from_secs(5)).await.unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(15)
        );
        assert!(tree.wait_exit(Duration::from_millis(50)).await.is_none());
        let left: Vec<u32> = a.pids();

        drop((a, b, tree));
        drop(cluster);
        let listed = listed_namespaces();
        assert!(
            names.iter().all(|n| !listed.contains(n)),
            "namespaces left: {names:?} in {listed:?}"
        );
        let alive: Vec<u32> = left.into_iter().filter(|p| procs::alive(*p)).collect();
        assert!(
            alive.is_empty(),
            "processes survived the teardown: {alive:?}"
        );
        eprintln!("teardown left nothing ({:.1?} in all)", started.elapsed());
    })
    .await;
}

#[tokio::test]
async fn a_crashed_runs_namespaces_are_removed() {
    within(30, async {
        assert!(common::netns::require_root());
        // A pid that is not running: a test process that crashed.
        let dead = (2_000_000..4_000_000u32)
            .find(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
            .unwrap();
        let stale = format!("{}{dead}-0crash-x", common::netns::PREFIX);
        let out = std::process::Command::new("ip")
            .args(["netns", "add", &stale])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(listed_namespaces().contains(&stale));
        let cluster = Netns::new("fresh").unwrap().unwrap();
        assert!(!listed_namespaces().contains(&stale), "stale {stale} kept");
        drop(cluster);
    })
    .await;
}

/// POSTs a chat completion from inside `client` (its sockets in that namespace).
async fn chat_from(client: &Host, url: String, body: Value) -> (u16, Value) {
    client
        .run(async move {
            let (status, _, reply) = post_json(&url, &body).await;
            (status, reply)
        })
        .await
}

#[tokio::test]
async fn a_facade_fronts_a_worker_with_sessions_in_postgres_and_a_killed_worker_leaves_nothing() {
    within(100, async {
        let t = Instant::now();
        let cluster = Netns::new("fw").unwrap().unwrap();
        let db = cluster.host("db", 2).unwrap();
        let worker = cluster.host("w1", 11).unwrap();
        let facade = cluster.host("f1", 21).unwrap();
        let client = cluster.host("c1", 31).unwrap();
        eprintln!("4 hosts set up in {:.1?}", t.elapsed());
        let pg = db.postgres().await.unwrap().unwrap();
        eprintln!("PostgreSQL ({}) ready in {:.2?}", pg.url, pg.started_in);

        let worker_args = ["--session-store", pg.url.as_str()];
        let mut w = worker.gateway(&worker_args).await.unwrap();
        eprintln!("worker gateway listening in {:.2?}", w.started_in);
        let f = facade
            .gateway(&["--upstream", w.grpc_url.as_str()])
            .await
            .unwrap();
        eprintln!("façade gateway listening in {:.2?}", f.started_in);

        // A stateless completion and a session turn, from the client host through the façade.
        let (status, reply) = chat_from(
            &client,
            f.url("/v1/chat/completions"),
            chat_body("gpt-4o", "[[reply:from the worker]]"),
        )
        .await;
        assert_eq!(status, 200, "{reply}\n{}", f.stderr());
        assert_eq!(reply["choices"][0]["message"]["content"], "from the worker");
        let (status, session) = chat_from(&client, f.url("/v1/sessions"), json!({})).await;
        assert_eq!(status, 201, "{session}");
        let id = session["id"].as_str().unwrap().to_string();
        let turn = |text: &str| {
            json!({"model": "gpt-4o", "session_id": id,
                "messages": [{"role": "user", "content": text}]})
        };
        let (status, reply) = chat_from(&client, f.url("/v1/chat/completions"), turn("One.")).await;
        assert_eq!(status, 200, "{reply}");
        assert_eq!(
            w.prompts(),
            2,
            "both requests reached the worker's fake CLI"
        );

        // kill -9 the worker while a stream is running on it.
        let (first_tx, first_rx) = tokio::sync::oneshot::channel();
        let body = json!({"model": "gpt-4o", "stream": true,
            "messages": [{"role": "user", "content": "[[words:100]] [[delay_ms:100]]"}]});
        let stream = client.spawn_task(stream_telling_first(
            f.url("/v1/chat/completions"),
            body,
            first_tx,
        ));
        tokio::time::timeout(Duration::from_secs(10), first_rx)
            .await
            .expect("the stream's first event within 10 s")
            .unwrap();
        assert!(!w.live_fake_clis().is_empty());
        w.kill9();
        let killed = Instant::now();
        assert!(w.wait_exit(Duration::from_secs(5)).await.is_some());
        let (status, events) = tokio::time::timeout(Duration::from_secs(15), stream)
            .await
            .expect("the stream in flight did not end after its worker was killed")
            .unwrap();
        assert_eq!(status, 200, "{events:?}");
        assert!(
            events.iter().any(|d| d.contains("\"error\"")),
            "the interrupted stream must end with an in-stream error: {events:?}"
        );
        eprintln!(
            "stream in flight ended {:.2?} after the kill",
            killed.elapsed()
        );
        let (status, reply) = chat_from(
            &client,
            f.url("/v1/chat/completions"),
            chat_body("gpt-4o", "hi"),
        )
        .await;
        let answered = killed.elapsed();
        assert!(
            matches!(status, 502..=504),
            "a dead worker must give 502-504, got {status}: {reply}"
        );
        assert!(
            answered < Duration::from_secs(12),
            "answered after {answered:?}"
        );
        eprintln!(
            "façade answered {status} {:.2?} after the kill: {reply}",
            answered
        );
        eventually("no fake CLI survives on the worker host", || {
            w.live_fake_clis().is_empty()
        })
        .await;

        // The worker restarted on the same host is at the same URL; the session is in
        // PostgreSQL, so its next turn continues it.
        let w2 = worker.gateway(&worker_args).await.unwrap();
        assert_eq!(w2.grpc_url, w.grpc_url);
        let (status, reply) = chat_from(&client, f.url("/v1/chat/completions"), turn("Two.")).await;
        assert_eq!(status, 200, "{reply}\n{}", f.stderr());
        let (status, history) = client
            .run({
                let url = f.url(&format!("/v1/sessions/{id}"));
                async move {
                    let r = common::client().get(&url).send().await.unwrap();
                    (r.status().as_u16(), r.json::<Value>().await.unwrap())
                }
            })
            .await;
        assert_eq!(status, 200, "{history}");
        assert_eq!(
            history["messages"].as_array().unwrap().len(),
            4,
            "{history}"
        );
        eprintln!("whole test {:.1?}", t.elapsed());

        let names = cluster.namespaces();
        let everything: Vec<u32> = [&db, &worker, &facade, &client]
            .iter()
            .flat_map(|h| h.pids())
            .collect();
        assert!(!everything.is_empty());
        drop((pg, w, w2, f));
        drop(cluster);
        let listed = listed_namespaces();
        assert!(names.iter().all(|n| !listed.contains(n)), "{listed:?}");
        let alive: Vec<u32> = everything
            .into_iter()
            .filter(|p| procs::alive(*p))
            .collect();
        assert!(
            alive.is_empty(),
            "processes survived the teardown: {alive:?}"
        );
    })
    .await;
}
