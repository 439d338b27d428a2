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
