// The kube runtime tests need only core APIs and the project's own CRD, so they skip installing
// third-party CRDs: that keeps them quick and independent of those CRDs.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCluster, type LocalCluster } from '../../../testenv/cluster/local-cluster.ts';

export function startRuntimeTestCluster(): Promise<LocalCluster> {
  return startCluster({ nodes: 1, thirdPartyCrdDir: mkdtempSync(join(tmpdir(), 'no-third-party-crds-')) });
}
