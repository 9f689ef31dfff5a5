# syntax=docker/dockerfile:1
# mc-service production image.
#   docker build --build-arg VERSION=v1.2.3 --build-arg GIT_SHA=$(git rev-parse HEAD) -t mc-service:v1.2.3 .
# Tested without any registry (infra/tests): hadolint and test_image.py read this file;
# test_container.py builds the runtime stage below, unchanged, with podman on a locally
# made Debian base around a host-built binary, and runs it as the Deployment runs the
# pod. See infra/README.md, "The image".

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------- build
# The full (not slim) image: glommio's build script runs `git` and liburing's
# `configure`, and ring and mimalloc compile C; it has git, gcc and make. protobuf is
# compiled in build.rs with protox (no protoc) and TLS is rustls/ring (no OpenSSL).
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
# The cache mounts keep the registry and target dir between builds.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin mc-service \
    && install -D -m 0555 target/release/mc-service /out/mc-service

# ---------------------------------------------------------------- runtime
# Debian slim with only curl and CA certificates added: the runbook's troubleshooting
# runs `kubectl exec deployment/meeting-controller -- curl -i $GC_REGISTRATION_URL`,
# so the image must have curl. Same Debian release as the build stage (glibc match).
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 65532 mc \
    && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin mc
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
