// Which broker answers at a cluster's two endpoints. topo reads through the management API and
// writes through AMQP; when the two reach different brokers (a `url` on another port, with the
// management URL left to its default), a plan would describe one broker and apply would change
// another. AMQP's connection.start carries the server's properties (cluster name, version,
// Erlang) before any login, so the AMQP side is identified without credentials, permissions or
// an existing vhost: it works for a read-only plan user and for a vhost apply has yet to create.

import { BrokerError } from "../errors.js";
import { placesOf, type ClusterTarget } from "../model.js";
import type { HttpResponse, ManagementClient } from "./http.js";
import { redactText } from "../redact.js";
import { amqplibModule, amqpSocket } from "./raw-amqp.js";
import { tlsProblem } from "./tls.js";
import { hostPort } from "../config/url.js";
import { NODES_PATH } from "./read.js";

export interface BrokerIdentity {
  clusterName?: string;
  version?: string;
  /** Erlang/OTP version, e.g. "25.2.3". */
  erlang?: string;
}

/**
 * The server properties are an AMQP field table, decoded by amqplib's own codec, not a second one
 * of ours. Its codec.js alone: the method table (defs.js) is not needed for a plan (raw-amqp.ts).
 */
const decodeFields = (buf: Buffer) => amqplibModule<{ decodeFields(buf: Buffer): Record<string, unknown> }>("codec.js").decodeFields(buf);
/** connection.start: class 10, method 10. */
const CONNECTION_START = (10 << 16) | 10;

/** AMQP 0-9-1's protocol header: the client speaks first. */
const PROTOCOL_HEADER = Buffer.from([0x41, 0x4d, 0x51, 0x50, 0, 0, 9, 1]);
const FRAME_METHOD = 1;
const FRAME_END = 0xce;

/** Decode the broker's first frame, or say why it is not connection.start. Exported for tests. */
export function parseConnectionStart(buf: Buffer): { identity: BrokerIdentity } | { need: true } | { notAmqp: string } {
  if (buf.length >= 4 && buf.subarray(0, 4).toString("latin1") === "AMQP") {
    return { notAmqp: `it answered with an AMQP protocol header for another version (${[...buf.subarray(4, 8)].join("-")})` };
  }
  if (buf.length >= 4 && /^(HTTP|<|\{|SSH|\x15\x03)/.test(buf.subarray(0, 4).toString("latin1"))) {
    const head = buf.subarray(0, 4).toString("latin1");
    const what = head.startsWith("HTTP") ? "HTTP" : head.startsWith("SSH") ? "SSH" : head.startsWith("\x15") ? "TLS (use amqps://)" : "something else";
    return { notAmqp: `it answered in ${what}, not AMQP` };
  }
  if (buf.length < 7) return { need: true };
  if (buf[0] !== FRAME_METHOD || buf.readUInt16BE(1) !== 0) return { notAmqp: "its first bytes are not an AMQP method frame" };
  const size = buf.readUInt32BE(3);
  if (size > 1 << 20) return { notAmqp: "its first frame is not an AMQP connection.start" };
  if (buf.length < 8 + size) return { need: true };
  if (buf[7 + size] !== FRAME_END) return { notAmqp: "its first frame is malformed" };
  const payload = buf.subarray(7, 7 + size);
  // The method id, then version-major and version-minor (one octet each), then the properties.
  if (payload.length < 10 || payload.readUInt32BE(0) !== CONNECTION_START) return { notAmqp: "its first frame is not connection.start" };
  const tableSize = payload.readUInt32BE(6);
  if (10 + tableSize > payload.length) return { notAmqp: "its first frame is malformed" };
  let props: Record<string, unknown>;
  try {
    props = decodeFields(payload.subarray(10, 10 + tableSize));
  } catch {
    // An unknown type tag, or a field that runs past the table: thrown from a socket's data
    // handler, it would end the process with a stack trace.
    return { notAmqp: "its connection.start is malformed" };
  }
  const text = (v: unknown): string | undefined => (Buffer.isBuffer(v) ? v.toString("utf8") : typeof v === "string" ? v : undefined);
  const platform = text(props.platform);
  return {
    identity: {
      clusterName: text(props.cluster_name),
      version: text(props.version),
      erlang: platform ? /([0-9][0-9.]*)\s*$/.exec(platform)?.[1] : undefined,
    },
  };
}

/**
 * Open the AMQP port, send the protocol header, read connection.start and hang up: no login, so
 * nothing is logged on the broker as a failed authentication.
 */
export function amqpIdentity(target: ClusterTarget, opts: { insecure?: boolean; timeoutMs?: number } = {}): Promise<BrokerIdentity> {
  const { amqp } = target;
  const places = placesOf(target);
  const where = `connect ${amqp.display}`;
  const timeoutMs = opts.timeoutMs ?? PROBE_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    let settled = false;
    const done = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      fn();
    };
    const fail = (text: string, hints: string[], status?: string) =>
      done(() => reject(new BrokerError(target.name, `${where} -> ${text}`, { hints, status, code: "broker_unreachable" })));
    const { socket, ready } = amqpSocket(target, opts.insecure);
    const timer = setTimeout(
      () =>
        fail(`it accepted the connection but sent nothing within ${timeoutMs / 1000} s: either this port is not AMQP's, or the broker is too busy (or stopped, paused) to answer`, [
          `check the port in ${places.url}: AMQP is 5672 (5671 with TLS); 25672 is Erlang distribution and 15672 the management API`,
          `if the port is right, the broker accepts connections and does not answer them: rabbitmq-diagnostics status on its node says whether it runs; run topo again once it answers`,
        ]),
      timeoutMs,
    );
    socket.once(ready, () => socket.write(PROTOCOL_HEADER));
    socket.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const r = parseConnectionStart(buf);
      if ("need" in r) return;
      if ("notAmqp" in r) {
        fail(`not an AMQP broker: ${r.notAmqp}`, [`check the port in ${places.url}: AMQP is 5672 (5671 with TLS); the management API (15672) is set with management:`]);
        return;
      }
      done(() => resolve(r.identity));
    });
    socket.on("error", (e: NodeJS.ErrnoException) => {
      const t = tlsProblem({ host: places.url, tls: places.tls }, e);
      if (t) return fail(t.text, [t.hint], e.code);
      // A server of another protocol that resets the connection on AMQP's header (an MQTT
      // broker does), before a byte of answer: the port is wrong, not the broker down.
      if (e.code === "ECONNRESET" && buf.length === 0) {
        return fail(`not an AMQP broker: it reset the connection when sent AMQP's protocol header (${e.message})`, [`check the port in ${places.url}: AMQP is 5672 (5671 with TLS); the management API (15672) is set with management:`], e.code);
      }
      const hints =
        e.code === "ECONNREFUSED"
          ? [`nothing accepts AMQP connections at ${hostPort(amqp.hostname, amqp.port)}; is the broker up, and is the port in ${places.url} right?`]
          : e.code === "ENOTFOUND"
            ? [`the host name does not resolve; check ${places.url}`]
            : [];
      fail(e.code && !e.message.includes(e.code) ? `${e.code} ${e.message}` : e.message, hints, e.code);
    });
    socket.on("end", () =>
      fail(`not an AMQP broker: it closed the connection without answering in AMQP`, [`check the port in ${places.url}: AMQP is 5672 (5671 with TLS); the management API (15672) is set with management:`]),
    );
  });
}

/**
 * The probe asks for the cluster's name alone. Not /api/overview: RabbitMQ sums every vhost's
 * object and message totals for it whatever columns are asked, which took 6.8 s on a 3.10 broker
 * of 30,000 queues, and a busy management API would have been taken for a wrong URL.
 */
const CLUSTER_NAME = "/api/cluster-name";
const OVERVIEW = "/api/overview?columns=cluster_name,rabbitmq_version,erlang_version";

/**
 * What RabbitMQ's management API never answers to a GET of /api/cluster-name: a redirect, or a
 * client error other than 401 and 403 (its answers to a wrong password and to a missing tag).
 * 5xx stay the broker's (or its proxy's) trouble, retried as such.
 */
const NOT_THE_API = [
  ...Array.from({ length: 100 }, (_, i) => 300 + i),
  ...Array.from({ length: 100 }, (_, i) => 400 + i).filter((s) => s !== 401 && s !== 403),
];

function notTheApi(r: HttpResponse): string {
  const type = r.contentType ? ` (${r.contentType.split(";")[0]?.trim()})` : "";
  if (r.status >= 300 && r.status < 400) return `it redirects (${r.status})${r.location ? ` to ${r.location}` : ""}`;
  return `it answers ${r.status}${type}${r.status === 404 ? `: there is no ${CLUSTER_NAME} here` : ""}`;
}

/** How long either probe waits for a port that accepts a connection and then says nothing. */
export const PROBE_TIMEOUT_MS = 8_000;

/**
 * The broker behind the management API, by the cluster name every management user may read. The
 * probe has its own short bound, tried once: a port that accepts and never answers (Erlang
 * distribution, 25672) is a wrong URL, not a busy broker.
 */
export async function managementIdentity(client: ManagementClient, timeoutMs = PROBE_TIMEOUT_MS): Promise<BrokerIdentity> {
  const r = await client.request("GET", CLUSTER_NAME, undefined, NOT_THE_API, { timeoutMs, probe: true });
  const o = r.body;
  // The listener refused the request's headers as too large: only the credentials make them so
  // (a valid password of 6,000 characters was taken for a wrong URL).
  if (r.status === 431) {
    throw new BrokerError(client.cluster, `GET ${client.display}${CLUSTER_NAME} -> 431 Request Header Fields Too Large: the management API refuses the credentials topo sends (an Authorization header of ${client.authBytes} bytes) as longer than it accepts`, {
      hints: [`use a shorter password (or user name) for the management API in ${client.places.credentials}; RabbitMQ's HTTP listener limits each request header to a few kilobytes`],
      status: 431,
      code: "auth_failed",
    });
  }
  if (NOT_THE_API.includes(r.status) || typeof o !== "object" || o === null || Array.isArray(o) || typeof (o as { name?: unknown }).name !== "string") {
    // The reply is some other server's: its page is not quoted (it may echo the request, the
    // Authorization header included), only what it was.
    const what = NOT_THE_API.includes(r.status) ? notTheApi(r) : `it answered HTTP ${r.status}, but not as RabbitMQ's management plugin`;
    throw new BrokerError(client.cluster, `GET ${client.display}${CLUSTER_NAME} -> not a management API: ${client.unechoed(redactText(what))}`, {
      hints: [`set ${client.places.management} to the management API, usually http://<host>:15672 (https on 15671), with the path prefix the broker's management.path_prefix sets, if any`],
      code: "broker_unreachable",
    });
  }
  return { clusterName: (o as { name: string }).name };
}

/**
 * The management side's version and Erlang too, once the probe found the API: compared when the
 * AMQP side named no cluster (identityMismatch), so without the probe's short bound.
 */
export async function managementVersions(client: ManagementClient, found: BrokerIdentity): Promise<BrokerIdentity> {
  const ov = await client.get<{ rabbitmq_version?: string; erlang_version?: string }>(OVERVIEW);
  return { ...found, version: ov.rabbitmq_version, erlang: ov.erlang_version };
}

export function describeIdentity(i: BrokerIdentity): string {
  const parts = [i.version ? `RabbitMQ ${i.version}` : "RabbitMQ", i.clusterName ? `cluster "${i.clusterName}"` : "", i.erlang ? `Erlang ${i.erlang}` : ""];
  return parts.filter(Boolean).join(", ");
}

/**
 * The RabbitMQ versions the running nodes of the management API's cluster run, or undefined when
 * it does not say (a management user without the monitoring tag may not list nodes, or another
 * server answered): then nothing is compared. One short try, asked beside the cluster name; the
 * read reports what is wrong with the listing itself.
 */
export async function managementNodeVersions(client: ManagementClient, timeoutMs = PROBE_TIMEOUT_MS): Promise<string[] | undefined> {
  try {
    const r = await client.request("GET", NODES_PATH, undefined, [401, 403, 404], { timeoutMs, attempts: 1 });
    if (r.status !== 200 || !Array.isArray(r.body)) return undefined;
    const versions = new Set<string>();
    for (const n of r.body as { running?: unknown; applications?: unknown }[]) {
      if (n?.running === false || !Array.isArray(n?.applications)) continue;
      const v = (n.applications as { name?: unknown; version?: unknown }[]).find((a) => a?.name === "rabbit")?.version;
      if (typeof v === "string") versions.add(v);
    }
    return versions.size ? [...versions].sort() : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The fields both sides report that differ; empty when they can be one broker. The cluster name
 * differs: two brokers. It is the same: one cluster, unless the AMQP side runs a RabbitMQ version
 * that no running node of the management API's cluster runs (`nodeVersions`). Two brokers share a
 * cluster name easily (rabbit@<host name> by default, and containers share host names), and a plan
 * that read one and reported on the other said "No changes." of a broker it never read. The nodes
 * of one cluster may run different versions during a rolling upgrade, and AMQP and the management
 * API may reach different nodes: the AMQP side's version is one of theirs all the same.
 */
export function identityMismatch(a: BrokerIdentity, b: BrokerIdentity, nodeVersions?: readonly string[]): string[] {
  if (a.clusterName !== undefined && b.clusterName !== undefined) {
    if (a.clusterName !== b.clusterName) return ["cluster name"];
    return a.version !== undefined && nodeVersions?.length && !nodeVersions.includes(a.version) ? ["RabbitMQ version"] : [];
  }
  const out: string[] = [];
  const cmp = (what: string, x: string | undefined, y: string | undefined) => {
    if (x !== undefined && y !== undefined && x !== y) out.push(what);
  };
  cmp("version", a.version, b.version);
  cmp("Erlang version", a.erlang, b.erlang);
  return out;
}
