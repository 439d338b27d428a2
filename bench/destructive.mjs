// What a change to topo's destructive writes costs, two builds alternating, each from a fresh pair
// of vhosts holding N services: `replace` adds x-max-priority to every async queue (N lossless
// replaces of empty classic queues); `delete` removes all services but one (the exchanges, queues
// and bindings of N - 1 services on each cluster). Not part of npm run bench (these are rare, and
// take minutes).
//
// Usage: node bench/destructive.mjs MODE N ORDER OTHER_CLI
//   MODE       replace or delete
//   N          services (default 300)
//   ORDER      contenders in turn, e.g. other,this,this,other (the default)
//   OTHER_CLI  the other build's dist/cli.js (a worktree of an earlier commit, built)
// The broker is bench/broker.mjs's (BENCH_AMQP_URL, BENCH_MANAGEMENT_URL, BENCH_CREDENTIALS).
// Raw figures go to bench/results/MODE-N-TIME.json.

import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { AMQP, api, log, MGMT } from "./broker.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const mode = process.argv[2];
if (mode !== "replace" && mode !== "delete") throw new Error("give the mode, replace or delete, as the first argument");
const N = Number(process.argv[3] ?? 300);
const order = (process.argv[4] ?? "other,this,this,other").split(",");
const contenders = { this: join(here, "..", "dist", "cli.js"), other: process.argv[5] };
if (order.includes("other") && !contenders.other) throw new Error("give the other build's dist/cli.js as the fourth argument");
const work = mkdtempSync(join(tmpdir(), "topo-bench-replace-"));
// Service names are the prefix "mp" and letters: mpaaa, mpaab, ...
const name = (k) => "mp" + [...k.toString(26).padStart(3, "0")].map((c) => String.fromCharCode(97 + parseInt(c, 26))).join("");

const results = [];
for (const [i, who] of order.entries()) {
  const sync = `bench-${mode}-s-${i}`;
  const async = `bench-${mode}-a-${i}`;
  for (const v of [sync, async]) await api("DELETE", `/api/vhosts/${v}`);
  // replace: N services with their async queue only, before and after; delete: N services, then 1.
  const file = (step) => {
    const cluster = (v) => ({ url: `${AMQP}/${encodeURIComponent(v)}`, management: MGMT });
    const services =
      mode === "replace"
        ? Array.from({ length: N }, (_, k) => ({ name: name(k), sync: false, ...(step === "after" ? { async: { arguments: { "x-max-priority": 5 } } } : {}) }))
        : Array.from({ length: step === "after" ? 1 : N }, (_, k) => name(k));
    const f = join(work, `topology-${i}-${step}.yaml`);
    writeFileSync(f, JSON.stringify({ version: 1, clusters: { sync: cluster(sync), async: cluster(async) }, services }));
    return f;
  };
  const cli = (...args) => execFileSync(process.execPath, [contenders[who], ...args], { encoding: "utf8", stdio: "pipe" });
  cli("apply", "-f", file("before"));
  const t0 = Date.now();
  cli("apply", "-f", file("after"), "--allow-destructive");
  const ms = Date.now() - t0;
  const clean = /No changes/.test(cli("plan", "-f", file("after"), "--detailed-exitcode"));
  results.push({ run: i, who, cli: contenders[who], mode, services: N, ms, clean });
  log(JSON.stringify(results.at(-1)));
  for (const v of [sync, async]) await api("DELETE", `/api/vhosts/${v}`);
}
const out = join(here, "results", `${mode}-${N}-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
writeFileSync(out, JSON.stringify(results, null, 2));
log(`raw figures: ${out}`);
