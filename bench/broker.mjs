// The broker both benchmarks measure (bench/run.mjs, bench/commands.mjs): its management API,
// its beam.smp process's CPU time from /proc, and the wait for it to be idle before an operation.

import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";

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
