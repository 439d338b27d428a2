// Pure: what brokers hold (read and normalised by broker/read.ts) → the body of the topology file
// that describes them (prefix, defaults, services), and everything in topo's namespace the file
// cannot describe, each with what `topo plan` on that file will do about it and why.
//
// The file is checked the way topo itself will read it: the body goes through normalize (the
// same layering of built-in < defaults < service) and the result is diffed against what was
// read (diffCluster). So the changes listed are exactly those plan will show, never a guess.
// No IO here: unit tests run it on plain objects.

import type { ActualCluster, ArgValue, Binding, DesiredState, Exchange, Kind, Policy, Resource } from "../model.js";
import { KINDS } from "../model.js";
import { escapeRegex, MIRROR_DEFINITION } from "../config/normalize.js";
import { isTopoName, lockQueueName, mirrorPolicyName, Ownership } from "../core/naming.js";
import { diffCluster, HOLD_PREFIX, holdingQueueOf } from "../plan/diff.js";
import { describe, keyOf, stableJson } from "../core/keys.js";
import { names } from "../plan/words.js";
import { argumentChecker } from "./arguments.js";
import { APPLIES_TO, collectUserMirrors, describeQueue } from "./describe-queue.js";
import { chooseDefaults } from "./defaults.js";
import { chooseKindClusters, findServiceQueues, pickOneQueuePerService, serviceQueueReader } from "./queues.js";
import { spellServices } from "./spell.js";
import type { Chosen, ClusterImport, ImportSource, Inference, InferOptions, PlannedChange, TopologyBody } from "./types.js";

export type { ArgumentSchema, ClusterImport, ImportSource, Inference, InferOptions, PlannedChange, TopologyBody } from "./types.js";
export { valueProblem } from "./arguments.js";

/** The model's exchange: the only one the file can describe. */
function modelExchange(name: string): Exchange {
  return { kind: "exchange", name, type: "topic", durable: true, autoDelete: false, internal: false, arguments: {} };
}

function modelBinding(service: string, queue: string): Binding {
  return { kind: "binding", source: service, destination: queue, destinationType: "queue", routingKey: `${queue}.#`, arguments: {} };
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** The kinds of topo queue a cluster holds (to name a cluster read from a bare --url). */
export function kindsHeld(actual: ActualCluster, prefix: string): Kind[] {
  const re = new RegExp(`^${escapeRegex(prefix)}[a-z_]+\\.(sync|async)$`);
  const kinds = new Set<Kind>();
  for (const r of actual.resources) {
    const m = r.kind === "queue" ? re.exec(r.name) : null;
    if (m) kinds.add(m[1] as Kind);
  }
  return KINDS.filter((k) => kinds.has(k));
}

function policyText(p: Policy): string {
  const def = Object.entries(p.definition).map(([k, v]) => `${k}=${stableJson(v)}`).join(", ");
  return `policy ${p.name} (pattern ${p.pattern}, apply-to ${p.applyTo}, priority ${p.priority}${def ? `, ${def}` : ""})`;
}

export function inferTopology(sources: ImportSource[], opts: InferOptions): Inference {
  const { prefix } = opts;
  const owner = new Ownership(prefix);
  const readQueueName = serviceQueueReader(prefix);
  /** Why the file cannot avoid a change, by cluster then by keyOf the object. */
  const why = new Map<string, Map<string, string>>(sources.map((s) => [s.name, new Map()]));
  const because = (cluster: string, r: Resource, text: string) => {
    const m = why.get(cluster) as Map<string, string>;
    const k = keyOf(r);
    m.set(k, m.has(k) ? `${m.get(k)}; ${text}` : text);
  };
  const kept = new Map<string, string[]>(sources.map((s) => [s.name, []]));

  // 1-3. Which queues the file describes: one per service and kind, the rest are changes.
  const found = findServiceQueues(sources, prefix);
  const kindClusters = chooseKindClusters(found, sources.map((s) => s.name));
  const { picked, reasons: duplicates } = pickOneQueuePerService(found, kindClusters);
  for (const r of duplicates) because(r.cluster, r.resource, r.text);

  // 4. What the file can say about each of them.
  const argumentProblem = argumentChecker(opts.argumentSchemas);
  const policiesOf = new Map(sources.map((s) => [s.name, s.actual.resources.filter((r): r is Policy => r.kind === "policy")]));
  const described = picked.map((f) => ({ ...f, ...describeQueue(f, { owner, policies: policiesOf.get(f.source.name) ?? [], argumentProblem }) }));
  for (const d of described) if (d.cannot.length) because(d.source.name, d.queue, d.cannot.join("; "));
  // Collected in the order the queues were found, so the notes name policies and queues in that order.
  const mirrors = collectUserMirrors(described);
  const chosen: Chosen[] = described
    .map(({ source, order, service, kind, queue, wanted }) => ({ source, order, service, kind, queue, wanted }))
    .sort((a, b) => (a.service < b.service ? -1 : a.service > b.service ? 1 : a.kind < b.kind ? -1 : 1));

  // 5-6. The file's body, read back as topo will read it.
  const defaults = chooseDefaults(chosen, kindClusters);
  const { services, desired } = spellServices(chosen, defaults, sources, prefix);
  const body: TopologyBody = { prefix, defaults, services };
  const bySK = new Map(chosen.map((c) => [`${c.service}.${c.kind}`, c]));

  // 7. Why each object of the namespace differs from the file, where it does.
  const bySource = new Map<string, Chosen[]>();
  for (const c of chosen) bySource.set(c.wanted.cluster, [...(bySource.get(c.wanted.cluster) ?? []), c]);
  for (const source of sources) {
    const here = bySource.get(source.name) ?? [];
    const serviceHere = new Set(here.map((c) => c.service));
    const exchanges = new Map(source.actual.resources.filter((r): r is Exchange => r.kind === "exchange").map((e) => [e.name, e]));
    const bindings = source.actual.resources.filter((r): r is Binding => r.kind === "binding");
    // Indexed: a broker of 5,000 services holds 10,000 bindings, too many to scan per queue.
    const bindingKeys = new Set(bindings.map(keyOf));
    const toQueue = new Map<string, Binding[]>();
    for (const b of bindings) if (b.destinationType === "queue") toQueue.set(b.destination, [...(toQueue.get(b.destination) ?? []), b]);
    for (const e of exchanges.values()) {
      if (!owner.owns(e)) continue;
      if (!serviceHere.has(e.name)) {
        const elsewhere = KINDS.flatMap((k) => bySK.get(`${e.name}.${k}`) ?? []).map((c) => `${c.queue.name} on cluster ${c.wanted.cluster}`);
        because(
          source.name,
          e,
          `no queue of service ${e.name} is on this cluster in the file${elsewhere.length ? ` (it has ${elsewhere.join(", ")})` : ""}, and the file describes a service's exchange only beside one of its queues`,
        );
      } else if (stableJson(e as never) !== stableJson(modelExchange(e.name) as never)) {
        because(source.name, e, `the file cannot describe exchange properties: topo's service exchanges are durable topic exchanges without arguments`);
      }
    }
    for (const c of here) {
      if (!exchanges.has(c.service)) because(source.name, modelExchange(c.service), `queue ${c.queue.name} has no exchange ${c.service}; the file gives every queue its service's topic exchange`);
      const model = modelBinding(c.service, c.queue.name);
      if (!bindingKeys.has(keyOf(model))) {
        const other = (toQueue.get(c.queue.name) ?? []).filter((b) => b.source === c.service);
        because(
          source.name,
          model,
          exchanges.has(c.service)
            ? `queue ${c.queue.name} is not bound to ${c.service} with ${model.routingKey}${other.length ? ` (only with ${other.map((b) => `[${b.routingKey}]`).join(", ")})` : ""}; the file binds every queue to its service's exchange with <queue>.#`
            : `queue ${c.queue.name} has no exchange ${c.service} to be bound to; the file binds every queue to its service's exchange with <queue>.#`,
        );
      }
    }
    const queuesHere = new Set(here.map((c) => c.queue.name));
    for (const b of bindings) {
      if (!owner.owns(b)) continue;
      const ownService = readQueueName(b.destination)?.service === b.source;
      if (ownService && keyOf(b) === keyOf(modelBinding(b.source, b.destination))) {
        if (!queuesHere.has(b.destination)) because(source.name, b, `its queue ${b.destination} is not in the file on this cluster`);
        continue;
      }
      because(
        source.name,
        b,
        ownService
          ? `the file describes only the binding [${b.destination}.#] between a service's exchange and its queue`
          : `the file cannot describe a binding from one service's exchange to another service's queue`,
      );
    }
    for (const r of source.actual.resources) {
      if (r.kind === "queue" && holdingQueueOf(r, owner)) because(source.name, r, `a replace by topo apply was interrupted; topo apply finishes it`);
    }
    // Mirroring: topo's policies follow from the file's mirrored queues.
    for (const kind of KINDS) {
      const policy: Policy = { kind: "policy", name: mirrorPolicyName(prefix, kind), pattern: "", applyTo: "queues", priority: 0, definition: { ...MIRROR_DEFINITION } };
      const via = mirrors.all.filter((m) => m.cluster === source.name && m.kind === kind).map((m) => `${m.policy} (${names(m.queues)})`);
      because(
        source.name,
        policy,
        via.length
          ? `the user's policy ${via.join(" and ")} mirrors ${kind} queues with ha-mode all; the file says mirrored: true, which topo makes with its own policy; after topo apply, delete the user's policy (topo never changes it), or it keeps applying instead of topo's and plan reports those queues as degraded`
          : `topo's mirroring policy follows from the file: its pattern covers exactly the ${kind} queues with mirrored: true, with ${Object.entries(MIRROR_DEFINITION).map(([k, v]) => `${k}=${v}`).join(", ")}; a topo.${prefix}.* policy the file does not imply is deleted`,
      );
    }
    for (const p of policiesOf.get(source.name) ?? []) {
      if (owner.ownsPolicy(p) && p.name !== mirrorPolicyName(prefix, "sync") && p.name !== mirrorPolicyName(prefix, "async")) {
        because(
          source.name,
          p,
          p.name.startsWith("topo.mirror.")
            ? `older versions of topo named their mirroring policy ${p.name}; it becomes ${mirrorPolicyName(prefix, p.name.endsWith(".sync") ? "sync" : "async")}, created before the old one goes, so the queues stay mirrored`
            : `it is in topo's namespace (topo.${prefix}.*) but is not a policy topo makes`,
        );
      }
    }
  }

  // 8. What plan will do on the written file, and what topo leaves alone.
  const clusters: ClusterImport[] = sources.map((source) => {
    const dc = (desired as DesiredState).clusters.find((c) => c.target.name === source.name);
    const actions = dc ? diffCluster(dc, source.actual, prefix).actions : [];
    const reasons = why.get(source.name) as Map<string, string>;
    const changes = actions.map((action): PlannedChange => {
      const r = action.op === "create" ? action.after : action.before;
      const text = action.op === "replace" && action.resume ? reasons.get(keyOf(action.resume.hold)) : reasons.get(action.key) ?? reasons.get(keyOf(r));
      return { action, why: text ?? `the broker differs from anything the file can describe` };
    });
    const gone = new Set(actions.filter((a) => a.op === "delete").map((a) => a.key));

    const notes = kept.get(source.name) as string[];
    const imported = (bySource.get(source.name) ?? []).map((c) => c.queue);
    for (const p of policiesOf.get(source.name) ?? []) {
      if (isTopoName(p.name)) continue;
      const partial = mirrors.partial.find((m) => m.cluster === source.name && m.policy === p.name)?.queues;
      const mirrorsAll = mirrors.all.filter((m) => m.cluster === source.name && m.policy === p.name).flatMap((m) => m.queues);
      let text = `${policyText(p)}: a user's policy`;
      if (partial) {
        text += `; it mirrors ${names(partial)} with ha-mode ${stableJson(p.definition["ha-mode"] as ArgValue)}, but mirrored: true in the file means ha-mode all, so the file says mirrored: false and the policy keeps mirroring them as it does`;
      } else if (mirrorsAll.length) {
        text += `; it mirrors ${names(mirrorsAll)}, which the file marks mirrored: true, the job of topo's own policy: once that exists, delete this one or narrow its pattern`;
      } else {
        let re: RegExp | undefined;
        try {
          re = new RegExp(p.pattern);
        } catch {
          re = undefined;
        }
        const hits = re ? imported.filter((q) => APPLIES_TO[q.type].has(p.applyTo) && (re as RegExp).test(q.name)).map((q) => q.name) : [];
        if (hits.length) text += `; it applies to ${plural(hits.length, "queue")} of this file (${names(hits)})`;
      }
      notes.push(`${text}.`);
    }
    const ownsExchange = (n: string) => owner.owns(modelExchange(n));
    const ownsQueue = (n: string) => readQueueName(n) !== undefined;
    for (const b of source.actual.resources) {
      if (b.kind !== "binding" || owner.owns(b)) continue;
      const touches = ownsExchange(b.source) || (b.destinationType === "queue" ? ownsQueue(b.destination) : ownsExchange(b.destination));
      // A holding queue's bindings belong to the interrupted replace listed above.
      if (!touches || (b.destinationType === "queue" && b.destination.startsWith(HOLD_PREFIX))) continue;
      const lostWith = [keyOf(modelExchange(b.source)), b.destinationType === "queue" ? `queue|${b.destination}` : keyOf(modelExchange(b.destination))].find((k) => gone.has(k));
      const notTopos = !ownsExchange(b.source)
        ? "its source is not a service's exchange"
        : b.destinationType === "exchange"
          ? "it binds an exchange, not a queue"
          : "its destination is not a service's sync or async queue";
      notes.push(
        `binding ${describe(b)}: ${notTopos}, so it is not topo's; ${lostWith ? `it goes when topo apply deletes ${lostWith.replace("|", " ")}` : "topo leaves it alone (and keeps it when it replaces the queue)"}.`,
      );
    }

    const outsideExchanges: string[] = [];
    const outsideQueues: string[] = [];
    for (const r of source.actual.resources) {
      if (r.kind === "exchange" && !owner.owns(r)) outsideExchanges.push(r.name);
      // topo.lock is topo's apply lock, held only while an apply runs: not part of any topology.
      if (r.kind === "queue" && !owner.owns(r) && !holdingQueueOf(r, owner) && r.name !== lockQueueName(prefix)) outsideQueues.push(r.name);
    }
    return {
      name: source.name,
      vhost: source.vhost,
      version: source.actual.version,
      queues: imported.length,
      changes,
      kept: notes,
      outside: { exchanges: outsideExchanges, queues: outsideQueues },
    };
  });

  return { body, clusters, services: new Set(chosen.map((c) => c.service)).size, queues: chosen.length };
}
