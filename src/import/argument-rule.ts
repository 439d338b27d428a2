// The one place import asks config which x-arguments a queue takes. The rule (which arguments
// suit which queue type, which values a type refuses, which argument needs another) is config's
// (config/arguments.ts), and import must agree with it exactly: a file that writes an argument
// topo then refuses is a file that does not load. So import asks the rule rather than copy it.

import type { Args, ArgValue, Traffic, QueueType } from "../model.js";
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
  // Its own problems only: the one it needs may need another in turn (x-delayed-retry-max needs
  // x-delayed-retry-min, which needs x-delayed-retry-type), which is that one's to answer for.
  return checkArguments(type, args, [{ path: [], arguments: args }]).find((p) => p.path.at(-1) === name)?.message;
}

/**
 * The arguments of a set, each accepted alone, that config's rule refuses beside the others, with
 * config's words: one that needs another the set lacks, a maximum below its minimum. RabbitMQ
 * refuses no such set of RabbitMQ 4.3's delayed retries (x-delayed-retry-type without
 * x-delayed-retry-min: accepted, and nothing delayed), so a queue read from a 4.3 broker may hold
 * one, and a file that wrote it would not load. Taken out one round at a time, since taking out one
 * argument may leave another without the one it needs.
 */
export function argumentSetProblems(type: QueueType, args: Args): [string, string][] {
  const kept: Args = { ...args };
  const out: [string, string][] = [];
  for (;;) {
    const found = checkArguments(type, kept, [{ path: [], arguments: kept }]).flatMap((p) => {
      const name = p.path.at(-1);
      return typeof name === "string" && name in kept ? [[name, p.message] as [string, string]] : [];
    });
    if (found.length === 0) return out;
    for (const [name, message] of found) {
      if (!(name in kept)) continue;
      delete kept[name];
      out.push([name, message]);
    }
  }
}
