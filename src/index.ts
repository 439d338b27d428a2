// topo's public API: what a TypeScript program may call, and nothing else is promised. The CLI is
// built on the same functions.
//
//   import { loadTopology, plan, renderPlan } from "topo";
//   const topology = loadTopology("topology.yaml");
//   const p = await plan({ topology });
//   console.log(renderPlan(p));

import { loadConfig, parseConfig, type Env } from "./config/load.js";
import type { DesiredState } from "./model.js";
import type { Redactor } from "./redact.js";

export type { Env } from "./config/load.js";
export type {
  Action,
  ActualCluster,
  Binding,
  ClusterPlan,
  ClusterTarget,
  DesiredCluster,
  DesiredState,
  Exchange,
  Traffic,
  Plan,
  Policy,
  Queue,
  QueueSpec,
  QueueType,
  Resource,
  Summary,
} from "./model.js";

/** A topology loaded from a file and checked: the exact objects wanted, per cluster. */
export type Topology = DesiredState;

/**
 * Read, validate and normalise a topology file (${VAR} from `env`, default process.env). Throws
 * ConfigError with every problem, each with its file, line and column.
 */
export function loadTopology(file: string, env?: Env, redactor?: Redactor): Topology {
  return loadConfig(file, env, redactor).desired;
}

/** The same from text already read; `file` names it in problems. */
export function parseTopology(text: string, file = "topology.yaml", env?: Env, redactor?: Redactor): Topology {
  return parseConfig(text, file, env, redactor);
}

/**
 * Pass a Redactor to loadTopology, plan or apply and it learns every password they read; then
 * `redactor.text(message)` masks them (and any URL's password) in what you print or log.
 */
export { Redactor } from "./redact.js";

export { validate, type ValidateResult } from "./commands/validate.js";
export { plan, type PlanOptions } from "./commands/plan.js";
export { apply, type ApplyOptions, type ApplyResult, type ClusterOutcome } from "./commands/apply.js";
export { renderText as renderPlan, planJson } from "./plan/render.js";
export { renderMarkdown as renderPlanMarkdown } from "./plan/markdown.js";
export { applySaved, planAndSave, readSavedPlan, type ApplySavedOptions } from "./commands/saved.js";
export type { SavedPlan, SavedState } from "./plan/saved.js";
export { isEmpty, summarize } from "./plan/diff.js";
export { ApplyError, BrokerError, ConfigError, ERROR_CODES, InterruptedError, LockError, TopoError, UnsafePlanError, type ConfigProblem, type ErrorCode } from "./errors.js";
