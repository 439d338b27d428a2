// Remove a binding that has arguments, exactly. An AMQP unbind names the arguments with the types
// amqplib guesses (1 is a byte), and RabbitMQ answers unbind-ok whether a binding matched or not:
// a binding whose arguments the broker holds as a long (made by the management API, rabbitmqadmin
// or a definitions file) stayed where it was, silently (a replace's old queue kept taking copies;
// apply could never delete one drift had given arguments). The management API deletes a binding
// by the properties_key it was listed under, which names its arguments with their types, and a
// 404 there means no binding of that key is left.

import type { Binding, ClusterPlan } from "../model.js";
import { holdingQueueName } from "../core/naming.js";
import { movesMessages } from "../plan/moves.js";
import type { ManagementClient } from "./http.js";
import { vh } from "./http.js";

/**
 * Is `b` removed by its properties_key? Only a binding with arguments that carries the key it was
 * listed under (a copy topo made carries it only where it was made exactly: see copyOf).
 */
export function removedByKey(b: Binding): b is Binding & { propertiesKey: string } {
  if (b.propertiesKey === undefined || Object.keys(b.arguments).length === 0) return false;
  // An exchange or queue named "." or "..": no path names it (below), so the binding is unbound
  // over AMQP, with the types the broker holds where they were found (broker/declare.ts).
  return addressable(b.source) && addressable(b.destination);
}

/**
 * Whether a management API path can name this exchange or queue. "." and ".." cannot: the broker
 * reads them as a path's dot segments, also written %2E, so DELETE /api/bindings/v/e/../q/q1/KEY
 * asks for another path (405), and GET /api/exchanges/v/.. lists every exchange of every vhost.
 */
export function addressable(name: string): boolean {
  return name !== "." && name !== "..";
}

/** DELETE /api/bindings/VHOST/e/SOURCE/q|e/DESTINATION/PROPERTIES_KEY; 404: already gone. */
export async function removeByKey(http: ManagementClient, vhost: string, b: Binding & { propertiesKey: string }): Promise<void> {
  const e = encodeURIComponent;
  await http.delete(`/api/bindings/${vh(vhost)}/e/${e(b.source)}/${b.destinationType === "queue" ? "q" : "e"}/${e(b.destination)}/${e(b.propertiesKey)}`);
}

/**
 * `b` bound to another destination by topo. The properties_key does not depend on the
 * destination, so a copy made with the exact types has the original's; one made with amqplib's
 * guess (topo could not tell the types) has another, unknown one, and is unbound as it was bound.
 */
export function copyOf(b: Binding, destination: string): Binding {
  const { propertiesKey, ...rest } = b;
  return { ...rest, destination, ...(b.exact && propertiesKey !== undefined ? { propertiesKey } : {}) };
}

/**
 * The bindings `plan`'s apply removes through the management API, by their ends: each binding with
 * arguments it deletes, and, in a replace that moves the queue's messages (not `movesNothing`:
 * --allow-data-loss), each such binding of the queue, unbound from the queue and, where its types
 * were found, from the holding queue (broker/replace.ts). The management API checks its own
 * user's permissions for these, not the AMQP user's.
 */
export function unbindsByKey(plan: ClusterPlan, movesNothing: boolean): Binding[] {
  const out: Binding[] = [];
  for (const a of plan.actions) {
    if (a.op === "delete" && a.before.kind === "binding" && removedByKey(a.before)) out.push(a.before);
    if (a.op !== "replace" || a.after.kind !== "queue" || !movesMessages(a, movesNothing)) continue;
    const queue = a.after.name;
    for (const b of a.rebind) {
      if (!removedByKey(b)) continue;
      out.push(copyOf(b, queue));
      if (b.exact) out.push(copyOf(b, holdingQueueName(queue)));
    }
  }
  return out;
}
