// Noise for the convergence benchmark: VirtualMachines that no MonitoredServer refers to, shaped
// like a tenant's real ones (a few disks and interfaces, cloud-init user and network data, labels
// and annotations, created with `kubectl apply` so the API server records its managedFields and
// the last-applied-configuration annotation). KubeVirt starts them, so each gets a VMI and a
// virt-launcher pod as in a real cluster. The operator must not pay for them in memory.
import type { KubeApi } from '../src/kube/client/rest.ts';
import { collectionPath, NETWORK_ATTACHMENT_DEFINITION, VIRTUAL_MACHINE, VIRTUAL_MACHINE_INSTANCE } from '../src/kube/client/resources.ts';
import { inBatches } from './client-helpers.ts';

/** The secondary network every unmonitored VM joins (a Multus NetworkAttachmentDefinition). */
export const BACKEND_NETWORK = 'backend-net';

const USER_DATA = `#cloud-config
hostname: {{name}}
fqdn: {{name}}.tenant.example.internal
users:
  - name: ops
    groups: [sudo, adm]
    shell: /bin/bash
    sudo: ALL=(ALL) NOPASSWD:ALL
    ssh_authorized_keys:
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvJ0pV2dq7xq8m2k9eQ7cR1mU4hX2nT5wL3sY6fA0zB ops@bastion
      - ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQC7s2m4kq1Jx0cQ9e8H3bYfLw6Zr5tN1pD2vK8gM4aE7uS0oR3iW6yT9lF2hC5jB8nV1xQ4zG7eU0mA3sD6fP9kL2oI5uY8tR1eW4qZ7xC0vB3nM6 deploy@ci
package_update: true
packages: [qemu-guest-agent, chrony, nftables, prometheus-node-exporter]
write_files:
  - path: /etc/chrony/sources.d/internal.sources
    content: |
      server ntp1.tenant.example.internal iburst
      server ntp2.tenant.example.internal iburst
  - path: /etc/nftables.conf
    content: |
      table inet filter {
        chain input { type filter hook input priority 0; policy drop;
          ct state established,related accept
          iif lo accept
          tcp dport { 22, 8080, 9100 } accept
        }
      }
runcmd:
  - [systemctl, enable, --now, qemu-guest-agent, chrony, nftables, prometheus-node-exporter]
  - [sh, -c, 'echo "{{name}} provisioned $(date -Is)" >> /var/log/provision.log']
`;

const NETWORK_DATA = `version: 2
ethernets:
  enp1s0:
    dhcp4: true
  enp2s0:
    addresses: [10.20.{{octet}}.10/16]
    routes:
      - to: 10.30.0.0/16
        via: 10.20.0.1
`;

export function unmonitoredVmName(i: number): string {
  return `tenant-${String(i).padStart(4, '0')}`;
}

/** One tenant VirtualMachine, as its owner would write it in a manifest. */
interface TenantVirtualMachine {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; labels: Record<string, string>; annotations: Record<string, string> };
  spec: Record<string, unknown>;
}

export function unmonitoredVirtualMachine(i: number, namespace: string): TenantVirtualMachine {
  const name = unmonitoredVmName(i);
  const labels = { app: name, 'app.kubernetes.io/part-of': 'tenant-shop', 'app.kubernetes.io/component': i % 3 === 0 ? 'database' : 'web', team: 'payments', 'kubevirt.io/os': 'debian12' };
  return {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachine',
    metadata: {
      name,
      namespace,
      labels,
      annotations: { description: `Tenant workload ${name}, provisioned from the debian-12 golden image`, 'tenant.example.com/cost-center': 'cc-4711' },
    },
    spec: {
      runStrategy: 'Always',
      template: {
        metadata: { labels: { ...labels, 'kubevirt.io/domain': name }, annotations: { 'kubevirt.io/allow-pod-bridge-network-live-migration': 'true' } },
        spec: {
          domain: {
            cpu: { cores: 2, sockets: 1, threads: 1 },
            memory: { guest: '2Gi' },
            machine: { type: 'q35' },
            features: { acpi: {}, apic: {} },
            devices: {
              disks: [
                { name: 'rootdisk', disk: { bus: 'virtio' }, bootOrder: 1 },
                { name: 'datadisk', disk: { bus: 'virtio' } },
                { name: 'scratch', disk: { bus: 'virtio' } },
                { name: 'cloudinitdisk', disk: { bus: 'virtio' } },
              ],
              interfaces: [
                { name: 'default', masquerade: {}, ports: [{ name: 'ssh', port: 22 }, { name: 'http', port: 8080 }, { name: 'metrics', port: 9100 }] },
                { name: 'backend', bridge: {} },
              ],
              rng: {},
            },
          },
          networks: [
            { name: 'default', pod: {} },
            { name: 'backend', multus: { networkName: BACKEND_NETWORK } },
          ],
          terminationGracePeriodSeconds: 180,
          volumes: [
            { name: 'rootdisk', containerDisk: { image: 'quay.io/containerdisks/debian:12' } },
            { name: 'datadisk', containerDisk: { image: 'registry.tenant.example.internal/shop/data-seed:2024.11' } },
            { name: 'scratch', emptyDisk: { capacity: '10Gi' } },
            {
              name: 'cloudinitdisk',
              cloudInitNoCloud: { userData: USER_DATA.replaceAll('{{name}}', name), networkData: NETWORK_DATA.replace('{{octet}}', String(i % 250)) },
            },
          ],
        },
      },
    },
  };
}

/**
 * Creates `count` unmonitored VMs the way `kubectl apply` (client-side, its default) does: a
 * create carrying the last-applied-configuration annotation under the field manager
 * `kubectl-client-side-apply`; KubeVirt then starts them.
 */
export async function createUnmonitoredVms(api: KubeApi, namespace: string, count: number): Promise<void> {
  await api.request({
    method: 'POST',
    path: collectionPath(NETWORK_ATTACHMENT_DEFINITION, namespace),
    body: {
      apiVersion: 'k8s.cni.cncf.io/v1',
      kind: 'NetworkAttachmentDefinition',
      metadata: { name: BACKEND_NETWORK, namespace },
      spec: { config: JSON.stringify({ cniVersion: '0.3.1', name: BACKEND_NETWORK, type: 'bridge', bridge: 'br-backend', ipam: {} }) },
    },
  });
  await inBatches([...Array(count).keys()], 25, async (i) => {
    const vm = unmonitoredVirtualMachine(i, namespace);
    vm.metadata.annotations['kubectl.kubernetes.io/last-applied-configuration'] = JSON.stringify(vm) + '\n';
    await api.request({ method: 'POST', path: collectionPath(VIRTUAL_MACHINE, namespace), query: { fieldManager: 'kubectl-client-side-apply' }, body: vm });
  });
}

/**
 * The namespace's VMIs by phase, and its VMs by the status `kubectl get vm` shows (KubeVirt's
 * virt-controller writes it after the VMI runs, minutes later when its VM workers are busy).
 */
export async function vmAndVmiPhases(api: KubeApi, namespace: string): Promise<{ vmis: Record<string, number>; vms: Record<string, number> }> {
  return {
    vmis: await countBy(api, collectionPath(VIRTUAL_MACHINE_INSTANCE, namespace), (o) => o.status?.phase ?? 'Pending'),
    vms: await countBy(api, collectionPath(VIRTUAL_MACHINE, namespace), (o) => o.status?.printableStatus ?? 'Stopped'),
  };
}

async function countBy(api: KubeApi, path: string, key: (o: { status?: { phase?: string; printableStatus?: string } }) => string): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  let continueToken: string | undefined;
  do {
    const page = await api.request<{ items: Array<{ status?: { phase?: string; printableStatus?: string } }>; metadata?: { continue?: string } }>({
      method: 'GET',
      path,
      query: { limit: 500, continue: continueToken },
    });
    for (const o of page.items) counts[key(o)] = (counts[key(o)] ?? 0) + 1;
    continueToken = page.metadata?.continue || undefined;
  } while (continueToken);
  return counts;
}
