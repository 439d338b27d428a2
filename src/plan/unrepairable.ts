// Pure: how the broker differs from the file in ways no write of topo's repairs. Plan reports
// them degraded (or warns); import says so of the file it writes.

import type { ActualCluster, DesiredCluster, FilePath, Policy } from "../model.js";
import { Ownership } from "../core/naming.js";
import { mirroredAgainstFile, mirroring } from "./mirroring.js";
import { deadLettering } from "./dead-lettering.js";
import { policyOverflow } from "./policy-overflow.js";
import { policyRetry } from "./policy-retry.js";
import { policyLimits } from "./policy-limits.js";
import { policyRoutes } from "./policy-routes.js";
import { userLimits } from "./user-limits.js";
import { pushAll } from "../core/collections.js";

/**
 * How the broker differs from the file in ways topo cannot repair, since what causes them is not
 * topo's (a user's policy, an operator policy, a node that is down): queues that are not mirrored
 * as the file says, that a policy limits (or whose retries it delays) where the file does not, or whose messages a policy
 * dead-letters (or sends to an alternate exchange) where the file says they go nowhere, and the
 * file's users' limits.
 */
export function unrepairable(
  c: DesiredCluster,
  actual: ActualCluster,
  prefix: string,
  placeOf: (path: FilePath) => string,
): { degraded: string[]; warnings: string[]; notCompared: string[]; ofNodes: string[] } {
  const owner = Ownership.of(prefix, actual.resources);
  const owns = (p: Policy) => owner.owns(p);
  const mirrors = mirroring(c, actual);
  pushAll(mirrors.degraded, mirroredAgainstFile(c, actual, owns));
  const limits = policyLimits(c, actual, owns);
  const overflow = policyOverflow(c, actual, owns);
  const retry = policyRetry(c, actual, owns);
  const dead = deadLettering(c, actual, owns, placeOf);
  const routes = policyRoutes(c, actual, owns);
  const users = userLimits(c, actual);
  return {
    degraded: [...mirrors.degraded, ...limits.degraded, ...overflow.degraded, ...retry.degraded, ...dead.degraded, ...routes.degraded, ...users.degraded],
    warnings: [...mirrors.warnings, ...limits.warnings, ...overflow.warnings, ...retry.warnings, ...dead.warnings, ...routes.warnings, ...users.warnings],
    notCompared: [...mirrors.notCompared, ...limits.notCompared],
    ofNodes: mirrors.ofNodes ?? [],
  };
}

