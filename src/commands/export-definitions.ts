// Glue for `topo export definitions`: one cluster's desired state as RabbitMQ definitions JSON,
// for rabbitmqctl import_definitions or POST /api/definitions/{vhost}. No network.

import { loadConfig, type Env } from "../config/load.js";
import type { Redactor } from "../redact.js";
import { definitionsOf, definitionsWarnings } from "../export/definitions.js";
import { pickExportCluster } from "../export/cluster.js";
import { shellPath } from "../core/words.js";

export interface ExportDefinitionsOptions {
  file: string;
  cluster?: string;
  env?: Env;
  /** Learns the file's passwords, to mask them in what the caller prints. */
  redactor?: Redactor;
}

/**
 * `secret`: the definitions hold users' password hashes, so a file of them is written owner-only.
 * `warnings`: what an import of them would meet on some broker (the export reads none).
 */
export function exportDefinitions(o: ExportDefinitionsOptions): { cluster: string; text: string; secret: boolean; warnings: string[] } {
  // The file's own warnings (a password written in it, a tls: no connection uses) are said as
  // export celery and plan say them.
  const { desired, warnings } = loadConfig(o.file, o.env, o.redactor);
  const cluster = pickExportCluster(desired, o.cluster, o.file, {
    why: "a definitions file is imported into one broker",
    emptyWhy: "its definitions would hold only the vhost",
    command: (c) => `topo export definitions -f ${shellPath(o.file)} --cluster ${c} -o ${c}.json`,
  });
  const definitions = definitionsOf(cluster, desired.prefix);
  return { cluster: cluster.target.name, text: `${JSON.stringify(definitions, null, 2)}\n`, secret: (definitions.users?.length ?? 0) > 0, warnings: [...warnings, ...definitionsWarnings(cluster)] };
}
