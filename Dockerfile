# syntax=docker/dockerfile:1
# claude-gateway image: one binary for workers and façades (the role is the configuration).
#   docker build -t claude-gateway .
# Stages: `build` compiles the gateway with the MSRV (Cargo.toml rust-version); `cli` installs the
# claude CLI pinned in tools/package.json from npm; the runtime is debian:bookworm-slim with both
# binaries, no compiler and no Node.js: the npm package ships a native (Bun-compiled) executable
# and Node only runs its postinstall (/work/shared/claude-cli/PROTOCOL.md §1).
# tests/deploy.rs checks the pins, the user and the health check against the repository.

FROM rust:1.94-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin claude-gateway \
 && install -m 0755 target/release/claude-gateway /usr/local/bin/claude-gateway

FROM node:22-bookworm-slim AS cli
# The exact version the gateway is tested with (tools/package.json). An unpinned install on an
# older Node silently picks an older CLI.
RUN npm install --global --no-audit --no-fund @anthropic-ai/claude-code@2.1.330 \
 && cd /usr/local/lib/node_modules/@anthropic-ai/claude-code \
 && (./bin/claude.exe --version >/dev/null 2>&1 || node install.cjs) \
 && ./bin/claude.exe --version | grep -q '^2\.1\.330 ' \
 && install -m 0755 bin/claude.exe /usr/local/bin/claude

FROM debian:bookworm-slim
# ca-certificates: the CLI calls api.anthropic.com over TLS. tini: PID 1 that forwards SIGTERM
# to the gateway (which drains, then ends its children's process groups) and reaps orphans.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid gateway --home-dir /home/gateway --create-home \
      --shell /usr/sbin/nologin gateway
COPY --from=cli /usr/local/bin/claude /usr/local/bin/claude
COPY --from=build /usr/local/bin/claude-gateway /usr/local/bin/claude-gateway
# The binary's defaults listen on 127.0.0.1 only; inside a container the ports must be reachable
# from outside it, so the image says 0.0.0.0 explicitly. HOME is where the CLI keeps its state
# (~/.claude.json, ~/.claude/); Kubernetes mounts an emptyDir there (read-only root filesystem).
# MAX_PROCESSES is explicit because its default reads /proc/meminfo, which in a container shows
# the host's memory, not the container's limit: 8 × ~250 MB per claude process + the gateway.
ENV HOME=/home/gateway \
    HTTP_ADDR=0.0.0.0:8000 \
    GRPC_ADDR=0.0.0.0:50051 \
    CLAUDE_BIN=/usr/local/bin/claude \
    WORK_DIR=/tmp \
    MAX_PROCESSES=8 \
    POOL_SIZE=1 \
    LOG_FORMAT=json
USER 10001:10001
WORKDIR /home/gateway
EXPOSE 8000 50051
# Asks this instance's own grpc.health.v1 (as `doctor --upstream` does for a remote worker):
# SERVING on a worker whose CLI is usable, on a façade whose worker is serving; NOT_SERVING
# while draining. Exit 1 = unhealthy. Kubernetes ignores it and uses the probes in
# deploy/kubernetes/.
HEALTHCHECK --interval=30s --timeout=15s --start-period=30s --retries=3 \
  CMD ["claude-gateway", "doctor", "--upstream", "http://127.0.0.1:50051"]
ENTRYPOINT ["/usr/bin/tini", "--", "claude-gateway"]
