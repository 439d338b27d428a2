// Pure: why each object of topo's namespace on a broker differs from what the file describes, where
// it does, in words a user can act on. plan's diff decides what changes; these say why the file
// could not avoid it. annotateChanges pairs the two.

import { TRAFFIC, type Action, type Binding, type Exchange, type Policy } from "../model.js";
import { MIRROR_DEFINITION } from "../config/normalize.js";
import { markedPrefix, mirrorPolicyName, Ownership } from "../core/naming.js";
import { holdingQueueOf } from "../core/naming.js";
import { keyOf, stableJson, subjectOf } from "../core/keys.js";
import { names } from "../core/words.js";
import { modelBinding, modelExchange } from "./file-objects.js";
import { nameTooLong, ownerOf, serviceQueueReader } from "./queues.js";
import type { Chosen, ImportSource, PlannedChange, Reason, UserMirrors } from "./types.js";
import { pushTo } from "../core/collections.js";

/** The reasons of every source, in order: a source's exchanges, its queues' exchanges and bindings, its bindings, its interrupted replaces, its policies. */
export function explainDifferences(sources: ImportSource[], chosen: Chosen[], mirrors: UserMirrors, prefix: string, nameMax?: number): Reason[] {
  const byServiceKind = new Map(chosen.map((c) => [`${c.service}.${c.kind}`, c]));
  return sources.flatMap((source) => {
    const owner = ownerOf(source, prefix);
    const here = chosen.filter((c) => c.wanted.cluster === source.name);
    return [
      ...explainExchanges(source, here, byServiceKind, owner, nameMax),
      ...explainQueueLinks(source, here),
      ...explainBindings(source, here, owner, nameMax),
      ...explainInterruptedReplaces(source, owner),
      ...explainPolicies(source, mirrors, owner),
    ];
  });
}

const exchangesOf = (source: ImportSource) => source.actual.resources.filter((r): r is Exchange => r.kind === "exchange");
const bindingsOf = (source: ImportSource) => source.actual.resources.filter((r): r is Binding => r.kind === "binding");

/** The namespace's exchanges: the file has one only beside a queue of its service, and only as the model exchange. */
function explainExchanges(source: ImportSource, here: Chosen[], byServiceKind: ReadonlyMap<string, Chosen>, owner: Ownership, nameMax: number | undefined): Reason[] {
  const serviceHere = new Set(here.map((c) => c.service));
  const reasons: Reason[] = [];
  const exchanges = new Map(exchangesOf(source).map((e) => [e.name, e]));
  for (const e of exchanges.values()) {
    if (!owner.owns(e)) continue;
    const tooLong = nameTooLong(e.name, nameMax);
    if (tooLong) {
      reasons.push({ cluster: source.name, resource: e, text: tooLong });
    } else if (!serviceHere.has(e.name)) {
      const elsewhere = TRAFFIC.flatMap((k) => byServiceKind.get(`${e.name}.${k}`) ?? []).map((c) => `${c.queue.name} on cluster ${c.wanted.cluster}`);
      reasons.push({
        cluster: source.name,
        resource: e,
        text: `no queue of service ${e.name} is on this cluster in the file${elsewhere.length ? ` (it has ${elsewhere.join(", ")})` : ""}, and the file describes a service's exchange only beside one of its queues`,
      });
    } else if (stableJson(e as never) !== stableJson(modelExchange(e.name) as never)) {
      reasons.push({ cluster: source.name, resource: e, text: `the file cannot describe exchange properties: topo's service exchanges are durable topic exchanges without arguments` });
    }
  }
  return reasons;
}

/** The exchange and binding the file gives each of its queues, where the broker lacks them. */
function explainQueueLinks(source: ImportSource, here: Chosen[]): Reason[] {
  const exchanges = new Set(exchangesOf(source).map((e) => e.name));
  const bindings = bindingsOf(source);
  // Indexed: a broker of 5,000 services holds 10,000 bindings, too many to scan per queue.
  const bindingKeys = new Set(bindings.map(keyOf));
  const toQueue = new Map<string, Binding[]>();
  for (const b of bindings) if (b.destinationType === "queue") pushTo(toQueue, b.destination, b);
  const reasons: Reason[] = [];
  for (const c of here) {
    if (!exchanges.has(c.service)) {
      reasons.push({ cluster: source.name, resource: modelExchange(c.service), text: `queue ${c.queue.name} has no exchange ${c.service}; the file gives every queue its service's topic exchange` });
    }
    const model = modelBinding(c.service, c.queue.name);
    if (bindingKeys.has(keyOf(model))) continue;
    const other = (toQueue.get(c.queue.name) ?? []).filter((b) => b.source === c.service);
    reasons.push({
      cluster: source.name,
      resource: model,
      text: exchanges.has(c.service)
        ? `queue ${c.queue.name} is not bound to ${c.service} with ${model.routingKey}${other.length ? ` (only with ${other.map((b) => `[${b.routingKey}]`).join(", ")})` : ""}; the file binds every queue to its service's exchange with <queue>.#`
        : `queue ${c.queue.name} has no exchange ${c.service} to be bound to; the file binds every queue to its service's exchange with <queue>.#`,
    });
  }
  return reasons;
}

/** The namespace's bindings: the file describes only the model binding of a queue it holds here. */
function explainBindings(source: ImportSource, here: Chosen[], owner: Ownership, nameMax: number | undefined): Reason[] {
  const read = serviceQueueReader(owner.prefix);
  const queuesHere = new Set(here.map((c) => c.queue.name));
  const reasons: Reason[] = [];
  for (const b of bindingsOf(source)) {
    if (!owner.owns(b)) continue;
    const ownService = read(b.destination)?.service === b.source;
    if (ownService && keyOf(b) === keyOf(modelBinding(b.source, b.destination))) {
      if (!queuesHere.has(b.destination)) reasons.push({ cluster: source.name, resource: b, text: nameTooLong(b.source, nameMax) ?? `its queue ${b.destination} is not in the file on this cluster` });
      continue;
    }
    reasons.push({
      cluster: source.name,
      resource: b,
      text: ownService
        ? `the file describes only the binding [${b.destination}.#] between a service's exchange and its queue`
        : `the file cannot describe a binding from one service's exchange to another service's queue`,
    });
  }
  return reasons;
}

function explainInterruptedReplaces(source: ImportSource, owner: Ownership): Reason[] {
  const queues = new Set(source.actual.resources.filter((r) => r.kind === "queue").map((r) => r.name));
  return source.actual.resources.flatMap((r) => {
    const base = holdingQueueOf(r, owner);
    if (base === undefined || r.kind !== "queue") return [];
    if (queues.has(base)) return [{ cluster: source.name, resource: r, text: `a replace by topo apply was interrupted; topo apply finishes it` }];
    const n = source.actual.queueFacts[r.name]?.messages;
    const waiting = n === undefined ? "its messages wait" : `${n} message${n === 1 ? " waits" : "s wait"}`;
    return [
      {
        cluster: source.name,
        resource: r,
        text: `a replace by topo apply was interrupted after it deleted queue ${base}, and ${waiting} in ${r.name}: the broker no longer says what the replace was to make of the queue, so the file lists it as its kind's plain queue; topo apply re-creates it so and moves the messages back: first set in the file the properties it must have`,
      },
    ];
  });
}

/** topo's policies follow from the file's mirrored queues; any other of topo's namespace goes. */
function explainPolicies(source: ImportSource, mirrors: UserMirrors, owner: Ownership): Reason[] {
  const prefix = owner.prefix;
  const reasons: Reason[] = [];
  for (const kind of TRAFFIC) {
    const policy: Policy = { kind: "policy", name: mirrorPolicyName(prefix, kind), pattern: "", applyTo: "queues", priority: 0, definition: { ...MIRROR_DEFINITION } };
    const via = mirrors.all.filter((m) => m.cluster === source.name && m.kind === kind).map((m) => `${m.policy} (${names(m.queues)})`);
    reasons.push({
      cluster: source.name,
      resource: policy,
      text: via.length
        ? `the user's policy ${via.join(" and ")} mirrors ${kind} queues with ha-mode all; the file says mirrored: true, which topo makes with its own policy; after topo apply, delete the user's policy (topo never changes it), or plan keeps warning that it matches the queues topo mirrors (they stay mirrored either way)`
        : `topo's mirroring policy follows from the file: its pattern covers exactly the ${kind} queues with mirrored: true, with ${Object.entries(MIRROR_DEFINITION).map(([k, v]) => `${k}=${v}`).join(", ")}; a topo.${prefix}.* policy the file does not imply is deleted`,
    });
  }
  for (const r of source.actual.resources) {
    if (r.kind !== "policy" || !owner.ownsPolicy(r) || r.name === mirrorPolicyName(prefix, "sync") || r.name === mirrorPolicyName(prefix, "async")) continue;
    reasons.push({
      cluster: source.name,
      resource: r,
      text: r.name.startsWith("topo.mirror.")
        ? `older versions of topo named their mirroring policy ${r.name}; it becomes ${mirrorPolicyName(prefix, r.name.endsWith(".sync") ? "sync" : "async")}, created before the old one goes, so the queues stay mirrored`
        : `it is in topo's namespace (topo.${prefix}.*) but is not a policy topo makes`,
    });
  }
  return reasons;
}

/** The reasons of one cluster by keyOf their object; two reasons for one object are joined. */
export function reasonsOf(cluster: string, reasons: Reason[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const r of reasons) {
    if (r.cluster !== cluster) continue;
    const k = keyOf(r.resource);
    m.set(k, m.has(k) ? `${m.get(k)}; ${r.text}` : r.text);
  }
  return m;
}

/** Each action plan will take, with the reason for it. An interrupted replace is explained by its holding queue. */
export function annotateChanges(actions: Action[], reasons: ReadonlyMap<string, string>): PlannedChange[] {
  return actions.map((action) => {
    const r = subjectOf(action);
    const text = action.op === "replace" && action.resume ? reasons.get(keyOf(action.resume.hold)) : reasons.get(action.key) ?? reasons.get(keyOf(r));
    const mark = action.op === "create" && r.kind === "exchange" ? markedPrefix(r) : undefined;
    if (!text && mark !== undefined) return { action, why: `the vhost holds these services without prefix ${mark}'s apply mark, which apply adds, so that a file of a shorter prefix leaves them alone` };
    return { action, why: text ?? `the broker differs from anything the file can describe` };
  });
}
