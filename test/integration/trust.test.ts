// The promises a deploy pipeline relies on, against the real broker: topo never touches what is
// not its prefix's, and never reports one broker while it reads or writes another. Each refusal is
// checked by comparing the broker's state before and after.

import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { apply } from "../../src/index.js";
import { ApplyError } from "../../src/errors.js";
import { managementProxy } from "../helpers/proxy.js";
// @ts-expect-error: a plain ESM module of the benchmark, without type declarations
import { serviceNames } from "../../bench/services.mjs";
import { api, broker, createVhost, deleteVhost, messageCount, publish, ROOT, runCli, scriptEnv, skipWhenUnavailable, startTestBroker, uniqueName, vh, withChannel, writeFile, writeTopology, type TestBroker } from "../helpers/broker.js";

const vhosts: string[] = [];
afterEach(async () => {
  await Promise.all(vhosts.splice(0).map(deleteVhost));
});

function pair(): { sync: string; async: string } {
  const p = { sync: uniqueName("tsync"), async: uniqueName("tasync") };
  vhosts.push(p.sync, p.async);
  return p;
}

/** Everything in a vhost that a plan could change, for before/after comparisons. */
async function state(v: string): Promise<unknown> {
  const get = async (what: string) => {
    const r = await api("GET", `/api/${what}/${vh(v)}`);
    if (r.status === 404) return "absent";
    return (r.body as Record<string, unknown>[])
      .map((o) => JSON.stringify([o.name, o.source, o.destination, o.routing_key, o.pattern, o.definition, o.arguments, o.type]))
      .sort();
  };
  return { exchanges: await get("exchanges"), queues: await get("queues"), bindings: await get("bindings"), policies: await get("policies") };
}

describe("the prefix is a namespace", () => {
  it("an empty prefix is refused before any broker is read, and the user's objects stay", async () => {
    const { sync, async } = pair();
    await createVhost(sync);
    await withChannel(sync, async (ch) => {
      await ch.assertExchange("billing", "topic", { durable: true });
      await ch.assertQueue("billing.jobs", { durable: true });
      await ch.bindQueue("billing.jobs", "billing", "billing.#");
    });
    const before = await state(sync);
    const file = writeTopology({ sync, async, prefix: "", services: [] });
    for (const cmd of [["validate"], ["plan"], ["apply", "--allow-destructive", "--allow-data-loss"]]) {
      const r = await runCli([...cmd, "-f", file]);
      expect(r.code, `${cmd[0]}: ${r.stderr}`).toBe(1);
      expect(r.stderr).toMatch(/prefix: an empty prefix is no namespace/);
      expect(r.stderr).toMatch(/nothing was sent to any broker/);
    }
    const json = await runCli(["validate", "-f", file, "--json"]);
    expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: "config_invalid", problems: [{ line: expect.any(Number), col: expect.any(Number), message: expect.stringMatching(/empty prefix/) }] } });
    expect(await state(sync)).toEqual(before);
    const imp = await runCli(["import", "--prefix", "", "--url", `sync=amqp://guest:guest@127.0.0.1:5672/${sync}`, "-o", join(writeFile("x", ""), "..", "imported.yaml")]);
    expect(imp.code).toBe(1);
    expect(imp.stderr).toMatch(/--prefix "" cannot be topo's namespace/);
  });

  it("an exchange named like a service but not made like one is never deleted, nor its bindings", async () => {
    const { sync, async } = pair();
    const file = writeTopology({ sync, async, prefix: "a", services: ["alogin"] });
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    await withChannel(async, async (ch) => {
      await ch.assertExchange("accounting", "fanout", { durable: true });
      await ch.bindQueue("alogin.async", "accounting", "");
    });
    const before = await state(async);
    const plan = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(plan.code, plan.stdout).toBe(0);
    expect(plan.stdout).toMatch(/left alone: exchange accounting \(fanout\) is named like a service of prefix "a" but is not one topo makes/);
    expect((await runCli(["apply", "-f", file, "--allow-destructive", "--allow-data-loss"])).code).toBe(0);
    expect(await state(async)).toEqual(before);
  });

  it("a renamed prefix leaves the old queues, their messages and their mirroring alone, and plan says so", async () => {
    const { sync, async } = pair();
    const oldFile = writeTopology({ sync, async, prefix: "mp", services: ["mplogin"] });
    expect((await runCli(["apply", "-f", oldFile])).code).toBe(0);
    await publish(async, "mplogin", "mplogin.async.register", ["a", "b", "c"]);
    const oldPolicy = (await api("GET", `/api/policies/${vh(sync)}/topo.mp.mirror.sync`)).body;
    expect(oldPolicy.pattern).toBe("^(?:topo\\.hold\\.)?mp[a-z_]+\\.sync$");

    const newFile = writeTopology({ sync, async, prefix: "sh", services: ["shlogin"] });
    const plan = await runCli(["plan", "-f", newFile]);
    expect(plan.code).toBe(0);
    expect(plan.stdout).not.toMatch(/- delete|~ update/);
    expect(plan.stdout).toContain("+ create policy topo.sh.mirror.sync");
    // Both vhosts name the old prefix: its apply mark (and, on sync, its mirror policy).
    expect(plan.stdout).toMatch(/left alone: 1 service of prefix "mp" \(mplogin; its queue holds 3 messages\); topo changes only prefix "sh"'s objects/);
    expect(plan.stdout).toMatch(/left alone: 1 service of prefix "mp" \(mplogin; its queue holds 0 messages\); topo changes only prefix "sh"'s objects/);
    expect(plan.stdout).toMatch(/if the prefix was renamed, they are the old ones/);

    expect((await runCli(["apply", "-f", newFile])).code).toBe(0);
    expect(await messageCount(async, "mplogin.async")).toBe(3);
    expect((await api("GET", `/api/policies/${vh(sync)}/topo.mp.mirror.sync`)).body.pattern).toBe("^(?:topo\\.hold\\.)?mp[a-z_]+\\.sync$");
    expect((await api("GET", `/api/policies/${vh(sync)}/topo.sh.mirror.sync`)).body.pattern).toBe("^(?:topo\\.hold\\.)?sh[a-z_]+\\.sync$");
    // Both files now hold their own namespace on the same vhosts, and neither wants a change.
    const again = await runCli(["plan", "-f", oldFile, "--detailed-exitcode"]);
    expect(again.code, again.stdout).toBe(0);
    expect(again.stdout).toMatch(/left alone: 1 service of prefix "sh" \(shlogin; its queue holds 0 messages\)/);
    expect((await runCli(["plan", "-f", newFile, "--detailed-exitcode"])).code).toBe(0);
  });

  it("a vhost set up by an older topo (topo.mirror.sync) moves to the prefixed policy without a gap in mirroring", async () => {
    const { sync, async } = pair();
    const file = writeTopology({ sync, async, services: ["mplogin"] });
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    // What an older topo made: the same policy under the unprefixed name.
    await api("DELETE", `/api/policies/${vh(sync)}/topo.mp.mirror.sync`);
    await api("PUT", `/api/policies/${vh(sync)}/topo.mirror.sync`, { pattern: "^mp[a-z_]+\\.sync$", definition: { "ha-mode": "all", "ha-sync-mode": "automatic" }, "apply-to": "queues", priority: 0 });
    const plan = await runCli(["plan", "-f", file]);
    expect(plan.stdout).toContain("+ create policy topo.mp.mirror.sync");
    expect(plan.stdout).toContain("- delete policy topo.mirror.sync");
    expect((await runCli(["apply", "-f", file, "--allow-destructive"])).code).toBe(0);
    const names = ((await api("GET", `/api/policies/${vh(sync)}`)).body as { name: string }[]).map((p) => p.name);
    expect(names).toEqual(["topo.mp.mirror.sync"]);
  });
});

describe("what goes with a delete", () => {
  it("a binding between a service that stays and one the plan deletes is named under the delete only, never as one topo leaves alone", async () => {
    // Plan said of mpwallet -> mplogin that topo "neither changes nor deletes it (delete it by
    // hand)", and called mplogin an exchange topo does not manage, above the delete of mplogin
    // that removes it.
    const { sync, async } = pair();
    const first = writeTopology({ sync, async, services: ["mplogin", "mpwallet"] });
    expect((await runCli(["apply", "-f", first])).code).toBe(0);
    await withChannel(async, async (ch) => {
      await ch.bindExchange("mpwallet", "mplogin", "fwd.#");
      await ch.bindExchange("mplogin", "mpwallet", "back.#");
      await ch.assertQueue("audit", { durable: true });
      await ch.bindQueue("audit", "mpwallet", "#");
    });
    const file = writeTopology({ sync, async, services: ["mpwallet"] });
    const plan = await runCli(["plan", "-f", file]);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toContain("- delete exchange mplogin\n      ! also removes 2 bindings topo does not manage: mplogin -> exchange mpwallet [fwd.#], mpwallet -> exchange mplogin [back.#]");
    expect(plan.stdout.split("\n").filter((l) => l.includes("warning:") && l.includes("mplogin"))).toEqual([]);
    // The binding that outlasts the plan is still named as topo's to leave alone.
    expect(plan.stdout).toContain("! warning: 1 binding from service exchanges that topo does not manage: mpwallet -> audit [#]");
    const applied = await runCli(["apply", "-f", file, "--allow-destructive", "--allow-unmanaged-deletes"]);
    expect(applied.code, applied.stderr).toBe(0);
    const e2e = ((await api("GET", `/api/bindings/${vh(async)}`)).body as { destination_type: string }[]).filter((b) => b.destination_type === "exchange");
    expect(e2e).toEqual([]);
  });

  it("plan names the bindings topo does not manage that a delete takes along, and apply refuses it until told", async () => {
    const { sync, async } = pair();
    const first = writeTopology({ sync, async, services: ["mplogin", "mpwallet"] });
    expect((await runCli(["apply", "-f", first])).code).toBe(0);
    await withChannel(async, async (ch) => {
      await ch.assertQueue("audit", { durable: true });
      await ch.assertExchange("userx", "headers", { durable: true });
      await ch.assertExchange("userx2", "fanout", { durable: true });
      await ch.bindQueue("audit", "mplogin", "#");
      await ch.bindExchange("userx2", "mplogin", "");
      await ch.bindExchange("mplogin", "userx2", "");
      await ch.bindQueue("mplogin.async", "userx", "", { "x-match": "all", team: "x" });
    });
    const before = await state(async);
    const file = writeTopology({ sync, async, services: ["mpwallet"] });

    const plan = await runCli(["plan", "-f", file]);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toContain("- delete exchange mplogin\n      ! also removes 3 bindings topo does not manage: mplogin -> audit [#], mplogin -> exchange userx2 [], userx2 -> exchange mplogin []");
    expect(plan.stdout).toContain(`- delete queue mplogin.async\n      ! also removes 1 binding topo does not manage: userx -> mplogin.async [] {"team":"x","x-match":"all"}`);
    expect((await runCli(["plan", "-f", file, "--format", "markdown"])).stdout).toContain("! also removes 3 bindings topo does not manage: mplogin -> audit [#]");
    const json = JSON.parse((await runCli(["plan", "-f", file, "--json"])).stdout);
    const asyncActions = json.clusters.find((c: { name: string }) => c.name === "async").actions;
    expect(asyncActions.find((x: { name: string }) => x.name === "mplogin.async")).toMatchObject({ op: "delete", unmanaged: [`userx -> mplogin.async [] {"team":"x","x-match":"all"}`] });

    const refused = await runCli(["apply", "-f", file, "--allow-destructive", "--allow-data-loss", "--json"]);
    expect(refused.code).toBe(1);
    expect(JSON.parse(refused.stdout)).toMatchObject({ error: { code: "refused_destructive", message: expect.stringMatching(/refusing to delete 2 objects that take 4 bindings topo does not manage with them/) } });
    expect(await state(async)).toEqual(before);

    // With no flag at all, and a message in a queue to delete: every flag it lacks is named in
    // one run (destructive changes, bindings topo does not manage, the message), not one a run.
    const published = await api("POST", `/api/exchanges/${vh(async)}/amq.default/publish`, { properties: {}, routing_key: "mplogin.async", payload: "m", payload_encoding: "string" });
    expect(published.body).toEqual({ routed: true });
    const none = await runCli(["apply", "-f", file, "--json"]);
    expect(none.code).toBe(1);
    const error = JSON.parse(none.stdout).error;
    expect(error.code).toBe("refused_destructive");
    expect(error.errors.map((x: { code: string }) => x.code)).toEqual(["refused_destructive", "refused_destructive", "refused_data_loss"]);
    expect(none.stderr).toMatch(/refusing to apply \d+ destructive changes without --allow-destructive/);
    expect(none.stderr).toContain("refusing to delete 2 objects that take 4 bindings topo does not manage with them");
    expect(none.stderr).toMatch(/1 queue to delete still holds messages/);
    expect(await state(async)).toEqual(before);
    expect((await api("DELETE", `/api/queues/${vh(async)}/mplogin.async/contents`)).status).toBeLessThan(300);

    // Reviewed and agreed: a saved plan carries them, and applies with the flag.
    const saved = join(writeFile("plan.json", ""), "..", "plan.json");
    expect((await runCli(["plan", "-f", file, "-o", saved])).code).toBe(0);
    const done = await runCli(["apply", saved, "--allow-destructive", "--allow-unmanaged-deletes"]);
    expect(done.code, done.stderr).toBe(0);
    const left = ((await api("GET", `/api/bindings/${vh(async)}`)).body as { source: string }[]).filter((b) => b.source !== "");
    expect(left.map((b) => b.source)).toEqual(["mpwallet"]);
    expect((await runCli(["plan", "-f", file, "--detailed-exitcode"])).code).toBe(0);
  });
});

describe("nested prefixes", () => {
  it("a longer prefix's services are left alone once its apply mark is on the vhost, and the shorter prefix's mirror policy leaves them out", async () => {
    const { sync, async } = pair();
    const mpx = writeTopology({ sync, async, prefix: "mpx", services: ["mpxfoo"] });
    expect((await runCli(["apply", "-f", mpx])).code).toBe(0);
    // The async vhost holds mpx's apply mark and no topo.mpx.* policy.
    expect((await api("GET", `/api/exchanges/${vh(async)}/topo.mpx.generation`)).status).toBe(200);
    expect((await api("GET", `/api/policies/${vh(async)}`)).body).toEqual([]);
    const theirs = { sync: await state(sync), async: await state(async) };

    const mp = writeTopology({ sync, async, prefix: "mp", services: ["mplogin"] });
    const plan = await runCli(["plan", "-f", mp]);
    expect(plan.stdout).not.toMatch(/- delete/);
    expect(plan.stdout.match(/left alone: 1 service of prefix "mpx" \(mpxfoo/g)).toHaveLength(2);
    expect(plan.stdout).toContain("+ create policy topo.mp.mirror.sync (pattern ^(?:topo\\.hold\\.)?mp(?!x)[a-z_]+\\.sync$");
    const applied = await runCli(["apply", "-f", mp, "--allow-destructive", "--allow-data-loss"]);
    expect(applied.code, applied.stderr).toBe(0);

    // mpx's objects are as they were, and only mpx's policy applies to its queue.
    const ofMpx = (s: unknown) => JSON.stringify(s).match(/mpx[a-z_.]*/g)?.sort();
    expect(ofMpx(await state(sync))).toEqual(ofMpx(theirs.sync));
    expect(ofMpx(await state(async))).toEqual(ofMpx(theirs.async));
    await expect.poll(async () => (await api("GET", `/api/queues/${vh(sync)}/mplogin.sync`)).body.policy, { timeout: 15000 }).toBe("topo.mp.mirror.sync");
    expect((await api("GET", `/api/queues/${vh(sync)}/mpxfoo.sync`)).body.policy).toBe("topo.mpx.mirror.sync");
    expect((await runCli(["plan", "-f", mp, "--detailed-exitcode"])).code).toBe(0);
    expect((await runCli(["plan", "-f", mpx, "--detailed-exitcode"])).code).toBe(0);
  });
});

describe("a longer prefix's services made without an apply that wrote", () => {
  it("get its apply mark: listed by plan and made by apply where workers made them, carried by export definitions; the shorter prefix then leaves them alone", async () => {
    const { sync, async } = pair();
    const mpx = writeTopology({ sync, async, prefix: "mpx", services: [{ name: "mpxfoo", sync: false }, { name: "mpxbar", sync: false }] });
    await createVhost(sync);
    await createVhost(async);
    // mpxfoo as its workers declare it (kombu), adopted by the file.
    await withChannel(async, async (ch) => {
      await ch.assertExchange("mpxfoo", "topic", { durable: true });
      await ch.assertQueue("mpxfoo.async", { durable: true });
      await ch.bindQueue("mpxfoo.async", "mpxfoo", "mpxfoo.async.#");
    });
    // mpxbar loaded from topo's own definitions export, as a pipeline that imports definitions does.
    const exported = await runCli(["export", "definitions", "-f", mpx, "--cluster", "async"]);
    expect(exported.code, exported.stderr).toBe(0);
    const defs = JSON.parse(exported.stdout);
    expect(defs.exchanges.map((e: { name: string }) => e.name)).toContain("topo.mpx.generation");
    const only = (n: string) => (o: { name?: string; source?: string; destination?: string }) => (o.name ?? o.source)?.startsWith(n) || o.destination?.startsWith(n);
    expect((await api("POST", `/api/definitions/${vh(async)}`, { exchanges: defs.exchanges.filter((e: { name: string }) => e.name === "mpxbar"), queues: defs.queues.filter(only("mpxbar")), bindings: defs.bindings.filter(only("mpxbar")) })).status).toBeLessThan(300);

    // Without the mark, mpx's plan lists it: the vhost holds mpx's objects unmarked.
    const plan = await runCli(["plan", "-f", mpx, "--detailed-exitcode"]);
    expect(plan.code, plan.stdout).toBe(2);
    expect(plan.stdout).toContain("+ create exchange topo.mpx.generation (fanout, durable, internal)");
    expect(plan.stdout).toContain("the apply mark of prefix mpx: this vhost holds the file's objects without it, so a file of a shorter prefix would take them for its own");
    expect(plan.stdout).toMatch(/Plan: 1 to create, 0 to update/);
    const applied = await runCli(["apply", "-f", mpx]);
    expect(applied.code, applied.stderr).toBe(0);
    expect((await api("GET", `/api/exchanges/${vh(async)}/topo.mpx.generation`)).status).toBe(200);
    expect((await runCli(["plan", "-f", mpx, "--detailed-exitcode"])).code).toBe(0);

    // The mp file now leaves both services alone, even with --allow-destructive.
    const before = await state(async);
    const mp = writeTopology({ sync, async, prefix: "mp", services: [{ name: "mplogin", sync: false }] });
    const mpPlan = await runCli(["plan", "-f", mp]);
    expect(mpPlan.stdout).not.toMatch(/- delete/);
    expect(mpPlan.stdout).toMatch(/left alone: 2 services of prefix "mpx" \(mpxbar, mpxfoo/);
    expect((await runCli(["apply", "-f", mp, "--allow-destructive", "--allow-data-loss"])).code).toBe(0);
    const ofMpx = (st: unknown) => JSON.stringify(st).match(/mpx[a-z_.]*/g)?.sort();
    expect(ofMpx(await state(async))).toEqual(ofMpx(before));
  });
});

describe("a longer prefix's apply beside the shorter one's", () => {
  it("the shorter prefix's apply, whose mirror policy the longer prefix's new mark changes during its read back, succeeds and says so", async () => {
    const { sync, async } = pair();
    // Between the mp apply's write of its policy and its read back, prefix mpx starts using the
    // sync vhost: its mark appears, as when an mpx apply runs beside this one.
    let written = false;
    let marked = false;
    const proxy = await managementProxy({
      delayMs: (path) => {
        if (path.startsWith(`/api/policies/${vh(sync)}/topo.mp.mirror.sync`)) written = true;
        else if (written && !marked && path.startsWith(`/api/exchanges/${vh(sync)}?`)) {
          marked = true;
          void withChannel(sync, (ch) => ch.assertExchange("topo.mpx.generation", "fanout", { durable: true, internal: true }));
          return 1000;
        }
        return 0;
      },
    });
    try {
      const mp = writeTopology({ sync, async, prefix: "mp", services: [{ name: "mplogin", async: false }], clusterExtra: { sync: { management: proxy.url } } });
      const r = await runCli(["apply", "-f", mp]);
      expect(marked).toBe(true);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain("cluster sync: warning: prefix mpx began to use the vhost while this apply ran, so topo's mirror policy of prefix mp should now leave its queues out: topo.mp.mirror.sync; the next topo plan shows the update");
      const next = await runCli(["plan", "-f", mp, "--detailed-exitcode"]);
      expect(next.code).toBe(2);
      expect(next.stdout).toContain("~ update policy topo.mp.mirror.sync");
    } finally {
      proxy.close();
    }
  });
});

describe("a nested prefix applied after the shorter one", () => {
  it("a queue of the longer prefix that the file does not mirror, mirrored by the shorter prefix's older policy, is degraded until that prefix applies again", async () => {
    const { sync, async } = pair();
    const mp = writeTopology({ sync, async, prefix: "mp", services: ["mplogin"] });
    expect((await runCli(["apply", "-f", mp])).code).toBe(0);
    const mpx = writeTopology({ sync, async, prefix: "mpx", services: [{ name: "mpxfoo", sync: { mirrored: false } }] });
    expect((await runCli(["apply", "-f", mpx])).code).toBe(0);
    // mp's policy was written before mpx was on the vhost: its pattern covers mpxfoo.sync.
    await expect.poll(async () => (await api("GET", `/api/queues/${vh(sync)}/mpxfoo.sync`)).body.policy, { timeout: 15000 }).toBe("topo.mp.mirror.sync");
    const drift = await runCli(["plan", "-f", mpx, "--detailed-exitcode"]);
    expect(drift.code, drift.stdout).toBe(2);
    expect(drift.stdout).toContain('1 queue the file does not mirror (mirrored: false) is mirrored by policy "topo.mp.mirror.sync" (topo\'s for another prefix');
    // mp's next apply narrows its pattern; then mpx's plan has nothing to say.
    expect((await runCli(["apply", "-f", mp])).code).toBe(0);
    await expect.poll(async () => (await api("GET", `/api/queues/${vh(sync)}/mpxfoo.sync`)).body.policy ?? null, { timeout: 15000 }).toBe(null);
    const clean = await runCli(["plan", "-f", mpx, "--detailed-exitcode"]);
    expect(clean.code, clean.stdout).toBe(0);
  });
});

describe("nested prefixes, applied at the same time", () => {
  // With 501 marks of other prefixes (topo.a*.generation, listed before topo.mpx's), the mark
  // that tore the read is on the second page of the broker's filtered listing: apply read the
  // first page only, said "more of topo's names than one page", read again three times and then
  // went on unchecked.
  it.each([0, 501])("an apply whose read another prefix's apply tore (its queues listed, its mark not yet) reads again, and deletes nothing of that prefix (%i other marks)", async (others) => {
    const { sync, async } = pair();
    const mpWith = writeTopology({ sync, async, prefix: "mp", services: [{ name: "mplogin", sync: false }, { name: "mpold", sync: false }] });
    expect((await runCli(["apply", "-f", mpWith])).code).toBe(0);
    await withChannel(async, async (ch) => {
      for (const name of serviceNames(others)) await ch.assertExchange(`topo.a${name.replace(/^mpsvc_/, "")}.generation`, "fanout", { durable: false, internal: true });
    });
    // mp's next apply deletes mpold; its queue and binding listings of the async vhost are slow
    // (a large vhost), so its exchange listing is taken before mpx's apply and the rest after.
    const slow = await managementProxy({ delayMs: (path) => (/^\/api\/(queues|bindings)\/[^/?]+\?/.test(path) && path.includes(encodeURIComponent(async)) ? 3000 : 0) });
    try {
      const mp = writeTopology({ sync, async, prefix: "mp", services: [{ name: "mplogin", sync: false }], clusterExtra: { sync: { management: slow.url }, async: { management: slow.url } } });
      const running = runCli(["apply", "-f", mp, "--allow-destructive"]);
      await new Promise((r) => setTimeout(r, 1000));
      const mpx = writeTopology({ sync, async, prefix: "mpx", services: [{ name: "mpxfoo", sync: false }] });
      expect((await runCli(["apply", "-f", mpx])).code).toBe(0);
      const done = await running;
      expect(done.code, done.stderr).toBe(0);
      expect(done.stderr).toContain('prefix mpx marked the vhost while apply read it: reading again');
      expect(done.stderr.match(/reading again/g)).toHaveLength(1);
      expect((await api("GET", `/api/queues/${vh(async)}/mpxfoo.async`)).status).toBe(200);
      expect((await api("GET", `/api/queues/${vh(async)}/mpold.async`)).status).toBe(404);
      expect((await runCli(["plan", "-f", mpx, "--detailed-exitcode"])).code).toBe(0);
    } finally {
      slow.close();
    }
  });
});

describe("other prefixes' applies that never stop", () => {
  it("an apply whose every read finds a new prefix's mark gives up before writing anything (lock_timeout)", async () => {
    const { sync, async } = pair();
    const mpWith = writeTopology({ sync, async, prefix: "mp", services: [{ name: "mplogin", sync: false }, { name: "mpold", sync: false }] });
    expect((await runCli(["apply", "-f", mpWith])).code).toBe(0);
    const before = await state(async);
    // Each listing of the async vhost's apply marks shows a mark no read saw: another file's apply
    // after another.
    let k = 0;
    const churn = await managementProxy({
      answer: (req, res) => {
        if (!req.url?.includes("use_regex=true") || !req.url.includes(encodeURIComponent(async)) || !req.url.startsWith("/api/exchanges/")) return false;
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ items: [{ name: `topo.${"x".repeat(++k)}.generation` }], filtered_count: 1, item_count: 1, page: 1, page_count: 1, page_size: 500, total_count: 1 }));
        return true;
      },
    });
    try {
      const mp = writeTopology({ sync, async, prefix: "mp", services: [{ name: "mplogin", sync: false }], clusterExtra: { async: { management: churn.url } } });
      const r = await runCli(["apply", "-f", mp, "--allow-destructive", "--cluster", "async", "--json"]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr.match(/marked the vhost while apply read it: reading again/g)).toHaveLength(3);
      const error = JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('{"error"'))).error;
      expect(error).toMatchObject({ code: "lock_timeout", cluster: "async" });
      expect(error.message).toContain("prefix xxxx marked the vhost while apply read it, at each of 4 reads");
      expect(error.message).toContain("nothing was written");
      expect(await state(async)).toEqual(before);
    } finally {
      churn.close();
    }
  });
});

describe("two files of one prefix on one vhost", () => {
  // The prefix is the namespace: the second file's plan deleted the first's services as its own
  // drift, with no word of whose they were (stop 48's F). The apply mark now names the file of the
  // last apply that wrote, and a plan that deletes services says when that is another file.
  it("a plan that deletes services says the last apply here was of another file", async () => {
    const { sync, async } = pair();
    const doc = (services: string[]) => JSON.parse(readFileSync(writeTopology({ sync, async, services }), "utf8"));
    const first = writeFile("billing.yaml", JSON.stringify(doc(["mplogin", "mpwallet"])));
    const second = writeFile("edge.yaml", JSON.stringify(doc(["mpedge"])));
    expect((await runCli(["apply", "-f", first])).code).toBe(0);
    expect((await api("GET", `/api/exchanges/${vh(async)}/topo.mp.generation`)).body.arguments["x-topo-file"]).toBe("billing.yaml");

    const plan = await runCli(["plan", "-f", second]);
    expect(plan.stdout).toMatch(/- delete exchange mplogin/);
    expect(plan.stdout).toMatch(/! warning: this plan deletes services mplogin, mpwallet, and the last apply that wrote prefix mp's objects on this vhost was of file "billing\.yaml" \([^)]*pid \d+, \d{4}-\d\d-\d\dT[^)]*\), not "edge\.yaml": if that is another file with the same prefix, these are its services/);
    const json = JSON.parse((await runCli(["plan", "-f", second, "--json"])).stdout);
    expect(json.clusters.flatMap((c: { warnings: string[] }) => c.warnings).filter((w: string) => w.includes('of file "billing.yaml"'))).toHaveLength(2);

    // The same file, one service fewer: no such warning.
    const fewer = writeFile("billing.yaml", JSON.stringify(doc(["mplogin"])));
    const own = await runCli(["plan", "-f", fewer]);
    expect(own.stdout).toMatch(/- delete exchange mpwallet/);
    expect(own.stdout).not.toMatch(/the last apply that wrote prefix/);
  });
});

describe("degraded lines of a plan that changes topo's policies", () => {
  // Judged with topo's policies as the file has them: after the plan. With topo's mirror policy
  // raised to priority 10 by hand, the queue was mirrored and held 5 messages, and plan said "1
  // queue is not mirrored" and "the queue keeps at most 2 messages" as if of now (advn).
  it("say they are of the state once the plan is applied, and only then", async () => {
    const { sync, async } = pair();
    const file = writeTopology({ sync, async, services: ["mplogin"] });
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    expect((await api("PUT", `/api/policies/${vh(sync)}/userp`, { pattern: "^mplogin\\.sync$", definition: { "max-length": 2 }, priority: 5, "apply-to": "queues" })).status).toBe(201);
    const now = await runCli(["plan", "-f", file, "--cluster", "sync"]);
    expect(now.stdout).toContain("! degraded: 1 queue is not mirrored because another policy applies to it: mplogin.sync");
    expect(now.stdout).not.toContain("once this plan is applied");

    const mirror = (await api("GET", `/api/policies/${vh(sync)}/topo.mp.mirror.sync`)).body;
    expect((await api("PUT", `/api/policies/${vh(sync)}/topo.mp.mirror.sync`, { pattern: mirror.pattern, definition: mirror.definition, "apply-to": mirror["apply-to"], priority: 10 })).status).toBe(204);
    const later = await runCli(["plan", "-f", file, "--cluster", "sync"]);
    expect(later.stdout).toContain("~ update policy topo.mp.mirror.sync");
    expect(later.stdout).toContain("! degraded: once this plan is applied: 1 queue is not mirrored because another policy applies to it: mplogin.sync");
    expect(later.stdout).toMatch(/! degraded: once this plan is applied: policy "userp" sets max-length 2/);
    expect(later.stdout).not.toMatch(/! degraded: (?!once this plan is applied)/);
  });
});

describe("the broker named is the broker read", () => {
  it("refuses a management API whose cluster has the AMQP side's cluster name but whose nodes run another RabbitMQ version: no \"No changes.\" of a broker it never read", async () => {
    // Two brokers share a cluster name by default (rabbit@<host name>): a management API in front
    // of another broker of this name, whose nodes run 4.0.5, beside the AMQP URL of this 3.10 one.
    // Plan, the drift check and a no-op apply said "No changes." of the other broker's vhost.
    const { sync, async } = pair();
    const file = writeTopology({ sync, async, services: ["mplogin"] });
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    const other = await managementProxy({
      change: (path, body) =>
        path.startsWith("/api/nodes") && Array.isArray(body)
          ? body.map((n: { applications?: { name: string; version: string }[] }) => ({ ...n, applications: n.applications?.map((a) => (a.name === "rabbit" ? { ...a, version: "4.0.5" } : a)) }))
          : body,
    });
    try {
      const elsewhere = writeTopology({ sync, async, services: ["mplogin"], clusterExtra: { sync: { management: other.url }, async: { management: other.url } } });
      const before = await state(async);
      for (const cmd of [["plan", "--detailed-exitcode"], ["apply"], ["route", "mplogin.sync.x", "--live"]]) {
        const r = await runCli([...cmd, "-f", elsewhere]);
        expect(r.code, `${cmd.join(" ")}: ${r.stdout}${r.stderr}`).toBe(1);
        expect(r.stdout).not.toMatch(/No changes/);
        expect(r.stderr).toMatch(/the AMQP URL and the management API reach different brokers \(one cluster name, but no running node of the management API's cluster runs the AMQP side's version, 3\.10\.\d+\)/);
        expect(r.stderr).toMatch(/is RabbitMQ 4\.0\.5, cluster/);
        expect(r.stderr).toMatch(/rabbitmqctl set_cluster_name/);
      }
      expect(JSON.parse((await runCli(["plan", "-f", elsewhere, "--json"])).stdout)).toMatchObject({ error: { code: "endpoint_mismatch" } });
      expect(await state(async)).toEqual(before);
    } finally {
      other.close();
    }
  });

  it("refuses two clusters that are one vhost under two host names, before writing anything", async () => {
    const v = uniqueName("onevhost");
    vhosts.push(v);
    const file = writeFile(
      "topology.yaml",
      JSON.stringify({
        version: 1,
        clusters: {
          sync: { url: `amqp://guest:guest@127.0.0.1:5672/${v}`, management: "http://127.0.0.1:15672" },
          async: { url: `amqp://guest:guest@localhost/${v}`, management: "http://localhost:15672" },
        },
        services: ["mplogin"],
      }),
    );
    for (const cmd of [["plan"], ["apply", "--allow-destructive"]]) {
      const r = await runCli([...cmd, "-f", file]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`clusters sync and async are the same vhost "${v}" of one broker`));
      expect(r.stderr).toMatch(/nothing was changed/);
    }
    const json = await runCli(["plan", "-f", file, "--json"]);
    expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: "endpoint_mismatch", message: expect.stringMatching(/same vhost/) } });
    expect((await api("GET", `/api/vhosts/${vh(v)}`)).status).toBe(404);
  });

  it("checks who answers for a read-only plan user and a vhost that does not exist yet", async () => {
    const { sync, async } = pair();
    const user = uniqueName("reader");
    await api("PUT", `/api/users/${user}`, { password: "read-only-pw", tags: "monitoring" });
    try {
      const file = writeTopology({ sync, async, services: ["mplogin"], credentials: { user, password: "read-only-pw" } });
      const r = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stdout).toMatch(/\+ create vhost/);
    } finally {
      await api("DELETE", `/api/users/${user}`);
    }
  });

  it("fails at once, in plan, when nothing speaks AMQP at the url", async () => {
    const { sync, async } = pair();
    const file = writeTopology({ sync, async, services: ["mplogin"], clusterExtra: {} });
    const text = JSON.parse(await import("node:fs").then((fs) => fs.readFileSync(file, "utf8")));
    text.clusters.async.url = text.clusters.async.url.replace(/:5672\//, ":5999/");
    const bad = writeFile("topology.yaml", JSON.stringify(text));
    const started = Date.now();
    const r = await runCli(["plan", "-f", bad, "--detailed-exitcode"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cluster async: connect amqp:\/\/.*:5999\/.* -> .*ECONNREFUSED/);
    expect(r.stderr).toMatch(/nothing accepts AMQP connections at 127\.0\.0\.1:5999/);
    expect(Date.now() - started).toBeLessThan(20_000);
    const json = await runCli(["plan", "-f", bad, "--json"]);
    expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: "broker_unreachable", cluster: "async" } });
    const http = { ...text };
    http.clusters.async.url = text.clusters.async.url.replace(/:5999\//, ":15672/");
    const r2 = await runCli(["plan", "-f", writeFile("topology.yaml", JSON.stringify(http))]);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/cluster async: connect .*:15672\/.* -> not an AMQP broker/);
    expect(r2.stderr).toMatch(/AMQP is 5672/);
  });

  it("says that topo uses no proxy where HTTP_PROXY is set and the management API cannot be reached, and never the proxy's URL", async () => {
    // Behind a proxy only, a right host name failed as "does not resolve; check clusters.sync".
    const { sync, async } = pair();
    const file = writeTopology({ sync, async, services: ["mplogin"], clusterExtra: { sync: { management: "http://rabbit-mgmt.invalid:15672" } } });
    const proxy = "http://proxyuser:Pr0xyPass@127.0.0.1:1";
    const r = await runCli(["plan", "-f", file, "--cluster", "sync"], { HTTP_PROXY: proxy, http_proxy: proxy });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ENOTFOUND/);
    expect(r.stderr).toContain("hint: HTTP_PROXY and http_proxy are set, and topo does not use a proxy: it connects to the management API (and AMQP) directly");
    expect(r.stderr).not.toContain("Pr0xyPass");
    const without = await runCli(["plan", "-f", file, "--cluster", "sync"], { HTTP_PROXY: "", http_proxy: "" });
    expect(without.stderr).not.toMatch(/proxy/);
  });
});

// A second, real broker: RabbitMQ 4.0 from scripts/rabbitmq4.sh (CI starts it), on the ports
// that script reports.
describe.runIf(!process.env.TOPO_SKIP_RABBITMQ4)("a cluster read through another broker's management API", () => {
  const SCRIPT = join(ROOT, "scripts/rabbitmq4.sh");
  let broker: TestBroker | undefined;
  let amqp4 = "";
  let mgmt4 = "";
  beforeAll(async () => {
    broker = await startTestBroker(SCRIPT, 600_000);
    if (broker.unavailable) return;
    const env = scriptEnv(SCRIPT);
    amqp4 = new URL(env.RABBITMQ4_URL as string).host;
    mgmt4 = new URL(env.RABBITMQ4_MANAGEMENT_URL as string).origin;
  }, 600_000);
  beforeEach(skipWhenUnavailable(() => broker));

  it("is refused with both identities named, and neither broker is written", async () => {
    const { sync, async } = pair();
    const file = writeFile(
      "topology.yaml",
      JSON.stringify({
        version: 1,
        clusters: {
          sync: { url: `amqp://guest:guest@127.0.0.1:5672/${sync}` },
          // No management key: the default is http://127.0.0.1:15672, the 3.10 broker's.
          async: { url: `amqp://guest:guest@${amqp4}/${async}` },
        },
        defaults: { sync: { mirrored: false } },
        services: ["mplogin"],
      }),
    );
    for (const cmd of [["plan", "--detailed-exitcode"], ["apply"]]) {
      const r = await runCli([...cmd, "-f", file]);
      expect(r.code).toBe(1);
      expect(r.stdout).not.toMatch(/no changes|No changes/);
      expect(r.stderr).toMatch(/cluster async: the AMQP URL and the management API reach different brokers/);
      expect(r.stderr).toContain(`@${amqp4}/${async} is RabbitMQ 4.0.`);
      expect(r.stderr).toMatch(/http:\/\/127\.0\.0\.1:15672 is RabbitMQ 3\.10\.\d+, cluster "[^"]+"/);
      expect(r.stderr).toMatch(/set clusters\.async\.management/);
    }
    // The commands that only read a cluster check it too: a route or an import of the wrong
    // broker would be as wrong as its plan.
    const route = await runCli(["route", "mplogin.async.register", "-f", file, "--live"]);
    expect(route.code).toBe(1);
    expect(route.stderr).toMatch(/cluster async: the AMQP URL and the management API reach different brokers/);
    const imp = await runCli(["import", "-f", file, "--cluster", "async"]);
    expect(imp.code).toBe(1);
    expect(imp.stderr).toMatch(/cluster async: the AMQP URL and the management API reach different brokers/);
    // Nothing was created, on either broker.
    expect((await api("GET", `/api/vhosts/${vh(sync)}`)).status).toBe(404);
    expect((await api("GET", `/api/vhosts/${vh(async)}`)).status).toBe(404);
    const r4 = await fetch(`${mgmt4}/api/vhosts/${vh(async)}`, { headers: { authorization: `Basic ${Buffer.from("guest:guest").toString("base64")}` } });
    expect(r4.status).toBe(404);
  });
});

/**
 * Delete an object now, from inside apply's trace callback (which apply calls between its writes
 * and its read back): a synchronous request, made by another process.
 */
function deleteNow(path: string): void {
  const b = broker();
  execFileSync(process.execPath, [
    "-e",
    `fetch(${JSON.stringify(`${b.mgmtBase}${path}`)}, { method: "DELETE", headers: { authorization: ${JSON.stringify(`Basic ${Buffer.from(`${b.user}:${b.password}`).toString("base64")}`)} } }).then((r) => process.exit(r.status === 204 ? 0 : 1))`,
  ]);
}

/** apply as a deploy runs it, with what it traced; its error, if it failed. */
async function tracedApply(file: string, during: (m: string) => void, allowDestructive = false): Promise<{ traced: string[]; err: unknown }> {
  const traced: string[] = [];
  const err = await apply({
    file,
    allowDestructive,
    allowDataLoss: false,
    lockTimeoutMs: 30_000,
    log: () => undefined,
    trace: (m) => {
      traced.push(m);
      during(m);
    },
  }).then(
    () => undefined,
    (e: unknown) => e,
  );
  return { traced, err };
}

/** Two new vhosts, and mplogin and mpbilling applied to them. */
async function appliedPair(): Promise<{ sync: string; async: string; file: string }> {
  const { sync, async } = pair();
  const file = writeTopology({ sync, async, services: ["mplogin", "mpbilling"] });
  expect((await runCli(["apply", "-f", file])).code).toBe(0);
  return { sync, async, file };
}

describe("apply reads back what it made", () => {
  it("fails, naming what differs, when the broker does not hold the file's state after the writes", async () => {
    const { sync, async } = pair();
    const file = writeTopology({ sync, async, services: ["mplogin", "mpbilling"] });
    const { traced, err } = await tracedApply(file, (m) => {
      if (/^cluster async: made \d+ changes/.test(m)) deleteNow(`/api/queues/${vh(async)}/mplogin.async`);
    });
    expect(traced.some((m) => m.startsWith("cluster async: made "))).toBe(true);
    // A small apply into a new vhost reads back what it wrote: the read under the lock saw the vhost.
    expect(traced).toContainEqual(expect.stringMatching(/^cluster async: read back what it wrote/));
    expect(err).toBeInstanceOf(ApplyError);
    const message = (err as ApplyError).message;
    expect(message).toMatch(/^cluster async: apply made its changes, but the broker still differs from the file:\n {4}\+ create queue mplogin\.async\b/);
    // The sync cluster is named only to say that all of its changes were made.
    expect(message.split("\n").filter((l) => l.includes("cluster sync"))).toEqual([expect.stringMatching(/^ {2}cluster sync: (\d+) of \1 changes were made before apply stopped$/)]);
    expect((err as ApplyError).hints.join("\n")).toMatch(/run topo plan to see the current state/);
    // The queue is declared again by the next apply, and then the broker matches.
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    expect((await runCli(["plan", "-f", file, "--detailed-exitcode"])).code).toBe(0);
  });

  // A plan that only creates and deletes exchanges, queues and bindings is read back object by
  // object (plan/read-back.ts); these check that nothing it wrote escapes that read.
  it("after a drift repair, a queue it declared and that is gone again is named", async () => {
    const { async, file } = await appliedPair();
    await api("DELETE", `/api/queues/${vh(async)}/mpbilling.async`);
    const { traced, err } = await tracedApply(file, (m) => {
      if (/^cluster async: made \d+ changes/.test(m)) deleteNow(`/api/queues/${vh(async)}/mpbilling.async`);
    });
    expect(traced).toContainEqual(expect.stringMatching(/^cluster async: read back what it wrote \(\d+ requests\)/));
    expect(err).toBeInstanceOf(ApplyError);
    const lines = (err as ApplyError).message.split("\n");
    expect(lines[0]).toBe("cluster async: apply made its changes, but the broker still differs from the file:");
    expect(lines.slice(1).map((l) => l.trim())).toEqual([expect.stringMatching(/^\+ create queue mpbilling\.async\b/), expect.stringMatching(/^\+ create binding mpbilling -> mpbilling\.async \[mpbilling\.async\.#\]/)]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    expect((await runCli(["plan", "-f", file, "--detailed-exitcode"])).code).toBe(0);
  });

  it("a binding it made whose source exchange is gone again is named, exchange and binding", async () => {
    const { sync, file } = await appliedPair();
    await api("DELETE", `/api/bindings/${vh(sync)}/e/mplogin/q/mplogin.sync/${encodeURIComponent("mplogin.sync.#")}`);
    const { traced, err } = await tracedApply(file, (m) => {
      if (/^cluster sync: made \d+ change/.test(m)) deleteNow(`/api/exchanges/${vh(sync)}/mplogin`);
    });
    expect(traced).toContainEqual(expect.stringMatching(/^cluster sync: read back what it wrote/));
    expect(err).toBeInstanceOf(ApplyError);
    const message = (err as ApplyError).message;
    expect(message).toMatch(/^cluster sync: apply made its changes, but the broker still differs from the file:\n/);
    expect(message).toMatch(/\+ create exchange mplogin\b/);
    expect(message).toMatch(/\+ create binding mplogin -> mplogin\.sync \[mplogin\.sync\.#\]/);
  });

  it("a binding it made that is there proves its exchange is: the exchange is read only when its binding is missing", async () => {
    const { sync, file } = await appliedPair();
    const bindingPath = `/api/bindings/${vh(sync)}/e/mplogin/q/mplogin.sync/${encodeURIComponent("mplogin.sync.#")}`;
    await api("DELETE", bindingPath);
    const clean = await tracedApply(file, () => undefined);
    expect(clean.err).toBeUndefined();
    // The pair of ends, and the prefix's apply mark: not the binding's exchange.
    expect(clean.traced).toContainEqual(expect.stringMatching(/^cluster sync: read back what it wrote \(2 requests\) \(\d+ ms\)$/));
    // The same repair, and the exchange deleted behind apply's back: its binding is missing, so the exchange is read too.
    await api("DELETE", bindingPath);
    const { traced, err } = await tracedApply(file, (m) => {
      if (/^cluster sync: made \d+ change/.test(m)) deleteNow(`/api/exchanges/${vh(sync)}/mplogin`);
    });
    expect(traced).toContainEqual(expect.stringMatching(/^cluster sync: read back what it wrote \(3 requests\) \(\d+ ms\)$/));
    expect((err as ApplyError).message).toMatch(/\+ create exchange mplogin\b/);
  });

  it("deleting a service's objects reads back clean: the bindings that went with them are not drift", async () => {
    const { sync, async } = await appliedPair();
    const smaller = writeTopology({ sync, async, services: ["mplogin"] });
    const { traced, err } = await tracedApply(smaller, () => undefined, true);
    expect(err).toBeUndefined();
    expect(traced).toContainEqual(expect.stringMatching(/^cluster sync: read back what it wrote/));
    expect(traced).toContainEqual(expect.stringMatching(/^cluster async: read back what it wrote/));
    expect((await runCli(["plan", "-f", smaller, "--detailed-exitcode"])).code).toBe(0);
    expect((await api("GET", `/api/exchanges/${vh(async)}/mpbilling`)).status).toBe(404);
  });

  it("after writing a policy, the whole cluster is read back", async () => {
    const { sync, async } = pair();
    const file = writeTopology({ sync, async, services: ["mplogin"] });
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    const policies = (await api("GET", `/api/policies/${vh(sync)}`)).body as { name: string }[];
    expect(policies.length).toBeGreaterThan(0);
    for (const p of policies) await api("DELETE", `/api/policies/${vh(sync)}/${encodeURIComponent(p.name)}`);
    const { traced, err } = await tracedApply(file, () => undefined);
    expect(err).toBeUndefined();
    expect(traced).toContainEqual(expect.stringMatching(/^cluster sync: read back the whole cluster \(\d+ ms\)$/));
  });
});
