// Replace a queue without losing a message. RabbitMQ cannot change a queue's arguments, type or
// durability, and cannot swap bindings atomically, so:
//
//   1. a holding queue topo.hold.<queue> gets the queue's bindings, then the queue loses them:
//      from here on new publishes land in the holding queue;
//   2. what the old queue holds is moved into the holding queue (publisher confirms, mandatory);
//   3. the old queue is deleted (if-empty and if-unused: the broker itself refuses to drop a
//      message, or to take a consumer's unacknowledged ones with it) and declared again with its
//      new properties;
//   4. the new queue gets every binding, then the holding queue loses them;
//   5. the holding queue's messages are moved back, and the holding queue is deleted (if-empty).
//
// A message is acknowledged at its source only once its target confirmed it, one by one: what
// the target refuses (reject-publish at a limit) goes back to the source, so no message is ever
// in two places, and the move stops with the broker's reason. A move into a queue with a length
// limit never fills it past the limit (drop-head would silently discard the oldest): what does
// not fit waits in the holding queue, and apply stops saying so. Whether the messages the queue
// holds fit at all is decided before apply writes anything (plan/risk.ts).
//
// Between "bind the new side" and "unbind the old side" (steps 1 and 4) a message can be routed to
// both queues: one copy lands at the end of the queue losing its bindings, the other at the start
// of the queue gaining them. So right after each switch the gaining queue is peeked (got and
// requeued), and the move out of the losing queue drops a message as a copy only when it is among
// its last messages (no more of them behind it than the peek saw) and the peek saw a message with
// the same id (message-id, or Celery's correlation-id) and identical content, once per message
// seen. Messages that were in the queue before the replace began are never taken for copies of
// one another, however alike. A message with no id is never dropped, and neither is anything
// when finishing an interrupted replace (a queue that existed before this run may hold moved
// messages, which a peek cannot tell from copies), nor around a quorum queue (a peek's requeue
// counts as a delivery, and x-delivery-limit would drop it): there a copy can arrive twice.
// At-least-once, never at-most-once.
//
// Every step is idempotent and the holding queue's name says what it holds, so a re-run after a
// failure at any point finishes the job (plan shows it as "finishing an interrupted replace").

import { createHash } from "node:crypto";
import type { Channel, ConfirmChannel, GetMessage } from "amqplib";
import { BrokerError } from "../errors.js";
import type { Binding, Queue, QueueLimits } from "../model.js";
import { keyOf } from "../core/keys.js";
import { FETCHED_WITHOUT_CONSUMER, letGoOf, plural, shown } from "../core/words.js";
import { HOLD_EXCHANGE, holdingQueueFor, queueLimits } from "../plan/risk.js";
import { atLeast, defaultDeliveryLimit } from "../plan/broker-rules.js";
import type { AmqpSession } from "./amqp.js";
import { amqpError, closeChannel, PUBLISH_BLOCKED_GRACE_MS, PublishBlocked } from "./amqp.js";
import { alarmHint, blockedKind } from "../plan/alarms.js";
import { bind, declareOwnQueue, declareQueue, deleteQueueIfIdle, unbind } from "./declare.js";
import { copyOf, removedByKey } from "./remove-binding.js";
import { sleep } from "./retry.js";
import type { QuorumReport } from "./read.js";

export interface LosslessReplace {
  /** The queue as it must be afterwards. */
  after: Queue;
  /** Every binding the queue has or must have (destination: the queue). */
  bindings: Binding[];
  /** Bindings the holding queue has now (when resuming). */
  holdBindings: Binding[];
  /** Resuming, and the queue already has its new properties: only the move back is left. */
  queueDone: boolean;
  /** The queue as it is now; undefined when it is gone (an interrupted replace). */
  old?: Queue;
  /** The holding queue as it is now (resuming an interrupted replace). */
  hold?: Queue;
  /**
   * Remove a binding with arguments by its properties_key (broker/remove-binding.ts). Without it
   * such a binding is unbound over AMQP, exactly only where its types were found.
   */
  removeByKey?: (b: Binding & { propertiesKey: string }) => Promise<void>;
  /** What the new queue, the holding queue and the old queue enforce (plan/risk.ts). */
  limits?: { queue: QueueLimits; hold: QueueLimits; old?: QueueLimits };
  /**
   * What the old (classic) queue holds fetched and not acknowledged now, as its process counts it
   * (broker/read.ts heldNow); undefined: the broker gave no count. Without it, nothing is counted.
   */
  unacked?: (queue: string) => Promise<number | undefined>;
  /**
   * What a quorum queue counts of itself at its last tick (broker/read.ts quorumReport): before a
   * quorum queue is deleted, its passive declare's 0 messages and 0 consumers must agree with it.
   */
  report: QuorumReport;
  /**
   * Called before the replace's first write (at once when resuming one): from then on the queue
   * is not as it was, and an apply that stops says its messages may be in the holding queue.
   */
  begun?: () => void;
  /**
   * Called after each batch a move confirmed, saying what is under way ("moving the messages of
   * queue q to topo.hold.q: 5120 moved"): a move of many messages makes no change for minutes,
   * and is not a wait for the broker.
   */
  moving?: (what: string) => void;
  /**
   * Asks, before the replace's first write, whether its AMQP user may publish through the default
   * exchange (its move back does): publishByDefaultQuestion, one per cluster and apply. Rejects
   * with the broker's refusal. Without it, that is not asked.
   */
  mayPublishByDefault?: () => Promise<void>;
  /**
   * Queues that dead-letter into this one by its name (plan/dead-lettering.ts): what they send
   * during the replace reaches the old queue, not the holding queue, and an error that says so
   * names them.
   */
  namedSenders?: readonly string[];
  /** The broker's version (the plan's): whether a requeue into a quorum queue counts a delivery. */
  version?: string;
}

export interface ReplaceOutcome {
  /** Messages moved from the holding queue into the new queue, each confirmed by the broker. */
  movedBack: number;
  /** Copies of a message routed to both queues while bindings switched, dropped. */
  duplicatesDropped: number;
  /**
   * Messages this run moved into the holding queue that did not come back out, each of which
   * carried an expiration of its own that had passed by then: they expired there (dead-lettered
   * as the queue does, or dropped where it has no dead-letter exchange).
   */
  expired?: number;
  /** The broker's count of the new queue right after the move (undefined for a stream: it has none): its ready messages. */
  holds?: number;
  /** Consumers of the new queue then: what they hold unacknowledged is not in `holds`. */
  consumers?: number;
  /**
   * Messages that reached the holding queue while the bindings switched back to a new queue that
   * cannot be searched for copies (quorum, stream), and every one it held before where an earlier
   * apply stopped with both queues bound: at most this many are in both, and are delivered twice.
   */
  mayRepeat?: { count: number; why: string };
  /**
   * Messages that reached the holding queue while the bindings switched to it from a priority
   * queue, whose copies are not searched (a priority queue hands out by priority, so its last
   * messages are no sign of the last it got): at most this many are in both, and are delivered twice.
   */
  mayRepeatOut?: number;
}

/** Messages moved per confirm round trip: at most this many are in both queues when a move is cut. */
export const BATCH = 256;
/**
 * Body bytes fetched per confirm round trip, at most (past the first message): a batch is held
 * whole in topo's memory, and the client's encoding of it as well, until the broker confirms it.
 * Bounded by count alone, a replace of 100 messages of 4 MB moved them in one batch of 400 MB,
 * and the apply peaked at 925 MB of RSS, more than a small container has; with this bound,
 * 157 MB, and as fast (measured on 3.10.8). 16 MiB is 256 messages of 64 KB: smaller messages
 * still move 256 at a time.
 */
export const BATCH_BYTES = 16 * 1024 * 1024;
/** Time for messages routed just before an unbind to reach their queue before it is peeked. */
const SETTLE_MS = 100;
/** The most settled() waits for a queue's count to stop growing. */
const SETTLE_MAX_MS = 3_000;
/**
 * How long a move out of a quorum queue keeps its channel open after its last acknowledgement. A
 * quorum queue applies acknowledgements as low-priority commands, after the channel's close when
 * that comes first, and then gives back every message not yet acknowledged: measured (4.3.6, 4.0.5,
 * 3.10.8), 1 to 4 replaces of 10 of 1,000 messages left the last 198 moved in the old queue too,
 * copies the next apply delivered twice. With 1.5 s before the close, 10 of 10 were clean, and 28
 * of 28 on 4.3.6 (where the build without it failed on its 10th). No AMQP
 * reply says the acknowledgements are applied, so it is a wait; what comes back all the same is
 * dropped where it carries an id and is a message the move acknowledged (dropGivenBack), and
 * said (quorumCopies) rather than taken for a client's publishes where it has none. Measured on
 * 4.3.6 with the wait taken out: in 2 of 37 replaces of 1,000 messages the queue gave copies back
 * (198 in one), the pass dropped them, and the queue held each of the 1,000 once.
 */
const QUORUM_SETTLE_MS = 1_500;

export async function replaceQueueLossless(session: AmqpSession, r: LosslessReplace, log: (m: string) => void): Promise<ReplaceOutcome> {
  const name = r.after.name;
  // A holding queue an interrupted replace left is declared as it is (an earlier topo could leave
  // a quorum one where the vhost's default queue type is quorum).
  const holdQueue = r.hold ?? holdingQueueFor(r.after, r.limits?.queue ?? queueLimits(r.after, []), r.old);
  const hold = holdQueue.name;
  const toHold = (b: Binding): Binding => copyOf(b, hold);
  // The bindings read on the queue itself keep their properties_key, which removes them exactly.
  const toQueue = (b: Binding): Binding => (b.destination === name ? b : copyOf(b, name));
  // The binding from the exchange of the holding queue's name is the move's own, never a route.
  const routes = dedupeBindings([...r.holdBindings.filter((b) => b.source !== hold).map(toQueue), ...r.bindings.map(toQueue)]);
  /** An unbind that matches the binding exactly, or fails: by its properties_key where it has arguments. */
  const unbindExactly = (ch: Channel, b: Binding): Promise<unknown> => (r.removeByKey && removedByKey(b) ? r.removeByKey(b) : unbind(ch, b));
  const step = async <T>(what: string, fn: (ch: Channel) => Promise<T>): Promise<T> => {
    let ch: Channel | undefined;
    try {
      // Opening the channel is inside the try: a connection closed under us fails here, and must
      // be reported like any other broker reply, with the step it stopped at.
      ch = await session.channel();
      session.rpcs++;
      return await fn(ch);
    } catch (e) {
      if (e instanceof BrokerError) throw e;
      throw amqpError(session.cluster, `replace queue ${name}: ${what}`, e as Error, session.lost);
    } finally {
      if (ch) await closeChannel(ch);
    }
  };
  /**
   * What a queue that has just gained bindings holds: the ids of its messages (each with how many
   * carry it), how many there are and their bytes. Found by a peek, for a classic queue only: a
   * stream cannot be read with basic.get, and a quorum queue counts a peek's requeue as a delivery
   * (x-delivery-limit: 0 dropped the messages a peek put back, measured on 3.10). Those are only
   * counted, and no copy is dropped from them, except in the replace's quorum holding queue
   * (`own`) where no delivery limit below 1 applies: its messages are all published again by the
   * move back, their deliveries counted afresh, so the peek costs them nothing (a Celery worker ran
   * a task twice at each quorum replace under live publishing, the copy of the first switch).
   */
  /** What a queue holds, counted and not read: no copies among it, and bytes unknown. */
  const countedOnly = async (q: Queue): Promise<Copies> => ({ ids: new Map(), count: await step(`count ${q.name}`, (ch) => count(ch, q.name)), bytes: 0, sized: false });
  const copiesIn = async (q: Queue, own?: QueueLimits): Promise<Copies> => {
    if (q.type === "classic") return peek(session, q.name);
    if (q.type === "quorum" && own && (own.deliveryLimit === undefined || own.deliveryLimit.value >= 1)) return peek(session, q.name);
    if (q.type === "stream") return NO_COPIES;
    return countedOnly(q);
  };
  // An interrupted replace is half-way already.
  if (r.hold !== undefined || r.queueDone) r.begun?.();
  // The move back (step 5) publishes through the default exchange, after the old queue is gone:
  // a user refused write on amq.default stopped there, with the queue's messages in the holding
  // queue and its bindings routing new ones there, where no worker takes them. So it is asked
  // first, before anything of the replace is written (where the management user may not read the
  // AMQP user's permissions, plan could not tell: commands/clusters.ts).
  // Asked on a connection of its own: a broker under a memory or disk alarm blocks a connection
  // once it publishes and reads nothing more from it, so asked on the replace's own, every step
  // after it waited for ever (the move's publishes give up after a grace, and say so).
  if (r.mayPublishByDefault) {
    await r.mayPublishByDefault().catch((e: unknown) => {
      throw e instanceof BrokerError ? e : amqpError(session.cluster, `publish through exchange amq.default (the default exchange), as replace queue ${name} does to move its messages back; asked before the replace writes anything`, e as Error);
    });
  }
  // Step 3 deletes the old queue once its messages are in the holding queue: a user refused
  // configure on it stopped there, the same way. A declare of the queue as it is asks for that
  // right and changes nothing; the broker checks the right before it compares the properties, so
  // any answer but 403 (406, another's exclusive queue 405) means it is granted.
  if (r.old && !r.queueDone) {
    const old = r.old;
    await step(`declare ${name} as it is, asking for the configure permission its delete needs; asked before the replace writes anything`, async (ch) => {
      try {
        await declareQueue(ch, old);
      } catch (e) {
        if ((e as { code?: number }).code === 403) throw e;
      }
    });
  }
  r.begun?.();
  /** What this run's move out has moved into the holding queue so far, confirmed. */
  let movedOut = 0;
  // The holding queue deleted under the move out (by hand, a cleanup script, a policy's expires):
  // what it held went with it, and so did the bindings it had taken over, so the queue's
  // exchanges route what is published for it nowhere. Said as a loss, not as "the object does not
  // exist (yet)" (measured: 11,264 of 30,000 messages gone so, and apply said only 404 NOT_FOUND,
  // and that they "may be on" the holding queue).
  const goneDuringMoveOut = (e: unknown): never => {
    if (e instanceof BrokerError && e.status === 404 && (e.message.includes(`no queue '${hold}'`) || e.message.includes(`no exchange '${hold}'`))) {
      throw new BrokerError(
        session.cluster,
        `replace queue ${name}: ${hold} was deleted during the move out of ${name}, by something other than topo; what it held was lost with it (${plural(movedOut, "message")} this apply had moved there from ${name}, and what was published meanwhile), and so were the bindings it had taken over from ${name}: until an apply finishes the replace, what is published for ${name} is routed nowhere and dropped; ${name} keeps the rest`,
        {
          code: "messages_lost",
          object: `queue ${hold}`,
          hints: [
            `run topo apply --allow-destructive again at once: it replaces ${name} anew and puts its bindings back`,
            `find what deleted ${hold} (a person, a cleanup script, a policy with expires): topo creates and deletes it itself during a replace`,
          ],
        },
      );
    }
    throw e;
  };
  let duplicatesDropped = 0;
  /** What reached the holding queue while the bindings switched to it from a queue whose copies are not searched. */
  let unsearchedOut = 0;
  /** What this run moved into a holding queue it made, and when each of those that may expire there can have expired at the earliest. */
  let parked: { moved: number; expiring: number[]; keys: string[] } | undefined;

  if (!r.queueDone) {
    // 1. New publishes go to the holding queue. One this run makes refuses a publish past a length
    //    limit rather than drop its oldest (x-overflow reject-publish; a classic queue's argument
    //    wins over a policy's overflow, measured on 3.10.8): a limit a policy puts on it during the
    //    replace, which plan could not judge, stops the move with the rest still in the old queue.
    //    A quorum queue takes the policy's overflow over the argument: there the count of what
    //    comes back out says what was lost (messages_lost).
    const declared = r.hold === undefined && holdQueue.type === "classic" && !("x-overflow" in holdQueue.arguments) ? { ...holdQueue, arguments: { ...holdQueue.arguments, "x-overflow": "reject-publish" } } : holdQueue;
    await step(`declare ${hold}`, (ch) => declareOwnQueue(ch, declared));
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
        for (const b of routes) await unbindExactly(ch, b);
      });
      await sleep(SETTLE_MS);
      // 2. The old queue's messages join the holding queue; the copies step 1 routed to both are
      //    dropped (the holding queue was made by this run, so it holds nothing else yet). A
      //    stream cannot be read with basic.get (it closes the connection), so nothing is moved
      //    out of one: plan refuses to replace a stream without --allow-data-loss.
      // The peek first: what reaches the holding queue after the unbind and before the peek is
      // counted with the copies, so the shorter that moment, the fewer twins that prove nothing.
      // A holding queue an earlier apply left is searched too where that apply stopped before the
      // old queue lost its bindings (cut, killed or interrupted between step 1's bind and unbind):
      // no move had begun, so it holds only what was routed to it, and every message published
      // since reached both queues, a copy of each among the old queue's last. Moved unsearched,
      // each arrived twice (measured on 3.10.8: 300 published in that state, 300 twice; a cut
      // there under a publisher, and apply's own reconnect, 1,440 of 21,530 twice), and the apply
      // that finished said at most 256 might.
      const unmoved = r.hold !== undefined && r.bindings.some((b) => b.destination === name);
      const copies = r.old?.type !== "stream" && (r.hold === undefined || unmoved) ? await copiesIn(holdQueue, r.limits?.hold).catch(goneDuringMoveOut) : NO_COPIES;
      // What step 3 counts fetched and unacknowledged, in a classic queue (and one the plan did
      // not see): a quorum queue counts the channel that holds them as a consumer, and its
      // delete refuses.
      const counted = r.old?.type !== "quorum" && r.old?.type !== "stream" ? r.unacked : undefined;
      // A priority queue hands out by priority, so its last messages are no sign of the last it got.
      const byPriority = r.old?.arguments["x-max-priority"] !== undefined;
      if (r.old?.type !== "stream") {
        // Through a fanout exchange of the holding queue's name, bound to it alone, each message
        // keeps its own routing key: one that expires there is dead-lettered by that key, as the
        // queue would have. Sent by the default exchange, its key was the holding queue's name,
        // which a dead-letter exchange that routes by task name did not route (measured: 768 of
        // 20,000 gone). The exchange deletes itself once unbound (auto-delete).
        await step(`declare exchange ${hold}`, async (ch) => {
          await ch.assertExchange(hold, HOLD_EXCHANGE.type, { durable: HOLD_EXCHANGE.durable, autoDelete: HOLD_EXCHANGE.autoDelete });
          await ch.bindQueue(hold, hold, "");
        }).catch(goneDuringMoveOut);
        const s = await move(session, name, hold, {
          copies,
          limits: r.limits?.hold,
          giveBack: giveBackTo(r.old, r.limits?.old),
          dropsPast: dropsPast(r.old, r.limits?.old, r.version),
          via: hold,
          unbound: true,
          byPriority,
          settle: r.old?.type === "quorum",
          sourceLimits: r.limits?.old,
          moved: (n) => {
            movedOut = n;
            r.moving?.(`moving the messages of queue ${name} to ${hold}: ${n} moved`);
          },
        }).catch(goneDuringMoveOut);
        duplicatesDropped += s.dropped + (s.givenBack ?? 0);
        // A priority queue's copies are not searched (byPriority): each message the holding queue
        // got while the bindings switched may be in both. Said, where apply said nothing (measured
        // on 3.10.8: x-max-priority 10 replaced under a publisher, 1 of 2,730 twice, no word).
        if (byPriority) unsearchedOut = copies.count;
        if (r.hold === undefined) parked = { moved: s.moved, expiring: s.expiring ?? [], keys: s.expiringKeys ?? [] };
        if (s.arrived) throw arrivedDuringReplace(session.cluster, name, hold, s.arrived, r.old?.type === "quorum", r.namedSenders);
        if (s.stopped) {
          // The old queue is still to be deleted: the apply that finishes it is a replace as destructive as this one.
          // The bindings lead to the holding queue now: said, since no worker reads it until an
          // apply finishes the replace (the message alone read as if nothing had changed).
          throw stopped(
            session.cluster,
            name,
            s,
            `the old queue ${name} keeps them (its workers still take them from there); meanwhile its bindings route new messages to ${hold}, where no worker takes them until an apply finishes the replace`,
            [`once the cause is fixed, run topo apply --allow-destructive again: it moves them and finishes the replace`],
          );
        }
        await step(`unbind exchange ${hold}`, (ch) => ch.unbindQueue(hold, hold, "")).catch(goneDuringMoveOut);
      }
      // 3. Gone only if empty and unused: a publish straight to the queue's name, or a consumer
      //    that attached during the move (its unacknowledged messages would go with the queue),
      //    makes the broker refuse, and apply stops with every message still in a queue.
      // A client that took messages with basic.get and holds them is no consumer, and an
      // if-empty delete counts ready messages only: the broker would delete them with the queue
      // (measured: a poller holding 5 of 20,000 during the move lost them, and apply said the
      // replace was done), and so, when the move found nothing, those of a client that fetched
      // them all a moment before the replace. The queue's process counts them; the statistics did
      // not (emitted before the fetch, they said 0). One with a consumer is refused by the
      // if-unused delete.
      if (counted) {
        const live = await step(`count ${name}`, (ch) => ch.checkQueue(name));
        if (live.consumerCount === 0) {
          // Unbound and emptied by the move, it gains messages only straight from a client.
          if (live.messageCount > 0) throw arrivedDuringReplace(session.cluster, name, hold, live.messageCount, r.old?.type === "quorum", r.namedSenders);
          const unacked = await counted(name);
          if (unacked === undefined) throw uncounted(session.cluster, name, hold);
          if (unacked > 0) throw fetchedDuringReplace(session.cluster, name, hold, unacked);
        }
      }
      await step(`delete old ${name}`, async (ch) => {
        const refusal = await deleteQueueIfIdle(ch, name, r.old?.type ?? "classic", r.report);
        if (refusal) throw refusedDelete(session.cluster, name, hold, refusal, r.old?.type === "quorum", r.namedSenders);
      });
    }
  }
  await step(`declare ${name}`, (ch) => declareQueue(ch, r.after));
  if (!r.queueDone) log(`cluster ${session.cluster}: queue ${name} re-created; moving its messages back from ${hold}`);

  // 4. Routes back to the new queue, then off the holding queue. A new queue that is not peeked
  //    for copies (copiesIn) gets what the holding queue gained meanwhile counted: each may be a
  //    copy of one routed to both, which apply then says may be delivered twice.
  // A queue that existed before this run (finishing an interrupted replace) is counted, not read, too.
  const unpeeked = r.after.type !== "classic" || r.queueDone;
  const beforeSwitch = unpeeked ? await step(`count ${hold}`, (ch) => count(ch, hold)) : 0;
  // An earlier apply stopped between this step's bind and unbind (cut, killed or interrupted)
  // left the queue and the holding queue bound alike: each message published since reached both,
  // and the queue, there before this run, is not searched for copies. Every one the holding
  // queue holds may be such a copy: said, where only what this run's switch added was.
  const shared = new Set(r.holdBindings.map((b) => keyOf(toQueue(b))));
  const bothBound = r.queueDone && r.bindings.some((b) => b.destination === name && shared.has(keyOf(b)));
  await step(`bind ${name}`, async (ch) => {
    for (const b of routes) await bind(ch, b);
  });
  await step(`unbind ${hold}`, async (ch) => {
    for (const b of routes) await unbindExactly(ch, toHold(b));
  });
  await step(`settle ${hold}`, (ch) => settled(ch, hold));
  const duringSwitch = unpeeked ? Math.max(0, (await step(`count ${hold}`, (ch) => count(ch, hold))) - beforeSwitch) : 0;
  // The new queue is peeked (get, then requeue) for the copies step 4 routed to both queues and
  // for the bytes it holds. The requeue cannot make a length limit drop more than the live
  // publishes alone would: what the peek takes out comes back. A queue that existed before this
  // run (finishing an interrupted replace) is only counted: what it holds may be moved messages.
  // It is read only where a byte limit needs the bytes it holds: a finishing apply peeked the
  // 45,408 messages such a queue held, each then delivered as redelivered, to drop what it read.
  const sized = r.limits?.queue.maxLengthBytes !== undefined && r.limits.queue.overflow !== "reject-publish";
  const inNew = r.queueDone && !sized && r.after.type !== "stream" ? await countedOnly(r.after) : await copiesIn(r.after);
  const already = r.queueDone ? { ...inNew, ids: new Map<string, number>() } : inNew;

  // 5. Back into the new queue, then the holding queue goes.
  const back = await move(session, hold, name, { copies: already, limits: r.limits?.queue, giveBack: giveBackTo(holdQueue, undefined), dropsPast: dropsPast(holdQueue, r.limits?.hold, r.version), settle: holdQueue.type === "quorum", sourceLimits: r.limits?.hold, moved: (n) => r.moving?.(`moving the messages of queue ${name} back from ${hold}: ${n} moved`) }).catch((e: unknown) => {
    // The holding queue deleted under the move (by hand, or another program): what it still held
    // went with it. Said as a loss, not as "the object does not exist (yet)".
    if (e instanceof BrokerError && e.status === 404 && e.message.includes(`no queue '${hold}'`)) {
      const held = parked ? ` (this apply had moved ${plural(parked.moved, "message")} into it)` : "";
      throw new BrokerError(session.cluster, `replace queue ${name}: ${hold} was deleted during the move back, by something other than topo; the messages it still held${held} were lost with it; ${name} has its new shape and keeps what was moved back before`, {
        code: "messages_lost",
        object: `queue ${hold}`,
        hints: [`find what deleted ${hold} (a person, a cleanup script, a policy with expires): topo creates and deletes it itself during a replace; topo plan shows what is left to do`],
      });
    }
    throw e;
  });
  duplicatesDropped += back.dropped + (back.givenBack ?? 0);
  if (back.stopped) {
    throw stopped(session.cluster, name, back, `they wait in ${hold}`, [`let the workers consume from ${name} (or raise its limit), then run topo apply again: it moves the rest (the queue has its new shape, so this needs no --allow-destructive)`]);
  }
  // A client may have fetched from the holding queue with basic.get (a person looking, a script):
  // no if-empty delete counts what it holds, and the delete took it, and publishers' messages that
  // came out with the rest hid the loss from the count below. So the holding queue is counted
  // as the old one was, and left while someone holds messages of it.
  if (r.unacked && holdQueue.type === "classic") {
    const live = await step(`count ${hold}`, (ch) => ch.checkQueue(hold));
    const unacked = live.consumerCount === 0 ? await r.unacked(hold) : 0;
    if (unacked === undefined || unacked > 0) throw heldInHold(session.cluster, name, hold, unacked);
  }
  await step(`delete ${hold}`, async (ch) => {
    const refusal = await deleteQueueIfIdle(ch, hold, holdQueue.type, r.report);
    if (refusal) throw new Error(`${hold} was not deleted: ${refusal}`);
  });
  // Every message moved into the holding queue comes back out (moved, or dropped as a copy),
  // save one that expired there. Fewer: the broker dropped them there. A policy put on the
  // holding queue during the replace (max-length 100) left 100 of 40,000, and apply said the
  // broker matched the file. (What publishers sent meanwhile also comes out, so this is a floor.)
  // Only a message whose own expiration has passed by now, and that did not come back out, can
  // have expired there: counting every message with an expiration excused them all, and a
  // policy's message-ttl 1 put on the holding queue during the replace dropped messages that
  // expire in an hour while the replace returned as done (measured on 3.10.8); counting those
  // that came back out too excused 500 messages without an expiration, which a policy's
  // max-length put on the holding queue dropped, as "expired" (measured on 4.0.5 and 4.3.6).
  const out = back.moved + back.dropped;
  const at = Date.now();
  const expirable = parked ? expiredThere(parked, back.expiringOut ?? new Map(), at) : 0;
  /** Gone from the holding queue, and each maybe by its own expiration: said, not taken for a loss. */
  let expired = 0;
  if (parked && out < parked.moved) expired = Math.min(expirable, parked.moved - out);
  if (parked && out < parked.moved - expirable) {
    const gone = parked.moved - expirable - out;
    throw new BrokerError(
      session.cluster,
      `replace queue ${name}: the queue has its new shape, but ${gone} of the ${parked.moved} messages topo moved into ${hold} were gone when it moved them back (${out} came out): the broker dropped them there, which a policy or operator policy that came during the replace does (a length limit, a message TTL without a dead-letter exchange)`,
      {
        code: "messages_lost",
        object: `queue ${name}`,
        hints: [`rabbitmqctl list_policies and list_operator_policies (-p the vhost) show what applied; a replace needs its holding queue free of limits while it runs (plan refuses one that a policy limits then)`],
      },
    );
  }
  const now = r.after.type === "stream" ? undefined : await step(`count ${name}`, (ch) => ch.checkQueue(name));
  const unsearched = r.queueDone
    ? `${bothBound ? `the apply that left this replace half-way stopped with both ${name} and ${hold} bound, so what was published since reached both, and ` : ""}a queue that was there before this run is not searched for copies (what it holds may be messages moved before)`
    : `a ${r.after.type} queue cannot be searched for such copies${r.after.type === "quorum" ? " without spending a delivery" : ""}`;
  const repeat = duringSwitch + (bothBound ? beforeSwitch : 0);
  return { movedBack: back.moved, duplicatesDropped, ...(expired ? { expired } : {}), ...(unsearchedOut ? { mayRepeatOut: unsearchedOut } : {}), holds: now?.messageCount, ...(now?.consumerCount ? { consumers: now.consumerCount } : {}), ...(repeat ? { mayRepeat: { count: repeat, why: unsearched } } : {}) };
}

/**
 * The question whether a cluster's AMQP user may publish through the default exchange, asked once
 * for all the replaces of an apply that want it: each ask opens a connection, and the answer does
 * not change from one replace to the next (nor does a broker's alarm, which each ask waited out).
 */
export function publishByDefaultQuestion(open: () => Promise<AmqpSession>): () => Promise<void> {
  let asked: Promise<void> | undefined;
  // A failed ask is not kept: one whose connection was lost (a broker restart) answered nothing,
  // and kept, it failed every later replace and every reconnect's retry with that lost connection.
  // A refusal asked again is refused again, at the cost of one connection.
  return () =>
    (asked ??= mayPublishByDefault(open).catch((e: unknown) => {
      asked = undefined;
      throw e;
    }));
}

/**
 * Does the broker let this user publish through the default exchange? Asked with an empty message
 * to routing key "", which names no queue (a queue declared with the empty name gets one the
 * broker makes), so the broker drops it: a 403 closes the channel, anything else lets it through.
 * On a connection of its own (`open`), closed after. Only a refusal is an answer: a connection
 * that cannot be opened, or a publish the broker blocks (an alarm: given up after the grace)
 * leaves it unknown, and the replace goes on to meet what it meets, as it did before it asked.
 */
async function mayPublishByDefault(open: () => Promise<AmqpSession>): Promise<void> {
  let probe: AmqpSession;
  try {
    probe = await open();
  } catch {
    return;
  }
  try {
    const ch = await probe.confirmChannel();
    let refused: Error | undefined;
    ch.on("error", (e: Error) => (refused ??= e));
    const confirmed = new Promise<void>((resolve, reject) => {
      ch.publish("", "", Buffer.alloc(0), { mandatory: false }, (err: Error | null) => (err ? reject(err) : resolve()));
    });
    await probe.unlessBlocked(confirmed).catch(async (e: unknown) => {
      // Blocked (an alarm): the ask stays unanswered, and the move meets the alarm and says so.
      if (e instanceof PublishBlocked) return;
      // The channel's close, which carries the broker's reason, may come after the nack.
      if (!refused) await new Promise((r) => setTimeout(r, 50));
      throw refused ?? e;
    });
    if (refused) throw refused;
  } finally {
    // Not the channel's close, nor a connection close waited for: once it has published, a broker
    // under an alarm reads nothing more from this connection (its close-ok never came, and the
    // replace waited for ever: the disk-alarm test of rabbitmq4.test.ts).
    await probe.closeWithin(PROBE_CLOSE_MS).catch(() => undefined);
  }
}

/** How long the ask's connection waits for its close to be answered before its socket is dropped. */
const PROBE_CLOSE_MS = 2_000;

function stopped(cluster: string, queue: string, m: MoveResult, where: string, hints: string[] = []): BrokerError {
  const n = m.left ?? 0;
  const stuck = m.tooLarge
    ? [m.tooLarge]
    : m.unmovable
    ? [
        `topo cannot move that message, so every apply stops at it: let a worker consume it (or take it off the queue yourself), then run topo apply again; or replace with --allow-data-loss, which deletes the queue with what it holds`,
      ]
    : m.unsized
    ? [
        ...hints,
        `while publishers send to it, topo cannot count its bytes and the move stops again: pause them while topo apply runs again (a queue with x-overflow reject-publish has no such stop: the broker refuses what does not fit, and topo keeps it)`,
      ]
    : hints;
  // A target with x-overflow reject-publish-dlx dead-letters each message it refuses as well as
  // refusing it: topo gives it back all the same (a dead-letter exchange may route it nowhere).
  const copied = m.deadLettered
    ? `none was lost, but the ${plural(m.deadLettered, "message")} ${queue} refused ${m.deadLettered === 1 ? "was" : "were"} also dead-lettered by it (x-overflow reject-publish-dlx), so ${m.deadLettered === 1 ? "it is" : "they are"} both where its dead-letter exchange routes and here`
    : "none was lost or copied";
  const c = m.changedBack?.length ?? 0;
  const changed = c
    ? `; but ${m.changedBack?.join(", ")} went back changed, as topo's AMQP client reads ${c === 1 ? "it" : "them"} (published anew): a requeue would have passed the queue's delivery limit, and RabbitMQ would have dropped ${c === 1 ? "it" : "them"}`
    : "";
  return new BrokerError(cluster, `replace queue ${queue}: ${m.stopped}; ${n} message${n === 1 ? "" : "s"} could not be moved and ${where}; ${copied}${changed}`, { hints: stuck });
}

/** The broker refused the if-empty, if-unused delete of the old queue: say why and what to do. */
function refusedDelete(cluster: string, queue: string, hold: string, reply: string, quorum = false, senders: readonly string[] = []): BrokerError {
  const inUse = /in use/.test(reply);
  // A message published while the bindings switched reached both queues; the move drops the old
  // queue's copy only where it finds it, so one such a consumer took first is delivered again
  // from the holding queue (measured: 1 or 3 of 600 published during a replace, twice).
  const cause = inUse
    ? `a consumer attached to it during the replace; it may have taken a message published while the bindings switched, whose copy waits in ${hold} and will be delivered again (at least once)`
    : quorum
      ? quorumCopies(hold)
      : `messages arrived in it during the replace (${senders.length ? `dead-lettered into it by name by queue${senders.length === 1 ? "" : "s"} ${senders.map(shown).join(", ")}, or ` : ""}published straight to its name)`;
  return new BrokerError(cluster, `replace queue ${queue}: the broker refused to delete the old queue (${reply}): ${cause}; no message was lost: the ones moved so far wait in ${hold}`, {
    status: 406,
    hints: [
      inUse
        ? `stop the workers that consume from ${queue}, then run topo apply again: it finishes the replace`
        : quorum
          ? `run topo apply again: it moves them too and finishes the replace, and those that are copies are then delivered twice (at least once); or take them off ${queue} first, once you have checked they are in ${hold} (their message ids say so)`
          : "run topo apply again: it moves them too and finishes the replace",
    ],
  });
}

/**
 * Messages reached the old queue after the move emptied it, though it has no binding left: a
 * client publishing straight to its name, one giving back messages it had fetched, or a queue
 * that dead-letters into it by name (`senders`, as plan found them).
 */
function arrivedDuringReplace(cluster: string, queue: string, hold: string, n: number, quorum = false, senders: readonly string[] = []): BrokerError {
  const named = senders.length ? `queue${senders.length === 1 ? "" : "s"} ${senders.map(shown).join(", ")}, which dead-letter${senders.length === 1 ? "s" : ""} into it by name, or ` : "";
  const how = quorum
    ? `${quorumCopies(hold)}, or ${named}a client published straight to its name through the default exchange`
    : `${named}a client publishing straight to its name through the default exchange, or giving back messages it had fetched`;
  const stop = senders.length
    ? `let ${senders.map(shown).join(", ")} empty and stop what makes ${senders.length === 1 ? "it" : "them"} dead-letter (a message TTL, workers that reject), and stop what publishes straight to ${queue}, if anything does`
    : `stop what publishes straight to ${queue} (publish through its exchange instead)`;
  return new BrokerError(
    cluster,
    `replace queue ${queue}: ${n} message${n === 1 ? "" : "s"} reached the old queue during the replace, though it has no binding left (${how}), so it was not deleted; no message was lost: the ones moved so far wait in ${hold}`,
    {
      status: 406,
      hints: [
        quorum
          ? `run topo apply again: it moves them too and finishes the replace, and those that are copies are then delivered twice (at least once); or take them off ${queue} first, once you have checked they are in ${hold} (their message ids say so), and ${senders.length ? stop : `stop what publishes straight to ${queue}, if anything does`}`
          : `${stop}, then run topo apply again: it moves the rest and finishes the replace`,
      ],
    },
  );
}

/** Why a quorum queue the move emptied holds messages again (QUORUM_SETTLE_MS). */
function quorumCopies(hold: string): string {
  return `a quorum queue gives back the messages whose acknowledgements it had not applied when topo's channel closed; topo dropped those it could tell by their id for copies of messages already moved to ${hold}, and these may still be copies (one without an id cannot be told)`;
}

/** The broker listed the old queue without a count once its messages were moved out: what a client holds is unknown. */
function uncounted(cluster: string, queue: string, hold: string): BrokerError {
  return new BrokerError(
    cluster,
    `replace queue ${queue}: its messages were moved out, but the broker listed the queue without a count of what it holds (its process did not answer), so topo cannot tell whether a client that is no consumer (${FETCHED_WITHOUT_CONSUMER}) holds messages of it unacknowledged; deleting the queue would lose them, so it was left; no message was lost: the ones moved so far wait in ${hold}`,
    { hints: ["run topo apply again once rabbitmqctl list_queues name messages counts the queue; it finishes the replace"] },
  );
}

/** Messages of the old queue that a client fetched during the replace and has not acknowledged. */
function fetchedDuringReplace(cluster: string, queue: string, hold: string, n: number): BrokerError {
  const them = n === 1 ? "it" : "them";
  return new BrokerError(
    cluster,
    `replace queue ${queue}: the broker counts ${n} message${n === 1 ? "" : "s"} of the old queue fetched and not acknowledged by a client that is no consumer (${FETCHED_WITHOUT_CONSUMER}); deleting the queue would lose ${them}, so it was left; no message was lost: the ones moved so far wait in ${hold}`,
    { hints: [`${letGoOf(them)} (then ${n === 1 ? "it is" : "they are"} back in ${queue}), then run topo apply again: it finishes the replace`] },
  );
}

/** Messages of the holding queue that a client fetched and holds unacknowledged (undefined: the broker gave no count) once the rest were moved back. */
function heldInHold(cluster: string, queue: string, hold: string, n: number | undefined): BrokerError {
  const what =
    n === undefined
      ? `the broker listed ${hold} without a count of what it holds (its process did not answer), so topo cannot tell whether a client that is no consumer (${FETCHED_WITHOUT_CONSUMER}) holds messages of it unacknowledged`
      : `the broker counts ${plural(n, "message")} of ${hold} fetched and not acknowledged by a client that is no consumer (${FETCHED_WITHOUT_CONSUMER})`;
  return new BrokerError(cluster, `replace queue ${queue}: the queue has its new shape and the rest were moved back into it, but ${what}; deleting ${hold} would lose them, so it was left; no message was lost`, {
    object: `queue ${hold}`,
    hints: [`${letGoOf("them")} (then they are back in ${hold}), then run topo apply again: it moves them into ${queue} and deletes ${hold}`],
  });
}

function dedupeBindings(bs: Binding[]): Binding[] {
  const m = new Map<string, Binding>();
  for (const b of bs) m.set(keyOf(b), b);
  return [...m.values()];
}

/**
 * Identity of a message for de-duplication: only messages that carry an id (message-id, or
 * Celery's correlation-id), and then all of what one publish routed to two queues gives both
 * copies alike: the exchange and routing key it was published with, every basic property and the
 * body. Two messages without an id are never taken for copies of each other, nor two that differ
 * in anything else: the id, type, timestamp, content type, headers and body alone took two
 * publishes that differ only in reply-to, correlation-id, expiration or priority for one, and
 * dropped one (measured: one message lost at each switch, and apply said the replace was done).
 * The delivery counts a quorum queue adds as it delivers are left out: a message it gives back
 * carries one more in x-delivery-count (3.10, 4.0) or x-acquired-count (4.3) than when it was
 * fetched, and is the same message.
 */
export function identity(m: Pick<GetMessage, "fields" | "properties" | "content">): string | undefined {
  const p = m.properties;
  const id = p.messageId ?? p.correlationId;
  if (id === undefined || id === null || id === "") return undefined;
  return digestOf([m.fields.exchange, m.fields.routingKey, propertiesOf(p)], m.content);
}

/**
 * A message's properties and body, whatever queue it is fetched from (no exchange or routing key,
 * which a move changes): what tells a message moved into the holding queue when it comes back out.
 */
function contentKey(m: Pick<GetMessage, "properties" | "content">): string {
  return digestOf([propertiesOf(m.properties)], m.content);
}

function digestOf(head: unknown[], content: Buffer): string {
  const h = createHash("sha256");
  h.update(JSON.stringify(head));
  h.update("\0");
  h.update(content);
  return h.digest("hex");
}

/** The properties a move keeps, in one order (the broker's delivery counts left out). */
function propertiesOf(p: GetMessage["properties"]): unknown[] {
  return [
    p.contentType,
    p.contentEncoding,
    withoutDeliveryCounts(p.headers),
    p.deliveryMode,
    p.priority,
    p.correlationId,
    p.replyTo,
    p.expiration,
    p.messageId,
    p.timestamp,
    p.type,
    p.userId,
    p.appId,
    p.clusterId,
  ];
}

/**
 * Why topo cannot publish this message unchanged, or undefined. amqplib reads a header's 64-bit
 * integer as a JavaScript number (one beyond 2^53 rounded: three messages with distinct event ids
 * came back with one) and a string's bytes as UTF-8 (bytes that are not UTF-8 text, as .NET and
 * py-amqp send a byte array, came back as U+FFFD): moved, the message would be another. Such a
 * message is not moved; the replace stops at it, losing nothing. What amqplib's reading hides
 * entirely (a double 3.0 read as 3, an int read as the number it holds) is not seen here:
 * docs/safety.md says so.
 */
export function unfaithful(m: { properties: { headers?: Record<string, unknown>; timestamp?: unknown } & Partial<Record<(typeof TEXT_PROPERTIES)[number], unknown>> }): string | undefined {
  // The properties that are short strings: amqplib reads their bytes as UTF-8 alike (a message_id
  // of Latin-1 bytes came back with U+FFFD, and moved, the message was another: measured).
  for (const p of TEXT_PROPERTIES) {
    const v = m.properties[p];
    if (typeof v === "string" && v.includes("\uFFFD")) return `its ${PROPERTY_NAMES[p]} holds bytes that are not UTF-8 text, which topo's AMQP client reads as text and would write back changed`;
  }
  // The timestamp property is a 64-bit integer, and amqplib reads it as a number too: three
  // messages stamped 1700000000123456781 to ...783 (nanoseconds) came back all ...768, and apply
  // said they were moved.
  const timestamp = m.properties.timestamp;
  if (typeof timestamp === "number" && !Number.isSafeInteger(timestamp)) {
    return `its timestamp property is beyond 2^53 (${timestamp}): topo's AMQP client reads it rounded, so it cannot write it back unchanged`;
  }
  // AMQP 0-9-1 deprecates cluster_id, and amqplib publishes every message without one: moved, the
  // message lost it, and apply said the broker matched the file.
  const clusterId = m.properties.clusterId;
  if (typeof clusterId === "string" && clusterId !== "") return `it has a cluster_id (a property AMQP 0-9-1 deprecates), which topo's AMQP client cannot publish: moved, the message would lose it`;
  const find = (v: unknown, at: string): string | undefined => {
    if (typeof v === "number" && Number.isInteger(v) && !Number.isSafeInteger(v) && Math.abs(v) <= 2 ** 63) {
      return `its header ${at} holds a whole number beyond 2^53 (${v}): sent as a 64-bit integer, topo's AMQP client read it rounded, and it cannot tell one from a double of that value, so it cannot write it back surely unchanged`;
    }
    if (typeof v === "string" && v.includes("\uFFFD")) return `its header ${at} holds bytes that are not UTF-8 text, which topo's AMQP client reads as text and would write back changed`;
    if (Array.isArray(v)) return v.map((x, i) => find(x, `${at}[${i}]`)).find((r) => r !== undefined);
    if (v !== null && typeof v === "object" && !Buffer.isBuffer(v) && !(v instanceof Date)) {
      return Object.entries(v).map(([k, x]) => find(x, `${at}.${k}`)).find((r) => r !== undefined);
    }
    return undefined;
  };
  const h = m.properties.headers;
  if (!h) return undefined;
  // A table's keys are read as UTF-8 too.
  const key = (v: unknown, at: string): string | undefined => {
    if (Array.isArray(v)) return v.map((x, i) => key(x, `${at}[${i}]`)).find((r) => r !== undefined);
    if (v === null || typeof v !== "object" || Buffer.isBuffer(v) || v instanceof Date) return undefined;
    for (const [k, x] of Object.entries(v)) {
      if (k.includes("\uFFFD")) return `a header key${at ? ` in ${at}` : ""} holds bytes that are not UTF-8 text, which topo's AMQP client reads as text and would write back changed`;
      const inner = key(x, at ? `${at}.${k}` : k);
      if (inner) return inner;
    }
    return undefined;
  };
  return key(h, "") ?? Object.entries(h).map(([k, v]) => find(v, k)).find((r) => r !== undefined);
}

/** The basic properties that are AMQP short strings, as amqplib names them. */
const TEXT_PROPERTIES = ["messageId", "correlationId", "type", "appId", "replyTo", "contentType", "contentEncoding", "userId", "expiration", "clusterId"] as const;
/** Each as AMQP names it, for messages. */
const PROPERTY_NAMES: Record<(typeof TEXT_PROPERTIES)[number], string> = {
  messageId: "message_id",
  correlationId: "correlation_id",
  type: "type",
  appId: "app_id",
  replyTo: "reply_to",
  contentType: "content_type",
  contentEncoding: "content_encoding",
  userId: "user_id",
  expiration: "expiration",
  clusterId: "cluster_id",
};

/** A moved message as published: `user` is topo's AMQP user, whose user-id the broker lets through. */
function publishOptions(m: GetMessage, user: string): Record<string, unknown> {
  const p = m.properties;
  return {
    contentType: p.contentType,
    contentEncoding: p.contentEncoding,
    headers: movedHeaders(p.headers),
    deliveryMode: p.deliveryMode,
    priority: p.priority,
    correlationId: p.correlationId,
    replyTo: p.replyTo,
    expiration: p.expiration,
    messageId: p.messageId,
    timestamp: p.timestamp,
    type: p.type,
    appId: p.appId,
    // user-id must equal the publishing user or the broker refuses the publish: kept when it is
    // topo's own user, and otherwise not carried over (docs/safety.md).
    ...(p.userId !== undefined && p.userId === user ? { userId: p.userId } : {}),
    mandatory: true,
  };
}

/**
 * The headers a message is moved with: its own, without what would route it again or speak of its
 * deliveries from the queue it leaves.
 * - Its sender-selected routing keys: RabbitMQ routes a message to the keys in its CC header as
 *   well as its routing key, and keeps CC in the message: moved through the default exchange,
 *   where a key is a queue's name, a message published with `CC: ["audit"]` put a copy into the
 *   vhost's queue `audit` at each move, though its own exchange had routed it to this queue alone
 *   (measured on 3.10). Its routing was done when it was first published.
 * - The delivery counts a quorum queue adds as it delivers (x-delivery-count, and 4.3's
 *   x-acquired-count): the queue a message is moved into counts its deliveries afresh, and its
 *   x-delivery-limit goes by its own count (measured on 4.0.5: a message published with
 *   x-delivery-count 5 was dropped at the limit by the queue's count; 4.3.6 kept the published 5
 *   beside its own count). Carried over, a consumer read a count the broker does not go by.
 */
function movedHeaders(headers: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (!headers) return headers;
  const kept = Object.entries(headers).filter(([k]) => !MOVE_DROPS.includes(k));
  return Object.fromEntries(kept.map(([k, x]) => [k, k === "x-death" ? writableXDeath(x) : writable(x)]));
}

/**
 * A header value as topo writes it back, in types every client reads as the sender meant.
 * amqplib reads every integer as a plain number and writes it back in the smallest width that
 * holds it: 600 as a 16-bit `s`, -3 as an 8-bit `b`. RabbitMQ reads those as signed, but py-amqp
 * (Celery's client) reads `b` as unsigned and `s` as a short string: a Celery task moved with its
 * `timelimit: [600, 300]` made its worker fail on the table (`FrameSyntaxError: Unknown value in
 * table`) and restart until it gave up, with the task still first in the queue. So an integer
 * goes back as a 32-bit `I` when it fits (what py-amqp, the Java and .NET clients and amqplib all
 * write and read as a signed int), else as a 64-bit `l`; x-death's `count`, which RabbitMQ writes
 * as `l`, stays `l`. A number beyond a 64-bit integer's range (a double 1e300, or -1e300, which
 * amqplib would try to write as a 64-bit integer and throw at) goes back as the double it was, as
 * does a number that is not whole. (An integer between 2^53 and 2^63 is read rounded, and never
 * moved: unfaithful.) Everything else is returned as it is.
 */
function writable(v: unknown, long = false): unknown {
  if (typeof v === "number") {
    if (v < -0x8000000000000000 || v >= 0x8000000000000000 || Number.isNaN(v)) return { "!": "double", value: v };
    if (!Number.isInteger(v)) return v;
    return { "!": !long && v >= -0x80000000 && v < 0x80000000 ? "int" : "long", value: v };
  }
  if (Array.isArray(v)) return v.map((x) => writable(x));
  if (v !== null && typeof v === "object" && !Buffer.isBuffer(v) && !(v instanceof Date) && !("!" in v)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, writable(x)]));
  }
  return v;
}

/** x-death as RabbitMQ writes it: a list of tables whose `count` is a 64-bit `l`. */
function writableXDeath(v: unknown): unknown {
  if (!Array.isArray(v)) return writable(v);
  return v.map((entry) =>
    entry !== null && typeof entry === "object" && !Buffer.isBuffer(entry) && !Array.isArray(entry) && !("!" in entry)
      ? Object.fromEntries(Object.entries(entry).map(([k, x]) => [k, writable(x, k === "count")]))
      : writable(entry),
  );
}

/** The headers a quorum queue adds as it delivers. */
const DELIVERY_COUNTS = ["x-delivery-count", "x-acquired-count"];
const MOVE_DROPS = ["CC", "BCC", ...DELIVERY_COUNTS];

/** A message's headers without the delivery counts a quorum queue adds (identity()). */
function withoutDeliveryCounts(headers: Record<string, unknown> | undefined): Record<string, unknown> {
  if (!headers || !DELIVERY_COUNTS.some((k) => k in headers)) return headers ?? {};
  return Object.fromEntries(Object.entries(headers).filter(([k]) => !DELIVERY_COUNTS.includes(k)));
}

/** What a queue holds that a move into it may find copies of. */
interface Copies {
  /** Ids of its messages, each with how many carry it. */
  ids: Map<string, number>;
  count: number;
  bytes: number;
  /** false where the messages were only counted (a quorum queue is not peeked): `bytes` is not theirs. */
  sized?: boolean;
}

const NO_COPIES: Copies = { ids: new Map(), count: 0, bytes: 0 };

/**
 * Ids and body bytes of the messages a queue holds right now, leaving them where they are (given
 * back, each is delivered with redelivered true, though no consumer had it: docs/safety.md).
 */
async function peek(session: AmqpSession, queue: string): Promise<Copies> {
  const ids = new Map<string, number>();
  let bytes = 0;
  let count = 0;
  let ch: Channel | undefined;
  try {
    ch = await session.channel();
    // How many to look at comes from the first basic.get-ok, not from a passive declare: a
    // classic queue answers a passive declare ahead of the deliveries waiting in its mailbox
    // (stat has priority 7, basic.get 0), so under a live publisher the declare's count can miss
    // the very copies routed to both queues during the switch. basic.get is answered in mailbox
    // order, after every delivery routed before the unbind. Publishes after that only follow.
    let total: number | undefined;
    while (total === undefined || count < total) {
      session.rpcs++;
      const m = await session.orLost(ch.get(queue, { noAck: false }));
      if (!m) break;
      total ??= m.fields.messageCount + 1;
      count++;
      bytes += m.content.length;
      const k = identity(m);
      if (k) ids.set(k, (ids.get(k) ?? 0) + 1);
    }
    ch.nackAll(true);
    return { ids, count, bytes };
  } catch (e) {
    throw amqpError(session.cluster, `replace queue ${queue}: peek`, e as Error, session.lost);
  } finally {
    if (ch) await closeChannel(ch);
  }
}

/**
 * How a move gives back to its source what it fetched and could not move (the target refused it,
 * or was full). A requeue counts as a delivery of a quorum queue's message (measured on 3.10.8 and
 * 4.0.5; 4.3.6 counts a closed channel only): a message already at its x-delivery-limit was
 * dropped, or dead-lettered, and one never delivered to a worker lost one of its deliveries. So
 * out of a quorum queue the message is published back to it (confirmed, then the fetched one
 * acknowledged): a new message at the queue's end, counted afresh. Not where the queue has a
 * length limit: until the fetched one is acknowledged both count, and drop-head would drop
 * another message to make room.
 */
/**
 * The delivery count past which a requeue into `source` drops a message: a quorum queue counts a
 * requeue as a delivery before RabbitMQ 4.3 (4.3 counts only a failed one), and drops a message
 * returned more often than its delivery limit (20 on RabbitMQ 4 where none is set). Undefined
 * where a requeue drops nothing, or the version is unknown.
 */
function dropsPast(source: Queue | undefined, limits: QueueLimits | undefined, version: string | undefined): number | undefined {
  if (source?.type !== "quorum" || version === undefined || atLeast(version, 4, 3)) return undefined;
  const set = limits?.deliveryLimit?.value;
  if (set !== undefined) return set < 0 ? undefined : set;
  return defaultDeliveryLimit(version);
}

function giveBackTo(source: Queue | undefined, limits: QueueLimits | undefined): "requeue" | "republish" {
  if (source?.type !== "quorum") return "requeue";
  return limits === undefined || limits.maxLength || limits.maxLengthBytes ? "requeue" : "republish";
}

interface MoveOptions {
  /** The source is a quorum queue: the channel stays open QUORUM_SETTLE_MS after its last acknowledgement. */
  settle?: boolean;
  /**
   * The source's limits, where known: its delivery limit decides whether the pass after a move out
   * of a quorum queue may requeue a message (dropGivenBack).
   */
  sourceLimits?: QueueLimits;
  /**
   * What the target held right after it gained bindings the source lost. The copies of a message
   * routed to both queues are the last the source got and among the first the target got, so a
   * message among the source's last `copies.count` whose identity the target holds is taken for a
   * copy and dropped, but only when the target holds that identity once and the whole source
   * holds it once: a message sent more than once with one id and body (a fixed Celery task_id)
   * also reaches the target after the unbind, and its twins prove nothing then; all of them are
   * kept (at-least-once). Its count and bytes are what the target holds as the move starts.
   */
  copies: Copies;
  /**
   * The source hands out its messages by priority (x-max-priority), not in the order they came:
   * its last messages by basic.get are no sign of the last it got, so none is taken for a copy
   * (a message published 5,000 messages before the switch was dropped as one).
   */
  byPriority?: boolean;
  /** The target's limits: the move never fills it past them. */
  limits?: QueueLimits;
  /** How what could not be moved goes back to the source (giveBackTo). */
  giveBack?: "requeue" | "republish";
  /**
   * The source drops a message given back by requeue whose delivery count passes this (dropsPast):
   * in republish mode, one topo cannot publish unchanged goes back as its client reads it instead.
   */
  dropsPast?: number;
  /**
   * A fanout exchange bound to the target alone, to publish through with each message's own
   * routing key; without it, the default exchange, by the target's name.
   */
  via?: string;
  /**
   * The source has no binding left: it takes no more than it held at the first fetch, since
   * anything later came straight from a client, which could outpace the move for ever.
   */
  unbound?: boolean;
  /** Called with the count moved so far, after each batch the target confirmed. */
  moved?: (moved: number) => void;
}

interface MoveResult {
  moved: number;
  dropped: number;
  /**
   * Of `moved`, each one that carries an expiration of its own: the time (Date.now()) from which
   * it may have expired in the target, at the earliest (its batch's start plus its expiration).
   */
  expiring?: number[];
  /** contentKey of each of `expiring`, in its order. */
  expiringKeys?: string[];
  /**
   * Of the messages that left the source for good (moved, or dropped as copies), those with an
   * expiration of their own, by contentKey: how many of each. A message the holding queue gave
   * back out did not expire there.
   */
  expiringOut?: Map<string, number>;
  /** Why the move stopped before the source was empty (the rest is still in the source). */
  stopped?: string;
  /** The broker's count of the source when the move stopped. */
  left?: number;
  /** A message the move cannot carry stopped it: another apply will not get past it. */
  unmovable?: boolean;
  /** That message is larger than the target's x-max-length-bytes: a higher limit gets past it. */
  tooLarge?: string;
  /** An unbound source held more than at the first fetch (MoveOptions.unbound): how many more. */
  arrived?: number;
  /** Refused by a target whose overflow is reject-publish-dlx, which dead-letters what it refuses: also given back, so maybe twice. */
  deadLettered?: number;
  /** Messages topo cannot size stopped a move into a queue whose byte limit drops or dead-letters. */
  unsized?: boolean;
  /** Of the messages a quorum source gave back after the move (QUORUM_SETTLE_MS), those dropped as copies (dropGivenBack). */
  givenBack?: number;
  /**
   * Messages topo cannot publish unchanged that it gave back to the source as its client reads
   * them (published anew), since a requeue would have passed their delivery limit: "message
   * (message_id X)" each.
   */
  changedBack?: string[];
}

/** " (message_id X)", or "" for a message without one. */
function describeMessage(m: GetMessage): string {
  const id = m.properties.messageId ?? m.properties.correlationId;
  return id === undefined || id === null || id === "" ? "" : ` (message_id ${shown(String(id))})`;
}

/** "unwritable": amqplib could not encode the message (it threw, and sent nothing). */
type Confirm = "ok" | "nacked" | "lost" | "unwritable";

/**
 * Move every message from one queue to another. Each message is published with confirms (and
 * mandatory, so a missing target is a return, not a silent drop) and acknowledged at the source
 * only once the target confirmed it; one the target refused or returned goes back to the source.
 * A connection lost between a publish and its confirm can leave that message in both queues:
 * at-least-once, never at-most-once.
 */
async function move(session: AmqpSession, from: string, to: string, o: MoveOptions): Promise<MoveResult> {
  if (!o.settle) return moveMessages(session, from, to, o);
  const acked = new Map<string, number>();
  const r = await moveMessages(session, from, to, o, acked);
  // A move that stopped leaves messages in the source that are no copies, and the pass would
  // requeue the first of them (a delivery counted): what it says of copies stays as it is.
  if (r.stopped || r.arrived || acked.size === 0 || session.lost) return r;
  // The pass requeues the first message that is no copy, which spends one of its deliveries (3.10,
  // 4.0): under a delivery limit below 1, or one topo does not know, the broker would drop it (a
  // client's publish straight to the queue's name was lost that way, and apply said the replace
  // was done). There the copies are left to the caller, which says them.
  const limit = o.sourceLimits?.deliveryLimit;
  if (o.sourceLimits === undefined || (limit !== undefined && limit.value < 1)) return r;
  const givenBack = await dropGivenBack(session, from, acked);
  // Not among `dropped`: each was moved, and is counted there.
  return givenBack ? { ...r, givenBack } : r;
}

/**
 * @param acked Out of a quorum queue (MoveOptions.settle): the identity of each message
 *   acknowledged once a copy of it was confirmed elsewhere (moved, or published back to the
 *   source), with how many. If the queue gives it back (QUORUM_SETTLE_MS), it is a copy.
 */
async function moveMessages(session: AmqpSession, from: string, to: string, o: MoveOptions, acked?: Map<string, number>): Promise<MoveResult> {
  const copied = (m: GetMessage): void => {
    const k = acked && identity(m);
    if (k) acked.set(k, (acked.get(k) ?? 0) + 1);
  };
  let moved = 0;
  let dropped = 0;
  /** Of `moved`, when each with an expiration of its own may leave the target by itself (MoveResult.expiring). */
  const expiring: number[] = [];
  const expiringKeys: string[] = [];
  const expiringOut = new Map<string, number>();
  /** `m` left the source for good: counted in expiringOut where it carries an expiration. */
  const out = (m: GetMessage): void => {
    const e = m.properties.expiration;
    if (e === undefined || e === null) return;
    const k = contentKey(m);
    expiringOut.set(k, (expiringOut.get(k) ?? 0) + 1);
  };
  let bytesInTarget = o.copies.bytes;
  /** Identities the target holds once: only a message with one of them can be a copy. */
  const once = new Set(o.byPriority ? [] : [...o.copies.ids].filter(([, n]) => n === 1).map(([k]) => k));
  /** How many messages of the source carry each identity in `once`, so far. */
  const inSource = new Map<string, number>();
  /**
   * Messages taken for copies, held unacknowledged until the source is empty: a later message of
   * the source with the same identity makes them no copy, and they are moved after all.
   */
  const candidates = new Map<string, GetMessage>();
  /** What the source held at the first fetch, and how many fetches since. */
  let atFirst: number | undefined;
  let fetched = 0;
  /**
   * A quorum source served a message of priority above 4: RabbitMQ 4 serves those ahead of the
   * rest whatever the queue's arguments, so the last messages out are no sign of the last in (a
   * task published long before the switch came out last and was dropped as the copy of its twin).
   * What was held back as a copy is then moved after all (at least once).
   */
  let outOfOrder = false;
  /** The last batch: the messages held back, moved because the order of the source proved nothing. */
  let flushing = false;
  /** An unbound source gave all it held at the first fetch: what is left came since. */
  const tookAll = () => o.unbound === true && atFirst !== undefined && fetched >= atFirst;
  let get: Channel | undefined;
  let pub: ConfirmChannel | undefined;
  let pubClosed: Error | undefined;
  let inflight: { m: GetMessage; returned: boolean }[] = [];
  /**
   * Messages of the batch under way: published to the target, not yet acknowledged at the source
   * with the round trip that shows the broker took the acknowledgements. A connection lost then
   * gives them back to the source, with their copies in the target (or some of them): at least
   * once, and said (a broker restart mid-move left 255 twice, and the apply that reconnected and
   * finished said the broker matched the file).
   */
  let unsettled = 0;
  /** The first message of a batch amqplib could not encode, and why. */
  let unwritable: { m: GetMessage; reason: string } | undefined;
  /** Back to the source, as o.giveBack says: published anew where a requeue would count a delivery. */
  /** Messages given back changed, since a requeue would have dropped them (MoveResult.changedBack). */
  const changedBack: string[] = [];
  /** A requeue of `m` would pass the source's delivery limit, and the broker would drop it. */
  const requeueDrops = (m: GetMessage): boolean => {
    if (o.dropsPast === undefined) return false;
    const count = m.properties.headers?.["x-delivery-count"];
    return (typeof count === "number" ? count : 0) + 1 > o.dropsPast;
  };
  const giveBack = async (back: GetMessage[]): Promise<void> => {
    if (o.giveBack !== "republish" || back.length === 0) {
      for (const m of back) get?.nack(m, false, true);
      return;
    }
    const confirms = await session.unlessBlocked(
      Promise.all(
        back.map(
          (m) =>
            new Promise<boolean>((resolve) => {
              // Not mandatory: the source exists (its messages are in hand), and a return would be
              // taken for one of the batch's. A channel already closed takes nothing.
              // One topo cannot publish unchanged goes back by requeue, as it came, unless the
              // requeue would drop it: measured on 4.0.5, a message whose timestamp topo reads
              // rounded, in a queue of x-delivery-limit 2, was dropped by the third apply that
              // stopped at it, which said the old queue kept it. Changed beats gone.
              if (unfaithful(m) !== undefined && !requeueDrops(m)) return resolve(false);
              try {
                (pub as ConfirmChannel).publish("", from, m.content, { ...publishOptions(m, session.user), mandatory: false }, (err: Error | null) => resolve(!err));
              } catch {
                resolve(false);
              }
            }),
        ),
      ),
    );
    session.rpcs++;
    // Only a copy the source confirmed replaces the fetched message; another goes back as it came.
    back.forEach((m, i) => {
      if (!confirms[i]) return get?.nack(m, false, true);
      get?.ack(m);
      copied(m);
      if (unfaithful(m) !== undefined) changedBack.push(`message${describeMessage(m)}`);
    });
  };
  /**
   * The source is empty: each message still held back is the only one of its identity, in the
   * source as in the target, and among the last the source got: a copy.
   */
  const sourceEmpty = (): MoveResult => {
    // A copy's twin is in the target: one the source gives back after this acknowledgement is a copy too.
    for (const m of candidates.values()) {
      get?.ack(m);
      copied(m);
      out(m);
    }
    dropped += candidates.size;
    candidates.clear();
    return { moved, dropped, expiring, expiringKeys, expiringOut, ...(changedBack.length ? { changedBack } : {}) };
  };
  /** A move that stops before the source is empty: the copies it held back go back too, uncounted as copies. */
  const stop = async (r: MoveResult): Promise<MoveResult> => {
    const held = [...candidates.values()];
    candidates.clear();
    await giveBack(held);
    return { ...r, expiring, expiringKeys, expiringOut, ...(changedBack.length ? { changedBack } : {}), left: (r.left ?? 0) + held.length };
  };
  try {
    get = await session.channel();
    session.rpcs++;
    pub = await session.confirmChannel();
    // The broker's reason when it closes this channel (a refused publish: 403 on amq.default).
    pub.on("error", (e: Error) => (pubClosed ??= e));
    // A return comes before the confirm of the same message. It carries no delivery tag: the
    // message is found by its content and id (identical messages are interchangeable).
    pub.on("return", (ret: GetMessage) => {
      const hit = inflight.find((x) => !x.returned && x.m.content.equals(ret.content) && x.m.properties.messageId === ret.properties.messageId);
      if (hit) hit.returned = true;
    });
    const maxLength = o.limits?.maxLength;
    const maxBytes = o.limits?.maxLengthBytes;
    // A byte limit whose overflow drops the oldest (drop-head) or dead-letters what it refuses
    // (reject-publish-dlx): every message in the target must be one whose bytes topo counted.
    const sizesAll = maxBytes !== undefined && o.limits?.overflow !== "reject-publish";
    for (;;) {
      let want = BATCH;
      // A passive declare of the target each batch: it counts a length limit's room, and it
      // renews a queue with an expiry, which is deleted with what was moved into it once unused
      // that long, a publish being no use (a queue with x-expires 6000 went half-way through a
      // move back of 15,000 messages, and 3,328 with it).
      const renews = maxLength !== undefined || sizesAll || o.limits?.expires !== undefined;
      if (renews) session.rpcs++;
      const now = renews ? await get.checkQueue(to) : undefined;
      if (sizesAll && maxBytes && now) {
        // Messages published to the target during the move (or there before it, in a queue that
        // is only counted) have bytes topo cannot count without reading them: the room it counts
        // is then too large, and the target dropped the oldest, which are the moved ones
        // (measured: 1,000 of 10,000 gone, and apply said the replace was done). So the move
        // stops, and what is left waits where it is.
        const counted = (o.copies.sized === false ? 0 : o.copies.count) + moved;
        if (now.messageCount > counted) {
          const left = await count(get, from);
          if (left === 0) return sourceEmpty();
          const n = now.messageCount - counted;
          const over = o.limits?.overflow === "reject-publish-dlx" ? "dead-letters what would pass it" : "drops its oldest messages (the moved ones) past it";
          return stop({ moved, dropped, unsized: true, stopped: `${to} holds ${plural(n, "message")} topo did not put there${o.copies.sized === false ? " or could not read" : " (published to it during the move)"}, whose bytes it cannot count against ${to}'s ${maxBytes.from} ${maxBytes.value}, which ${over}`, left });
        }
      }
      if (maxLength && now) {
        // A passive declare is answered ahead of requeues still queued at the queue (RabbitMQ
        // prioritises it), so right after the peek it can miss what the peek put back. With no
        // consumer, what the peek saw plus what was moved is certainly there.
        const known = now.consumerCount === 0 ? Math.max(now.messageCount, o.copies.count + moved) : now.messageCount;
        // Messages held back as maybe copies go in too if a later one shows they are not: their
        // room is kept for them (one more than room, and drop-head would drop a message).
        const room = maxLength.value - known - candidates.size;
        if (room <= 0) {
          const left = await count(get, from);
          if (left === 0) return sourceEmpty();
          return stop({ moved, dropped, stopped: `${to} is full at ${maxLength.from} ${maxLength.value}`, left });
        }
        want = Math.min(want, room);
      }
      const batch: GetMessage[] = [];
      // Ready messages the source still holds after the last get (basic.get-ok says it).
      let remaining = 0;
      let batchBytes = 0;
      for (let i = 0; i < want && batchBytes < BATCH_BYTES && !tookAll(); i++) {
        session.rpcs++;
        const m = await session.orLost(get.get(from, { noAck: false }));
        if (!m) break;
        atFirst ??= m.fields.messageCount + 1;
        if (o.settle && typeof m.properties.priority === "number" && m.properties.priority > 4) outOfOrder = true;
        fetched++;
        batch.push(m);
        batchBytes += m.content.length;
        remaining = m.fields.messageCount;
      }
      if (batch.length === 0 && tookAll()) {
        const left = await count(get, from);
        if (left > 0) return stop({ moved, dropped, stopped: `${left} message${left === 1 ? "" : "s"} reached ${from} straight from a client during the move`, left, arrived: left });
      }
      if (batch.length === 0) {
        if (!outOfOrder || candidates.size === 0) return sourceEmpty();
        flushing = true;
        batch.push(...candidates.values());
        candidates.clear();
      }

      const publish: GetMessage[] = [];
      const back: GetMessage[] = [];
      let full: string | undefined;
      let tooLarge: GetMessage | undefined;
      const place = (m: GetMessage): void => {
        // Alone larger than the limit: it never fits, however empty the target.
        if (!full && maxBytes && m.content.length > maxBytes.value) tooLarge ??= m;
        if (full || (maxBytes && bytesInTarget + m.content.length > maxBytes.value)) {
          full ??= `${to} is full at ${maxBytes?.from} ${maxBytes?.value}`;
          back.push(m);
          return;
        }
        bytesInTarget += m.content.length;
        publish.push(m);
      };
      for (const m of batch) {
        const k = identity(m);
        if (!flushing && k !== undefined && once.has(k)) {
          const n = (inSource.get(k) ?? 0) + 1;
          inSource.set(k, n);
          // Maybe a copy: its twin is in the target, and it is among the source's last messages
          // (the basic.get-ok's count is how many are behind it; the source gains none, it is
          // unbound). Held back until the source is empty shows it is the only one.
          if (n === 1 && m.fields.messageCount < o.copies.count) {
            candidates.set(k, m);
            continue;
          }
          // A second message of the identity: neither is a copy the switch made.
          const held = candidates.get(k);
          if (held) {
            candidates.delete(k);
            place(held);
          }
        }
        place(m);
      }

      // The batch goes to its end even if apply is interrupted meanwhile (AmqpSession.close).
      const { refused, returned, lost } = await session.wholeBatch(async () => {
        // Before the first publish: the target counts each expiration from its enqueue, later.
        const sentAt = Date.now();
        inflight = publish.map((m) => ({ m, returned: false }));
        unsettled = publish.length;
        const sent = Promise.all(
          publish.map(
            (m) =>
              new Promise<Confirm>((resolve) => {
                // A message amqplib cannot encode makes publish throw before anything is sent (and
                // before its confirm is awaited): it stays with the source, and the rest of the
                // batch goes on. Thrown out of the batch, the batch's confirmed messages were
                // given back too, a copy of each left in the target at every try.
                const changed = unfaithful(m);
                if (changed !== undefined) {
                  unwritable ??= { m, reason: changed };
                  return resolve("unwritable");
                }
                try {
                  (pub as ConfirmChannel).publish(o.via ?? "", o.via === undefined ? to : m.fields.routingKey, m.content, publishOptions(m, session.user), (err: Error | null) => {
                    resolve(err ? (/nacked/.test(err.message) ? "nacked" : "lost") : "ok");
                  });
                } catch (e) {
                  unwritable ??= { m, reason: (e as Error).message };
                  resolve("unwritable");
                }
              }),
          ),
        );
        // During a memory or disk alarm the confirms never come: stop after a grace, not never.
        const confirms = await session.unlessBlocked(sent);
        session.rpcs++;
        let refused = 0;
        let returned = 0;
        let lost = 0;
        inflight.forEach(({ m, returned: r }, i) => {
          const c = confirms[i];
          if (c === "ok" && !r) {
            get?.ack(m);
            copied(m);
            out(m);
            moved++;
            const e = m.properties.expiration;
            if (e !== undefined && e !== null) {
              expiring.push(sentAt + expiresIn(e));
              expiringKeys.push(contentKey(m));
            }
            return;
          }
          if (c === "nacked") refused++;
          else if (c === "lost") lost++;
          else if (c !== "unwritable") returned++;
          back.push(m);
        });
        o.moved?.(moved);
        await giveBack(back);
        // A round trip on the same channel: its reply comes once the broker took the acks above,
        // which amqplib may still hold in its buffers (a connection closed then sends its close
        // ahead of them, and the whole batch goes back to its source, a copy of each message).
        session.rpcs++;
        await get?.checkQueue(from);
        unsettled = 0;
        return { refused, returned, lost };
      });
      // The broker's reply, where it closed the channel, says why (amqpError names its code and hint).
      if (lost) throw pubClosed ?? new Error(`the confirms of ${lost} moved message${lost === 1 ? "" : "s"} were lost with the channel`);
      // Counted, not read back: a passive declare could be answered before the requeues land.
      const left = remaining + back.length;
      if (unwritable) return stop({ moved, dropped, stopped: `a message${describeMessage(unwritable.m)} cannot be moved: topo's AMQP client cannot write it back (${unwritable.reason})`, left, unmovable: true });
      if (returned) return stop({ moved, dropped, stopped: `queue ${to} does not exist (${returned} moved message${returned === 1 ? " was" : "s were"} returned)`, left });
      if (refused) return stop({ moved, dropped, stopped: `queue ${to} refused ${refused} message${refused === 1 ? "" : "s"}${limitCause(o.limits)}`, left, ...(o.limits?.overflow === "reject-publish-dlx" ? { deadLettered: refused } : {}) });
      if (tooLarge && maxBytes) {
        const size = plural(tooLarge.content.length, "byte");
        const stoppedAt = `a message${describeMessage(tooLarge)} of ${size} is larger than ${to}'s ${maxBytes.from} ${maxBytes.value}: it never fits there`;
        return stop({ moved, dropped, stopped: stoppedAt, left, unmovable: true, tooLarge: `raise ${maxBytes.from} above ${size}, or take that message off the queue yourself, then run topo apply again; or replace with --allow-data-loss, which deletes the queue with what it holds` });
      }
      if (full) return stop({ moved, dropped, stopped: full, left });
    }
  } catch (e) {
    if (e instanceof BrokerError) throw e;
    const blocked = e instanceof PublishBlocked ? e : session.lost instanceof PublishBlocked ? session.lost : undefined;
    if (blocked) {
      throw new BrokerError(
        session.cluster,
        `move messages from ${from} to ${to}: the broker blocked topo's publishing (${blocked.reason}) for more than ${PUBLISH_BLOCKED_GRACE_MS / 1000} s, so topo closed its connection; no message was lost: those not moved yet are still in ${from}, and those whose move was under way may reach ${to} too once the alarm clears (at-least-once: such a copy is kept)`,
        {
          object: `move messages from ${from} to ${to}`,
          hints: [alarmHint(blockedKind(blocked.reason))],
        },
      );
    }
    const err = fetchCrashed(amqpError(session.cluster, `move messages from ${from} to ${to}`, e as Error, session.lost), from, o.settle === true);
    if (!unsettled) throw err;
    throw new BrokerError(
      session.cluster,
      `${err.message.slice(`cluster ${session.cluster}: `.length)}; no message was lost, but the ${plural(unsettled, "message")} of the batch under way had been published to ${to} and not yet acknowledged at ${from}, which the broker gives back: up to ${unsettled} may now be in both, and be delivered twice (at least once)`,
      { object: err.object, status: err.status, transient: err.transient, hints: err.hints, code: err.code },
    );
  } finally {
    // For every message it fetched (acknowledged, or given back); not once the connection is lost.
    if (get && o.settle && fetched > 0 && !session.lost) await sleep(QUORUM_SETTLE_MS);
    if (get) await closeChannel(get);
    if (pub) await closeChannel(pub);
  }
}

/**
 * A move whose fetch the broker failed with 541 INTERNAL_ERROR: RabbitMQ 4 fails so on a message
 * it cannot hand to an AMQP 0.9.1 client, one published over AMQP 1.0 with a uuid among its
 * application properties (measured on 4.0.5 and 4.3.6, every try). The hint said a deprecated
 * feature is denied. Each try gives back what the channel held, a delivery of a quorum queue
 * counted each time, and at its delivery limit RabbitMQ drops them: after four applies of a queue
 * with x-delivery-limit 2 that message and two others were gone, and the fifth apply finished.
 */
export function fetchCrashed(err: BrokerError, from: string, quorum: boolean): BrokerError {
  if (err.status !== 541) return err;
  const counted = quorum
    ? `; each try gives back the messages topo held, and ${from}, a quorum queue, counts a delivery of each: at its x-delivery-limit (20 by default on RabbitMQ 4) it drops them, so do not run topo apply again until that message is gone`
    : "";
  return new BrokerError(err.cluster, err.message.slice(`cluster ${err.cluster}: `.length), {
    object: err.object,
    status: err.status,
    transient: false,
    code: err.code,
    hints: [
      `the broker failed to hand topo a message of ${from} (541 INTERNAL_ERROR): RabbitMQ 4 does so for a message published over AMQP 1.0 that it cannot give an AMQP 0.9.1 client (one with a uuid among its application properties), every time; the broker's log names it${counted}. Take it off ${from} with an AMQP 1.0 client (or let a worker consume it), then run topo apply again`,
    ],
  });
}

/**
 * Wait until messages routed just before the holding queue lost its bindings have reached it:
 * its count stops growing (nothing new is routed to it after the unbind, and the copy of a message
 * routed to both queues lands in each about together). A fixed pause was too short on a busy
 * broker, and a late copy then went back as a duplicate. Bounded: a copy later than that still
 * arrives twice, never not at all.
 */
async function settled(ch: Channel, queue: string): Promise<void> {
  const deadline = Date.now() + SETTLE_MAX_MS;
  await sleep(SETTLE_MS);
  let last = await count(ch, queue);
  while (Date.now() < deadline) {
    await sleep(SETTLE_MS / 2);
    const now = await count(ch, queue);
    if (now === last) return;
    last = now;
  }
}

/** Rounds of dropGivenBack: each acknowledges copies, which the queue may give back in turn. */
const GIVEN_BACK_ROUNDS = 3;

/**
 * After a move out of a quorum queue: what the queue gave back when the move's channel closed,
 * though topo had acknowledged it (QUORUM_SETTLE_MS), is a copy of a message now in the target
 * (or published back to the queue itself). Each message there whose identity (the id and all of
 * the message: identity()) is one the move acknowledged is dropped, once per message acknowledged
 * with it; the queue serves what it gave back first, so the pass stops at the first message that
 * is no such copy, requeued (a client's publish straight to the queue's name, said by the caller).
 * A message with no id is never dropped: the caller stops, naming possible copies. The drops'
 * own acknowledgements get the same wait, and what comes back of them is dropped the next round.
 * Returns how many were dropped.
 */
export async function dropGivenBack(session: AmqpSession, queue: string, acked: Map<string, number>): Promise<number> {
  let dropped = 0;
  for (let round = 0; round < GIVEN_BACK_ROUNDS; round++) {
    let ch: Channel | undefined;
    let now = 0;
    let other = false;
    try {
      ch = await session.channel();
      session.rpcs++;
      // The queue gives back once it has handled the channel's close, after the close-ok.
      await settled(ch, queue);
      const total = await count(ch, queue);
      for (let i = 0; i < total; i++) {
        session.rpcs++;
        const m = await session.orLost(ch.get(queue, { noAck: false }));
        if (!m) break;
        const k = identity(m);
        const left = k === undefined ? 0 : acked.get(k) ?? 0;
        if (left === 0) {
          ch.nack(m, false, true);
          other = true;
          break;
        }
        acked.set(k as string, left - 1);
        ch.ack(m);
        now++;
      }
      if (now > 0) {
        session.rpcs++;
        await count(ch, queue);
        await sleep(QUORUM_SETTLE_MS);
      }
    } catch (e) {
      throw amqpError(session.cluster, `move messages out of ${queue}: drop the copies it gave back`, e as Error, session.lost);
    } finally {
      if (ch) await closeChannel(ch);
    }
    dropped += now;
    if (now === 0 || other) return dropped;
  }
  return dropped;
}

/**
 * Of the messages with an expiration of their own moved into the holding queue (`parked`), those
 * that did not come back out (`cameOut`, by contentKey) and whose expiration has passed by `at`.
 */
export function expiredThere(parked: { expiring: readonly number[]; keys: readonly string[] }, cameOut: ReadonlyMap<string, number>, at: number): number {
  const left = new Map(cameOut);
  let n = 0;
  parked.expiring.forEach((t, i) => {
    const k = parked.keys[i] as string;
    const back = left.get(k) ?? 0;
    if (back > 0) left.set(k, back - 1);
    else if (t <= at) n++;
  });
  return n;
}

/** A message's expiration in milliseconds; 0 (at once) where it is not a number topo can read. */
function expiresIn(expiration: unknown): number {
  const ms = Number(expiration);
  return Number.isFinite(ms) && ms > 0 ? ms : 0;
}

/** The broker's count, read after the refused messages went back (same channel, so in order). */
async function count(ch: Channel, queue: string): Promise<number> {
  return (await ch.checkQueue(queue)).messageCount;
}

/** The queue's own reason for a nack, as far as its limits tell it (a nack carries no text). */
function limitCause(l: QueueLimits | undefined): string {
  const at = l ? [l.maxLength, l.maxLengthBytes].filter((x) => x !== undefined).map((x) => `${x.from} ${x.value}`) : [];
  if (l && l.overflow !== "drop-head" && at.length) return `: x-overflow ${l.overflow} at ${at.join(" and ")}`;
  return " (the broker gives no reason with a nack: a limit topo did not foresee, or the broker refusing publishes)";
}
