#!/usr/bin/env bash
# npm run demo: the product on an embedded local cluster (real control plane, KubeVirt's own
# virt-controller and virt-api, a virt-handler stand-in) whose node runs real QEMU guests: the
# server's process table read from its memory and an alert's Event (hack/demo.ts).
# `npm run demo -- --kwok` is the object-only demo on kwok nodes (no root, no QEMU).
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
if [[ " $* " != *" --kwok "* ]]; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "[demo] real guests need root (network namespaces, cgroups, QEMU); run as root, or: npm run demo -- --kwok" >&2
    exit 1
  fi
  echo "[demo] checking host packages (QEMU, iproute2, the Debian kernel the guests boot)"
  bash hack/install-host-deps.sh
  # The guest-memory reader's batched path (process_vm_readv), built against this Node in a second.
  bash hack/build-native.sh
fi
# Node 24 from node_modules (the `node` dev dependency), also when run as `bash hack/demo.sh`
# rather than `npm run demo`. One process (node with tsx's loader, not the tsx wrapper, which
# SIGKILLs a child that does not acknowledge a relayed Ctrl-C within 30 ms): Ctrl-C reaches the
# demo itself, which cleans up before it exits.
export PATH="$PWD/node_modules/.bin:$PATH"
exec node --import tsx hack/demo.ts "$@"
