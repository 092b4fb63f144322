import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { createLogger, errorField } from '../../../src/kube/util/logger.ts';

function capture(): { stream: PassThrough; lines: () => Record<string, unknown>[] } {
  const stream = new PassThrough();
  const chunks: string[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk.toString()));
  return {
    stream,
    lines: () => chunks.join('').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe('logger', () => {
  it('writes one JSON object per line with the child fields and default meta', async () => {
    const out = capture();
    const log = createLogger({ stream: out.stream, defaultMeta: { component: 'hyperspector-operator' } });
    log.child({ key: 'shop/web-1', reconcileID: 'r-1' }).info('Applied IDS VirtualMachine', { name: 'web-1-ids' });
    await new Promise((resolve) => setImmediate(resolve));
    const [line] = out.lines();
    assert.ok(line);
    assert.equal(line.message, 'Applied IDS VirtualMachine');
    assert.equal(line.level, 'info');
    assert.equal(line.key, 'shop/web-1');
    assert.equal(line.reconcileID, 'r-1');
    assert.equal(line.name, 'web-1-ids');
    assert.equal(line.component, 'hyperspector-operator');
    assert.equal(typeof line.timestamp, 'string');
  });

  it('drops lines below the configured level', async () => {
    const out = capture();
    const log = createLogger({ stream: out.stream, level: 'warn' });
    log.info('Started worker');
    log.warn('Lost lease', { name: 'hyperspector' });
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(out.lines().map((l) => l.message), ['Lost lease']);
  });

  it('renders errors and other thrown values as a message', () => {
    assert.equal(errorField(new Error('boom')), 'boom');
    assert.equal(errorField('plain'), 'plain');
  });
});
