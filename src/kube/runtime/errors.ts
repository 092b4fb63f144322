// Errors with a retry policy (controller-runtime's reconcile.TerminalError): a reconcile that
// throws a TerminalError is reported and counted but not retried with backoff — retrying cannot
// help; the object is looked at again when it or something it watches changes.
export class TerminalError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TerminalError';
  }
}

export function isTerminal(err: unknown): err is TerminalError {
  return err instanceof TerminalError;
}
