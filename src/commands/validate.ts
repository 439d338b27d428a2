import { loadConfig, type Env } from "../config/load.js";

export interface ValidateResult {
  file: string;
  services: number;
  clusters: { name: string; queues: number }[];
}

/** Schema and cross-checks only; never opens a connection. */
export function validate(file: string, env?: Env): ValidateResult {
  const { desired } = loadConfig(file, env);
  const services = new Set(desired.clusters.flatMap((c) => c.queues.map((q) => q.service)));
  return {
    file,
    services: services.size,
    clusters: desired.clusters.map((c) => ({ name: c.target.name, queues: c.queues.length })),
  };
}
