//! claude-gateway: an OpenAI-compatible HTTP API and a gRPC API for Claude, answered by the
//! `claude` CLI run as a subprocess.
//!
//! The map of the crate:
//! - `chat/`: the domain: request and event types, validation, the model map, the one error
//!   type, and the `ChatBackend` seam both protocols talk to.
//! - `claude/`: the subprocess: argv (pure), stdin lines, typed stdout lines, the turn state
//!   machine (pure), the process supervisor, the process budget, the start line, the warm
//!   pool, the processes parked between requests (reused, rewound, continued), and the
//!   `Engine` backend.
//! - `grpc/`: the proto contract: conversions, status mapping, tonic services, and the remote
//!   backend used when the façade runs in front of another instance (`--upstream`).
//! - `http/`: the OpenAI façade: wire types, conversions, SSE transcoder, errors, router.
//! - `fetch`: remote images downloaded (after validation and admission, within a per-request
//!   budget) into base64 image blocks, when the operator allows it.
//! - `access`: gateway API keys and the per-key request rate limit, one decision for both
//!   protocols.
//! - `usage`: the usage ledger (a row per completed request, on every API) and per-key budgets,
//!   kept in the session store's database.
//! - `config`: the one clap configuration.
//! - `traces`: OpenTelemetry traces (`--otlp-endpoint`): the spans of a request, the layers at
//!   the HTTP and gRPC borders that carry `traceparent`, and the OTLP exporter.
//! - `metrics`: the Prometheus metrics (`/metrics`) and the gRPC request-id layer; `doctor`: the
//!   `claude-gateway doctor` checks.
//!
//! `run` wires them: one backend (local engine or remote), served on both listeners until
//! shutdown.

pub mod access;
pub mod chat;
pub mod claude;
pub mod config;
pub mod doctor;
pub mod fetch;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod sessions;
pub mod traces;
pub mod usage;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::chat::ChatBackend;
use crate::config::Config;
use crate::sessions::{ResponseApi, SessionApi};

pub struct Listeners {
    pub http: TcpListener,
    pub grpc: TcpListener,
}

/// The moments of the server's life the protocols react to.
#[derive(Clone)]
pub struct Lifecycle {
    /// When the process started (Unix seconds): the `created` of every model.
    pub started: i64,
    /// Cancelled as soon as shutdown begins: readiness (HTTP and gRPC health) turns false.
    pub draining: CancellationToken,
    /// Cancelled when the shutdown grace period is over: what still runs ends with an error.
    pub abort: CancellationToken,
}

/// What serves requests, on both protocols: completions and session management.
#[derive(Clone)]
pub struct Services {
    pub backend: Arc<dyn ChatBackend>,
    pub sessions: Arc<dyn SessionApi>,
    pub responses: Arc<dyn ResponseApi>,
    /// Who may use them, and how often: API keys and the rate limit (`access/`).
    pub access: Arc<access::Access>,
    /// The gRPC server's TLS (`--grpc-tls-*`), its files read and checked already.
    pub grpc_tls: Option<tonic::transport::ServerTlsConfig>,
    /// The usage ledger and budgets (`--usage-ledger`), already wrapped around `backend`.
    pub ledger: Option<Arc<usage::Ledger>>,
}

/// The usage ledger over `pool` (the database at `--usage-store`), with the key file's budgets.
fn start_ledger(
    config: &Config,
    access: &access::Access,
    pool: sessions::StorePool,
) -> Arc<usage::Ledger> {
    let days = config.usage_retention_days;
    usage::Ledger::start(
        usage::store::UsageStore::new(pool),
        usage::LedgerConfig {
            retention: (days > 0).then(|| Duration::from_secs(days.saturating_mul(86_400))),
            file_budgets: access.file_budgets(),
            ..usage::LedgerConfig::default()
        },
    )
}

/// Opens the ledger's own store when it is not the session store.
async fn ledger_pool(location: &str) -> Result<sessions::StorePool, String> {
    let cfg = sessions::StoreConfig {
        idle_ttl: None,
        max_connections: Some(2),
    };
    let (_, pool) = sessions::open_store_and_pool(location, cfg)
        .await
        .map_err(|e| format!("cannot open the usage store at {location}: {e}"))?;
    Ok(pool)
}

/// `backend` behind the ledger, when there is one.
fn with_ledger(
    backend: Arc<dyn ChatBackend>,
    ledger: Option<&Arc<usage::Ledger>>,
) -> Arc<dyn ChatBackend> {
    match ledger {
        Some(ledger) => Arc::new(usage::LedgerBackend::new(backend, ledger.clone())),
        None => backend,
    }
}

/// Builds what the configuration asks for: the local engine with its session store, or a
/// remote worker's services (`--upstream`). Needs a tokio runtime (the warm pool starts here).
pub async fn services(config: &Config) -> Result<Services, String> {
    let access = Arc::new(access::Access::open(&config.access_config()).await?);
    let grpc_tls = config
        .grpc_tls()
        .map(|files| grpc::tls::server_config(&files))
        .transpose()?;
    if !config.upstream.is_empty() {
        let configs = config
            .upstream
            .iter()
            .map(|url| config.upstream_config(url))
            .collect();
        let resolve = Duration::from_secs(config.upstream_resolve_secs);
        let cluster = grpc::cluster::ClusterBackend::start(configs, resolve).await?;
        let call = cluster.deadlines().call;
        let sessions = Arc::new(grpc::cluster::ClusterSessions::new(cluster.members(), call));
        let responses = Arc::new(grpc::cluster::ClusterResponses::new(
            cluster.members(),
            call,
        ));
        let ledger = match config.usage_store() {
            Some(location) => Some(start_ledger(config, &access, ledger_pool(&location).await?)),
            None => None,
        };
        return Ok(Services {
            backend: with_ledger(Arc::new(cluster), ledger.as_ref()),
            sessions,
            responses,
            access,
            grpc_tls,
            ledger,
        });
    }
    let engine = Arc::new(claude::Engine::new(config.engine_config()?));
    let weak = Arc::downgrade(&engine);
    metrics::set_load_source(move || weak.upgrade().map(|engine| claude::Engine::load(&engine)));
    let queue = engine.queue();
    let engine: Arc<dyn ChatBackend> = engine;
    let ttl = Duration::from_secs(config.session_ttl_secs.max(1));
    let store_cfg = sessions::StoreConfig {
        idle_ttl: Some(ttl),
        max_connections: None,
    };
    let location = config.session_store();
    let (store, pool) = sessions::open_store_and_pool(&location, store_cfg)
        .await
        .map_err(|e| format!("cannot open the session store at {location}: {e}"))?;
    let ledger = match config.usage_store() {
        Some(usage) if usage == location => Some(start_ledger(config, &access, pool)),
        Some(usage) => Some(start_ledger(config, &access, ledger_pool(&usage).await?)),
        None => None,
    };
    let sessions = sessions::Sessions::with_queue(store, queue);
    sessions.start_purger(ttl, Some(config.session_max_count));
    let backend = Arc::new(sessions::SessionBackend::new(engine, sessions.clone()));
    Ok(Services {
        backend: with_ledger(backend, ledger.as_ref()),
        responses: sessions.clone(),
        sessions,
        access,
        grpc_tls,
        ledger,
    })
}

/// Serves HTTP and gRPC until `shutdown` resolves, then lets in-flight requests finish for the
/// grace period. Whatever is still running when this returns is dropped, and with it its
/// process.
pub async fn run(
    config: &Config,
    services: Services,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    // `token`: stop accepting (SIGTERM/SIGINT); `abort`: the grace period is over, cut what
    // is still running with a final error.
    let token = CancellationToken::new();
    let abort = CancellationToken::new();
    // Cancelled the moment shutdown begins: readiness turns false while requests drain.
    let draining = CancellationToken::new();
    let reasoning_key = match &config.reasoning_key_file {
        Some(path) => http::responses::seal::SealKey::from_hex_file(path),
        None => http::responses::seal::SealKey::random(),
    }
    .map_err(|e| anyhow::anyhow!(e))?;
    let app = http::router(
        http::AppState {
            backend: services.backend.clone(),
            sessions: services.sessions.clone(),
            responses: services.responses.clone(),
            started,
            abort: abort.clone(),
            draining: draining.clone(),
            reasoning_key,
            ledger: services.ledger.clone(),
        },
        config.max_body_bytes,
        services.access.clone(),
    );
    // The client address is what the rate limit counts when there are no API keys.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let http =
        // No Nagle delay: an SSE chunk must not wait for the client's delayed ACK (up to 40 ms).
        axum::serve(
            axum::serve::ListenerExt::tap_io(listeners.http, |tcp| {
                let _ = tcp.set_nodelay(true);
            }),
            app,
        )
        .with_graceful_shutdown(token.clone().cancelled_owned());
    let ledger = services.ledger.clone();
    let grpc = grpc::serve(
        listeners.grpc,
        services,
        Lifecycle {
            started,
            draining: draining.clone(),
            abort: abort.clone(),
        },
        config.max_body_bytes,
        token.clone().cancelled_owned(),
    );
    let trigger = token.clone();
    let delay = Duration::from_secs(config.shutdown_delay_secs);
    tokio::spawn(async move {
        shutdown.await;
        draining.cancel();
        if !delay.is_zero() {
            // Still accepting, so load balancers see /health/ready fail before we stop.
            tracing::info!(
                secs = delay.as_secs(),
                "shutting down: not ready, still accepting"
            );
            tokio::time::sleep(delay).await;
        }
        tracing::info!("shutting down: no new connections");
        trigger.cancel();
    });
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let servers = serve_both(
        async { http.await.map_err(anyhow::Error::from) },
        async { grpc.await.map_err(anyhow::Error::from) },
        &token,
    );
    tokio::pin!(servers);
    tokio::select! {
        result = &mut servers => {
            if let Some(ledger) = &ledger {
                ledger.flush(Duration::from_secs(2)).await;
            }
            return result;
        }
        () = async { token.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!("shutdown grace period over; ending the requests still running");
            abort.cancel();
        }
    }
    // Let the cut streams send their final error event and close; then whatever is left is
    // dropped with the runtime, and its processes with it.
    let _ = tokio::time::timeout(Duration::from_secs(2), &mut servers).await;
    if let Some(ledger) = &ledger {
        ledger.flush(Duration::from_secs(2)).await;
    }
    Ok(())
}

/// Both servers until both have stopped. The first to fail, or to stop before shutdown was
/// asked for (`stopping`), is the error, and the other is dropped with it: the process exits
/// instead of staying half up, serving one protocol and not the other.
async fn serve_both(
    http: impl Future<Output = anyhow::Result<()>>,
    grpc: impl Future<Output = anyhow::Result<()>>,
    stopping: &CancellationToken,
) -> anyhow::Result<()> {
    tokio::try_join!(watch("HTTP", http, stopping), watch("gRPC", grpc, stopping))?;
    Ok(())
}

async fn watch(
    name: &str,
    server: impl Future<Output = anyhow::Result<()>>,
    stopping: &CancellationToken,
) -> anyhow::Result<()> {
    use anyhow::Context;
    server
        .await
        .with_context(|| format!("the {name} server failed"))?;
    if stopping.is_cancelled() {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "the {name} server stopped before shutdown was asked for"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never() -> impl Future<Output = anyhow::Result<()>> {
        std::future::pending()
    }

    #[tokio::test]
    async fn one_server_failing_ends_both_with_its_error() {
        let stopping = CancellationToken::new();
        let failing = async { Err(anyhow::anyhow!("address in use")) };
        let both = serve_both(never(), failing, &stopping);
        let err = tokio::time::timeout(Duration::from_secs(5), both)
            .await
            .expect("a failed server must not wait for the other")
            .unwrap_err();
        assert_eq!(format!("{err:#}"), "the gRPC server failed: address in use");

        // Stopping without being asked to is a failure too: the process would be half up.
        let both = serve_both(async { Ok(()) }, never(), &stopping);
        let err = tokio::time::timeout(Duration::from_secs(5), both)
            .await
            .expect("an ended server must not wait for the other")
            .unwrap_err();
        assert!(err.to_string().contains("HTTP server stopped"), "{err}");

        stopping.cancel();
        let both = serve_both(async { Ok(()) }, async { Ok(()) }, &stopping);
        assert!(both.await.is_ok());
    }
}
