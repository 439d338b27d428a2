// Which topology a command works on, which of its clusters, and each cluster's management client.

import type { DesiredCluster, DesiredState } from "../model.js";
import { TopoError } from "../errors.js";
import { unknownClusterHints } from "../core/words.js";
import { loadConfig, type Env } from "../config/load.js";
import type { Redactor } from "../redact.js";
import { ManagementClient } from "../broker/http.js";

export interface ConnectionOptions {
  insecure?: boolean;
  /** Bound on each management API request (default 30 s). */
  requestTimeoutMs?: number;
  /**
   * Told of a management request still unanswered after 15 s and of each try again (the CLI's
   * stderr): without it a command against a paused broker said nothing for minutes.
   */
  log?: (msg: string) => void;
}

/** Where a command's topology comes from: a file it loads, or one the caller has loaded already. */
export interface TopologySource {
  file?: string;
  topology?: DesiredState;
  /** For ${VAR} in the file (default: process.env). */
  env?: Env;
  /** Learns the file's passwords, to mask them in whatever the caller prints. */
  redactor?: Redactor;
  /** Told what the file holds that works but should not be so (a password written in it), FILE:LINE:COL first. */
  warn?: (warning: string) => void;
}

export function topologyOf(o: TopologySource): { desired: DesiredState; source: string } {
  if (o.topology) return { desired: o.topology, source: o.file ?? "the topology" };
  if (o.file === undefined) throw new TopoError("no topology given: pass a file, or a topology loaded with loadTopology()");
  const { desired, warnings } = loadConfig(o.file, o.env, o.redactor);
  for (const w of warnings) o.warn?.(w);
  return { desired, source: o.file };
}

/** The names of the file's clusters that `selected` leaves out (--cluster): not read. */
export function unreadClusters(desired: DesiredState, selected: readonly DesiredCluster[]): string[] {
  return desired.clusters.filter((c) => !selected.includes(c)).map((c) => c.target.name);
}

/** The clusters named (each once, in the file's order), or every cluster when none is. */
export function selectClusters(desired: DesiredState, names: string | readonly string[] | undefined, file: string): DesiredCluster[] {
  const wanted = typeof names === "string" ? [names] : (names ?? []);
  if (wanted.length === 0) return desired.clusters;
  const unknown = wanted.filter((n) => !desired.clusters.some((c) => c.target.name === n));
  if (unknown.length) {
    throw new TopoError(`no cluster named ${unknown.map((n) => `"${n}"`).join(", ")} in ${file}`, unknownClusterHints(unknown, desired.clusters.map((c) => c.target.name), typeof names !== "string"));
  }
  return desired.clusters.filter((c) => wanted.includes(c.target.name));
}

export function managementClient(c: DesiredCluster, opts: ConnectionOptions & { redactor?: Redactor }): ManagementClient {
  return new ManagementClient(c.target.name, c.target.management, c.target.tls, { insecure: opts.insecure, timeoutMs: opts.requestTimeoutMs, places: c.target.places, redactor: opts.redactor, log: opts.log });
}
