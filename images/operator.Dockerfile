# syntax=docker/dockerfile:1
#
# tessera-operator image. Build context: the repository root (see /.dockerignore).
#   docker build -f images/operator.Dockerfile -t tessera-operator:dev .
#
# Static binary, target x86_64-unknown-linux-musl. Why musl and not a static glibc build:
# - aws-lc-rs (the TLS crypto provider kube's rustls uses) supports this target directly:
#   aws-lc-sys ships pregenerated bindings for x86_64-unknown-linux-musl, so the build needs
#   only a C compiler for musl (musl-gcc from musl-tools), no cmake, clang or bindgen.
# - A static glibc binary still loads NSS modules with dlopen for getaddrinfo (tokio resolves
#   names through it), and the distroless "static" base has no glibc to load them from; musl's
#   resolver is built in and reads /etc/resolv.conf and /etc/hosts itself.
# The price is musl's slower malloc, which does not matter for a controller that spends its
# time waiting on the API server.
# amd64 only: building for another platform needs a matching musl target and cross compiler.

FROM rust:1.95.0-slim-bookworm AS build

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG DEBIAN_FRONTEND=noninteractive
# Versions checked against Debian bookworm (the rust:*-bookworm base); bump with `apt-cache
# policy musl-tools` on a bookworm machine when Debian supersedes them.
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools=1.2.3-1 \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl

WORKDIR /src
# Every workspace member must be present for cargo to load the workspace.
COPY Cargo.toml Cargo.lock ./
COPY shard/ shard/
COPY operator/ operator/
COPY render-pod/ render-pod/
COPY e2e/ e2e/

# AWS_LC_SYS_CMAKE_BUILDER=0: aws-lc-sys's cc builder (no cmake in this image); fail loudly
# rather than look for cmake.
# CARGO_PROFILE_RELEASE_DEBUG=false: the workspace's release profile keeps line tables for local
# profiling; the image drops them (cargo then strips debuginfo, symbols stay, so backtraces
# still name functions). Measured on the operator: 22 MB instead of 123 MB.
ENV CARGO_TERM_COLOR=never \
    CARGO_PROFILE_RELEASE_DEBUG=false \
    AWS_LC_SYS_CMAKE_BUILDER=0
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release -p tessera-operator --bin tessera-operator \
        --target x86_64-unknown-linux-musl \
 && install -D -m 0755 target/x86_64-unknown-linux-musl/release/tessera-operator \
        /out/tessera-operator \
 && if readelf -l /out/tessera-operator | grep 'program interpreter' >/dev/null; then \
        echo "tessera-operator is dynamically linked; the static base cannot run it" >&2; \
        exit 1; \
    fi

# distroless/static: CA certificates, /etc/passwd with nonroot (65532), tzdata; no shell and no
# libc. The :nonroot tag is the variant, not a version: distroless publishes no version tags,
# only digests (pin one with @sha256:… where the registry can be reached to verify it).
FROM gcr.io/distroless/static-debian12:nonroot

ARG VERSION=0.1.0
LABEL org.opencontainers.image.source="https://github.com/tessera-dev/tessera" \
      org.opencontainers.image.title="tessera-operator" \
      org.opencontainers.image.description="Kubernetes operator that turns a GPU node pool into a render farm." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"

COPY --from=build /out/tessera-operator /usr/local/bin/tessera-operator

USER 65532:65532
# /metrics, /healthz, /readyz (--http-addr, default 0.0.0.0:8080).
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/tessera-operator"]
