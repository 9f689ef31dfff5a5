# syntax=docker/dockerfile:1
# mc-service production image.
#   docker build --build-arg VERSION=v1.2.3 --build-arg GIT_SHA=$(git rev-parse HEAD) -t mc-service:v1.2.3 .
# No Docker engine exists in the development environment: this file is checked by
# hadolint and by infra/tests/test_image.py, which also runs the binary the way this
# image runs it (user 65532, read-only root, only /tmp writable). See infra/README.md.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------- build
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
# protobuf is compiled in build.rs with protox: no protoc, no system libraries needed
# (TLS is rustls/ring). The cache mounts keep the registry and target dir between builds.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin mc-service \
    && install -D -m 0555 target/release/mc-service /out/mc-service

# ---------------------------------------------------------------- runtime
# distroless/cc: glibc, libgcc, CA certificates, /etc/passwd with nonroot (65532);
# no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
ARG VERSION=0.0.0-dev
ARG GIT_SHA=unknown
LABEL org.opencontainers.image.title="mc-service" \
      org.opencontainers.image.description="Meeting Controller: thread-per-core WebTransport signaling server" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_SHA}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/mc-service /usr/local/bin/mc-service
# Production logs are JSON; everything else comes from the ConfigMap and the Secret.
ENV MC_LOG_FORMAT=json
# 4433/udp: WebTransport (QUIC). 8080/tcp: /health, /ready, /metrics.
EXPOSE 4433/udp 8080/tcp
USER 65532:65532
WORKDIR /tmp
# SIGTERM starts the drain (MC_DRAIN_TIMEOUT_SECS), then the process exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/mc-service"]
