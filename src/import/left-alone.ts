// Pure: what a broker holds that the file leaves out and topo leaves alone: users' and operator policies, and
// bindings that touch topo's objects but are not topo's (both listed, with what becomes of them),
// and the exchanges, queues and unmarked users' rights outside topo's namespace (only named).

import type { ArgValue, Exchange, Policy, Queue } from "../model.js";
import { applyMarkName, isTopoName, lockQueueName, userMarkerTag } from "../core/naming.js";
import { HOLD_PREFIX, holdingQueueOf } from "../core/naming.js";
import { describe, exchangeShape, keyOf, stableJson } from "../core/keys.js";
import { names, plural, shownName } from "../core/words.js";
import { policiesFor } from "../plan/risk.js";
import { modelExchange } from "./file-objects.js";
import { ownerOf, serviceQueueReader } from "./queues.js";
import type { ImportSource, UserMirrors } from "./types.js";

function policyText(p: Policy): string {
  const def = Object.entries(p.definition).map(([k, v]) => `${k}=${stableJson(v)}`).join(", ");
  return `policy ${shownName(p.name)} (pattern ${p.pattern}, apply-to ${p.applyTo}, priority ${p.priority}${def ? `, ${def}` : ""})`;
}

/**
 * One note per user's policy and per binding that touches topo's objects without being topo's,
 * saying how it bears on the file. `imported` are the file's queues on this cluster; `gone` the
 * keys of what plan deletes there.
 */
export function listLeftAlone(source: ImportSource, imported: Queue[], gone: ReadonlySet<string>, mirrors: UserMirrors, prefix: string): string[] {
  return [
    ...userPolicyNotes(source, imported, mirrors),
    ...operatorPolicyNotes(source, imported),
    ...sparedExchangeNotes(source, imported, prefix),
    ...foreignBindingNotes(source, gone, prefix),
  ];
}

/**
 * Exchanges named like a service that are not the one shape topo makes, where the file has no
 * queue of that service: plan never deletes them or their bindings (someone else's fanout
 * "mpaudit" under prefix "mp"), and says so; so does the file.
 */
function sparedExchangeNotes(source: ImportSource, imported: Queue[], prefix: string): string[] {
  const owner = ownerOf(source, prefix);
  const read = serviceQueueReader(prefix);
  const servicesHere = new Set(imported.map((q) => read(q.name)?.service));
  const spared = source.actual.resources.filter(
    (r): r is Exchange => r.kind === "exchange" && owner.owns(r) && !servicesHere.has(r.name) && stableJson(r as never) !== stableJson(modelExchange(r.name) as never),
  );
  const names = new Set(spared.map((e) => e.name));
  return [
    ...spared.map(
      (e) =>
        `exchange ${e.name} (${exchangeShape(e)}): named like a service of prefix "${prefix}" but not the durable topic exchange without arguments topo makes, and no queue of service ${e.name} is in the file here, so topo leaves it and its bindings alone.`,
    ),
    ...source.actual.resources.flatMap((b) => (b.kind === "binding" && names.has(b.source) && owner.owns(b) ? [`binding ${describe(b)}: its exchange ${b.source} is left alone, and so is it.`] : [])),
  ];
}

function userPolicyNotes(source: ImportSource, imported: Queue[], mirrors: UserMirrors): string[] {
  const notes: string[] = [];
  const policies = source.actual.resources.filter((r): r is Policy => r.kind === "policy");
  for (const p of source.actual.resources) {
    if (p.kind !== "policy" || isTopoName(p.name)) continue;
    const partial = mirrors.partial.find((m) => m.cluster === source.name && m.policy === p.name);
    const mirrorsAll = mirrors.all.filter((m) => m.cluster === source.name && m.policy === p.name).flatMap((m) => m.queues);
    let text = `${policyText(p)}: a user's policy`;
    if (partial) {
      text += `; it mirrors ${names(partial.queues)} with ha-mode ${stableJson(p.definition["ha-mode"] as ArgValue)}, but mirrored: true in the file means ha-mode all, so the file says mirrored: false and the policy keeps mirroring them as it does`;
    } else if (mirrorsAll.length) {
      text += `; it mirrors ${names(mirrorsAll)}, which the file marks mirrored: true, the job of topo's own policy: once that exists, delete this one or narrow its pattern`;
    } else {
      // The queues it applies to: those it matches where no policy of higher priority does (one
      // of equal priority may apply instead; RabbitMQ's choice between them is not defined).
      const hits = imported.filter((q) => policiesFor(q, policies).some((x) => x.p.name === p.name)).map((q) => q.name);
      const shadowed = imported.filter((q) => !hits.includes(q.name) && policiesFor(q, [p]).some((x) => !x.unread)).map((q) => q.name);
      if (hits.length) text += `; it applies to ${plural(hits.length, "queue")} of this file (${names(hits)})`;
      if (shadowed.length) text += `; it matches ${hits.length ? "" : `${plural(shadowed.length, "queue")} of this file, `}${names(shadowed)}, where a policy of higher priority applies instead`;
    }
    notes.push(`${text}.`);
  }
  return notes;
}

/**
 * The vhost's operator policies: a file holds none, and topo never changes them, so the file
 * leaves each out (a copy of the vhost made from it has none). Each says which of the file's
 * queues it applies to; one that caps them is also listed as degraded.
 */
function operatorPolicyNotes(source: ImportSource, imported: Queue[]): string[] {
  const operatorPolicies = source.actual.operatorPolicies ?? [];
  return operatorPolicies.map((p) => {
    const hits = imported.filter((q) => policiesFor(q, operatorPolicies).some((x) => x.p.name === p.name)).map((q) => q.name);
    return `operator ${policyText(p)}: an operator policy${hits.length ? `; it applies to ${plural(hits.length, "queue")} of this file (${names(hits)})` : ""}.`;
  });
}

function foreignBindingNotes(source: ImportSource, gone: ReadonlySet<string>, prefix: string): string[] {
  const owner = ownerOf(source, prefix);
  const ownsExchange = (n: string) => owner.owns(modelExchange(n));
  const ownsQueue = (n: string) => owner.isServiceQueue(n);
  const notes: string[] = [];
  for (const b of source.actual.resources) {
    if (b.kind !== "binding" || owner.owns(b)) continue;
    const touches = ownsExchange(b.source) || (b.destinationType === "queue" ? ownsQueue(b.destination) : ownsExchange(b.destination));
    // A holding queue's bindings belong to the interrupted replace listed among the changes.
    if (!touches || (b.destinationType === "queue" && b.destination.startsWith(HOLD_PREFIX))) continue;
    const lostWith = [keyOf(modelExchange(b.source)), b.destinationType === "queue" ? `queue|${b.destination}` : keyOf(modelExchange(b.destination))].find((k) => gone.has(k));
    const notTopos = !ownsExchange(b.source)
      ? "its source is not a service's exchange"
      : b.destinationType === "exchange"
        ? "it binds an exchange, not a queue"
        : "its destination is not a service's sync or async queue";
    // A replace re-creates every binding of the exchange or queue it replaces, foreign ones too.
    const ends = [
      ...(ownsExchange(b.source) ? [`exchange ${b.source}`] : []),
      ...(b.destinationType === "queue" ? (ownsQueue(b.destination) ? [`queue ${b.destination}`] : []) : ownsExchange(b.destination) ? [`exchange ${b.destination}`] : []),
    ];
    notes.push(
      `binding ${describe(b)}: ${notTopos}, so it is not topo's; ${lostWith ? `it goes when topo apply deletes ${lostWith.replace("|", " ")}` : `topo leaves it alone (and keeps it when it replaces ${ends.join(" or ")})`}.`,
    );
  }
  return notes;
}

/**
 * The exchanges and queues outside topo's namespace, by name, and the users with rights on the
 * vhost that topo did not mark (a file writes only the users it marked; the users topo connects
 * as, `own`, get their rights with the cluster).
 */
export function listOutside(source: ImportSource, prefix: string, own: readonly string[] = []): { exchanges: string[]; queues: string[]; users: string[] } {
  const owner = ownerOf(source, prefix);
  const marker = userMarkerTag(prefix);
  const marked = new Set(source.actual.resources.flatMap((r) => (r.kind === "user" && r.tags.includes(marker) ? [r.name] : [])));
  const users = source.actual.resources.flatMap((r) => (r.kind === "permission" && !marked.has(r.user) && !own.includes(r.user) ? [r.user] : []));
  const exchanges: string[] = [];
  const queues: string[] = [];
  for (const r of source.actual.resources) {
    // topo.<prefix>.generation is the apply mark, renewed by every apply that writes.
    if (r.kind === "exchange" && !owner.owns(r) && r.name !== applyMarkName(prefix)) exchanges.push(r.name);
    // topo.lock is topo's apply lock, held only while an apply runs: not part of any topology.
    if (r.kind === "queue" && !owner.owns(r) && !holdingQueueOf(r, owner) && r.name !== lockQueueName(prefix)) queues.push(r.name);
  }
  return { exchanges, queues, users: [...new Set(users)].sort() };
}
