// Replace a queue without losing a message. RabbitMQ cannot change a queue's arguments, type or
// durability, and cannot swap bindings atomically, so:
//
//   1. a holding queue topo.hold.<queue> gets the queue's bindings, then the queue loses them:
//      from here on new publishes land in the holding queue;
//   2. what the old queue holds is moved into the holding queue (publisher confirms, mandatory);
//   3. the old queue is deleted (if-empty: the broker itself refuses to drop a message) and
//      declared again with its new properties;
//   4. the new queue gets every binding, then the holding queue loses them;
//   5. the holding queue's messages are moved back, and the holding queue is deleted (if-empty).
//
// Between "bind the new side" and "unbind the old side" (steps 1 and 4) a message can be routed to
// both queues. Both copies of a step-1 message end up in the holding queue and step 5 moves one;
// for step 4, the new queue is peeked (got and requeued) right after the switch and step 5 skips
// what it already holds. Copies are recognised by their id (message-id, or Celery's
// correlation-id) together with identical content; a message with no id is never dropped, so it
// can arrive twice: at-least-once, never at-most-once.
//
// Every step is idempotent and the holding queue's name says what it holds, so a re-run after a
// failure at any point finishes the job (plan shows it as "finishing an interrupted replace").

import { createHash } from "node:crypto";
import type { Channel, ConfirmChannel, GetMessage } from "amqplib";
import { BrokerError } from "../errors.js";
import type { Binding, Queue } from "../model.js";
import { holdingQueueName } from "../plan/diff.js";
import { keyOf } from "../core/keys.js";
import type { AmqpSession } from "./amqp.js";
import { amqpError } from "./amqp.js";
import { bind, declareQueue } from "./execute.js";
import { sleep } from "./retry.js";

export interface LosslessReplace {
  /** The queue as it must be afterwards. */
  after: Queue;
  /** Every binding the queue has or must have (destination: the queue). */
  bindings: Binding[];
  /** Bindings the holding queue has now (when resuming). */
  holdBindings: Binding[];
}

/** Messages moved per confirm round trip. */
const BATCH = 256;
/** Time for messages routed just before an unbind to reach their queue before it is peeked. */
const SETTLE_MS = 100;

export async function replaceQueueLossless(session: AmqpSession, r: LosslessReplace, log: (m: string) => void): Promise<{ moved: number; duplicatesDropped: number }> {
  const name = r.after.name;
  const hold = holdingQueueName(name);
  const holdQueue: Queue = { kind: "queue", name: hold, type: "classic", durable: true, autoDelete: false, exclusive: false, arguments: {} };
  const toHold = (b: Binding): Binding => ({ ...b, destination: hold });
  const toQueue = (b: Binding): Binding => ({ ...b, destination: name });
  const routes = dedupeBindings([...r.bindings.map(toQueue), ...r.holdBindings.map(toQueue)]);
  const step = async <T>(what: string, fn: (ch: Channel) => Promise<T>): Promise<T> => {
    let ch: Channel | undefined;
    try {
      // Opening the channel is inside the try: a connection closed under us fails here, and must
      // be reported like any other broker reply, with the step it stopped at.
      ch = await session.channel();
      session.rpcs++;
      return await fn(ch);
    } catch (e) {
      throw amqpError(session.cluster, `replace queue ${name}: ${what}`, e as Error, session.lost);
    } finally {
      await ch?.close().catch(() => undefined);
    }
  };
  let moved = 0;
  let duplicatesDropped = 0;

  // 1. New publishes go to the holding queue.
  await step(`declare ${hold}`, (ch) => declareQueue(ch, holdQueue));
  await step(`bind ${hold}`, async (ch) => {
    for (const b of routes) await bind(ch, toHold(b));
  });
  const oldExists = await step(`look up ${name}`, async (ch) => {
    try {
      return await ch.checkQueue(name);
    } catch (e) {
      if ((e as { code?: number }).code === 404) return undefined;
      throw e;
    }
  });
  if (oldExists) {
    await step(`unbind ${name}`, async (ch) => {
      for (const b of routes) await unbindQueue(ch, b);
    });
    await sleep(SETTLE_MS);
    // 2. The old queue's messages join the holding queue. No de-duplication here: both copies of
    //    a message routed during step 1's switch are now in the holding queue, and step 5 keeps one.
    const s = await move(session, name, hold, new Set(), new Set());
    moved += s.moved;
    duplicatesDropped += s.dropped;
    // 3. Gone only if empty: a publish straight to the queue's name would make this fail, not vanish.
    await step(`delete old ${name}`, (ch) => ch.deleteQueue(name, { ifEmpty: true }));
  }
  await step(`declare ${name}`, (ch) => declareQueue(ch, r.after));
  log(`cluster ${session.cluster}: queue ${name} re-created; moving its messages back from ${hold}`);

  // 4. Routes back to the new queue, then off the holding queue.
  await step(`bind ${name}`, async (ch) => {
    for (const b of routes) await bind(ch, b);
  });
  await step(`unbind ${hold}`, async (ch) => {
    for (const b of routes) await unbindQueue(ch, toHold(b));
  });
  await sleep(SETTLE_MS);
  const already = await peekKeys(session, name);

  // 5. Back into the new queue, then the holding queue goes.
  const back = await move(session, hold, name, new Set(), already);
  moved += back.moved;
  duplicatesDropped += back.dropped;
  await step(`delete ${hold}`, (ch) => ch.deleteQueue(hold, { ifEmpty: true }));
  return { moved, duplicatesDropped };
}

function unbindQueue(ch: Channel, b: Binding): Promise<unknown> {
  return ch.unbindQueue(b.destination, b.source, b.routingKey, b.arguments);
}

function dedupeBindings(bs: Binding[]): Binding[] {
  const m = new Map<string, Binding>();
  for (const b of bs) m.set(keyOf(b), b);
  return [...m.values()];
}

/**
 * Identity of a message for de-duplication: only messages that carry an id (message-id, or
 * Celery's correlation-id) together with identical content. Two messages without an id are never
 * taken for copies of each other.
 */
function identity(m: GetMessage): string | undefined {
  const p = m.properties;
  const id = p.messageId ?? p.correlationId;
  if (id === undefined || id === null || id === "") return undefined;
  const h = createHash("sha256");
  h.update(String(id));
  h.update("\0");
  h.update(JSON.stringify([p.type, p.timestamp, p.contentType, p.headers ?? {}]));
  h.update("\0");
  h.update(m.content);
  return h.digest("hex");
}

function publishOptions(m: GetMessage): Record<string, unknown> {
  const p = m.properties;
  return {
    contentType: p.contentType,
    contentEncoding: p.contentEncoding,
    headers: p.headers,
    deliveryMode: p.deliveryMode,
    priority: p.priority,
    correlationId: p.correlationId,
    replyTo: p.replyTo,
    expiration: p.expiration,
    messageId: p.messageId,
    timestamp: p.timestamp,
    type: p.type,
    appId: p.appId,
    // user-id must equal the publishing user or the broker refuses it; it is not carried over.
    mandatory: true,
  };
}

/** Ids of the messages a queue holds right now, leaving them where they are. */
async function peekKeys(session: AmqpSession, queue: string): Promise<Set<string>> {
  const keys = new Set<string>();
  let ch: Channel | undefined;
  try {
    ch = await session.channel();
    const { messageCount } = await ch.checkQueue(queue);
    for (let i = 0; i < messageCount; i++) {
      session.rpcs++;
      const m = await ch.get(queue, { noAck: false });
      if (!m) break;
      const k = identity(m);
      if (k) keys.add(k);
    }
    ch.nackAll(true);
    return keys;
  } catch (e) {
    throw amqpError(session.cluster, `replace queue ${queue}: peek`, e as Error, session.lost);
  } finally {
    await ch?.close().catch(() => undefined);
  }
}

/**
 * Move every message from one queue to another: a batch is published with confirms (and
 * mandatory, so a missing target is an error, not a silent drop) before the batch is acked at
 * the source. A crash between the two leaves a copy in both, never in neither.
 */
async function move(session: AmqpSession, from: string, to: string, seen: Set<string>, skip: Set<string>): Promise<{ moved: number; dropped: number }> {
  let moved = 0;
  let dropped = 0;
  let get: Channel | undefined;
  let pub: ConfirmChannel | undefined;
  let returned: string | undefined;
  try {
    get = await session.channel();
    session.rpcs++;
    pub = await session.conn.createConfirmChannel();
    pub.on("error", () => undefined);
    pub.on("return", (m: { fields: { replyText: string } }) => {
      returned ??= m.fields.replyText;
    });
    for (;;) {
      const batch: GetMessage[] = [];
      for (let i = 0; i < BATCH; i++) {
        session.rpcs++;
        const m = await get.get(from, { noAck: false });
        if (!m) break;
        batch.push(m);
      }
      if (batch.length === 0) break;
      for (const m of batch) {
        const k = identity(m);
        if (k && (seen.has(k) || skip.has(k))) {
          dropped++;
          continue;
        }
        if (k) seen.add(k);
        pub.publish("", to, m.content, publishOptions(m));
        moved++;
      }
      session.rpcs++;
      await pub.waitForConfirms();
      if (returned) throw new Error(`a moved message was returned (${returned}): queue ${to} is missing`);
      get.ack(batch[batch.length - 1] as GetMessage, true);
    }
    return { moved, dropped };
  } catch (e) {
    if (e instanceof BrokerError) throw e;
    throw amqpError(session.cluster, `move messages from ${from} to ${to}`, e as Error, session.lost);
  } finally {
    await get?.close().catch(() => undefined);
    await pub?.close().catch(() => undefined);
  }
}
