// One apply at a time per cluster. The lock is an exclusive queue on the broker itself: it lives
// exactly as long as the connection that declared it, so a crashed apply never leaves it behind.

import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { BrokerError, LockError } from "../errors.js";
import type { AmqpSession } from "./amqp.js";
import { amqpError, closeChannel, replyText } from "./amqp.js";
import type { ManagementClient } from "./http.js";
import { vh } from "./http.js";
import { namedItem } from "./answers.js";
import { sleep } from "./retry.js";
import { closeHolderAdvice, strayLockAdvice } from "../plan/left-behind.js";
import { shown } from "../core/words.js";
import { APPLY_ARGUMENT, USERS_ARGUMENT } from "./user-writers.js";

export interface LockOptions {
  /** The lock queue's name: topo.<prefix>.lock, so files with different prefixes never wait on each other. */
  queue: string;
  timeoutMs: number;
  /** How often to try again while another apply holds the lock. */
  pollMs?: number;
  log: (msg: string) => void;
  /** The AMQP URL the lock is taken through, password masked, for the look-alike refusal. */
  amqpDisplay?: string;
  /** The users this apply may write, which other applies' locks (other prefixes, other vhosts) are checked against: broker/user-writers.ts. */
  users?: readonly string[];
  /** This apply, the same in the locks of all its clusters. */
  applyId?: string;
}

/**
 * The fewest channels topo may open (channel_max, a user's max-channels) for the lock to keep one
 * for its consumer: its own and one to write over. Below that the lock is the queue alone.
 */
export const LOCK_CONSUMER_MIN_CHANNELS = 2;

interface LockHolder {
  holder?: string;
  since?: string;
}

/** Takes the lock; `waited`: another holder had it first, so the broker may have changed since a read made before. */
export async function acquireLock(session: AmqpSession, http: ManagementClient, vhost: string, opts: LockOptions): Promise<{ waited: boolean }> {
  const started = Date.now();
  const me = `${hostname()} pid ${process.pid}`;
  const lock = opts.queue;
  // Names this lock among all others: the management API must show the very lock AMQP took.
  const nonce = randomUUID();
  let taken = false;
  let announced = false;
  for (;;) {
    // What the broker refused names the right it needs (broker/amqp.ts permissionHint): the
    // declare needs configure, the consume read.
    let step = `take lock ${lock}`;
    try {
      // Inside the try: a connection lost while waiting is a broker error like any other.
      const ch = await session.channel();
      session.rpcs++;
      await ch.assertQueue(lock, {
        exclusive: true,
        durable: false,
        autoDelete: true,
        // Stored with the queue (RabbitMQ keeps unknown arguments), so a waiting apply can say who
        // holds the lock and since when.
        arguments: {
          "x-topo-holder": me,
          "x-topo-since": new Date().toISOString(),
          "x-topo-nonce": nonce,
          ...(opts.users ? { [USERS_ARGUMENT]: [...opts.users] } : {}),
          ...(opts.applyId ? { [APPLY_ARGUMENT]: opts.applyId } : {}),
        },
      });
      // A policy's `expires` (a vhost-wide clean-up of idle queues) deletes a queue nobody uses,
      // exclusive or not: measured on 4.0.5, expires 2000 took the lock from an apply holding it,
      // and a second apply then took it too. A consumer makes the queue used for as long as the
      // connection lives. Its channel stays open and counts against channel_max and the user's
      // max-channels (the writes and a replace keep within what is left). Only where not even one
      // channel would be left to write over is the lock the queue alone. (It was so below 16: at
      // channel_max 8 on 4.0.5 a policy's expires 1500 deleted the lock of a running apply.)
      if (session.channelBudget >= LOCK_CONSUMER_MIN_CHANNELS) {
        session.rpcs++;
        step = `consume lock ${lock}`;
        // null: the broker cancelled the consumer, which it does when the queue is deleted
        // (rabbitmqctl delete_queue takes an exclusive queue; a policy's expires cannot while it
        // is consumed). apply then went on writing while a second apply took the lock and wrote too.
        await ch.consume(
          lock,
          (m) => {
            if (m === null) session.loseLock(`the apply lock (queue ${lock} in vhost ${shown(vhost)}) was deleted while this apply held it (by rabbitmqctl delete_queue, or with its vhost), so another apply may write now; apply stops writing, takes the lock again and plans anew`);
          },
          { noAck: true },
        );
      } else {
        await closeChannel(ch);
      }
      taken = true;
    } catch (e) {
      const { code } = replyText(e as Error & { code?: unknown });
      // 405 RESOURCE_LOCKED: another connection holds the exclusive queue.
      if (code !== 405) throw amqpError(session.cluster, step, e as Error, session.lost);
    }
    if (taken) {
      await confirmSameBroker(session.cluster, http, vhost, lock, nonce, opts.amqpDisplay);
      return { waited: announced };
    }
    const info = await holderOf(http, vhost, lock);
    // A lock queue no connection holds exclusively is no apply's lock, and never goes by itself:
    // waiting for it, apply gave up saying another apply held it.
    if (info.exclusive === false) throw notALock(session.cluster, vhost, lock);
    const waited = Date.now() - started;
    // The holder and the time are what the lock queue's declarer wrote: shown(), like any name from the broker.
    const who = `${info.holder !== undefined ? shown(info.holder) : "another client (who, the management API did not say)"}${info.since ? ` since ${shown(info.since)}` : ""}`;
    if (waited >= opts.timeoutMs) {
      throw new LockError(
        `cluster ${session.cluster}: the apply lock (queue ${lock} in vhost ${shown(vhost)}) is held by ${who}; gave up after ${Math.round(waited / 1000)} s`,
        [
          info.holder?.startsWith("a client that is no topo apply")
            ? `a client holds a queue named as topo's lock: ${closeHolderAdvice(vhost)}`
            : "another apply is running against this cluster: wait for it to finish, or raise --lock-timeout",
          "the lock disappears by itself when its holder's connection closes",
        ],
        { cluster: session.cluster, object: `queue ${lock}` },
      );
    }
    if (!announced) {
      opts.log(`cluster ${session.cluster}: waiting for the apply lock held by ${who} (up to ${Math.round(opts.timeoutMs / 1000)} s)`);
      announced = true;
    }
    await sleep(Math.min(opts.pollMs ?? 500, Math.max(50, opts.timeoutMs - waited)));
  }
}

/**
 * The identity check before any read compares what AMQP's connection.start and the management
 * API say of their broker: two distinct brokers alike in cluster name, version and Erlang pass it.
 * Before apply writes, the lock it just took over AMQP must be there through the management API,
 * with this apply's own nonce; otherwise the two reach different brokers, and apply would write
 * to one while it reads and checks the other.
 */
async function confirmSameBroker(cluster: string, http: ManagementClient, vhost: string, lock: string, nonce: string, amqpDisplay = "the cluster's url"): Promise<void> {
  const args = await lockArguments(http, vhost, lock);
  if (args?.["x-topo-nonce"] === nonce) return;
  throw new BrokerError(
    cluster,
    `the management API ${http.display} does not see the apply lock (queue ${lock} in vhost ${vhost}) this apply has just taken through ${amqpDisplay}: ` +
      `${args ? "it shows a lock of another apply" : "it has no such queue"}, so the two do not reach the same vhost of the same broker (two brokers alike in cluster name, version and Erlang, or a proxy in front of the management API that shows another vhost); ` +
      `topo reads through the management API and writes through AMQP, so it refuses; nothing was written through AMQP`,
    {
      code: "endpoint_mismatch",
      hints: [
        `set clusters.${cluster}.management to the management API of the broker the url reaches, with nothing in between that changes paths; give distinct brokers distinct cluster names (rabbitmqctl set_cluster_name) so plan tells them apart too`,
      ],
    },
  );
}

/** The arguments the lock queue was declared with, as the management API shows them; undefined when there is no lock. */
export async function lockArguments(http: ManagementClient, vhost: string, lock: string): Promise<Record<string, unknown> | undefined> {
  const q = await lockQueue(http, vhost, lock);
  return q && (q.arguments ?? {});
}

/** The lock queue as the management API shows it; undefined when there is none. */
function lockQueue(http: ManagementClient, vhost: string, lock: string): Promise<{ arguments?: Record<string, unknown>; exclusive?: unknown } | undefined> {
  return http.one(`/api/queues/${vh(vhost)}/${encodeURIComponent(lock)}?disable_stats=true`, namedItem(vhost, lock), `queue ${lock} of vhost ${vhost}`);
}

/** A queue of the lock's name that is not exclusive: something else declared it, and it stays. */
export function notALock(cluster: string, vhost: string, lock: string): BrokerError {
  return new BrokerError(
    cluster,
    `the broker refused the apply lock (405 RESOURCE_LOCKED): queue ${lock} in vhost ${vhost} is not exclusive, so it is no apply's lock (a topo apply holds its lock as an exclusive queue of its connection), and no apply can take the lock while it is there; nothing was written`,
    {
      code: "broker_refused",
      object: `queue ${lock}`,
      hints: [`${strayLockAdvice(vhost, lock)}, then run topo apply again`],
    },
  );
}

async function holderOf(http: ManagementClient, vhost: string, lock: string): Promise<LockHolder & { exclusive?: boolean }> {
  try {
    const q = await lockQueue(http, vhost, lock);
    const args = q?.arguments ?? {};
    // Every topo apply names itself in its lock's arguments: a lock read without a name is
    // another program's queue of that name, not an apply.
    const holder = typeof args["x-topo-holder"] === "string" ? args["x-topo-holder"] : q ? "a client that is no topo apply (the queue names no holder)" : undefined;
    return {
      holder,
      since: typeof args["x-topo-since"] === "string" ? args["x-topo-since"] : undefined,
      ...(typeof q?.exclusive === "boolean" ? { exclusive: q.exclusive } : {}),
    };
  } catch {
    // Who holds it is only for the message; not knowing must not fail the wait.
    return {};
  }
}
