// Issue #11, against the real broker: plan, route and import say the same thing about the same
// broker, and the files people really write (merge keys, typed ${VAR}) load and apply.

import { afterEach, describe, expect, it } from "vitest";
import { api, deleteVhost, getQueue, runCli, uniqueName, vh, withChannel, writeFile, writeTopology } from "../helpers/broker.js";

const vhosts: string[] = [];
afterEach(async () => {
  await Promise.all(vhosts.splice(0).map(deleteVhost));
});

function fresh(services: unknown[]): { file: string; sync: string; async: string } {
  const sync = uniqueName("sync");
  const async = uniqueName("async");
  vhosts.push(sync, async);
  return { file: writeTopology({ sync, async, services }), sync, async };
}

describe("one truth about mirroring", () => {
  it("a user policy with ha-mode all mirrors the queue: plan does not call it unmirrored, and import agrees", async () => {
    const { file, sync } = fresh(["mpha"]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    const put = await api("PUT", `/api/policies/${vh(sync)}/team-ha`, { pattern: "^mpha\\.sync$", definition: { "ha-mode": "all" }, "apply-to": "queues", priority: 10 });
    expect([201, 204]).toContain(put.status);

    const plan = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(plan.stderr).toBe("");
    expect(plan.code).toBe(0);
    expect(plan.stdout).toMatch(/! warning: policy "team-ha" \(priority 10\) shadows topo's mirroring policy \(priority 0\) on 1 queue \(mpha\.sync\): it has "ha-mode": "all", so they are mirrored/);
    expect(plan.stdout).not.toMatch(/not mirrored|add "ha-mode"|degraded/);
    expect(plan.stdout).toMatch(/No changes\./);

    const imported = await runCli(["import", "-f", file, "--cluster", "sync"]);
    expect(imported.code).toBe(0);
    const said = imported.stdout.replace(/\n#\s+/g, " ");
    expect(said).toMatch(/policy team-ha \(pattern .*, priority 10, ha-mode="all"\): a user's policy; it mirrors mpha\.sync, which the file marks mirrored: true/);
    expect(imported.stdout).toMatch(/sync: \{ cluster: sync, durable: false, mirrored: true \}/);
  });
});

describe("bindings topo does not manage", () => {
  it("plan names a user's binding from a service exchange, and route --live points to it in the same words", async () => {
    const { file, async } = fresh([{ name: "mppayment", sync: false }]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    await withChannel(async, async (ch) => {
      await ch.assertQueue("audit", { durable: true });
      await ch.bindQueue("audit", "mppayment", "*.async.charge");
    });

    const plan = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(plan.code).toBe(0);
    expect(plan.stdout).toMatch(
      /cluster async: .*\n {2}! warning: 1 binding from service exchanges that topo does not manage: mppayment -> audit \[\*\.async\.charge\]; the broker routes the tasks it matches there too/,
    );
    expect(plan.stdout).toMatch(/No changes\./);
    const json = JSON.parse((await runCli(["plan", "-f", file, "--json"])).stdout);
    expect(json.clusters.find((c: { name: string }) => c.name === "async").warnings).toEqual([expect.stringContaining("mppayment -> audit [*.async.charge]")]);

    const route = await runCli(["route", "mppayment.async.charge", "-f", file, "--live"]);
    expect(route.code).toBe(0);
    expect(route.stdout).toMatch(
      /live: {8}the broker routes it to audit, mppayment\.async, not as the file says \(mppayment -> audit \[\*\.async\.charge\] is a binding topo does not manage: topo plan lists it and leaves it alone\)/,
    );
    expect(route.stdout).not.toMatch(/shows the drift/);

    // A task the user's binding does not take: the broker agrees with the file.
    const other = await runCli(["route", "mppayment.async.refund", "-f", file, "--live"]);
    expect(other.stdout).toMatch(/live: {8}the broker's bindings agree/);
  });
});
