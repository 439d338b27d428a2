// Saved plans: `topo plan -o FILE` writes one, `topo apply FILE` applies exactly it or nothing,
// `topo show FILE` reads it. The checks that do not need a broker (format, topo's version, the
// topology file's digest) come first; the broker's are made by apply, before any write and again
// under each cluster's lock.

import { randomBytes, scryptSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { isAbsolute } from "node:path";
import { ClustersError, StalePlanError, TopoError } from "../errors.js";
import type { Action, DesiredCluster, Plan } from "../model.js";
import { compareToSaved, desiredText, SAVED_FILE_UNSAFE, outsideSaved, parseSavedPlan, planOf, savedPlan, SavedPlanFormatError, stateText, type FreshCluster, type SavedPlan, type SavedState } from "../plan/saved.js";
import { differsOnlyInLineEnds, fileDigest, sha256 } from "../files/digest.js";
import { refuseOverTopology, writeWhole } from "../files/write-file.js";
import { plan, type PlanOptions } from "./plan.js";
import { apply, RERUN_HINT, type ApplyOptions, type ApplyResult } from "./apply.js";
import { topologyOf } from "./source.js";
import { names, shellPath, shown } from "../core/words.js";
import { keyOf, stableJson } from "../core/keys.js";
import type { Redactor } from "../redact.js";
import { byName } from "../core/collections.js";
import { FINGERPRINT_SCRYPT } from "../config/credentials.js";


/** Plan, and write the plan with what apply needs to check it is still current. */
export async function planAndSave(opts: PlanOptions & { file: string; output: string; version: string }): Promise<{ plan: Plan; saved: SavedPlan }> {
  // Before any broker is read: the plan would take the place of the file it was made from.
  refuseOverTopology(opts.output, opts.file, "the saved plan", "plan.json");
  // A name with a line break or a tab would be saved, and then refused by show and apply as a
  // plan edited by hand: said now, before any broker is read.
  if (SAVED_FILE_UNSAFE.test(opts.file)) {
    throw new TopoError(`cannot save a plan of ${shown(opts.file)}: its name holds a control character (a line break, a tab), which a saved plan does not carry; nothing was read or written`, ["rename the topology file, then run topo plan -o again"], false, "usage");
  }
  // The digest is taken before the file is read for the plan: a change in between makes the
  // saved plan stale, never wrongly current.
  const digest = fileDigest(opts.file);
  const { desired } = topologyOf(opts);
  const states = byName<SavedState>();
  const p = await plan({ ...opts, topology: desired, onRead: (c, st) => (states[c] = st) });
  const users = desired.clusters.find((c) => c.users)?.users;
  const key = randomBytes(16).toString("hex");
  const credentials = users ? { key, digest: users.credentials.fingerprint(key) } : undefined;
  const desiredDigests = Object.fromEntries(desired.clusters.map((c) => [c.target.name, sha256(desiredText(c))]));
  const saved = savedPlan(p, { topoVersion: opts.version, file: opts.file, fileDigest: digest, prefix: desired.prefix, states, desiredDigests, createdAt: new Date().toISOString(), credentials });
  for (const c of saved.clusters) {
    const held = secretBearing(c.state, opts.redactor);
    if (held.length) {
      const secretKey = randomBytes(16).toString("hex");
      c.secrets = { key: secretKey, digest: secretsFingerprint(held, secretKey) };
    }
  }
  // Readable by its owner alone: it holds the users' password fingerprint (slow to guess from,
  // but a guess to try all the same).
  // What the brokers hold is saved masked, as every output is: a foreign binding's name or key
  // that holds a password was saved as it was, and topo show printed it. applySaved masks what it
  // reads alike before comparing (the same file and environment give the same secrets).
  // The digest is of the plan as written (JSON's own numbers and keys), so that apply reads the same.
  const body = JSON.parse(JSON.stringify(masked(saved, opts.redactor))) as SavedPlan;
  writeWhole(opts.output, `${JSON.stringify({ ...body, digest: planSeal(body) }, null, 2)}\n`, false, 0o600);
  return { plan: p, saved };
}

/**
 * The digest topo writes into a saved plan, of everything else in it. Apply checks it first, so
 * that a plan edited by hand is said to be edited, where it was taken for a broker or a file that
 * changed (an edited state read as "what changed since the plan was made"). It is no signature:
 * anyone may write a new one; it tells an edit apart, it does not stop one.
 */
export function planSeal(saved: object): string {
  const { digest: _, ...rest } = saved as Record<string, unknown>;
  return sha256(stableJson(rest as never));
}

/** Why the saved plan is not as topo plan wrote it; undefined when it is. */
function edited(saved: SavedPlan): string | undefined {
  if (saved.digest === undefined) return "it has no digest, which topo plan -o writes";
  return planSeal(saved) === saved.digest ? undefined : "its digest, which topo plan -o writes of the rest of it, does not match what it holds";
}

/**
 * The objects of a state that hold a secret in a name or value (what the redactor masks), each as
 * its canonical text. A saved plan shows them masked, as all output is, so two that differ only in
 * the password they hold read the same: a queue "amqp://q:S1@h" swapped for "amqp://q:S2@h"
 * between plan and apply, both "amqp://q:***@h", let apply delete a binding to a queue nobody had
 * reviewed. The plan keeps a fingerprint of them instead (secretsFingerprint).
 */
function secretBearing(state: SavedState, redactor: Redactor | undefined): { text: string; shown: string }[] {
  if (!redactor) return [];
  const out: { text: string; shown: string }[] = [];
  for (const o of [...state.resources, ...state.operatorPolicies]) {
    const text = stableJson(o as never);
    const masked = redactor.value(o) as typeof o;
    if (stableJson(masked as never) !== text) out.push({ text, shown: keyOf(masked) });
  }
  return out.sort((a, b) => (a.text < b.text ? -1 : a.text > b.text ? 1 : 0));
}

/** scrypt of those objects' texts under a random key, as the users' passwords are fingerprinted: never a secret, and slow to guess one from. */
function secretsFingerprint(held: readonly { text: string }[], key: string): string {
  return scryptSync(JSON.stringify(held.map((h) => h.text)), key, 32, FINGERPRINT_SCRYPT).toString("hex");
}

/** A saved plan's clusters (their plans and states) with every secret masked; the rest is topo's own. */
function masked(saved: SavedPlan, redactor: Redactor | undefined): SavedPlan {
  return { ...saved, clusters: maskedLike(saved.clusters, redactor) };
}

/** What apply read, masked as a saved plan is (masked()), to be compared with one. */
function maskedLike<T>(x: T, redactor: Redactor | undefined): T {
  return redactor ? (redactor.value(x) as T) : x;
}

/** Read a saved plan, or say clearly why this is not one. */
export function readSavedPlan(planFile: string, command: "apply" | "show" = "apply"): SavedPlan {
  let text: string;
  try {
    text = readFileSync(planFile, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file" : code === "EISDIR" ? "it is a directory" : (e as Error).message;
    throw new TopoError(`cannot read the saved plan ${planFile}: ${why}`, ["write one with topo plan -o FILE"]);
  }
  try {
    return parseSavedPlan(text);
  } catch (e) {
    if (!(e instanceof SavedPlanFormatError)) throw e;
    throw new TopoError(`${planFile} is not a saved plan topo can ${command}: ${e.message}`, [
      "write it again with topo plan -o FILE",
      ...(/\.ya?ml$/i.test(planFile)
        ? [command === "show" ? `to see what a topology file would change, plan it: topo plan -f ${shellPath(planFile)}` : `to plan and apply a topology file, name it with -f: topo apply -f ${shellPath(planFile)}`]
        : []),
    ]);
  }
}

export interface ApplySavedOptions extends Omit<ApplyOptions, "file" | "topology" | "cluster" | "expect" | "expectWithin"> {
  planFile: string;
  version: string;
}

/** How many of a stale plan's differences the refusal lists. */
const STALE_LINES = 20;

/**
 * Apply exactly the saved plan. The topology file it names is loaded again (its credentials come
 * from the file and the environment, as they are now); any difference from what was saved
 * refuses the whole apply before anything is written.
 */
export async function applySaved(opts: ApplySavedOptions): Promise<ApplyResult & { saved: SavedPlan }> {
  const saved = readSavedPlan(opts.planFile);
  if (saved.topoVersion !== opts.version) {
    throw new StalePlanError(`the saved plan ${opts.planFile} was made by topo ${saved.topoVersion}, and this is topo ${opts.version}; nothing was written`, [
      `run topo plan -f ${shellPath(saved.file)} -o FILE again with topo ${opts.version}, or apply with topo ${saved.topoVersion}`,
    ]);
  }
  const why = edited(saved);
  if (why) {
    throw new StalePlanError(`the saved plan ${opts.planFile} was edited after topo plan wrote it: ${why}; nothing was written`, [
      `run topo plan -f ${shellPath(saved.file)} -o FILE again, review it, and apply that`,
    ]);
  }
  if (savedFileDigest(saved, opts.planFile) !== saved.fileDigest) {
    const how = differsOnlyInLineEnds(saved.file, saved.fileDigest) ? " (only in its line ends or byte-order mark, as a git checkout with core.autocrlf or an editor changes them)" : "";
    throw new StalePlanError(`the saved plan is stale: ${saved.file} changed since the plan was made${how}; nothing was written`, [
      `run topo plan -f ${shellPath(saved.file)} -o FILE again, review it, and apply that`,
      // A relative name is read from here: from another directory it may be another file.
      ...(isAbsolute(saved.file) ? [] : [`${saved.file} is the name topo plan was given, read from ${process.cwd()}: if topo plan ran in another directory, run topo apply ${shellPath(opts.planFile)} from there`]),
    ]);
  }
  // The file is the same; the passwords its ${VAR}s give must be the same too.
  const { desired } = topologyOf({ file: saved.file, env: opts.env, redactor: opts.redactor, warn: opts.warn });
  // What else can make the same bytes ask otherwise: their ${VAR}s, or, in a file without any, an
  // edit of the plan file itself.
  // The plan keeps no value of them (a value may be a password), only what they made the file ask:
  // the variables the file reads are named, for the reader to compare with the plan job's.
  const variables = [...new Set([...readFileSync(saved.file, "utf8").matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1] as string))].sort();
  const cause = variables.length
    ? `its \${VAR}s take other values from the environment now (it reads ${variables.map((v) => `\${${v}}`).join(", ")}; the plan keeps none of their values)`
    : `it has no \${VAR}, so the plan file ${opts.planFile} was edited`;
  // The file is the one planned, so a cluster it lacks was put in the plan by hand.
  const unknown = saved.clusters.map((c) => c.cluster).filter((n) => !desired.clusters.some((c) => c.target.name === n));
  if (unknown.length) {
    throw new StalePlanError(
      `the saved plan ${opts.planFile} is for cluster${unknown.length === 1 ? "" : "s"} ${unknown.join(", ")}, which ${saved.file} does not have (clusters: ${desired.clusters.map((c) => c.target.name).join(", ")}); nothing was written`,
      [`run topo plan -f ${shellPath(saved.file)} -o FILE again, review it, and apply that`],
    );
  }
  // Every cluster of the file is in the plan, or among those it says it did not read (plan
  // --cluster): a plan with a cluster taken out, or said unread while it is in the plan, was
  // edited, and would apply less than was reviewed (or say less of what it left out).
  const unread = saved.unread ?? [];
  const inPlan = new Set(saved.clusters.map((c) => c.cluster));
  const missing = desired.clusters.map((c) => c.target.name).filter((n) => !inPlan.has(n) && !unread.includes(n));
  const both = unread.filter((n) => inPlan.has(n));
  const stray = unread.filter((n) => !desired.clusters.some((c) => c.target.name === n));
  if (missing.length || both.length || stray.length) {
    const why = [
      ...(missing.length ? [`it has no plan for cluster${missing.length === 1 ? "" : "s"} ${missing.join(", ")} of ${saved.file}, and does not say it left ${missing.length === 1 ? "it" : "them"} out (topo plan --cluster)`] : []),
      ...(both.length ? [`it says cluster${both.length === 1 ? "" : "s"} ${both.join(", ")} ${both.length === 1 ? "was" : "were"} not read, and plans ${both.length === 1 ? "it" : "them"}`] : []),
      ...(stray.length ? [`it says cluster${stray.length === 1 ? "" : "s"} ${stray.join(", ")} ${stray.length === 1 ? "was" : "were"} not read, which ${saved.file} does not have`] : []),
    ];
    throw new StalePlanError(`the saved plan ${opts.planFile} was edited: ${why.join("; ")}; nothing was written`, [`run topo plan -f ${shellPath(saved.file)} -o FILE again, review it, and apply that`]);
  }
  // The prefix decides what topo owns (what it may delete, the lock it takes, the mark it leaves)
  // and is no object of desiredText's: a ${VAR} gives it too.
  if (desired.prefix !== saved.prefix) {
    throw new StalePlanError(
      `the saved plan is stale: ${saved.file} is unchanged, but its prefix is now "${desired.prefix}", and the plan says prefix "${saved.prefix}": ${cause}; nothing was written`,
      [`apply with the environment the plan was made in, or run topo plan -f ${saved.file} -o FILE again, review it, and apply that`],
    );
  }
  // The same bytes ask for other objects when the file's ${VAR}s take other values: Terraform keeps
  // a plan's variables for the same reason. Said before any broker is read, naming the cause.
  const asked = saved.clusters.filter((s) => sha256(desiredText(desired.clusters.find((c) => c.target.name === s.cluster) as DesiredCluster)) !== s.desiredDigest).map((s) => s.cluster);
  if (asked.length) {
    throw new StalePlanError(
      `the saved plan is stale: ${saved.file} is unchanged, but what it asks of cluster${asked.length === 1 ? "" : "s"} ${asked.join(", ")} is not what the plan says it asked: ${cause}; nothing was written`,
      [`apply with the environment the plan was made in, or run topo plan -f ${saved.file} -o FILE again, review it, and apply that`],
    );
  }
  const users = desired.clusters.find((c) => c.users)?.users;
  // A plan of a file with users always holds the fingerprint (planAndSave): one without it was
  // edited, and would otherwise let any password through.
  const now = users ? users.credentials.fingerprint(saved.credentials?.key ?? "") : undefined;
  if (now !== saved.credentials?.digest) {
    const why = !users
      ? `the plan holds a fingerprint of users' passwords, and ${saved.file} has no users: the plan file ${opts.planFile} was edited`
      : `the passwords of the users in ${saved.file} (from its environment variables) are not those the plan was made with`;
    throw new StalePlanError(`the saved plan is stale: ${why}; nothing was written`, [
      `apply with the environment the plan was made in, or run topo plan -f ${saved.file} -o FILE again and apply that`,
    ]);
  }
  // A vhost's creation gives every right on it to the AMQP user (apply grants them) and to the
  // management user that made it (RabbitMQ does).
  const granted = (cluster: string) => {
    const target = desired.clusters.find((c) => c.target.name === cluster)?.target;
    return target ? [target.amqp.username, target.management.username] : [];
  };
  const replan = `run topo plan -f ${shellPath(saved.file)} -o FILE again, review it, and apply that`;
  const check = (fresh: FreshCluster[], made?: readonly Action[]) => {
    // Under its lock (`made` given) a cluster is compared with the saved plan as apply left it
    // just before: with the vhost apply created first when the plan creates it (the lock lives in it).
    const changed = compareToSaved(saved, maskedLike(fresh, opts.redactor), (cluster) => ({ made: maskedLike(made ?? [], opts.redactor), granted: granted(cluster) }));
    // Before anything is written, the objects that hold a secret are as the plan saw them, by
    // their fingerprint: masked, a change of theirs would not show above.
    if (!made?.length) {
      for (const f of fresh) {
        const sc = saved.clusters.find((c) => c.cluster === f.plan.cluster);
        if (!sc?.secrets) continue;
        const held = secretBearing(f.state, opts.redactor);
        if (secretsFingerprint(held, sc.secrets.key) === sc.secrets.digest) continue;
        const shownNow = held.map((h) => h.shown);
        changed.push(
          `cluster ${f.plan.cluster}: of the objects that hold a password in a name or value, which the plan shows masked, one or more changed since the plan was made (the plan keeps a fingerprint of them, not their text); they are now: ${shownNow.length ? names(shownNow.sort()) : "none"}`,
        );
      }
    }
    if (changed.length === 0) return;
    // The message must not say nothing was written where apply made the vhost.
    const where = made ? fresh.map((f) => `cluster ${f.plan.cluster}${made.length ? " but the vhost the plan creates, where its lock lives" : ""}`).join(", ") : "any cluster";
    // A plan another apply carried out meanwhile differs in every action: a few say what happened.
    const shown = changed.length > STALE_LINES + 1 ? [...changed.slice(0, STALE_LINES), `... and ${changed.length - STALE_LINES} more differences (topo plan shows the plan as it is now)`] : changed;
    throw new StalePlanError(`the saved plan is stale; run topo plan again. What changed since ${opts.planFile} was made:\n${shown.map((l) => `  ${l}`).join("\n")}\nnothing was written to ${where}`, [replan]);
  };
  const within = (fresh: FreshCluster, confirmed: readonly Action[]) => outsideSaved(saved, maskedLike(fresh, opts.redactor), granted(fresh.plan.cluster), maskedLike(confirmed, opts.redactor));
  try {
    const r = await apply({
      ...opts,
      file: saved.file,
      topology: desired,
      cluster: saved.clusters.map((c) => c.cluster),
      expect: check,
      expectWithin: within,
      // Applying the same plan again would be refused as stale.
      finish: `the saved plan no longer matches the brokers: run topo plan -f ${saved.file} -o FILE again, review what is left, and apply that`,
      restart: `run topo apply ${shellPath(opts.planFile)} again: nothing was written, so the plan still holds`,
    });
    return { ...r, saved };
  } catch (e) {
    // Part of the plan was made: applying the same file again can only be refused as stale.
    const written = e instanceof TopoError && e.code === "apply_incomplete";
    hintsForSaved(e, opts.planFile, written);
    if (written) e.hints.push("the saved plan no longer matches what the brokers hold: run topo plan -o FILE again, review it, and apply that");
    throw e;
  }
}

/**
 * apply's hints name plain `topo apply`, which applies the current file unreviewed: for a saved
 * plan they are said of it. Before anything was written the plan still holds, and is applied again
 * (with the flag a refusal names); once something was, it matches the brokers no more, and what is
 * left is planned and reviewed again (the hint saying so is added once). Rewritten in place, a
 * ClustersError's causes too (--json lists them), so that each error keeps its class and code.
 */
function hintsForSaved(e: unknown, planFile: string, written: boolean): void {
  if (!(e instanceof TopoError) || e instanceof StalePlanError) return;
  const rewritten = e.hints.flatMap((h) => {
    // "pass --allow-data-loss" alone left the reader to guess the command: it is the plan's.
    if (!/\btopo apply\b/.test(h)) return [!written ? h.replace(/\bpass (--allow-[a-z-]+)( too)?/g, (m) => `${m} (to topo apply ${shellPath(planFile)})`) : h];
    if (!written) return [h.replace(/\btopo apply\b/g, `topo apply ${shellPath(planFile)}`)];
    if (h === RERUN_HINT) return [];
    return [h.replace(/\brun topo apply again\b/g, "run topo plan -o FILE again, review what is left, and apply that").replace(/,? and topo apply finishes it/, "")];
  });
  e.hints.splice(0, e.hints.length, ...new Set(rewritten));
  if (e instanceof ClustersError) for (const c of e.causes) hintsForSaved(c, planFile, written);
}

/** The digest of the topology file a saved plan names, or an error that says where apply looked. */
function savedFileDigest(saved: SavedPlan, planFile: string): string {
  try {
    return fileDigest(saved.file);
  } catch (e) {
    if (!(e instanceof TopoError)) throw e;
    // The plan names the file as topo plan was given it, so a relative name is read from here.
    const where = isAbsolute(saved.file) ? "" : ` (the name topo plan was given, read from ${process.cwd()})`;
    throw new TopoError(`${e.message}${where}: the saved plan ${planFile} was made from it, and apply loads it again for its credentials; nothing was written`, [
      `run topo apply ${shellPath(planFile)} from the directory topo plan ran in, or run topo plan -f FILE -o ${shellPath(planFile)} again and apply that`,
    ]);
  }
}

/**
 * A saved plan for `topo show`: the plan, what it was made from, and a line that says so. The file
 * is anyone's to edit before it reaches a reviewer: its free-text strings (where it came from, the
 * clusters' endpoints, warnings) are shown on one line each, as broker names are, so an edited
 * plan cannot add or hide a line of what the reviewer reads. topo's own never hold such characters.
 */
export function show(planFile: string, version: string): { plan: Plan; source: string; saved: Record<string, unknown> } {
  const s = readSavedPlan(planFile, "show");
  const p = planOf(s);
  return {
    plan: {
      clusters: p.clusters.map((c) => ({ ...c, cluster: shown(c.cluster), endpoint: shown(c.endpoint), warnings: c.warnings.map(shown), degraded: c.degraded.map(shown), notCompared: c.notCompared?.map(shown) })),
      ...(p.unread?.length ? { unread: p.unread.map(shown) } : {}),
    },
    source: `saved plan of ${shown(s.file)}, made ${shown(s.createdAt)} by topo ${shown(s.topoVersion)}${s.topoVersion === version && edited(s) ? `; EDITED after topo plan wrote it (${edited(s)}): topo apply refuses it` : ""}`,
    saved: { file: s.file, fileDigest: s.fileDigest, topoVersion: s.topoVersion, createdAt: s.createdAt, edited: s.topoVersion === version && edited(s) !== undefined, stateDigests: Object.fromEntries(s.clusters.map((c) => [c.cluster, sha256(stateText(c.state))])), desiredDigests: Object.fromEntries(s.clusters.map((c) => [c.cluster, c.desiredDigest])) },
  };
}
