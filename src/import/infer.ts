// Pure: what brokers hold (read and normalised by broker/read.ts) → the body of the topology file
// that describes them (prefix, defaults, services), and everything in topo's namespace the file
// cannot describe, each with what `topo plan` on that file will do about it and why.
//
// The file is checked the way topo itself will read it: the body goes through normalize (the
// same layering of built-in < defaults < service) and the result is diffed against what was
// read (diffCluster). So the changes listed are exactly those plan will show, never a guess.
// No IO here: unit tests run it, and each of its steps, on plain objects.

import type { ActualCluster, ClusterPlan, DesiredCluster, Traffic, Policy } from "../model.js";
import { TRAFFIC } from "../model.js";
import { Ownership } from "../core/naming.js";
import { planCluster } from "../plan/diff.js";
import { unrepairable } from "../plan/unrepairable.js";
import { displayPath } from "../config/places.js";
import { argumentChecker } from "./arguments.js";
import { collectUserMirrors, describeQueue } from "./describe-queue.js";
import { chooseDefaults } from "./defaults.js";
import { annotateChanges, explainDifferences, reasonsOf } from "./explain.js";
import { listLeftAlone, listOutside } from "./left-alone.js";
import { chooseKindClusters, dropUnnamable, findServiceQueues, ownerOf, pickOneQueuePerService, serviceQueueReader } from "./queues.js";
import { spellServices } from "./spell.js";
import type { Chosen, ClusterImport, ImportSource, Inference, InferOptions, Reason } from "./types.js";

export type { ArgumentSchema, ClusterImport, ImportSource, Inference, InferOptions, PlannedChange, TopologyBody } from "./types.js";
export { valueProblem } from "./arguments.js";

/** The kinds of topo queue a cluster holds (to name a cluster read from a bare --url). */
export function kindsHeld(actual: ActualCluster, prefix: string): Traffic[] {
  const read = serviceQueueReader(prefix);
  const owner = Ownership.of(prefix, actual.resources);
  const kinds = new Set<Traffic>();
  for (const r of actual.resources) {
    const n = r.kind === "queue" && owner.isServiceQueue(r.name) ? read(r.name) : undefined;
    if (n) kinds.add(n.kind);
  }
  return TRAFFIC.filter((k) => kinds.has(k));
}

export function inferTopology(sources: ImportSource[], opts: InferOptions): Inference {
  const { prefix } = opts;

  // Which queues the file describes: one per service and kind, the rest are changes.
  const { named: found, reasons: unnamable } = dropUnnamable(findServiceQueues(sources, prefix), opts.serviceNameMaxLength);
  const kindClusters = chooseKindClusters(found, sources.map((s) => s.name));
  const { picked, reasons: duplicates } = pickOneQueuePerService(found, kindClusters);

  // What the file can say about each of them.
  const argumentProblem = argumentChecker(opts.argumentSchemas);
  const policiesOf = new Map(sources.map((s) => [s.name, s.actual.resources.filter((r): r is Policy => r.kind === "policy")]));
  // One Ownership per source: working it out reads every object of the vhost.
  const owners = new Map(sources.map((s) => [s.name, ownerOf(s, prefix)]));
  const described = picked.map((f) => ({ ...f, ...describeQueue(f, { owner: owners.get(f.source.name) ?? ownerOf(f.source, prefix), policies: policiesOf.get(f.source.name) ?? [], argumentProblem }) }));
  const undescribable: Reason[] = described.filter((d) => d.cannot.length).map((d) => ({ cluster: d.source.name, resource: d.queue, text: d.cannot.join("; ") }));
  // Collected in the order the queues were found, so the notes name policies and queues in that order.
  const mirrors = collectUserMirrors(described);
  const chosen: Chosen[] = described
    .map(({ source, order, service, kind, queue, wanted }) => ({ source, order, service, kind, queue, wanted }))
    .sort((a, b) => (a.service < b.service ? -1 : a.service > b.service ? 1 : a.kind < b.kind ? -1 : 1));

  // The file's body, read back as topo will read it.
  const defaults = chooseDefaults(chosen, kindClusters);
  const { services, desired } = spellServices(chosen, defaults, sources, prefix);

  // What plan will do on the written file and why, and what topo leaves alone.
  const reasons = [...unnamable, ...duplicates, ...undescribable, ...explainDifferences(sources, chosen, mirrors, prefix, opts.serviceNameMaxLength)];
  const clusters = sources.map((source): ClusterImport => {
    const dc = desired.clusters.find((c) => c.target.name === source.name);
    const plan = dc ? planCluster(dc, source.actual, prefix) : undefined;
    const actions = plan?.actions ?? [];
    const imported = chosen.filter((c) => c.wanted.cluster === source.name).map((c) => c.queue);
    const gone = new Set(actions.filter((a) => a.op === "delete").map((a) => a.key));
    return {
      name: source.name,
      vhost: source.vhost,
      version: source.actual.version,
      queues: imported.length,
      changes: annotateChanges(actions, reasonsOf(source.name, reasons)),
      // As plan of the written file reports them (commands/clusters.ts readAndPlan).
      degraded: plan && dc ? degradedAsPlanned(plan, dc, source.actual, prefix) : [],
      kept: listLeftAlone(source, imported, gone, mirrors, prefix),
      outside: listOutside(source, prefix, opts.ownUsers),
    };
  });

  return { body: { prefix, defaults, services }, clusters, services: new Set(chosen.map((c) => c.service)).size, queues: chosen.length };
}

/**
 * What plan of the written file reports degraded on a cluster, as commands/clusters.ts readAndPlan
 * does: the plan's own, and what no change of the file or of topo's repairs (unrepairable).
 */
export function degradedAsPlanned(plan: ClusterPlan, dc: DesiredCluster, actual: ActualCluster, prefix: string): string[] {
  return [...plan.degraded, ...unrepairable(dc, actual, prefix, displayPath).degraded];
}
