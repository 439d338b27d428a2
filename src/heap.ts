// How much memory topo's own process may hold on to: set by the command line (and the benchmark's
// worker, which runs topo as the command line does), never by the library on its host's behalf.

import { setFlagsFromString } from "node:v8";

/**
 * V8 lets the heap grow up to four times what was live after its last full collection before it
 * collects again. A plan or apply of 150,000 objects reads tens of megabytes of JSON per
 * listing, three times over in an apply, and nearly all of it is garbage a moment later: with
 * the default, a 1% drift apply of 25,000 services peaked at 535–598 MB of RSS although no more
 * than about 105 MB was ever live. Growing by half at most (measured: 275 MB peak, the same wall
 * time, CPU within the noise) keeps a deploy job well inside a small container's memory. V8 reads
 * the flag whenever it sets a new limit, so setting it at start-up takes effect.
 */
export function limitHeapGrowth(): void {
  setFlagsFromString("--heap-growing-percent=50");
}
