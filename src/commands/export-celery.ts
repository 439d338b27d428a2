// Glue for `topo export celery`: load the file, generate the module, write it where asked.
// No network: the module is made from the file alone, like validate.

import { basename } from "node:path";
import { loadConfig, type Env } from "../config/load.js";
import { TopoError } from "../errors.js";
import { brokerEnvName, celeryModule, type CeleryModule } from "../export/celery.js";
import { Redactor } from "../redact.js";
import { refuseOverTopology, writeWhole } from "../files/write-file.js";
import { names } from "../core/words.js";
import { pushTo } from "../core/collections.js";
import { duration } from "../plan/risk.js";
import type { DesiredCluster } from "../model.js";

export interface ExportCeleryOptions {
  file: string;
  cluster?: string;
  brokerEnv?: string;
  defaultQueue?: string;
  /** Write here; undefined or "-" means the caller prints `text`. */
  output?: string;
  env?: Env;
  /** Learns the file's passwords, to mask them in what the caller prints. */
  redactor?: Redactor;
}

export interface ExportCeleryResult extends CeleryModule {
  /** The file written, when one was. */
  written?: string;
  /** Advice that does not stop the export. */
  warnings: string[];
}

export function exportCelery(o: ExportCeleryOptions): ExportCeleryResult {
  // The module is checked against the passwords the file holds (the caller's redactor learns them).
  const secrets = o.redactor ?? new Redactor();
  const { desired, unsetPasswords, warnings: literal } = loadConfig(o.file, o.env, secrets, { passwordsOptional: true });
  const m = celeryModule(desired, { source: o.file, cluster: o.cluster, brokerEnv: o.brokerEnv, defaultQueue: o.defaultQueue, env: o.env ?? process.env });

  // The generator never reads a password. Should a password still show up (one equal to a name in
  // the topology, say), refuse rather than write a secret or a module mangled by masking.
  if (secrets.text(m.text) !== m.text) {
    const line = firstDifferentLine(m.text, secrets.text(m.text));
    throw new TopoError(`line ${line} of the generated module contains a password read from ${o.file}; nothing was written`, [
      "topo writes no password into the module; this happens when a password equals a name the module holds (a service, queue, host or vhost): change that password",
    ]);
  }

  // Cluster names that differ only where a variable name cannot (eu-sync and eu_sync) give their
  // modules one variable: an app that loads both would connect both to one broker.
  const twin = o.brokerEnv === undefined ? desired.clusters.find((c) => c.target.name !== m.cluster && brokerEnvName(c.target.name) === m.brokerEnv) : undefined;
  const shared = twin
    ? [`cluster ${m.cluster}'s module reads ${m.brokerEnv}, as cluster ${twin.target.name}'s does: an app that loads both would connect both to one broker; give one a variable of its own with --broker-env, or rename a cluster`]
    : [];
  const cluster = desired.clusters.find((c) => c.target.name === m.cluster);
  const warnings: string[] = [...unsetPasswords, ...literal, ...shared, ...delayedTasksWarning(cluster), ...timedOutTasksWarning(cluster)];
  if (o.output === undefined || o.output === "-") return { ...m, warnings };

  if (!/^[A-Za-z_][A-Za-z0-9_]*\.py$/.test(basename(o.output))) {
    warnings.push(`${basename(o.output)} cannot be imported by config_from_object under that name; a Python module is named like celeryconfig_${m.cluster.replace(/-/g, "_")}.py`);
  }
  refuseOverTopology(o.output, o.file, "the module", `celeryconfig_${m.cluster.replace(/-/g, "_")}.py`);
  writeWhole(o.output, m.text);
  return { ...m, written: o.output, warnings };
}

function firstDifferentLine(a: string, b: string): number {
  const x = a.split("\n");
  const y = b.split("\n");
  const i = x.findIndex((l, n) => l !== y[n]);
  return i + 1;
}

/**
 * A cluster with quorum queues gets a transport that sets Celery's prefetch limit per consumer
 * (export/celery.ts), as quorum queues need. Celery before 5.5 holds an ETA or countdown task in
 * the worker, and raises the limit for it; RabbitMQ applies a raised per-consumer limit only to
 * consumers that start after, so a worker holding as many such tasks as its limit takes no other
 * task, from any queue of the module, until they are due. Measured with Celery 5.2.6 on 3.10.8: a
 * task sent behind 4 countdown tasks of 25 s (a worker of -c 1) was received 25 s late; a sync
 * caller's get(timeout=15) timed out. Celery 5.5 moves such tasks to its native delayed delivery.
 */
function delayedTasksWarning(c: DesiredCluster | undefined): string[] {
  const quorum = (c?.queues ?? []).filter((s) => s.queue.type === "quorum").map((s) => s.queue.name);
  if (!c || quorum.length === 0) return [];
  return [
    `cluster ${c.target.name} has quorum queues (${names(quorum)}), so the module sets Celery's prefetch limit per consumer, as they need: with Celery before 5.5, a worker that holds as many ETA or countdown tasks (self.retry(countdown=...) too) as its limit takes no other task from any queue of the module until they are due, since RabbitMQ raises a per-consumer limit only for consumers that start after it (measured with Celery 5.2.6: a task sent behind 4 countdown tasks of 25 s ran 25 s late); use Celery 5.5 or later, which moves them to its native delayed delivery, or give those tasks no countdown on these queues (docs/celery.md)`,
  ];
}

/**
 * Celery holds an ETA or countdown task in the worker, unacknowledged, until it is due (before 5.5,
 * and on a classic queue in any version). RabbitMQ takes back a delivery held longer than the
 * queue's consumer timeout (4.3 cancels the consumer, earlier versions close its channel) and
 * delivers it again. Measured on RabbitMQ 4.3.6 with Celery 5.2.6, x-consumer-timeout 10000: a
 * task with a countdown of 20 s was run 7 times in 70 s (the worker lost its connection each
 * 11 s), never acknowledged, and once the worker stopped it was gone, at x-delivery-limit 3.
 */
function timedOutTasksWarning(c: DesiredCluster | undefined): string[] {
  const byTimeout = new Map<number, string[]>();
  for (const { queue } of c?.queues ?? []) {
    const t = queue.arguments["x-consumer-timeout"];
    if (typeof t === "number") pushTo(byTimeout, t, queue.name);
  }
  return [...byTimeout.entries()]
    .sort(([a], [b]) => a - b)
    .map(
      ([t, queues]) =>
        `${queues.length === 1 ? "queue" : "queues"} ${names([...queues].sort())} ${queues.length === 1 ? "has" : "have"} x-consumer-timeout ${t} (${duration(t)}): Celery holds an ETA or countdown task (self.retry(countdown=...) too) unacknowledged in the worker until it is due, so one due later than that is taken from the worker, delivered again and run more than once, and dropped at the queue's delivery limit (measured with Celery 5.2.6 on RabbitMQ 4.3.6: a countdown of 20 s under a timeout of 10 s ran 7 times, then was gone); keep countdowns on ${queues.length === 1 ? "it" : "them"} shorter, or raise x-consumer-timeout (docs/celery.md)`,
    );
}
