// Pure: the bindings a replace or a delete takes with its object that topo cannot make again.
// A replace puts back every binding its object had, the users' too; a delete names those it takes
// (plan/diff.ts). Two kinds the broker does not let topo put back:
// - an auto-delete exchange is deleted by RabbitMQ once it is the source of no binding, so a
//   binding that is its last one goes, with the exchange, the moment the object at its other end
//   is deleted (measured on 3.10.8: a user's auto-delete `feeder` bound only to the replaced
//   `mpcel`; the rebind `feeder -> exchange mpcel` failed 404);
// - an exclusive queue may be bound only over the connection that declared it (405
//   RESOURCE_LOCKED): a tap a client holds bound to a replaced exchange cannot be bound again.
// Apply refuses such a replace or delete unless told it may take them (plan/guards.ts), and then
// does not count their failure as one (broker/execute.ts).

import type { Action, Binding, LostBinding, Resource } from "../model.js";
import { keyOf } from "../core/keys.js";
import { pushTo } from "../core/collections.js";

/** How an auto-delete exchange fares in this apply: deleted whatever the mode, only when queue replaces are plain, or kept. */
type Fate = "deleted" | "plainOnly";

/**
 * Set `lost` on each replace and delete of an exchange or a queue whose bindings the broker will
 * not let topo make again. `deleted`: the keys of the bindings this plan deletes itself.
 */
export function markLostBindings(actions: Action[], actual: readonly Resource[], deleted: ReadonlySet<string>): void {
  const autoDelete = new Set<string>();
  const exclusive = new Set<string>();
  for (const r of actual) {
    if (r.kind === "exchange" && r.autoDelete) autoDelete.add(r.name);
    else if (r.kind === "queue" && r.exclusive) exclusive.add(r.name);
  }
  if (autoDelete.size === 0 && exclusive.size === 0) return;

  // Whose bindings go in this apply: what it deletes, and the exchanges it replaces (always a
  // delete and re-create). A queue replace takes its bindings only when it is a plain delete and
  // re-create (--allow-data-loss, and no interrupted replace to finish): without loss, its holding
  // queue is bound before the queue is unbound, and the new queue before the holding queue.
  const gone = { queue: new Set<string>(), exchange: new Set<string>() };
  const plainQueues = new Set<string>();
  /** The action that takes each object, by kind and name: what sets off an auto-delete exchange's going. */
  const takenBy = new Map<string, Action>();
  for (const a of actions) {
    if (a.op === "delete" && (a.before.kind === "queue" || a.before.kind === "exchange")) {
      gone[a.before.kind].add(a.before.name);
      takenBy.set(`${a.before.kind}|${a.before.name}`, a);
    }
    if (a.op !== "replace") continue;
    if (a.before.kind === "exchange") gone.exchange.add(a.before.name);
    else if (a.before.kind === "queue" && !a.resume) plainQueues.add(a.before.name);
    if (a.before.kind === "exchange" || (a.before.kind === "queue" && !a.resume)) takenBy.set(`${a.before.kind}|${a.before.name}`, a);
  }

  const fates = new Map<string, Fate>();
  /** Which action's object an auto-delete exchange goes with. */
  const causes = new Map<string, Action>();
  const bySource = new Map<string, Binding[]>();
  // An auto-delete exchange topo itself replaces is re-created before the bindings are put back.
  for (const b of actual) if (b.kind === "binding" && autoDelete.has(b.source) && !gone.exchange.has(b.source)) pushTo(bySource, b.source, b);
  // To a fixed point: an auto-delete exchange whose last binding went into another that goes
  // goes too (a -> b -> the replaced exchange: RabbitMQ deleted both, and plan named only b).
  const causeOf = (b: Binding): Action | undefined => takenBy.get(`${b.destinationType}|${b.destination}`) ?? (b.destinationType === "exchange" ? causes.get(b.destination) : undefined);
  for (let changed = true; changed; ) {
    changed = false;
    for (const [source, bindings] of bySource) {
      if (fates.get(source) === "deleted") continue;
      const kept = bindings.filter((b) => !deleted.has(keyOf(b)) && !gone[b.destinationType].has(b.destination) && !(b.destinationType === "exchange" && fates.get(b.destination) === "deleted"));
      const fate: Fate | undefined =
        kept.length === 0
          ? "deleted"
          : kept.every((b) => (b.destinationType === "queue" && plainQueues.has(b.destination)) || (b.destinationType === "exchange" && fates.get(b.destination) === "plainOnly"))
            ? "plainOnly"
            : undefined;
      if (!fate || fate === fates.get(source)) continue;
      fates.set(source, fate);
      const cause = bindings.map(causeOf).find((x) => x !== undefined);
      if (cause) causes.set(source, cause);
      changed = true;
    }
  }

  const lostOf = (b: Binding, object: Resource, plainReplace: boolean): LostBinding | undefined => {
    const fate = fates.get(b.source);
    if (fate) return { binding: b, why: "auto-delete", ...(plainReplace || fate === "plainOnly" ? { plainOnly: true as const } : {}) };
    // Into such an exchange: RabbitMQ deletes it with the bindings to it too (a tap bound both
    // ways to a replaced exchange: its binding back to it was put back into nothing, 404).
    const into = b.destinationType === "exchange" ? fates.get(b.destination) : undefined;
    if (into) return { binding: b, why: "auto-delete", into: true, ...(plainReplace || into === "plainOnly" ? { plainOnly: true as const } : {}) };
    // Only a replace would bind it again; a delete names it among the bindings it takes anyway.
    if (object.kind === "exchange" && b.destinationType === "queue" && exclusive.has(b.destination)) return { binding: b, why: "exclusive" };
    return undefined;
  };
  for (const a of actions) {
    let lost: LostBinding[] = [];
    if (a.op === "replace" && !a.resume && (a.before.kind === "exchange" || a.before.kind === "queue")) {
      lost = a.rebind.flatMap((b) => lostOf(b, a.before, a.before.kind === "queue") ?? []);
    } else if (a.op === "delete" && a.unmanaged) {
      lost = a.unmanaged.flatMap((b) => {
        const l = lostOf(b, a.before, false);
        return l?.why === "auto-delete" ? [l] : [];
      });
    }
    if (lost.length && (a.op === "replace" || a.op === "delete")) a.lost = lost;
  }
  // The bindings that go with such an exchange but belong to no replaced or deleted object (the
  // service exchange's own route into a user's tap, or another auto-delete exchange's last
  // binding into it), named under the action that sets it off: RabbitMQ deleted them unnamed.
  const named = new Set(actions.flatMap((a) => (a.op === "replace" || a.op === "delete" ? (a.lost ?? []).map((l) => keyOf(l.binding)) : [])));
  for (const b of actual) {
    if (b.kind !== "binding" || deleted.has(keyOf(b)) || named.has(keyOf(b))) continue;
    // One whose other end this plan deletes or replaces goes with that object, and that action names it.
    if (gone[b.destinationType].has(b.destination) || gone.exchange.has(b.source) || (b.destinationType === "queue" && plainQueues.has(b.destination))) continue;
    const from = fates.get(b.source);
    const into = b.destinationType === "exchange" ? fates.get(b.destination) : undefined;
    const cause = from ? causes.get(b.source) : into ? causes.get(b.destination) : undefined;
    if (!cause || (cause.op !== "replace" && cause.op !== "delete")) continue;
    const fate = from ?? into;
    (cause.lost ??= []).push({ binding: b, why: "auto-delete", ...(from ? {} : { into: true as const }), ...(fate === "plainOnly" ? { plainOnly: true as const } : {}) });
    named.add(keyOf(b));
  }
}

/** The lost bindings that count in this apply: all of them when queue replaces are plain delete and re-create. */
export function lostNow(lost: readonly LostBinding[] | undefined, plainReplaces: boolean): LostBinding[] {
  return (lost ?? []).filter((l) => !l.plainOnly || plainReplaces);
}

/** The auto-delete exchange RabbitMQ deletes, taking an "auto-delete" lost binding with it. */
export function autoDeleted(l: LostBinding): string {
  return l.into ? l.binding.destination : l.binding.source;
}
