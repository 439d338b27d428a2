// Pure: desired and actual state of one cluster → the actions that make actual equal desired.

import { TRAFFIC } from "../model.js";
import type { Action, ActualCluster, Binding, ClusterPlan, Credentials, DesiredCluster, Exchange, Plan, Policy, QueueFacts, ReplaceAction, ReplaceRisk, Resource, ResourceKind, Summary, TopicPermission } from "../model.js";
import { applyMarkName, coveringHolds, holdingQueueOf, isBrokersOwn, isTopoName, kindQueuesPattern, madeByTopo, mirrorPolicyName, Ownership } from "../core/naming.js";
import { shown } from "../core/words.js";
import { describe, exchangeShape, keyOf, nameKey, stableJson, subjectOf } from "../core/keys.js";
import { allowsNothing, NOTHING } from "../core/permissions.js";
import { HOLD_EXCHANGE, holdingQueueFor, holdLimitRisks, policiesOnceApplied, queueLimits, replaceRisks, type HeldMessages } from "./risk.js";
import { brokenQueues } from "./queue-state.js";
import { judgePolicyChanges } from "./policy-shifts.js";
import { pushTo } from "../core/collections.js";
import { markLostBindings } from "./lost-bindings.js";
import { markRetyped } from "./retyped.js";
import { isTopoBinding } from "./route.js";
import { AT_LEAST_ONCE, deadLetterSendersByName, keepsDeadLetters, movedDeadLetterNotes, namedDeadLettersNote, type Broker, type NamedSender } from "./dead-lettering.js";
import { usersUnread } from "./users.js";

/**
 * Fields that cannot change in place: RabbitMQ refuses a redeclare with other values (or, for
 * arguments such as x-consumer-timeout, silently keeps the old ones). A difference in any of them
 * means delete and re-create: this is the Terraform provider's ForceNew.
 */
export const IMMUTABLE: Record<ResourceKind, readonly string[]> = {
  vhost: [],
  exchange: ["type", "durable", "autoDelete", "internal", "arguments"],
  queue: ["type", "durable", "autoDelete", "exclusive", "arguments"],
  binding: [],
  policy: [],
  user: [],
  permission: [],
  "topic-permission": [],
};

/** Fields that can be changed in place (a policy is simply PUT again). */
export const MUTABLE: Record<ResourceKind, readonly string[]> = {
  vhost: [],
  exchange: [],
  queue: [],
  binding: [],
  policy: ["pattern", "applyTo", "priority", "definition"],
  // A user's password is compared apart (passwordDiffers): its value is never a field of the resource.
  user: ["tags"],
  permission: ["configure", "write", "read"],
  "topic-permission": ["write", "read"],
};

/** Order in which plan lists actions, and the order of kinds within a cluster. */
const KIND_ORDER: Record<ResourceKind, number> = { vhost: 0, policy: 1, exchange: 2, queue: 3, binding: 4, user: 5, permission: 6, "topic-permission": 7 };

/** Resources about users: compared only when the file manages users and the broker let topo read them. */
const USER_KINDS: ReadonlySet<ResourceKind> = new Set(["user", "permission", "topic-permission"]);

export function fieldDiff(before: Resource, after: Resource, fields: readonly string[]): string[] {
  const out: string[] = [];
  const b = before as unknown as Record<string, unknown>;
  const a = after as unknown as Record<string, unknown>;
  for (const f of fields) {
    const bv = b[f];
    const av = a[f];
    // Most fields of most objects are equal primitives, or both empty arguments: a plan of
    // 150,000 objects spent most of its diff turning them into JSON to compare.
    if (bv === av) continue;
    if (f === "arguments" || f === "definition") {
      const bo = (bv ?? {}) as Record<string, unknown>;
      const ao = (av ?? {}) as Record<string, unknown>;
      const bk = Object.keys(bo);
      const ak = Object.keys(ao);
      if (bk.length === 0 && ak.length === 0) continue;
      for (const k of [...new Set([...bk, ...ak])].sort()) {
        const x = stableJson(bo[k] as never);
        const y = stableJson(ao[k] as never);
        if (x !== y) out.push(`${f}.${k}: ${bo[k] === undefined ? "(none)" : x} -> ${ao[k] === undefined ? "(none)" : y}`);
      }
    } else if (stableJson(bv as never) !== stableJson(av as never)) {
      out.push(`${f}: ${stableJson(bv as never)} -> ${stableJson(av as never)}`);
    }
  }
  return out;
}

/**
 * The bindings that disappear when an object is deleted, so a replace can put them back and a
 * delete can name those it takes with it: each queue's and exchange's, in the broker's order,
 * indexed once (looking through every object for each replace or delete made a plan that deletes
 * 4,000 of 5,000 services take 20 s).
 */
function bindingIndex(actual: readonly Resource[]): (r: Resource) => Binding[] {
  // Indexed at the first question: a plan without replaces or deletes asks none.
  let index: { ofQueue: Map<string, Binding[]>; ofExchange: Map<string, Binding[]> } | undefined;
  const indexed = () => {
    if (index) return index;
    const ofQueue = new Map<string, Binding[]>();
    const ofExchange = new Map<string, Binding[]>();
    for (const b of actual) {
      if (b.kind !== "binding" || b.source === "") continue;
      if (b.destinationType === "queue") pushTo(ofQueue, b.destination, b);
      pushTo(ofExchange, b.source, b);
      if (b.destinationType === "exchange" && b.destination !== b.source) pushTo(ofExchange, b.destination, b);
    }
    return (index = { ofQueue, ofExchange });
  };
  return (r) => (r.kind === "queue" ? indexed().ofQueue.get(r.name) : r.kind === "exchange" ? indexed().ofExchange.get(r.name) : undefined) ?? [];
}

/**
 * The prefix's apply mark, when the vhost holds objects of the file and no mark: made by `topo
 * export definitions`, by workers, by hand, or adopted with `topo import`. The mark is what tells a
 * file of a shorter prefix (`mp`) that `mpxfoo` is not its own; without it, that file's apply
 * deleted this one's services as its own drift. Every apply that writes renews the mark before
 * its first write (broker/generation.ts), which is how apply makes this one; a vhost that holds
 * nothing of the file yet gets it from its first apply without a word, as before.
 */
export function unmarkedObjects(desired: DesiredCluster, actual: ActualCluster, prefix: string): Exchange | undefined {
  const name = applyMarkName(prefix);
  if (actual.resources.some((r) => r.kind === "exchange" && r.name === name)) return undefined;
  const wanted = new Set<string>();
  for (const r of desired.resources) if (r.kind === "exchange" || r.kind === "queue") wanted.add(keyOf(r));
  return actual.resources.some((r) => (r.kind === "exchange" || r.kind === "queue") && wanted.has(keyOf(r))) ? applyMark(prefix) : undefined;
}

/**
 * One cluster's plan: what its resources' diff changes (diffCluster), and the prefix's apply mark
 * where the vhost holds the file's objects without it (unmarkedObjects). What plan, apply, the
 * read back and import show alike.
 */
export function planCluster(desired: DesiredCluster, actual: ActualCluster, prefix: string): ClusterPlan {
  const plan = diffCluster(desired, actual, prefix);
  const mark = unmarkedObjects(desired, actual, prefix);
  if (mark) plan.actions.push({ op: "create", key: keyOf(mark), after: mark });
  const onMark = bindingsOnMark(actual, prefix);
  for (const b of onMark) plan.actions.push({ op: "delete", key: keyOf(b), before: b });
  if (mark || onMark.length) sortActions(plan.actions);
  return plan;
}

/**
 * Bindings someone made on the prefix's apply mark (from it, or into it from another exchange).
 * Every apply that writes deletes the mark and declares it again (broker/generation.ts), and
 * RabbitMQ takes every binding of an exchange with it: a binding there lived only until the next
 * apply, which removed it without a word (a user's `topo.mp.generation -> audit [#]`). Plan lists
 * each as a delete, since the mark is topo's and apply takes them in any case.
 */
function bindingsOnMark(actual: ActualCluster, prefix: string): Binding[] {
  const name = applyMarkName(prefix);
  return actual.resources.filter((r): r is Binding => r.kind === "binding" && (r.source === name || (r.destinationType === "exchange" && r.destination === name)));
}

/** The services whose exchange or queues `actions` delete, by name, sorted (not topo's own holding queues). */
export function servicesDeleted(actions: readonly Action[]): string[] {
  const names = actions.flatMap((a) => (a.op === "delete" && (a.before.kind === "exchange" || a.before.kind === "queue") && !isTopoName(a.before.name) ? [a.before.name.replace(/\.(?:sync|async)$/, "")] : []));
  return [...new Set(names)].sort();
}

/** The apply mark as plan shows it (its arguments are renewed by every apply that writes). */
export function applyMark(prefix: string): Exchange {
  return { kind: "exchange", name: applyMarkName(prefix), type: "fanout", durable: true, autoDelete: false, internal: true, arguments: {} };
}

export function diffCluster(desired: DesiredCluster, actual: ActualCluster, prefix: string): ClusterPlan {
  const users = desired.users;
  const owner = Ownership.of(prefix, actual.resources, users?.adopt);
  // Without a users section (a desired state built by hand), or when the broker would not list
  // users, nothing about users is compared, created or deleted.
  const comparesUsers = users !== undefined && actual.userHashes !== undefined;
  const compared = (r: Resource) => comparesUsers || !USER_KINDS.has(r.kind);
  const have = new Map<string, Resource>();
  for (const r of actual.resources) if (compared(r)) have.set(keyOf(r), r);
  const want = new Map<string, Resource>();
  for (const r of desired.resources) if (compared(r)) want.set(keyOf(r), r);
  const claimed = leaveOutNested(want, owner);

  const actions: Action[] = [];

  // While a queue's node is down (a durable queue without mirrors waits for it), the broker lists
  // the queue but none of its bindings: they are unknown, not missing.
  const down = new Set<string>();
  for (const name of Object.keys(actual.queueFacts)) if (actual.queueFacts[name]?.state === "down") down.add(name);
  const unknown = (r: Resource) => r.kind === "binding" && r.destinationType === "queue" && down.has(r.destination);

  /** Users this plan updates that also hold rights on vhosts the file does not manage, where the change reaches too. */
  const shared: { user: string; vhosts: string[]; password: boolean; tags: boolean }[] = [];
  for (const [key, after] of want) {
    if (unknown(after)) continue;
    const before = have.get(key);
    if (!before) {
      actions.push({ op: "create", key, after });
      continue;
    }
    const because = fieldDiff(before, after, IMMUTABLE[after.kind]);
    if (because.length) {
      actions.push({ op: "replace", key, before, after, because, rebind: [], ...heldWithApart(actual, before), ...unknownUnacked(actual, before) });
      continue;
    }
    const changed = fieldDiff(before, after, MUTABLE[after.kind]);
    if (after.kind === "user" && users && passwordDiffers(after.name, users.credentials, actual)) changed.push("password");
    if (changed.length) actions.push({ op: "update", key, before, after, changed });
    if (after.kind === "user" && changed.length) {
      const elsewhere = usedElsewhere(after.name, users, actual);
      if (elsewhere.length) shared.push({ user: after.name, vhosts: elsewhere, password: changed.includes("password"), tags: changed.some((c) => c.startsWith("tags")) });
    }
  }
  const deleted = new Set<string>();
  /** The file's users on this broker, as a set at the first user the file does not want here. */
  let onBroker: Set<string> | undefined;
  /** Marked users the file no longer lists that hold rights on vhosts the file does not manage, and those vhosts. */
  const foreign: { user: string; vhosts: string[] }[] = [];
  let topics: TopicView | undefined;
  /** Marked users the file no longer lists that hold no permissions at all. */
  const orphans: string[] = [];
  // An exchange named like a service but not of the one shape topo makes is someone else's, even
  // inside the namespace (prefix "a" and a user's fanout "accounting"): never deleted, and nor are
  // its bindings. Plan says it leaves it.
  const spared: Exchange[] = [];
  for (const [key, r] of have) if (r.kind === "exchange" && !want.has(key) && owner.owns(r) && !madeByTopo(r)) spared.push(r);
  const sparedNames = new Set(spared.map((e) => e.name));
  for (const [key, before] of have) {
    if (want.has(key) || !owner.owns(before) || holdingQueueOf(before, owner)) continue;
    if (before.kind === "exchange" ? sparedNames.has(before.name) : before.kind === "binding" && sparedNames.has(before.source)) continue;
    // A user is the broker's, not the vhost's: kept while any cluster of the file on this broker
    // wants it, and deleted by the first of them; and by this one when its vhost is the only
    // place the user has rights, since this plan revokes them, and a user with rights nowhere is
    // one no plan deletes (apply --cluster of this cluster alone would leave it for ever).
    if (before.kind === "user" && (!users || (onBroker ??= new Set(users.onBroker)).has(before.name) || !(users.deletes || rightsOnlyHere(before.name, desired, actual)))) continue;
    // The users topo itself connects as, to this cluster or another of the file, are never
    // deleted or stripped of their rights, even if someone gave them topo's tag.
    if (isOwnUser(before, desired)) continue;
    const elsewhere = before.kind === "user" ? usedElsewhere(before.name, users, actual) : [];
    if (elsewhere.length) {
      foreign.push({ user: describe(before), vhosts: elsewhere });
      continue;
    }
    // Without permissions anywhere, nothing says which topology a marked user belongs to: another
    // apply may be creating it right now (users first, their rights last). Left alone.
    if (before.kind === "user" && (actual.userVhosts?.[before.name] ?? []).length === 0) {
      orphans.push(before.name);
      continue;
    }
    if (before.kind === "topic-permission") {
      topics ??= topicView(want, have);
      const revoke = revokeTopicPermission(before, topics);
      if (revoke === "none") continue;
      if (revoke) {
        actions.push({ op: "update", key, before, after: revoke, changed: fieldDiff(before, revoke, MUTABLE["topic-permission"]) });
        continue;
      }
    }
    deleted.add(key);
    actions.push({ op: "delete", key, before, ...heldWithApart(actual, before), unacked: unackedOf(actual, before), ...unknownUnacked(actual, before), ...consumersOf(actual, before) });
  }
  // A shorter prefix in use (mp, for this file's mpl) names every service of this one too: the
  // mp file may list a service this plan deletes (mplogin), and nothing on the broker tells whose
  // it is. Plan says so rather than delete it as this file's without a word.
  const disputed = owner.outer.length ? servicesDeleted(actions) : [];
  // Asked first once the plan's deletes are known (routesIntoDeleted), and then of each queue replace.
  const namedSenders = deadLetterSendersByName(desired, actual, (p) => owner.owns(p), deleted);
  // What the vhost holds once the plan is applied, found once, and only when an exchange is deleted or replaced.
  let left: Resource[] | undefined;
  const remainingOnce = () => (left ??= remaining(want, have, deleted, owner));
  const orphanedRoutes = routesIntoDeleted(actions, namedSenders, remainingOnce, actual);
  markRoutesIntoReplaced(actions, remainingOnce, actual);
  resumeInterruptedReplaces(actions, want, have, actual, deleted, owner);
  // A replace re-creates every binding the old object had (also bindings topo does not own),
  // except those this plan deletes anyway.
  const bindingsOf = bindingIndex(actual.resources);
  for (const a of actions) {
    if (a.op === "replace") {
      const base = a.resume ? { ...a.after } : a.before;
      a.rebind = bindingsOf(base).filter((b) => !deleted.has(keyOf(b)));
    }
  }
  // An exchange replace that changes the type: the bindings it puts back that are someone else's
  // and that the new type routes otherwise.
  markRetyped(actions, (b) => want.has(keyOf(b)) || isTopoBinding(b, owner));
  judgeQueueReplaces(actions, desired, actual, owner, namedSenders);
  // RabbitMQ removes an exchange's or a queue's bindings with it, also those someone else made
  // (a user's `mplogin -> audit`): silently, unless the delete names them.
  // Not the bindings of a holding queue this plan deletes (an interrupted replace of a service the
  // file no longer lists): the service's own binding on it and the fanout of its own name are
  // topo's, made by that replace, and go with it.
  const holdsDeleted = new Set(actions.flatMap((a) => (a.op === "delete" && a.before.kind === "queue" && holdingQueueOf(a.before, owner) ? [a.before.name] : [])));
  const holdsOwn = (b: Binding) => b.destinationType === "queue" && holdsDeleted.has(b.destination) && (b.source === b.destination || owner.isService(b.source));
  for (const a of actions) {
    if (a.op !== "delete") continue;
    const unmanaged = bindingsOf(a.before)
      .filter((b) => !deleted.has(keyOf(b)) && !holdsOwn(b))
      .sort((x, y) => (describe(x) < describe(y) ? -1 : describe(x) > describe(y) ? 1 : 0));
    if (unmanaged.length) a.unmanaged = unmanaged;
  }
  // Of those bindings, the ones the broker will not let topo put back (an auto-delete exchange's
  // last, an exclusive queue's): named, and refused unless told.
  markLostBindings(actions, actual.resources, deleted);
  // A change to topo's policies can hand a queue that holds messages to another policy's limit.
  judgePolicyChanges(actions, actual);

  sortActions(actions);
  const unread = usersUnread(desired, actual);
  const userWarnings = unread !== undefined ? [`users and permissions not compared: ${unread}; apply will refuse to run until topo may read them`] : [];
  // Queues of the file's, and topo's own (a holding queue keeps messages), that cannot run: known
  // at the first question, which only a queue that is down or broken asks.
  let oursSet: Set<string> | undefined;
  const ours = (name: string): boolean => {
    if (!oursSet) {
      oursSet = new Set<string>();
      for (const [key, r] of have) if (r.kind === "queue" && (want.has(key) || owner.owns(r) || holdingQueueOf(r, owner))) oursSet.add(r.name);
    }
    return oursSet.has(name);
  };
  // A user's queue whose node is down is no drift of the file's; its bindings are unknown all the
  // same, and one from an exchange this plan deletes or replaces would go with it unseen.
  const downOf = (mine: boolean) => [...down].filter((q) => ours(q) === mine).sort();
  const unavailable = (qs: string[]) => `${qs.length} queue${qs.length === 1 ? " is" : "s are"} unavailable because ${qs.length === 1 ? "its node is" : "their nodes are"} down (${qs.slice(0, 5).join(", ")}${qs.length > 5 ? ", ..." : ""}); their bindings cannot be read until the node is back`;
  const downForeign = downOf(false);
  const takesExchange = actions.some((a) => (a.op === "delete" || a.op === "replace") && subjectOf(a).kind === "exchange");
  const degraded = [
    ...(downOf(true).length ? [unavailable(downOf(true))] : []),
    ...brokenQueues(actual, desired.target.amqp.vhost, ours),
  ];
  return {
    cluster: desired.target.name,
    endpoint: desired.target.amqp.display,
    vhost: desired.target.amqp.vhost,
    version: actual.version || undefined,
    actions,
    degraded,
    notCompared: userWarnings.length ? ["users and permissions"] : [],
    warnings: [
      // Apply grants these itself (broker/execute.ts), a write the plan's actions do not list. The
      // management user that creates a vhost gets them from RabbitMQ anyway; another AMQP user
      // gets them only from topo, and must not get them unsaid.
      ...(actions.some((a) => a.op === "create" && a.after.kind === "vhost") && desired.target.amqp.username !== desired.target.management.username
        ? [`apply gives ${shown(desired.target.amqp.username)}, the user topo connects as over AMQP, configure, write and read ".*" on the vhost it creates (it declares everything there); narrow them afterwards if that user should have less`]
        : []),
      ...userWarnings,
      ...(downForeign.length
        ? [`${unavailable(downForeign)}; topo does not manage ${downForeign.length === 1 ? "it" : "them"}${takesExchange ? `, but a binding of ${downForeign.length === 1 ? "it" : "theirs"} from an exchange this plan deletes or replaces would go with that exchange unseen: apply once the node is back` : ""}`]
        : []),
      ...(claimed.length
        ? [`service${claimed.length === 1 ? "" : "s"} ${claimed.join(", ")} of this file ${claimed.length === 1 ? "is" : "are"} named inside prefix ${[...new Set(claimed.map((s) => owner.nestedOwner(s)))].map((n) => `"${n}"`).join(", ")}, which another topology uses on this vhost (its apply mark, lock or policy is here): topo creates and updates ${claimed.length === 1 ? "it" : "them"} but never deletes ${claimed.length === 1 ? "it" : "them"}, and both files may change ${claimed.length === 1 ? "it" : "them"}; rename ${claimed.length === 1 ? "it" : "them"}, or choose prefixes that do not start with each other`]
        : []),
      ...(disputed.length
        ? [`this plan deletes service${disputed.length === 1 ? "" : "s"} ${disputed.join(", ")} (${disputed.length === 1 ? "its" : "their"} exchange or queues), named inside prefix ${owner.outer.map((o) => `"${o}"`).join(", ")} too, which another topology uses on this vhost (its apply mark, lock or policy is here): if that file lists ${disputed.length === 1 ? "it, it is" : "them, they are"} that file's; check before applying with --allow-destructive, or choose prefixes that do not start with each other`]
        : []),
      ...orphanedRoutes,
      ...orphans.map((u) => `left alone: user ${u} carries topo's tag but has permissions on no vhost, so nothing says which topology it belongs to (another apply may be creating it); delete it by hand if it is no longer used`),
      ...shared.map((u) => {
        const what = u.password && u.tags ? "password and tags apply" : u.password ? "password applies" : "tags apply";
        return `user ${u.user} also has permissions on vhost${u.vhosts.length === 1 ? "" : "s"} ${u.vhosts.map(shown).join(", ")}, which this file does not manage: its new ${what} there too (a user is the broker's, not the vhost's)${u.password ? `, and whatever connects there as ${u.user} must then use the file's password` : ""}; give the service a user of its own if they should not share it`;
      }),
      ...foreign.map((f) => `left alone: user ${f.user} carries topo's tag but has permissions on vhost${f.vhosts.length === 1 ? "" : "s"} ${f.vhosts.map(shown).join(", ")} that this file does not manage (another topology with the same prefix?), so topo does not delete it`),
      ...(spared.length
      ? [
          `left alone: exchange${spared.length === 1 ? "" : "s"} ${spared.map((e) => `${e.name} (${exchangeShape(e)})`).join(", ")} ${spared.length === 1 ? "is" : "are"} named like a service of prefix "${prefix}" but ${spared.length === 1 ? "is not one" : "are not ones"} topo makes (a durable topic exchange without arguments), so topo does not delete ${spared.length === 1 ? "it" : "them"}; a prefix that your own exchanges do not start with avoids the doubt`,
        ]
      : []),
    ],
  };
}

/**
 * A mirror policy for every `<kind>` queue of the prefix would also match the queues of a longer
 * prefix in use on the vhost (`^mp[a-z_]+\.sync$` matches mpxfoo.sync): the one topo writes
 * leaves that prefix out. The file cannot know it, the broker's state does.
 */
function leaveOutNested(want: Map<string, Resource>, owner: Ownership): string[] {
  if (!owner.nested.length) return [];
  // A service of the file's own named inside the longer prefix (both files claim it) stays
  // covered, by name, and plan says so; the rest of that prefix's queues stay left out (dropping
  // the whole prefix from the lookahead mirrored every queue of the other file's).
  // By name also a service named exactly like the longer prefix (its lookahead leaves that out too),
  // though that one is this file's alone: the longer prefix's names have one more letter at least.
  const covered = [...want.values()].flatMap((r) => (r.kind === "exchange" && owner.nested.some((n) => r.name.startsWith(n)) ? [r.name] : []));
  for (const kind of TRAFFIC) {
    const key = nameKey("policy", mirrorPolicyName(owner.prefix, kind));
    const p = want.get(key);
    if (p?.kind !== "policy" || p.pattern !== coveringHolds(kindQueuesPattern(owner.prefix, kind))) continue;
    const own = covered.filter((s) => want.has(nameKey("queue", `${s}.${kind}`)));
    want.set(key, { ...p, pattern: coveringHolds(owner.kindQueuesPattern(kind, owner.nested, own)) });
  }
  return covered.filter((s) => owner.nestedOwner(s) !== undefined).sort();
}

/** What the vhost holds once the plan is applied: the file's objects, and those on the broker it neither deletes nor owns as a policy. */
function remaining(want: Map<string, Resource>, have: Map<string, Resource>, deleted: Set<string>, owner: Ownership): Resource[] {
  return [...want.values(), ...[...have.entries()].filter(([k, r]) => !want.has(k) && !deleted.has(k) && !(r.kind === "policy" && owner.owns(r))).map(([, r]) => r)];
}

/** Who sends an exchange messages no publisher sends (sendersToExchanges). */
interface ExchangeSender {
  who: string;
  deadLetters: boolean;
  /**
   * A quorum queue that dead-letters at least once (keepsDeadLetters): while the exchange is
   * missing it keeps those messages and RabbitMQ sends them on later; none is dropped.
   */
  keeps: boolean;
}

/**
 * Of the exchanges `targets`, who sends each one messages no publisher sends: a queue's
 * dead-letter exchange or an exchange's alternate exchange, as an argument, or a policy that
 * sets either for what it matches. By exchange name; none for an exchange nothing sends to.
 * `broker`: its version and operator policies (keepsDeadLetters).
 */
function sendersToExchanges(targets: ReadonlySet<string>, remainingOnce: () => readonly Resource[], broker: Broker): Map<string, ExchangeSender[]> {
  const senders = new Map<string, ExchangeSender[]>();
  if (targets.size === 0) return senders;
  const resources = remainingOnce();
  const add = (exchange: unknown, who: string, deadLetters: boolean, keeps = false) => {
    if (typeof exchange === "string" && targets.has(exchange)) pushTo(senders, exchange, { who, deadLetters, keeps });
  };
  let policies: Policy[] | undefined;
  for (const r of resources) {
    if (r.kind === "queue") {
      const dlx = r.arguments["x-dead-letter-exchange"];
      if (typeof dlx !== "string" || !targets.has(dlx)) continue;
      policies ??= resources.filter((p): p is Policy => p.kind === "policy");
      const keeps = keepsDeadLetters(r, policies, broker);
      add(dlx, `queue ${r.name} dead-letters to it (x-dead-letter-exchange${keeps ? ", at least once" : ""})`, true, keeps);
    } else if (r.kind === "exchange" && !targets.has(r.name)) add(r.arguments["alternate-exchange"], `exchange ${r.name} sends what it cannot route to it (alternate-exchange)`, false);
    else if (r.kind === "policy") {
      add(r.definition["dead-letter-exchange"], `policy ${r.name} dead-letters to it the messages of the queues it matches (${r.pattern})`, true);
      add(r.definition["alternate-exchange"], `policy ${r.name} makes it the alternate exchange of the exchanges it matches (${r.pattern})`, false);
    }
  }
  return senders;
}

/**
 * An exchange replace deletes the exchange and declares it again with its bindings: in that
 * moment what the queues that dead-letter to it and the exchanges that use it as their alternate
 * exchange send there is dropped without a word (RabbitMQ drops a dead letter or an unroutable
 * message whose exchange is missing, or that it routes nowhere; the publish that led there was
 * confirmed). The publishers note does not cover them: nobody publishes those. Measured on 3.10.8
 * with a queue dead-lettering to it (x-message-ttl 1) and an exchange's unroutable messages, each
 * fed about 300 a second: 114 of the 3,366 sent during 10 replaces were lost, every replace lost
 * some (tens of milliseconds of that flow each). Plan names each sender under the replace
 * (docs/safety.md).
 */
function markRoutesIntoReplaced(actions: Action[], remainingOnce: () => readonly Resource[], broker: Broker): void {
  const replaced = actions.flatMap((a) => (a.op === "replace" && a.after.kind === "exchange" ? [{ a, name: a.after.name }] : []));
  if (replaced.length === 0) return;
  const senders = sendersToExchanges(new Set(replaced.map((r) => r.name)), remainingOnce, broker);
  for (const { a, name } of replaced) {
    const all = senders.get(name);
    if (!all) continue;
    const lost = all.filter((s) => !s.keeps);
    const kept = keptDeadLetters(all.flatMap((s) => (s.keeps ? [s.who] : [])), "while it is re-created", "and RabbitMQ sends it on once the exchange routes it again, at its next retry (measured: 174 s later): none is lost, but it waits");
    if (!lost.length) {
      a.routedInto = `dead letters: ${kept}`;
      continue;
    }
    const one = lost.length === 1;
    const stop = [
      ...(lost.some((s) => s.deadLetters) ? ["what makes those queues dead-letter (a message TTL, workers that reject)"] : []),
      ...(lost.some((s) => !s.deadLetters) ? ["what publishes to those exchanges"] : []),
    ];
    // Measured on 3.10.8 and 4.3.6: a publish marked mandatory to an exchange whose alternate
    // exchange is missing comes back (basic.return 312 NO_ROUTE); without it, nothing is said.
    const heard = lost.some((s) => !s.deadLetters) ? "no publisher hears of it, unless it publishes mandatory to those exchanges: then the message comes back, 312 NO_ROUTE" : "no publisher hears of it";
    a.routedInto =
      `dead letters and unroutable messages: ${lost.map((s) => s.who).join("; ")}: in the moment between its delete and its re-creation with its bindings RabbitMQ drops what ${one ? "that sends" : "those send"} it, without a word (${heard}; measured: tens of milliseconds of that flow a replace); ` +
      `stop ${stop.join(" and ")} for the apply (docs/safety.md)${kept ? `; ${kept}` : ""}`;
  }
}

/**
 * Queues that keep their dead letters (keepsDeadLetters), as `who` names their sending: that they
 * keep what they dead-letter `when` their target is missing, and `then` what becomes of it; "" for none.
 */
function keptDeadLetters(who: readonly string[], when: string, then: string): string {
  if (!who.length) return "";
  const one = who.length === 1;
  return `${who.join("; ")}: ${one ? "it keeps" : "they keep"} what ${one ? "it dead-letters" : "they dead-letter"} ${when} (${AT_LEAST_ONCE}), ${then}`;
}

/**
 * Exchanges and queues this plan deletes that something left on the vhost still sends messages
 * to: a queue's dead-letter exchange (or, through the default exchange, its dead-letter routing
 * key's queue) or an exchange's alternate exchange, as an argument or through a policy.
 * RabbitMQ drops what it would send to a missing exchange or queue without a word (its log only),
 * so plan names each one. A queue's dead letters go by name where its two dead-letter settings
 * say so together, each the queue's argument or its policy's (`namedSenders`): looked at pair by
 * pair, a queue with x-dead-letter-exchange "" under a policy's dead-letter-routing-key naming the
 * deleted queue was not named.
 */
function routesIntoDeleted(actions: Action[], namedSenders: (queue: string) => NamedSender[], remainingOnce: () => readonly Resource[], broker: Broker): string[] {
  const gone = new Set(actions.flatMap((a) => (a.op === "delete" && a.before.kind === "exchange" ? [a.before.name] : [])));
  // Dead-lettering through the default exchange names the queue itself, by its routing key.
  const goneQueues = new Set(actions.flatMap((a) => (a.op === "delete" && a.before.kind === "queue" ? [a.before.name] : [])));
  if (gone.size === 0 && goneQueues.size === 0) return [];
  const senders = new Map<string, string[]>();
  // Queues that keep their dead letters: said apart, since nothing of theirs is dropped.
  const keeping = new Map<string, string[]>();
  for (const q of goneQueues) {
    for (const s of namedSenders(q)) {
      const who = `queue ${shown(s.queue)} ${s.sure ? "dead-letters" : "may dead-letter (topo cannot tell which policy applies to it)"} to it (${s.how})`;
      pushTo(s.keeps ? keeping : senders, `queue ${q}`, who);
    }
  }
  for (const [exchange, who] of sendersToExchanges(gone, remainingOnce, broker)) {
    const lost = who.filter((s) => !s.keeps);
    if (lost.length) senders.set(`exchange ${exchange}`, lost.map((s) => s.who));
    if (lost.length < who.length) keeping.set(`exchange ${exchange}`, who.flatMap((s) => (s.keeps ? [s.who] : [])));
  }
  return [...new Set([...senders.keys(), ...keeping.keys()])]
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    .map((target) => {
      const who = senders.get(target) ?? [];
      const keep = keeping.get(target) ?? [];
      const kept = keptDeadLetters(keep, "once it is gone", `where it waits until ${target.startsWith("queue ") ? "a queue of that name is there" : "an exchange of that name routes it"}: none is dropped`);
      const dropped = who.length ? `${who.join("; ")}: once it is gone, RabbitMQ drops those messages without a word` : "";
      return `this plan deletes ${target}, but ${[dropped, kept].filter(Boolean).join("; ")}; point ${who.length + keep.length === 1 ? "it" : "them"} elsewhere first, or keep the service`;
    });
}

/**
 * The management API clears a user's topic permissions in a vhost all at once, never one
 * exchange's: clearing them all and putting the others back would leave the user free to use any
 * routing key for a moment. So one exchange's entry is revoked by making it allow nothing (an
 * update to ^$), and a user's entries are cleared only when none of them is wanted any more.
 * Returns "none" when nothing is to be done (the entry already allows nothing), the revoking
 * entry, or undefined for a delete.
 */
function revokeTopicPermission(before: TopicPermission, topics: TopicView): TopicPermission | "none" | undefined {
  if (!topics.wantedBy.has(before.user)) return undefined;
  if (allowsNothing(before)) return "none";
  // RabbitMQ 4 refuses a topic permission on a missing exchange; and without the exchange, and
  // without write on it (the user's permission no longer names it), the entry allows nothing.
  // amq.* are always there, though no listing of topo's holds them: an adopted user's own entry
  // on amq.topic was left as it was, and plan said "No changes".
  if (!topics.exchanges.has(before.exchange) && !isBrokersOwn(before.exchange)) return "none";
  return { ...before, write: NOTHING, read: NOTHING };
}

/** What revokeTopicPermission needs, worked out once per plan. */
interface TopicView {
  /** Users with at least one topic permission the file wants here. */
  wantedBy: Set<string>;
  /** Exchanges the vhost holds now. */
  exchanges: Set<string>;
}

function topicView(want: Map<string, Resource>, have: Map<string, Resource>): TopicView {
  const wantedBy = new Set<string>();
  for (const r of want.values()) if (r.kind === "topic-permission") wantedBy.add(r.user);
  const exchanges = new Set<string>();
  for (const r of have.values()) if (r.kind === "exchange") exchanges.add(r.name);
  return { wantedBy, exchanges };
}

function isOwnUser(r: Resource, desired: DesiredCluster): boolean {
  const name = r.kind === "user" ? r.name : r.kind === "permission" || r.kind === "topic-permission" ? r.user : undefined;
  if (name === undefined) return false;
  return name === desired.target.amqp.username || name === desired.target.management.username || (desired.users?.connectsAs.includes(name) ?? false);
}

/** `user` has permissions on this cluster's vhost and on no other. */
function rightsOnlyHere(user: string, desired: DesiredCluster, actual: ActualCluster): boolean {
  const vhosts = actual.userVhosts?.[user] ?? [];
  return vhosts.length > 0 && vhosts.every((v) => v === desired.target.amqp.vhost);
}

/** The vhosts outside the file's (on this broker) where `user` has permissions. */
function usedElsewhere(user: string, users: DesiredCluster["users"], actual: ActualCluster): string[] {
  return (actual.userVhosts?.[user] ?? []).filter((v) => !users?.vhosts.includes(v)).sort();
}

/** The password the file gives differs from the broker's stored hash (unknown counts as different). */
function passwordDiffers(user: string, credentials: Credentials, actual: ActualCluster): boolean {
  const stored = actual.userHashes?.[user];
  return stored === undefined || !credentials.matches(user, stored);
}

/**
 * Each queue replace gets the limits the move must respect and, when the broker's counts were
 * read, the ways it could lose messages. Policies are those the vhost will have while the
 * replace runs: the file's, plus the ones topo does not own.
 */
function judgeQueueReplaces(actions: Action[], desired: DesiredCluster, actual: ActualCluster, owner: Ownership, sendersByName: (queue: string) => NamedSender[]): void {
  const policies = policiesOnceApplied(desired, actual, (p) => owner.owns(p));
  const movedDeadLetters = movedDeadLetterNotes(desired, actual, (p) => owner.owns(p));
  let exchanges: Map<string, Exchange> | undefined;
  for (const a of actions) {
    if (a.op !== "replace" || a.before.kind !== "queue" || a.after.kind !== "queue") continue;
    const operatorPolicies = actual.operatorPolicies ?? [];
    const limits = queueLimits(a.after, policies, operatorPolicies);
    const hold = holdingQueueFor(a.after, limits, a.before);
    exchanges ??= new Map(actual.resources.flatMap((r) => (r.kind === "exchange" ? [[r.name, r] as const] : [])));
    const taken = holdExchangeTaken(exchanges.get(hold.name), actual.resources);
    a.limits = { queue: limits, hold: queueLimits(hold, policies, operatorPolicies), old: queueLimits(a.before, policies, operatorPolicies) };
    const deadLetters = a.after.type === "stream" ? undefined : movedDeadLetters(a.after.name);
    if (deadLetters) a.movedDeadLetters = deadLetters;
    const queueExists = a.before.name === a.after.name;
    const deletesQueue = !onlyFinishes(a);
    // Only a replace that deletes the queue leaves a moment with no queue of its name.
    const senders = deletesQueue ? sendersByName(a.after.name) : [];
    if (senders.length) a.namedDeadLetters = { queues: senders.map((s) => s.queue), note: namedDeadLettersNote(a.after.name, senders) };
    const held = heldTogether(queueExists ? actual.queueFacts[a.after.name] : undefined, a.resume ? actual.queueFacts[hold.name] : undefined);
    // Counts not in yet (statistics of a new queue): what does not depend on them is judged now.
    if (!held) {
      // A stream is a risk whatever it holds (topo can neither move nor count its messages):
      // plan said nothing of it until the statistics came, and apply refused it.
      const stream = deletesQueue && a.before.type === "stream" ? replaceRisks({ before: a.before, after: a.after, hold, held: { ready: 0, unacked: 0, consumers: 0 }, deletesQueue, policies, operatorPolicies }).filter((r) => r.rule === "stream") : [];
      const risks = [...taken, ...stream, ...holdLimitRisks({ before: a.before, after: a.after, hold, deletesQueue, policies, operatorPolicies }, "unknown")];
      if (risks.length) a.risks = risks;
      continue;
    }
    a.risks = [...taken, ...replaceRisks({ before: a.before, after: a.after, hold, held, deletesQueue, policies, operatorPolicies })];
  }
}

/**
 * A replace moves the queue's messages through a fanout exchange of the holding queue's name
 * (transient, auto-delete: broker/replace.ts), declared once the queue is unbound. An exchange of
 * that name declared otherwise (someone's, in topo's namespace topo.hold.*) makes the broker refuse
 * that declare (406), and the replace stopped half-way, its routes moved onto the holding queue.
 * One declared the same way is the one an interrupted replace left, and is used.
 */
function holdExchangeTaken(x: Exchange | undefined, resources: readonly Resource[]): ReplaceRisk[] {
  if (!x) return [];
  if (x.type === HOLD_EXCHANGE.type && x.durable === HOLD_EXCHANGE.durable && x.autoDelete === HOLD_EXCHANGE.autoDelete && !x.internal && Object.keys(x.arguments).length === 0) {
    // Declared as topo declares it, but bound elsewhere than its holding queue: every moved
    // message went there too (a user's queue bound to topo.hold.akwallet.sync got a copy of all
    // 10 a replace moved, and plan said nothing).
    const elsewhere = resources.filter((r): r is Binding => r.kind === "binding" && r.source === x.name && !(r.destinationType === "queue" && r.destination === x.name));
    if (elsewhere.length === 0) return [];
    return [
      {
        rule: "hold-exchange",
        reason: `exchange ${shown(x.name)} is bound elsewhere than its holding queue (${elsewhere.map(describe).join(", ")}): the replace moves the messages through it, so each would also be copied there`,
        advice: `remove ${elsewhere.length === 1 ? "that binding" : "those bindings"}, or delete exchange ${shown(x.name)} (topo.hold.* is topo's own namespace, for replaces)`,
      },
    ];
  }
  const shape = [x.type, x.durable ? "durable" : "transient", ...(x.autoDelete ? ["auto-delete"] : []), ...(x.internal ? ["internal"] : [])].join(", ");
  return [
    {
      rule: "hold-exchange",
      reason: `an exchange ${shown(x.name)} (${shape}) exists: the replace moves the messages through a fanout exchange of that name, transient and auto-delete, which the broker would refuse to declare over it`,
      advice: `delete exchange ${shown(x.name)} first (topo.hold.* is topo's own namespace, for replaces)`,
    },
  ];
}

/** What the queue and its holding queue hold together; undefined unless the broker's counts were read. */
function heldTogether(queue: QueueFacts | undefined, hold: QueueFacts | undefined): HeldMessages | undefined {
  const facts = [queue, hold].filter((f): f is QueueFacts => f !== undefined);
  if (facts.length === 0 || facts.some((f) => f.ready === undefined)) return undefined;
  const sum = (pick: (f: QueueFacts) => number | undefined) => facts.reduce((n, f) => n + (pick(f) ?? 0), 0);
  return {
    ready: sum((f) => f.ready),
    unacked: sum((f) => f.unacked),
    ...(facts.some((f) => f.unackedUnknown) ? { unackedUnknown: true } : {}),
    consumers: queue?.consumers ?? 0,
    bytes: facts.some((f) => f.bytes === undefined) ? undefined : sum((f) => f.bytes),
    ...(queue?.deadLettersWaiting ? { deadLetters: queue.deadLettersWaiting, ...(queue.delayedRetries !== undefined ? { delayedRetries: queue.delayedRetries } : {}) } : {}),
  };
}

/**
 * Actions in the order plan shows them: by kind, then by name as printed. Each name is worked out
 * once, not at every comparison: planning both clusters of 25,000 services from empty (150,000
 * actions; an apply does it twice) took a median of 319 ms that way and 269 ms this way.
 */
function sortActions(actions: Action[]): void {
  const order = actions.map((a) => {
    const r = subjectOf(a);
    return { a, kind: KIND_ORDER[r.kind], name: describe(r) };
  });
  order.sort((x, y) => x.kind - y.kind || (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
  order.forEach((o, i) => {
    actions[i] = o.a;
  });
}

/**
 * What a queue that is deleted (or deleted to be replaced) holds: its messages, and with them a
 * quorum queue's dead letters waiting for their target and retries RabbitMQ 4.3 delays (read with
 * its statistics), which go with it too, as `apart`: no delete-ok counts them. A replace counted
 * only the ready and unacknowledged ones: with --allow-data-loss it said the queue was "deleted
 * with the 1 message it holds" and dropped 3.
 */
function heldWithApart(actual: ActualCluster, before: Resource): { messages?: number; apart?: number } {
  const waiting = before.kind === "queue" ? actual.queueFacts[before.name]?.deadLettersWaiting : undefined;
  const counted = messagesOf(actual, before);
  return waiting ? { messages: (counted ?? 0) + waiting, apart: waiting } : { messages: counted };
}

/** What a queue holds by the read: its messages, and those fetched but not acknowledged (undefined: none). */
function messagesOf(actual: ActualCluster, r: Resource): number | undefined {
  return r.kind === "queue" ? actual.queueFacts[r.name]?.messages : undefined;
}

/** `unackedUnknown` when what a queue's consumers hold unacknowledged has no count (broker/read.ts readLiveCounts). */
function unknownUnacked(actual: ActualCluster, ...rs: Resource[]): { unackedUnknown?: true } {
  return rs.some((r) => r.kind === "queue" && actual.queueFacts[r.name]?.unackedUnknown) ? { unackedUnknown: true } : {};
}

/** The consumers a queue has by the read (plan's passive declare, else its statistics), when any. */
function consumersOf(actual: ActualCluster, r: Resource): { consumers?: number } {
  const n = r.kind === "queue" ? actual.queueFacts[r.name]?.consumers : undefined;
  return n ? { consumers: n } : {};
}

function unackedOf(actual: ActualCluster, r: Resource): number | undefined {
  return r.kind === "queue" ? actual.queueFacts[r.name]?.unacked || undefined : undefined;
}

/**
 * A holding queue left behind means a lossless replace stopped half-way. Plan shows it as a
 * replace of the queue it belongs to, and apply's replace finishes the job from whatever step it
 * reached. A holding queue whose queue the file no longer lists is deleted like any other queue
 * (and its messages guard that delete).
 */
function resumeInterruptedReplaces(
  actions: Action[],
  want: Map<string, Resource>,
  have: Map<string, Resource>,
  actual: ActualCluster,
  deleted: Set<string>,
  owner: Ownership,
): void {
  // Indexed at the first holding queue: searched for each, a holding queue left for each of
  // 10,000 replaced queues made a plan take 12 s.
  let index: { action: Map<string, number>; bindingsTo: Map<string, Binding[]> } | undefined;
  const indexed = () => {
    if (index) return index;
    const action = new Map<string, number>();
    actions.forEach((a, i) => action.has(a.key) || action.set(a.key, i));
    const bindingsTo = new Map<string, Binding[]>();
    for (const b of actual.resources) if (b.kind === "binding" && b.destinationType === "queue") pushTo(bindingsTo, b.destination, b);
    return (index = { action, bindingsTo });
  };
  const push = (a: Action) => {
    if (index && !index.action.has(a.key)) index.action.set(a.key, actions.length);
    actions.push(a);
  };
  for (const r of have.values()) {
    const base = holdingQueueOf(r, owner);
    if (!base || r.kind !== "queue") continue;
    const { action: actionAt, bindingsTo } = indexed();
    const baseKey = keyOf({ ...r, name: base });
    const after = want.get(baseKey);
    const holdMessages = messagesOf(actual, r);
    if (!after) {
      deleted.add(keyOf(r));
      push({ op: "delete", key: keyOf(r), before: r, messages: holdMessages, unacked: unackedOf(actual, r) });
      continue;
    }
    const i = actionAt.get(baseKey);
    const existing = i === undefined ? undefined : actions[i];
    const resume = {
      hold: r,
      // Not the one from the exchange of the holding queue's own name, which the move into it
      // goes through (broker/replace.ts): that is topo's, and goes with the move.
      holdBindings: (bindingsTo.get(r.name) ?? []).filter((b) => b.source !== r.name),
      messages: holdMessages,
      // The queue exists and nothing about it differs: it was re-created, only the move back is left.
      queueDone: have.has(baseKey) && existing?.op !== "replace",
    };
    const why = `finishing an interrupted replace: ${holdMessages ?? "some"} message${holdMessages === 1 ? " waits" : "s wait"} in ${r.name}`;
    const before = have.get(baseKey) ?? r;
    const messages = (actual.queueFacts[base]?.messages ?? 0) + (holdMessages ?? 0);
    const action: Action = {
      op: "replace",
      key: baseKey,
      before,
      after,
      because: [why, ...(existing?.op === "replace" ? existing.because : [])],
      rebind: [],
      messages,
      ...unknownUnacked(actual, r, { ...r, name: base }),
      resume,
    };
    if (existing) actions[i!] = action;
    else push(action);
  }
}

export function summarize(plan: Plan): Summary {
  const s: Summary = { create: 0, update: 0, replace: 0, delete: 0 };
  for (const c of plan.clusters) for (const a of c.actions) s[a.op]++;
  return s;
}

/** No action and no drift topo cannot repair: what --detailed-exitcode reports as 0. */
export function isEmpty(plan: Plan): boolean {
  return plan.clusters.every((c) => c.actions.length === 0 && c.degraded.length === 0);
}

/**
 * Replaces and deletes: the actions apply refuses without --allow-destructive. Not the end of an
 * interrupted replace whose queue has its new shape already or is gone: what is left deletes
 * nothing but topo's holding queue once it is empty (the messages move back), and an apply that
 * left a replace half-way said "run topo apply again", which then refused it as destructive.
 */
export function destructiveActions(plan: ClusterPlan): Extract<Action, { op: "replace" | "delete" }>[] {
  return plan.actions.filter((a): a is Extract<Action, { op: "replace" | "delete" }> => a.op === "delete" || (a.op === "replace" && !onlyFinishes(a)));
}

/** A replace left half-way whose queue needs no delete: only its messages move back. */
export function onlyFinishes(a: ReplaceAction): boolean {
  // The queue gone, the holding queue stands in as what is there now (`before`).
  return a.resume !== undefined && (a.resume.queueDone || keyOf(a.before) === keyOf(a.resume.hold));
}
