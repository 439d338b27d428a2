// The pipelined writes (broker/pipeline.ts): no-wait declares closed by an awaited barrier. A
// refusal in the middle of a batch is still reported for the one object the broker refused, with
// its reply, and everything before it is done.

import { afterEach, describe, expect, it } from "vitest";
import { AmqpSession } from "../../src/broker/amqp.js";
import { PIPELINE_BATCH, writePipelined } from "../../src/broker/pipeline.js";
import type { ClusterTarget } from "../../src/model.js";
import { BrokerError } from "../../src/errors.js";
import { api, broker, createVhost, deleteVhost, getQueue, listBindings, uniqueName, vh, withChannel } from "../helpers/broker.js";
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
});
