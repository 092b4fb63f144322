import assert from 'node:assert/strict';
import { reconcileUntilStable } from '../../../src/dataplane/reconcile.ts';
import { namedNetns, netnsOfPid } from '../../../src/dataplane/netns.ts';

describe('data plane reconcile loop', () => {
  it('repeats observe-plan-apply until a step runs nothing, and counts the commands', async () => {
    const plans = [3, 2, 0];
    assert.deepEqual(await reconcileUntilStable('test', async () => plans.shift()!), { commandsRun: 5 });
  });

  it('fails loudly when the kernel never matches the plan', async () => {
    await assert.rejects(reconcileUntilStable('flapping mirror', async () => 1, 3), /flapping mirror did not converge after 3 rounds/);
  });
});

describe('network namespace references', () => {
  it('names a launcher pod by pid for nsenter and for ip link ... netns', () => {
    assert.deepEqual(netnsOfPid(4242), { path: '/proc/4242/ns/net', label: 'pid:4242', ipNetnsArg: '4242' });
    assert.deepEqual(namedNetns('hs-1-node0'), { path: '/run/netns/hs-1-node0', label: 'hs-1-node0', ipNetnsArg: 'hs-1-node0' });
    assert.throws(() => netnsOfPid(0), /Invalid pid/);
    assert.throws(() => namedNetns('../etc'), /Invalid network namespace name/);
  });
});
