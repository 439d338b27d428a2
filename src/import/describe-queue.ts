// Pure: what the file can say about one queue (its type, durability, mirroring and the arguments
// the file can hold), and why it cannot say the rest.

import type { Args, Policy, Queue, QueueType } from "../model.js";
import { sortArgs } from "../core/keys.js";
import type { Ownership } from "../core/naming.js";
import { stableJson } from "../core/keys.js";
import type { ArgumentProblem } from "./arguments.js";
import type { Found, UserMirrors, Wanted } from "./types.js";

/** Which queues a policy's apply-to reaches, by queue type. */
export const APPLIES_TO: Record<QueueType, ReadonlySet<string>> = {
  classic: new Set(["queues", "all", "classic_queues"]),
  quorum: new Set(["queues", "all", "quorum_queues"]),
  stream: new Set(["queues", "all", "streams"]),
};

/** The policy RabbitMQ applies to a queue: the one it reports, else the highest-priority match. */
export function effectivePolicy(policies: Policy[], queue: Queue, reported: string | undefined): Policy | undefined {
  // The broker's own answer wins, but it is filled in only some seconds after a declare.
  const named = reported ? policies.find((p) => p.name === reported) : undefined;
  if (named) return named;
  const matching = policies.filter((p) => {
    if (!APPLIES_TO[queue.type].has(p.applyTo)) return false;
    try {
      return new RegExp(p.pattern).test(queue.name);
    } catch {
      return false; // a PCRE pattern JavaScript cannot read: it cannot be judged here
    }
  });
  matching.sort((a, b) => b.priority - a.priority || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return matching[0];
}

/** Who mirrors a classic queue, as far as the file is concerned. */
export type Mirroring =
  /** No policy with an ha-mode applies: mirrored: false. */
  | { by: "none" }
  /** topo's own policy (whatever someone made of it): mirrored: true. */
  | { by: "topo" }
  /** A user's policy that mirrors like topo's (ha-mode all): mirrored: true, from now on by topo's policy. */
  | { by: "user-all"; policy: string }
  /** A user's policy with another ha-mode, which mirrored: true cannot mean: mirrored: false. */
  | { by: "user-partial"; policy: string };

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
function mirroringOf(f: Found, ctx: Pick<QueueContext, "owner" | "policies">): Mirroring {
  if (f.queue.type !== "classic") return { by: "none" };
  const p = effectivePolicy(ctx.policies, f.queue, f.source.actual.queueFacts[f.queue.name]?.policy);
  const haMode = p?.definition["ha-mode"];
  if (!p || haMode === undefined) return { by: "none" };
  if (ctx.owner.ownsPolicy(p)) return { by: "topo" };
  return haMode === "all" ? { by: "user-all", policy: p.name } : { by: "user-partial", policy: p.name };
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
  const mirroring = mirroringOf(f, ctx);
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
