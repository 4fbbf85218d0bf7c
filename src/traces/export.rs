//! The exporter: an OTLP span exporter (gRPC through tonic, or HTTP/protobuf through hyper),
//! batched on the tokio runtime, behind a `tracing` layer that sees only the spans of
//! `traces::TARGET`. `Exporter::shutdown` sends what is still batched before the process exits.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::registry::LookupSpan;

use super::{OtlpProtocol, TARGET, TraceConfig};

/// How long one export may take; also the bound of the final flush.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// The running exporter; flush it with `shutdown` at exit.
pub struct Exporter {
    provider: SdkTracerProvider,
}

impl Exporter {
    /// Exports the spans still batched and stops the exporter (bounded by the export
    /// timeout). Blocks a thread of the blocking pool, not the runtime, while the batch task
    /// on the runtime sends.
    pub async fn shutdown(self) {
        let provider = self.provider;
        let done =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(EXPORT_TIMEOUT));
        match done.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "traces: the last spans were not exported"),
            Err(e) => tracing::warn!(error = %e, "traces: the exporter's shutdown failed"),
        }
    }
}

/// The OpenTelemetry layer and its exporter when `config` names an endpoint; `None` when traces
/// are off. Must run inside the tokio runtime the exporter will use (its batch task is spawned
/// here, and tonic's channel needs the runtime).
pub fn init<S>(config: &TraceConfig) -> Result<Option<(impl Layer<S>, Exporter)>, String>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let Some(endpoint) = config.endpoint.as_deref().filter(|e| !e.is_empty()) else {
        return Ok(None);
    };
    let exporter = match config.protocol {
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(EXPORT_TIMEOUT)
            .build(),
        OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(http_traces_url(endpoint))
            .with_timeout(EXPORT_TIMEOUT)
            .build(),
    }
    .map_err(|e| format!("--otlp-endpoint {endpoint}: {e}"))?;
    let processor =
        BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(
            Resource::builder()
                .with_service_name(config.service_name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer("claude-gateway");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_location(false)
        .with_level(false)
        .with_target(false)
        .with_filter(filter_fn(|meta| meta.target() == TARGET));
    super::set_enabled();
    Ok(Some((layer, Exporter { provider })))
}

/// The collector's base URL (`http://host:4318`) gets OTLP's traces path; a URL with a path
/// is used as given.
fn http_traces_url(endpoint: &str) -> String {
    let trimmed = endpoint.trim_end_matches('/');
    let has_path = trimmed
        .split_once("://")
        .map_or(trimmed, |(_, rest)| rest)
        .contains('/');
    if has_path {
        endpoint.to_string()
    } else {
        format!("{trimmed}/v1/traces")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http_endpoint_gets_the_traces_path_only_when_it_has_none() {
        assert_eq!(
            http_traces_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            http_traces_url("http://127.0.0.1:4318/"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            http_traces_url("http://collector/otlp/v1/traces"),
            "http://collector/otlp/v1/traces"
        );
    }
}
