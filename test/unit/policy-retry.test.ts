// What a policy's delayed retries make of the file's quorum queues on RabbitMQ 4.3: a returned
// message held back where the file delivers it again at once (or the reverse, or for another
// time) is drift topo cannot repair, never "No changes".

import { describe, expect, it } from "vitest";
import { effectiveRetry, policyRetry } from "../../src/plan/policy-retry.js";
import { policyLimits } from "../../src/plan/policy-limits.js";
import { Ownership } from "../../src/core/naming.js";
import type { Policy } from "../../src/model.js";
import { actual, desiredOf, policy, raw } from "../helpers/builders.js";

const owner = new Ownership("mp");
const owns = (p: Policy) => owner.owns(p);
const d = desiredOf(
  raw({
    services: [
      { name: "mplogin", async: { type: "quorum" } },
      { name: "mppay", async: { type: "quorum", arguments: { "x-delayed-retry-type": "disabled" } } },
      { name: "mpwallet", async: { type: "quorum", arguments: { "x-delayed-retry-type": "failed", "x-delayed-retry-min": 2000, "x-delayed-retry-max": 8000 } } },
      "mpclassic",
    ],
  }),
  "async",
);
const delay = (o: Partial<Policy>) => policy({ name: "delay", pattern: "^mp", definition: {}, ...o });
const on43 = (policies: Policy[], o: Parameters<typeof actual>[1] = {}) => actual([...d.resources, ...policies], { version: "4.3.6", ...o });

describe("RabbitMQ 4.3's delayed retries, as RabbitMQ works them out", () => {
  it("the type is the policy's, the operator policy's over it; the minimum and maximum the lowest, an operator policy's minimum the higher of the two policies'", () => {
    expect(effectiveRetry({})).toBe("disabled");
    expect(effectiveRetry({ "x-delayed-retry-type": "all" })).toBe("disabled");
    expect(effectiveRetry({ "x-delayed-retry-type": "all", "x-delayed-retry-min": 1000 })).toEqual({ type: "all", min: 1000, max: 1000 });
    const args = { "x-delayed-retry-type": "all", "x-delayed-retry-min": 1000, "x-delayed-retry-max": 4000 };
    expect(effectiveRetry(args, { "delayed-retry-type": "disabled" })).toBe("disabled");
    expect(effectiveRetry(args, { "delayed-retry-type": "returned", "delayed-retry-min": 500, "delayed-retry-max": 9000 })).toEqual({ type: "returned", min: 500, max: 4000 });
    expect(effectiveRetry({}, { "delayed-retry-type": "all", "delayed-retry-min": 30000 })).toEqual({ type: "all", min: 30000, max: 30000 });
    // A maximum below the minimum waits the maximum each time (measured on 4.3.6): the same as a minimum of it.
    expect(effectiveRetry({ "x-delayed-retry-type": "all", "x-delayed-retry-min": 5000 }, { "delayed-retry-max": 1000 })).toEqual({ type: "all", min: 1000, max: 1000 });
  });

  it("a policy's delay over a queue the file delivers again at once, or that disables it: degraded, with the fix", () => {
    const r = policyRetry(d, on43([delay({ definition: { "delayed-retry-type": "all", "delayed-retry-min": 30000 } })]), owns);
    expect(r.warnings).toEqual([]);
    expect(r.degraded).toEqual([
      'policy "delay" sets delayed-retry-type all, delayed-retry-min 30000 on 1 queue (mplogin.async) and the file gives it no x-delayed-retry-type: the queue holds a message given back (rejected, nacked, or left unacknowledged by a closed channel) for 30 s before delivering it again, where the file says it delivers a message given back again at once; change policy "delay" (rabbitmqctl list_policies -p a), or write x-delayed-retry-type: all, x-delayed-retry-min: 30000 for it in the file, so that it says what the broker does',
      'policy "delay" sets delayed-retry-type all, delayed-retry-min 30000 on 1 queue (mppay.async) and the file gives x-delayed-retry-type disabled: the queue holds a message given back (rejected, nacked, or left unacknowledged by a closed channel) for 30 s before delivering it again, where the file says it delivers a message given back again at once; change policy "delay" (rabbitmqctl list_policies -p a), or write x-delayed-retry-type: all, x-delayed-retry-min: 30000 for it in the file, so that it says what the broker does',
      'policy "delay" sets delayed-retry-type all, delayed-retry-min 30000 on 1 queue (mpwallet.async) and the file gives x-delayed-retry-type failed, x-delayed-retry-min 2000, x-delayed-retry-max 8000: the queue holds a message given back (rejected, nacked, or left unacknowledged by a closed channel) for 2 s times its delivery count, at most 8 s before delivering it again, where the file says it holds a message rejected, or left unacknowledged by a closed channel (not one nacked) for 2 s times its delivery count, at most 8 s before delivering it again; change policy "delay" (rabbitmqctl list_policies -p a), or write x-delayed-retry-type: all, x-delayed-retry-min: 2000, x-delayed-retry-max: 8000 for it in the file, so that it says what the broker does',
    ]);
    // The fix it names holds: a file that writes what the broker does plans clean.
    const fixed = desiredOf(raw({ services: [{ name: "mplogin", async: { type: "quorum", arguments: { "x-delayed-retry-type": "all", "x-delayed-retry-min": 30000 } } }] }), "async");
    expect(policyRetry(fixed, actual([...fixed.resources, delay({ definition: { "delayed-retry-type": "all", "delayed-retry-min": 30000 } })], { version: "4.3.6" }), owns)).toEqual({ degraded: [], warnings: [] });
  });

  it("a policy that turns the file's delay off, or shortens it; an operator policy over a user's", () => {
    const off = policyRetry(d, on43([delay({ pattern: "^mpwallet\\.", definition: { "delayed-retry-type": "disabled" } })]), owns);
    expect(off.degraded).toEqual([expect.stringContaining("the queue delivers a message given back again at once, where the file says it holds a message rejected, or left unacknowledged by a closed channel (not one nacked) for 2 s times its delivery count, at most 8 s before delivering it again; change policy \"delay\" (rabbitmqctl list_policies -p a), or write x-delayed-retry-type: disabled for it")]);
    const shorter = policyRetry(d, on43([delay({ pattern: "^mpwallet\\.", definition: { "delayed-retry-max": 3000 } })]), owns);
    expect(shorter.degraded).toEqual([expect.stringContaining("holds a message rejected, or left unacknowledged by a closed channel (not one nacked) for 2 s times its delivery count, at most 3 s before delivering it again, where the file says it holds a message rejected, or left unacknowledged by a closed channel (not one nacked) for 2 s times its delivery count, at most 8 s")]);
    // A longer one changes nothing: the lower value wins.
    expect(policyRetry(d, on43([delay({ pattern: "^mpwallet\\.", definition: { "delayed-retry-type": "failed", "delayed-retry-min": 5000, "delayed-retry-max": 60000 } })]), owns)).toEqual({ degraded: [], warnings: [] });
    // An operator policy's type wins over the user's, and its minimum counts where it is the higher.
    const both = policyRetry(d, on43([delay({ pattern: "^mplogin\\.", definition: { "delayed-retry-type": "failed", "delayed-retry-min": 1000 } })], { operatorPolicies: [delay({ name: "ops", pattern: "^mplogin\\.", definition: { "delayed-retry-type": "all", "delayed-retry-min": 6000, "delayed-retry-max": 6000 } })] }), owns);
    expect(both.degraded).toEqual([
      expect.stringMatching(/^policy "delay" and operator policy "ops" set delayed-retry-type failed, delayed-retry-min 1000 and delayed-retry-type all, delayed-retry-min 6000, delayed-retry-max 6000 on 1 queue \(mplogin\.async\) .*: the queue holds a message given back .* for 6 s before delivering it again, .*; change policy "delay" or operator policy "ops" \(rabbitmqctl list_policies -p a, rabbitmqctl list_operator_policies -p a\)/),
    ]);
  });

  it("before 4.3, on classic queues, with keys it does not set, or with the file's own values: nothing", () => {
    const all = delay({ definition: { "delayed-retry-type": "all", "delayed-retry-min": 30000 } });
    expect(policyRetry(d, actual([...d.resources, all], { version: "4.0.5" }), owns)).toEqual({ degraded: [], warnings: [] });
    expect(policyRetry(d, on43([delay({ definition: { "max-length": 5 } })]), owns)).toEqual({ degraded: [], warnings: [] });
    expect(policyRetry(d, on43([delay({ pattern: "^mpclassic\\.", definition: { "delayed-retry-type": "all", "delayed-retry-min": 30000 } })]), owns)).toEqual({ degraded: [], warnings: [] });
    expect(policyRetry(d, on43([delay({ pattern: "^mpwallet\\.", definition: { "delayed-retry-type": "failed", "delayed-retry-min": 2000, "delayed-retry-max": 8000 } })]), owns)).toEqual({ degraded: [], warnings: [] });
  });

  it("a tie of priorities is a warning; the policy the broker names settles it", () => {
    const a = delay({ name: "a", pattern: "^mplogin\\.", definition: { "delayed-retry-type": "all", "delayed-retry-min": 30000 }, priority: 1 });
    const b = delay({ name: "b", pattern: "^mplogin\\.", definition: { "queue-version": 2 }, priority: 1 });
    const tie = policyRetry(d, on43([a, b]), owns);
    expect(tie.degraded).toEqual([]);
    expect(tie.warnings).toEqual([expect.stringMatching(/^policy "a" sets .* on 1 queue \(mplogin\.async\) .*: if it applies, the queue holds .*; RabbitMQ applies one of policies "a", "b" .*rabbitmqctl list_queues -p a name policy shows it/)]);
    expect(policyRetry(d, on43([a, b], { queueFacts: { "mplogin.async": { policy: "b" } } }), owns)).toEqual({ degraded: [], warnings: [] });
    expect(policyRetry(d, on43([a, b], { queueFacts: { "mplogin.async": { policy: "a" } } }), owns).degraded).toHaveLength(1);
    // An operator policy that decides whichever of the two applies: sure, and said once.
    const c = delay({ name: "c", pattern: "^mplogin\\.", definition: { "queue-mode": "lazy" }, priority: 1 });
    const ops = [delay({ name: "ops", pattern: "^mplogin\\.", definition: { "delayed-retry-type": "all", "delayed-retry-min": 6000 } })];
    const decided = policyRetry(d, on43([b, c], { operatorPolicies: ops }), owns);
    expect(decided.warnings).toEqual([]);
    expect(decided.degraded).toEqual([expect.stringMatching(/^operator policy "ops" sets delayed-retry-type all, delayed-retry-min 6000 on 1 queue \(mplogin\.async\) and/)]);
  });
});

describe("consumer timeouts from a policy", () => {
  const q = desiredOf(
    raw({
      services: [
        { name: "mplogin", async: { type: "quorum" } },
        { name: "mppay", async: { type: "quorum", arguments: { "x-consumer-timeout": 3600000 } } },
        { name: "mpwallet", async: { type: "quorum", arguments: { "x-consumer-timeout": 5000 } } },
        { name: "mpclassic", async: { arguments: { "x-consumer-timeout": 3600000 } } },
      ],
    }),
    "async",
  );
  const timeout = delay({ name: "short", definition: { "consumer-timeout": 60000 } });

  it("a policy's consumer-timeout below the file's, or where the file gives none, is degraded; on 4.3 only on quorum queues", () => {
    const r = policyLimits(q, actual([...q.resources, timeout], { version: "4.3.6" }), owns);
    expect(r.warnings).toEqual([]);
    expect(r.degraded).toEqual([
      'policy "short" sets consumer-timeout 60000 on 1 queue (mplogin.async) and the file gives it no x-consumer-timeout: the queue cuts off a consumer that holds a delivery unacknowledged for more than 60 s (RabbitMQ closes its channel, or from 4.3 cancels it, and delivers the message again), not as the file says; change policy "short" (rabbitmqctl list_policies -p a), or write x-consumer-timeout: 60000 for it in the file, so that it says what the broker does',
      'policy "short" sets consumer-timeout 60000 on 1 queue (mppay.async) and the file gives x-consumer-timeout 3600000: the queue cuts off a consumer that holds a delivery unacknowledged for more than 60 s (RabbitMQ closes its channel, or from 4.3 cancels it, and delivers the message again), not as the file says; change policy "short" (rabbitmqctl list_policies -p a), or write x-consumer-timeout: 60000 for it in the file, so that it says what the broker does',
    ]);
    // From 3.12 to 4.2 every channel times out its consumers, on classic queues too; 3.10 has no such policy.
    expect(policyLimits(q, actual([...q.resources, timeout], { version: "4.0.5" }), owns).degraded.map((m) => /\(([^)]*)\)/.exec(m)?.[1])).toEqual(["mplogin.async", "mppay.async, mpclassic.async"]);
    expect(policyLimits(q, actual([...q.resources, timeout], { version: "3.10.8" }), owns).degraded).toEqual([]);
  });
});
