#!/usr/bin/env bash
# Builds helm from the Go module proxy (helm.sh/helm/v3 at HELM_VERSION in packaging-versions.env)
# and caches it in ~/.cache/hyperspector/helm/<version>/.
#
# Prints the directory holding `helm` as its last line of stdout (progress goes to stderr).
#
# Environment:
#   HYPERSPECTOR_HELM   a helm binary to use as is (nothing is built)
#   HYPERSPECTOR_CACHE  cache root (default: ~/.cache/hyperspector)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=packaging-versions.env
source "$here/packaging-versions.env"

log() { printf '[helm] %s\n' "$*" >&2; }

cache_root="${HYPERSPECTOR_CACHE:-$HOME/.cache/hyperspector}"
out="$cache_root/helm/$HELM_VERSION"
mkdir -p "$out"

if [[ -n "${HYPERSPECTOR_HELM:-}" ]]; then
  ln -sf "$HYPERSPECTOR_HELM" "$out/helm"
fi
if [[ -x "$out/helm" ]]; then
  log "using cached helm in $out"
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { log "Go is required to build helm $HELM_VERSION"; exit 1; }

# Serialize concurrent builds (two test runs started at once); the second one finds the binary.
exec 9>"$out/.lock"
flock 9
if [[ -x "$out/helm" ]]; then
  log "using helm built meanwhile in $out"
  echo "$out"
  exit 0
fi

work="$cache_root/helm/build-$HELM_VERSION"
mkdir -p "$work"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
start=$(date +%s)
if [[ ! -f "$work/go.sum" ]]; then
  log "resolving helm.sh/helm/v3@$HELM_VERSION"
  (cd "$work" && rm -f go.mod && go mod init hyperspector.local/helm-build >/dev/null 2>&1 && go get "helm.sh/helm/v3@$HELM_VERSION" >&2)
fi
log "building helm $HELM_VERSION ... (a cold build takes a few minutes on 2 cores)"
# The same stamps as helm's Makefile: its version, and the Kubernetes version `helm template` and
# `helm lint` assume without a cluster (client-go v0.X.Y -> 1.X; unstamped, helm says v1.20).
client_go="$(cd "$work" && go list -m -f '{{.Version}}' k8s.io/client-go)"
k8s_minor="$(echo "$client_go" | cut -d. -f2)"
ld="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ld+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done
(cd "$work" && go build -trimpath -ldflags "-s -w $ld" -o "$out/.helm.tmp" helm.sh/helm/v3/cmd/helm)
mv "$out/.helm.tmp" "$out/helm"
log "built $("$out/helm" version --short) in $(( $(date +%s) - start ))s into $out"
echo "$out"
