// The AMQP writes of one object each: what apply and a lossless replace both declare, bind and
// unbind, in the one form the broker and kombu agree on (classic queues without x-queue-type).
// Each declare and bind also has a no-wait form for the pipeline (broker/pipeline.ts): the same
// fields, built by amqplib's own argument code, with nowait set and no reply expected.

import type { Channel, Options } from "amqplib";
import type { Binding, Exchange, Queue, TypedField, TypedValue } from "../model.js";
import { queueDeclareArgs } from "../model.js";
import { amqplibModule } from "./raw-amqp.js";
import { replyText } from "./amqp.js";
import { sleep } from "./retry.js";
import { quorumCount, type QuorumReport } from "./read.js";

function queueOptions(q: Queue): Options.AssertQueue {
  return { durable: q.durable, autoDelete: q.autoDelete, exclusive: q.exclusive, arguments: queueDeclareArgs(q) };
}

function exchangeOptions(e: Exchange): Options.AssertExchange {
  return { durable: e.durable, autoDelete: e.autoDelete, internal: e.internal, arguments: e.arguments };
}

export function declareQueue(ch: Channel, q: Queue): Promise<unknown> {
  return ch.assertQueue(q.name, queueOptions(q));
}

/**
 * A queue of topo's own (a replace's holding queue), which no worker declares: always with its
 * x-queue-type, classic included, so a vhost's default queue type (RabbitMQ 3.11+) cannot make it
 * another type. RabbitMQ 3.10 and 4.x take it as equivalent to the same queue declared without.
 */
export function declareOwnQueue(ch: Channel, q: Queue): Promise<unknown> {
  return ch.assertQueue(q.name, { ...queueOptions(q), arguments: { ...q.arguments, "x-queue-type": q.type } });
}

export function declareExchange(ch: Channel, e: Exchange): Promise<unknown> {
  return ch.assertExchange(e.name, e.type, exchangeOptions(e));
}

/** amqplib's form of a typed value: `{ "!": type, value }` where its own guess could differ. */
function wireValue(v: TypedValue): unknown {
  switch (v.type) {
    case "longstr":
      return { "!": "string", value: v.value };
    case "binary":
      return Buffer.from(v.base64, "base64");
    case "bool":
      return v.value;
    case "void":
      return null;
    case "table":
      return wireTable(v.fields);
    case "array":
      return v.items.map(wireValue);
    case "signedint":
      return { "!": "int", value: v.value };
    default:
      return { "!": v.type, value: v.value };
  }
}

function wireTable(fields: TypedField[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of fields) out[f.key] = wireValue(f.value);
  return out;
}

/**
 * A binding's arguments as AMQP writes them: with the types the broker holds them in where they
 * were read (broker/exact-args.ts), so that a re-created binding is the same binding and an
 * unbind removes it; else as amqplib types them, which is what topo itself binds with.
 */
export function bindingArgs(b: Binding): Record<string, unknown> {
  return b.exact ? wireTable(b.exact) : b.arguments;
}

export function bind(ch: Channel, b: Binding): Promise<unknown> {
  return b.destinationType === "queue"
    ? ch.bindQueue(b.destination, b.source, b.routingKey, bindingArgs(b))
    : ch.bindExchange(b.destination, b.source, b.routingKey, bindingArgs(b));
}

export function unbind(ch: Channel, b: Binding): Promise<unknown> {
  return b.destinationType === "queue"
    ? ch.unbindQueue(b.destination, b.source, b.routingKey, bindingArgs(b))
    : ch.unbindExchange(b.destination, b.source, b.routingKey, bindingArgs(b));
}

type Fields = Record<string, unknown>;
interface Args {
  assertQueue(name: string, o: Options.AssertQueue): Fields;
  assertExchange(name: string, type: string, o: Options.AssertExchange): Fields;
  bindQueue(queue: string, source: string, key: string, args: unknown): Fields;
  bindExchange(dest: string, source: string, key: string, args: unknown): Fields;
}
type Defs = Record<"QueueDeclare" | "ExchangeDeclare" | "QueueBind" | "ExchangeBind", number>;
/** The channel's frame writer, which amqplib's typings leave out. */
type Sender = { sendImmediately(method: number, fields: Fields): unknown };

/**
 * Send a declare or bind without waiting for its reply (nowait: the broker sends none). A refusal
 * still closes the channel, and the next synchronous call on it sees that (the pipeline's barrier).
 */
export function sendNowait(ch: Channel, w: Queue | Exchange | Binding): void {
  const args = amqplibModule<Args>("api_args.js");
  const defs = amqplibModule<Defs>("defs.js");
  const send = (method: number, fields: Fields) => void (ch as unknown as Sender).sendImmediately(method, { ...fields, nowait: true });
  switch (w.kind) {
    case "queue":
      return send(defs.QueueDeclare, args.assertQueue(w.name, queueOptions(w)));
    case "exchange":
      return send(defs.ExchangeDeclare, args.assertExchange(w.name, w.type, exchangeOptions(w)));
    case "binding":
      return w.destinationType === "queue"
        ? send(defs.QueueBind, args.bindQueue(w.destination, w.source, w.routingKey, bindingArgs(w)))
        : send(defs.ExchangeBind, args.bindExchange(w.destination, w.source, w.routingKey, bindingArgs(w)));
  }
}

/** The awaited form of what sendNowait sends. */
export function write(ch: Channel, w: Queue | Exchange | Binding): Promise<unknown> {
  return w.kind === "queue" ? declareQueue(ch, w) : w.kind === "exchange" ? declareExchange(ch, w) : bind(ch, w);
}

/** How long a quorum queue may go on counting a closed channel's basic.get as consumers. */
const QUORUM_CONSUMERS_SETTLE_MS = 3_000;
const QUORUM_CONSUMERS_POLL_MS = 100;

/**
 * Delete a queue only if it holds no message and has no consumer; otherwise say why not, and
 * leave it. A consumer counts because what it has not acknowledged would go with the queue (an
 * if-empty delete alone counts only ready messages). A quorum queue cannot be deleted with
 * if-empty or if-unused (RabbitMQ 3.10 and 4.x close the whole connection, 540), so topo checks
 * it itself, one round trip before the delete. Neither sees what a basic.get without ack holds.
 */
export async function deleteQueueIfIdle(ch: Channel, name: string, type: Queue["type"], report: QuorumReport): Promise<string | undefined> {
  if (type === "quorum") {
    // A quorum queue counts the channel that moved its messages out with basic.get as consumers
    // until it has taken in that the channel closed (90 "consumers" just after a move, on 3.10):
    // they go within moments, a worker does not.
    let now = await ch.checkQueue(name);
    for (const deadline = Date.now() + QUORUM_CONSUMERS_SETTLE_MS; now.consumerCount > 0 && Date.now() < deadline; ) {
      await sleep(QUORUM_CONSUMERS_POLL_MS);
      now = await ch.checkQueue(name);
    }
    if (now.consumerCount > 0) return `${now.consumerCount} consumer(s), in use`;
    if (now.messageCount > 0) return `${now.messageCount} message(s), not empty`;
    // 0 and 0 is also the broker's answer when the queue's leader did not answer in time
    // (broker/read.ts quorumCount): the queue's own report must agree.
    const counted = await quorumCount(() => ch.checkQueue(name), report, name, now);
    if (counted.consumerCount > 0) return `${counted.consumerCount} consumer(s), in use`;
    if (counted.messageCount > 0) return `${counted.messageCount} message(s), not empty`;
    if (counted.reported) {
      const { held, consumers } = counted.reported;
      return `${held > 0 ? `${held} message(s)` : `${consumers} consumer(s)`} by the queue's own last report, though its passive declare counts none (the broker's answer when the queue's leader does not answer within 250 ms), ${held > 0 ? "not empty" : "in use"}`;
    }
    // And what no passive declare counts, which the delete would drop as well.
    const beside = counted.last?.beside ?? 0;
    if (beside > 0) {
      return `${beside} message(s) neither ready nor unacknowledged by the queue's own last report (at-least-once dead letters waiting for their target, or retries RabbitMQ 4.3 delays), not empty`;
    }
    await ch.deleteQueue(name);
    return undefined;
  }
  try {
    // A stream's if-unused is not checked (and its if-empty passes whatever it holds, on 3.10):
    // apply refuses to delete a stream at all without --allow-data-loss (plan/guards.ts).
    await ch.deleteQueue(name, type === "stream" ? { ifEmpty: true } : { ifEmpty: true, ifUnused: true });
    return undefined;
  } catch (e) {
    if ((e as { code?: number }).code !== 406) throw e;
    return replyText(e as Error & { code?: unknown }).text;
  }
}
