// A replace without loss moves messages over two channels at once: a connection allowed fewer
// (channel_max 1) is refused before anything is written, not stopped after the queue's bindings
// moved to its holding queue (measured on 4.0: "0 of 1 change was made", with the service's
// exchange routing to topo.hold.<queue> and the queue's consumers getting nothing).

import { describe, expect, it } from "vitest";
import type { Action, ClusterPlan } from "../../src/model.js";
import type { AmqpSession } from "../../src/broker/amqp.js";
import { refuseShortOfChannels } from "../../src/broker/execute.js";
import { BrokerError } from "../../src/errors.js";
import { keyOf } from "../../src/core/keys.js";
import { exchange, queue } from "../helpers/builders.js";

const before = queue({ name: "mplogin.async" });
const after = queue({ name: "mplogin.async", arguments: { "x-max-length": 1000 } });
const replace = (o: Partial<Extract<Action, { op: "replace" }>> = {}): Action => ({ op: "replace", key: keyOf(after), before, after, because: ["arguments.x-max-length: (none) -> 1000"], rebind: [], ...o });
const plan = (...actions: Action[]): ClusterPlan => ({ cluster: "async", endpoint: "amqp://u:***@h/v", vhost: "v", actions, warnings: [], degraded: [] });
type Budget = Pick<AmqpSession, "channelBudget" | "channelsHeld" | "budgetUser">;
const session = (channelBudget: number, channelsHeld = 0, budgetUser?: { user: string; max: number }): Budget => ({ channelBudget, channelsHeld, budgetUser });
const refusal = (p: ClusterPlan, channels: number | Budget, allowDataLoss = false) => {
  try {
    refuseShortOfChannels(p, typeof channels === "number" ? session(channels) : channels, { allowDataLoss, concurrency: 64 });
    return undefined;
  } catch (e) {
    return e as BrokerError;
  }
};

describe("a connection with too few channels for a replace without loss", () => {
  it("is refused before any write, naming the queue, the limit and what to do", () => {
    const e = refusal(plan(replace()), 1);
    expect(e).toBeInstanceOf(BrokerError);
    expect(e?.code).toBe("broker_refused");
    expect(e?.message).toBe(
      "cluster async: the broker lets a connection open 1 channel (its channel_max), and replacing queue mplogin.async without losing its messages moves them over 2 at once; nothing was written",
    );
    expect(e?.hints).toEqual([
      "raise channel_max in the broker's rabbitmq.conf (2047 by default) to 2 or more; or, to drop the messages instead, apply with --allow-data-loss, which deletes and re-creates the queue",
    ]);
  });

  it("offers no --allow-data-loss for a replace an earlier run began, which is always finished without loss", () => {
    const resume = { hold: queue({ name: "topo.hold.mplogin.async" }), holdBindings: [], queueDone: false };
    expect(refusal(plan(replace({ resume })), 1)?.hints).toEqual(["raise channel_max in the broker's rabbitmq.conf (2047 by default) to 2 or more"]);
    expect(refusal(plan(replace({ resume })), 1, true)).toBeInstanceOf(BrokerError);
  });

  it("lets through two channels, a replace that drops the messages, an exchange's replace, and a plan with no replace", () => {
    expect(refusal(plan(replace()), 2)).toBeUndefined();
    expect(refusal(plan(replace()), 1, true)).toBeUndefined();
    const x = exchange({ name: "mplogin" });
    expect(refusal(plan({ op: "replace", key: keyOf(x), before: x, after: { ...x, type: "direct" }, because: ["type"], rebind: [] }), 1)).toBeUndefined();
    expect(refusal(plan({ op: "create", key: keyOf(after), after }), 1)).toBeUndefined();
  });

  it("counts the channel topo's lock keeps open, and names a user's max-channels when that is the limit", () => {
    const lock = refusal(plan(replace()), session(2, 1));
    expect(lock?.message).toBe(
      "cluster async: the broker lets a connection open 2 channels (its channel_max), topo's apply lock keeps 1 of them open, and replacing queue mplogin.async without losing its messages moves them over 2 at once; nothing was written",
    );
    expect(lock?.hints[0]).toMatch(/^raise channel_max in the broker's rabbitmq\.conf \(2047 by default\) to 3 or more/);
    expect(refusal(plan(replace()), session(3, 1))).toBeUndefined();
    const user = refusal(plan(replace()), session(2, 1, { user: "deploy", max: 2 }));
    expect(user?.message).toBe(
      'cluster async: user "deploy" may have 2 channels open at once (its max-channels, counting all its connections), topo\'s apply lock keeps 1 of them open, and replacing queue mplogin.async without losing its messages moves them over 2 at once; nothing was written',
    );
    expect(user?.hints[0]).toMatch(/^raise the limit to 3 or more: rabbitmqctl set_user_limits deploy '\{"max-channels": 3\}' \(rabbitmqctl list_user_limits --user deploy shows it\), clear it, or apply as a user without it; or, to drop the messages instead/);
  });
});
