import assert from 'node:assert/strict';
import { LostHotplugs } from '../../../src/controllers/monitoredserver/lost-hotplugs.ts';

describe('LostHotplugs: a volume missing from the running IDS VMI for the whole grace period is lost', () => {
  it('judges a name lost only after it stood missing for the grace period without a break, and says when to look again', () => {
    const t = new LostHotplugs(30_000);
    assert.deepEqual(t.judge('ns/a', ['hs-x'], 1_000), { lost: new Set(), recheckAfterMs: 30_000 });
    assert.deepEqual(t.judge('ns/a', ['hs-x', 'hs-y'], 21_000), { lost: new Set(), recheckAfterMs: 10_000 });
    assert.deepEqual(t.judge('ns/a', ['hs-x', 'hs-y'], 31_000), { lost: new Set(['hs-x']), recheckAfterMs: 20_000 });
    // hs-x showed up in the VMI (a lagging watch event): forgotten; missing again, it starts over.
    assert.deepEqual(t.judge('ns/a', ['hs-y'], 32_000), { lost: new Set(), recheckAfterMs: 19_000 });
    assert.deepEqual(t.judge('ns/a', ['hs-x', 'hs-y'], 51_000), { lost: new Set(['hs-y']), recheckAfterMs: 30_000 });
  });

  it('keeps each MonitoredServer apart, and forgets one that is gone', () => {
    const t = new LostHotplugs(10);
    t.judge('ns/a', ['hs-x'], 0);
    assert.deepEqual(t.judge('ns/b', ['hs-x'], 10), { lost: new Set(), recheckAfterMs: 10 });
    assert.deepEqual(t.judge('ns/a', ['hs-x'], 10).lost, new Set(['hs-x']));
    t.forget('ns/a');
    assert.deepEqual(t.judge('ns/a', ['hs-x'], 20), { lost: new Set(), recheckAfterMs: 10 });
    assert.deepEqual(t.judge('ns/a', [], 30), { lost: new Set() }, 'nothing missing: nothing to look at again');
  });
});
