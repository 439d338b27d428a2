// Pure: what the cluster's RabbitMQ can do, checked against what the file asks of it: its version,
// and what it permits (plan/broker-rules.ts), before anything is written.

import type { ActualCluster, DesiredCluster, FilePath, Queue, QueueSpec } from "../model.js";
import { atLeast, brokerIgnores, brokerRefuses, denied, deprecatedUse, majorMinor, permitsOf, stateKnown, type BrokerPermits } from "./broker-rules.js";
import { names, plural, quorumDefaultsExample, shellWord } from "../core/words.js";
import { pushTo } from "../core/collections.js";

export { majorMinor } from "./broker-rules.js";

export interface Compatibility {
  errors: CompatError[];
  warnings: string[];
  hints: string[];
}

/** One thing the broker refuses, and every key of the file that asks for it. */
export interface CompatError {
  message: string;
  /** Sorted as the file's keys are met (services in order); empty when no queue of the file asks for it. */
  at: CompatPlace[];
}

/**
 * A key of the file that asks for a refused setting, and the queues it asks it for. `builtIn`: the
 * file writes no such key, and the queues take the built-in default of their kind; `path` is then
 * the entry of the first service concerned, and `setting` what the built-in default sets.
 */
export interface CompatPlace {
  path: FilePath;
  queues: string[];
  builtIn?: { traffic: string; setting: string };
}

/**
 * The keys that ask for `field` (type, durable, mirrored, arguments.NAME) of these queues, one
 * place per key with the queues it reaches; queues that take a built-in default share one place,
 * per kind, at the first of their services. `setting` says what the built-in default sets.
 */
export function placesOf(specs: readonly QueueSpec[], field: string, setting: (s: QueueSpec) => string): CompatPlace[] {
  const at = new Map<string, CompatPlace>();
  for (const s of specs) {
    if (!s.origin) continue;
    const path = s.origin.settings[field];
    const key = path ? JSON.stringify(path) : `built-in ${s.traffic} ${setting(s)}`;
    const place = at.get(key) ?? { path: path ?? s.origin.service, queues: [], ...(path ? {} : { builtIn: { traffic: s.traffic, setting: setting(s) } }) };
    place.queues.push(s.queue.name);
    at.set(key, place);
  }
  return [...at.values()];
}


/**
 * A queue a vhost's default queue type (RabbitMQ 3.11+) applies to: topo declares classic queues
 * without x-queue-type, as kombu does, and the broker then gives a durable, not auto-delete one the
 * vhost's default type (transient and auto-delete ones stay classic: measured on 4.0.5 and 4.3.6;
 * the file's queues are never exclusive).
 */
export function takesDefaultType(q: Queue): boolean {
  return q.type === "classic" && q.durable && !q.autoDelete && !q.exclusive;
}

/**
 * `permits`: what the broker says it permits (read.ts readPermits); without it, the defaults of
 * its version. `declared`: the queues the plan creates or replaces (a vhost's default queue type
 * decides what they become).
 */
export function compatibility(
  desired: DesiredCluster,
  actual: ActualCluster,
  permits: BrokerPermits = permitsOf(actual.version),
  declared: ReadonlySet<string> = new Set(),
  placeOf: (path: (string | number)[]) => string = (path) => path.join("."),
): Compatibility {
  const out: Compatibility = { errors: [], warnings: [], hints: [] };
  const version = actual.version;
  if (majorMinor(version)[0] === 0) return out; // version unknown
  defaultQueueType(desired, actual, declared, out);
  const error = (message: string, specs: readonly QueueSpec[], field: string | undefined, setting: (s: QueueSpec) => string) =>
    out.errors.push({ message, at: field === undefined ? [] : placesOf(specs, field, setting) });
  const mirrored = desired.queues.filter((q) => q.mirrored);
  if (atLeast(version, 4, 0) && mirrored.length) {
    error(`RabbitMQ ${version} has no classic queue mirroring (removed in 4.0), but the file mirrors ${plural(mirrored.length, "classic queue")}: ${names(mirrored.map((q) => q.queue.name))}`, mirrored, "mirrored", () => "mirrored: true");
    out.hints.push(
      `use quorum queues, which replicate themselves: set type: quorum (e.g. ${quorumDefaultsExample(mirrored.map((q) => q.traffic))}); docs/rabbitmq-versions.md (Migrating sync queues) shows how to move existing queues without losing messages`,
    );
  }
  const quorum = desired.queues.filter((q) => q.queue.type === "quorum");
  if (quorum.length && !atLeast(version, 3, 8)) error(`RabbitMQ ${version} has no quorum queues (3.8+): ${names(quorum.map((q) => q.queue.name))}`, quorum, "type", () => "type: quorum");
  const streams = desired.queues.filter((q) => q.queue.type === "stream");
  if (streams.length && !atLeast(version, 3, 9)) error(`RabbitMQ ${version} has no streams (3.9+): ${names(streams.map((q) => q.queue.name))}`, streams, "type", () => "type: stream");

  // Every setting this broker refuses, once per rule, with the queues that ask for it.
  const refused = new Map<string, { setting: string; field?: string; rule: string; fix: string; specs: QueueSpec[] }>();
  const deprecated = new Map<string, string[]>();
  for (const spec of desired.queues) {
    const { queue } = spec;
    for (const r of brokerRefuses(permits, queue)) {
      const key = `${r.setting}\n${r.rule}\n${r.fix}`;
      const entry = refused.get(key) ?? { ...r, specs: [] };
      entry.specs.push(spec);
      refused.set(key, entry);
    }
    for (const feature of deprecatedUse(permits, queue)) pushTo(deprecated, feature, queue.name);
  }
  out.warnings.push(...ignoredSettings(desired, version, placeOf));
  for (const r of refused.values()) {
    const queues = r.specs.map((s) => s.queue.name);
    error(`${queues.length === 1 ? "queue" : "queues"} ${names(queues)}: ${r.setting}: ${r.rule}; fix: ${r.fix}`, r.specs, r.field, () => r.setting);
  }
  // Permitted: where the broker reports the feature's state (4.3.6), its configuration included;
  // elsewhere by default only, and a rabbitmq.conf that denies the feature, which the management
  // API does not show, makes the broker refuse it.
  const where = (feature: string) =>
    stateKnown(permits, feature) ? "(as it reports, its configuration included)" : permits.source === "broker" ? "by default (as it reports)" : `by default (the default of ${version})`;
  const transient = deprecated.get("transient_nonexcl_queues");
  if (transient) {
    const unseen = stateKnown(permits, "transient_nonexcl_queues")
      ? "make them durable or quorum before a release that denies them"
      : "but a broker whose rabbitmq.conf denies them refuses them (541 INTERNAL_ERROR) and the management API does not show that setting; there, set deprecated_features.permit.transient_nonexcl_queues = true, or make them durable or quorum";
    out.warnings.push(`transient non-exclusive queues are deprecated in RabbitMQ 4 (${names(transient)}): ${version} permits them ${where("transient_nonexcl_queues")}${stateKnown(permits, "transient_nonexcl_queues") ? ";" : ","} ${unseen}`);
  }
  // The file's sync queues are answered over rpc:// (export celery), whose reply queue per caller
  // is declared transient and not exclusive: such a broker refuses it, and every call that waits
  // for an answer fails (541 INTERNAL_ERROR), while the file's own queues pass (measured on 4.3.6).
  const sync = desired.queues.filter((q) => q.traffic === "sync").map((q) => q.queue.name);
  // Said once the file's own transient queues pass: until then their refusal says as much.
  const ownRefused = [...refused.values()].some((r) => r.rule.includes("transient_nonexcl_queues"));
  if (sync.length && !ownRefused && denied(permits, "transient_nonexcl_queues")) {
    out.warnings.push(
      `RabbitMQ ${version} denies transient non-exclusive queues, and Celery's rpc:// result backend, which topo export celery gives the sync queues (${names(sync)}), declares each caller's reply queue so: it is refused (541 INTERNAL_ERROR), and every call that waits for an answer fails; permit them (deprecated_features.permit.transient_nonexcl_queues = true in rabbitmq.conf), or give those callers another result backend`,
    );
  }
  const locator = deprecated.get("queue_master_locator");
  if (locator) {
    out.warnings.push(
      `x-queue-master-locator is deprecated in RabbitMQ 4 (denied by default from 4.3); ${version} permits it ${where("queue_master_locator")} (${names(locator)}); use x-queue-leader-locator instead`,
    );
  }
  return out;
}

/**
 * What the file asks of this broker that it accepts and ignores (broker-rules.ts brokerIgnores),
 * once per place in the file that writes it, with the queues it reaches: a warning, not an error,
 * since the queue works as declared and the same file may serve a cluster where the setting does
 * what it says.
 */
function ignoredSettings(desired: DesiredCluster, version: string, placeOf: (path: (string | number)[]) => string): string[] {
  const found = new Map<string, { place: string; setting: string; rule: string; fix: string; queues: string[] }>();
  for (const spec of desired.queues) {
    for (const i of brokerIgnores(version, spec.queue)) {
      const path = spec.origin?.settings[`arguments.${i.argument}`];
      const place = path ? placeOf(path) : `queue ${spec.queue.name}`;
      const key = `${place}\n${i.setting}\n${i.rule}`;
      const entry = found.get(key) ?? { place, ...i, queues: [] };
      entry.queues.push(spec.queue.name);
      found.set(key, entry);
    }
  }
  return [...found.values()].map((f) => `${f.place}: ${f.setting} (${f.queues.length === 1 ? "queue" : "queues"} ${names(f.queues)}): ${f.rule}; fix: ${f.fix}`);
}

/**
 * A vhost whose default queue type is not classic turns the file's durable classic queues into
 * that type when topo declares them: apply could never match the file. Queues that already exist
 * as classic stay so, but a worker that declares them without x-queue-type is refused there.
 */
function defaultQueueType(desired: DesiredCluster, actual: ActualCluster, declared: ReadonlySet<string>, out: Compatibility): void {
  const type = actual.defaultQueueType;
  if (type === undefined || type === "classic") return;
  const specs = desired.queues.filter((s) => takesDefaultType(s.queue));
  if (!specs.length) return;
  const vhost = desired.target.amqp.vhost;
  const traffic = specs[0]?.traffic ?? "async";
  const retype = `set type: ${type} for them in the file (e.g. defaults: { ${traffic}: { type: ${type} } }): topo then declares them with x-queue-type, and so do the workers that use topo export celery`;
  // RabbitMQ 3.10 has a vhost's default queue type, and keeps it for as long as the vhost lives:
  // its rabbitmqctl has no update_vhost_metadata, and its HTTP API takes the type only when it
  // creates the vhost (a PUT to one that exists answers 204 and keeps it; measured on 3.10.8).
  const fixed = !atLeast(actual.version, 3, 11);
  const classic = actual.vhostExists
    ? fixed
      ? `RabbitMQ ${actual.version} cannot give a vhost that exists another default queue type (it has no rabbitmqctl update_vhost_metadata, and its HTTP API keeps the type): set the type in the file, or create the vhost again with rabbitmqctl add_vhost ${shellWord(vhost)} --default-queue-type classic once it is deleted, with everything it holds`
      : `give the vhost the classic default: rabbitmqctl update_vhost_metadata ${shellWord(vhost)} --default-queue-type classic`
    : `create the vhost with the classic default before apply: rabbitmqctl add_vhost ${shellWord(vhost)} --default-queue-type classic (the broker's own default is default_queue_type in rabbitmq.conf)`;
  const whose = actual.vhostExists ? `vhost "${vhost}" makes` : `the broker gives the vhost "${vhost}" apply creates its default queue type, and so makes`;
  const rule = `${whose} a durable queue declared without x-queue-type a ${type} queue (its default queue type)`;
  const writtenSpecs = specs.filter((s) => declared.has(s.queue.name));
  const written = writtenSpecs.map((s) => s.queue.name);
  const kept = specs.filter((s) => !declared.has(s.queue.name)).map((s) => s.queue.name);
  if (written.length) {
    out.errors.push({
      message: `${rule}; topo declares classic queues without it, as workers do, so ${written.length === 1 ? "a queue the file says is classic" : `${written.length} queues the file says are classic`} would be created as ${type} and never match the file: ${names(written)}`,
      // Where the file makes them classic: where their type goes.
      at: placesOf(writtenSpecs, "type", () => "type: classic"),
    });
    out.hints.push(retype, classic);
  }
  if (kept.length) {
    out.warnings.push(
      `${rule}, but ${names(kept)} ${kept.length === 1 ? "is a classic queue" : "are classic queues"}: a worker that declares ${kept.length === 1 ? "it" : "them"} without x-queue-type (kombu's default, and topo export celery's module) is refused with 406 PRECONDITION_FAILED (inequivalent arg 'x-queue-type'); ${retype} (apply --allow-destructive then replaces them, keeping their messages)${fixed ? `; ${classic}` : `, or ${classic}`}`,
    );
  }
}
