// `kubectl-hyperspector profile build`: a kernel profile (JSON) from a distribution kernel image,
// ready to be stored in a ConfigMap (see docs/process-mapping.md).
import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { buildKernelProfile } from '../../introspection/kernel-profile-builder.ts';

export function registerProfileCommand(program: Command): void {
  const profile = program.command('profile').description('Kernel profiles for agentless process mapping');
  profile
    .command('build')
    .description('Build a kernel profile from a vmlinuz (bzImage: gzip, xz, zstd, lz4) or vmlinux with BTF')
    .requiredOption('--kernel <file>', 'kernel image, e.g. /boot/vmlinuz-6.1.0-56-amd64 from the linux-image package')
    .option('--system-map <file>', 'System.map with the real symbols (optional; without it addresses come from the image itself)')
    .option('-o, --output <file>', 'write the profile here instead of stdout')
    .action((opts: { kernel: string; systemMap?: string; output?: string }) => {
      try {
        const result = buildKernelProfile({
          kernelImage: readFileSync(opts.kernel),
          fileName: opts.kernel,
          systemMap: opts.systemMap === undefined ? undefined : readFileSync(opts.systemMap, 'utf8'),
        });
        const json = `${JSON.stringify(result, null, 2)}\n`;
        if (opts.output) {
          writeFileSync(opts.output, json);
          process.stderr.write(`Wrote profile for kernel ${result.kernel.release} to ${opts.output}\n`);
        } else {
          process.stdout.write(json);
        }
      } catch (err) {
        program.error(`error: cannot build a profile from ${opts.kernel}: ${(err as Error).message}`, { exitCode: 2 });
      }
    });
}
