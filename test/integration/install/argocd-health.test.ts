// health.lua for MonitoredServer, run the way Argo CD runs it (gopher-lua, argocd-cm libraries):
// every case of its health_test.yaml (Argo CD's resource-customization test format), and the
// runner's own fidelity to Argo CD (invalid statuses become Unknown, no string library).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parse } from 'yaml';
import { WARNING_REASONS } from '../../../src/controllers/monitoredserver/reasons.ts';
import { argoHealth, HEALTH_LUA, luaHealthBinary } from './install-support.ts';

interface HealthTests {
  tests: Array<{ healthStatus: { status: string; message?: string }; inputPath: string }>;
}

const dir = dirname(HEALTH_LUA);
const cases = (parse(readFileSync(join(dir, 'health_test.yaml'), 'utf8')) as HealthTests).tests;

describe('Argo CD health of a MonitoredServer (health.lua in gopher-lua)', function () {
  this.timeout(300_000); // the first run builds the runner

  it('calls Degraded exactly the reasons the operator publishes as Warning Events', function () {
    const block = /local degradedReasons = \{([^}]*)\}/.exec(readFileSync(HEALTH_LUA, 'utf8'))?.[1] ?? '';
    const reasons = [...block.matchAll(/(\w+) = true/g)].map((m) => m[1]);
    assert.deepEqual(reasons.sort(), [...WARNING_REASONS].sort());
  });

  it('has a case for every health status it returns', function () {
    assert.deepEqual([...new Set(cases.map((c) => c.healthStatus.status))].sort(), ['Degraded', 'Healthy', 'Progressing', 'Suspended']);
  });

  for (const c of cases) {
    it(`${c.inputPath}: ${c.healthStatus.status}`, function () {
      const obj = parse(readFileSync(join(dir, c.inputPath), 'utf8')) as object;
      assert.deepEqual(argoHealth([obj])[0], c.healthStatus);
    });
  }

  describe('the runner, as Argo CD', function () {
    let tmp: string;
    let runner: string;
    before(function () {
      tmp = mkdtempSync(join(tmpdir(), 'lua-health-'));
      runner = luaHealthBinary();
    });
    after(() => rmSync(tmp, { recursive: true, force: true }));

    const runScript = (script: string, args: string[] = []) => {
      writeFileSync(join(tmp, 'health.lua'), script);
      return spawnSync(runner, [...args, join(tmp, 'health.lua')], { input: JSON.stringify({ metadata: { name: 'x' } }), encoding: 'utf8' });
    };

    it('turns a status Argo CD does not know into Unknown', function () {
      const res = runScript('return {status = "Fine", message = "?"}');
      assert.equal(res.status, 0, res.stderr);
      assert.deepEqual(JSON.parse(res.stdout), [{ status: 'Unknown', message: 'Lua returned an invalid health status' }]);
    });

    it('offers argocd-cm scripts no string library unless useOpenLibs', function () {
      const script = 'return {status = "Healthy", message = string.upper(obj.metadata.name)}';
      const closed = runScript(script);
      assert.notEqual(closed.status, 0);
      assert.match(closed.stderr, /string/);
      const open = runScript(script, ['-open-libs']);
      assert.deepEqual(JSON.parse(open.stdout), [{ status: 'Healthy', message: 'X' }]);
    });

    it('refuses a script that returns no table', function () {
      const res = runScript('return "Healthy"');
      assert.notEqual(res.status, 0);
      assert.match(res.stderr, /expect table output from Lua script, not string/);
    });
  });
});
