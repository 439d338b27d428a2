// Pure: what apply reads again after its writes, and the state it then compares with the file.
//
// Apply ends by reading the broker back and diffing it with the file: an apply whose re-plan is
// not empty has failed. Reading the whole vhost again is a whole listing of every object, a
// third of a small-drift apply's time at 150,000 objects, for a few objects written. So when a
// plan only creates and deletes exchanges, queues and bindings, apply reads back those objects,
// each binding of every exchange and queue it wrote, and the source exchange of every binding it
// deleted (an auto-delete exchange goes with its last binding), one GET each; the source of a
// binding it created only when no binding from it is found. The rest of the state
// is the one read under the lock, moments before, that the plan was computed from: apply did not
// write it (a vhost apply creates is created before the lock, so that read saw it). Anything
// else apply writes (policies, which change what every queue reports, users and rights, a queue
// replaced through a holding queue) is read back whole, as is a plan so large that one GET per
// object would cost the broker more than a whole listing.

import type { ActualCluster, Binding, ClusterPlan, Exchange, Queue, QueueFacts, Resource } from "../model.js";
import { sortResources, subjectOf } from "../core/keys.js";
import { byName } from "../core/collections.js";
import { applyMarkName } from "../core/naming.js";

/** What apply reads again, object by object. */
export interface ReadBackScope {
  /** Each read again, with every binding to it. */
  queues: string[];
  /** Each read again, with every binding from it and to it. */
  exchanges: string[];
  /** Only the exchange itself: the source of a binding apply deleted, and the prefix's apply mark. */
  sources: string[];
  /**
   * The source exchange of bindings apply created, where nothing above reads it: read only when
   * the GETs found no binding from it (sourcesToRead). A binding is there only while its source
   * is, and an exchange is changed only by deleting it, which takes its bindings with it.
   */
  sourcesIfMissing: string[];
  /** The bindings between two ends, where neither end is read again above. */
  pairs: Pick<Binding, "source" | "destination" | "destinationType">[];
}

/** What the GETs of a scope found; an object that is gone is absent from its list. */
export interface ReadBackFound {
  queues: { queue: Queue; facts: QueueFacts }[];
  exchanges: Exchange[];
  bindings: Binding[];
  /** The names of scope.sourcesIfMissing that were read (found or not). */
  sourcesRead: string[];
}

/**
 * At most this many GETs, or one for every eight objects the vhost holds after the apply,
 * whichever is more.
 * Measured on RabbitMQ 3.10 (1,000 services): a GET of one queue, exchange or binding pair cost
 * the broker about 0.25 ms of CPU, a listing about 0.03 ms per object at that size and more at
 * 25,000 services; so eight objects per GET keeps the targeted read well below a whole one.
 */
export const READ_BACK_MIN_GETS = 64;
const OBJECTS_PER_GET = 8;

/** Both ends of a binding: all the bindings between them are read by one GET. */
function endsOf(b: ReadBackScope["pairs"][number]): string {
  return JSON.stringify([b.source, b.destinationType, b.destination]);
}

/**
 * The GETs a scope may cost: a queue and its bindings; an exchange and its bindings either way;
 * every source, as if each binding created were missing.
 */
export function readBackGets(s: ReadBackScope): number {
  return s.queues.length * 2 + s.exchanges.length * 3 + s.sources.length + s.sourcesIfMissing.length + s.pairs.length;
}

/** The GETs a read back made: those of its scope but the sources it had no need to read. */
export function readBackRequests(s: ReadBackScope, found: ReadBackFound): number {
  return readBackGets(s) - s.sourcesIfMissing.length + found.sourcesRead.length;
}

/**
 * Of scope.sourcesIfMissing, those the GETs found no binding from: a binding apply created from
 * each is missing, and only the exchange itself tells whether it went with its exchange.
 */
export function sourcesToRead(s: ReadBackScope, bindings: readonly Binding[]): string[] {
  if (s.sourcesIfMissing.length === 0) return [];
  const found = new Set(bindings.map((b) => b.source));
  return s.sourcesIfMissing.filter((name) => !found.has(name));
}

/**
 * The objects to read back after `plan` was carried out on `actual` (the state it was computed
 * from), or undefined when the whole state must be read again.
 */
export function readBackScope(plan: ClusterPlan, actual: ActualCluster, prefix?: string): ReadBackScope | undefined {
  const queues = new Set<string>();
  const exchanges = new Set<string>();
  const bindings: { b: Binding; created: boolean }[] = [];
  for (const a of plan.actions) {
    if (a.op !== "create" && a.op !== "delete") return undefined;
    const r = subjectOf(a);
    switch (r.kind) {
      case "queue":
        queues.add(r.name);
        break;
      case "exchange":
        exchanges.add(r.name);
        break;
      case "binding":
        bindings.push({ b: r, created: a.op === "create" });
        break;
      default:
        return undefined;
    }
  }
  const sources = new Set<string>();
  // The prefix's apply mark, which apply renews before its first write without an action of the
  // plan's (broker/generation.ts): read back too, so that the state compared with the file has it,
  // as plan's next read will (plan/diff.ts planCluster lists it where the vhost holds the file's
  // objects without it).
  if (prefix !== undefined && !exchanges.has(applyMarkName(prefix))) sources.add(applyMarkName(prefix));
  const pairs = new Map<string, ReadBackScope["pairs"][number]>();
  const ifMissing = new Set<string>();
  for (const { b, created } of bindings) {
    if (!exchanges.has(b.source)) (created ? ifMissing : sources).add(b.source);
    const covered = exchanges.has(b.source) || (b.destinationType === "queue" ? queues.has(b.destination) : exchanges.has(b.destination));
    if (!covered) pairs.set(endsOf(b), { source: b.source, destination: b.destination, destinationType: b.destinationType });
  }
  const sourcesIfMissing = [...ifMissing].filter((name) => !sources.has(name));
  const scope: ReadBackScope = { queues: [...queues], exchanges: [...exchanges], sources: [...sources], sourcesIfMissing, pairs: [...pairs.values()] };
  // A whole read would list what the vhost holds after the apply.
  const after = actual.resources.length + plan.actions.filter((a) => a.op === "create").length;
  return readBackGets(scope) <= Math.max(READ_BACK_MIN_GETS, after / OBJECTS_PER_GET) ? scope : undefined;
}

/**
 * The state after apply: `before` with every object the scope covers replaced by what the GETs
 * found (gone where they found nothing).
 */
export function mergeReadBack(before: ActualCluster, scope: ReadBackScope, found: ReadBackFound): ActualCluster {
  const queues = new Set(scope.queues);
  const exchanges = new Set([...scope.exchanges, ...scope.sources, ...found.sourcesRead]);
  const bindingsOf = new Set(scope.exchanges);
  const pairs = new Set(scope.pairs.map(endsOf));
  const reread = (r: Resource): boolean => {
    switch (r.kind) {
      case "queue":
        return queues.has(r.name);
      case "exchange":
        return exchanges.has(r.name);
      case "binding":
        return (
          bindingsOf.has(r.source) ||
          (r.destinationType === "queue" ? queues.has(r.destination) : bindingsOf.has(r.destination)) ||
          pairs.has(endsOf(r))
        );
      default:
        return false;
    }
  };
  const queueFacts = Object.assign(byName<QueueFacts>(), before.queueFacts);
  for (const name of queues) delete queueFacts[name];
  for (const q of found.queues) queueFacts[q.queue.name] = q.facts;
  return {
    ...before,
    resources: sortResources([...before.resources.filter((r) => !reread(r)), ...found.queues.map((q) => q.queue), ...found.exchanges, ...found.bindings]),
    queueFacts,
  };
}
