// Pure: Plan → text (for people) and Plan → JSON (for pipelines).

import { keptTopicsLine, UNREAD_TOPICS } from "./topic-keep.js";
import type { Action, Binding, ClusterPlan, LostBinding, Plan, PolicyLoss, ReplaceAction, Resource } from "../model.js";
import { assertNever } from "../model.js";
import { describe, subjectOf } from "../core/keys.js";
import { summarize } from "./diff.js";
import { CELERY_QUEUE_GONE, escapeUnsafe, FETCHED_WITHOUT_CONSUMER, letGoOf, plural, shown } from "../core/words.js";
import { autoDeleted } from "./lost-bindings.js";
import { retypedReason } from "./retyped.js";
import { HOLD_PREFIX, markedPrefix, markOfBinding } from "../core/naming.js";


function details(r: Resource): string {
  switch (r.kind) {
    case "vhost":
    case "binding":
      return "";
    case "exchange":
      return ` (${r.type}${r.durable ? ", durable" : ", transient"}${r.autoDelete ? ", auto-delete" : ""}${r.internal ? ", internal" : ""}${argsText(r.arguments)})`;
    case "queue":
      return ` (${r.type}, ${r.durable ? "durable" : "transient"}${r.autoDelete ? ", auto-delete" : ""}${r.exclusive ? ", exclusive" : ""}${argsText(r.arguments)})`;
    case "policy":
      return ` (pattern ${shown(r.pattern)}, ${Object.entries(r.definition).map(([k, v]) => `${shown(k)}=${typeof v === "string" ? shown(v) : escapeUnsafe(JSON.stringify(v) ?? String(v))}`).join(", ")}, priority ${r.priority})`;
    // A user's password is never shown, not even masked: plan says only that it changes.
    case "user":
      return ` (tags ${r.tags.map(shown).join(", ")})`;
    case "permission":
      return ` (configure ${shown(r.configure)}, write ${shown(r.write)}, read ${shown(r.read)})`;
    case "topic-permission":
      return ` (write ${shown(r.write)}, read ${shown(r.read)})`;
    default:
      return assertNever(r);
  }
}

function argsText(args: Record<string, unknown>): string {
  const entries = Object.entries(args);
  return entries.length ? `, ${entries.map(([k, v]) => `${shown(k)}=${escapeUnsafe(JSON.stringify(v))}`).join(", ")}` : "";
}

type Held = { messages?: number; unackedUnknown?: boolean; deadLettersUnknown?: boolean };

function holds(a: Held): string {
  if (a.unackedUnknown || a.deadLettersUnknown) return ` [holds ${messagesHeld(a)}]`;
  return a.messages ? ` [holds ${messagesHeld(a)}]` : "";
}

/**
 * What a queue holds, in words: "5 messages", or, when what its consumers hold unacknowledged has
 * no count, "2 ready messages and an unknown number unacknowledged"; when a quorum queue's dead
 * letters waiting for their target have none, "2 messages and an unknown number of dead letters
 * waiting for their target".
 */
export function messagesHeld(a: Held): string {
  const n = a.messages ?? 0;
  const counted = a.unackedUnknown ? `${plural(n, "ready message")} and an unknown number unacknowledged` : plural(n, "message");
  return a.deadLettersUnknown ? `${counted}${a.unackedUnknown ? "," : ""} and an unknown number of dead letters waiting for their target` : counted;
}

/** What a line of output means; a terminal shows it in colour, a pipe gets the plain text. */
export type Style = "create" | "update" | "replace" | "delete" | "warning" | "error" | "strong";
export type Paint = (style: Style, text: string) => string;
export const plain: Paint = (_style, text) => text;

const ANSI: Record<Style, string> = {
  create: "\x1b[32m",
  update: "\x1b[33m",
  replace: "\x1b[35m",
  delete: "\x1b[31m",
  warning: "\x1b[33m",
  error: "\x1b[31m",
  strong: "\x1b[1m",
};
export const ansi: Paint = (style, text) => `${ANSI[style]}${text}\x1b[0m`;

/**
 * Under a replace of a queue with consumers. A worker on a module `topo export celery` writes now
 * declares nothing (no_declare); one on a module from before that re-declares the old arguments
 * against the new queue (406 PRECONDITION_FAILED) and stops. A queue made quorum needs the new
 * module's per-consumer QoS: an old one asks for a global QoS, which a quorum queue refuses
 * (540 NOT_IMPLEMENTED), and its worker retries for ever without becoming ready (seen with 5.2.6).
 */
export function celeryConsumers(before: Resource, after: Resource): string {
  const toQuorum = before.kind === "queue" && after.kind === "queue" && before.type !== "quorum" && after.type === "quorum";
  const old = toQuorum
    ? "a worker on a module written while the queue was classic asks for a global QoS, which a quorum queue refuses (NOT_IMPLEMENTED), and never becomes ready"
    : "a worker on a module from before topo wrote no_declare re-declares the old arguments and stops with PRECONDITION_FAILED";
  return `the consumers may be Celery workers: stop them (apply refuses while they are attached, unless given --allow-data-loss, which deletes the queue with what it holds and re-creates it), apply, then start them on the module topo export celery writes now; ${old} (docs/safety.md, replacing a queue)`;
}

/**
 * Under a replace of an exchange. RabbitMQ cannot re-create an exchange with its bindings in one
 * step: apply declares it and puts every binding back at once, but a publish that falls between
 * the two is routed nowhere, and the broker confirms it (unless it was published mandatory).
 */
export const EXCHANGE_PUBLISHERS =
  "publishers: while it is deleted a publish to it fails (404 NOT_FOUND), and one in the instant between its re-creation and its bindings is routed nowhere and dropped, though the broker confirms it: stop the publishers first (docs/safety.md)";

/**
 * Under a replace or delete of a queue some client declared exclusive: only that client's
 * connection may delete, declare or count it (405 RESOURCE_LOCKED), and the broker deletes it
 * when that connection closes, so apply stops at it.
 */
export function exclusiveQueueNote(before: Resource, op: "replace" | "delete"): string[] {
  if (before.kind !== "queue" || !before.exclusive) return [];
  const then = op === "replace" ? "close that client, then apply makes the queue as the file says" : "close that client, and the queue goes with it";
  return [`queue ${shown(before.name)} is exclusive to another client's connection: nothing else may delete or declare it (405 RESOURCE_LOCKED), so apply stops at it; RabbitMQ deletes it when that connection closes: ${then}`];
}

/** What a replace means for the clients of its object, beyond the messages at risk: text and JSON alike. */
function replaceNotes(a: ReplaceAction): string[] {
  return [
    ...exclusiveQueueNote(a.before, "replace"),
    ...(a.risks?.some((r) => r.rule === "consumers") ? [celeryConsumers(a.before, a.after)] : []),
    ...(a.movedDeadLetters ? [a.movedDeadLetters] : []),
    ...(a.namedDeadLetters ? [a.namedDeadLetters.note] : []),
    ...(a.routedInto ? [a.routedInto] : []),
    ...(a.after.kind === "exchange" ? [EXCHANGE_PUBLISHERS] : []),
  ];
}

/** What a delete means beyond what it removes: its consumers, its connections, what goes with it. Text and JSON alike. */
function deleteNotes(a: Extract<Action, { op: "delete" }>): string[] {
  const held = orphanedHold(a);
  return [
    ...(a.consumers
      ? [
          `${plural(a.consumers, "consumer")} ${a.consumers === 1 ? "is" : "are"} attached: apply refuses to delete it while any is, since what ${a.consumers === 1 ? "it has" : "they have"} not acknowledged would go with it (with --allow-data-loss it deletes it all the same, and that with it); stop the workers that consume from it first`,
          `the consumers may be Celery workers: ${CELERY_QUEUE_GONE}`,
        ]
      : []),
    // Held by a client that is no consumer: apply refuses the delete for them, and draining the
    // queue does not take them, which the "[holds N messages]" of the line alone never said.
    ...(!a.consumers && a.unacked
      ? [
          `${a.unacked === a.messages ? (a.unacked === 1 ? "it is" : `all ${a.unacked} are`) : `${a.unacked} of them ${a.unacked === 1 ? "is" : "are"}`} fetched but not acknowledged (${FETCHED_WITHOUT_CONSUMER}): workers draining the queue do not take ${a.unacked === 1 ? "it" : "them"}, and the broker deletes ${a.unacked === 1 ? "it" : "them"} with the queue, even if empty and unused; ${letGoOf(a.unacked === 1 ? "it" : "them")}`,
        ]
      : []),
    ...(a.unmanaged?.length ? [alsoRemoves(a.unmanaged)] : []),
    ...alsoDeletes(a),
    ...(held ? [held] : []),
    ...exclusiveQueueNote(a.before, "delete"),
    ...(a.connections
      ? [
          `${openAsUser(a.connections)}: RabbitMQ closes ${a.connections === 1 ? "it" : "them"} when it deletes the user, and ${a.connections === 1 ? "it" : "they"} cannot log in again; move them to another user first`,
        ]
      : []),
  ];
}

/** "2 connections are open as this user now (...)": under a user's delete or password change. */
function openAsUser(n: number): string {
  return `${plural(n, "connection")} ${n === 1 ? "is" : "are"} open as this user now (workers or clients, on any vhost)`;
}

/** What a user's password change means for the clients logged in as it now. Text and JSON alike. */
function updateNotes(a: Extract<Action, { op: "update" }>): string[] {
  if (a.after.kind !== "user" || !a.connections || !a.changed.includes("password")) return [];
  const one = a.connections === 1;
  return [
    `${openAsUser(a.connections)}: ${one ? "it stays" : "they stay"} open, but every login after the apply with the old password (a reconnect after a network blip or a broker restart, a new worker) is refused; give the workers the new password as the apply runs`,
  ];
}

/** Why plan makes the apply mark of a vhost that holds the file's objects (plan/diff.ts unmarkedObjects). */
function markReason(r: Resource): string | undefined {
  const p = r.kind === "exchange" ? markedPrefix(r) : undefined;
  return p === undefined ? undefined : `the apply mark of prefix ${p}: this vhost holds the file's objects without it, so a file of a shorter prefix would take them for its own`;
}
/** Why plan deletes a binding on the apply mark (plan/diff.ts bindingsOnMark). */
function onMarkReason(r: Resource): string | undefined {
  if (r.kind !== "binding") return undefined;
  const mark = markOfBinding(r);
  return mark === undefined
    ? undefined
    : `on ${mark}, topo's apply mark, which every apply that writes deletes and declares again, taking the exchange's bindings with it: nothing is meant to be bound to it, and a binding there lasts only until the next apply`;
}
function markLines(r: Resource): string[] {
  const why = markReason(r) ?? onMarkReason(r);
  return why === undefined ? [] : [`    ${why}`];
}

export function renderAction(a: Action): string[] {
  switch (a.op) {
    case "create":
      return [`+ create ${a.after.kind} ${describe(a.after)}${details(a.after)}`, ...markLines(a.after), ...lossLines(a)];
    case "update":
      // A user's password change is a word, never a value: "~ update user mplogin (password)".
      if (a.after.kind === "user") {
        const fields = a.changed.map((c) => c.split(":")[0] as string);
        return [`~ update user ${describe(a.after)} (${fields.join(", ")})`, ...a.changed.filter((c) => c !== "password").map((c) => `    ${c}`), ...updateNotes(a).map((n) => `    ! ${n}`)];
      }
      return [`~ update ${a.after.kind} ${describe(a.after)}`, ...a.changed.map((c) => `    ${c}`), ...lossLines(a)];
    case "replace":
      return [
        `-/+ replace ${a.after.kind} ${describe(a.after)}${holds(a)}`,
        ...a.because.map((c) => `    because ${c}`),
        ...(a.risks ?? []).map((r) => `    ! messages at risk: ${r.reason}`),
        ...(a.rebind.length ? [`    then re-creates its ${a.rebind.length} binding${a.rebind.length === 1 ? "" : "s"}`] : []),
        ...cannotPutBack(a).map((l) => `    ! ${l}`),
        ...inexactRebinds(a).map((b) => `    ! ${cannotRecreate(b)}`),
        ...retypedLines(a),
        ...(a.topics?.length ? [`    ${keptTopicsLine(a.topics)}`] : []),
        ...(a.topicsUnread ? [`    ! ${UNREAD_TOPICS}: ${a.topicsUnread}`] : []),
        ...replaceNotes(a).map((n) => `    ! ${n}`),
      ];
    case "delete":
      return [
        `- delete ${a.before.kind} ${describe(a.before)}${holds(a)}${a.consumers ? ` [${plural(a.consumers, "consumer")}]` : ""}`,
        ...markLines(a.before),
        ...deleteNotes(a).map((n) => `    ! ${n}`),
        ...lossLines(a),
      ];
    default:
      return assertNever(a);
  }
}

/**
 * Under the delete of a holding queue that holds messages (only this prefix's are deleted: an
 * interrupted replace of a service the file no longer lists): no worker takes them from there.
 */
export function orphanedHold(a: { before: Resource; messages?: number }): string | undefined {
  if (a.before.kind !== "queue" || !a.before.name.startsWith(HOLD_PREFIX) || !a.messages) return undefined;
  const base = a.before.name.slice(HOLD_PREFIX.length);
  return `it holds the messages of an interrupted replace of queue ${shown(base)}, which the file no longer lists, and no worker takes them from there: to keep them, put the service back and run topo apply, which finishes the replace, and let its workers drain ${shown(base)} before removing it`;
}

/** Under a policy change: the queues it would make lose messages (plan/policy-shifts.ts). */
function lossLines(a: { losses?: readonly PolicyLoss[] }): string[] {
  return (a.losses ?? []).map((l) => `    ! messages at risk: ${l.reason}`);
}

/** Why the broker will not let topo make a binding again. */
export function lostReason(l: LostBinding): string {
  if (l.why === "auto-delete" && l.into) return `exchange ${shown(l.binding.destination)} is auto-delete and loses its last binding in this apply: RabbitMQ deletes it, and the bindings to it with it`;
  return l.why === "auto-delete"
    ? `exchange ${shown(l.binding.source)} is auto-delete, and this is its last binding: RabbitMQ deletes it with the binding`
    : `queue ${shown(l.binding.destination)} is exclusive: only the connection that declared it may bind it`;
}

/**
 * Under a replace: the bindings it re-creates that the broker will not let it (an auto-delete
 * exchange's last, an exclusive queue's). A queue replace loses them only as a plain delete and
 * re-create: without loss, its holding queue keeps the exchange bound.
 */
export function cannotPutBack(a: { lost?: readonly LostBinding[] }): string[] {
  return byMode(a.lost, "with --allow-data-loss (a plain delete and re-create), ", (ls, when) =>
    ls.length ? [`${when}cannot re-create ${plural(ls.length, "binding")}: ${ls.map((l) => `${describe(l.binding)} (${lostReason(l)})`).join(", ")}; apply refuses this without --allow-unmanaged-deletes`] : [],
  );
}

/** Under a delete: the auto-delete exchanges RabbitMQ deletes with it, their last binding gone. */
function alsoDeletes(a: { lost?: readonly LostBinding[] }): string[] {
  return byMode(a.lost, "with --allow-data-loss (queues replaced by a plain delete and re-create), ", (ls, when) => {
    const n = [...new Set(ls.map((l) => shown(autoDeleted(l))))];
    return n.length ? [`${when}RabbitMQ also deletes auto-delete exchange${n.length === 1 ? "" : "s"} ${n.join(", ")}, whose last binding${n.length === 1 ? " goes" : "s go"} with it; apply refuses this without --allow-unmanaged-deletes`] : [];
  });
}

/** The lines for the bindings lost whatever the mode, then for those lost only by plain replaces (`plainWhen` says when). */
function byMode(lost: readonly LostBinding[] | undefined, plainWhen: string, line: (ls: readonly LostBinding[], when: string) => string[]): string[] {
  const all = lost ?? [];
  return [...line(all.filter((l) => !l.plainOnly), ""), ...line(all.filter((l) => l.plainOnly), plainWhen)];
}

/** In --json: a replace's or a delete's bindings topo cannot make again. */
function lostJson(a: { lost?: readonly LostBinding[] }): { lost?: { binding: string; why: string; reason: string; plainOnly: boolean }[] } {
  return a.lost?.length ? { lost: a.lost.map((l) => ({ binding: describe(l.binding), why: l.why, reason: lostReason(l), plainOnly: l.plainOnly === true })) } : {};
}

/** Under a delete: the bindings topo does not manage that the broker removes with the object. */
export function alsoRemoves(bindings: readonly Binding[]): string {
  const n = bindings.length;
  return `also removes ${n} binding${n === 1 ? "" : "s"} topo does not manage: ${bindings.map(describe).join(", ")}`;
}

export function renderClusterHeader(c: ClusterPlan): string {
  return `cluster ${c.cluster}: ${c.endpoint}${c.version ? ` (RabbitMQ ${c.version})` : ""}`;
}

export function renderText(plan: Plan, paint: Paint = plain): string {
  const lines: string[] = [];
  for (const c of plan.clusters) {
    lines.push(paint("strong", renderClusterHeader(c)));
    for (const w of c.warnings) lines.push(paint("warning", `  ! warning: ${w}`));
    for (const d of c.degraded) lines.push(paint("warning", `  ! degraded: ${d}`));
    if (c.actions.length === 0) lines.push(`  ${noChanges(c)}`);
    for (const a of c.actions) {
      const [first, ...rest] = renderAction(a);
      lines.push(paint(a.op, `  ${first}`), ...rest.map((l) => (l.trimStart().startsWith("!") ? paint("warning", `  ${l}`) : `  ${l}`)));
    }
    lines.push("");
  }
  lines.push(paint("strong", renderSummary(plan)));
  return lines.join("\n");
}

/** A cluster plan without actions: "no changes", unless plan could not compare all of it. */
export function noChanges(c: ClusterPlan): string {
  return c.notCompared?.length ? `no changes in what plan compared (not compared: ${c.notCompared.join(", ")})` : "no changes";
}

/** The last line of a plan; `where` the "! degraded" lines are from it (markdown puts them below). */
export function renderSummary(plan: Plan, where: "above" | "below" = "above"): string {
  const s = summarize(plan);
  const degraded = plan.clusters.reduce((n, c) => n + c.degraded.length, 0);
  const drift = degraded ? ` ${degraded} degraded (topo cannot repair ${degraded === 1 ? "it" : "them"}: see "! degraded" ${where}).` : "";
  // What plan could not read is no part of "No changes.": the last line, which is what a reader
  // (or a CI log) takes away, says so.
  const unread = [...new Set(plan.clusters.flatMap((c) => c.notCompared ?? []))];
  const notCompared = unread.length ? `not compared: ${unread.join(", ")} (see "! warning" ${where}).` : "";
  // With --cluster, "No changes." says nothing of the clusters left out: the line names them.
  const left = plan.unread ?? [];
  const notRead = left.length ? ` ${left.length === 1 ? "Cluster" : "Clusters"} ${left.join(", ")} ${left.length === 1 ? "was" : "were"} not read (--cluster).` : "";
  if (s.create + s.update + s.replace + s.delete === 0) return (notCompared ? `No changes in what plan compared; ${notCompared}${drift}` : `No changes.${drift}`) + notRead;
  return `Plan: ${s.create} to create, ${s.update} to update, ${s.replace} to replace, ${s.delete} to delete.${notCompared ? ` N${notCompared.slice(1)}` : ""}${drift}${notRead}`;
}

/** In --json, `messages` then counts the ready ones only. */
function unknownJson(a: { unackedUnknown?: boolean; deadLettersUnknown?: boolean }): { unackedUnknown?: true; deadLettersUnknown?: true } {
  return { ...(a.unackedUnknown ? { unackedUnknown: true } : {}), ...(a.deadLettersUnknown ? { deadLettersUnknown: true } : {}) };
}

/** Under an exchange replace that changes the type: the bindings of others it puts back that route otherwise (plan/retyped.ts). */
function retypedLines(a: ReplaceAction): string[] {
  const bs = a.retyped ?? [];
  if (!bs.length) return [];
  return [
    `    ! changes what ${plural(bs.length, "binding")} topo does not manage ${bs.length === 1 ? "routes" : "route"}, put back as ${bs.length === 1 ? "it was" : "they were"}: ${bs.map((b) => `${describe(b)} (${retypedReason(a, b)})`).join("; ")}; apply refuses this without --allow-unmanaged-deletes`,
  ];
}

/**
 * The bindings a replace re-creates that topo cannot make again exactly as the broker holds them
 * (broker/exact-args.ts): made with other argument types, each would be another binding, and a
 * headers exchange would stop routing to it what matched before.
 */
export function inexactRebinds(a: ReplaceAction): Binding[] {
  return [...a.rebind, ...(a.resume?.holdBindings ?? [])].filter((b) => b.inexact !== undefined);
}

export function cannotRecreate(b: Binding): string {
  return `cannot re-create binding ${describe(b)} exactly: ${b.inexact}`;
}

/** A policy change's queues that would lose messages, as `losses`; absent when there are none. */
function lossJson(a: { losses?: PolicyLoss[] }): { losses?: PolicyLoss[] } {
  return a.losses?.length ? { losses: a.losses } : {};
}

function actionJson(a: Action): Record<string, unknown> {
  const r = subjectOf(a);
  const base: Record<string, unknown> = { op: a.op, kind: r.kind, name: describe(r) };
  switch (a.op) {
    case "create":
      return { ...base, after: a.after, ...(markReason(a.after) ? { why: markReason(a.after) } : {}), ...lossJson(a) };
    case "update":
      return { ...base, changed: a.changed, before: a.before, after: a.after, ...lossJson(a), ...(a.after.kind === "user" && a.changed.includes("password") ? { connections: a.connections ?? 0, notes: updateNotes(a) } : {}) };
    case "replace":
      return { ...base, because: a.because, messages: a.messages ?? null, ...unknownJson(a), risks: a.risks ?? null, notes: replaceNotes(a), rebind: a.rebind.map(describe), ...lostJson(a), inexact: inexactRebinds(a).map((b) => ({ binding: describe(b), reason: b.inexact })), retyped: (a.retyped ?? []).map((b) => ({ binding: describe(b), reason: retypedReason(a, b) })), topics: a.topics ?? [], before: a.before, after: a.after };
    case "delete":
      return { ...base, ...(onMarkReason(a.before) ? { why: onMarkReason(a.before) } : {}), messages: a.messages ?? null, ...unknownJson(a), consumers: a.consumers ?? 0, ...(a.before.kind === "user" ? { connections: a.connections ?? 0 } : {}), unmanaged: (a.unmanaged ?? []).map(describe), ...lostJson(a), notes: deleteNotes(a), before: a.before, ...lossJson(a) };
    default:
      return assertNever(a);
  }
}

export function planJson(plan: Plan): Record<string, unknown> {
  return {
    clusters: plan.clusters.map((c) => ({
      name: c.cluster,
      endpoint: c.endpoint,
      vhost: c.vhost,
      version: c.version ?? null,
      warnings: c.warnings,
      degraded: c.degraded,
      notCompared: c.notCompared ?? [],
      actions: c.actions.map(actionJson),
    })),
    summary: { ...summarize(plan), degraded: plan.clusters.reduce((n, c) => n + c.degraded.length, 0) },
    ...(plan.unread?.length ? { unread: plan.unread } : {}),
  };
}
