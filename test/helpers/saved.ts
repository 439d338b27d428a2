// A saved plan edited by a test, with the digest topo plan -o writes made again: what a hand edit
// that also rewrote the digest looks like, so that apply's checks behind the digest's are reached.

import { writeFileSync } from "node:fs";
import { planSeal } from "../../src/commands/saved.js";

/** Write `plan` (a saved plan's JSON, edited) to `file`, with its digest made anew. */
export function writeResealed(file: string, plan: Record<string, unknown>): void {
  writeFileSync(file, JSON.stringify({ ...plan, digest: planSeal(plan) }));
}
