// The processes of one local cluster by component name, each logging to <dir>/<component>.log;
// LocalCluster stops them in reverse start order and reports their pids.
import { join } from 'node:path';
import { ManagedProcess } from '../managed-process.ts';

export class ClusterProcesses extends Map<string, ManagedProcess> {
  constructor(readonly dir: string) {
    super();
  }

  logOf(component: string): string {
    return join(this.dir, `${component}.log`);
  }

  /** Starts a component under its name (registered at once, so a failed start is still stopped). */
  start(name: string, binary: string, args: string[]): ManagedProcess {
    const proc = new ManagedProcess(name, binary, args, this.logOf(name));
    this.set(name, proc);
    return proc;
  }
}
