// A dispatcher that asks once more, at the last moment, whether a request may still be written.
// Leadership fencing (leader-election.ts fenceApi) checks the renew deadline before a request is
// handed to the HTTP client; but the client may hold it a while before writing it (a new
// connection's TLS handshake, a busy pool). If the process is frozen (SIGSTOP, a paused VM) in that
// window, on resume the I/O callbacks write it before any timer can end the lost term. undici calls
// a handler's onRequestStart (onConnect in the older handler API) right before it writes the
// request to the socket, and aborting there keeps it off the wire: that is where this checks.
import type { Dispatcher } from 'undici';

export function fencedDispatcher(dispatcher: Dispatcher, mayWrite: () => boolean, refusal: () => Error): Dispatcher {
  return dispatcher.compose((dispatch) => (options, handler) => dispatch(options, fenceHandler(handler, mayWrite, refusal)));
}

type AnyHandler = Dispatcher.DispatchHandler & Record<string | symbol, unknown>;

function fenceHandler(handler: Dispatcher.DispatchHandler, mayWrite: () => boolean, refusal: () => Error): Dispatcher.DispatchHandler {
  return new Proxy(handler as AnyHandler, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      if (property === 'onRequestStart') {
        return (controller: { abort(reason: Error): void }, context: unknown) => {
          const result: unknown = value.call(target, controller, context);
          if (!mayWrite()) controller.abort(refusal());
          return result;
        };
      }
      if (property === 'onConnect') {
        return (abort: (reason: Error) => void, context: unknown) => {
          const result: unknown = value.call(target, abort, context);
          if (!mayWrite()) abort(refusal());
          return result;
        };
      }
      return value.bind(target);
    },
  });
}
