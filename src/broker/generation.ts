// Whether the plan an apply read before it took the lock still holds under the lock.
//
// apply reads each cluster before it takes the lock (a no-change apply takes none), then locks.
// Only another topo apply, holding the same lock, can have written in between on topo's behalf:
// foreign writers are never shut out, by this read or by any other. So every apply that writes
// renews a mark under the lock, before its first write, and an apply that saw no lock and the same
// mark before its read, and sees that mark again under its own lock, knows no apply wrote since
// its read began: a second read of the whole cluster would find what the first found.
//
// Why the order of the two reads before the plan matters: the mark is read first, then the lock.
// - An apply that took the lock after the mark was read renews the mark after it: seen under the lock.
// - One that held the lock when the lock was read: seen as held.
// - One that held it when the mark was read and let go before the lock was read had finished
//   writing before the plan's read began.
// The mark is compared only after the lock's own check (broker/lock.ts): the management API has
// shown this apply's lock, so the node that answers has every change made before the lock was
// taken, the last apply's renewal included, even where a follower's reads may lag (Khepri).

import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { basename } from "node:path";
import { applyMarkName, lockQueueName, MARK_FILE, markedPrefix, ownNamespace, TOPO_NAMESPACE } from "../core/naming.js";
import type { Resource } from "../model.js";
import type { Channel } from "amqplib";
import type { AmqpSession } from "./amqp.js";
import { amqpError, closeChannel } from "./amqp.js";
import { lockArguments } from "./lock.js";
import type { ManagementClient } from "./http.js";
import { namedItem } from "./answers.js";
import { vh } from "./http.js";

/** What was seen before a plan's read: the mark's generation (none yet: undefined), and whether an apply held the lock. */
export interface ApplyMark {
  generation?: string;
  locked: boolean;
}

/** The mark, then the lock: two GETs, one after the other (the order is what makes it sound). */
export async function readApplyMark(http: ManagementClient, vhost: string, prefix: string): Promise<ApplyMark> {
  const generation = await generationOf(http, vhost, prefix);
  const lock = await lockArguments(http, vhost, lockQueueName(prefix));
  return { generation, locked: lock !== undefined };
}

/**
 * Under the lock: true when no apply can have written since `before` was read. A read that found
 * no mark proves nothing: the last apply of a prefix that leaves nothing on the vhost deletes its
 * mark (deleteApplyMark), so "none" then "none" may have an apply in between.
 */
export async function unchangedSince(http: ManagementClient, vhost: string, prefix: string, before: ApplyMark): Promise<boolean> {
  if (before.locked || before.generation === undefined) return false;
  return (await generationOf(http, vhost, prefix)) === before.generation;
}

/**
 * Under the lock, before the first write: a new generation. An exchange's arguments cannot change,
 * so the mark is deleted and declared again; an apply that reads it in between finds no mark and
 * the lock held, and reads again under its own lock.
 */
export async function renewApplyMark(session: AmqpSession, prefix: string, file?: string): Promise<void> {
  await onMark(session, prefix, "renew", async (ch, name) => {
    await ch.deleteExchange(name);
    await ch.assertExchange(name, "fanout", {
      durable: true,
      autoDelete: false,
      // Nothing can publish to it.
      internal: true,
      // Who applied last and when, for people who find the exchange; the generation is what apply compares.
      // The file's name, without its folder (a checkout's differs from run to run): a plan of
      // another file of the same prefix says whose services it would delete (plan/other-file.ts).
      arguments: {
        "x-topo-generation": randomUUID(),
        "x-topo-applied-by": `${hostname()} pid ${process.pid}`,
        "x-topo-applied-at": new Date().toISOString(),
        ...(file !== undefined ? { [MARK_FILE]: basename(file) } : {}),
      },
    });
    return 2;
  });
}

/**
 * Under the lock, after an apply that left the prefix nothing on the vhost (its file has no
 * service there any more): the mark goes too. Left, it kept telling a longer or shorter prefix's
 * plans that this one still used the vhost (the nested-prefix warnings of plan/diff.ts), after
 * the prefix was retired as safety.md says, by applying its file with no services.
 */
export async function deleteApplyMark(session: AmqpSession, prefix: string): Promise<void> {
  await onMark(session, prefix, "delete", async (ch, name) => {
    await ch.deleteExchange(name);
    return 1;
  });
}

/** `write` on a channel of its own, with the mark's name; it returns the RPCs it made. */
async function onMark(session: AmqpSession, prefix: string, what: string, write: (ch: Channel, name: string) => Promise<number>): Promise<void> {
  const name = applyMarkName(prefix);
  try {
    const ch = await session.channel();
    session.rpcs += await write(ch, name);
    await closeChannel(ch);
  } catch (e) {
    throw amqpError(session.cluster, `${what} topo's apply mark (exchange ${name})`, e as Error, session.lost);
  }
}

async function generationOf(http: ManagementClient, vhost: string, prefix: string): Promise<string | undefined> {
  const mark = applyMarkName(prefix);
  const x = await http.one<{ arguments?: Record<string, unknown> }>(`/api/exchanges/${vh(vhost)}/${encodeURIComponent(mark)}?disable_stats=true`, namedItem(vhost, mark), `exchange ${mark} of vhost ${vhost}`);
  const g = x?.arguments?.["x-topo-generation"];
  return typeof g === "string" ? g : undefined;
}

/**
 * Prefixes that mark the vhost now and that `read` did not see: another file's apply (a nested
 * prefix, mpx beside mp) holds a lock of its own, and one that ran while this apply read could
 * have its objects in the queue listing and its mark not yet in the exchange listing, so that the
 * plan took them for this file's and deleted them. Its mark (or lock, or policy) is written before
 * its objects, so a read whose objects include them is followed by a mark seen here. Small
 * requests: the broker filters the listings down to apply marks and locks (not the holding queues
 * of replaces, which can be thousands), a page of 500 at a time; undefined when the pages
 * disagree (names came or went while they were read), and then the caller reads again.
 */
export async function markersSince(http: ManagementClient, vhost: string, read: readonly Resource[]): Promise<string[] | undefined> {
  const seen = new Set(read.map(markedPrefix).filter((p): p is string => p !== undefined));
  const own = async (kind: "exchanges" | "queues"): Promise<Resource[] | undefined> => {
    // The names applyMarkName and lockQueueName give, whatever the prefix.
    const suffix = (kind === "exchanges" ? applyMarkName("p") : lockQueueName("p")).slice(ownNamespace("p").length);
    const pattern = `^${TOPO_NAMESPACE.replace(/\./g, "\\.")}[^.]+\\.${suffix}$`;
    const found: Resource[] = [];
    let total: number | undefined;
    for (let page = 1; ; page++) {
      const answer = await http.get<{ items?: { name?: unknown }[]; filtered_count?: number; page_count?: number }>(
        `/api/${kind}/${vh(vhost)}?page=${page}&page_size=500&name=${encodeURIComponent(pattern)}&use_regex=true&columns=name`,
      );
      if (!Array.isArray(answer.items) || (total !== undefined && answer.filtered_count !== total)) return undefined;
      total = answer.filtered_count;
      for (const i of answer.items) found.push({ kind: kind === "exchanges" ? "exchange" : "queue", name: String(i.name) } as Resource);
      if (page >= (answer.page_count ?? 1)) return found.length === total ? found : undefined;
    }
  };
  const [exchanges, queues, policies] = await Promise.all([own("exchanges"), own("queues"), http.get<{ name?: unknown }[]>(`/api/policies/${vh(vhost)}`)]);
  if (!exchanges || !queues || !Array.isArray(policies)) return undefined;
  const now = [...exchanges, ...queues, ...policies.map((p) => ({ kind: "policy", name: String(p.name) }) as Resource)].map(markedPrefix);
  return [...new Set(now.filter((p): p is string => p !== undefined && !seen.has(p)))];
}
