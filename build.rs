//! Compiles `proto/` into Rust (tonic + prost) and a file descriptor set for gRPC reflection.
//! protox parses the protos in pure Rust, so no `protoc` binary is needed at build time.

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/claude_gateway/v1/chat.proto",
        "proto/claude_gateway/v1/models.proto",
        "proto/claude_gateway/v1/sessions.proto",
        "proto/claude_gateway/v1/responses.proto",
        "proto/claude_gateway/v1/worker.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let fds = protox::compile(files, ["proto"])?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("claude_gateway_descriptor.bin"),
        fds.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
