// An exchange replace that changes the type puts back the bindings of others as they were, and the
// new type routes them otherwise: plan names them under the replace, and apply refuses it unless
// --allow-unmanaged-deletes. Pure; the broker-side proof is in test/integration/replace.test.ts.

import { describe, expect, it } from "vitest";
import type { Action, Binding } from "../../src/model.js";
import { diffCluster } from "../../src/plan/diff.js";
import { guardPlans } from "../../src/plan/guards.js";
import { planJson, renderText } from "../../src/plan/render.js";
import { routingChange } from "../../src/plan/retyped.js";
import { compareToSaved, parseSavedPlan, savedPlan, stateOf } from "../../src/plan/saved.js";
import { actual, binding, desiredOf, exchange, queue, raw } from "../helpers/builders.js";
import { refusal } from "../helpers/refusal.js";

const find = (plan: ReturnType<typeof diffCluster>, key: string) => plan.actions.find((a) => a.key === key) as Action & { retyped?: Binding[] };

describe("routingChange", () => {
  const b = (routingKey: string, args: Record<string, unknown> = {}) => binding({ source: "x", destination: "q", routingKey, arguments: args as Binding["arguments"] });
  it("says how the routing into a binding changes with its exchange's type, and nothing where it does not", () => {
    expect(routingChange(b(""), "fanout", "topic")).toBe('as a fanout exchange\'s it got every message, whatever its routing key; as a topic exchange\'s it gets the messages whose routing key matches "" as a pattern ("*" one word, "#" any number)');
    expect(routingChange(b("mpdir.sync.#"), "direct", "topic")).toMatch(/^as a direct exchange's it got the messages whose routing key is exactly "mpdir\.sync\.#"; as a topic exchange's/);
    expect(routingChange(b("", { "x-match": "any", team: "billing" }), "headers", "topic")).toMatch(/^as a headers exchange's it got the messages whose headers match its arguments \{"x-match":"any","team":"billing"\}, whatever their routing key; /);
    expect(routingChange(b("k"), "x-consistent-hash", "topic")).toMatch(/^as a x-consistent-hash exchange's it got what a x-consistent-hash exchange routes by its own rules; /);
    // A key without wildcards means the same to a direct and a topic exchange.
    expect(routingChange(b("mpdir.sync.task"), "direct", "topic")).toBeUndefined();
    expect(routingChange(b("mpdir.sync.task"), "topic", "direct")).toBeUndefined();
    expect(routingChange(b("#"), "topic", "topic")).toBeUndefined();
  });
});

describe("an exchange replace that changes the type, with bindings of others on it", () => {
  // The tester's setup: service exchanges made fanout, direct and headers by another hand, each
  // with a queue of someone else's bound; the file wants them topic.
  const d = desiredOf(raw({ services: [{ name: "mpcel", sync: false }, { name: "mpdir", sync: false }, { name: "mphdr", sync: false }] }), "async");
  const fan = binding({ source: "mpcel", destination: "audit_fan", routingKey: "" });
  const dir = binding({ source: "mpdir", destination: "audit_dir", routingKey: "mpdir.sync.#" });
  const dirExact = binding({ source: "mpdir", destination: "audit_dir", routingKey: "mpdir.async.pay" });
  const hdr = binding({ source: "mphdr", destination: "audit_hdr", routingKey: "", arguments: { "x-match": "any", team: "billing" } });
  const base = [
    ...d.resources.filter((r) => !(r.kind === "exchange" && ["mpcel", "mpdir", "mphdr"].includes(r.name))),
    exchange({ name: "mpcel", type: "fanout" }),
    exchange({ name: "mpdir", type: "direct" }),
    exchange({ name: "mphdr", type: "headers" }),
    ...["audit_fan", "audit_dir", "audit_hdr"].map((name) => queue({ name })),
    fan,
    dir,
    dirExact,
    hdr,
  ];
  const plan = diffCluster(d, actual(base), "mp");

  it("names each binding whose routing changes, and how, not the file's own nor one whose key means the same", () => {
    expect(find(plan, "exchange|mpcel").retyped).toEqual([fan]);
    expect(find(plan, "exchange|mpdir").retyped).toEqual([dir]);
    expect(find(plan, "exchange|mphdr").retyped).toEqual([hdr]);
    // The file's own binding, mpcel -> mpcel.async, is put back too, and is what the file wants.
    expect(find(plan, "exchange|mpcel").op === "replace" && (find(plan, "exchange|mpcel") as { rebind: Binding[] }).rebind.length).toBe(2);
    const text = renderText({ clusters: [plan] });
    expect(text).toContain(
      '! changes what 1 binding topo does not manage routes, put back as it was: mpcel -> audit_fan [] (as a fanout exchange\'s it got every message, whatever its routing key; as a topic exchange\'s it gets the messages whose routing key matches "" as a pattern ("*" one word, "#" any number)); apply refuses this without --allow-unmanaged-deletes',
    );
    expect(text).not.toContain("mpdir -> audit_dir [mpdir.async.pay] (as");
    const json = planJson({ clusters: [plan] }) as { clusters: { actions: Record<string, unknown>[] }[] };
    expect(json.clusters[0]?.actions.find((a) => a.name === "mphdr" && a.op === "replace")).toMatchObject({ retyped: [{ binding: expect.stringMatching(/^mphdr -> audit_hdr/), reason: expect.stringMatching(/^as a headers exchange's/) }] });
  });

  it("apply refuses it, even with --allow-destructive and --allow-data-loss, unless --allow-unmanaged-deletes", () => {
    const e = refusal(() => guardPlans([plan], { allowDestructive: true, allowDataLoss: true }));
    expect(e.code).toBe("refused_destructive");
    expect(e.message).toContain("refusing to replace 3 exchanges whose new type changes what 3 bindings topo does not manage route:\n  cluster async: -/+ replace exchange mpcel\n    mpcel -> audit_fan []: as a fanout exchange's it got every message");
    expect(e.hints.join("\n")).toMatch(/pass --allow-unmanaged-deletes/);
    expect(() => guardPlans([plan], { allowDestructive: true, allowDataLoss: true, allowUnmanagedDeletes: true })).not.toThrow();
    // Without bindings of others, or with one whose key means the same, nothing to refuse.
    const quiet = diffCluster(d, actual(base.filter((r) => r !== fan && r !== dir && r !== hdr)), "mp");
    expect(quiet.actions.filter((a) => a.op === "replace").map((a) => a.key).sort()).toEqual(["exchange|mpcel", "exchange|mpdir", "exchange|mphdr"]);
    expect(() => guardPlans([quiet], { allowDestructive: true, allowDataLoss: true })).not.toThrow();
  });

  it("a saved plan holds them: one made without them is stale", () => {
    const state = stateOf(d, actual(base), "mp");
    const saved = savedPlan({ clusters: [plan] }, { topoVersion: "t", file: "f", fileDigest: "x", prefix: "mp", states: { async: state }, desiredDigests: { async: "d" }, createdAt: "now" });
    const parsed = parseSavedPlan(JSON.stringify(saved));
    expect(compareToSaved(parsed, [{ plan, state }])).toEqual([]);
    expect(renderText({ clusters: parsed.clusters.map((c) => ({ ...plan, actions: c.actions })) })).toContain("! changes what 1 binding topo does not manage routes");
    const without = { ...plan, actions: plan.actions.map((a) => (a.op === "replace" ? { ...a, retyped: undefined } : a)) };
    expect(compareToSaved(parsed, [{ plan: without, state }]).join("\n")).toMatch(/replace exchange mpcel/);
  });
});
