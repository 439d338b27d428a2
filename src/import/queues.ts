// Pure: which queues of the brokers the file describes. The first three steps of inferTopology:
// find the namespace's queues, put each kind on a cluster, and keep one queue per service and
// kind (the file has room for one).

import { TRAFFIC, type Queue, type Traffic } from "../model.js";
import { escapeRegex, holdingQueueOf, Ownership, SERVICE_NAME_BODY } from "../core/naming.js";
import { mostCommon } from "./tally.js";
import type { Found, ImportSource, KindClusters, Reason } from "./types.js";
import { pushTo } from "../core/collections.js";

/** Reads a service queue's name (`<service>.<kind>`) for one prefix; undefined for any other name. */
export function serviceQueueReader(prefix: string): (name: string) => { service: string; kind: Traffic } | undefined {
  const re = new RegExp(`^(${escapeRegex(prefix)}${SERVICE_NAME_BODY})\\.(sync|async)$`);
  return (name) => {
    const m = re.exec(name);
    return m ? { service: m[1] as string, kind: m[2] as Traffic } : undefined;
  };
}

/**
 * What the prefix owns on one source's vhost, as plan reads it: its names, less those of a longer
 * prefix that the vhost shows in use (mpx's apply mark, lock or policy makes mpxfoo mpx's, not mp's).
 */
export function ownerOf(source: ImportSource, prefix: string): Ownership {
  return Ownership.of(prefix, source.actual.resources);
}

/** Every queue of the namespace, on every cluster, in the order the sources and brokers give them. */
export function findServiceQueues(sources: ImportSource[], prefix: string): Found[] {
  const read = serviceQueueReader(prefix);
  const found: Found[] = [];
  sources.forEach((source, order) => {
    const owner = ownerOf(source, prefix);
    const queues = new Set<string>();
    for (const r of source.actual.resources) {
      if (r.kind !== "queue" || !owner.isServiceQueue(r.name)) continue;
      queues.add(r.name);
      const n = read(r.name);
      if (n) found.push({ source, order, ...n, queue: r });
    }
    for (const r of source.actual.resources) {
      const base = r.kind === "queue" ? holdingQueueOf(r, owner) : undefined;
      const n = base !== undefined && !queues.has(base) ? read(base) : undefined;
      if (r.kind === "queue" && n) found.push({ source, order, ...n, queue: cutQueue(base!, n.kind, r) });
    }
  });
  return found;
}

/**
 * The queue of a replace cut after its delete, which left only its holding queue and the messages
 * there: its service is still the file's, or a plan of the file would delete the holding queue
 * with them. What the replace was to make of it is not on the broker: the kind's plain queue (a
 * quorum queue where the holding queue is one: topo makes one only for a quorum queue), which
 * import's header says.
 */
function cutQueue(name: string, kind: Traffic, hold: Queue): Queue {
  const quorum = hold.type === "quorum";
  return { kind: "queue", name, type: quorum ? "quorum" : "classic", durable: quorum || kind === "async", autoDelete: false, exclusive: false, arguments: {} };
}

/** Why the file cannot name a service, when its name is longer than a file's service name may be. */
export function nameTooLong(service: string, max: number | undefined): string | undefined {
  return max !== undefined && service.length > max
    ? `the service name ${service} is ${service.length} characters long; a topology file's service names have at most ${max}, so the file cannot name it`
    : undefined;
}

/** The queues whose service the file can name; the others are deletes plan will show, with why. */
export function dropUnnamable(found: Found[], max: number | undefined): { named: Found[]; reasons: Reason[] } {
  const named: Found[] = [];
  const reasons: Reason[] = [];
  for (const f of found) {
    const why = nameTooLong(f.service, max);
    if (why) reasons.push({ cluster: f.source.name, resource: f.queue, text: why });
    else named.push(f);
  }
  return { named, reasons };
}

/**
 * The cluster of each kind: where most of its queues are. Ties go to the cluster named like the
 * kind, as in the built-in defaults, then to the first of `clusters`. A kind with no queue has none.
 */
export function chooseKindClusters(found: Found[], clusters: string[]): KindClusters {
  const chosen: KindClusters = {};
  for (const kind of TRAFFIC) {
    const m = mostCommon(
      found.filter((f) => f.kind === kind).map((f) => f.source.name),
      [kind, ...clusters],
    );
    if (m) chosen[kind] = m.value;
  }
  return chosen;
}

/**
 * One queue per service and kind, since a service has one <kind> queue, on one cluster: the one on
 * its kind's cluster, else the one on the first cluster. The others are changes plan will show,
 * each with its reason.
 */
export function pickOneQueuePerService(found: Found[], kindClusters: KindClusters): { picked: Found[]; reasons: Reason[] } {
  const groups = new Map<string, Found[]>();
  for (const f of found) pushTo(groups, `${f.service}.${f.kind}`, f);
  const onKindCluster = (f: Found) => Number(f.source.name === kindClusters[f.kind]);
  const picked: Found[] = [];
  const reasons: Reason[] = [];
  for (const list of groups.values()) {
    const sorted = [...list].sort((a, b) => onKindCluster(b) - onKindCluster(a) || a.order - b.order);
    const first = sorted[0] as Found;
    picked.push(first);
    for (const other of sorted.slice(1)) {
      reasons.push({
        cluster: other.source.name,
        resource: other.queue,
        text: `a service has one ${other.kind} queue, on one cluster: the file puts ${first.queue.name} on cluster ${first.source.name}, which holds one too`,
      });
    }
  }
  return { picked, reasons };
}
