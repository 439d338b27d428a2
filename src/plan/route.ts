// Pure: where a task name lands. The edge publishes `<service>.<sync|async>.<task>` to the
// service's topic exchange with the task name as routing key; which queues get it is decided by
// AMQP topic matching of that key against the exchange's bindings.

import type { ActualCluster, Binding, DesiredCluster, DesiredState, Traffic, Resource } from "../model.js";
import { TRAFFIC } from "../model.js";
import { holdingQueueBase, serviceNamePattern, type Ownership } from "../core/naming.js";
import { describe } from "../core/keys.js";
import { names } from "../core/words.js";

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

/** A task name split by the router rule, or why it breaks it. */
export type ParsedTask = { ok: true; service: string; kind: Traffic; task: string } | { ok: false; why: string };

export function parseTaskName(name: string, prefix: string): ParsedTask {
  const words = name.split(".");
  const rule = `<service>.<sync|async>.<task>, with <service> matching ${serviceNamePattern(prefix).source}`;
  if (words.length < 3) return { ok: false, why: `"${name}" has ${words.length} word${words.length === 1 ? "" : "s"}; a task name is ${rule}` };
  const [service, kind, ...rest] = words as [string, string, ...string[]];
  if (!serviceNamePattern(prefix).test(service)) {
    return { ok: false, why: `service "${service}" breaks the router rule: it must match ${serviceNamePattern(prefix).source} (the prefix "${prefix}" then lowercase letters and underscores)` };
  }
  if (kind !== "sync" && kind !== "async") return { ok: false, why: `kind "${kind}" is neither sync nor async; a task name is ${rule}` };
  if (rest.some((w) => w === "")) return { ok: false, why: `"${name}" has an empty word; the task part may not be empty or contain ".."` };
  return { ok: true, service, kind, task: rest.join(".") };
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

export type RouteResult = { ok: true; route: Route } | { ok: false; why: string; hint?: string };

/** Bindings of `exchange` to queues (direct ones) whose binding key matches `routingKey`. */
export function matchingBindings(resources: readonly Resource[], exchange: string, routingKey: string): Binding[] {
  return resources
    .filter((r): r is Binding => r.kind === "binding" && r.source === exchange && r.destinationType === "queue")
    .filter((b) => topicMatches(b.routingKey, routingKey));
}

/** Queues bound to `exchange` (directly) whose binding key matches `routingKey`. */
export function matchingQueues(resources: readonly Resource[], exchange: string, routingKey: string): string[] {
  return [...new Set(matchingBindings(resources, exchange, routingKey).map((b) => b.destination))].sort();
}

/**
 * Bindings on the broker from a service exchange the file wants on this cluster to something
 * topo does not manage (a user's `audit` queue, say). The broker routes the service's tasks there
 * too, but they are outside topo's namespace: no action plans them, so plan names them instead,
 * and route --live points there when it finds one.
 */
export function foreignBindings(desired: DesiredCluster, actual: ActualCluster, owner: Ownership): Binding[] {
  const services = new Set(desired.resources.flatMap((r) => (r.kind === "exchange" ? [r.name] : [])));
  return actual.resources
    // The routes an interrupted replace parked on its holding queue are topo's own (plan shows the
    // replace that finishes it): deleting them by hand would drop what is published meanwhile.
    .filter((r): r is Binding => r.kind === "binding" && services.has(r.source) && !owner.owns(r))
    .filter((b) => !(b.destinationType === "queue" && holdingQueueBase(b.destination, owner)))
    .sort((a, b) => (describe(a) < describe(b) ? -1 : 1));
}

export function foreignBindingWarnings(bindings: readonly Binding[]): string[] {
  if (bindings.length === 0) return [];
  const n = bindings.length;
  return [
    `${n} binding${n === 1 ? "" : "s"} from service exchanges that topo does not manage: ${names(bindings.map(describe))}; the broker routes the tasks ${n === 1 ? "it matches" : "they match"} there too, beside the file's queues; topo neither changes nor deletes ${n === 1 ? "it" : "them"} (delete ${n === 1 ? "it" : "them"} by hand if not wanted)`,
  ];
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
      ? { ok: false, why: `service ${service} has no ${kind} queue in the file (${kind}: false), so ${name} would be unroutable`, hint: `publish it as ${service}.${other}.${parsed.task}, or give ${service} a ${kind} queue` }
      : { ok: false, why: `no service ${service} in the file, so ${name} would be unroutable: there is no exchange ${service}`, hint: `add ${service} to services:` };
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
  if (queues.length === 0) return { ok: false, why: `no binding of exchange ${service} on cluster ${home.target.name} matches routing key ${name}` };
  return { ok: true, route };
}
