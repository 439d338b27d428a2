// Pure: what a change to topo's own policies does to the messages queues already hold. RabbitMQ
// applies one policy to a queue, the matching one with the highest priority (and the operator
// policy beside it, the lowest value winning), so creating, updating or deleting one of topo's can
// hand a queue to another policy, a user's that topo's shadowed, or take a limit's competitor
// away. A max-length or max-length-bytes that then applies cuts what the queue holds at once
// (drop-head), and an expires deletes the queue with its messages once it is unused that long.
// Measured on 3.10.8: a queue holding 100 messages, whose user's policy's max-length 5 topo's
// mirror policy shadowed, held 5 once the mirror policy was deleted, under --allow-destructive
// alone. A policy's new message-ttl left the 20 messages a classic and a quorum queue held (each
// message's expiry is fixed when it is enqueued), so a TTL counts only where that was not measured
// (RabbitMQ 4). reject-publish keeps what the queue holds and refuses publishes instead (the
// broker drops the head only under drop-head): plan's `! degraded:` line says that much.
//
// Apply refuses such a change unless data loss is allowed, like a delete of a queue that holds
// messages; plan shows each queue under the policy change.

import type { Action, ActualCluster, Limit, Policy, PolicyLoss, Queue, QueueFacts, QueueLimits } from "../model.js";
import { keyOf } from "../core/keys.js";
import { plural } from "../core/words.js";
import { atLeast } from "./broker-rules.js";
import { duration, overflowEffect, policiesFor, queueLimits } from "./risk.js";

/** A queue whose limits the plan's policy changes tighten, and the change that does it. */
export interface LimitShift {
  queue: Queue;
  /** The key of the policy action that hands the queue to the tighter limit. */
  key: string;
  before: QueueLimits;
  after: QueueLimits;
}

/** The keys of a policy's definition that decide what a queue keeps (plan/risk.ts queueLimits). */
const LIMIT_KEYS = ["max-length", "max-length-bytes", "overflow", "message-ttl", "expires"] as const;

type PolicyAction = Extract<Action, { op: "create" | "update" | "delete" }>;

/** A value below the other one, or one where there was none. */
function lower(after: Limit | undefined, before: Limit | undefined): after is Limit {
  return after !== undefined && (before === undefined || after.value < before.value);
}

/** A length or byte limit that drops the head now where it did not before. */
function drops(after: Limit | undefined, before: Limit | undefined, a: QueueLimits, b: QueueLimits): after is Limit {
  return after !== undefined && a.overflow === "drop-head" && (lower(after, before) || b.overflow !== "drop-head");
}

/**
 * The queues on the broker (not those the plan replaces or deletes: their own guards judge them)
 * whose length, bytes, message TTL or expiry the plan's policy changes tighten. Needs no counts:
 * plan reads them only when this finds a queue.
 */
export function limitShifts(actions: readonly Action[], actual: ActualCluster): LimitShift[] {
  const changes = actions.filter((a): a is PolicyAction => (a.op === "create" || a.op === "update" || a.op === "delete") && (a.op === "delete" ? a.before : a.after).kind === "policy");
  if (changes.length === 0) return [];
  const before = actual.resources.filter((r): r is Policy => r.kind === "policy");
  const once = new Map(before.map((p) => [p.name, p]));
  const byName = new Map<string, PolicyAction>();
  for (const a of changes) {
    const p = (a.op === "delete" ? a.before : a.after) as Policy;
    if (a.op === "delete") once.delete(p.name);
    else once.set(p.name, p);
    byName.set(p.name, a);
  }
  const after = [...once.values()];
  const operatorPolicies = actual.operatorPolicies ?? [];
  // Without a policy that limits or sets the overflow, a queue's limits are its arguments whatever
  // applies: nothing to look at per queue (a plan that creates topo's mirror policy on a vhost of
  // 25,000 queues would otherwise match every pattern against every queue, twice).
  if (![...before, ...after, ...operatorPolicies].some((p) => LIMIT_KEYS.some((k) => k in p.definition))) return [];
  const gone = new Set(actions.flatMap((a) => ((a.op === "replace" || a.op === "delete") && a.before.kind === "queue" ? [keyOf(a.before)] : [])));
  const out: LimitShift[] = [];
  for (const q of actual.resources) {
    // A stream's retention is another rule (plan/policy-limits.ts): not judged here.
    if (q.kind !== "queue" || q.type === "stream" || gone.has(keyOf(q))) continue;
    // Only a queue that a changed policy may apply to, before or after, can change: the others
    // keep the policy they have (the same candidates on both sides).
    const involved = [...policiesFor(q, before), ...policiesFor(q, after)].map((x) => byName.get(x.p.name)).find((a) => a !== undefined);
    if (!involved) continue;
    const b = queueLimits(q, before, operatorPolicies);
    const a = queueLimits(q, after, operatorPolicies);
    if (drops(a.maxLength, b.maxLength, a, b) || drops(a.maxLengthBytes, b.maxLengthBytes, a, b) || lower(a.messageTtl, b.messageTtl) || lower(a.expires, b.expires)) {
      out.push({ queue: q, key: involved.key, before: b, after: a });
    }
  }
  return out;
}

/** What the limit was before the change, for the reader. */
function now(l: Limit | undefined): string {
  return l ? `${l.from} ${l.value}` : "none";
}

/**
 * What a shift costs the queue, given what it holds (`facts`: the read's counts). A count the
 * broker did not give is taken as a loss, as a replace's unknown bytes are: apply refuses rather
 * than find out.
 */
export function policyLosses(shift: LimitShift, facts: QueueFacts | undefined, version: string): PolicyLoss[] {
  const { queue: q, before: b, after: a } = shift;
  const n = facts?.messages;
  const unknown = n === undefined;
  const some = unknown || n > 0;
  // Ready and unacknowledged alike: what a worker gives back lands over the limit too.
  const counted = (x: number) => (facts?.unackedUnknown ? `${x} or more messages` : plural(x, "message"));
  const holds = unknown ? "holds messages the broker did not count" : `holds ${counted(n)}`;
  const loss = (rule: string, l: Limit, was: Limit | undefined, effect: string, advice: string): PolicyLoss => ({
    queue: q.name,
    rule,
    ...(unknown ? {} : { messages: n }),
    reason: `queue ${q.name} ${holds}, and once this change is made ${l.from} ${l.value} applies to it (now: ${now(was)}): ${effect}`,
    advice,
  });
  const drain = `let the workers drain ${q.name} first`;
  const out: PolicyLoss[] = [];
  if (drops(a.maxLength, b.maxLength, a, b) && (unknown || n > a.maxLength.value)) {
    const l = a.maxLength;
    out.push(loss("max-length", l, b.maxLength, overflowEffect(a, unknown ? undefined : n - l.value), `${drain} (below ${l.value}), or raise ${l.from} to at least ${unknown ? "what it holds" : n}`));
  }
  if (drops(a.maxLengthBytes, b.maxLengthBytes, a, b) && some) {
    const l = a.maxLengthBytes;
    const bytes = facts?.bytes;
    if (bytes === undefined) {
      out.push(loss("max-length-bytes", l, b.maxLengthBytes, `the broker's statistics do not count the bytes it holds: if they are more, ${overflowEffect(a, undefined)}`, `${drain}, or raise ${l.from} above its bytes (the statistics count them every 5 s: run topo apply again once they do)`));
    } else if (bytes > l.value) {
      out.push(loss("max-length-bytes", l, b.maxLengthBytes, `it holds ${bytes} bytes: ${overflowEffect(a, undefined)}`, `${drain}, or raise ${l.from} to at least ${bytes}`));
    }
  }
  // Measured on 3.10.8: a policy's TTL spares what the queue holds already (see above).
  if (lower(a.messageTtl, b.messageTtl) && some && atLeast(version, 4, 0)) {
    const l = a.messageTtl;
    out.push(loss("message-ttl", l, b.messageTtl, `what it holds may expire after ${duration(l.value)} (on RabbitMQ ${version} topo cannot tell that a policy's TTL spares messages already in the queue)`, `${drain}, or change ${l.from}`));
  }
  if (lower(a.expires, b.expires) && some) {
    const l = a.expires;
    out.push(loss("expires", l, b.expires, `the queue is deleted with what it holds if no worker uses it for ${duration(l.value)}`, `${drain}, or change ${l.from}`));
  }
  return out;
}

/**
 * Each policy change gets the queues it would make lose messages, once the read counted what
 * they hold (readAndPlan counts them when limitShifts finds a queue; before that, nothing is said).
 */
export function judgePolicyChanges(actions: Action[], actual: ActualCluster): void {
  if (!actual.messagesCounted) return;
  const at = new Map(actions.map((a) => [a.key, a]));
  for (const shift of limitShifts(actions, actual)) {
    const losses = policyLosses(shift, actual.queueFacts[shift.queue.name], actual.version);
    const a = at.get(shift.key);
    if (!losses.length || !a || a.op === "replace") continue;
    (a.losses ??= []).push(...losses);
  }
}
