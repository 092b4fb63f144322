// The node agent's own metrics, beside the controller-runtime ones of its work queue and workers
// (same registry, served on /metrics).
import { Counter, Gauge, type Registry } from 'prom-client';

export type AgentPart = 'mirror' | 'sweep' | 'overlay' | 'isolation';

export class AgentMetrics {
  private readonly mirrors: Gauge<'state'>;
  private readonly errors: Counter<'part'>;
  private readonly commands: Counter<'part'>;
  private readonly peers: Gauge;

  constructor(registry: Registry) {
    const registers = [registry];
    this.mirrors = new Gauge({ name: 'hyperspector_agent_mirrors', help: 'MonitoredServers whose server runs on this node, by mirror state (attached, waiting, failed)', labelNames: ['state'], registers });
    this.errors = new Counter({ name: 'hyperspector_agent_reconcile_errors_total', help: 'Failed reconciles of the node agent, by part (mirror, sweep, overlay)', labelNames: ['part'], registers });
    this.commands = new Counter({ name: 'hyperspector_agent_kernel_commands_total', help: 'Changing ip/tc/bridge/nft commands the agent ran, by part (0 at steady state)', labelNames: ['part'], registers });
    this.peers = new Gauge({ name: 'hyperspector_agent_overlay_peers', help: 'Other nodes in the IDS overlay FDB and underlay guard', registers });
    for (const state of ['attached', 'waiting', 'failed']) this.mirrors.set({ state }, 0);
    for (const part of ['mirror', 'sweep', 'overlay']) {
      this.errors.inc({ part }, 0);
      this.commands.inc({ part }, 0);
    }
  }

  setMirrors(counts: { attached: number; waiting: number; failed: number }): void {
    for (const [state, n] of Object.entries(counts)) this.mirrors.set({ state }, n);
  }

  reconcileError(part: AgentPart): void {
    this.errors.inc({ part });
  }

  commandsRun(part: AgentPart, n: number): void {
    if (n > 0) this.commands.inc({ part }, n);
  }

  setOverlayPeers(n: number): void {
    this.peers.set(n);
  }
}
