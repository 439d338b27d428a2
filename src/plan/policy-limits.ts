// Pure: what the vhost's policies and operator policies make of the file's queues. For a queue's
// length, bytes, message TTL, expiry and consumer timeouts, and a quorum queue's delivery limit,
// RabbitMQ applies the lowest of the queue's argument, its policy's value and its operator
// policy's value (rabbit_amqqueue_process; quorum queues the same, measured on 4.0.5). A policy
// that sets one of them where the file gives none, or a lower one, makes the queue drop, expire
// or delete what the file says it keeps, or cut off a worker the file lets hold a task, while its
// arguments are exactly the file's: a plan that only compared arguments said "No changes". A
// stream's retention (max-age, max-length-bytes, segment size) is the policy's wherever a policy
// gives it, so there any value other than the file's is drift. The policy is not topo's, so topo
// cannot repair that: plan and apply say so.

import type { ActualCluster, DesiredCluster, Policy, Queue } from "../model.js";
import { atLeast, defaultDeliveryLimit } from "./broker-rules.js";
import { duration, policiesFor, policiesOnceApplied } from "./risk.js";
import { escapeUnsafe, names, plural, quoted, shellWord } from "../core/words.js";
import { asNumber, maxAgeSeconds } from "../core/values.js";

export interface PolicyLimitReport {
  /** A limit that applies for certain: drift topo cannot repair (--detailed-exitcode counts it). */
  degraded: string[];
  /** A limit that may apply: topo cannot tell which policy RabbitMQ picks. */
  warnings: string[];
  /** "operator policies", when they could not be read: then no plan may say "No changes." alone. */
  notCompared: string[];
}

interface LimitRule {
  arg: string;
  key: string;
  /**
   * Which value RabbitMQ applies when the argument and a policy both give one: the lowest of
   * all (classic and quorum queues), or the policy's, higher or lower (streams).
   */
  wins: "lowest" | "policy";
  /** What the queue does under the limit; `shown` is the value as written. */
  does: (value: number, count: number, shown: string) => string;
  /** The queue types RabbitMQ applies the key to, on this version. */
  types: (version: string) => readonly Queue["type"][];
  /** The limit a queue has when the file gives no argument; none when undefined. */
  brokerDefault?: (version: string) => number | undefined;
  /** The argument's value that means no limit. */
  unlimited?: number;
  /** The value a policy or argument holds, in comparable units; undefined when it is none. */
  read?: (v: unknown) => number | undefined;
}

const CLASSIC_AND_QUORUM = () => ["classic", "quorum"] as const;

const STREAM = () => ["stream"] as const;
const keeps = (n: number) => (n === 1 ? "keeps" : "keep");

const RULES: readonly LimitRule[] = [
  { arg: "x-max-length", key: "max-length", wins: "lowest", does: (v, n) => `${keeps(n)} at most ${plural(v, "message")}`, types: CLASSIC_AND_QUORUM },
  { arg: "x-max-length-bytes", key: "max-length-bytes", wins: "lowest", does: (v, n) => `${keeps(n)} at most ${v} bytes of messages`, types: CLASSIC_AND_QUORUM },
  // A stream's retention is the policies' where a policy gives one, lower or higher than the
  // argument (measured on 3.10.8: a stream declared with x-max-length-bytes 1000000000 under a
  // policy's max-length-bytes 1000 kept 1 of 60 messages of 500 bytes; one declared with 1000
  // under a policy's 1000000000 kept all 60). An operator policy's counts the same way (under an
  // operator policy's max-length-bytes 1000, the first kept 4 of 60), and where a policy and an
  // operator policy both give one, the lower is the stream's (1000 and 1000000000 either way round:
  // the broker's effective definition said 1000, and the stream kept 14 to 21 of 60).
  { arg: "x-max-length-bytes", key: "max-length-bytes", wins: "policy", does: (v, n) => `${keeps(n)} at most ${v} bytes of messages`, types: STREAM },
  { arg: "x-max-age", key: "max-age", wins: "policy", does: (_v, n, shown) => `${keeps(n)} messages for ${shown}`, types: STREAM, read: maxAgeSeconds },
  {
    arg: "x-stream-max-segment-size-bytes",
    key: "stream-max-segment-size-bytes",
    wins: "policy",
    does: (v, n) => `${n === 1 ? "writes its" : "write their"} messages in segment files of ${v} bytes (and ${n === 1 ? "drops" : "drop"} them by whole segments)`,
    types: STREAM,
    // RabbitMQ's default segment, 500 MB: a policy that gives it changes nothing of a stream without one.
    brokerDefault: () => 500_000_000,
  },
  {
    arg: "x-message-ttl",
    key: "message-ttl",
    wins: "lowest",
    does: (v, n) => `${n === 1 ? "expires" : "expire"} messages after ${duration(v)}`,
    // Quorum queues honour a message TTL from 3.10 on.
    types: (version) => (atLeast(version, 3, 10) ? ["classic", "quorum"] : ["classic"]),
  },
  { arg: "x-expires", key: "expires", wins: "lowest", does: (v, n) => `${n === 1 ? "is" : "are"} deleted, with ${n === 1 ? "its" : "their"} messages, after ${duration(v)} unused`, types: CLASSIC_AND_QUORUM },
  {
    // Measured on 4.0.5: a policy's delivery-limit 2 made a queue declared with x-delivery-limit
    // 10, -1 (no limit) or none (the default, 20) report delivery_limit 2; an operator policy's the same.
    arg: "x-delivery-limit",
    key: "delivery-limit",
    wins: "lowest",
    does: (v, n) => `${n === 1 ? "drops" : "drop"} (or dead-${n === 1 ? "letters" : "letter"}) a message returned more than ${plural(v, "time")}`,
    types: () => ["quorum"],
    brokerDefault: defaultDeliveryLimit,
    unlimited: -1,
  },
  {
    // RabbitMQ 3.12 and later time a consumer out at the lower of the queue's x-consumer-timeout
    // and its policy's consumer-timeout (rabbit_channel up to 4.2, rabbit_queue_type:consume on
    // 4.3; measured on 4.0.5 and 4.3.6, 5 s under a policy of 600 s and 600 s under one of 5 s
    // both timed out at 5 s; both refuse it in an operator policy). Without either, the node's
    // consumer_timeout applies, which topo cannot read: a policy's value there is the queue's,
    // higher or lower. On 4.3 only quorum queues time consumers out (on 4.3.6 a classic queue
    // under a policy of 5 s did not in 200 s, though its consumers were listed with that timeout).
    arg: "x-consumer-timeout",
    key: "consumer-timeout",
    wins: "lowest",
    // Measured: 4.0.5 closed the channel (406 PRECONDITION_FAILED) at its next check, 59 s after
    // the delivery; 4.3.6 cancelled the consumer at 5 s, leaving its channel open. Either way the
    // delivery is given back and delivered again.
    does: (v, n) => `${n === 1 ? "cuts" : "cut"} off a consumer that holds a delivery unacknowledged for more than ${duration(v)} (RabbitMQ closes its channel, or from 4.3 cancels it, and delivers the message again)`,
    types: (version) => (atLeast(version, 4, 3) ? ["quorum"] : atLeast(version, 3, 12) ? ["classic", "quorum"] : []),
  },
  {
    // RabbitMQ 4.3: the lower of the argument and a policy's (rabbit_quorum_queue, read from the
    // 4.3.5 source; not measured, as it needs a second node). Without either, the node's
    // consumer_disconnected_timeout applies (60 s by default).
    arg: "x-consumer-disconnected-timeout",
    key: "consumer-disconnected-timeout",
    wins: "lowest",
    does: (v, n) => `${n === 1 ? "gives" : "give"} back the messages of a consumer whose node is cut off after ${duration(v)}`,
    types: (version) => (atLeast(version, 4, 3) ? ["quorum"] : []),
  },
];

/**
 * The user's policies that may apply to one of the file's queues (policiesFor), or the one the
 * broker names for an existing queue: its listing does at once (a single-queue GET, as apply's
 * read back makes, does not), and its word settles a pattern topo cannot read or a tie of
 * priorities. `policies`: as policiesOnceApplied gives them.
 */
export function policiesApplied(actual: ActualCluster, policies: readonly Policy[], owns: (p: Policy) => boolean): (q: Queue) => { p: Policy; unread: boolean }[] {
  const exists = new Set(actual.resources.flatMap((r) => (r.kind === "queue" ? [r.name] : [])));
  return (queue) => {
    const reported = exists.has(queue.name) ? actual.queueFacts[queue.name]?.policy : undefined;
    const named = reported === undefined ? undefined : policies.find((p) => p.name === reported && !owns(p));
    return named ? [{ p: named, unread: false }] : policiesFor(queue, policies);
  };
}

/**
 * The operator policies that may apply to one of the file's queues (policiesFor), or the one the
 * broker's statistics name for an existing queue where it is one of them: only statistics name a
 * queue's operator policy, seconds behind, so their word settles a pattern topo cannot read or a
 * tie of priorities among the candidates, and says nothing of the others.
 */
export function operatorPoliciesApplied(actual: ActualCluster): (q: Queue) => { p: Policy; unread: boolean }[] {
  const operatorPolicies = actual.operatorPolicies ?? [];
  return (queue) => {
    const list = policiesFor(queue, operatorPolicies);
    const reported = actual.queueFacts[queue.name]?.operatorPolicy;
    const named = undecided(list) ? list.find((x) => x.p.name === reported) : undefined;
    return named ? [{ p: named.p, unread: false }] : list;
  };
}

/**
 * The file's queues on the broker that an operator policy setting a limit (or overflow, or delayed
 * retries) may apply to, where the patterns cannot tell whether it does (one topo cannot read, or
 * a tie): the broker's statistics name the operator policy that applies (readOperatorPolicies).
 * Without them plan only warned, and said "No changes." (exit 0 under --detailed-exitcode) of a
 * queue an operator policy with a POSIX class in its pattern capped at 5 messages.
 */
export function operatorPoliciesUnsure(desired: DesiredCluster, actual: ActualCluster): string[] {
  const operatorPolicies = actual.operatorPolicies ?? [];
  if (!operatorPolicies.some(decidesQueues)) return [];
  const exists = new Set(actual.resources.flatMap((r) => (r.kind === "queue" ? [r.name] : [])));
  return desired.queues.flatMap(({ queue }) => {
    const list = policiesFor(queue, operatorPolicies);
    return exists.has(queue.name) && undecided(list) && list.some((x) => decidesQueues(x.p)) ? [queue.name] : [];
  }).sort();
}

/** The patterns leave it open which of `list` applies: one topo cannot read, or a tie. */
function undecided(list: readonly { unread: boolean }[]): boolean {
  return list.length > 1 || list[0]?.unread === true;
}

/** The policy sets one of the limits this check compares (RULES). */
function setsLimit(p: Policy): boolean {
  return RULES.some((r) => r.key in p.definition);
}

/** The operator policy sets a key plan compares: a limit (RULES), overflow (policy-overflow.ts), or delayed retries (policy-retry.ts). */
function decidesQueues(p: Policy): boolean {
  return setsLimit(p) || ["overflow", "delayed-retry-type", "delayed-retry-min", "delayed-retry-max"].some((k) => k in p.definition);
}

/**
 * Why topo cannot be sure the policy applies to a queue, among the `list` that may: a pattern it
 * cannot read, or a tie RabbitMQ settles its own way. Undefined when it surely applies.
 */
export function whyUnsure(kind: "policy" | "operator policy", p: Policy, unread: boolean, list: readonly { p: Policy }[]): string | undefined {
  if (unread) return `topo cannot read its pattern ${quoted(p.pattern)}`;
  if (list.length <= 1) return undefined;
  return `RabbitMQ applies one of ${kind === "policy" ? "policies" : "operator policies"} ${list.map((x) => quoted(x.p.name)).sort().join(", ")} (the same priority, or a pattern topo cannot read)`;
}

/** One way RabbitMQ may resolve a queue's policies: the policy and the operator policy it applies (either may be none). */
export interface Pairing {
  policy?: Policy;
  operator?: Policy;
  /** Why topo cannot be sure this is the pairing that applies; undefined when it is. */
  unsure?: string;
}

/**
 * Every pairing of one of `policies` and one of `operators` (candidates as policiesFor gives them)
 * that may apply to a queue: RabbitMQ applies at most one of each, and merges them. A list whose
 * every candidate has a pattern topo cannot read may also mean that none of it applies.
 */
export function pairings(policies: readonly { p: Policy; unread: boolean }[], operators: readonly { p: Policy; unread: boolean }[]): Pairing[] {
  const options = (kind: "policy" | "operator policy", list: readonly { p: Policy; unread: boolean }[]) => {
    const out: { p?: Policy; why?: string }[] = list.map((c) => ({
      p: c.p,
      why: c.unread ? `topo cannot read the pattern ${quoted(c.p.pattern)} of ${kind} ${quoted(c.p.name)}` : whyUnsure(kind, c.p, false, list),
    }));
    if (!list.length) out.push({});
    else if (list.every((c) => c.unread)) out.push({ why: `topo cannot read the pattern of ${kind} ${list.map((c) => quoted(c.p.name)).join(", ")}, so it may apply or not` });
    return out;
  };
  const out: Pairing[] = [];
  for (const u of options("policy", policies)) {
    for (const o of options("operator policy", operators)) {
      const why = [u.why, o.why].filter((x) => x !== undefined);
      out.push({ ...(u.p ? { policy: u.p } : {}), ...(o.p ? { operator: o.p } : {}), ...(why.length ? { unsure: why.join("; ") } : {}) });
    }
  }
  return out;
}

/**
 * What the pairings that may apply to a queue make of it (`judge`: a finding, or nothing to say),
 * each distinct finding (by `key`) once: sure where every pairing makes it, whichever RabbitMQ
 * picks; otherwise with why topo cannot tell whether it applies.
 */
export function acrossPairings<T>(list: readonly Pairing[], judge: (p: Pairing) => T | undefined, key: (t: T) => string): { finding: T; unsure?: string }[] {
  const seen = new Map<string, { finding: T; count: number; unsure?: string }>();
  for (const pairing of list) {
    const finding = judge(pairing);
    if (finding === undefined) continue;
    const k = key(finding);
    const entry = seen.get(k) ?? { finding, count: 0 };
    entry.count++;
    entry.unsure ??= pairing.unsure;
    seen.set(k, entry);
  }
  return [...seen.values()].map((e) => (e.count === list.length ? { finding: e.finding } : { finding: e.finding, unsure: e.unsure ?? "topo cannot tell which policy RabbitMQ applies" }));
}

/** One finding per `key` (what its message says), with every queue it holds for. */
export function addQueue<F extends { queues: string[] }>(found: Map<string, F>, key: unknown[], finding: Omit<F, "queues">, queue: string): void {
  const k = JSON.stringify(key);
  const entry = found.get(k) ?? ({ ...finding, queues: [] } as unknown as F);
  // Two pairings of one queue (a tie of policies, either way the operator policy decides) say one
  // thing of it: once. A queue's findings come together, so the last name is the one to compare.
  if (entry.queues[entry.queues.length - 1] === queue) return;
  entry.queues.push(queue);
  found.set(k, entry);
}

/** A value as written, for the message: a max-age as its text, a number as its digits. */
function written(v: unknown): string {
  return typeof v === "string" ? v : String(v);
}

/** One policy setting a limit below the file's, and the queues it does it to. */
interface Finding {
  rule: LimitRule;
  kind: "policy" | "operator policy";
  policy: Policy;
  value: number;
  /** The policy's value as it is written. */
  shown: string;
  /** The file's own value, if it gives one, as written. */
  file?: string;
  /** Why topo cannot be sure the policy applies; undefined when it is. */
  unsure?: string;
  queues: string[];
}

/**
 * `owns`: the policies that are topo's (the file's are taken as it wants them, not as they are).
 * Operator policies count only when they were read (actual.operatorPolicies).
 */
export function policyLimits(desired: DesiredCluster, actual: ActualCluster, owns: (p: Policy) => boolean): PolicyLimitReport {
  const policies = policiesOnceApplied(desired, actual, owns);
  const operatorPolicies = actual.operatorPolicies ?? [];
  const out: PolicyLimitReport = { degraded: [], warnings: [], notCompared: [] };
  // Unread, they are not none: one may cap every queue of the file, and a plan that took them for
  // none said "No changes." of a vhost whose queues drop messages.
  if (actual.operatorPoliciesUnreadable && desired.queues.length) {
    const n = desired.queues.length;
    out.warnings.push(
      `operator policies not compared: ${actual.operatorPoliciesUnreadable}, so topo cannot tell whether one changes what the file says of its ${plural(n, "queue")} (${names(desired.queues.map((q) => q.queue.name))}): their length, bytes, message TTL, expiry, delivery limit, overflow or retry delay; give ${shellWord(desired.target.management.username)} the monitoring tag and permissions on vhost ${shellWord(desired.target.amqp.vhost)}, or check with rabbitmqctl list_operator_policies -p ${shellWord(desired.target.amqp.vhost)}`,
    );
    out.notCompared.push("operator policies");
  }
  // No policy sets a limit (topo's own mirroring policy sets none): nothing to look at per queue.
  // Only a policy that sets one can add a finding; the others still decide which policy applies.
  if (![...policies, ...operatorPolicies].some(setsLimit)) return out;
  const applied = policiesApplied(actual, policies, owns);
  const operatorApplied = operatorPoliciesApplied(actual);
  const found = new Map<string, Finding>();
  for (const { queue } of desired.queues) {
    const candidates = {
      policy: applied(queue),
      "operator policy": operatorApplied(queue),
    };
    for (const rule of RULES) {
      if (!rule.types(actual.version).includes(queue.type)) continue;
      const read = rule.read ?? asNumber;
      const fileValue = read(queue.arguments[rule.arg]);
      const file = fileValue === undefined ? undefined : written(queue.arguments[rule.arg]);
      // What the queue keeps by the file alone: its argument, or the broker's default without one.
      const own = fileValue === undefined ? rule.brokerDefault?.(actual.version) : fileValue === rule.unlimited ? undefined : fileValue;
      // The lowest value a policy surely applies, and those that may apply (only one policy and
      // one operator policy apply to a queue; the lowest value of all wins, or for a stream the
      // lower of the two, whatever its argument says).
      let sure: Omit<Finding, "queues"> | undefined;
      const maybe: Omit<Finding, "queues">[] = [];
      for (const [kind, list] of Object.entries(candidates) as [Finding["kind"], typeof candidates.policy][]) {
        for (const { p, unread } of list) {
          const value = read(p.definition[rule.key]);
          if (value === undefined) continue;
          // A stream's may equal the file's and still count: it is the lower of a policy's and an operator policy's.
          if (value === own && (unread || list.length > 1 || rule.wins === "lowest")) continue;
          if (rule.wins === "lowest" && (value === rule.unlimited || (own !== undefined && value >= own))) continue;
          const unsure = whyUnsure(kind, p, unread, list);
          const f = { rule, kind, policy: p, value, shown: written(p.definition[rule.key]), file, unsure };
          if (unsure) maybe.push(f);
          else if (!sure || value < sure.value) sure = f;
        }
      }
      // What the policies surely set; for a stream the file's own value is then no drift.
      const least = sure?.value;
      if (sure && sure.value === own) sure = undefined;
      for (const f of [...(sure ? [sure] : []), ...maybe.filter((m) => least === undefined || m.value < least)]) {
        addQueue(found, [rule.arg, rule.wins, f.kind, f.policy.name, f.value, file ?? null, f.unsure ?? null], f, queue.name);
      }
    }
  }
  const vhost = desired.target.amqp.vhost;
  for (const f of found.values()) {
    const n = f.queues.length;
    const them = n === 1 ? "it" : "them";
    const byDefault = f.file === undefined ? f.rule.brokerDefault?.(actual.version) : undefined;
    const file =
      f.file === undefined
        ? `the file gives ${them} no ${f.rule.arg}${byDefault === undefined ? "" : ` (RabbitMQ ${actual.version}'s default is ${byDefault})`}`
        : `the file gives ${f.rule.arg} ${f.file}`;
    const list = f.kind === "policy" ? "list_policies" : "list_operator_policies";
    const fix = `change ${f.kind} ${quoted(f.policy.name)} (rabbitmqctl ${list} -p ${shellWord(vhost)}), or write ${f.rule.arg}: ${escapeUnsafe(f.shown)} for ${them} in the file, so that it says what the broker does`;
    const what = `${f.kind} ${quoted(f.policy.name)} sets ${f.rule.key} ${escapeUnsafe(f.shown)} on ${plural(n, "queue")} (${names(f.queues)}) and ${file}`;
    const subject = n === 1 ? (f.rule.wins === "policy" ? "the stream" : "the queue") : "they";
    const does = f.rule.does(f.value, n, escapeUnsafe(f.shown));
    // rabbitmqctl list_queues has no operator_policy column (3.10.8 refuses it): the management API's queue listing with statistics names it.
    const shows =
      f.kind === "policy"
        ? `rabbitmqctl list_queues -p ${shellWord(vhost)} name policy shows it`
        : `the management API's GET /api/queues/${encodeURIComponent(vhost)}?columns=name,operator_policy shows it, from the queues' statistics, seconds after a change`;
    if (f.unsure) out.warnings.push(`${what}: if it applies, ${subject} ${does}, not as the file says; ${f.unsure}, so topo cannot tell whether it does (${shows}); ${fix}`);
    else out.degraded.push(`${what}: ${subject} ${does}, not as the file says; ${fix}`);
  }
  return out;
}
