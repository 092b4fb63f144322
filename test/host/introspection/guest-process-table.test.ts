// End to end: a real Debian kernel boots under QEMU with known processes; the process table read
// from outside (guest memory only) must equal the guest's own `ps`, with and without KASLR.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestIntrospector } from '../../../src/introspection/guest-introspector.ts';
import { ProfileMismatchError } from '../../../src/introspection/kernel-locator.ts';
import type { ProcessSnapshot } from '../../../src/introspection/process-info.ts';
import { QemuGuest } from '../../support/guest/qemu-guest.ts';
import { asPsRow, guestPs, KNOWN_COMMS, START_KNOWN_PROCESSES, waitForGuestPs, type PsRow } from '../../support/guest/scenario.ts';
import { testGuestAssets } from '../../support/guest/test-guest.ts';

const byPid = (rows: PsRow[]) => [...rows].sort((a, b) => a.pid - b.pid);

for (const variant of [
  { title: 'nokaslr', kaslr: false, cpu: undefined, memoryMiB: 256 },
  // qemu64 has no LA57, so this boot also covers 4-level paging (the other gets 5-level under TCG's "max").
  { title: 'KASLR on', kaslr: true, cpu: 'qemu64', memoryMiB: 256 },
  // q35 keeps 2 GiB below the PCI hole and puts the rest at 4 GiB; physical KASLR may load the kernel up there.
  { title: 'KASLR on, 3 GiB split around the PCI hole', kaslr: true, cpu: 'qemu64', memoryMiB: 3072 },
]) {
  describe(`introspected process table vs the guest's own ps (${variant.title})`, function () {
    this.timeout(300_000);
    let guest: QemuGuest;
    let introspector: GuestIntrospector;

    before(async () => {
      const assets = testGuestAssets();
      guest = await QemuGuest.boot({ kernel: assets.kernel.vmlinuz, initrd: assets.initrd, kaslr: variant.kaslr, cpu: variant.cpu, memoryMiB: variant.memoryMiB });
      for (const line of START_KNOWN_PROCESSES) await guest.run(line);
      // Each script runs a sleep child once started; wait until all of them are there.
      await waitForGuestPs(guest, (rows) => KNOWN_COMMS.every((c) => rows.some((r) => r.comm === c)) && rows.filter((r) => r.comm === 'sleep').length >= 4, 60_000);
      introspector = GuestIntrospector.attachToQemu(guest.pid, [assets.profile]);
      assert.equal(introspector.memory.ranges.length, variant.memoryMiB > 2048 ? 2 : 1);
    });

    after(async () => {
      introspector?.close();
      await guest?.stop();
    });

    it('resolves KASLR as configured', () => {
      const snapshot = introspector.snapshot();
      const { virtualSlide, physicalSlide } = snapshot.kernel;
      if (variant.kaslr) assert.ok(virtualSlide !== '0x0' || physicalSlide !== '0x0', `KASLR on but no slide found: ${JSON.stringify(snapshot.kernel)}`);
      else assert.deepEqual([virtualSlide, physicalSlide], ['0x0', '0x0']);
      // qemu64 lacks LA57; TCG's "max" CPU has it, so the Debian kernel (CONFIG_X86_5LEVEL) uses 5 levels.
      // Under KVM with -cpu host it depends on the host CPU, which then must be one of the two.
      const expectedLevels = variant.cpu === 'qemu64' ? [4] : guest.accelerator === 'tcg' ? [5] : [4, 5];
      assert.ok(expectedLevels.includes(snapshot.kernel.pagingLevels), `paging levels ${snapshot.kernel.pagingLevels}, expected ${expectedLevels.join(' or ')}`);
      process.stderr.write(`[introspection] ${variant.title}: accelerator ${guest.accelerator}, kernel ${JSON.stringify(snapshot.kernel)}\n`);
    });

    it('lists exactly the processes of the guest ps, with pid, ppid, comm, uid and command line', async () => {
      // The guest keeps running: a kernel worker may come or go between the two reads, so compare
      // a quiet moment (the same table read from outside before and after the guest's ps).
      let last: { outside: PsRow[]; inside: PsRow[] } | undefined;
      for (let attempt = 0; attempt < 5; attempt++) {
        const before: ProcessSnapshot = introspector.snapshot();
        const inside = (await guestPs(guest)).filter((r) => !(r.comm === 'ps' && r.ppid === 1)); // the ps itself
        const after = introspector.snapshot();
        assert.ok(before.consistent && after.consistent, `inconsistent snapshot: ${[...before.problems, ...after.problems].join('; ')}`);
        const outside = byPid(after.processes.map(asPsRow));
        last = { outside, inside: byPid(inside) };
        if (JSON.stringify(byPid(before.processes.map(asPsRow))) === JSON.stringify(outside) && JSON.stringify(outside) === JSON.stringify(last.inside)) break;
      }
      assert.deepEqual(last!.outside, last!.inside);
      // The known processes are really there, as the right users and with their arguments.
      const table = new Map(last!.outside.map((r) => [r.comm, r]));
      assert.equal(table.get('web-frontend')?.args, '/bin/sh /usr/bin/web-frontend --port 8080 --workers 2');
      assert.equal(table.get('batch-worker')?.uid, 1000);
      assert.equal(table.get('batch-worker')?.args, '/bin/sh /usr/bin/batch-worker --queue reports --nice 5');
      assert.equal(table.get('log-shipper')?.uid, 1001);
      assert.ok(last!.outside.some((r) => r.comm === 'sleep' && r.args === 'sleep 100000' && r.ppid === 1));
    });

    it('refuses a profile of another kernel build, naming the running one', () => {
      const other = structuredClone(testGuestAssets().profile);
      other.kernel.banner = other.kernel.banner.replace(/#\S* /, '#999 ');
      assert.notEqual(other.kernel.banner, testGuestAssets().profile.kernel.banner);
      assert.throws(() => GuestIntrospector.attachToQemu(guest.pid, [other]), (err: Error) => {
        assert.ok(err instanceof ProfileMismatchError, String(err));
        assert.equal(err.runningBanner, testGuestAssets().profile.kernel.banner);
        return true;
      });
    });

    it('is what kubectl-hyperspector ps --qemu-pid prints', () => {
      const dir = mkdtempSync(join(tmpdir(), 'hs-profile-'));
      try {
        const profileFile = join(dir, 'profile.json');
        writeFileSync(profileFile, JSON.stringify(testGuestAssets().profile));
        const out = execFileSync(process.execPath, ['bin/kubectl-hyperspector.js', 'ps', '--qemu-pid', String(guest.pid), '--profile', profileFile], { encoding: 'utf8' });
        const lines = out.trimEnd().split('\n');
        assert.match(lines[0]!, /^PID\s+PPID\s+UID\s+STAT\s+START\s+COMMAND\s+ARGS$/);
        assert.ok(lines.some((l) => /^\d+\s+1\s+1000\s+S\s+\S+s\s+batch-worker\s+\/bin\/sh \/usr\/bin\/batch-worker --queue reports --nice 5$/.test(l)), out);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('reports states and start times that make sense', () => {
      const s = introspector.snapshot();
      const init = s.processes.find((p) => p.pid === 1)!;
      const worker = s.processes.find((p) => p.comm === 'web-frontend')!;
      assert.equal(init.kernelThread, false);
      assert.ok(s.processes.find((p) => p.pid === 2)?.kernelThread, 'kthreadd is a kernel thread');
      assert.ok(worker.startTimeNs > init.startTimeNs);
      assert.equal(worker.state, 'S');
      assert.equal(worker.gid, 0);
    });
  });
}
