// Pure: the file's `defaults`, chosen so that the services need the fewest settings of their own.

import { TRAFFIC, type ArgValue, type Args, type Traffic, type QueueType } from "../model.js";
import { BUILT_IN, type RawQueueSettings } from "../config/normalize.js";
import { sortArgs } from "../core/keys.js";
import { mostCommon } from "./tally.js";
import type { KindClusters, Wanted } from "./types.js";

/**
 * Per kind with queues: its cluster, then the most common type and (for classic queues) the
 * most common durable and mirrored, ties going to the built-in defaults; then the arguments worth
 * sharing. `queues` must be in a stable order: ties among arguments go to the first seen.
 */
export function chooseDefaults(queues: { kind: Traffic; wanted: Wanted }[], kindClusters: KindClusters): Partial<Record<Traffic, RawQueueSettings>> {
  const defaults: Partial<Record<Traffic, RawQueueSettings>> = {};
  for (const kind of TRAFFIC) {
    const ofKind = queues.filter((c) => c.kind === kind).map((c) => c.wanted);
    if (ofKind.length === 0) continue;
    const type = (mostCommon(ofKind.map((w) => w.type), ["classic"]) as { value: QueueType }).value;
    const d: RawQueueSettings = { cluster: kindClusters[kind] as string };
    if (type === "classic") {
      const classic = ofKind.filter((w) => w.type === "classic");
      d.durable = (mostCommon(classic.map((w) => w.durable), [BUILT_IN[kind].durable]) as { value: boolean }).value;
      d.mirrored = (mostCommon(classic.map((w) => w.mirrored), [BUILT_IN[kind].mirrored]) as { value: boolean }).value;
    } else {
      d.type = type;
    }
    const args = sharedArguments(ofKind);
    if (Object.keys(args).length) d.arguments = sortArgs(args);
    defaults[kind] = d;
  }
  return defaults;
}

/**
 * A service can override a default argument but not remove it, so only arguments every queue of
 * the kind has can be defaults; one is worth it when at least two share its value.
 */
function sharedArguments(ofKind: Wanted[]): Args {
  const args: Args = {};
  const first = ofKind[0] as Wanted;
  for (const name of Object.keys(first.arguments)) {
    if (!ofKind.every((w) => name in w.arguments)) continue;
    const m = mostCommon(ofKind.map((w) => w.arguments[name] as ArgValue));
    if (m && m.count >= 2) args[name] = m.value;
  }
  return args;
}
