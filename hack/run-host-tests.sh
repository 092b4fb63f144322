#!/usr/bin/env bash
# Host-level tests: real Linux networking (network namespaces) and a real Linux guest under QEMU.
# They need root and the Debian packages of hack/deps/*.packages.
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/install-host-deps.sh
bash hack/build-native.sh
shopt -s globstar nullglob
files=(test/host/**/*.test.ts)
if [[ ${#files[@]} -eq 0 ]]; then
  echo "[host] no host-level tests yet"
  exit 0
fi
exec mocha --config .mocharc.json --timeout 900000 "${files[@]}"
