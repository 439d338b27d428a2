import { describe, expect, it } from "vitest";
import type { Action, ReplaceAction, Resource } from "../../src/model.js";
import { keyOf } from "../../src/core/keys.js";
import { planCluster } from "../../src/plan/diff.js";
import { boundTo, carriedKeys, unbindLast, writeUnits } from "../../src/plan/write-units.js";
import { actual, binding, desiredOf, exchange, queue, raw } from "../helpers/builders.js";

type Create = Extract<Action, { op: "create" }>;
const create = (after: Resource): Create => ({ op: "create", key: keyOf(after), after });
const names = (as: readonly Create[]) => as.map((a) => keyOf(a.after));

describe("writeUnits", () => {
  it("puts a new service's queue, exchange and binding in one unit, the binding after both", () => {
    const objects = [create(queue({ name: "mplogin.sync" })), create(queue({ name: "mpwallet.sync" })), create(exchange({ name: "mplogin" })), create(exchange({ name: "mpwallet" }))];
    const bindings = [create(binding({ source: "mplogin", destination: "mplogin.sync" })), create(binding({ source: "mpwallet", destination: "mpwallet.sync" }))];
    const { units, later } = writeUnits(objects, bindings, 16);
    expect(units.map(names)).toEqual([
      ["queue|mplogin.sync", "exchange|mplogin", keyOf(bindings[0]!.after)],
      ["queue|mpwallet.sync", "exchange|mpwallet", keyOf(bindings[1]!.after)],
    ]);
    expect(later).toEqual([]);
  });

  it("takes a binding with one new end and the other there already, in the new end's unit", () => {
    const objects = [create(queue({ name: "mplogin.sync" })), create(exchange({ name: "mplogin" })), create(exchange({ name: "mpaudit" })), create(exchange({ name: "mpbilling" }))];
    // The exchange is new and its queue was there (the exchange deleted by hand), or the other way round.
    const toOld = create(binding({ source: "mpbilling", destination: "audit" }));
    const fromOld = create(binding({ source: "amq.topic", destination: "mplogin.sync" }));
    const e2e = create(binding({ source: "mplogin", destination: "mpaudit", destinationType: "exchange" }));
    const toOldExchange = create(binding({ source: "mpaudit", destination: "amq.fanout", destinationType: "exchange" }));
    const own = create(binding({ source: "mplogin", destination: "mplogin.sync" }));
    const { units, later } = writeUnits(objects, [toOld, fromOld, e2e, toOldExchange, own], 16);
    expect(units.map(names)).toEqual([
      ["queue|mplogin.sync", "exchange|mplogin", "exchange|mpaudit", ...names([fromOld, e2e, toOldExchange, own])],
      ["exchange|mpbilling", keyOf(toOld.after)],
    ]);
    expect(later).toEqual([]);
  });

  it("leaves for later a binding between objects that were both there, from the default exchange, or to what is there only later", () => {
    const objects = [create(exchange({ name: "mplogin" })), create(queue({ name: "mpwallet.sync" }))];
    const bothOld = create(binding({ source: "amq.topic", destination: "audit" }));
    const fromDefault = create(binding({ source: "", destination: "mpwallet.sync" }));
    // mplogin.sync is replaced without losing a message after the units: declared again there.
    const toReplaced = create(binding({ source: "mplogin", destination: "mplogin.sync" }));
    const fromReplaced = create(binding({ source: "mpwallet", destination: "mpwallet.sync" }));
    const { units, later } = writeUnits(objects, [bothOld, fromDefault, toReplaced, fromReplaced], 16, new Set(["queue|mplogin.sync", "exchange|mpwallet"]));
    expect(units.map(names)).toEqual([["exchange|mplogin"], ["queue|mpwallet.sync"]]);
    // In the order they came.
    expect(later).toEqual([bothOld, fromDefault, toReplaced, fromReplaced]);
  });

  it("joins what bindings connect, and splits a group longer than a unit, its bindings left for later", () => {
    // One exchange bound to three new queues: one unit of seven.
    const fan = [create(exchange({ name: "mpfan" })), ...["a", "b", "c"].map((q) => create(queue({ name: `mp${q}.sync` })))];
    const fanBindings = ["a", "b", "c"].map((q) => create(binding({ source: "mpfan", destination: `mp${q}.sync` })));
    const joined = writeUnits(fan, fanBindings, 16);
    expect(joined.units).toHaveLength(1);
    expect(names(joined.units[0]!)).toEqual([...names(fan), ...names(fanBindings)]);
    // Too long for a unit of 6: every object alone, every binding later.
    const split = writeUnits(fan, fanBindings, 6);
    expect(split.units.map(names)).toEqual(fan.map((a) => [keyOf(a.after)]));
    expect(split.later).toEqual(fanBindings);
  });

  it("keeps every create once: a plan from empty of the example's services", () => {
    const d = desiredOf(raw({ services: ["mplogin", "mpwallet", { name: "mppayment", sync: false }] }), "async");
    const plan = planCluster(d, actual([], { vhostExists: false }), "mp");
    const creates = plan.actions.filter((a): a is Create => a.op === "create");
    const of = (kind: string) => creates.filter((a) => a.after.kind === kind);
    const { units, later } = writeUnits([...of("queue"), ...of("exchange")], of("binding"), 16);
    const written = [...units.flat(), ...later];
    expect(new Set(written).size).toBe(written.length);
    expect(new Set(written)).toEqual(new Set([...of("queue"), ...of("exchange"), ...of("binding")]));
    expect(later).toEqual([]);
    // Every binding after both of its ends, in its unit.
    for (const u of units) {
      u.forEach((a, i) => {
        if (a.after.kind !== "binding") return;
        const before = u.slice(0, i).map((x) => keyOf(x.after));
        expect(before).toContain(`exchange|${a.after.source}`);
        expect(before).toContain(`queue|${a.after.destination}`);
      });
    }
  });
});

describe("unbindLast", () => {
  const del = (before: Resource): Action => ({ op: "delete", key: keyOf(before), before });

  it("keeps a binding until the one made anew between the same ends is there: another key, other arguments, exchange to exchange", () => {
    const oldKey = del(binding({ source: "mplogin", destination: "mplogin.sync", routingKey: "#" }));
    const oldArgs = del(binding({ source: "mpwallet", destination: "mpwallet.sync", routingKey: "mpwallet.sync.#", arguments: { "x-match": "all" } }));
    const oldE2e = del(binding({ source: "mplogin", destination: "mpaudit", destinationType: "exchange", routingKey: "a" }));
    const elsewhere = del(binding({ source: "mplogin", destination: "audit", routingKey: "#" }));
    const binds = [
      create(binding({ source: "mplogin", destination: "mplogin.sync", routingKey: "mplogin.sync.#" })),
      create(binding({ source: "mpwallet", destination: "mpwallet.sync", routingKey: "mpwallet.sync.#" })),
      create(binding({ source: "mplogin", destination: "mpaudit", destinationType: "exchange", routingKey: "b" })),
      // Same names, another kind of destination: not the same ends.
      create(binding({ source: "mplogin", destination: "audit", destinationType: "exchange", routingKey: "#" })),
    ];
    expect([...unbindLast([oldKey, oldArgs, oldE2e, elsewhere], binds, new Set())]).toEqual([oldKey, oldArgs, oldE2e]);
  });

  it("unbinds first where an end is deleted or declared again, which takes the binding with it", () => {
    const toReplaced = del(binding({ source: "mplogin", destination: "mplogin.sync", routingKey: "#" }));
    const fromReplaced = del(binding({ source: "mpwallet", destination: "mpwallet.sync", routingKey: "#" }));
    const binds = [create(binding({ source: "mplogin", destination: "mplogin.sync" })), create(binding({ source: "mpwallet", destination: "mpwallet.sync" }))];
    expect(unbindLast([toReplaced, fromReplaced], binds, new Set(["queue|mplogin.sync", "exchange|mpwallet"])).size).toBe(0);
    // A queue of the same name as the exchange is not the exchange.
    expect([...unbindLast([fromReplaced], binds, new Set(["queue|mpwallet"]))]).toEqual([fromReplaced]);
  });
});

describe("carriedKeys", () => {
  const replace = (before: Resource, after: Resource, resume?: ReplaceAction["resume"]): ReplaceAction => ({ op: "replace", key: keyOf(after), before, after, because: ["arguments"], rebind: [], ...(resume ? { resume } : {}) });

  it("carries new bindings only into a replace that finds its old queue there, and only to that queue", () => {
    const q = queue({ name: "mplogin.async", durable: true });
    const now = replace(q, queue({ name: "mplogin.async", durable: true, arguments: { "x-max-length": 10 } }));
    const hold = queue({ name: "topo.hold.mpwallet.async", durable: true });
    // An earlier apply's half-way replace: its old queue may be gone, its holding queue keeps the bindings.
    const halfWay = replace(queue({ name: "mpwallet.async" }), queue({ name: "mpwallet.async", arguments: { "x-max-length": 10 } }), { hold, holdBindings: [], queueDone: false });
    // Its old side another queue, as a half-way replace whose queue is gone has its holding queue:
    // the name alone decides, resume or not.
    const fromHold = replace(hold, queue({ name: "mpbilling.async" }));
    const keys = carriedKeys([now, halfWay, fromHold]);
    expect([...keys]).toEqual(["queue|mplogin.async"]);
    expect(boundTo(binding({ source: "mplogin", destination: "mplogin.async" }), keys)).toBe(true);
    expect(boundTo(binding({ source: "mpwallet", destination: "mpwallet.async" }), keys)).toBe(false);
    // An exchange of the queue's name is not the queue, and a queue is not a binding.
    expect(boundTo(binding({ source: "mplogin", destination: "mplogin.async", destinationType: "exchange" }), keys)).toBe(false);
    expect(boundTo(q, keys)).toBe(false);
  });
});
