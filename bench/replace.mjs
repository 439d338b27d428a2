// Lossless replaces of N empty classic queues (x-max-priority added to every async queue), by two
// builds of topo, alternating, each from a fresh pair of vhosts: what a change to the replace
// costs. Not part of npm run bench (a replace is rare, and 1,000 take minutes).
//
// Usage: node bench/replace.mjs N ORDER OTHER_CLI
//   N          services (default 300)
//   ORDER      contenders in turn, e.g. other,this,this,other (the default)
//   OTHER_CLI  the other build's dist/cli.js (a worktree of an earlier commit, built)
// The broker is bench/broker.mjs's (BENCH_AMQP_URL, BENCH_MANAGEMENT_URL, BENCH_CREDENTIALS).
// Raw figures go to bench/results/replace-N-TIME.json.

import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { AMQP, api, log, MGMT } from "./broker.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const N = Number(process.argv[2] ?? 300);
const order = (process.argv[3] ?? "other,this,this,other").split(",");
const contenders = { this: join(here, "..", "dist", "cli.js"), other: process.argv[4] };
if (order.includes("other") && !contenders.other) throw new Error("give the other build's dist/cli.js as the third argument");
const work = mkdtempSync(join(tmpdir(), "topo-bench-replace-"));
// Service names are the prefix "mp" and letters: mpaaa, mpaab, ...
const name = (k) => "mp" + [...k.toString(26).padStart(3, "0")].map((c) => String.fromCharCode(97 + parseInt(c, 26))).join("");

const results = [];
for (const [i, who] of order.entries()) {
  const sync = `bench-replace-s-${i}`;
  const async = `bench-replace-a-${i}`;
  for (const v of [sync, async]) await api("DELETE", `/api/vhosts/${v}`);
  const file = (args) => {
    const cluster = (v) => ({ url: `${AMQP}/${encodeURIComponent(v)}`, management: MGMT });
    const doc = { version: 1, clusters: { sync: cluster(sync), async: cluster(async) }, services: Array.from({ length: N }, (_, k) => ({ name: name(k), sync: false, ...(args ? { async: { arguments: args } } : {}) })) };
    const f = join(work, `topology-${i}-${args ? "after" : "before"}.yaml`);
    writeFileSync(f, JSON.stringify(doc));
    return f;
  };
  const cli = (...args) => execFileSync(process.execPath, [contenders[who], ...args], { encoding: "utf8", stdio: "pipe" });
  cli("apply", "-f", file(undefined));
  const t0 = Date.now();
  cli("apply", "-f", file({ "x-max-priority": 5 }), "--allow-destructive");
  const ms = Date.now() - t0;
  const clean = /No changes/.test(cli("plan", "-f", file({ "x-max-priority": 5 }), "--detailed-exitcode"));
  results.push({ run: i, who, cli: contenders[who], services: N, ms, clean });
  log(JSON.stringify(results.at(-1)));
  for (const v of [sync, async]) await api("DELETE", `/api/vhosts/${v}`);
}
const out = join(here, "results", `replace-${N}-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
writeFileSync(out, JSON.stringify(results, null, 2));
log(`raw figures: ${out}`);
