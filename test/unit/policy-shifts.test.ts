// A change to topo's own policies can hand a queue that holds messages to another policy's limit
// (a user's, that topo's shadowed by priority): the broker then cuts the queue at once. Plan names
// the queues and what they would lose under the change; apply refuses it without --allow-data-loss.

import { describe, expect, it } from "vitest";
import type { ActualCluster, Policy, QueueFacts } from "../../src/model.js";
import { diffCluster } from "../../src/plan/diff.js";
import { dataLossLines, guardPlans } from "../../src/plan/guards.js";
import { limitShifts } from "../../src/plan/policy-shifts.js";
import { planJson, renderText } from "../../src/plan/render.js";
import { UnsafePlanError } from "../../src/errors.js";
import { actual, desiredOf, policy, raw } from "../helpers/builders.js";

// mplogin's sync queue, mirrored by topo's policy topo.mp.mirror.sync (priority 0), and the file
// that no longer mirrors it.
const mirrored = desiredOf(raw({ services: [{ name: "mplogin", async: false }] }), "sync");
const unmirrored = desiredOf(raw({ services: [{ name: "mplogin", async: false, sync: { mirrored: false } }] }), "sync");
const user = (o: Partial<Policy> = {}) => policy({ name: "userlimit", pattern: "^mplogin\\.sync$", priority: -1, definition: { "max-length": 5 }, ...o });
/** The broker as the mirrored file left it, with `extra` policies, the queue holding `facts`. */
const broker = (extra: Policy[], facts: QueueFacts | undefined, o: Partial<ActualCluster> = {}): ActualCluster =>
  actual([...mirrored.resources, ...extra], { messagesCounted: facts !== undefined, queueFacts: facts ? { "mplogin.sync": facts } : {}, ...o });
const plan = (a: ActualCluster, d = unmirrored) => diffCluster(d, a, "mp");
const losses = (a: ActualCluster, d = unmirrored) => plan(a, d).actions.flatMap((x) => (x.op === "replace" ? [] : (x.losses ?? [])));
const refusal = (p: ReturnType<typeof plan>, allowDataLoss = false) => {
  try {
    guardPlans([p], { allowDestructive: true, allowDataLoss, allowUnmanagedDeletes: true });
  } catch (e) {
    return e as UnsafePlanError;
  }
  return undefined;
};

describe("policy changes that would make a queue lose messages", () => {
  it("deleting topo's mirror policy hands the queue to a user's max-length below what it holds: named under the delete, refused without --allow-data-loss", () => {
    const p = plan(broker([user()], { messages: 100, unacked: 0 }));
    expect(renderText({ clusters: [p] }).split("\n")).toEqual(
      expect.arrayContaining([
        "  - delete policy topo.mp.mirror.sync",
        "      ! messages at risk: queue mplogin.sync holds 100 messages, and once this change is made policy userlimit's max-length 5 applies to it (now: none): drop-head would discard the oldest 95",
      ]),
    );
    const e = refusal(p);
    expect(e).toBeInstanceOf(UnsafePlanError);
    expect(e?.code).toBe("refused_data_loss");
    expect(e?.message).toBe(
      "refusing to make 1 policy change that would make 1 queue lose messages:\n  cluster sync: - delete policy topo.mp.mirror.sync\n    queue mplogin.sync holds 100 messages, and once this change is made policy userlimit's max-length 5 applies to it (now: none): drop-head would discard the oldest 95",
    );
    expect(e?.hints).toEqual([
      'let the workers drain mplogin.sync first (below 5), or raise policy userlimit\'s max-length to at least 100',
      "or change the other policy so that it does not limit the queue (its definition, or its pattern so that it no longer matches the queue; a priority below that of topo's policy only helps where topo's policy still matches the queue after the change), or keep the file's policy as it was",
      "or pass --allow-data-loss to make the change and let the broker drop what the limit does not keep; nothing was changed",
    ]);
    expect(refusal(p, true)).toBeUndefined();
    expect(dataLossLines(p)).toEqual([expect.stringMatching(/^cluster sync: --allow-data-loss: - delete policy topo\.mp\.mirror\.sync: queue mplogin\.sync holds 100 messages/)]);
    const json = planJson({ clusters: [p] }) as { clusters: { actions: { name: string; losses?: unknown[] }[] }[] };
    expect(json.clusters[0]!.actions.find((a) => a.name === "topo.mp.mirror.sync")?.losses).toEqual([expect.objectContaining({ queue: "mplogin.sync", rule: "max-length", messages: 100 })]);
  });

  it("no loss where the queue holds no more than the limit keeps, where drop-head is not the overflow, or where a limit already applies", () => {
    expect(losses(broker([user()], { messages: 5, unacked: 0 }))).toEqual([]);
    expect(losses(broker([user({ definition: { "max-length": 5, overflow: "reject-publish" } })], { messages: 100, unacked: 0 }))).toEqual([]);
    // An operator policy caps the queue at 3 before and after: the user's 5 changes nothing.
    const capped = broker([user()], { messages: 3, unacked: 0 }, { operatorPolicies: [policy({ name: "cap", pattern: "^mp", definition: { "max-length": 3 } })] });
    expect(limitShifts(plan(capped).actions, capped)).toEqual([]);
    // A limit the file's own policy change does not reach: a user's policy that wins anyway.
    expect(losses(broker([user({ priority: 5 })], { messages: 100, unacked: 0 }))).toEqual([]);
  });

  it("an operator policy counts beside the new policy: the lowest value wins", () => {
    const a = broker([user({ definition: { "max-length": 50 } })], { messages: 100, unacked: 0 }, { operatorPolicies: [policy({ name: "cap", pattern: "^mp", definition: { "max-length": 20 } })] });
    // Before, the operator policy kept 20; after, still 20: the queue cannot hold 100, no shift.
    expect(losses(a)).toEqual([]);
    const b = broker([user({ definition: { "max-length": 10 } })], { messages: 20, unacked: 0 }, { operatorPolicies: [policy({ name: "cap", pattern: "^mp", definition: { "max-length": 20 } })] });
    expect(losses(b).map((l) => l.reason)).toEqual([expect.stringContaining("policy userlimit's max-length 10 applies to it (now: operator policy cap's max-length 20): drop-head would discard the oldest 10")]);
  });

  it("counts the plan did not read say nothing yet; counts the broker did not give are a loss", () => {
    const unread = broker([user()], undefined);
    expect(limitShifts(plan(unread).actions, unread).map((s) => s.queue.name)).toEqual(["mplogin.sync"]);
    expect(losses(unread)).toEqual([]);
    const uncounted = broker([user()], {}, { messagesCounted: true });
    expect(losses(uncounted).map((l) => l.reason)).toEqual([expect.stringMatching(/^queue mplogin\.sync holds messages the broker did not count, and once this change is made policy userlimit's max-length 5 applies/)]);
    expect(refusal(plan(uncounted))?.code).toBe("refused_data_loss");
  });

  it("an update that lowers topo's priority below the user's policy is judged the same: the user's policy applies once topo's lets go", () => {
    const high = user({ priority: 1 });
    const p = plan(broker([high], { messages: 9, unacked: 1 }), mirrored);
    // The user's policy at priority 1 wins over topo's 0 already: no change.
    expect(p.actions).toEqual([]);
    // topo's policy on the broker has a higher priority than the file's (0): the update hands the queue over.
    const mine = mirrored.resources.find((r): r is Policy => r.kind === "policy")!;
    const a = actual([...mirrored.resources.filter((r) => r !== mine), { ...mine, priority: 2 }, high], { messagesCounted: true, queueFacts: { "mplogin.sync": { messages: 10, unacked: 1 } } });
    const update = plan(a, mirrored).actions.find((x) => x.op === "update");
    expect(update?.op === "update" && update.losses?.map((l) => l.reason)).toEqual([expect.stringContaining("queue mplogin.sync holds 10 messages, and once this change is made policy userlimit's max-length 5 applies to it (now: none): drop-head would discard the oldest 5")]);
  });

  it("max-length-bytes: judged on the statistics' bytes, and refused where they do not count them", () => {
    const bytes = user({ definition: { "max-length-bytes": 1000 } });
    expect(losses(broker([bytes], { messages: 10, unacked: 0, bytes: 500 }))).toEqual([]);
    expect(losses(broker([bytes], { messages: 10, unacked: 0, bytes: 5000 })).map((l) => l.reason)).toEqual([expect.stringContaining("max-length-bytes 1000 applies to it (now: none): it holds 5000 bytes: drop-head would discard the oldest messages")]);
    expect(losses(broker([bytes], { messages: 10, unacked: 0 })).map((l) => l.rule)).toEqual(["max-length-bytes"]);
    expect(losses(broker([bytes], { messages: 0, unacked: 0 }))).toEqual([]);
  });

  it("expires deletes a queue with what it holds; a policy's message-ttl spares what it holds on 3.x (measured), not known on 4.x", () => {
    const expiring = user({ definition: { expires: 60000 } });
    expect(losses(broker([expiring], { messages: 3, unacked: 0 })).map((l) => l.reason)).toEqual([expect.stringContaining("expires 60000 applies to it (now: none): the queue is deleted with what it holds if no worker uses it for 60 s")]);
    expect(losses(broker([expiring], { messages: 0, unacked: 0 }))).toEqual([]);
    const ttl = user({ definition: { "message-ttl": 1000 } });
    expect(losses(broker([ttl], { messages: 3, unacked: 0 }))).toEqual([]);
    expect(losses(broker([ttl], { messages: 3, unacked: 0 }, { version: "4.0.5" })).map((l) => l.rule)).toEqual(["message-ttl"]);
  });

  it("a queue the plan deletes or replaces is left to its own guards", () => {
    const gone = desiredOf(raw({ services: [{ name: "mpother", async: false, sync: { mirrored: false } }] }), "sync");
    const a = broker([user({ pattern: "^mp" })], { messages: 100, unacked: 0 });
    expect(limitShifts(plan(a, gone).actions, a).map((s) => s.queue.name)).not.toContain("mplogin.sync");
  });
});
