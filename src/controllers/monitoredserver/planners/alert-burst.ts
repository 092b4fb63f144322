// Pure: what every alert response (Pause, Isolate) shares. A response happens once per alert
// burst: the last alert opens a new burst when it is newer than the alert last responded to
// (status.response.alertTime) and than the user's last release. The user releases a response in
// one step, the annotation `hyperspector.io/release-response` set to a time at or after the
// response (kubectl annotate ... --overwrite); the server itself can do nothing about it.
import type { MonitoredServer } from '../../../api/v1alpha1/monitoredserver-types.ts';

export const ANNOTATION_RELEASE_RESPONSE = 'hyperspector.io/release-response';

const time = (value: string | undefined): number => (value ? Date.parse(value) : NaN);

/** The one documented step that releases a response. */
export function releaseCommand(ms: MonitoredServer): string {
  return `kubectl annotate monitoredserver -n ${ms.metadata.namespace} ${ms.metadata.name} ${ANNOTATION_RELEASE_RESPONSE}=$(date -u +%Y-%m-%dT%H:%M:%SZ) --overwrite`;
}

/** The last alert's time when it opens a new burst; a release covers every alert up to its time. */
export function newAlertBurst(ms: MonitoredServer): string | undefined {
  const last = ms.status?.alerts?.lastAlertTime;
  if (!last) return undefined;
  if (time(last) <= time(ms.status?.response?.alertTime)) return undefined;
  if (time(last) <= time(ms.metadata.annotations?.[ANNOTATION_RELEASE_RESPONSE])) return undefined;
  return last;
}

/**
 * The release annotation's value when it releases a response taken at `since` for the alert at
 * `alertTime`: a time at or after both. A release covers the alerts up to its time, so a response
 * to a later alert (a new burst, even one that came before the operator saw the release) holds.
 */
export function releaseOf(ms: MonitoredServer, since: string | undefined, alertTime: string | undefined): string | undefined {
  const value = ms.metadata.annotations?.[ANNOTATION_RELEASE_RESPONSE];
  return value && since && time(value) >= time(since) && !(time(value) < time(alertTime)) ? value : undefined;
}

/** The alert at `alertTime` in words, for Events and conditions (its rule and message when still among the recent ones). */
export function alertDescription(ms: MonitoredServer, alertTime: string | undefined): string {
  const alert = ms.status?.alerts?.recent?.find((a) => a.time === alertTime) ?? ms.status?.alerts?.recent?.[0];
  return alert ? `alert ${alert.rule} at ${alert.time}: ${alert.message}` : `alert at ${alertTime}`;
}
