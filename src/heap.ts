// How much memory topo's own process may hold on to: set by the command line (and the benchmark's
// worker, which runs topo as the command line does), never by the library on its host's behalf.

import { PerformanceObserver } from "node:perf_hooks";
import { getHeapStatistics, setFlagsFromString } from "node:v8";

/** Below this much heap, growth is left to V8: the cap costs collections and buys nothing there. */
const CAP_ABOVE_BYTES = 96 * 1024 * 1024;

/**
 * V8 lets the heap grow up to four times what was live after its last full collection before it
 * collects again. A plan or apply of 150,000 objects reads tens of megabytes of JSON per
 * listing, three times over in an apply, and nearly all of it is garbage a moment later: with
 * the default, a 1% drift apply of 25,000 services peaked at 535–598 MB of RSS although no more
 * than about 105 MB was ever live. Growing by half at most keeps a deploy job well inside a small
 * container's memory (275 MB). From the start, though, the cap cost smaller runs extra
 * collections of a heap that never passes 100 MB (a no-change plan of 5,000 services: 734 ms of
 * CPU against 694 ms with the cap set late); so it is set after the first collection that finds
 * the heap larger than that. V8 reads the flag whenever it sets a new limit, that is after every
 * collection, so setting it late takes effect.
 */
export function limitHeapGrowth(): void {
  const watch = new PerformanceObserver(() => {
    if (getHeapStatistics().total_heap_size < CAP_ABOVE_BYTES) return;
    setFlagsFromString("--heap-growing-percent=50");
    watch.disconnect();
  });
  watch.observe({ entryTypes: ["gc"] });
}
