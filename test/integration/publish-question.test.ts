// Whether a cluster's AMQP user may publish through amq.default is asked once per cluster and
// apply (broker/replace.ts publishByDefaultQuestion): the answer does not change from one replace
// to the next. An ask its connection cut short got no answer, though: kept, it failed every later
// replace of the apply, and every reconnect's retry, with that one lost connection.

import { afterEach, describe, expect, it } from "vitest";
import { AmqpSession } from "../../src/broker/amqp.js";
import { publishByDefaultQuestion } from "../../src/broker/replace.js";
import { clusterTarget, createVhost, deleteVhost, uniqueName } from "../helpers/broker.js";

const vhosts: string[] = [];
afterEach(async () => {
  await Promise.all(vhosts.splice(0).map(deleteVhost));
});

describe("the question whether the AMQP user may publish through amq.default", () => {
  it("is asked again after an ask whose connection was lost, and once answered is not asked again", async () => {
    const v = uniqueName("pq");
    vhosts.push(v);
    await createVhost(v);
    let opened = 0;
    const open = async () => {
      const s = await AmqpSession.open(clusterTarget(v), { connectAttempts: 1 });
      // The first ask's connection is gone before it publishes, as under a broker restart.
      if (++opened === 1) await s.close();
      return s;
    };
    const ask = publishByDefaultQuestion(open);
    await expect(ask()).rejects.toBeInstanceOf(Error);
    await expect(ask()).resolves.toBeUndefined();
    await expect(ask()).resolves.toBeUndefined();
    expect(opened).toBe(2);
  });
});
