// The process mapper with exactly the capabilities its pod gets (src/builders/process-mapper-pod.ts:
// not privileged, capabilities drop ALL, add SYS_PTRACE and DAC_READ_SEARCH), against a QEMU run by
// another user, as virt-launcher runs it (KubeVirt's qemu user, uid 107): it reads the guest's
// process table; with either capability alone it cannot, and says why. The capabilities are
// applied as a container runtime does (bounding set, no_new_privs), by the test kubelet's own code.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { buildProcessMapperPod } from '../../../src/builders/process-mapper-pod.ts';
import type { ProcessSnapshot } from '../../../src/introspection/process-info.ts';
import { monitoredServer } from '../../../testenv/fixtures/monitoredservers.ts';
import { QemuGuest } from '../../../testenv/guest/qemu-guest.ts';
import { SidecarProcess } from '../../../testenv/guest/sidecar-process.ts';
import { testGuestAssets } from '../../../testenv/guest/test-guest.ts';
import { capabilityLimits } from '../../../testenv/real-guests/pod-process.ts';
import { waitFor } from '../../../testenv/wait.ts';

const QEMU_USER = { uid: 107, gid: 107 };

describe('process mapper with its pod’s capabilities only, against a QEMU of another user (uid 107)', function () {
  this.timeout(600_000);
  const vmi = { namespace: 'hs-caps', name: 'web-1', uid: randomUUID() };
  let guest: QemuGuest;
  const pod = buildProcessMapperPod(monitoredServer('web-1', 'shop'), { nodeName: 'node-a', name: 'web-1', uid: vmi.uid, launcherPodUid: 'p', nodeUid: 'n' }, {
    namespace: 'hyperspector-system', image: 'x', serviceAccountName: 'hyperspector-process-mapper', serviceName: 'hyperspector-process-mappers', defaultKernelProfilesConfigMap: 'k',
  });
  const securityContext = pod.spec.containers[0]!.securityContext!;
  const start = (wrapper: string[]) => SidecarProcess.start(['--namespace', vmi.namespace, '--name', vmi.name, '--uid', vmi.uid, '--poll-interval', '500'], 60_000, wrapper);

  before(async () => {
    const assets = testGuestAssets();
    guest = await QemuGuest.boot({ kernel: assets.kernel.vmlinuz, initrd: assets.initrd, kaslr: true, ...vmi, runAs: QEMU_USER });
    const uids = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${guest.pid}/status`, 'utf8'))?.[1];
    assert.equal(uids, '107', 'QEMU runs as the qemu user');
  });

  after(async () => {
    await guest?.stop();
  });

  it('reads the process table with SYS_PTRACE and DAC_READ_SEARCH, as the pod spec gives them', async () => {
    assert.equal(securityContext.privileged, false);
    const limits = capabilityLimits(securityContext)!;
    assert.deepEqual(limits.slice(0, 3), ['setpriv', '--bounding-set', '-all,+sys_ptrace,+dac_read_search']);
    const sidecar = await start(limits);
    try {
      const effective = /^CapEff:\s+([0-9a-f]+)/m.exec(readFileSync(`/proc/${sidecar.pid}/status`, 'utf8'))?.[1];
      // CAP_DAC_READ_SEARCH = 2, CAP_SYS_PTRACE = 19.
      assert.equal(BigInt(`0x${effective}`), (1n << 2n) | (1n << 19n), 'the sidecar has exactly the two capabilities');
      const snapshot = await waitFor(async () => {
        const { status, body } = await sidecar.getJson<ProcessSnapshot & { qemuPid: number }>('/processes');
        return status === 200 && body.processes.some((p) => p.pid === 1) ? body : undefined;
      }, { timeoutMs: 120_000, intervalMs: 500, description: 'the process table of the uid-107 QEMU' });
      assert.equal(snapshot.qemuPid, guest.pid);
      // The same two capabilities let it read in process_vm_readv batches (PTRACE_MODE_ATTACH, as /proc/<pid>/mem).
      assert.match(sidecar.output, /"memoryReads":"process_vm_readv batches"/);
    } finally {
      await sidecar.stop();
    }
  });

  for (const [only, missing] of [['SYS_PTRACE', 'DAC_READ_SEARCH'], ['DAC_READ_SEARCH', 'SYS_PTRACE']] as const) {
    it(`cannot with ${only} alone (${missing} is needed too), and says so`, async () => {
      const sidecar = await start(capabilityLimits({ ...securityContext, capabilities: { drop: ['ALL'], add: [only] } })!);
      try {
        const error = await waitFor(async () => {
          const { status, body } = await sidecar.getJson<{ error?: string }>('/processes');
          return status === 503 && /permission denied|EACCES|EPERM|not permitted/i.test(body.error ?? '') ? body.error : undefined;
        }, { timeoutMs: 60_000, intervalMs: 500, description: `a permission error without ${missing}` });
        assert.match(error ?? '', new RegExp(String(guest.pid)), `the error names the QEMU: ${error}`);
      } finally {
        await sidecar.stop();
      }
    });
  }
});
