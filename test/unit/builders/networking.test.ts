import assert from 'node:assert/strict';
import { parse } from 'yaml';
import type { MonitoredServer } from '../../../src/api/v1alpha1/monitoredserver-types.ts';
import {
  addressOfClaim,
  buildAddressClaim,
  claimNameFor,
  claimOf,
  lowestFreeAddress,
  parseIpv4Prefix,
} from '../../../src/builders/ids-address.ts';
import { buildIdsNetworkData, GUEST_IDS_NIC, GUEST_MIRROR_NIC } from '../../../src/builders/ids-network-data.ts';
import { buildIdsVirtualMachine } from '../../../src/builders/ids-vm.ts';
import {
  buildIdsNetworkPolicy,
  buildNads,
  DEFAULT_NETWORKING,
  IDS_NETWORK,
  idsNics,
  isSharedNad,
  MIRROR_NETWORK,
  stableMac,
  withIdsNics,
  type NetworkingSettings,
} from '../../../src/builders/networking.ts';
import { hashedPodInterfaceName, launcherDevices } from '../../../src/agent/kubevirt-names.ts';
import { monitoredServer } from '../../../testenv/fixtures/monitoredservers.ts';
import type { VirtualMachineInstance } from '../../../src/kube/client/objects.ts';

function ms(overrides: Partial<MonitoredServer['spec']> = {}): MonitoredServer {
  const m = monitoredServer('web', 'shop', { mirroring: { enabled: true }, ...overrides });
  m.metadata.uid = '0a1b2c3d-0000-4000-8000-000000000001';
  return m;
}

type Config = { cniVersion: string; name: string; type?: string; topology?: string; netAttachDefName?: string; mtu?: number; plugins?: Array<Record<string, unknown>> };
const config = (nad: { spec: { config: string } }) => JSON.parse(nad.spec.config) as Config;

describe('networking builders: NADs per provider', () => {
  const cases: Array<{ name: string; settings: Partial<NetworkingSettings>; direction?: 'Ingress' | 'Egress' | 'Both'; expect: (nads: ReturnType<typeof buildNads>) => void }> = [
    {
      name: 'tc + vxlan: a bridge-CNI NAD on the overlay bridge without IPAM, and a dummy mirror NAD with the mirror MTU, both shared by the namespace',
      settings: {},
      expect: (nads) => {
        assert.deepEqual(nads.map((n) => n.metadata?.name), ['hyperspector-ids', 'hyperspector-mirror']);
        for (const nad of nads) {
          assert.equal(isSharedNad(nad), true);
          assert.equal(nad.metadata?.ownerReferences, undefined, 'a shared NAD has no owner: the last MonitoredServer that needs it deletes it');
          assert.equal(nad.metadata?.labels?.['hyperspector.io/monitored-server'], undefined);
        }
        const ids = config(nads[0]!);
        assert.deepEqual(ids.plugins, [{ type: 'bridge', bridge: 'hsids0', mtu: 1450, isGateway: false, ipMasq: false, hairpinMode: false }]);
        assert.equal(JSON.stringify(ids).includes('ipam'), false, 'no IPAM: the guest gets its address from cloud-init');
        assert.deepEqual(config(nads[1]!).plugins, [{ type: 'dummy' }, { type: 'tuning', mtu: 1500 }]);
      },
    },
    {
      name: 'ovn-k8s-layer2: one network name for every NAD, netAttachDefName naming this one, no subnets',
      settings: { idsNetwork: 'ovn-k8s-layer2', idsMtu: 1400 },
      expect: (nads) => {
        const ids = config(nads[0]!);
        assert.deepEqual(ids, { cniVersion: '0.4.0', name: 'hyperspector-ids', type: 'ovn-k8s-cni-overlay', topology: 'layer2', mtu: 1400, netAttachDefName: 'shop/hyperspector-ids' });
        assert.equal(isSharedNad(nads[0]!), true);
      },
    },
    {
      name: "ovs-cni, Both: consumer for the IDS NIC, producer with ingress and egress, one mirror name; these two are the MonitoredServer's own",
      settings: { mirroring: 'ovs-cni', ovsBridge: 'br1' },
      expect: (nads) => {
        assert.deepEqual(nads.map((n) => n.metadata?.name), ['hyperspector-ids', 'hyperspector-mirror-web', 'hyperspector-mirror-producer-web']);
        for (const nad of nads.slice(1)) {
          assert.equal(isSharedNad(nad), false);
          assert.equal(nad.metadata?.ownerReferences?.[0]?.uid, '0a1b2c3d-0000-4000-8000-000000000001');
          assert.equal(nad.metadata?.labels?.['hyperspector.io/monitored-server'], 'web');
        }
        assert.deepEqual(config(nads[1]!).plugins, [{ type: 'ovs', bridge: 'br1' }, { type: 'ovs-mirror-consumer', bridge: 'br1', mirrors: [{ name: 'hs-0a1b2c3d0000' }] }]);
        assert.deepEqual(config(nads[2]!).plugins, [
          { type: 'ovs', bridge: 'br1' },
          { type: 'ovs-mirror-producer', bridge: 'br1', mirrors: [{ name: 'hs-0a1b2c3d0000', ingress: true, egress: true }] },
        ]);
        assert.equal(config(nads[2]!).cniVersion, '0.4.0');
      },
    },
    {
      name: "ovs-cni, Egress (what the server sends): ovs-cni's ingress only",
      settings: { mirroring: 'ovs-cni' },
      direction: 'Egress',
      expect: (nads) => assert.deepEqual((config(nads[2]!).plugins![1]!.mirrors as unknown[])[0], { name: 'hs-0a1b2c3d0000', ingress: true, egress: false }),
    },
    {
      name: "ovs-cni, Ingress (what the server receives): ovs-cni's egress only",
      settings: { mirroring: 'ovs-cni' },
      direction: 'Ingress',
      expect: (nads) => assert.deepEqual((config(nads[2]!).plugins![1]!.mirrors as unknown[])[0], { name: 'hs-0a1b2c3d0000', ingress: false, egress: true }),
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const m = ms({ mirroring: { enabled: true, ...(c.direction ? { direction: c.direction } : {}) } });
      const nads = buildNads(m, { ...DEFAULT_NETWORKING, ...c.settings });
      for (const nad of nads) {
        assert.equal(nad.metadata?.namespace, 'shop');
        assert.ok(nad.metadata?.name?.startsWith('hyperspector-'), 'the admission policy protects hyperspector-* names');
        assert.equal(nad.metadata?.labels?.['hyperspector.io/role'], 'network');
        assert.equal(nad.metadata?.labels?.['app.kubernetes.io/managed-by'], 'hyperspector');
      }
      c.expect(nads);
    });
  }

  it('makes no mirror NAD when mirroring is off', () => {
    assert.deepEqual(buildNads(ms({ mirroring: { enabled: false } }), DEFAULT_NETWORKING).map((n) => n.metadata?.name), ['hyperspector-ids']);
  });
});

describe('networking builders: the IDS VM NICs', () => {
  it('adds the mirror and IDS-network NICs with bridge binding, stable MACs and Multus networks, after the template ones', () => {
    const m = ms();
    const spec = withIdsNics(m.spec.ids.template.spec!.template!.spec!, m, idsNics(m, DEFAULT_NETWORKING));
    assert.deepEqual(spec.networks, [
      { name: 'default', pod: {} },
      { name: MIRROR_NETWORK, multus: { networkName: 'hyperspector-mirror' } },
      { name: IDS_NETWORK, multus: { networkName: 'hyperspector-ids' } },
    ]);
    assert.deepEqual(idsNics(m, { mirroring: 'ovs-cni' }), { mirrorNad: 'hyperspector-mirror-web' }, "ovs-cni: the MonitoredServer's own consumer NAD");
    const ifaces = spec.domain.devices.interfaces!;
    assert.deepEqual(ifaces.slice(1), [
      { name: MIRROR_NETWORK, bridge: {}, macAddress: stableMac(m, MIRROR_NETWORK) },
      { name: IDS_NETWORK, bridge: {}, macAddress: stableMac(m, IDS_NETWORK) },
    ]);
    assert.match(stableMac(m, IDS_NETWORK), /^02(:[0-9a-f]{2}){5}$/);
    assert.notEqual(stableMac(m, IDS_NETWORK), stableMac(m, MIRROR_NETWORK));
    // Idempotent: applying twice does not duplicate.
    assert.deepEqual(withIdsNics(spec, m, idsNics(m, DEFAULT_NETWORKING)), spec);
    assert.deepEqual(withIdsNics(m.spec.ids.template.spec!.template!.spec!, m, idsNics(ms({ mirroring: { enabled: false } }), DEFAULT_NETWORKING)).networks?.map((n) => n.name), ['default', IDS_NETWORK]);
  });

  it('gives the agent the in-pod bridge it looks for: the IDS VM as built resolves to k6t-<hash of hyperspector-mirror>', () => {
    const m = ms();
    const vm = buildIdsVirtualMachine(m, { nodeName: 'n1', serverVmiUid: 'u', serverPodLabels: {} }, undefined, idsNics(m, DEFAULT_NETWORKING));
    const vmi = { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstance', metadata: { name: 'web-ids' }, spec: vm.spec.template!.spec! } as VirtualMachineInstance;
    const found = launcherDevices(vmi, MIRROR_NETWORK);
    assert.ok('devices' in found, JSON.stringify(found));
    assert.equal(found.devices.bridge, `k6t-${hashedPodInterfaceName(MIRROR_NETWORK).slice(3)}`);
    // The template's first NIC got a stable MAC (the network data's DHCP entry matches it).
    assert.equal(vm.spec.template!.spec!.domain.devices.interfaces![0]!.macAddress, stableMac(m, 'default'));
  });
});

describe('networking builders: the IDS network MultiNetworkPolicy', () => {
  it('selects the IDS VM launcher pod on its IDS NAD and admits only the IDS prefix in and out', () => {
    const m = ms();
    const policy = buildIdsNetworkPolicy(m, { ...DEFAULT_NETWORKING, idsCidr: '10.77.0.0/20' });
    assert.equal(policy.metadata?.annotations?.['k8s.v1.cni.cncf.io/policy-for'], 'shop/hyperspector-ids');
    assert.deepEqual(policy.spec, {
      podSelector: { matchLabels: { 'hyperspector.io/monitored-server': 'web', 'hyperspector.io/role': 'ids' } },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [{ from: [{ ipBlock: { cidr: '10.77.0.0/20' } }] }],
      egress: [{ to: [{ ipBlock: { cidr: '10.77.0.0/20' } }] }],
    });
    assert.equal(policy.metadata?.ownerReferences?.[0]?.uid, m.metadata.uid);
  });
});

describe('IDS-network addresses', () => {
  it('parses a prefix and refuses host bits, bad lengths and garbage', () => {
    assert.deepEqual(parseIpv4Prefix('10.99.0.0/16'), { network: 10 * 2 ** 24 + 99 * 2 ** 16, length: 16 });
    assert.throws(() => parseIpv4Prefix('10.99.0.1/16'), /host bits set; the network address is 10\.99\.0\.0\/16/);
    assert.throws(() => parseIpv4Prefix('10.99.0.0/31'), /len 8\.\.30/);
    assert.throws(() => parseIpv4Prefix('10.300.0.0/16'), /not an IPv4 prefix/);
  });

  it('picks the lowest free host address, skipping the network and broadcast addresses, and says when the prefix is full', () => {
    const p = parseIpv4Prefix('192.168.7.0/30');
    assert.equal(lowestFreeAddress(p, new Set()), '192.168.7.1');
    assert.equal(lowestFreeAddress(p, new Set(['192.168.7.1'])), '192.168.7.2');
    assert.equal(lowestFreeAddress(p, new Set(['192.168.7.1', '192.168.7.2'])), undefined);
  });

  it('a claim is a ConfigMap named after the address, found again by the MonitoredServer UID', () => {
    const m = ms();
    const claim = buildAddressClaim(m, '10.99.0.7', 'hyperspector-system');
    assert.equal(claim.metadata?.name, claimNameFor('10.99.0.7'));
    assert.equal(claim.metadata?.name, 'hyperspector-ids-addr-10-99-0-7');
    assert.equal(addressOfClaim(claim), '10.99.0.7');
    assert.equal(claimOf([claim], m.metadata.uid), claim);
    assert.equal(claimOf([claim], 'another-uid'), undefined, 'a new MonitoredServer of the same name never inherits the claim');
    assert.equal(addressOfClaim({ metadata: { name: 'hyperspector-ids-addr-x' } }), undefined);
  });
});

describe('IDS network data', () => {
  const input = { address: '10.99.0.7/16', mtu: 1450, mirrorMtu: 1500, mirror: true };
  const spec = (m: MonitoredServer) => m.spec.ids.template.spec!.template!.spec!;

  it('without network data of the user: ours, plus DHCP on the first template NIC matched by its MAC', () => {
    const m = ms();
    const data = parse(buildIdsNetworkData(m, spec(m), input)) as { version: number; ethernets: Record<string, Record<string, unknown>> };
    assert.equal(data.version, 2);
    assert.deepEqual(data.ethernets.default, { match: { macaddress: stableMac(m, 'default') }, dhcp4: true });
    assert.deepEqual(data.ethernets[GUEST_IDS_NIC]!.addresses, ['10.99.0.7/16']);
    assert.deepEqual(data.ethernets[GUEST_IDS_NIC]!.match, { macaddress: stableMac(m, IDS_NETWORK) });
    assert.equal(data.ethernets[GUEST_IDS_NIC]!.mtu, 1450);
    assert.equal(data.ethernets[GUEST_MIRROR_NIC]!.dhcp4, false);
    assert.equal(data.ethernets[GUEST_MIRROR_NIC]!.addresses, undefined, 'the mirror NIC has no address');
  });

  const withNetworkData = (networkData: string) => {
    const m = ms();
    spec(m).volumes = [...(spec(m).volumes ?? []), { name: 'ci', cloudInitNoCloud: { networkData } }];
    return m;
  };

  it("merges into the user's version 2 network data, keeping every key and comment", () => {
    const m = withNetworkData('version: 2\n# mine\nethernets:\n  eth0:\n    dhcp4: true\n');
    const text = buildIdsNetworkData(m, spec(m), input);
    assert.match(text, /# mine/);
    const data = parse(text) as { ethernets: Record<string, unknown> };
    assert.deepEqual(Object.keys(data.ethernets), ['eth0', GUEST_IDS_NIC, GUEST_MIRROR_NIC]);
  });

  it("appends to the user's version 1 config", () => {
    const m = withNetworkData('version: 1\nconfig:\n  - type: physical\n    name: eth0\n    subnets: [{type: dhcp}]\n');
    const data = parse(buildIdsNetworkData(m, spec(m), input)) as { config: Array<{ name: string; subnets: unknown[] }> };
    assert.deepEqual(data.config.map((c) => c.name), ['eth0', GUEST_IDS_NIC, GUEST_MIRROR_NIC]);
    assert.deepEqual(data.config[1]!.subnets, [{ type: 'static', address: '10.99.0.7/16' }]);
  });

  const refusals: Array<[string, string, RegExp]> = [
    ['a NIC name of ours', `version: 2\nethernets:\n  ${GUEST_IDS_NIC}: {dhcp4: true}\n`, /already configures hsids0/],
    ['an unknown version', 'version: 3\n', /version 3; cloud-init network config version 1 or 2/],
    ['invalid YAML', 'version: [\n', /not valid YAML/],
  ];
  for (const [what, networkData, message] of refusals) {
    it(`refuses network data with ${what}, saying why`, () => {
      const m = withNetworkData(networkData);
      assert.throws(() => buildIdsNetworkData(m, spec(m), input), message);
    });
  }

  it('builds again whenever anything it depends on changes (it keeps what it built lately)', () => {
    const m = ms();
    const first = buildIdsNetworkData(m, spec(m), input);
    assert.equal(buildIdsNetworkData(m, spec(m), input), first, 'the same inputs: the same text');
    assert.match(buildIdsNetworkData(m, spec(m), { ...input, address: '10.99.0.9/16' }), /10\.99\.0\.9\/16/, 'another address');
    assert.doesNotMatch(buildIdsNetworkData(m, spec(m), { ...input, mirror: false }), new RegExp(GUEST_MIRROR_NIC), 'no mirror NIC');
    const other = ms();
    other.metadata.uid = 'another-uid';
    assert.notEqual(buildIdsNetworkData(other, spec(other), input), first, 'another MonitoredServer: other MACs');
    const withUser = withNetworkData('version: 2\nethernets:\n  eth0:\n    dhcp4: true\n');
    assert.match(buildIdsNetworkData(withUser, spec(withUser), input), /eth0/, "the user's network data");
    spec(m).domain.devices.interfaces = [{ name: 'default', masquerade: {}, macAddress: '02:00:00:00:00:01' }];
    assert.match(buildIdsNetworkData(m, spec(m), input), /02:00:00:00:00:01/, "the first NIC's MAC");
  });

  it("refuses network data in the user's own Secret (HyperSpector does not read it)", () => {
    const m = ms();
    spec(m).volumes = [{ name: 'ci', cloudInitNoCloud: { networkDataSecretRef: { name: 'theirs' } } }];
    assert.throws(() => buildIdsNetworkData(m, spec(m), input), /Secret theirs, which HyperSpector does not read/);
  });
});
