// Pure: the limits the broker puts on the file's users (rabbitmqctl set_user_limits), which the
// file cannot give. A worker that logs in as a user with max-connections 0 is refused at login
// (530 NOT_ALLOWED, "user connection limit (0) is reached"), and with max-channels 0 at its first
// channel, while its user, tags, password and permissions are all the file's: a plan that compared
// those alone said "No changes." of a service that could not start. topo does not write user
// limits, so it cannot repair them: plan says so.

import type { ActualCluster, DesiredCluster } from "../model.js";
import { plural, shellWord, shown } from "../core/words.js";

export interface UserLimitReport {
  /** A limit of 0: the user can open no connection, or no channel. */
  degraded: string[];
  /** Another limit: clients beyond it are refused. */
  warnings: string[];
}

const WHAT: Record<string, [string, string]> = {
  "max-connections": ["connection", "the broker refuses its login (530 NOT_ALLOWED), so no worker or publisher that logs in as it can start"],
  "max-channels": ["channel", "the broker refuses its first channel (530 NOT_ALLOWED), so no worker or publisher that logs in as it can work"],
};

export function userLimits(desired: DesiredCluster, actual: ActualCluster): UserLimitReport {
  const out: UserLimitReport = { degraded: [], warnings: [] };
  if (!actual.userLimits) return out;
  for (const r of desired.resources) {
    if (r.kind !== "user") continue;
    for (const [key, value] of Object.entries(actual.userLimits[r.name] ?? {}).sort()) {
      // A negative limit is none.
      if (value < 0) continue;
      const [unit, none] = WHAT[key] ?? [undefined, undefined];
      const user = shown(r.name);
      const clear = `rabbitmqctl clear_user_limits ${shellWord(r.name)} ${shellWord(key)}`;
      const set = `user ${user} has ${key} ${value} (rabbitmqctl list_user_limits --user ${shellWord(r.name)})`;
      if (value === 0 && none) {
        out.degraded.push(`${set}, which the file does not give: ${none}; clear it with ${clear}, if it is not meant`);
      } else {
        const does = unit ? `it may have at most ${plural(value, unit)} open at once, counting those of all its clients, and the broker refuses more` : `the broker limits it so`;
        out.warnings.push(`${set}, which the file does not give (topo does not manage users' limits): ${does}; clear it with ${clear}, if it is not meant`);
      }
    }
  }
  return out;
}
