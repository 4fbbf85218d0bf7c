//! OpenTelemetry traces, off unless `--otlp-endpoint` is given: one trace per request, with
//! spans for the HTTP request (`http.server`), the gRPC hop (`grpc.client` on the façade,
//! `grpc.server` on the worker, W3C `traceparent` carried in the call's metadata), the wait for
//! a process (`queue_wait`), the turn (`claude_turn`, with how it got its process), a spawn
//! (`claude_process`) and the time to the first token (`first_token`).
//!
//! The spans are ordinary `tracing` spans of one target (`TARGET`): the OpenTelemetry layer sees
//! only those, the log layer never does, so the logs read the same with traces on or off. With
//! traces off no layer wants that target, and each span is a disabled callsite (no
//! allocation, no header parsing). `export` builds the exporter, `spans` the span shapes and
//! the W3C header carriers, `layers` the tower layers of the HTTP and gRPC borders.

pub mod export;
pub mod layers;
pub mod spans;

use std::sync::atomic::{AtomicBool, Ordering};

pub use export::{Exporter, init};

/// The `tracing` target of every span meant for OpenTelemetry.
pub const TARGET: &str = "claude_gateway::traces";

/// How spans reach the collector (`--otlp-protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OtlpProtocol {
    /// OTLP over gRPC (a collector's port 4317).
    Grpc,
    /// OTLP over HTTP with protobuf bodies (a collector's port 4318, path /v1/traces).
    #[value(name = "http/protobuf")]
    HttpProtobuf,
}

/// Where traces go, if anywhere.
#[derive(Debug, Clone)]
pub struct TraceConfig {
    /// The collector's URL; `None`: traces are off.
    pub endpoint: Option<String>,
    pub protocol: OtlpProtocol,
    /// The `service.name` resource attribute.
    pub service_name: String,
}

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported: the borders read and write `traceparent` only then.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

fn set_enabled() {
    ENABLED.store(true, Ordering::Relaxed);
}
