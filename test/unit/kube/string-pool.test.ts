import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { internStrings, StringPool } from '../../../src/kube/runtime/string-pool.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Heap used after a full GC. */
function heapUsed(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** 1000 Secrets as a watch hands them over: each parsed from its own JSON text, so each has its own copy of the 5 KB script. */
function parsedSecrets(): Array<{ metadata: { name: string; uid: string }; data: Record<string, string> }> {
  const script = Buffer.from('#!/bin/sh\n'.padEnd(4000, '# the same forwarder in every IDS VM\n')).toString('base64');
  return Array.from({ length: 1000 }, (_, i) => JSON.parse(JSON.stringify({ metadata: { name: `s-${i}`, uid: `uid-${i}` }, data: { forwarder: script, networkdata: `address ${i}` } })));
}

describe('string pool: one copy of each repeated string the caches keep', () => {
  it('1000 parsed Secrets carrying the same 5 KB script keep one copy of it once interned', () => {
    const base = heapUsed();
    const plain = parsedSecrets();
    const withCopies = heapUsed() - base;
    const pool = new StringPool();
    const interned = parsedSecrets().map((s) => internStrings(s, pool));
    const withPool = heapUsed() - base - withCopies;
    assert.equal(interned[999]!.data.forwarder, plain[0]!.data.forwarder, 'the values are unchanged');
    assert.equal(interned[7]!.data.networkdata, 'address 7');
    assert.ok(withCopies > 4_000_000, `1000 copies: ${withCopies} bytes`);
    assert.ok(withPool < withCopies / 4, `interned: ${withPool} bytes against ${withCopies} with a copy each`);
  });

  it('leaves values unique by nature out of the pool, and walks arrays and nested objects', () => {
    const pool = new StringPool();
    const obj = { metadata: { uid: 'u-1', resourceVersion: '42', creationTimestamp: '2026-12-01T00:00:00Z', labels: { a: 'b' } }, status: { conditions: [{ type: 'Ready', lastTransitionTime: 't' }] }, list: ['x', ['y']] };
    assert.equal(internStrings(obj, pool), obj);
    assert.equal(pool.size, 4, 'b, Ready, x, y');
  });

  it('keeps a bounded number of long values: changing ones (tokens, network data) pass through', () => {
    const pool = new StringPool();
    for (let i = 0; i < 1000; i++) pool.intern(`${'t'.repeat(200)}${i}`);
    assert.ok(pool.size <= 64, `${pool.size} long values kept`);
    const frozen = Object.freeze({ a: 'constant' });
    assert.equal(internStrings(frozen, pool), frozen, 'a frozen object is left as it is');
  });
});
