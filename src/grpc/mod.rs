//! The gRPC side: generated types (`pb`), protobuf ⇄ domain conversions, the status mapping,
//! the tonic services, the remote backend used by `--upstream` (its channel and deadlines in
//! `upstream`), TLS for both ends (`tls`), and the server with reflection and
//! `grpc.health.v1`.

pub mod access;
pub mod cluster;
pub mod convert;
pub mod error;
pub mod pb;
pub mod remote;
pub mod responses;
pub mod service;
pub mod sessions;
pub mod tls;
pub mod upstream;
pub mod worker;

use tonic::transport::Server;
use tonic_health::ServingStatus;

pub const CHAT_SERVICE_NAME: &str = "claude_gateway.v1.ChatService";
pub const MODEL_SERVICE_NAME: &str = "claude_gateway.v1.ModelService";

/// Serves the gateway's gRPC API on `listener` until `shutdown` resolves. Health follows the
/// backend: the chat service is NOT_SERVING while the backend is not ready (checked every 15 s).
/// A request message larger than `max_message_bytes` (`--max-body-bytes`, as for HTTP) is
/// refused with OUT_OF_RANGE before it is decoded.
pub async fn serve(
    listener: tokio::net::TcpListener,
    services: crate::Services,
    lifecycle: crate::Lifecycle,
    max_message_bytes: usize,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let crate::Lifecycle {
        started,
        draining,
        abort,
    } = lifecycle;
    let crate::Services {
        backend,
        sessions,
        responses,
        access,
        grpc_tls,
        // Already around `backend`; here for the budget metadata of answers.
        ledger,
    } = services;
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let watched = backend.clone();
    let worker_draining = draining.clone();
    let health_task = tokio::spawn(async move {
        loop {
            // Draining (shutdown begun) is not serving, whatever the backend says.
            let status = if !draining.is_cancelled() && watched.health().await.ready {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            for name in [CHAT_SERVICE_NAME, ""] {
                reporter.set_service_status(name, status).await;
            }
            let models = if draining.is_cancelled() {
                ServingStatus::NotServing
            } else {
                ServingStatus::Serving
            };
            reporter
                .set_service_status(MODEL_SERVICE_NAME, models)
                .await;
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_secs(15)) => {}
                () = draining.cancelled(), if !draining.is_cancelled() => {}
            }
        }
    });
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| {
            tracing::error!("reflection: {e}");
            e
        });
    let mut server = Server::builder();
    if let Some(tls) = grpc_tls {
        server = server.tls_config(tls)?;
    }
    // Keys and the rate limit, in front of every service (`access/grpc.rs`).
    let mut router = server
        // The trace's `grpc.server` span, around everything the call does.
        .layer(crate::traces::layers::GrpcServerLayer::new(
            pb::served_methods(),
        ))
        // Then request ids and metrics for every call, refused ones included.
        .layer(crate::metrics::GrpcLayer::new(pb::served_methods()))
        .layer(access::AccessLayer::new(access, ledger))
        .add_service(health_service)
        .add_service(
            pb::chat_service_server::ChatServiceServer::new(service::ChatGrpc::new(
                backend.clone(),
                abort,
            ))
            .max_decoding_message_size(max_message_bytes),
        )
        .add_service(pb::worker_service_server::WorkerServiceServer::new(
            worker::WorkerGrpc::new(backend.clone(), worker_draining),
        ))
        .add_service(
            pb::model_service_server::ModelServiceServer::new(service::ModelGrpc::new(
                backend, started,
            ))
            .max_decoding_message_size(max_message_bytes),
        )
        .add_service(
            pb::session_service_server::SessionServiceServer::new(sessions::SessionGrpc::new(
                sessions,
            ))
            .max_decoding_message_size(max_message_bytes),
        )
        .add_service(
            pb::response_service_server::ResponseServiceServer::new(responses::ResponseGrpc::new(
                responses,
            ))
            .max_decoding_message_size(max_message_bytes),
        );
    if let Ok(reflection) = reflection {
        router = router.add_service(reflection);
    }
    // No Nagle delay: a streamed message must not wait for the peer's delayed ACK (up to
    // 40 ms a message, measured through a façade). tonic sets it only on listeners it binds.
    let incoming = tokio_stream::StreamExt::map(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        |accepted| {
            if let Ok(tcp) = &accepted {
                let _ = tcp.set_nodelay(true);
            }
            accepted
        },
    );
    let result = router
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    health_task.abort();
    result
}
