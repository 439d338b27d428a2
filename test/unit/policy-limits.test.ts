// What a user's policy or an operator policy makes of the file's queues: a limit the file does
// not give (or a lower one) is drift topo cannot repair, never "No changes".

import { describe, expect, it } from "vitest";
import { operatorPoliciesUnsure, policyLimits } from "../../src/plan/policy-limits.js";
import { Ownership } from "../../src/core/naming.js";
import type { Policy } from "../../src/model.js";
import { actual, desiredOf, policy, raw } from "../helpers/builders.js";

const owner = new Ownership("mp");
const owns = (p: Policy) => owner.owns(p);
// Async queues: durable classic queues, not mirrored, on either version.
const d = desiredOf(raw({ services: ["mplogin", "mpwallet", { name: "mppay", async: { arguments: { "x-max-length": 1000 } } }] }), "async");
const cap = (o: Partial<Policy>) => policy({ name: "cap", pattern: "^mp", definition: {}, ...o });

describe("policies that limit the file's queues", () => {
  it("an operator policy's max-length is degraded on every queue it caps below the file, named with the fix", () => {
    const r = policyLimits(d, actual(d.resources, { version: "4.0.5", operatorPolicies: [cap({ definition: { "max-length": 10 } })] }), owns);
    expect(r.warnings).toEqual([]);
    expect(r.degraded).toEqual([
      'operator policy "cap" sets max-length 10 on 2 queues (mplogin.async, mpwallet.async) and the file gives them no x-max-length: they keep at most 10 messages, not as the file says; change operator policy "cap" (rabbitmqctl list_operator_policies -p a), or write x-max-length: 10 for them in the file, so that it says what the broker does',
      'operator policy "cap" sets max-length 10 on 1 queue (mppay.async) and the file gives x-max-length 1000: the queue keeps at most 10 messages, not as the file says; change operator policy "cap" (rabbitmqctl list_operator_policies -p a), or write x-max-length: 10 for it in the file, so that it says what the broker does',
    ]);
  });

  it("a limit at or above the file's own, or on keys that are not limits, is no drift", () => {
    const ops = [cap({ pattern: "^mppay\\.", definition: { "max-length": 1000, "queue-mode": "lazy" } })];
    expect(policyLimits(d, actual(d.resources, { operatorPolicies: ops }), owns)).toEqual({ degraded: [], warnings: [], notCompared: [] });
    expect(policyLimits(d, actual([...d.resources, cap({ definition: { "ha-mode": "all", "dead-letter-exchange": "x" } })]), owns)).toEqual({ degraded: [], warnings: [], notCompared: [] });
  });

  it("a user's policy: message TTL and expiry, said in time units", () => {
    const user = cap({ name: "short", pattern: "^mplogin\\.", definition: { "message-ttl": 60000, expires: 1800000 } });
    const r = policyLimits(d, actual([...d.resources, user]), owns);
    expect(r.degraded).toEqual([
      expect.stringMatching(/^policy "short" sets message-ttl 60000 on 1 queue \(mplogin\.async\) and the file gives it no x-message-ttl: the queue expires messages after 60 s, not as the file says; change policy "short" \(rabbitmqctl list_policies -p a\)/),
      expect.stringMatching(/^policy "short" sets expires 1800000 on 1 queue \(mplogin\.async\) and the file gives it no x-expires: the queue is deleted, with its messages, after 30 min unused/),
    ]);
  });

  it("only the policy RabbitMQ applies counts: the highest priority, or the one the broker names", () => {
    const low = cap({ name: "low", definition: { "max-length": 5 }, priority: 1 });
    const high = cap({ name: "high", definition: { "queue-mode": "lazy" }, priority: 2 });
    expect(policyLimits(d, actual([...d.resources, low, high]), owns).degraded).toEqual([]);
    // Tied: RabbitMQ picks one, so topo says it may apply, as a warning.
    const tie = policyLimits(d, actual([...d.resources, low, { ...high, priority: 1 }]), owns);
    expect(tie.degraded).toEqual([]);
    expect(tie.warnings).toEqual([
      expect.stringMatching(/^policy "low" sets max-length 5 on 2 queues \(mplogin\.async, mpwallet\.async\) .*: if it applies, they keep at most 5 messages, not as the file says; RabbitMQ applies one of policies "high", "low" \(the same priority/),
      expect.stringMatching(/^policy "low" sets max-length 5 on 1 queue \(mppay\.async\) and the file gives x-max-length 1000: if it applies/),
    ]);
    // The broker's word settles it.
    const told = policyLimits(d, actual([...d.resources, low, { ...high, priority: 1 }], { queueFacts: { "mplogin.async": { policy: "low" }, "mpwallet.async": { policy: "high" } } }), owns);
    expect(told.degraded).toEqual([expect.stringMatching(/^policy "low" sets max-length 5 on 1 queue \(mplogin\.async\)/)]);
  });

  it("an operator policy topo cannot place by its pattern is settled by the queue's statistics where they name it, and only then", () => {
    // A POSIX class: RabbitMQ's PCRE reads it, JavaScript cannot.
    const posix = cap({ name: "posix", pattern: "^mplogin[[:punct:]]async$", definition: { "max-length": 5 } });
    const ops = { operatorPolicies: [posix] };
    expect(operatorPoliciesUnsure(d, actual(d.resources, ops))).toEqual(["mplogin.async", "mppay.async", "mpwallet.async"]);
    // Not asked of a queue the broker does not hold yet, nor where no operator policy sets a limit.
    expect(operatorPoliciesUnsure(d, actual(d.resources.filter((r) => r.kind !== "queue" || r.name !== "mppay.async"), ops))).toEqual(["mplogin.async", "mpwallet.async"]);
    expect(operatorPoliciesUnsure(d, actual(d.resources, { operatorPolicies: [{ ...posix, definition: { "queue-mode": "lazy" } }] }))).toEqual([]);
    // Their word settles it (degraded, so --detailed-exitcode exits 2); where they name none, it stays a warning.
    const told = policyLimits(d, actual(d.resources, { ...ops, queueFacts: { "mplogin.async": { operatorPolicy: "posix" } } }), owns);
    expect(told.degraded).toEqual([expect.stringMatching(/^operator policy "posix" sets max-length 5 on 1 queue \(mplogin\.async\) and the file gives it no x-max-length: the queue keeps at most 5 messages/)]);
    expect(told.warnings).toEqual([
      expect.stringMatching(/^operator policy "posix" sets max-length 5 on 1 queue \(mpwallet\.async\) .*topo cannot read its pattern .*the management API's GET \/api\/queues\/a\?columns=name,operator_policy shows it, from the queues' statistics/),
      expect.stringMatching(/^operator policy "posix" sets max-length 5 on 1 queue \(mppay\.async\) and the file gives x-max-length 1000: if it applies/),
    ]);
    // A name that is none of the candidates (statistics from before the policies changed) settles nothing.
    expect(policyLimits(d, actual(d.resources, { ...ops, queueFacts: { "mplogin.async": { operatorPolicy: "gone" } } }), owns).degraded).toEqual([]);
  });

  it("a pattern topo cannot read is a warning, never degraded", () => {
    const odd = cap({ pattern: "(?i)^MP", definition: { "max-length": 5 } });
    const r = policyLimits(d, actual([...d.resources, odd]), owns);
    expect(r.degraded).toEqual([]);
    expect(r.warnings).toHaveLength(2);
    for (const w of r.warnings) expect(w).toContain('topo cannot read its pattern "(?i)^MP", so topo cannot tell whether it does');
  });

  it("the lowest value wins: an operator policy below the user's is the one named", () => {
    const r = policyLimits(d, actual([...d.resources, cap({ name: "user", definition: { "max-length": 50 } })], { operatorPolicies: [cap({ name: "op", definition: { "max-length": 10 } })] }), owns);
    expect(r.degraded).toHaveLength(2);
    expect(r.degraded.join("\n")).not.toMatch(/"user"/);
  });

  it("apply-to and queue types: a policy for exchanges or for quorum queues does not limit a classic queue", () => {
    for (const applyTo of ["exchanges", "quorum_queues"] as const) {
      expect(policyLimits(d, actual([...d.resources, cap({ applyTo, definition: { "max-length": 5 } })], { version: "4.0.5" }), owns).degraded).toEqual([]);
    }
  });

  it("topo's own policies are taken as the file wants them", () => {
    // Someone added a limit to topo's mirror policy: plan updates the policy, so no drift is left to report.
    const ours = cap({ name: "topo.mp.mirror.async", definition: { "max-length": 5 } });
    expect(policyLimits(d, actual([...d.resources, ours]), owns).degraded).toEqual([]);
  });

  it("names and patterns from the broker are printed safely", () => {
    const r = policyLimits(d, actual([...d.resources, cap({ name: "x\n  - delete queue mplogin.async", definition: { "max-length": 5 } })]), owns);
    expect(r.degraded[0]).toContain('policy "x\\n  - delete queue mplogin.async"');
    expect(r.degraded[0]).not.toContain("\n");
  });

  it("a quorum queue's delivery limit: below the file's, below RabbitMQ 4's default of 20 when the file gives none, and any limit where the file says -1", () => {
    const q = desiredOf(
      raw({
        defaults: { async: { type: "quorum" } },
        services: ["mplogin", { name: "mpten", async: { arguments: { "x-delivery-limit": 10 } } }, { name: "mpnone", async: { arguments: { "x-delivery-limit": -1 } } }],
      }),
      "async",
    );
    const r = policyLimits(q, actual(q.resources, { version: "4.0.5", operatorPolicies: [cap({ definition: { "delivery-limit": 5 } })] }), owns);
    expect(r.degraded).toEqual([
      'operator policy "cap" sets delivery-limit 5 on 1 queue (mplogin.async) and the file gives it no x-delivery-limit (RabbitMQ 4.0.5\'s default is 20): the queue drops (or dead-letters) a message returned more than 5 times, not as the file says; change operator policy "cap" (rabbitmqctl list_operator_policies -p a), or write x-delivery-limit: 5 for it in the file, so that it says what the broker does',
      expect.stringMatching(/^operator policy "cap" sets delivery-limit 5 on 1 queue \(mpten\.async\) and the file gives x-delivery-limit 10:/),
      expect.stringMatching(/^operator policy "cap" sets delivery-limit 5 on 1 queue \(mpnone\.async\) and the file gives x-delivery-limit -1:/),
    ]);
    // Above RabbitMQ 4's default, a policy only loosens what the file leaves to the broker; on 3.x there is no default limit.
    expect(policyLimits(q, actual(q.resources, { version: "4.0.5", operatorPolicies: [cap({ pattern: "^mplogin", definition: { "delivery-limit": 50 } })] }), owns).degraded).toEqual([]);
    expect(policyLimits(q, actual(q.resources, { version: "3.10.8", operatorPolicies: [cap({ pattern: "^mplogin", definition: { "delivery-limit": 50 } })] }), owns).degraded).toEqual([
      expect.stringMatching(/^operator policy "cap" sets delivery-limit 50 on 1 queue \(mplogin\.async\) and the file gives it no x-delivery-limit: the queue drops/),
    ]);
    // Classic queues have no delivery limit.
    expect(policyLimits(d, actual(d.resources, { version: "4.0.5", operatorPolicies: [cap({ definition: { "delivery-limit": 5 } })] }), owns).degraded).toEqual([]);
  });
});

describe("policies that set a stream's retention", () => {
  const streams = desiredOf(raw({ services: [{ name: "mpst", sync: false, async: { type: "stream", arguments: { "x-max-age": "1D", "x-max-length-bytes": 1000 } } }] }), "async");
  const retain = (definition: Policy["definition"]) => cap({ name: "retain", definition });

  it("the policy's value is the stream's, higher or lower: each that differs from the file's is degraded", () => {
    const r = policyLimits(streams, actual([...streams.resources, retain({ "max-age": "2D", "max-length-bytes": 500, "stream-max-segment-size-bytes": 1000 })]), owns);
    expect(r.warnings).toEqual([]);
    expect(r.degraded).toEqual([
      expect.stringMatching(/^policy "retain" sets max-length-bytes 500 on 1 queue \(mpst\.async\) and the file gives x-max-length-bytes 1000: the stream keeps at most 500 bytes of messages/),
      'policy "retain" sets max-age 2D on 1 queue (mpst.async) and the file gives x-max-age 1D: the stream keeps messages for 2D, not as the file says; change policy "retain" (rabbitmqctl list_policies -p a), or write x-max-age: 2D for it in the file, so that it says what the broker does',
      expect.stringMatching(/^policy "retain" sets stream-max-segment-size-bytes 1000 on 1 queue \(mpst\.async\) and the file gives it no x-stream-max-segment-size-bytes \(RabbitMQ 3\.10\.8's default is 500000000\): the stream writes its messages in segment files of 1000 bytes/),
    ]);
  });

  it("the same retention in other units, or RabbitMQ's default segment, is no drift", () => {
    const same = retain({ "max-age": "24h", "max-length-bytes": 1000, "stream-max-segment-size-bytes": 500000000 });
    expect(policyLimits(streams, actual([...streams.resources, same]), owns)).toEqual({ degraded: [], warnings: [], notCompared: [] });
  });

  // Measured on 3.10.8: a stream declared with x-max-length-bytes 1000000000 (segments of 1000
  // bytes) under an operator policy's max-length-bytes 1000 kept 4 of 60 messages of 500 bytes;
  // without it, all of them. The operator policy's value replaces the argument as a policy's does,
  // and where both give one the lower counts.
  it("an operator policy sets a stream's retention too, higher or lower; with a policy, the lower of the two is the stream's", () => {
    const op = (definition: Policy["definition"]) => ({ operatorPolicies: [cap({ name: "cap", definition })] });
    expect(policyLimits(streams, actual(streams.resources, op({ "max-length-bytes": 10 })), owns).degraded).toEqual([
      expect.stringMatching(/^operator policy "cap" sets max-length-bytes 10 on 1 queue \(mpst\.async\) and the file gives x-max-length-bytes 1000: the stream keeps at most 10 bytes of messages/),
    ]);
    expect(policyLimits(streams, actual(streams.resources, op({ "max-length-bytes": 5000 })), owns).degraded).toEqual([
      expect.stringMatching(/^operator policy "cap" sets max-length-bytes 5000 on 1 queue \(mpst\.async\) and the file gives x-max-length-bytes 1000: the stream keeps at most 5000 bytes of messages/),
    ]);
    // The policy gives the file's 1000, the operator policy more: the lower, 1000, is the stream's.
    expect(policyLimits(streams, actual([...streams.resources, retain({ "max-length-bytes": 1000 })], op({ "max-length-bytes": 5000 })), owns)).toEqual({ degraded: [], warnings: [], notCompared: [] });
    // The policy gives more than the file, the operator policy the file's: no drift either.
    expect(policyLimits(streams, actual([...streams.resources, retain({ "max-length-bytes": 9000 })], op({ "max-length-bytes": 1000 })), owns)).toEqual({ degraded: [], warnings: [], notCompared: [] });
  });

  it("two policies RabbitMQ may pick between are a warning", () => {
    const a = retain({ "max-age": "1h" });
    const b = { ...a, name: "other", definition: { "max-age": "1D" } };
    const r = policyLimits(streams, actual([...streams.resources, a, b]), owns);
    expect(r.degraded).toEqual([]);
    expect(r.warnings).toEqual([expect.stringMatching(/^policy "retain" sets max-age 1h on 1 queue \(mpst\.async\) and the file gives x-max-age 1D: if it applies, the stream keeps messages for 1h/)]);
  });
});
