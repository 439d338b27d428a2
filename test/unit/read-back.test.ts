// What apply reads back after its writes (plan/read-back.ts): the objects it wrote and what hangs
// on them, or the whole cluster; and the state it then compares with the file.

import { describe, expect, it } from "vitest";
import { mergeReadBack, readBackGets, readBackRequests, readBackScope, READ_BACK_MIN_GETS, sourcesToRead } from "../../src/plan/read-back.js";
import { keyOf } from "../../src/core/keys.js";
import type { Action, ActualCluster, Binding, ClusterPlan, Exchange, Policy, Queue, Resource } from "../../src/model.js";

const queue = (name: string): Queue => ({ kind: "queue", name, type: "classic", durable: true, autoDelete: false, exclusive: false, arguments: {} });
const exchange = (name: string, autoDelete = false): Exchange => ({ kind: "exchange", name, type: "topic", durable: true, autoDelete, internal: false, arguments: {} });
const binding = (source: string, destination: string, routingKey = `${destination}.#`): Binding => ({
  kind: "binding",
  source,
  destination,
  destinationType: "queue",
  routingKey,
  arguments: {},
});
const policy: Policy = { kind: "policy", name: "topo.mirror.sync", pattern: "^mp", applyTo: "queues", priority: 0, definition: { "ha-mode": "all" } };

const create = (r: Resource): Action => ({ op: "create", key: keyOf(r), after: r });
const remove = (r: Resource): Action => ({ op: "delete", key: keyOf(r), before: r });
const plan = (...actions: Action[]): ClusterPlan => ({ cluster: "async", endpoint: "amqp://x", vhost: "async", actions, degraded: [], warnings: [] });
const state = (...resources: Resource[]): ActualCluster => ({
  vhostExists: true,
  version: "3.10.8",
  nodes: ["rabbit@a"],
  resources,
  queueFacts: Object.fromEntries(resources.filter((r): r is Queue => r.kind === "queue").map((q) => [q.name, { node: "rabbit@a" }])),
});
const keys = (a: ActualCluster) => a.resources.map(keyOf);

describe("readBackScope", () => {
  it("reads back each queue and exchange written with its bindings, and a created binding's source exchange only if no binding from it is found", () => {
    const s = readBackScope(plan(create(queue("mpa.async")), create(binding("mpa", "mpa.async")), create(binding("mpb", "mpb.async"))), state());
    expect(s).toEqual({ queues: ["mpa.async"], exchanges: [], sources: [], sourcesIfMissing: ["mpa", "mpb"], pairs: [{ source: "mpb", destination: "mpb.async", destinationType: "queue" }] });
    // A queue and its bindings, one pair, and at most two source exchanges: what decides between
    // GETs and a whole read counts them as if both bindings were missing.
    expect(readBackGets(s as NonNullable<typeof s>)).toBe(5);
    // Both bindings found: no source is read (a binding is there only while its source is).
    expect(sourcesToRead(s!, [binding("mpa", "mpa.async"), binding("mpb", "mpb.async")])).toEqual([]);
    // One missing: its source is read, to tell a binding deleted from an exchange deleted.
    expect(sourcesToRead(s!, [binding("mpa", "mpa.async")])).toEqual(["mpb"]);
    expect(sourcesToRead(s!, [])).toEqual(["mpa", "mpb"]);
    // Another binding from the same exchange found: the exchange is there.
    expect(sourcesToRead(s!, [binding("mpa", "mpa.async", "other"), binding("mpb", "mpb.audit")])).toEqual([]);
    expect(readBackRequests(s!, { queues: [], exchanges: [], bindings: [], sourcesRead: ["mpb"] })).toBe(4);
    expect(readBackRequests(s!, { queues: [], exchanges: [], bindings: [], sourcesRead: [] })).toBe(3);
  });

  it("reads the source of a binding it deleted whatever the GETs find: an auto-delete exchange goes with its last binding", () => {
    const s = readBackScope(plan(remove(binding("mpa", "mpa.async")), create(binding("mpa", "mpa.audit"))), state(exchange("mpa", true), binding("mpa", "mpa.async")));
    expect(s?.sources).toEqual(["mpa"]);
    expect(s?.sourcesIfMissing).toEqual([]);
  });

  it("reads back the prefix's apply mark too, which apply renews without an action of the plan's", () => {
    const s = readBackScope(plan(create(queue("mpa.async"))), state(), "mp");
    expect(s?.sources).toEqual(["topo.mp.generation"]);
  });

  it("a binding from an exchange it wrote is covered by that exchange's bindings", () => {
    const s = readBackScope(plan(remove(exchange("mpa")), remove(binding("mpa", "mpa.async"))), state(exchange("mpa"), binding("mpa", "mpa.async")));
    expect(s).toEqual({ queues: [], exchanges: ["mpa"], sources: [], sourcesIfMissing: [], pairs: [] });
  });

  it("reads everything again after writing the vhost, a policy, a user or a replace", () => {
    expect(readBackScope(plan({ op: "create", key: "vhost|v", after: { kind: "vhost", name: "v" } }), state())).toBeUndefined();
    expect(readBackScope(plan(create(policy)), state())).toBeUndefined();
    expect(readBackScope(plan(create(queue("mpa.async")), remove(policy)), state())).toBeUndefined();
    expect(readBackScope(plan(create({ kind: "user", name: "mplogin", tags: [] })), state())).toBeUndefined();
    const replace: Action = { op: "replace", key: "queue|mpa.async", before: queue("mpa.async"), after: { ...queue("mpa.async"), durable: false }, because: ["durable"], rebind: [] };
    expect(readBackScope(plan(replace), state(queue("mpa.async")))).toBeUndefined();
  });

  it("reads everything again when one GET per object would cost more than the listing", () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => create(queue(`mp${i}.async`)));
    // A small vhost may take a few dozen GETs ...
    expect(readBackScope(plan(...many(READ_BACK_MIN_GETS / 2)), state())).toBeDefined();
    expect(readBackScope(plan(...many(READ_BACK_MIN_GETS / 2 + 1)), state())).toBeUndefined();
    // ... a large one one GET for every eight objects it will hold (a queue created: two GETs).
    const big = state(...Array.from({ length: 7500 }, (_, i) => exchange(`mpx${i}`)));
    expect(readBackScope(plan(...many(500)), big)).toBeDefined();
    expect(readBackScope(plan(...many(501)), big)).toBeUndefined();
    const removals = Array.from({ length: 313 }, (_, i) => remove(exchange(`mpx${i}`)));
    // Deletes do not make it larger: three GETs for each exchange deleted, 937 at most for 7,500.
    expect(readBackScope(plan(...removals.slice(0, 312)), big)).toBeDefined();
    expect(readBackScope(plan(...removals.slice(0, 313)), big)).toBeUndefined();
  });
});

describe("mergeReadBack", () => {
  const before = state(exchange("mpa"), queue("mpa.async"), binding("mpa", "mpa.async"), exchange("mpb", true), queue("mpb.async"), binding("mpb", "mpb.async"), binding("mpb", "mpb.audit"), queue("mpb.audit"));

  it("replaces what was read again and keeps the rest of the state read under the lock", () => {
    // Apply created mpc.async and its binding; the broker holds both, and mpb's untouched objects stay as read.
    const s = readBackScope(plan(create(queue("mpc.async")), create(binding("mpa", "mpc.async"))), before);
    const after = mergeReadBack(before, s as NonNullable<typeof s>, {
      queues: [{ queue: queue("mpc.async"), facts: { node: "rabbit@b" } }],
      exchanges: [exchange("mpa")],
      bindings: [binding("mpa", "mpc.async")],
      sourcesRead: [],
    });
    expect(keys(after)).toEqual([...keys(before), keyOf(queue("mpc.async")), keyOf(binding("mpa", "mpc.async"))].sort());
    expect(after.queueFacts["mpc.async"]).toEqual({ node: "rabbit@b" });
    expect(after.queueFacts["mpa.async"]).toEqual({ node: "rabbit@a" });
  });

  it("keeps the facts of a queue named __proto__ or constructor, read back or not", () => {
    // Assigned on a plain object, facts["__proto__"] set the prototype and were never the queue's.
    const odd = state(queue("constructor"), queue("__proto__"));
    const s = readBackScope(plan(create(queue("__proto__"))), odd);
    const after = mergeReadBack(odd, s as NonNullable<typeof s>, { queues: [{ queue: queue("__proto__"), facts: { node: "rabbit@b" } }], exchanges: [], bindings: [], sourcesRead: [] });
    expect(Object.keys(after.queueFacts).sort()).toEqual(["__proto__", "constructor"]);
    expect(Object.getOwnPropertyDescriptor(after.queueFacts, "__proto__")?.value).toEqual({ node: "rabbit@b" });
    expect(after.queueFacts["constructor"]).toEqual({ node: "rabbit@a" });
    expect(after.queueFacts["toString"]).toBeUndefined();
  });

  it("an object the GETs did not find is gone, and so are the bindings that hung on it", () => {
    // Apply deleted queue mpb.async: its binding, which the plan did not name, went with it.
    const s = readBackScope(plan(remove(queue("mpb.async"))), before);
    const after = mergeReadBack(before, s as NonNullable<typeof s>, { queues: [], exchanges: [], bindings: [], sourcesRead: [] });
    expect(keys(after)).not.toContain(keyOf(queue("mpb.async")));
    expect(keys(after)).not.toContain(keyOf(binding("mpb", "mpb.async")));
    expect(keys(after)).toContain(keyOf(binding("mpb", "mpb.audit")));
    expect(after.queueFacts["mpb.async"]).toBeUndefined();
  });

  it("a source exchange found gone is gone (an auto-delete exchange loses its last binding)", () => {
    const s = readBackScope(plan(remove(binding("mpb", "mpb.async"))), before);
    expect(s?.sources).toEqual(["mpb"]);
    const after = mergeReadBack(before, s as NonNullable<typeof s>, { queues: [], exchanges: [], bindings: [], sourcesRead: [] });
    expect(keys(after)).not.toContain(keyOf(exchange("mpb", true)));
    expect(keys(after)).not.toContain(keyOf(binding("mpb", "mpb.async")));
    // Only the pair was read again: the exchange's other binding stays as it was read.
    expect(keys(after)).toContain(keyOf(binding("mpb", "mpb.audit")));
  });

  it("a source exchange of a created binding is what the GETs found when they read it, else as read under the lock", () => {
    const s = readBackScope(plan(create(queue("mpc.async")), create(binding("mpa", "mpc.async"))), before);
    expect(s?.sourcesIfMissing).toEqual(["mpa"]);
    // Not read (its binding was found): it stays as read under the lock.
    const kept = mergeReadBack(before, s!, { queues: [{ queue: queue("mpc.async"), facts: {} }], exchanges: [], bindings: [binding("mpa", "mpc.async")], sourcesRead: [] });
    expect(keys(kept)).toContain(keyOf(exchange("mpa")));
    // Read and not found (deleted behind apply's back, its binding with it): gone.
    const gone = mergeReadBack(before, s!, { queues: [{ queue: queue("mpc.async"), facts: {} }], exchanges: [], bindings: [], sourcesRead: ["mpa"] });
    expect(keys(gone)).not.toContain(keyOf(exchange("mpa")));
    expect(keys(gone)).not.toContain(keyOf(binding("mpa", "mpc.async")));
  });

  it("a written object that differs on the broker is what the state holds", () => {
    const s = readBackScope(plan(create(queue("mpc.async"))), before);
    const other = { ...queue("mpc.async"), durable: false };
    const after = mergeReadBack(before, s as NonNullable<typeof s>, { queues: [{ queue: other, facts: {} }], exchanges: [], bindings: [], sourcesRead: [] });
    expect(after.resources.find((r) => keyOf(r) === "queue|mpc.async")).toEqual(other);
  });
});
