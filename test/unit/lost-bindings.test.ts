// A replace puts back every binding its object had, but RabbitMQ deletes an auto-delete exchange
// with its last binding, and lets only its own connection bind an exclusive queue: plan names
// those bindings, and apply refuses the replace (or delete) unless --allow-unmanaged-deletes.
// Pure; the broker-side proof is in test/integration/replace.test.ts.

import { describe, expect, it } from "vitest";
import type { Action } from "../../src/model.js";
import { diffCluster } from "../../src/plan/diff.js";
import { guardPlans } from "../../src/plan/guards.js";
import { planJson, renderText } from "../../src/plan/render.js";
import { compareToSaved, parseSavedPlan, savedPlan, stateOf } from "../../src/plan/saved.js";
import { actual, binding, desiredOf, exchange, queue, raw } from "../helpers/builders.js";
import { refusal } from "../helpers/refusal.js";

const find = (plan: ReturnType<typeof diffCluster>, key: string) => plan.actions.find((a) => a.key === key) as Action & { lost?: unknown };

describe("an exchange replace whose bindings the broker will not let topo put back", () => {
  // The tester's setup: Celery declared mpcel direct, the file wants topic.
  const d = desiredOf(raw({ services: [{ name: "mpcel", sync: false }] }), "async");
  const feeder = binding({ source: "feeder", destination: "mpcel", destinationType: "exchange", routingKey: "#" });
  const tap = binding({ source: "mpcel", destination: "amq.gen-tap", routingKey: "mpcel.async" });
  const audit = binding({ source: "mpcel", destination: "audit", routingKey: "mpcel.async" });
  const base = [
    ...d.resources.filter((r) => !(r.kind === "exchange" && r.name === "mpcel")),
    exchange({ name: "mpcel", type: "direct" }),
    queue({ name: "audit" }),
    audit,
    exchange({ name: "feeder", autoDelete: true }),
    feeder,
    queue({ name: "amq.gen-tap", exclusive: true, autoDelete: true, durable: false }),
    tap,
  ];
  const plan = diffCluster(d, actual(base), "mp");
  const replace = find(plan, "exchange|mpcel");

  it("names the auto-delete exchange's last binding and the exclusive queue's, not the others", () => {
    expect(replace.op).toBe("replace");
    expect(replace.lost).toEqual([
      { binding: feeder, why: "auto-delete" },
      { binding: tap, why: "exclusive" },
    ]);
    const text = renderText({ clusters: [plan] });
    expect(text).toContain(
      "! cannot re-create 2 bindings: feeder -> exchange mpcel [#] (exchange feeder is auto-delete, and this is its last binding: RabbitMQ deletes it with the binding), mpcel -> amq.gen-tap [mpcel.async] (queue amq.gen-tap is exclusive: only the connection that declared it may bind it); apply refuses this without --allow-unmanaged-deletes",
    );
    const json = planJson({ clusters: [plan] }) as { clusters: { actions: Record<string, unknown>[] }[] };
    expect(json.clusters[0]?.actions.find((a) => a.name === "mpcel" && a.op === "replace")).toMatchObject({ lost: [{ binding: "feeder -> exchange mpcel [#]", why: "auto-delete", plainOnly: false }, { why: "exclusive" }] });
  });

  it("also names the binding into an auto-delete exchange that goes: a tap bound both ways loses both", () => {
    // tap's only binding as a source is back to mpcel: the replace takes it, RabbitMQ deletes tap,
    // and with it mpcel -> tap, which apply would put back into nothing (404) and stop.
    const out = binding({ source: "mpcel", destination: "tap", destinationType: "exchange", routingKey: "mpcel.async" });
    const back = binding({ source: "tap", destination: "mpcel", destinationType: "exchange", routingKey: "" });
    const both = diffCluster(d, actual([...base, exchange({ name: "tap", type: "fanout", autoDelete: true }), out, back]), "mp");
    const lost = find(both, "exchange|mpcel").lost;
    expect(lost).toEqual(expect.arrayContaining([{ binding: out, why: "auto-delete", into: true }, { binding: back, why: "auto-delete" }]));
    expect(renderText({ clusters: [both] })).toContain("mpcel -> exchange tap [mpcel.async] (exchange tap is auto-delete and loses its last binding in this apply: RabbitMQ deletes it, and the bindings to it with it)");
    expect(refusal(() => guardPlans([both], { allowDestructive: true, allowDataLoss: true })).message).toContain("mpcel -> exchange tap [mpcel.async]: exchange tap is auto-delete and loses its last binding");
    // A saved plan carries it, and reads back the same.
    const state = stateOf(d, actual([...base, exchange({ name: "tap", type: "fanout", autoDelete: true }), out, back]), "mp");
    const saved = savedPlan({ clusters: [both] }, { topoVersion: "t", file: "f", fileDigest: "x", prefix: "mp", states: { async: state }, desiredDigests: { async: "d" }, createdAt: "now" });
    expect(compareToSaved(parseSavedPlan(JSON.stringify(saved)), [{ plan: both, state }])).toEqual([]);
  });

  it("follows a chain of auto-delete exchanges, and names what goes with them under the replace that sets it off", () => {
    // ada -> adb -> mpcel: adb goes with its last binding, and ada with its last one, into adb.
    const adb = binding({ source: "adb", destination: "mpcel", destinationType: "exchange", routingKey: "k1" });
    const ada = binding({ source: "ada", destination: "adb", destinationType: "exchange", routingKey: "" });
    const auto = (name: string) => exchange({ name, type: "fanout", autoDelete: true });
    const chain = diffCluster(d, actual([...base, auto("adb"), auto("ada"), adb, ada]), "mp");
    expect(find(chain, "exchange|mpcel").lost).toEqual(expect.arrayContaining([{ binding: adb, why: "auto-delete" }, { binding: ada, why: "auto-delete" }]));
    expect(refusal(() => guardPlans([chain], { allowDestructive: true, allowDataLoss: true })).message).toContain("ada -> exchange adb []: exchange ada is auto-delete");
    // ada with another binding that stays is kept; only its binding into adb goes, with adb.
    const stays = diffCluster(d, actual([...base, auto("adb"), auto("ada"), adb, ada, binding({ source: "ada", destination: "audit", routingKey: "x" })]), "mp");
    expect(find(stays, "exchange|mpcel").lost).toContainEqual({ binding: ada, why: "auto-delete", into: true });
    expect(renderText({ clusters: [stays] })).toContain("ada -> exchange adb [] (exchange adb is auto-delete and loses its last binding in this apply");
  });

  it("an auto-delete exchange with another binding that stays loses nothing", () => {
    const kept = diffCluster(d, actual([...base, binding({ source: "feeder", destination: "audit", routingKey: "x" })]), "mp");
    expect(find(kept, "exchange|mpcel").lost).toEqual([{ binding: tap, why: "exclusive" }]);
  });

  it("apply refuses it, even with --allow-destructive and --allow-data-loss, unless --allow-unmanaged-deletes", () => {
    const e = refusal(() => guardPlans([plan], { allowDestructive: true, allowDataLoss: true }));
    expect(e.code).toBe("refused_destructive");
    expect(e.message).toContain("refusing to replace 1 object whose 2 bindings topo cannot put back:\n  cluster async: -/+ replace exchange mpcel\n    feeder -> exchange mpcel [#]: exchange feeder is auto-delete");
    expect(e.hints.join("\n")).toMatch(/--allow-unmanaged-deletes/);
    expect(() => guardPlans([plan], { allowDestructive: true, allowDataLoss: true, allowUnmanagedDeletes: true })).not.toThrow();
  });

  it("a saved plan holds them: one made without them is stale", () => {
    const state = stateOf(d, actual(base), "mp");
    const saved = savedPlan({ clusters: [plan] }, { topoVersion: "t", file: "f", fileDigest: "x", prefix: "mp", states: { async: state }, desiredDigests: { async: "d" }, createdAt: "now" });
    expect(compareToSaved(parseSavedPlan(JSON.stringify(saved)), [{ plan, state }])).toEqual([]);
    const without = { ...plan, actions: plan.actions.map((a) => (a.op === "replace" ? { ...a, lost: undefined } : a)) };
    expect(compareToSaved(parseSavedPlan(JSON.stringify(saved)), [{ plan: without, state }]).join("\n")).toMatch(/replace exchange mpcel/);
  });
});

describe("a queue replace loses an auto-delete exchange's last binding only as a plain delete and re-create", () => {
  const before = desiredOf(raw({ services: [{ name: "mplogin", sync: false }] }), "async");
  const d = desiredOf(raw({ services: [{ name: "mplogin", sync: false, async: { arguments: { "x-max-length": 5000 } } }] }), "async");
  const adx = binding({ source: "ad_x", destination: "mplogin.async", routingKey: "k" });
  const plan = diffCluster(d, actual([...before.resources, exchange({ name: "ad_x", type: "direct", autoDelete: true }), adx]), "mp");

  it("is named as lost with --allow-data-loss only, and refused then", () => {
    expect(find(plan, "queue|mplogin.async").lost).toEqual([{ binding: adx, why: "auto-delete", plainOnly: true }]);
    expect(renderText({ clusters: [plan] })).toContain("! with --allow-data-loss (a plain delete and re-create), cannot re-create 1 binding: ad_x -> mplogin.async [k]");
    // Without loss the holding queue keeps ad_x bound: nothing to refuse.
    expect(() => guardPlans([plan], { allowDestructive: true, allowDataLoss: false })).not.toThrow();
    expect(() => guardPlans([plan], { allowDestructive: true, allowDataLoss: true, plainReplaces: false })).not.toThrow();
    expect(refusal(() => guardPlans([plan], { allowDestructive: true, allowDataLoss: true })).message).toMatch(/refusing to replace 1 object whose 1 binding topo cannot put back/);
    expect(() => guardPlans([plan], { allowDestructive: true, allowDataLoss: true, allowUnmanagedDeletes: true })).not.toThrow();
  });
});

describe("a delete that takes an auto-delete exchange's last binding", () => {
  const d = desiredOf(raw({ services: [{ name: "mpwallet", sync: false }] }), "async");
  const old = desiredOf(raw({ services: [{ name: "mpwallet", sync: false }, { name: "mplogin", sync: false }] }), "async");
  const adx = binding({ source: "ad_x", destination: "mplogin.async", routingKey: "k" });
  const plan = diffCluster(d, actual([...old.resources, exchange({ name: "ad_x", autoDelete: true }), adx]), "mp");

  it("says RabbitMQ deletes that exchange with it, and apply's refusal names it", () => {
    expect(find(plan, "queue|mplogin.async").lost).toEqual([{ binding: adx, why: "auto-delete" }]);
    expect(renderText({ clusters: [plan] })).toContain("! RabbitMQ also deletes auto-delete exchange ad_x, whose last binding goes with it");
    expect(refusal(() => guardPlans([plan], { allowDestructive: true, allowDataLoss: true })).message).toContain("RabbitMQ deletes exchange ad_x with it too (auto-delete: its last binding goes)");
  });
});
