// The container image, built for real from the Dockerfile (hack/build-image.sh: buildah on a local
// Debian + Node 24 base, no registry), and each of its entry points started inside it.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { NO_KUBECONFIG_MESSAGE } from '../../../src/operator.ts';
import { REPO_ROOT } from '../../../testenv/repo-root.ts';

const run = promisify(execFile);
// The buildah storage hack/build-image.sh builds into (overlay or vfs).
const storage = execFileSync('bash', [join(REPO_ROOT, 'hack', 'build-image.sh'), '--print-storage-flags'], { encoding: 'utf8' }).trim().split(' ');
const version = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** The image's entry points. The node agent (src/agent) arrives with the networking issue. */
const ENTRY_POINTS = [
  { name: 'operator', script: 'dist/src/main.js', source: 'src/main.ts', banner: /Usage: hyperspector-operator/ },
  { name: 'process-mapper', script: 'dist/src/sidecar/main.js', source: 'src/sidecar/main.ts', banner: /Usage: hyperspector-process-mapper/ },
  { name: 'node agent', script: 'dist/src/agent/main.js', source: 'src/agent/main.ts', banner: /Usage: / },
].filter((e) => existsSync(join(REPO_ROOT, e.source)));

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

describe('container image (buildah, from the Dockerfile)', function () {
  this.timeout(1_800_000);
  let image: string;
  let container: string;
  let config: { config: { User?: string; Entrypoint?: string[]; WorkingDir?: string; Labels?: Record<string, string> } };

  const inImage = async (command: string[]): Promise<Ran> => {
    try {
      const { stdout, stderr } = await run('buildah', [...storage, 'run', '--isolation', 'chroot', container, '--', ...command], { timeout: 60_000 });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? String(err) };
    }
  };

  before(async function () {
    const started = Date.now();
    const out = execFileSync('bash', [join(REPO_ROOT, 'hack', 'build-image.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    image = out.trim().split('\n').pop() ?? '';
    const seconds = ((Date.now() - started) / 1000).toFixed(0);
    const inspect = JSON.parse((await run('buildah', [...storage, 'inspect', '--type', 'image', image])).stdout) as { OCIv1: typeof config; FromImage?: string };
    config = inspect.OCIv1;
    const size = (await run('buildah', [...storage, 'images', '--format', '{{.Size}}', image])).stdout.trim();
    console.log(`      image ${image}: ${size}, built in ${seconds} s`);
    container = (await run('buildah', [...storage, 'from', '--pull=never', image])).stdout.trim();
  });

  after(async function () {
    if (container) await run('buildah', [...storage, 'rm', container]).catch(() => {});
  });

  it('is labelled, runs as a numeric non-root user, and starts the operator by default', function () {
    assert.equal(config.config.User, '65532:65532');
    assert.deepEqual(config.config.Entrypoint, ['node', 'dist/src/main.js']);
    assert.equal(config.config.WorkingDir, '/app');
    assert.equal(config.config.Labels?.['org.opencontainers.image.version'], version);
    assert.equal(config.config.Labels?.['org.opencontainers.image.title'], 'hyperspector');
  });

  it('runs Node 24 as uid 65532, with production dependencies only and no npm', async function () {
    const res = await inImage(['node', '-e', "const fs=require('fs');console.log(JSON.stringify({v:process.version,uid:process.getuid(),mocha:fs.existsSync('node_modules/mocha'),ts:fs.existsSync('node_modules/typescript'),npm:fs.existsSync('/usr/local/bin/npm'),src:fs.existsSync('src'),client:fs.existsSync('node_modules/@kubernetes/client-node')}))"]);
    assert.equal(res.code, 0, res.stderr);
    const facts = JSON.parse(res.stdout) as Record<string, unknown>;
    assert.match(String(facts.v), /^v24\./);
    assert.deepEqual({ ...facts, v: undefined }, { v: undefined, uid: 65532, mocha: false, ts: false, npm: false, src: false, client: true });
  });

  for (const entry of ENTRY_POINTS) {
    it(`starts the ${entry.name} entry point (${entry.script} --help, --version)`, async function () {
      const help = await inImage(['node', entry.script, '--help']);
      assert.equal(help.code, 0, help.stderr);
      assert.match(help.stdout, entry.banner);
      const v = await inImage(['node', entry.script, '--version']);
      assert.equal(v.code, 0, v.stderr);
      assert.equal(v.stdout.trim(), version);
    });
  }

  it("loads the process mapper's native guest-memory reader, which checks its arguments", async function () {
    const script = "import('/app/dist/src/introspection/native-range-reader.js').then((m) => { const read = m.nativeRangeReader(); let refused = ''; try { read(1, [], [], Buffer.alloc(0), [], 0, 0); } catch (e) { refused = e.message; } console.log(JSON.stringify({ type: typeof read, refused })); })";
    const res = await inImage(['node', '-e', script]);
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(JSON.parse(res.stdout), { type: 'function', refused: 'readRanges: addresses must be a Float64Array' });
  });

  it("carries the node agent's kernel clients (ip, tc, bridge, nft, nsenter)", async function () {
    for (const tool of ['ip', 'tc', 'bridge', 'nft', 'nsenter']) {
      const res = await inImage(['sh', '-c', `command -v ${tool}`]);
      assert.equal(res.code, 0, `${tool} is in the image: ${res.stderr}`);
    }
  });

  it('refuses to start the operator without a kubeconfig, saying why', async function () {
    const res = await inImage([...(config.config.Entrypoint ?? [])]);
    assert.equal(res.code, 1);
    // The operator logs JSON lines; buildah adds its own line about the exit status.
    const lines = `${res.stdout}\n${res.stderr}`.split('\n').filter((l) => l.startsWith('{'));
    const failure = lines.map((l) => JSON.parse(l) as { message: string; level: string; err?: string }).find((l) => l.level === 'error');
    assert.equal(failure?.message, 'Failed to start operator');
    assert.equal(failure?.err, NO_KUBECONFIG_MESSAGE);
  });
});
