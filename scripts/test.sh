#!/usr/bin/env bash
# The project's test command (README): formatting, lints, unit and mocked-API tests, the
# end-to-end scenarios on a real control plane, CRD staleness.
# Expects what .ci/run installs (Rust and Go toolchains, Mesa's lavapipe for GPU tests, strace).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# Fail fast, with the reason, on what .ci/run would have installed.
for tool in strace go; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool is missing: run .ci/run (it installs what the tests need)" >&2; exit 1; }
done
ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 \
  || { echo "Mesa's lavapipe is missing (apt-get install mesa-vulkan-drivers): run .ci/run" >&2; exit 1; }

# Mesa's Vulkan WSI complains on every start without it; the tests need no display.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "Dockerfiles (hadolint)"
scripts/lint-dockerfiles.sh

step "Helm chart (helm lint --strict)"
"$HOME/.cache/tessera/kube-tools/bin/helm" version >/dev/null 2>&1 || e2e/scripts/get-kube-tools.sh "$HOME/.cache/tessera/kube-tools/bin" >/dev/null
"$HOME/.cache/tessera/kube-tools/bin/helm" lint --strict charts/tessera

step "test control plane and kubectl (e2e/testcluster, built from the Kubernetes Go modules)"
# An assignment, not `eval "$(...)"`: set -e sees a failed build only through the assignment's
# status, so a broken build stops here instead of leaving the tests an older binary.
tools_env="$(scripts/e2e-tools.sh)"
eval "$tools_env"

step "Azurite (the Azure Blob emulator render-pod's storage test runs against, from npm)"
render-pod/tests/azurite.sh

step "cargo test (unit, mocked-API, end-to-end scenarios)"
# The scenarios start the workspace binaries (operator, fake render pod): build them first.
cargo build --workspace --bins --locked
cargo test --workspace --locked

step "traversal benchmark, small (every BVH's hits against Embree's, the same figures twice)"
bench/render/traversal/run.sh --quick >/dev/null

step "generated files up to date (crds/, the chart CRD template and dashboard)"
scripts/generate.sh --check

step "studio scale, small (KWOK: 100 nodes, a 5,000-shard RenderJob and 20 jobs at once vs Indexed Jobs)"
# Checks only that every job completes and the figures come out; the full run is
# bench/scale/studio.sh (bench/scale/README.md). The debug operator just built is enough here.
studio_dir="$(mktemp -d /tmp/tessera-studio-ci.XXXXXX)"
bench/scale/studio.sh --ci --skip-build --bin "${CARGO_TARGET_DIR:-target}/debug" --dir "$studio_dir"
python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); assert len(r["cases"]) == 6, r["cases"].keys()' \
  "$studio_dir/results.json"
rm -rf "$studio_dir"
