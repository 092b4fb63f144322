// Where a learned process baseline outlives the mapper pod: one ConfigMap per MonitoredServer in
// the operator's namespace (beside the mapper pods), written once the learning window has ended,
// under the mapper's own field manager. A new mapper (guest reboot, new VMI, node move, restart)
// loads it and judges from its first snapshot on, so what an attacker starts at boot is not
// learned as normal. The operator names it, deletes it with the MonitoredServer, and passes a
// generation (the relearn annotation's value): a baseline of another generation is not used.
import { ANNOTATION_RELEARN_BASELINE, LABEL_MANAGED_BY, LABEL_MONITORED_SERVER, LABEL_MONITORED_SERVER_NAMESPACE, LABEL_ROLE, MANAGED_BY } from '../builders/names.ts';
import { applyObject, type KubeObject } from '../kube/client/apply.ts';
import { CONFIG_MAP, objectPath } from '../kube/client/resources.ts';
import { isNotFound, type KubeApi } from '../kube/client/rest.ts';

export const BASELINE_FIELD_MANAGER = 'hyperspector-process-mapper';
const KEY_IDENTITIES = 'identities.json';

export interface BaselineRecord {
  /** What the baseline knows: one identity per program and user (Baseline.identities). */
  identities: string[];
  /** When the learning window ended. */
  learnedAt: string;
  /** The relearn generation it was learned for. */
  generation: string;
  /** The VMI it was learned on. */
  vmiUid?: string;
}

export interface BaselineStore {
  /** The stored baseline of this generation; undefined: none (or of another generation). */
  load(): Promise<BaselineRecord | undefined>;
  /** Stores the baseline under the store's generation. */
  save(record: Omit<BaselineRecord, 'generation'>): Promise<void>;
  readonly location: string;
}

export interface ConfigMapBaselineStoreOptions {
  api: KubeApi;
  /** `<namespace>/<name>` of the ConfigMap. */
  configMap: string;
  generation: string;
  monitoredServer: { namespace: string; name: string };
}

interface ConfigMapObject {
  metadata?: { name?: string };
  data?: Record<string, string>;
}

export function configMapBaselineStore(options: ConfigMapBaselineStoreOptions): BaselineStore {
  const [namespace, name, ...rest] = options.configMap.split('/');
  if (!namespace || !name || rest.length > 0) throw new Error(`--baseline-configmap ${JSON.stringify(options.configMap)}: want <namespace>/<name>`);
  return {
    location: `ConfigMap ${namespace}/${name}`,
    async load() {
      let cm: ConfigMapObject;
      try {
        cm = await options.api.request<ConfigMapObject>({ method: 'GET', path: objectPath(CONFIG_MAP, namespace, name), timeoutMs: 10_000 });
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
      const data = cm.data ?? {};
      if ((data.generation ?? '') !== options.generation) return undefined;
      let identities: unknown;
      try {
        identities = JSON.parse(data[KEY_IDENTITIES] ?? '');
      } catch {
        identities = undefined;
      }
      if (!Array.isArray(identities) || !identities.every((i) => typeof i === 'string')) {
        throw new Error(`ConfigMap ${namespace}/${name}: ${KEY_IDENTITIES} is not a JSON list of strings; set the annotation ${ANNOTATION_RELEARN_BASELINE} on the MonitoredServer to learn the baseline anew`);
      }
      return { identities, learnedAt: data.learnedAt ?? '', generation: options.generation, ...(data.vmiUid ? { vmiUid: data.vmiUid } : {}) };
    },
    async save(record) {
      const { namespace: msNamespace, name: msName } = options.monitoredServer;
      const configMap: KubeObject & { data: Record<string, string> } = {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: {
          name,
          namespace,
          labels: {
            [LABEL_MONITORED_SERVER]: msName,
            [LABEL_MONITORED_SERVER_NAMESPACE]: msNamespace,
            [LABEL_ROLE]: 'process-baseline',
            [LABEL_MANAGED_BY]: MANAGED_BY,
          },
        },
        data: { [KEY_IDENTITIES]: JSON.stringify(record.identities), learnedAt: record.learnedAt, generation: options.generation, ...(record.vmiUid ? { vmiUid: record.vmiUid } : {}) },
      };
      await applyObject(options.api, CONFIG_MAP, configMap, { fieldManager: BASELINE_FIELD_MANAGER, timeoutMs: 10_000 });
    },
  };
}
