// Pure: who may do what, derived from the topology. A user's rights on one cluster's vhost follow
// from the services it consumes and publishes to; nothing is granted on a cluster where none of
// them has a queue.

import type { DesiredCluster, Traffic } from "../model.js";
import { escapeRegex } from "../core/naming.js";

export interface Grant {
  user: string;
  consumes: readonly string[];
  publishes: readonly string[] | "all";
}

export interface TopicRights {
  exchange: string;
  write: string;
  read: string;
}

export interface VhostRights {
  configure: string;
  write: string;
  read: string;
  topics: TopicRights[];
}

/** Celery's rpc:// reply queue: named by the client app's oid, a UUID. */
const REPLY_QUEUE = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
/** A task's own part of its name: <service>.<kind>.<task>. */
const TASK = "[A-Za-z0-9_]+";
const NOTHING = "^$";

const anyOf = (alternatives: string[]): string => (alternatives.length ? `^(?:${[...new Set(alternatives)].sort().join("|")})$` : NOTHING);

/** The rights a user needs on one cluster's vhost, or undefined when it needs none there. */
export function rightsOn(cluster: DesiredCluster, grant: Grant, _prefix: string): VhostRights | undefined {
  const consumed = cluster.queues.filter((s) => grant.consumes.includes(s.service));
  const published = cluster.queues.filter((s) => grant.publishes === "all" || grant.publishes.includes(s.service));
  if (consumed.length === 0 && published.length === 0) return undefined;
  const callsSync = published.some((s) => s.traffic === "sync");
  const answersSync = consumed.some((s) => s.traffic === "sync");

  const kindsOf = new Map<string, Set<Traffic>>();
  for (const s of published) (kindsOf.get(s.service) ?? kindsOf.set(s.service, new Set()).get(s.service)!).add(s.traffic);

  const configure = callsSync ? [REPLY_QUEUE] : [];
  const write = [...kindsOf.keys()].map(escapeRegex);
  if (answersSync) write.push("amq\\.default");
  const read = consumed.map((s) => escapeRegex(s.queue.name));
  if (callsSync) read.push(REPLY_QUEUE);

  const topics = [...kindsOf.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([service, kinds]) => {
      const k = [...kinds].sort();
      const kind = k.length === 1 ? k[0]! : `(?:${k.join("|")})`;
      return { exchange: service, write: `^${escapeRegex(service)}\\.${kind}\\.${TASK}$`, read: NOTHING };
    });
  return { configure: anyOf(configure), write: anyOf(write), read: anyOf(read), topics };
}
