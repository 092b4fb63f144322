// The one place the data plane talks to the kernel: iproute2 (`ip`, `tc`, `bridge`) with JSON
// output, run inside a network namespace through `nsenter --net=<file>`.
//
// Why iproute2 and not netlink from Node: the `netlink` npm package speaks rtnetlink for links,
// addresses, routes and neighbours, but has no tc (qdisc/filter/action) messages, which mirroring
// is made of; and a netlink socket belongs to the namespace of the thread that opens it, which a
// multi-threaded Node process cannot switch safely (setns is per thread). iproute2 is the kernel
// developers' own client for every message we need, prints JSON (-j) and runs per namespace.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { NetnsRef } from './netns.ts';

const execFileAsync = promisify(execFile);

export type Iproute2Tool = 'ip' | 'tc' | 'bridge';

/** One iproute2 invocation in one namespace: what the pure planners produce. */
export interface KernelCommand {
  readonly tool: Iproute2Tool;
  readonly args: readonly string[];
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

export function formatCommand(command: KernelCommand): string {
  return [command.tool, ...command.args].join(' ');
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

/** Runs iproute2 commands in namespaces; an interface so executors can be exercised without root. */
export interface Iproute2 {
  run(netns: NetnsRef, command: KernelCommand): Promise<string>;
  /** Runs a query with -j and parses its JSON (empty output reads as []). */
  query<T = unknown>(netns: NetnsRef, command: KernelCommand): Promise<T>;
}

export class NsenterIproute2 implements Iproute2 {
  async run(netns: NetnsRef, command: KernelCommand): Promise<string> {
    try {
      const { stdout } = await execFileAsync('nsenter', [`--net=${netns.path}`, '--', command.tool, ...command.args], {
        maxBuffer: 64 * 1024 * 1024,
      });
      return stdout;
    } catch (err) {
      const stderr = (err as { stderr?: string }).stderr ?? (err as Error).message;
      throw new KernelCommandError(netns, command, stderr);
    }
  }

  async query<T = unknown>(netns: NetnsRef, command: KernelCommand): Promise<T> {
    const out = await this.run(netns, { tool: command.tool, args: ['-j', ...command.args] });
    return (out.trim() === '' ? [] : JSON.parse(out)) as T;
  }
}

/** Runs planned commands in order, stopping at the first failure (the next reconcile resumes). */
export async function runAll(kernel: Iproute2, netns: NetnsRef, commands: readonly KernelCommand[]): Promise<void> {
  for (const command of commands) await kernel.run(netns, command);
}
