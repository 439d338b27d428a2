import { loadConfig, type Env } from "../config/load.js";
import type { Redactor } from "../redact.js";

export interface ValidateResult {
  file: string;
  services: number;
  clusters: { name: string; queues: number }[];
}

/** Schema and cross-checks only; never opens a connection. */
export function validate(file: string, env?: Env, redactor?: Redactor): ValidateResult {
  const { desired } = loadConfig(file, env, redactor);
  const services = new Set(desired.clusters.flatMap((c) => c.queues.map((q) => q.service)));
  return {
    file,
    services: services.size,
    clusters: desired.clusters.map((c) => ({ name: c.target.name, queues: c.queues.length })),
  };
}
