// Integration-test helpers: each test works in vhosts of its own (rascal's namespace = uuid()) and
// removes them afterwards; the CLI is run as a real subprocess so exit codes and output are real.

import { execFile, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import amqplib from "amqplib";
import { brokerRunning, noteStarted } from "./test-brokers.js";
import { afterAll, afterEach, beforeAll, expect, inject, type TestContext } from "vitest";
import type { ClusterTarget } from "../../src/model.js";
import { ManagementClient } from "../../src/broker/http.js";
import { quorumReport, type QuorumReport } from "../../src/broker/read.js";

export const ROOT = resolve(import.meta.dirname, "../..");
export const CLI = join(ROOT, "dist/cli.js");

export interface Broker {
  amqpUrl: string;
  mgmtUrl: string;
  host: string;
  amqpPort: number;
  mgmtBase: string;
  user: string;
  password: string;
}

export function broker(): Broker {
  const amqp = new URL(inject("amqpUrl"));
  const mgmt = new URL(inject("mgmtUrl"));
  return {
    amqpUrl: inject("amqpUrl"),
    mgmtUrl: inject("mgmtUrl"),
    host: amqp.hostname,
    amqpPort: Number(amqp.port || 5672),
    mgmtBase: mgmt.origin,
    user: decodeURIComponent(mgmt.username || "guest"),
    password: decodeURIComponent(mgmt.password || "guest"),
  };
}

/**
 * The test broker's management API with its administrator's credentials in the URL: for a file
 * whose AMQP url is a limited user's, while topo reads and creates vhosts as the administrator.
 */
export function adminManagementUrl(): string {
  const b = broker();
  return `http://${b.user}:${b.password}@${b.host}:${new URL(b.mgmtBase).port}`;
}

export function uniqueName(tag: string): string {
  return `topo-test-${tag}-${randomBytes(4).toString("hex")}`;
}

/** Management API call as the test's admin user; returns status and parsed body. */
export async function api(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const b = broker();
  const r = await fetch(`${b.mgmtBase}${path}`, {
    method,
    headers: {
      authorization: `Basic ${Buffer.from(`${b.user}:${b.password}`).toString("base64")}`,
      "content-type": "application/json",
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: keep the text
  }
  return { status: r.status, body: parsed };
}

export const vh = (v: string) => encodeURIComponent(v);

/** The test broker's vhost `v` as cluster "async", for a session of topo's own (AmqpSession.open). */
export function clusterTarget(v: string): ClusterTarget {
  const u = new URL(broker().amqpUrl);
  const user = decodeURIComponent(u.username || "guest");
  const password = decodeURIComponent(u.password || "guest");
  return {
    name: "async",
    amqp: { protocol: "amqp", hostname: u.hostname, port: Number(u.port || 5672), username: user, password, vhost: v, display: `amqp://***@${u.hostname}/${v}` },
    management: { baseUrl: broker().mgmtBase, username: user, password, display: broker().mgmtBase },
    tls: {},
  };
}

export async function deleteVhost(v: string): Promise<void> {
  await api("DELETE", `/api/vhosts/${vh(v)}`);
}

export async function createVhost(v: string): Promise<void> {
  await api("PUT", `/api/vhosts/${vh(v)}`, {});
}

/** AMQP URL of a vhost on the test broker, with the given credentials. */
export function amqpUrl(v: string, creds?: { user: string; password: string }): string {
  const b = broker();
  const u = new URL(b.amqpUrl);
  if (creds) {
    u.username = encodeURIComponent(creds.user);
    u.password = encodeURIComponent(creds.password);
  }
  u.pathname = `/${encodeURIComponent(v)}`;
  return u.toString();
}

export interface TopologyOptions {
  sync: string;
  async: string;
  services: unknown[];
  defaults?: unknown;
  prefix?: string;
  /** Extra YAML under each cluster (e.g. management URL). */
  clusterExtra?: Record<string, Record<string, unknown>>;
  credentials?: { user: string; password: string };
}

/** Write a topology file for the test broker into a temp dir and return its path. */
export function writeTopology(o: TopologyOptions): string {
  const b = broker();
  const cluster = (name: string, v: string) => ({
    url: amqpUrl(v, o.credentials),
    management: b.mgmtBase,
    ...(o.clusterExtra?.[name] ?? {}),
  });
  const doc: Record<string, unknown> = {
    version: 1,
    ...(o.prefix !== undefined ? { prefix: o.prefix } : {}),
    clusters: { sync: cluster("sync", o.sync), async: cluster("async", o.async) },
    ...(o.defaults ? { defaults: o.defaults } : {}),
    services: o.services,
  };
  return writeFile("topology.yaml", JSON.stringify(doc, null, 2));
}

export interface FreshTopology {
  file: string;
  sync: string;
  async: string;
}

/**
 * For a test file, called at its top level: `fresh` writes a topology on two new vhosts of the
 * test broker, and every vhost in `vhosts` (fresh's, and any a test adds) is deleted after each
 * test.
 */
export function testVhosts(): { vhosts: string[]; fresh: (services: unknown[], extra?: Partial<TopologyOptions>) => FreshTopology } {
  const vhosts: string[] = [];
  afterEach(async () => {
    await Promise.all(vhosts.splice(0).map(deleteVhost));
  });
  const fresh = (services: unknown[], extra: Partial<TopologyOptions> = {}): FreshTopology => {
    const sync = uniqueName("sync");
    const async = uniqueName("async");
    vhosts.push(sync, async);
    return { file: writeTopology({ sync, async, services, ...extra }), sync, async };
  };
  return { vhosts, fresh };
}

/**
 * For a describe block, called at its top: broker users made before its tests and deleted after
 * them (a user is the broker's, not a vhost's, so testVhosts does not remove it).
 */
export function suiteUsers(list: readonly { name: string; password: string; tags: string }[]): void {
  beforeAll(async () => {
    for (const u of list) expect([201, 204]).toContain((await api("PUT", `/api/users/${u.name}`, { password: u.password, tags: u.tags })).status);
  });
  afterAll(async () => {
    for (const u of list) await api("DELETE", `/api/users/${u.name}`);
  });
}

export function writeFile(name: string, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "topo-test-"));
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolvePromise) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
      resolvePromise({ code, stdout, stderr });
    });
  });
}

export async function withChannel<T>(v: string, fn: (ch: amqplib.Channel) => Promise<T>): Promise<T> {
  const conn = await amqplib.connect(amqpUrl(v));
  try {
    const ch = await conn.createChannel();
    ch.on("error", () => undefined);
    return await fn(ch);
  } finally {
    await conn.close().catch(() => undefined);
  }
}

export async function getQueue(v: string, name: string): Promise<any> {
  const r = await api("GET", `/api/queues/${vh(v)}/${encodeURIComponent(name)}`);
  return r.status === 200 ? r.body : undefined;
}

export async function listBindings(v: string): Promise<any[]> {
  const r = await api("GET", `/api/bindings/${vh(v)}`);
  return (r.body as any[]).filter((b) => b.source !== "");
}

/** Publish through the test's own connection with publisher confirms. */
export async function publish(v: string, exchange: string, routingKey: string, bodies: string[], persistent = true): Promise<void> {
  const conn = await amqplib.connect(amqpUrl(v));
  try {
    const ch = await conn.createConfirmChannel();
    for (const body of bodies) ch.publish(exchange, routingKey, Buffer.from(body), { persistent, messageId: body });
    await ch.waitForConfirms();
  } finally {
    await conn.close().catch(() => undefined);
  }
}

/** Count messages right now (a passive declare; the management API lags by up to 5 s). */
export async function messageCount(v: string, queue: string): Promise<number> {
  return withChannel(v, async (ch) => (await ch.checkQueue(queue)).messageCount);
}

/** What `scripts/*.sh start` exits with when a port it needs is held by a process it did not start. */
export const EXIT_PORT_TAKEN = 75;

export interface TestBroker {
  /** Set when the broker's ports belong to something else: the reason to skip its tests. */
  unavailable?: string;
}

/** CI=true (or any value but "false"/"0"): the machine is ours, so a taken port is a failure. */
export function inCI(): boolean {
  const ci = process.env.CI;
  return !!ci && ci !== "false" && ci !== "0";
}

/**
 * Start one of the project's test brokers (scripts/*.sh start) unless it already runs, e.g.
 * started by .ci/run (`status` exits 0 only for the script's own, running broker).
 *
 * When `start` exits 75 because a port belongs to something else (another checkout's broker, any
 * other program), the result carries the script's one-line reason in `unavailable`, and the test
 * file skips its tests with it (skipWhenUnavailable). Under CI=true that throws instead: CI
 * machines have those ports to themselves, so a taken port there is a real failure, never a
 * silent skip. Any other failed start throws. The script stops whatever it started when it fails
 * or is killed by the timeout.
 *
 * A test file never stops a broker it started: test files run side by side, and several use one
 * broker (rabbitmq4.sh serves four of them), so the first to finish would stop it under the
 * others. test/global-setup.ts stops, after the whole run, each test broker that was not running
 * when the run began.
 */
export async function startTestBroker(script: string, timeoutMs: number): Promise<TestBroker> {
  if (brokerRunning(script)) return {};
  // Not spawnSync: the first start builds a chroot for a minute or more, and a worker whose event
  // loop is blocked that long misses vitest's RPC ("Timeout calling onTaskUpdate"), which fails the
  // run though every test passed. stderr is passed on as it comes, and kept for the reason.
  const since = Date.now();
  const r = await new Promise<{ status: number | null; signal: NodeJS.Signals | null; stderr: string; error?: Error }>((done) => {
    let stderr = "";
    const child = spawn(script, ["start"], { stdio: ["ignore", "inherit", "pipe"], timeout: timeoutMs });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
      process.stderr.write(chunk);
    });
    child.on("error", (error) => done({ status: null, signal: null, stderr, error }));
    child.on("close", (status, signal) => done({ status, signal, stderr }));
  });
  const name = basename(script);
  if (r.status === EXIT_PORT_TAKEN) {
    const lines = r.stderr.split("\n").filter((l) => l.trim());
    // The script's own line, e.g. "cluster: port taken: 127.0.0.1:5681 (pid 123, python3) in use by ...".
    const reason = (lines.find((l) => l.includes("port taken")) ?? lines.at(-1) ?? `${name}: a port it needs is taken`).trim();
    if (inCI()) throw new Error(`${reason}\nUnder CI=true a taken test-broker port fails the tests instead of skipping them.`);
    return { unavailable: reason };
  }
  if (r.error || r.status !== 0) {
    throw new Error(`${name} start failed: ${r.error?.message ?? (r.status === null ? `killed by ${r.signal}${Date.now() - since >= timeoutMs ? ` at the end of its ${timeoutMs / 1000} s` : ""}` : `exit ${r.status}`)}`);
  }
  noteStarted(inject("startedBrokers"), script);
  return {};
}

/** A beforeEach hook that skips each test, with the reason, when the broker's ports are taken. */
export function skipWhenUnavailable(broker: () => TestBroker | undefined): (ctx: TestContext) => void {
  return (ctx) => {
    const reason = broker()?.unavailable;
    if (reason) ctx.skip(reason);
  };
}

/** The `export NAME=value` lines of `SCRIPT env`, as an object. */
export function scriptEnv(script: string): Record<string, string> {
  const out = execFileSync(script, ["env"], { encoding: "utf8" });
  return Object.fromEntries([...out.matchAll(/^export (\w+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!]));
}

/** broker/read.ts quorumReport for a cluster target of the test broker: what a quorum queue counts of itself at its last tick. */
export function quorumReportFor(t: ClusterTarget): QuorumReport {
  return quorumReport(new ManagementClient(t.name, t.management, {}), t);
}
