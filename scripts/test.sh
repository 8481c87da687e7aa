#!/usr/bin/env bash
# The project's test command (README): formatting, lints, unit and mocked-API tests, the
# end-to-end scenarios on a real control plane, CRD staleness.
# Expects what .ci/run installs (Rust and Go toolchains, Mesa's lavapipe for GPU tests).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# Mesa's Vulkan WSI complains on every start without it; the tests need no display.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "test control plane and kubectl (e2e/testcluster, built from the Kubernetes Go modules)"
eval "$(scripts/e2e-tools.sh)"

step "cargo test (unit, mocked-API, end-to-end scenarios)"
# The scenarios start the workspace binaries (operator, fake render pod): build them first.
cargo build --workspace --bins --locked
cargo test --workspace --locked

step "crds/ up to date"
scripts/gen-crds.sh --check
