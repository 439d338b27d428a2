// Pure: what apply's writes need of the management user's tags and the AMQP user's permissions
// (plan/rights.ts), checked before anything is written.

import { describe, expect, it } from "vitest";
import { askedUnbindRefusal, managementUnbindRefusal, permissionRefusal, tagRefusal } from "../../src/plan/rights.js";
import { unbindsByKey } from "../../src/broker/remove-binding.js";
import { isLossless, type ExecuteOptions } from "../../src/broker/execute.js";
import { movesMessages } from "../../src/plan/moves.js";
import { setUserTags } from "../../src/core/words.js";
import { subjectOf } from "../../src/core/keys.js";
import type { Action, ClusterPlan, Resource } from "../../src/model.js";

const create = (after: Resource): Action => ({ op: "create", key: "", after });
const plan = (...actions: Action[]): ClusterPlan => ({ cluster: "sync", endpoint: "", vhost: "sync", actions, degraded: [], warnings: [] });
const policy = create({ kind: "policy", name: "topo.mp.mirror.sync", pattern: "^", applyTo: "queues", priority: 0, definition: {} });
const queue = create({ kind: "queue", name: "mplogin.sync", type: "classic", durable: false, autoDelete: false, exclusive: false, arguments: {} });
const binding = create({ kind: "binding", source: "mplogin", destination: "mplogin.sync", destinationType: "queue", routingKey: "mplogin.sync.#", arguments: {} });

describe("the management user's tags", () => {
  it("asks policymaker for policies, and keeps the tags the user has in the command", () => {
    const r = tagRefusal("deploy", ["monitoring", "ops"], plan(policy, queue));
    expect(r?.message).toBe(
      `user "deploy" has the tags monitoring, ops, and apply's writes need policymaker (to write topo's policies: 1 to create); the broker would refuse them (401 Not policymaker user), so topo refuses the plan before anything is written`,
    );
    expect(r?.hint).toBe("rabbitmqctl set_user_tags deploy monitoring ops policymaker (set_user_tags replaces the user's tags: this keeps the 2 tags it has, monitoring, ops)");
    expect(tagRefusal("deploy", ["policymaker"], plan(policy))).toBeUndefined();
    expect(tagRefusal("deploy", ["administrator"], plan(policy))).toBeUndefined();
    // Declares go over AMQP: no tag needed.
    expect(tagRefusal("deploy", [], plan(queue, binding))).toBeUndefined();
  });

  it("asks administrator to create the vhost or write users, with add_vhost as the other way", () => {
    const r = tagRefusal("deploy", ["policymaker"], plan(create({ kind: "vhost", name: "sync" }), policy));
    expect(r?.message).toMatch(/need administrator \(to create vhost sync; to write topo's policies: 1 to create\)/);
    expect(r?.hint).toBe(
      "rabbitmqctl set_user_tags deploy policymaker administrator (set_user_tags replaces the user's tags: this keeps the 1 tag it has, policymaker), or have an administrator create the vhost: rabbitmqctl add_vhost sync && rabbitmqctl set_permissions -p sync deploy '.*' '.*' '.*'",
    );
    expect(tagRefusal("deploy", [], plan(create({ kind: "user", name: "u", tags: [] })))?.message).toMatch(/has no tags, and apply's writes need administrator \(to write users and their permissions: 1 to create\)/);
    expect(setUserTags("a b", [], "monitoring")).toBe("rabbitmqctl set_user_tags 'a b' monitoring (set_user_tags replaces the user's tags: this keeps the 0 tags it has)");
  });
});

describe("the AMQP user's permissions", () => {
  const all = { configure: ".*", write: ".*", read: ".*" };
  it("names each permission that misses topo's lock and mark, a declare or a binding", () => {
    expect(permissionRefusal("app", "sync", all, plan(queue, binding), "mp")).toBeUndefined();
    const r = permissionRefusal("app", "sync", { configure: "^mp", write: "^x", read: "^mp" }, plan(queue, binding), "mp");
    expect(r?.message).toBe(
      "user app's permissions in vhost sync do not let apply work: its configure permission (^mp) does not match queue topo.mp.lock, exchange topo.mp.generation; its read permission (^mp) does not match queue topo.mp.lock; its write permission (^x) does not match queue mplogin.sync; the broker would refuse apply at the first of these, so topo refuses the plan before anything is written",
    );
    // The exact command: each pattern as it is, widened by the names it refused, and nothing more.
    expect(r?.hint).toMatch(/^rabbitmqctl set_permissions -p sync app '\(\?:\^mp\)\|\^\(\?:topo\\\.mp\\\.lock\|topo\\\.mp\\\.generation\)\$' '\(\?:\^x\)\|\^\(\?:mplogin\\\.sync\)\$' '\(\?:\^mp\)\|\^\(\?:topo\\\.mp\\\.lock\)\$' keeps what they allow now/);
    const widened = { configure: "(?:^mp)|^(?:topo\\.mp\\.lock|topo\\.mp\\.generation)$", write: "(?:^x)|^(?:mplogin\\.sync)$", read: "(?:^mp)|^(?:topo\\.mp\\.lock)$" };
    expect(r?.hint).toContain(`'${widened.configure}' '${widened.write}' '${widened.read}'`);
    // Granted as suggested, apply goes through; and the widening lets in no other name of the vhost.
    expect(permissionRefusal("app", "sync", widened, plan(queue, binding), "mp")).toBeUndefined();
    expect(new RegExp(widened.configure).test("topo.mpx.lock")).toBe(false);
    expect(new RegExp(widened.write).test("mplogin.sync.x")).toBe(false);
    // A pattern that allows nothing ("") becomes exactly the names.
    expect(permissionRefusal("app", "sync", { ...all, write: "" }, plan(binding), "mp")?.hint).toMatch(/^rabbitmqctl set_permissions -p sync app '\.\*' '\^\(\?:mplogin\\\.sync\)\$' '\.\*' /);
    // Thousands of names (a user with no rights at all) are not spelt out in a pattern pages long:
    // that right is left to write, and the hint says so.
    const many = Array.from({ length: 30 }, (_, i) => create({ kind: "queue", name: `mps${i}.sync`, type: "classic", durable: false, autoDelete: false, exclusive: false, arguments: {} }));
    const wide = permissionRefusal("app", "sync", { ...all, configure: "^$" }, plan(...many), "mp")?.hint ?? "";
    expect(wide).toMatch(/^rabbitmqctl set_permissions -p sync app CONFIGURE '\.\*' '\.\*' sets them; write each capitalised one to match what is named above/);
    expect(wide.length).toBeLessThan(400);
    // The empty pattern matches nothing; one JavaScript cannot read is not judged.
    expect(permissionRefusal("app", "sync", { ...all, write: "" }, plan(binding), "mp")?.message).toMatch(/its write permission \(\) does not match queue mplogin\.sync/);
    expect(permissionRefusal("app", "sync", { ...all, configure: "(?i)^MP" }, plan(queue), "mp")).toBeUndefined();
  });

  it("asks for what a replace without loss moves messages with, and for the bindings it makes again", () => {
    const old = subjectOf(queue) as Extract<Resource, { kind: "queue" }>;
    const bound = subjectOf(binding) as Extract<Resource, { kind: "binding" }>;
    const replace: Action = { op: "replace", key: "", before: old, after: { ...old, arguments: { "x-max-length": 10 } }, because: ["arguments"], rebind: [bound] };
    // A deploy user that may write its own namespace only: the move back goes by the default exchange.
    const own = { configure: ".*", write: "^(?:mp[a-z_]*(\\.sync)?|topo\\..*)$", read: ".*" };
    expect(permissionRefusal("app", "sync", own, plan(replace), "mp")?.message).toMatch(/its write permission \(.*\) does not match exchange amq\.default;/);
    // --allow-data-loss deletes and re-creates the queue: no message moves, no default exchange.
    expect(permissionRefusal("app", "sync", own, plan(replace), "mp", true)).toBeUndefined();
    // The old queue and its holding queue are read; the bindings made again need read on their source.
    const r = permissionRefusal("app", "sync", { ...all, read: "^topo\\.mp\\.lock$" }, plan(replace), "mp");
    expect(r?.message).toMatch(/its read permission \(\^topo\\\.mp\\\.lock\$\) does not match exchange mplogin, queue mplogin\.sync, queue topo\.hold\.mplogin\.sync, exchange topo\.hold\.mplogin\.sync;/);
  });
});

describe("the management user's own permissions on the vhost", () => {
  it("the bindings it removes over the management API: write on each destination, read on each source", () => {
    const keyed = { ...(subjectOf(binding) as Extract<Resource, { kind: "binding" }>), arguments: { "x-a": 1 }, propertiesKey: "~abc" };
    const del: Action = { op: "delete", key: "", before: keyed };
    const unbinds = unbindsByKey(plan(del, binding), false);
    expect(unbinds.map((b) => `${b.source}->${b.destination}`)).toEqual(["mplogin->mplogin.sync"]);
    const none = managementUnbindRefusal("ops", "sync", "none", unbinds);
    expect(none?.message).toMatch(/^user ops has no permissions in vhost sync \(the management API removes a binding with arguments with the management user's own permissions, not the AMQP user's\): it needs write on queue mplogin\.sync; it needs read on exchange mplogin;/);
    expect(none?.hint).toMatch(/^rabbitmqctl set_permissions -p sync ops '' '\^\(\?:mplogin\\\.sync\)\$' '\^\(\?:mplogin\)\$' grants exactly what is named above/);
    expect(managementUnbindRefusal("ops", "sync", { configure: "", write: "^mp", read: "^mp" }, unbinds)).toBeUndefined();
    expect(managementUnbindRefusal("ops", "sync", { configure: ".*", write: "^x", read: ".*" }, unbinds)?.message).toMatch(/its write permission \(\^x\) does not match queue mplogin\.sync;/);
    // A replace that moves messages unbinds the queue's keyed bindings from it, and from the holding queue where their types were found.
    const old = subjectOf(queue) as Extract<Resource, { kind: "queue" }>;
    const replace: Action = { op: "replace", key: "", before: old, after: { ...old, arguments: { "x-max-length": 10 } }, because: ["arguments"], rebind: [{ ...keyed, exact: [] }] };
    expect(unbindsByKey(plan(replace), false).map((b) => b.destination)).toEqual(["mplogin.sync", "topo.hold.mplogin.sync"]);
    expect(unbindsByKey(plan(replace), true)).toEqual([]);
  });
});

describe("the broker's answer to an unbind asked as a management user that may not read permissions", () => {
  const reply = (q: string) => `403 ACCESS_REFUSED - access to queue '${q}' in vhost 'sync' refused for user 'ops'`;
  const refused = (q: string, key = `${q}.#`) => ({ binding: { source: "mplogin", destination: q, destinationType: "queue" as const, routingKey: key }, reply: reply(q) });

  it("none refused: nothing to say", () => {
    expect(askedUnbindRefusal("ops", "sync", [])).toBeUndefined();
  });

  it("names each binding with the broker's reply, and the command that shows and sets the user's patterns", () => {
    const r = askedUnbindRefusal("ops", "sync", [refused("mplogin.sync"), { binding: { source: "amq.topic", destination: "audit", destinationType: "exchange", routingKey: "a.b" }, reply: "403 ACCESS_REFUSED - access to topic 'a.b' in exchange 'amq.topic' in vhost 'sync' refused for user 'ops'" }]);
    expect(r?.message).toBe(
      "user ops may not remove 2 bindings with arguments that apply removes through the management API, which checks the management user's own permissions in vhost sync, not the AMQP user's; asked as ops with an unbind that matches no binding, the broker refused: " +
        `mplogin -> mplogin.sync [mplogin.sync.#]: ${reply("mplogin.sync")}; amq.topic -> exchange audit [a.b]: 403 ACCESS_REFUSED - access to topic 'a.b' in exchange 'amq.topic' in vhost 'sync' refused for user 'ops'`,
    );
    expect(r?.hint).toMatch(/^removing a binding needs write on its destination and read on its source .*rabbitmqctl set_permissions -p sync ops CONFIGURE WRITE READ sets them .*; or give ops the administrator tag/);
  });

  it("a name that would add a line to the output, or read as the notation, is shown quoted and escaped, in the reply too", () => {
    const key = "k\n  - delete queue x";
    const r = askedUnbindRefusal("ops", "sync", [{ binding: { source: "a -> b", destination: "q", destinationType: "queue", routingKey: key }, reply: `403 ACCESS_REFUSED - access to topic '${key}' in exchange 'a -> b'` }]);
    expect(r?.message).not.toContain("\n");
    expect(r?.message).toContain(`the broker refused: "a -> b" -> q ["k\\n  - delete queue x"]: "403 ACCESS_REFUSED - access to topic 'k\\n  - delete queue x' in exchange 'a -> b'"`);
  });

  it("a plan of thousands of refused unbinds names a few dozen, and counts the rest", () => {
    const many = Array.from({ length: 1000 }, (_, i) => refused(`q${i}`));
    const message = askedUnbindRefusal("ops", "sync", many)?.message ?? "";
    expect(message).toMatch(/^user ops may not remove 1000 bindings /);
    expect(message).toContain("mplogin -> q23 [q23.#]");
    expect(message).not.toContain("mplogin -> q24 ");
    expect(message.endsWith("; and 976 more")).toBe(true);
  });
});

describe("a queue replace that moves its messages", () => {
  it("is one answer for apply, the AMQP user's rights and the management API's unbinds, with and without --allow-data-loss, resumed or not", () => {
    const old = subjectOf(queue) as Extract<Resource, { kind: "queue" }>;
    const keyed = { ...(subjectOf(binding) as Extract<Resource, { kind: "binding" }>), arguments: { "x-a": 1 }, propertiesKey: "~abc" };
    const fresh: Extract<Action, { op: "replace" }> = { op: "replace", key: "", before: old, after: { ...old, arguments: { "x-max-length": 10 } }, because: ["arguments"], rebind: [keyed] };
    const resumed: Extract<Action, { op: "replace" }> = { ...fresh, resume: { hold: { ...old, name: "topo.hold.mplogin.sync" }, holdBindings: [], queueDone: true } };
    // Rights on the queue's own name and its exchange, but none on the holding queue.
    const noHold = { configure: "^mp", write: "^mp", read: "^mp" };
    const cases: [Extract<Action, { op: "replace" }>, boolean, boolean][] = [
      [fresh, false, true],
      [fresh, true, false],
      [resumed, false, true],
      [resumed, true, true],
    ];
    for (const [a, allowDataLoss, moves] of cases) {
      const p = plan(a);
      expect(movesMessages(a, allowDataLoss)).toBe(moves);
      expect(isLossless(a, { allowDataLoss } as ExecuteOptions)).toBe(moves);
      expect(unbindsByKey(p, allowDataLoss).length > 0).toBe(moves);
      expect(permissionRefusal("app", "sync", noHold, p, "mp", allowDataLoss)?.message.includes("topo.hold.mplogin.sync") ?? false).toBe(moves);
    }
  });
});
