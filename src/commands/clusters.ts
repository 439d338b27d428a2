// Glue shared by plan and apply: pick the clusters, open their management clients, read and diff.

import { BrokerError, TopoError } from "../errors.js";
import type { ClusterPlan, DesiredCluster, DesiredState } from "../model.js";
import { ManagementClient } from "../broker/http.js";
import type { AmqpSession } from "../broker/amqp.js";
import { readCluster, readLiveCounts, readMessageCounts, readOperatorPolicies, readQueueStats } from "../broker/read.js";
import { diffCluster, holdingQueueName } from "../plan/diff.js";
import { compatibility } from "../plan/compat.js";
import { mirroring } from "../plan/mirroring.js";

export interface ConnectionOptions {
  insecure?: boolean;
}

export function selectClusters(desired: DesiredState, name: string | undefined, file: string): DesiredCluster[] {
  if (name === undefined) return desired.clusters;
  const found = desired.clusters.filter((c) => c.target.name === name);
  if (found.length === 0) {
    throw new TopoError(`no cluster named "${name}" in ${file}`, [`clusters in the file: ${desired.clusters.map((c) => c.target.name).join(", ")}`]);
  }
  return found;
}

export function managementClient(c: DesiredCluster, opts: ConnectionOptions): ManagementClient {
  return new ManagementClient(c.target.name, c.target.management, c.target.tls, { insecure: opts.insecure });
}

/**
 * Read one cluster and diff it against the file. With `live` (apply), the queues a replace
 * moves are counted by the broker now, so apply judges the replace on what they hold now.
 */
export async function planCluster(c: DesiredCluster, client: ManagementClient, prefix: string, live?: () => Promise<AmqpSession>): Promise<ClusterPlan> {
  const actual = await readCluster(client, c.target);
  let plan = diffCluster(c, actual, prefix);
  // Counts are worth their cost only where a queue would be deleted or replaced.
  if (plan.actions.some((a) => (a.op === "delete" || a.op === "replace") && a.before.kind === "queue")) {
    await readMessageCounts(client, c.target, actual);
    // What a replace could lose depends on ready and unacknowledged messages, consumers and bytes:
    // read for the replaced queues (and the holding queues of interrupted replaces) only.
    const moved = plan.actions.flatMap((a) =>
      a.op === "replace" && a.after.kind === "queue" && a.before.kind === "queue"
        ? [{ name: a.after.name, stream: a.before.type === "stream" }, { name: holdingQueueName(a.after.name), stream: false }]
        : [],
    );
    const present = moved.filter((q) => actual.queueFacts[q.name] !== undefined);
    await Promise.all([readQueueStats(client, c.target, actual, present.map((q) => q.name)), moved.length ? readOperatorPolicies(client, c.target, actual) : undefined]);
    if (live && present.length) await readLiveCounts(await live(), actual, present);
    plan = diffCluster(c, actual, prefix);
  }
  const compat = compatibility(c, actual);
  if (compat.errors.length) {
    throw new BrokerError(c.target.name, compat.errors.join("\n  "), { hints: compat.hints });
  }
  const mirrors = mirroring(c, actual);
  plan.warnings.push(...compat.warnings, ...mirrors.warnings);
  plan.degraded.push(...mirrors.degraded);
  return plan;
}

/**
 * Run `fn` for every cluster at once (two clusters take as long as the slower one) and fail with
 * every cluster's error, not just the first.
 */
export async function forEachCluster<T>(clusters: DesiredCluster[], fn: (c: DesiredCluster) => Promise<T>): Promise<T[]> {
  const settled = await Promise.allSettled(clusters.map(fn));
  const failures = settled.filter((s): s is PromiseRejectedResult => s.status === "rejected").map((s) => s.reason as unknown);
  if (failures.length === 1) throw failures[0];
  if (failures.length > 1) {
    const errs = failures.map((f) => (f instanceof Error ? f : new Error(String(f))));
    throw new TopoError(errs.map((e) => e.message).join("\n"), [...new Set(errs.flatMap((e) => (e instanceof TopoError ? e.hints : [])))]);
  }
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
}
