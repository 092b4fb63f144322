# HyperSpector: one image, three entry points (the working directory is /app):
#   operator        node dist/src/main.js          (the default ENTRYPOINT; the Helm chart's Deployment)
#   process-mapper  node dist/src/sidecar/main.js  (the sidecar Pod the operator creates per server)
#   node agent      node dist/src/agent/main.js    (the node agent DaemonSet of the Helm chart)
# Build anywhere with `docker build .`; without a registry, hack/build-image.sh builds it with buildah
# on a local Node base (`--from` replaces the first FROM below).
ARG NODE_IMAGE=docker.io/library/node:24-bookworm-slim
FROM ${NODE_IMAGE} AS node

# --- build: compile TypeScript with the dev dependencies ----------------------------------------
FROM node AS build
# A private CA for a TLS-intercepting proxy in front of the npm registry, if there is one: a path
# inside the build (mounted by the builder), used by npm only; it is not part of the image.
ARG NODE_EXTRA_CA_CERTS
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: the `node` dev dependency would download a second Node binary; tsc needs none.
RUN npm ci --no-audit --no-fund --no-update-notifier --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json && find dist -name '*.map' -delete

# --- production dependencies only ----------------------------------------------------------------
FROM node AS deps
ARG NODE_EXTRA_CA_CERTS
# node-liblzma ships no Linux prebuild: it compiles against the system liblzma (liblzma5 is in
# every Debian image, so the runtime needs nothing more).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ pkg-config liblzma-dev \
 && rm -rf /var/lib/apt/lists/*
# Node's headers come with the image (/usr/local/include/node): node-gyp needs no download.
ENV npm_config_nodedir=/usr/local
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --no-update-notifier && npm cache clean --force
# The guest-memory reader's native module (process_vm_readv in batches; src/introspection/native-range-reader.ts).
COPY native/guest-memory.c ./native/
COPY hack/build-native.sh ./hack/
RUN NODE_INCLUDE_DIR=/usr/local/include/node bash hack/build-native.sh

# --- runtime ----------------------------------------------------------------------------------------
# What changes least comes first, so a rebuild after a source change redoes only the last layers.
FROM node AS runtime
# npm and Node's headers are build tools: not in the runtime file system.
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/bin/npm /usr/local/bin/npx /usr/local/include/node
# The node agent's kernel clients (src/dataplane/kernel-commands.ts): ip, tc and bridge (iproute2)
# and nft (nftables); nsenter comes with util-linux, which every Debian image has.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 nftables \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
# A numeric non-root user, so Kubernetes can verify runAsNonRoot. The process-mapper Pod runs as
# root (it must read QEMU's memory); the operator and the agent need no privileges of the image.
# The files below stay owned by root: the application cannot modify itself.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["node", "dist/src/main.js"]
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY --from=deps /app/native/build ./native/build
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="hyperspector" \
      org.opencontainers.image.description="HyperSpector operator, process-mapper sidecar and node agent: isolated IDS VMs for KubeVirt" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/hyperspector/hyperspector"
