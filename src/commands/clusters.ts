// Glue shared by plan and apply: check who answers, read and diff.

import { allOf, BrokerError, ClustersError, TopoError, type ConfigProblem } from "../errors.js";
import { amqpIdentity, describeIdentity, identityMismatch, managementIdentity, managementNodeVersions, managementVersions, type BrokerIdentity } from "../broker/identity.js";
import { placesOf, TRAFFIC, type ActualCluster, type Binding, type ClusterPlan, type DesiredCluster, type FilePath, type TopicPermission } from "../model.js";
import type { ManagementClient } from "../broker/http.js";
import { refusedLogin, type AmqpSession } from "../broker/amqp.js";
import { readBack } from "../broker/read-back.js";
import { mergeReadBack, readBackRequests, readBackScope } from "../plan/read-back.js";
import { peekLiveCounts, readAlarms, readCluster, readOperatorPolicies, readUserConnections, readDefaultQueueType, readLiveCounts, readVhostLimits, readMessageCounts, readOwnTags, readPermits, readQueueStats, readTopicPermissions, readVhostPermission, readVhostTopicPermissions } from "../broker/read.js";
import { dropsTopicsWithExchange, keepTopics, replacedExchanges, UNREAD_TOPICS, unkeptTopics } from "../plan/topic-keep.js";
import { askedUnbindRefusal, managementUnbindRefusal, permissionRefusal, tagRefusal, type RefusedUnbind } from "../plan/rights.js";
import { unbindsByKey } from "../broker/remove-binding.js";
import { planCluster } from "../plan/diff.js";
import { userConflicts, usersUnread } from "../plan/users.js";
import { operatorPoliciesUnsure } from "../plan/policy-limits.js";
import { compatibility, takesDefaultType, type Compatibility } from "../plan/compat.js";
import { atLeast } from "../plan/broker-rules.js";
import { queueRoom, queueRoomProblem } from "../plan/limits.js";
import { alarmProblem, movedMessages } from "../plan/alarms.js";
import { topicProblem, topicRefusals } from "../plan/topic-rights.js";
import { unrepairable } from "../plan/unrepairable.js";
import { otherFileWarning } from "../plan/other-file.js";
import { limitShifts } from "../plan/policy-shifts.js";
import { heldLockWarnings, leftBehind, leftBehindWarnings, strayLockWarnings } from "../plan/left-behind.js";
import { bindingsInto, bindingsIntoWarnings, foreignBindings, foreignBindingWarnings, outlastingPlan } from "../plan/route.js";
import { holdingQueueName, markedPrefix, mirrorPolicyName, Ownership } from "../core/naming.js";
import { describe, keyOf, subjectOf } from "../core/keys.js";
import { outsideView, stateOf, type FreshCluster, type SavedState } from "../plan/saved.js";
import type { ConnectionOptions } from "./source.js";
import { hostPort } from "../config/url.js";
import { usersBrokerOf } from "../config/normalize.js";
import { placeFinder } from "../config/load.js";
import { names, setUserTags } from "../core/words.js";
import { displayPath } from "../config/places.js";
import { pushAll } from "../core/collections.js";

/**
 * Make sure the cluster's AMQP URL and management API reach the same broker, before anything it
 * reads is reported or anything is written. Returns who answered.
 */
export async function identify(c: DesiredCluster, client: ManagementClient, opts: ConnectionOptions): Promise<BrokerIdentity> {
  const [amqp, named, nodeVersions] = await Promise.all([amqpIdentity(c.target, opts), managementIdentity(client), managementNodeVersions(client)]);
  // Every RabbitMQ's connection.start names its cluster; the same name is one cluster unless the
  // AMQP side's version is none of its nodes'.
  let mgmt = amqp.clusterName === undefined ? await managementVersions(client, named) : named;
  const differ = identityMismatch(amqp, mgmt, nodeVersions);
  if (differ.length) {
    // Both identities are named in full, the management side's version too when it answers.
    if (differ.includes("RabbitMQ version") && nodeVersions) mgmt = { ...mgmt, version: nodeVersions.join(" and ") };
    if (mgmt.version === undefined) mgmt = await managementVersions(client, mgmt).catch(() => mgmt);
    throw new BrokerError(
      c.target.name,
      `the AMQP URL and the management API reach different brokers (${differ.includes("RabbitMQ version") ? `one cluster name, but no running node of the management API's cluster runs the AMQP side's version, ${amqp.version}` : `their ${differ.join(" and ")} differ`}):\n` +
        `  ${c.target.amqp.display} is ${describeIdentity(amqp)}\n` +
        `  ${c.target.management.display} is ${describeIdentity(mgmt)}\n` +
        `  topo reads through the management API and writes through AMQP, so it refuses to report one broker and change another; nothing was changed`,
      {
        hints: [
          `set ${placesOf(c.target).management} to the management API of the broker at ${hostPort(c.target.amqp.hostname, c.target.amqp.port)} (without it, topo uses http://<url host>:15672)`,
          ...(differ.includes("RabbitMQ version")
            ? [`two brokers can share a cluster name (rabbit@<host name> by default, alike for two brokers on hosts of one name): if these are two, give them distinct names (rabbitmqctl set_cluster_name NAME on one of them)`]
            : []),
          ...(differ.includes("cluster name") && [amqp.clusterName, mgmt.clusterName].every((n) => n?.includes("@"))
            ? [
                `if both are nodes of one cluster, it has no cluster name set, so each node gives a name of its own: set one (rabbitmqctl set_cluster_name NAME), then every node gives it`,
              ]
            : []),
        ],
        code: "endpoint_mismatch",
      },
    );
  }
  return amqp;
}

/** The queues a plan replaces or deletes that the broker lists as down (their node is). */
function downQueuesTaken(plan: ClusterPlan, actual: ActualCluster): { name: string; node?: string }[] {
  const out = new Map<string, string | undefined>();
  for (const a of plan.actions) {
    if (a.op !== "replace" && a.op !== "delete") continue;
    for (const r of a.op === "replace" ? [a.before, a.after] : [a.before]) {
      if (r.kind !== "queue") continue;
      const f = actual.queueFacts[r.name];
      if (f?.state === "down") out.set(r.name, f.node);
    }
  }
  return [...out].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)).map(([name, node]) => ({ name, node }));
}

/**
 * Two clusters of the file that are one vhost of one broker (the same broker under two host
 * names, say) would each delete the other's queues as drift: refuse, naming both.
 */
export function checkDistinctVhosts(found: { cluster: DesiredCluster; identity: BrokerIdentity }[]): void {
  for (let i = 0; i < found.length; i++) {
    for (let j = i + 1; j < found.length; j++) {
      const a = found[i] as (typeof found)[number];
      const b = found[j] as (typeof found)[number];
      if (!a.identity.clusterName || a.identity.clusterName !== b.identity.clusterName) continue;
      if (a.cluster.target.amqp.vhost !== b.cluster.target.amqp.vhost) {
        if (a.cluster.users && b.cluster.users && usersBrokerOf(a.cluster.target) !== usersBrokerOf(b.cluster.target)) {
          // Users are shared by management URL: these two would each take the other's vhost for
          // another topology's, and a user dropped from the file would never be deleted.
          throw new TopoError(
            `clusters ${a.cluster.target.name} and ${b.cluster.target.name} are one broker (RabbitMQ cluster "${a.identity.clusterName}") reached through two management URLs, ${a.cluster.target.management.display} and ${b.cluster.target.management.display}; users are the broker's, and topo shares them between the clusters of one management URL, so it cannot manage the file's users right; nothing was changed`,
            [
              `give both clusters the same management: URL`,
              `if these really are two brokers, give them distinct cluster names (rabbitmqctl set_cluster_name NAME on one of them)`,
            ],
            false,
            "endpoint_mismatch",
          );
        }
        continue;
      }
      throw new TopoError(
        `clusters ${a.cluster.target.name} and ${b.cluster.target.name} are the same vhost "${a.cluster.target.amqp.vhost}" of one broker (RabbitMQ cluster "${a.identity.clusterName}"), reached as ${a.cluster.target.amqp.display} and ${b.cluster.target.amqp.display}; each cluster's plan would delete the other's queues as drift, so topo refuses; nothing was changed`,
        [
          "give each cluster its own vhost (the path of its url), or point them at different brokers",
          `if these really are two brokers, give them distinct cluster names (rabbitmqctl set_cluster_name NAME on one of them)`,
        ],
        false,
        "endpoint_mismatch",
      );
    }
  }
}

/**
 * identify() and `work` (a read through the same management API) at the same time. When both
 * fail, identify's error is the one thrown, whichever came first: a read's "GET /api/nodes -> 404"
 * from a web server that is not the management API, or its refusal by another broker than the
 * AMQP URL's, would send the user after the wrong fault. A read's failure waits for identify to
 * settle (its probes are bounded); identify's failure is thrown at once.
 */
export async function identifyBeside<T>(c: DesiredCluster, client: ManagementClient, opts: ConnectionOptions, work: Promise<T>): Promise<[BrokerIdentity, T]> {
  const who = identify(c, client, opts);
  const settled = work.then(
    (v) => ({ ok: true as const, v }),
    (e: unknown) => ({ ok: false as const, e }),
  );
  const [identity, r] = await Promise.all([who, settled]);
  if (!r.ok) throw r.e;
  return [identity, r.v];
}

/**
 * identify() and the AMQP login (refusedLogin) for every selected cluster, and
 * checkDistinctVhosts() over every cluster of the file: a cluster left out with --cluster can
 * still be the same vhost. `beside` runs for each selected
 * cluster at the same time as its check (plan's read): a cluster that fails both is reported with
 * identify's error (identifyBeside), and every cluster's failure is reported. Returns what
 * `beside` returned.
 */
export async function verifyClusters<T = undefined>(
  all: DesiredCluster[],
  selected: DesiredCluster[],
  client: (c: DesiredCluster) => ManagementClient,
  opts: ConnectionOptions,
  beside?: (c: DesiredCluster) => Promise<T>,
  /**
   * apply: what else refuses a cluster, read only when a login is refused (this cluster's or
   * another's), to be said with it: plan, whose read is `beside`, says every cluster's refusals.
   */
  refusedBeside?: (c: DesiredCluster) => Promise<void>,
): Promise<T[]> {
  const others = identifyOthers(all, selected, opts);
  const alsoRefused = (c: DesiredCluster) => (refusedBeside ? refusedBeside(c).then(() => undefined, (e: unknown) => (isRefusal(e) ? e : undefined)) : Promise.resolve(undefined));
  const settled = await Promise.allSettled(selected.map(async (c) => {
    const login = refusedLogin(c.target, opts);
    let identity: BrokerIdentity;
    let result: T | undefined;
    try {
      [identity, result] = await identifyBeside(c, client(c), opts, Promise.resolve().then(() => beside?.(c)));
    } catch (e) {
      // The read's refusals (a vhost's queue limit, a missing tag) and the login's (no rights on
      // the vhost) are independent: said together, so that one run names every fix. Plan said
      // only the limit, and once it was cleared, the rights.
      const refused = await login.catch(() => undefined);
      if (refused && isRefusal(e)) throw allOf([refused, e]);
      throw e;
    }
    const refused = await login;
    if (refused) {
      const more = await alsoRefused(c);
      throw more ? allOf([refused, more]) : refused;
    }
    return { cluster: c, identity, result: result as T };
  }));
  const failures = settled.flatMap((r) => (r.status === "rejected" ? [r.reason as unknown] : []));
  if (failures.length) {
    // One cluster's login refused, another's read would refuse too: said in the same run.
    const passed = selected.filter((_, i) => settled[i]?.status === "fulfilled");
    const more = failures.every(isRefusal) ? (await Promise.all(passed.map(alsoRefused))).filter((e) => e !== undefined) : [];
    throw allOf([...failures, ...more]);
  }
  const found = settled.map((r) => (r as PromiseFulfilledResult<{ cluster: DesiredCluster; identity: BrokerIdentity; result: T }>).value);
  checkDistinctVhosts([...found, ...(await others)]);
  return found.map((f) => f.result);
}

/** A refusal the broker's state decides (rights, limits, tags, a user's conflict), as opposed to who answers or whether it does. */
function isRefusal(e: unknown): boolean {
  const codes = e instanceof ClustersError ? e.causes.map((c) => (c instanceof TopoError ? c.code : undefined)) : [e instanceof TopoError ? e.code : undefined];
  return codes.every((code) => code === "permission_denied" || code === "broker_refused" || code === "user_conflict");
}

/**
 * Who answers for the clusters of the file left out with --cluster: only probed over AMQP, and
 * one that does not answer is not this command's business (never rejects).
 */
async function identifyOthers(all: DesiredCluster[], selected: DesiredCluster[], opts: ConnectionOptions): Promise<{ cluster: DesiredCluster; identity: BrokerIdentity }[]> {
  const found = await Promise.all(
    all
      .filter((c) => !selected.includes(c))
      .map(async (c) => {
        try {
          return [{ cluster: c, identity: await amqpIdentity(c.target, opts) }];
        } catch {
          return [];
        }
      }),
  );
  return found.flat();
}

/** How a read is planned: besides the cluster, what apply and saved plans need. */
export interface ReadPlanOptions {
  /**
   * apply: the queues a replace moves are counted by the broker now, through this session, so
   * apply judges the replace on what they hold now.
   */
  live?: () => Promise<AmqpSession>;
  /**
   * plan: the queues it deletes or replaces are counted once by the broker (a passive declare)
   * through a session this opens, and their consumers with them: the statistics lag a few seconds
   * behind (100 messages just published showed as 0, and no risk was named), and a consumer on a
   * queue to delete showed only when apply refused it. Not waited for as apply's count is.
   */
  peek?: () => Promise<AmqpSession>;
  /**
   * Ask the broker, as the management user, whether it may remove these bindings (broker/
   * unbind-probe.ts): for a management user that may not read permissions. Undefined: no answer.
   */
  askUnbinds?: (bindings: Binding[]) => Promise<RefusedUnbind[] | undefined>;
  /**
   * The state the plan was computed from (a saved plan keeps it; plan -o and apply PLANFILE ask
   * for it). Other reads skip it: it costs a pass over every object.
   */
  keepState?: boolean;
  /** apply --allow-data-loss: a replace deletes and re-creates its queue, and moves no message. */
  movesNothing?: boolean;
  /** The topology file, to name the place of a problem only the broker reveals (a user conflict). */
  file?: string;
  /**
   * plan: warn when another apply holds the lock (its work under way may look like drift). Not
   * apply's reads: under the lock the lock queue is its own, and before it apply waits for the
   * lock and reads again (a saved plan too, which such a warning would call stale).
   */
  warnHeldLock?: boolean;
}

/**
 * After apply carried out `executed` (computed from `before`): read back what it wrote, or the
 * whole cluster when plan/read-back.ts says so, and diff the result against the file. An apply
 * whose re-plan is not empty has failed. `requests`: the GETs of a read back of what it wrote;
 * undefined when it read the whole cluster.
 */
export async function readBackPlan(
  c: DesiredCluster,
  client: ManagementClient,
  prefix: string,
  before: ActualCluster,
  executed: ClusterPlan,
  file?: string,
): Promise<{ plan: ClusterPlan; requests?: number; meanwhile?: string }> {
  const scope = readBackScope(executed, before, prefix);
  if (!scope) {
    const { plan, actual } = await readAndPlan(c, client, prefix, { file });
    const meanwhile = nestedMeanwhile(plan, before, actual, prefix);
    return meanwhile ? { plan: { ...plan, actions: [] }, meanwhile } : { plan };
  }
  const found = await readBack(client, c.target, scope);
  const after = mergeReadBack(before, scope, found);
  const plan = planCluster(c, after, prefix);
  const drift = unrepairable(c, after, prefix, placesIn(file === undefined ? undefined : placeFinder(file)));
  pushAll(plan.degraded, drift.degraded);
  plan.notCompared = [...(plan.notCompared ?? []), ...drift.notCompared];
  return { plan, requests: readBackRequests(scope, found) };
}

/**
 * A read back whose only difference from the file is the pattern of this prefix's mirror policies,
 * where a prefix that starts with this one began to use the vhost after apply's read (its mark,
 * lock or policy is new): that prefix's apply ran beside this one (their locks differ), and the
 * pattern this apply wrote was the file's as the vhost stood. What apply made is confirmed; what
 * the other prefix changes for this file, the next plan shows. Said, not failed: a deploy that made
 * every change reported itself failed. Undefined where anything else differs.
 */
function nestedMeanwhile(plan: ClusterPlan, before: ActualCluster, after: ActualCluster, prefix: string): string | undefined {
  if (!plan.actions.length) return undefined;
  const had = new Set(before.resources.flatMap((r) => (markedPrefix(r) !== undefined ? [keyOf(r)] : [])));
  const arrived = [...new Set(after.resources.flatMap((r) => { const p = markedPrefix(r); return p !== undefined && p !== prefix && p.startsWith(prefix) && !had.has(keyOf(r)) ? [p] : []; }))].sort();
  if (!arrived.length) return undefined;
  const mirrors = new Set(TRAFFIC.map((k) => mirrorPolicyName(prefix, k)));
  const onlyPattern = plan.actions.every((a) => a.op === "update" && a.after.kind === "policy" && mirrors.has(a.after.name) && a.changed.every((f) => f.startsWith("pattern:")));
  if (!onlyPattern) return undefined;
  return `prefix${arrived.length === 1 ? "" : "es"} ${arrived.join(", ")} began to use the vhost while this apply ran, so topo's mirror polic${plan.actions.length === 1 ? "y" : "ies"} of prefix ${prefix} should now leave ${arrived.length === 1 ? "its" : "their"} queues out: ${plan.actions.map((a) => describe(subjectOf(a))).join(", ")}; the next topo plan shows the update, and topo apply makes it`;
}

/** FILE:LINE:COL of a key of the file, where there is one to look in; else the key's path. */
function placesIn(find: ReturnType<typeof placeFinder> | undefined): (path: FilePath) => string {
  return (path) => {
    const at = find?.(path);
    return at ? `${at.file}:${at.line}:${at.col}` : displayPath(path);
  };
}

/** Read one cluster and diff it against the file. */
export async function readAndPlan(
  c: DesiredCluster,
  client: ManagementClient,
  prefix: string,
  { live, peek, askUnbinds, keepState = false, file, movesNothing = false, warnHeldLock = false }: ReadPlanOptions = {},
): Promise<{ plan: ClusterPlan; state?: SavedState; outside?: FreshCluster["outside"]; actual: ActualCluster }> {
  const actual = await readCluster(client, c.target, c.users !== undefined);
  // Every refusal the read can know is said at once, each with its fix: they are independent
  // (a user conflict, missing tags or permissions, a vhost's limit, what the broker cannot do),
  // and a user who fixed one only to meet the next, one run at a time, was told them in turn.
  const refusals: BrokerError[] = [];
  // Where a key of the file is, for what only the broker reveals: the file is parsed once, on the first question.
  const find = file === undefined ? undefined : placeFinder(file);
  const placeOf = placesIn(find);
  const conflicts = userConflicts(c, actual, prefix);
  if (conflicts.length) {
    // Each at the user's key in the file (users.NAME), which adopt: true goes under.
    const where = (user: string) => placeOf(["users", user]);
    refusals.push(
      new BrokerError(c.target.name, `${conflicts.map((x) => `${where(x.user)}: ${x.message}`).join("\n  ")}; nothing was changed`, {
        hints: conflicts.map((x) => x.hint),
        code: "user_conflict",
        object: conflicts.length === 1 ? `user ${conflicts[0]!.user}` : undefined,
      }),
    );
  }
  const usersUnreadable = usersUnread(c, actual) !== undefined;
  // Plan may run as a monitoring user and says what it could not compare; apply may not guess.
  if (live && usersUnreadable) {
    refusals.push(
      new BrokerError(c.target.name, `cannot manage the file's users: ${actual.usersUnreadable}; nothing was changed`, {
        hints: [`give ${c.target.management.username} the administrator tag (docs/users.md, topo's own rights), or apply with a user that has it`],
        code: "permission_denied",
      }),
    );
  }
  // Nor may a saved plan leave them out: every apply of it would find the user changes it lacks
  // and refuse it as stale, and planning again as this user would make the same plan.
  if (keepState && usersUnreadable) {
    refusals.push(
      new BrokerError(c.target.name, `cannot save a plan of the file's users: ${actual.usersUnreadable}; a saved plan must hold every change apply would make, and nothing was saved`, {
        hints: [
          `run topo plan -o with a user that has the administrator tag (docs/users.md, topo's own rights), or give ${c.target.management.username} that tag; topo plan without -o still works as this user`,
        ],
        code: "permission_denied",
      }),
    );
  }
  // From what was read, before anything below adds message counts (which the state leaves out).
  const state = keepState ? stateOf(c, actual, prefix) : undefined;
  const outside = keepState ? outsideView(actual, prefix) : undefined;
  let plan = planCluster(c, actual, prefix);
  // Checked here, so that apply never finds a refusal half-way through:
  // - what the broker permits (its deprecated features, on 4.x) decides what it refuses;
  // - a vhost's default queue type (3.10+) decides what topo's classic queues become: read only
  //   when the file has queues it applies to;
  // - the vhost's max-queues, for a plan that writes: a vhost apply creates is checked by the read
  //   under the lock, once it exists;
  // - for apply, the management user's tags (its writes over HTTP) and, where it may read them
  //   (an administrator), the AMQP user's permissions on the vhost (its declares and topo's lock);
  //   where the tags could not be read, the mirroring warning still names the tag to add.
  const writes = plan.actions.length > 0;
  const mirrorsUnseen = actual.nodesUnreadable !== undefined && c.queues.some((q) => q.mirrored);
  const [permits, defaultType, limits, tags] = await Promise.all([
    readPermits(client, actual.version),
    atLeast(actual.version, 3, 10) && c.queues.some((q) => takesDefaultType(q.queue)) ? readDefaultQueueType(client, c.target, actual.vhostExists) : undefined,
    actual.vhostExists && writes ? readVhostLimits(client, c.target) : undefined,
    writes || mirrorsUnseen ? (actual.managementTags ?? readOwnTags(client)) : undefined,
  ]);
  actual.managementTags = tags;
  const room = queueRoomProblem(queueRoom(plan, actual, prefix, limits?.["max-queues"]), c.target.amqp.vhost, limits);
  if (room) refusals.push(new BrokerError(c.target.name, room.message, { hints: [room.hint], code: "broker_refused" }));
  // What apply would refuse for want of rights (the management user's tags for its HTTP writes, the
  // AMQP user's permissions for its declares and lock): apply refuses before writing; plan warns,
  // so that a CI job that only plans finds it before the deploy does.
  const apprehended: { message: string; hint: string }[] = [];
  if (writes && tags) {
    const user = c.target.management.username;
    // Where users could not be read, the administrator tag is asked for above, and it covers all.
    const tag = tagRefusal(user, tags, plan);
    if (tag && !usersUnreadable) apprehended.push(tag);
    // A vhost apply creates gets full rights for the AMQP user (broker/execute.ts).
    if (tags.includes("administrator") && actual.vhostExists) {
      const amqpUser = c.target.amqp.username;
      const permission = await readVhostPermission(client, c.target, amqpUser);
      // None at all: the login says so, after waiting for rights granted late (a vhost just created).
      const refused = permission === undefined || permission === "none" ? undefined : permissionRefusal(amqpUser, c.target.amqp.vhost, permission, plan, prefix, movesNothing);
      if (refused) apprehended.push(refused);
      // A binding with arguments goes through the management API, with the management user's own
      // permissions: where that is the AMQP user, the check above covered them.
      const unbinds = user !== amqpUser ? unbindsByKey(plan, movesNothing) : [];
      if (unbinds.length) {
        const own = await readVhostPermission(client, c.target, user);
        const unbindRefused = own === undefined ? undefined : managementUnbindRefusal(user, c.target.amqp.vhost, own, unbinds);
        if (unbindRefused) apprehended.push(unbindRefused);
      }
    } else if (actual.vhostExists && askUnbinds) {
      // Not an administrator: its permissions cannot be read, so the broker is asked. It stopped
      // apply at the unbind, after other writes, and a replace with its holding queue bound.
      const unbinds = unbindsByKey(plan, movesNothing);
      const refused = unbinds.length ? await askUnbinds(unbinds) : undefined;
      const asked = refused && askedUnbindRefusal(user, c.target.amqp.vhost, refused);
      if (asked) apprehended.push(asked);
    }
  }
  if (live) for (const r of apprehended) refusals.push(new BrokerError(c.target.name, r.message, { hints: [r.hint], code: "permission_denied" }));
  actual.defaultQueueType = defaultType;
  const declared = new Set(plan.actions.flatMap((a) => ((a.op === "create" || a.op === "replace") && a.after.kind === "queue" ? [a.after.name] : [])));
  const compat = compatibility(c, actual, permits, declared, placeOf);
  if (compat.errors.length) refusals.push(compatError(c, compat, find));
  // The AMQP user's topic permissions refuse a binding's routing key on a topic exchange: apply
  // would stop at that bind, so it refuses first; plan warns (below: the counts re-diff the plan).
  // Readable by an administrator only.
  const warnings: string[] = live ? [] : apprehended.map((r) => `apply refuses this plan before writing anything: ${r.message} (${r.hint})`);
  if (actual.vhostExists && plan.actions.some((a) => a.op === "replace" || subjectOf(a).kind === "binding")) {
    const { username: user, vhost } = c.target.amqp;
    const topics = topicProblem(topicRefusals(plan, actual, (await readTopicPermissions(client, vhost, user)) ?? [], user, vhost), user, vhost);
    if (topics && live) refusals.push(new BrokerError(c.target.name, `${topics.cause}, so topo refuses before anything is written; nothing was changed`, { hints: topics.hints, code: "permission_denied" }));
    if (topics && !live) warnings.push(`${topics.cause}: apply refuses it before writing anything`);
  }
  // RabbitMQ 4 deletes every user's topic permission on an exchange with it: a replace puts them
  // back, so it reads them (an administrator may; the read above did where the file has users),
  // and apply refuses one it cannot put back.
  let vhostTopics: Parameters<typeof keepTopics>[1] | undefined;
  if (actual.vhostExists && dropsTopicsWithExchange(actual.version) && replacedExchanges(plan).length) {
    const user = c.target.management.username;
    const read =
      c.users !== undefined && actual.usersUnreadable === undefined
        ? actual.resources.filter((r): r is TopicPermission => r.kind === "topic-permission")
        : await readVhostTopicPermissions(client, c.target.amqp.vhost);
    vhostTopics = read ?? { unread: `the management user ${user} may not read them: it needs the administrator tag` };
    keepTopics(plan, vhostTopics);
    const unkept = unkeptTopics(plan);
    if (unkept) {
      const cause = `${UNREAD_TOPICS} (${unkept.why}): replacing exchange${unkept.exchanges.length === 1 ? "" : "s"} ${names(unkept.exchanges)} would let any user who may write to ${unkept.exchanges.length === 1 ? "it" : "them"} publish any routing key`;
      const hints = [`apply as a management user with the administrator tag, so topo reads the topic permissions and puts them back: ${setUserTags(user, actual.managementTags, "administrator")}`];
      if (live) refusals.push(new BrokerError(c.target.name, `${cause}, so topo refuses before anything is written; nothing was changed`, { hints, code: "permission_denied" }));
      else warnings.push(`${cause}: apply refuses it`);
    }
  }
  if (refusals.length) throw allOf(refusals);

  const owner = Ownership.of(prefix, actual.resources);
  const alone = leftBehind(actual, owner, new Set(c.resources.flatMap((r) => (r.kind === "exchange" ? [r.name] : []))));
  // A change to topo's policies that tightens a queue's limits (another policy's max-length applies
  // once topo's no longer shadows it) is judged on what the queue holds.
  const shifts = limitShifts(plan.actions, actual);
  // Counts are worth their cost only where a queue would be deleted or replaced, or is left behind,
  // or a policy change tightens its limits.
  if (plan.actions.some((a) => (a.op === "delete" || a.op === "replace") && a.before.kind === "queue") || alone.services.length || alone.holding.length || shifts.length) {
    await readMessageCounts(client, c.target, actual);
    // What a replace could lose depends on ready and unacknowledged messages, consumers and bytes:
    // read for the replaced queues (and the holding queues of interrupted replaces) only.
    const moved = plan.actions.flatMap((a) =>
      a.op === "replace" && a.after.kind === "queue" && a.before.kind === "queue"
        ? [{ name: a.after.name, stream: a.before.type === "stream" }, { name: holdingQueueName(a.after.name), stream: false }]
        : [],
    );
    const present = moved.filter((q) => actual.queueFacts[q.name] !== undefined);
    // A stream has no count in the listing: the ones to delete are counted one by one, so plan
    // shows what goes with them (apply refuses them without --allow-data-loss whatever it finds).
    const streams = plan.actions.flatMap((a) => (a.op === "delete" && a.before.kind === "queue" && a.before.type === "stream" ? [a.before.name] : []));
    // A quorum queue's at-least-once dead letters waiting for their target are in no count but its
    // statistics' messages_dlx (neither ready nor unacknowledged): a delete drops them (q40).
    const quorums = plan.actions.flatMap((a) => (a.op === "delete" && a.before.kind === "queue" && a.before.type === "quorum" ? [a.before.name] : []));
    // The listing has no bytes: a byte limit a policy change brings is judged on the queue's
    // statistics, and apply counts every queue a policy change reaches live, as it does a replace's.
    const shifted = shifts.filter((s) => live || s.after.maxLengthBytes).map((s) => ({ name: s.queue.name, stream: false }));
    await readQueueStats(client, c.target, actual, [...present.map((q) => q.name), ...streams, ...quorums, ...shifted.map((q) => q.name)]);
    const counted = live ? [...present, ...shifted] : [];
    if (live && counted.length) await readLiveCounts(await live(), client, c.target, actual, counted);
    const deleted = plan.actions.flatMap((a) => (a.op === "delete" && a.before.kind === "queue" && a.before.type !== "stream" && actual.queueFacts[a.before.name] ? [{ name: a.before.name, stream: false }] : []));
    const peeked = [...present.filter((q) => !q.stream), ...deleted];
    if (!live && peek && peeked.length) await peekLiveCounts(peek, client, c.target, actual, peeked);
    plan = planCluster(c, actual, prefix);
    if (vhostTopics) keepTopics(plan, vhostTopics);
  }
  // A user deleted while workers are connected as it: RabbitMQ closes their connections, and they
  // cannot log in again (a user renamed in the file cut its workers off with no word of it).
  // A password changed under connected workers: they stay connected, and their next login (a
  // reconnect after a network blip or a broker restart) is refused until they have the new one.
  const userLogins = plan.actions.filter(
    (a): a is Extract<typeof a, { op: "delete" | "update" }> => (a.op === "delete" && a.before.kind === "user") || (a.op === "update" && a.before.kind === "user" && a.changed.includes("password")),
  );
  if (userLogins.length) {
    const open = await readUserConnections(client, userLogins.map((a) => (a.before as { name: string }).name));
    for (const a of userLogins) {
      const n = open?.get((a.before as { name: string }).name);
      if (n) a.connections = n;
    }
  }
  plan.warnings.push(...warnings, ...leftBehindWarnings(alone, actual, prefix), ...strayLockWarnings(actual, prefix, c.target.amqp.vhost), ...(warnHeldLock ? heldLockWarnings(actual, prefix) : []));
  plan.warnings.push(...foreignBindingWarnings(outlastingPlan(foreignBindings(c, actual, owner), plan.actions)), ...bindingsIntoWarnings(outlastingPlan(bindingsInto(c, actual, owner), plan.actions)));
  // A node's memory or disk alarm blocks the publishes a replace moves messages with: apply would
  // stop part-way, so it refuses; plan warns. Read only for a plan that moves messages (which the
  // counts above tell).
  if (!movesNothing && movedMessages(plan, actual).length) {
    const alarm = alarmProblem(plan, actual, await readAlarms(client));
    if (alarm && live) throw new BrokerError(c.target.name, `${alarm.cause}; topo refuses before anything is written; nothing was changed`, { hints: alarm.hints, code: "broker_refused" });
    if (alarm) plan.warnings.push(`${alarm.cause}; apply refuses it until the alarm has cleared`);
  }
  // A queue whose node is down can be neither counted, moved nor deleted (the broker answers
  // 404 "home node ... is down"): apply stopped part-way at it, with a misleading hint and a
  // holding queue declared, so it refuses before writing; plan says so.
  const down = downQueuesTaken(plan, actual);
  if (down.length) {
    const nodes = [...new Set(down.map((q) => q.node).filter((n): n is string => !!n))].sort();
    const cause = `this plan replaces or deletes ${down.length === 1 ? "queue" : "queues"} ${names(down.map((q) => q.name))}, whose node${nodes.length === 1 ? "" : "s"} ${nodes.join(", ") || "(unknown)"} ${nodes.length === 1 ? "is" : "are"} down: the broker can neither count, move nor delete ${down.length === 1 ? "its" : "their"} messages until ${nodes.length === 1 ? "it is" : "they are"} back`;
    if (live) throw new BrokerError(c.target.name, `${cause}; topo refuses before anything is written; nothing was changed`, { hints: [`start the node${nodes.length === 1 ? "" : "s"} again (or wait for ${nodes.length === 1 ? "it" : "them"}), then run topo apply again`], code: "broker_refused" });
    plan.warnings.push(`${cause}; apply refuses it until then`);
  }
  // An operator policy that may cap a queue, where the patterns cannot tell: the broker's statistics say.
  const unsure = operatorPoliciesUnsure(c, actual);
  if (unsure.length) await readOperatorPolicies(client, c.target, actual, unsure);
  const drift = unrepairable(c, actual, prefix, placeOf);
  pushAll(plan.warnings, compat.warnings);
  pushAll(plan.warnings, drift.warnings);
  const otherFile = otherFileWarning(plan, actual, prefix, file);
  if (otherFile) plan.warnings.push(otherFile);
  // They are judged with topo's policies as the file has them: where this plan changes one, that
  // is after it, not now (topo's policy of priority 10 mirrored the queue, and plan said it was not
  // mirrored, of the change back to 0 that would let a user's policy apply).
  const policiesChange = plan.actions.some((a) => (a.op === "delete" ? a.before : a.after).kind === "policy");
  // Not what the nodes are now (a node down), which no policy changes.
  const now = new Set(drift.ofNodes);
  pushAll(plan.degraded, policiesChange ? drift.degraded.map((d) => (now.has(d) ? d : `once this plan is applied: ${d}`)) : drift.degraded);
  plan.notCompared = [...(plan.notCompared ?? []), ...drift.notCompared];
  return { plan, state, outside, actual };
}

/**
 * What the broker cannot do, each refusal followed by the keys of the file that ask for it, at
 * FILE:LINE:COL where the file still holds them (`find` undefined: a topology given as text, its
 * keys named by path only). --json lists the places as `problems`.
 */
function compatError(c: DesiredCluster, compat: Compatibility, find: ReturnType<typeof placeFinder> | undefined): BrokerError {
  const problems: ConfigProblem[] = [];
  const lines = compat.errors.map((e) => {
    const places = e.at.map((p) => {
      const at = find?.(p.path);
      const what = p.builtIn
        ? `${displayPath(p.path)}: ${names(p.queues)} ${p.queues.length === 1 ? "takes" : "take"} the built-in default ${p.builtIn.setting} of ${p.builtIn.traffic} queues (no key of the file sets it)`
        : `${displayPath(p.path)} (${names(p.queues)})`;
      if (at) problems.push({ ...at, message: `${what}: ${e.message}` });
      return `\n    ${at ? `${at.file}:${at.line}:${at.col}: ` : ""}${what}`;
    });
    return `${e.message}${places.join("")}`;
  });
  return new BrokerError(c.target.name, lines.join("\n  "), { hints: compat.hints, code: "version_unsupported", problems });
}

/** A read made with its state, as a saved plan's check takes it. */
export function freshOf(r: { plan: ClusterPlan; state?: SavedState; outside?: FreshCluster["outside"] }): FreshCluster {
  if (r.state === undefined) throw new Error(`cluster ${r.plan.cluster} was read without the state a saved plan needs`);
  return { plan: r.plan, state: r.state, outside: r.outside };
}

/**
 * Run `fn` for every cluster at once (two clusters take as long as the slower one) and fail with
 * every cluster's error, not just the first.
 */
export async function forEachCluster<T>(clusters: DesiredCluster[], fn: (c: DesiredCluster) => Promise<T>): Promise<T[]> {
  const settled = await Promise.allSettled(clusters.map(fn));
  // One error can stop several clusters (a saved plan gone stale stops them all): said once. One
  // code when every cluster failed the same way (two unreachable brokers are broker_unreachable).
  const failures = settled.filter((s): s is PromiseRejectedResult => s.status === "rejected").map((s) => s.reason as unknown);
  if (failures.length) throw allOf(failures);
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
}
