// What a plan shows a delete would lose comes from a passive declare of each queue, made several
// at a time (broker/read.ts passiveCounts): the management API's statistics lag by up to 5 s, so
// messages published a moment before the plan are in no statistic yet. Each count must land on
// its own queue, and a queue that refuses its passive declare (held exclusive by another
// connection: 405) must not stop the others from being counted.

import amqplib from "amqplib";
import { describe, expect, it } from "vitest";
import { amqpUrl, publish, runCli, testVhosts, writeTopology } from "../helpers/broker.js";

const { fresh } = testVhosts();

describe("the live counts of the queues a plan deletes", () => {
  it("are each queue's own, counted at once, and a queue that refuses its count leaves the others counted", async () => {
    const names = Array.from({ length: 14 }, (_, i) => `mplc${String.fromCharCode(97 + i)}`);
    const { file, sync, async } = fresh(names);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    // 1, 2, ... 13 messages in the async queues of the services the next file drops: a count
    // given to another queue would show.
    await Promise.all(names.slice(1).map((n, i) => publish(async, n, `${n}.async.task`, Array.from({ length: i + 1 }, (_, k) => `${n}-${k}`))));
    // A queue of the namespace that another connection holds exclusive: its passive declare is
    // refused (405 RESOURCE_LOCKED), and closes that channel.
    const holder = await amqplib.connect(amqpUrl(async));
    try {
      const ch = await holder.createChannel();
      await ch.assertQueue("mplcz.async", { exclusive: true });
      const smaller = writeTopology({ sync, async, services: names.slice(0, 1) });
      const plan = await runCli(["plan", "-f", smaller, "--json"]);
      expect(plan.code, plan.stderr).toBe(0);
      const actions = (JSON.parse(plan.stdout) as { clusters: { name: string; actions: { op: string; kind?: string; name?: string; messages?: number | null; before?: { kind: string; name: string } }[] }[] }).clusters.find((c) => c.name === "async")!.actions;
      const deleted = new Map(actions.filter((a) => a.op === "delete" && a.kind === "queue").map((a) => [a.name!, a.messages]));
      for (const [i, n] of names.slice(1).entries()) expect(deleted.get(`${n}.async`), `${n}.async`).toBe(i + 1);
      const text = await runCli(["plan", "-f", smaller]);
      expect(text.stdout).toContain("- delete queue mplcn.async [holds 13 messages]");
      expect(text.stdout).toContain("! queue mplcz.async is exclusive to another client's connection: nothing else may delete or declare it (405 RESOURCE_LOCKED)");
    } finally {
      await holder.close().catch(() => undefined);
    }
  }, 120_000);
});
