// An exchange replace that changes the type, against the broker: the bindings of others it puts
// back keep their keys and arguments, and the new type routes them otherwise. Plan named only
// "then re-creates its 1 binding", and apply --allow-destructive said every cluster matched the
// file, while a fanout's queue stopped getting the service's tasks and a direct one's started
// getting copies of them.

import { describe, expect, it } from "vitest";
import { api, broker, messageCount, publish, runCli, testVhosts, vh, withChannel } from "../helpers/broker.js";

const { fresh } = testVhosts();

describe("an exchange someone made fanout or direct, with their queues bound, that the file wants topic", () => {
  it("is named under its replace, refused without --allow-unmanaged-deletes, and routes as plan said once allowed", async () => {
    const { file, async } = fresh([
      { name: "mpcel", sync: false },
      { name: "mpdir", sync: false },
    ]);
    expect((await api("PUT", `/api/vhosts/${vh(async)}`, {})).status).toBeLessThan(300);
    expect((await api("PUT", `/api/permissions/${vh(async)}/${encodeURIComponent(broker().user)}`, { configure: ".*", write: ".*", read: ".*" })).status).toBeLessThan(300);
    await withChannel(async, async (ch) => {
      await ch.assertExchange("mpcel", "fanout", { durable: true });
      await ch.assertExchange("mpdir", "direct", { durable: true });
      for (const q of ["audit_fan", "audit_dir"]) await ch.assertQueue(q, { durable: true });
      await ch.bindQueue("audit_fan", "mpcel", "");
      await ch.bindQueue("audit_dir", "mpdir", "mpdir.async.#");
      // A key without wildcards means the same to both types: not named.
      await ch.bindQueue("audit_dir", "mpdir", "mpdir.async.pay");
    });

    const plan = await runCli(["plan", "-f", file]);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toContain("-/+ replace exchange mpcel");
    expect(plan.stdout).toContain("! changes what 1 binding topo does not manage routes, put back as it was: mpcel -> audit_fan [] (as a fanout exchange's it got every message, whatever its routing key; as a topic exchange's it gets the messages whose routing key matches \"\" as a pattern");
    expect(plan.stdout).toContain("! changes what 1 binding topo does not manage routes, put back as it was: mpdir -> audit_dir [mpdir.async.#] (as a direct exchange's it got the messages whose routing key is exactly \"mpdir.async.#\"");
    expect(plan.stdout).not.toContain("mpdir -> audit_dir [mpdir.async.pay] (as");

    const refused = await runCli(["apply", "-f", file, "--allow-destructive"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("refusing to replace 2 exchanges whose new type changes what 2 bindings topo does not manage route:");
    expect(refused.stderr).toContain("pass --allow-unmanaged-deletes");
    // Nothing was written: the exchanges keep their types, and route as they did.
    await publish(async, "mpcel", "mpcel.async.task", ["a"]);
    await publish(async, "mpdir", "mpdir.async.task", ["b"]);
    expect(await messageCount(async, "audit_fan")).toBe(1);
    expect(await messageCount(async, "audit_dir")).toBe(0);

    const applied = await runCli(["apply", "-f", file, "--allow-destructive", "--allow-unmanaged-deletes"]);
    expect(applied.stderr).not.toMatch(/Error/);
    expect(applied.code).toBe(0);
    // As plan said: the fanout's queue no longer gets the service's tasks; the direct one's does.
    await publish(async, "mpcel", "mpcel.async.task", ["c"]);
    await publish(async, "mpdir", "mpdir.async.task", ["d"]);
    expect(await messageCount(async, "audit_fan")).toBe(1);
    expect(await messageCount(async, "audit_dir")).toBe(1);
    expect(await messageCount(async, "mpcel.async")).toBe(1);
    expect(await messageCount(async, "mpdir.async")).toBe(1);
  });
});
