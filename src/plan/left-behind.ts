// Pure: what a vhost holds that looks like topo's work but is outside this file's prefix. topo
// never changes or deletes it (it is not this prefix's), but plan says it is there: after a prefix
// is renamed, the old queues still hold messages and nobody else would notice them.

import type { ActualCluster, Binding, Queue } from "../model.js";
import type { Ownership } from "../core/naming.js";
import { ANY_SERVICE_NAME, ANY_SERVICE_QUEUE, HOLD_PREFIX, lockQueueName, markedPrefix } from "../core/naming.js";
import { names, plural, shellWord } from "../core/words.js";
import { pushTo } from "../core/collections.js";

export interface LeftBehind {
  /** Services of the shape topo makes (topic exchange E, queue E.<kind> bound with E.<kind>.#), not this prefix's. */
  services: { name: string; queues: string[]; prefix?: string }[];
  /** Holding queues of another prefix's interrupted replace. */
  holding: string[];
}

/** `own`: the file's service exchanges, its own wherever they are named (one inside a longer prefix in use included). */
export function leftBehind(actual: ActualCluster, owner: Ownership, own: ReadonlySet<string> = new Set()): LeftBehind {
  // One pass for what the bindings below are checked against, and the markers of other prefixes.
  const exchanges = new Set<string>();
  const queues = new Set<string>();
  const holding: string[] = [];
  const others: string[] = [];
  for (const r of actual.resources) {
    if (r.kind === "exchange" && r.type === "topic") exchanges.add(r.name);
    else if (r.kind === "queue") {
      queues.add(r.name);
      const base = r.name.startsWith(HOLD_PREFIX) ? r.name.slice(HOLD_PREFIX.length) : undefined;
      // Only a service queue's holding queue is a replace's: topo.hold.audit is someone's queue.
      if (base !== undefined && ANY_SERVICE_QUEUE.test(base) && !owner.isServiceQueue(base)) holding.push(r.name);
    }
    const p = markedPrefix(r);
    if (p && p !== owner.prefix) others.push(p);
  }
  const byService = new Map<string, string[]>();
  for (const r of actual.resources) {
    if (r.kind !== "binding") continue;
    const b = r as Binding;
    if (b.destinationType !== "queue" || !exchanges.has(b.source) || owner.owns(b) || owner.isService(b.source) || own.has(b.source)) continue;
    // Only a name some prefix's file could hold (mpLogin, mp# and mpé are none): no apply of any
    // prefix removes the others, so plan would advise one in vain.
    if (!ANY_SERVICE_NAME.test(b.source)) continue;
    const kind = b.destination.slice(b.source.length + 1);
    if (b.destination !== `${b.source}.${kind}` || (kind !== "sync" && kind !== "async") || b.routingKey !== `${b.destination}.#`) continue;
    if (!queues.has(b.destination)) continue;
    pushTo(byService, b.source, b.destination);
  }
  const services = [...byService.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    // A prefix's names have at least one more letter: "ab" is prefix a's, not ab's.
    .map(([name, qs]) => ({ name, queues: qs.sort(), prefix: others.filter((p) => name.startsWith(p) && name.length > p.length).sort((a, b) => b.length - a.length)[0] }));
  return { services, holding: holding.sort() };
}

/** Plan's warnings about what it leaves alone, with the messages the queues hold when known. */
export function leftBehindWarnings(lb: LeftBehind, actual: ActualCluster, prefix: string): string[] {
  const out: string[] = [];
  /** `owners`: how many services (or holding queues) the queues are of, for "its" or "their". */
  const held = (qs: string[], owners: number) => {
    const counts = qs.map((q) => actual.queueFacts[q]?.messages).filter((n): n is number => n !== undefined);
    const total = counts.reduce((a, b) => a + b, 0);
    const whose = owners === 1 ? "its" : "their";
    return counts.length ? `; ${whose} ${qs.length === 1 ? "queue holds" : "queues hold"} ${total} message${total === 1 ? "" : "s"}` : "";
  };
  const tail = (old: string) =>
    `topo changes only prefix "${prefix}"'s objects and never these. If they are another file's, nothing needs doing; if the prefix was renamed, they are the old ones: move their workers, let the queues drain, then run topo apply with prefix ${old} and no services to remove them`;
  for (const p of [...new Set(lb.services.flatMap((s) => (s.prefix ? [s.prefix] : [])))].sort()) {
    const svcs = lb.services.filter((s) => s.prefix === p);
    out.push(`left alone: ${plural(svcs.length, "service")} of prefix "${p}" (${names(svcs.map((s) => s.name))}${held(svcs.flatMap((s) => s.queues), svcs.length)}); ${tail(`"${p}"`)}`);
  }
  const unclaimed = lb.services.filter((s) => !s.prefix);
  if (unclaimed.length) {
    const look = unclaimed.length === 1 ? "looks" : "look";
    out.push(`left alone: ${plural(unclaimed.length, "service")} outside prefix "${prefix}" ${look} like topo's (${names(unclaimed.map((s) => s.name))}${held(unclaimed.flatMap((s) => s.queues), unclaimed.length)}); ${tail("the old one")}`);
  }
  if (lb.holding.length) {
    out.push(`left alone: ${names(lb.holding)} ${lb.holding.length === 1 ? "holds" : "hold"} messages of another prefix's interrupted replace${held(lb.holding, lb.holding.length)}; topo apply with that prefix finishes it`);
  }
  return out;
}

/**
 * A queue of the prefix's lock name that is not exclusive: no apply holds it (an apply's lock is an
 * exclusive queue of its connection), it never goes by itself, and apply stops at it.
 */
export function strayLockWarnings(actual: ActualCluster, prefix: string, vhost: string): string[] {
  const name = lockQueueName(prefix);
  const q = actual.resources.find((r): r is Queue => r.kind === "queue" && r.name === name);
  if (!q || q.exclusive) return [];
  return [`queue ${name} is not exclusive, so it is no apply's lock, and apply cannot take its lock while it is there (it stops, writing nothing): ${strayLockAdvice(vhost, name)}`];
}

/** Whether an apply of the prefix holds its lock on the cluster now: its lock queue is there, exclusive to that apply's connection. */
export function lockHeld(actual: ActualCluster, prefix: string): boolean {
  const name = lockQueueName(prefix);
  return actual.resources.some((r) => r.kind === "queue" && r.name === name && r.exclusive);
}

/**
 * Another apply of the prefix holds the lock while plan reads: what the plan shows may be that
 * apply's work under way (a replace's holding queue looks like an interrupted replace, and the
 * messages its move holds unacknowledged like a client's), and may be gone a moment later.
 */
export function heldLockWarnings(actual: ActualCluster, prefix: string): string[] {
  if (!lockHeld(actual, prefix)) return [];
  return [`another apply of prefix "${prefix}" holds this cluster's lock (queue ${lockQueueName(prefix)}) and may be writing: this plan may show its work under way (a replace it is making looks interrupted, and what its move holds looks fetched by a client); plan again once it has finished`];
}

/** How to let go of a lock queue that a client that is no topo apply holds exclusively: it goes with that client's connection. */
export function closeHolderAdvice(vhost: string): string {
  return `close it (rabbitmqctl list_queues -p ${shellWord(vhost)} name owner_pid, then rabbitmqctl close_connection)`;
}

/** What to do about a queue of the lock's name that is not exclusive (plan's warning, apply's refusal). */
export function strayLockAdvice(vhost: string, lock: string): string {
  return `something other than topo declared it: once nothing uses it, delete it (rabbitmqadmin -V ${shellWord(vhost)} delete queue name=${shellWord(lock)})`;
}
