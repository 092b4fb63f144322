// Offline rendering: a MonitoredServer file → every child manifest the operator would apply,
// with the same builders the controller uses.
import { Value } from '@sinclair/typebox/value';
import { MonitoredServerSpecSchema, type MonitoredServer } from '../api/v1alpha1/monitoredserver-types.ts';
import { buildIdsVirtualMachine, serverPodLabels } from './ids-vm.ts';
import { buildNads, DEFAULT_NETWORKING, idsNics, isSharedNad, type NetworkingSettings } from './networking.ts';
import { isAdopting, roleLabels, serverVmName } from './names.ts';
import { buildAdoptionMarks, buildServerVirtualMachine } from './server-vm.ts';

export interface RenderOptions {
  /** The node the server VM is assumed to run on (known only at run time). */
  nodeName: string;
  /** The operator's networking (default: the chart's, tc and vxlan). */
  networking?: NetworkingSettings;
}

/** The spec with the CRD's defaults filled in, as the API server would store it. */
export function withDefaults(ms: MonitoredServer): MonitoredServer {
  const spec = Value.Default(MonitoredServerSpecSchema, structuredClone(ms.spec)) as MonitoredServer['spec'];
  return { ...ms, spec: { mirroring: {}, diskInspection: {}, processMapping: {}, response: {}, ...spec } };
}

export interface RenderedChild {
  /** How the operator uses the object (a comment for the reader). */
  note: string;
  object: object;
}

export function renderChildren(input: MonitoredServer, options: RenderOptions): RenderedChild[] {
  if (input.apiVersion !== 'hyperspector.io/v1alpha1' || input.kind !== 'MonitoredServer') {
    throw new Error(`expected a hyperspector.io/v1alpha1 MonitoredServer, got ${input.kind ?? 'no kind'} ${input.apiVersion ?? ''}`.trim());
  }
  if (!input.metadata?.name) throw new Error('the MonitoredServer has no metadata.name');
  if (!input.spec?.server || !input.spec?.ids?.template) throw new Error(`MonitoredServer ${input.metadata.name}: spec.server and spec.ids.template are required`);
  const ms = withDefaults({ ...input, metadata: { namespace: 'default', uid: '<uid of the MonitoredServer>', ...input.metadata } });
  const adopted = isAdopting(ms);
  const server: RenderedChild = adopted
    ? { note: `merge patch on the adopted VM ${serverVmName(ms)} (only these labels and this annotation; removed on delete)`, object: buildAdoptionMarks(ms) }
    : { note: `server VM (server-side apply; deletionPolicy ${ms.spec.server.deletionPolicy ?? 'Retain'})`, object: buildServerVirtualMachine(ms) };
  const networking = options.networking ?? DEFAULT_NETWORKING;
  const ids = buildIdsVirtualMachine(ms, {
    nodeName: options.nodeName,
    serverVmiUid: '<uid of the server VMI>',
    serverPodLabels: serverPodLabels(adopted, roleLabels(ms, 'server'), serverVmName(ms)),
  }, undefined, idsNics(ms, networking));
  const nads = buildNads(ms, networking).map((object) => ({
    note: `NetworkAttachmentDefinition (server-side apply; ${networking.mirroring} mirroring, ${networking.idsNetwork} IDS network${isSharedNad(object) ? `; shared by the namespace's MonitoredServers` : ''})`,
    object,
  }));
  // Not rendered: the IDS-network address (claimed at run time) and the cloud-init Secret carrying it.
  return [server, ...nads, { note: `IDS VM (server-side apply), pinned to the server's node ${options.nodeName}; its IDS-network address comes in cloud-init network data at run time`, object: ids }];
}
