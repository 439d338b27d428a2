// The broker both benchmarks measure (bench/run.mjs, bench/commands.mjs): its management API,
// its beam.smp process's CPU time from /proc, and the wait for it to be idle before an operation.

import { execFile, execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { constants } from "node:os";
import amqplib from "amqplib";

export const AMQP = process.env.BENCH_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
export const MGMT = process.env.BENCH_MANAGEMENT_URL ?? "http://127.0.0.1:15672";
export const AUTH = `Basic ${Buffer.from(process.env.BENCH_CREDENTIALS ?? "guest:guest").toString("base64")}`;

export const log = (m) => process.stderr.write(`bench: ${m}\n`);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function api(method, path, body) {
  const r = await fetch(`${MGMT}${path}`, {
    method,
    headers: { authorization: AUTH, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status >= 400 && r.status !== 404) throw new Error(`${method} ${path} -> ${r.status} ${await r.text()}`);
  const text = await r.text();
  return text ? JSON.parse(text) : undefined;
}

/**
 * The pid of the broker's beam.smp: BENCH_BROKER_PID, else the node's own answer through
 * rabbitmqctl (several Erlang nodes may run on the machine: only the broker's own word is sure).
 * Only a broker on this machine can be measured; without one, broker CPU is left out.
 */
function brokerPid() {
  const given = process.env.BENCH_BROKER_PID;
  let pid = given ? Number(given) : undefined;
  if (pid === undefined) {
    try {
      pid = Number(execFileSync("rabbitmqctl", ["eval", "os:getpid()."], { encoding: "utf8", timeout: 30_000 }).trim().replace(/"/g, ""));
    } catch (e) {
      log(`broker CPU not measured: rabbitmqctl eval failed (${e.message.split("\n")[0]}); set BENCH_BROKER_PID`);
      return undefined;
    }
  }
  const comm = existsSync(`/proc/${pid}/comm`) ? readFileSync(`/proc/${pid}/comm`, "utf8").trim() : "";
  if (!comm.startsWith("beam")) {
    log(`broker CPU not measured: pid ${pid} is not a beam process (${comm || "no such process"})`);
    return undefined;
  }
  return pid;
}

export const BROKER = brokerPid();
const TICK_MS = 1000 / Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim() || 100);

/** beam.smp's user + system CPU time so far, ms. */
export function brokerCpu() {
  if (BROKER === undefined) return undefined;
  const stat = readFileSync(`/proc/${BROKER}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) * TICK_MS;
}

/** An idle broker: beam.smp uses less than this many cores over a second. */
export const IDLE_CORES = 0.34;

/** How many cores beam.smp used over the next second (0 when it cannot be measured). */
export async function brokerLoad() {
  const b0 = brokerCpu();
  await sleep(1000);
  return b0 === undefined ? 0 : (brokerCpu() - b0) / 1000;
}

/**
 * Wait until the broker has finished the work the previous operation left it (after an apply it
 * goes on for tens of seconds: statistics of every new queue, mirroring), so that no timed
 * operation pays for the one before it. Idle is as between contenders (IDLE_CORES); a broker
 * whose rest is busier than that (the statistics of 50,000 queues) counts as idle once its load
 * has stopped falling. Returns how long that took and the load over its last second.
 */
export async function quiet() {
  if (BROKER === undefined) return {};
  const t0 = performance.now();
  let prev;
  for (;;) {
    const busy = await brokerLoad();
    const waited = performance.now() - t0;
    const steady = prev !== undefined && busy >= prev - 0.05 && waited >= 5000;
    if (busy < IDLE_CORES || steady || waited > 120_000) return { quietMs: Math.round(waited), brokerBusy: Number(busy.toFixed(2)) };
    prev = busy;
  }
}

/**
 * Run an operation on an idle broker (see quiet), adding the broker's CPU time over it (and its
 * wall time, if it has none).
 */
export async function measured(fn) {
  const before = await quiet();
  const b0 = brokerCpu();
  const t0 = performance.now();
  const r = await fn();
  const wallMs = performance.now() - t0;
  const b1 = brokerCpu();
  return { wallMs, ...r, brokerCpuMs: b0 === undefined ? undefined : b1 - b0, ...before };
}

// ----- child processes, vhosts, and a stop ----------------------------------------------------

/** The child processes running now (topo, rabbitmqctl): a stopped benchmark stops them first. */
const running = new Set();

/** execFile, known to the stop (see removeOnStop). */
export function execChild(file, args, options, callback) {
  const c = execFile(file, args, options, callback);
  running.add(c);
  c.once("exit", () => running.delete(c));
  return c;
}

export function rabbitmqctl(args) {
  return new Promise((resolve, reject) => {
    execChild("rabbitmqctl", args, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => (err ? reject(new Error(`rabbitmqctl ${args.join(" ")}: ${stderr || err.message}`)) : resolve(stdout)));
  });
}

/**
 * Empty a vhost quickly before deleting it: the broker deletes a vhost's queues one after the
 * other (about a hundred durable queues a second here, and it goes on after DELETE /api/vhosts
 * has answered), so its queues and exchanges are deleted first over many channels at once.
 */
async function emptyVhost(v) {
  const [queues, exchanges] = await Promise.all([
    api("GET", `/api/queues/${v}?disable_stats=true&columns=name`),
    api("GET", `/api/exchanges/${v}?disable_stats=true&columns=name`),
  ]);
  if (!queues) return;
  // A vhost that rabbitmqctl import_definitions made grants nobody anything yet.
  const user = (process.env.BENCH_CREDENTIALS ?? "guest:guest").split(":")[0];
  await api("PUT", `/api/permissions/${v}/${encodeURIComponent(user)}`, { configure: ".*", write: ".*", read: ".*" });
  const conn = await amqplib.connect(`${AMQP}/${v}`);
  try {
    const work = async (items, fn) => {
      let next = 0;
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          const ch = await conn.createChannel();
          while (next < items.length) await fn(ch, items[next++]);
          await ch.close();
        }),
      );
    };
    await work(queues.map((q) => q.name), (ch, q) => ch.deleteQueue(q));
    await work(exchanges.map((e) => e.name).filter((e) => e !== "" && !e.startsWith("amq.")), (ch, e) => ch.deleteExchange(e));
  } finally {
    await conn.close().catch(() => undefined);
  }
}

/**
 * Remove one of the benchmark's vhosts: emptied first (a vhost whose objects cannot be reached
 * over AMQP, one the broker holds down, is deleted as it is), then deleted over HTTP, or with
 * rabbitmqctl when HTTP fails: the management listener stops a request after 60 s, half-way
 * through a vhost of 75,000 objects; rabbitmqctl has no such bound.
 */
export async function removeVhost(v) {
  await emptyVhost(v).catch((e) => log(`vhost ${v} not emptied first (${e.message.split("\n")[0]}); deleting it as it is`));
  await api("DELETE", `/api/vhosts/${encodeURIComponent(v)}`).catch(() => rabbitmqctl(["delete_vhost", v]));
}

let stoppedBy;

/** Whether the benchmark has been stopped by a signal: nothing new starts then. */
export const stopped = () => stoppedBy !== undefined;

/**
 * When the benchmark is stopped (Ctrl-C, kill, its terminal closing), stop the child processes it
 * runs, then remove the vhosts that `left()` names, as a run that ends by itself does: a stopped
 * run must not leave the broker holding 150,000 objects (removing two such vhosts by hand once
 * kept the broker busy for half an hour). A second signal leaves at once, naming what is left.
 */
export function removeOnStop(left) {
  const stop = async (signal) => {
    let vhosts = [...left()];
    const code = 128 + (constants.signals[signal] ?? 15);
    if (stoppedBy) {
      log(`${signal} again: leaving now; left on the broker: ${vhosts.join(", ") || "nothing"}${vhosts.length ? " (rabbitmqctl delete_vhost NAME removes one)" : ""}`);
      process.exit(code);
    }
    stoppedBy = signal;
    log(`${signal}: stopping ${running.size} child process${running.size === 1 ? "" : "es"}, then removing ${vhosts.length} vhost${vhosts.length === 1 ? "" : "s"} (${signal} again leaves them)`);
    await Promise.all(
      [...running].map(
        (c) =>
          new Promise((resolve) => {
            const hard = setTimeout(() => c.kill("SIGKILL"), 10_000);
            c.once("exit", () => resolve(clearTimeout(hard)));
            c.kill("SIGTERM");
          }),
      ),
    );
    // An import the broker had begun may go on after its client stopped: look again.
    for (let attempt = 0; attempt < 3 && vhosts.length; attempt++) {
      for (const v of vhosts) await removeVhost(v).catch((e) => log(`could not remove vhost ${v}: ${e.message.split("\n")[0]}`));
      await sleep(2000);
      const listed = await api("GET", "/api/vhosts?columns=name").catch(() => undefined);
      if (listed) vhosts = vhosts.filter((v) => listed.some((x) => x.name === v));
    }
    log(vhosts.length ? `left on the broker: ${vhosts.join(", ")}; rabbitmqctl delete_vhost NAME removes one` : "stopped; its vhosts are removed");
    process.exit(code);
  };
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => void stop(signal));
}

/** The commit of the build measured, and whether its tree had changes that are not committed. */
export function commitOf(dir) {
  try {
    const head = execFileSync("git", ["-C", dir, "rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["-C", dir, "status", "--porcelain", "--", "src"], { encoding: "utf8" }).trim();
    return dirty ? `${head} with uncommitted changes to src/` : head;
  } catch {
    return undefined;
  }
}
