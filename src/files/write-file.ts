// Files that topo generates (a topology, a Celery module, definitions) are written whole or not at
// all: a worker importing a module, or a pipeline reading a topology, never sees half of one.

import { existsSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { TopoError } from "../errors.js";

/** `toStdout`: the command prints the text when -o is left out (not so a saved plan, which only -o writes). */
export function writeWhole(file: string, text: string, toStdout = true): void {
  const tmp = `${resolve(file)}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, text, { mode: 0o644 });
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    const code = (e as NodeJS.ErrnoException).code;
    const dir = dirname(resolve(file));
    // ENOENT also comes from a directory that exists but takes no new file (/proc): not "missing".
    const missing = code === "ENOENT" ? (existsSync(dir) ? `cannot create a file in ${dir} (${code})` : `no such directory ${dir}`) : undefined;
    const why = missing ?? (code === "EACCES" || code === "EPERM" ? "permission denied" : code === "EISDIR" ? "it is a directory" : (e as Error).message);
    throw new TopoError(`cannot write ${file}: ${why}`, [`pass -o a path in a directory you can write to${toStdout ? ", or leave -o out to print to stdout" : ""}`]);
  }
}

/** Whether two paths name one file (by any path, a hard link included); false when either is missing. */
export function sameFile(a: string, b: string): boolean {
  const x = statSync(a, { throwIfNoEntry: false });
  const y = statSync(b, { throwIfNoEntry: false });
  return x !== undefined && y !== undefined && x.dev === y.dev && x.ino === y.ino;
}
