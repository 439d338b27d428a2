// Files that topo generates (a topology, a Celery module, definitions) are written whole or not at
// all: a worker importing a module, or a pipeline reading a topology, never sees half of one.

import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, fstatSync, realpathSync, renameSync, rmSync, statSync, writeFileSync, writeSync, type Stats } from "node:fs";
import { dirname, resolve } from "node:path";
import { TopoError } from "../errors.js";

/**
 * `toStdout`: the command prints the text when -o is left out (not so a saved plan, which only -o
 * writes). A file is written beside itself and renamed into place; through a symbolic link, the
 * file it names is. What is not a file (-o /dev/stdout, a pipe, a terminal) is written to as it
 * is: renaming a file over it would replace it (root's /dev/stdout or /dev/full became a plain
 * file), and the text would reach no reader. `mode`: a new file's (less the umask); a file that
 * exists keeps its own, since whoever made it 0600 meant it (a saved plan holds a password
 * fingerprint, definitions hold password hashes).
 */
export function writeWhole(file: string, text: string, toStdout = true, mode = 0o644): void {
  let place = file;
  try {
    const now = statSync(file, { throwIfNoEntry: false });
    if (now && !now.isFile() && !now.isDirectory()) {
      writeFileSync(file, text);
      return;
    }
    // The file this process's stdout or stderr is (-o /dev/stdout >> ci.log): written through that
    // descriptor, as the shell opened it (appending). Renamed over, the file lost what it held, and
    // opened again by name it would be cut to nothing.
    const fd = now?.isFile() ? [1, 2].find((n) => sameInode(now, n)) : undefined;
    if (fd !== undefined) {
      const bytes = Buffer.from(text);
      for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at);
      return;
    }
    if (now?.isFile()) place = realpathSync(file);
    const tmp = newTempFile(resolve(place), text, mode);
    try {
      // The temporary file is new, so it has `mode`; the file it takes the place of had its own.
      if (now?.isFile()) chmodSync(tmp, now.mode & 0o7777);
      renameSync(tmp, place);
    } finally {
      rmSync(tmp, { force: true });
    }
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const dir = dirname(resolve(place));
    // ENOENT also comes from a directory that exists but takes no new file (/proc): not "missing".
    const missing = code === "ENOENT" ? (existsSync(dir) ? `cannot create a file in ${dir} (${code})` : `no such directory ${dir}`) : undefined;
    const why = missing ?? (code === "EACCES" || code === "EPERM" ? "permission denied" : code === "EISDIR" ? "it is a directory" : (e as Error).message);
    throw new TopoError(`cannot write ${file}: ${why}`, [`pass -o a path in a directory you can write to${toStdout ? ", or leave -o out to print to stdout" : ""}`]);
  }
}

/**
 * A new file beside `path` holding `text`, under a name nobody can foresee, created only if nothing
 * has that name (O_EXCL: a symbolic link planted there is not followed). A name made of the
 * process id was: a link at `plan.json.<pid>.tmp` to another file had the plan written into that
 * file, and the saved plan a link to it.
 */
function newTempFile(path: string, text: string, mode: number): string {
  for (let attempt = 0; ; attempt++) {
    const tmp = `${path}.${randomBytes(8).toString("hex")}.tmp`;
    try {
      writeFileSync(tmp, text, { mode, flag: "wx" });
      return tmp;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST" || attempt >= 4) throw e;
    }
  }
}

/** -o naming the topology file (by any path): the output would replace the file it was made from. */
export function refuseOverTopology(output: string, file: string, what: string, example: string): void {
  if (sameFile(output, file)) throw new TopoError(`-o ${output} is the topology file ${file}: ${what} would replace it`, [`write it to a file of its own, e.g. -o ${example}`]);
}

/** Whether file descriptor `fd` is open on the file `st` describes. */
function sameInode(st: Stats, fd: number): boolean {
  try {
    const f = fstatSync(fd);
    return f.dev === st.dev && f.ino === st.ino;
  } catch {
    return false;
  }
}

/** Whether two paths name one file (by any path, a hard link included); false when either is missing. */
export function sameFile(a: string, b: string): boolean {
  const x = statSync(a, { throwIfNoEntry: false });
  const y = statSync(b, { throwIfNoEntry: false });
  return x !== undefined && y !== undefined && x.dev === y.dev && x.ino === y.ino;
}
