// Pure: what the cluster's RabbitMQ can do, checked against what the file asks of it: its version,
// and what it permits (plan/broker-rules.ts), before anything is written.

import type { ActualCluster, DesiredCluster } from "../model.js";
import { atLeast, brokerRefuses, deprecatedUse, majorMinor, permitsOf, type BrokerPermits } from "./broker-rules.js";
import { names, plural } from "../core/words.js";

export { majorMinor } from "./broker-rules.js";

export interface Compatibility {
  errors: string[];
  warnings: string[];
  hints: string[];
}


/**
 * `permits`: what the broker says it permits (read.ts readPermits); without it, the defaults of
 * its version.
 */
export function compatibility(desired: DesiredCluster, actual: ActualCluster, permits: BrokerPermits = permitsOf(actual.version)): Compatibility {
  const out: Compatibility = { errors: [], warnings: [], hints: [] };
  const version = actual.version;
  if (majorMinor(version)[0] === 0) return out; // version unknown
  const mirrored = desired.queues.filter((q) => q.mirrored).map((q) => q.queue.name);
  if (atLeast(version, 4, 0) && mirrored.length) {
    out.errors.push(`RabbitMQ ${version} has no classic queue mirroring (removed in 4.0), but the file mirrors ${plural(mirrored.length, "classic queue")}: ${names(mirrored)}`);
    out.hints.push("use quorum queues, which replicate themselves: set type: quorum (e.g. defaults: { sync: { type: quorum } }); docs/rabbitmq-versions.md (Migrating sync queues) shows how to move existing queues without losing messages");
  }
  const quorum = desired.queues.filter((q) => q.queue.type === "quorum").map((q) => q.queue.name);
  if (quorum.length && !atLeast(version, 3, 8)) out.errors.push(`RabbitMQ ${version} has no quorum queues (3.8+): ${names(quorum)}`);
  const streams = desired.queues.filter((q) => q.queue.type === "stream").map((q) => q.queue.name);
  if (streams.length && !atLeast(version, 3, 9)) out.errors.push(`RabbitMQ ${version} has no streams (3.9+): ${names(streams)}`);

  // Every setting this broker refuses, once per rule, with the queues that ask for it.
  const refused = new Map<string, { setting: string; rule: string; fix: string; queues: string[] }>();
  const deprecated = new Map<string, string[]>();
  for (const { queue } of desired.queues) {
    for (const r of brokerRefuses(permits, queue)) {
      const key = `${r.setting}\n${r.rule}\n${r.fix}`;
      const entry = refused.get(key) ?? { ...r, queues: [] };
      entry.queues.push(queue.name);
      refused.set(key, entry);
    }
    for (const feature of deprecatedUse(permits, queue)) deprecated.set(feature, [...(deprecated.get(feature) ?? []), queue.name]);
  }
  for (const r of refused.values()) {
    out.errors.push(`${r.queues.length === 1 ? "queue" : "queues"} ${names(r.queues)}: ${r.setting}: ${r.rule}; fix: ${r.fix}`);
  }
  // Permitted by default, but a rabbitmq.conf that denies the feature makes the broker refuse it,
  // and the management API does not show that setting.
  const where = permits.source === "broker" ? "by default (as it reports)" : `by default (the default of ${version})`;
  const transient = deprecated.get("transient_nonexcl_queues");
  if (transient) {
    out.warnings.push(
      `transient non-exclusive queues are deprecated in RabbitMQ 4 (${names(transient)}): ${version} permits them ${where}, but a broker whose rabbitmq.conf denies them refuses them (541 INTERNAL_ERROR) and the management API does not show that setting; there, set deprecated_features.permit.transient_nonexcl_queues = true, or make them durable or quorum`,
    );
  }
  const locator = deprecated.get("queue_master_locator");
  if (locator) {
    out.warnings.push(
      `x-queue-master-locator is deprecated in RabbitMQ 4 (denied by default from 4.3); ${version} permits it ${where} (${names(locator)}); use x-queue-leader-locator instead`,
    );
  }
  return out;
}
