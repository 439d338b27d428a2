// Where a user's policy sends messages the file says go nowhere: a dead-letter exchange on the
// file's queues that the file does not give is drift topo cannot repair, never "No changes"; an
// alternate exchange on the file's exchanges, which the file cannot give, is a warning.

import { describe, expect, it } from "vitest";
import { policyRoutes } from "../../src/plan/policy-routes.js";
import { Ownership } from "../../src/core/naming.js";
import type { Policy } from "../../src/model.js";
import { actual, desiredOf, policy, raw } from "../helpers/builders.js";

const owner = new Ownership("mp");
const owns = (p: Policy) => owner.owns(p);
const d = desiredOf(
  raw({
    services: [
      "mplogin",
      { name: "mppay", async: { arguments: { "x-dead-letter-exchange": "dlx" } } },
      { name: "mpwallet", async: { arguments: { "x-dead-letter-exchange": "dlx", "x-dead-letter-routing-key": "dead" } } },
      { name: "mplog", async: { type: "stream" } },
    ],
  }),
  "async",
);
const route = (o: Partial<Policy>) => policy({ name: "route", pattern: "^mp", definition: {}, ...o });
const none = { degraded: [], warnings: [] };

describe("a policy's dead-letter exchange and routing key on the file's queues", () => {
  it("an exchange where the file gives none is degraded, with the policy's routing key, and the fix", () => {
    const r = policyRoutes(d, actual([...d.resources, route({ definition: { "dead-letter-exchange": "amq.fanout", "dead-letter-routing-key": "mpother.sync.x" } })]), owns);
    expect(r.warnings).toEqual([]);
    expect(r.degraded).toEqual([
      'policy "route" sets dead-letter-exchange "amq.fanout" and dead-letter-routing-key "mpother.sync.x" on 1 queue (mplogin.async) and the file gives it no x-dead-letter-exchange: the broker dead-letters what the queue drops (a message rejected without requeue, one that expires or that a length limit pushes out) to exchange "amq.fanout" with routing key "mpother.sync.x", where the file says it drops them; change policy "route" (rabbitmqctl list_policies -p a), or write x-dead-letter-exchange: amq.fanout and x-dead-letter-routing-key: mpother.sync.x for it in the file, so that it says what the broker does',
    ]);
  });

  it("the file's own arguments win, a policy's key fills in the one a file that dead-letters left out, a key without any exchange dead-letters nothing, and a stream dead-letters nothing: no drift", () => {
    const key = route({ pattern: "^mp(login|pay|wallet|log)\\.", definition: { "dead-letter-routing-key": "k" } });
    expect(policyRoutes(d, actual([...d.resources, key]), owns)).toEqual(none);
    const both = route({ pattern: "^mp(wallet|log)\\.", definition: { "dead-letter-exchange": "x", "dead-letter-routing-key": "k" } });
    expect(policyRoutes(d, actual([...d.resources, both]), owns)).toEqual(none);
  });

  it("a tie of priorities is a warning, the policy the broker names settles it, and a policy of topo's that apply deletes shadows nothing", () => {
    const a = route({ name: "a", pattern: "^mplogin\\.", definition: { "dead-letter-exchange": "amq.fanout" }, priority: 1 });
    const b = route({ name: "b", pattern: "^mplogin\\.", definition: { "queue-mode": "lazy" }, priority: 1 });
    const tie = policyRoutes(d, actual([...d.resources, a, b]), owns);
    expect(tie.degraded).toEqual([]);
    expect(tie.warnings).toEqual([expect.stringMatching(/^policy "a" sets dead-letter-exchange "amq.fanout" on 1 queue \(mplogin\.async\) .*: if it applies, .*RabbitMQ applies one of policies "a", "b"/)]);
    const named = (name: string) => actual([...d.resources, a, b], { queueFacts: { "mplogin.async": { policy: name } } });
    expect(policyRoutes(d, named("b"), owns)).toEqual(none);
    expect(policyRoutes(d, named("a"), owns).degraded).toHaveLength(1);
    const mine = route({ name: "topo.mp.x", pattern: "^mplogin\\.", definition: { "queue-mode": "lazy" }, priority: 5 });
    expect(policyRoutes(d, actual([...d.resources, a, mine]), owns).degraded).toEqual([expect.stringMatching(/^policy "a" sets dead-letter-exchange/)]);
  });
});

describe("a policy's alternate exchange on the file's exchanges", () => {
  it("is a warning (the file gives exchanges no arguments), for policies that apply to exchanges only", () => {
    const ae = route({ name: "ae", pattern: "^mp(login|pay)$", applyTo: "exchanges", definition: { "alternate-exchange": "unrouted" } });
    const r = policyRoutes(d, actual([...d.resources, ae]), owns);
    expect(r.degraded).toEqual([]);
    expect(r.warnings).toEqual([
      'policy "ae" sets alternate-exchange "unrouted" on 2 exchanges of the file (mplogin, mppay): a message none of their bindings route goes to exchange "unrouted" instead of being dropped (or returned to a publisher that sets mandatory); the file gives service exchanges no arguments, so topo shows this as a warning; leave them out of policy "ae"\'s pattern (rabbitmqctl list_policies -p a) if that is not meant',
    ]);
    expect(policyRoutes(d, actual([...d.resources, { ...ae, applyTo: "queues" }]), owns)).toEqual(none);
    expect(policyRoutes(d, actual([...d.resources, { ...ae, applyTo: "all" }]), owns).warnings).toHaveLength(1);
  });
});
