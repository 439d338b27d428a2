// Pure: a plan saved to a file (`topo plan -o plan.json`) and read back (`topo apply plan.json`,
// `topo show plan.json`). Terraform's contract: what is applied is what was reviewed, or nothing.
// The file holds the actions, the digests of the topology file and of the broker state each
// cluster's plan was computed from, and topo's version; never a password (endpoints are the
// masked `display` form, and credentials are read again from the file and the environment).

import type { Action, ActualCluster, ClusterPlan, DesiredCluster, LostBinding, Permission, Plan, Policy, Resource } from "../model.js";
import { assertNever } from "../model.js";
import { describe, keyOf, nameKey, stableJson, subjectOf } from "../core/keys.js";
import { HOLD_PREFIX, holdingQueueName, Ownership, SAVED_PLAN_FORMAT_NAME } from "../core/naming.js";
import { escapeUnsafe, plural, shown } from "../core/words.js";
import { ownValue, pushAll } from "../core/collections.js";
import { fieldDiff } from "./diff.js";

/** What no topology file's name in a saved plan holds (plan -o refuses such a file before it reads a broker). */
export const SAVED_FILE_UNSAFE = /[\u0000-\u001f\u007f-\u009f]/;

/** Bumped whenever the file's shape changes; an older or newer topo refuses the file. */
// 2: the users' fingerprint is scrypt (format 1's fast HMAC is refused, not compared).
// 3: each cluster's desiredDigest.
// 4: each cluster's state (the objects its plan was computed from) in place of their digest, so
//    that apply can say which objects changed, and check a vhost it creates and a retry.
export const SAVED_PLAN_FORMAT = 4;
const KIND = SAVED_PLAN_FORMAT_NAME;

/**
 * The part of a cluster's broker state its plan depends on (stateOf): the objects, as topo
 * normalises them (names, properties, arguments, policy definitions, users' tags and rights: never
 * a password or its hash).
 */
export interface SavedState {
  vhostExists: boolean;
  /** Sorted by key. */
  resources: Resource[];
  /** Sorted by name. */
  operatorPolicies: Policy[];
}

export interface SavedCluster extends ClusterPlan {
  /** What the plan was computed from (see stateOf). */
  state: SavedState;
  /**
   * sha256 of desiredText() of what the file asked of the cluster: the same file asks for other
   * objects when its ${VAR}s take other values.
   */
  desiredDigest: string;
  /**
   * Where the state holds objects with a secret in a name or value (shown masked): scrypt of their
   * text under a random key, so that apply tells a change of theirs (commands/saved.ts).
   */
  secrets?: { key: string; digest: string };
}

export interface SavedPlan {
  format: typeof KIND;
  formatVersion: number;
  topoVersion: string;
  createdAt: string;
  /** The topology file as named on the command line; apply loads it again. */
  file: string;
  fileDigest: string;
  prefix: string;
  clusters: SavedCluster[];
  /**
   * When the file has users: scrypt of their passwords salted with a random key (never a password,
   * and too slow to guess passwords from), so that apply refuses if the environment now gives
   * other passwords than at plan time.
   */
  credentials?: { key: string; digest: string };
  /** The file's clusters the plan did not read (--cluster), which topo show says it left out. */
  unread?: string[];
  /** sha256 of the rest of the plan as written (commands/saved.ts planSeal): apply tells a plan edited by hand apart. */
  digest?: string;
}

export interface SavedPlanMeta {
  topoVersion: string;
  file: string;
  fileDigest: string;
  prefix: string;
  /** Cluster name → the state its plan was computed from. */
  states: Record<string, SavedState>;
  /** Cluster name → desired digest. */
  desiredDigests: Record<string, string>;
  createdAt: string;
  credentials?: { key: string; digest: string };
}

/** Not a saved plan, or one this topo cannot read. */
export class SavedPlanFormatError extends Error {}

export function savedPlan(plan: Plan, meta: SavedPlanMeta): SavedPlan {
  return {
    format: KIND,
    formatVersion: SAVED_PLAN_FORMAT,
    topoVersion: meta.topoVersion,
    createdAt: meta.createdAt,
    file: meta.file,
    fileDigest: meta.fileDigest,
    prefix: meta.prefix,
    ...(meta.credentials ? { credentials: meta.credentials } : {}),
    ...(plan.unread?.length ? { unread: plan.unread } : {}),
    clusters: plan.clusters.map((c) => {
      const state = meta.states[c.cluster];
      const desiredDigest = meta.desiredDigests[c.cluster];
      if (state === undefined || desiredDigest === undefined) throw new Error(`no state or desired digest for cluster ${c.cluster}`);
      return { ...c, state, desiredDigest };
    }),
  };
}

export function planOf(saved: SavedPlan): Plan {
  return { clusters: saved.clusters.map(({ state: _, desiredDigest: __, secrets: ___, ...c }) => c), ...(saved.unread?.length ? { unread: saved.unread } : {}) };
}

const OPS = new Set(["create", "update", "replace", "delete"]);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === "string");

type FieldType = "string" | "boolean" | "number" | "object" | "strings";
/**
 * The fields of each kind of resource (model.ts), as show prints them and apply compares them: a
 * saved plan whose resource lacks one would be printed as one thing (or not at all) and compared
 * as another.
 */
const RESOURCE_FIELDS: Record<Resource["kind"], Record<string, FieldType>> = {
  vhost: { name: "string" },
  exchange: { name: "string", type: "string", durable: "boolean", autoDelete: "boolean", internal: "boolean", arguments: "object" },
  queue: { name: "string", type: "string", durable: "boolean", autoDelete: "boolean", exclusive: "boolean", arguments: "object" },
  binding: { source: "string", destination: "string", destinationType: "string", routingKey: "string", arguments: "object" },
  policy: { name: "string", pattern: "string", applyTo: "string", priority: "number", definition: "object" },
  user: { name: "string", tags: "strings" },
  permission: { user: "string", configure: "string", write: "string", read: "string" },
  "topic-permission": { user: "string", exchange: "string", write: "string", read: "string" },
};
const hasType = (v: unknown, t: FieldType) => (t === "object" ? isObject(v) : t === "strings" ? isStrings(v) : typeof v === t);

/** What is wrong with a resource of a saved plan; empty when it is whole. */
function resourceProblems(r: unknown, where: string, kind?: Resource["kind"]): string[] {
  const fields = isObject(r) && typeof r.kind === "string" ? ownValue(RESOURCE_FIELDS, r.kind) : undefined;
  if (!isObject(r) || !fields || (kind !== undefined && r.kind !== kind)) return [`${where} is not a ${kind ?? "resource"}`];
  return Object.entries(fields).flatMap(([f, t]) => (hasType(r[f], t) ? [] : [`${where}.${f} is not ${t === "object" ? "an object" : t === "strings" ? "a list of strings" : `a ${t}`}`]));
}

/** Parse and check a saved plan's shape; anything else is a SavedPlanFormatError that says what is wrong. */
export function parseSavedPlan(text: string): SavedPlan {
  let j: unknown;
  // An editor on Windows may save the plan with a byte-order mark, which JSON.parse refuses.
  const json = text.replace(/^\uFEFF/, "");
  try {
    j = JSON.parse(json);
  } catch (e) {
    // JSON.parse's message quotes the text where it stopped: the file may be anything given by
    // mistake (a password file, a .env), so nothing of it is quoted. A stop at its end, inside
    // the JSON, is said apart: a plan artifact whose upload or copy did not finish.
    const at = /at position (\d+)/.exec(e instanceof Error ? e.message : "")?.[1];
    const atEnd = e instanceof SyntaxError && (/end of JSON input|Unterminated string/.test(e.message) || (at !== undefined && Number(at) >= json.trimEnd().length));
    if (atEnd && /^\s*\{/.test(json)) {
      throw new SavedPlanFormatError(`it ends before its JSON does: the file was cut short (a copy or an upload of it that did not finish?)`);
    }
    if (json.trim() === "") throw new SavedPlanFormatError(`it is empty (a saved plan is the JSON file topo plan -o writes)`);
    throw new SavedPlanFormatError(`it is not JSON (a saved plan is the JSON file topo plan -o writes)`);
  }
  if (!isObject(j) || j.format !== KIND) throw new SavedPlanFormatError(`it is not a plan saved by topo plan -o (no "format": "${KIND}")`);
  if (typeof j.formatVersion !== "number") {
    throw new SavedPlanFormatError(`its formatVersion is ${j.formatVersion === undefined ? "missing" : `${JSON.stringify(j.formatVersion)}, not a number`}: the file was edited (topo plan -o writes "formatVersion": ${SAVED_PLAN_FORMAT})`);
  }
  if (j.formatVersion !== SAVED_PLAN_FORMAT) {
    throw new SavedPlanFormatError(`it is in saved-plan format ${j.formatVersion}, and this topo reads format ${SAVED_PLAN_FORMAT} (it was made by topo ${String(j.topoVersion)})`);
  }
  const bad: string[] = [];
  for (const f of ["topoVersion", "createdAt", "file", "fileDigest", "prefix"]) if (typeof j[f] !== "string") bad.push(`${f} is not a string`);
  // No topology file is named "" (topo plan -f "" is refused): read as one, it was "cannot read : no such file".
  if (j.file === "") bad.push("file names no file");
  // Printed in every message about the plan (a file name of control characters set the terminal's
  // title and wrote a line of its own): no name topo plan -o writes holds one.
  else if (typeof j.file === "string" && SAVED_FILE_UNSAFE.test(j.file)) bad.push(`file is ${shown(j.file)}, which holds control characters no file name topo plan -o writes does`);
  if (j.unread !== undefined && !isStrings(j.unread)) bad.push("unread is not a list of cluster names");
  if (j.credentials !== undefined && !(isObject(j.credentials) && typeof j.credentials.key === "string" && typeof j.credentials.digest === "string")) bad.push("credentials is not a key and a digest");
  if (!Array.isArray(j.clusters)) bad.push("clusters is not a list");
  else {
    // Apply compares a saved plan with fresh plans by cluster and by key: a cluster or an action
    // given twice would be shown twice and carried out once.
    const clusters = new Set<unknown>();
    j.clusters.forEach((c: unknown, i) => {
      const at = `clusters[${i}]`;
      if (!isObject(c)) return void bad.push(`${at} is not an object`);
      for (const f of ["cluster", "endpoint", "vhost", "desiredDigest"]) if (typeof c[f] !== "string") bad.push(`${at}.${f} is not a string`);
      bad.push(...stateProblems(c.state, `${at}.state`));
      if (clusters.has(c.cluster)) bad.push(`${at} repeats cluster ${shown(String(c.cluster))}`);
      clusters.add(c.cluster);
      if (!isStrings(c.warnings)) bad.push(`${at}.warnings is not a list of strings`);
      if (!isStrings(c.degraded)) bad.push(`${at}.degraded is not a list of strings`);
      if (c.notCompared !== undefined && !isStrings(c.notCompared)) bad.push(`${at}.notCompared is not a list of strings`);
      if (c.secrets !== undefined && !(isObject(c.secrets) && typeof c.secrets.key === "string" && typeof c.secrets.digest === "string")) bad.push(`${at}.secrets is not a key and a digest`);
      if (!Array.isArray(c.actions)) return void bad.push(`${at}.actions is not a list`);
      const keys = new Set<string>();
      c.actions.forEach((a: unknown, k) => {
        const where = `${at}.actions[${k}]`;
        if (!isObject(a) || !OPS.has(a.op as string) || typeof a.key !== "string") return void bad.push(`${where} is not an action`);
        const needs = a.op === "create" ? ["after"] : a.op === "delete" ? ["before"] : ["before", "after"];
        const broken = needs.flatMap((f) => resourceProblems(a[f], `${where}.${f}`));
        bad.push(...broken);
        if (a.op === "update" && !isStrings(a.changed)) bad.push(`${where}.changed is not a list of strings`);
        if (a.op === "replace" && (!isStrings(a.because) || !Array.isArray(a.rebind))) bad.push(`${where} lacks because or rebind`);
        if (a.op === "replace" && Array.isArray(a.rebind)) a.rebind.forEach((b: unknown, n) => bad.push(...resourceProblems(b, `${where}.rebind[${n}]`, "binding")));
        if ((a.op === "replace" || a.op === "delete") && a.lost !== undefined) {
          if (!Array.isArray(a.lost)) bad.push(`${where}.lost is not a list`);
          else
            a.lost.forEach((l: unknown, n) => {
              if (!isObject(l) || (l.why !== "auto-delete" && l.why !== "exclusive") || (l.plainOnly !== undefined && l.plainOnly !== true) || (l.into !== undefined && l.into !== true)) bad.push(`${where}.lost[${n}] is not a lost binding`);
              else bad.push(...resourceProblems(l.binding, `${where}.lost[${n}].binding`, "binding"));
            });
        }
        if (a.op === "replace" && a.retyped !== undefined) {
          if (!Array.isArray(a.retyped)) bad.push(`${where}.retyped is not a list of bindings`);
          else a.retyped.forEach((b: unknown, n) => bad.push(...resourceProblems(b, `${where}.retyped[${n}]`, "binding")));
        }
        if (a.op === "delete" && a.unmanaged !== undefined) {
          if (!Array.isArray(a.unmanaged)) bad.push(`${where}.unmanaged is not a list of bindings`);
          else a.unmanaged.forEach((b: unknown, n) => bad.push(...resourceProblems(b, `${where}.unmanaged[${n}]`, "binding")));
        }
        if (broken.length) return;
        // The key is what apply compares, the resource what show prints: they must name one object.
        const action = a as unknown as Action;
        const subject = keyOf(subjectOf(action));
        if (action.key !== subject) bad.push(`${where}.key is ${shown(action.key)}, and its ${subjectOf(action).kind} is ${shown(subject)}`);
        else if ((action.op === "update" || action.op === "replace") && keyOf(action.before) !== subject) bad.push(`${where}.before is ${shown(keyOf(action.before))}, and its after is ${shown(subject)}`);
        else if (keys.has(action.key)) bad.push(`${where} repeats ${label(action)}`);
        keys.add(action.key);
      });
    });
  }
  if (bad.length) throw new SavedPlanFormatError(`it is damaged: ${bad.slice(0, 5).join("; ")}${bad.length > 5 ? `; and ${bad.length - 5} more` : ""}`);
  return j as unknown as SavedPlan;
}

/** What is wrong with a saved cluster's state; empty when it is whole. */
function stateProblems(st: unknown, where: string): string[] {
  if (!isObject(st) || typeof st.vhostExists !== "boolean" || !Array.isArray(st.resources) || !Array.isArray(st.operatorPolicies)) return [`${where} is not a state (vhostExists, resources, operatorPolicies)`];
  return [...st.resources.flatMap((r: unknown, i) => resourceProblems(r, `${where}.resources[${i}]`)), ...st.operatorPolicies.flatMap((p: unknown, i) => resourceProblems(p, `${where}.operatorPolicies[${i}]`, "policy"))];
}

/**
 * The part of the broker's state a cluster's plan depends on: whether the vhost exists, every
 * object topo owns or the file wants, holding queues, the bindings of the services' exchanges and
 * queues, and every policy and operator policy (either limits what a replace may do). Not message
 * counts, consumers or other facts that change by themselves, and not objects outside topo's view
 * (a Celery worker's reply queues, topo's own lock queue), which come and go without changing the plan.
 */
export function stateOf(desired: DesiredCluster, actual: ActualCluster, prefix: string): SavedState {
  const owner = Ownership.of(prefix, actual.resources);
  const wanted = new Set(desired.resources.map(keyOf));
  const service = (name: string) => owner.isService(name) || owner.isServiceQueue(name) || name.startsWith(HOLD_PREFIX);
  const inView = (r: Resource): boolean => {
    if (wanted.has(keyOf(r)) || owner.owns(r)) return true;
    switch (r.kind) {
      case "queue":
        return r.name.startsWith(HOLD_PREFIX);
      case "binding":
        return service(r.source) || service(r.destination);
      case "policy":
        return true;
      default:
        return false;
    }
  };
  const resources = actual.resources.filter(inView).map((r) => [keyOf(r), r] as const);
  resources.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  // Operator policies limit the file's queues as a user's policy does (any management user that
  // may read the policies may read them too, measured on 3.10).
  const operatorPolicies = [...(actual.operatorPolicies ?? [])].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { vhostExists: actual.vhostExists, resources: resources.map(([, r]) => r), operatorPolicies };
}

/** A state as one canonical string: its sha256 is the state digest topo show reports. */
export function stateText(state: SavedState): string {
  const resources = state.resources.map((r) => `${keyOf(r)} ${canonical(r)}`).sort();
  const operator = state.operatorPolicies.map((p) => canonical(p)).sort();
  return `vhost ${state.vhostExists ? "exists" : "absent"}\n${resources.join("\n")}\noperator policies\n${operator.join("\n")}`;
}

const canonical = (v: unknown): string => stableJson(v as never);

/**
 * What the file asks of a cluster, as one canonical string (its sha256 is the desired digest):
 * every object it wants, with the values its ${VAR}s gave. Never a password: the users' are
 * compared by their fingerprint (SavedPlan.credentials).
 */
export function desiredText(desired: DesiredCluster): string {
  const resources = desired.resources.map((r) => `${keyOf(r)} ${canonical(r)}`);
  resources.sort();
  // Which users the cluster deletes, adopts or leaves alone: names a ${VAR} may give. Not who topo
  // connects as: the plan job may read as a read-only user and apply write as another (a change
  // that makes in the plan is the broker's to show).
  const { credentials: _, connectsAs: __, ...users } = desired.users ?? { credentials: undefined, connectsAs: undefined };
  return `${resources.join("\n")}\nusers ${canonical(users)}`;
}

/**
 * An action as the reviewer saw it: what it does to which object and why. Message counts and
 * the risks judged on them are left out: they change by themselves, and apply judges them again
 * on the broker's live counts (--allow-data-loss) however old the plan is.
 */
function actionShape(a: Action): string {
  switch (a.op) {
    case "create":
      return canonical({ op: a.op, after: a.after });
    case "update":
      return canonical({ op: a.op, before: a.before, after: a.after, changed: a.changed });
    case "replace":
      return canonical({ op: a.op, before: a.before, after: a.after, because: a.because, rebind: a.rebind.map(keyOf).sort(), resume: a.resume !== undefined, ...lostShape(a.lost), ...(a.retyped?.length ? { retyped: a.retyped.map(keyOf).sort() } : {}) });
    case "delete":
      // The bindings topo does not manage that go with the object are part of what was reviewed.
      return canonical({ op: a.op, before: a.before, ...(a.unmanaged?.length ? { unmanaged: a.unmanaged.map(keyOf).sort() } : {}), ...lostShape(a.lost) });
    default:
      return assertNever(a);
  }
}

/**
 * How two actions on one object differ, as the plan has it and as apply would make it: each
 * differing value by its path (`after.durable: true -> false`, `unmanaged: [...] -> [...]`), the
 * first few. "its details differ" alone left the reader to compare two plans by hand.
 */
function detailsDiffer(saved: Action, now: Action): string {
  const leaves = (v: unknown, path: string, out: Map<string, string>): Map<string, string> => {
    if (v !== null && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length) {
      for (const [k, x] of Object.entries(v)) leaves(x, path ? `${path}.${k}` : k, out);
    } else out.set(path, canonical(v));
    return out;
  };
  const before = leaves(JSON.parse(actionShape(saved)), "", new Map());
  const after = leaves(JSON.parse(actionShape(now)), "", new Map());
  const short = (v: string | undefined) => (v === undefined ? "(none)" : v.length > 80 ? `${v.slice(0, 77)}...` : v);
  const paths = [...new Set([...before.keys(), ...after.keys()])].filter((p) => before.get(p) !== after.get(p)).sort();
  const shownPaths = paths.slice(0, 4).map((p) => `${p}: ${short(before.get(p))} -> ${short(after.get(p))}`);
  return `its details differ: ${shownPaths.join("; ")}${paths.length > shownPaths.length ? `; and ${paths.length - shownPaths.length} more` : ""}`;
}

/** The bindings a replace or delete cannot have put back, as reviewed: absent when none. */
function lostShape(lost: readonly LostBinding[] | undefined): { lost?: string[] } {
  return lost?.length ? { lost: lost.map((l) => `${l.why}${l.plainOnly ? " plain" : ""} ${keyOf(l.binding)}`).sort() } : {};
}

/** An action as a line of a refusal; an update says what it changes (a user's password as the word). */
const label = (a: Action) => `${a.op} ${subjectOf(a).kind} ${describe(subjectOf(a))}${a.op === "update" && a.changed.length ? ` (${a.changed.map(escapeUnsafe).join(", ")})` : ""}`;
/** An endpoint without its user: the plan job may read as a read-only user, apply writes as another. */
const place = (endpoint: string) => endpoint.replace(/^([a-z]+:\/\/)[^@/]*@/, "$1");

export interface FreshCluster {
  plan: ClusterPlan;
  state: SavedState;
  /** Why an object the broker still holds is out of the state's view (outsideView); undefined: not held. */
  outside?: (key: string) => string | undefined;
}

/**
 * Why an object the broker holds is not in a cluster's state (stateOf), by key; undefined when the
 * broker does not hold it. An object of the saved state missing from a fresh one may still be
 * there: a file of a longer prefix applied since marked it as its own (mp's mpxfoo.async is mpx's
 * once mpx's apply mark is on the vhost), and "deleted" would send the reader after the wrong cause.
 */
export function outsideView(actual: ActualCluster, prefix: string): (key: string) => string | undefined {
  const owner = Ownership.of(prefix, actual.resources);
  let held: Map<string, Resource> | undefined;
  return (key) => {
    // Asked only of objects that differ: the map is built on the first question.
    held ??= new Map(actual.resources.map((r) => [keyOf(r), r]));
    const r = held.get(key);
    if (!r) return undefined;
    const names = r.kind === "binding" ? [r.source, r.destination] : "name" in r ? [r.name] : [];
    const other = names.map((n) => owner.nestedOwner(n)).find((p) => p !== undefined);
    return other !== undefined
      ? `still there, but prefix "${other}"'s since the plan (another topology's apply mark, lock or policy is on the vhost now), so topo leaves it alone`
      : "still there, but no longer one topo manages since the plan, so topo leaves it alone";
  };
}

/**
 * What a cluster's check may find changed by apply itself. `made`: the actions apply has carried
 * out, or may have (a retry after a lost connection does not know how far the lost connection got):
 * each of their objects may be as the plan saw it or as the plan makes it, or, mid-way, gone with
 * what the plan deleted or replaced. `granted`: the users a vhost's creation gives every right on it
 * (the AMQP user apply grants them to, and the management user RabbitMQ grants them to).
 */
export interface MadeSoFar {
  made: readonly Action[];
  granted: readonly string[];
  /**
   * Those the broker confirmed: their objects must be as apply made them (a write in flight when
   * the connection was lost may or may not have landed, so the others may be either).
   */
  confirmed?: readonly Action[];
}

const NOTHING_MADE: MadeSoFar = { made: [], granted: [] };
const ABSENT = "(absent)";
/** How many of a cluster's changed objects a stale plan's refusal lists; the rest are counted. */
const OBJECT_LINES = 10;

/** What a created policy or permission does: its name alone does not say. */
function details(r: Resource): string {
  switch (r.kind) {
    case "policy":
      return ` (pattern ${shown(r.pattern)}, apply-to ${r.applyTo}, priority ${r.priority}, definition ${escapeUnsafe(canonical(r.definition))})`;
    case "permission":
      return ` (configure ${shown(r.configure)}, write ${shown(r.write)}, read ${shown(r.read)})`;
    case "topic-permission":
      return ` (write ${shown(r.write)}, read ${shown(r.read)})`;
    default:
      return "";
  }
}

/**
 * One object as it differs between two states; `kind`: "operator policy" for those. `since`: what
 * `before` is, the plan's view ("the plan") or what apply made or deleted ("apply made it").
 */
function objectChange(before: Resource | undefined, after: Resource | undefined, kind?: string, since = "the plan"): string {
  const r = (after ?? before) as Resource;
  const name = `${kind ?? r.kind} ${describe(r)}`;
  if (!before) return `${name}: created since ${since}${details(r)}`;
  if (!after) return `${name}: deleted since ${since}`;
  const fields = Object.keys({ ...before, ...after }).filter((f) => f !== "kind");
  return `${name}: changed since ${since}: ${fieldDiff(before, after, fields).map(escapeUnsafe).join(", ")}`;
}

/**
 * How the broker's objects differ from the state a cluster's plan was computed from: one line per
 * object, by key ("queue mplogin.async: deleted since the plan"); empty when nothing differs but
 * what apply itself made (`sofar`).
 */
export function stateChanges(saved: SavedState, now: SavedState, sofar: MadeSoFar = NOTHING_MADE, outside?: FreshCluster["outside"]): string[] {
  // The states an object may be in besides the one the plan saw, by key.
  const may = new Map<string, Set<string>>();
  const allow = (key: string, r: Resource | undefined) => {
    const states = may.get(key) ?? new Set<string>();
    states.add(r === undefined ? ABSENT : canonical(r));
    may.set(key, states);
  };
  // Objects that go with another the plan deletes or replaces (a queue's bindings, a user's rights),
  // and a replace's holding queue and its bindings, which live only while the replace runs.
  // By name, not a test per delete asked of every object that differs: a saved plan deleting
  // 20,000 of 25,000 services asked 60,000 tests of each.
  const gone = { queue: new Set<string>(), exchange: new Set<string>(), user: new Set<string>() };
  const holds = new Set<string>();
  const deleting = (x: Resource) => {
    if (x.kind === "queue" || x.kind === "exchange" || x.kind === "user") gone[x.kind].add(x.name);
  };
  const goesWithOther = (r: Resource) =>
    (r.kind === "binding" && r.destinationType === "queue" && gone.queue.has(r.destination)) ||
    (r.kind === "binding" && (gone.exchange.has(r.source) || (r.destinationType === "exchange" && gone.exchange.has(r.destination)))) ||
    (r.kind === "topic-permission" && gone.exchange.has(r.exchange)) ||
    ((r.kind === "permission" || r.kind === "topic-permission") && gone.user.has(r.user));
  const inAnyState = (r: Resource) => (r.kind === "queue" && holds.has(r.name)) || (r.kind === "binding" && (holds.has(r.destination) || holds.has(r.source)));
  const lostWith = (lost: readonly LostBinding[] | undefined) => {
    for (const l of lost ?? []) {
      allow(keyOf(l.binding), undefined);
      if (l.why === "auto-delete") allow(nameKey("exchange", l.binding.source), undefined);
    }
  };
  let vhostMade = false;
  for (const a of sofar.made) {
    switch (a.op) {
      case "create":
        allow(a.key, a.after);
        if (a.after.kind === "vhost") {
          vhostMade = true;
          for (const user of sofar.granted) {
            const all: Permission = { kind: "permission", user, configure: ".*", write: ".*", read: ".*" };
            allow(keyOf(all), all);
          }
        }
        break;
      case "update":
        allow(a.key, a.after);
        break;
      case "replace": {
        allow(a.key, a.after);
        allow(a.key, undefined);
        for (const b of a.rebind) allow(keyOf(b), b);
        // What the broker would not let it put back may be gone, an auto-delete source with it.
        lostWith(a.lost);
        deleting(a.before);
        if (a.after.kind === "queue") holds.add(holdingQueueName(a.after.name));
        break;
      }
      case "delete":
        allow(a.key, undefined);
        deleting(a.before);
        for (const b of a.unmanaged ?? []) allow(keyOf(b), undefined);
        lostWith(a.lost);
        break;
      default:
        assertNever(a);
    }
  }
  // What the confirmed actions left, by key (a delete: nothing).
  const left = new Map<string, Resource | undefined>();
  for (const a of sofar.confirmed ?? []) left.set(a.key, a.op === "delete" ? undefined : a.after);
  const out: string[] = [];
  if (saved.vhostExists !== now.vhostExists && !(vhostMade && now.vhostExists)) {
    // Named by the vhost object when the cluster's view holds it (the file always wants it).
    const named = [...saved.resources, ...now.resources].some((r) => r.kind === "vhost");
    if (!named) out.push(`the vhost: ${now.vhostExists ? "created" : "deleted"} since the plan`);
  }
  const was = new Map(saved.resources.map((r) => [keyOf(r), r]));
  const is = new Map(now.resources.map((r) => [keyOf(r), r]));
  for (const key of [...new Set([...was.keys(), ...is.keys(), ...left.keys()])].sort()) {
    const b = was.get(key);
    const n = is.get(key);
    const nowText = n === undefined ? ABSENT : canonical(n);
    // Gone with what the plan deletes or replaces, or a replace's own: whatever apply made of it.
    // Asked only of an object that differs: a plan may delete thousands.
    const withOther = () => {
      const any = n ?? b;
      return (n === undefined && b !== undefined && goesWithOther(b)) || (any !== undefined && inAnyState(any));
    };
    if (left.has(key)) {
      const m = left.get(key);
      if ((m === undefined ? ABSENT : canonical(m)) !== nowText && !withOther()) out.push(objectChange(m, n, undefined, m === undefined ? "apply deleted it" : "apply made it"));
      continue;
    }
    if ((b === undefined ? ABSENT : canonical(b)) === nowText || may.get(key)?.has(nowText) || withOther()) continue;
    const why = b !== undefined && n === undefined ? outside?.(key) : undefined;
    out.push(why !== undefined && b ? `${b.kind} ${describe(b)}: ${why}` : objectChange(b, n));
  }
  const byName = (ps: Policy[]) => new Map(ps.map((p) => [p.name, p]));
  const [opWas, opIs] = [byName(saved.operatorPolicies), byName(now.operatorPolicies)];
  for (const name of [...new Set([...opWas.keys(), ...opIs.keys()])].sort()) {
    const [b, n] = [opWas.get(name), opIs.get(name)];
    if (canonical(b ?? null) !== canonical(n ?? null)) out.push(objectChange(b, n, "operator policy"));
  }
  return out;
}

/** A cluster's changed objects as one entry of a stale plan's refusal: the first few, and a count. */
function stateEntry(cluster: string, changes: readonly string[]): string[] {
  if (!changes.length) return [];
  const more = changes.length > OBJECT_LINES + 1 ? [`... and ${changes.length - OBJECT_LINES} more`] : [];
  const shownLines = [...(more.length ? changes.slice(0, OBJECT_LINES) : changes), ...more];
  return [`cluster ${cluster}: the broker's objects changed since the plan was made (${plural(changes.length, "object")}):\n${shownLines.map((l) => `    ${l}`).join("\n")}`];
}

/**
 * After a lost connection apply plans again what is left of a cluster. The broker must be as the
 * plan left it: every object the saved plan does not change as the plan saw it, every object it
 * changes as the plan saw it or as the plan makes it (how far the lost connection got is not
 * known); and every action of the new plan one the saved plan holds, the same operation on the
 * same object with the same result (a replace may now resume, and re-create a binding added
 * since). Actions of the saved plan no longer in the new one were made before the connection was
 * lost. One entry per difference; empty when what is left is part of the saved plan.
 */
export function outsideSaved(saved: SavedPlan, fresh: FreshCluster, granted: readonly string[] = [], confirmed: readonly Action[] = []): string[] {
  const s = saved.clusters.find((c) => c.cluster === fresh.plan.cluster);
  const cluster = fresh.plan.cluster;
  const before = new Map((s?.actions ?? []).map((a) => [a.key, a]));
  const result = (a: Action) => canonical({ op: a.op, subject: subjectOf(a) });
  const objects = s ? stateEntry(cluster, stateChanges(s.state, fresh.state, { made: s.actions, granted, confirmed }, fresh.outside)) : [];
  // A queue replace of the plan's that the lost connection left half-way has moved the queue's
  // bindings to its holding queue: the new plan binds the queue again, which the replace does
  // anyway when it finishes. Refused as "not in the plan", it left the tasks on the holding queue.
  const resuming = new Set(fresh.plan.actions.flatMap((a) => (a.op === "replace" && a.resume && a.after.kind === "queue" && before.get(a.key)?.op === "replace" ? [a.after.name] : [])));
  // A replace by delete and re-create (an exchange's, or a queue's with --allow-data-loss) cut
  // after its delete: the new plan creates the object as the replace would have, and the bindings
  // the replace puts back. Refused as another plan, it left workers without their exchange.
  const cutAfterDelete = (a: Action, b: Action | undefined) => a.op === "create" && b?.op === "replace" && canonical(a.after) === canonical(b.after);
  const putBack = new Set(
    fresh.plan.actions.flatMap((a) => {
      const b = before.get(a.key);
      return b?.op === "replace" && cutAfterDelete(a, b) ? b.rebind.map(keyOf) : [];
    }),
  );
  const partOfReplace = (a: Action) =>
    a.op === "create" && a.after.kind === "binding" && ((a.after.destinationType === "queue" && resuming.has(a.after.destination)) || putBack.has(a.key));
  return [
    ...objects,
    ...fresh.plan.actions.flatMap((a) => {
      const b = before.get(a.key);
      if (!b && partOfReplace(a)) return [];
      if (!b) return [`cluster ${cluster}: not in the plan: ${label(a)}`];
      if (result(a) === result(b) || cutAfterDelete(a, b)) return [];
      return [a.op === b.op ? `cluster ${cluster}: ${label(a)}, with another result than the plan's` : `cluster ${cluster}: now ${label(a)}, the plan says ${label(b)}`];
    }),
  ];
}

/**
 * A warning line as the reviewer read it, to compare: a number standing alone is a count that
 * changes by itself (the messages a queue left alone holds, the mirrors still synchronising, a
 * line of the file), and is left out; one inside a name (mp1login, 10.0.0.1) is kept.
 */
const gist = (line: string) => line.replace(/(?<![\w.-])\d+(?![\w.-])/g, "#");

/**
 * The warnings, degraded and not-compared lines of a fresh plan that the saved one did not show:
 * the reviewer approved the plan without them. They depend on more than the saved state holds
 * (another prefix's marks, a user's rights on other vhosts, an exchange outside topo's view that
 * a queue of the file dead-letters to), so the lines themselves are compared. A line gone since
 * the plan is no refusal: what the reviewer was warned of no longer holds.
 */
function newLines(name: string, saved: ClusterPlan, fresh: ClusterPlan): string[] {
  const lines = (what: string, was: readonly string[] = [], now: readonly string[] = []) => {
    const seen = new Set(was.map(gist));
    return now.filter((l) => !seen.has(gist(l))).map((l) => `cluster ${name}: ${what}: ${l}`);
  };
  return [
    ...lines("a warning the plan did not show", saved.warnings, fresh.warnings),
    ...lines("degraded, which the plan did not show", saved.degraded, fresh.degraded),
    ...lines("not compared, which the plan compared", saved.notCompared, fresh.notCompared),
  ];
}

/**
 * What differs between the saved plan and fresh plans of its clusters: one entry per difference,
 * naming the cluster; empty when the saved plan still holds. A cluster the fresh read did not
 * cover is not compared (apply reads every cluster of a saved plan). `sofar`: what apply itself
 * made in a cluster before this read (its vhost, before its lock).
 */
export function compareToSaved(saved: SavedPlan, fresh: readonly FreshCluster[], sofar: (cluster: string) => MadeSoFar = () => NOTHING_MADE): string[] {
  const out: string[] = [];
  for (const f of fresh) {
    const name = f.plan.cluster;
    const s = saved.clusters.find((c) => c.cluster === name);
    if (!s) {
      out.push(`cluster ${name}: not in the saved plan`);
      continue;
    }
    if (place(s.endpoint) !== place(f.plan.endpoint)) out.push(`cluster ${name}: its endpoint is now ${place(f.plan.endpoint)}, the plan was made for ${place(s.endpoint)}`);
    // What topo show prints of the plan, and what the review read: the vhost apply writes must be it.
    if (s.vhost !== f.plan.vhost) out.push(`cluster ${name}: its vhost is now ${JSON.stringify(f.plan.vhost)}, the plan says ${JSON.stringify(s.vhost)}`);
    // The objects that changed come first: they are the cause, the plan's differences their effect.
    const made = sofar(name);
    const objects = stateEntry(name, stateChanges(s.state, f.state, made, f.outside));
    pushAll(out, objects);
    const done = new Set(made.made.map((a) => a.key));
    const before = new Map(s.actions.filter((a) => !done.has(a.key)).map((a) => [a.key, a]));
    const now = new Map(f.plan.actions.map((a) => [a.key, a]));
    const differ: string[] = [];
    for (const [key, a] of before) {
      const b = now.get(key);
      if (!b) differ.push(`cluster ${name}: no longer needed: ${label(a)}`);
      else if (actionShape(a) !== actionShape(b)) differ.push(`cluster ${name}: now ${label(b)}, the plan says ${label(a)}${a.op === b.op ? ` (${detailsDiffer(a, b)})` : ""}`);
    }
    for (const [key, b] of now) if (!before.has(key)) differ.push(`cluster ${name}: not in the plan: ${label(b)}`);
    // Nothing the state holds changed, yet the plan did: the cause is elsewhere, not the broker's
    // objects (a plan saved by another build of the same version planned a binding on the apply mark
    // differently, and the message sent the user looking for a change on the broker).
    if (objects.length === 0 && differ.length) {
      out.push(`cluster ${name}: the broker's objects are as the plan saw them; the plan differs by what it does not hold (a user's password, another prefix's apply mark, a user's rights on other vhosts) or by topo itself (a plan saved by another build of topo ${saved.topoVersion})`);
    }
    pushAll(out, differ);
    pushAll(out, newLines(name, s, f.plan));
  }
  return out;
}
