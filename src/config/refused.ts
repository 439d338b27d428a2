// What is still well-formed once refused values are taken out: the data normalize reads, and
// what was refused, so that its cross-checks say nothing that only follows from a refused value.

import type { ErrorObject } from "ajv";
import { TRAFFIC, type Traffic } from "../model.js";
import type { RawConfig, Refused } from "./normalize.js";
import { isObject, jsonPointerToPath, pathKey, type Path } from "./places.js";

/**
 * Whether a path is one of `heads` or lies under one: asked once per schema problem, so the heads
 * are kept by key and each of the path's beginnings looked up, not each head compared in turn.
 */
export function underAny(heads: readonly Path[]): (path: Path) => boolean {
  const keys = new Set(heads.map(pathKey));
  return (path) => {
    for (let i = 0; i <= path.length; i++) if (keys.has(pathKey(path.slice(0, i)))) return true;
    return false;
  };
}

/** The part of the data a schema error refuses: the extra key, the value, or the incomplete object. */
export function refusedPath(err: ErrorObject, data?: unknown): Path {
  const path = jsonPointerToPath(err.instancePath, data);
  const params = err.params as Record<string, unknown>;
  if (err.keyword === "additionalProperties") return [...path, String(params.additionalProperty)];
  if (err.keyword === "propertyNames") return [...path, String(params.propertyName)];
  return path;
}

function removeAt(data: unknown, path: Path): void {
  if (path.length === 0) return;
  let node = data;
  for (const k of path.slice(0, -1)) {
    node = Array.isArray(node) ? node[Number(k)] : isObject(node) ? node[String(k)] : undefined;
    if (node === undefined) return;
  }
  const last = path[path.length - 1] as string | number;
  // A hole, not a splice: services[i] keeps its index for the messages that name it.
  if (Array.isArray(node)) delete node[Number(last)];
  else if (isObject(node)) delete node[String(last)];
}


/**
 * The file without the values refused, as normalize reads it, and what was refused: a broken
 * cluster still counts as a known name, a broken service entry is checked only by its name, a
 * kind whose defaults are broken is not resolved, a bad version stops nothing.
 */
export function wellFormed(data: Record<string, unknown>, paths: Path[]): { raw: RawConfig; refused: Refused } {
  const at = (head: string) => paths.filter((p) => String(p[0]) === head);
  const clusterNames = isObject(data.clusters) ? Object.keys(data.clusters) : undefined;
  for (const p of paths) removeAt(data, p);

  const clusters = isObject(data.clusters) ? data.clusters : {};
  const readable = Object.fromEntries(Object.entries(clusters).filter(([, c]) => isObject(c) && typeof c.url === "string")) as RawConfig["clusters"];
  const clustersRefused = !clusterNames || at("clusters").some((p) => p.length === 1);

  // How much a refusal takes with it: an argument's value only itself; another setting of a
  // service's queue that queue; the entry itself or its name the whole entry.
  const isKind = (k: unknown): k is Traffic => TRAFFIC.includes(k as Traffic);
  const argumentsRefused: Record<string, string[]> = {};
  const refuseArgument = (key: string, name: string) => (argumentsRefused[key] ??= []).push(name);
  const brokenQueues = new Set<string>();
  const brokenServices = new Set<number>();
  for (const p of at("services")) {
    if (p.length < 2) continue;
    const i = Number(p[1]);
    if (p.length >= 3 && isKind(p[2])) {
      if (p.length === 5 && p[3] === "arguments") refuseArgument(`${i}.${p[2]}`, String(p[4]));
      else brokenQueues.add(`${i}.${p[2]}`);
    } else brokenServices.add(i);
  }
  const brokenDefaults = new Set<Traffic>();
  for (const p of at("defaults")) {
    if (p.length >= 2 && isKind(p[1]) && p.length === 4 && p[2] === "arguments") refuseArgument(`defaults.${p[1]}`, String(p[3]));
    else if (p.length >= 2 && isKind(p[1])) brokenDefaults.add(p[1]);
    else TRAFFIC.forEach((k) => brokenDefaults.add(k));
  }
  const services: RawConfig["services"] = [];
  if (Array.isArray(data.services)) {
    data.services.forEach((entry: unknown, i) => {
      if (!brokenServices.has(i)) services[i] = entry as RawConfig["services"][number];
      // Pruned down to what the name checks need; a refused name leaves a hole.
      else if (isObject(entry) && typeof entry.name === "string") services[i] = { name: entry.name };
    });
  }
  services.length = Array.isArray(data.services) ? data.services.length : 0;

  // A refused setting of a user refuses that user (its rights would be guessed otherwise); a
  // refused password or password_hash only that secret: the user's rights are still checked.
  const usersRefused = at("users").some((p) => p.length === 1) || (data.users !== undefined && !isObject(data.users));
  const isSecret = (p: Path) => p.length === 3 && (p[2] === "password" || p[2] === "password_hash");
  const brokenUsers = new Set(at("users").filter((p) => p.length >= 2 && !isSecret(p)).map((p) => String(p[1])));
  const brokenSecrets = [...new Set(at("users").filter(isSecret).map((p) => String(p[1])))].filter((u) => !brokenUsers.has(u));
  const raw: RawConfig = {
    version: 1,
    prefix: typeof data.prefix === "string" ? data.prefix : undefined,
    clusters: readable,
    defaults: isObject(data.defaults) ? (data.defaults as RawConfig["defaults"]) : undefined,
    services,
    users: isObject(data.users) ? (data.users as RawConfig["users"]) : undefined,
  };
  const refused: Refused = {
    clusters: clustersRefused || !clusterNames ? "any" : clusterNames,
    prefix: at("prefix").length > 0,
    defaults: [...brokenDefaults],
    services: [...brokenServices],
    queues: [...brokenQueues],
    arguments: argumentsRefused,
    users: usersRefused ? ["*"] : [...brokenUsers],
    passwords: usersRefused ? [] : brokenSecrets,
  };
  return { raw, refused };
}
