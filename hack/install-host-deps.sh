#!/usr/bin/env bash
# Installs the Debian packages the host-level tests need. Each area lists its packages in
# hack/deps/<area>.packages (one per line); only missing packages are installed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mapfile -t wanted < <(cat "$here"/deps/*.packages 2>/dev/null | sed 's/#.*//' | awk 'NF' | sort -u)
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "[deps] host packages present"
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "[deps] missing Debian packages: ${missing[*]} (run as root or install them)" >&2
  exit 1
fi
echo "[deps] installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "[deps] installed"
