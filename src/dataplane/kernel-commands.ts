// The one place the data plane talks to the kernel: iproute2 (`ip`, `tc`, `bridge`) and nftables
// (`nft`), with JSON output, run inside a network namespace through `nsenter --net=<file>`.
//
// Why these command-line clients and not netlink from Node: the `netlink` npm package speaks
// rtnetlink for links, addresses, routes and neighbours, but has no tc (qdisc/filter/action) or
// nftables messages, which mirroring and the overlay guard are made of; and a netlink socket
// belongs to the namespace of the thread that opens it, which a multi-threaded Node process cannot
// switch safely (setns is per thread). iproute2 and nft are the kernel developers' own clients for
// every message we need, print JSON (-j) and run per namespace.
import { spawn } from 'node:child_process';
import type { NetnsRef } from './netns.ts';

export type KernelTool = 'ip' | 'tc' | 'bridge' | 'nft';

/** One invocation in one namespace: what the pure planners produce. */
export interface KernelCommand {
  readonly tool: KernelTool;
  readonly args: readonly string[];
  /** Standard input (an nft script applied as one atomic transaction). */
  readonly input?: string;
}

export function ip(...args: string[]): KernelCommand {
  return { tool: 'ip', args };
}
export function tc(...args: string[]): KernelCommand {
  return { tool: 'tc', args };
}
export function bridge(...args: string[]): KernelCommand {
  return { tool: 'bridge', args };
}
/** `nft -f -` with the script on standard input: all of it applies, or none of it. */
export function nftScript(script: string): KernelCommand {
  return { tool: 'nft', args: ['-f', '-'], input: script };
}

export function formatCommand(command: KernelCommand): string {
  return [command.tool, ...command.args].join(' ') + (command.input === undefined ? '' : ` <<<${JSON.stringify(command.input)}`);
}

export class KernelCommandError extends Error {
  constructor(
    readonly netns: NetnsRef,
    readonly command: KernelCommand,
    readonly stderr: string,
  ) {
    super(`"${formatCommand(command)}" failed in netns ${netns.label}: ${stderr.trim() || 'no message'}`);
    this.name = 'KernelCommandError';
  }
}

/** Runs kernel commands in namespaces; an interface so executors can be exercised without root. */
export interface KernelCommands {
  run(netns: NetnsRef, command: KernelCommand): Promise<string>;
  /** Runs a query with -j and parses its JSON (empty output reads as []). */
  query<T = unknown>(netns: NetnsRef, command: KernelCommand): Promise<T>;
}

export class NsenterKernelCommands implements KernelCommands {
  run(netns: NetnsRef, command: KernelCommand): Promise<string> {
    return new Promise((resolve, reject) => {
      const withInput = command.input !== undefined;
      const child = spawn('nsenter', [`--net=${netns.path}`, '--', command.tool, ...command.args], {
        stdio: [withInput ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
      child.on('error', (err) => reject(new KernelCommandError(netns, command, err.message)));
      child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new KernelCommandError(netns, command, stderr || `exit code ${code}`))));
      if (withInput) {
        // A command that fails before reading its input closes the pipe; its exit code tells why.
        child.stdin!.on('error', () => undefined);
        child.stdin!.end(command.input);
      }
    });
  }

  async query<T = unknown>(netns: NetnsRef, command: KernelCommand): Promise<T> {
    const out = await this.run(netns, { tool: command.tool, args: ['-j', ...command.args] });
    return (out.trim() === '' ? [] : JSON.parse(out)) as T;
  }
}

/** Runs planned commands in order, stopping at the first failure (the next reconcile resumes). */
export async function runAll(kernel: KernelCommands, netns: NetnsRef, commands: readonly KernelCommand[]): Promise<void> {
  for (const command of commands) await kernel.run(netns, command);
}
