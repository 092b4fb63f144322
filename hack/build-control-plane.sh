#!/usr/bin/env bash
# Builds the local control plane from the Go module proxy and caches it, keyed by version:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok.
#
# Prints the directory holding the binaries as its last line of stdout (progress goes to stderr).
#
# Environment:
#   HYPERSPECTOR_ASSETS / KUBEBUILDER_ASSETS  directory of prebuilt binaries; any binary found
#                                             there is used as is and not built (envtest's assets
#                                             hold etcd, kube-apiserver and kubectl).
#   HYPERSPECTOR_CACHE                         cache root (default: ~/.cache/hyperspector)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=control-plane-versions.env
source "$here/control-plane-versions.env"

log() { printf '[control-plane] %s\n' "$*" >&2; }

cache_root="${HYPERSPECTOR_CACHE:-$HOME/.cache/hyperspector}"
key="k8s-${KUBERNETES_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}"
out="$cache_root/control-plane/$key"
mkdir -p "$out"

prebuilt="${HYPERSPECTOR_ASSETS:-${KUBEBUILDER_ASSETS:-}}"
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)

missing=()
for b in "${binaries[@]}"; do
  if [[ -n "$prebuilt" && -x "$prebuilt/$b" ]]; then
    ln -sf "$prebuilt/$b" "$out/$b"
  elif [[ ! -x "$out/$b" ]]; then
    missing+=("$b")
  fi
done

# kwok's own default pod stages of this release, for the harness to adapt (testenv/cluster/kwok.ts).
copy_kwok_stages() {
  [[ -s "$out/kwok-stages/pod-delete.yaml" ]] && return 0
  command -v go >/dev/null || return 0
  local dir
  dir="$(cd "$(mktemp -d)" && go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  [[ -d "$dir/kustomize/stage/pod/fast" ]] || return 0
  mkdir -p "$out/kwok-stages"
  cp "$dir"/kustomize/stage/pod/fast/pod-*.yaml "$out/kwok-stages/"
  chmod -R u+w "$out/kwok-stages"
  log "copied kwok $KWOK_VERSION's default pod stages"
}

if [[ ${#missing[@]} -eq 0 ]]; then
  copy_kwok_stages
  log "using cached binaries in $out"
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { log "Go is required to build: ${missing[*]}"; exit 1; }

# Serialize concurrent builds of the same key (two test runs started at once).
exec 9>"$out/.lock"
flock 9

work="$cache_root/control-plane/build-$key"
mkdir -p "$work"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
start=$(date +%s)
step=0
total=${#missing[@]}

want() { [[ " ${missing[*]} " == *" $1 "* ]] && [[ ! -x "$out/$1" ]]; }

build() { # build <name> <package> <ldflags> (run inside a module directory)
  local name=$1 pkg=$2 ldflags=$3 t0
  step=$((step + 1))
  t0=$(date +%s)
  log "[$step/$total] building $name ($pkg) ... (cold builds take minutes on 2 cores)"
  go build -trimpath -ldflags "-s -w $ldflags" -o "$out/.$name.tmp" "$pkg"
  mv "$out/.$name.tmp" "$out/$name"
  log "[$step/$total] built $name in $(( $(date +%s) - t0 ))s"
}

# --- Kubernetes: k8s.io/kubernetes replaces its staging modules with local paths, so it cannot
# be built with `go install pkg@version`. A scratch module requires it and points each staging
# module at its published v0.<minor>.<patch> version instead.
if want kube-apiserver || want kube-controller-manager || want kube-scheduler || want kubectl; then
  kdir="$work/kubernetes"
  mkdir -p "$kdir"
  staging_version="v0.${KUBERNETES_VERSION#v1.}"
  if [[ ! -f "$kdir/go.sum" ]]; then
    log "resolving k8s.io/kubernetes@$KUBERNETES_VERSION and its staging modules ($staging_version)"
    modfile="$(cd "$kdir" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
    {
      echo "module hyperspector.local/control-plane-build"
      echo
      echo "go 1.25"
      echo
      echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
      echo
      echo "replace ("
      grep -E '^\s+k8s\.io/[a-z0-9-]+ => \./staging/' "$modfile" | awk -v v="$staging_version" '{print "\t" $1 " => " $1 " " v}'
      echo ")"
    } >"$kdir/go.mod"
    cat >"$kdir/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
    (cd "$kdir" && go mod tidy >&2)
  fi
  minor="${KUBERNETES_VERSION#v1.}"; minor="${minor%%.*}"
  vars="gitVersion=$KUBERNETES_VERSION gitMajor=1 gitMinor=$minor gitTreeState=clean buildDate=1970-01-01T00:00:00Z"
  ld=""
  for kv in $vars; do
    ld+=" -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
  done
  for b in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    if want "$b"; then (cd "$kdir" && build "$b" "k8s.io/kubernetes/cmd/$b" "$ld"); step=$((step + 1)); fi
  done
fi

# --- etcd: its server module has a main package at its root.
if want etcd; then
  edir="$work/etcd"
  mkdir -p "$edir"
  if [[ ! -f "$edir/go.mod" ]]; then
    (cd "$edir" && go mod init hyperspector.local/etcd-build >/dev/null 2>&1 && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2)
  fi
  (cd "$edir" && build etcd go.etcd.io/etcd/server/v3 "")
  step=$((step + 1))
fi

# --- kwok
if want kwok; then
  wdir="$work/kwok"
  mkdir -p "$wdir"
  if [[ ! -f "$wdir/go.mod" ]]; then
    (cd "$wdir" && go mod init hyperspector.local/kwok-build >/dev/null 2>&1 && go get "sigs.k8s.io/kwok@$KWOK_VERSION" >&2)
  fi
  (cd "$wdir" && build kwok sigs.k8s.io/kwok/cmd/kwok "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION")
  step=$((step + 1))
fi

copy_kwok_stages
log "control plane ready in $out (built in $(( $(date +%s) - start ))s)"
echo "$out"
