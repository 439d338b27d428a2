// Pure: the one cluster an export is about. A Celery app connects to one broker, and a definitions
// file is imported into one; sync and async queues usually live on different clusters.

import { TopoError } from "../errors.js";
import { unknownClusterHints } from "../core/words.js";
import type { DesiredCluster, DesiredState } from "../model.js";

export interface ExportPurpose {
  /** Why one cluster: "a Celery app connects to one broker". */
  why: string;
  /** Why a cluster without queues is no use: "a Celery app on it would have nothing to consume". */
  emptyWhy: string;
  /** The command that exports one cluster, for the hint. */
  command: (cluster: string) => string;
  hints?: string[];
}

/** The named cluster, or the only one that holds queues; otherwise say which to choose. */
export function pickExportCluster(desired: DesiredState, name: string | undefined, source: string, purpose: ExportPurpose): DesiredCluster {
  const names = desired.clusters.map((c) => c.target.name);
  if (name !== undefined) {
    const found = desired.clusters.find((c) => c.target.name === name);
    if (!found) throw new TopoError(`no cluster named "${name}" in ${source}`, unknownClusterHints([name], names, false));
    if (found.queues.length === 0) {
      throw new TopoError(`cluster ${name} holds no queues in ${source}; ${purpose.emptyWhy}`, [
        `clusters that hold queues: ${desired.clusters.filter((c) => c.queues.length > 0).map((c) => c.target.name).join(", ") || "none"}`,
      ]);
    }
    return found;
  }
  const withQueues = desired.clusters.filter((c) => c.queues.length > 0);
  if (withQueues.length === 1) return withQueues[0] as DesiredCluster;
  if (withQueues.length === 0) throw new TopoError(`${source} lists no queues on any cluster; there is nothing to export`);
  throw new TopoError(
    `${source} has queues on ${withQueues.length} clusters (${withQueues.map((c) => c.target.name).join(", ")}), and ${purpose.why}; choose one with --cluster`,
    [...withQueues.map((c) => purpose.command(c.target.name)), ...(purpose.hints ?? [])],
  );
}
