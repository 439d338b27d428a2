// Loaded with `node --import` before topo's CLI: counts its management API requests and, as it
// exits, writes its CPU time, peak RSS and those counts to $BENCH_USAGE_FILE (one JSON object).

import { writeFileSync } from "node:fs";
import http from "node:http";

const counts = { httpRequests: 0, httpWrites: 0 };
const request = http.request;
http.request = function (...args) {
  const opts = args.find((a) => a && typeof a === "object" && !(a instanceof URL));
  counts.httpRequests++;
  if ((opts?.method ?? "GET") !== "GET") counts.httpWrites++;
  return request.apply(this, args);
};

process.on("exit", () => {
  const u = process.resourceUsage();
  writeFileSync(process.env.BENCH_USAGE_FILE, JSON.stringify({ cpuMs: (u.userCPUTime + u.systemCPUTime) / 1000, maxRssMB: u.maxRSS / 1024, ...counts }));
});
