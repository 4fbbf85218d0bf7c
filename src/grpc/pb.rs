//! The code generated from `proto/claude_gateway/v1/*.proto`, and its file descriptor set for
//! server reflection. Only `grpc/` uses these types. `served_methods` lists every method the
//! server answers, read from the descriptor sets so the list cannot drift from the protos.

#![allow(clippy::all, missing_docs)]

tonic::include_proto!("claude_gateway.v1");

pub const FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("claude_gateway_descriptor");

/// `service/method` of every method served: the gateway's services, health and reflection.
pub fn served_methods() -> std::collections::HashSet<String> {
    use prost::Message as _;
    [
        FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
    ]
    .into_iter()
    .filter_map(|bytes| prost_types::FileDescriptorSet::decode(bytes).ok())
    .flat_map(|set| set.file)
    .flat_map(|file| {
        let package = file.package().to_string();
        file.service.into_iter().flat_map(move |service| {
            let service_name = format!("{package}.{}", service.name());
            service
                .method
                .into_iter()
                .map(move |m| format!("{service_name}/{}", m.name()))
        })
    })
    .collect()
}
