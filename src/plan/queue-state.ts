// Pure: queues the broker lists, with their properties and bindings, but cannot run. Their
// arguments and bindings match the file, so a plan that compared only those said "No changes."
// while nothing could be published to them.

import type { ActualCluster, QueueFacts } from "../model.js";
import { names, plural, shellWord } from "../core/words.js";

/**
 * The queues of `wanted` (by name) that RabbitMQ reports "crashed" or "stopped", as degraded
 * lines. Measured on 4.0.5 (3.10 reports the same states with stats off):
 * - "crashed": the queue's process failed and its supervisor gave up restarting it. A declare,
 *   passive or not, is refused (404 "has crashed and failed to restart") and a publish routed to it
 *   is nacked. Restarting the node (rabbitmqctl stop_app, start_app) started it again.
 * - "stopped": its vhost is stopped on its node; rabbitmqctl restart_vhost starts it again.
 * ("down", a node that is down, is diff's: the queue's bindings are unknown then.)
 */
export function brokenQueues(actual: ActualCluster, vhost: string, wanted: (queue: string) => boolean): string[] {
  // One pass over the facts, which hold every queue of the vhost (50,000 at 25,000 services),
  // for the few that are in one of these states.
  const inState: Record<string, { name: string; node?: string }[]> = { crashed: [], stopped: [] };
  const noMajorityFacts: [string, QueueFacts][] = [];
  for (const name of Object.keys(actual.queueFacts)) {
    const f = actual.queueFacts[name] as QueueFacts;
    if ((f.state === "crashed" || f.state === "stopped") && wanted(name)) inState[f.state]?.push({ name, node: f.node });
    if (f.members?.length && f.online !== undefined && f.online.length * 2 <= f.members.length && wanted(name)) noMajorityFacts.push([name, f]);
  }
  const by = (state: string) => (inState[state] ?? []).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const nodesOf = (qs: { node?: string }[]) => [...new Set(qs.flatMap((q) => (q.node ? [q.node] : [])))].sort();
  const out: string[] = [];
  const crashed = by("crashed");
  if (crashed.length) {
    const one = crashed.length === 1;
    const nodes = nodesOf(crashed);
    const where = nodes.length ? ` of node${nodes.length === 1 ? "" : "s"} ${nodes.join(", ")}` : "";
    out.push(
      `${plural(crashed.length, "queue")} ${one ? "has" : "have"} crashed and RabbitMQ gave up restarting ${one ? "it" : "them"} (${names(crashed.map((q) => q.name))}): ${one ? "it refuses" : "they refuse"} declares and publishes routed to ${one ? "it" : "them"} are nacked, though the management API still lists ${one ? "it" : "them"} with ${one ? "its" : "their"} bindings; the log${where} says why, and restarting the node starts ${one ? "it" : "them"} again`,
    );
  }
  const stopped = by("stopped");
  if (stopped.length) {
    const one = stopped.length === 1;
    out.push(
      `${plural(stopped.length, "queue")} ${one ? "is" : "are"} stopped (${names(stopped.map((q) => q.name))}): vhost ${shellWord(vhost)} is not running on ${one ? "its node" : "their nodes"} (rabbitmqctl list_vhosts name cluster_state), so ${one ? "it takes" : "they take"} no messages; rabbitmqctl restart_vhost -p ${shellWord(vhost)} starts it again`,
    );
  }
  // A quorum queue with half its members or fewer online has no leader: it takes no publishes
  // (a confirm never comes) and delivers nothing, while the management API lists it with its
  // arguments and bindings. Measured on a 3-node 3.10 cluster, two nodes stopped: plan said "No changes."
  const noMajority = noMajorityFacts.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (noMajority.length) {
    const one = noMajority.length === 1;
    const each = noMajority.map(([name, f]) => `${name}: ${f.online?.length ?? 0} of ${f.members?.length} online${f.online?.length ? ` (${f.online.join(", ")})` : ""}`);
    out.push(
      `${plural(noMajority.length, "quorum queue")} ${one ? "has" : "have"} no majority of ${one ? "its" : "their"} members online (${each.join("; ")}): ${one ? "it takes" : "they take"} no messages and deliver${one ? "s" : ""} none until enough of ${one ? "its" : "their"} nodes are back`,
    );
  }
  return out;
}
