// A move out of a quorum queue that stops half-way, on any broker: the queue's x-delivery-limit is
// 1, 3 of its 10 messages were delivered once already, and a byte limit on the holding queue stops
// the move after 2, in the middle of a batch. What it gives back must neither be dropped at the
// limit nor lose a delivery (a requeue counts as one on 3.10.8 and 4.0.5).

import amqplib from "amqplib";
import { AmqpSession } from "../../src/broker/amqp.js";
import { replaceQueueLossless } from "../../src/broker/replace.js";
import type { ClusterTarget, Queue } from "../../src/model.js";

export interface StoppedMove {
  /** Why the replace stopped. */
  error?: string;
  /** Ids and x-delivery-count headers of what reached the holding queue, and of what the queue kept. */
  moved: { id: string; count: unknown }[];
  kept: { id: string; count: unknown }[];
  /** The holding queue's type, as the broker reports it. */
  holdType: string;
}

/** `amqp` and `mgmt`: the broker's URLs (with guest:guest), `vhost` an existing, empty vhost. */
export async function stoppedQuorumMove(amqp: string, mgmt: string, vhost: string): Promise<StoppedMove> {
  const conn = await amqplib.connect(`${amqp.replace(/\/$/, "")}/${encodeURIComponent(vhost)}`);
  try {
    const ch = await conn.createConfirmChannel();
    const old: Queue = { kind: "queue", name: "mplogin.async", type: "quorum", durable: true, autoDelete: false, exclusive: false, arguments: { "x-delivery-limit": 1 } };
    await ch.assertQueue(old.name, { durable: true, arguments: { "x-queue-type": "quorum", "x-delivery-limit": 1 } });
    for (let i = 0; i < 10; i++) ch.sendToQueue(old.name, Buffer.alloc(100, 65 + i), { persistent: true, messageId: `m${i}` });
    await ch.waitForConfirms();
    // A worker got the first 3 and its channel closed: one delivery each, the last the limit allows.
    const worker = await conn.createChannel();
    for (let i = 0; i < 3; i++) if (!(await worker.get(old.name, { noAck: false }))) throw new Error(`message m${i} was not there`);
    await worker.close();
    const u = new URL(amqp);
    const m = new URL(mgmt);
    const t: ClusterTarget = {
      name: "async",
      amqp: { protocol: "amqp", hostname: u.hostname, port: Number(u.port || 5672), username: "guest", password: "guest", vhost, display: `amqp://***@${u.host}/${vhost}` },
      management: { baseUrl: m.origin, username: "guest", password: "guest", display: m.origin },
      tls: {},
    };
    const session = await AmqpSession.open(t);
    const hold = { overflow: "drop-head" as const, maxLengthBytes: { value: 250, from: "policy p's max-length-bytes" } };
    const error = await replaceQueueLossless(
      session,
      { after: { ...old, arguments: { "x-delivery-limit": 2 } }, bindings: [], holdBindings: [], queueDone: false, old, limits: { queue: { overflow: "drop-head" }, hold, old: { overflow: "drop-head" } } },
      () => undefined,
    ).then(
      () => undefined,
      (e: Error) => e.message,
    );
    await session.close();
    const drain = async (q: string) => {
      const out: { id: string; count: unknown }[] = [];
      for (let g = await ch.get(q, { noAck: true }); g; g = await ch.get(q, { noAck: true })) out.push({ id: String(g.properties.messageId), count: g.properties.headers?.["x-delivery-count"] });
      return out;
    };
    const read = await fetch(`${m.origin}/api/queues/${encodeURIComponent(vhost)}/topo.hold.mplogin.async`, { headers: { authorization: `Basic ${Buffer.from("guest:guest").toString("base64")}` } });
    const holdType = String(((await read.json()) as { type?: unknown }).type);
    return { error, moved: await drain("topo.hold.mplogin.async"), kept: await drain(old.name), holdType };
  } finally {
    await conn.close().catch(() => undefined);
  }
}
