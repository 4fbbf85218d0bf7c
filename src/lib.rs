//! claude-gateway: an OpenAI-compatible HTTP API and a gRPC API for Claude, answered by the
//! `claude` CLI run as a subprocess.
//!
//! The map of the crate:
//! - `chat/`: the domain: request and event types, validation, the model map, the one error
//!   type, and the `ChatBackend` seam both protocols talk to.
//! - `claude/`: the subprocess: argv (pure), stdin lines, typed stdout lines, the turn state
//!   machine (pure), the process supervisor, and the `Engine` backend.
//! - `grpc/`: the proto contract: conversions, status mapping, tonic services, and the remote
//!   backend used when the façade runs in front of another instance (`--upstream`).
//! - `http/`: the OpenAI façade: wire types, conversions, SSE transcoder, errors, router.
//! - `fetch`: remote images downloaded into data URLs, when the operator allows it.
//! - `config`: the one clap configuration.
//!
//! `run` wires them: one backend (local engine or remote), served on both listeners until
//! shutdown.

pub mod chat;
pub mod claude;
pub mod config;
pub mod fetch;
pub mod grpc;
pub mod http;
pub mod sessions;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::chat::ChatBackend;
use crate::config::Config;

pub struct Listeners {
    pub http: TcpListener,
    pub grpc: TcpListener,
}

/// Builds the backend the configuration asks for.
pub fn backend(config: &Config) -> Result<Arc<dyn ChatBackend>, String> {
    Ok(match &config.upstream {
        Some(url) => Arc::new(grpc::remote::RemoteBackend::new(url)?),
        None => Arc::new(claude::Engine::new(config.engine_config()?)),
    })
}

/// Serves HTTP and gRPC until `shutdown` resolves, then lets in-flight requests finish for the
/// grace period. Whatever is still running when this returns is dropped, and with it its
/// process.
pub async fn run(
    config: &Config,
    backend: Arc<dyn ChatBackend>,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let token = CancellationToken::new();
    let app = http::router(
        http::AppState {
            backend: backend.clone(),
            started,
        },
        config.max_body_bytes,
    );
    let http =
        axum::serve(listeners.http, app).with_graceful_shutdown(token.clone().cancelled_owned());
    let grpc = grpc::serve(
        listeners.grpc,
        backend,
        started,
        token.clone().cancelled_owned(),
    );
    let trigger = token.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections");
        trigger.cancel();
    });
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let servers = async { tokio::join!(http, grpc) };
    tokio::select! {
        (h, g) = servers => {
            h?;
            g?;
        }
        () = async { token.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!("shutdown grace period over; cancelling the requests still running");
        }
    }
    Ok(())
}
