// topo's benchmark against the broker's own bulk import and against sequential declares, fair by
// construction, with the broker's own CPU time beside topo's.
//
// Usage: npm run bench                          writes bench/results/<time>.json and BENCHMARKS.md
//        BENCH_SIZES=100,1000,5000,25000        sizes, each with its rounds after ':' (25000:1; default 3)
//        BENCH_RUNS=3                           rounds of every size without its own
//        node bench/run.mjs --report A.json B.json    BENCHMARKS.md again from kept results (a
//                                               size in a later file replaces the same in an earlier)
//        Ctrl-C (or kill)                       stops the topo and rabbitmqctl it runs and removes its
//                                               vhosts (bench/broker.mjs removeOnStop); again: leaves now
//
// Fairness:
// - Contenders: topo (plan, apply from empty, plan and apply with no changes, the read floor, 1%
//   drift), topo on one cluster, (a) one definitions import per cluster, (b) sequential awaited
//   declares. Each creates its own two vhosts, both at once, the vhost's creation timed.
// - Before every contender the broker holds none of the others' objects: the previous contender's
//   vhosts are deleted and the broker is waited for until it has finished removing them (the
//   vhosts are gone, /api/overview's object totals are back to where they were when the
//   benchmark started, and beam.smp is quiet again).
// - The order of the contenders reverses from one round to the next; medians of the rounds, and
//   every round's own figures kept in bench/results/.
// - The broker's CPU (beam.smp's user+system time from /proc) is read before and after every
//   operation; topo's own CPU and peak RSS come from its process's resource usage.
// - The read floor: the requests topo's read makes (the same paths, stats off, the same columns),
//   sent alone, both clusters at once, timed to the last byte and not parsed.

import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { cpus, loadavg, totalmem, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import amqplib from "amqplib";
import { stringify as stringifyYaml } from "yaml";
import { serviceNames as names } from "./services.mjs";
import { commandsReport, report } from "./report.mjs";
import { AMQP, api, AUTH, BROKER, brokerCpu, commitOf, brokerLoad, execChild, IDLE_CORES, log, measured, MGMT, quiet, rabbitmqctl, removeOnStop, removeVhost, sleep, stopped } from "./broker.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const SIZES = (process.env.BENCH_SIZES ?? "100,1000,5000").split(",").map((s) => {
  const [n, runs] = s.split(":").map(Number);
  return { n, runs: runs || Number(process.env.BENCH_RUNS ?? 3) };
});
/** Above this size, topo on one cluster and (b) are left out: they would add most of an hour. */
const LARGE = 5000;
const DIR = mkdtempSync(join(tmpdir(), "topo-bench-"));
const RUN_ID = Date.now().toString(36);


async function objectTotals() {
  const o = await api("GET", "/api/overview?columns=object_totals");
  return { queues: o.object_totals.queues, exchanges: o.object_totals.exchanges };
}

// ----- contenders ----------------------------------------------------------------------------

/**
 * The topology of n services, as JSON (how a script that generates one would write it), or with
 * `yaml` the same document as YAML, as people write it.
 */
function topologyFile(n, sync, async, { syncOnly = false, yaml = false } = {}) {
  const doc = {
    version: 1,
    clusters: { sync: { url: `${AMQP}/${sync}`, management: MGMT }, async: { url: `${AMQP}/${async}`, management: MGMT } },
    services: syncOnly ? names(n).map((name) => ({ name, async: false })) : names(n),
  };
  const file = join(DIR, `topology-${sync}.${yaml ? "yaml" : "json"}`);
  writeFileSync(file, yaml ? stringifyYaml(doc) : JSON.stringify(doc));
  return file;
}

function child(args, env = {}) {
  return new Promise((resolve, reject) => {
    execChild(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, maxBuffer: 256 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${args.join(" ")} failed: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

/** One topo operation through the library, in a process of its own (bench/worker.mjs). */
async function topo(op, file) {
  return measured(async () => {
    const stdout = await child([join(ROOT, "bench/worker.mjs"), op, file]);
    return JSON.parse(stdout.trim().split("\n").pop());
  });
}

/**
 * `topo plan` (or `topo apply`) as a user runs it: the CLI, whole process, its output to a pipe as
 * in a deploy job; bench/usage.mjs reports its usage.
 */
async function topoCli(file, command = "plan") {
  const usage = join(DIR, `usage-${Math.random().toString(36).slice(2)}.json`);
  return measured(async () => {
    await child(["--import", join(ROOT, "bench/usage.mjs"), join(ROOT, "dist/cli.js"), command, "-f", file], { BENCH_USAGE_FILE: usage });
    return JSON.parse(readFileSync(usage, "utf8"));
  });
}

/** The objects one cluster holds for n services of one kind. */
function objects(n, kind) {
  return names(n).map((s) => ({ exchange: s, queue: `${s}.${kind}`, durable: kind === "async", key: `${s}.${kind}.#` }));
}

/** The broker's own definitions of one cluster's objects, in the import's format. */
function definitionsOf(n, kind, vhost) {
  const objs = objects(n, kind);
  return {
    exchanges: objs.map((o) => ({ name: o.exchange, vhost, type: "topic", durable: true, auto_delete: false, internal: false, arguments: {} })),
    queues: objs.map((o) => ({ name: o.queue, vhost, durable: o.durable, auto_delete: false, arguments: {} })),
    bindings: objs.map((o) => ({ source: o.exchange, vhost, destination: o.queue, destination_type: "queue", routing_key: o.key, arguments: {} })),
    policies: kind === "sync" ? [{ name: "topo.mirror.sync", vhost, pattern: "^mp[a-z_]+\\.sync$", "apply-to": "queues", priority: 0, definition: { "ha-mode": "all", "ha-sync-mode": "automatic" } }] : [],
  };
}

/**
 * Above this size the import goes through `rabbitmqctl import_definitions` (the same import in
 * the broker): this broker refuses HTTP bodies over 10 MB (max_http_body_size), and its HTTP
 * server gives up on a request after 60 s, which stops a long import or vhost delete half-way.
 */
const HTTP_IMPORT_MAX = Number(process.env.BENCH_HTTP_IMPORT_MAX ?? 5000);
/** rabbitmqctl reads the file as the rabbitmq user: a folder of its own that others may read. */
const SHARED = mkdtempSync(join(tmpdir(), "topo-bench-definitions-"));
chmodSync(SHARED, 0o755);

async function baselineDefinitions(n, vhosts) {
  const viaCli = n > HTTP_IMPORT_MAX;
  const files = {};
  if (viaCli) {
    for (const kind of ["sync", "async"]) {
      files[kind] = join(SHARED, `definitions-${vhosts[kind]}.json`);
      writeFileSync(files[kind], JSON.stringify({ vhosts: [{ name: vhosts[kind] }], ...definitionsOf(n, kind, vhosts[kind]) }), { mode: 0o644 });
    }
  }
  const r = await measured(async () => {
    await Promise.all(
      ["sync", "async"].map(async (kind) => {
        const vhost = vhosts[kind];
        // The vhost is part of the end state apply from empty reaches, so its creation is timed too.
        if (viaCli) return rabbitmqctl(["import_definitions", files[kind], "--timeout", "7200"]);
        await api("PUT", `/api/vhosts/${vhost}`, {});
        return api("POST", `/api/definitions/${vhost}`, definitionsOf(n, kind, vhost));
      }),
    );
    return { httpRequests: viaCli ? 0 : 4, objects: 6 * n, method: viaCli ? "rabbitmqctl import_definitions" : "POST /api/definitions/{vhost}" };
  });
  // The command line's own start (an Erlang VM) is in that time: measured alone, to be told apart.
  if (viaCli) {
    const empty = join(SHARED, "definitions-empty.json");
    writeFileSync(empty, "{}", { mode: 0o644 });
    r.cliStartMs = (await measured(() => rabbitmqctl(["import_definitions", empty]))).wallMs;
  }
  return r;
}

async function baselineSequential(n, vhosts) {
  return measured(async () => {
    let rpcs = 0;
    await Promise.all(
      ["sync", "async"].map(async (kind) => {
        const vhost = vhosts[kind];
        await api("PUT", `/api/vhosts/${vhost}`, {});
        const conn = await amqplib.connect(`${AMQP}/${vhost}`);
        const ch = await conn.createChannel();
        for (const o of objects(n, kind)) {
          await ch.assertExchange(o.exchange, "topic", { durable: true });
          await ch.assertQueue(o.queue, { durable: o.durable });
          await ch.bindQueue(o.queue, o.exchange, o.key);
          rpcs += 3;
        }
        await conn.close();
      }),
    );
    return { amqpRpcs: rpcs, objects: 6 * n };
  });
}

/**
 * The read floor: the requests of topo's read (broker/read.ts, the same paths and columns), both
 * clusters at once as topo sends them, each timed to its last byte; nothing is parsed.
 */
async function readFloor(vhosts) {
  const { listingPaths } = await import("../dist/broker/read.js");
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const get = (path) =>
    new Promise((resolve, reject) => {
      const t0 = performance.now();
      const req = http.get(`${MGMT}${path}`, { agent, headers: { authorization: AUTH, accept: "application/json" } }, (res) => {
        let bytes = 0;
        res.on("data", (c) => (bytes += c.length));
        res.on("end", () => resolve({ path, ms: performance.now() - t0, bytes }));
        res.on("error", reject);
      });
      req.on("error", reject);
    });
  try {
    return await measured(async () => {
      const answers = await Promise.all(
        // The very requests topo's read makes (broker/read.ts listingPaths).
        Object.values(vhosts).flatMap((v) => Object.values(listingPaths(v)).map(get)),
      );
      const byKind = {};
      for (const a of answers) {
        const kind = /^\/api\/([\w-]+)/.exec(a.path)[1];
        byKind[kind] = Math.max(byKind[kind] ?? 0, a.ms);
      }
      return { httpRequests: answers.length, bytes: answers.reduce((s, a) => s + a.bytes, 0), slowestMs: byKind };
    });
  } finally {
    agent.destroy();
  }
}

/** 1% drift: every 100th queue deleted, and the binding of every 100th other service. */
async function drift(n, sync, async) {
  const all = names(n);
  const jobs = [];
  for (let i = 0; i < n; i += 100) {
    jobs.push(api("DELETE", `/api/queues/${async}/${all[i]}.async`));
    const j = Math.min(n - 1, i + 50);
    jobs.push(api("DELETE", `/api/bindings/${sync}/e/${all[j]}/q/${all[j]}.sync/${encodeURIComponent(`${all[j]}.sync.#`)}`));
  }
  await Promise.all(jobs);
}

// ----- a clean broker between contenders ------------------------------------------------------

const made = new Set();
let baseline;

/** The two vhosts of one contender in one round. */
function vhostsOf(tag) {
  if (stopped()) throw new Error("stopped");
  const v = { sync: `bench_${RUN_ID}_${tag}_sync`, async: `bench_${RUN_ID}_${tag}_async` };
  made.add(v.sync);
  made.add(v.async);
  return v;
}

/**
 * Delete the vhosts and wait until the broker has finished: they are gone, the object totals are
 * back to the benchmark's starting point (give or take what other users of the shared broker do
 * meanwhile), and beam.smp uses less than a third of a core over a second. Returns how long that
 * took and what was left when the wait gave up (after 10 minutes).
 */
async function removeAndSettle(vhosts) {
  const t0 = performance.now();
  await Promise.all(
    vhosts.map(async (v) => {
      await removeVhost(v);
      made.delete(v);
    }),
  );
  const slack = Number(process.env.BENCH_SETTLE_SLACK ?? 200);
  let residue;
  for (;;) {
    const listed = new Set((await api("GET", "/api/vhosts?columns=name")).map((v) => v.name));
    const t = await objectTotals();
    residue = { queues: t.queues - baseline.queues, exchanges: t.exchanges - baseline.exchanges };
    const busy = await brokerLoad();
    const gone = vhosts.every((v) => !listed.has(v)) && residue.queues <= slack && residue.exchanges <= slack;
    if ((gone && busy < IDLE_CORES) || performance.now() - t0 > 600_000) {
      return { settleMs: Math.round(performance.now() - t0), residue, brokerBusy: Number(busy.toFixed(2)), settled: gone && busy < IDLE_CORES };
    }
  }
}

// ----- rounds --------------------------------------------------------------------------------

/** The contenders. Each returns its operations' figures; its vhosts are removed after it. */
function contenders(n) {
  const list = [
    {
      name: "topo",
      async run(tag, add, round) {
        const { sync, async } = vhostsOf(`${tag}_topo`);
        const file = topologyFile(n, sync, async);
        add("plan, empty broker", await topo("plan", file));
        add("apply from empty", { ...(await topo("apply", file)), objects: 6 * n });
        // The read floor is timed before the plans in even rounds and after them in odd ones.
        if (round % 2 === 0) add("read floor", await readFloor({ sync, async }));
        add("plan, no changes", await topo("plan", file));
        add("plan, no changes (CLI)", await topoCli(file));
        add("plan, no changes (CLI, YAML file)", await topoCli(topologyFile(n, sync, async, { yaml: true })));
        if (round % 2 === 1) add("read floor", await readFloor({ sync, async }));
        add("apply, no changes", await topo("apply", file));
        await drift(n, sync, async);
        add("apply, 1% drift", await topo("apply", file));
        return [sync, async];
      },
    },
    {
      name: "topo, one cluster",
      skip: n > LARGE,
      async run(tag, add) {
        const { sync, async } = vhostsOf(`${tag}_one`);
        // The file's second cluster is never written: only sync is applied.
        const file = topologyFile(n, sync, async, { syncOnly: true });
        add("apply from empty, one cluster", { ...(await topo("apply", file)), objects: 3 * n });
        add("plan, no changes, one cluster", await topo("plan", file));
        return [sync, async];
      },
    },
    {
      // What a deploy job runs: apply prints its plan and its progress before it is done, work
      // the library (the worker) does not do. Left out above 5,000 services with the others.
      name: "topo, command line",
      skip: n > LARGE,
      async run(tag, add) {
        const { sync, async } = vhostsOf(`${tag}_cli`);
        add("apply from empty (CLI)", { ...(await topoCli(topologyFile(n, sync, async), "apply")), objects: 6 * n });
        return [sync, async];
      },
    },
    {
      name: "(a) definitions import",
      async run(tag, add) {
        const v = vhostsOf(`${tag}_defs`);
        add("(a) definitions import", await baselineDefinitions(n, v));
        return [v.sync, v.async];
      },
    },
    {
      name: "(b) sequential declares",
      skip: n > LARGE,
      async run(tag, add) {
        const v = vhostsOf(`${tag}_seq`);
        add("(b) sequential declares", await baselineSequential(n, v));
        return [v.sync, v.async];
      },
    },
  ];
  return list.filter((c) => !c.skip);
}

async function measureSize(n, runs, save) {
  const rounds = [];
  for (let round = 1; round <= runs; round++) {
    const list = contenders(n);
    // The order reverses every round: no contender always follows the same one.
    const order = round % 2 ? list : [...list].reverse();
    const ops = {};
    const settles = {};
    const load = loadavg()[0];
    for (const c of order) {
      log(`N=${n} round ${round}/${runs}: ${c.name}`);
      const vhosts = await c.run(
        `${n}_${round}`,
        (op, r) => {
          ops[op] = r;
          log(`  ${op}: ${Math.round(r.wallMs)} ms${r.brokerCpuMs === undefined ? "" : `, broker CPU ${Math.round(r.brokerCpuMs)} ms`} (waited ${r.quietMs ?? 0} ms for an idle broker)`);
        },
        round,
      );
      settles[c.name] = await removeAndSettle(vhosts);
      // Kept after every contender: a run stopped part-way keeps what it measured.
      save([...rounds, { round, order: order.map((x) => x.name), loadAverage: load, ops, settles, partial: true }]);
      log(`  removed, broker settled in ${settles[c.name].settleMs} ms${settles[c.name].settled ? "" : ` (gave up waiting: ${JSON.stringify(settles[c.name])})`}`);
    }
    rounds.push({ round, order: order.map((c) => c.name), loadAverage: load, ops, settles });
  }
  return { rounds };
}

async function startup() {
  const times = async (args) => {
    const ts = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      await child(args);
      ts.push(performance.now() - t0);
    }
    return ts.sort((a, b) => a - b)[2];
  };
  return {
    help: await times([join(ROOT, "dist/cli.js"), "--help"]),
    validate: await times([join(ROOT, "dist/cli.js"), "validate", "-f", join(ROOT, "topology.yaml")]),
  };
}

/** The newest results of bench/commands.mjs, if any: their section goes on the page too. */
function newestCommands() {
  const dir = join(ROOT, "bench/results");
  const newest = readdirSync(dir).filter((f) => /^commands-.*\.json$/.test(f)).sort().pop();
  return newest ? `\n${commandsReport(JSON.parse(readFileSync(join(dir, newest), "utf8")))}` : "";
}

function writeReport(results) {
  const notes = existsSync(join(ROOT, "bench/notes.md")) ? `\n${readFileSync(join(ROOT, "bench/notes.md"), "utf8").replace(/^<!--.*-->\n/, "")}` : "";
  const md = report(results) + newestCommands() + notes;
  writeFileSync(join(ROOT, "BENCHMARKS.md"), md);
  return md;
}

/**
 * Results of several runs as one. Each argument is a results file, optionally with the sizes to
 * take from it (`FILE:100,1000`); the rounds of one size from several files are pooled, each
 * keeping the name of its file.
 */
function merge(args) {
  const runs = args.map((arg) => {
    const [file, only] = arg.split(/:(?=[\d,]+$)/);
    return { file, only: only?.split(",").map(Number), r: JSON.parse(readFileSync(file, "utf8")) };
  });
  const sizes = {};
  for (const { file, only, r } of runs) {
    for (const [n, size] of Object.entries(r.sizes)) {
      if (only && !only.includes(Number(n))) continue;
      const rounds = (sizes[n] ??= { rounds: [] }).rounds;
      for (const round of size.rounds.filter((x) => !x.partial)) rounds.push({ ...round, round: rounds.length + 1, file: file.replace(`${ROOT}/`, "") });
    }
  }
  // A size whose every round was stopped part-way has no figures to report.
  for (const [n, size] of Object.entries(sizes)) if (size.rounds.length === 0) delete sizes[n];
  const first = runs[0].r;
  const last = runs[runs.length - 1].r;
  return {
    ...first,
    files: runs.map(({ file }) => file.replace(`${ROOT}/`, "")),
    // Each run's own conditions: runs made at different times (or on different machines) are
    // told apart in the report.
    runs: runs.map(({ file, only, r }) => ({
      file: file.replace(`${ROOT}/`, ""),
      startedAt: r.startedAt,
      commit: r.commit,
      sizes: Object.keys(r.sizes).map(Number).filter((n) => !only || only.includes(n)),
      machine: r.machine,
      conditions: r.conditions,
    })),
    sizes: Object.fromEntries(Object.entries(sizes).sort(([a], [b]) => Number(a) - Number(b))),
    conditions: { ...first.conditions, loadAverageAtEnd: last.conditions.loadAverageAtEnd },
  };
}

async function main() {
  const args = process.argv.slice(2);
  if (args[0] === "--report") {
    writeReport(merge(args.slice(1)));
    log("wrote BENCHMARKS.md");
    return;
  }
  removeOnStop(() => made);
  const overview = await api("GET", "/api/overview?columns=rabbitmq_version");
  const results = {
    startedAt: new Date().toISOString(),
    // The build measured: dist/ is built from this tree by `npm run bench`.
    commit: commitOf(ROOT),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? "unknown CPU", memGiB: totalmem() / 2 ** 30, node: process.version, rabbit: overview.rabbitmq_version },
    conditions: {
      loadAverageAtStart: loadavg(),
      // Other Erlang nodes (other brokers, other engineers' tests) share the machine's 2 cores.
      otherBeamProcesses: Number(execFileSync("sh", ["-c", "pgrep -c beam.smp || true"], { encoding: "utf8" }).trim()) - (BROKER ? 1 : 0),
      brokerPid: BROKER,
    },
    sizes: {},
  };
  log(`RabbitMQ ${results.machine.rabbit}, sizes ${SIZES.map((s) => `${s.n}×${s.runs}`).join(", ")}, broker pid ${BROKER ?? "unknown"}`);
  baseline = await objectTotals();
  results.conditions.baselineObjectTotals = baseline;
  results.startup = await startup();
  mkdirSync(join(ROOT, "bench/results"), { recursive: true });
  const file = join(ROOT, "bench/results", `${results.startedAt.replace(/[:.]/g, "-")}.json`);
  results.file = file.replace(`${ROOT}/`, "");
  try {
    for (const { n, runs } of SIZES) {
      const save = (rounds) => {
        results.sizes[n] = { rounds };
        results.conditions.loadAverageAtEnd = loadavg();
        writeFileSync(file, `${JSON.stringify(results, null, 1)}\n`);
      };
      save((await measureSize(n, runs, save)).rounds);
    }
    const md = writeReport(merge([file]));
    process.stdout.write(`${md}\n`);
    log(`wrote ${results.file} and BENCHMARKS.md`);
  } finally {
    // A stop (a signal) removes them itself (removeOnStop).
    if (made.size && !stopped()) {
      log(`removing ${made.size} vhosts`);
      for (const v of made) await removeVhost(v).catch((e) => log(`could not remove vhost ${v}: ${e.message}; rabbitmqctl delete_vhost ${v} removes it`));
    }
  }
}

process.on("exit", () => {
  for (const d of [DIR, SHARED]) rmSync(d, { recursive: true, force: true });
});

main().catch((e) => {
  if (stopped()) return;
  process.stderr.write(`bench failed: ${e.stack ?? e}\n`);
  process.exit(1);
});
