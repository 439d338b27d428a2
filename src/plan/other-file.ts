// Pure: a plan that deletes services the last apply of another file of the same prefix made.
//
// The prefix is the namespace topo owns on a vhost, so two files of one prefix on one vhost take
// each other's services for their own drift: the second file's plan deleted the first's services
// without a word of whose they were. Every apply that writes names its file in the apply mark
// (broker/generation.ts renewApplyMark); a plan that deletes services says when that name is
// another file's. Only the name is kept: a checkout's folder differs from run to run, and a
// warning every run would teach people to skip it.

import { basename } from "node:path";
import type { ActualCluster, ClusterPlan } from "../model.js";
import { applyMarkName, MARK_FILE } from "../core/naming.js";
import { names } from "../core/words.js";
import { servicesDeleted } from "./diff.js";

export function otherFileWarning(plan: ClusterPlan, actual: ActualCluster, prefix: string, file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  // The deletes first: nearly every plan has none, and the mark is looked for among every object.
  const services = servicesDeleted(plan.actions);
  if (services.length === 0) return undefined;
  const mark = actual.resources.find((r) => r.kind === "exchange" && r.name === applyMarkName(prefix));
  const last = mark?.kind === "exchange" ? mark.arguments[MARK_FILE] : undefined;
  if (typeof last !== "string" || last === basename(file)) return undefined;
  const by = mark?.kind === "exchange" ? [mark.arguments["x-topo-applied-by"], mark.arguments["x-topo-applied-at"]].filter((x): x is string => typeof x === "string") : [];
  const one = services.length === 1;
  return `this plan deletes service${one ? "" : "s"} ${names(services)}, and the last apply that wrote prefix ${prefix}'s objects on this vhost was of file "${last}"${by.length ? ` (${by.join(", ")})` : ""}, not "${basename(file)}": if that is another file with the same prefix, ${one ? "this is its service" : "these are its services"}; each file needs a prefix of its own on a vhost (the prefix is the namespace topo owns there)`;
}
