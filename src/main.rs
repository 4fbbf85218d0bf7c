//! The `claude-gateway` binary: reads `.env` and the configuration, sets up logging, binds both
//! listeners, prints where it listens, and runs until SIGTERM or Ctrl-C.

use std::process::ExitCode;

use tracing_subscriber::filter::FilterExt;
use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use claude_gateway::config::{Command, Config, LogFormat};
use claude_gateway::traces::{self, TraceConfig};
use claude_gateway::{Listeners, run, services};

fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    let config = Config::try_parse_args(std::env::args_os()).unwrap_or_else(|e| e.exit());
    if config.command == Some(Command::Doctor) {
        return claude_gateway::doctor::main(&config);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("claude-gateway: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // In the runtime: the trace exporter's batch task and channel live on it.
    let exporter = match runtime.block_on(async { init_tracing(&config) }) {
        Ok(exporter) => exporter,
        Err(e) => {
            eprintln!("claude-gateway: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(async {
        let served = serve(config).await;
        // The spans of the last requests are still batched: send them before exiting.
        if let Some(exporter) = exporter {
            exporter.shutdown().await;
        }
        served
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("claude-gateway: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let services = services(&config).await.map_err(anyhow::Error::msg)?;
    // Load tiktoken's tables now rather than on the first request (~50 ms).
    tokio::task::spawn_blocking(|| claude_gateway::chat::tokens::count("warm up"));
    let http = tokio::net::TcpListener::bind(config.http_addr()).await?;
    let grpc = tokio::net::TcpListener::bind(config.grpc_addr).await?;
    let (http_addr, grpc_addr) = (http.local_addr()?, grpc.local_addr()?);
    let health = services.backend.health().await;
    match (&health.cli, &health.upstream) {
        (Some(cli), _) if cli.found => {
            tracing::info!(path = %cli.path, version = ?cli.version, "claude CLI found")
        }
        (Some(cli), _) => {
            tracing::warn!(error = ?cli.error, "claude CLI not usable; completions will answer 503")
        }
        (None, Some(upstream)) => {
            tracing::info!(%upstream, "running as a façade in front of a remote gateway")
        }
        (None, None) => {}
    }
    tracing::info!(%http_addr, %grpc_addr, "listening");
    // A stable line on stdout for scripts and tests that start the binary on port 0.
    println!("claude-gateway listening http={http_addr} grpc={grpc_addr}");
    run(
        &config,
        services,
        Listeners { http, grpc },
        shutdown_signal(),
    )
    .await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

type Logs = Box<dyn Layer<Registry> + Send + Sync>;

/// Logs on stderr (levels from RUST_LOG) and, with `--otlp-endpoint`, the OpenTelemetry layer.
/// The spans meant for traces (`traces::TARGET`) stay out of the logs.
fn init_tracing(config: &Config) -> Result<Option<traces::Exporter>, String> {
    let filter = || {
        let levels = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        levels.and(tracing_subscriber::filter::filter_fn(|meta| {
            meta.target() != traces::TARGET
        }))
    };
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs: Logs = match config.log_format {
        LogFormat::Text => fmt.with_filter(filter()).boxed(),
        LogFormat::Json => fmt.json().with_filter(filter()).boxed(),
    };
    let trace_config: TraceConfig = config.trace_config();
    let (otel, exporter) = match traces::init::<Layered<Logs, Registry>>(&trace_config)? {
        Some((layer, exporter)) => (Some(layer), Some(exporter)),
        None => (None, None),
    };
    tracing_subscriber::registry().with(logs).with(otel).init();
    Ok(exporter)
}
