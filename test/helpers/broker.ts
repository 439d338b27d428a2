// Integration-test helpers: each test works in vhosts of its own (rascal's namespace = uuid()) and
// removes them afterwards; the CLI is run as a real subprocess so exit codes and output are real.

import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import amqplib from "amqplib";
import { inject } from "vitest";

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

/**
 * Start one of the project's test brokers (scripts/*.sh start) unless it already runs, e.g.
 * started by .ci/run. Returns what stops it again: nothing, when it was running before.
 */
export function startTestBroker(script: string, timeoutMs: number, running: (status: string) => boolean = (s) => s.includes("running")): () => void {
  let status = "";
  try {
    status = execFileSync(script, ["status"], { encoding: "utf8" });
  } catch {
    // status exits non-zero when stopped
  }
  if (running(status)) return () => undefined;
  execFileSync(script, ["start"], { stdio: ["ignore", "inherit", "inherit"], timeout: timeoutMs });
  return () => {
    execFileSync(script, ["stop"], { stdio: ["ignore", "inherit", "inherit"], timeout: timeoutMs });
  };
}
