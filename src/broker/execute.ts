// Carry out one cluster's plan, and nothing else (Terraform: "the actions during apply must be
// described entirely by the Changes field"). Phases keep the order correctness needs: the vhost
// first, policies before the queues they mirror, unbinds before deletes, objects before their
// bindings, and user-visible deletes of policies last. Within a phase, writes run in parallel;
// declares and binds are pipelined (broker/pipeline.ts).

import { BrokerError, LockError } from "../errors.js";
import type { Channel } from "amqplib";
import type { Action, Binding, ClusterPlan, ClusterTarget, Credentials, Exchange, LostBinding, Policy, Queue, ReplaceAction, Resource, User } from "../model.js";
import { holdingQueueName, markedPrefix } from "../core/naming.js";
import { describe, keyOf, subjectOf } from "../core/keys.js";
import { closeChannel, type AmqpSession } from "./amqp.js";
import type { ManagementClient } from "./http.js";
import { deleteQueueIfIdle, unbind } from "./declare.js";
import { PIPELINE_BATCH, writeEach, writePipelined, writeUnitsPipelined } from "./pipeline.js";
import { boundTo, carriedKeys, unbindLast, writeUnits } from "../plan/write-units.js";
import { BATCH, replaceQueueLossless } from "./replace.js";
import { holdStep } from "./in-flight.js";
import { removeByKey, removedByKey } from "./remove-binding.js";
import { quorumReport, unackedCounter } from "./read.js";
import { sameTags, userChangedHint } from "./user-writers.js";
import { tagsOf } from "./state.js";
import { vh } from "./http.js";
import { sleep } from "./retry.js";
import { runLimited } from "./limited.js";
import { FETCHED_WITHOUT_CONSUMER, letGoOf, plural, shellWord, shown } from "../core/words.js";
import { allowsNothing } from "../core/permissions.js";
import { SHA256 } from "../config/credentials.js";
import { REPLACES_AT_ONCE } from "../plan/limits.js";
import { inUseHint } from "../plan/guards.js";
import { lostNow } from "../plan/lost-bindings.js";
import { lostReason } from "../plan/render.js";
import { movesMessages } from "../plan/moves.js";
import { pushTo } from "../core/collections.js";

export interface ExecuteOptions {
  /** Delete queues even when they hold messages. Without it every queue delete is if-empty. */
  allowDataLoss: boolean;
  /** Channels used in parallel. */
  concurrency: number;
}

export interface ExecuteContext {
  target: ClusterTarget;
  http: ManagementClient;
  /** Opens the AMQP session on first use (after the vhost exists). */
  amqp: () => Promise<AmqpSession>;
  log: (msg: string) => void;
  /** Called as changes complete, with how many of the plan's are done and the one just confirmed. */
  progress?: (done: number, total: number, made: Action) => void;
  /** Called for a create the broker found done already (a vhost another apply made): no change of this apply's. */
  existed?: (a: Action) => void;
  /** Called as a replace starts: until progress confirms it, its object may be half-way (a queue's bindings on its holding queue). */
  begun?: (a: Action) => void;
  /** Called as a long step makes headway without completing a change (a replace's move), saying what it is doing. */
  busy?: (what: string) => void;
  /** Asks whether the cluster's AMQP user may publish through the default exchange (replace.ts publishByDefaultQuestion). */
  mayPublishByDefault?: () => Promise<void>;
  /** The file's user passwords, for the users a plan creates or whose password it changes. */
  credentials?: Credentials;
}

/** Kinds written over HTTP alone: a plan of only these opens no AMQP connection. */
const HTTP_ONLY = new Set<Resource["kind"]>(["policy", "user", "permission", "topic-permission"]);

/** Queue replaces that keep their messages: all of them, unless data loss was allowed (plan/moves.ts). */
export function isLossless(a: ReplaceAction, opts: ExecuteOptions): boolean {
  return movesMessages(a, opts.allowDataLoss);
}


/** The channels one replace without loss moves messages over at once (a basic.get one and a confirm one). */
const MOVE_CHANNELS = 2;

/** A user's whole max-channels, as a refusal says it. */
function userChannels(by: { user: string; max: number; of?: { limit: number } }): string {
  return `user "${by.user}" may have ${plural(by.of?.limit ?? by.max, "channel")} open at once (its max-channels, counting all its connections)`;
}

/**
 * A user's max-channels shared by more clusters of this apply than it has channels: refused when
 * the session opens, before any cluster writes (each would otherwise fail at its first channel).
 */
export function noChannelShare(cluster: string, session: Pick<AmqpSession, "channelBudget" | "budgetUser">): BrokerError | undefined {
  const by = session.budgetUser;
  if (session.channelBudget >= 1 || !by?.of) return undefined;
  return channelShareRefusal(cluster, by.user, by.of.limit, by.of.sharing);
}

/**
 * noChannelShare before a session can open: for a cluster whose vhost apply creates (the session
 * needs the vhost), from the user's max-channels as the management API gives it, so that the
 * refusal comes before that first write too.
 */
export function channelShareRefusal(cluster: string, user: string, limit: number, sharing: number): BrokerError | undefined {
  if (limit < 0 || sharing <= 1 || Math.floor(limit / sharing) >= 1) return undefined;
  const by = { user, max: Math.floor(limit / sharing), of: { limit, sharing } };
  return new BrokerError(
    cluster,
    `${userChannels(by)}, and ${by.of.sharing} clusters of this apply write as that user to this broker at once: not one channel each; nothing was written`,
    {
      code: "broker_refused",
      hints: [`apply one cluster at a time (topo apply --cluster ${cluster}, then the others), or raise the limit to ${by.of.sharing * 2} or more: rabbitmqctl set_user_limits ${shellWord(by.user)} '{"max-channels": ${by.of.sharing * 2}}'`],
    },
  );
}

/**
 * Refuse, before anything is written, a plan whose replaces without loss topo has too few channels
 * for: the connection's channel_max (negotiated when it opened) or the user's max-channels, less
 * the channel topo's lock keeps open. The replace would otherwise stop at its move, after its first
 * writes: the queue's bindings moved to its holding queue, which new messages then fill while the
 * queue's consumers get none, and a re-run stops at the same place (measured on 3.10 with
 * max-channels 2: "0 of 2 changes were made", two holding queues left).
 */
export function refuseShortOfChannels(plan: ClusterPlan, session: Pick<AmqpSession, "channelBudget" | "channelsHeld" | "budgetUser">, opts: ExecuteOptions): void {
  const held = session.channelsHeld;
  if (session.channelBudget - held >= MOVE_CHANNELS) return;
  const lossless = plan.actions.filter((a): a is ReplaceAction => a.op === "replace" && isLossless(a, opts));
  if (!lossless.length) return;
  const queues = lossless.map((a) => describe(a.after));
  // A replace an earlier run began is always finished without loss: its holding queue may hold
  // messages that were published meanwhile.
  const orDrop = lossless.some((a) => a.resume !== undefined) ? "" : "; or, to drop the messages instead, apply with --allow-data-loss, which deletes and re-creates the queue";
  const by = session.budgetUser;
  const budget = by
    ? `${userChannels(by)}${by.of ? `, ${by.max} for each of the ${by.of.sharing} clusters of this apply that write as that user` : ""}`
    : `the broker lets a connection open ${plural(session.channelBudget, "channel")} (its channel_max)`;
  const lock = held ? `, topo's apply lock keeps ${held} of them open` : "";
  const need = held + MOVE_CHANNELS;
  throw new BrokerError(
    plan.cluster,
    `${budget}${lock}, and replacing ${queues.length === 1 ? "queue" : "queues"} ${queues.join(", ")} without losing ${queues.length === 1 ? "its" : "their"} messages moves them over ${MOVE_CHANNELS} at once; nothing was written`,
    {
      code: "broker_refused",
      hints: [
        by
          ? `raise the limit to ${need * (by.of?.sharing ?? 1)} or more: rabbitmqctl set_user_limits ${shellWord(by.user)} '{"max-channels": ${need * (by.of?.sharing ?? 1)}}' (rabbitmqctl list_user_limits --user ${shellWord(by.user)} shows it), clear it, or apply as a user without it${orDrop}`
          : `raise channel_max in the broker's rabbitmq.conf (2047 by default) to ${need} or more${orDrop}`,
      ],
    },
  );
}

function policyBody(p: Policy): Record<string, unknown> {
  return { pattern: p.pattern, definition: p.definition, priority: p.priority, "apply-to": p.applyTo };
}

export async function executePlan(plan: ClusterPlan, ctx: ExecuteContext, opts: ExecuteOptions): Promise<void> {
  const { http, target } = ctx;
  const v = vh(target.amqp.vhost);
  const done = new Set<Action>();
  const mark = (a: Action) => {
    done.add(a);
    ctx.progress?.(done.size, plan.actions.length, a);
  };
  const remaining = (): Action[] => plan.actions.filter((a) => !done.has(a));

  // The prefix's apply mark, which plan lists where the vhost holds the file's objects unmarked
  // (plan/diff.ts unmarkedObjects): apply's renewal of the mark made it, under the lock, before
  // the first write (broker/generation.ts). Declared again here with other arguments, it would be refused.
  const makesMark = (a: Action) => a.op === "create" && a.after.kind === "exchange" && markedPrefix(a.after) !== undefined;
  const creates = (kind: Resource["kind"]) => plan.actions.filter((a): a is Extract<Action, { op: "create" }> => a.op === "create" && a.after.kind === kind && !makesMark(a));

  const allReplaces = plan.actions.filter((a): a is ReplaceAction => a.op === "replace");
  const lossless = allReplaces.filter((a) => isLossless(a, opts));
  const replaces = allReplaces.filter((a) => !isLossless(a, opts));
  // The queues 5b replaces whose old queue is there: their new bindings are bound to it first (5a).
  const carried = carriedKeys(lossless);
  const deletes = plan.actions.filter((a): a is Extract<Action, { op: "delete" }> => a.op === "delete");
  const binds = creates("binding");

  for (const a of plan.actions) if (makesMark(a)) mark(a);
  try {
    // 1. The vhost, over HTTP (AMQP cannot create one), and full permissions on it for the AMQP
    //    user, granted explicitly: the creating user's implicit grant was seen missing once,
    //    under heavy load on 3.10 (530 access refused on the first connection), and a different
    //    AMQP user needs them to connect at all.
    //    The vhost is made once its PUT succeeds, and is counted so: a failure of the grant after
    //    it must not report the vhost as not created, nor the apply as having written nothing.
    for (const a of creates("vhost")) {
      // Create only: a plain PUT of a vhost that exists sets it anew, and RabbitMQ 3.10 and 4
      // (rabbit_vhost:put_vhost) then clear its description and tags where the body gives none
      // (measured on 3.10.8: a vhost made by another hand between topo's read and this PUT lost
      // "owned by team x" and its tags "prod,teamx"). With If-None-Match it answers 412 and
      // changes nothing.
      const put = await http.put(`/api/vhosts/${v}`, {}, { ifAbsent: true });
      // 412 (or 204, where something in between drops the header): the vhost was there already,
      // made by another apply (or a hand) after the read found none: done, but no change of this
      // apply's (a second pipeline said "2 changes made" after each cluster's "nothing left to
      // do"), and not topo's to grant rights on, as a vhost the read found is not. Unless this PUT
      // was sent again after a try whose answer was lost: then it is most likely the vhost that
      // try made.
      if ((put.status === 412 || put.status === 204) && !put.resent) {
        done.add(a);
        ctx.existed?.(a);
        const left =
          put.status === 412
            ? "topo left it as it is (its description, tags and users' rights)"
            : "something between topo and RabbitMQ dropped the PUT's If-None-Match, so RabbitMQ took it as an update, which clears a vhost's description and tags; topo granted no rights there";
        ctx.log(`cluster ${plan.cluster}: vhost ${shown(target.amqp.vhost)} was made by another client after topo read the broker; ${left}`);
        continue;
      }
      mark(a);
      await http.put(`/api/permissions/${v}/${encodeURIComponent(target.amqp.username)}`, { configure: ".*", write: ".*", read: ".*" }).catch((e: unknown) => {
        throw e instanceof BrokerError ? ungranted(e, target) : e;
      });
    }

    // 2. Policies first, so a mirrored queue is mirrored from the moment it exists.
    for (const a of plan.actions) {
      if ((a.op === "create" || a.op === "update" || a.op === "replace") && a.after.kind === "policy") {
        await http.put(`/api/policies/${v}/${encodeURIComponent(a.after.name)}`, policyBody(a.after));
        mark(a);
      }
    }

    // 2b. Users: each exists before anything is granted to it. Their rights come at the end,
    //     except topic permissions revoked to ^$: now, while their exchange still exists (this
    //     plan may delete it, and RabbitMQ 4 refuses a topic permission on a missing exchange).
    const userWrites = plan.actions.filter((a): a is Extract<Action, { op: "create" | "update" }> => (a.op === "create" || a.op === "update") && a.after.kind === "user");
    await runLimited(userWrites, HTTP_WRITES_AT_ONCE, async (a) => {
      await putUser(a.after as User, a.op === "create" || a.changed.includes("password"), a.op === "create");
      mark(a);
    });
    await grantRights((r) => r.kind === "topic-permission" && allowsNothing(r));

    const needsAmqp = plan.actions.some((a) => !done.has(a) && !HTTP_ONLY.has(subjectOf(a).kind));
    if (!needsAmqp) {
      await grantRights();
      await deletePolicies();
      await deleteUsers();
      return;
    }
    const amqp = await ctx.amqp();
    const n = opts.concurrency;
    // A broker with a low channel_max (some hosted plans) gets fewer writers, and is told so.
    if (amqp.writers(n) < n) {
      const by = amqp.budgetUser;
      const limit = by
        ? by.of
          ? `user "${by.user}" may have ${plural(by.of.limit, "channel")} open (its max-channels), shared by ${by.of.sharing} clusters of this apply`
          : `user "${by.user}" may have ${plural(by.max, "channel")} open (its max-channels)`
        : `the broker lets a connection open ${plural(amqp.channelMax, "channel")} (its channel_max)`;
      ctx.log(`cluster ${plan.cluster}: ${limit}, so topo writes over ${plural(amqp.writers(n), "channel")} at once, not ${n}`);
    }

    // 3. Bindings to delete, before the objects at their ends; but one whose ends the plan binds
    //    anew (another routing key or other arguments) only once the new binding is made (6b,
    //    plan/write-units.ts unbindLast; 5a where 5b replaces its queue). One with arguments goes
    //    by its properties_key (broker/remove-binding.ts): an AMQP unbind with other types matches nothing.
    const unbinds = deletes.filter((a) => a.before.kind === "binding");
    const objectKeys = (...rs: Resource[]) => rs.flatMap((r) => (r.kind === "exchange" || r.kind === "queue" ? [keyOf(r)] : []));
    const remade = new Set([...allReplaces.filter((a) => !carried.has(keyOf(a.after))).flatMap((a) => objectKeys(a.before, a.after)), ...deletes.flatMap((a) => objectKeys(a.before))]);
    const last = unbindLast(unbinds, binds, remade);
    const unbindAll = async (as: typeof deletes) => {
      await runLimited(as.filter((a) => removedByKey(a.before as Binding)), HTTP_WRITES_AT_ONCE, async (a) => {
        await removeByKey(http, target.amqp.vhost, a.before as Binding & { propertiesKey: string });
        mark(a);
      });
      const amqpUnbinds = as.filter((a) => !removedByKey(a.before as Binding));
      await amqp.runAll(amqpUnbinds, n, (ch, a) => unbind(ch, a.before as Binding), (a) => `unbind ${describe(a.before)}`, mark);
    };
    await unbindAll(unbinds.filter((a) => !last.has(a)));

    // What classic queues hold unacknowledged, counted again once the deletes begin (step 4: the
    // count under the lock can be a second old by then), by a listing begun at most
    // DELETE_COUNT_REUSE_MS before each delete, and after each replace's move (5b).
    const held = unackedCounter(http, target, DELETE_COUNT_REUSE_MS);
    const heldAfterMove = unackedCounter(http, target);
    const report = quorumReport(http, target);
    // 4. Deletes of queues and exchanges. Queues are deleted only when empty and unused unless
    //    data loss was allowed.
    const removal = async (ch: Channel, { a, r }: { a: Action; r: Queue | Exchange }): Promise<unknown> => {
      if (r.kind === "exchange") return ch.deleteExchange(r.name);
      // What a client fetched and holds unacknowledged no delete checks: counted again just
      // before (apply's count can be a second old by now, after the other clusters' checks and
      // this one's writes). A quorum queue counts such a client as a consumer.
      const now = r.type === "classic" ? await held(r.name) : undefined;
      if (!opts.allowDataLoss) {
        if (now?.listed && now.unacked !== 0) throw heldBeforeDelete(plan.cluster, r.name, now.unacked);
        // The broker itself refuses to drop a message, even one published after plan read the
        // counts, or a consumer's unacknowledged ones.
        const refusal = await deleteQueueIfIdle(ch, r.name, r.type, report);
        if (refusal) throw notIdle(plan.cluster, r.name, refusal);
        return;
      }
      // The broker's count of what went with the queue: its ready messages, and its consumers
      // (a delete-ok counts no unacknowledged message: counted just before, or by apply's read).
      const consumerCount = await consumersOf(amqp, r.name);
      const { messageCount } = await ch.deleteQueue(r.name);
      // Not when the read had no count of what its consumers hold: then it is no count of all.
      const all = now?.unacked !== undefined ? messageCount + now.unacked : (a.op === "delete" || a.op === "replace") && !a.unackedUnknown && !(a.op === "delete" && a.deadLettersUnknown) ? a.messages : undefined;
      // A client that fetched with basic.get, or whose consumer was cancelled, is no consumer.
      const fetched = now?.unacked ?? (a.op === "delete" ? (a.unacked ?? 0) : 0);
      const taken =
        consumerCount > 0
          ? `, and what its ${plural(consumerCount, "consumer")} had not acknowledged${all !== undefined ? ` (${plural(all, "message")} in all when apply counted them)` : ""}`
          : fetched > 0
            ? `, and ${plural(fetched, "message")} fetched but not acknowledged (when apply counted them)`
            : "";
      // What the delete-ok counts no more than a passive declare does: a quorum queue's dead
      // letters waiting for their target, and retries RabbitMQ 4.3 delays.
      const apart = (a.op === "delete" || a.op === "replace") && a.apart ? `, and ${plural(a.apart, "message")} neither ready nor unacknowledged (dead letters waiting for their target, or retries RabbitMQ 4.3 delays) when apply counted them` : "";
      // A replace re-declares the queue and puts its bindings back after every delete of its step:
      // meanwhile its exchanges route what is published for it nowhere, and the broker drops that
      // without a count (measured: a publisher with confirms lost 80 of 8,300 messages so during
      // one replace, and apply said only that the 3,250 the queue held were dropped).
      const meanwhile = a.op === "replace" ? "; and any message published for it until its bindings are back is routed nowhere and dropped, uncounted" : "";
      if (messageCount > 0 || taken || apart || meanwhile) {
        ctx.log(`cluster ${plan.cluster}: queue ${r.name} ${a.op === "replace" ? "deleted to be re-created" : "deleted"}; ${plural(messageCount, "ready message")} dropped${taken}${apart} (--allow-data-loss)${meanwhile}`);
      }
    };
    const removed = (as: Action[]) => as.flatMap((a) => (a.op !== "create" && (a.before.kind === "queue" || a.before.kind === "exchange") ? [{ a, r: a.before }] : []));
    await amqp.runAll(removed(deletes), n, removal, ({ r }) => `delete ${r.kind} ${r.name}`, ({ a }) => mark(a));

    /**
     * Delete the old sides (a refusal stops the deletes not begun: those objects keep their
     * bindings), declare again each one deleted, then put back every binding they had. The
     * bindings the plan said the broker would not let topo make (an auto-delete exchange's last, an
     * exclusive queue's: `lost`, allowed by --allow-unmanaged-deletes) are tried too, and only
     * logged when refused. A replace is made once its object is deleted and declared again; what it
     * could not put back is the error.
     */
    const replaceByDeleteAndCreate = async (replaces: ReplaceAction[]): Promise<{ made: ReplaceAction[]; refusals?: BrokerError }> => {
      const named = (r: ReplaceAction) => `${r.after.kind} ${describe(r.after)}`;
      const failures: string[] = [];
      let first: BrokerError | undefined;
      const failed = (e: BrokerError, line: string) => {
        first ??= e;
        failures.push(line);
      };
      const deleted = new Set<ReplaceAction>();
      await amqp
        .runAll(removed(replaces), n, removal, ({ r }) => `delete ${r.kind} ${r.name}`, ({ a }) => deleted.add(a as ReplaceAction))
        .catch((e: unknown) => {
          if (!(e instanceof BrokerError) || amqp.lost) throw e;
          failed(e, e.message.replace(/^cluster [^:]*: /, ""));
        });
      const gone = replaces.filter((a) => deleted.has(a));
      const undeclared = new Set<ReplaceAction>();
      for (const { item, error } of await writeEach(amqp, gone, n, (a) => a.after as Queue | Exchange, (a) => `declare ${a.after.kind} ${describe(a.after)}`)) {
        undeclared.add(item);
        failed(error, `${named(item)} was deleted and not declared again: ${reply(error)}`);
      }
      const made = gone.filter((r) => !undeclared.has(r));
      // RabbitMQ 4 deleted every user's topic permission on a replaced exchange with it: put
      // back before its bindings, so that no routing key it restricts is routed meanwhile.
      await runLimited(
        made.flatMap((a) => a.topics ?? []),
        HTTP_WRITES_AT_ONCE,
        async (t) => {
          await http.put(`/api/topic-permissions/${v}/${encodeURIComponent(t.user)}`, { exchange: t.exchange, write: t.write, read: t.read }).catch((e: unknown) => {
            if (!(e instanceof BrokerError)) throw e;
            failed(e, `the topic permission of user ${t.user} on exchange ${t.exchange} was not put back: ${reply(e)}`);
          });
        },
      );
      const rebinds = new Map<string, { b: Binding; of: ReplaceAction }>();
      const foreseen = new Map<string, LostBinding>();
      for (const r of gone) {
        for (const b of r.rebind) rebinds.set(keyOf(b), { b, of: r });
        // A plan's queue replace counts the losses of a plain delete and re-create only (plainOnly):
        // in this step an exchange's replace meets them only when the queues' replaces are plain too.
        for (const l of lostNow(r.lost, opts.allowDataLoss)) foreseen.set(keyOf(l.binding), l);
      }
      const unbound = await writeEach(amqp, [...rebinds.values()], n, ({ b }) => b, ({ b }) => `bind ${describe(b)}`);
      for (const { item, error } of unbound) {
        const l = foreseen.get(keyOf(item.b));
        if (l) ctx.log(`cluster ${plan.cluster}: binding ${describe(item.b)} of ${named(item.of)} not put back, as plan said (--allow-unmanaged-deletes): ${lostReason(l)} (${reply(error)})`);
        else failed(error, `binding ${describe(item.b)} of ${named(item.of)} not put back: ${reply(error)}`);
      }
      if (!first) return { made };
      const e: BrokerError = first;
      const notBack = unbound.filter(({ item }) => !foreseen.has(keyOf(item.b))).length;
      return {
        made,
        refusals: new BrokerError(plan.cluster, failures.length === 1 ? (failures[0] as string) : `replacing ${plural(replaces.length, "object")} by delete and re-create met ${plural(failures.length, "refusal")}:\n    ${failures.join("\n    ")}`, {
          status: e.status,
          object: e.object,
          hints: [
            ...e.hints,
            ...(notBack
              ? [
                  "every other binding was put back; the next topo apply re-creates the file's, but not those topo does not manage: no later plan knows them, so make them again by hand (listed above) once their ends exist",
                ]
              : []),
          ],
        }),
      };
    };

    // 4b. Exchanges and queues replaced by delete and re-create (an exchange always; a queue when
    //     data loss was allowed), as one step of their own: old sides deleted, new sides declared,
    //     and at once every binding they had put back. Between the declare and the bindings the
    //     broker routes a publish to the object nowhere (confirmed, and dropped), and a failure
    //     further on must not leave it bare: the bindings of a replaced exchange are the file's
    //     and the users' (an audit queue's), and only this plan still knows the users' ones. So
    //     no refusal stops the step: every object deleted is declared again and every binding
    //     that can be put back is, and only then are the refusals reported, each by name.
    //     Ctrl-C lets the step finish (AmqpSession.close waits for it, as for a batch of moved
    //     messages), or starts none of it.
    if (replaces.length) {
      replaces.forEach((a) => ctx.begun?.(a));
      // What a process stopped inside the step would lose: every binding it is to put back.
      const atRisk = replaces.flatMap((a) => a.rebind.map((b) => `binding ${describe(b)} (of ${subjectOf(a).kind} ${describe(subjectOf(a))})`));
      const done = holdStep(atRisk);
      const { made, refusals } = await amqp.wholeBatch(() => replaceByDeleteAndCreate(replaces)).finally(done);
      for (const a of made) mark(a);
      if (refusals) throw refusals;
    }

    // 5. Queues to create; then exchanges to create, each new binding from or to one in the
    //    batch that declares it, right after it (plan/write-units.ts), but not one to a queue 5b
    //    declares again after an earlier apply's half-way replace. With the queues in those
    //    batches too, an apply from empty of 1,000 services cost the broker 8% more CPU
    //    (bench/notes.md); a new queue unbound for a moment loses nothing, as nothing was routed
    //    to it before.
    await writePipelined(amqp, creates("queue"), n, (a) => a.after as Queue, (a) => `declare queue ${describe(a.after)}`, mark);
    const { units, later: unitless } = writeUnits(
      creates("exchange"),
      binds,
      PIPELINE_BATCH,
      new Set(lossless.map((a) => keyOf(a.after)).filter((k) => !carried.has(k))),
    );
    await writeUnitsPipelined(
      amqp,
      units,
      n,
      (a) => a.after as Exchange | Binding,
      (a) => (a.after.kind === "binding" ? `bind ${describe(a.after)}` : `declare exchange ${describe(a.after)}`),
      mark,
    );

    // 5a. The other new bindings to a queue 5b replaces, bound to its old queue, and then the old
    //     bindings they take over from (another routing key): 5b carries the new ones over with
    //     the rest (plan/write-units.ts carriedKeys), so the route holds throughout.
    const later = unitless.filter((a) => !boundTo(a.after, carried));
    await writePipelined(amqp, unitless.filter((a) => boundTo(a.after, carried)), n, (a) => a.after as Binding, (a) => `bind ${describe(a.after)}`, mark);
    await unbindAll(unbinds.filter((a) => last.has(a) && boundTo(a.before, carried)));
    // By queue name, and only the queues of `carried`: the new bindings each replace carries.
    const carriedTo = new Map<string, Binding[]>();
    for (const a of binds) if (boundTo(a.after, carried)) pushTo(carriedTo, (a.after as Binding).destination, a.after as Binding);

    // 5b. Queues replaced without losing a message, a few at a time: each moves messages over two
    //     channels at once, and they stay within --parallelism and channel_max.
    await runLimited(lossless, Math.max(1, Math.min(REPLACES_AT_ONCE, Math.floor(amqp.writers(n) / 2))), async (a) => {
      const r = await replaceQueueLossless(
        amqp,
        {
          after: a.after as Queue,
          bindings: [...a.rebind, ...(carriedTo.get((a.after as Queue).name) ?? [])],
          holdBindings: a.resume?.holdBindings ?? [],
          queueDone: a.resume?.queueDone ?? false,
          old: a.before.kind === "queue" && a.before.name === (a.after as Queue).name ? a.before : undefined,
          hold: a.resume?.hold,
          limits: a.limits,
          removeByKey: (b) => removeByKey(http, target.amqp.vhost, b),
          unacked: async (queue) => (await heldAfterMove(queue)).unacked,
          report,
          begun: () => ctx.begun?.(a),
          moving: (what) => ctx.busy?.(what),
          mayPublishByDefault: ctx.mayPublishByDefault,
          namedSenders: a.namedDeadLetters?.queues,
          version: plan.version,
        },
        ctx.log,
      );
      // Said, where apply said only how many it moved back: the rest seemed lost.
      const dlx = a.limits?.hold.deadLetterExchange;
      const expired = r.expired
        ? `; ${plural(r.expired, "message")} topo had moved into ${holdingQueueName(describe(a.after))} expired there before it moved ${r.expired === 1 ? "it" : "them"} back (${r.expired === 1 ? "its" : "their"} own expiration passed during the replace), and ${dlx !== undefined ? `${r.expired === 1 ? "was" : "were"} dead-lettered to exchange "${dlx}"` : `${r.expired === 1 ? "was" : "were"} dropped (the queue has no dead-letter exchange)`}, as in the queue`
        : "";
      const dups = r.duplicatesDropped ? `, ${r.duplicatesDropped} duplicate cop${r.duplicatesDropped === 1 ? "y" : "ies"} dropped` : "";
      // A passive declare counts ready messages: with consumers already attached, that is not all.
      const holds =
        r.holds === undefined
          ? ""
          : r.consumers
            ? `; the broker counts ${plural(r.holds, "ready message")} in it now, and ${plural(r.consumers, "consumer")} already ${r.consumers === 1 ? "takes" : "take"} from it`
            : `; the broker counts ${plural(r.holds, "message")} in it now`;
      const twiceOut = r.mayRepeatOut
        ? `; up to ${plural(r.mayRepeatOut, "message")} published while the bindings switched to ${holdingQueueName(describe(a.after))} may have reached both queues, and so be delivered twice (at least once): a priority queue (x-max-priority) hands out its messages by priority, so the copies in it cannot be told from the rest`
        : "";
      const twice = r.mayRepeat
        ? `; up to ${plural(r.mayRepeat.count, "message")} published while the bindings switched back may have reached both queues, and so be delivered twice (at least once): ${r.mayRepeat.why}`
        : "";
      // An apply stopped during a move with no word (killed with SIGKILL, its machine gone) left
      // the batch under way in both queues, and finishing cannot tell those copies from the rest:
      // measured, 72 of 30,000 messages twice, and the apply that finished said only that 30,072
      // were moved back.
      const resumed = a.resume
        ? `; this finished a replace an earlier apply left half-way: if that apply stopped during a move (killed, or its connection lost), up to ${BATCH} messages of its batch under way may be in ${describe(a.after)} twice, and be delivered twice (at least once)`
        : "";
      ctx.log(`cluster ${plan.cluster}: queue ${describe(a.after)} replaced; ${plural(r.movedBack, "message")} moved back through ${holdingQueueName(describe(a.after))}${dups}${expired}${holds}${twiceOut}${twice}${resumed}`);
      mark(a);
    });

    // 6. The other new bindings: between objects that were both there already, to a queue 5b
    //    finished replacing for an earlier apply, or of a group too large for a batch.
    await writePipelined(amqp, later, n, (a) => a.after as Binding, (a) => `bind ${describe(a.after)}`, mark);
    // 6b. The bindings made anew between the same ends: the old ones go now, not before.
    await unbindAll(unbinds.filter((a) => last.has(a) && !boundTo(a.before, carried)));

    // 7. Rights, once the exchanges they name exist; then what the file no longer asks for.
    await grantRights();
    await deletePolicies();
    await deleteUsers();
  } catch (e) {
    throw e instanceof BrokerError ? new ExecutionStopped(e, plan, remaining()) : e;
  }

  /**
   * Topic permissions before permissions: RabbitMQ 4 refuses a topic permission on an exchange
   * that does not exist yet, and a user granted write on an exchange before its topic permission
   * is set could publish any routing key there in between.
   */
  async function grantRights(only: (r: Resource) => boolean = () => true): Promise<void> {
    for (const kind of ["topic-permission", "permission"] as const) {
      // Each user's, and each exchange's topic permission, is a record of its own: any order.
      const grants = plan.actions.filter((a) => (a.op === "create" || a.op === "update") && a.after.kind === kind && !done.has(a) && only(a.after));
      await runLimited(grants, HTTP_WRITES_AT_ONCE, async (a) => {
        const r = (a as Extract<Action, { op: "create" | "update" }>).after;
        if (r.kind === "permission") await http.put(`/api/permissions/${v}/${encodeURIComponent(r.user)}`, { configure: r.configure, write: r.write, read: r.read });
        else if (r.kind === "topic-permission") await http.put(`/api/topic-permissions/${v}/${encodeURIComponent(r.user)}`, { exchange: r.exchange, write: r.write, read: r.read });
        mark(a);
      });
    }
  }

  /**
   * PUT a user with its tags. The API sets tags and password together, so a tags-only update
   * sends the hash the broker stores now; a new password goes as a freshly salted hash, never as
   * the password itself.
   */
  async function putUser(u: User, newPassword: boolean, create: boolean): Promise<void> {
    const path = `/api/users/${encodeURIComponent(u.name)}`;
    let secret: { password_hash: string; hashing_algorithm: string };
    if (newPassword) {
      if (!ctx.credentials) throw new Error(`no credentials for user ${u.name}`);
      secret = ctx.credentials.hashFor(u.name);
    } else {
      const now = await http.get<{ password_hash?: unknown; hashing_algorithm?: unknown }>(path);
      // Sent back as it came: an answer without the hash (one changed on the way) would have set an
      // empty one, and the user could no longer log in.
      if (typeof now?.password_hash !== "string") throw http.notTheBrokers("GET", path, `it has no password_hash as text, which a change of user ${u.name}'s tags must send back as it is`);
      secret = { password_hash: now.password_hash, hashing_algorithm: typeof now.hashing_algorithm === "string" ? now.hashing_algorithm : SHA256 };
    }
    http.sends(secret.password_hash);
    const body = { tags: u.tags.join(","), ...secret };
    if (!create) {
      await http.put(path, body);
      return;
    }
    // Create only (If-None-Match: a PUT of a user that exists sets its password and tags): one
    // made since apply checked, under its lock, that the user was as the plan read it (another
    // client, in the moment before this write) is not overwritten. Two clusters of one broker
    // create the same user at once: the later finds it made (412; RabbitMQ 4 may answer 400
    // user_already_exists), as the file wants it, and that is done (a create of what exists, as
    // wanted).
    const put = await http.put(path, body, { ifAbsent: true }).catch((e: unknown) => {
      if (e instanceof BrokerError && /user_already_exists/.test(e.message)) return { status: 412, resent: false };
      throw e;
    });
    if (put.status !== 412 || put.resent) return;
    const now = await http.get<{ tags?: unknown; password_hash?: unknown; hashing_algorithm?: unknown }>(path);
    const tags = tagsOf(now?.tags);
    const asWanted = sameTags(tags, u.tags);
    const hash = typeof now?.password_hash === "string" ? { hash: now.password_hash, algorithm: typeof now.hashing_algorithm === "string" ? now.hashing_algorithm : SHA256 } : undefined;
    if (asWanted && hash && ctx.credentials?.matches(u.name, hash)) return;
    throw new LockError(
      `cluster ${plan.cluster}: user ${shown(u.name)} was created by another client after this apply checked it (${asWanted ? "with another password" : `with tags ${shown(tags.join(",")) || "none"}`}); topo did not overwrite it`,
      [userChangedHint(plan.cluster)],
      { cluster: plan.cluster, object: `user ${u.name}` },
    );
  }

  /**
   * Permissions first, then topic permissions (the API clears all of a user's in the vhost at
   * once: diff asks for that only when none of them stays), then users (which takes the rest). A
   * user whose topic permissions were cleared while it could still write to the exchanges could
   * publish any routing key there until its permission went: 4 publishes of 12 publishers got
   * through in that moment.
   */
  async function deleteUsers(): Promise<void> {
    for (const kind of ["permission", "topic-permission", "user"] as const) {
      // By user: one DELETE clears all of a user's topic permissions in the vhost.
      const byUser = new Map<string, Action[]>();
      for (const a of deletes) {
        const r = a.before;
        if (r.kind !== kind) continue;
        const user = r.kind === "user" ? r.name : (r as { user: string }).user;
        pushTo(byUser, user, a);
      }
      await runLimited([...byUser], HTTP_WRITES_AT_ONCE, async ([user, actions]) => {
        if (kind === "topic-permission") await revoke(`/api/topic-permissions/${v}/${encodeURIComponent(user)}`, user);
        else if (kind === "permission") await revoke(`/api/permissions/${v}/${encodeURIComponent(user)}`, user);
        else await deleteUser(user);
        actions.forEach(mark);
      });
    }
  }

  /**
   * Delete a user's rights on the vhost. RabbitMQ 3.10 answers 500 (its log: no_such_user thrown
   * by clear_permissions) when the user is deleted while the request runs, which happens when
   * another cluster of the same broker deletes a user this one revokes. The rights went with
   * the user: that is done. While the user still exists, the 500 stands.
   */
  async function revoke(path: string, user: string): Promise<void> {
    try {
      await http.delete(path);
    } catch (e) {
      if (!(e instanceof BrokerError) || e.status !== 500) throw e;
      if ((await http.getOptional(`/api/users/${encodeURIComponent(user)}`)) !== undefined) throw e;
    }
  }

  /**
   * Delete a user. RabbitMQ 3.10 answers 500 when, meanwhile, another request clears one of the
   * user's permissions (another cluster of the same broker revoking the user's rights in its vhost
   * as this one deletes it: seen in a CI run). Gone by then: done. Still there: the race is over
   * once that request is, so the delete is sent again, twice at most, before the 500 stands.
   */
  async function deleteUser(user: string): Promise<void> {
    const path = `/api/users/${encodeURIComponent(user)}`;
    for (let attempt = 1; ; attempt++) {
      try {
        await http.delete(path);
        return;
      } catch (e) {
        if (!(e instanceof BrokerError) || e.status !== 500) throw e;
        if ((await http.getOptional(path)) === undefined) return;
        if (attempt > 2) throw e;
        await sleep(200 * attempt);
      }
    }
  }

  async function deletePolicies(): Promise<void> {
    for (const a of deletes) {
      if (a.before.kind === "policy") {
        await http.delete(`/api/policies/${v}/${encodeURIComponent(a.before.name)}`);
        mark(a);
      }
    }
  }
}


/** A queue's consumers now, on a channel of its own: a passive declare of a queue already gone closes it (404: none). */
async function consumersOf(session: AmqpSession, queue: string): Promise<number> {
  const ch = await session.channel();
  ch.on("error", () => undefined);
  try {
    return (await ch.checkQueue(queue)).consumerCount;
  } catch (e) {
    if ((e as { code?: number }).code === 404) return 0;
    throw e;
  } finally {
    await closeChannel(ch);
  }
}

/**
 * Users and their rights written at once, over HTTP: the management client keeps 8 connections
 * (http.ts). Measured on 3.10.8, 1,000 users then their permissions: 3.0 s and 3.3 s one at a
 * time, 0.8 s and 1.1 s eight at a time.
 */
const HTTP_WRITES_AT_ONCE = 8;

/**
 * How old a listing of the queue totals a queue's delete may go by: what a client fetched in that
 * time, or while the listing ran, goes with the queue unseen. A listing for each delete made
 * 2,000 services' deletes 40% slower (21.9 and 22.6 s against 15.5 and 16.0 s, CI running beside),
 * and on a large vhost would have made them go 64 at a time per listing; this, about 7% (11.5 and
 * 12.4 s against 10.2 and 12.1 s, bench/destructive.mjs).
 */
const DELETE_COUNT_REUSE_MS = 1000;

/** A broker error stopped the plan part-way: the error, and the actions not done. */
export class ExecutionStopped extends Error {
  constructor(
    readonly failure: BrokerError,
    readonly plan: ClusterPlan,
    readonly left: Action[],
  ) {
    super(failure.message);
  }
}

/**
 * The grant that follows a vhost's creation failed: the vhost is there, so the next apply plans no
 * vhost and grants nothing. The AMQP user has its rights only if it created the vhost (RabbitMQ
 * grants its creator them): the hint says how to grant them by hand.
 */
function ungranted(e: BrokerError, target: ClusterTarget): BrokerError {
  const { vhost, username } = target.amqp;
  return new BrokerError(e.cluster, e.message.slice(`cluster ${e.cluster}: `.length), {
    status: e.status,
    transient: e.transient,
    code: e.code,
    object: e.object,
    hints: [
      ...e.hints,
      `vhost "${vhost}" was created, but user "${username}" was not granted its rights on it; if the next apply cannot connect to it, grant them: rabbitmqctl set_permissions -p ${shellWord(vhost)} ${shellWord(username)} '.*' '.*' '.*'`,
    ],
  });
}

/** The broker's own words in an error amqpError made ("bind X -> 404 NOT_FOUND - ..."): what follows its object. */
function reply(e: BrokerError): string {
  const head = `cluster ${e.cluster}: ${e.object ?? ""} -> `;
  return e.message.startsWith(head) ? e.message.slice(head.length) : e.message.slice(`cluster ${e.cluster}: `.length);
}

/** Messages of a queue to delete that a client fetched and holds, counted just before the delete (undefined: the broker gave no count). */
function heldBeforeDelete(cluster: string, queue: string, n: number | undefined): BrokerError {
  const what =
    n === undefined
      ? `the broker lists it without a count of what it holds (its process did not answer), so topo cannot tell whether a client that is no consumer (${FETCHED_WITHOUT_CONSUMER}) holds messages of it`
      : `the broker counts ${plural(n, "message")} of it fetched and not acknowledged by a client that is no consumer (${FETCHED_WITHOUT_CONSUMER}), which the delete would take with it`;
  return new BrokerError(cluster, `delete queue ${queue}: not deleted: ${what}; nothing of it was lost`, {
    object: `queue ${queue}`,
    hints: [
      n === undefined
        ? `run topo apply again once rabbitmqctl list_queues name messages counts ${queue}`
        : `${letGoOf("them")}, then run topo apply again; or pass --allow-data-loss to delete them with the queue`,
    ],
  });
}

/** A queue apply was to delete holds messages or has a consumer now: it is left, and apply stops. */
function notIdle(cluster: string, queue: string, reply: string): BrokerError {
  const inUse = /in use|consumer/.test(reply);
  return new BrokerError(cluster, `delete queue ${queue}: not deleted, it is ${inUse ? "in use" : "not empty"} (${reply}); nothing of it was lost`, {
    status: 406,
    object: `queue ${queue}`,
    hints: [
      inUse
        ? inUseHint([queue])
        : `let the workers drain ${queue} (topo plan shows the count), then run topo apply again; or pass --allow-data-loss to delete the messages with it`,
    ],
  });
}
