// Which of V8's compilers topo's own process uses: set by the command line (and the benchmark's
// worker, which runs topo as the command line does), never by the library on its host's behalf.

import { setFlagsFromString } from "node:v8";

/**
 * Run topo without TurboFan, V8's optimizing compiler; the interpreter and the Sparkplug
 * baseline compiler still run everything. topo is a short process, and its heavy work is in
 * native code (JSON.parse, string building, Map and sort): TurboFan compiled hot functions on
 * V8's worker threads and the run never earned that back. On the 2-core test machine, by thread,
 * an apply from empty of 1,000 services used about 300 ms of CPU on those threads with TurboFan
 * and 20 ms without, and 550–690 ms on the main thread either way. The command line with and
 * without this, runs alternating, mean CPU of the process (wall time the same within noise):
 * - plan, no changes, 1,000 services (8 runs each): 0.49 s → 0.42 s;
 * - apply from empty, 1,000 services (3 each): 1.03 s → 0.82 s; 5,000 services: 3.04 s → 2.56 s;
 * - plan, no changes, 25,000 services (3 each, the flag set by a preloaded module): no worse,
 *   4.2–4.8 s against 3.9–4.8 s.
 * On 2 cores that CPU is taken from the broker. V8 checks the flag each time it would optimize a
 * function, so setting it at start-up takes effect.
 */
export function skipOptimizingCompiler(): void {
  setFlagsFromString("--no-turbofan");
}
