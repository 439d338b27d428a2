import { randomUUID } from "node:crypto";
import { allOf, ApplyError, ClustersError, InterruptedError, LockError, StalePlanError, TopoError } from "../errors.js";
import { backoff, sleep } from "../broker/retry.js";
import { DEFAULT_CHANNELS, type Action, type ActualCluster, type Binding, type ClusterPlan, type ClusterTarget, type DesiredCluster, type Plan, type Queue, type ReplaceAction, type Resource } from "../model.js";
import { AmqpSession, checkLogin } from "../broker/amqp.js";
import { channelShareRefusal, executePlan, ExecutionStopped, noChannelShare, refuseShortOfChannels, type ExecuteContext, type ExecuteOptions } from "../broker/execute.js";
import type { ManagementClient } from "../broker/http.js";
import { acquireLock } from "../broker/lock.js";
import { publishByDefaultQuestion } from "../broker/replace.js";
import { unbindsRefused } from "../broker/unbind-probe.js";
import { refuseRivalUserWrites, usersAsRead, usersWritten, type UsersAsRead } from "../broker/user-writers.js";
import { deadLettersNow, heldNow, quorumCount, quorumReport, readUserMaxChannels, readVhostPermission, unackedNow, vhostListed } from "../broker/read.js";
import { deleteApplyMark, markersSince, readApplyMark, renewApplyMark, unchangedSince, type ApplyMark } from "../broker/generation.js";
import { applyMarkName, holdingQueueName, lockQueueName } from "../core/naming.js";
import { lockHeld } from "../plan/left-behind.js";
import { describe, keyOf, nameKey, subjectOf } from "../core/keys.js";
import { dataLossLines, deletesQueues, guardPlans } from "../plan/guards.js";
import { limitShifts } from "../plan/policy-shifts.js";
import { renderAction, renderText } from "../plan/render.js";
import { plural, shellPath, shellWord, shown } from "../core/words.js";
import type { FreshCluster } from "../plan/saved.js";
import { forEachCluster, freshOf, readAndPlan, readBackPlan, verifyClusters } from "./clusters.js";
import { managementClient, selectClusters, topologyOf, unreadClusters, type ConnectionOptions, type TopologySource } from "./source.js";
import { writesBegin } from "../broker/in-flight.js";

export interface ApplyOptions extends ConnectionOptions, TopologySource {
  /** Only these clusters (default: every cluster of the topology). */
  cluster?: string | readonly string[];
  allowDestructive: boolean;
  allowDataLoss: boolean;
  /** A delete may take bindings topo does not manage with it (the broker removes them with the object). */
  allowUnmanagedDeletes?: boolean;
  lockTimeoutMs: number;
  /** Channels per cluster used for parallel writes. */
  concurrency?: number;
  /** Progress for people (stderr). */
  log: (msg: string) => void;
  /** Timings of each step (--verbose), for finding where an apply spends its time. */
  trace?: (msg: string) => void;
  /** Called as a cluster's changes complete (a counter or a bar for people, on stderr). */
  progress?: (cluster: string, done: number, total: number) => void;
  /** Called once a cluster's apply is over, done or failed: it is no longer under way. */
  ended?: (cluster: string) => void;
  /** Called as a cluster's long step makes headway short of a change (a replace moving messages), saying what it is doing. */
  busy?: (cluster: string, what: string) => void;
  /**
   * Called with the plan before anything is written; apply waits for what it returns (the command
   * line's plan reaching stdout before any progress line, so that a slow reader of both does not
   * get the two mixed, or the outcome in the middle of the plan).
   */
  onPlan?: (plan: Plan) => void | Promise<void>;
  /**
   * A saved plan's check (topo apply PLANFILE): throws when fresh reads are not what was saved.
   * Called with every cluster's read before anything is written, and again with each cluster's
   * read under its lock, with what apply made in it before (`made`: its vhost, where the lock lives).
   */
  expect?: (fresh: FreshCluster[], made?: readonly Action[]) => void;
  /**
   * A saved plan's check of a retry after a lost connection: how the cluster differs from what
   * the saved plan saw and makes (objects changed by another hand, actions the saved plan does not
   * hold). Any stops the cluster: what is left is no longer the plan that was reviewed.
   */
  expectWithin?: (fresh: FreshCluster, confirmed: readonly Action[]) => string[];
  /**
   * Aborted on Ctrl-C or SIGTERM: no new work starts, the AMQP connections close (which releases
   * the lock queues), and apply throws InterruptedError saying how far each cluster got.
   */
  signal?: AbortSignal;
  /**
   * What an apply interrupted after making changes tells the user to run next (default: apply
   * again). A saved plan's apply says to plan again: the saved plan no longer matches the brokers.
   */
  finish?: string;
  /**
   * What an apply interrupted before any change tells the user to run (default: apply again). A
   * saved plan's names the plan file: it still holds, and plain topo apply would apply the file unreviewed.
   */
  restart?: string;
}

export interface ClusterOutcome {
  name: string;
  status: "unchanged" | "applied";
  changes: number;
  /** Drift topo cannot repair, as the cluster stands after apply (a queue a user's policy keeps unmirrored, say). */
  degraded: string[];
  /** What topo could not read back, and so did not confirm ("mirroring"): "matches the file" is not said of it. */
  notCompared: string[];
}

export interface ApplyResult {
  /**
   * What apply did: each cluster's plan with the actions apply carried out. Under its lock a
   * cluster is planned again, so another hand's changes made while apply waited are not in it
   * (the plan read before the lock is the one onPlan was given).
   */
  plan: Plan;
  clusters: ClusterOutcome[];
  /** The file's clusters left out (--cluster, or a saved plan of fewer clusters): not read, so not known to match. */
  unread: string[];
  stats: { httpRequests: number; httpWrites: number; amqpRpcs: number };
}

/** What to do after an apply that stopped part-way. */
export const RERUN_HINT = "every step is idempotent: once the cause is fixed, run topo apply again and it does only what is left (topo plan shows it)";

/** Attempts per cluster when the connection is lost to a broker restart. */
const RECONNECTS = 3;
/** Reads of one cluster under the lock while other prefixes' marks keep appearing, before apply gives up. */
const READS_WHILE_MARKED = 4;
/**
 * How long after its read a cluster's plan may be kept under the lock (when no apply wrote since,
 * and no lock was waited for): longer, and it is read again, since other clients may have changed
 * the broker meanwhile. Between the read and the lock come only apply's own checks.
 */
const KEEP_READ_MS = 10_000;

export async function apply(opts: ApplyOptions): Promise<ApplyResult> {
  const { desired, source } = topologyOf(opts);
  const clusters = selectClusters(desired, opts.cluster, source);
  const clients = new Map<string, ManagementClient>(clusters.map((c) => [c.target.name, managementClient(c, opts)]));
  const sessions = new Map<string, AmqpSession>();
  const stats = { httpRequests: 0, httpWrites: 0, amqpRpcs: 0 };
  const client = (c: DesiredCluster) => clients.get(c.target.name) as ManagementClient;
  /** The actions each cluster carried out, by key: a retry after a lost connection re-plans what is left. */
  const carriedOut = new Map<string, Map<string, Action>>();
  const carryOut = (cluster: string, actions: readonly Action[]) => {
    writesBegin();
    const done = carriedOut.get(cluster) ?? new Map<string, Action>();
    for (const a of actions) done.set(a.key, a);
    carriedOut.set(cluster, done);
  };
  /** The actions the broker confirmed, per cluster: a retry after a lost connection finds them as apply made them. */
  const confirmed = new Map<string, Action[]>();
  /** Changes made and planned per cluster, for the progress counter and an interrupted apply's report. */
  const tally = new Map<string, { made: number; total: number }>();
  /** When the first read of every cluster ended (see KEEP_READ_MS). */
  let readAt = 0;
  // Names this apply's locks (one per cluster) to the others': they never stand in each other's way.
  const applyId = randomUUID();
  /** Replaces begun and not yet confirmed, per cluster: an interrupt may leave them half-way. */
  const inFlight = new Map<string, Map<string, Action>>();
  /** Per cluster, whether its AMQP user may publish through amq.default: asked once for all its replaces. */
  const publishQuestions = new Map<string, () => Promise<void>>();
  const publishAsked = (cluster: string, open: () => Promise<AmqpSession>): Promise<void> => {
    let ask = publishQuestions.get(cluster);
    if (!ask) publishQuestions.set(cluster, (ask = publishByDefaultQuestion(open)));
    return ask();
  };
  /** Clusters whose changes the read back confirmed: an interrupt says nothing is left there. */
  const readBackDone = new Set<string>();
  const interrupted = () => {
    const lines = clusters.flatMap((c) => {
      const t = tally.get(c.target.name);
      // A cluster that had begun no write (waiting for a lock, or checking under it) has nothing
      // made to report: if none had, the plan still holds, a saved one too.
      if (!t?.total || !carriedOut.get(c.target.name)?.size) return [];
      // Writes go out pipelined: those sent when apply stopped may have been made too, so the
      // count is what the broker confirmed, a floor (an interrupt at 2.5 s said 578 made where 802 were).
      const made = t.made >= t.total ? `all ${plural(t.total, "change")} were made` : `${t.made} of ${plural(t.total, "change")} ${t.total === 1 ? "was" : "were"} confirmed made (writes sent when it stopped may have been made too)`;
      const half = [...(inFlight.get(c.target.name)?.values() ?? [])].map((a) => `  ${halfWay(a)}`);
      // Every change made: confirmed by the read back, or stopped before it. Nothing is left to finish.
      const all = t.made >= t.total && half.length === 0;
      if (all && readBackDone.has(c.target.name)) return [`interrupted: cluster ${c.target.name}: all ${plural(t.total, "change")} were made, and the read back confirmed them`];
      const next = all ? "they were not read back to confirm them: topo plan shows whether the broker matches the file" : (opts.finish ?? `run topo apply again${half.length ? " now" : ""} to finish (topo plan shows what is left)`);
      return [`interrupted: cluster ${c.target.name}: ${made}; ${next}`, ...half];
    });
    return new InterruptedError(lines.length ? lines.join("\n") : `interrupted before any change was made; ${opts.restart ?? "run topo apply again (topo plan shows what it would do)"}`);
  };
  /** Clusters whose own error already says how many of their changes were made. */
  const counted = new Set<string>();
  /** Clusters whose AMQP connection was lost under the writes. */
  const lostWith = new Set<string>();
  /**
   * A cluster's error speaks of that cluster: every other cluster that made changes before apply
   * stopped (all of its share, or its vhost before its lock) is named with how many, and the
   * apply is then incomplete, whatever stopped it.
   */
  const alsoMade = (e: unknown): unknown => {
    if (!(e instanceof TopoError)) return e;
    const lines = clusters.flatMap((c) => {
      const name = c.target.name;
      const t = tally.get(name);
      if (!t || counted.has(name)) return [];
      // A replace under way when the connection went (and no reconnect got further): its queue's
      // messages and bindings may be on its holding queue, which only this says.
      const half = halfWayLines(e, inFlight.get(name));
      if (t.made === 0) return half.length ? [`  cluster ${name}: no change was confirmed made before apply stopped, but one was under way:`, ...half] : [];
      if (t.made >= t.total) return [`  cluster ${name}: ${t.made} of ${t.total} change${t.total === 1 ? " was" : "s were"} made before apply stopped`];
      // What the broker did not confirm. Writes go out in pipelined batches: those sent when the
      // connection was lost may have been made (a run cut that way made 324 where 302 were
      // confirmed), so the count is a floor, and the list what may still be to do.
      const done = new Set((confirmed.get(name) ?? []).map((a) => a.key));
      const left = [...(carriedOut.get(name)?.values() ?? [])].filter((a) => !done.has(a.key) && !(isVhostCreate(a) && t.made > 0));
      const maybe = lostWith.has(name) ? ` (writes sent when the connection was lost may have been made too: topo plan --cluster ${name} shows what is left)` : "";
      const shown = left.slice(0, 10).map((a) => `    ${renderAction(a)[0]}`);
      const more = left.length > shown.length ? [`    ... and ${left.length - shown.length} more`] : [];
      return [`  cluster ${name}: ${t.made} of ${t.total} change${t.total === 1 ? " was" : "s were"} confirmed made before apply stopped${maybe}${left.length ? "; not confirmed:" : ""}`, ...shown, ...more, ...half];
    });
    if (!lines.length) return e;
    const hints = e.hints.includes(RERUN_HINT) ? e.hints : [...e.hints, RERUN_HINT];
    // A loss outranks "incomplete": a pipeline that branches on the code must see it.
    return new ApplyError(`${e.message}\n${lines.join("\n")}`, hints, e.transient, e.code === "messages_lost" ? "messages_lost" : "apply_incomplete", e.place);
  };
  const checkInterrupted = () => {
    if (opts.signal?.aborted) throw interrupted();
  };
  // Closing the connections is what stops the writes in flight, and it releases the lock queues.
  const onAbort = () => void Promise.all([...sessions.values()].map((s) => s.close()));
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  /** Whether a cluster's connection was ever open: a connect that never opened is not a restart. */
  const opened = new Set<string>();
  /** The clusters that will write: all selected ones until the plans say which have changes. */
  let writing: readonly DesiredCluster[] = clusters;
  /** How many clusters of this apply write to c's broker as c's AMQP user, sharing its max-channels. */
  const sharingUser = (c: DesiredCluster): number =>
    writing.filter((x) => x.target.amqp.username === c.target.amqp.username && x.target.amqp.hostname.toLowerCase() === c.target.amqp.hostname.toLowerCase() && x.target.amqp.port === c.target.amqp.port).length;
  /** Whether a management user that may not read permissions may remove these bindings (broker/unbind-probe.ts). */
  const askUnbinds = (c: DesiredCluster) => (bindings: Binding[]) => unbindsRefused(c.target, bindings, { insecure: opts.insecure });
  const session = async (c: DesiredCluster): Promise<AmqpSession> => {
    checkInterrupted();
    let s = sessions.get(c.target.name);
    if (!s) {
      // A first connect gets a few quick attempts (the identity probe has just reached the port);
      // a reconnect after a restart waits for a booting node.
      s = await AmqpSession.open(c.target, { ...opts, connectAttempts: opened.has(c.target.name) ? 8 : 3 });
      // The user's max-channels counts like channel_max: the lock, the writes and a replace's move
      // keep within it, and a replace it leaves no room for is refused before anything is written.
      // Clusters of this apply on the same broker as the same user share it.
      const maxChannels = await readUserMaxChannels(client(c), c.target.amqp.username);
      if (maxChannels !== undefined) s.limitChannels(c.target.amqp.username, maxChannels, sharingUser(c));
      const short = noChannelShare(c.target.name, s);
      if (short) {
        await s.close();
        throw short;
      }
      opened.add(c.target.name);
      sessions.set(c.target.name, s);
      if (opts.signal?.aborted) onAbort();
    }
    return s;
  };

  try {
    const started = stopwatch("every cluster", opts.trace);
    // Who answers is checked before a session is opened for live counts, and before any write.
    // Beside it, before the read: what tells under the lock whether another apply wrote since the
    // read began (a saved plan is always read again under the lock, and checked against the saved one).
    const marks = await verifyClusters(
      desired.clusters,
      clusters,
      client,
      opts,
      async (c) => (opts.expect ? undefined : readApplyMark(client(c), c.target.amqp.vhost, desired.prefix)),
      // A login refused: what else the read refuses is said with it, as plan says both.
      async (c) => void (await readAndPlan(c, client(c), desired.prefix, { file: opts.file })),
    );
    checkInterrupted();
    let reads = await forEachCluster(clusters, async (c) => ({
      ...(await readAndPlan(c, client(c), desired.prefix, { live: () => session(c), askUnbinds: askUnbinds(c), keepState: opts.expect !== undefined, file: opts.file, movesNothing: opts.allowDataLoss })),
      mark: marks[clusters.indexOf(c)],
    }));
    readAt = Date.now();
    let plans = reads.map((r) => r.plan);
    started("read and planned");
    opts.expect?.(reads.map(freshOf));
    const unread = unreadClusters(desired, clusters);
    // Queue deletes are counted live before the plan is shown: shown first, it lacked the
    // consumers plan showed, and the refusal that followed named them (advp).
    let countFailed: { e: unknown } | undefined;
    if (!opts.allowDataLoss) {
      await forEachCluster(clusters, async (c) => {
        const p = plans.find((x) => x.cluster === c.target.name) as ClusterPlan;
        if (deletesQueues(p)) await countMessages(p, await session(c), client(c), c.target);
      }).catch((e: unknown) => (countFailed = { e }));
    }
    await opts.onPlan?.({ clusters: plans, ...(unread.length ? { unread } : {}) });
    checkInterrupted();

    // Refuse before anything is written, on any cluster; queue deletes are judged on the
    // broker's live counts. Every flag the plan lacks is named in one run: the counts are read
    // even when a destructive change is refused, and both refusals are said together.
    const refused: unknown[] = [];
    const guard = (allowed: Parameters<typeof guardPlans>[1]) => {
      try {
        guardPlans(plans, allowed);
      } catch (e) {
        if (!(e instanceof TopoError) || !/^refused_/.test(e.code)) throw e;
        refused.push(e);
      }
    };
    guard({ allowDestructive: opts.allowDestructive, allowUnmanagedDeletes: opts.allowUnmanagedDeletes, allowDataLoss: true, plainReplaces: opts.allowDataLoss });
    if (countFailed) throw allOf([...refused, countFailed.e]);
    if (!opts.allowDataLoss) guard({ allowDestructive: true, allowUnmanagedDeletes: true, allowDataLoss: false });
    if (refused.length) {
      // Another apply holds a cluster's lock: what this one read may be that apply's work under
      // way (a replace's move holds messages unacknowledged, its holding queue looks like an
      // interrupted replace), and refusing on it failed a second pipeline, with advice to allow
      // data loss, while the first replaced the queue without losing a message. The refusal waits
      // for the lock: under it every cluster is read, counted and guarded again before any writes.
      const busy = reads.filter((r) => lockHeld(r.actual, desired.prefix)).map((r) => r.plan.cluster);
      if (!busy.length || opts.expect) throw allOf(refused);
      opts.log(`cluster${busy.length === 1 ? "" : "s"} ${busy.join(", ")}: another apply holds the lock, so this plan may show its work under way; apply waits for the lock, then reads, counts and checks again under it before writing`);
    }

    // No cluster writes until every cluster with changes holds its lock and has been checked
    // again under it: a saved plan gone stale, a count that refuses a delete, or a user who may
    // not declare the lock queue on one cluster stops them all before any of them writes.
    // Each holds its lock while it waits for the others, so they take them one at a time in one order.
    const changing = clusters.filter((c) => plans.some((p) => p.cluster === c.target.name && p.actions.length > 0));
    // A cluster with nothing to write opens no channel: the others share the user's max-channels.
    writing = changing;
    // Every cluster that will write logs in over AMQP before any cluster writes: the identity
    // probe reads only connection.start, so a refused login (a wrong password in one url) would
    // otherwise stop its cluster after the other one had been changed. A cluster whose vhost
    // apply creates cannot open a session before that write: its login alone is checked.
    const createsVhost = (c: DesiredCluster) => plans.some((p) => p.cluster === c.target.name && p.actions.some(isVhostCreate));
    // Nor can it learn from a session that its user's max-channels leaves it no channel: that is
    // read from the management API, so the refusal comes before the vhost is written too.
    const loginAndShare = async (c: DesiredCluster): Promise<void> => {
      await checkLogin(c.target, opts);
      const max = await readUserMaxChannels(client(c), c.target.amqp.username);
      const short = max === undefined ? undefined : channelShareRefusal(c.target.name, c.target.amqp.username, max, sharingUser(c));
      if (short) throw short;
    };
    await forEachCluster(changing, async (c) => void (createsVhost(c) ? await loginAndShare(c) : await session(c)));
    checkInterrupted();
    const checked = opts.expect || changing.length > 1 ? new Barrier(lockOrder(changing.map((c) => c.target))) : undefined;
    // Each cluster's read before the lock is its own apply's, which lets go of it once it has
    // compared it with the read under the lock. Held by this function's variables, the reads stayed
    // until every cluster had read back: at 25,000 services the plans alone are 150,000 actions
    // (19 MB), beside the plans being written.
    const firstReads = new Map(reads.map((r) => [r.plan.cluster, r]));
    const shells = plans.map((p) => ({ ...p, actions: [] as Action[] }));
    reads = [];
    plans = [];
    /**
     * The vhost first, then what the rest of the cluster's apply needs of its first read, in a
     * container its read under the lock empties (this function's own variables go when it returns).
     */
    const beginCluster = async (c: DesiredCluster): Promise<ClusterOutcome | { t: { made: number; total: number }; intent: string[]; first: FirstRead }> => {
      const firstRead = firstReads.get(c.target.name) as NonNullable<ReturnType<typeof firstReads.get>>;
      firstReads.delete(c.target.name);
      const first = firstRead.plan;
      if (first.actions.length === 0) return { name: c.target.name, status: "unchanged", changes: 0, degraded: first.degraded, notCompared: first.notCompared ?? [] };
      checkInterrupted();
      // One count for the whole cluster, the vhost included, as plan showed it.
      const t = { made: 0, total: first.actions.length };
      tally.set(c.target.name, t);
      // The lock lives in the vhost, so the vhost comes first (an idempotent PUT).
      const vhostActions = first.actions.filter(isVhostCreate);
      if (vhostActions.length) {
        carryOut(c.target.name, vhostActions);
        try {
          // The rest of the plan is not done either when the vhost step fails.
          await execute({ ...first, actions: vhostActions }, ctx(c, t), execOpts(opts), t, first.actions.filter((a) => !isVhostCreate(a)));
        } catch (e) {
          if (e instanceof ApplyError) counted.add(c.target.name);
          checked?.fail(e, c.target.name);
          throw e;
        }
        opts.trace?.(`cluster ${c.target.name}: created the vhost`);
      }
      const rest: ClusterPlan = { ...first, actions: first.actions.filter((a) => !isVhostCreate(a)) };
      // The users its lock names to other applies: the file's, and those the plan read deletes.
      const intent = c.users ? [...new Set([...c.users.onBroker, ...usersWritten(first)])].sort() : [];
      // The read may be kept under the lock if no apply wrote since it began. Not when apply
      // created the vhost (the read found none), and not for a replace or a policy change that
      // tightens a queue's limits, which are judged on the queues' counts read under the lock.
      const keepable =
        firstRead.mark && !vhostActions.length && !rest.actions.some((a) => a.op === "replace") && limitShifts(rest.actions, firstRead.actual).length === 0
          ? { ...firstRead, mark: firstRead.mark }
          : undefined;
      return { t, intent, first: new FirstRead(rest, keepable, c.users ? usersAsRead(firstRead.actual) : undefined) };
    };
    const applyCluster = async (c: DesiredCluster): Promise<ClusterOutcome> => {
      const begun = await beginCluster(c);
      if ("status" in begun) return begun;
      const { t, intent, first } = begun;
      // A connection lost to a broker restart is retried from the top (lock, plan, execute):
      // every step is idempotent, and the new plan holds only what is left.
      const passed = { barrier: false };
      for (let attempt = 1; ; attempt++) {
        try {
          const { degraded, notCompared } = await applyUnderLock(c, { first: attempt === 1 ? first : undefined, t, checked: attempt === 1 ? checked : undefined, passed, intent });
          // Closing the connection lets go of the lock now, not when every cluster is done: two
          // applies that each took one cluster first would otherwise wait on each other.
          await dropSession(c);
          // Nothing made: another apply (or hand) made the changes while this one waited for the lock.
          return { name: c.target.name, status: t.made ? "applied" : "unchanged", changes: t.made, degraded, notCompared };
        } catch (e) {
          checkInterrupted();
          // Only a connection that was open and then lost is a restart worth waiting for; one
          // that never opened (a wrong port, a refused login) fails at once. Nor is a cluster that
          // had not yet passed the barrier: its failure has already stopped the others, and a
          // retry would not check a saved plan under every lock.
          const lost = sessions.get(c.target.name)?.lost !== undefined;
          if (lost) lostWith.add(c.target.name);
          if (checked?.failedBy !== undefined && checked.failedBy !== c.target.name && !passed.barrier) {
            // Said once per cluster stopped by another's failure: the error itself is the other's.
            opts.log(`cluster ${c.target.name}: stopped before writing${t.made ? ` anything but its vhost` : ""}: cluster ${checked.failedBy} failed before any cluster wrote`);
          }
          if (!(e instanceof TopoError) || !e.transient || !lost || attempt >= RECONNECTS || (checked && !passed.barrier)) {
            // Another cluster may go on for a while: this one's lock goes now.
            await dropSession(c);
            const gone = await vhostDeleted(e, c, client(c));
            // A replace under way went with the vhost, its holding queue too: not half-way.
            if (gone instanceof VhostGone) {
              inFlight.delete(c.target.name);
              throw gone;
            }
            throw withHalfWay(gone, c.target.name, inFlight.get(c.target.name));
          }
          // The error that counted this cluster's changes is only logged: the attempt after it
          // may fail with one that does not (a connect refused by a node still down), and the
          // changes already made must then be counted all the same (apply_incomplete).
          counted.delete(c.target.name);
          const delay = backoff(attempt + 2);
          // The error's message already starts with "cluster NAME:".
          opts.log(`${e.message.split("\n")[0]}\ncluster ${c.target.name}: reconnecting in ${(delay / 1000).toFixed(1)} s (attempt ${attempt + 1} of ${RECONNECTS})`);
          await dropSession(c);
          await sleep(delay);
          checkInterrupted();
        }
      }
    };
    // A cluster that is over, done or failed, is no longer under way: another may go on for
    // minutes, and its quiet lines said of a cluster that had failed that it still waited.
    const outcomes = await forEachCluster(clusters, (c) => applyCluster(c).finally(() => opts.ended?.(c.target.name)));
    const made: Plan = { clusters: shells.map((p) => ({ ...p, actions: [...(carriedOut.get(p.cluster)?.values() ?? [])] })) };
    return { plan: made, clusters: outcomes, unread, stats };
  } catch (e) {
    // Whatever a closed connection made the writes in flight throw, the cause was the signal.
    checkInterrupted();
    throw alsoMade(e);
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
    await Promise.all([...sessions.values()].map((s) => s.close()));
    for (const s of sessions.values()) stats.amqpRpcs += s.rpcs;
    for (const c of clients.values()) {
      stats.httpRequests += c.requests;
      stats.httpWrites += c.writes;
      c.close();
    }
  }

  /**
   * Lock, plan again (or keep the first read, where no apply wrote since), check that plan, and
   * wait until every cluster has passed its checks. The first read is taken out of its container
   * here and let go of when this returns, before any write.
   */
  async function planUnderLock(
    c: DesiredCluster,
    { first, t, checked, passed, intent }: UnderLock,
  ): Promise<{ s: AmqpSession; read: Awaited<ReturnType<typeof readAndPlan>>; step: (what: string) => void } | { degraded: string[]; notCompared: string[] }> {
    const taken = first?.take();
    const expected = taken?.plan;
    const earlier = taken?.earlier;
    const firstUsers = taken?.users;
    const http = client(c);
    const step = stopwatch(`cluster ${c.target.name}`, opts.trace);
    let read: Awaited<ReturnType<typeof readAndPlan>>;
    let s: AmqpSession;
    try {
      s = await session(c);
      step("connected over AMQP");
      await checked?.turn(c.target.name);
      const { waited } = await acquireLock(s, http, c.target.amqp.vhost, {
        queue: lockQueueName(desired.prefix),
        timeoutMs: opts.lockTimeoutMs,
        log: opts.log,
        amqpDisplay: c.target.amqp.display,
        ...(c.users ? { users: intent, applyId } : {}),
      });
      checked?.taken(c.target.name, waited);
      step("took the lock");
      await checked?.allLocked();
      // A read under the lock, its counts live through this session.
      const replan = () => readAndPlan(c, http, desired.prefix, { live: async () => s, askUnbinds: askUnbinds(c), keepState: opts.expect !== undefined, file: opts.file, movesNothing: opts.allowDataLoss });
      // Plan again under the lock when another apply may have changed the broker since the read.
      // Only a read made a moment ago, and no lock waited for since: the mark tells of other
      // applies, never of other clients, and a read kept across a wait for a lock (this cluster's
      // or another's) would act on whatever those clients changed meanwhile unseen.
      const recent = !waited && !checked?.waited && Date.now() - readAt <= KEEP_READ_MS;
      if (earlier && recent && (await unchangedSince(http, c.target.amqp.vhost, desired.prefix, earlier.mark))) {
        read = earlier;
        step("kept the plan it read: no apply wrote since");
      } else {
        read = await replan();
        step("planned again under the lock");
      }
      // A plan that deletes or replaces is read again while another prefix's mark appears that
      // its read did not see (broker/generation.ts): that file's apply ran while this one read.
      // Every read is checked so; one still torn after READS_WHILE_MARKED is refused, unwritten.
      for (let reads = 1; read.plan.actions.some((a) => a.op === "delete" || a.op === "replace"); reads++) {
        const appeared = await markersSince(http, c.target.amqp.vhost, read.actual.resources);
        if (appeared !== undefined && appeared.length === 0) break;
        const why = appeared?.length ? `prefix ${appeared.join(", ")} marked the vhost while apply read it` : "topo's marks and locks in the vhost changed while apply listed them";
        if (reads === READS_WHILE_MARKED) {
          throw new LockError(
            `cluster ${c.target.name}: ${why}, at each of ${reads} reads: other files' applies keep changing the vhost, and a plan that deletes could take their objects for this file's; nothing was written`,
            [`run topo apply again once the other applies on vhost ${c.target.amqp.vhost} have finished`],
            { cluster: c.target.name },
          );
        }
        opts.log(`cluster ${c.target.name}: ${why}: reading again`);
        read = await replan();
      }
      if (expected) {
        try {
          opts.expect?.([freshOf(read)], [...(carriedOut.get(c.target.name)?.values() ?? [])]);
        } catch (e) {
          // Its refusal says what was written to this cluster (nothing, or the vhost): said once.
          counted.add(c.target.name);
          throw e;
        }
      }
      else if (opts.expectWithin) {
        // A retry after a lost connection carries on with what is left of the checked plan, on a
        // broker that only this plan changed since, and with nothing else.
        const outside = opts.expectWithin(freshOf(read), confirmed.get(c.target.name) ?? []);
        if (outside.length) {
          counted.add(c.target.name);
          throw new StalePlanError(
            `cluster ${c.target.name}: the connection was lost after ${plural(t.made, "change")} of the saved plan ${t.made === 1 ? "was" : "were"} made, and the broker is no longer as the plan left it:\n${outside.map((l) => `  ${l}`).join("\n")}\nnothing more was written to cluster ${c.target.name}`,
            ["run topo plan -o FILE again, review what is left, and apply that"],
          );
        }
      }
      // An exchange replace the lost connection cut after its delete took with it the bindings only
      // its plan knew (a user's queue bound to it): they go back with the re-created exchange. So
      // for a queue replaced by delete and re-create (--allow-data-loss); a lossless one keeps
      // them on its holding queue, and its resume puts them back.
      if (!expected) {
        const back = carriedBindings(inFlight.get(c.target.name), read, opts.log, c.target.name, opts.allowDataLoss);
        if (back.length) read.plan.actions.push(...back);
      }
      // Refusals on live counts come before the barrier too: no cluster writes while another
      // may still refuse.
      if (!opts.allowDataLoss && deletesQueues(read.plan)) await countMessages(read.plan, s, http, c.target);
      guardPlans([read.plan], opts);
      refuseShortOfChannels(read.plan, s, execOpts(opts));
      // Users are the broker's: another prefix's (or vhost's) apply may write one now, under a lock of its own.
      const own = {
        lock: lockQueueName(desired.prefix),
        clusters: desired.clusters.filter((o) => o.target.management.baseUrl === c.target.management.baseUrl).map((o) => ({ name: o.target.name, vhost: o.target.amqp.vhost })),
      };
      await refuseRivalUserWrites(http, { cluster: c.target.name, vhost: c.target.amqp.vhost, applyId, intent, plan: read.plan, actual: read.actual, saved: opts.expect !== undefined, own, ...(firstUsers ? { first: firstUsers } : {}) });
    } catch (e) {
      checked?.fail(e, c.target.name);
      throw e;
    }
    await checked?.arrive();
    passed.barrier = true;
    const current = read.plan;
    // After a lost connection (no plan expected: a retry), what the new plan no longer holds was
    // made, confirmed or not (writes in flight landed): the count keeps the first plan's total.
    if (!expected) t.made = Math.max(t.made, t.total - current.actions.length);
    if (current.actions.length === 0) {
      if (expected?.actions.length) opts.log(`cluster ${c.target.name}: nothing left to do (another apply made the changes)`);
      return { degraded: current.degraded, notCompared: current.notCompared ?? [] };
    }
    if (expected && !samePlan(expected, current)) {
      opts.log(`cluster ${c.target.name}: the broker changed since the plan was read; applying the current plan:\n${renderText({ clusters: [current] })}`);
    }
    return { s, read, step };
  }

  /** Lock, plan again, carry out the plan, read back. Returns what is degraded after it (drift topo cannot repair), and what it could not read back. */
  async function applyUnderLock(c: DesiredCluster, under: UnderLock): Promise<{ degraded: string[]; notCompared: string[] }> {
    const planned = await planUnderLock(c, under);
    if (!("read" in planned)) return planned;
    const { t } = under;
    const { s, read, step } = planned;
    const http = client(c);
    const current = read.plan;
    if (opts.allowDataLoss) for (const line of dataLossLines(current)) opts.log(line);
    // Before the first write: an apply that read before this one took the lock reads again.
    await renewApplyMark(s, desired.prefix, opts.file);
    // Counted with what this apply made before (the vhost, or a run cut short by a restart).
    t.total = t.made + current.actions.length;
    opts.log(`cluster ${c.target.name}: applying ${plural(t.total, "change")}${t.made ? ` (${t.made} made already)` : ""}`);
    // The counter starts here, not at the first change made: a broker that answers none is then
    // said to be waited for, too.
    opts.progress?.(c.target.name, t.made, t.total);
    checkInterrupted();
    carryOut(c.target.name, current.actions);
    await execute(current, ctx(c, t), execOpts(opts), t).catch((e: unknown) => {
      // A replace it stopped half-way is said once the cluster has given up (withHalfWay): a
      // retry finishes it, and a vhost deleted under it took the replace with it.
      if (e instanceof ApplyError) counted.add(c.target.name);
      throw e;
    });
    step(`made ${plural(current.actions.length, "change")}`);
    // Stopped (Ctrl-C, SIGTERM) once its writes were done: the read back is no change in flight,
    // and an apply that went on to say "Apply complete" exited 0 to a signal that stopped it. One
    // that came once the read back had begun lets it finish.
    checkInterrupted();

    // An apply whose re-plan is not empty has failed; one that cannot re-plan has not confirmed
    // its changes, and says so rather than leave them counted as if that were all.
    const { plan: after, requests, meanwhile } = await readBackPlan(c, http, desired.prefix, read.actual, current, opts.file).catch((e: unknown) => {
      if (!(e instanceof TopoError)) throw e;
      counted.add(c.target.name);
      throw new ApplyError(
        `${e.message}\n  cluster ${c.target.name}: apply made ${t.made === t.total ? `all ${plural(t.total, "change")}` : `${t.made} of ${plural(t.total, "change")}`}, but this failure stopped it reading the cluster back to confirm that the broker matches the file`,
        [...e.hints, `topo plan --cluster ${c.target.name} shows whether anything is left, and topo apply finishes it`],
        e.transient,
        "apply_incomplete",
        e.place ?? { cluster: c.target.name },
      );
    });
    step(requests === undefined ? "read back the whole cluster" : `read back what it wrote (${plural(requests, "request")})`);
    if (meanwhile) opts.log(`cluster ${c.target.name}: warning: ${meanwhile}`);
    if (after.actions.length) {
      counted.add(c.target.name);
      throw new ApplyError(
        `cluster ${c.target.name}: apply made its changes, but the broker still differs from the file:\n${after.actions.flatMap(renderAction).map((l) => `    ${l}`).join("\n")}`,
        ["something else changed the broker during the apply, or the broker ignored a write; run topo plan to see the current state"],
        false,
        "apply_incomplete",
        { cluster: c.target.name },
      );
    }
    readBackDone.add(c.target.name);
    // Nothing of the prefix is left on the vhost, as the broker just confirmed: nor is its mark.
    // Left behind, it only makes other prefixes' plans warn: a failure to delete it is said, not fatal.
    if (!c.resources.some(claimsNames)) {
      const mark = `its apply mark (exchange ${applyMarkName(desired.prefix)})`;
      await deleteApplyMark(s, desired.prefix).then(
        () => opts.log(`cluster ${c.target.name}: prefix ${desired.prefix} has nothing left on vhost ${c.target.amqp.vhost}, so ${mark} was deleted too`),
        (e: unknown) => opts.log(`cluster ${c.target.name}: warning: prefix ${desired.prefix} has nothing left on vhost ${c.target.amqp.vhost}, but ${mark} could not be deleted: ${(e as Error).message}; it only makes the plans of prefixes that start with ${desired.prefix} (or that it starts with) warn that this one still uses the vhost: delete that exchange yourself`),
      );
    }
    // Drift topo cannot repair does not fail a deploy (the queues exist and work); plan
    // --detailed-exitcode reports it. The broker then does not match the file, and apply says so.
    const unread = after.notCompared?.length ? ` in what topo could read (not compared: ${after.notCompared.join(", ")})` : "";
    const state = after.degraded.length ? `it differs from the file only by what is degraded, which topo cannot repair` : `the broker matches the file${unread}`;
    opts.log(`cluster ${c.target.name}: ${plural(t.made, "change")} applied; ${state}`);
    for (const d of after.degraded) opts.log(`cluster ${c.target.name}: warning: degraded: ${d}`);
    return { degraded: after.degraded, notCompared: after.notCompared ?? [] };
  }

  async function dropSession(c: DesiredCluster): Promise<void> {
    const s = sessions.get(c.target.name);
    if (!s) return;
    sessions.delete(c.target.name);
    stats.amqpRpcs += s.rpcs;
    await s.close();
  }

  /** Progress counts the cluster's whole plan: what earlier steps made plus this step's done. */
  function ctx(c: DesiredCluster, t: { made: number; total: number }) {
    const progress = opts.progress;
    const base = t.made;
    return {
      target: c.target,
      http: client(c),
      amqp: () => session(c),
      log: opts.log,
      credentials: c.users?.credentials,
      busy: (what: string) => opts.busy?.(c.target.name, what),
      mayPublishByDefault: () => publishAsked(c.target.name, () => AmqpSession.open(c.target, { insecure: opts.insecure, connectAttempts: 1 })),
      begun: (a: Action) => {
        const on = inFlight.get(c.target.name) ?? new Map<string, Action>();
        inFlight.set(c.target.name, on.set(a.key, a));
      },
      existed: (a: Action) => {
        // Not among what apply made (its --json plan, its count): another apply made it.
        carriedOut.get(c.target.name)?.delete(a.key);
      },
      progress: (done: number, _total: number, made: Action) => {
        inFlight.get(c.target.name)?.delete(made.key);
        t.made = base + done;
        const list = confirmed.get(c.target.name) ?? [];
        list.push(made);
        confirmed.set(c.target.name, list);
        progress?.(c.target.name, t.made, t.total);
      },
    };
  }
}

/**
 * What a cluster's apply under its lock is given: its read before the lock (on the first attempt
 * only), its count of changes, the barrier every cluster passes before any writes (the first
 * attempt only), whether it has passed it, and the users its lock names.
 */
interface UnderLock {
  first: FirstRead | undefined;
  t: { made: number; total: number };
  checked: Barrier | undefined;
  passed: { barrier: boolean };
  intent: readonly string[];
}

/**
 * A cluster's plan read before the lock, and that read itself where it may be kept under the lock,
 * until the read under the lock takes them out (planUnderLock). A container, so that once they are
 * taken no frame of apply's still holds them: an async function keeps every variable of its frame
 * while it waits, used again or not.
 */
class FirstRead {
  constructor(
    private plan: ClusterPlan | undefined,
    private earlier: { plan: ClusterPlan; actual: ActualCluster; mark: ApplyMark } | undefined,
    /** The users as that read found them: a user written between it and the lock stops the apply (broker/user-writers.ts). */
    private users: UsersAsRead | undefined,
  ) {}

  take(): { plan?: ClusterPlan; earlier?: { plan: ClusterPlan; actual: ActualCluster; mark: ApplyMark }; users?: UsersAsRead } {
    const taken = { plan: this.plan, earlier: this.earlier, users: this.users };
    this.plan = undefined;
    this.earlier = undefined;
    this.users = undefined;
    return taken;
  }
}

/**
 * Several clusters (and a saved plan's) write only once every one of them has been checked under its lock. Each
 * holds its lock while it waits for the others, so the locks are taken one after another in the
 * order of lockOrder, which every apply agrees on: two applies can then never each hold a lock the
 * other is waiting for.
 */
class Barrier {
  private arrived = 0;
  private readonly done: Promise<void>;
  private release!: () => void;
  private reject!: (e: unknown) => void;
  private readonly locked = new Map<string, () => void>();
  private readonly turns: Map<string, Promise<void>>;

  constructor(private readonly order: readonly string[]) {
    this.done = new Promise<void>((resolve, reject) => {
      this.release = resolve;
      this.reject = reject;
    });
    // A failure nobody waits for is not an unhandled rejection: the failing cluster throws it.
    this.done.catch(() => undefined);
    this.turns = new Map(order.map((name) => [name, new Promise<void>((resolve) => this.locked.set(name, resolve))]));
  }

  /** Resolves once the cluster before this one in the order holds its lock; rejects when any cluster failed. */
  async turn(cluster: string): Promise<void> {
    const before = this.order[this.order.indexOf(cluster) - 1];
    if (before !== undefined) await Promise.race([this.turns.get(before), this.done]);
  }

  /** Whether any cluster waited for a lock another held. */
  waited = false;

  taken(cluster: string, waited: boolean): void {
    this.waited ||= waited;
    this.locked.get(cluster)?.();
    if (++this.lockedCount >= this.order.length) this.releaseLocked();
  }

  /**
   * Resolves once every cluster holds its lock; rejects when any cluster failed. Each cluster is
   * read and checked only then: one checked as soon as its own lock was taken could change while
   * the next waited for its lock (up to --lock-timeout), and was written as checked (a binding
   * another client added meanwhile went with an exchange delete, without --allow-unmanaged-deletes).
   */
  async allLocked(): Promise<void> {
    await Promise.race([this.everyLock, this.done]);
  }

  private lockedCount = 0;
  private releaseLocked!: () => void;
  private readonly everyLock = new Promise<void>((resolve) => (this.releaseLocked = resolve));

  arrive(): Promise<void> {
    if (++this.arrived >= this.order.length) this.release();
    return this.done;
  }

  /** The cluster whose failure stopped the others, if one did. */
  failedBy?: string;

  fail(e: unknown, cluster: string): void {
    this.failedBy ??= cluster;
    this.reject(e);
  }
}

/**
 * The order in which an apply takes several locks at once: by the broker's address and the vhost
 * (where the lock lives), then the cluster's name. Two applies of one file, or of two files that
 * reach the same brokers by the same addresses, agree on it.
 */
export function lockOrder(targets: readonly ClusterTarget[]): string[] {
  const key = (t: ClusterTarget) => [t.amqp.hostname.toLowerCase(), String(t.amqp.port).padStart(5, "0"), t.amqp.vhost, t.name];
  return [...targets]
    .sort((x, y) => {
      const [kx, ky] = [key(x), key(y)];
      const i = kx.findIndex((part, n) => part !== ky[n]);
      return i < 0 ? 0 : (kx[i] as string) < (ky[i] as string) ? -1 : 1;
    })
    .map((t) => t.name);
}

/**
 * The bindings that exchange replaces (and queue replaces by delete and re-create) begun before a
 * lost connection were to put back and the broker no longer has, as creates: the new plan cannot
 * know those topo does not manage (the read after the cut finds the object gone, or bare). One
 * whose other end is gone too cannot be made, and is said.
 */
function carriedBindings(begun: Map<string, Action> | undefined, read: { plan: ClusterPlan; actual: ActualCluster }, log: (m: string) => void, cluster: string, plainQueues: boolean): Action[] {
  const cut = [...(begun?.values() ?? [])].filter((a): a is ReplaceAction => a.op === "replace" && (subjectOf(a).kind === "exchange" || (plainQueues && subjectOf(a).kind === "queue")));
  if (!cut.length) return [];
  const have = new Set(read.actual.resources.map(keyOf));
  const planned = new Set(read.plan.actions.filter((a) => a.op !== "delete").map((a) => a.key));
  const there = (kind: "exchange" | "queue", name: string) => {
    if (kind === "exchange" && (name === "" || name.startsWith("amq."))) return true;
    const key = nameKey(kind, name);
    return have.has(key) || planned.has(key);
  };
  const out = new Map<string, Action>();
  for (const a of cut) {
    for (const b of a.rebind) {
      const key = keyOf(b);
      if (have.has(key) || planned.has(key) || out.has(key)) continue;
      if (there("exchange", b.source) && there(b.destinationType, b.destination)) out.set(key, { op: "create", key, after: b });
      else log(`cluster ${cluster}: warning: binding ${describe(b)} went with ${subjectOf(a).kind} ${describe(subjectOf(a))} when the connection was lost, and cannot be put back: ${b.destinationType} ${b.destination} or exchange ${b.source} is gone`);
    }
  }
  return [...out.values()];
}

/** The objects whose names a prefix claims on its vhost, its mark says: while the file has one there, the mark stays. */
function claimsNames(r: Resource): boolean {
  return r.kind === "exchange" || r.kind === "queue" || r.kind === "binding" || r.kind === "policy";
}

/**
 * A write refused with 403 ACCESS_REFUSED, or a reconnect refused with "vhost not found", whose
 * vhost is gone: RabbitMQ refuses every write in a vhost deleted under the connection so, and the
 * hint to grant rights (or to create the vhost by hand) missed the cause: the vhost was deleted
 * during the apply, and the next apply creates it again.
 */
async function vhostDeleted(e: unknown, c: DesiredCluster, http: ManagementClient): Promise<unknown> {
  // 403 on a write; or, where the vhost's deletion took the lock queue first (apply then
  // reconnects to take it again), 530 "vhost ... not found" at the reconnect; or 404 for an object
  // that went with it (a replace's count of its holding queue, ops).
  if (!(e instanceof TopoError) || !/\b403\b|ACCESS_REFUSED|530 NOT_ALLOWED - vhost |\b404\b|NOT_FOUND/.test(e.message)) return e;
  const vhost = c.target.amqp.vhost;
  const user = c.target.amqp.username;
  // RabbitMQ removes a vhost's permissions at once and the vhost itself only once it has deleted
  // what it held (measured on 3.10.8, 900 objects: permissions gone 0.2 s after the DELETE, the
  // vhost listed 2 s more). Where the user's rights there are gone too, the wait for the listing is
  // longer; a management user that may not read them reads none (undefined).
  // "none" only where the rights are gone: a management user that may not read them (no
  // administrator) reads undefined, which says nothing of them.
  const rights = await readVhostPermission(http, c.target, user).catch(() => undefined);
  // Read a few times: while RabbitMQ 3.10 deletes a vhost under open channels, the vhost shows for
  // a moment again (measured: listed once right after the 403, absent before and after). Without
  // rights, up to 20 s: a vhost of 3,500 objects on a busy 2-core machine was listed for over 10.
  // (A vhost whose rights were revoked stays listed, and is said after that wait.)
  const listed = () => vhostListed(http, vhost).catch(() => true);
  let gone = false;
  for (let i = 0; i < (rights === "none" ? 100 : 5) && !gone; i++) {
    if (i) await sleep(200);
    gone = !(await listed());
  }
  if (!gone && rights === "none") {
    return new ApplyError(
      `${e.message}\n  cluster ${c.target.name}: user ${shown(user)} has no permissions in vhost ${shown(vhost)} now: they went while apply ran, revoked, or with the vhost, which RabbitMQ is still deleting (it removes a vhost's permissions first)`,
      [`topo plan --cluster ${c.target.name} tells which: it plans to create the vhost once it is gone; if the rights were revoked, rabbitmqctl set_permissions -p ${shellWord(vhost)} ${shellWord(user)} CONFIGURE WRITE READ gives them back (docs/users.md lists what topo needs)`, ...e.hints.filter((h) => !/set_permissions|list_user_permissions/.test(h))],
      false,
      "apply_incomplete",
      e.place ?? { cluster: c.target.name },
    );
  }
  if (!gone) return e;
  return new VhostGone(e, c);
}

/** An apply stopped by its cluster's vhost being deleted under it. */
class VhostGone extends ApplyError {
  constructor(e: TopoError, c: DesiredCluster) {
    const vhost = c.target.amqp.vhost;
    super(
      `${e.message}\n  cluster ${c.target.name}: vhost ${shown(vhost)} no longer exists: it was deleted while apply ran, with everything it held (the messages of any queue being replaced included), and RabbitMQ refuses every request in a deleted vhost (access refused, or not found)`,
      [`if the vhost was meant to go, remove cluster ${c.target.name} from the file; otherwise topo apply creates it again (everything in it was lost with it)`],
      false,
      "apply_incomplete",
      e.place ?? { cluster: c.target.name },
    );
  }
}

/**
 * A failure that stopped a replace half-way is counted as not done, but is not as it was: its
 * queue's routes may lead to the holding queue now, where no worker reads. Said with the failure.
 */
function withHalfWay(e: unknown, cluster: string, begun: ReadonlyMap<string, Action> | undefined): unknown {
  const half = halfWayLines(e, begun);
  if (!(e instanceof ApplyError) || !half.length) return e;
  return new ApplyError(`${e.message}\n  cluster ${cluster}: stopped half-way:\n${half.join("\n")}`, e.hints, e.transient, e.code, e.place);
}

/** What the replaces under way left, a line each, but for one whose holding queue the error says was lost. */
function halfWayLines(e: unknown, begun: ReadonlyMap<string, Action> | undefined): string[] {
  return [...(begun?.values() ?? [])].filter((a) => !holdSaidLost(e, a)).map((a) => `    ${halfWay(a)}`);
}

/**
 * The error says this replace's holding queue was deleted under it, with what it held
 * (messages_lost, about that queue): "its bindings and messages may be on topo.hold..., where new
 * messages wait" beneath it said the opposite of what had happened.
 */
function holdSaidLost(e: unknown, a: Action): boolean {
  const r = subjectOf(a);
  return e instanceof TopoError && e.code === "messages_lost" && r.kind === "queue" && e.place?.object === `queue ${holdingQueueName(r.name)}`;
}

/** What a replace stopped half-way leaves, said under an interrupted apply. */
function halfWay(a: Action): string {
  const r = subjectOf(a);
  if (r.kind === "queue") {
    const hold = holdingQueueName(r.name);
    return `queue ${describe(r)} was being replaced: its bindings and messages may be on ${hold}, where new messages wait and no worker takes them, until apply finishes the replace`;
  }
  return `${r.kind} ${describe(r)} was being replaced: it may be missing, or without its bindings, until apply finishes the replace`;
}

/** Reports the time since the previous step, when tracing. */
function stopwatch(label: string, trace: ((msg: string) => void) | undefined): (what: string) => void {
  let last = performance.now();
  return (what) => {
    const now = performance.now();
    trace?.(`${label}: ${what} (${Math.round(now - last)} ms)`);
    last = now;
  };
}

/**
 * Carry out a plan; one a broker error stopped part-way says what was and was not done (`later`:
 * the cluster's actions that were to follow this plan's, not done either).
 */
async function execute(plan: ClusterPlan, ctx: ExecuteContext, opts: ExecuteOptions, t: { made: number; total: number }, later: Action[] = []): Promise<void> {
  try {
    await executePlan(plan, ctx, opts);
  } catch (e) {
    if (!(e instanceof ExecutionStopped)) throw e;
    const { failure } = e;
    const left = [...e.left, ...later];
    // Counted over the cluster's whole plan, as plan and the progress lines count.
    const doneCount = t.made;
    const shown = left.slice(0, 10).map((a) => `    ${renderAction(a)[0]}`);
    const more = left.length > shown.length ? [`    ... and ${left.length - shown.length} more`] : [];
    throw new ApplyError(
      // Writes go out pipelined over many channels: those sent when one failed may have been made
      // too (a 403 part-way through 4,501 creates listed 3,476 as not done, and 3,002 were left),
      // so the count is a floor and the list what may still be to do, as after a lost connection.
      [
        failure.message,
        `  cluster ${plan.cluster}: ${doneCount} of ${t.total} change${t.total === 1 ? " was" : "s were"} confirmed made before the failure${left.length ? `; not confirmed (writes sent before it may have been made too: topo plan --cluster ${plan.cluster} shows what is left):` : ""}`,
        ...shown,
        ...more,
      ].join("\n"),
      [...failure.hints, RERUN_HINT],
      failure.transient,
      // A loss outranks "incomplete": a pipeline that branches on the code must see it.
      failure.code === "messages_lost" || (doneCount === 0 && (failure.code === "auth_failed" || failure.code === "permission_denied")) ? failure.code : "apply_incomplete",
      failure.place,
    );
  }
}

function execOpts(opts: ApplyOptions): ExecuteOptions {
  return { allowDataLoss: opts.allowDataLoss, concurrency: opts.concurrency ?? DEFAULT_CHANNELS };
}

function samePlan(a: ClusterPlan, b: ClusterPlan): boolean {
  const keys = (p: ClusterPlan) => p.actions.map((x) => `${x.op}|${x.key}`).join("\n");
  return keys(a) === keys(b);
}

/** The vhost a cluster's plan creates: its first write, before its lock can be taken (the lock lives in it). */
function isVhostCreate(a: Action): boolean {
  return a.op === "create" && a.after.kind === "vhost";
}

/**
 * What each queue to delete holds, counted now: used to refuse a data-losing plan before anything
 * is written, and again under the lock (the deletes count once more: broker/execute.ts). A
 * passive declare gives a queue's consumers and ready messages. What a client fetched and has not
 * acknowledged (basic.get, or a consumer cancelled on its open channel) no delete checks, and it
 * goes with the queue: a classic queue's process counts it when asked (broker/read.ts heldNow),
 * so one listing after the declares counts it. The statistics could not (3 fetched a second
 * before apply, counted 0 by statistics from before the fetch, and deleted). A quorum queue
 * counts such a client as a consumer (measured on 3.10.8 and 4.3.6: 3 basic.gets, 3 consumers; a
 * cancelled consumer holding 3, 1), so with none, it holds nothing unacknowledged.
 */
async function countMessages(p: ClusterPlan, s: AmqpSession, http: ManagementClient, target: ClusterTarget): Promise<void> {
  type Delete = Extract<Action, { op: "delete" }>;
  const targets = p.actions.filter((a): a is Delete => a.op === "delete" && a.before.kind === "queue");
  const classic: { a: Delete; live: { messageCount: number; consumerCount: number } }[] = [];
  const report = quorumReport(http, target);
  await s.runAll(
    targets,
    16,
    async (ch, a) => {
      const q = a.before as Queue;
      try {
        const first = await ch.checkQueue(q.name);
        // A quorum queue's 0 messages and 0 consumers is also the broker's answer when its leader
        // did not answer in time: its own report must agree (broker/read.ts quorumCount).
        const counted = q.type === "quorum" ? await quorumCount(() => ch.checkQueue(q.name), report, q.name, first) : first;
        const reported = "reported" in counted ? counted.reported : undefined;
        const last = "last" in counted ? counted.last : undefined;
        const r = reported ? { messageCount: reported.held, consumerCount: reported.consumers } : counted;
        a.consumers = r.consumerCount;
        if (q.type === "stream") {
          // A stream's passive count lags behind its statistics' (0 for messages just confirmed).
          a.messages = Math.max(a.messages ?? 0, r.messageCount);
          return;
        }
        if (q.type !== "quorum") {
          classic.push({ a, live: r });
          return;
        }
        // What consumers hold refuses the delete as theirs, and is counted from statistics that
        // caught up with them, or said to be unknown: a count of the ready messages alone looked
        // whole.
        a.unacked = undefined;
        a.unackedUnknown = undefined;
        a.deadLettersUnknown = undefined;
        // Counted by the report (ready and unacknowledged together): no consumer is there to wait for.
        if (r.consumerCount > 0 && !reported) {
          const held = await unackedNow(http, target, q.name, r);
          a.unacked = held.fresh ? held.unacked || undefined : undefined;
          if (!held.fresh) a.unackedUnknown = true;
        }
        // And its at-least-once dead letters waiting for their target, which only its statistics
        // count (broker/read.ts deadLettersIn): the delete drops them too. Asked of this queue
        // alone: a listing with statistics would serve every quorum queue deleted, but costs
        // seconds at 5,000 queues (readQueueStats), and deletes of quorum queues are few. No
        // statistics within the bound: what it holds has no count, and the delete is refused. The
        // report the count above read serves, where it read one.
        const dead = last ? last.beside : await deadLettersNow(report, q.name);
        if (dead === undefined) a.deadLettersUnknown = true;
        const waiting = dead ?? 0;
        a.messages = r.messageCount + (a.unacked ?? 0) + waiting;
        a.apart = waiting || undefined;
      } catch (e) {
        // 404: the queue is already gone, so it holds nothing.
        if ((e as { code?: number }).code === 404) {
          a.messages = 0;
          a.unacked = undefined;
          a.apart = undefined;
        } else throw e;
      }
    },
    (a) => `count messages of queue ${a.before.kind === "queue" ? a.before.name : ""}`,
  );
  if (classic.length === 0) return;
  // Read after the declares: what was fetched before them is counted.
  const held = await heldNow(http, target);
  for (const { a, live } of classic) {
    const now = held.get((a.before as Queue).name);
    if (now) {
      a.unacked = now.unacked || undefined;
      a.unackedUnknown = undefined;
      a.messages = now.messages;
    } else {
      // Declared a moment ago, yet listed without counts (its process did not answer) or not at
      // all: what it holds is unknown, and the delete is refused rather than guessed.
      a.unacked = undefined;
      a.unackedUnknown = true;
      a.messages = live.messageCount;
    }
  }
}

/**
 * apply's hints name plain `topo apply` and `topo plan`, which read topology.yaml and every
 * cluster: after `topo apply -f other.yaml --cluster async`, "run topo apply --allow-destructive"
 * pasted as printed applied another file to every cluster. Rewritten in place with the file (when
 * not the default) and, for apply, the clusters it was given; a ClustersError's causes too. "topo
 * apply again" stays: it says to run the same command again.
 */
export function hintsForInvocation(e: unknown, file: string, clusters: readonly string[] | undefined): void {
  if (!(e instanceof TopoError)) return;
  const f = file === "topology.yaml" ? "" : ` -f ${shellPath(file)}`;
  const only = clusters?.length ? clusters.map((c) => ` --cluster ${c}`).join("") : "";
  if (f || only) {
    const rewritten = e.hints.map((h) =>
      // Commands only (after "run", "then", a comma, a colon...): not "a topo apply holds its
      // lock", which speaks of any apply. "run topo apply again" is the same command again.
      h.replace(/(?<=^|\brun |\bthen |\band |\bnext |\bwith |\botherwise |[,;:(] )topo (apply|plan)\b(?! -f| again\b)((?: --cluster [a-z][a-z0-9_-]*)*)/g, (_m, cmd: string, own: string) => `topo ${cmd}${f}${own || (cmd === "apply" ? only : "")}`),
    );
    e.hints.splice(0, e.hints.length, ...rewritten);
  }
  if (e instanceof ClustersError) for (const c of e.causes) hintsForInvocation(c, file, clusters);
}
