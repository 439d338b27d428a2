// Pure: the order of apply's writes, where the order decides what the broker routes meanwhile:
// which of a plan's creates apply writes together (writeUnits), and which unbinds wait for the
// binds (unbindLast).
//
// A new object and its new bindings go in one unit, written in one pipelined batch on one
// channel, where the broker takes them in order: a binding follows its new ends at once. Written
// in kinds, every exchange, then every binding, a new exchange stood unbound until the last
// phase, and a task published to it meanwhile was routed nowhere and dropped without a word
// (before the apply, the same publish failed loudly: no exchange). Apply passes the new
// exchanges as the objects, its new queues being declared before them (broker/execute.ts).

import type { Action, ReplaceAction, Resource } from "../model.js";
import { keyOf, nameKey } from "../core/keys.js";

type Create = Extract<Action, { op: "create" }>;

/**
 * The creates of exchanges and queues (`objects`) and of bindings (`bindings`), as units of at
 * most `size` writes, each in the order the broker must take it, and the bindings no unit takes,
 * to be written once every unit is done. A unit takes every binding with a new end (an exchange
 * or a queue of `objects`) whose other end is new too or there already: so a new exchange is
 * bound the moment after it is declared, whether its queue was declared just before it, was
 * there already (its exchange deleted by hand) or is an exchange. `notYet` names, by key, what
 * is there only after the units (a queue replaced without losing a message is declared again
 * after them): a binding to it waits, as does one between objects that were both there, one
 * from the default exchange, and every binding of a group of objects that would outgrow a unit
 * (one exchange bound to many queues). The units keep the order of `objects` by their first
 * object.
 */
export function writeUnits(
  objects: readonly Create[],
  bindings: readonly Create[],
  size: number,
  notYet: ReadonlySet<string> = new Set(),
): { units: Create[][]; later: Create[] } {
  const index = new Map<string, number>();
  objects.forEach((a, i) => index.set(keyOf(a.after), i));
  // Union-find over the objects, joined by the bindings between two of them.
  const parent = objects.map((_, i) => i);
  const root = (i: number): number => {
    while (parent[i] !== i) i = parent[i] = parent[parent[i]!]!;
    return i;
  };
  const joined: { a: Create; at: number }[] = [];
  for (const a of bindings) {
    const b = a.after;
    if (b.kind !== "binding" || b.source === "") continue;
    const ends = [nameKey("exchange", b.source), nameKey(b.destinationType, b.destination)];
    const [from, to] = ends.map((k) => index.get(k));
    if (from === undefined && to === undefined) continue;
    if (ends.some((k) => notYet.has(k))) continue;
    joined.push({ a, at: (from ?? to)! });
    if (from !== undefined && to !== undefined) parent[root(from)] = root(to);
  }
  const members = new Map<number, { objects: number[]; bindings: Create[] }>();
  const groupOf = (i: number) => {
    const r = root(i);
    let g = members.get(r);
    if (!g) members.set(r, (g = { objects: [], bindings: [] }));
    return g;
  };
  objects.forEach((_, i) => groupOf(i).objects.push(i));
  for (const j of joined) groupOf(j.at).bindings.push(j.a);
  const units: Create[][] = [];
  const taken = new Set<Create>();
  // Map order is the order of each group's first object.
  for (const g of members.values()) {
    const own = g.objects.map((i) => objects[i]!);
    if (own.length + g.bindings.length > size) {
      for (const o of own) units.push([o]);
      continue;
    }
    units.push([...own, ...g.bindings]);
    for (const b of g.bindings) taken.add(b);
  }
  return { units, later: bindings.filter((b) => !taken.has(b)) };
}

/**
 * Of the bindings a plan deletes (`unbinds`), those to unbind only once the new bindings
 * (`binds`) are made: each between two ends the plan binds anew (its routing key or arguments
 * changed, which RabbitMQ cannot update: the plan deletes one binding and creates the other),
 * neither of them an object the plan deletes or declares again (`remade`, by key), where the
 * binding goes with its end. Unbound first, as every binding was, the two ends stood apart until
 * the new binding came, and the broker dropped, uncounted, what either binding would have
 * routed. The two at once route a message no more than once: a queue gets one copy of a message
 * however many of its bindings match it.
 */
export function unbindLast<A extends Action>(unbinds: readonly A[], binds: readonly Create[], remade: ReadonlySet<string>): Set<A> {
  const ends = (b: Resource) => (b.kind === "binding" ? JSON.stringify([b.source, b.destinationType, b.destination]) : undefined);
  const boundAnew = new Set(binds.map((a) => ends(a.after)));
  const last = new Set<A>();
  for (const a of unbinds) {
    const b = a.op === "delete" ? a.before : undefined;
    if (b?.kind !== "binding" || !boundAnew.has(ends(b))) continue;
    if (remade.has(nameKey("exchange", b.source)) || remade.has(nameKey(b.destinationType, b.destination))) continue;
    last.add(a);
  }
  return last;
}

/**
 * Of the queues replaced without losing a message (`lossless`), the keys of those whose old queue
 * is there to be bound: a new binding to one is bound to the old queue before its replace, which
 * moves it to the holding queue and on to the new queue with the queue's other bindings. Bound
 * only after the replace, it left the route broken for the whole move: an exchange deleted by hand
 * and declared again, or a routing key changed, routed the service's tasks nowhere, and the broker
 * dropped them without a word. Not a replace an earlier apply left half-way: its old queue may be
 * gone, and its holding queue keeps the bindings it had.
 */
export function carriedKeys(lossless: readonly ReplaceAction[]): Set<string> {
  const keys = new Set<string>();
  for (const a of lossless) {
    if (!a.resume && a.before.kind === "queue" && a.after.kind === "queue" && a.before.name === a.after.name) keys.add(keyOf(a.after));
  }
  return keys;
}

/** Whether a binding's destination is one of `queues` (by key). */
export function boundTo(b: Resource, queues: ReadonlySet<string>): boolean {
  return b.kind === "binding" && b.destinationType === "queue" && queues.has(nameKey("queue", b.destination));
}
