// A delete takes the bindings of its exchange or queue with it, also those topo does not manage
// (RabbitMQ removes them with the object): plan names them under the delete, a saved plan covers
// them, and apply refuses such a delete unless told it may. Pure; the broker-side proof is in
// test/integration/trust.test.ts.

import { describe, expect, it } from "vitest";
import type { UnsafePlanError } from "../../src/errors.js";
import { diffCluster } from "../../src/plan/diff.js";
import { guardPlans } from "../../src/plan/guards.js";
import { renderMarkdown } from "../../src/plan/markdown.js";
import { planJson, renderText } from "../../src/plan/render.js";
import { compareToSaved, parseSavedPlan, savedPlan, stateOf, stateText } from "../../src/plan/saved.js";
import { actual, binding, desiredOf, exchange, queue, raw, service } from "../helpers/builders.js";

const ops = (d: ReturnType<typeof diffCluster>) => d.actions.map((a) => `${a.op} ${a.key}`);

describe("a delete names the bindings topo does not manage that go with it", () => {
  const d = desiredOf(raw({ services: ["mpwallet"] }), "async");
  const foreign = [
    queue({ name: "audit" }),
    exchange({ name: "userx", type: "headers" }),
    exchange({ name: "userx2", type: "fanout" }),
    binding({ source: "mplogin", destination: "audit", routingKey: "#" }),
    binding({ source: "mplogin", destination: "userx2", destinationType: "exchange", routingKey: "" }),
    binding({ source: "userx2", destination: "mplogin", destinationType: "exchange", routingKey: "" }),
    binding({ source: "userx", destination: "mplogin.async", routingKey: "", arguments: { "x-match": "all", team: "x" } }),
  ];
  const a = actual([...d.resources, ...service("mplogin", "async"), ...foreign]);
  const plan = diffCluster(d, a, "mp");
  const del = (key: string) => plan.actions.find((x) => x.key === key);

  it("attaches them to the delete of the exchange or queue they go with", () => {
    expect(ops(plan).sort()).toEqual(["delete binding|mplogin|queue|mplogin.async|mplogin.async.#|{}", "delete exchange|mplogin", "delete queue|mplogin.async"]);
    expect(del("exchange|mplogin")).toMatchObject({ unmanaged: [foreign[3], foreign[4], foreign[5]].map((b) => expect.objectContaining(b as object)) });
    expect(del("queue|mplogin.async")).toMatchObject({ unmanaged: [expect.objectContaining(foreign[6] as object)] });
    expect(del("binding|mplogin|queue|mplogin.async|mplogin.async.#|{}")).not.toHaveProperty("unmanaged");
  });

  it("names them in text, markdown and JSON", () => {
    const text = renderText({ clusters: [plan] });
    expect(text).toContain("- delete exchange mplogin\n      ! also removes 3 bindings topo does not manage: mplogin -> audit [#], mplogin -> exchange userx2 [], userx2 -> exchange mplogin []");
    expect(text).toContain(`- delete queue mplogin.async\n      ! also removes 1 binding topo does not manage: userx -> mplogin.async [] {"team":"x","x-match":"all"}`);
    expect(renderMarkdown({ clusters: [plan] })).toContain("also removes 3 bindings topo does not manage: mplogin -> audit [#]");
    const json = planJson({ clusters: [plan] }) as { clusters: { actions: Record<string, unknown>[] }[] };
    expect(json.clusters[0]?.actions.find((x) => x.name === "mplogin")).toMatchObject({ op: "delete", unmanaged: ["mplogin -> audit [#]", "mplogin -> exchange userx2 []", "userx2 -> exchange mplogin []"] });
  });

  it("apply refuses such a delete, even with --allow-destructive, unless --allow-unmanaged-deletes", () => {
    expect(() => guardPlans([plan], { allowDestructive: true, allowDataLoss: true })).toThrow(/refusing to delete 2 objects that take 4 bindings topo does not manage with them/);
    try {
      guardPlans([plan], { allowDestructive: true, allowDataLoss: true });
    } catch (e) {
      expect((e as UnsafePlanError).code).toBe("refused_destructive");
      expect((e as UnsafePlanError).hints.join("\n")).toMatch(/--allow-unmanaged-deletes/);
    }
    expect(() => guardPlans([plan], { allowDestructive: true, allowDataLoss: true, allowUnmanagedDeletes: true })).not.toThrow();
  });

  it("a saved plan's state covers them, and a different set makes it stale", () => {
    const three = actual([...d.resources, ...service("mplogin", "async"), ...foreign.slice(0, 3)]);
    expect(stateText(stateOf(d, a, "mp"))).not.toBe(stateText(stateOf(d, three, "mp")));
    const fewer = diffCluster(d, three, "mp");
    const state = stateOf(d, a, "mp");
    const saved = savedPlan({ clusters: [plan] }, { topoVersion: "t", file: "f", fileDigest: "x", prefix: "mp", states: { async: state }, desiredDigests: { async: "d" }, createdAt: "now" });
    expect(compareToSaved(parseSavedPlan(JSON.stringify(saved)), [{ plan, state }])).toEqual([]);
    const stale = compareToSaved(saved, [{ plan: fewer, state: stateOf(d, three, "mp") }]);
    expect(stale).toEqual(expect.arrayContaining([expect.stringMatching(/now delete exchange mplogin, the plan says delete exchange mplogin \(its details differ: unmanaged: \["binding\|mplogin\|exchange\|userx2\|\|\{\}",.* -> \(none\)\)/)]));
    expect(stale[0]?.split("\n").slice(0, 2)).toEqual(["cluster async: the broker's objects changed since the plan was made (4 objects):", "    binding mplogin -> exchange userx2 []: deleted since the plan"]);
  });
});
