// Prometheus metrics of the process mapper, on its own registry (served at /metrics).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface MapperMetrics {
  registry: Registry;
  snapshots: Counter<'result'>;
  snapshotDuration: Histogram;
  processes: Gauge;
  events: Counter<'type'>;
  alerts: Counter<'rule'>;
  intakeRequests: Counter<'result'>;
  attached: Gauge;
  attaches: Counter;
  kernelProfile: Gauge<'source' | 'release'>;
  procfsConnections: Counter;
  procfsAttaches: Counter<'result'>;
  procfsProtocolErrors: Counter;
}

export function createMapperMetrics(withDefaults = true): MapperMetrics {
  const registry = new Registry();
  if (withDefaults) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    snapshots: new Counter({ name: 'hyperspector_process_mapper_snapshots_total', help: 'Process-table snapshots by result (consistent, inconsistent, error)', labelNames: ['result'], registers }),
    snapshotDuration: new Histogram({ name: 'hyperspector_process_mapper_snapshot_duration_seconds', help: 'Time to read the guest process table', buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1], registers }),
    processes: new Gauge({ name: 'hyperspector_process_mapper_processes', help: 'Processes in the last consistent snapshot', registers }),
    events: new Counter({ name: 'hyperspector_process_mapper_events_total', help: 'Events published, by type', labelNames: ['type'], registers }),
    alerts: new Counter({ name: 'hyperspector_process_mapper_alerts_total', help: 'Alerts raised, by rule', labelNames: ['rule'], registers }),
    intakeRequests: new Counter({ name: 'hyperspector_process_mapper_intake_requests_total', help: 'Requests to the IDS VM alert intake, by result (accepted, unauthorized, invalid, too-large, rate-limited, renewed)', labelNames: ['result'], registers }),
    attached: new Gauge({ name: 'hyperspector_process_mapper_guest_attached', help: '1 while attached to the VMI QEMU process', registers }),
    kernelProfile: new Gauge({ name: 'hyperspector_process_mapper_kernel_profile_info', help: '1 for the kernel profile in use: source guest-memory (from the running kernel\'s BTF and kallsyms) or configmap', labelNames: ['source', 'release'], registers }),
    procfsConnections: new Counter({ name: 'hyperspector_process_mapper_procfs_connections_total', help: 'TCP connections to the 9P process view', registers }),
    procfsAttaches: new Counter({ name: 'hyperspector_process_mapper_procfs_attaches_total', help: '9P attaches to the process view by result (allowed, refused)', labelNames: ['result'], registers }),
    procfsProtocolErrors: new Counter({ name: 'hyperspector_process_mapper_procfs_protocol_errors_total', help: '9P connections closed for a malformed or oversized message', registers }),
    attaches: new Counter({ name: 'hyperspector_process_mapper_attaches_total', help: 'Successful attaches to a QEMU process (more than one means QEMU restarted)', registers }),
  };
}
