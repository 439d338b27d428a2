// Pure: what a policy's `overflow` makes of the file's queues. A full queue drops its oldest
// message (drop-head, the default) or refuses new ones (reject-publish; reject-publish-dlx
// dead-letters them too): the choice decides which messages are lost, and a publisher without
// confirms (Celery's default) never hears of a refusal. Measured on 3.10.8, five messages into
// queues of x-max-length 2 under a user's policy `overflow: reject-publish`: a classic queue that
// the file gives no x-overflow kept the first two and refused the rest; one declared with
// x-overflow drop-head kept the last two (for a classic queue the argument wins, and the policy's
// counts only where there is none); a quorum queue refused as the policy says whatever its
// argument (there the policy wins, as dead-lettering.ts measured). A plan that compared arguments
// only said "No changes". The policy is not topo's, so topo cannot repair it: plan says so.
// Operator policies may set overflow too, from RabbitMQ 3.12.7 on, and theirs wins over a user's
// policy's: measured on 4.0.5 and 4.3.6, an operator policy's reject-publish made a classic queue
// the file gives no x-overflow keep the first two of five and refuse the rest, and a quorum queue
// refuse as well, declared with x-overflow drop-head or under a user's policy of drop-head (a
// classic queue's own x-overflow drop-head still won). A quorum queue the file asks to dead-letter
// at-least-once is dead-lettering.ts's to judge (overflow decides that too).

import type { ActualCluster, DesiredCluster, Policy, Queue } from "../model.js";
import { policiesOnceApplied, queueLimits } from "./risk.js";
import { acrossPairings, addQueue, operatorPoliciesApplied, pairings, policiesApplied, type Pairing } from "./policy-limits.js";
import { escapeUnsafe, names, plural, quoted, shellWord } from "../core/words.js";
import { asString } from "../core/values.js";

export interface PolicyOverflowReport {
  /** A policy surely applies an overflow the file does not say: drift topo cannot repair. */
  degraded: string[];
  /** One may: topo cannot tell which policy RabbitMQ picks. */
  warnings: string[];
}

const DEFAULT = "drop-head";

/** What a full queue does under each overflow, and the same as "instead of ...". */
const EFFECT: Record<string, [string, string]> = {
  "drop-head": ["drops its oldest message to make room", "dropping its oldest message"],
  "reject-publish": ["refuses new messages (a publisher without confirms loses them without knowing)", "refusing new messages"],
  "reject-publish-dlx": ["refuses new messages and dead-letters them (a publisher without confirms does not know)", "refusing and dead-lettering new messages"],
};

function effect(overflow: string, form: 0 | 1): string {
  return EFFECT[overflow]?.[form] ?? (form === 0 ? `does what overflow ${quoted(overflow)} says` : `doing what overflow ${quoted(overflow)} says`);
}

interface Finding {
  kind: "policy" | "operator policy";
  policy: Policy;
  /** The policy's overflow, as it is written. */
  set: string;
  /** What a full queue does by it (quorum queues take reject-publish-dlx for drop-head). */
  value: string;
  /** The file's own x-overflow, if it gives one. */
  file?: string;
  unsure?: string;
  queues: string[];
}

/** `owns`: the policies that are topo's (the file's are taken as it wants them). */
export function policyOverflow(desired: DesiredCluster, actual: ActualCluster, owns: (p: Policy) => boolean): PolicyOverflowReport {
  const out: PolicyOverflowReport = { degraded: [], warnings: [] };
  const policies = policiesOnceApplied(desired, actual, owns);
  const operatorPolicies = actual.operatorPolicies ?? [];
  const setsOverflow = (p: Policy | undefined) => p !== undefined && "overflow" in p.definition;
  if (![...policies, ...operatorPolicies].some(setsOverflow)) return out;
  const applied = policiesApplied(actual, policies, owns);
  const operatorApplied = operatorPoliciesApplied(actual);
  const found = new Map<string, Finding>();
  for (const { queue } of desired.queues) {
    if (!overflowApplies(queue)) continue;
    const file = asString(queue.arguments["x-overflow"]);
    // A classic queue's own x-overflow wins over any policy's.
    if (queue.type === "classic" && file !== undefined) continue;
    const judge = ({ policy, operator }: Pairing): Omit<Finding, "queues" | "unsure"> | undefined => {
      // An operator policy's overflow wins over the user's policy's (rabbit_policies:merge_policy_value).
      const decides = setsOverflow(operator) ? { kind: "operator policy" as const, p: operator as Policy } : setsOverflow(policy) ? { kind: "policy" as const, p: policy as Policy } : undefined;
      if (!decides) return undefined;
      const set = asString(decides.p.definition.overflow);
      if (set === undefined) return undefined;
      const value = actsAs(queue, set);
      if (value === (file ?? DEFAULT)) return undefined;
      // Without a length limit, a queue is never full: overflow changes nothing.
      const limits = queueLimits(queue, policy ? [policy] : [], operator ? [operator] : []);
      if (limits.maxLength === undefined && limits.maxLengthBytes === undefined) return undefined;
      return { kind: decides.kind, policy: decides.p, set, value, ...(file !== undefined ? { file } : {}) };
    };
    const key = (f: Omit<Finding, "queues" | "unsure">) => JSON.stringify([f.kind, f.policy.name, f.set, f.file ?? null]);
    for (const { finding, unsure } of acrossPairings(pairings(applied(queue), operatorApplied(queue)), judge, key)) {
      addQueue(found, [finding.kind, finding.policy.name, finding.set, finding.file ?? null, unsure ?? null], { ...finding, ...(unsure ? { unsure } : {}) }, queue.name);
    }
  }
  const vhost = desired.target.amqp.vhost;
  for (const f of found.values()) {
    const n = f.queues.length;
    const them = n === 1 ? "it" : "them";
    const value = escapeUnsafe(f.value);
    const set = escapeUnsafe(f.set);
    const file =
      f.file === undefined
        ? `the file gives ${them} no x-overflow (${DEFAULT})`
        : `the file gives x-overflow ${escapeUnsafe(f.file)}, which RabbitMQ applies under a policy's for a quorum queue`;
    const ignored = f.set === f.value ? "" : `, which quorum queues do not support: RabbitMQ takes it for ${value}`;
    const what = `${f.kind} ${quoted(f.policy.name)} sets overflow ${set} on ${plural(n, "queue")} (${names(f.queues)})${ignored ? `${ignored},` : ""} and ${file}`;
    const does = `a full queue ${effect(f.value, 0)}, instead of ${effect(f.file ?? DEFAULT, 1)} as the file says`;
    const list = f.kind === "policy" ? "list_policies" : "list_operator_policies";
    const fix = `change ${f.kind} ${quoted(f.policy.name)} (rabbitmqctl ${list} -p ${shellWord(vhost)}), or write x-overflow: ${value} for ${them} in the file, so that it says what the broker does`;
    const shows =
      f.kind === "policy"
        ? `rabbitmqctl list_queues -p ${shellWord(vhost)} name policy shows it`
        : `the management API's GET /api/queues/${encodeURIComponent(vhost)}?columns=name,operator_policy shows it, from the queues' statistics`;
    if (f.unsure) out.warnings.push(`${what}: if it applies, ${does}; ${f.unsure}, so topo cannot tell whether it does (${shows}); ${fix}`);
    else out.degraded.push(`${what}: ${does}; ${fix}`);
  }
  return out;
}

/**
 * What a full queue does under a policy's `overflow`: a quorum queue takes reject-publish-dlx,
 * which it does not support, for drop-head (rabbit_quorum_queue:overflow/3 logs a warning, and
 * nothing else says so). Measured on 4.0.5 and 4.3.6: under a policy's reject-publish-dlx a quorum
 * queue of x-max-length 2 declared with reject-publish kept the last 2 of 5 messages, and
 * confirmed all 5.
 */
function actsAs(queue: Queue, overflow: string): string {
  return queue.type === "quorum" && overflow === "reject-publish-dlx" ? "drop-head" : overflow;
}

/** Queues whose overflow a policy decides: classic and quorum, but not a quorum queue the file dead-letters at-least-once. */
function overflowApplies(q: Queue): boolean {
  if (q.type === "classic") return true;
  return q.type === "quorum" && asString(q.arguments["x-dead-letter-strategy"]) !== "at-least-once";
}
