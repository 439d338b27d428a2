// Pure: could replacing a queue lose messages? A lossless replace moves what the queue holds
// aside into topo.hold.<queue>, re-creates the queue and moves everything back (broker/replace.ts).
// Each rule below names a way the broker itself would drop, refuse, expire or strand a moved
// message. Apply refuses a replace with any of them before it writes anything, unless data loss
// is allowed; plan shows them under the replace.
//
// Limits come from the queue's arguments and from the policy that applies to it, combined the
// way RabbitMQ combines them (rabbit_amqqueue_process: the lower of argument and policy for
// max-length, max-length-bytes, message-ttl and expires; the argument wins for dead-letter-exchange,
// and for overflow on a classic queue, where a quorum queue takes the policy's; an operator
// policy's value caps whatever the others give).

import type { ActualCluster, DesiredCluster, Exchange, Limit, Overflow, Policy, Queue, QueueLimits, ReplaceRisk } from "../model.js";
import { FETCHED_WITHOUT_CONSUMER, letGoOf, shown, plural } from "../core/words.js";
import { policyRegExp } from "../core/policy-pattern.js";
import { holdingQueue } from "../core/naming.js";
import { asNumber, asString, maxAgeSeconds } from "../core/values.js";

/** What a queue holds, as the broker counts it. */
export interface HeldMessages {
  ready: number;
  unacked: number;
  /** `unacked` (0) is no count: what consumers hold unacknowledged is not known. */
  unackedUnknown?: boolean;
  consumers: number;
  /** Body bytes of what it holds; undefined when the broker did not say (streams). */
  bytes?: number;
  /**
   * What a quorum queue holds neither ready nor unacknowledged, which no move takes: its dead letters
   * waiting for their target (at-least-once), and on RabbitMQ 4.3 the retries it delays.
   */
  deadLetters?: number;
  /** Of deadLetters, the retries RabbitMQ 4.3 delays; undefined: no statistics tell them apart. */
  delayedRetries?: number;
}

export interface ReplaceCase {
  /** The queue as it is now (the holding queue, when an interrupted replace left no queue). */
  before: Queue;
  after: Queue;
  /** The holding queue the messages pass through. */
  hold: Queue;
  /** What the queue holds, plus what its holding queue holds when finishing a replace. */
  held: HeldMessages;
  /**
   * The replace deletes the old queue. False when finishing an interrupted replace whose queue
   * is gone or already new: then messages only move back, and the move stops (never drops) when
   * the queue is full, so the rules about the old queue and the new limits do not apply.
   */
  deletesQueue: boolean;
  /** The vhost's policies as they will be while the replace runs. */
  policies: readonly Policy[];
  /** The vhost's operator policies. */
  operatorPolicies?: readonly Policy[];
}

const OVERFLOWS: readonly string[] = ["drop-head", "reject-publish", "reject-publish-dlx"];

function appliesTo(p: Policy, q: Queue): boolean {
  switch (p.applyTo) {
    case "all":
    case "queues":
      return true;
    case "classic_queues":
      return q.type === "classic";
    case "quorum_queues":
      return q.type === "quorum";
    case "streams":
      return q.type === "stream";
    case "exchanges":
      return false;
    default:
      return false;
  }
}

/**
 * Whether a policy's pattern matches a name, or undefined when JavaScript cannot tell. RabbitMQ
 * reads patterns as PCRE (Erlang re); unicode mode makes JavaScript refuse what it would read
 * otherwise or not at all ((?i), [[:alnum:]], \A), instead of silently reading another pattern.
 */
function matches(pattern: string, name: string): boolean | undefined {
  return policyRegExp(pattern, { unicode: true })?.test(name);
}

/**
 * The policies RabbitMQ may apply to a queue, highest priority first: the matching one with the
 * highest priority (several, when they tie: RabbitMQ's choice among them is not defined), and
 * every one whose pattern JavaScript cannot read with at least that priority. The limits of a
 * replace count them all, so that a policy topo cannot read never lets a message expire unseen.
 */
export function policiesFor(q: Queue, policies: readonly Policy[]): { p: Policy; unread: boolean }[] {
  return topPolicies(q.name, policies.filter((p) => appliesTo(p, q)));
}

/** policiesFor of an exchange: the policies that apply to exchanges (`exchanges` or `all`). */
export function policiesForExchange(x: Exchange, policies: readonly Policy[]): { p: Policy; unread: boolean }[] {
  return topPolicies(x.name, policies.filter((p) => p.applyTo === "exchanges" || p.applyTo === "all"));
}

/** Of `policies` (those that apply to the object's kind), the ones of the highest priority that match `name`, or may. */
function topPolicies(name: string, policies: readonly Policy[]): { p: Policy; unread: boolean }[] {
  const judged = policies.map((p) => ({ p, m: matches(p.pattern, name) }));
  const top = Math.max(-Infinity, ...judged.filter((x) => x.m === true).map((x) => x.p.priority));
  return judged
    .filter(({ p, m }) => (m === true && p.priority === top) || (m === undefined && p.priority >= top))
    .sort((x, y) => y.p.priority - x.p.priority || Number(y.m === true) - Number(x.m === true))
    .map((x) => ({ p: x.p, unread: x.m === undefined }));
}

/** The policy RabbitMQ applies to a queue: the matching one with the highest priority. */
export function policyFor(q: Queue, policies: readonly Policy[]): Policy | undefined {
  return policiesFor(q, policies)[0]?.p;
}

export function queueLimits(q: Queue, policies: readonly Policy[], operatorPolicies: readonly Policy[] = []): QueueLimits {
  const ps = policiesFor(q, policies);
  const p = ps[0]?.p;
  const ops = policiesFor(q, operatorPolicies);
  const lowest = (...ls: (Limit | undefined)[]): Limit | undefined =>
    ls.reduce<Limit | undefined>((m, l) => (l !== undefined && (m === undefined || l.value < m.value) ? l : m), undefined);
  // A policy whose pattern JavaScript cannot read is counted as matching, and says so.
  type Read = (v: unknown) => number | undefined;
  const from = ({ p: pol, unread }: { p: Policy; unread: boolean }, kind: string, key: string, read: Read = asNumber, scale = 1): Limit | undefined => {
    const v = read(pol.definition[key]);
    const judged = unread ? ` (topo cannot read its pattern "${pol.pattern}", so it counts it as matching)` : "";
    return v !== undefined ? { value: v * scale, from: `${kind} ${shown(pol.name)}'s ${key}${judged}`, ...(scale === 1 ? {} : { shown: String(pol.definition[key]) }) } : undefined;
  };
  const argument = (arg: string, read: Read = asNumber, scale = 1): Limit | undefined => {
    const a = read(q.arguments[arg]);
    return a === undefined ? undefined : { value: a * scale, from: arg, ...(scale === 1 ? {} : { shown: String(q.arguments[arg]) }) };
  };
  const lower = (arg: string, key: string): Limit | undefined =>
    lowest(argument(arg), ...ps.map((x) => from(x, "policy", key)), ...ops.map((x) => from(x, "operator policy", key)));
  // A stream's retention is the policy's wherever a policy (or an operator policy) gives it,
  // higher or lower than the argument, and the lower where both do (policy-limits.ts has the
  // measurements). Where topo cannot tell which policy applies, the lowest that may apply counts.
  const retention = (arg: string, key: string, read: Read = asNumber, scale = 1): Limit | undefined => {
    // Some policy surely applies (one whose pattern topo reads), and whichever does gives a value.
    const sure = (list: typeof ps) => list.some((x) => !x.unread) && list.every((x) => read(x.p.definition[key]) !== undefined);
    const own = sure(ps) || sure(ops) ? undefined : argument(arg, read, scale);
    return lowest(own, ...ps.map((x) => from(x, "policy", key, read, scale)), ...ops.map((x) => from(x, "operator policy", key, read, scale)));
  };
  const stream = q.type === "stream";
  const d = p?.definition ?? {};
  // A classic queue's own x-overflow wins over its policy's; a quorum queue takes the policy's
  // over its own (measured on 3.10.8, x-max-length 2 and x-overflow reject-publish under a policy's
  // drop-head: the classic queue kept the first 2 of 5, the quorum queue the last 2). Taken as the
  // argument's, a finishing replace moved 8 messages back into a quorum queue of the file's
  // reject-publish without counting the bytes it held already, and drop-head dropped 6 of them.
  // An operator policy's overflow (RabbitMQ 3.12.7 and later) wins over the policy's
  // (policy-overflow.ts has the measurements).
  const own = asString(q.arguments["x-overflow"]);
  const byPolicy = asString(ops[0]?.p.definition.overflow) ?? asString(d.overflow);
  // A quorum queue takes reject-publish-dlx, which it does not support, for drop-head (policy-overflow.ts).
  const quorum = (v: string | undefined) => (v === "reject-publish-dlx" ? "drop-head" : v);
  const overflow = q.type === "quorum" ? quorum(byPolicy ?? own) : (own ?? byPolicy);
  return {
    maxLength: lower("x-max-length", "max-length"),
    maxLengthBytes: stream ? retention("x-max-length-bytes", "max-length-bytes") : lower("x-max-length-bytes", "max-length-bytes"),
    overflow: overflow && OVERFLOWS.includes(overflow) ? (overflow as Overflow) : "drop-head",
    messageTtl: lower("x-message-ttl", "message-ttl"),
    expires: lower("x-expires", "expires"),
    ...(stream ? { maxAge: retention("x-max-age", "max-age", maxAgeSeconds, 1000) } : {}),
    deadLetterExchange: asString(q.arguments["x-dead-letter-exchange"]) ?? asString(d["dead-letter-exchange"]),
    deadLetterRoutingKey: asString(q.arguments["x-dead-letter-routing-key"]) ?? asString(d["dead-letter-routing-key"]),
    ...(q.type === "quorum" ? optional("deliveryLimit", lower("x-delivery-limit", "delivery-limit")) : {}),
  };
}

/** `{ [key]: value }`, or nothing where the value is undefined. */
function optional<K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, V>);
}

/** The vhost's policies while and after apply runs: the file's, and those on the broker that are not topo's (`owns`). */
export function policiesOnceApplied(desired: DesiredCluster, actual: ActualCluster, owns: (p: Policy) => boolean): Policy[] {
  // A loop, not filter(): several checks of every plan ask, each over every object.
  const out: Policy[] = [];
  for (const r of desired.resources) if (r.kind === "policy") out.push(r);
  for (const r of actual.resources) if (r.kind === "policy" && !owns(r)) out.push(r);
  return out;
}

/**
 * The exchange a lossless replace moves messages through, named as its holding queue: a fanout
 * bound to that queue alone, so each message keeps its routing key; transient and auto-delete, so
 * it goes once unbound. apply declares it so, and plan refuses a replace where one of that name
 * is declared otherwise (the broker would refuse the declare half-way).
 */
export const HOLD_EXCHANGE = { type: "fanout", durable: false, autoDelete: true } as const;

/**
 * The holding queue a replace of `after` declares: it dead-letters where the queue will (its
 * argument's or its policy's dead-letter exchange, and routing key), so that a message that
 * expires while it waits there, or that a policy's length limit pushes out, is dead-lettered as
 * the queue would, not dropped. Measured on 3.10: of 5,000 delayed retries (expiration 4000) in a
 * queue that dead-letters to a fanout, 4,084 expired in a holding queue without one and were gone.
 * Without a dead-letter routing key a message is dead-lettered by its own routing key, which the
 * move into the holding queue keeps (broker/replace.ts). It is a quorum queue when the queue is
 * one, before or after the replace: a classic one keeps its messages on one node, and a message
 * sent transient (delivery mode 1), which a quorum queue keeps on disk on every member, would be
 * lost if that node restarted while it waited there. Plan judges the replace on this queue, and
 * apply declares it.
 */
export function holdingQueueFor(after: Queue, limits: QueueLimits, before?: Queue): Queue {
  const hold = holdingQueue(after.name, after.type === "quorum" || before?.type === "quorum" ? "quorum" : "classic");
  const dlx = limits.deadLetterExchange;
  if (dlx === undefined) return hold;
  const key = limits.deadLetterRoutingKey;
  return { ...hold, arguments: { "x-dead-letter-exchange": dlx, ...(key !== undefined ? { "x-dead-letter-routing-key": key } : {}) } };
}

/** "60 s", "10 min": a duration in milliseconds, for people. */
export function duration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120_000) return `${+(ms / 1000).toFixed(1)} s`;
  if (ms < 7_200_000) return `${+(ms / 60_000).toFixed(1)} min`;
  if (ms < 172_800_000) return `${+(ms / 3_600_000).toFixed(1)} h`;
  return `${+(ms / 86_400_000).toFixed(1)} days`;
}


/** What the queue does with `n` messages over its limit ("some" when the number is unknown). */
export function overflowEffect(l: QueueLimits, n: number | undefined): string {
  const what = n === undefined ? "some" : String(n);
  const oldest = n === undefined ? "the oldest messages" : `the oldest ${n}`;
  const dlx = l.deadLetterExchange ? ` to exchange "${l.deadLetterExchange}"` : "";
  switch (l.overflow) {
    case "drop-head":
      return l.deadLetterExchange ? `drop-head would dead-letter ${oldest}${dlx}` : `drop-head would discard ${oldest}`;
    case "reject-publish":
      return `with x-overflow reject-publish the queue would refuse ${what} of them`;
    case "reject-publish-dlx":
      return `with x-overflow reject-publish-dlx the queue would refuse ${what} of them and dead-letter them${dlx}`;
  }
}

const DRAIN = "let the workers drain the queue first";

/** RabbitMQ's default frame_max: a message's properties and headers, one frame, take no more. */
const HEADER_FRAME_MAX = 131_072;

export function replaceRisks(c: ReplaceCase): ReplaceRisk[] {
  const risks: ReplaceRisk[] = [];
  const { held } = c;
  const total = held.ready + held.unacked;
  // Without a count of what consumers hold, `total` is the least the queue holds, and said so.
  const counted = (n: number) => (held.unackedUnknown ? `${n} or more messages` : plural(n, "message"));
  const after = queueLimits(c.after, c.policies, c.operatorPolicies);
  const before = queueLimits(c.before, c.policies, c.operatorPolicies);

  if (c.deletesQueue) {
    if (held.consumers > 0) {
      const unacked = held.unackedUnknown
        ? ", holding messages unacknowledged (how many is not known: the broker's statistics, their only count, did not catch up within 15 s)"
        : held.unacked > 0
          ? `, holding ${plural(held.unacked, "unacknowledged message")}`
          : "";
      // A quorum queue counts every basic.get whose message is not acknowledged yet as a consumer
      // of its own, with no consumer tag (measured on 3.10.8 and 4.3.6: a client holding 5
      // fetched messages made `consumers` 5 in the statistics and in a passive declare, and no
      // consumer is listed): said, so that a user who finds no worker looks for that client too.
      const quorum = c.before.type === "quorum";
      const asCounted = quorum ? ` (as the quorum queue counts them: a client that fetched messages with basic.get and has not acknowledged them counts as one consumer for each)` : "";
      risks.push({
        rule: "consumers",
        reason: `${plural(held.consumers, "consumer")} ${held.consumers === 1 ? "is" : "are"} attached${asCounted}${unacked}: a consumer takes messages while they are moved, and what it has not acknowledged is lost with the old queue`,
        advice: quorum
          ? `stop the workers that consume from ${c.after.name} first, and let any client that fetched messages from it acknowledge them or close its channel`
          : `stop the workers that consume from ${c.after.name} first`,
      });
    } else if (held.unacked > 0) {
      // basic.get without ack holds messages with no consumer attached; a delete, even if-empty
      // and if-unused, takes them with the queue (measured on 3.10).
      risks.push({
        rule: "unacked",
        reason: `${plural(held.unacked, "message")} ${held.unacked === 1 ? "is" : "are"} fetched but not acknowledged: ${held.unacked === 1 ? "it is" : "they are"} lost with the old queue (${FETCHED_WITHOUT_CONSUMER})`,
        advice: `${letGoOf(held.unacked === 1 ? "it" : "them")}, then run topo apply again: the replace moves ${held.unacked === 1 ? "it" : "them"} with the rest of ${c.after.name}`,
      });
    }
    risks.push(...heldApart(held, c.before.name));
    if (c.before.type === "stream") {
      // basic.get on a stream closes the whole connection (540 NOT_IMPLEMENTED), a passive
      // declare counts 0 messages whatever it holds, and an if-empty delete removes it anyway
      // (measured on 3.10): topo can neither move its messages nor make sure there are none.
      const holding = total > 0 ? ` holding ${counted(total)} (the statistics' count)` : "";
      risks.push({
        rule: "stream",
        reason: `it is a stream${holding}: topo cannot move a stream's messages, and cannot make sure it holds none`,
        advice: `only --allow-data-loss replaces a stream, deleting it with its messages`,
      });
    }
    if (after.maxLength && total > after.maxLength.value) {
      const l = after.maxLength;
      risks.push({
        rule: "x-max-length",
        reason: `${l.from} ${l.value} is below the ${counted(total)} it holds: ${overflowEffect(after, total - l.value)}`,
        advice: `raise ${l.from} to at least ${total}, or ${DRAIN} (below ${l.value})`,
      });
    }
    const intoStream = c.after.type === "stream" && c.before.type !== "stream";
    if (intoStream && after.maxLengthBytes && total > 0) {
      // A stream's max-length-bytes counts what it stores: each message with its properties and
      // headers, in whole segments, while the statistics count bodies only (message_bytes), and
      // retention deletes the oldest segments past the limit rather than refuse a publish.
      // Measured on 3.10.8: 1,000 messages of 100-byte bodies (100,000 bytes by the statistics)
      // moved into a stream with x-max-length-bytes 100000 and 2000-byte segments: it kept 450.
      // Properties and headers travel in one frame, so at most frame_max a message.
      const l = after.maxLengthBytes;
      const most = held.bytes === undefined ? undefined : held.bytes + total * HEADER_FRAME_MAX;
      if (most === undefined || most > l.value) {
        const bodies = held.bytes === undefined ? "the broker's statistics do not count their bytes yet" : `their bodies are ${held.bytes} bytes by the broker's statistics`;
        risks.push({
          rule: "x-max-length-bytes",
          reason: `${l.from} ${l.value} of the stream may not keep the ${counted(total)} it holds: ${bodies}, and a stream counts each message with its properties and headers (up to ${HEADER_FRAME_MAX} bytes more a message at RabbitMQ's default frame_max), which no statistic counts; past the limit its retention deletes the oldest segments, with the moved messages in them`,
          advice: most === undefined ? `raise ${l.from}, or ${DRAIN}` : `raise ${l.from} to at least ${most}, or ${DRAIN}`,
        });
      }
    } else if (after.maxLengthBytes && held.bytes !== undefined && held.bytes > after.maxLengthBytes.value) {
      const l = after.maxLengthBytes;
      risks.push({
        rule: "x-max-length-bytes",
        reason: `${l.from} ${l.value} is below the ${held.bytes} bytes it holds: ${overflowEffect(after, undefined)}`,
        advice: `raise ${l.from} to at least ${held.bytes}, or ${DRAIN}`,
      });
    } else if (after.maxLengthBytes && held.bytes === undefined && total > 0 && c.before.type !== "stream") {
      // The statistics (emitted every 5 s) have not counted these messages yet.
      const l = after.maxLengthBytes;
      risks.push({
        rule: "x-max-length-bytes",
        reason: `${l.from} ${l.value} applies, and the broker's statistics do not count the bytes of the ${counted(total)} it holds now`,
        advice: "run topo apply again once the queue's count has not changed for 5 s (the statistics count bytes every 5 s), or let the workers drain it",
      });
    }
    // A moved message enters the new queue afresh, so its TTL counts from the move: a TTL every
    // message it holds already had is no risk, a new or shorter one puts a deadline on them. Only
    // the queue's own x-message-ttl is surely one they had: RabbitMQ sets a message's expiry as
    // it enqueues it, so a policy's message-ttl set later never expired what the queue held then
    // (measured on 3.10.8: 5 messages kept 7 s under a policy's 1000 ms, then expired once a
    // replace had moved them).
    const ttl = after.messageTtl;
    const ownTtl = asNumber(c.before.arguments["x-message-ttl"]);
    if (ttl && total > 0 && (ownTtl === undefined || ttl.value < ownTtl)) {
      const was = !before.messageTtl
        ? "is new"
        : ttl.value < before.messageTtl.value
          ? `is shorter than the ${before.messageTtl.value} ms it has now`
          : `counts from the move: ${before.messageTtl.from === ttl.from ? "it applies to the queue now" : `${before.messageTtl.from} ${before.messageTtl.value} applies to the queue now`}, but RabbitMQ sets a message's expiry as it enqueues it, so what the queue held before the policy was set has none, and topo cannot tell which messages those are`;
      const dlx = after.deadLetterExchange ? ` (dead-lettered to exchange "${after.deadLetterExchange}")` : "";
      const fate = ttl.value === 0 ? `would expire${dlx} as they are moved back, with no consumer to take them` : `expire${dlx} unless consumed within ${duration(ttl.value)} of the replace`;
      risks.push({ rule: "x-message-ttl", reason: `${ttl.from} ${ttl.value} ${was}: the ${counted(total)} it holds ${fate}`, advice: DRAIN });
    }
    // A stream's max-age counts from when a message was written into it, so a moved message's
    // age starts at the move (its timestamp property and its time in the old queue do not
    // count), and its retention deletes every segment older than that as soon as a later write
    // starts a new segment, read or not (the segment being written is kept). Measured on 3.10.8:
    // 1,000 messages moved into a stream with x-max-age 2s and 2000-byte segments were all
    // readable from "first" after the move, and still 5 s later; 600 publishes after that, none
    // were. A TTL the old queue had already, no longer than the max-age, was the shorter deadline.
    const age = after.maxAge;
    if (intoStream && age && total > 0 && !(ownTtl !== undefined && ownTtl <= age.value)) {
      risks.push({
        rule: "x-max-age",
        reason: `${age.from} ${age.shown ?? `${age.value} ms`} of the stream: the ${counted(total)} it holds are written into it as they are moved back, and its retention deletes them once they are older than ${duration(age.value)} (counted from the move) and a later publish starts a new segment: a consumer that has not read them within ${duration(age.value)} of the replace never gets them`,
        advice: DRAIN,
      });
    }
    const exp = after.expires;
    if (exp && total > 0 && (!before.expires || exp.value < before.expires.value)) {
      const was = before.expires ? `is shorter than the ${before.expires.value} ms it has now` : "is new";
      risks.push({
        rule: "x-expires",
        reason: `${exp.from} ${exp.value} ${was}: the queue is deleted with the ${counted(total)} it holds if no worker uses it within ${duration(exp.value)} of the replace`,
        advice: DRAIN,
      });
    }
  }

  // The holding queue has no arguments, but a policy can still reach it.
  const hold = queueLimits(c.hold, c.policies, c.operatorPolicies);
  const holdAdvice = `change the policy's pattern so that it does not match ${c.hold.name}`;
  if (total === 0) risks.push(...holdLimitRisks(c, "none"));
  if (total > 0) {
    // The holding queue takes what the queue holds and every message published while it is
    // bound, with the workers stopped (finishing a replace whose queue is new only empties it):
    // a limit below the queue's own drops messages the queue would have kept (measured: 500
    // held, a cap of 700 on topo.hold.* alone and a publisher running, drop-head discarded
    // confirmed messages during the move).
    if (hold.maxLength && total > hold.maxLength.value) {
      risks.push({ rule: "hold-policy", reason: `${hold.maxLength.from} ${hold.maxLength.value} applies to ${c.hold.name}, which would hold the ${counted(total)}: ${overflowEffect(hold, total - hold.maxLength.value)}`, advice: holdAdvice });
    } else if (c.deletesQueue && tighter(hold.maxLength, before.maxLength)) {
      risks.push({ rule: "hold-policy", reason: `${hold.maxLength.from} ${hold.maxLength.value} applies to ${c.hold.name} and is below the limit of ${c.before.name} (${ownLimit(before.maxLength)}): it takes the ${counted(total)} the queue holds and every message published during the replace, and once they pass ${hold.maxLength.value} ${overflowEffect(hold, undefined)}`, advice: holdAdvice });
    }
    if (hold.maxLengthBytes && held.bytes !== undefined && held.bytes > hold.maxLengthBytes.value) {
      risks.push({ rule: "hold-policy", reason: `${hold.maxLengthBytes.from} ${hold.maxLengthBytes.value} applies to ${c.hold.name}, which would hold ${held.bytes} bytes: ${overflowEffect(hold, undefined)}`, advice: holdAdvice });
    } else if (c.deletesQueue && tighter(hold.maxLengthBytes, before.maxLengthBytes)) {
      risks.push({ rule: "hold-policy", reason: `${hold.maxLengthBytes.from} ${hold.maxLengthBytes.value} applies to ${c.hold.name} and is below the limit of ${c.before.name} (${ownLimit(before.maxLengthBytes)}): it takes the ${counted(total)} the queue holds and every message published during the replace, and once their bytes pass ${hold.maxLengthBytes.value} ${overflowEffect(hold, undefined)}`, advice: holdAdvice });
    }
    if (hold.messageTtl) {
      risks.push({ rule: "hold-policy", reason: `${hold.messageTtl.from} ${hold.messageTtl.value} applies to ${c.hold.name}: the ${counted(total)} waiting there expire after ${duration(hold.messageTtl.value)}`, advice: holdAdvice });
    }
    if (hold.expires) {
      risks.push({ rule: "hold-policy", reason: `${hold.expires.from} ${hold.expires.value} applies to ${c.hold.name}: it is deleted with the messages waiting there after ${duration(hold.expires.value)} unused`, advice: holdAdvice });
    }
  }
  return risks;
}

/** A limit of the holding queue below the queue's own (or where the queue has none). */
function tighter(h: Limit | undefined, q: Limit | undefined): h is Limit {
  return h !== undefined && (q === undefined || h.value < q.value);
}

function ownLimit(l: Limit | undefined): string {
  return l ? `${l.from} ${l.value}` : "none";
}

/**
 * The holding queue's limits that are tighter than the queue's own, whatever the queue holds: an
 * empty queue still has its publishers, and every message published during the replace waits in
 * the holding queue, where such a limit drops, expires or deletes what the queue would have kept
 * (measured: a queue empty when apply counted it, a policy's max-length 5 on topo.hold.* alone,
 * 1,500 messages/s published during the replace: 94 to 162 of 4,000 confirmed messages gone, and
 * apply said the broker matched the file). `held`: "none" when the queue holds nothing, "unknown"
 * when the broker has not counted it yet (plan judges the rest once it has).
 */
export function holdLimitRisks(c: Omit<ReplaceCase, "held">, held: "none" | "unknown"): ReplaceRisk[] {
  if (!c.deletesQueue) return [];
  const hold = queueLimits(c.hold, c.policies, c.operatorPolicies);
  const before = queueLimits(c.before, c.policies, c.operatorPolicies);
  const advice = `change the policy's pattern so that it does not match ${c.hold.name}`;
  const during = `${held === "none" ? "the queue holds no message now, but " : ""}${c.hold.name} takes every message published during the replace`;
  const risks: ReplaceRisk[] = [];
  const at = (l: Limit, what: string, ofQueue: Limit | undefined, then: string) =>
    risks.push({ rule: "hold-policy", reason: `${l.from} ${l.value} applies to ${c.hold.name} and is below the ${what} of ${c.before.name} (${ownLimit(ofQueue)}): ${during}, and ${then}`, advice });
  if (tighter(hold.maxLength, before.maxLength)) at(hold.maxLength, "limit", before.maxLength, `once they pass ${hold.maxLength.value} ${overflowEffect(hold, undefined)}`);
  if (tighter(hold.maxLengthBytes, before.maxLengthBytes)) at(hold.maxLengthBytes, "limit", before.maxLengthBytes, `once their bytes pass ${hold.maxLengthBytes.value} ${overflowEffect(hold, undefined)}`);
  if (tighter(hold.messageTtl, before.messageTtl)) at(hold.messageTtl, "message TTL", before.messageTtl, `they expire there after ${duration(hold.messageTtl.value)}`);
  if (tighter(hold.expires, before.expires)) at(hold.expires, "expiry", before.expires, `it is deleted with them after ${duration(hold.expires.value)} unused`);
  return risks;
}

/**
 * What a quorum queue holds neither ready nor unacknowledged: a replace cannot move it, and the old
 * queue's delete drops it. At-least-once dead letters wait there for their target (a queue bound
 * to the dead-letter exchange, with room): basic.get does not reach them, and an if-empty delete
 * counts only ready messages (measured on 4.0.5: a "lossless" replace deleted 7 such messages,
 * said it moved 0 back and that the broker matched). On RabbitMQ 4.3, returned messages the queue
 * delays (x-delayed-retry-type) wait there too until their delay ends; only its statistics tell
 * the two apart (messages_delayed), so without them one risk names both.
 */
function heldApart(held: HeldMessages, queue: string): ReplaceRisk[] {
  const all = held.deadLetters ?? 0;
  if (all === 0) return [];
  const them = (n: number) => (n === 1 ? "it" : "them");
  const wait = (n: number) => (n === 1 ? "waits" : "wait");
  const unreachable = (n: number) => `a replace cannot move ${them(n)}, and deleting the old queue drops ${them(n)}`;
  if (held.delayedRetries === undefined) {
    return [
      {
        rule: "dead-letters-waiting",
        reason: `${plural(all, "message")} ${wait(all)} in it neither ready nor unacknowledged (by its totals: dead letters waiting for the dead-letter target to take ${them(all)}, or on RabbitMQ 4.3 returned messages whose retry it delays; the broker keeps no statistics to tell which): ${unreachable(all)}`,
        advice: `let the dead-letter target take them and any delayed retry come due, until the management API counts in ${queue} no messages beside the ready and unacknowledged ones`,
      },
    ];
  }
  const risks: ReplaceRisk[] = [];
  const dead = all - held.delayedRetries;
  if (dead > 0) {
    risks.push({
      rule: "dead-letters-waiting",
      reason: `${plural(dead, "message")} it dead-lettered at least once ${wait(dead)} in it for the dead-letter target to take ${them(dead)} (the statistics' messages_dlx): ${unreachable(dead)}`,
      advice: `let the dead-letter target take them first (bind a queue that routes them, or make room in the full one), until the management API counts no messages_dlx in ${queue}`,
    });
  }
  const delayed = held.delayedRetries;
  if (delayed > 0) {
    risks.push({
      rule: "delayed-retries",
      reason: `${plural(delayed, "returned message")} ${wait(delayed)} in it for the retry delay RabbitMQ 4.3 gives ${them(delayed)} (x-delayed-retry-type; the statistics' messages_delayed) before ${delayed === 1 ? "it is" : "they are"} ready again: ${unreachable(delayed)}`,
      advice: `let the delay end (at most the queue's delayed-retry-max): the ${delayed === 1 ? "message is" : "messages are"} then ready, and the replace moves ${them(delayed)}; the management API counts no messages_delayed in ${queue} then`,
    });
  }
  return risks;
}
