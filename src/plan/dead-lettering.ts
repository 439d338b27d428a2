// Pure: how RabbitMQ dead-letters the file's quorum queues, against what the file asks for.
//
// A quorum queue's x-dead-letter-strategy is accepted whatever goes with it, and RabbitMQ then
// decides, each time it (re)starts the queue, what it really does (rabbit_quorum_queue's
// dead-letter handler; the broker only logs it):
// - without a dead-letter exchange, dead-lettering is off: a message rejected, over its delivery
//   limit, expired or pushed out by a length limit is dropped;
// - at-least-once needs overflow reject-publish; with drop-head (the default) or anything else it
//   falls back to at-most-once, and a message dead-lettered while its target cannot take it is
//   dropped.
// Which values count: the policy's overflow and dead-letter-strategy over the queue's arguments,
// the queue's x-dead-letter-exchange over the policy's; an operator policy may set overflow alone
// (RabbitMQ 3.12.7 and later), and its value wins over both (policy-overflow.ts). Measured on
// 3.10.8 and 4.3.6: five messages rejected from a quorum queue declared with
// x-dead-letter-exchange amq.fanout (nothing bound to it) and at-least-once were gone without
// x-overflow (messages 0, messages_dlx 0), kept with x-overflow: reject-publish (messages_dlx 5),
// gone again with reject-publish under a policy's overflow drop-head, and gone with
// reject-publish and no dead-letter exchange. topo's file, the broker's listing and a worker's
// redeclare all agreed on arguments the broker did not honour: plan said "No changes".

import type { ActualCluster, Binding, DesiredCluster, Exchange, FilePath, Policy, Queue, QueueSpec } from "../model.js";
import { atLeast, DEFAULT_DELIVERY_LIMIT } from "./broker-rules.js";
import { policiesFor, policiesOnceApplied } from "./risk.js";
import { brokerMakes, topicMatches, topicMatchesSomeTail } from "./route.js";
import { keyOf } from "../core/keys.js";
import { pushTo } from "../core/collections.js";
import { names, quoted, shellWord, shown } from "../core/words.js";
import { HOLD_PREFIX } from "../core/naming.js";
import { asString } from "../core/values.js";
import { operatorPoliciesApplied, pairings } from "./policy-limits.js";

export interface DeadLetterReport {
  /** A policy that is not the file's makes the broker dead-letter otherwise: drift topo cannot repair. */
  degraded: string[];
  /** The file's own arguments contradict themselves, or a policy may apply: topo cannot tell. */
  warnings: string[];
}

const STRATEGY = "x-dead-letter-strategy";

/** The vhost's policies once apply has run (the file's as it wants them), and the queues it has. */
interface Vhost {
  policies: Policy[];
  exists: Set<string>;
}

/** What the broker does with a queue's dead letters. */
type Mode = "at-least-once" | "at-most-once" | "off";

/** One way the broker could resolve a queue's settings: under one policy, or none. */
interface Outcome {
  mode: Mode;
  /** Why it is not what the file asks: the setting that decides, as the message says it. */
  cause: string;
  /** The policy whose value decides, when one does. */
  policy?: Policy;
  /** The deciding policy is an operator policy. */
  operator?: boolean;
}

/** How the broker resolves the queue's arguments under `p` and the operator policy `o` (or none). */
function outcome(args: Readonly<Record<string, unknown>>, p: Policy | undefined, o?: Policy): Outcome {
  const byPolicy = (key: string) => (p ? asString(p.definition[key]) : undefined);
  const byOperator = o ? asString(o.definition.overflow) : undefined;
  const strategy = byPolicy("dead-letter-strategy") ?? asString(args[STRATEGY]);
  const dlx = asString(args["x-dead-letter-exchange"]) ?? byPolicy("dead-letter-exchange");
  const overflow = byOperator ?? byPolicy("overflow") ?? asString(args["x-overflow"]);
  if (dlx === undefined) {
    return { mode: "off", cause: p && byPolicy("dead-letter-strategy") !== undefined ? `policy ${quoted(p.name)} sets dead-letter-strategy but neither it nor the file gives a dead-letter exchange` : "the file gives no x-dead-letter-exchange" };
  }
  if (strategy !== "at-least-once") {
    const set = byPolicy("dead-letter-strategy");
    return p && set !== undefined
      ? { mode: "at-most-once", cause: `policy ${quoted(p.name)} sets dead-letter-strategy ${quoted(set)}, which RabbitMQ applies over the queue's own`, policy: p }
      : { mode: "at-most-once", cause: "the file asks for it" };
  }
  if (overflow === "reject-publish") return { mode: "at-least-once", cause: "" };
  if (o && byOperator !== undefined) {
    return { mode: "at-most-once", cause: `operator policy ${quoted(o.name)} sets overflow ${quoted(byOperator)}, which RabbitMQ applies over the queue's own x-overflow and its policy's`, policy: o, operator: true };
  }
  if (byPolicy("overflow") !== undefined) {
    return { mode: "at-most-once", cause: `policy ${quoted((p as Policy).name)} sets overflow ${quoted(overflow as string)}, which RabbitMQ applies over the queue's own x-overflow`, policy: p };
  }
  return {
    mode: "at-most-once",
    cause: overflow === undefined ? "the file gives no x-overflow, and quorum queues default to drop-head" : `the file gives x-overflow: ${quoted(overflow)}`,
  };
}

/** How the warnings say why a queue keeps its dead letters (keepsDeadLetters). */
export const AT_LEAST_ONCE = "quorum, x-dead-letter-strategy at-least-once";

/**
 * The queue keeps what it dead-letters while its dead-letter exchange is missing: a quorum queue
 * whose at-least-once the broker honours under whichever of `policies` applies to it (every one
 * that may). RabbitMQ then holds those messages in the queue and publishes them again later, not
 * dropping them. Measured on 3.10.8 and 4.3.6: 20 messages expired (x-message-ttl 1) from such a
 * queue whose dead-letter exchange did not exist were all held (messages_dlx 20), and all reached
 * the queue bound to that exchange once it was declared, 174 s later, at the broker's next retry.
 * RabbitMQ has dead-lettered at least once since 3.10; before, every queue did at most once (and
 * a version topo cannot read counts as older).
 */
export function keepsDeadLetters(queue: Queue, policies: readonly Policy[], broker: Broker): boolean {
  if (queue.type !== "quorum" || !atLeast(broker.version, 3, 10)) return false;
  // Operator policies it could not read may set overflow drop-head: not surely kept.
  if (broker.operatorPoliciesUnreadable) return false;
  return pairings(policiesFor(queue, policies), policiesFor(queue, broker.operatorPolicies ?? [])).every((s) => outcome(queue.arguments, s.policy, s.operator).mode === "at-least-once");
}

/** What keepsDeadLetters needs of the broker: its version, and its operator policies, or why they could not be read. */
export type Broker = Pick<ActualCluster, "version" | "operatorPolicies" | "operatorPoliciesUnreadable">;

/** What the broker does with `n` queues' dead letters, their subject included. */
function does(mode: Mode, n: number): string {
  const one = n === 1;
  return mode === "off"
    ? `${one ? "the queue does" : "they do"} not dead-letter at all: RabbitMQ ignores x-dead-letter-strategy without a dead-letter exchange, and drops what it would dead-letter: a message a consumer rejects, one that expires or that a length limit pushes out, and one returned more often than x-delivery-limit allows`
    : `${one ? "the queue dead-letters" : "they dead-letter"} at most once: a message dead-lettered while its target cannot take it (no queue bound, or one over its own limit) is dropped, not kept until it can`;
}

/** `existing`: some of the queues exist, and a change of their arguments replaces them. */
function fixOf(mode: Mode, o: Outcome, vhost: string, existing: boolean): string {
  if (o.policy) {
    const kind = o.operator ? "operator policy" : "policy";
    return `change ${kind} ${quoted(o.policy.name)} (rabbitmqctl ${o.operator ? "list_operator_policies" : "list_policies"} -p ${shellWord(vhost)}), or write x-dead-letter-strategy: at-most-once in the file, so that it says what the broker does`;
  }
  const replaces = existing ? "; apply --allow-destructive then replaces the queues that exist, keeping their messages" : "";
  return mode === "off"
    ? `add x-dead-letter-exchange beside it ("" is the default exchange), or drop x-dead-letter-strategy${replaces ? ` (${replaces.slice(2)})` : ""}`
    : `add x-overflow: reject-publish beside it (a full queue then refuses publishes instead of dropping its oldest message${replaces}), or write x-dead-letter-strategy: at-most-once so that the file says what the broker does`;
}

/**
 * The file's queues whose dead letters go nowhere (below), and its quorum queues whose
 * x-dead-letter-strategy at-least-once the broker does not honour, or whose strategy it ignores
 * for want of a dead-letter exchange. `owns`: the policies that are topo's (the file's are taken
 * as it wants them); `placeOf`: FILE:LINE:COL of a key of the file.
 */
export function deadLettering(desired: DesiredCluster, actual: ActualCluster, owns: (p: Policy) => boolean, placeOf: (path: FilePath) => string): DeadLetterReport {
  // The vhost's policies and queues: worked out once, by the first check that needs them (a file
  // without quorum queues never does).
  let known: Vhost | undefined;
  const vhostOf = () => (known ??= { policies: policiesOnceApplied(desired, actual, owns), exists: new Set(actual.resources.flatMap((r) => (r.kind === "queue" ? [r.name] : []))) });
  // The file's queues that dead-letter (x-dead-letter-exchange, "" the default exchange): most files have none.
  const sending = desired.queues.filter((s) => asString(s.queue.arguments["x-dead-letter-exchange"]) !== undefined);
  const out: DeadLetterReport = {
    degraded: [],
    warnings: [...nowhere(desired, actual, sending, vhostOf, placeOf), ...loopsBack(desired, actual, sending, vhostOf, placeOf), ...cyclesThrough(desired, actual, sending, vhostOf, placeOf), ...limitedByDefault(desired, actual, vhostOf, placeOf)],
  };
  const asking = desired.queues.filter((s) => s.queue.type === "quorum" && asString(s.queue.arguments[STRATEGY]) !== undefined);
  if (!asking.length) return out;
  const { policies, exists } = vhostOf();
  const operatorsOf = operatorPoliciesApplied(actual);
  const found = new Map<string, { sure: boolean; place: string; setting: string; outcome: Outcome; also: string; existing: boolean; queues: string[] }>();
  const vhost = desired.target.amqp.vhost;
  for (const spec of asking) {
    const { queue } = spec;
    const asked = asString(queue.arguments[STRATEGY]) as string;
    // The broker names the policy it applies to an existing queue: its word settles a pattern
    // topo cannot read or a tie of priorities (as plan/policy-limits.ts).
    const reported = exists.has(queue.name) ? actual.queueFacts[queue.name]?.policy : undefined;
    const named = reported === undefined ? undefined : policies.find((p) => p.name === reported);
    const candidates = named ? [{ p: named, unread: false }] : policiesFor(queue, policies);
    const scenarios = pairings(candidates, operatorsOf(queue));
    const wrong = scenarios.flatMap((s) => {
      const o = outcome(queue.arguments, s.policy, s.operator);
      return o.mode === "off" || (asked === "at-least-once" && o.mode !== "at-least-once") ? [{ o, unsure: s.unsure }] : [];
    });
    if (!wrong.length) continue;
    const sure = wrong.length === scenarios.length;
    const first = (wrong[0] as { o: Outcome }).o;
    const also = sure ? "" : `${wrong.find((w) => w.unsure)?.unsure ?? "topo cannot tell which policy RabbitMQ applies"}, so topo cannot tell whether it does`;
    const place = placeIn(spec, placeOf);
    const key = JSON.stringify([place, sure, first.mode, first.cause]);
    const entry = found.get(key) ?? { sure, place, setting: `${STRATEGY}: ${quoted(asked)}`, outcome: first, also, existing: false, queues: [] };
    entry.queues.push(queue.name);
    entry.existing ||= exists.has(queue.name);
    found.set(key, entry);
  }
  for (const f of found.values()) {
    const n = f.queues.length;
    const which = `${n === 1 ? "queue" : "queues"} ${names(f.queues)}`;
    const line = `${f.place}: ${f.setting} (${which}): ${f.sure ? "" : "if it applies, "}${f.outcome.cause}, so ${does(f.outcome.mode, n)}${f.also ? `; ${f.also}` : ""}; fix: ${fixOf(f.outcome.mode, f.outcome, vhost, f.existing)}`;
    // A policy that is not the file's decides for certain: drift, as a policy's limit is.
    if (f.sure && f.outcome.policy && (f.outcome.operator || !owns(f.outcome.policy))) out.degraded.push(line);
    else out.warnings.push(line);
  }
  return out;
}

/** Where the file writes one of the queue's arguments: its defaults or its service. */
function placeIn(spec: QueueSpec, placeOf: (path: FilePath) => string, argument = STRATEGY): string {
  const path = spec.origin?.settings[`arguments.${argument}`];
  return path ? placeOf(path) : `queue ${spec.queue.name}`;
}

/**
 * The file's queues whose dead letters go nowhere: to an exchange that neither the vhost nor the
 * file has, or through the default exchange to a queue that neither has. RabbitMQ accepts such a
 * queue and drops every message it dead-letters, saying nothing (measured on 3.10.8: a classic and a
 * quorum queue dead-lettering to a missing exchange, and a classic queue dead-lettering through the
 * default exchange to a missing queue, each dropped the message rejected from it, and the log said
 * nothing of it). An exchange or queue apply deletes is plan/diff.ts's (routesIntoDeleted).
 * So does the default exchange without x-dead-letter-routing-key (nor a policy's
 * dead-letter-routing-key): each message goes with its own routing key, to the queue of that name,
 * and a task's key (mplogin.async.register) names none. Measured on 3.10.8, a classic and a quorum
 * queue: a message rejected with key mplogin.async.register was gone, one whose key was a queue's
 * name went to that queue.
 */
function nowhere(desired: DesiredCluster, actual: ActualCluster, sending: readonly QueueSpec[], vhostOf: () => Vhost, placeOf: (path: FilePath) => string): string[] {
  if (!sending.length) return [];
  const exchanges = new Set<string>();
  const queues = new Set<string>();
  for (const r of [...desired.resources, ...actual.resources]) {
    if (r.kind === "exchange") exchanges.add(r.name);
    else if (r.kind === "queue") queues.add(r.name);
  }
  const vhost = desired.target.amqp.vhost;
  let routes: Routing | undefined;
  const routing = () => (routes ??= routingOf(desired, actual));
  const found = new Map<string, { place: string; setting: string; where: string; dropped: string; fix: string; keeps: boolean; queues: string[] }>();
  for (const spec of sending) {
    const args = spec.queue.arguments;
    const exchange = asString(args["x-dead-letter-exchange"]);
    const key = asString(args["x-dead-letter-routing-key"]);
    // `dropped`: which of the messages the queue dead-letters are lost (all, unless said).
    let f: { argument: string; value: string; where: string; dropped?: string; fix: string } | undefined;
    if (exchange === "" && key === undefined && !policiesFor(spec.queue, vhostOf().policies).some(({ p }) => "dead-letter-routing-key" in p.definition)) {
      f = {
        argument: "x-dead-letter-exchange",
        value: exchange,
        where: "through the default exchange with each message's own routing key, which reaches only a queue of that name",
        dropped: `whose key names no queue: every task (a key such as ${spec.service}.${spec.traffic}.<task>)`,
        fix: "add x-dead-letter-routing-key beside it, naming the queue to keep dead letters in (one of the file's, or one the vhost has), or point x-dead-letter-exchange at an exchange that routes them",
      };
    } else if (exchange === "" && key !== undefined && !queues.has(key)) {
      f = {
        argument: "x-dead-letter-routing-key",
        value: key,
        where: `through the default exchange to queue ${quoted(key)}, which neither vhost ${quoted(vhost)} nor the file has`,
        fix: "add the service whose queue that is, or point x-dead-letter-routing-key at a queue that exists",
      };
    } else if (exchange !== undefined && exchange !== "" && !exchanges.has(exchange) && !brokerMakes(exchange)) {
      f = {
        argument: "x-dead-letter-exchange",
        value: exchange,
        where: `to exchange ${quoted(exchange)}, which neither vhost ${quoted(vhost)} nor the file has`,
        // RabbitMQ refuses to declare a name that starts with amq. (403 ACCESS_REFUSED): amq.default
        // is how permissions name the default exchange, which a dead-letter exchange writes "".
        fix: exchange.startsWith("amq.")
          ? `RabbitMQ reserves names that start with amq., so it cannot be created: point x-dead-letter-exchange at one that exists${exchange === "amq.default" ? ' (the default exchange is written "", with x-dead-letter-routing-key naming the queue)' : ""}`
          : `create it before anything is dead-lettered (rabbitmqadmin -V ${shellWord(vhost)} declare exchange name=${shellWord(exchange)} type=fanout), or point x-dead-letter-exchange at one that exists`,
      };
    }
    if (!f && exchange !== undefined && exchange !== "") f = routesNone(spec, ownKeys(spec), routing, vhostOf());
    if (!f) continue;
    const place = placeIn(spec, placeOf, f.argument);
    const setting = `${f.argument}: ${quoted(f.value)}`;
    // A quorum queue that dead-letters at least once keeps what finds no route (measured, above).
    const keeps = keepsDeadLetters(spec.queue, vhostOf().policies, actual);
    const at = `${place}\n${setting}\n${keeps}`;
    const entry = found.get(at) ?? { place, setting, where: f.where, dropped: f.dropped ?? "", fix: f.fix, keeps, queues: [] };
    entry.queues.push(spec.queue.name);
    found.set(at, entry);
  }
  return [...found.values()].map((f) => {
    const one = f.queues.length === 1;
    const what = `every message ${one ? "it dead-letters" : "they dead-letter"}${f.dropped ? ` ${f.dropped}` : ""}`;
    const outcome = f.keeps
      ? `so RabbitMQ keeps ${what} in the ${one ? "queue" : "queues"} instead (${AT_LEAST_ONCE}): none of those is delivered, and they pile up there, counted as messages_dlx, until a route appears`
      : `so RabbitMQ drops ${what}, without a word`;
    return `${f.place}: ${f.setting} (${one ? "queue" : "queues"} ${names(f.queues)}): ${one ? "it dead-letters" : "they dead-letter"} ${f.where}, ${outcome}; fix: ${f.fix}`;
  });
}

/**
 * The file's queues whose dead letters route back into the queue itself, and nowhere else: through
 * the default exchange with x-dead-letter-routing-key naming the queue, or to an exchange whose
 * matching bindings all lead to it (the service's own exchange without x-dead-letter-routing-key,
 * say). RabbitMQ drops a message that comes back to a queue it was dead-lettered from unless a
 * client rejected it on the way (a dead-letter cycle), without a word: only what a worker rejects
 * (requeue false) comes back; what expires, what a length limit pushes out and what goes over a
 * quorum queue's delivery limit (the file's, or 20 on RabbitMQ 4 where the file sets none) is gone, although
 * the queue has a dead-letter exchange. Measured: a message expiring in a queue that dead-letters
 * through "" to its own name was gone (3.10.8, 4.3.6), a rejected one came back; a quorum queue
 * with x-delivery-limit 1 dead-lettering to its service's topic exchange, bound to it with
 * <service>.async.#, delivered a message twice and then it was gone (4.3.6), and plan said
 * nothing, where without the dead-letter exchange it warns of the delivery limit. A quorum queue
 * that dead-letters at least once (keepsDeadLetters) keeps those messages instead, undelivered:
 * 10 that expired in one, dead-lettering to its own topic exchange, stayed in it as messages_dlx
 * for the 400 s measured (3.10.8 and 4.3.6); the warning says so.
 */
function loopsBack(desired: DesiredCluster, actual: ActualCluster, sending: readonly QueueSpec[], vhostOf: () => Vhost, placeOf: (path: FilePath) => string): string[] {
  if (!sending.length) return [];
  let routes: Routing | undefined;
  const found = new Map<string, { place: string; setting: string; where: string; limit: string | undefined; keeps: boolean; queues: string[] }>();
  for (const spec of sending) {
    const { queue } = spec;
    const hop = hopOf(spec, ownKeys(spec), () => (routes ??= routingOf(desired, actual)), vhostOf());
    if (!hop || hop.to !== queue.name) continue;
    const where =
      hop.exchange === ""
        ? "through the default exchange to its own name"
        : `to exchange ${quoted(hop.exchange)} (${hop.type}), which routes ${hop.keys.key !== undefined ? `the key ${quoted(hop.keys.key)}` : "the messages' own routing keys"} back to the queue itself (${names([...new Set(hop.reached.map((b) => b.routingKey || '""'))])})`;
    const place = placeIn(spec, placeOf, hop.argument);
    const setting = settingOf(spec, hop.argument);
    const limit = deliveryLimitOf(queue, actual.version);
    const keeps = keepsDeadLetters(queue, vhostOf().policies, actual);
    const group = `${place}\n${setting}\n${where}\n${limit ?? ""}\n${keeps}`;
    const entry = found.get(group) ?? { place, setting, where, limit, keeps, queues: [] };
    entry.queues.push(queue.name);
    found.set(group, entry);
  }
  return [...found.values()].map((f) => {
    const one = f.queues.length === 1;
    const lost = f.limit ? `what expires, what a length limit pushes out and what goes over ${one ? "its" : "their"} delivery limit (${f.limit})` : "what expires and what a length limit pushes out";
    const fix = "fix: dead-letter to another queue (x-dead-letter-routing-key naming it, or an exchange bound to it)";
    const sends = `${f.place}: ${f.setting} (${one ? "queue" : "queues"} ${names(f.queues)}): ${one ? "it dead-letters" : "they dead-letter"} ${f.where}`;
    if (f.keeps) {
      return (
        `${sends}, and RabbitMQ delivers no message back to a queue it was dead-lettered from unless a client rejected it (a dead-letter cycle): ` +
        `only what a worker rejects (requeue false) comes back; ${lost} is kept in the ${one ? "queue" : "queues"} instead (${AT_LEAST_ONCE}), counted as messages_dlx, where it stays undelivered; ${fix}`
      );
    }
    return `${sends}, and RabbitMQ drops a message that comes back to a queue it was dead-lettered from unless a client rejected it (a dead-letter cycle), without a word: only what a worker rejects (requeue false) comes back; ${lost} is gone; ${fix}`;
  });
}

/**
 * Dead-letter cycles through more than one of the file's queues: a queue's dead letters go to a
 * second queue (and only there), whose own dead letters come back to the first, directly or through
 * others; and a queue that sends back to itself only the dead letters other queues send it. RabbitMQ
 * drops a dead-lettered message on its way into a queue it was dead-lettered from before, unless a
 * client rejected it somewhere since (rabbit_dead_letter:detect_cycles/3 in 3.10.8, mc:is_death_cycle/2
 * in 4.3.4: every death since the last one in that queue must be a rejection's for it to pass). The
 * retry pattern (a work queue that dead-letters to a retry queue whose x-message-ttl sends them back)
 * goes round as long as a worker rejects each message; one the work queue dead-letters because it
 * expired, a length limit pushed it out or it went over a delivery limit (RabbitMQ 4 gives a quorum
 * queue 20) is gone after one wait in the retry queue. Measured on 3.10.8: a message expiring in a
 * classic queue whose dead letters go through the default exchange to a second, whose own expire
 * back to the first, was gone from both, and plan said "No changes.". A quorum queue that
 * dead-letters at least once keeps, undelivered, a message whose dead-lettering it would close the
 * cycle with (measured below); the warning names such queues.
 * Followed only where every hop is certain (hopOf): one queue gets them, and topo can read the routing.
 */
function cyclesThrough(desired: DesiredCluster, actual: ActualCluster, sending: readonly QueueSpec[], vhostOf: () => Vhost, placeOf: (path: FilePath) => string): string[] {
  if (!sending.length) return [];
  const specs = new Map(desired.queues.map((s, i) => [s.queue.name, { spec: s, order: i }]));
  let routes: Routing | undefined;
  const routing = () => (routes ??= routingOf(desired, actual));
  // Each hop follows from the queue and the keys its dead letters carry: a state seen by an earlier
  // walk leads where that walk went, so every state is followed once (a chain of 10,000 queues,
  // each dead-lettering to the next, costs 10,000 hops, not 50 million).
  const done = new Set<string>();
  const cycles = new Map<string, { spec: QueueSpec; hop: Hop }[]>();
  for (const start of sending) {
    const path: { spec: QueueSpec; hop: Hop; state: string }[] = [];
    const onPath = new Map<string, number>();
    let spec = start;
    let keys = ownKeys(start);
    for (;;) {
      const state = stateOf(spec, keys);
      const at = onPath.get(state);
      if (at !== undefined) {
        const cycle = path.slice(at);
        // A queue that sends its own messages back to itself is loopsBack's; one that sends back
        // only what arrives with another queue's key is said here.
        const ownLoop = cycle.length === 1 && hopOf(spec, ownKeys(spec), routing, vhostOf())?.to === spec.queue.name;
        if (!ownLoop) {
          // Said once, from the queue the file writes first.
          let first = 0;
          cycle.forEach((c, i) => {
            if ((specs.get(c.spec.queue.name)?.order ?? 0) < (specs.get(cycle[first]?.spec.queue.name ?? "")?.order ?? 0)) first = i;
          });
          const turned = [...cycle.slice(first), ...cycle.slice(0, first)];
          cycles.set(turned.map((c) => c.spec.queue.name).join("\n"), turned);
        }
        break;
      }
      if (done.has(state)) break;
      onPath.set(state, path.length);
      const hop = hopOf(spec, keys, routing, vhostOf());
      const next = hop?.to === undefined ? undefined : specs.get(hop.to)?.spec;
      if (!hop || !next) break;
      path.push({ spec, hop, state });
      spec = next;
      keys = hop.keys;
    }
    for (const state of onPath.keys()) done.add(state);
  }
  return [...cycles.values()].map((cycle) => {
    const [{ spec, hop }] = cycle as [{ spec: QueueSpec; hop: Hop }];
    const along = cycle.map((c) => c.spec.queue.name);
    const round = [...(along.length > 6 ? [...along.slice(0, 5), `… (${along.length - 5} more)`] : along), spec.queue.name].join(" → ");
    const goes = cycle.length === 1 ? `what other queues dead-letter into it comes back to it (${hopWords(hop)})` : `its dead letters go to queue ${cycle[1]?.spec.queue.name} (${hopWords(hop)}), and come round to it again (${round})`;
    const limits = cycle.flatMap((c) => {
      const limit = deliveryLimitOf(c.spec.queue, actual.version);
      return limit ? [`${c.spec.queue.name}: ${limit}`] : [];
    });
    const them = cycle.length === 1 ? "it" : "each of them";
    // The queue whose dead letter would close the cycle keeps it where it dead-letters at least
    // once. Measured on 3.10.8 and 4.3.6 with two quorum queues each expiring into the other
    // through "", 10 messages published to the first: all 10 held in the second when it did
    // (messages_dlx 10, whatever the first did), none anywhere when it did not.
    const keepers = cycle.filter((c) => keepsDeadLetters(c.spec.queue, vhostOf().policies, actual)).map((c) => c.spec.queue.name);
    const all = keepers.length === cycle.length;
    const why = `because it expired, a length limit pushed it out or it went over a delivery limit${limits.length ? ` (${limits.join("; ")})` : ""}`;
    const fate = all
      ? `is kept instead, undelivered, by the queue that would send it back into the queue it first left (${AT_LEAST_ONCE}), counted as messages_dlx there`
      : keepers.length
        ? `is gone, unless the queue that would send it back into the queue it first left is ${keepers.length === 1 ? keepers[0] : `one of ${names(keepers)}`}: ${keepers.length === 1 ? "that one keeps" : "those keep"} it instead, undelivered (${AT_LEAST_ONCE}), counted as messages_dlx`
        : "is gone";
    const cycleRule = all ? "RabbitMQ delivers no message back to a queue it was dead-lettered from unless a client rejected it somewhere on the way round (a dead-letter cycle)" : "RabbitMQ drops a message that comes back to a queue it was dead-lettered from unless a client rejected it somewhere on the way round (a dead-letter cycle), without a word";
    return (
      `${placeIn(spec, placeOf, hop.argument)}: ${settingOf(spec, hop.argument)} (queue ${spec.queue.name}): ${goes}, and ${cycleRule}: ` +
      `a message goes round again only if a worker rejects it (requeue false) in ${cycle.length === 1 ? "it" : "one of them"}; one that ${them} dead-letters ${why} ${fate}; ` +
      `fix: dead-letter one of ${cycle.length === 1 ? "the queues that send to it" : "them"} to a queue outside the cycle, or make sure a message leaves ${cycle.length === 1 ? "it" : "one of them"} only when a worker rejects it (no message TTL, length limit or delivery limit there)`
    );
  });
}

/** The keys a queue's dead letters carry: its x-dead-letter-routing-key, or the messages' own. */
type Keys = { key: string; head?: undefined } | { key?: undefined; head: readonly string[] };

/** A queue and the keys of the dead letters in it: where a walk through dead-lettering stands. */
function stateOf(spec: QueueSpec, keys: Keys): string {
  return `${spec.queue.name}\n${keys.key !== undefined ? `key\n${keys.key}` : `own\n${keys.head.join("\n")}`}`;
}

/** The keys of the messages published to a queue of the file: <service>.<traffic>.<task>. */
function ownKeys(spec: QueueSpec): Keys {
  return { head: [spec.service, spec.traffic] };
}

/** One certain hop of dead-lettering: the only queue a queue's dead letters reach, and how. */
interface Hop {
  exchange: string;
  type: string;
  /** The argument that decides where they go, as the file writes it. */
  argument: "x-dead-letter-exchange" | "x-dead-letter-routing-key";
  /** The keys they carry on from here. */
  keys: Keys;
  /** The bindings that route them (none through the default exchange). */
  reached: Binding[];
  /** The queue that gets them all; undefined where none or several do. */
  to: string | undefined;
}

/**
 * Where the queue's dead letters go, carrying `incoming` (the keys of the messages in it), where topo
 * can tell: the default exchange with a routing key, or a fanout, direct or topic exchange without an
 * alternate exchange; no policy that could set a dead-letter setting of the queue or an alternate
 * exchange. Undefined where it cannot tell.
 */
function hopOf(spec: QueueSpec, incoming: Keys, routing: () => Routing, v: Vhost): Hop | undefined {
  const { queue } = spec;
  const exchange = asString(queue.arguments["x-dead-letter-exchange"]);
  if (exchange === undefined) return undefined;
  const own = asString(queue.arguments["x-dead-letter-routing-key"]);
  const keys: Keys = own !== undefined ? { key: own } : incoming;
  // A policy's dead-letter settings may send them elsewhere (its exchange yields to the queue's
  // own, its routing key does not): topo does not judge what it cannot see through.
  if (policiesFor(queue, v.policies).some(({ p }) => Object.keys(p.definition).some((k) => k.startsWith("dead-letter-")))) return undefined;
  const argument = own !== undefined ? "x-dead-letter-routing-key" : "x-dead-letter-exchange";
  if (exchange === "") return keys.key === undefined ? undefined : { exchange, type: "direct", argument, keys, reached: [], to: keys.key };
  const e = routing().exchanges.get(exchange);
  if (!e || !ROUTED_BY.has(e.type) || "alternate-exchange" in e.arguments) return undefined;
  if (v.policies.some((p) => "alternate-exchange" in p.definition)) return undefined;
  const reached = (routing().from.get(exchange) ?? []).filter(matcher(e.type, keys));
  const first = reached[0];
  const to = first && reached.every((b) => b.destinationType === "queue" && b.destination === first.destination) && first.destinationType === "queue" ? first.destination : undefined;
  return { exchange, type: e.type, argument, keys, reached, to };
}

/** Whether a binding of an exchange of `type` (fanout, direct or topic) routes messages of `keys`. */
function matcher(type: string, keys: Keys): (b: Binding) => boolean {
  const { key, head } = keys;
  return (b) => {
    if (type === "fanout") return true;
    if (type === "direct") return key !== undefined ? b.routingKey === key : b.routingKey.startsWith(`${(head as readonly string[]).join(".")}.`);
    return key !== undefined ? topicMatches(b.routingKey, key) : topicMatchesSomeTail(b.routingKey, head as readonly string[]);
  };
}

/**
 * Whether messages of `keys` that an exchange-to-exchange binding takes to `exchange` reach a
 * queue from there: true where one does, false where surely none does, undefined where topo
 * cannot tell (an exchange type or alternate exchange it does not judge). An exchange-to-exchange
 * binding passes a message on with its routing key. Measured on 4.0.5 and 4.3.6: a message
 * rejected from a queue whose dead-letter exchange was bound only to a fanout exchange with
 * nothing bound was gone, and plan, which counted that binding as a route, said "No changes.".
 */
function reachesQueue(exchange: string, keys: Keys, routing: () => Routing, seen: Set<string>): boolean | undefined {
  // Round a loop of exchanges, a message reaches nothing it has not reached already.
  if (seen.has(exchange)) return false;
  seen.add(exchange);
  const e = routing().exchanges.get(exchange);
  if (!e || !ROUTED_BY.has(e.type) || "alternate-exchange" in e.arguments) return undefined;
  let unsure = false;
  for (const b of (routing().from.get(exchange) ?? []).filter(matcher(e.type, keys))) {
    if (b.destinationType === "queue") return true;
    const onward = reachesQueue(b.destination, keys, routing, seen);
    if (onward === true) return true;
    if (onward === undefined) unsure = true;
  }
  return unsure ? undefined : false;
}

/** How one hop goes, as a cycle's warning says it. */
function hopWords(hop: Hop): string {
  if (hop.exchange === "") return `through the default exchange, with the key ${quoted(hop.keys.key as string)}`;
  const keys = hop.keys.key === undefined ? "the messages' own routing keys" : `the key ${quoted(hop.keys.key)}${hop.argument === "x-dead-letter-exchange" ? ", which they came in with," : ""}`;
  return `exchange ${quoted(hop.exchange)} (${hop.type}) routes ${keys} to it by ${names([...new Set(hop.reached.map((b) => b.routingKey || '""'))])}`;
}

/** `argument: "value"` as the file writes it for the queue. */
function settingOf(spec: QueueSpec, argument: string): string {
  return `${argument}: ${quoted(asString(spec.queue.arguments[argument]) ?? "")}`;
}

/**
 * The delivery limit a queue's returned messages go over, as a dead-letter cycle's warning says
 * it: the file's x-delivery-limit, or RabbitMQ 4's default of a quorum queue that names none.
 * Undefined where there is none: a classic queue, -1 on RabbitMQ 4, a quorum queue on 3.x that
 * names none (it sets no limit). The broker's version unknown (no broker read): both said.
 */
function deliveryLimitOf(queue: QueueSpec["queue"], version: string | undefined): string | undefined {
  if (queue.type !== "quorum") return undefined;
  const set = queue.arguments["x-delivery-limit"];
  if (typeof set === "number") return set < 0 ? undefined : `x-delivery-limit ${set}`;
  if (version === undefined || version === "") return `${DEFAULT_DELIVERY_LIMIT} on RabbitMQ 4, where the file sets none`;
  return atLeast(version, 4, 0) ? `${DEFAULT_DELIVERY_LIMIT}, RabbitMQ ${version}'s default where the file sets none` : undefined;
}

/** The exchange types whose routing topo can judge from the bindings alone. */
const ROUTED_BY = new Set(["fanout", "direct", "topic"]);

/** The exchanges the vhost will have once apply has run (the file's as it makes them), and the bindings from each. */
interface Routing {
  exchanges: Map<string, Exchange>;
  from: Map<string, Binding[]>;
}

function routingOf(desired: DesiredCluster, actual: ActualCluster): Routing {
  const exchanges = new Map<string, Exchange>();
  const from = new Map<string, Binding[]>();
  const seen = new Set<string>();
  for (const r of [...desired.resources, ...actual.resources]) {
    if (r.kind === "exchange" && !exchanges.has(r.name)) exchanges.set(r.name, r);
    else if (r.kind === "binding" && !seen.has(keyOf(r))) {
      seen.add(keyOf(r));
      pushTo(from, r.source, r);
    }
  }
  return { exchanges, from };
}

/**
 * A dead-letter exchange that exists but routes none of the keys the queue's dead letters carry:
 * RabbitMQ drops them as it drops those sent to a missing exchange. Measured on 3.10.8: messages
 * expiring in a queue that dead-letters to a service's topic exchange, bound only with
 * <service>.async.#, were gone (their own keys, mqa.async.<task>, and an explicit key
 * mqdead.sync.failed, matched no binding), and plan said "No changes.". Judged only where topo
 * knows how the exchange routes (fanout, direct, topic; no alternate exchange; no policy that
 * could set one or change the queue's dead-lettering). A binding to another exchange counts as a
 * route where a queue is reached from there (reachesQueue), or topo cannot tell.
 */
function routesNone(spec: QueueSpec, incoming: Keys, routing: () => Routing, v: Vhost): { argument: string; value: string; where: string; fix: string } | undefined {
  const hop = hopOf(spec, incoming, routing, v);
  if (!hop || hop.exchange === "") return undefined;
  // What matches goes on only to other exchanges: routed, unless none of those reaches a queue.
  if (hop.reached.some((b) => b.destinationType === "queue")) return undefined;
  const seen = new Set([hop.exchange]);
  if (hop.reached.some((b) => reachesQueue(b.destination, hop.keys, routing, seen) !== false)) return undefined;
  const { exchange, type, keys: { key } } = hop;
  const bindings = routing().from.get(exchange) ?? [];
  const keys = key !== undefined ? `the key ${quoted(key)} (its x-dead-letter-routing-key)` : `the messages' own routing keys (<service>.${spec.traffic}.<task>)`;
  const bound = bindings.length ? `bound only with ${names([...new Set(bindings.map((b) => (type === "fanout" ? b.destination : b.routingKey)))])}` : "bound to nothing";
  const onward = [...new Set(hop.reached.map((b) => b.destination))];
  const routes = onward.length
    ? `which passes ${keys} on only to ${onward.length === 1 ? "exchange" : "exchanges"} ${names(onward.map((x) => quoted(x)))}, from which none reaches a queue`
    : `which routes none of ${keys}`;
  return {
    argument: hop.argument,
    value: key ?? exchange,
    where: `to exchange ${quoted(exchange)} (${type}), ${bound}, ${routes}`,
    fix: `bind a queue to ${quoted(exchange)} with a key that matches them, ${key !== undefined ? "set x-dead-letter-routing-key to a key it routes" : "or add x-dead-letter-routing-key with a key it routes"}, or dead-letter to an exchange that routes them`,
  };
}

/**
 * Under a lossless replace of a queue that dead-letters with the messages' own keys: each message
 * moved back goes in through the default exchange, so its routing key is then the queue's name
 * (broker/replace.ts: through a fanout exchange it would keep its own, but its exchange would read
 * that fanout, gone after the move, where Celery's retry publishes it; the default exchange's ""
 * makes Celery send it back to this queue). A message the workers later reject, or that expires,
 * is dead-lettered by the queue's name, and a dead-letter exchange that routes task names only
 * drops it. Measured on 3.10.8 with a Celery worker rejecting every task, dead-lettered to a topic
 * exchange bound with *.async.*: the 5 tasks published after the replace were kept, the 5 it moved
 * were gone. Undefined where the exchange routes the queue's name, or topo cannot judge it.
 */
export function movedDeadLetterNotes(desired: DesiredCluster, actual: ActualCluster, owns: (p: Policy) => boolean): (queue: string) => string | undefined {
  // Indexed once, and the vhost's routing and policies worked out at the first queue that needs
  // them: asked of each of 10,000 replaced queues, a search per queue would grow with the square.
  let specs: Map<string, QueueSpec> | undefined;
  let vhost: Vhost | undefined;
  let routes: Routing | undefined;
  const routing = () => (routes ??= routingOf(desired, actual));
  return (queue) => {
    specs ??= new Map(desired.queues.map((s) => [s.queue.name, s]));
    const spec = specs.get(queue);
    if (!spec) return undefined;
    const exchange = asString(spec.queue.arguments["x-dead-letter-exchange"]);
    if (exchange === undefined || exchange === "" || spec.queue.arguments["x-dead-letter-routing-key"] !== undefined) return undefined;
    vhost ??= { policies: policiesOnceApplied(desired, actual, owns), exists: new Set<string>() };
    if (!routesNone(spec, { key: queue }, routing, vhost)) return undefined;
    return movedNote(queue, exchange, keepsDeadLetters(spec.queue, vhost.policies, actual));
  };
}

/** `keeps`: the queue dead-letters at least once, and keeps what finds no route (nowhere's measure). */
function movedNote(queue: string, exchange: string, keeps: boolean): string {
  const fate = keeps ? `is kept in the queue instead, undelivered (${AT_LEAST_ONCE}), counted as messages_dlx` : "is dropped";
  return `dead letters: a message this replace moves back carries routing key ${queue} (the queue's name: it comes in by the default exchange), and exchange ${quoted(exchange)}, which the queue dead-letters to by the messages' own keys, routes no ${queue}: one the workers reject later, or that expires, ${fate}; bind the dead-letter queue to ${quoted(exchange)} with ${queue} too, or set x-dead-letter-routing-key (docs/safety.md)`;
}

/**
 * The file's quorum queues that RabbitMQ 4 gives its default delivery limit and nowhere to
 * dead-letter: it drops a message once the limit is spent. Measured on 4.0.5 and 4.3.6, a quorum
 * queue declared without arguments: a message whose consumer's connection closed with it
 * unacknowledged (a worker that dies holding it) was delivered 21 times and then was gone, as was
 * one rejected with requeue 21 times (a nack with requeue counted too on 4.0.5, not on 4.3.6).
 * 3.10.8 has no default limit (25 deliveries, and kept). A file that served RabbitMQ 3 unchanged
 * loses, on 4, a task whose worker crashes 20 times, and plan said nothing. Where a policy or an
 * operator policy sets a delivery limit (plan/policy-limits.ts) or a dead-letter exchange, the
 * policy says what happens, and nothing is said here.
 */
function limitedByDefault(desired: DesiredCluster, actual: ActualCluster, vhostOf: () => Vhost, placeOf: (path: FilePath) => string): string[] {
  if (!atLeast(actual.version, 4, 0)) return [];
  const bare = desired.queues.filter((s) => s.queue.type === "quorum" && !("x-delivery-limit" in s.queue.arguments) && !("x-dead-letter-exchange" in s.queue.arguments));
  if (!bare.length) return [];
  const { policies, exists } = vhostOf();
  const operatorPolicies = actual.operatorPolicies ?? [];
  const found = new Map<string, { queues: string[]; existing: boolean }>();
  for (const spec of bare) {
    const sets = (list: readonly Policy[]) => policiesFor(spec.queue, list).some(({ p }) => "delivery-limit" in p.definition || "dead-letter-exchange" in p.definition);
    if (sets(policies) || sets(operatorPolicies)) continue;
    const path = spec.origin?.settings.type;
    const place = path ? `${placeOf(path)}: type: quorum` : `queue ${spec.queue.name}`;
    const entry = found.get(place) ?? { queues: [], existing: false };
    entry.queues.push(spec.queue.name);
    entry.existing ||= exists.has(spec.queue.name);
    found.set(place, entry);
  }
  return [...found].map(([place, f]) => {
    const one = f.queues.length === 1;
    const replaces = f.existing ? "; apply --allow-destructive then replaces the queues that exist, keeping their messages" : "";
    return (
      `${place} (${one ? "queue" : "queues"} ${names(f.queues)}): RabbitMQ ${actual.version} gives a quorum queue a delivery limit of ${DEFAULT_DELIVERY_LIMIT} where the file gives no x-delivery-limit, ` +
      `and ${one ? "this one has" : "these have"} no dead-letter exchange, so it drops a message returned to it more than ${DEFAULT_DELIVERY_LIMIT} times: a worker that dies holding it returns it, and so does a reject with requeue ` +
      `(RabbitMQ 3 sets no limit); fix: write x-delivery-limit: -1 for no limit (RabbitMQ 4 only: 3.x takes -1 as no delivery at all), or the most deliveries to allow, or give ${one ? "it" : "them"} an x-dead-letter-exchange to keep what goes over it${replaces}`
    );
  });
}

/** A queue that dead-letters into another queue by that queue's name (deadLetterSendersByName). */
export interface NamedSender {
  queue: string;
  /** The settings that send them there, as the file or the policy writes them. */
  how: string;
  /** False where topo cannot tell which policy RabbitMQ applies to it, and only some would. */
  sure: boolean;
  /** It dead-letters at least once (keepsDeadLetters): what finds no queue of that name it keeps, not drops. */
  keeps: boolean;
}

/**
 * The vhost's queues (the file's as it wants them, and those it leaves) that dead-letter into a
 * queue by its name: through the default exchange (x-dead-letter-exchange "") with a dead-letter
 * routing key that names it, each key the queue's own argument where it has one and its policy's
 * where not. Bindings do not carry those: a replace moves a queue's bindings onto its holding queue
 * and back, but what is dead-lettered by name goes to whatever queue has the name at that moment,
 * and to none between the old queue's delete and the new one's declare (broker/replace.ts), where
 * RabbitMQ drops it without a word. `deleted`: keys of the queues the plan deletes. Worked out at
 * the first question, and asked of each queue a plan replaces: most vhosts have no such sender.
 */
export function deadLetterSendersByName(desired: DesiredCluster, actual: ActualCluster, owns: (p: Policy) => boolean, deleted: ReadonlySet<string>): (queue: string) => NamedSender[] {
  let into: Map<string, NamedSender[]> | undefined;
  const index = (): Map<string, NamedSender[]> => {
    const out = new Map<string, NamedSender[]>();
    const policies = policiesOnceApplied(desired, actual, owns);
    // Only a policy that gives the default exchange as a dead-letter exchange, or a routing key, can
    // make a queue without both arguments one: a vhost without such a policy looks at arguments alone.
    const byPolicy = policies.some((p) => p.definition["dead-letter-exchange"] === "" || "dead-letter-routing-key" in p.definition);
    const seen = new Set<string>();
    for (const r of [...desired.resources, ...actual.resources]) {
      // A holding queue dead-letters where its queue will (plan/risk.ts holdingQueueFor): its queue
      // says it. A stream dead-letters nothing.
      if (r.kind !== "queue" || r.type === "stream" || r.name.startsWith(HOLD_PREFIX) || deleted.has(keyOf(r))) continue;
      const exchange = asString(r.arguments["x-dead-letter-exchange"]);
      const key = asString(r.arguments["x-dead-letter-routing-key"]);
      if (exchange !== undefined && exchange !== "") continue;
      if ((exchange === undefined || key === undefined) && !byPolicy) continue;
      const candidates: ({ p: Policy; unread: boolean } | undefined)[] = exchange !== undefined && key !== undefined ? [undefined] : policiesFor(r, policies);
      if (candidates.length === 0) continue;
      // Sure where every policy that may apply sends them there, and each surely matches.
      const unsure = candidates.some((c) => c?.unread);
      const sends = candidates.flatMap((c) => {
        const x = exchange ?? asString(c?.p.definition["dead-letter-exchange"]);
        const k = key ?? asString(c?.p.definition["dead-letter-routing-key"]);
        if (x !== "" || k === undefined || k === r.name) return [];
        const said = (arg: string, setting: string, v: string) => (r.arguments[arg] !== undefined ? `${arg} ${quoted(v)}` : `policy ${quoted(c?.p.name ?? "")}'s ${setting} ${quoted(v)}`);
        return [{ to: k, how: `${said("x-dead-letter-exchange", "dead-letter-exchange", x)} and ${said("x-dead-letter-routing-key", "dead-letter-routing-key", k)}` }];
      });
      for (const s of sends) {
        // A queue both in the file and on the broker (its old shape) is one sender, said once.
        const id = `${s.to}\n${r.name}`;
        if (seen.has(id)) continue;
        seen.add(id);
        pushTo(out, s.to, { queue: r.name, how: s.how, sure: !unsure && sends.length === candidates.length, keeps: keepsDeadLetters(r, policies, actual) });
      }
    }
    return out;
  };
  return (queue) => (into ??= index()).get(queue) ?? [];
}

/**
 * Under a replace of `queue` (a lossless one: it deletes the old queue and declares the new one)
 * that `senders` dead-letter into by name. Measured on 3.10.8: see docs/safety.md.
 */
export function namedDeadLettersNote(queue: string, senders: readonly NamedSender[]): string {
  const one = senders.length === 1;
  const who = senders.map((s) => `queue ${shown(s.queue)} ${s.sure ? "dead-letters" : "may dead-letter (topo cannot tell which policy applies to it)"} into it by name (${s.how})`).join("; ");
  // Measured on 3.10.8 and 4.3.6: a quorum queue that dead-letters at least once kept all 20
  // messages it dead-lettered by name while no queue had that name, and delivered them 170 s after
  // one was declared, at the broker's next retry.
  const drop = senders.filter((s) => !s.keeps);
  const keep = senders.filter((s) => s.keeps);
  const some = (list: readonly NamedSender[]) => (list.length === senders.length ? (one ? "it dead-letters" : "they dead-letter") : `${list.length === 1 ? "queue" : "queues"} ${names(list.map((s) => s.queue))} ${list.length === 1 ? "dead-letters" : "dead-letter"}`);
  const moment = "in the moment between the old queue's delete and the new one's declare";
  return (
    `dead letters by name: ${who}: what is dead-lettered by name goes to the queue of that name, not through the bindings the replace moves onto ${HOLD_PREFIX}${queue}, ` +
    `so what ${one ? "it dead-letters" : "they dead-letter"} while the messages are moved out lands in the old queue, which apply then does not delete (it stops, and the next apply finishes the replace), ` +
    (drop.length ? `and what ${some(drop)} ${moment} RabbitMQ drops, without a word; ` : "") +
    (keep.length ? `${drop.length ? "what" : "and what"} ${some(keep)} ${moment} RabbitMQ keeps in the sender (${AT_LEAST_ONCE}) and sends on at its next retry; ` : "") +
    `let ${one ? "it" : "them"} empty and stop what makes ${one ? "it" : "them"} dead-letter (a message TTL, workers that reject) for the apply, or dead-letter through an exchange bound to ${queue} instead (docs/safety.md)`
  );
}
