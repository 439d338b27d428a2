// Pure: which of a plan's creates apply writes together. A new queue, the new exchange it is bound
// from and that binding go in one unit, written in one pipelined batch on one channel, where the
// broker takes them in order: the binding follows its two ends at once. Written in kinds, every
// queue, then every exchange, then every binding, a new service's exchange stood unbound until
// the last phase, and a task published to it meanwhile was routed nowhere and dropped without a
// word; and every queue was there from the first phase, each sending the broker its statistics
// for the whole apply.

import type { Action, Resource } from "../model.js";
import { keyOf } from "../core/keys.js";

type Create = Extract<Action, { op: "create" }>;

/**
 * The creates of exchanges and queues (`objects`) and of bindings (`bindings`), as units of at
 * most `size` writes, each in the order the broker must take it, and the bindings no unit takes,
 * to be written once every unit is done. A unit takes a binding only from a new exchange to a new
 * queue; any other binding waits, as every binding did before, and so does every binding of a
 * group of new objects that would outgrow a unit (one exchange bound to many new queues). The
 * units keep the order of `objects` by their first object.
 */
export function writeUnits(objects: readonly Create[], bindings: readonly Create[], size: number): { units: Create[][]; later: Create[] } {
  const index = new Map<string, number>();
  objects.forEach((a, i) => index.set(keyOf(a.after), i));
  const at = (kind: Resource["kind"], name: string) => index.get(keyOf({ kind, name } as Resource));
  // Union-find over the objects, joined by the bindings a unit may take.
  const parent = objects.map((_, i) => i);
  const root = (i: number): number => {
    while (parent[i] !== i) i = parent[i] = parent[parent[i]!]!;
    return i;
  };
  const joined: { a: Create; from: number }[] = [];
  for (const a of bindings) {
    const b = a.after;
    if (b.kind !== "binding" || b.destinationType !== "queue" || b.source === "") continue;
    const from = at("exchange", b.source);
    const to = at("queue", b.destination);
    if (from === undefined || to === undefined) continue;
    joined.push({ a, from });
    parent[root(from)] = root(to);
  }
  const members = new Map<number, { objects: number[]; bindings: Create[] }>();
  const groupOf = (i: number) => {
    const r = root(i);
    let g = members.get(r);
    if (!g) members.set(r, (g = { objects: [], bindings: [] }));
    return g;
  };
  objects.forEach((_, i) => groupOf(i).objects.push(i));
  for (const j of joined) groupOf(j.from).bindings.push(j.a);
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
