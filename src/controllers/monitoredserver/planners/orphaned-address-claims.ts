// Planner (pure): IDS-network address claims left behind. A claim is released by the teardown of its
// MonitoredServer; if someone removed the finalizer by hand (or deleted the MonitoredServer while no
// operator ran), the claim stays and its address would never be given again. A claim names its owner
// twice: the annotation (namespace/name, which MonitoredServer key to look at) and the UID label
// (which incarnation). A claim is orphaned when no MonitoredServer with that key and UID exists:
// the cache proposes candidates, the API server has the last word (a live GET of the key), and the
// deletion is guarded by the claim's UID.
import { addressOfClaim, ANNOTATION_CLAIM_OWNER, LABEL_CLAIM_UID } from '../../../builders/ids-address.ts';
import type { KubeObject } from '../../../kube/client/objects.ts';
import { CONFIG_MAP } from '../../../kube/client/resources.ts';
import type { DeleteAction } from '../actions.ts';
import { EventReason } from '../reasons.ts';

/** The MonitoredServer key (namespace/name) a claim was made for, from its annotation. */
export function claimOwnerKey(claim: KubeObject): string | undefined {
  const owner = claim.metadata?.annotations?.[ANNOTATION_CLAIM_OWNER];
  return owner && /^[^/]+\/[^/]+$/.test(owner) ? owner : undefined;
}

/**
 * Claims made for `key` that the MonitoredServer with UID `uid` (the one the cache or the API server
 * shows under that key; undefined: none) does not hold: those of a deleted MonitoredServer or of an
 * earlier one with the same name. Claims being deleted are left alone.
 */
export function orphanedClaims(claims: readonly KubeObject[], key: string, uid: string | undefined): KubeObject[] {
  return claims.filter((c) => claimOwnerKey(c) === key && !c.metadata?.deletionTimestamp && c.metadata?.labels?.[LABEL_CLAIM_UID] !== uid);
}

/** Deletes an orphaned claim (only the one looked at: UID precondition; gone already is fine). */
export function orphanedClaimDeletion(claim: KubeObject): DeleteAction {
  const ns = claim.metadata?.namespace ?? '';
  const name = claim.metadata?.name ?? '';
  const owner = claimOwnerKey(claim) ?? '(unknown)';
  const address = addressOfClaim(claim) ?? '(unknown)';
  const why = `MonitoredServer ${owner} (UID ${claim.metadata?.labels?.[LABEL_CLAIM_UID] ?? '?'}) no longer exists; its finalizer was removed before it released the address`;
  return {
    type: 'delete',
    capability: 'network',
    failureReason: 'ReleaseOrphanedIDSAddressFailed',
    log: `Release orphaned IDS-network address ${address} (ConfigMap ${ns}/${name}): ${why}`,
    resource: CONFIG_MAP,
    namespace: ns,
    name,
    ...(claim.metadata?.uid ? { preconditionUid: claim.metadata.uid } : {}),
    tolerate: [404, 409],
    event: { type: 'Normal', reason: EventReason.OrphanedIDSAddressReleased, message: `Released IDS-network address ${address}: ${why}` },
  };
}
