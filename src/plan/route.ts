// Pure: where a task name lands. The edge publishes `<service>.<sync|async>.<task>` to the
// service's topic exchange with the task name as routing key; which queues get it is decided by
// AMQP topic matching of that key against the exchange's bindings.

import type { Binding, DesiredState, Traffic, Resource } from "../model.js";
import { TRAFFIC } from "../model.js";
import { serviceNamePattern } from "../core/naming.js";

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

/** Queues bound to `exchange` (directly) whose binding key matches `routingKey`. */
export function matchingQueues(resources: readonly Resource[], exchange: string, routingKey: string): string[] {
  const hits = resources
    .filter((r): r is Binding => r.kind === "binding" && r.source === exchange && r.destinationType === "queue")
    .filter((b) => topicMatches(b.routingKey, routingKey))
    .map((b) => b.destination);
  return [...new Set(hits)].sort();
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
