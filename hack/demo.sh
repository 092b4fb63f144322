#!/usr/bin/env bash
# npm run demo: the product on an embedded local cluster (real control plane, KubeVirt's own
# virt-controller and virt-api, a virt-handler stand-in on kwok nodes).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -x node_modules/.bin/tsx || ! -x node_modules/.bin/node ]]; then
  echo "[demo] installing npm dependencies (first run)"
  npm ci --no-audit --no-fund
fi
echo "[demo] preparing the local control plane (first run builds it from the Go module proxy: ~20-30 min on 2 cores; cached afterwards)"
bash hack/build-control-plane.sh >/dev/null
echo "[demo] preparing KubeVirt's virt-controller and virt-api (first run builds them: ~10 min on 2 cores; cached afterwards)"
bash hack/build-kubevirt.sh >/dev/null
# Node 24 from node_modules (the `node` dev dependency), also when run as `bash hack/demo.sh`
# rather than `npm run demo`: tsx runs whichever `node` comes first on PATH.
export PATH="$PWD/node_modules/.bin:$PATH"
exec tsx hack/demo.ts "$@"
