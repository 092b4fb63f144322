// MonitoredServer objects for tests.
import type { MonitoredServer, VirtualMachineTemplate } from '../../src/api/v1alpha1/monitoredserver-types.ts';

export function vmTemplate(labels: Record<string, string> = {}, memory = '1Gi'): VirtualMachineTemplate {
  return {
    metadata: { labels },
    spec: {
      runStrategy: 'Always',
      template: {
        metadata: { labels },
        spec: {
          domain: {
            memory: { guest: memory },
            devices: { disks: [{ name: 'rootdisk', disk: { bus: 'virtio' } }], interfaces: [{ name: 'default', masquerade: {} }] },
          },
          networks: [{ name: 'default', pod: {} }],
          volumes: [{ name: 'rootdisk', containerDisk: { image: 'quay.io/containerdisks/debian:12' } }],
        },
      },
    } as VirtualMachineTemplate['spec'],
  };
}

/** A valid MonitoredServer that creates its server VM from a template. */
export function monitoredServer(name: string, namespace: string, overrides: Partial<MonitoredServer['spec']> = {}): MonitoredServer {
  return {
    apiVersion: 'hyperspector.io/v1alpha1',
    kind: 'MonitoredServer',
    metadata: { name, namespace },
    spec: {
      server: { template: vmTemplate({ app: name }) },
      ids: { template: vmTemplate({ app: `${name}-ids` }, '2Gi') },
      // Mirroring is on by default but not available in this release (MirrorAttached=False keeps
      // Ready False): tests of the rest switch it off, as a user would.
      mirroring: { enabled: false },
      ...overrides,
    },
  };
}
