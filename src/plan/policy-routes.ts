// Pure: where a user's policy sends the messages of the file's queues and exchanges that the file
// says go nowhere. A queue's x-dead-letter-exchange and x-dead-letter-routing-key, and an
// exchange's alternate-exchange, each win over a policy's where the object has one, and the
// policy's applies where it has none (measured on 3.10.8, key by key: a queue declared with
// x-dead-letter-exchange A under a policy's dead-letter-exchange B and dead-letter-routing-key
// k.pol dead-lettered a rejected message to A with key k.pol; one declared with neither, to B with
// k.pol; an exchange under a policy's alternate-exchange B sent a message none of its bindings
// routed to B). The same values as arguments are drift that plan shows; a plan that compared
// arguments only said "No changes" of a policy that dead-letters one service's rejected tasks into
// another service's exchange. So a policy's dead-letter exchange on a queue the file gives none is
// drift; a policy's routing key where the file gives an exchange only fills in the key the file
// left out, as a policy that parks what the default exchange would drop does (the file chose to
// dead-letter, and where). Operator policies cannot set these keys. The policy is not topo's, so
// topo cannot repair it: plan says so.

import type { ActualCluster, DesiredCluster, Exchange, Policy } from "../model.js";
import { policiesOnceApplied, policiesForExchange } from "./risk.js";
import { addQueue, policiesApplied, whyUnsure } from "./policy-limits.js";
import { escapeUnsafe, names, plural, quoted, shellWord } from "../core/words.js";
import { asString } from "../core/values.js";

export interface PolicyRouteReport {
  /** A policy surely dead-letters the file's queues where the file says otherwise: drift topo cannot repair. */
  degraded: string[];
  /**
   * One may (topo cannot tell which policy RabbitMQ picks), or a policy gives the file's
   * exchanges an alternate exchange, which the file cannot say (its exchanges take no arguments).
   */
  warnings: string[];
}

const DLX = "dead-letter-exchange";
const DLRK = "dead-letter-routing-key";
const AE = "alternate-exchange";

interface Finding {
  policy: Policy;
  /** The policy's values that decide, by argument name: x-dead-letter-exchange, then x-dead-letter-routing-key if it gives one. */
  decides: [string, string][];
  unsure?: string;
  queues: string[];
}

/** `owns`: the policies that are topo's (the file's are taken as it wants them). */
export function policyRoutes(desired: DesiredCluster, actual: ActualCluster, owns: (p: Policy) => boolean): PolicyRouteReport {
  const out: PolicyRouteReport = { degraded: [], warnings: [] };
  const policies = policiesOnceApplied(desired, actual, owns);
  const routing = policies.filter((p) => !owns(p) && (DLX in p.definition || DLRK in p.definition || AE in p.definition));
  if (!routing.length) return out;
  const vhost = desired.target.amqp.vhost;
  const list = `rabbitmqctl list_policies -p ${shellWord(vhost)}`;
  if (routing.some((p) => DLX in p.definition || DLRK in p.definition)) {
    const applied = policiesApplied(actual, policies, owns);
    const found = new Map<string, Finding>();
    for (const { queue } of desired.queues) {
      // A stream dead-letters nothing.
      if (queue.type === "stream") continue;
      const fileExchange = asString(queue.arguments["x-dead-letter-exchange"]);
      const fileKey = asString(queue.arguments["x-dead-letter-routing-key"]);
      const candidates = applied(queue);
      for (const { p, unread } of candidates) {
        if (owns(p)) continue;
        // Where the file dead-letters, a policy's routing key only fills in the key the file left
        // out (a policy that parks what the file's default exchange would drop): the file chose
        // to keep them, and where. Where it does not, a policy's exchange keeps what it drops.
        const exchange = fileExchange === undefined ? asString(p.definition[DLX]) : undefined;
        if (exchange === undefined) continue;
        const key = fileKey === undefined ? asString(p.definition[DLRK]) : undefined;
        const decides: [string, string][] = [["x-dead-letter-exchange", exchange], ...(key !== undefined ? [["x-dead-letter-routing-key", key] as [string, string]] : [])];
        const unsure = whyUnsure("policy", p, unread, candidates);
        addQueue(found, [p.name, decides, unsure ?? null], { policy: p, decides, ...(unsure ? { unsure } : {}) }, queue.name);
      }
    }
    for (const f of found.values()) {
      const n = f.queues.length;
      const them = n === 1 ? "it" : "them";
      const [exchange, key] = [f.decides[0]?.[1] ?? "", f.decides[1]?.[1]];
      const sets = f.decides.map(([arg, v]) => `${arg.slice(2)} ${quoted(escapeUnsafe(v))}`).join(" and ");
      const what = `policy ${quoted(f.policy.name)} sets ${sets} on ${plural(n, "queue")} (${names(f.queues)}) and the file gives ${them} no x-dead-letter-exchange`;
      const by = key !== undefined ? ` with routing key ${quoted(escapeUnsafe(key))}` : "";
      const does = `the broker dead-letters what ${n === 1 ? "the queue drops" : "they drop"} (a message rejected without requeue, one that expires or that a length limit pushes out) to exchange ${quoted(escapeUnsafe(exchange))}${by}, where the file says ${n === 1 ? "it drops" : "they drop"} them`;
      const write = f.decides.map(([arg, v]) => `${arg}: ${escapeUnsafe(v)}`).join(" and ");
      const fix = `change policy ${quoted(f.policy.name)} (${list}), or write ${write} for ${them} in the file, so that it says what the broker does`;
      if (f.unsure) out.warnings.push(`${what}: if it applies, ${does}; ${f.unsure}, so topo cannot tell whether it does (rabbitmqctl list_queues -p ${shellWord(vhost)} name policy shows it); ${fix}`);
      else out.degraded.push(`${what}: ${does}; ${fix}`);
    }
  }
  if (routing.some((p) => AE in p.definition)) {
    const found = new Map<string, { policy: Policy; value: string; unsure?: string; queues: string[] }>();
    for (const r of desired.resources) {
      if (r.kind !== "exchange" || asString(r.arguments[AE]) !== undefined) continue;
      const candidates = policiesForExchange(r as Exchange, policies);
      for (const { p, unread } of candidates) {
        const value = asString(p.definition[AE]);
        if (owns(p) || value === undefined) continue;
        const unsure = whyUnsure("policy", p, unread, candidates);
        addQueue(found, [p.name, value, unsure ?? null], { policy: p, value, ...(unsure ? { unsure } : {}) }, r.name);
      }
    }
    for (const f of found.values()) {
      const n = f.queues.length;
      const what = `policy ${quoted(f.policy.name)} sets alternate-exchange ${quoted(escapeUnsafe(f.value))} on ${plural(n, "exchange")} of the file (${names(f.queues)})`;
      const does = `a message none of ${n === 1 ? "its" : "their"} bindings route goes to exchange ${quoted(escapeUnsafe(f.value))} instead of being dropped (or returned to a publisher that sets mandatory)`;
      const fix = `the file gives service exchanges no arguments, so topo shows this as a warning; leave them out of policy ${quoted(f.policy.name)}'s pattern (${list}) if that is not meant`;
      out.warnings.push(`${what}: ${f.unsure ? `if it applies, ${does}; ${f.unsure}, so topo cannot tell whether it does` : does}; ${fix}`);
    }
  }
  return out;
}
