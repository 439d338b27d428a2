// Pure: what a policy's delayed retries make of the file's quorum queues on RabbitMQ 4.3 and later.
// A quorum queue there may hold a returned message back before it delivers it again
// (delayed-retry-type all, failed or returned, for delayed-retry-min to -max milliseconds). A
// policy decides that over the queue's own arguments, and plan compared arguments only: a policy's
// `delayed-retry-type: all` over a queue the file declares with `x-delayed-retry-type: disabled`
// delayed every requeue by 30 s (measured on 4.3.6), and plan said "No changes.", exit 0.
//
// How RabbitMQ 4.3 works it out (rabbit_quorum_queue:get_delayed_retry_config/1 and
// merge_policy_value/3, read from the 4.3.5 source): the type is the policy's wherever a policy
// gives one, the operator policy's over the user's; the minimum and the maximum are the lower of
// the argument's and the policies', where an operator policy's minimum counts when it is the
// higher of the two policies' and its maximum when it is the lower. A type other than all, failed
// or returned, or no minimum above 0, is no delay at all; no maximum is the minimum. The policy is
// not topo's, so topo cannot repair it: plan says so, and --detailed-exitcode counts it.

import type { ActualCluster, DesiredCluster, Policy } from "../model.js";
import { atLeast } from "./broker-rules.js";
import { duration, policiesOnceApplied } from "./risk.js";
import { acrossPairings, addQueue, operatorPoliciesApplied, pairings, policiesApplied, type Pairing } from "./policy-limits.js";
import { escapeUnsafe, names, plural, quoted, shellWord } from "../core/words.js";
import { asNumber, asString } from "../core/values.js";

export interface PolicyRetryReport {
  /** A policy surely delays retries other than the file says: drift topo cannot repair. */
  degraded: string[];
  /** One may: topo cannot tell which policy RabbitMQ picks. */
  warnings: string[];
}

const KEYS = ["delayed-retry-type", "delayed-retry-min", "delayed-retry-max"] as const;
type Key = (typeof KEYS)[number];

/** The retry delay a queue applies: none, or which returns wait, and for how long. */
export type Retry = "disabled" | { type: string; min: number; max: number };

type Values = Partial<Record<Key, unknown>>;

/** The values the user's policy and the operator policy give together, as RabbitMQ merges them. */
function merged(policy: Values | undefined, operator: Values | undefined): Values {
  const out: Values = {};
  for (const key of KEYS) {
    const p = policy?.[key];
    const o = operator?.[key];
    if (p === undefined || o === undefined) {
      const one = p ?? o;
      if (one !== undefined) out[key] = one;
    } else if (key === "delayed-retry-type") out[key] = o;
    else {
      const [a, b] = [asNumber(p), asNumber(o)];
      out[key] = a === undefined || b === undefined ? o : key === "delayed-retry-min" ? Math.max(a, b) : Math.min(a, b);
    }
  }
  return out;
}

/** The lower of the argument's and the policies' number, or whichever is given. */
function lower(arg: unknown, policy: unknown): unknown {
  if (arg === undefined) return policy;
  if (policy === undefined) return arg;
  const [a, b] = [asNumber(arg), asNumber(policy)];
  return a === undefined || b === undefined ? policy : Math.min(a, b);
}

/** What a quorum queue with `args` does under the policies' `values` (none: by its arguments alone). */
export function effectiveRetry(args: Readonly<Record<string, unknown>>, values: Values = {}): Retry {
  const type = asString(values["delayed-retry-type"] ?? args["x-delayed-retry-type"]);
  if (type !== "all" && type !== "failed" && type !== "returned") return "disabled";
  const min = asNumber(lower(args["x-delayed-retry-min"], values["delayed-retry-min"]));
  if (min === undefined || !Number.isInteger(min) || min <= 0) return "disabled";
  const given = asNumber(lower(args["x-delayed-retry-max"], values["delayed-retry-max"]));
  const max = given !== undefined && Number.isInteger(given) && given > 0 ? given : min;
  // A wait is the minimum times the delivery count, at most the maximum: a maximum below the
  // minimum (a policy's under the queue's own) waits the maximum each time, as a minimum of it
  // does (measured on 4.3.6: min 5000 and max 1000 waited 1 s). Said so, the fix it names is
  // one validate takes (it refuses a maximum below the minimum).
  return { type, min: Math.min(min, max), max };
}

// Which returns wait (measured on 4.3.6): a basic.reject with requeue, and a delivery a closed
// channel leaves unacknowledged, count as failed; a basic.nack with requeue as returned. A message
// waits the minimum times its delivery count, at most the maximum (rabbit_fifo:calculate_ready_at;
// measured: 1.0, 2.1, 3.1 s ... for a minimum of 1 s, and a nacked message, whose count does not
// rise, waits the minimum each time).
const RETURNS: Readonly<Record<string, string>> = {
  all: "a message given back (rejected, nacked, or left unacknowledged by a closed channel)",
  failed: "a message rejected, or left unacknowledged by a closed channel (not one nacked)",
  returned: "a message nacked with requeue (not one rejected, nor one a closed channel gives back)",
};

/** What the queue does with a returned message, as a verb phrase after "the queue". */
function does(r: Retry, n: number): string {
  if (r === "disabled") return `${n === 1 ? "delivers" : "deliver"} a message given back again at once`;
  const wait = r.max === r.min ? duration(r.max) : `${duration(r.min)} times its delivery count, at most ${duration(r.max)}`;
  return `${n === 1 ? "holds" : "hold"} ${RETURNS[r.type]} for ${wait} before delivering it again`;
}

/** The arguments that make the file say `r`, as a reader writes them. */
function written(r: Retry): string {
  if (r === "disabled") return "x-delayed-retry-type: disabled";
  return `x-delayed-retry-type: ${r.type}, x-delayed-retry-min: ${r.min}${r.max === r.min ? "" : `, x-delayed-retry-max: ${r.max}`}`;
}

/** The file's own delayed-retry arguments, as written. */
function given(args: Readonly<Record<string, unknown>>): string[] {
  return KEYS.flatMap((k) => (args[`x-${k}`] === undefined ? [] : [`x-${k} ${escapeUnsafe(String(args[`x-${k}`]))}`]));
}

function same(a: Retry, b: Retry): boolean {
  return a === "disabled" || b === "disabled" ? a === b : a.type === b.type && a.min === b.min && a.max === b.max;
}

interface Finding {
  /** The policy, the operator policy, or both, that give the queue its delay. */
  by: { kind: "policy" | "operator policy"; p: Policy }[];
  retry: Retry;
  file: Retry;
  /** The file's own delayed-retry arguments, as written. */
  given: string[];
  unsure?: string;
  queues: string[];
}

/** `owns`: the policies that are topo's (the file's are taken as it wants them). */
export function policyRetry(desired: DesiredCluster, actual: ActualCluster, owns: (p: Policy) => boolean): PolicyRetryReport {
  const out: PolicyRetryReport = { degraded: [], warnings: [] };
  // Before 4.3 no version delays a retry (rabbit_quorum_queue reads these keys from 4.3 on).
  if (!atLeast(actual.version, 4, 3)) return out;
  const policies = policiesOnceApplied(desired, actual, owns);
  const operatorPolicies = actual.operatorPolicies ?? [];
  const setsRetry = (p: Policy) => KEYS.some((k) => k in p.definition);
  if (![...policies, ...operatorPolicies].some(setsRetry)) return out;
  const applied = policiesApplied(actual, policies, owns);
  const operatorApplied = operatorPoliciesApplied(actual);
  const found = new Map<string, Finding>();
  for (const { queue } of desired.queues) {
    if (queue.type !== "quorum") continue;
    const file = effectiveRetry(queue.arguments);
    const judge = ({ policy, operator }: Pairing): Omit<Finding, "queues" | "unsure"> | undefined => {
      const by = [...(policy && setsRetry(policy) ? [{ kind: "policy" as const, p: policy }] : []), ...(operator && setsRetry(operator) ? [{ kind: "operator policy" as const, p: operator }] : [])];
      if (!by.length) return undefined;
      const retry = effectiveRetry(queue.arguments, merged(policy?.definition, operator?.definition));
      return same(retry, file) ? undefined : { by, retry, file, given: given(queue.arguments) };
    };
    const key = (f: Omit<Finding, "queues" | "unsure">) => JSON.stringify([f.by.map((x) => [x.kind, x.p.name]), f.retry, f.file, f.given]);
    for (const { finding, unsure } of acrossPairings(pairings(applied(queue), operatorApplied(queue)), judge, key)) {
      addQueue(found, [key(finding), unsure ?? null], { ...finding, ...(unsure ? { unsure } : {}) }, queue.name);
    }
  }
  const vhost = desired.target.amqp.vhost;
  for (const f of found.values()) {
    const n = f.queues.length;
    const them = n === 1 ? "it" : "them";
    const who = f.by.map((x) => `${x.kind} ${quoted(x.p.name)}`);
    const set = f.by.map((x) => KEYS.filter((k) => k in x.p.definition).map((k) => `${k} ${escapeUnsafe(String(x.p.definition[k]))}`).join(", ")).join(" and ");
    const file = f.given.length ? `the file gives ${f.given.join(", ")}` : `the file gives ${them} no x-delayed-retry-type`;
    const what = `${who.join(" and ")} ${f.by.length === 1 ? "sets" : "set"} ${set} on ${plural(n, "queue")} (${names(f.queues)}) and ${file}`;
    const effect = `${n === 1 ? "the queue" : "they"} ${does(f.retry, n)}, where the file says ${n === 1 ? "it" : "they"} ${does(f.file, n)}`;
    const lists = f.by.map((x) => `rabbitmqctl ${x.kind === "policy" ? "list_policies" : "list_operator_policies"} -p ${shellWord(vhost)}`);
    const fix = `change ${who.join(" or ")} (${lists.join(", ")}), or write ${written(f.retry)} for ${them} in the file, so that it says what the broker does`;
    const shows = f.by.some((x) => x.kind === "operator policy")
      ? `the management API's GET /api/queues/${encodeURIComponent(vhost)}?columns=name,policy,operator_policy shows it, from the queues' statistics`
      : `rabbitmqctl list_queues -p ${shellWord(vhost)} name policy shows it`;
    if (f.unsure) out.warnings.push(`${what}: if it applies, ${effect}; ${f.unsure}, so topo cannot tell whether it does (${shows}); ${fix}`);
    else out.degraded.push(`${what}: ${effect}; ${fix}`);
  }
  return out;
}
