// Glue for `topo graph`: the file's desired state as a diagram. No network.

import { loadConfig, type Env } from "../config/load.js";
import type { Redactor } from "../redact.js";
import { renderGraph, type GraphFormat } from "../plan/graph.js";
import { selectClusters } from "./source.js";

export interface GraphOptions {
  file: string;
  format: GraphFormat;
  cluster?: string;
  env?: Env;
  /** Learns the file's passwords, to mask them in what the caller prints. */
  redactor?: Redactor;
}

export function graph(o: GraphOptions): string {
  const { desired } = loadConfig(o.file, o.env, o.redactor);
  const clusters = selectClusters(desired, o.cluster, o.file);
  return renderGraph({ ...desired, clusters }, o.format);
}
