// Pure: will the vhost's queue limit (max-queues) let apply carry out this plan? The broker refuses
// a declare over the limit, and apply would stop part-way: exchanges made, some queues not, their
// bindings missing. Told before anything is written, it is a plan error instead.

import type { ActualCluster, ClusterPlan } from "../model.js";
import { lockQueueName } from "../core/naming.js";
import { subjectOf } from "../core/keys.js";
import { plural, shellWord } from "../core/words.js";

/** Lossless replaces apply runs at once (broker/execute.ts): each holds a holding queue meanwhile. */
export const REPLACES_AT_ONCE = 4;

export interface QueueRoom {
  /** The vhost's max-queues (a negative value means none). */
  max: number;
  /** Queues the vhost has now, topo's lock left out. */
  now: number;
  /** The most queues the vhost holds at once while apply runs: the plan's, the lock and holding queues. */
  needed: number;
  creates: number;
  deletes: number;
  holding: number;
}

/**
 * How many queues apply needs at once in the vhost, against its max-queues; undefined without a
 * limit, or when apply would write nothing (and so take no lock).
 */
export function queueRoom(plan: ClusterPlan, actual: ActualCluster, prefix: string, maxQueues: number | undefined): QueueRoom | undefined {
  if (maxQueues === undefined || maxQueues < 0 || plan.actions.length === 0) return undefined;
  const lock = lockQueueName(prefix);
  const now = Object.keys(actual.queueFacts).filter((q) => q !== lock).length;
  const queueOps = plan.actions.filter((a) => subjectOf(a).kind === "queue");
  const creates = queueOps.filter((a) => a.op === "create").length;
  const deletes = queueOps.filter((a) => a.op === "delete").length;
  const holding = Math.min(REPLACES_AT_ONCE, queueOps.filter((a) => a.op === "replace").length);
  // Deletes come before creates, and replaces after both; the lock stands throughout.
  const needed = Math.max(now, now - deletes + creates) + 1 + holding;
  return { max: maxQueues, now, needed, creates, deletes, holding };
}

/** The plan error when the vhost has no room for what apply needs at once; undefined when it has. */
export function queueRoomProblem(room: QueueRoom | undefined, vhost: string, limits: Readonly<Record<string, number>> = {}): { message: string; hint: string } | undefined {
  if (!room || room.needed <= room.max) return undefined;
  const parts = [
    room.creates ? `${room.creates} the plan creates` : "",
    room.deletes ? `less ${room.deletes} it deletes first` : "",
    "one for topo's lock while apply runs",
    room.holding ? `${plural(room.holding, "holding queue")} for the queues it replaces` : "",
  ].filter(Boolean);
  return {
    message: `vhost "${vhost}" may hold at most ${plural(room.max, "queue")} (max-queues), and apply would need ${room.needed} at once: the ${room.now} it holds now, ${parts.join(", ")}; the broker would refuse the queue over the limit part-way through apply, so topo refuses the plan before anything is written`,
    // set_vhost_limits replaces every limit of the vhost: the others are given as they are.
    hint: `raise the limit: rabbitmqctl set_vhost_limits -p ${shellWord(vhost)} '${limitsJson({ ...limits, "max-queues": room.needed })}' (rabbitmqctl list_vhost_limits -p ${shellWord(vhost)} shows them), or remove queues the vhost no longer needs`,
  };
}

/** Limits as rabbitmqctl set_vhost_limits takes them: {"max-connections": 50, "max-queues": 6}. */
export function limitsJson(limits: Readonly<Record<string, number>>): string {
  return `{${Object.entries(limits)
    .map(([k, v]) => `${JSON.stringify(k)}: ${v}`)
    .join(", ")}}`;
}
