// What a user's policy's `overflow` makes of the file's queues: a full queue that refuses new
// messages where the file has it drop its oldest (or the reverse) is drift topo cannot repair,
// never "No changes".

import { describe, expect, it } from "vitest";
import { policyOverflow } from "../../src/plan/policy-overflow.js";
import { Ownership } from "../../src/core/naming.js";
import type { Policy } from "../../src/model.js";
import { actual, desiredOf, policy, raw } from "../helpers/builders.js";

const owner = new Ownership("mp");
const owns = (p: Policy) => owner.owns(p);
const d = desiredOf(
  raw({
    services: [
      "mplogin",
      { name: "mppay", async: { arguments: { "x-max-length": 5 } } },
      { name: "mpwallet", async: { arguments: { "x-max-length": 5, "x-overflow": "drop-head" } } },
      { name: "mpquota", async: { type: "quorum", arguments: { "x-max-length": 5, "x-overflow": "drop-head" } } },
    ],
  }),
  "async",
);
const cap = (o: Partial<Policy>) => policy({ name: "cap", pattern: "^mp", definition: {}, ...o });

describe("a policy's overflow on the file's queues", () => {
  it("reject-publish on a capped classic queue without x-overflow, and on a quorum queue whatever its own: degraded, with the fix", () => {
    const r = policyOverflow(d, actual([...d.resources, cap({ definition: { overflow: "reject-publish" } })]), owns);
    expect(r.warnings).toEqual([]);
    expect(r.degraded).toEqual([
      'policy "cap" sets overflow reject-publish on 1 queue (mppay.async) and the file gives it no x-overflow (drop-head): a full queue refuses new messages (a publisher without confirms loses them without knowing), instead of dropping its oldest message as the file says; change policy "cap" (rabbitmqctl list_policies -p a), or write x-overflow: reject-publish for it in the file, so that it says what the broker does',
      'policy "cap" sets overflow reject-publish on 1 queue (mpquota.async) and the file gives x-overflow drop-head, which RabbitMQ applies under a policy\'s for a quorum queue: a full queue refuses new messages (a publisher without confirms loses them without knowing), instead of dropping its oldest message as the file says; change policy "cap" (rabbitmqctl list_policies -p a), or write x-overflow: reject-publish for it in the file, so that it says what the broker does',
    ]);
  });

  it("a queue that is never full (no length limit from the file or the policy), the file's own value, or the classic queue's own x-overflow: no drift", () => {
    expect(policyOverflow(d, actual([...d.resources, cap({ definition: { overflow: "drop-head" } })]), owns)).toEqual({ degraded: [], warnings: [] });
    const onlyLogin = cap({ pattern: "^mplogin\\.", definition: { overflow: "reject-publish" } });
    expect(policyOverflow(d, actual([...d.resources, onlyLogin]), owns)).toEqual({ degraded: [], warnings: [] });
    // A policy that caps as well: the queue is full at its limit, and overflow decides.
    const capped = cap({ pattern: "^mplogin\\.", definition: { overflow: "reject-publish", "max-length": 10 } });
    expect(policyOverflow(d, actual([...d.resources, capped]), owns).degraded).toEqual([expect.stringMatching(/^policy "cap" sets overflow reject-publish on 1 queue \(mplogin\.async\)/)]);
  });

  it("a tie of priorities is a warning; the policy the broker names settles it", () => {
    const a = cap({ name: "a", pattern: "^mppay\\.", definition: { overflow: "reject-publish-dlx" }, priority: 1 });
    const b = cap({ name: "b", pattern: "^mppay\\.", definition: { "queue-mode": "lazy" }, priority: 1 });
    const tie = policyOverflow(d, actual([...d.resources, a, b]), owns);
    expect(tie.degraded).toEqual([]);
    expect(tie.warnings).toEqual([expect.stringMatching(/^policy "a" sets overflow reject-publish-dlx on 1 queue \(mppay\.async\) .*: if it applies, a full queue refuses new messages and dead-letters them .*RabbitMQ applies one of policies "a", "b"/)]);
    const named = (name: string) => actual([...d.resources, a, b], { queueFacts: { "mppay.async": { policy: name } } });
    expect(policyOverflow(d, named("b"), owns)).toEqual({ degraded: [], warnings: [] });
    expect(policyOverflow(d, named("a"), owns).degraded).toHaveLength(1);
  });
});

// From RabbitMQ 3.12.7 an operator policy may set overflow, and its value wins over a user's
// policy's: measured on 4.0.5 and 4.3.6. Plan took operator policies to have none, and said
// "No changes." of queues that refused new messages where the file drops the oldest.
describe("an operator policy's overflow on the file's queues", () => {
  const ops = (definition: Policy["definition"], o: Partial<Policy> = {}) => [cap({ name: "ops", definition, ...o })];

  it("is degraded on a capped classic queue without x-overflow and on a quorum queue, named as an operator policy, with its fix", () => {
    const r = policyOverflow(d, actual(d.resources, { version: "4.0.5", operatorPolicies: ops({ overflow: "reject-publish" }) }), owns);
    expect(r.warnings).toEqual([]);
    expect(r.degraded).toEqual([
      'operator policy "ops" sets overflow reject-publish on 1 queue (mppay.async) and the file gives it no x-overflow (drop-head): a full queue refuses new messages (a publisher without confirms loses them without knowing), instead of dropping its oldest message as the file says; change operator policy "ops" (rabbitmqctl list_operator_policies -p a), or write x-overflow: reject-publish for it in the file, so that it says what the broker does',
      expect.stringMatching(/^operator policy "ops" sets overflow reject-publish on 1 queue \(mpquota\.async\) and the file gives x-overflow drop-head, which RabbitMQ applies under a policy's for a quorum queue: /),
    ]);
  });

  it("wins over a user's policy's: the user's drop-head does not hide it, and the user's reject-publish is not what applies", () => {
    const user = cap({ name: "user", pattern: "^mpquota\\.", definition: { overflow: "drop-head" } });
    const r = policyOverflow(d, actual([...d.resources, user], { version: "4.3.6", operatorPolicies: ops({ overflow: "reject-publish" }, { pattern: "^mpquota\\." }) }), owns);
    expect(r.degraded).toEqual([expect.stringMatching(/^operator policy "ops" sets overflow reject-publish on 1 queue \(mpquota\.async\)/)]);
    const userReject = cap({ name: "user", pattern: "^mpquota\\.", definition: { overflow: "reject-publish" } });
    expect(policyOverflow(d, actual([...d.resources, userReject], { version: "4.3.6", operatorPolicies: ops({ overflow: "drop-head" }, { pattern: "^mpquota\\." }) }), owns)).toEqual({ degraded: [], warnings: [] });
  });

  it("one whose pattern topo cannot read is a warning", () => {
    const r = policyOverflow(d, actual(d.resources, { version: "4.0.5", operatorPolicies: ops({ overflow: "reject-publish" }, { pattern: "^mppay[[:punct:]]" }) }), owns);
    expect(r.degraded).toEqual([]);
    // Read as PCRE it matches mppay.async alone; topo cannot tell, so it may match any queue.
    expect(r.warnings).toEqual([
      expect.stringMatching(/^operator policy "ops" sets overflow reject-publish on 1 queue \(mppay\.async\) .*: if it applies, .*topo cannot read the pattern "\^mppay\[\[:punct:\]\]" of operator policy "ops".*GET \/api\/queues\/a\?columns=name,operator_policy shows it/),
      expect.stringMatching(/^operator policy "ops" sets overflow reject-publish on 1 queue \(mpquota\.async\) .*: if it applies, /),
    ]);
  });
});

// Quorum queues do not support reject-publish-dlx: RabbitMQ takes a policy's for drop-head, and
// only logs it (measured on 4.0.5 and 4.3.6). Plan said such a queue refuses and dead-letters new
// messages, and called a queue drifted that does as its file says.
describe("a policy's reject-publish-dlx on a quorum queue", () => {
  const q = desiredOf(
    raw({
      services: [
        { name: "mpdrop", async: { type: "quorum", arguments: { "x-max-length": 2 } } },
        { name: "mprefuse", async: { type: "quorum", arguments: { "x-max-length": 2, "x-overflow": "reject-publish" } } },
        { name: "mpclassic", async: { arguments: { "x-max-length": 2 } } },
      ],
    }),
    "async",
  );

  it("is drop-head: no drift where the file says drop-head, and drift named as drop-head where it says reject-publish", () => {
    for (const o of [{ policies: [cap({ definition: { overflow: "reject-publish-dlx" } })] }, { operatorPolicies: [cap({ definition: { overflow: "reject-publish-dlx" } })] }]) {
      const r = policyOverflow(q, actual([...q.resources, ...(o.policies ?? [])], { version: "4.3.6", operatorPolicies: o.operatorPolicies }), owns);
      expect(r.warnings).toEqual([]);
      expect(r.degraded).toEqual([
        expect.stringMatching(
          /^(operator )?policy "cap" sets overflow reject-publish-dlx on 1 queue \(mprefuse\.async\), which quorum queues do not support: RabbitMQ takes it for drop-head, and the file gives x-overflow reject-publish, which RabbitMQ applies under a policy's for a quorum queue: a full queue drops its oldest message to make room, instead of refusing new messages as the file says; change .*, or write x-overflow: drop-head for it in the file/,
        ),
        expect.stringMatching(/^(operator )?policy "cap" sets overflow reject-publish-dlx on 1 queue \(mpclassic\.async\) and the file gives it no x-overflow \(drop-head\): a full queue refuses new messages and dead-letters them/),
      ]);
    }
  });
});

describe("an operator policy's overflow beside a tie of user policies", () => {
  it("is degraded, once per queue: the operator policy's value wins whichever user policy applies", () => {
    const a = cap({ name: "a", pattern: "^mppay\\.", definition: { "queue-mode": "lazy" }, priority: 1 });
    const b = cap({ name: "b", pattern: "^mppay\\.", definition: { overflow: "drop-head" }, priority: 1 });
    const r = policyOverflow(d, actual([...d.resources, a, b], { version: "4.0.5", operatorPolicies: [cap({ name: "ops", pattern: "^mppay\\.", definition: { overflow: "reject-publish" } })] }), owns);
    expect(r.warnings).toEqual([]);
    expect(r.degraded).toEqual([expect.stringMatching(/^operator policy "ops" sets overflow reject-publish on 1 queue \(mppay\.async\) and the file gives it no x-overflow/)]);
  });
});
