import type { DesiredCluster, Plan } from "../model.js";
import type { SavedState } from "../plan/saved.js";
import type { ManagementClient } from "../broker/http.js";
import { AmqpSession } from "../broker/amqp.js";
import { unbindsRefused } from "../broker/unbind-probe.js";
import { freshOf, readAndPlan, verifyClusters } from "./clusters.js";
import { managementClient, selectClusters, topologyOf, unreadClusters, type ConnectionOptions, type TopologySource } from "./source.js";

export interface PlanOptions extends ConnectionOptions, TopologySource {
  /** Only these clusters (default: every cluster of the topology). */
  cluster?: string | readonly string[];
  /** Told the state each cluster's plan was computed from (plan -o keeps it). */
  onRead?: (cluster: string, state: SavedState) => void;
}

export interface PlanStats {
  httpRequests: number;
}

/** Read every selected cluster (in parallel, with no lock and no writes) and diff it. */
export async function plan(opts: PlanOptions, stats?: PlanStats): Promise<Plan> {
  const { desired, source } = topologyOf(opts);
  const clusters = selectClusters(desired, opts.cluster, source);
  const clients = new Map(clusters.map((c) => [c, managementClient(c, opts)]));
  const client = (c: DesiredCluster) => clients.get(c) as ManagementClient;
  try {
    // Who answers is checked beside each cluster's read, and before any plan is returned.
    const reads = await verifyClusters(desired.clusters, clusters, client, opts, (c) =>
      readAndPlan(c, client(c), desired.prefix, {
        keepState: opts.onRead !== undefined,
        file: opts.file,
        warnHeldLock: true,
        peek: () => AmqpSession.open(c.target, { ...opts, connectAttempts: 1 }),
        askUnbinds: (bindings) => unbindsRefused(c.target, bindings, { insecure: opts.insecure }),
      }),
    );
    for (const r of reads) opts.onRead?.(r.plan.cluster, freshOf(r).state);
    const unread = unreadClusters(desired, clusters);
    return { clusters: reads.map((r) => r.plan), ...(unread.length ? { unread } : {}) };
  } finally {
    for (const c of clients.values()) {
      if (stats) stats.httpRequests += c.requests;
      c.close();
    }
  }
}
