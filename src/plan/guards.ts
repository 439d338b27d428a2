// Pure: what apply refuses to do unless it is told it may. A destructive change (a replace or a
// delete) needs --allow-destructive; anything that can lose messages (deleting a queue that holds
// some, a replace the broker would make drop some, a policy change that hands a queue to a limit
// below what it holds) needs --allow-data-loss; a delete that takes
// bindings topo does not manage with it needs --allow-unmanaged-deletes. Each refusal lists every
// offending change on every cluster, before anything is written anywhere.

import { allOf, UnsafePlanError } from "../errors.js";
import type { Action, ClusterPlan, ReplaceAction } from "../model.js";
import { describe, keyOf } from "../core/keys.js";
import { markOfBinding } from "../core/naming.js";
import { destructiveActions } from "./diff.js";
import { alsoRemoves, cannotRecreate, inexactRebinds, lostReason, messagesHeld, orphanedHold, renderAction } from "./render.js";
import { autoDeleted, lostNow } from "./lost-bindings.js";
import { retypedReason } from "./retyped.js";
import { CELERY_QUEUE_GONE, FETCHED_WITHOUT_CONSUMER, letGoOf, plural, shown } from "../core/words.js";

export interface Allowed {
  allowDestructive: boolean;
  allowDataLoss: boolean;
  /** Deletes may take bindings topo does not manage with them, and replaces those it cannot put back. */
  allowUnmanagedDeletes?: boolean;
  /**
   * Queue replaces are a plain delete and re-create (apply --allow-data-loss); undefined: as
   * allowDataLoss. Apply sets it apart where it judges the data loss later, on live counts.
   */
  plainReplaces?: boolean;
}

/**
 * Throw every refusal the plans earn, in one error: destructive changes, other people's bindings,
 * message loss. Thrown one at a time, a plan that needed two flags was refused once per flag, and
 * the user learnt of the next only after adding the first.
 */
export function guardPlans(plans: ClusterPlan[], allowed: Allowed): void {
  const guards = [
    ...(allowed.allowDestructive ? [] : [guardDestructive]),
    ...(allowed.allowUnmanagedDeletes ? [] : [guardUnmanaged, (ps: ClusterPlan[]) => guardLostBindings(ps, allowed.plainReplaces ?? allowed.allowDataLoss), guardInexact, guardRetyped]),
    ...(allowed.allowDataLoss ? [] : [guardDataLoss, guardReplaceRisks, guardPolicyLosses]),
  ];
  const refused: unknown[] = [];
  for (const guard of guards) {
    try {
      guard(plans);
    } catch (e) {
      if (!(e instanceof UnsafePlanError)) throw e;
      refused.push(e);
    }
  }
  if (refused.length) throw allOf(refused);
}

/** Deletes of queues, whose message counts guardDataLoss needs (replaces: guardReplaceRisks). */
export function deletesQueues(p: ClusterPlan): boolean {
  return p.actions.some((a) => a.op === "delete" && a.before.kind === "queue");
}

export function guardDestructive(plans: ClusterPlan[]): void {
  // A replace left half-way says so: its queue's new messages wait on the holding queue, where
  // no worker takes them, until an apply finishes it (a refusal that said only "nothing was
  // changed" hid that).
  const half = (a: Action) => (a.op === "replace" && a.resume ? ` (finishing an interrupted replace: ${a.resume.messages ?? "some"} message${a.resume.messages === 1 ? "" : "s"} and the queue's bindings wait on ${a.resume.hold.name}, where no worker takes them, until an apply finishes it)` : "");
  const lines = plans.flatMap((p) => destructiveActions(p).map((a) => `  cluster ${p.cluster}: ${renderAction(a)[0]}${half(a)}`));
  if (lines.length === 0) return;
  // What each kind of change refused does, for the kinds among them only.
  const destructive = plans.flatMap((p) => destructiveActions(p));
  const ops = new Set(destructive.map((a) => a.op));
  // A binding someone made on the apply mark is no object of the file's (plan/diff.ts bindingsOnMark).
  const onMark = destructive.some((a) => a.op === "delete" && a.before.kind === "binding" && markOfBinding(a.before) !== undefined);
  const onlyOnMark = onMark && destructive.every((a) => a.op === "delete" && a.before.kind === "binding" && markOfBinding(a.before) !== undefined);
  const what = [
    ...(ops.has("replace") ? ["a replace deletes and re-creates the object (its bindings are re-created too)"] : []),
    ...(ops.has("delete") && !onlyOnMark ? ["a delete removes an object topo manages that the file no longer lists"] : []),
    ...(onMark ? ["a binding on topo's apply mark goes with the mark at every apply that writes (topo deletes and declares it again), so plan lists it as a delete: remove it yourself, or let apply take it"] : []),
  ];
  throw new UnsafePlanError(`refusing to apply ${lines.length} destructive change${lines.length === 1 ? "" : "s"} without --allow-destructive:\n${lines.join("\n")}`, [
    ...(what.length ? [what.join("; ")] : []),
    "review the plan, then run topo apply --allow-destructive; nothing was changed",
  ]);
}

/**
 * topo never touches what it does not own, but RabbitMQ removes every binding of an exchange or a
 * queue with it: a delete that would take a binding someone else made (a user's `mplogin -> audit`)
 * is refused unless told so. --allow-destructive is not enough: it allows deleting what left the
 * file, and these bindings were never in it.
 */
export function guardUnmanaged(plans: ClusterPlan[]): void {
  const offending = plans.flatMap((p) => p.actions.flatMap((a) => (a.op === "delete" && a.unmanaged?.length ? [{ cluster: p.cluster, a, unmanaged: a.unmanaged }] : [])));
  if (offending.length === 0) return;
  const bindings = new Set(offending.flatMap(({ cluster, unmanaged }) => unmanaged.map((b) => `${cluster}|${keyOf(b)}`))).size;
  const n = offending.length;
  const lines = offending.flatMap(({ cluster, a, unmanaged }) => [
    `  cluster ${cluster}: ${renderAction(a)[0]}`,
    `    ${alsoRemoves(unmanaged)}`,
    ...[...new Map((a.lost ?? []).map((l) => [autoDeleted(l), l.plainOnly]))].map(
      ([x, plainOnly]) => `    ${plainOnly ? "with --allow-data-loss, " : ""}RabbitMQ deletes exchange ${shown(x)} with it too (auto-delete: its last binding goes)`,
    ),
  ]);
  throw new UnsafePlanError(
    `refusing to delete ${n} object${n === 1 ? "" : "s"} that take${n === 1 ? "s" : ""} ${bindings} binding${bindings === 1 ? "" : "s"} topo does not manage with ${n === 1 ? "it" : "them"}:\n${lines.join("\n")}`,
    [
      "the broker removes an exchange's or a queue's bindings with it, also those topo did not make: what they route stops arriving (a queue bound to a deleted exchange receives nothing more)",
      "remove or move those bindings first, or keep the object in the file; or, once their owners agree, pass --allow-unmanaged-deletes too; nothing was changed",
    ],
  );
}

/**
 * A replace puts back every binding its object had, but the broker does not let it put back some
 * (plan/lost-bindings.ts): an auto-delete exchange's last binding (RabbitMQ deletes the exchange
 * with it) and an exclusive queue's (only its own connection may bind it). Those are someone
 * else's, and no later plan knows them: refused, as a delete that takes them is, unless told.
 * `plainReplaces`: queue replaces are a plain delete and re-create, which loses an auto-delete
 * exchange's last binding; without loss, the holding queue keeps the exchange bound.
 */
export function guardLostBindings(plans: ClusterPlan[], plainReplaces: boolean): void {
  const offending = plans.flatMap((p) =>
    p.actions.flatMap((a) => {
      const lost = a.op === "replace" ? lostNow(a.lost, plainReplaces) : [];
      return lost.length ? [{ cluster: p.cluster, a, lost }] : [];
    }),
  );
  if (offending.length === 0) return;
  const n = offending.length;
  const lines = offending.flatMap(({ cluster, a, lost }) => [`  cluster ${cluster}: ${renderAction(a)[0]}`, ...lost.map((l) => `    ${describe(l.binding)}: ${lostReason(l)}`)]);
  const count = offending.reduce((k, { lost }) => k + lost.length, 0);
  throw new UnsafePlanError(
    `refusing to replace ${plural(n, "object")} whose ${plural(count, "binding")} topo cannot put back:\n${lines.join("\n")}`,
    [
      "a replace deletes the object, and RabbitMQ its bindings with it; topo makes them again, but not these, and no later plan knows them: what they route stops arriving",
      "remove those bindings first (their owners can make them again afterwards), or stop the client whose exclusive queue it is; or, once their owners agree, pass --allow-unmanaged-deletes too; nothing was changed",
    ],
  );
}

/**
 * A replace deletes the object with its bindings and makes them again. One whose arguments topo
 * cannot write with the types the broker holds them in (an integer above 2^53, which the
 * management API's JSON rounds; a decimal) would come back as another binding: a headers
 * exchange compares types too, and what it routed is then dropped. Refused like a delete that
 * takes a binding topo does not manage, before anything is written.
 */
export function guardInexact(plans: ClusterPlan[]): void {
  const offending = plans.flatMap((p) =>
    p.actions.flatMap((a) => {
      const bindings = a.op === "replace" ? inexactRebinds(a) : [];
      return bindings.length ? [{ cluster: p.cluster, a, bindings }] : [];
    }),
  );
  if (offending.length === 0) return;
  const n = offending.reduce((k, o) => k + o.bindings.length, 0);
  const lines = offending.flatMap(({ cluster, a, bindings }) => [`  cluster ${cluster}: ${renderAction(a)[0]}`, ...bindings.map((b) => `    ${cannotRecreate(b)}`)]);
  throw new UnsafePlanError(`refusing to replace ${plural(offending.length, "object")} whose ${plural(n, "binding")} topo cannot re-create exactly:\n${lines.join("\n")}`, [
    "re-created with other argument types, a binding is another binding: what it routed (on a headers exchange, by a header's value and type) would stop arriving",
    "re-create the binding with arguments the management API shows exactly, or remove it, before the replace; or, once its owner agrees to its arguments' types changing, pass --allow-unmanaged-deletes; nothing was changed",
  ]);
}

/**
 * An exchange replace that changes the type puts back the bindings of others as they were, and the
 * new type routes them otherwise (plan/retyped.ts): what reaches their queues changes, and no
 * later plan shows it. Refused, as a replace that cannot put them back is, unless told.
 */
export function guardRetyped(plans: ClusterPlan[]): void {
  const offending = plans.flatMap((p) => p.actions.flatMap((a) => (a.op === "replace" && a.retyped?.length ? [{ cluster: p.cluster, a, bindings: a.retyped }] : [])));
  if (offending.length === 0) return;
  const n = offending.reduce((k, o) => k + o.bindings.length, 0);
  const lines = offending.flatMap(({ cluster, a, bindings }) => [`  cluster ${cluster}: ${renderAction(a)[0]}`, ...bindings.map((b) => `    ${describe(b)}: ${retypedReason(a, b)}`)]);
  throw new UnsafePlanError(`refusing to replace ${plural(offending.length, "exchange")} whose new type changes what ${plural(n, "binding")} topo does not manage ${n === 1 ? "routes" : "route"}:\n${lines.join("\n")}`, [
    "the replace puts each binding back with its key and arguments, but the new type reads them otherwise: its queue gets other messages than before (none of what it got, or copies of tasks the service's workers run too)",
    "move or remove those bindings first, or keep the exchange's type; or, once their owners agree, pass --allow-unmanaged-deletes; nothing was changed",
  ]);
}

/**
 * A replace moves the queue's messages aside and back; refuse, before anything is written, one
 * that the broker would make lose messages on the way (plan/risk.ts says how). The counts are
 * the broker's live ones (readAndPlan with a session).
 */
export function guardReplaceRisks(plans: ClusterPlan[]): void {
  const risky = plans.flatMap((p) => p.actions.filter((a): a is ReplaceAction => a.op === "replace" && (a.risks?.length ?? 0) > 0).map((a) => ({ cluster: p.cluster, a })));
  if (risky.length === 0) return;
  const lines = risky.flatMap(({ cluster, a }) => [
    `  cluster ${cluster}: queue ${describe(a.after)}${a.messages || a.unackedUnknown ? ` (holds ${messagesHeld(a)})` : ""}:`,
    ...(a.risks ?? []).map((r) => `    ${r.reason}`),
  ]);
  const advice = [...new Set(risky.flatMap(({ a }) => (a.risks ?? []).map((r) => r.advice)))];
  const n = risky.length;
  throw new UnsafePlanError(
    `refusing to replace ${n} queue${n === 1 ? "" : "s"} that could lose messages:\n${lines.join("\n")}`,
    [...advice, "or pass --allow-data-loss to replace it by a plain delete and re-create, dropping what it holds; nothing was changed"],
    "refused_data_loss",
  );
}

/**
 * A change to topo's policies that makes another policy's limit apply to a queue holding more than
 * it lets the queue keep (plan/policy-shifts.ts): the broker cuts the queue the moment the change
 * is made. --allow-destructive allows deleting topo's policy, never the messages.
 */
export function guardPolicyLosses(plans: ClusterPlan[]): void {
  const risky = plans.flatMap((p) => p.actions.flatMap((a) => (a.op !== "replace" && a.losses?.length ? [{ cluster: p.cluster, a, losses: a.losses }] : [])));
  if (risky.length === 0) return;
  const lines = risky.flatMap(({ cluster, a, losses }) => [`  cluster ${cluster}: ${renderAction(a)[0]}`, ...losses.map((l) => `    ${l.reason}`)]);
  const queues = new Set(risky.flatMap(({ cluster, losses }) => losses.map((l) => `${cluster}|${l.queue}`))).size;
  const n = risky.length;
  const advice = [...new Set(risky.flatMap(({ losses }) => losses.map((l) => l.advice)))];
  throw new UnsafePlanError(
    `refusing to make ${plural(n, "policy change")} that would make ${plural(queues, "queue")} lose messages:\n${lines.join("\n")}`,
    [
      ...advice,
      "or change the other policy so that it does not limit the queue (its definition, or its pattern so that it no longer matches the queue; a priority below that of topo's policy only helps where topo's policy still matches the queue after the change), or keep the file's policy as it was",
      "or pass --allow-data-loss to make the change and let the broker drop what the limit does not keep; nothing was changed",
    ],
    "refused_data_loss",
  );
}

/** With --allow-data-loss a queue replace is a plain delete and re-create, and a policy change may cut queues: what goes. */
export function dataLossLines(p: ClusterPlan): string[] {
  return p.actions.flatMap((a) =>
    a.op === "replace" && a.after.kind === "queue" && !a.resume && ((a.messages ?? 0) > 0 || a.unackedUnknown)
      ? [`cluster ${p.cluster}: --allow-data-loss: queue ${describe(a.after)} is deleted with the ${messagesHeld(a)} it holds, and re-created empty`]
      : a.op !== "replace" && a.losses?.length
        ? a.losses.map((l) => `cluster ${p.cluster}: --allow-data-loss: ${renderAction(a)[0]}: ${l.reason}`)
        : [],
  );
}

/**
 * A queue to delete that holds messages, has consumers, or is a stream: what a consumer has not
 * acknowledged goes with the queue (the broker's if-empty counts ready messages only), so a queue
 * in use is refused before anything is written too, not only by the if-unused delete mid-apply.
 * A stream keeps its messages after they are consumed, and both its counts lag (a passive declare
 * answers 0 for messages just confirmed, and so does the broker's if-empty delete): topo cannot
 * make sure one holds nothing, so only --allow-data-loss deletes it.
 */
export function guardDataLoss(plans: ClusterPlan[]): void {
  type Delete = Extract<Action, { op: "delete" }>;
  const isStream = (a: Delete) => a.before.kind === "queue" && a.before.type === "stream";
  // Uncounted: a queue without consumers whose count the broker did not give (apply's count).
  const uncounted = (a: Delete) => (a.unackedUnknown === true || a.deadLettersUnknown === true) && !a.consumers && !isStream(a);
  const reasons = (a: Delete) => [(a.messages ?? 0) > 0 ? "messages" : "", (a.consumers ?? 0) > 0 ? "consumers" : "", isStream(a) ? "stream" : "", uncounted(a) ? "uncounted" : ""].filter(Boolean);
  const offending = plans.flatMap((p) =>
    destructiveActions(p)
      .filter((a): a is Delete => a.op === "delete" && a.before.kind === "queue" && reasons(a).length > 0)
      .map((a) => ({ cluster: p.cluster, a })),
  );
  if (offending.length === 0) return;
  const n = offending.length;
  const all = new Set(offending.flatMap(({ a }) => reasons(a)));
  const one = n === 1;
  const what = [
    all.has("messages") ? (all.size === 1 ? `still ${one ? "holds" : "hold"} messages` : one ? "holds messages" : "hold messages") : "",
    all.has("consumers") ? (one ? "has consumers" : "have consumers") : "",
    all.has("stream") ? (one ? "is a stream" : "are streams") : "",
    all.has("uncounted") ? (one ? "has no count" : "have no count") : "",
  ].filter(Boolean);
  const named = (reason: string) => offending.filter(({ a }) => reasons(a).includes(reason)).map(({ a }) => describe(a.before));
  const lines = offending.map(({ cluster, a }) => `  cluster ${cluster}: ${renderAction(a)[0]}`);
  // Held by a client that is no consumer: the if-unused delete does not see it, nor a passive declare.
  const fetched = offending.filter(({ a }) => !a.consumers && (a.unacked ?? 0) > 0).map(({ a }) => `${plural(a.unacked ?? 0, "message")} of ${describe(a.before)}`);
  throw new UnsafePlanError(
    `refusing to drop messages: ${plural(n, "queue")} to delete ${what.length > 1 ? `${what.slice(0, -1).join(", ")} or ${what[what.length - 1]}` : what[0]}:\n${lines.join("\n")}`,
    [
      ...(all.has("consumers") ? [inUseHint(named("consumers"))] : []),
      ...(fetched.length
        ? [
            `${fetched.join(", ")} ${fetched.length === 1 && fetched[0]!.startsWith("1 message ") ? "is" : "are"} fetched but not acknowledged (${FETCHED_WITHOUT_CONSUMER}), as the broker counts them: the broker deletes such messages with the queue, even if empty and unused; ${letGoOf("them")}`,
          ]
        : []),
      ...(all.has("stream")
        ? [`a stream keeps its messages after they are consumed, and its counts lag behind what was just published, so topo cannot make sure ${named("stream").join(", ")} hold${named("stream").length === 1 ? "s" : ""} none: only --allow-data-loss deletes a stream, with what it holds`]
        : []),
      ...(all.has("uncounted")
        ? [
            `the broker listed ${named("uncounted").join(", ")} without a count of what ${named("uncounted").length === 1 ? "it holds" : "they hold"} (the queue's process did not answer, or its node is down): messages a client fetched and has not acknowledged go with a deleted queue unseen, so topo deletes none it cannot count; run topo apply again once rabbitmqctl list_queues name messages counts ${named("uncounted").length === 1 ? "it" : "them"}`,
          ]
        : []),
      ...offending.flatMap(({ a }) => {
        const orphaned = orphanedHold(a);
        return orphaned ? [`${describe(a.before)}: ${orphaned}`] : [];
      }),
      all.has("messages")
        ? "let the workers drain the queue first (topo plan shows the count), or pass --allow-data-loss to delete the messages with it; nothing was changed"
        : all.has("consumers")
          ? `or pass --allow-data-loss to delete it with what its consumers have not acknowledged; ${CELERY_QUEUE_GONE}; nothing was changed`
          : "nothing was changed",
    ],
    "refused_data_loss",
  );
}

/** What to do about queues to delete that have consumers: before apply writes, or when the delete itself is refused. */
export function inUseHint(queues: readonly string[]): string {
  return `a consumer's unacknowledged messages would go with the queue: stop the workers that consume from ${queues.join(", ")}, then run topo apply again`;
}
