// The one place import asks config which x-arguments a queue takes. The rule (which arguments
// suit which queue type, which values a type refuses, which argument needs another) is config's
// (config/arguments.ts), and import must agree with it exactly: a file that writes an argument
// topo then refuses is a file that does not load. So import asks the rule rather than copy it.

import type { ArgValue, Traffic, QueueType } from "../model.js";
import { argumentRule, checkArguments } from "../config/arguments.js";

/**
 * Why config's argument rule refuses argument `name` = `value` on a queue of type `type`, in
 * config's words; undefined when the rule accepts it. Arguments are judged one at a time, so one
 * that needs another (x-dead-letter-routing-key) is judged beside it: the broker refuses the one
 * without the other, so a queue read from a broker that has the one has both.
 */
export function argumentRuleProblem(_kind: Traffic, type: QueueType, name: string, value: ArgValue): string | undefined {
  // The schema refuses an argument the table does not know; to the rule it applies to no type.
  const rule = argumentRule(name);
  if (!rule) return `argument ${name} does not apply to ${type} queues`;
  const needs = rule.requires;
  const args = { ...(needs ? { [needs.name]: "" } : {}), [name]: value };
  return checkArguments(type, args, [])[0]?.message;
}
