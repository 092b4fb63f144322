#!/usr/bin/env bash
# Builds KubeVirt's own virt-controller and virt-api from the Go module proxy and caches them,
# keyed by version. Prints the directory holding the binaries as its last line of stdout
# (progress goes to stderr).
#
# kubevirt.io/kubevirt replaces its staging modules (kubevirt.io/api, kubevirt.io/client-go) with
# local paths, so `go install pkg@version` cannot build it. A scratch module requires it, points the
# staging modules at their published versions, copies the other replace lines and starts from
# KubeVirt's own go.sum.
#
# Environment:
#   HYPERSPECTOR_CACHE       cache root (default: ~/.cache/hyperspector)
#   HYPERSPECTOR_KUBEVIRT_BIN directory of prebuilt virt-controller and virt-api (used as is)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=kubevirt-version.env
source "$here/kubevirt-version.env"

log() { printf '[kubevirt] %s\n' "$*" >&2; }

cache_root="${HYPERSPECTOR_CACHE:-$HOME/.cache/hyperspector}"
out="$cache_root/kubevirt/$KUBEVIRT_VERSION"
mkdir -p "$out"
binaries=(virt-controller virt-api install-manifests)

# install-manifests is our own program: rebuilt (and its output rendered again) when it changes.
manifests_sum="$(sha256sum "$here/kubevirt/install-manifests.go" | cut -d' ' -f1)"
if [[ "$(cat "$out/install-manifests.sha256" 2>/dev/null)" != "$manifests_sum" ]]; then
  rm -f "$out/install-manifests" "$out/install.jsonl"
fi

missing=()
for b in "${binaries[@]}"; do
  if [[ -n "${HYPERSPECTOR_KUBEVIRT_BIN:-}" && -x "$HYPERSPECTOR_KUBEVIRT_BIN/$b" ]]; then
    ln -sf "$HYPERSPECTOR_KUBEVIRT_BIN/$b" "$out/$b"
  elif [[ ! -x "$out/$b" ]]; then
    missing+=("$b")
  fi
done
# A kill mid-render leaves only the temporary file; the rendered manifests are part of the cache.
if [[ ${#missing[@]} -eq 0 && -s "$out/install.jsonl" ]]; then
  log "using cached binaries in $out"
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { log "Go is required to build: ${missing[*]}"; exit 1; }
exec 9>"$out/.lock"
flock 9

work="$cache_root/kubevirt/build-$KUBEVIRT_VERSION"
mkdir -p "$work"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
start=$(date +%s)

if [[ ! -f "$work/.resolved" ]]; then
  log "resolving kubevirt.io/kubevirt@$KUBEVIRT_VERSION (module download; a cold cache takes a few minutes)"
  src="$(cd "$work" && go mod download -json "kubevirt.io/kubevirt@$KUBEVIRT_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  [[ -d "$src" ]] || { log "could not download kubevirt.io/kubevirt@$KUBEVIRT_VERSION"; exit 1; }
  goversion="$(sed -n 's/^go \([0-9.]*\).*/\1/p' "$src/go.mod")"
  {
    echo "module hyperspector.local/kubevirt-build"
    echo
    echo "go $goversion"
    echo
    echo "require ("
    echo "	kubevirt.io/kubevirt $KUBEVIRT_VERSION"
    echo "	kubevirt.io/api $KUBEVIRT_VERSION"
    echo "	kubevirt.io/client-go $KUBEVIRT_VERSION"
    echo ")"
    echo
    # every replace line of KubeVirt's go.mod except those to its local staging directories
    awk '/^replace \(/{inblock=1; next} inblock && /^\)/{inblock=0} inblock && NF && $0 !~ /=> \.\// {print}' "$src/go.mod" \
      | { echo "replace ("; cat; echo ")"; }
  } >"$work/go.mod"
  cp "$src/go.sum" "$work/go.sum"
  chmod u+w "$work/go.sum"
  cat >"$work/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "kubevirt.io/kubevirt/cmd/virt-api"
	_ "kubevirt.io/kubevirt/cmd/virt-controller"
	_ "kubevirt.io/kubevirt/pkg/virt-operator/resource/generate/install"
)
GO
  (cd "$work" && go mod tidy >&2)
  touch "$work/.resolved"
fi

vars="gitVersion=$KUBEVIRT_VERSION gitTreeState=clean buildDate=1970-01-01T00:00:00Z"
ld=""
for kv in $vars; do ld+=" -X kubevirt.io/client-go/version.$kv"; done
step=0
# Our own small program (hack/kubevirt/install-manifests.go) that prints what virt-operator installs.
mkdir -p "$work/cmd/install-manifests"
cp "$here/kubevirt/install-manifests.go" "$work/cmd/install-manifests/main.go"
for b in "${missing[@]}"; do
  step=$((step + 1))
  t0=$(date +%s)
  pkg="kubevirt.io/kubevirt/cmd/$b"
  [[ $b == install-manifests ]] && pkg="./cmd/install-manifests"
  log "[$step/${#missing[@]}] building $b (cold builds take minutes on 2 cores)"
  (cd "$work" && go build -trimpath -ldflags "-s -w $ld" -o "$out/.$b.tmp" "$pkg")
  mv "$out/.$b.tmp" "$out/$b"
  log "[$step/${#missing[@]}] built $b in $(( $(date +%s) - t0 ))s"
done
# The manifests depend only on the version: render them once, next to the binaries.
if [[ ! -s "$out/install.jsonl" ]]; then
  "$out/install-manifests" kubevirt >"$out/.install.jsonl.tmp" 2>/dev/null
  mv "$out/.install.jsonl.tmp" "$out/install.jsonl"
  echo "$manifests_sum" >"$out/install-manifests.sha256"
  log "rendered virt-operator's install manifests to $out/install.jsonl"
fi
log "KubeVirt $KUBEVIRT_VERSION ready in $out (built in $(( $(date +%s) - start ))s)"
echo "$out"
