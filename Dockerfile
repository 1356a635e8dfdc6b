# syntax=docker/dockerfile:1
# The two service images, one target each:
#   docker build --target ingress -t chatops-ingress .
#   docker build --target runner  -t chatops-runner .
# (docker-compose.yml builds both.) Reproducible from the repository: the toolchain is the one
# rust-toolchain.toml pins, and `cargo build --locked` takes every dependency from Cargo.lock.
# CI has no Docker engine and does not build these images; scripts/check lints this file with
# hadolint. Both images carry the sample catalog in /app (runbooks.toml, runbooks/) and start
# without a shell; /usr/local/bin/healthcheck probes /healthz. The ingress runs as a non-root
# user; the runner as root, so that its scripts run as another user (below).

# The toolchain of rust-toolchain.toml (keep the two in step).
FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
COPY . .
# The caches keep the registry and target/ between builds on one machine; the binaries are
# copied out of the cache mount before the layer is written.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bins -p chatops-ingress -p chatops-runner \
    && mkdir -p /out \
    && cp target/release/chatops-ingress target/release/chatops-runner /out/ \
    && rustc --edition 2021 -O -C strip=symbols docker/healthcheck.rs -o /out/healthcheck

# chatops-ingress: distroless (glibc, CA certificates, user 65532; no shell).
FROM gcr.io/distroless/cc-debian12:nonroot AS ingress
WORKDIR /app
COPY --from=build /out/chatops-ingress /out/healthcheck /usr/local/bin/
COPY runbooks.toml /app/runbooks.toml
COPY runbooks /app/runbooks
ENV CHATOPS_INGRESS_ADDR=0.0.0.0:3000 \
    CHATOPS_CATALOG=/app/runbooks.toml \
    RUST_LIB_BACKTRACE=0
USER 65532:65532
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/healthcheck", "127.0.0.1:3000", "/healthz"]
ENTRYPOINT ["/usr/local/bin/chatops-ingress"]

# chatops-runner: Debian slim, because local runbook scripts need /bin/sh and coreutils. The
# runner runs as root and its scripts as the unprivileged user chatops (CHATOPS_SCRIPT_USER):
# PID 1 (tini) holds the container's environment, every secret in it, and a process of tini's
# own user could read it from /proc/1/environ. A script, as another user, can read neither a
# root process's environment nor its memory (docs/security.md).
FROM debian:bookworm-slim AS runner
# tini is PID 1: it reaps the processes a script leaves behind once they end (their parent gone,
# they are handed to PID 1, and the runner reaps only its own children), and passes SIGTERM on.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini=0.19.0-1+b3 \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 chatops \
    && useradd --system --uid 10001 --gid chatops --create-home --home-dir /home/chatops \
       --shell /usr/sbin/nologin chatops
# TLS roots for ARM, Slack and Storage, from the build image (no package install here).
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
WORKDIR /app
COPY --from=build /out/chatops-runner /out/healthcheck /usr/local/bin/
COPY runbooks.toml /app/runbooks.toml
# Scripts are run by user chatops: readable and executable by all, whatever the build
# machine's umask.
COPY --chmod=0755 runbooks /app/runbooks
ENV CHATOPS_RUNNER_ADDR=0.0.0.0:3001 \
    CHATOPS_CATALOG=/app/runbooks.toml \
    CHATOPS_SCRIPT_USER=chatops \
    RUST_LIB_BACKTRACE=0
# Root on purpose (see above): its scripts run as user chatops.
# hadolint ignore=DL3002
USER 0:0
EXPOSE 3001
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/healthcheck", "127.0.0.1:3001", "/healthz"]
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/chatops-runner"]
