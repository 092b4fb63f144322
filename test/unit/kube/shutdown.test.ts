import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { handleTerminationSignals, type SignalSource } from '../../../src/kube/runtime/shutdown.ts';
import { flushPromises } from '../../../src/kube/testing/fake-clock.ts';

function fakeProcess() {
  const emitter = new EventEmitter();
  const exits: number[] = [];
  const source: SignalSource & { emit: (s: string) => void } = {
    once: (s, l) => emitter.once(s, l),
    removeListener: (s, l) => emitter.removeListener(s, l),
    exit: (code) => {
      exits.push(code);
    },
    emit: (s) => emitter.emit(s),
  };
  return { source, exits, emitter };
}

describe('handleTerminationSignals', () => {
  it('runs shutdown once on SIGTERM and exits 0 after it finished', async () => {
    const { source, exits } = fakeProcess();
    let release!: () => void;
    let calls = 0;
    handleTerminationSignals({ source, shutdown: () => (calls++, new Promise<void>((r) => (release = r))) });
    source.emit('SIGTERM');
    await flushPromises();
    assert.equal(calls, 1);
    assert.deepEqual(exits, [], 'does not exit before shutdown finished');
    release();
    await flushPromises();
    assert.deepEqual(exits, [0]);
  });

  it('exits 1 at once on a second signal, and 1 when shutdown fails', async () => {
    const { source, exits } = fakeProcess();
    handleTerminationSignals({ source, shutdown: () => new Promise<void>(() => {}) });
    source.emit('SIGINT');
    source.emit('SIGINT');
    assert.deepEqual(exits, [1]);
    const other = fakeProcess();
    handleTerminationSignals({ source: other.source, shutdown: async () => Promise.reject(new Error('drain failed')) });
    other.source.emit('SIGTERM');
    await flushPromises();
    assert.deepEqual(other.exits, [1]);
  });

  it('removes its handlers when asked', () => {
    const { source, emitter } = fakeProcess();
    const remove = handleTerminationSignals({ source, shutdown: async () => {} });
    assert.equal(emitter.listenerCount('SIGTERM'), 1);
    remove();
    assert.equal(emitter.listenerCount('SIGTERM'), 0);
    assert.equal(emitter.listenerCount('SIGINT'), 0);
  });
});
