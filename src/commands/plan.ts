import { loadConfig, type Env } from "../config/load.js";
import type { Plan } from "../model.js";
import { forEachCluster, managementClient, planCluster, selectClusters, type ConnectionOptions } from "./clusters.js";

export interface PlanOptions extends ConnectionOptions {
  file: string;
  cluster?: string;
  env?: Env;
}

export interface PlanStats {
  httpRequests: number;
}

/** Read every selected cluster (in parallel, with no lock and no writes) and diff it. */
export async function plan(opts: PlanOptions, stats?: PlanStats): Promise<Plan> {
  const { desired } = loadConfig(opts.file, opts.env);
  const clusters = selectClusters(desired, opts.cluster, opts.file);
  const plans = await forEachCluster(clusters, async (c) => {
    const client = managementClient(c, opts);
    try {
      return await planCluster(c, client, desired.prefix);
    } finally {
      if (stats) stats.httpRequests += client.requests;
      client.close();
    }
  });
  return { clusters: plans };
}
