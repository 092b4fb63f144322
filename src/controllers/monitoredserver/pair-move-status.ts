// Pure: the conditions of the pair while it moves (planners/evacuation.ts). The IDS side was stopped on
// purpose, so IDSRunning, Colocated and ProcessMapping say why (ServerMigrating, ServerEvacuating,
// EvacuationMigrationFailed, ServerRestarting) instead of "starting"; Ready takes that reason.
import type { ConditionUpdate } from '../../kube/client/conditions.ts';
import type { PairMove } from './planners/evacuation.ts';
import { ConditionType } from './reasons.ts';

type Update = Omit<ConditionUpdate, 'type' | 'observedGeneration'>;

export function pairMoveConditions(move: PairMove): Partial<Record<string, Update>> {
  const to = move.toNode ? `node ${move.toNode}` : 'its new node';
  return {
    [ConditionType.IDSRunning]: { status: 'False', reason: move.reason, message: `the IDS VM is stopped while the server VM leaves node ${move.fromNode}; it starts on ${to}` },
    [ConditionType.Colocated]: { status: 'False', reason: move.reason, message: move.message },
    [ConditionType.ProcessMapping]: { status: 'False', reason: move.reason, message: `the process mapper is stopped while the server VM leaves node ${move.fromNode}; it starts on ${to}` },
  };
}
