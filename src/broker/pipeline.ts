// Declares and binds pipelined: on each channel, a batch of no-wait methods closed by one awaited
// method, the barrier. The broker handles a channel's methods in order and closes the channel at
// the first refusal, so the barrier's reply means the whole batch is done, and a refusal makes
// the barrier fail with the broker's reply.
//
// Measured on the 2-core test machine (3,000 durable objects in one vhost, RabbitMQ 3.10): 64
// channels of 16-method batches took 1.0 s of wall and 1.5 s of broker CPU, against 1.3 s and
// 1.8 s for 64 channels awaiting every declare, with half of topo's CPU. Large batches are slower
// and cost the broker more (one channel of 500-method batches: 3.0 s, 2.8 s of broker CPU): a
// channel process with a long mailbox works harder on every message.

import type { Channel } from "amqplib";
import type { Binding, Exchange, Queue } from "../model.js";
import type { AmqpSession } from "./amqp.js";
import { sendNowait, write } from "./declare.js";
import { amqpError, closeChannel } from "./amqp.js";
import { BrokerError } from "../errors.js";

/** Methods per batch, the barrier included. */
export const PIPELINE_BATCH = 16;

type Write = Queue | Exchange | Binding;

/** How the writes go: over up to `channels` channels, each item as `writeOf` makes it, named by `what` in an error, and `onDone` once the broker has it. */
type Writing<T> = [channels: number, writeOf: (item: T) => Write, what: (item: T) => string, onDone: (item: T) => void];

/**
 * Write every item over up to `channels` channels, batches of PIPELINE_BATCH at a time. When a
 * batch fails, its writes are done again one at a time, each awaited, on a channel of their own
 * (every declare and bind is idempotent), and the first that fails is the one reported, with its
 * own reply, exactly as without the pipeline. Should none fail the second time (something else
 * changed the broker in between), the batch's own failure is reported.
 */
export async function writePipelined<T>(session: AmqpSession, items: readonly T[], ...how: Writing<T>): Promise<void> {
  const batches: T[][] = [];
  for (let i = 0; i < items.length; i += PIPELINE_BATCH) batches.push(items.slice(i, i + PIPELINE_BATCH));
  await writeBatches(session, batches, ...how);
}

/**
 * Write units as writePipelined writes items: each unit whole in one batch, so that the broker
 * takes its writes in order (a binding after the new objects it joins), and as many
 * whole units to a batch as fit in PIPELINE_BATCH. A unit is at most that long.
 */
export async function writeUnitsPipelined<T>(session: AmqpSession, units: readonly (readonly T[])[], ...how: Writing<T>): Promise<void> {
  const batches: T[][] = [];
  let batch: T[] = [];
  for (const unit of units) {
    if (unit.length > PIPELINE_BATCH) throw new Error(`a unit of ${unit.length} writes is longer than a batch (${PIPELINE_BATCH})`);
    if (batch.length + unit.length > PIPELINE_BATCH) {
      batches.push(batch);
      batch = [];
    }
    batch.push(...unit);
  }
  if (batch.length) batches.push(batch);
  await writeBatches(session, batches, ...how);
}

async function writeBatches<T>(session: AmqpSession, batches: T[][], ...[channels, writeOf, what, onDone]: Writing<T>): Promise<void> {
  /** The item a failed batch was narrowed down to, for the error's wording. */
  const culprit = new Map<T[], T>();
  await session.runAll(
    batches,
    channels,
    async (ch, batch) => {
      try {
        await sendBatch(ch, batch.map(writeOf));
        session.rpcs += batch.length - 1;
      } catch (e) {
        // The channel is closed now; runAll does not reuse a channel whose call threw.
        for (const item of batch) {
          culprit.set(batch, item);
          await writeAlone(session, writeOf(item));
          onDone(item);
        }
        culprit.delete(batch);
        throw e;
      }
      for (const item of batch) onDone(item);
    },
    (batch) => {
      const item = culprit.get(batch);
      return item !== undefined ? what(item) : `${what(batch[0] as T)} or one of the ${batch.length - 1} writes pipelined after it`;
    },
  );
}

/** A write the broker refused, with its reply in words. */
export interface Refused<T> {
  item: T;
  error: BrokerError;
}

/**
 * Write every item, as writePipelined does, but never stop at a refusal: a failed batch's writes
 * are done again one at a time, each on a channel of its own, and every one the broker refuses is
 * returned with its reply. For writes that must all be tried (the bindings a replace puts back:
 * one the broker refuses must not cost the others). A lost connection still stops it: nothing
 * more can be written then.
 */
export async function writeEach<T>(session: AmqpSession, items: readonly T[], channels: number, writeOf: (item: T) => Write, what: (item: T) => string): Promise<Refused<T>[]> {
  const refused: Refused<T>[] = [];
  const batches: T[][] = [];
  for (let i = 0; i < items.length; i += PIPELINE_BATCH) batches.push(items.slice(i, i + PIPELINE_BATCH));
  // Not AmqpSession.runAll: it stops at the first failure, and here a refusal is an answer.
  let next = 0;
  let stopped: { error: unknown; what: string } | undefined;
  const worker = async (): Promise<void> => {
    let ch: Channel | undefined;
    let doing = "open channel";
    try {
      while (!stopped && next < batches.length) {
        const batch = batches[next++] as T[];
        doing = what(batch[0] as T);
        ch ??= await session.channel();
        session.rpcs++;
        try {
          await sendBatch(ch, batch.map(writeOf));
          session.rpcs += batch.length - 1;
          continue;
        } catch (e) {
          // The broker closed the channel at the refusal.
          ch = undefined;
          if (session.lost) throw e;
        }
        for (const item of batch) {
          doing = what(item);
          try {
            await writeAlone(session, writeOf(item));
          } catch (e) {
            if (session.lost) throw e;
            refused.push({ item, error: amqpError(session.cluster, what(item), e as Error) });
          }
        }
      }
    } catch (e) {
      stopped ??= { error: e, what: doing };
    } finally {
      if (ch) await closeChannel(ch);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(session.writers(channels), batches.length)) }, worker));
  if (stopped) throw stopped.error instanceof BrokerError ? stopped.error : amqpError(session.cluster, stopped.what, stopped.error as Error, session.lost);
  return refused;
}

/** Sockets corked until the writes of this turn of the event loop have reached them. */
const corked = new WeakSet<object>();

/**
 * amqplib writes every frame to the socket on its own: a system call and a stream write each
 * (corking them took an apply of 1,000 services from 0.69 to 0.62 s of topo's CPU, 2bf8e1a).
 * The socket is corked while a turn's frames arrive and uncorked after amqplib's muxer has
 * written them (it writes on setImmediate, so the uncork waits one turn more): they leave in one
 * writev. Not every frame: a batch sent in the turn between, on a barrier's reply, is written
 * after the uncork, a frame at a time (6,227 of 7,360 write calls in an apply from empty of
 * 5,000 services were single frames). Corking each pass of the muxer instead left 1,328 calls
 * and saved no CPU, topo's or the broker's, in 13 alternating rounds (bench/notes.md): not kept.
 */
function coalesce(ch: Channel): void {
  const socket = (ch as unknown as { connection?: { stream?: { cork(): void; uncork(): void } } }).connection?.stream;
  if (!socket || corked.has(socket)) return;
  corked.add(socket);
  socket.cork();
  setImmediate(() =>
    setImmediate(() => {
      corked.delete(socket);
      socket.uncork();
    }),
  );
}

async function sendBatch(ch: Channel, writes: Write[]): Promise<void> {
  coalesce(ch);
  const last = writes.length - 1;
  for (let i = 0; i < last; i++) sendNowait(ch, writes[i] as Write);
  await write(ch, writes[last] as Write);
}

/** One awaited write on a channel of its own, closed after. */
async function writeAlone(session: AmqpSession, w: Write): Promise<void> {
  const ch = await session.channel();
  session.rpcs++;
  await write(ch, w);
  await closeChannel(ch);
}
