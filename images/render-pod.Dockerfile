# syntax=docker/dockerfile:1
#
# render-pod image: Tessera's wgpu/Vulkan path tracer. Build context: the repository root.
#   docker build -f images/render-pod.Dockerfile -t render-pod:dev .
#
# The binary is a normal (dynamic) glibc build: wgpu loads the Vulkan loader (libvulkan.so.1)
# with dlopen at run time, which a static binary cannot do. Builder and runtime are both Debian
# bookworm, so the binary's glibc requirement matches the runtime's glibc (2.36).

FROM rust:1.95.0-slim-bookworm AS build

WORKDIR /src
# Every workspace member must be present for cargo to load the workspace.
COPY Cargo.toml Cargo.lock ./
COPY shard/ shard/
COPY operator/ operator/
COPY render-pod/ render-pod/
COPY e2e/ e2e/

# AWS_LC_SYS_CMAKE_BUILDER=0: aws-lc-sys (rustls's crypto in the S3 client) builds with its cc
# builder, which needs only the image's gcc; fail loudly rather than look for cmake.
# CARGO_PROFILE_RELEASE_DEBUG=false: the workspace's release profile keeps line tables for local
# profiling; the image drops them (cargo then strips debuginfo, symbols stay, so backtraces
# still name functions). Measured on the operator: 22 MB instead of 123 MB.
ENV CARGO_TERM_COLOR=never \
    CARGO_PROFILE_RELEASE_DEBUG=false \
    AWS_LC_SYS_CMAKE_BUILDER=0
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release -p render-pod --bin render-pod \
 && install -D -m 0755 target/release/render-pod /out/render-pod

# Debian 12.15 (bookworm) is the release the project's CI renders on with the same Mesa
# lavapipe, so the software fallback in this image is the one the tests exercise.
FROM debian:12.15-slim

ARG DEBIAN_FRONTEND=noninteractive
# Versions checked with `apt-cache policy` against bookworm, bookworm-updates and
# bookworm-security. Debian drops superseded versions from its mirrors, so a point release or
# security update can make the pin fail; bump it (and the base tag) then.
#   libvulkan1            the Vulkan loader, dlopened by wgpu
#   mesa-vulkan-drivers   lavapipe, the software Vulkan driver used when no GPU is visible
#   libglvnd0 libx11-6 libxext6
#                         userland that the NVIDIA Vulkan driver (libGLX_nvidia.so.0, injected
#                         by the NVIDIA container runtime) links against; not injected with it
#   ca-certificates       roots for HTTPS to S3 (object_store reads the system store)
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        ca-certificates=20250419~deb12u2 \
        libglvnd0=1.6.0-1 \
        libvulkan1=1.3.239.0-1 \
        libx11-6=2:1.8.4-2+deb12u2 \
        libxext6=2:1.3.4-1+b1 \
        mesa-vulkan-drivers=22.3.6-1+deb12u2 \
 && rm -rf /var/lib/apt/lists/*

# The NVIDIA container runtime mounts the driver into the container from these. `graphics`
# is what makes it inject the Vulkan ICD (nvidia_icd.json, libGLX_nvidia.so.0); with only
# compute,utility wgpu sees no NVIDIA adapter and falls back to lavapipe.
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics

ARG VERSION=0.1.0
LABEL org.opencontainers.image.source="https://github.com/tessera-dev/tessera" \
      org.opencontainers.image.title="render-pod" \
      org.opencontainers.image.description="Tessera's render pod: GPU path tracer (wgpu/Vulkan) for glTF scenes, shard renderer and merger." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"

COPY --from=build /out/render-pod /usr/local/bin/render-pod

# The operator runs render pods as 65532:65532 with a read-only root filesystem.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/render-pod"]
