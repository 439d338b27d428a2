// Pure: would a node's memory or disk alarm stop apply part-way? While an alarm lasts the broker
// blocks every connection that publishes, and a lossless replace moves a queue's messages by
// publishing them. Declares, binds and deletes are not blocked, so apply got as far as moving the
// queue's bindings to its holding queue, then waited out its grace and stopped: an interrupted
// replace, and copies of the messages whose move was under way once the alarm cleared. Told
// before anything is written, apply refuses instead; plan warns.

import type { ActualCluster, ClusterPlan } from "../model.js";
import { holdingQueueName } from "../core/naming.js";
import { names, plural } from "../core/words.js";

/** A node's alarm, as GET /api/nodes reports it. */
export interface NodeAlarm {
  node: string;
  kind: "memory" | "disk";
  /** Memory used, or disk space free, in bytes; undefined when the broker did not say. */
  value?: number;
  /** vm_memory_high_watermark or disk_free_limit, in bytes. */
  limit?: number;
}

/** The queues the plan's replaces move messages out of (or back from a holding queue), with how many. */
export function movedMessages(plan: ClusterPlan, actual: ActualCluster): { queue: string; messages: number }[] {
  return plan.actions.flatMap((a) => {
    if (a.op !== "replace" || a.before.kind !== "queue" || a.after.kind !== "queue" || a.before.type === "stream") return [];
    const held = (q: string) => actual.queueFacts[q]?.messages ?? 0;
    const messages = held(a.after.name) + held(holdingQueueName(a.after.name));
    return messages > 0 ? [{ queue: a.after.name, messages }] : [];
  });
}

/** "1.5 GB", "48 MB": the figures a node's alarm is judged on. */
export function sizeText(bytes: number): string {
  const units = ["bytes", "KB", "MB", "GB", "TB", "PB"];
  let n = bytes;
  let u = 0;
  while (n >= 1000 && u < units.length - 1) {
    n /= 1000;
    u++;
  }
  return `${u === 0 ? n : n >= 100 ? Math.round(n) : Number(n.toPrecision(3))} ${units[u]}`;
}

/** One alarm in words: what the node has against its limit, and where the limit is set. */
export function alarmText(a: NodeAlarm): string {
  // The figures are statistics, seconds behind the alarm list: a limit just lowered still showed
  // the old one ("memory used 407 MB, above its vm_memory_high_watermark of 10.1 GB"). Figures
  // that do not show the alarm are left out rather than said against it.
  const agree = a.value !== undefined && a.limit !== undefined && (a.kind === "disk" ? a.value < a.limit : a.value > a.limit);
  const figures = (what: string, rel: string, setting: string) =>
    agree ? `${what} ${sizeText(a.value as number)}, ${rel} its ${setting} of ${sizeText(a.limit as number)}` : `${setting} passed`;
  return a.kind === "disk"
    ? `node ${a.node} has a disk alarm (${figures("free disk space", "below", "disk_free_limit")})`
    : `node ${a.node} has a memory alarm (${figures("memory used", "above", "vm_memory_high_watermark")})`;
}

/** What to do about an alarm of this kind (a disk or memory alarm, or either when unknown). */
export function alarmHint(kind: "memory" | "disk" | undefined, node = "the node"): string {
  const after = "once rabbitmq-diagnostics alarms is clean, run topo apply again: it finishes the replace";
  if (kind === "disk") {
    return `free disk space on ${node}'s data directory (or, if its disk_free_limit is set higher than it needs, lower it: rabbitmqctl set_disk_free_limit, or disk_free_limit in rabbitmq.conf); rabbitmq-diagnostics status shows the free space and the limit; ${after}`;
  }
  if (kind === "memory") {
    return `let consumers drain the queues that hold ${node}'s memory (rabbitmq-diagnostics memory_breakdown shows what uses it), or raise vm_memory_high_watermark (rabbitmqctl set_vm_memory_high_watermark, or rabbitmq.conf); ${after}`;
  }
  return `the broker blocks every publisher while a memory or disk alarm lasts (rabbitmq-diagnostics alarms lists it, and the node's log says why); ${after}`;
}

/** The alarm kind a connection.blocked reason names: RabbitMQ says "low on disk" or "low on memory". */
export function blockedKind(reason: string | undefined): "memory" | "disk" | undefined {
  if (reason === undefined) return undefined;
  if (/disk/i.test(reason)) return "disk";
  if (/memory/i.test(reason)) return "memory";
  return undefined;
}

/**
 * Why a node's alarm would stop apply part-way, when it would block the moves of the plan's
 * replaces (apply refuses, plan warns); undefined when none would.
 */
export function alarmProblem(plan: ClusterPlan, actual: ActualCluster, alarms: readonly NodeAlarm[]): { cause: string; hints: string[] } | undefined {
  const moved = movedMessages(plan, actual);
  if (!alarms.length || !moved.length) return undefined;
  const total = moved.reduce((n, m) => n + m.messages, 0);
  const queues = moved.map((m) => `${m.queue} (${plural(m.messages, "message")})`);
  const kinds = [...new Set(alarms.map((a) => a.kind))];
  return {
    cause:
      `${alarms.map(alarmText).join("; ")}: the broker blocks every publisher while it lasts, and replacing ${moved.length === 1 ? "queue" : "queues"} ${names(queues)} ` +
      `moves ${plural(total, "message")} by publishing them, so apply would stop part-way (the bindings moved to a holding queue, the messages not)`,
    hints: kinds.map((k) => alarmHint(k, alarms.find((a) => a.kind === k)?.node)),
  };
}
