// Saved plans end to end (issue #11): plan -o in one job, apply PLANFILE in another, and nothing
// but the reviewed plan is ever applied. Each test runs the real CLI against the real broker.

import { spawn } from "node:child_process";
import { chmodSync, linkSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import amqplib from "amqplib";
import { basename, dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
// @ts-expect-error: a plain ESM module of the benchmark, without type declarations
import { serviceNames as benchNames } from "../../bench/services.mjs";
import { writeResealed } from "../helpers/saved.js";
import { amqpUrl, api, CLI, createVhost, getQueue, publish, runCli, suiteUsers, vh, withChannel, writeTopology, testVhosts, type FreshTopology, type TopologyOptions } from "../helpers/broker.js";

const { fresh: freshTopology } = testVhosts();

/** A fresh topology, and where its saved plan goes. */
function fresh(services: unknown[], extra: Partial<TopologyOptions> = {}): FreshTopology & { out: string } {
  const t = freshTopology(services, extra);
  return { ...t, out: join(dirname(t.file), "plan.json") };
}

/** Rewrite the topology file in place with other services (same clusters). */
function rewrite(t: { file: string; sync: string; async: string }, services: unknown[]): void {
  writeFileSync(t.file, readFileSync(writeTopology({ sync: t.sync, async: t.async, services }), "utf8"));
}

/** Everything a vhost holds that apply could change, for before/after comparisons. */
async function snapshot(...vs: string[]): Promise<unknown> {
  const pick = async (what: string, v: string, fields: string[]) => {
    const r = await api("GET", `/api/${what}/${vh(v)}`);
    if (r.status !== 200) return `${what}: ${r.status}`;
    return (r.body as Record<string, unknown>[]).map((o) => Object.fromEntries(fields.map((f) => [f, o[f]]))).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  };
  return Promise.all(
    vs.map(async (v) => ({
      queues: await pick("queues", v, ["name", "durable", "arguments"]),
      exchanges: await pick("exchanges", v, ["name", "type"]),
      bindings: await pick("bindings", v, ["source", "destination", "routing_key"]),
      policies: await pick("policies", v, ["name", "pattern", "definition"]),
    })),
  );
}

/**
 * Apply the saved plan while another apply holds the async cluster's lock, the first in lock order
 * (vhost topo-test-async-* before topo-test-sync-*): apply reads, checks, and waits for it. Once it
 * waits (and `ready` says so), `meanwhile` changes the broker and returns what to check of the
 * apply's exit code after the lock is let go.
 */
async function whileAsyncLocked(
  t: { async: string; sync?: string; out: string },
  meanwhile: (stderr: () => string) => Promise<(code: number) => Promise<void>>,
  ready: () => Promise<boolean> = async () => true,
  locked: "async" | "sync" = "async",
  flags: string[] = [],
): Promise<void> {
  const holder = await amqplib.connect(amqpUrl(locked === "async" ? t.async : (t.sync as string)));
  const child = spawn(process.execPath, [CLI, "apply", t.out, ...flags], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  child.stdout.resume();
  const exited = new Promise<number>((r) => child.on("exit", (code) => r(code ?? -1)));
  try {
    const ch = await holder.createChannel();
    await ch.assertQueue("topo.mp.lock", { exclusive: true, arguments: { "x-topo-holder": "the saved-plan test" } });
    for (let i = 0; i < 200 && !(/waiting for the apply lock/.test(stderr) && (await ready())); i++) await new Promise((r) => setTimeout(r, 100));
    expect(stderr).toMatch(new RegExp(`cluster ${locked}: waiting for the apply lock`));
    const then = await meanwhile(() => stderr);
    await holder.close();
    await then(await exited);
  } finally {
    child.kill();
    await holder.close().catch(() => undefined);
  }
}

describe("topo plan -o, then topo apply PLANFILE", () => {
  it("applies the saved plan, and the broker then matches the file", async () => {
    const t = fresh(["mplogin"]);
    const plan = await runCli(["plan", "-f", t.file, "-o", t.out, "--detailed-exitcode"]);
    expect(plan.code).toBe(2);
    expect(plan.stdout).toMatch(/Plan: 9 to create, 0 to update, 0 to replace, 0 to delete\./);
    expect(plan.stderr).toContain(`wrote ${t.out}`);
    const saved = JSON.parse(readFileSync(t.out, "utf8"));
    expect(saved).toMatchObject({ format: "topo-saved-plan", formatVersion: 4, file: t.file, fileDigest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) });
    expect(saved.clusters.map((c: any) => c.cluster)).toEqual(["sync", "async"]);
    // What each cluster's plan was computed from: the vhost is not there yet.
    for (const c of saved.clusters) expect(c.state).toEqual({ vhostExists: false, resources: [], operatorPolicies: [] });

    const r = await runCli(["apply", t.out]);
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Apply complete: 9 changes made/);
    expect(await getQueue(t.async, "mplogin.async")).toMatchObject({ durable: true });
    expect((await runCli(["plan", "-f", t.file, "--detailed-exitcode"])).code).toBe(0);
  });

  it("refuses -o naming the topology file itself, by any path, before reading a broker: the plan would replace the file it was made from", async () => {
    const t = fresh(["mplogin"]);
    const text = readFileSync(t.file, "utf8");
    const dir = dirname(t.file);
    linkSync(t.file, join(dir, "hard-link.yaml"));
    for (const out of [t.file, join(dir, "..", basename(dir), "topology.yaml"), join(dir, "hard-link.yaml")]) {
      const r = await runCli(["plan", "-f", t.file, "-o", out, "--json", "--detailed-exitcode"]);
      expect(r.code).toBe(1);
      const e = JSON.parse(r.stdout).error;
      expect(e.code).toBe("usage");
      expect(e.message).toBe(`-o ${out} is the topology file ${t.file}: the saved plan would replace it`);
      expect(readFileSync(t.file, "utf8")).toBe(text);
    }
    expect((await api("GET", `/api/vhosts/${vh(t.sync)}`)).status).toBe(404);
  });

  it("a plan whose topology file is not where it was is refused before any write, saying where apply looked and what to do", async () => {
    const t = fresh(["mplogin"]);
    expect((await runCli(["plan", "-f", t.file, "-o", t.out])).code).toBe(0);
    renameSync(t.file, `${t.file}.moved`);
    const r = await runCli(["apply", t.out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`cannot read ${t.file}: no such file: the saved plan ${t.out} was made from it`);
    expect(r.stderr).toMatch(/nothing was written/);
    expect(r.stderr).toMatch(/hint: run topo apply .* from the directory topo plan ran in, or run topo plan -f FILE -o .* again and apply that/);
    expect((await api("GET", `/api/vhosts/${vh(t.sync)}`)).status).toBe(404);
  });

  it("a plan another apply carried out meanwhile is refused with 20 differences per cluster listed and the rest counted", async () => {
    const t = fresh((benchNames as (n: number) => string[])(30));
    expect((await runCli(["plan", "-f", t.file, "-o", t.out])).code).toBe(0);
    expect((await runCli(["apply", "-f", t.file])).code).toBe(0);
    const r = await runCli(["apply", t.out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/the saved plan is stale; run topo plan again/);
    // 185 differences: each cluster's objects changed (sync's first, the cause named before its
    // effect), and every action (sync: its vhost, the mirror policy and 90 objects; async: its
    // vhost and 90 objects) is no longer needed.
    expect(r.stderr).toMatch(/^  cluster sync: the broker's objects changed since the plan was made \(92 objects\):\n(    .*: created since the plan.*\n){10}    \.\.\. and 82 more\n  cluster sync: no longer needed: /m);
    expect(r.stderr.split("\n").filter((l) => /^  cluster \w+: no longer needed: /.test(l))).toHaveLength(19);
    expect(r.stderr).toMatch(/^  \.\.\. and 165 more differences \(topo plan shows the plan as it is now\)$/m);
  });

  it("refuses with stale_plan when the broker changed since the plan, names what changed, and writes nothing", async () => {
    const t = fresh(["mplogin"]);
    expect((await runCli(["apply", "-f", t.file])).code).toBe(0);
    rewrite(t, ["mplogin", "mpwallet"]);
    expect((await runCli(["plan", "-f", t.file, "-o", t.out])).code).toBe(0);
    // Someone deletes a queue by hand between the review and the apply.
    expect((await api("DELETE", `/api/queues/${vh(t.async)}/mplogin.async`)).status).toBe(204);
    const before = await snapshot(t.sync, t.async);

    const r = await runCli(["apply", t.out, "--json"]);
    expect(r.code).toBe(1);
    const e = JSON.parse(r.stdout).error;
    expect(e.code).toBe("stale_plan");
    expect(e.message).toMatch(/the saved plan is stale; run topo plan again/);
    expect(e.message).toContain("cluster async: not in the plan: create queue mplogin.async");
    expect(e.message).toContain("cluster async: the broker's objects changed since the plan was made");
    // Which object, and how: the cause, not only its effect on the plan.
    expect(e.message).toContain("    queue mplogin.async: deleted since the plan");
    expect(e.hints).toEqual([`run topo plan -f ${t.file} -o FILE again, review it, and apply that`]);
    expect(e.message).not.toContain("cluster sync");
    expect(e.message).toMatch(/nothing was written to any cluster/);
    expect(r.stderr).toMatch(/Error: the saved plan is stale/);
    // Not even the unchanged cluster sync got mpwallet.
    expect(await snapshot(t.sync, t.async)).toEqual(before);
    expect(await getQueue(t.sync, "mpwallet.sync")).toBeUndefined();
  });

  it("refuses when a queue appears in topo's namespace since the plan, though the plan's own actions still hold", async () => {
    const t = fresh(["mplogin"]);
    expect((await runCli(["apply", "-f", t.file])).code).toBe(0);
    rewrite(t, ["mplogin", "mpwallet"]);
    expect((await runCli(["plan", "-f", t.file, "-o", t.out])).code).toBe(0);
    expect((await api("PUT", `/api/queues/${vh(t.async)}/mpstray.async`, { durable: true })).status).toBe(201);
    const before = await snapshot(t.sync, t.async);
    const r = await runCli(["apply", t.out, "--allow-destructive"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("cluster async: not in the plan: delete queue mpstray.async");
    expect(await snapshot(t.sync, t.async)).toEqual(before);
  });

  it("refuses when the fresh plan warns of what the reviewer never saw: a dead-letter exchange gone, a service another prefix now claims", async () => {
    const t = fresh([{ name: "mpdead", sync: false, async: { arguments: { "x-dead-letter-exchange": "dlx-of-mine" } } }]);
    await createVhost(t.async);
    expect((await api("PUT", `/api/exchanges/${vh(t.async)}/dlx-of-mine`, { type: "fanout", durable: true })).status).toBe(201);
    expect((await runCli(["plan", "-f", t.file, "-o", t.out])).code).toBe(0);
    // Outside topo's view, and no object of the saved state: only the fresh plan's warning says it.
    expect((await api("DELETE", `/api/exchanges/${vh(t.async)}/dlx-of-mine`)).status).toBe(204);
    const r = await runCli(["apply", t.out, "--json"]);
    expect(r.code).toBe(1);
    const e = JSON.parse(r.stdout).error;
    expect(e.code).toBe("stale_plan");
    expect(e.message).toMatch(/cluster async: a warning the plan did not show: .*dlx-of-mine/);
    expect(await getQueue(t.async, "mpdead.async")).toBeUndefined();

    // A plan of prefix mpx deletes mpxlogin, which a file of prefix mp, applied after the review
    // (it writes, so it leaves its mark), now lists too.
    const u = fresh([{ name: "mpxlogin", sync: false }, { name: "mpxkeep", sync: false }], { prefix: "mpx" });
    expect((await runCli(["apply", "-f", u.file])).code).toBe(0);
    writeFileSync(u.file, readFileSync(writeTopology({ sync: u.sync, async: u.async, prefix: "mpx", services: [{ name: "mpxkeep", sync: false }] }), "utf8"));
    expect((await runCli(["plan", "-f", u.file, "-o", u.out])).code).toBe(0);
    const other = writeTopology({ sync: u.sync, async: u.async, services: [{ name: "mpxlogin", sync: false }, { name: "mpnew", sync: false }] });
    expect((await runCli(["apply", "-f", other])).code).toBe(0);
    const d = await runCli(["apply", u.out, "--allow-destructive", "--json"]);
    expect(d.code).toBe(1);
    expect(JSON.parse(d.stdout).error.message).toMatch(/cluster async: a warning the plan did not show: this plan deletes service mpxlogin .*named inside prefix "mp" too/);
    expect(await getQueue(u.async, "mpxlogin.async")).toMatchObject({ durable: true });
  });

  it("refuses when an operator policy appears since the plan: it caps the queues the plan was reviewed for, --allow-data-loss or not", async () => {
    const t = fresh(["mplogin"]);
    expect((await runCli(["apply", "-f", t.file])).code).toBe(0);
    rewrite(t, ["mplogin", "mpwallet"]);
    expect((await runCli(["plan", "-f", t.file, "-o", t.out])).code).toBe(0);
    const cap = { pattern: "^mp", definition: { "max-length": 2 }, "apply-to": "queues", priority: 0 };
    expect((await api("PUT", `/api/operator-policies/${vh(t.async)}/cap`, cap)).status).toBeLessThan(300);
    const before = await snapshot(t.sync, t.async);
    const r = await runCli(["apply", t.out, "--allow-data-loss", "--allow-destructive", "--json"]);
    expect(r.code).toBe(1);
    const e = JSON.parse(r.stdout).error;
    expect(e.code).toBe("stale_plan");
    expect(e.message).toContain("cluster async: the broker's objects changed since the plan was made");
    expect(e.message).toContain('    operator policy cap: created since the plan (pattern ^mp, apply-to queues, priority 0, definition {"max-length":2})');
    expect(await snapshot(t.sync, t.async)).toEqual(before);
    expect(await getQueue(t.async, "mpwallet.async")).toBeUndefined();
  });

  it("checks every cluster again under its lock, and a cluster gone stale while apply waited stops every cluster's writes", async () => {
    const t = fresh(["mplogin"]);
    expect((await runCli(["apply", "-f", t.file])).code).toBe(0);
    rewrite(t, ["mplogin", "mpwallet"]);
    expect((await runCli(["plan", "-f", t.file, "-o", t.out])).code).toBe(0);
    await whileAsyncLocked(t, async (stderr) => {
      expect(stderr()).toMatch(/cluster async: waiting for the apply lock held by the saved-plan test/);
      // While it waits, the async cluster changes under it.
      expect((await api("DELETE", `/api/queues/${vh(t.async)}/mplogin.async`)).status).toBe(204);
      // The locks (this apply's on sync, the holder's on async) come and go; the rest must not.
      const withoutLocks = (x: unknown) => JSON.stringify(x, (_k, v) => (Array.isArray(v) ? v.filter((o) => !/^topo\.mp\.lock$/.test(o?.name ?? o?.destination ?? "")) : v));
      const before = withoutLocks(await snapshot(t.sync, t.async));
      return async (code) => {
        expect(code).toBe(1);
        expect(stderr()).toMatch(/the saved plan is stale; run topo plan again/);
        expect(stderr()).toContain("cluster async: not in the plan: create queue mplogin.async");
        // sync wrote nothing: its lock comes after async's, and the barrier holds its writes.
        expect(withoutLocks(await snapshot(t.sync, t.async))).toEqual(before);
        expect(before).not.toContain("mpwallet");
      };
    });
  }, 60_000);

  it("a cluster locked first is checked only once every cluster holds its lock: what changed on it while the next waited for its lock stops every cluster's writes", async () => {
    const t = fresh(["mplogin", "mpwallet"]);
    expect((await runCli(["apply", "-f", t.file])).code).toBe(0);
    // The plan deletes service mpwallet: exchange mpwallet with it on async.
    rewrite(t, ["mplogin"]);
    expect((await runCli(["plan", "-f", t.file, "-o", t.out])).code).toBe(0);
    // async takes its lock first (lock order), then apply waits for sync's, which another holds.
    await whileAsyncLocked(
      t,
      async (stderr) => {
        expect(stderr()).toMatch(/cluster sync: waiting for the apply lock held by the saved-plan test/);
        // Meanwhile another client binds its queue to the exchange the plan deletes.
        await withChannel(t.async, async (ch) => {
          await ch.assertQueue("audit", { durable: true });
          await ch.bindQueue("audit", "mpwallet", "#");
        });
        // This apply's lock on async comes and goes; the rest must not.
        const withoutLocks = (x: unknown) => JSON.stringify(x, (_k, v) => (Array.isArray(v) ? v.filter((o) => !/^topo\.mp\.lock$/.test(o?.name ?? o?.destination ?? "")) : v));
        const before = withoutLocks(await snapshot(t.async));
        return async (code) => {
          expect(code).toBe(1);
          expect(stderr()).toMatch(/the saved plan is stale; run topo plan again/);
          expect(stderr()).toContain("binding mpwallet -> audit [#]: created since the plan");
          expect(stderr()).toContain("cluster sync: stopped before writing: cluster async failed before any cluster wrote");
          // Nothing written: the binding is still there, and so is the exchange.
          expect(withoutLocks(await snapshot(t.async))).toEqual(before);
          expect(before).toContain('"source":"mpwallet","destination":"audit"');
        };
      },
      async () => true,
      "sync",
      ["--allow-destructive"],
    );
  }, 60_000);

  it("a vhost the plan creates is checked under its lock as it was planned: a policy put in it after apply made it stops every cluster's writes", async () => {
    const t = fresh(["mplogin"]);
    // async exists and gets a service; sync's vhost is absent when the plan is made.
    expect((await runCli(["apply", "-f", t.file, "--cluster", "async"])).code).toBe(0);
    rewrite(t, ["mplogin", "mpwallet"]);
    expect((await runCli(["plan", "-f", t.file, "-o", t.out])).code).toBe(0);
    // sync's vhost is made before its lock, which waits for async's.
    const made = async () => (await api("GET", `/api/vhosts/${vh(t.sync)}`)).status === 200;
    await whileAsyncLocked(
      t,
      async (stderr) => {
        // In the vhost apply just made, before it holds its lock there: a policy that caps the queues the plan creates.
        const cap = { pattern: "^mp", definition: { "max-length": 1 }, "apply-to": "queues", priority: 9 };
        expect((await api("PUT", `/api/policies/${vh(t.sync)}/cap`, cap)).status).toBeLessThan(300);
        return async (code) => {
          expect(code).toBe(1);
          expect(stderr()).toMatch(/the saved plan is stale; run topo plan again/);
          expect(stderr()).toMatch(/cluster sync: the broker's objects changed since the plan was made/);
          expect(stderr()).toContain('    policy cap: created since the plan (pattern ^mp, apply-to queues, priority 9, definition {"max-length":1})');
          // What was written to sync (its vhost) is said once, by the refusal.
          expect(stderr()).toContain("nothing was written to cluster sync but the vhost the plan creates, where its lock lives");
          expect(stderr()).not.toMatch(/cluster sync: \d+ of \d+ changes? (was|were)/);
          expect(await getQueue(t.sync, "mplogin.sync")).toBeUndefined();
          expect(await getQueue(t.async, "mpwallet.async")).toBeUndefined();
        };
      },
      made,
    );
  }, 60_000);

  it("a plan made while the vhost was absent is stale once someone made it, and names the vhost and what was put in it", async () => {
    const t = fresh(["mplogin"]);
    expect((await runCli(["plan", "-f", t.file, "-o", t.out])).code).toBe(0);
    await createVhost(t.sync);
    expect((await api("PUT", `/api/policies/${vh(t.sync)}/cap`, { pattern: "^mp", definition: { "max-length": 1 }, "apply-to": "queues" })).status).toBeLessThan(300);
    const r = await runCli(["apply", t.out, "--json"]);
    expect(r.code).toBe(1);
    const e = JSON.parse(r.stdout).error;
    expect(e.code).toBe("stale_plan");
    expect(e.message).toContain(
      `  cluster sync: the broker's objects changed since the plan was made (2 objects):\n    policy cap: created since the plan (pattern ^mp, apply-to queues, priority 0, definition {"max-length":1})\n    vhost ${t.sync}: created since the plan\n`,
    );
    expect(e.message).toContain(`cluster sync: no longer needed: create vhost ${t.sync}`);
    expect(e.message).toMatch(/nothing was written to any cluster$/);
    expect((await api("GET", `/api/vhosts/${vh(t.async)}`)).status).toBe(404);
  });

  it("refuses when the topology file changed since the plan, before reading any broker", async () => {
    const t = fresh(["mplogin"]);
    expect((await runCli(["plan", "-f", t.file, "-o", t.out])).code).toBe(0);
    writeFileSync(t.file, `${readFileSync(t.file, "utf8")}\n# an edit after the review\n`);
    const r = await runCli(["apply", t.out, "--json"]);
    expect(r.code).toBe(1);
    const e = JSON.parse(r.stdout).error;
    expect(e.code).toBe("stale_plan");
    expect(e.message).toBe(`the saved plan is stale: ${t.file} changed since the plan was made; nothing was written`);
    expect((await api("GET", `/api/vhosts/${vh(t.sync)}`)).status).toBe(404);
    expect((await api("GET", `/api/vhosts/${vh(t.async)}`)).status).toBe(404);
  });

  it("refuses when the file is the same but its ${VAR}s take other values now, saying the environment changed, before reading any broker", async () => {
    const t = fresh(["mplogin", { name: "mpwallet", async: { arguments: { "x-max-length": "${SP_LEN}" } } }]);
    expect((await runCli(["plan", "-f", t.file, "-o", t.out], { SP_LEN: "100" })).code).toBe(0);
    const r = await runCli(["apply", t.out, "--json"], { SP_LEN: "200" });
    expect(r.code).toBe(1);
    const e = JSON.parse(r.stdout).error;
    expect(e.code).toBe("stale_plan");
    expect(e.message).toBe(
      `the saved plan is stale: ${t.file} is unchanged, but what it asks of cluster async is not what the plan says it asked: its \${VAR}s take other values from the environment now (it reads \${SP_LEN}; the plan keeps none of their values); nothing was written`,
    );
    expect(e.hints).toEqual([`apply with the environment the plan was made in, or run topo plan -f ${t.file} -o FILE again, review it, and apply that`]);
    expect((await api("GET", `/api/vhosts/${vh(t.async)}`)).status).toBe(404);
    // The same environment applies it.
    expect((await runCli(["apply", t.out], { SP_LEN: "100" })).code).toBe(0);
    expect((await getQueue(t.async, "mpwallet.async")).arguments).toEqual({ "x-max-length": 100 });
  });

  it("refuses when a ${VAR} gives the prefix another value now: it decides what topo owns, the lock it takes and the mark it leaves", async () => {
    // Async only: the sync cluster's mirror policy names the prefix, and would differ anyway.
    const t = fresh([{ name: "mpxlogin", sync: false }], { prefix: "${SP_PFX}" });
    expect((await runCli(["plan", "-f", t.file, "-o", t.out], { SP_PFX: "mpx" })).code).toBe(0);
    const r = await runCli(["apply", t.out, "--json"], { SP_PFX: "mp" });
    expect(r.code).toBe(1);
    const e = JSON.parse(r.stdout).error;
    expect(e.code).toBe("stale_plan");
    expect(e.message).toBe(
      `the saved plan is stale: ${t.file} is unchanged, but its prefix is now "mp", and the plan says prefix "mpx": its \${VAR}s take other values from the environment now (it reads \${SP_PFX}; the plan keeps none of their values); nothing was written`,
    );
    expect((await api("GET", `/api/vhosts/${vh(t.async)}`)).status).toBe(404);
    expect((await runCli(["apply", t.out], { SP_PFX: "mpx" })).code).toBe(0);
  });

  it("a saved plan refused for data loss names the plan in the flag's hint", async () => {
    const t = fresh([{ name: "mplogin", sync: false }, { name: "mpgone", sync: false }]);
    expect((await runCli(["apply", "-f", t.file])).code).toBe(0);
    await publish(t.async, "mpgone", "mpgone.async.x", ["kept"]);
    rewrite(t, [{ name: "mplogin", sync: false }]);
    expect((await runCli(["plan", "-f", t.file, "-o", t.out])).code).toBe(0);
    const refused = await runCli(["apply", t.out, "--allow-destructive", "--json"]);
    expect(JSON.parse(refused.stdout).error.code).toBe("refused_data_loss");
    expect(JSON.parse(refused.stdout).error.hints).toContain(`let the workers drain the queue first (topo plan shows the count), or pass --allow-data-loss (to topo apply ${t.out}) to delete the messages with it; nothing was changed`);
  });

  // A saved plan shows a name that holds a password masked, as all output does: a queue
  // "amqp://q:S1@h" swapped for "amqp://q:S2@h" between plan and apply read the same, both
  // "amqp://q:***@h", and apply went ahead (a helper measured it on 4.3.6, where it deleted a
  // binding to a queue nobody had reviewed). The plan keeps a fingerprint of such objects.
  it("an object whose name holds a password, swapped for another that masks the same between plan and apply, makes the plan stale", async () => {
    const t = fresh([{ name: "mplogin", sync: false }]);
    expect((await runCli(["apply", "-f", t.file])).code).toBe(0);
    const queueOf = (pw: string) => `amqp://q:${pw}@h`;
    const bindForeign = (pw: string) =>
      withChannel(t.async, async (ch) => {
        await ch.assertQueue(queueOf(pw), { durable: true });
        await ch.bindQueue(queueOf(pw), "mplogin", "mplogin.async.#");
      });
    await bindForeign("Sekr1tOne");
    rewrite(t, [{ name: "mplogin", sync: false }, { name: "mpwallet", sync: false }]);
    const planned = await runCli(["plan", "-f", t.file, "-o", t.out]);
    expect(planned.code).toBe(0);
    expect(planned.stdout + readFileSync(t.out, "utf8")).not.toContain("Sekr1t");
    await withChannel(t.async, async (ch) => {
      await ch.deleteQueue(queueOf("Sekr1tOne"));
    });
    await bindForeign("Sekr1tTwo");
    const r = await runCli(["apply", t.out, "--json"]);
    expect(r.code).toBe(1);
    const e = JSON.parse(r.stdout).error;
    expect(e.code).toBe("stale_plan");
    expect(e.message).toContain("cluster async: of the objects that hold a password in a name or value, which the plan shows masked, one or more changed since the plan was made");
    expect(r.stdout + r.stderr).not.toContain("Sekr1t");
    // Nothing was written: mpwallet's exchange is not there.
    expect((await api("GET", `/api/exchanges/${vh(t.async)}/mpwallet`)).status).toBe(404);
    // The same objects as at plan time: the plan applies.
    expect((await runCli(["plan", "-f", t.file, "-o", t.out])).code).toBe(0);
    const ok = await runCli(["apply", t.out]);
    expect(ok.code, ok.stderr).toBe(0);
  });

  it("a plan file edited by hand, of a topology without ${VAR}s, is said to be edited, not blamed on the environment", async () => {
    const t = fresh([{ name: "mpxlogin", sync: false }]);
    expect((await runCli(["plan", "-f", t.file, "-o", t.out])).code).toBe(0);
    const saved = JSON.parse(readFileSync(t.out, "utf8"));
    // The digest topo plan -o writes tells any edit apart: said before the broker is read.
    writeFileSync(t.out, JSON.stringify({ ...saved, prefix: "mpx" }));
    const edited = await runCli(["apply", t.out, "--json"]);
    expect(edited.code).toBe(1);
    expect(JSON.parse(edited.stdout).error).toMatchObject({
      code: "stale_plan",
      message: `the saved plan ${t.out} was edited after topo plan wrote it: its digest, which topo plan -o writes of the rest of it, does not match what it holds; nothing was written`,
    });
    const { digest: _, ...undigested } = saved;
    writeFileSync(t.out, JSON.stringify(undigested));
    expect(JSON.parse((await runCli(["apply", t.out, "--json"])).stdout).error.message).toBe(`the saved plan ${t.out} was edited after topo plan wrote it: it has no digest, which topo plan -o writes; nothing was written`);
    // topo show says so to the reviewer.
    writeFileSync(t.out, JSON.stringify({ ...saved, prefix: "mpx" }));
    expect((await runCli(["show", t.out])).stdout).toMatch(/^saved plan of .*; EDITED after topo plan wrote it \(its digest, which topo plan -o writes of the rest of it, does not match what it holds\): topo apply refuses it\n/);
    // An edit that wrote the digest again is still found, by what it changed.
    writeResealed(t.out, { ...saved, prefix: "mpx" });
    const r = await runCli(["apply", t.out, "--json"]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).error.message).toBe(`the saved plan is stale: ${t.file} is unchanged, but its prefix is now "mp", and the plan says prefix "mpx": it has no \${VAR}, so the plan file ${t.out} was edited; nothing was written`);
    // A fingerprint of users' passwords in the plan of a file without users: edited too.
    writeResealed(t.out, { ...saved, credentials: { key: "k", digest: "d" } });
    const c = await runCli(["apply", t.out, "--json"]);
    expect(JSON.parse(c.stdout).error.message).toBe(`the saved plan is stale: the plan holds a fingerprint of users' passwords, and ${t.file} has no users: the plan file ${t.out} was edited; nothing was written`);
  });

  it("a plan made with a relative file name, applied from another directory that holds another such file, says where it read it", async () => {
    const t = fresh(["mplogin"]);
    const dir = dirname(t.file);
    const run = (cwd: string, args: string[]) =>
      new Promise<{ code: number; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [CLI, ...args], { cwd, stdio: ["ignore", "ignore", "pipe"] });
        let stderr = "";
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        child.on("exit", (code) => resolve({ code: code ?? 1, stderr }));
      });
    expect((await run(dir, ["plan", "-f", "topology.yaml", "-o", "plan.json"])).code).toBe(0);
    const other = join(dir, "other");
    mkdirSync(other);
    writeFileSync(join(other, "topology.yaml"), `${readFileSync(t.file, "utf8")}\n# another checkout's\n`);
    const r = await run(other, ["apply", "../plan.json"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("the saved plan is stale: topology.yaml changed since the plan was made; nothing was written");
    expect(r.stderr).toContain(`hint: topology.yaml is the name topo plan was given, read from ${other}: if topo plan ran in another directory, run topo apply ../plan.json from there`);
  });

  it("says so when the topology file changed only in its line ends, as a checkout with core.autocrlf changes them, and still refuses", async () => {
    const t = fresh(["mplogin"]);
    expect((await runCli(["plan", "-f", t.file, "-o", t.out])).code).toBe(0);
    const text = readFileSync(t.file, "utf8");
    for (const edited of [text.replace(/\n/g, "\r\n"), `\uFEFF${text}`]) {
      writeFileSync(t.file, edited);
      const r = await runCli(["apply", t.out, "--json"]);
      expect(r.code).toBe(1);
      const e = JSON.parse(r.stdout).error;
      expect(e.code).toBe("stale_plan");
      expect(e.message).toBe(
        `the saved plan is stale: ${t.file} changed since the plan was made (only in its line ends or byte-order mark, as a git checkout with core.autocrlf or an editor changes them); nothing was written`,
      );
    }
    expect((await api("GET", `/api/vhosts/${vh(t.async)}`)).status).toBe(404);
  });

  it("refuses a plan made by another topo version, and a file that is not a saved plan", async () => {
    const t = fresh(["mplogin"]);
    expect((await runCli(["plan", "-f", t.file, "-o", t.out])).code).toBe(0);
    const saved = JSON.parse(readFileSync(t.out, "utf8"));
    writeFileSync(t.out, JSON.stringify({ ...saved, topoVersion: "0.0.1" }));
    const old = await runCli(["apply", t.out, "--json"]);
    expect(old.code).toBe(1);
    expect(JSON.parse(old.stdout).error).toMatchObject({ code: "stale_plan", message: expect.stringMatching(/was made by topo 0\.0\.1, and this is topo \d+\.\d+\.\d+; nothing was written/) });

    // An action added by hand, as a copy of one the plan holds: show would count it, apply do it once.
    const copied = JSON.parse(JSON.stringify(saved));
    copied.clusters[1].actions.push(copied.clusters[1].actions[2]);
    writeFileSync(t.out, JSON.stringify(copied));
    for (const cmd of ["show", "apply"]) {
      const r = await runCli([cmd, t.out, "--json"]);
      expect(r.code).toBe(1);
      expect(JSON.parse(r.stdout).error.message).toMatch(new RegExp(`is not a saved plan topo can ${cmd}: it is damaged: clusters\\[1\\]\\.actions\\[\\d+\\] repeats create `));
    }

    // A cluster the topology file does not have (the plan edited by hand, its file unchanged):
    // the saved plan's fault, named as such, not a wrong --cluster on the command line.
    const elsewhere = JSON.parse(JSON.stringify(saved));
    elsewhere.clusters[0].cluster = "nope";
    writeResealed(t.out, elsewhere);
    const other = await runCli(["apply", t.out, "--json"]);
    expect(other.code).toBe(1);
    expect(JSON.parse(other.stdout).error).toMatchObject({
      code: "stale_plan",
      message: `the saved plan ${t.out} is for cluster nope, which ${t.file} does not have (clusters: sync, async); nothing was written`,
    });

    // A cluster taken out of the plan (it would apply less than was reviewed, and say it matched),
    // or said unread while it is planned.
    const cut = JSON.parse(JSON.stringify(saved));
    cut.clusters = cut.clusters.filter((c: { cluster: string }) => c.cluster === "sync");
    writeResealed(t.out, cut);
    const less = await runCli(["apply", t.out, "--json"]);
    expect(less.code).toBe(1);
    expect(JSON.parse(less.stdout).error).toMatchObject({
      code: "stale_plan",
      message: `the saved plan ${t.out} was edited: it has no plan for cluster async of ${t.file}, and does not say it left it out (topo plan --cluster); nothing was written`,
    });
    writeResealed(t.out, { ...saved, unread: ["sync", "async"] });
    const said = await runCli(["apply", t.out, "--json"]);
    expect(said.code).toBe(1);
    expect(JSON.parse(said.stdout).error.message).toBe(`the saved plan ${t.out} was edited: it says clusters sync, async were not read, and plans them; nothing was written`);
    // A plan of one cluster made with --cluster says so, and applies.
    expect((await runCli(["plan", "-f", t.file, "--cluster", "sync", "-o", t.out])).code).toBe(0);
    expect(JSON.parse(readFileSync(t.out, "utf8")).unread).toEqual(["async"]);
    expect((await runCli(["show", t.out])).code).toBe(0);

    writeFileSync(t.out, '{"clusters": []}');
    const bad = await runCli(["apply", t.out]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`${t.out} is not a saved plan topo can apply: it is not a plan saved by topo plan -o`);
    const yaml = await runCli(["apply", t.file]);
    expect(yaml.code).toBe(1);
    expect(yaml.stderr).toContain(`hint: to plan and apply a topology file, name it with -f: topo apply -f ${t.file}`);
    // show of a topology file is pointed at plan, not at apply.
    const shownYaml = await runCli(["show", t.file]);
    expect(shownYaml.code).toBe(1);
    expect(shownYaml.stderr).toContain(`is not a saved plan topo can show`);
    expect(shownYaml.stderr).toContain(`hint: to see what a topology file would change, plan it: topo plan -f ${t.file}`);
    expect((await api("GET", `/api/vhosts/${vh(t.sync)}`)).status).toBe(404);
  });

  it("still needs --allow-destructive for a saved plan that replaces, and -f or --cluster beside a plan file is a usage error", async () => {
    const t = fresh([{ name: "mplogin", sync: false }]);
    expect((await runCli(["apply", "-f", t.file])).code).toBe(0);
    rewrite(t, [{ name: "mplogin", sync: false, async: { arguments: { "x-max-length": 1000 } } }]);
    expect((await runCli(["plan", "-f", t.file, "-o", t.out])).code).toBe(0);

    const refused = await runCli(["apply", t.out, "--json"]);
    expect(refused.code).toBe(1);
    expect(JSON.parse(refused.stdout).error.code).toBe("refused_destructive");
    // The reviewed plan, again with the flag: plain topo apply would apply the file unreviewed.
    expect(JSON.parse(refused.stdout).error.hints).toContain(`review the plan, then run topo apply ${t.out} --allow-destructive; nothing was changed`);
    expect(JSON.parse(refused.stdout).error.hints.join("\n")).not.toMatch(/topo apply (?!\S*plan\.json)/);
    const usage = await runCli(["apply", t.out, "-f", t.file]);
    expect(usage.code).toBe(1);
    expect(usage.stderr).toMatch(/a saved plan names its topology file and its clusters/);

    const r = await runCli(["apply", t.out, "--allow-destructive"]);
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    expect((await getQueue(t.async, "mplogin.async")).arguments).toEqual({ "x-max-length": 1000 });
  });
});

describe("topo show PLANFILE and --format markdown", () => {
  it("prints a saved plan as text, JSON and markdown, replaces first with their reasons", async () => {
    const t = fresh(["mplogin", "mpwallet"]);
    expect((await runCli(["apply", "-f", t.file])).code).toBe(0);
    rewrite(t, [{ name: "mplogin", async: { arguments: { "x-max-length": 1000 } } }, "mpcart"]);
    const planned = await runCli(["plan", "-f", t.file, "-o", t.out, "--format", "markdown"]);
    expect(planned.code).toBe(0);

    const text = await runCli(["show", t.out]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`saved plan of ${t.file}, made `);
    expect(text.stdout).toContain("-/+ replace queue mplogin.async");
    expect(text.stdout).toContain("because arguments.x-max-length: (none) -> 1000");
    expect(text.stdout).toMatch(/Plan: 6 to create, 0 to update, 1 to replace, 6 to delete\./);

    const json = await runCli(["show", t.out, "--json"]);
    expect(json.code).toBe(0);
    const j = JSON.parse(json.stdout);
    expect(j.summary).toEqual({ create: 6, update: 0, replace: 1, delete: 6, degraded: 0 });
    expect(j.saved).toMatchObject({ file: t.file, fileDigest: expect.stringMatching(/^sha256:/), stateDigests: { sync: expect.any(String), async: expect.any(String) } });
    expect(JSON.parse((await runCli(["show", t.out, "--format", "json"])).stdout)).toEqual(j);

    const md = await runCli(["show", t.out, "--format", "markdown"]);
    expect(md.code).toBe(0);
    expect(md.stdout).toMatch(/^\*\*topo plan\*\*: Plan: 6 to create, 0 to update, 1 to replace, 6 to delete\./);
    expect(md.stdout).toContain("<details open><summary>cluster async: 7 changes (4 destructive)</summary>");
    const asyncBody = md.stdout.slice(md.stdout.indexOf("cluster async:"));
    const lines = asyncBody.slice(asyncBody.indexOf("```diff")).split("\n");
    expect(lines.slice(0, 4)).toEqual(["```diff", "-/+ replace queue mplogin.async", "    because arguments.x-max-length: (none) -> 1000", "    then re-creates its 1 binding"]);
    expect(lines[4]).toMatch(/^- delete /);
    expect(asyncBody.indexOf("+ create")).toBeGreaterThan(asyncBody.lastIndexOf("- delete"));
    // plan --format markdown prints the same plan (without the saved plan's provenance line; plan
    // knows the password "guest", so it masks the user "guest" too).
    const user = (s: string) => s.replace(/amqp:\/\/[^:@/]*:/g, "amqp://USER:");
    expect(user(planned.stdout)).toBe(user(md.stdout.replace(/\n\n<sub>saved plan of [^\n]*<\/sub>/, "")));
  });

  it("show of a file that is not there says so", async () => {
    const r = await runCli(["show", "/nonexistent/plan.json", "--json"]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).error.message).toBe("cannot read the saved plan /nonexistent/plan.json: no such file");
  });
});

describe("a saved plan holds no secret", () => {
  const SECRET = "Zebra-S3cret/Pass:42";
  const USER = `topo_saved_${process.pid}`;
  suiteUsers([{ name: USER, password: SECRET, tags: "administrator" }]);

  it("masks the password, which apply reads again from the file", async () => {
    const t = fresh(["mplogin"], { credentials: { user: USER, password: SECRET } });
    const plan = await runCli(["plan", "-f", t.file, "-o", t.out, "--json"]);
    expect(plan.code).toBe(0);
    const text = readFileSync(t.out, "utf8");
    for (const form of [SECRET, encodeURIComponent(SECRET), "S3cret"]) expect(text).not.toContain(form);
    expect(text).toContain(`${USER}:***@`);
    // It holds the password fingerprint: its owner's alone, and a mode chosen for it is kept.
    expect(statSync(t.out).mode & 0o777).toBe(0o600);
    chmodSync(t.out, 0o640);
    expect((await runCli(["plan", "-f", t.file, "-o", t.out])).code).toBe(0);
    expect(statSync(t.out).mode & 0o777).toBe(0o640);
    const r = await runCli(["apply", t.out]);
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    expect(r.stdout + r.stderr).not.toContain("S3cret");
  });
});
