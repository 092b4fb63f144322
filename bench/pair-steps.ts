// Where a pair's start spends its time, from kube-apiserver's audit log: each step from the write
// that begins it to the write that ends it, so the client's own delays (operator or floor) are told
// from KubeVirt's (virt-controller creating a VMI, writing a VM's status). The audit log has every
// write of every user with its time: nobody's cache or clock is trusted.
import { WRITE_VERBS, type AuditEvent } from '../testenv/cluster/audit-log.ts';

/** The steps of one pair, in order; `by` says who the step waits for. */
export const PAIR_STEPS = [
  { step: 'monitoredServerToServerVm', by: 'client', what: 'MonitoredServer created → server VM created' },
  { step: 'serverVmToVmi', by: 'KubeVirt', what: 'server VM created → its VMI created (virt-controller)' },
  { step: 'serverVmiToIdsVm', by: 'client', what: 'server VMI created → IDS VM created' },
  { step: 'idsVmToVmi', by: 'KubeVirt', what: 'IDS VM created → its VMI created (virt-controller)' },
  { step: 'idsVmiToVmStatus', by: 'KubeVirt', what: "IDS VMI's last write by virt-handler → IDS VM's last status write (virt-controller)" },
  { step: 'vmStatusToReady', by: 'client', what: "IDS VM's last status write → the MonitoredServer's last status write" },
] as const;

export type PairStep = (typeof PAIR_STEPS)[number]['step'];

export interface StepFigures {
  pairs: number;
  medianSeconds: number;
  p90Seconds: number;
}

/** The writes of one object, oldest first. */
type Writes = Array<{ at: number; user: string; verb: string; subresource?: string }>;

const SUCCEEDED = (e: AuditEvent) => (e.responseStatus?.code ?? 0) >= 200 && (e.responseStatus?.code ?? 0) < 300;

/**
 * Per step, over the pairs `<pair>-server` / `<pair>-ids` (and MonitoredServer `<pair>` when there is
 * one) in `namespace`: median and 90th percentile in seconds. `client` is the username that creates
 * the VMs (the operator's or the floor's); a step some pair lacks an end of (the floor has no
 * MonitoredServer) is left out for that pair. Only successful writes count.
 */
export function pairStepLatencies(events: Iterable<AuditEvent>, namespace: string, client: string): Partial<Record<PairStep, StepFigures>> {
  const writes = new Map<string, Writes>();
  for (const e of events) {
    const ref = e.objectRef;
    if (ref?.namespace !== namespace || !ref.name || !SUCCEEDED(e) || !WRITE_VERBS.has(e.verb)) continue;
    const key = `${ref.resource}/${ref.name}`;
    let list = writes.get(key);
    if (!list) writes.set(key, (list = []));
    list.push({ at: Date.parse(e.requestReceivedTimestamp), user: e.user.username, verb: e.verb, ...(ref.subresource ? { subresource: ref.subresource } : {}) });
  }
  for (const list of writes.values()) list.sort((a, b) => a.at - b.at);
  const of = (resource: string, name: string) => writes.get(`${resource}/${name}`) ?? [];
  const first = (list: Writes, pred: (w: Writes[number]) => boolean) => list.find(pred)?.at;
  const last = (list: Writes, pred: (w: Writes[number]) => boolean) => list.findLast(pred)?.at;
  const byClient = (w: Writes[number]) => w.user === client && !w.subresource;
  const vmiCreated = (w: Writes[number]) => w.verb === 'create';
  const seconds = new Map<PairStep, number[]>();
  const add = (step: PairStep, from: number | undefined, to: number | undefined) => {
    if (from === undefined || to === undefined) return;
    let list = seconds.get(step);
    if (!list) seconds.set(step, (list = []));
    list.push((to - from) / 1000);
  };
  const pairs = [...writes.keys()].filter((k) => k.startsWith('virtualmachines/') && k.endsWith('-server')).map((k) => k.slice('virtualmachines/'.length, -'-server'.length));
  for (const pair of pairs) {
    const msCreated = first(of('monitoredservers', pair), (w) => w.verb === 'create');
    const serverVm = first(of('virtualmachines', `${pair}-server`), byClient);
    const serverVmi = first(of('virtualmachineinstances', `${pair}-server`), vmiCreated);
    const idsVm = first(of('virtualmachines', `${pair}-ids`), byClient);
    const idsVmi = first(of('virtualmachineinstances', `${pair}-ids`), vmiCreated);
    const idsVmiByHandler = last(of('virtualmachineinstances', `${pair}-ids`), (w) => w.user.endsWith(':kubevirt-handler'));
    const idsVmStatus = last(of('virtualmachines', `${pair}-ids`), (w) => w.subresource === 'status');
    const msStatus = last(of('monitoredservers', pair), (w) => w.subresource === 'status' && w.user === client);
    add('monitoredServerToServerVm', msCreated, serverVm);
    add('serverVmToVmi', serverVm, serverVmi);
    add('serverVmiToIdsVm', serverVmi, idsVm);
    add('idsVmToVmi', idsVm, idsVmi);
    add('idsVmiToVmStatus', idsVmiByHandler, idsVmStatus);
    add('vmStatusToReady', idsVmStatus, msStatus);
  }
  const out: Partial<Record<PairStep, StepFigures>> = {};
  for (const { step } of PAIR_STEPS) {
    const list = seconds.get(step)?.sort((a, b) => a - b);
    if (!list?.length) continue;
    out[step] = { pairs: list.length, medianSeconds: round(quantile(list, 0.5)), p90Seconds: round(quantile(list, 0.9)) };
  }
  return out;
}

/** Nearest-rank quantile of sorted values. */
function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

const round = (s: number) => Number(s.toFixed(1));

/** One line per step: operator and floor side by side. */
export function formatPairSteps(operator: Partial<Record<PairStep, StepFigures>>, floor: Partial<Record<PairStep, StepFigures>>): string[] {
  const cell = (f: StepFigures | undefined) => (f ? `${f.medianSeconds} / ${f.p90Seconds} s` : '—').padEnd(18);
  return PAIR_STEPS.map(({ step, by, what }) => `  ${cell(operator[step])}${cell(floor[step])}${what} [${by}]`);
}
