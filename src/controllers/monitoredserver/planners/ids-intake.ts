// Planner: the IDS VM's alert intake (builders/ids-intake.ts). Level-triggered:
// - the signing key Secret (operator's namespace) is created once, with a fresh random key, and
//   created anew only when it is gone or unreadable (which invalidates the tokens handed out);
// - the token data of the current epoch (with the URL, the renewal period, the forwarder) goes into
//   the IDS VM's Secret (planIdsCloudInit applies it when it differs): once per rotation period, no
//   write otherwise; the controller comes back at the next epoch's start (intakeRecheckMs); an
//   older version's token Secret of its own is deleted;
// - a Service per MonitoredServer that an older version put in front of the mapper pod is deleted:
//   the pod's hostname under the chart's headless Service is the URL now (builders/ids-intake.ts).
import type { MonitoredServer } from '../../../api/v1alpha1/monitoredserver-types.ts';
import { buildIntakeKeySecret, INTAKE_KEY_FIELD, intakeEnabled, intakeSecretData, type IntakeTokenSettings } from '../../../builders/ids-intake.ts';
import type { KubeObject, Secret } from '../../../kube/client/objects.ts';
import { SECRET, SERVICE } from '../../../kube/client/resources.ts';
import { parseIntakeKey } from '../../../sidecar/intake-credential.ts';
import type { Action } from '../actions.ts';
import type { ObservedState } from '../observed-state.ts';

export interface IntakePlanSettings extends IntakeTokenSettings {
  /** A fresh signing key (crypto.randomBytes(32) in the operator; fixed in tests). */
  newKey: () => Buffer;
}

/** The key the Secret holds, or undefined when it is missing or not a key. */
export function observedIntakeKey(secret: Secret | undefined): Buffer | undefined {
  try {
    const value = secret?.data?.[INTAKE_KEY_FIELD];
    // data is base64 of what the mapper's env gets: the key's own base64 text.
    return value ? parseIntakeKey(Buffer.from(value, 'base64').toString('utf8')) : undefined;
  } catch {
    return undefined;
  }
}

export interface IntakePlan {
  actions: Action[];
  /** The token data for the IDS VM's Secret (planIdsCloudInit merges it in); undefined with the intake off. */
  secretData?: Record<string, string>;
}

export function planIdsIntake(ms: MonitoredServer, o: ObservedState, settings: IntakePlanSettings, nowMs: number): IntakePlan {
  // Being deleted: the garbage collector takes an older version's token Secret with its owner.
  if (ms.metadata.deletionTimestamp) return { actions: [] };
  const actions: Action[] = [];
  // An older version's token Secret of its own: the token lives in the IDS VM's Secret now.
  const legacy = o.legacyIntakeTokenSecret;
  if (legacy && !legacy.metadata?.deletionTimestamp) actions.push(deleteIntakeObject(legacy, 'token', 'processMapper'));
  if (!intakeEnabled(ms) || o.serverClaimedBy || o.serverNameTaken) return { actions };
  let key = observedIntakeKey(o.intakeKeySecret);
  if (!key) {
    key = settings.newKey();
    const secret = buildIntakeKeySecret(ms, settings.operatorNamespace, key);
    actions.push({
      type: 'apply',
      capability: 'processMapper',
      failureReason: 'ApplyIntakeKeyFailed',
      log: `${o.intakeKeySecret ? 'Replace the unreadable' : 'Create the'} IDS alert intake signing key Secret ${settings.operatorNamespace}/${secret.metadata.name}`,
      resource: SECRET,
      object: secret,
    });
  }
  // An older version's Service in front of the pod: the headless Service's DNS name replaced it.
  if (o.intakeService && !o.intakeService.metadata?.deletionTimestamp) actions.push(deleteIntakeObject(o.intakeService, 'service', 'processMapper'));
  return { actions, secretData: intakeSecretData(ms, key, nowMs, settings) };
}

/**
 * Deletes one of the intake's objects, guarded by its UID: the key Secret (operator's namespace;
 * teardown, orphan), or what an older version made — the Service in front of the mapper, the token
 * Secret in the tenant's namespace.
 */
export function deleteIntakeObject(object: KubeObject, kind: 'key' | 'service' | 'token', capability: 'teardown' | 'processMapper'): Action {
  const ns = object.metadata?.namespace ?? '';
  const name = object.metadata?.name ?? '';
  const what = { key: 'signing key Secret', service: 'Service of an older version', token: 'token Secret of an older version' }[kind];
  return {
    type: 'delete',
    capability,
    failureReason: { key: 'DeleteIntakeKeyFailed', service: 'DeleteIntakeServiceFailed', token: 'DeleteIntakeTokenFailed' }[kind],
    log: `Delete the alert intake ${what} ${ns}/${name}`,
    resource: kind === 'service' ? SERVICE : SECRET,
    namespace: ns,
    name,
    ...(object.metadata?.uid ? { preconditionUid: object.metadata.uid } : {}),
    tolerate: [404, 409],
  };
}
