// Whether a process id still names a live process (signal 0 probes without signalling).
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
