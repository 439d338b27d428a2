// Pure: which queue replaces move their messages (broker/replace.ts), said once for the three
// that must agree: what apply does (broker/execute.ts), the rights it asks the AMQP user for
// (plan/rights.ts), and the bindings it removes through the management API
// (broker/remove-binding.ts). A replace the file's rights or unbinds were judged on and that
// apply then carried out otherwise would stop half-way.

import type { ReplaceAction } from "../model.js";

/**
 * A queue's replace moves its messages through a holding queue, unless data loss was allowed
 * (apply --allow-data-loss); even then, a replace that an earlier apply left half-way (`resume`)
 * moves back what its holding queue holds.
 */
export function movesMessages(a: ReplaceAction, allowDataLoss: boolean): boolean {
  return a.before.kind === "queue" && a.after.kind === "queue" && (!allowDataLoss || a.resume !== undefined);
}
