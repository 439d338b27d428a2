// Pure: what the cluster's RabbitMQ version can do, checked against what the file asks of it.

import type { ActualCluster, DesiredCluster } from "../model.js";
import { names } from "./render.js";

export interface Compatibility {
  errors: string[];
  warnings: string[];
  hints: string[];
}

export function majorMinor(version: string): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(version);
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

export function compatibility(desired: DesiredCluster, actual: ActualCluster): Compatibility {
  const out: Compatibility = { errors: [], warnings: [], hints: [] };
  const [major, minor] = majorMinor(actual.version);
  if (major === 0) return out;
  const mirrored = desired.queues.filter((q) => q.mirrored).map((q) => q.queue.name);
  if (major >= 4 && mirrored.length) {
    out.errors.push(
      `RabbitMQ ${actual.version} has no classic queue mirroring (removed in 4.0), but the file mirrors ${mirrored.length} classic queue${mirrored.length === 1 ? "" : "s"}: ${names(mirrored)}`,
    );
    out.hints.push("use quorum queues, which replicate themselves: set type: quorum (e.g. defaults: { sync: { type: quorum } }); docs/rabbitmq-versions.md (Migrating sync queues) shows how to move existing queues without losing messages");
  }
  const newer = (maj: number, min: number) => major > maj || (major === maj && minor >= min);
  const quorum = desired.queues.filter((q) => q.queue.type === "quorum").map((q) => q.queue.name);
  if (quorum.length && !newer(3, 8)) out.errors.push(`RabbitMQ ${actual.version} has no quorum queues (3.8+): ${names(quorum)}`);
  const streams = desired.queues.filter((q) => q.queue.type === "stream").map((q) => q.queue.name);
  if (streams.length && !newer(3, 9)) out.errors.push(`RabbitMQ ${actual.version} has no streams (3.9+): ${names(streams)}`);
  if (major >= 4) {
    const transient = desired.queues.filter((q) => q.queue.type === "classic" && !q.queue.durable && !q.queue.exclusive).map((q) => q.queue.name);
    if (transient.length) {
      out.warnings.push(
        `transient non-exclusive queues are deprecated in RabbitMQ 4 and denied by default from 4.3 (${names(transient)}); a broker that denies them needs deprecated_features.permit.transient_nonexcl_queues = true in rabbitmq.conf, or make them durable or quorum`,
      );
    }
  }
  return out;
}
