// The one place import asks config which x-arguments a queue takes. The rule (which arguments
// suit which queue type, and which values a type refuses) is config's, and import must agree with
// it exactly: a file that writes an argument topo then refuses is a file that does not load.
// So import asks the rule rather than copy it.
//
// config/normalize.ts keeps its argument rule private (checkArguments over ARGS_BY_TYPE); its
// only door is normalize itself. So this normalizes a file of one queue that holds only the
// argument, and reads back the problem normalize reports about arguments. Once config exports the
// rule, this body becomes one call to it, and nothing else in import changes.

import type { ArgValue, Kind, QueueType } from "../model.js";
import { normalize, type RawConfig } from "../config/normalize.js";

/** A prefix and service normalize accepts; the argument rule depends on neither. */
const PROBE_PREFIX = "probe";
const PROBE_SERVICE = `${PROBE_PREFIX}_queue`;

/**
 * Why config's argument rule refuses argument `name` = `value` on a `kind` queue of type `type`,
 * in config's words; undefined when the rule accepts it.
 */
export function argumentRuleProblem(kind: Kind, type: QueueType, name: string, value: ArgValue): string | undefined {
  const other: Kind = kind === "sync" ? "async" : "sync";
  const probe: RawConfig = {
    version: 1,
    prefix: PROBE_PREFIX,
    clusters: { probe: { url: "amqp://probe.invalid/probe" } },
    services: [{ name: PROBE_SERVICE, [other]: false, [kind]: { cluster: "probe", type, arguments: { [name]: value } } }],
  };
  return normalize(probe).problems.find((p) => p.path.includes("arguments"))?.message;
}
