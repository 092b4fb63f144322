// Test guests carry host programs with the libraries ldd resolves (testenv/guest/host-programs.ts):
// every library line is a file to copy, the vDSO is none, a library ldd cannot find is an error.
import assert from 'node:assert/strict';
import { hostProgramFiles, parseLdd } from '../../../testenv/guest/host-programs.ts';

const PS_LDD = `\tlinux-vdso.so.1 (0x00007ffd1b7e4000)
\tlibproc2.so.0 => /lib/x86_64-linux-gnu/libproc2.so.0 (0x00007f374edf6000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f374ec14000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f374ee81000)
`;

describe('test world: host programs in a guest initramfs', () => {
  const cases: Array<{ name: string; ldd: string; libraries: string[]; missing: string[] }> = [
    { name: 'libraries by their resolved path, the loader, no vDSO', ldd: PS_LDD, libraries: ['/lib/x86_64-linux-gnu/libproc2.so.0', '/lib/x86_64-linux-gnu/libc.so.6', '/lib64/ld-linux-x86-64.so.2'], missing: [] },
    { name: 'a library ldd cannot find', ldd: '\tlibnuma.so.1 => not found\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0000000000)\n', libraries: ['/lib/x86_64-linux-gnu/libc.so.6'], missing: ['libnuma.so.1'] },
    { name: 'a static program', ldd: '\tstatically linked\n', libraries: [], missing: [] },
  ];
  for (const c of cases) {
    it(`parses ldd: ${c.name}`, () => assert.deepEqual(parseLdd(c.ldd), { libraries: c.libraries, missing: c.missing }));
  }

  it('refuses a line it does not understand instead of dropping a library', () => {
    assert.throws(() => parseLdd('\tlibc.so.6 => (weird)\n'), /unexpected ldd line/);
  });

  it("maps the host's own /bin/sh (dynamically linked on Debian) to a guest path with its loader and libc, and says when a program is missing", () => {
    const files = hostProgramFiles({ '/opt/x/bin/sh': '/bin/sh' });
    assert.deepEqual(files['/opt/x/bin/sh'], { fromFile: '/bin/sh', mode: 0o755 });
    assert.ok(Object.keys(files).some((p) => /\/libc\.so\.6$/.test(p)), Object.keys(files).join(' '));
    assert.ok(Object.keys(files).some((p) => /ld-linux-x86-64\.so\.2$/.test(p)), Object.keys(files).join(' '));
    assert.throws(() => hostProgramFiles({ '/x': '/nonexistent/program' }), /missing on the host/);
  });
});
