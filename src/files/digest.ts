// sha256 digests for saved plans: of the topology file's bytes, and of a broker's state text.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { TopoError } from "../errors.js";

export function sha256(data: string | Buffer): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/** The digest of a file's bytes, as they are now. */
export function fileDigest(file: string): string {
  try {
    return sha256(readFileSync(file));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new TopoError(`cannot read ${file}: ${code === "ENOENT" ? "no such file" : (e as Error).message}`);
  }
}

/**
 * Whether the file, read now, has `digest` once its line ends (LF or CRLF) or its UTF-8 byte-order
 * mark are written the other way: what a git checkout with core.autocrlf, or an editor, changes
 * without changing a word of it.
 */
export function differsOnlyInLineEnds(file: string, digest: string): boolean {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return false;
  }
  const bare = text.replace(/^\uFEFF/, "");
  const lf = bare.replace(/\r\n/g, "\n");
  const crlf = lf.replace(/\n/g, "\r\n");
  return [lf, crlf, `\uFEFF${lf}`, `\uFEFF${crlf}`].some((t) => t !== text && sha256(t) === digest);
}
