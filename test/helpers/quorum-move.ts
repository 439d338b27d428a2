// A move out of a quorum queue that stops half-way, on any broker: the queue's x-delivery-limit is
// 1, 3 of its 10 messages were delivered once already, and a byte limit on the holding queue stops
// the move after 2, in the middle of a batch. What it gives back must neither be dropped at the
// limit nor lose a delivery (a requeue counts as one on 3.10.8 and 4.0.5).

import amqplib from "amqplib";
import { AmqpSession } from "../../src/broker/amqp.js";
import { replaceQueueLossless } from "../../src/broker/replace.js";
import { quorumReportFor } from "./broker.js";
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
      { report: quorumReportFor(t), after: { ...old, arguments: { "x-delivery-limit": 2 } }, bindings: [], holdBindings: [], queueDone: false, old, limits: { queue: { overflow: "drop-head" }, hold, old: { overflow: "drop-head" } } },
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

/** The target `stoppedQuorumMove` builds, for another vhost of the same broker. */
function targetOf(amqp: string, mgmt: string, vhost: string): ClusterTarget {
  const u = new URL(amqp);
  const m = new URL(mgmt);
  return {
    name: "async",
    amqp: { protocol: "amqp", hostname: u.hostname, port: Number(u.port || 5672), username: "guest", password: "guest", vhost, display: `amqp://***@${u.host}/${vhost}` },
    management: { baseUrl: m.origin, username: "guest", password: "guest", display: m.origin },
    tls: {},
  };
}

/** The old quorum queue, with `args`, bound from exchange mplogin as the file binds it. */
async function declareQuorum(ch: amqplib.Channel, args: Record<string, unknown> = {}): Promise<void> {
  await ch.assertExchange("mplogin", "topic", { durable: true });
  await ch.assertQueue(QUORUM.name, { durable: true, arguments: { "x-queue-type": "quorum", ...args } });
  await ch.bindQueue(QUORUM.name, "mplogin", ROUTE.routingKey);
}

/** Every channel `session` opens from now on, changed by `wrap` before topo uses it. */
function wrapChannels(session: AmqpSession, wrap: (c: amqplib.Channel) => void): void {
  const open = session.channel.bind(session);
  session.channel = async () => {
    const c = await open();
    wrap(c);
    return c;
  };
}

const ROUTE = { kind: "binding", source: "mplogin", destination: "mplogin.async", destinationType: "queue", routingKey: "mplogin.async.#", arguments: {} } as const;
const QUORUM: Queue = { kind: "queue", name: "mplogin.async", type: "quorum", durable: true, autoDelete: false, exclusive: false, arguments: {} };
const LIMITS = { queue: { overflow: "drop-head" as const }, hold: { overflow: "drop-head" as const }, old: { overflow: "drop-head" as const } };

/**
 * A quorum queue replaced by a classic one, the old queue holding a task of priority 0 (id
 * "task-X") before 300 of priority 9, and the same task published again once the old queue lost
 * its binding (so it reaches the holding queue alone). RabbitMQ 4 serves priority 9 first, so the
 * old queue's task-X came out last, as a copy's would, and was dropped as the copy of the other.
 * Returns the error, if any, and the ids the new queue holds.
 */
export async function priorityTwins(amqp: string, mgmt: string, vhost: string): Promise<{ error?: string; ids: string[] }> {
  const conn = await amqplib.connect(`${amqp.replace(/\/$/, "")}/${encodeURIComponent(vhost)}`);
  try {
    const ch = await conn.createConfirmChannel();
    await declareQuorum(ch);
    const task = () => ch.publish("mplogin", "mplogin.async.x", Buffer.from("same-task"), { persistent: true, messageId: "task-X", priority: 0 });
    task();
    for (let i = 0; i < 300; i++) ch.publish("mplogin", "mplogin.async.x", Buffer.from(`p${i}`), { persistent: true, messageId: `p${i}`, priority: 9 });
    await ch.waitForConfirms();
    const session = await AmqpSession.open(targetOf(amqp, mgmt, vhost));
    // The same task again, as the old queue's binding goes: it reaches the holding queue alone.
    let sent = false;
    wrapChannels(session, (c) => {
      const unbindQueue = c.unbindQueue.bind(c);
      c.unbindQueue = async (queue: string, source: string, pattern: string, args?: Record<string, unknown>) => {
        const r = await unbindQueue(queue, source, pattern, args);
        if (!sent && queue === QUORUM.name) {
          sent = true;
          task();
          await ch.waitForConfirms();
        }
        return r;
      };
    });
    const error = await replaceQueueLossless(session, { report: quorumReportFor(targetOf(amqp, mgmt, vhost)), after: { ...QUORUM, type: "classic" }, bindings: [ROUTE], holdBindings: [], queueDone: false, old: QUORUM, limits: LIMITS }, () => undefined).then(
      () => undefined,
      (e: Error) => e.message,
    );
    await session.close();
    const ids: string[] = [];
    for (let m = await ch.get(QUORUM.name, { noAck: true }); m; m = await ch.get(QUORUM.name, { noAck: true })) ids.push(String(m.properties.messageId));
    return { error, ids };
  } finally {
    await conn.close().catch(() => undefined);
  }
}

/**
 * A quorum queue with x-delivery-limit 0 replaced, and a message published straight to its name
 * once the move has emptied it (before topo's pass over what the queue gives back). The pass
 * requeued it, which spends its one delivery on 3.10, so the broker dropped it and the delete
 * found the queue empty. Returns the error, and the ids left in the old queue and the holding queue.
 */
export async function straightAfterMove(amqp: string, mgmt: string, vhost: string): Promise<{ error?: string; old: string[]; hold: string[] }> {
  const conn = await amqplib.connect(`${amqp.replace(/\/$/, "")}/${encodeURIComponent(vhost)}`);
  try {
    const ch = await conn.createConfirmChannel();
    const old: Queue = { ...QUORUM, arguments: { "x-delivery-limit": 0 } };
    await declareQuorum(ch, old.arguments);
    for (let i = 0; i < 20; i++) ch.publish("mplogin", "mplogin.async.x", Buffer.from(`m${i}`), { persistent: true, messageId: `m${i}` });
    await ch.waitForConfirms();
    const session = await AmqpSession.open(targetOf(amqp, mgmt, vhost));
    // The move's channel, as it closes: the straight publish lands in the emptied old queue.
    let sent = false;
    wrapChannels(session, (c) => {
      const get = c.get.bind(c);
      let moving = false;
      c.get = (queue: string, options?: Parameters<typeof get>[1]) => {
        if (queue === old.name) moving = true;
        return get(queue, options);
      };
      const close = c.close.bind(c);
      c.close = async () => {
        if (moving && !sent) {
          sent = true;
          ch.sendToQueue(old.name, Buffer.from("straight"), { persistent: true, messageId: "straight-1" });
          await ch.waitForConfirms();
        }
        return close();
      };
    });
    const limits = { ...LIMITS, old: { overflow: "drop-head" as const, deliveryLimit: { value: 0, from: "x-delivery-limit" } } };
    const error = await replaceQueueLossless(session, { report: quorumReportFor(targetOf(amqp, mgmt, vhost)), after: { ...old, type: "classic", arguments: {} }, bindings: [ROUTE], holdBindings: [], queueDone: false, old, limits }, () => undefined).then(
      () => undefined,
      (e: Error) => e.message,
    );
    await session.close();
    // A channel each: a queue that is gone (404) closes the channel that asked.
    const drain = async (q: string) => {
      const ids: string[] = [];
      const c = await conn.createChannel();
      try {
        await c.checkQueue(q);
      } catch {
        return ids;
      }
      for (let m = await c.get(q, { noAck: true }); m; m = await c.get(q, { noAck: true })) ids.push(String(m.properties.messageId));
      await c.close();
      return ids;
    };
    return { error, old: await drain(old.name), hold: await drain("topo.hold.mplogin.async") };
  } finally {
    await conn.close().catch(() => undefined);
  }
}
