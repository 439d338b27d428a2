// The pipelined writes (broker/pipeline.ts): no-wait declares closed by an awaited barrier. A
// refusal in the middle of a batch is still reported for the one object the broker refused, with
// its reply, and everything before it is done.

import { afterEach, describe, expect, it } from "vitest";
import { AmqpSession } from "../../src/broker/amqp.js";
import { PIPELINE_BATCH, writePipelined, writeUnitsPipelined } from "../../src/broker/pipeline.js";
import type { Binding, ClusterTarget, Exchange, Queue } from "../../src/model.js";
import { BrokerError } from "../../src/errors.js";
import { pushTo } from "../../src/core/collections.js";
import { amqpUrl, api, broker, createVhost, deleteVhost, getQueue, listBindings, publish, runCli, uniqueName, vh, withChannel, writeTopology } from "../helpers/broker.js";
import { amqpProxy, type SentMethod } from "../helpers/proxy.js";
// @ts-expect-error: a plain ESM module of the benchmark, without type declarations
import { serviceNames } from "../../bench/services.mjs";
import { binding, exchange, queue } from "../helpers/builders.js";

const vhosts: string[] = [];
afterEach(async () => {
  await Promise.all(vhosts.splice(0).map(deleteVhost));
});

async function session(v: string): Promise<AmqpSession> {
  const b = broker();
  const target: ClusterTarget = {
    name: "async",
    amqp: { protocol: "amqp", hostname: b.host, port: b.amqpPort, username: b.user, password: b.password, vhost: v, display: `amqp://${b.host}:${b.amqpPort}/${v}` },
    management: { baseUrl: b.mgmtBase, username: b.user, password: b.password, display: b.mgmtBase },
    tls: {},
  };
  return AmqpSession.open(target);
}

async function fresh(): Promise<string> {
  const v = uniqueName("pipeline");
  vhosts.push(v);
  await createVhost(v);
  return v;
}

describe("pipelined declares and binds", () => {
  it("write every object of several batches over a few channels, each counted as a method sent", async () => {
    const v = await fresh();
    const s = await session(v);
    const n = PIPELINE_BATCH * 3 + 5;
    const qs = Array.from({ length: n }, (_, i) => queue({ name: `q${i}` }));
    const done: string[] = [];
    try {
      await writePipelined(s, qs, 2, (q) => q, (q) => `declare queue ${q.name}`, (q) => done.push(q.name));
      await writePipelined(s, qs, 2, (q) => binding({ source: "amq.topic", destination: q.name }), (q) => `bind ${q.name}`, () => undefined);
    } finally {
      await s.close();
    }
    expect(done.sort()).toEqual(qs.map((q) => q.name).sort());
    const listed = (await api("GET", `/api/queues/${vh(v)}?columns=name`)).body as { name: string }[];
    expect(listed.length).toBe(n);
    expect((await listBindings(v)).length).toBe(n);
    // 2n writes and the channels opened; nothing is counted twice.
    expect(s.rpcs).toBeGreaterThanOrEqual(2 * n);
    expect(s.rpcs).toBeLessThanOrEqual(2 * n + 4);
  });

  it("a refusal in the middle of a batch names that object and the broker's reply; the writes before it are done", async () => {
    const v = await fresh();
    // The broker holds q7 as transient: declaring it durable is refused (406), and plan did not see it.
    await withChannel(v, (ch) => ch.assertQueue("q7", { durable: false }));
    const s = await session(v);
    const qs = Array.from({ length: PIPELINE_BATCH }, (_, i) => queue({ name: `q${i}` }));
    const done: string[] = [];
    let err: unknown;
    try {
      await writePipelined(s, qs, 1, (q) => q, (q) => `declare queue ${q.name}`, (q) => done.push(q.name)).catch((e: unknown) => (err = e));
    } finally {
      await s.close();
    }
    expect(err).toBeInstanceOf(BrokerError);
    expect((err as BrokerError).message).toMatch(/^cluster async: declare queue q7 -> 406 PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q7'/);
    expect((err as BrokerError).transient).toBe(false);
    expect(done).toEqual(["q0", "q1", "q2", "q3", "q4", "q5", "q6"]);
    for (const name of done) expect(await getQueue(v, name)).toBeDefined();
  });

  it("a binding to an exchange that is not there is reported as that binding, 404", async () => {
    const v = await fresh();
    const s = await session(v);
    const e = exchange({ name: "e" });
    const qs = Array.from({ length: 5 }, (_, i) => queue({ name: `q${i}` }));
    let err: unknown;
    try {
      await writePipelined(s, [e, ...qs], 4, (x) => x, (x) => `declare ${x.name}`, () => undefined);
      const bs = qs.map((q, i) => binding({ source: i === 3 ? "missing" : "e", destination: q.name }));
      await writePipelined(s, bs, 4, (b) => b, (b) => `bind ${b.source} to ${b.destination}`, () => undefined).catch((x: unknown) => (err = x));
    } finally {
      await s.close();
    }
    expect((err as BrokerError).message).toMatch(/^cluster async: bind missing to q3 -> 404 NOT_FOUND - no exchange 'missing'/);
  });

  it("units: each binding in the batch that declares its ends, every unit whole; a refusal names its object", async () => {
    const v = await fresh();
    // The broker holds s5.sync as transient: declaring it durable is refused (406).
    await withChannel(v, (ch) => ch.assertQueue("s5.sync", { durable: false }));
    const s = await session(v);
    type W = Queue | Exchange | Binding;
    const unitOf = (i: number): W[] => [queue({ name: `s${i}.sync` }), exchange({ name: `s${i}` }), binding({ source: `s${i}`, destination: `s${i}.sync` })];
    // Twelve units of three: five to a batch of 16, none split, so a binding never waits for
    // another channel's batch.
    const units = Array.from({ length: 12 }, (_, i) => unitOf(i));
    const name = (w: W) => (w.kind === "binding" ? `bind ${w.source}` : `declare ${w.kind} ${w.name}`);
    const done: string[] = [];
    let err: unknown;
    try {
      await writeUnitsPipelined(s, units.slice(0, 5), 1, (w) => w, name, (w) => done.push(name(w)));
      await writeUnitsPipelined(s, units.slice(6), 3, (w) => w, name, (w) => done.push(name(w)));
      await writeUnitsPipelined(s, [units[5]!], 1, (w) => w, name, (w) => done.push(name(w))).catch((e: unknown) => (err = e));
      await expect(writeUnitsPipelined(s, [Array.from({ length: PIPELINE_BATCH + 1 }, (_, i) => queue({ name: `long${i}` }))], 1, (w) => w, name, () => undefined)).rejects.toThrow(/longer than a batch/);
    } finally {
      await s.close();
    }
    expect((err as BrokerError).message).toMatch(/^cluster async: declare queue s5\.sync -> 406 PRECONDITION_FAILED/);
    expect(done).toHaveLength(11 * 3);
    const bound = (await listBindings(v)).filter((b) => b.source !== "").map((b) => `${b.source}>${b.destination}`);
    expect(bound.sort()).toEqual(units.flatMap((_, i) => (i === 5 ? [] : [`s${i}>s${i}.sync`])).sort());
  });

  it("apply binds each new service on the channel that declares its exchange, right after it", async () => {
    const { sync, async, services, file } = twoClusters("units", 40);
    const { r, sent } = await applyRecorded(sync, async, services);
    expect(r.code, r.stderr).toBe(0);
    expect((await runCli(["plan", "-f", file, "--detailed-exitcode"])).code).toBe(0);
    let binds = 0;
    for (const methods of byChannel(sent).values()) {
      methods.forEach((m, i) => {
        if (m.classId !== 50 || m.methodId !== 20) return;
        binds++;
        const { queue: queueName, exchange: exchangeName } = bindEnds(m);
        expect(inBatchBefore(methods, i, 40, exchangeName), `exchange ${exchangeName} declared just before its bind to ${queueName}, on its channel`).toBe(true);
      });
    }
    // Every service's binding on both clusters.
    expect(binds).toBe(2 * 40);
  });

  it("apply binds an exchange deleted by hand in the batch that declares it again, its queue there all along", async () => {
    const { sync, async, services, file } = twoClusters("rebind", 6);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    // Someone deletes a service's exchange, and its binding goes with it; its queue stays.
    const gone = services[2]!;
    expect((await api("DELETE", `/api/exchanges/${vh(async)}/${encodeURIComponent(gone)}`)).status).toBe(204);
    const { r, sent } = await applyRecorded(sync, async, services);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/2 to create/);
    expect((await runCli(["plan", "-f", file, "--detailed-exitcode"])).code).toBe(0);
    const binds = [...byChannel(sent).values()].flatMap((methods) =>
      methods.flatMap((m, i) => (m.classId === 50 && m.methodId === 20 ? [{ ...bindEnds(m), declared: inBatchBefore(methods, i, 40, bindEnds(m).exchange) }] : [])),
    );
    expect(binds).toEqual([{ queue: `${gone}.async`, exchange: gone, declared: true }]);
  });

  it("apply binds a binding's new routing key before it unbinds the old one: the queue is never unbound between them", async () => {
    const { sync, async, services, file, svc, q } = await appliedThenRekeyed("rekey", 1);
    const planned = await runCli(["plan", "-f", file]);
    expect(planned.stdout).toMatch(/1 to create, 0 to update, 0 to replace, 1 to delete/);
    const { r, sent } = await applyRecorded(sync, async, services, ["--allow-destructive"]);
    expect(r.code, r.stderr).toBe(0);
    expect((await runCli(["plan", "-f", file, "--detailed-exitcode"])).code).toBe(0);
    expect(bindWrites(sent, [q])).toEqual([`bind ${q} ${svc} ${q}.#`, `unbind ${q} ${svc} #`]);
  });

  it("apply binds an exchange deleted by hand to the queue it replaces before the replace, which carries the binding over", async () => {
    const { sync, async, services, file } = twoClusters("carry", 3);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    const svc = services[1]!;
    const q = `${svc}.async`;
    await publish(async, "", q, ["m1", "m2", "m3", "m4", "m5"]);
    // Someone deletes the service's exchange, and its binding goes with it; the file changes the queue's arguments.
    expect((await api("DELETE", `/api/exchanges/${vh(async)}/${encodeURIComponent(svc)}`)).status).toBe(204);
    const changed = services.map((s) => (s === svc ? { name: s, async: { arguments: { "x-max-length": 1000 } } } : s));
    const { r, sent } = await applyRecorded(sync, async, changed, ["--allow-destructive"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/5 messages moved back/);
    const writes = bindWrites(sent, [q, `topo.hold.${q}`]);
    // Bound to the old queue, then moved to the holding queue and back by the replace. Bound only
    // after the replace, the exchange routed the service's tasks nowhere while the replace ran.
    expect(writes).toEqual([`bind ${q} ${svc} ${q}.#`, `bind topo.hold.${q} ${svc} ${q}.#`, `unbind ${q} ${svc} ${q}.#`, `bind ${q} ${svc} ${q}.#`, `unbind topo.hold.${q} ${svc} ${q}.#`]);
    expect(await keysOf(async, q)).toEqual([`${svc} ${q}.#`]);
    expect((await getQueue(async, q)).arguments).toEqual({ "x-max-length": 1000 });
    expect((await runCli(["plan", "-f", writeTopology({ sync, async, services: changed }), "--detailed-exitcode"])).code).toBe(0);
  });

  it("apply binds a changed routing key to the queue it replaces before it unbinds the old key, and the replace carries it over", async () => {
    const { sync, async, services, svc, q } = await appliedThenRekeyed("carry-rekey", 0);
    const changed = services.map((s) => (s === svc ? { name: s, async: { arguments: { "x-max-length": 1000 } } } : s));
    const { r, sent } = await applyRecorded(sync, async, changed, ["--allow-destructive"]);
    expect(r.code, r.stderr).toBe(0);
    // The new key first, on the old queue; the old key only then, before the replace moves the rest.
    expect(bindWrites(sent, [q, `topo.hold.${q}`])).toEqual([
      `bind ${q} ${svc} ${q}.#`,
      `unbind ${q} ${svc} #`,
      `bind topo.hold.${q} ${svc} ${q}.#`,
      `unbind ${q} ${svc} ${q}.#`,
      `bind ${q} ${svc} ${q}.#`,
      `unbind topo.hold.${q} ${svc} ${q}.#`,
    ]);
    expect(await keysOf(async, q)).toEqual([`${svc} ${q}.#`]);
    expect((await runCli(["plan", "-f", writeTopology({ sync, async, services: changed }), "--detailed-exitcode"])).code).toBe(0);
  });
});

/**
 * Three services applied on two vhosts of this test's own; then someone rebinds the async queue
 * of service `at` with a key of their own (`#`), and the file's key goes.
 */
async function appliedThenRekeyed(tag: string, at: number) {
  const clusters = twoClusters(tag, 3);
  expect((await runCli(["apply", "-f", clusters.file])).code).toBe(0);
  const svc = clusters.services[at]!;
  const q = `${svc}.async`;
  await withChannel(clusters.async, async (ch) => {
    await ch.bindQueue(q, svc, "#");
    await ch.unbindQueue(q, svc, `${q}.#`);
  });
  return { ...clusters, svc, q };
}

/** A queue's bindings but the default exchange's, as "exchange key". */
async function keysOf(v: string, queue: string): Promise<string[]> {
  return (await listBindings(v)).filter((b) => b.destination === queue && b.source !== "").map((b) => `${b.source} ${b.routing_key}`);
}

/** Two vhosts of this test's own as the clusters, and a topology file of n services on them. */
function twoClusters(tag: string, n: number) {
  const sync = uniqueName(`${tag}-sync`);
  const async = uniqueName(`${tag}-async`);
  vhosts.push(sync, async);
  const services: string[] = serviceNames(n);
  return { sync, async, services, file: writeTopology({ sync, async, services }) };
}

/** `topo apply` of the services on the two vhosts through an AMQP proxy that records every method sent. */
async function applyRecorded(sync: string, async: string, services: unknown[], args: string[] = []) {
  const sent: SentMethod[] = [];
  const proxy = await amqpProxy({ sent: (m) => sent.push(m) });
  // A topology file's cluster settings that reach the vhost through the proxy.
  const through = (v: string) => {
    const u = new URL(amqpUrl(v));
    u.hostname = "127.0.0.1";
    u.port = String(proxy.port);
    return { url: u.toString(), management: broker().mgmtBase };
  };
  try {
    const file = writeTopology({ sync, async, services, clusterExtra: { sync: through(sync), async: through(async) } });
    return { r: await runCli(["apply", "-f", file, ...args]), sent };
  } finally {
    await proxy.close();
  }
}

/** Each channel's methods in the order the broker got them. */
function byChannel(sent: readonly SentMethod[]): Map<string, SentMethod[]> {
  const out = new Map<string, SentMethod[]>();
  for (const m of sent) pushTo(out, `${m.connection}/${m.channel}`, m);
  return out;
}

// A method's fields: a reserved short, then short strings (a length byte and the text), then the
// bits, no-wait among them.
const text = (b: Buffer, at: number) => b.subarray(at + 1, at + 1 + b[at]!).toString("utf8");
const strings = (b: Buffer, n: number) => {
  const out: string[] = [];
  let at = 2;
  for (let i = 0; i < n; i++) {
    out.push(text(b, at));
    at += 1 + b[at]!;
  }
  return { out, bits: b[at]! };
};

/** queue.bind's queue and exchange. */
function bindEnds(m: SentMethod): { queue: string; exchange: string } {
  const [queue, exchange] = strings(m.args, 2).out as [string, string];
  return { queue, exchange };
}

/** Whether the broker was told not to answer: a method of a pipelined batch that is not its barrier. */
function noWait(m: SentMethod): boolean {
  if (m.classId === 40 && m.methodId === 10) return (strings(m.args, 2).bits & 0b10000) !== 0; // exchange.declare
  if (m.classId === 50 && m.methodId === 10) return (strings(m.args, 1).bits & 0b10000) !== 0; // queue.declare
  if (m.classId === 50 && m.methodId === 20) return (strings(m.args, 3).bits & 1) !== 0; // queue.bind
  return false;
}

/**
 * Whether the exchange (classId 40) `name` was declared on this channel in the batch of method i:
 * before it, with no awaited method in between, which would have ended a batch.
 */
function inBatchBefore(methods: readonly SentMethod[], i: number, classId: number, name: string): boolean {
  for (let j = i - 1; j >= 0; j--) {
    const m = methods[j]!;
    if (!noWait(m)) return false;
    if (m.classId === classId && m.methodId === 10 && text(m.args, 2) === name) return true;
  }
  return false;
}

/**
 * queue.bind and queue.unbind of these queues (queue, exchange, key), in the order the broker got
 * them; not a holding queue's bind to its own exchange, which the replace's move goes through.
 */
function bindWrites(sent: readonly SentMethod[], queues: readonly string[]): string[] {
  return sent.flatMap((m) => {
    if (m.classId !== 50 || (m.methodId !== 20 && m.methodId !== 50)) return [];
    const [queue, exchange, key] = strings(m.args, 3).out as [string, string, string];
    return queues.includes(queue) && exchange !== queue ? [`${m.methodId === 20 ? "bind" : "unbind"} ${queue} ${exchange} ${key}`] : [];
  });
}
