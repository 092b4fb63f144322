#!/usr/bin/env bash
# Builds hack/argocd/lua-health (Argo CD's way of running a health.lua, on gopher-lua from the Go
# module proxy) and caches it in ~/.cache/hyperspector/lua-health/<gopher-lua version>-<source hash>/.
#
# Prints the directory holding `lua-health` as its last line of stdout (progress goes to stderr).
#
# Environment:
#   HYPERSPECTOR_CACHE  cache root (default: ~/.cache/hyperspector)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=packaging-versions.env
source "$here/packaging-versions.env"
src="$here/argocd/lua-health"

log() { printf '[lua-health] %s\n' "$*" >&2; }

grep -q "github.com/yuin/gopher-lua $GOPHER_LUA_VERSION" "$src/go.mod" \
  || { log "hack/argocd/lua-health/go.mod does not require gopher-lua $GOPHER_LUA_VERSION (packaging-versions.env)"; exit 1; }

cache_root="${HYPERSPECTOR_CACHE:-$HOME/.cache/hyperspector}"
hash="$(cat "$src/go.mod" "$src/go.sum" "$src"/*.go | sha256sum | cut -c1-12)"
out="$cache_root/lua-health/gopher-lua-$GOPHER_LUA_VERSION-$hash"
mkdir -p "$out"
if [[ -x "$out/lua-health" ]]; then
  log "using cached lua-health in $out"
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { log "Go is required to build lua-health"; exit 1; }
exec 9>"$out/.lock"
flock 9
if [[ ! -x "$out/lua-health" ]]; then
  start=$(date +%s)
  log "building lua-health with gopher-lua $GOPHER_LUA_VERSION ..."
  (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -ldflags "-s -w" -o "$out/.lua-health.tmp" .)
  mv "$out/.lua-health.tmp" "$out/lua-health"
  log "built lua-health in $(( $(date +%s) - start ))s into $out"
fi
echo "$out"
