// Pure: the bindings topo does not manage whose routing an exchange replace changes. A replace
// that changes an exchange's type puts back every binding it had, someone else's too, with its key
// and arguments as they were; but the new type reads them otherwise. Measured on 3.10.8, a service
// exchange made fanout, direct or headers by another hand, then replaced as topic, with a queue of
// someone else's bound to each: the fanout's queue (key "") stopped getting the tasks, the
// headers one's (x-match any, team billing) stopped getting its team's, and the direct one's
// (key mpdir.sync.#, which a direct exchange matched as text) got every mpdir.sync task beside
// the service's workers, which then ran twice. Plan said "then re-creates its 1 binding", and
// apply that every cluster matched the file. Such a binding is named under its replace, and
// apply refuses the replace unless told it may (--allow-unmanaged-deletes), as it refuses one that
// cannot put a binding back.

import type { Action, Binding, Exchange } from "../model.js";

/** What an exchange of `type` routes into the binding `b`, in words; undefined for a type of its own rules. */
function routes(type: string, b: Binding): string | undefined {
  switch (type) {
    case "fanout":
      return "every message, whatever its routing key";
    case "direct":
      return `the messages whose routing key is exactly ${JSON.stringify(b.routingKey)}`;
    case "topic":
      return `the messages whose routing key matches ${JSON.stringify(b.routingKey)} as a pattern ("*" one word, "#" any number)`;
    case "headers":
      return `the messages whose headers match its arguments ${JSON.stringify(b.arguments)}, whatever their routing key`;
    default:
      return undefined;
  }
}

/**
 * How the routing into `b` changes when its source exchange goes from type `from` to `to`, or
 * undefined when it does not: a key without "*" or "#" means the same to a direct and a topic
 * exchange.
 */
export function routingChange(b: Binding, from: string, to: string): string | undefined {
  if (from === to) return undefined;
  const same = new Set(["direct", "topic"]);
  if (same.has(from) && same.has(to) && !/[*#]/.test(b.routingKey)) return undefined;
  const was = routes(from, b) ?? `what a ${from} exchange routes by its own rules`;
  const will = routes(to, b) ?? `what a ${to} exchange routes by its own rules`;
  return `as a ${from} exchange's it got ${was}; as a ${to} exchange's it gets ${will}`;
}

/** The old and the new type of an exchange replace that changes it; undefined for any other action. */
export function typeChange(a: Action): { from: string; to: string } | undefined {
  if (a.op !== "replace" || a.before.kind !== "exchange" || a.after.kind !== "exchange") return undefined;
  const [from, to] = [(a.before as Exchange).type, (a.after as Exchange).type];
  return from === to ? undefined : { from, to };
}

/**
 * Set `retyped` on each exchange replace that changes the type: the bindings from it, of those it
 * puts back, that the file does not make (`managed` says which it does) and whose routing the new
 * type changes.
 */
export function markRetyped(actions: Action[], managed: (b: Binding) => boolean): void {
  for (const a of actions) {
    const change = typeChange(a);
    if (!change || a.op !== "replace") continue;
    const name = (a.before as Exchange).name;
    const retyped = a.rebind.filter((b) => b.source === name && !managed(b) && routingChange(b, change.from, change.to) !== undefined);
    if (retyped.length) a.retyped = retyped;
  }
}

/** The words for one binding of `retyped` under its replace. */
export function retypedReason(a: Action, b: Binding): string {
  const change = typeChange(a);
  return (change && routingChange(b, change.from, change.to)) ?? "its routing changes with the exchange's type";
}
