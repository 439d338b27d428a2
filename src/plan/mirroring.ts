// Pure: is every queue the file mirrors really mirrored (RabbitMQ 3.x classic mirroring)? And do
// the user's own policies collide with topo's? topo never changes a user's policy; it says what
// it sees and what to do.

import type { ActualCluster, DesiredCluster, Policy } from "../model.js";
import { isTopoName } from "../core/naming.js";
import { majorMinor } from "./compat.js";
import { names } from "./render.js";

export interface MirrorReport {
  /** Drift topo cannot repair by itself: counts as a change for --detailed-exitcode. */
  degraded: string[];
  warnings: string[];
}

const APPLIES_TO_CLASSIC = new Set(["queues", "all", "classic_queues"]);

/** RabbitMQ patterns are PCRE; JavaScript's RegExp reads the ones people write the same way. */
function matcher(pattern: string): RegExp | undefined {
  try {
    return new RegExp(pattern);
  } catch {
    return undefined;
  }
}

export function mirroring(desired: DesiredCluster, actual: ActualCluster): MirrorReport {
  const out: MirrorReport = { degraded: [], warnings: [] };
  const [major] = majorMinor(actual.version);
  if (major === 0 || major >= 4) return out;
  const mirrored = desired.queues.filter((q) => q.mirrored);
  if (mirrored.length === 0) return out;

  const policies = actual.resources.filter((r): r is Policy => r.kind === "policy");
  const ours = new Map(policies.filter((p) => isTopoName(p.name)).map((p) => [p.name, p]));
  const existing = new Set(actual.resources.filter((r) => r.kind === "queue").map((r) => r.name));

  // User policies that match queues topo mirrors: in 3.x only one policy applies to a queue, so
  // either the user's policy or topo's mirroring is lost for them.
  for (const p of policies) {
    if (isTopoName(p.name) || !APPLIES_TO_CLASSIC.has(p.applyTo)) continue;
    const re = matcher(p.pattern);
    if (!re) continue;
    const hit = mirrored.filter((q) => re.test(q.queue.name));
    if (hit.length === 0) continue;
    const topo = [...ours.values()].find((t) => hit.some((q) => matcher(t.pattern)?.test(q.queue.name)));
    const topoPriority = topo?.priority ?? 0;
    if (p.priority > topoPriority) {
      out.warnings.push(
        `policy "${p.name}" (priority ${p.priority}) shadows topo's mirroring policy (priority ${topoPriority}) on ${hit.length} queue${hit.length === 1 ? "" : "s"} (${names(hit.map((q) => q.queue.name))}): they are not mirrored; add "ha-mode": "all", "ha-sync-mode": "automatic" to "${p.name}", or narrow its pattern`,
      );
    } else {
      out.warnings.push(
        `policy "${p.name}" (priority ${p.priority}) matches ${hit.length} queue${hit.length === 1 ? "" : "s"} topo mirrors (${names(hit.map((q) => q.queue.name))}), but topo's mirroring policy takes precedence, so "${p.name}"'s settings do not apply to them; narrow its pattern, or give it a higher priority and add the ha- keys to it`,
      );
    }
  }

  const running = actual.nodes;
  const notMirrored: string[] = [];
  const missing = new Map<string, string[]>();
  const syncing: string[] = [];
  for (const spec of mirrored) {
    const name = spec.queue.name;
    if (!existing.has(name)) continue; // plan creates it; nothing to judge yet
    const facts = actual.queueFacts[name] ?? {};
    // `policy` is reported a few seconds after a declare: an empty one is not yet known, only a
    // different one is evidence.
    if (facts.policy && !isTopoName(facts.policy)) {
      notMirrored.push(`${name} (effective policy "${facts.policy}")`);
      continue;
    }
    if (running.length < 2 || facts.mirrors === undefined) continue;
    const others = running.filter((n) => n !== facts.node);
    const absent = others.filter((n) => !facts.mirrors?.includes(n));
    for (const n of absent) missing.set(n, [...(missing.get(n) ?? []), name]);
    if (absent.length === 0 && others.some((n) => !facts.synchronisedMirrors?.includes(n))) syncing.push(name);
  }
  if (notMirrored.length) {
    out.degraded.push(`${notMirrored.length} queue${notMirrored.length === 1 ? " is" : "s are"} not mirrored because another policy applies to them: ${names(notMirrored)}; see the policy warning above`);
  }
  for (const [node, qs] of missing) {
    out.degraded.push(`${qs.length} mirrored queue${qs.length === 1 ? " has" : "s have"} no mirror on node ${node}: ${names(qs)}; RabbitMQ adds it when the node is up and the policy applies (check rabbitmqctl list_queues name policy slave_pids)`);
  }
  for (const n of actual.downNodes ?? []) {
    out.degraded.push(`node ${n} is down: the mirrored queues have one copy fewer until it is back (rabbitmqctl -n ${n} start_app, or start the node)`);
  }
  if (syncing.length) out.warnings.push(`${syncing.length} mirror${syncing.length === 1 ? " is" : "s are"} still synchronising: ${names(syncing)}`);
  return out;
}
