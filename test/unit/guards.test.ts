// What apply refuses without being told it may, on plain plans: no broker, no files.

import { describe, expect, it } from "vitest";
import { UnsafePlanError } from "../../src/errors.js";
import type { Action, ClusterPlan } from "../../src/model.js";
import { dataLossLines, deletesQueues, guardPlans } from "../../src/plan/guards.js";
import { renderAction } from "../../src/plan/render.js";
import { exchange, queue } from "../helpers/builders.js";
import { refusal } from "../helpers/refusal.js";

const plan = (actions: Action[], cluster = "async"): ClusterPlan => ({ cluster, endpoint: "amqp://u:***@h/a", vhost: "a", actions, degraded: [], warnings: [] });
const q = queue({ name: "mplogin.async" });
const longer = queue({ name: "mplogin.async", arguments: { "x-max-length": 10 } });
const create: Action = { op: "create", key: "exchange|mpnew", after: exchange({ name: "mpnew" }) };
const deleteFull: Action = { op: "delete", key: "queue|mpold.async", before: queue({ name: "mpold.async" }), messages: 3 };
const deleteEmpty: Action = { op: "delete", key: "queue|mpold.async", before: queue({ name: "mpold.async" }), messages: 0 };
const replace = (o: Partial<Extract<Action, { op: "replace" }>> = {}): Action => ({ op: "replace", key: "queue|mplogin.async", before: q, after: longer, because: ["arguments.x-max-length: (none) -> 10"], rebind: [], ...o });
const none = { allowDestructive: false, allowDataLoss: false };

describe("guardPlans", () => {
  it("lets creates and updates through", () => {
    expect(() => guardPlans([plan([create])], none)).not.toThrow();
  });

  it("refuses every destructive change of every cluster at once, naming each", () => {
    const e = refusal(() => guardPlans([plan([deleteEmpty]), plan([replace()], "sync")], none));
    expect(e.code).toBe("refused_destructive");
    expect(e.message).toMatch(/^refusing to apply 2 destructive changes without --allow-destructive:/);
    expect(e.message).toContain("cluster async: - delete queue mpold.async");
    expect(e.message).toContain("cluster sync: -/+ replace queue mplogin.async");
    expect(e.hints.join("\n")).toMatch(/nothing was changed/);
    expect(e.hints[0]).toBe("a replace deletes and re-creates the object (its bindings are re-created too); a delete removes an object topo manages that the file no longer lists");
    // Deletes alone (a user dropped from the file, say): no word of replaces.
    const deletes = refusal(() => guardPlans([plan([deleteEmpty])], none));
    expect(deletes.hints[0]).toBe("a delete removes an object topo manages that the file no longer lists");
  });

  it("lets the end of an interrupted replace through when only the move back is left, not while the old queue is still to be deleted", () => {
    const hold = queue({ name: "topo.hold.mplogin.async", arguments: { "x-max-length": 10 } });
    const resume = (queueDone: boolean) => ({ hold, holdBindings: [], queueDone });
    // The queue has its new shape: only the move back and the emptied holding queue's delete are left.
    expect(() => guardPlans([plan([replace({ before: longer, resume: resume(true) })])], none)).not.toThrow();
    // The queue is gone: it is declared, and the messages move back.
    expect(() => guardPlans([plan([replace({ before: { ...hold }, resume: resume(false) })])], none)).not.toThrow();
    // The old queue is still there, in its old shape: the replace deletes it.
    const e = refusal(() => guardPlans([plan([replace({ resume: { ...resume(false), messages: 7 } })])], none));
    expect(e.code).toBe("refused_destructive");
    expect(e.message).toContain("cluster async: -/+ replace queue mplogin.async (finishing an interrupted replace: 7 messages and the queue's bindings wait on topo.hold.mplogin.async, where no worker takes them, until an apply finishes it)");
  });

  it("names every flag a plan lacks in one refusal: destructive changes, bindings topo does not manage, messages lost", () => {
    const foreign = { kind: "binding" as const, source: "mpold", destination: "audit", destinationType: "queue" as const, routingKey: "#", arguments: {} };
    const takesForeign: Action = { op: "delete", key: "exchange|mpold", before: exchange({ name: "mpold" }), unmanaged: [foreign] };
    let e: unknown;
    try {
      guardPlans([plan([takesForeign, deleteFull])], none);
    } catch (x) {
      e = x;
    }
    const message = (e as Error).message;
    expect(message).toMatch(/^refusing to apply 2 destructive changes without --allow-destructive:/m);
    expect(message).toMatch(/^refusing to delete 1 object that takes 1 binding topo does not manage with it:/m);
    expect(message).toMatch(/1 queue to delete still holds messages/);
    expect((e as { causes?: UnsafePlanError[] }).causes?.map((c) => c.code)).toEqual(["refused_destructive", "refused_destructive", "refused_data_loss"]);
    expect((e as UnsafePlanError).code).toBe("refused_destructive");
  });

  it("refuses to delete a queue that holds messages without --allow-data-loss, even when destruction is allowed", () => {
    const e = refusal(() => guardPlans([plan([deleteFull])], { allowDestructive: true, allowDataLoss: false }));
    expect(e.code).toBe("refused_data_loss");
    expect(e.message).toMatch(/1 queue to delete still holds messages/);
    expect(() => guardPlans([plan([deleteEmpty])], { allowDestructive: true, allowDataLoss: false })).not.toThrow();
    expect(() => guardPlans([plan([deleteFull])], { allowDestructive: true, allowDataLoss: true })).not.toThrow();
  });

  it("refuses to delete a queue with consumers, even an empty one: what they have not acknowledged would go with it", () => {
    const inUse: Action = { ...deleteEmpty, consumers: 2 };
    const e = refusal(() => guardPlans([plan([inUse, { ...deleteFull, key: "queue|mpfull.async", before: queue({ name: "mpfull.async" }) }])], { allowDestructive: true, allowDataLoss: false }));
    expect(e.code).toBe("refused_data_loss");
    expect(e.message).toBe(
      "refusing to drop messages: 2 queues to delete hold messages or have consumers:\n  cluster async: - delete queue mpold.async [2 consumers]\n  cluster async: - delete queue mpfull.async [holds 3 messages]",
    );
    expect(e.hints[0]).toBe("a consumer's unacknowledged messages would go with the queue: stop the workers that consume from mpold.async, then run topo apply again");
    expect(e.hints.join("\n")).toMatch(/let the workers drain the queue first/);
    const alone = refusal(() => guardPlans([plan([inUse])], { allowDestructive: true, allowDataLoss: false }));
    expect(alone.message).toMatch(/^refusing to drop messages: 1 queue to delete has consumers:\n/);
    // --allow-data-loss loses more than the messages: the Celery workers on the queue stop, and
    // the other queues they consume go unconsumed (measured with Celery 5.2.6: NotFound, exit 0).
    expect(alone.hints[alone.hints.length - 1]).toBe(
      "or pass --allow-data-loss to delete it with what its consumers have not acknowledged; a Celery worker whose queue is deleted stops altogether, its other queues included (it consumes again, gets 404 NOT_FOUND, logs Unrecoverable error and exits 0): restart the workers without this queue in -Q before the apply; nothing was changed",
    );
    expect(() => guardPlans([plan([inUse])], { allowDestructive: true, allowDataLoss: true })).not.toThrow();
  });

  it("names the messages a client fetched and has not acknowledged apart: no consumer holds them, and the broker deletes them with the queue", () => {
    const fetched: Action = { ...deleteFull, messages: 1, unacked: 1 };
    const e = refusal(() => guardPlans([plan([fetched])], { allowDestructive: true, allowDataLoss: false }));
    expect(e.message).toBe("refusing to drop messages: 1 queue to delete still holds messages:\n  cluster async: - delete queue mpold.async [holds 1 message]");
    expect(e.hints[0]).toMatch(/^1 message of mpold\.async is fetched but not acknowledged \(basic\.get without ack, or a consumer cancelled on a channel still open, as a Celery worker in warm shutdown holds its reserved tasks until it exits\), as the broker counts them: .*; let that client acknowledge them or close its channel \(a Celery worker that is stopping: wait until it has exited\)$/);
    // What a consumer holds is the consumer's hint's.
    const held = refusal(() => guardPlans([plan([{ ...fetched, unacked: 3, consumers: 1 }])], { allowDestructive: true, allowDataLoss: false }));
    expect(held.hints.join("\n")).not.toMatch(/fetched but not acknowledged/);
  });

  it("refuses to delete a queue the broker gave no count for: what a client fetched would go with it unseen", () => {
    const uncounted: Action = { ...deleteEmpty, messages: 0, unackedUnknown: true };
    const e = refusal(() => guardPlans([plan([uncounted])], { allowDestructive: true, allowDataLoss: false }));
    expect(e.code).toBe("refused_data_loss");
    expect(e.message).toBe("refusing to drop messages: 1 queue to delete has no count:\n  cluster async: - delete queue mpold.async [holds 0 ready messages and an unknown number unacknowledged]");
    expect(e.hints[0]).toMatch(/^the broker listed mpold\.async without a count of what it holds \(the queue's process did not answer, or its node is down\): .*; run topo apply again once rabbitmqctl list_queues name messages counts it$/);
    expect(() => guardPlans([plan([uncounted])], { allowDestructive: true, allowDataLoss: true })).not.toThrow();
    // With consumers, the consumers' refusal says it: their unacknowledged messages are the unknown.
    const inUse = refusal(() => guardPlans([plan([{ ...uncounted, consumers: 1 }])], { allowDestructive: true, allowDataLoss: false }));
    expect(inUse.message).toMatch(/^refusing to drop messages: 1 queue to delete has consumers:\n/);
  });

  it("refuses to delete a stream without --allow-data-loss whatever its counts say: they lag, and consuming leaves its messages in it", () => {
    const stream: Action = { op: "delete", key: "queue|mpstr.async", before: queue({ name: "mpstr.async", type: "stream" }), messages: 0 };
    const e = refusal(() => guardPlans([plan([stream])], { allowDestructive: true, allowDataLoss: false }));
    expect(e.code).toBe("refused_data_loss");
    expect(e.message).toBe("refusing to drop messages: 1 queue to delete is a stream:\n  cluster async: - delete queue mpstr.async");
    expect(e.hints[0]).toMatch(/^a stream keeps its messages after they are consumed, .* so topo cannot make sure mpstr\.async holds none: only --allow-data-loss deletes a stream, with what it holds$/);
    const both = refusal(() => guardPlans([plan([stream, deleteFull])], { allowDestructive: true, allowDataLoss: false }));
    expect(both.message).toMatch(/^refusing to drop messages: 2 queues to delete hold messages or are streams:\n/);
    expect(() => guardPlans([plan([stream])], { allowDestructive: true, allowDataLoss: true })).not.toThrow();
    // An exchange named like a stream is no queue.
    expect(() => guardPlans([plan([{ op: "delete", key: "exchange|mpstr", before: exchange({ name: "mpstr" }) }])], { allowDestructive: true, allowDataLoss: false })).not.toThrow();
  });

  it("refuses a replace that could lose messages, with the rule and its advice", () => {
    const risky = replace({ messages: 100, risks: [{ rule: "x-max-length", reason: "x-max-length 10 is below the 100 messages it holds", advice: "raise x-max-length, or drain the queue first" }] });
    const e = refusal(() => guardPlans([plan([risky])], { allowDestructive: true, allowDataLoss: false }));
    expect(e.code).toBe("refused_data_loss");
    expect(e.message).toContain("queue mplogin.async (holds 100 messages):");
    expect(e.message).toContain("x-max-length 10 is below the 100 messages it holds");
    expect(e.hints).toContain("raise x-max-length, or drain the queue first");
  });

  it("says what --allow-data-loss drops, and which plans need live counts", () => {
    expect(dataLossLines(plan([replace({ messages: 5 })]))).toEqual([
      "cluster async: --allow-data-loss: queue mplogin.async is deleted with the 5 messages it holds, and re-created empty",
    ]);
    expect(deletesQueues(plan([deleteEmpty]))).toBe(true);
    expect(deletesQueues(plan([replace()]))).toBe(false);
  });
});

describe("plan's delete of a queue with consumers", () => {
  // A Celery 5.2.6 worker whose queue was deleted consumed again, got 404 NOT_FOUND and exited 0,
  // leaving every other queue it consumed without a worker: plan says so where it names them.
  it("says what the delete does to Celery workers, and the order that keeps their other queues consumed", () => {
    const lines = renderAction({ ...deleteEmpty, consumers: 2 });
    expect(lines).toEqual([
      "- delete queue mpold.async [2 consumers]",
      "    ! 2 consumers are attached: apply refuses to delete it while any is, since what they have not acknowledged would go with it (with --allow-data-loss it deletes it all the same, and that with it); stop the workers that consume from it first",
      "    ! the consumers may be Celery workers: a Celery worker whose queue is deleted stops altogether, its other queues included (it consumes again, gets 404 NOT_FOUND, logs Unrecoverable error and exits 0): restart the workers without this queue in -Q before the apply",
    ]);
    expect(renderAction(deleteEmpty).join("\n")).not.toMatch(/Celery/);
  });
});

describe("plan's delete of a queue whose messages a client fetched and holds", () => {
  // A basic.get holder (or a Celery worker in warm shutdown) is no consumer: plan said only
  // "[holds 3 messages]", and the reviewer's way out, letting the workers drain the queue, never
  // takes them; apply's refusal alone said why.
  it("says under the delete that draining does not take them, and what does", () => {
    const all = renderAction({ ...deleteEmpty, messages: 3, unacked: 3 });
    expect(all[0]).toBe("- delete queue mpold.async [holds 3 messages]");
    expect(all[1]).toBe(
      "    ! all 3 are fetched but not acknowledged (basic.get without ack, or a consumer cancelled on a channel still open, as a Celery worker in warm shutdown holds its reserved tasks until it exits): workers draining the queue do not take them, and the broker deletes them with the queue, even if empty and unused; let that client acknowledge them or close its channel (a Celery worker that is stopping: wait until it has exited)",
    );
    expect(renderAction({ ...deleteEmpty, messages: 1, unacked: 1 })[1]).toMatch(/^    ! it is fetched but not acknowledged .*: workers draining the queue do not take it, and the broker deletes it with the queue/);
    expect(renderAction({ ...deleteEmpty, messages: 5, unacked: 1 })[1]).toMatch(/^    ! 1 of them is fetched but not acknowledged /);
    // With consumers, the consumers' note says it; with none fetched, nothing is added.
    expect(renderAction({ ...deleteEmpty, messages: 5, unacked: 2, consumers: 1 }).join("\n")).not.toMatch(/fetched but not acknowledged/);
    expect(renderAction({ ...deleteEmpty, messages: 5 })).toEqual(["- delete queue mpold.async [holds 5 messages]"]);
  });
});
