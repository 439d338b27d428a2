// A change to topo's own policy can hand a queue to a user's policy that topo's shadowed, and that
// policy's max-length then cuts what the queue holds: --allow-destructive (which deletes topo's
// policy) must not lose those messages; only --allow-data-loss may. Against the real broker,
// through the CLI, as a tester reproduced it on 3.10.8.

import { describe, expect, it } from "vitest";
import { api, getQueue, messageCount, publish, runCli, testVhosts, vh, withChannel, writeTopology } from "../helpers/broker.js";

const { fresh } = testVhosts();

/** mplogin's sync queue, mirrored by topo.mp.mirror.sync, holding `n` messages, shadowing a user's max-length 5; and the file that stops mirroring it. */
async function shadowed(n: number): Promise<{ sync: string; unmirrored: string }> {
  const { file, sync, async } = fresh([{ name: "mplogin", async: false }]);
  expect((await runCli(["apply", "-f", file])).code).toBe(0);
  const put = await api("PUT", `/api/policies/${vh(sync)}/userlimit`, { pattern: "^mplogin\\.sync$", "apply-to": "queues", definition: { "max-length": 5 }, priority: -1 });
  expect(put.status).toBeLessThan(300);
  await publish(sync, "mplogin", "mplogin.sync.task", Array.from({ length: n }, (_, i) => `m${i}`));
  expect(await messageCount(sync, "mplogin.sync")).toBe(n);
  // Plan counts from the management API's totals, which lag by up to 5 s.
  for (let i = 0; i < 100 && (await getQueue(sync, "mplogin.sync"))?.messages !== n; i++) await new Promise((r) => setTimeout(r, 200));
  const unmirrored = writeTopology({ sync, async, services: [{ name: "mplogin", async: false, sync: { mirrored: false } }] });
  return { sync, unmirrored };
}

describe("a policy change that hands a queue to another policy's limit", () => {
  it("plan names the messages; apply --allow-destructive refuses and keeps them all; --allow-data-loss proceeds", async () => {
    const { sync, unmirrored } = await shadowed(100);

    const plan = await runCli(["plan", "-f", unmirrored]);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toContain("  - delete policy topo.mp.mirror.sync\n");
    expect(plan.stdout).toContain(
      "      ! messages at risk: queue mplogin.sync holds 100 messages, and once this change is made policy userlimit's max-length 5 applies to it (now: none): drop-head would discard the oldest 95\n",
    );

    const refused = await runCli(["apply", "-f", unmirrored, "--allow-destructive", "--json"]);
    expect(refused.code).toBe(1);
    expect(JSON.parse(refused.stdout).error.code).toBe("refused_data_loss");
    expect(refused.stderr).toContain("refusing to make 1 policy change that would make 1 queue lose messages:");
    expect(refused.stderr).toContain("let the workers drain mplogin.sync first (below 5)");
    expect(refused.stderr).toContain("--allow-data-loss");
    // Nothing was written: topo's policy still shadows the user's, and every message is there.
    expect((await api("GET", `/api/policies/${vh(sync)}/topo.mp.mirror.sync`)).status).toBe(200);
    expect(await messageCount(sync, "mplogin.sync")).toBe(100);

    const allowed = await runCli(["apply", "-f", unmirrored, "--allow-destructive", "--allow-data-loss"]);
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(allowed.stderr).toContain("--allow-data-loss: - delete policy topo.mp.mirror.sync: queue mplogin.sync holds 100 messages");
    expect((await api("GET", `/api/policies/${vh(sync)}/topo.mp.mirror.sync`)).status).toBe(404);
    expect(await messageCount(sync, "mplogin.sync")).toBe(5);
  });

  it("apply counts live: messages the statistics have not counted yet refuse it; a queue the limit keeps whole needs no --allow-data-loss", async () => {
    const { sync, unmirrored } = await shadowed(3);
    await publish(sync, "mplogin", "mplogin.sync.task", Array.from({ length: 7 }, (_, i) => `late${i}`));
    const refused = await runCli(["apply", "-f", unmirrored, "--allow-destructive"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("queue mplogin.sync holds 10 messages");
    expect(await messageCount(sync, "mplogin.sync")).toBe(10);

    await withChannel(sync, async (ch) => {
      for (let i = 0; i < 6; i++) expect(await ch.get("mplogin.sync", { noAck: true })).not.toBe(false);
    });
    const done = await runCli(["apply", "-f", unmirrored, "--allow-destructive"]);
    expect(done.code, done.stderr).toBe(0);
    expect(await messageCount(sync, "mplogin.sync")).toBe(4);
  });
});
