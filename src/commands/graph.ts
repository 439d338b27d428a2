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
  /** Told of each user's password variable that is not set (a diagram needs none). */
  warn?: (msg: string) => void;
}

export function graph(o: GraphOptions): string {
  const { desired, unsetPasswords, warnings } = loadConfig(o.file, o.env, o.redactor, { passwordsOptional: true });
  for (const w of [...unsetPasswords, ...warnings]) o.warn?.(w);
  const clusters = selectClusters(desired, o.cluster, o.file);
  return renderGraph({ ...desired, clusters }, o.format);
}
