// Every command of topo's, as a user runs it (node dist/cli.js, a whole process), at two sizes:
// does each grow with the size of the topology, and no faster? bench/run.mjs measures plan and
// apply against the broker's own floor; this one measures the shapes of work it does not: a plan
// printed as JSON or saved, one that deletes most of the services or replaces every queue, a file
// with a user per service, import, export, graph, route. Each of those has once taken minutes at
// 5,000 services where it took a second at 1,000 (a search repeated for every object).
//
// Usage: npm run bench:commands                 BENCH_COMMAND_SIZES=1000,5000, 3 runs of each
//        BENCH_COMMAND_TIMEOUT_S=300            a run that takes longer is stopped and reported as such
//        BENCH_TOPO=/path/to/dist/cli.js        another build of topo (to compare two commits)
//        Ctrl-C (or kill)                       stops the topo it runs and removes its vhosts
//
// Fairness: both sizes are set up the same way (topo apply, untimed), every run waits for an idle
// broker first (bench/broker.mjs quiet), no command writes to the broker, the runs of one size
// alternate their order of commands, and each figure is the median of its runs, with the raw
// figures kept in bench/results/commands-<time>.json.

import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { AMQP, api, commitOf, execChild, log, measured, MGMT, removeOnStop, removeVhost, stopped } from "./broker.mjs";
import { commandsReport, median } from "./report.mjs";
import { serviceNames } from "./services.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const TOPO = process.env.BENCH_TOPO ?? join(ROOT, "dist/cli.js");
const SIZES = (process.env.BENCH_COMMAND_SIZES ?? "1000,5000").split(",").map(Number);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const TIMEOUT_MS = Number(process.env.BENCH_COMMAND_TIMEOUT_S ?? 300) * 1000;
const DIR = mkdtempSync(join(tmpdir(), "topo-bench-commands-"));
const RUN_ID = Date.now().toString(36);
/** The vhosts this run has made and not yet removed. */
const made = new Set();

/** RabbitMQ's rabbit_password_hashing_sha256 form of a password: no variable to set for the users. */
function passwordHash(password) {
  const salt = Buffer.from([0x51, 0x7a, 0x03, 0xc4]);
  return Buffer.concat([salt, createHash("sha256").update(Buffer.concat([salt, Buffer.from(password)])).digest()]).toString("base64");
}

/** The topology files of one size: as applied, with a user per service, with a fifth of the services, with every async queue changed. */
function files(n, vhosts) {
  const services = serviceNames(n);
  const base = {
    version: 1,
    clusters: { sync: { url: `${AMQP}/${vhosts.sync}`, management: MGMT }, async: { url: `${AMQP}/${vhosts.async}`, management: MGMT } },
    services,
  };
  const hash = passwordHash("a-password-long-enough");
  const users = { edge: { password_hash: hash, publishes: "all" } };
  for (const s of services) users[`u_${s}`] = { password_hash: hash, consumes: [s] };
  const write = (name, doc) => {
    const file = join(DIR, `${name}-${n}.json`);
    writeFileSync(file, JSON.stringify(doc));
    return file;
  };
  return {
    applied: write("applied", base),
    users: write("users", { ...base, users }),
    fifth: write("fifth", { ...base, services: services.slice(0, n / 5) }),
    changed: write("changed", { ...base, defaults: { async: { cluster: "async", durable: true, arguments: { "x-message-ttl": 60000 } } } }),
    empty: write("empty", { ...base, clusters: { sync: { url: `${AMQP}/${vhosts.sync}-none`, management: MGMT }, async: { url: `${AMQP}/${vhosts.async}-none`, management: MGMT } } }),
  };
}

/** The commands, each a name and its arguments; none writes to the broker. */
function commands(f, planFile) {
  return [
    ["validate, a user per service", ["validate", "-f", f.users]],
    ["plan, no changes", ["plan", "-f", f.applied]],
    ["plan --json, empty broker", ["plan", "--json", "-f", f.empty]],
    ["plan --format markdown, empty broker", ["plan", "--format", "markdown", "-f", f.empty]],
    ["plan -o, no changes", ["plan", "-o", planFile, "-f", f.applied]],
    ["show --json (that saved plan)", ["show", "--json", planFile]],
    ["plan --json, a user per service", ["plan", "--json", "-f", f.users]],
    ["plan --json, deleting 4 services in 5", ["plan", "--json", "-f", f.fifth]],
    ["plan --json, replacing every async queue", ["plan", "--json", "-f", f.changed]],
    ["apply, no changes", ["apply", "-f", f.applied]],
    ["import", ["import", "-f", f.applied]],
    ["export definitions", ["export", "definitions", "--cluster", "sync", "-f", f.applied]],
    ["export celery", ["export", "celery", "--cluster", "sync", "-f", f.applied]],
    ["graph --format dot", ["graph", "--format", "dot", "-f", f.applied]],
    ["route", ["route", "-f", f.applied, "mpsvc_a.sync.x"]],
  ];
}

/** One command, whole process: wall time, and the process's CPU time and peak RSS (bench/usage.mjs). */
function run(args) {
  const usage = join(DIR, `usage-${Math.random().toString(36).slice(2)}.json`);
  return measured(
    () =>
      new Promise((resolve) => {
        execChild(
          process.execPath,
          ["--import", join(ROOT, "bench/usage.mjs"), TOPO, ...args],
          { cwd: ROOT, env: { ...process.env, BENCH_USAGE_FILE: usage }, maxBuffer: 1024 * 1024 * 1024, timeout: TIMEOUT_MS, killSignal: "SIGKILL" },
          (err, _stdout, stderr) => {
            // plan exits 0 or 2 (--detailed-exitcode is not given, so 0); anything else failed.
            if (err?.killed) return resolve({ timedOut: true });
            if (err) return resolve({ failed: (stderr || err.message).trim().split("\n").pop() });
            const u = JSON.parse(readFileSync(usage, "utf8"));
            resolve({ cpuMs: u.cpuMs, maxRssMB: u.maxRssMB, httpRequests: u.httpRequests, httpWrites: u.httpWrites });
          },
        );
      }),
  );
}

function topo(args) {
  return new Promise((resolve, reject) =>
    execChild(process.execPath, [TOPO, ...args], { cwd: ROOT, maxBuffer: 256 * 1024 * 1024 }, (err, stdout, stderr) => (err ? reject(new Error(`topo ${args.join(" ")}: ${stderr}`)) : resolve(stdout))),
  );
}

async function measureSize(n) {
  if (stopped()) throw new Error("stopped");
  const vhosts = { sync: `bench-cmd-${RUN_ID}-${n}-sync`, async: `bench-cmd-${RUN_ID}-${n}-async` };
  for (const v of Object.values(vhosts)) made.add(v);
  const f = files(n, vhosts);
  const planFile = join(DIR, `saved-${n}.plan`);
  log(`${n} services: setting up ${vhosts.sync} and ${vhosts.async} (topo apply, not timed)`);
  await topo(["apply", "-f", f.applied]);
  try {
    const list = commands(f, planFile);
    const raw = Object.fromEntries(list.map(([name]) => [name, []]));
    for (let round = 0; round < RUNS; round++) {
      // The saved plan is made before show reads it, whatever the order.
      const order = round % 2 === 0 ? list : [list[4], ...list.filter((_, i) => i !== 4).reverse()];
      for (const [name, args] of order) {
        const r = await run(args);
        raw[name].push(r);
        log(`${n} services, round ${round + 1}: ${name}: ${r.timedOut ? `stopped after ${TIMEOUT_MS / 1000} s` : r.failed ? `failed: ${r.failed}` : `${Math.round(r.wallMs)} ms, ${Math.round(r.cpuMs)} ms CPU`}`);
      }
    }
    return Object.fromEntries(
      Object.entries(raw).map(([name, runs]) => [
        name,
        {
          wallMs: median(runs.filter((r) => !r.timedOut && !r.failed).map((r) => r.wallMs)),
          cpuMs: median(runs.map((r) => r.cpuMs)),
          maxRssMB: median(runs.map((r) => r.maxRssMB)),
          timedOut: runs.filter((r) => r.timedOut).length,
          failed: runs.find((r) => r.failed)?.failed,
          runs,
        },
      ]),
    );
  } finally {
    // A stop (a signal) removes them itself (removeOnStop).
    if (!stopped()) {
      for (const v of Object.values(vhosts)) {
        await removeVhost(v).catch((e) => log(`could not remove vhost ${v}: ${e.message}; rabbitmqctl delete_vhost ${v} removes it`));
        made.delete(v);
      }
    }
  }
}

async function main() {
  if (SIZES.length !== 2 || SIZES[1] <= SIZES[0]) throw new Error("BENCH_COMMAND_SIZES names two sizes, the smaller first");
  removeOnStop(() => made);
  const overview = await api("GET", "/api/overview?columns=rabbitmq_version");
  const startedAt = new Date().toISOString();
  const file = join(ROOT, "bench/results", `commands-${startedAt.replace(/[:.]/g, "-")}.json`);
  const result = {
    startedAt,
    topo: TOPO,
    commit: commitOf(dirname(dirname(TOPO))),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? "unknown CPU", node: process.version, rabbit: overview.rabbitmq_version },
    loadAverageAtStart: loadavg(),
    sizes: SIZES,
    runs: RUNS,
    timeoutS: TIMEOUT_MS / 1000,
    file: file.replace(`${ROOT}/`, ""),
    results: {},
  };
  mkdirSync(dirname(file), { recursive: true });
  for (const n of SIZES) {
    result.results[n] = await measureSize(n);
    result.loadAverageAtEnd = loadavg();
    writeFileSync(file, `${JSON.stringify(result, null, 1)}\n`);
  }
  process.stdout.write(`${commandsReport(result)}\n`);
  log(`wrote ${result.file}; node bench/run.mjs --report RESULTS.json puts it in BENCHMARKS.md`);
}

process.on("exit", () => rmSync(DIR, { recursive: true, force: true }));

main().catch((e) => {
  if (stopped()) return;
  process.stderr.write(`bench failed: ${e.stack ?? e}\n`);
  process.exit(1);
});
