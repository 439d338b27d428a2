// A vhost's max-queues against what apply needs at once (plan/limits.ts): the plan's creates after
// its deletes, topo's lock, and a holding queue for each replace in flight.

import { describe, expect, it } from "vitest";
import { queueRoom, queueRoomProblem } from "../../src/plan/limits.js";
import type { Action, ActualCluster, ClusterPlan, Exchange, Queue } from "../../src/model.js";

const queue = (name: string, durable = true): Queue => ({ kind: "queue", name, type: "classic", durable, autoDelete: false, exclusive: false, arguments: {} });
const exchange = (name: string): Exchange => ({ kind: "exchange", name, type: "topic", durable: true, autoDelete: false, internal: false, arguments: {} });

function plan(...actions: Action[]): ClusterPlan {
  return { cluster: "async", endpoint: "amqp://x", vhost: "async", actions, degraded: [], warnings: [] };
}

/** A vhost holding these queues (topo's lock among them when `locked`). */
function actual(queues: string[], locked = false): ActualCluster {
  const names = locked ? [...queues, "topo.mp.lock"] : queues;
  return { vhostExists: true, version: "3.10.8", nodes: [], resources: [], queueFacts: Object.fromEntries(names.map((n) => [n, {}])) };
}

const create = (r: Queue | Exchange): Action => ({ op: "create", key: `${r.kind}|${r.name}`, after: r });
const remove = (r: Queue | Exchange): Action => ({ op: "delete", key: `${r.kind}|${r.name}`, before: r });
const replace = (name: string): Action => ({ op: "replace", key: `queue|${name}`, before: queue(name), after: queue(name, false), because: [], rebind: [] });

describe("queueRoom", () => {
  it("counts the queues there now, the plan's creates after its deletes, and one for the lock", () => {
    const room = queueRoom(plan(remove(queue("mpa.async")), create(queue("mpb.async")), create(queue("mpc.async"))), actual(["mpa.async", "other"]), "mp", 3);
    expect(room).toMatchObject({ now: 2, creates: 2, deletes: 1, holding: 0, needed: 4 });
    const problem = queueRoomProblem(room, "async");
    expect(problem?.message).toBe(
      'vhost "async" may hold at most 3 queues (max-queues), and apply would need 4 at once: the 2 it holds now, 2 the plan creates, less 1 it deletes first, one for topo\'s lock while apply runs; the broker would refuse the queue over the limit part-way through apply, so topo refuses the plan before anything is written',
    );
    expect(problem?.hint).toBe(`raise the limit: rabbitmqctl set_vhost_limits -p async '{"max-queues": 4}' (rabbitmqctl list_vhost_limits -p async shows them), or remove queues the vhost no longer needs`);
    expect(queueRoomProblem(queueRoom(plan(create(queue("mpb.async"))), actual(["mpa.async"]), "mp", 3), "async")).toBeUndefined();
  });

  it("a plan that only deletes needs what is there now and the lock", () => {
    expect(queueRoom(plan(remove(queue("mpa.async")), remove(queue("mpb.async"))), actual(["mpa.async", "mpb.async"]), "mp", 2)?.needed).toBe(3);
  });

  it("does not count topo's own lock twice: under the lock, the read sees it", () => {
    expect(queueRoom(plan(create(exchange("mpa"))), actual(["mpa.async"], true), "mp", 2)?.needed).toBe(2);
  });

  it("adds a holding queue for each replace apply runs at once, four at most", () => {
    const many = ["a", "b", "c", "d", "e", "f"].map((x) => `mp${x}.async`);
    expect(queueRoom(plan(replace("mpa.async")), actual(["mpa.async"]), "mp", 10)).toMatchObject({ holding: 1, needed: 3 });
    expect(queueRoom(plan(...many.map(replace)), actual(many), "mp", 100)).toMatchObject({ holding: 4, needed: 11 });
    expect(queueRoomProblem(queueRoom(plan(replace("mpa.async")), actual(["mpa.async"]), "mp", 2), "async")?.message).toContain(
      "the 1 it holds now, one for topo's lock while apply runs, 1 holding queue for the queues it replaces",
    );
  });

  it("says nothing without a limit, with a negative one (none), or for a plan that writes nothing", () => {
    expect(queueRoom(plan(create(queue("mpa.async"))), actual([]), "mp", undefined)).toBeUndefined();
    expect(queueRoom(plan(create(queue("mpa.async"))), actual([]), "mp", -1)).toBeUndefined();
    expect(queueRoom(plan(), actual(["mpa.async", "mpb.async"]), "mp", 1)).toBeUndefined();
  });

  it("a limit of 0 refuses any plan that writes, the lock being a queue", () => {
    expect(queueRoomProblem(queueRoom(plan(create(exchange("mpa"))), actual([]), "mp", 0), "async")?.message).toContain("may hold at most 0 queues (max-queues), and apply would need 1 at once");
  });
});

describe("the advice to raise max-queues", () => {
  it("gives the vhost's other limits with it: rabbitmqctl set_vhost_limits replaces them all", () => {
    const room = queueRoom(plan(create(queue("mpb.async"))), actual(["mpa.async"]), "mp", 2);
    expect(queueRoomProblem(room, "async", { "max-connections": 50, "max-queues": 2 })?.hint).toContain(`rabbitmqctl set_vhost_limits -p async '{"max-connections": 50, "max-queues": 3}'`);
    expect(queueRoomProblem(room, "async")?.hint).toContain(`'{"max-queues": 3}'`);
  });
});
