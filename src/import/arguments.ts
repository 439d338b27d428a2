// Pure: can the file hold an argument a queue has? Two judges, in order: the schema's fragment of
// the argument (its type and range, which RabbitMQ itself does not always check), then config's
// rule of which arguments suit which queue type.

import type { ArgValue, Traffic, QueueType } from "../model.js";
import { stableJson } from "../core/keys.js";
import { ownValue } from "../core/collections.js";
import { argumentRuleProblem } from "./argument-rule.js";
import type { ArgumentSchema } from "./types.js";

/** Why the file cannot hold argument `name` = `value` on such a queue, or undefined when it can. */
export type ArgumentProblem = (kind: Traffic, type: QueueType, name: string, value: ArgValue) => string | undefined;

/** Why a value does not fit the schema fragment of its argument, or undefined when it does. */
export function valueProblem(schema: ArgumentSchema, value: ArgValue): string | undefined {
  const shown = stableJson(value);
  if (schema.const !== undefined && stableJson(schema.const as ArgValue) !== shown) return `${shown} is not ${stableJson(schema.const as ArgValue)}`;
  if (schema.enum && !schema.enum.some((e) => stableJson(e as ArgValue) === shown)) {
    return `${shown} is not one of ${schema.enum.map((e) => stableJson(e as ArgValue)).join(", ")}`;
  }
  switch (schema.type) {
    case "integer":
      if (typeof value !== "number" || !Number.isInteger(value)) return `${shown} is not an integer`;
      break;
    case "number":
      if (typeof value !== "number") return `${shown} is not a number`;
      break;
    case "string":
      if (typeof value !== "string") return `${shown} is not a string`;
      break;
    case "boolean":
      if (typeof value !== "boolean") return `${shown} is not a boolean`;
      break;
    default:
      break;
  }
  if (typeof value === "number") {
    if (schema.minimum !== undefined && value < schema.minimum) return `${shown} is below the minimum ${schema.minimum}`;
    if (schema.maximum !== undefined && value > schema.maximum) return `${shown} is above the maximum ${schema.maximum}`;
  }
  if (typeof value === "string" && schema.pattern !== undefined && !new RegExp(schema.pattern, "u").test(value)) {
    return `${shown} does not match ${schema.pattern}`;
  }
  return undefined;
}

/**
 * The check for one import: the schema's fragments when given, then config's argument rule.
 * Answers are remembered for the import, since a broker of thousands of queues repeats a handful
 * of arguments.
 */
export function argumentChecker(schemas: Record<string, ArgumentSchema> | undefined, rule: ArgumentProblem = argumentRuleProblem): ArgumentProblem {
  const seen = new Map<string, string | undefined>();
  return (kind, type, name, value) => {
    const k = `${kind}|${type}|${JSON.stringify(name)}|${stableJson(value)}`;
    if (!seen.has(k)) seen.set(k, uncached(schemas, rule, kind, type, name, value));
    return seen.get(k);
  };
}

function uncached(schemas: Record<string, ArgumentSchema> | undefined, rule: ArgumentProblem, kind: Traffic, type: QueueType, name: string, value: ArgValue): string | undefined {
  if (schemas) {
    // The schema's own arguments only: a broker's queue may carry one named `constructor`.
    const schema = ownValue(schemas, name);
    if (!schema) return `topo does not know argument ${name}`;
    const p = valueProblem(schema, value);
    if (p) return `${name} ${p}`;
  }
  return rule(kind, type, name, value);
}
