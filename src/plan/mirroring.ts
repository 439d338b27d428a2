// Pure: is every queue the file mirrors really mirrored (RabbitMQ 3.x classic mirroring)? And do
// the user's own policies collide with topo's? topo never changes a user's policy; it says what
// it sees and what to do.

import type { ActualCluster, DesiredCluster, Policy, Queue, QueueType, Resource } from "../model.js";
import { assertNever } from "../model.js";
import { isTopoName } from "../core/naming.js";
import { majorMinor } from "./compat.js";
import { names, plural, quoted, setUserTags, shellWord } from "../core/words.js";
import { policyRegExp } from "../core/policy-pattern.js";
import { pushAll, pushTo } from "../core/collections.js";
import { policiesOnceApplied } from "./risk.js";

export interface MirrorReport {
  /** Drift topo cannot repair by itself: counts as a change for --detailed-exitcode. */
  degraded: string[];
  /** Of `degraded`, what the nodes are now (a mirror missing, a node down), whatever a plan's policies do. */
  ofNodes?: string[];
  warnings: string[];
  /** "mirroring" when topo could not read the nodes to verify it (a warning says so). */
  notCompared: string[];
}

/** Which queues a policy's apply-to reaches, by queue type. */
export const APPLIES_TO: Record<QueueType, ReadonlySet<string>> = {
  classic: new Set(["queues", "all", "classic_queues"]),
  quorum: new Set(["queues", "all", "quorum_queues"]),
  stream: new Set(["queues", "all", "streams"]),
};

/** RabbitMQ patterns are PCRE; one JavaScript cannot read cannot be judged here (no match). */
function matches(pattern: string, name: string): boolean {
  return policyRegExp(pattern)?.test(name) ?? false;
}

/** Whether JavaScript reads a pattern at all; one it cannot (`(?i)`) is judged by the broker alone. */
function readable(pattern: string): boolean {
  return policyRegExp(pattern) !== undefined;
}

/**
 * Policies that reach a queue by apply-to and pattern, the one RabbitMQ applies first. RabbitMQ
 * leaves the order of equal priorities unspecified (on 3.10 neither the names nor the order they
 * were set in decide it); topo's own policy (`ours`) is taken first, then names in order, so that
 * plan and import at least agree with each other, and plan warns where a user's policy ties
 * with topo's.
 */
function policiesMatching(policies: readonly Policy[], queue: Queue, ours: (p: Policy) => boolean = () => false): Policy[] {
  const rank = (p: Policy) => (ours(p) ? 0 : 1);
  return policies
    .filter((p) => APPLIES_TO[queue.type].has(p.applyTo) && matches(p.pattern, queue.name))
    .sort((a, b) => b.priority - a.priority || rank(a) - rank(b) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The policy RabbitMQ applies to a queue: the one it reports, else the highest-priority match. */
export function effectivePolicy(policies: readonly Policy[], queue: Queue, reported: string | undefined, ours?: (p: Policy) => boolean): Policy | undefined {
  // The broker's own answer wins, but it is filled in only some seconds after a declare.
  const named = reported ? policies.find((p) => p.name === reported) : undefined;
  return named ?? policiesMatching(policies, queue, ours)[0];
}

/** Who mirrors a classic queue (RabbitMQ 3.x: only the effective policy's ha- keys count). */
export type Mirroring =
  /** No policy with an ha-mode applies. */
  | { by: "none" }
  /** topo's own policy (whatever someone made of it). */
  | { by: "topo" }
  /** A user's policy that mirrors like topo's (ha-mode all): the queue is mirrored to every node. */
  | { by: "user-all"; policy: string }
  /** A user's policy with another ha-mode: mirrored, but not to every node as mirrored: true means. */
  | { by: "user-partial"; policy: string; mode: string };

/**
 * The one answer to "is this queue mirrored, and by which policy": plan and import both ask it.
 * `ours` says which policies are topo's.
 */
export function mirroringOf(queue: Queue, policies: readonly Policy[], reported: string | undefined, ours: (p: Policy) => boolean): Mirroring {
  if (queue.type !== "classic") return { by: "none" };
  return mirroringBy(effectivePolicy(policies, queue, reported, ours), ours);
}

/** Who mirrors a classic queue whose effective policy is `p`. */
function mirroringBy(p: Policy | undefined, ours: (p: Policy) => boolean): Mirroring {
  const haMode = p?.definition["ha-mode"];
  if (!p || haMode === undefined) return { by: "none" };
  if (ours(p)) return { by: "topo" };
  return haMode === "all" ? { by: "user-all", policy: p.name } : { by: "user-partial", policy: p.name, mode: String(haMode) };
}


/**
 * The command that adds the monitoring tag: with the user's tags where they were read (set_user_tags
 * replaces them all: the old advice, "policymaker monitoring" for everyone, took administrator
 * from an administrator), else a placeholder for them.
 */
function monitoringHint(user: string, tags: readonly string[] | undefined): string {
  if (tags) return setUserTags(user, tags, "monitoring");
  return `rabbitmqctl set_user_tags ${shellWord(user)} TAGS... monitoring, where TAGS are the tags it has now (rabbitmqctl list_users shows them): the command replaces the user's tags`;
}

export function mirroring(desired: DesiredCluster, actual: ActualCluster): MirrorReport {
  const out: MirrorReport = { degraded: [], warnings: [], notCompared: [] };
  const [major] = majorMinor(actual.version);
  if (major === 0 || major >= 4) return out;
  const mirrored = desired.queues.filter((q) => q.mirrored && q.queue.type === "classic");
  if (mirrored.length === 0) return out;
  // Without the nodes, a queue missing its mirror on a running node and a node that is down look
  // like a mirrored queue on a one-node cluster: plan said "No changes." without having looked.
  if (actual.nodesUnreadable) {
    out.warnings.push(
      `mirroring not verified: ${actual.nodesUnreadable}, so topo cannot tell whether ${plural(mirrored.length, "queue")} the file mirrors (${names(mirrored.map((q) => q.queue.name))}) ${mirrored.length === 1 ? "has a mirror" : "have mirrors"} on every running node, nor whether a node is down; give ${shellWord(desired.target.management.username)} the monitoring tag besides its others: ${monitoringHint(desired.target.management.username, actual.managementTags)}`,
    );
    out.notCompared.push("mirroring");
  }

  const ours = (p: Policy) => isTopoName(p.name);
  const isPolicy = (r: Resource): r is Policy => r.kind === "policy";
  // The policies as they will be after apply: the user's as they are, topo's as the file says.
  const policies = [...actual.resources.filter(isPolicy).filter((p) => !ours(p)), ...desired.resources.filter(isPolicy).filter(ours)];
  const existing = new Set(actual.resources.filter((r) => r.kind === "queue").map((r) => r.name));
  const byName = new Map(policies.map((p) => [p.name, p]));
  const topos = policies.filter(ours);
  const topoPriority = (q: Queue) => policiesMatching(topos, q)[0]?.priority ?? 0;

  // In 3.x only one policy applies to a queue: a user's policy that wins decides its mirroring.
  const shadowing = new Map<string, { how: Mirroring; queues: string[]; topo: number }>();
  const outranked = new Map<string, string[]>();
  const tied = new Map<string, string[]>();
  const notMirrored: string[] = [];
  const partly: string[] = [];
  const judged: string[] = [];
  const unsure = new Map<string, { queues: string[]; topo: number }>();
  for (const spec of mirrored) {
    const name = spec.queue.name;
    const facts = existing.has(name) ? (actual.queueFacts[name] ?? {}) : {};
    // `policy` is reported a few seconds after a declare: an empty one is not yet known. One of
    // topo's is not taken at its word, since apply may be about to change topo's policies.
    const reported = facts.policy && !isTopoName(facts.policy) ? facts.policy : undefined;
    // Worked out once per queue (mirroringOf would work it out again): 25,000 mirrored queues.
    const applies = effectivePolicy(policies, spec.queue, reported, ours);
    const m = mirroringBy(applies, ours);
    if (m.by === "topo") {
      // A user's policy JavaScript cannot read may be the one RabbitMQ applies: only the broker's
      // report can tell, and it comes a few seconds after a declare.
      const topo = topoPriority(spec.queue);
      const mayWin = facts.policy ? undefined : policies.find((p) => !ours(p) && APPLIES_TO[spec.queue.type].has(p.applyTo) && p.priority > topo && !readable(p.pattern));
      if (mayWin) {
        const entry = unsure.get(mayWin.name) ?? { queues: [], topo };
        entry.queues.push(name);
        unsure.set(mayWin.name, entry);
        continue;
      }
      // A user's policy of topo's own priority is RabbitMQ's choice as much as topo's: not outranked.
      for (const p of policiesMatching(policies, spec.queue)) {
        if (ours(p)) continue;
        const into = p.priority === topo ? tied : outranked;
        pushTo(into, p.name, name);
      }
      judged.push(name);
      continue;
    }
    if (!applies || ours(applies)) continue; // topo's policy without an ha-mode: plan updates it
    const entry = shadowing.get(applies.name) ?? { how: m, queues: [], topo: topoPriority(spec.queue) };
    entry.queues.push(name);
    shadowing.set(applies.name, entry);
    if (m.by === "user-all") judged.push(name);
    else if (existing.has(name) && m.by === "user-partial") partly.push(`${name} (effective policy ${quoted(applies.name)}, ha-mode ${m.mode})`);
    else if (existing.has(name)) notMirrored.push(`${name} (effective policy ${quoted(applies.name)})`);
  }

  for (const [policy, { how, queues, topo }] of shadowing) {
    const p = byName.get(policy);
    const head = `policy "${policy}" (priority ${p?.priority ?? "?"}) shadows topo's mirroring policy (priority ${topo}) on ${plural(queues.length, "queue")} (${names(queues)})`;
    switch (how.by) {
      case "user-all": {
        out.warnings.push(`${head}: it has "ha-mode": "all", so they are mirrored, by "${policy}" rather than by topo; delete "${policy}" or narrow its pattern to let topo's policy apply`);
        // Without automatic synchronisation a mirror added later (a node restarted, one joined)
        // holds none of what the queue held then, and losing the master loses those messages:
        // topo's policy sets "ha-sync-mode": "automatic", and the file's mirrored: true means it.
        const sync = p?.definition["ha-sync-mode"];
        const held = queues.filter((q) => existing.has(q));
        if (sync !== "automatic" && held.length) {
          out.degraded.push(
            `${plural(held.length, "queue")} ${held.length === 1 ? "is" : "are"} mirrored by policy "${policy}" without "ha-sync-mode": "automatic" (${sync === undefined ? "it has none, and RabbitMQ's default is manual" : `it has ${JSON.stringify(sync)}`}): ${names(held)}; a mirror added after a node restarts holds none of the messages queued before it, so a failover then loses them; add "ha-sync-mode": "automatic" to "${policy}", or narrow its pattern to let topo's policy apply`,
          );
        }
        break;
      }
      case "user-partial":
        out.warnings.push(`${head}: its "ha-mode": "${how.mode}" mirrors them to some nodes, not to every node as mirrored: true means; set "ha-mode": "all" in "${policy}", or narrow its pattern`);
        break;
      case "none":
        out.warnings.push(`${head}: they are not mirrored, since "${policy}" has no ha-mode; add "ha-mode": "all", "ha-sync-mode": "automatic" to "${policy}", or narrow its pattern`);
        break;
      case "topo":
        break; // never here: topo's own policy shadows nothing
      default:
        assertNever(how);
    }
  }
  for (const [policy, { queues, topo }] of unsure) {
    const p = byName.get(policy) as Policy;
    out.warnings.push(
      `topo cannot tell whether ${plural(queues.length, "queue")} ${queues.length === 1 ? "is" : "are"} mirrored (${names(queues)}): policy "${policy}" (priority ${p.priority}, above topo's ${topo}) has a pattern topo cannot read ("${p.pattern}"), and RabbitMQ has not yet said which policy applies to ${queues.length === 1 ? "it" : "them"}; run topo plan again once it has (a few seconds after a declare), or write the pattern without PCRE-only syntax`,
    );
  }
  for (const [policy, queues] of outranked) {
    const p = byName.get(policy);
    out.warnings.push(
      `policy "${policy}" (priority ${p?.priority ?? "?"}) matches ${plural(queues.length, "queue")} topo mirrors (${names(queues)}), but topo's mirroring policy takes precedence, so "${policy}"'s settings do not apply to them; narrow its pattern, or give it a higher priority and add the ha- keys to it`,
    );
  }
  for (const [policy, queues] of tied) {
    const p = byName.get(policy);
    const one = queues.length === 1;
    const priority = p?.priority ?? 0;
    const mode = p?.definition["ha-mode"];
    const theirs =
      mode === undefined ? `${one ? "it is" : "they are"} not mirrored` : mode === "all" ? `${one ? "it is" : "they are"} mirrored by it (ha-mode all)` : `${one ? "it is" : "they are"} mirrored to some nodes only (ha-mode ${String(mode)})`;
    out.warnings.push(
      `policy "${policy}" (priority ${priority}) matches ${plural(queues.length, "queue")} topo mirrors (${names(queues)}) with the same priority as topo's mirroring policy: RabbitMQ applies one of the two and does not define which, so either topo's applies and "${policy}"'s settings do not, or "${policy}"'s applies and ${theirs}; give "${policy}" a priority above ${priority} and add the ha- keys to it, or one below ${priority}`,
    );
  }
  if (notMirrored.length) {
    out.degraded.push(`${notMirrored.length} queue${notMirrored.length === 1 ? " is" : "s are"} not mirrored because another policy applies to ${notMirrored.length === 1 ? "it" : "them"}: ${names(notMirrored)}; see the policy warning above`);
  }
  if (partly.length) {
    out.degraded.push(`${partly.length} queue${partly.length === 1 ? " is" : "s are"} not mirrored to every node because another policy applies to ${partly.length === 1 ? "it" : "them"}: ${names(partly)}; see the policy warning above`);
  }

  const running = actual.nodes;
  const missing = new Map<string, string[]>();
  const syncing: string[] = [];
  for (const name of judged) {
    if (!existing.has(name)) continue; // plan creates it; nothing to judge yet
    const facts = actual.queueFacts[name] ?? {};
    if (running.length < 2 || facts.mirrors === undefined) continue;
    const others = running.filter((n) => n !== facts.node);
    const absent = others.filter((n) => !facts.mirrors?.includes(n));
    for (const n of absent) pushTo(missing, n, name);
    if (absent.length === 0 && others.some((n) => !facts.synchronisedMirrors?.includes(n))) syncing.push(name);
  }
  const ofNodes: string[] = [];
  for (const [node, qs] of missing) {
    ofNodes.push(`${qs.length} mirrored queue${qs.length === 1 ? " has" : "s have"} no mirror on node ${node}: ${names(qs)}; RabbitMQ adds it when the node is up and the policy applies (check rabbitmqctl list_queues name policy slave_pids)`);
  }
  for (const n of actual.downNodes ?? []) {
    ofNodes.push(`node ${n} is down: the mirrored queues have one copy fewer until it is back (rabbitmqctl -n ${n} start_app, or start the node)`);
  }
  if (ofNodes.length) {
    pushAll(out.degraded, ofNodes);
    out.ofNodes = ofNodes;
  }
  if (syncing.length) out.warnings.push(`${syncing.length} mirror${syncing.length === 1 ? " is" : "s are"} still synchronising: ${names(syncing)}`);
  return out;
}

/**
 * Queues the file says are not mirrored (mirrored: false) that a policy topo does not own mirrors
 * on a 3.x broker: a user's policy, or another prefix's mirroring policy whose pattern was written
 * before this prefix's queues were there (a nested prefix: `^ex[a-z_]+` covers `exxtwo.sync`). The
 * queue's mirroring is not what the file says, and topo does not change what it does not own:
 * drift it cannot repair. The policies are as they will be after apply (this prefix's as the file
 * says); a queue the broker reports under a policy of this prefix is judged by the patterns.
 */
export function mirroredAgainstFile(desired: DesiredCluster, actual: ActualCluster, owns: (p: Policy) => boolean): string[] {
  const [major] = majorMinor(actual.version);
  if (major === 0 || major >= 4) return [];
  const policies = policiesOnceApplied(desired, actual, owns);
  const byPolicy = new Map<string, string[]>();
  for (const spec of desired.queues) {
    if (spec.mirrored || spec.queue.type !== "classic") continue;
    const reported = actual.queueFacts[spec.queue.name]?.policy;
    const p = effectivePolicy(policies, spec.queue, reported && !policies.some((x) => x.name === reported && owns(x)) ? reported : undefined, owns);
    if (p && !owns(p) && p.definition["ha-mode"] !== undefined) pushTo(byPolicy, p.name, spec.queue.name);
  }
  return [...byPolicy].map(([policy, queues]) => {
    const p = policies.find((x) => x.name === policy) as Policy;
    const other = isTopoName(policy) ? ` (topo's for another prefix: an apply of that prefix's file narrows its pattern to leave this prefix's services out)` : "";
    return `${plural(queues.length, "queue")} the file does not mirror (mirrored: false) ${queues.length === 1 ? "is" : "are"} mirrored by policy ${quoted(policy)}${other}, priority ${p.priority}, "ha-mode": ${JSON.stringify(p.definition["ha-mode"])}: ${names(queues)}; topo does not change a policy it does not own: narrow its pattern, or give the queue${queues.length === 1 ? "" : "s"} mirrored: true`;
  });
}
