// The HTTP agent the operator talks to the API server with: HTTP/1.1, not HTTP/2 (which undici
// negotiates by default). The leadership fence (leader-election.ts fenceApi, fenced-dispatcher.ts)
// makes its last check right before a request is written to its connection, and the request must
// be on the wire in that same turn of the event loop: HTTP/2 sends its frames from a later turn, so
// a process frozen (SIGSTOP, a paused VM) in between sent the write when it resumed, after another
// replica had taken the lease. test/unit/kube/http1-agent.test.ts measures it.
import { Agent, type buildConnector } from 'undici';

export function http1Agent(connect: buildConnector.BuildOptions = {}): Agent {
  // The client gives allowH2 to the connector it builds from `connect` (no h2 offered in ALPN).
  return new Agent({ connect, allowH2: false });
}
