// How topo's own process is set up: by the command line, and by the benchmark's worker, which must
// run topo exactly as the command line does. Never by the library on its host's behalf.

import { limitHeapGrowth } from "./heap.js";
import { skipOptimizingCompiler } from "./tiering.js";

export function setUpProcess(): void {
  skipOptimizingCompiler();
  limitHeapGrowth();
}
