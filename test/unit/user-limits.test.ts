// The broker's limits on the file's users (rabbitmqctl set_user_limits), which the file cannot
// give: 0 connections or channels keeps every worker of the user from starting, and is degraded,
// never "No changes."; another limit is a warning.

import { describe, expect, it } from "vitest";
import { userLimits } from "../../src/plan/user-limits.js";
import { actual, desiredOf, raw } from "../helpers/builders.js";

const d = desiredOf(
  raw({
    services: ["mplogin", "mpwallet"],
    users: { mplogin: { password: "pw-1", consumes: ["mplogin"] }, "odd user": { password: "pw-2", consumes: ["mpwallet"] } },
  }),
  "async",
);
const withLimits = (limits: Record<string, Record<string, number>>) => ({ ...actual(d.resources), userLimits: limits });

describe("the broker's limits on the file's users", () => {
  it("0 connections or channels is degraded, another limit a warning, each with the command that clears it", () => {
    const r = userLimits(d, withLimits({ mplogin: { "max-connections": 0, "max-channels": 5 }, "odd user": { "max-channels": 0 } }));
    expect(r.degraded).toEqual([
      "user mplogin has max-connections 0 (rabbitmqctl list_user_limits --user mplogin), which the file does not give: the broker refuses its login (530 NOT_ALLOWED), so no worker or publisher that logs in as it can start; clear it with rabbitmqctl clear_user_limits mplogin max-connections, if it is not meant",
      `user odd user has max-channels 0 (rabbitmqctl list_user_limits --user 'odd user'), which the file does not give: the broker refuses its first channel (530 NOT_ALLOWED), so no worker or publisher that logs in as it can work; clear it with rabbitmqctl clear_user_limits 'odd user' max-channels, if it is not meant`,
    ]);
    expect(r.warnings).toEqual([
      "user mplogin has max-channels 5 (rabbitmqctl list_user_limits --user mplogin), which the file does not give (topo does not manage users' limits): it may have at most 5 channels open at once, counting those of all its clients, and the broker refuses more; clear it with rabbitmqctl clear_user_limits mplogin max-channels, if it is not meant",
    ]);
  });

  it("no limit (-1), a user the file does not have, or limits that could not be read: nothing", () => {
    const none = { degraded: [], warnings: [] };
    expect(userLimits(d, withLimits({ mplogin: { "max-connections": -1 }, guest: { "max-connections": 0 } }))).toEqual(none);
    expect(userLimits(d, actual(d.resources))).toEqual(none);
  });
});
