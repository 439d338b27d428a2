// Glue for `topo export celery`: load the file, generate the module, write it where asked.
// No network: the module is made from the file alone, like validate.

import { renameSync, unlinkSync, writeFileSync } from "node:fs";
import { basename } from "node:path";
import { loadConfig, type Env } from "../config/load.js";
import { TopoError } from "../errors.js";
import { celeryModule, type CeleryModule } from "../export/celery.js";
import { redactText } from "../redact.js";

export interface ExportCeleryOptions {
  file: string;
  cluster?: string;
  brokerEnv?: string;
  defaultQueue?: string;
  /** Write here; undefined or "-" means the caller prints `text`. */
  output?: string;
  env?: Env;
}

export interface ExportCeleryResult extends CeleryModule {
  /** The file written, when one was. */
  written?: string;
  /** Advice that does not stop the export. */
  warnings: string[];
}

export function exportCelery(o: ExportCeleryOptions): ExportCeleryResult {
  const { desired } = loadConfig(o.file, o.env);
  const m = celeryModule(desired, { source: o.file, cluster: o.cluster, brokerEnv: o.brokerEnv, defaultQueue: o.defaultQueue });

  // The generator never reads a password. Should a password still show up (one equal to a name in
  // the topology, say), refuse rather than write a secret or a module mangled by masking.
  if (redactText(m.text) !== m.text) {
    const line = firstDifferentLine(m.text, redactText(m.text));
    throw new TopoError(`line ${line} of the generated module contains a password read from ${o.file}; nothing was written`, [
      "topo writes no password into the module; this happens when a password equals a name the module holds (a service, queue, host or vhost): change that password",
    ]);
  }

  const warnings: string[] = [];
  if (o.output === undefined || o.output === "-") return { ...m, warnings };

  if (!/^[A-Za-z_][A-Za-z0-9_]*\.py$/.test(basename(o.output))) {
    warnings.push(`${basename(o.output)} cannot be imported by config_from_object under that name; a Python module is named like celeryconfig_${m.cluster.replace(/-/g, "_")}.py`);
  }
  // Write then rename, so a worker importing the module never reads half of it.
  const tmp = `${o.output}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, m.text, { mode: 0o644 });
    renameSync(tmp, o.output);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // nothing was created
    }
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such directory" : code === "EACCES" || code === "EPERM" ? "permission denied" : code === "EISDIR" ? "it is a directory" : (e as Error).message;
    throw new TopoError(`cannot write ${o.output}: ${why}`, ["pass -o a path in a directory you can write to, or leave -o out to print the module"]);
  }
  return { ...m, written: o.output, warnings };
}

function firstDifferentLine(a: string, b: string): number {
  const x = a.split("\n");
  const y = b.split("\n");
  const i = x.findIndex((l, n) => l !== y[n]);
  return i + 1;
}
