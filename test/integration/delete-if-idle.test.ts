// The last line of defence of a queue delete (broker/declare.ts deleteQueueIfIdle): apply refuses
// a queue in use or holding messages before it writes anything, but a worker may attach, or a
// publisher publish, between that check and the delete. The delete itself must then refuse, for
// every queue type, and keep every message.

import amqplib from "amqplib";
import { afterEach, describe, expect, it } from "vitest";
import { deleteQueueIfIdle } from "../../src/broker/declare.js";
import type { Queue } from "../../src/model.js";
import { amqpUrl, clusterTarget, createVhost, deleteVhost, getQueue, uniqueName, withChannel, quorumReportFor } from "../helpers/broker.js";

const vhosts: string[] = [];
afterEach(async () => {
  await Promise.all(vhosts.splice(0).map(deleteVhost));
});

async function fresh(): Promise<string> {
  const v = uniqueName("idle");
  vhosts.push(v);
  await createVhost(v);
  return v;
}

const args = (type: Queue["type"]) => (type === "classic" ? {} : { "x-queue-type": type });

async function declareWith(v: string, name: string, type: Queue["type"], messages: number): Promise<void> {
  await withChannel(v, async (ch) => {
    await ch.assertQueue(name, { durable: true, arguments: args(type) });
    for (let i = 0; i < messages; i++) ch.sendToQueue(name, Buffer.from(`m${i}`), { persistent: true });
    await ch.checkQueue(name);
  });
}

/** A worker that takes what it is given and acknowledges nothing, until closed. */
async function holdingWorker(v: string, name: string, expect: number) {
  const conn = await amqplib.connect(amqpUrl(v));
  const ch = await conn.createChannel();
  await ch.prefetch(100);
  let held = 0;
  await ch.consume(name, () => void held++, { noAck: false });
  for (let i = 0; i < 100 && held < expect; i++) await new Promise((r) => setTimeout(r, 50));
  return { held: () => held, close: () => conn.close() };
}

const attempt = (v: string, name: string, type: Queue["type"]) => withChannel(v, (ch) => deleteQueueIfIdle(ch, name, type, quorumReportFor(clusterTarget(v))));

describe("deleteQueueIfIdle", () => {
  for (const type of ["classic", "quorum"] as const) {
    it(`${type}: refuses while a consumer holds the messages unacknowledged, and the messages are kept`, async () => {
      const v = await fresh();
      await declareWith(v, "q", type, 3);
      const worker = await holdingWorker(v, "q", 3);
      try {
        expect(worker.held()).toBe(3);
        expect(await attempt(v, "q", type)).toMatch(/in use/);
      } finally {
        await worker.close();
      }
      expect(await withChannel(v, async (ch) => (await ch.checkQueue("q")).messageCount)).toBe(3);
    });

    it(`${type}: refuses while it holds ready messages, and deletes it once empty`, async () => {
      const v = await fresh();
      await declareWith(v, "q", type, 2);
      expect(await attempt(v, "q", type)).toMatch(/not empty|2 message/);
      expect(await getQueue(v, "q")).toBeDefined();
      await withChannel(v, (ch) => ch.purgeQueue("q"));
      expect(await attempt(v, "q", type)).toBeUndefined();
      expect(await getQueue(v, "q")).toBeUndefined();
    });
  }

  // RabbitMQ answers a passive declare of a quorum queue with 0 messages and 0 consumers when its
  // leader does not answer within 250 ms (rabbit_quorum_queue:stat/1): here the channel answers so.
  it("quorum: refuses when its passive declare says 0 messages, as a busy broker answers, while the queue's own report counts them", async () => {
    const v = await fresh();
    await declareWith(v, "q", "quorum", 3);
    const report = quorumReportFor(clusterTarget(v));
    for (let i = 0; i < 60 && (await report("q"))?.held !== 3; i++) await new Promise((r) => setTimeout(r, 500));
    expect((await report("q"))?.held).toBe(3);
    const refusal = await withChannel(v, (ch) => {
      const timedOut = new Proxy(ch, {
        get: (t, p) => (p === "checkQueue" ? async (queue: string) => ({ queue, messageCount: 0, consumerCount: 0 }) : Reflect.get(t, p, t)),
      });
      return deleteQueueIfIdle(timedOut, "q", "quorum", report);
    });
    expect(refusal).toMatch(/3 message\(s\) by the queue's own last report, though its passive declare counts none .*not empty/);
    expect(await withChannel(v, async (ch) => (await ch.checkQueue("q")).messageCount)).toBe(3);
  }, 60_000);

  // Neither ready nor unacknowledged, they are in no passive declare's count (0 messages, 0
  // consumers, truly), and a delete drops them with the queue.
  it("quorum: refuses while at-least-once dead letters wait in it for their target", async () => {
    const v = await fresh();
    await withChannel(v, async (ch) => {
      await ch.assertExchange("nowhere", "topic", { durable: true });
      await ch.assertQueue("q", { durable: true, arguments: { "x-queue-type": "quorum", "x-dead-letter-exchange": "nowhere", "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish" } });
      for (let i = 0; i < 3; i++) ch.sendToQueue("q", Buffer.from(`m${i}`), { persistent: true });
      await ch.checkQueue("q");
      for (let m = await ch.get("q"); m; m = await ch.get("q")) ch.nack(m, false, false);
      await ch.checkQueue("q");
    });
    const report = quorumReportFor(clusterTarget(v));
    for (let i = 0; i < 60 && (await report("q"))?.beside !== 3; i++) await new Promise((r) => setTimeout(r, 500));
    expect(await report("q")).toEqual({ held: 0, consumers: 0, beside: 3 });
    expect(await withChannel(v, (ch) => ch.checkQueue("q"))).toMatchObject({ messageCount: 0, consumerCount: 0 });
    expect(await attempt(v, "q", "quorum")).toMatch(/3 message\(s\) neither ready nor unacknowledged .*not empty/);
    expect(await getQueue(v, "q")).toBeDefined();
    expect((await report("q"))?.beside).toBe(3);
    // One more, ready: the report counts it held, and the dead letters apart, not one against the other.
    await withChannel(v, async (ch) => {
      ch.sendToQueue("q", Buffer.from("m3"), { persistent: true });
      await ch.checkQueue("q");
    });
    for (let i = 0; i < 60 && (await report("q"))?.held !== 1; i++) await new Promise((r) => setTimeout(r, 500));
    expect(await report("q")).toEqual({ held: 1, consumers: 0, beside: 3 });
  }, 60_000);
});
