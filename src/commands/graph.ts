// Glue for `topo graph`: the file's desired state as a diagram. No network.

import { loadConfig, type Env } from "../config/load.js";
import { renderGraph, type GraphFormat } from "../plan/graph.js";
import { selectClusters } from "./clusters.js";

export interface GraphOptions {
  file: string;
  format: GraphFormat;
  cluster?: string;
  env?: Env;
}

export function graph(o: GraphOptions): string {
  const { desired } = loadConfig(o.file, o.env);
  const clusters = selectClusters(desired, o.cluster, o.file);
  return renderGraph({ ...desired, clusters }, o.format);
}
