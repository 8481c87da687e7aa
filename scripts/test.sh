#!/usr/bin/env bash
# The project's test command (README): formatting, lints, unit + mocked-API tests, CRD staleness.
# Expects the tools .ci/run installs (Rust toolchain, Mesa's lavapipe for GPU tests).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked

step "crds/ up to date"
scripts/gen-crds.sh --check
