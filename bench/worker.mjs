// One measured topo operation in a process of its own, so CPU time and peak RSS are topo's alone.
// Usage: node bench/worker.mjs plan|apply FILE   → one line of JSON on stdout.

import { setUpProcess } from "../dist/process-setup.js";

// The process is set up as the command line sets up its own (src/cli.ts).
setUpProcess();
const [op, file] = process.argv.slice(2);
const started = performance.now();
let result;
if (op === "plan") {
  const { plan } = await import("../dist/index.js");
  const stats = { httpRequests: 0 };
  const p = await plan({ file }, stats);
  const actions = p.clusters.reduce((n, c) => n + c.actions.length, 0);
  result = { httpRequests: stats.httpRequests, httpWrites: 0, amqpRpcs: 0, changes: actions };
} else if (op === "apply") {
  const { apply } = await import("../dist/index.js");
  const r = await apply({ file, allowDestructive: false, allowDataLoss: false, lockTimeoutMs: 60_000, log: () => undefined });
  result = { ...r.stats, changes: r.clusters.reduce((n, c) => n + c.changes, 0) };
} else {
  throw new Error(`unknown operation ${op}`);
}
const usage = process.resourceUsage();
process.stdout.write(
  `${JSON.stringify({
    inProcessMs: performance.now() - started,
    cpuMs: (usage.userCPUTime + usage.systemCPUTime) / 1000,
    maxRssMB: usage.maxRSS / 1024,
    ...result,
  })}\n`,
);
