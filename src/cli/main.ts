// kubectl-hyperspector: the command-line companion of the operator (installed as a kubectl plugin).
import { Command } from 'commander';
import { registerProfileCommand } from './commands/profile.ts';
import { registerPsCommand } from './commands/ps.ts';
import { registerRenderCommand } from './commands/render.ts';
import { registerStatusCommand } from './commands/status.ts';

export function buildCli(): Command {
  const program = new Command('kubectl-hyperspector')
    .description('HyperSpector for Kubernetes: render, inspect and debug MonitoredServers')
    .showHelpAfterError();
  // Each subcommand lives in its own module under src/cli/commands/ and registers itself here.
  registerRenderCommand(program);
  registerStatusCommand(program);
  registerProfileCommand(program);
  registerPsCommand(program);
  return program;
}

export async function runCli(argv: string[]): Promise<void> {
  await buildCli().parseAsync(argv);
}
