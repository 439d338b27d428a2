// topo's benchmark against the broker's own bulk import and against sequential declares.
// Usage: npm run bench      (BENCH_SIZES=100,1000,5000 BENCH_RUNS=3 to choose; writes BENCHMARKS.md)
//
// Each topo operation runs in a process of its own (bench/worker.mjs): wall time is the whole
// process, as a pipeline sees it; CPU time and peak RSS are topo's own. The baselines create the
// same objects in fresh vhosts of the same broker, two clusters at once like topo does:
//   (a) one POST /api/definitions/{vhost} per cluster, the broker's bulk import;
//   (b) amqplib over one channel per cluster, each declare awaited in turn (what a worker does).

import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import amqplib from "amqplib";
import { serviceNames } from "./services.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const AMQP = process.env.BENCH_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const MGMT = process.env.BENCH_MANAGEMENT_URL ?? "http://127.0.0.1:15672";
const AUTH = `Basic ${Buffer.from(process.env.BENCH_CREDENTIALS ?? "guest:guest").toString("base64")}`;
const SIZES = (process.env.BENCH_SIZES ?? "100,1000,5000").split(",").map(Number);
const RUNS = (n) => Number(process.env.BENCH_RUNS ?? (n > 1000 ? 1 : 3));
const DIR = mkdtempSync(join(tmpdir(), "topo-bench-"));
const RUN_ID = Date.now().toString(36);

const log = (m) => process.stderr.write(`bench: ${m}\n`);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function api(method, path, body) {
  const r = await fetch(`${MGMT}${path}`, {
    method,
    headers: { authorization: AUTH, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status >= 400 && r.status !== 404) throw new Error(`${method} ${path} -> ${r.status} ${await r.text()}`);
  const text = await r.text();
  return text ? JSON.parse(text) : undefined;
}

const names = serviceNames;

const vhostsMade = new Set();
function vhostName(tag) {
  const v = `bench_${RUN_ID}_${tag}`;
  vhostsMade.add(v);
  return v;
}

function topologyFile(n, sync, async, { syncOnly = false } = {}) {
  const doc = {
    version: 1,
    clusters: { sync: { url: `${AMQP}/${sync}`, management: MGMT }, async: { url: `${AMQP}/${async}`, management: MGMT } },
    services: syncOnly ? names(n).map((name) => ({ name, async: false })) : names(n),
  };
  const file = join(DIR, `topology-${sync}.json`);
  writeFileSync(file, JSON.stringify(doc));
  return file;
}

function timedProcess(args) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    execFile(process.execPath, args, { cwd: ROOT, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const wallMs = performance.now() - started;
      if (err) reject(new Error(`${args.join(" ")} failed: ${stderr || err.message}`));
      else resolve({ wallMs, stdout });
    });
  });
}

async function topo(op, file) {
  const { wallMs, stdout } = await timedProcess([join(ROOT, "bench/worker.mjs"), op, file]);
  return { wallMs, ...JSON.parse(stdout.trim().split("\n").pop()) };
}

/** The objects one cluster holds for n services of one kind. */
function objects(n, kind) {
  return names(n).map((s) => ({ exchange: s, queue: `${s}.${kind}`, durable: kind === "async", key: `${s}.${kind}.#` }));
}

async function baselineDefinitions(n, tag) {
  const clusters = ["sync", "async"].map((kind) => ({ kind, vhost: vhostName(`${tag}_defs_${kind}`) }));
  const started = performance.now();
  await Promise.all(
    clusters.map(async ({ kind, vhost }) => {
      // The vhost is part of the end state apply from empty reaches, so its creation is timed too.
      await api("PUT", `/api/vhosts/${vhost}`, {});
      const objs = objects(n, kind);
      return api("POST", `/api/definitions/${vhost}`, {
        exchanges: objs.map((o) => ({ name: o.exchange, vhost, type: "topic", durable: true, auto_delete: false, internal: false, arguments: {} })),
        queues: objs.map((o) => ({ name: o.queue, vhost, durable: o.durable, auto_delete: false, arguments: {} })),
        bindings: objs.map((o) => ({ source: o.exchange, vhost, destination: o.queue, destination_type: "queue", routing_key: o.key, arguments: {} })),
        policies:
          kind === "sync" ? [{ name: "topo.mirror.sync", vhost, pattern: "^mp[a-z_]+\\.sync$", "apply-to": "queues", priority: 0, definition: { "ha-mode": "all", "ha-sync-mode": "automatic" } }] : [],
      });
    }),
  );
  return { wallMs: performance.now() - started, httpRequests: 4 };
}

async function baselineSequential(n, tag) {
  const clusters = ["sync", "async"].map((kind) => ({ kind, vhost: vhostName(`${tag}_seq_${kind}`) }));
  const started = performance.now();
  let rpcs = 0;
  await Promise.all(
    clusters.map(async ({ kind, vhost }) => {
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
  return { wallMs: performance.now() - started, amqpRpcs: rpcs };
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

/** One at a time: a vhost of 15,000 objects takes the broker ~25 s to delete. */
async function deleteVhosts(list) {
  for (const v of list) {
    try {
      await api("DELETE", `/api/vhosts/${v}`);
      vhostsMade.delete(v);
    } catch (e) {
      log(`could not remove vhost ${v}: ${e.message}; remove it by hand`);
    }
  }
}

async function measureSize(n) {
  const rows = {};
  const add = (op, r) => (rows[op] ??= []).push(r);
  for (let run = 1; run <= RUNS(n); run++) {
    const tag = `${n}_${run}`;
    log(`N=${n} run ${run}/${RUNS(n)}`);
    const sync = vhostName(`${tag}_sync`);
    const async = vhostName(`${tag}_async`);
    const file = topologyFile(n, sync, async);
    add("plan, empty broker", await topo("plan", file));
    add("apply from empty", await topo("apply", file));
    add("plan, no changes", await topo("plan", file));
    add("apply, no changes", await topo("apply", file));
    await drift(n, sync, async);
    add("apply, 1% drift", await topo("apply", file));
    const one = vhostName(`${tag}_one`);
    add("apply from empty, one cluster", await topo("apply", topologyFile(n, one, vhostName(`${tag}_one_unused`), { syncOnly: true })));
    add("plan, no changes, one cluster", await topo("plan", topologyFile(n, one, vhostName(`${tag}_one_unused2`), { syncOnly: true })));
    add("(a) definitions import", await baselineDefinitions(n, tag));
    add("(b) sequential declares", await baselineSequential(n, tag));
    log(`N=${n} run ${run}: removing its vhosts`);
    await deleteVhosts([...vhostsMade].filter((v) => v.includes(`_${tag}_`)));
  }
  const out = {};
  for (const [op, rs] of Object.entries(rows)) {
    const pick = (k) => (rs.every((r) => r[k] !== undefined) ? median(rs.map((r) => r[k])) : undefined);
    out[op] = {
      wallMs: pick("wallMs"),
      cpuMs: pick("cpuMs"),
      maxRssMB: pick("maxRssMB"),
      httpRequests: pick("httpRequests"),
      httpWrites: pick("httpWrites"),
      amqpRpcs: pick("amqpRpcs"),
      runs: rs.length,
    };
  }
  return out;
}

async function startup() {
  const times = async (args) => {
    const ts = [];
    for (let i = 0; i < 5; i++) ts.push((await timedProcess(args)).wallMs);
    return median(ts);
  };
  return {
    help: await times([join(ROOT, "dist/cli.js"), "--help"]),
    validate: await times([join(ROOT, "dist/cli.js"), "validate", "-f", join(ROOT, "topology.yaml")]),
  };
}

// ---------------------------------------------------------------------------------------------

const fmt = (x, d = 0) => (x === undefined ? "–" : x.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d }));
const ratio = (a, b) => (a === undefined || b === undefined ? "–" : `${(a / b).toFixed(2)}×`);

function report(machine, results, start) {
  const lines = [];
  lines.push("# Benchmarks", "");
  lines.push("Written by `npm run bench` (bench/run.mjs); do not edit by hand. Reproduce with:", "", "```sh", "npm run bench                      # BENCH_SIZES=100,1000,5000 BENCH_RUNS=3 by default", "```", "");
  lines.push(`Machine: ${machine.cpus} × ${machine.cpuModel}, ${fmt(machine.memGiB, 0)} GiB, Node ${process.version}, RabbitMQ ${machine.rabbit} (local broker, two vhosts as the two clusters). Run: ${new Date().toISOString()}.`, "");
  lines.push(
    "N services = per cluster N topic exchanges, N queues and N bindings (the sync cluster also gets the mirroring policy): 6N objects in all. Wall times are whole processes, as a pipeline sees them; CPU and peak RSS are topo's own. Medians of the runs shown. Ratios are to the baselines, which reach the same end state from nothing (the vhost's creation included, as in apply from empty), two clusters at once: (a) one definitions import per cluster, (b) sequential awaited declares over one channel per cluster. These machines are noisy: compare ratios.",
    "",
  );
  for (const [n, r] of Object.entries(results)) {
    const a = r["(a) definitions import"]?.wallMs;
    const b = r["(b) sequential declares"]?.wallMs;
    lines.push(`## N = ${fmt(Number(n))}`, "");
    lines.push("| operation | runs | wall ms | CPU ms | peak RSS MB | HTTP requests | HTTP writes | AMQP RPCs | ÷ (a) import | ÷ (b) sequential |");
    lines.push("|---|---|---|---|---|---|---|---|---|---|");
    for (const [op, m] of Object.entries(r)) {
      lines.push(
        `| ${op} | ${m.runs} | ${fmt(m.wallMs)} | ${fmt(m.cpuMs)} | ${fmt(m.maxRssMB, 1)} | ${fmt(m.httpRequests)} | ${fmt(m.httpWrites)} | ${fmt(m.amqpRpcs)} | ${op.startsWith("(") ? "" : ratio(m.wallMs, a)} | ${op.startsWith("(") ? "" : ratio(m.wallMs, b)} |`,
      );
    }
    lines.push("");
  }
  lines.push("## Targets", "");
  lines.push("| target | measured | verdict |", "|---|---|---|");
  const t = (name, measured, ok) => lines.push(`| ${name} | ${measured} | ${ok === undefined ? "not measured" : ok ? "met" : "**missed**"} |`);
  const r1 = results[1000];
  const r5 = results[5000];
  if (r1) {
    const ap = r1["apply from empty"].wallMs;
    const im = r1["(a) definitions import"].wallMs;
    t("apply from empty at N = 1,000 ≤ 0.6× the definitions import", `${fmt(ap)} ms vs ${fmt(im)} ms: ${ratio(ap, im)}`, ap / im <= 0.6);
    const pl = r1["plan, no changes"].wallMs;
    t("plan with no changes at N = 1,000 ≤ 0.5 s wall", `${fmt(pl)} ms (whole process, two clusters)`, pl <= 500);
  }
  const reads = Object.entries(results).map(([n, r]) => `N=${n}: ${r["plan, no changes"].httpRequests}`);
  const constant = new Set(Object.values(results).map((r) => r["plan, no changes"].httpRequests)).size === 1;
  t("constant number of reads per cluster, whatever N", `HTTP requests of a plan (two clusters): ${reads.join(", ")}`, constant);
  const noWrites = Object.values(results).every((r) => r["apply, no changes"].httpWrites === 0 && r["apply, no changes"].amqpRpcs === 0);
  t("apply with no changes makes no writes", `HTTP writes and AMQP RPCs of apply, no changes: ${Object.entries(results).map(([n, r]) => `N=${n}: ${r["apply, no changes"].httpWrites} + ${r["apply, no changes"].amqpRpcs}`).join(", ")}`, noWrites);
  if (r1 && r5) {
    const growth = Object.keys(r5)
      .filter((op) => !op.startsWith("(") && r1[op])
      .map((op) => [op, r5[op].wallMs / r1[op].wallMs]);
    const worst = growth.reduce((w, g) => (g[1] > w[1] ? g : w));
    t("t(5,000) / t(1,000) ≤ 6 for every operation", growth.map(([op, g]) => `${op}: ${g.toFixed(1)}`).join("; "), worst[1] <= 6);
    const rss = Math.max(...Object.entries(r5).filter(([op]) => !op.startsWith("(")).map(([, m]) => m.maxRssMB ?? 0));
    t("peak RSS at N = 5,000 ≤ 200 MB", `${fmt(rss, 1)} MB (largest of all operations)`, rss <= 200);
  } else {
    t("t(5,000) / t(1,000) ≤ 6 for every operation", "needs N = 1,000 and 5,000", undefined);
    t("peak RSS at N = 5,000 ≤ 200 MB", "needs N = 5,000", undefined);
  }
  const big = r5 ?? r1;
  if (big) {
    const two = big["apply from empty"].wallMs;
    const one = big["apply from empty, one cluster"].wallMs;
    const twoPlan = big["plan, no changes"].wallMs;
    const onePlan = big["plan, no changes, one cluster"].wallMs;
    t(
      "two clusters take about as long as the slower one, not the sum",
      `apply from empty: two clusters ${fmt(two)} ms, one ${fmt(one)} ms (${ratio(two, one)}); plan: two ${fmt(twoPlan)} ms, one ${fmt(onePlan)} ms (${ratio(twoPlan, onePlan)}). Here both clusters are vhosts of one 2-core broker, so they share its CPU.`,
      twoPlan / onePlan <= 1.5,
    );
  }
  t("`topo --help` ≤ 0.3 s", `${fmt(start.help)} ms`, start.help <= 300);
  t("`topo validate` on the example ≤ 0.3 s", `${fmt(start.validate)} ms`, start.validate <= 300);
  lines.push("");
  return lines.join("\n");
}

async function main() {
  const overview = await api("GET", "/api/overview?columns=rabbitmq_version");
  const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? "unknown CPU", memGiB: totalmem() / 2 ** 30, rabbit: overview.rabbitmq_version };
  log(`RabbitMQ ${machine.rabbit}, sizes ${SIZES.join(", ")}`);
  const start = await startup();
  const results = {};
  try {
    for (const n of SIZES) results[n] = await measureSize(n);
    // The hand-written analysis of the figures (bench/notes.md) follows the generated tables.
    const notes = existsSync(join(ROOT, "bench/notes.md")) ? `\n${readFileSync(join(ROOT, "bench/notes.md"), "utf8").replace(/^<!--.*-->\n/, "")}` : "";
    const md = report(machine, results, start) + notes;
    writeFileSync(join(ROOT, "BENCHMARKS.md"), md);
    process.stdout.write(`${md}\n`);
  } finally {
    if (vhostsMade.size) {
      log(`removing ${vhostsMade.size} vhosts`);
      await deleteVhosts([...vhostsMade]);
    }
  }
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${e.stack ?? e}\n`);
  process.exit(1);
});
