import type { Lease, LeaseLock } from '../runtime/leader-election.ts';
import { KubeApiError } from '../client/rest.ts';

/**
 * One in-memory Lease shared by several electors, with the API server's optimistic concurrency:
 * an update carrying a stale resourceVersion fails with 409. `down` makes every call fail as if the
 * API server were unreachable; `hang` makes calls never answer. Faults can also be given per lock,
 * to cut off one replica only.
 */
export interface LockFaults {
  down?: boolean;
  hang?: boolean;
}

export class FakeLeaseStore {
  lease: Lease | undefined;
  down = false;
  hang = false;
  writes = 0;
  private version = 0;

  lock(faults: LockFaults = {}, namespace = 'hyperspector-system', name = 'hyperspector-operator'): LeaseLock {
    const check = async () => {
      if (this.hang || faults.hang) await new Promise(() => {});
      if (this.down || faults.down) throw new KubeApiError('connect ECONNREFUSED', undefined);
    };
    return {
      namespace,
      name,
      description: `Lease ${namespace}/${name}`,
      get: async () => {
        await check();
        return this.lease ? structuredClone(this.lease) : undefined;
      },
      create: async (lease) => {
        await check();
        if (this.lease) throw new KubeApiError('leases already exists', 409, 'AlreadyExists');
        return this.store(lease);
      },
      update: async (lease) => {
        await check();
        if (!this.lease) throw new KubeApiError('leases not found', 404, 'NotFound');
        if (lease.metadata.resourceVersion !== this.lease.metadata.resourceVersion) throw new KubeApiError('the object has been modified', 409, 'Conflict');
        return this.store(lease);
      },
    };
  }

  private store(lease: Lease): Lease {
    this.writes++;
    // A lease the test put in place by hand may carry any resourceVersion; always move past it.
    this.version = Math.max(this.version, Number(this.lease?.metadata.resourceVersion ?? 0));
    this.lease = structuredClone({ ...lease, metadata: { ...lease.metadata, resourceVersion: String(++this.version) } });
    return structuredClone(this.lease);
  }
}
