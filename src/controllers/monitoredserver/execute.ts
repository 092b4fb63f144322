// The executor: the one place the MonitoredServer controller writes children. Runs the planned
// actions in order and returns an outcome for each; never throws for an API error (the status
// computation decides what the user sees, the reconciler decides whether to retry).
import { applyObject } from '../../kube/client/apply.ts';
import type { KubeObject } from '../../kube/client/objects.ts';
import type { Logger } from '../../kube/util/logger.ts';
import { collectionPath, objectPath } from '../../kube/client/resources.ts';
import { statusCodeOf, type KubeApi } from '../../kube/client/rest.ts';
import type { Action, Capability, Outcome } from './actions.ts';

export interface ExecuteContext {
  api: KubeApi;
  log: Logger;
  /** Aborted when leadership is lost: requests in flight are cancelled and nothing more is sent. */
  signal?: AbortSignal;
  /** Called for each succeeded action that plans an Event. */
  onEvent?: (action: Action) => void;
}

const CONTENT_TYPE = { merge: 'application/merge-patch+json', json: 'application/json-patch+json' } as const;

async function send(api: KubeApi, action: Action, signal: AbortSignal | undefined): Promise<KubeObject | undefined> {
  const extra = signal ? { signal } : {};
  switch (action.type) {
    case 'apply':
      return applyObject<KubeObject>(api, action.resource, action.object, extra);
    case 'create':
      return api.request<KubeObject>({ method: 'POST', path: collectionPath(action.resource, action.object.metadata?.namespace), body: action.object, ...extra });
    case 'patch':
      return api.request<KubeObject>({
        method: 'PATCH',
        path: objectPath(action.resource, action.namespace, action.name),
        body: action.body,
        contentType: CONTENT_TYPE[action.patchType],
        ...extra,
      });
    case 'delete':
      await api.request({
        method: 'DELETE',
        path: objectPath(action.resource, action.namespace, action.name),
        body: {
          ...(action.preconditionUid ? { preconditions: { uid: action.preconditionUid } } : {}),
          ...(action.propagationPolicy ? { propagationPolicy: action.propagationPolicy } : {}),
        },
        ...extra,
      });
      return undefined;
    case 'subresource':
      await api.request({ method: 'PUT', path: action.path, body: action.body, ...extra });
      return undefined;
  }
}

/**
 * Runs `actions` in order. An action whose capability already had a refusal or failure in this run
 * is skipped (its later steps depend on the earlier ones); a failed `finalizer` action skips
 * everything after it (no child is created before the MonitoredServer can clean it up).
 */
export async function execute(actions: readonly Action[], ctx: ExecuteContext): Promise<Outcome[]> {
  const outcomes: Outcome[] = [];
  const blocked = new Set<Capability>();
  let stopAll = false;
  for (const action of actions) {
    if (stopAll || blocked.has(action.capability) || ctx.signal?.aborted) {
      outcomes.push({ action, kind: 'skipped' });
      continue;
    }
    try {
      const object = await send(ctx.api, action, ctx.signal);
      outcomes.push({ action, kind: 'done', ...(object ? { object } : {}) });
      ctx.log.info(action.log, {});
      if (action.event) ctx.onEvent?.(action);
    } catch (err) {
      const code = statusCodeOf(err);
      const message = err instanceof Error ? err.message : String(err);
      if (code !== undefined && action.tolerate?.includes(code)) {
        outcomes.push({ action, kind: 'done' });
        continue;
      }
      if (action.lostRaceWhen?.(err)) {
        outcomes.push({ action, kind: 'lostRace', message, ...(code !== undefined ? { code } : {}) });
        ctx.log.info('Another writer got there first; planning again', { action: action.failureReason, code });
        blocked.add(action.capability);
        continue;
      }
      const refused = action.refusedWhen?.(err) ?? false;
      outcomes.push({ action, kind: refused ? 'refused' : 'failed', message, ...(code !== undefined ? { code } : {}) });
      ctx.log.info(refused ? 'The API server refused an action' : 'An action failed', { action: action.failureReason, code, error: message });
      blocked.add(action.capability);
      if (action.capability === 'finalizer') stopAll = true;
    }
  }
  return outcomes;
}
