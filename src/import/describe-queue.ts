// Pure: what the file can say about one queue (its type, durability, mirroring and the arguments
// the file can hold), and why it cannot say the rest.

import type { Args, Policy } from "../model.js";
import { mirroringOf, type Mirroring } from "../plan/mirroring.js";
import { sortArgs } from "../core/keys.js";
import type { Ownership } from "../core/naming.js";
import { stableJson } from "../core/keys.js";
import type { ArgumentProblem } from "./arguments.js";
import { argumentSetProblems } from "./argument-rule.js";
import type { Found, UserMirrors, Wanted } from "./types.js";

// One truth about mirroring, shared with plan: which policy applies, and what its ha-mode means.
export { APPLIES_TO, effectivePolicy, type Mirroring } from "../plan/mirroring.js";

export interface QueueDescription {
  wanted: Wanted;
  mirroring: Mirroring;
  /** Why the file cannot describe the queue as the broker holds it; empty when it can. */
  cannot: string[];
}

export interface QueueContext {
  owner: Ownership;
  /** The policies of the queue's cluster. */
  policies: Policy[];
  argumentProblem: ArgumentProblem;
}

/** Who mirrors a queue: the policy that applies to it, read by its ha-mode and owner. */
function mirroringIn(f: Found, ctx: Pick<QueueContext, "owner" | "policies">): Mirroring {
  return mirroringOf(f.queue, ctx.policies, f.source.actual.queueFacts[f.queue.name]?.policy, (p) => ctx.owner.ownsPolicy(p));
}

/** What the file can say about one queue, and why not the rest. */
export function describeQueue(f: Found, ctx: QueueContext): QueueDescription {
  const q = f.queue;
  const cannot: string[] = [];
  if (q.autoDelete || q.exclusive) {
    cannot.push(`the file cannot describe ${[q.autoDelete ? "auto-delete" : "", q.exclusive ? "exclusive" : ""].filter(Boolean).join(" or ")} queues: topo's queues outlive their consumers and connections`);
  }
  const args: Args = {};
  for (const [name, value] of Object.entries(q.arguments)) {
    const problem = ctx.argumentProblem(f.kind, q.type, name, value);
    if (problem) cannot.push(`argument ${name}=${stableJson(value)} cannot be written in the file (${problem})`);
    else args[name] = value;
  }
  for (const [name, problem] of argumentSetProblems(q.type, args)) {
    cannot.push(`argument ${name}=${stableJson(args[name])} cannot be written in the file (${problem})`);
    delete args[name];
  }
  const mirroring = mirroringIn(f, ctx);
  return {
    wanted: {
      cluster: f.source.name,
      type: q.type,
      durable: q.type === "classic" ? q.durable : true,
      mirrored: mirroring.by === "topo" || mirroring.by === "user-all",
      arguments: sortArgs(args),
    },
    mirroring,
    cannot,
  };
}

/** Users' mirroring policies the described queues fall under, in the order first met. */
export function collectUserMirrors(described: (Found & { mirroring: Mirroring })[]): UserMirrors {
  const mirrors: UserMirrors = { all: [], partial: [] };
  for (const d of described) {
    const cluster = d.source.name;
    const m = d.mirroring;
    if (m.by === "user-all") {
      const entry = mirrors.all.find((e) => e.cluster === cluster && e.kind === d.kind && e.policy === m.policy);
      if (entry) entry.queues.push(d.queue.name);
      else mirrors.all.push({ cluster, kind: d.kind, policy: m.policy, queues: [d.queue.name] });
    } else if (m.by === "user-partial") {
      const entry = mirrors.partial.find((e) => e.cluster === cluster && e.policy === m.policy);
      if (entry) entry.queues.push(d.queue.name);
      else mirrors.partial.push({ cluster, policy: m.policy, queues: [d.queue.name] });
    }
  }
  return mirrors;
}
