//! The code generated from `proto/claude_gateway/v1/*.proto`, and its file descriptor set for
//! server reflection. Only `grpc/` uses these types.

#![allow(clippy::all, missing_docs)]

tonic::include_proto!("claude_gateway.v1");

pub const FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("claude_gateway_descriptor");
