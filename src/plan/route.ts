// Pure: where a task name lands. The edge publishes `<service>.<sync|async>.<task>` to the
// service's topic exchange with the task name as routing key; which queues get it is decided by
// AMQP topic matching of that key against the exchange's bindings.

import type { Action, ActualCluster, Binding, DesiredCluster, DesiredState, Exchange, Policy, Traffic, Resource } from "../model.js";
import { TRAFFIC } from "../model.js";
import { holdingQueueBase, madeByTopo, MAX_ROUTING_KEY_BYTES, serviceNamePattern, TASK_NAME_BODY, type Ownership } from "../core/naming.js";
import { describe, keyOf } from "../core/keys.js";
import { shown, names, quoted } from "../core/words.js";
import { closest } from "../core/spelling.js";
import { policyRegExp } from "../core/policy-pattern.js";
import { ownValue, pushTo } from "../core/collections.js";

/**
 * AMQP topic matching: words are separated by dots, `*` matches exactly one word, `#` zero or
 * more. Dynamic programming over (pattern word, key word), so a pattern full of `#` stays linear
 * in its length times the key's, never exponential like a naive backtracking match.
 */
export function topicMatches(pattern: string, key: string): boolean {
  const p = pattern.split(".");
  const k = key.split(".");
  // can[j]: the pattern words seen so far can match the first j key words.
  let can: boolean[] = Array.from({ length: k.length + 1 }, (_, j) => j === 0);
  for (const word of p) {
    const next: boolean[] = new Array<boolean>(k.length + 1).fill(false);
    for (let j = 0; j <= k.length; j++) {
      if (word === "#") {
        // `#` eats zero words (can[j]) or one more word after a match that already ate some.
        next[j] = can[j] === true || (j > 0 && next[j - 1] === true);
      } else if (j > 0 && can[j - 1]) {
        next[j] = word === "*" || word === k[j - 1];
      }
    }
    can = next;
  }
  return can[k.length] === true;
}

/**
 * Can the topic `pattern` match some key made of the words `head` followed by one or more words,
 * whatever they are (a task name's task)? Any pattern left once `head` is matched takes some such
 * words, so the question is whether `head` can be matched with pattern words to spare.
 */
export function topicMatchesSomeTail(pattern: string, head: readonly string[]): boolean {
  const p = pattern.split(".");
  const memo = new Map<number, boolean>();
  const go = (i: number, j: number): boolean => {
    if (j === head.length) return i < p.length;
    if (i === p.length) return false;
    const at = i * (head.length + 1) + j;
    const known = memo.get(at);
    if (known !== undefined) return known;
    const w = p[i];
    const r = w === "#" ? go(i + 1, j) || go(i, j + 1) : (w === "*" || w === head[j]) && go(i + 1, j + 1);
    memo.set(at, r);
    return r;
  };
  return go(0, 0);
}

/** A task name split by the router rule, or why it breaks it. */
export type ParsedTask = { ok: true; service: string; kind: Traffic; task: string } | { ok: false; why: string };

export function parseTaskName(name: string, prefix: string): ParsedTask {
  const words = name.split(".");
  const rule = `<service>.<sync|async>.<task>, with <service> matching ${serviceNamePattern(prefix).source}`;
  // The exported Celery router (_split in export/celery.ts) takes a name as the topology's when its
  // first word is a service name and its second a kind; any other name it does not refuse but
  // leaves to Celery, which sends it to task_default_queue. Say that, not that it is refused.
  const ours = serviceNamePattern(prefix).test(words[0]!) && (words[1] === "sync" || words[1] === "async");
  const leftToDefault = (why: string) => ({
    ok: false as const,
    why: `${why}; the Celery router of topo export celery leaves it to Celery's default: task_default_queue of the module it is sent with (that cluster's first queue, or --default-queue), with that queue's binding key <service>.<kind>.# as routing key (which the broker users topo makes may not publish), so only a worker of that queue that registers this name runs it`,
  });
  if (words.length < 3) {
    const why = `${quoted(name)} has ${words.length} word${words.length === 1 ? "" : "s"}; a task name is ${rule}`;
    return ours ? { ok: false, why } : leftToDefault(why);
  }
  const [service, kind, ...rest] = words as [string, string, ...string[]];
  if (!serviceNamePattern(prefix).test(service)) {
    return leftToDefault(`service ${quoted(service)} breaks the router rule: it must match ${serviceNamePattern(prefix).source} (the prefix "${prefix}" then lowercase letters and underscores)`);
  }
  if (kind !== "sync" && kind !== "async") return leftToDefault(`kind ${quoted(kind)} is neither sync nor async; a task name is ${rule}`);
  if (rest.some((w) => w === "")) return { ok: false, why: `${quoted(name)} has an empty word; the task part may not be empty or contain ".."` };
  const task = rest.join(".");
  // The Celery router topo exports refuses any other task part, and the topic permissions of the
  // users topo makes refuse it as a routing key. Not as a key in a CC or BCC header before
  // RabbitMQ 4.0.3, which checks only the routing key (measured on 3.10.8; docs/celery.md).
  if (!new RegExp(`^${TASK_NAME_BODY}$`).test(task)) {
    return { ok: false, why: `task part ${quoted(task)} breaks the router rule: it must be letters, digits and _ (${TASK_NAME_BODY}), so the Celery router of topo export celery refuses it and the broker users topo makes may not publish it as a routing key; a task name is ${rule}` };
  }
  const bytes = new TextEncoder().encode(name).length;
  if (bytes > MAX_ROUTING_KEY_BYTES) {
    return { ok: false, why: `${quoted(`${name.slice(0, 40)}...`)} is ${bytes} bytes long: a routing key is at most ${MAX_ROUTING_KEY_BYTES} bytes, so no AMQP client can publish it` };
  }
  return { ok: true, service, kind, task };
}

export interface Route {
  task: string;
  service: string;
  kind: Traffic;
  cluster: string;
  vhost: string;
  exchange: string;
  routingKey: string;
  /** Queues whose bindings from the exchange match the routing key, sorted. */
  queues: string[];
}

/** A failure is either a name that breaks the router rule, or (unroutable) one the file gives no queue. */
export type RouteResult = { ok: true; route: Route } | { ok: false; why: string; hint?: string; unroutable?: true };

/**
 * The exchanges RabbitMQ makes in every vhost. They are never topo's and the reader leaves them
 * out (core/naming.ts isBrokersOwn), but a binding may lead into one, so their types are known here.
 */
const BROKER_EXCHANGES: Record<string, string> = {
  "amq.direct": "direct",
  "amq.fanout": "fanout",
  "amq.topic": "topic",
  "amq.headers": "headers",
  "amq.match": "headers",
  "amq.rabbitmq.trace": "topic",
};

/** Is this one of the exchanges RabbitMQ makes in every vhost (which the reader leaves out)? */
export function brokerMakes(exchange: string): boolean {
  return exchange === "" || Object.hasOwn(BROKER_EXCHANGES, exchange);
}

/** What a message published to one exchange with one routing key reaches, as the broker routes it. */
export interface Delivery {
  /** The queues it lands in, sorted. */
  queues: string[];
  /** Every binding it crosses, to a queue or to another exchange. */
  bindings: Binding[];
  /** Alternate exchanges it is passed to, because an exchange had no binding that took it. */
  alternates: { from: string; to: string; by: string }[];
  /** Why topo cannot tell all of it: an exchange whose type routes by what topo does not see. */
  unknown: string[];
}

/** Does a binding of an exchange of this type take the routing key? undefined: topo cannot tell. */
function takes(type: string, b: Binding, routingKey: string): boolean | undefined {
  switch (type) {
    case "topic":
      return topicMatches(b.routingKey, routingKey);
    case "direct":
      return b.routingKey === routingKey;
    case "fanout":
      return true;
    default:
      return undefined; // headers (by the message's headers) and plugin types
  }
}

/**
 * The alternate exchange of `x`: its own `alternate-exchange` argument wins over a policy's, as in
 * RabbitMQ (rabbit_policy:get_arg); else the policy with the highest priority among those whose
 * pattern matches and that apply to exchanges.
 */
function alternateOf(x: Exchange, policies: readonly Policy[]): { to: string; by: string } | { unknown: string } | undefined {
  const arg = x.arguments["alternate-exchange"];
  if (typeof arg === "string") return { to: arg, by: "its alternate-exchange argument" };
  const applying = policies.filter((p) => p.applyTo === "exchanges" || p.applyTo === "all");
  const unreadable = applying.filter((p) => policyRegExp(p.pattern) === undefined);
  const matching = applying.filter((p) => policyRegExp(p.pattern)?.test(x.name)).sort((a, b) => b.priority - a.priority);
  const top = matching[0];
  const topAe = top?.definition["alternate-exchange"];
  if (unreadable.some((p) => !top || p.priority >= top.priority) && unreadable.some((p) => p.definition["alternate-exchange"] !== undefined)) {
    return { unknown: `exchange ${x.name} may have an alternate exchange from policy ${unreadable.map((p) => shown(p.name)).join(", ")}, whose pattern topo cannot read` };
  }
  // RabbitMQ leaves the order of policies of equal priority unspecified.
  const tied = matching.filter((p) => top && p.priority === top.priority && p.definition["alternate-exchange"] !== topAe);
  if (tied.length) return { unknown: `policies ${[top, ...tied].map((p) => shown(p?.name ?? "")).join(", ")} have the same priority and give exchange ${x.name} different alternate exchanges` };
  return top && typeof topAe === "string" ? { to: topAe, by: `policy ${shown(top.name)}` } : undefined;
}


/**
 * Where the broker delivers a message published to `exchange` with `routingKey`, from what it
 * holds (RabbitMQ's rabbit_exchange:route): each exchange's bindings by its type, the exchanges
 * those bindings lead to in turn (each exchange once, so a cycle ends), and an exchange's
 * alternate exchange when none of its bindings takes the message. A binding's arguments do not
 * matter to topic, direct and fanout exchanges.
 */
export function deliver(resources: readonly Resource[], exchange: string, routingKey: string): Delivery {
  const exchanges = new Map<string, Exchange>();
  const bindingsFrom = new Map<string, Binding[]>();
  const policies: Policy[] = [];
  for (const r of resources) {
    if (r.kind === "exchange") exchanges.set(r.name, r);
    else if (r.kind === "binding") {
      pushTo(bindingsFrom, r.source, r);
    }
    else if (r.kind === "policy") policies.push(r);
  }
  const lookup = (name: string): Exchange | undefined => {
    // The table's own names only: an exchange named `constructor` that does not exist is missing.
    const builtin = ownValue(BROKER_EXCHANGES, name);
    return exchanges.get(name) ?? (builtin ? { kind: "exchange", name, type: builtin, durable: true, autoDelete: false, internal: false, arguments: {} } : undefined);
  };
  const out: Delivery = { queues: [], bindings: [], alternates: [], unknown: [] };
  const queues = new Set<string>();
  const seen = new Set<string>([exchange]);
  const work = [exchange];
  const visit = (name: string) => {
    // A missing exchange routes nothing (the broker skips it); each is visited once.
    if (seen.has(name) || !lookup(name)) return;
    seen.add(name);
    work.push(name);
  };
  for (let name = work.shift(); name !== undefined; name = work.shift()) {
    const x = lookup(name);
    if (!x) continue;
    let routed = false;
    let unsure = false;
    for (const b of bindingsFrom.get(name) ?? []) {
      const t = takes(x.type, b, routingKey);
      if (t === undefined) unsure = true;
      if (!t) continue;
      routed = true;
      out.bindings.push(b);
      if (b.destinationType === "queue") queues.add(b.destination);
      else visit(b.destination);
    }
    if (unsure) {
      out.unknown.push(`exchange ${name} (type ${x.type}) routes by what topo cannot see (message headers or a plugin's rule)`);
      continue;
    }
    if (routed) continue;
    const ae = alternateOf(x, policies);
    if (ae && "unknown" in ae) out.unknown.push(ae.unknown);
    else if (ae) {
      out.alternates.push({ from: name, to: ae.to, by: ae.by });
      visit(ae.to);
    }
  }
  out.queues = [...queues].sort();
  return out;
}

/** Queues the broker delivers a message published to `exchange` with `routingKey` to. */
export function matchingQueues(resources: readonly Resource[], exchange: string, routingKey: string): string[] {
  return deliver(resources, exchange, routingKey).queues;
}

/**
 * Bindings on the broker from a service exchange the file wants on this cluster to something
 * topo does not manage (a user's `audit` queue, say). The broker routes the service's tasks there
 * too, but they are outside topo's namespace: no action plans them, so plan names them instead,
 * and route --live points there when it finds one.
 */
export function foreignBindings(desired: DesiredCluster, actual: ActualCluster, owner: Ownership): Binding[] {
  const services = exchangeNames(desired);
  // The file's own bindings are never foreign: those of a service it names inside a longer prefix
  // in use (both files claim it) were not the prefix's by pattern, and were listed as someone's
  // to delete by hand. Worked out at the first binding that comes this far, as nearly none does.
  let wanted: Set<string> | undefined;
  const out: Binding[] = [];
  for (const r of actual.resources) {
    if (r.kind !== "binding" || !services.has(r.source) || isTopoBinding(r, owner)) continue;
    wanted ??= bindingKeys(desired);
    if (!wanted.has(keyOf(r))) out.push(r);
  }
  return out.sort((a, b) => (describe(a) < describe(b) ? -1 : 1));
}

/** The keys of the bindings the file wants on this cluster. */
function bindingKeys(desired: DesiredCluster): Set<string> {
  return new Set(desired.resources.flatMap((d) => (d.kind === "binding" ? [keyOf(d)] : [])));
}

/** The exchanges the file wants on this cluster, by name. */
function exchangeNames(desired: DesiredCluster): Set<string> {
  const names = new Set<string>();
  for (const r of desired.resources) if (r.kind === "exchange") names.add(r.name);
  return names;
}

/**
 * Bindings on the broker into the file's queues and service exchanges from an exchange topo does
 * not manage (`amq.topic -> mplogin.async [#]`, a legacy exchange): the broker routes what is
 * published there to the service's workers too, and no action plans them, so plan names them as
 * it names those out of a service exchange. The default exchange's are the broker's own.
 */
export function bindingsInto(desired: DesiredCluster, actual: ActualCluster, owner: Ownership): Binding[] {
  const services = exchangeNames(desired);
  const queues = new Set(desired.queues.map((q) => q.queue.name));
  // Worked out at the first binding that comes this far: nearly every plan has none (the file's
  // own bindings come from its service exchanges), and the file's binding keys alone took a plan
  // of 25,000 services a tenth of a second.
  let wanted: Set<string> | undefined;
  // An exchange named like a service but not of the shape topo makes is someone else's (plan
  // leaves it, and its bindings, alone): its route into the file's queues is named like any other.
  let spared: Set<string> | undefined;
  const out: Binding[] = [];
  for (const r of actual.resources) {
    if (r.kind !== "binding" || r.source === "" || services.has(r.source)) continue;
    if (!(r.destinationType === "queue" ? queues.has(r.destination) : services.has(r.destination))) continue;
    wanted ??= bindingKeys(desired);
    if (wanted.has(keyOf(r))) continue;
    if (isTopoBinding(r, owner)) {
      spared ??= new Set(actual.resources.flatMap((x) => (x.kind === "exchange" && owner.owns(x) && !madeByTopo(x) ? [x.name] : [])));
      if (!spared.has(r.source)) continue;
    }
    out.push(r);
  }
  return out.sort((a, b) => (describe(a) < describe(b) ? -1 : 1));
}

/**
 * A binding of topo's: one it manages, or a route an interrupted replace parked on its holding
 * queue (plan shows the replace that finishes it: deleting it by hand would drop what is published
 * meanwhile).
 */
export function isTopoBinding(b: Binding, owner: Ownership): boolean {
  return owner.owns(b) || (b.destinationType === "queue" && holdingQueueBase(b.destination, owner) !== undefined);
}

/**
 * Of `bindings`, those that outlast the plan: a binding from or to an exchange or queue the plan
 * deletes goes with it, and the delete names it (`also removes ... topo does not manage`), so a
 * warning that topo "neither changes nor deletes" it would say the opposite of the plan.
 */
export function outlastingPlan(bindings: readonly Binding[], actions: readonly Action[]): Binding[] {
  const gone = new Set<string>();
  // And a binding the plan deletes itself (one on the prefix's apply mark: plan/diff.ts bindingsOnMark).
  const deleted = new Set<string>();
  for (const a of actions) {
    if (a.op !== "delete") continue;
    if (a.before.kind === "exchange" || a.before.kind === "queue") gone.add(`${a.before.kind}|${a.before.name}`);
    else if (a.before.kind === "binding") deleted.add(a.key);
  }
  return gone.size || deleted.size ? bindings.filter((b) => !gone.has(`exchange|${b.source}`) && !gone.has(`${b.destinationType}|${b.destination}`) && !deleted.has(keyOf(b))) : [...bindings];
}

export function foreignBindingWarnings(bindings: readonly Binding[]): string[] {
  if (bindings.length === 0) return [];
  const n = bindings.length;
  return [
    `${n} binding${n === 1 ? "" : "s"} from service exchanges that topo does not manage: ${names(bindings.map(describe))}; the broker routes the tasks ${n === 1 ? "it matches" : "they match"} there too, beside the file's queues; topo neither changes nor deletes ${n === 1 ? "it" : "them"} (delete ${n === 1 ? "it" : "them"} by hand if not wanted)`,
  ];
}

export function bindingsIntoWarnings(bindings: readonly Binding[]): string[] {
  if (bindings.length === 0) return [];
  const n = bindings.length;
  return [
    `${n} binding${n === 1 ? "" : "s"} into the file's queues or service exchanges from exchanges topo does not manage: ${names(bindings.map(describe))}; the broker routes what is published there to the service's workers too; topo neither changes nor deletes ${n === 1 ? "it" : "them"} (delete ${n === 1 ? "it" : "them"} by hand if not wanted)`,
  ];
}

/** A task of a service the file lacks: the service it is one slip from ("mplogn"), or to add it. */
function missingServiceHint(desired: DesiredState, service: string, kind: Traffic, task: string): string {
  const services = [...new Set(desired.clusters.flatMap((c) => c.queues.map((q) => q.service)))].sort();
  const meant = closest(service, services);
  return meant ? `did you mean ${meant}? (${meant}.${kind}.${task}); or add ${service} to services:` : `add ${service} to services:`;
}

/** Where the file says a task name lands: cluster, exchange, routing key and queues. */
export function routeTask(desired: DesiredState, name: string): RouteResult {
  const parsed = parseTaskName(name, desired.prefix);
  if (!parsed.ok) return parsed;
  const { service, kind } = parsed;
  const home = desired.clusters.find((c) => c.queues.some((q) => q.service === service && q.traffic === kind));
  if (!home) {
    const known = desired.clusters.some((c) => c.queues.some((q) => q.service === service));
    const other = TRAFFIC.find((k) => k !== kind) as Traffic;
    return known
      ? { ok: false, unroutable: true, why: `service ${service} has no ${kind} queue in the file (${kind}: false), so ${name} would be unroutable`, hint: `publish it as ${service}.${other}.${parsed.task}, or give ${service} ${kind === "async" ? "an" : "a"} ${kind} queue` }
      : { ok: false, unroutable: true, why: `no service ${service} in the file, so ${name} would be unroutable: there is no exchange ${service}`, hint: missingServiceHint(desired, service, kind, parsed.task) };
  }
  const queues = matchingQueues(home.resources, service, name);
  const route: Route = {
    task: name,
    service,
    kind,
    cluster: home.target.name,
    vhost: home.target.amqp.vhost,
    exchange: service,
    routingKey: name,
    queues,
  };
  if (queues.length === 0) return { ok: false, unroutable: true, why: `no binding of exchange ${service} on cluster ${home.target.name} matches routing key ${name}` };
  return { ok: true, route };
}
