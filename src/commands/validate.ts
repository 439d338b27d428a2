import { loadConfig, type Env } from "../config/load.js";
import type { Redactor } from "../redact.js";

export interface ValidateResult {
  file: string;
  services: number;
  clusters: { name: string; queues: number }[];
  /** Users' password variables that are not set: valid all the same, but plan and apply need them; passwords written in the file. */
  warnings: string[];
}

/** Schema and cross-checks only; never opens a connection, and needs no user's password. */
export function validate(file: string, env?: Env, redactor?: Redactor): ValidateResult {
  const { desired, unsetPasswords, warnings } = loadConfig(file, env, redactor, { passwordsOptional: true });
  const services = new Set(desired.clusters.flatMap((c) => c.queues.map((q) => q.service)));
  return {
    file,
    services: services.size,
    clusters: desired.clusters.map((c) => ({ name: c.target.name, queues: c.queues.length })),
    warnings: [...unsetPasswords, ...warnings],
  };
}
