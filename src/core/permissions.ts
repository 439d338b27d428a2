// Pure: the least RabbitMQ rights a user of the topology needs on one cluster's vhost, derived from
// what it consumes and what it publishes. Found by experiment with Celery 5.2 workers and clients
// on the module `topo export celery` writes (no_declare queues, remote control and events off,
// workers started --without-mingle --without-gossip --without-heartbeat), on RabbitMQ 3.10, 4.0
// and 4.3; docs/celery.md ("Least privilege") says what each regex allows and what stays open.
//
// RabbitMQ checks configure (declare, delete), write (publish to an exchange, bind a queue) and
// read (consume, get, purge a queue; bind from an exchange) against one regex each, and, on a topic
// exchange, the routing key of a publish against the user's topic permission for that exchange
// (and, from 4.0.3 on, the keys of its CC and BCC headers; 3.10 routes those unchecked).
// A user with write on a topic exchange and no topic permission for it may publish any routing
// key, so every exchange a user may write to gets one.

import type { DesiredCluster, QueueSpec, Traffic } from "../model.js";
import { escapeRegex, serviceNamePattern, TASK_NAME_BODY } from "./naming.js";
import { pushTo } from "./collections.js";

/** What the file says of one user: the services whose queues its workers consume, and whose tasks it sends. */
export interface Grant {
  user: string;
  consumes: readonly string[];
  publishes: readonly string[] | "all";
}

/** A topic permission: the routing keys the user may publish to (write) and bind from (read) `exchange`. */
export interface TopicRights {
  exchange: string;
  write: string;
  read: string;
}

export interface VhostRights {
  configure: string;
  write: string;
  read: string;
  /** One per exchange that `write` allows and that is a topic exchange (every service's exchange), sorted by exchange. */
  topics: TopicRights[];
}

/** RabbitMQ's regex for "no object at all" (the empty string means the same; this one reads better in a plan). */
export const NOTHING = "^$";

/** A topic permission that allows no routing key: how topo revokes one exchange's entry. */
export function allowsNothing(t: { write: string; read: string }): boolean {
  return t.write === NOTHING && t.read === NOTHING;
}

/**
 * The rpc:// reply queue of a Celery client: the app's oid, a bare lower-case UUID (kombu's
 * uuid3, uuid5 as fallback), not exclusive, auto-delete, x-expires one day. Nothing in the name
 * says whose it is, so this pattern matches every client's reply queue (a residual risk the docs
 * describe).
 */
export const REPLY_QUEUE = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";

/** Celery's rpc:// backend publishes every answer to the default exchange, which permissions name `amq.default`. */
export const DEFAULT_EXCHANGE = "amq.default";

/** The rights a user needs on one cluster's vhost, or undefined when it needs none there (none of its services has a queue on that cluster). */
export function rightsOn(cluster: DesiredCluster, grant: Grant, prefix: string): VhostRights | undefined {
  return rightsFor(cluster, prefix)(grant);
}

/**
 * rightsOn for many users of one cluster: the cluster's queues are read once, by service (one
 * file's users each reading every queue made 5,000 users of 5,000 services take seconds).
 */
export function rightsFor(cluster: DesiredCluster, prefix: string): (grant: Grant) => VhostRights | undefined {
  const service = serviceNamePattern(prefix);
  const byService = new Map<string, QueueSpec[]>();
  for (const q of cluster.queues) {
    // normalize makes every service name match the prefix; a name that did not would be put
    // into a regex unchecked.
    if (!service.test(q.service)) throw new Error(`service ${q.service} of cluster ${cluster.target.name} is not a service name of prefix ${prefix}`);
    pushTo(byService, q.service, q);
  }
  const hasSync = cluster.queues.some((q) => q.traffic === "sync");
  return (grant) => rightsOf(grant, byService, cluster.queues, hasSync);
}

/** What the rights of a user follow from, of one queue of the cluster. */
export type QueueRef = Pick<QueueSpec, "service" | "traffic"> & { queue: { name: string } };

/**
 * rightsFor for a cluster known only by its queues' names (import, which reads a broker): each
 * `<service>.<kind>` of `names` is a queue of that service. Its queues are gathered once, for
 * every user asked about.
 */
export function rightsAmong(services: Iterable<string>, names: ReadonlySet<string>): (grant: Grant) => VhostRights | undefined {
  const byService = new Map<string, QueueRef[]>();
  const queues: QueueRef[] = [];
  for (const service of services) {
    for (const traffic of ["sync", "async"] as const) {
      const name = `${service}.${traffic}`;
      if (!names.has(name)) continue;
      const q = { service, traffic, queue: { name } };
      queues.push(q);
      pushTo(byService, service, q);
    }
  }
  const hasSync = queues.some((q) => q.traffic === "sync");
  return (grant) => rightsOf(grant, byService, queues, hasSync);
}

function rightsOf(grant: Grant, byService: ReadonlyMap<string, QueueRef[]>, queues: readonly QueueRef[], clusterHasSync: boolean): VhostRights | undefined {
  // What follows sorts what it takes from these, or only asks whether one is there: order is no matter.
  const ofServices = (services: readonly string[]) => [...new Set(services)].flatMap((s) => byService.get(s) ?? []);
  const consumed = ofServices(grant.consumes);
  const published = grant.publishes === "all" ? queues : ofServices(grant.publishes);
  if (!consumed.length && !published.length) return undefined;
  // A worker sends the tasks of the queues it consumes again: Celery's Task.retry() (and
  // autoretry_for) publishes the task to the exchange and routing key it came by. Refused, the
  // worker rejects the task, and it is gone. So a consumer may publish its own queues' task
  // names, and nothing else of its service (not the other kind's).
  const sent = [...published, ...consumed];

  // A caller of a sync task waits for the answer on its own reply queue: it declares it (configure)
  // and consumes it (read). Declaring it binds it to nothing: replies come by the default exchange.
  const calls = published.some((q) => q.traffic === "sync");
  // Where the cluster has a sync queue, export celery sets result_backend rpc://, and Celery's
  // send_task then declares the sender's reply queue before every send, async tasks included (it
  // reads ignore_result before routing): any sender there needs configure on it, if not read, and
  // every user here sends (a consumer its retries).
  const declaresReplyQueue = clusterHasSync;
  // A worker of a sync queue answers through the default exchange, routing key the reply queue.
  const answers = consumed.some((q) => q.traffic === "sync");

  const kindsOf = new Map<string, Set<Traffic>>();
  for (const q of sent) (kindsOf.get(q.service) ?? kindsOf.set(q.service, new Set()).get(q.service)!).add(q.traffic);
  const exchanges = [...kindsOf.keys()].sort();

  return {
    configure: anyOf(declaresReplyQueue ? [REPLY_QUEUE] : []),
    write: anyOf([...(answers ? [escapeRegex(DEFAULT_EXCHANGE)] : []), ...exchanges.map(escapeRegex)]),
    read: anyOf([...unique(consumed.map((q) => q.queue.name)).map(escapeRegex), ...(calls ? [REPLY_QUEUE] : [])]),
    topics: exchanges.map((exchange) => ({
      exchange,
      // The task names of the kinds this cluster takes, and nothing else: not `<service>.<kind>`
      // (Celery's default route), not the other kind's names, not another service's.
      write: `^${escapeRegex(exchange)}\\.${anyKind([...kindsOf.get(exchange)!].sort())}\\.${TASK_NAME_BODY}$`,
      // Binding from the exchange needs read on it, which no user has; say so here too.
      read: NOTHING,
    })),
  };
}

/** An anchored alternation of regex sources (already escaped), or NOTHING. */
/**
 * The names a pattern of anyOf's form lists (`^(?:mplogin\\.sync|mpwallet\\.async)$`), unescaped,
 * leaving out the reply queue's pattern, which matches no name of an exchange or a service's queue;
 * undefined for any other pattern (a user's own regex), which only testing each name can answer.
 * Many users' patterns then cost what they list, not every user times every name.
 */
export function listedNames(pattern: string): string[] | undefined {
  const body = /^\^\(\?:(.*)\)\$$/s.exec(pattern)?.[1] ?? /^\^(.*)\$$/s.exec(pattern)?.[1];
  if (body === undefined) return undefined;
  const names: string[] = [];
  for (const alternative of body.split("|")) {
    if (alternative === REPLY_QUEUE) continue;
    // Letters, digits, _ and - stand for themselves, and escapeRegex writes a dot as \.: any
    // other character may be regex syntax (an escaped | included), so the pattern is no list.
    // An empty one is the empty name (NOTHING, ^$, lists just that).
    if (!/^(?:[A-Za-z0-9_-]|\\\.)*$/.test(alternative)) return undefined;
    names.push(alternative.replace(/\\\./g, "."));
  }
  return names;
}

/**
 * The names of `among` that `pattern` allows (`allows` tests one, as RabbitMQ would): only those
 * it lists, where it is a list; every name of `among` otherwise. In listing order, or `among`'s.
 */
export function allowedAmong(pattern: string, allows: (name: string) => boolean, among: ReadonlySet<string>): string[] {
  const listed = listedNames(pattern);
  const candidates = listed ? new Set(listed) : among;
  return [...candidates].filter((n) => among.has(n) && allows(n));
}

function anyOf(sources: string[]): string {
  if (!sources.length) return NOTHING;
  return sources.length === 1 ? `^${sources[0]}$` : `^(?:${sources.join("|")})$`;
}

function anyKind(kinds: Traffic[]): string {
  return kinds.length === 1 ? kinds[0]! : `(?:${kinds.join("|")})`;
}

function unique(names: string[]): string[] {
  return [...new Set(names)].sort();
}
