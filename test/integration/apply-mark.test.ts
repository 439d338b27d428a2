// apply reads each cluster before it takes the lock, and keeps that read under the lock only when
// no apply can have written since it began (broker/generation.ts). Each test makes another
// "apply" write where the kept read would not see it: the apply must read again, or the broker
// ends unlike the file.

import { afterEach, describe, expect, it } from "vitest";
import { AmqpSession } from "../../src/broker/amqp.js";
import { renewApplyMark } from "../../src/broker/generation.js";
import { apply, loadTopology } from "../../src/index.js";
import { api, runCli, testVhosts, vh, writeTopology } from "../helpers/broker.js";

const { fresh } = testVhosts();

/** A topology of two services on both clusters, applied; then one queue deleted, so apply has work. */
async function drifted(): Promise<{ sync: string; async: string; file: string }> {
  const t = fresh(["mplogin", "mpbilling"]);
  expect((await runCli(["apply", "-f", t.file])).code).toBe(0);
  expect((await api("DELETE", `/api/queues/${vh(t.async)}/mplogin.async`)).status).toBe(204);
  return t;
}

/**
 * Another apply of the async cluster, connected ahead: `lock()` takes the lock and renews the
 * mark, as apply does before it writes. Its declare goes out at once, before the apply under test
 * can open a connection of its own.
 */
async function otherApply(file: string): Promise<{ session: AmqpSession; lock: () => Promise<void> }> {
  const target = loadTopology(file).clusters.find((c) => c.target.name === "async")?.target;
  if (!target) throw new Error("no async cluster");
  const session = await AmqpSession.open(target);
  const ch = await session.channel();
  const lock = async () => {
    await ch.assertQueue("topo.mp.lock", { exclusive: true, arguments: { "x-topo-holder": "the other apply" } });
    await renewApplyMark(session, "mp");
  };
  return { session, lock };
}

async function run(file: string, onPlan?: () => void): Promise<{ traced: string[]; logged: string[] }> {
  const traced: string[] = [];
  const logged: string[] = [];
  await apply({ file, cluster: "async", allowDestructive: false, allowDataLoss: false, lockTimeoutMs: 30_000, log: (m) => logged.push(m), trace: (m) => traced.push(m), onPlan });
  return { traced, logged };
}

async function generation(vhost: string): Promise<unknown> {
  return (await api("GET", `/api/exchanges/${vh(vhost)}/topo.mp.generation`)).body?.arguments?.["x-topo-generation"];
}

describe("the read apply keeps under the lock", () => {
  let sessions: AmqpSession[] = [];
  afterEach(async () => {
    await Promise.all(sessions.map((s) => s.close()));
    sessions = [];
  });

  it("is kept when no apply wrote since it began, and every apply that writes renews the mark", async () => {
    const { async, file } = await drifted();
    const before = await generation(async);
    expect(typeof before).toBe("string");
    const { traced } = await run(file);
    expect(traced.join("\n")).toMatch(/cluster async: kept the plan it read: no apply wrote since/);
    expect(traced.join("\n")).not.toMatch(/planned again under the lock/);
    const after = await generation(async);
    expect(typeof after).toBe("string");
    expect(after).not.toBe(before);
    expect((await runCli(["plan", "-f", file, "--detailed-exitcode"])).code).toBe(0);
  });

  it("is read again when another apply took the lock after the read began and wrote", async () => {
    const { async, file } = await drifted();
    const o = await otherApply(file);
    sessions.push(o.session);
    let other: Promise<void> | undefined;
    const { traced, logged } = await run(file, () => {
      // After the read, before this apply takes the lock: another apply locks, renews the mark,
      // deletes a queue this apply's read saw, and lets go.
      other = (async () => {
        await o.lock();
        expect((await api("DELETE", `/api/queues/${vh(async)}/mpbilling.async`)).status).toBe(204);
        await o.session.close();
      })();
    });
    // It took the lock before this apply could (or this would have thrown RESOURCE_LOCKED).
    await other;
    expect(logged.join("\n")).toMatch(/cluster async: the broker changed since the plan was read/);
    expect(traced.join("\n")).toMatch(/cluster async: planned again under the lock/);
    expect((await runCli(["plan", "-f", file, "--detailed-exitcode"])).code).toBe(0);
  });

  it("is read again when another apply held the lock as the read began, even with the mark unchanged", async () => {
    const { async, file } = await drifted();
    // The other apply renewed the mark before this apply's read and is still writing.
    const o = await otherApply(file);
    sessions.push(o.session);
    await o.lock();
    let other: Promise<void> | undefined;
    const { traced } = await run(file, () => {
      other = (async () => {
        expect((await api("DELETE", `/api/queues/${vh(async)}/mpbilling.async`)).status).toBe(204);
        await o.session.close();
      })();
    });
    await other;
    expect(traced.join("\n")).toMatch(/cluster async: planned again under the lock/);
    expect((await runCli(["plan", "-f", file, "--detailed-exitcode"])).code).toBe(0);
  });
});

describe("a prefix retired from a vhost", () => {
  it("takes its apply mark with its last objects, so a prefix that starts with it is no longer warned of it", async () => {
    // Two files on the same two vhosts: `hp`, and `hpa`, whose every name is inside `hp`'s too.
    const { sync, async, file: hp } = fresh(["hplogin"], { prefix: "hp" });
    const hpa = writeTopology({ sync, async, prefix: "hpa", services: ["hpalogin", "hpabilling"] });
    expect((await runCli(["apply", "-f", hp])).code).toBe(0);
    expect((await runCli(["apply", "-f", hpa])).code).toBe(0);
    const hpaFewer = writeTopology({ sync, async, prefix: "hpa", services: ["hpalogin"] });
    expect((await runCli(["plan", "-f", hpaFewer])).stdout).toMatch(/warning: this plan deletes service hpabilling .*named inside prefix "hp" too/);

    // Retired as safety.md says: its file applied with no services.
    const retired = writeTopology({ sync, async, prefix: "hp", services: [] });
    const r = await runCli(["apply", "-f", retired, "--allow-destructive"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`cluster async: prefix hp has nothing left on vhost ${async}, so its apply mark (exchange topo.hp.generation) was deleted too`);
    for (const v of [sync, async]) {
      expect((await api("GET", `/api/exchanges/${vh(v)}/topo.hp.generation`)).status).toBe(404);
      // The other prefix's mark and objects stay.
      expect((await api("GET", `/api/exchanges/${vh(v)}/topo.hpa.generation`)).status).toBe(200);
      expect((await api("GET", `/api/exchanges/${vh(v)}/hpabilling`)).status).toBe(200);
    }
    const plan = await runCli(["plan", "-f", hpaFewer]);
    expect(plan.stdout).toMatch(/- delete exchange hpabilling/);
    expect(plan.stdout).not.toMatch(/named inside prefix/);
    // The retired file plans no changes, and an apply of it again writes nothing.
    expect((await runCli(["plan", "-f", retired, "--detailed-exitcode"])).code).toBe(0);
    expect((await runCli(["plan", "-f", hpa, "--detailed-exitcode"])).code).toBe(0);
  });

  it("an apply whose read found no mark reads again under its lock: the mark's absence proves no apply wrote", async () => {
    const { file } = fresh(["mplogin"]);
    const traced: string[] = [];
    await apply({ file, cluster: "async", allowDestructive: false, allowDataLoss: false, lockTimeoutMs: 30_000, log: () => undefined, trace: (m) => traced.push(m) });
    expect(traced.join("\n")).toMatch(/cluster async: planned again under the lock/);
  });
});

describe("bindings someone made on the apply mark", () => {
  it("are planned as deletes and named, since every apply that writes takes them with the mark; apply removes them only when allowed", async () => {
    const { async, file } = await drifted();
    // A user's queue bound from the mark, and a user's exchange bound into it.
    expect((await api("PUT", `/api/queues/${vh(async)}/audit`, { durable: true })).status).toBe(201);
    expect((await api("POST", `/api/bindings/${vh(async)}/e/topo.mp.generation/q/audit`, { routing_key: "#" })).status).toBe(201);
    expect((await api("PUT", `/api/exchanges/${vh(async)}/fx`, { type: "fanout", durable: true })).status).toBe(201);
    expect((await api("POST", `/api/bindings/${vh(async)}/e/fx/e/topo.mp.generation`, { routing_key: "k" })).status).toBe(201);
    // And between the mark and the file's own exchange and queue.
    expect((await api("POST", `/api/bindings/${vh(async)}/e/mpbilling/e/topo.mp.generation`, { routing_key: "k2" })).status).toBe(201);
    expect((await api("POST", `/api/bindings/${vh(async)}/e/topo.mp.generation/q/mpbilling.async`, { routing_key: "zz" })).status).toBe(201);
    const onMark = async () => [
      ...((await api("GET", `/api/exchanges/${vh(async)}/topo.mp.generation/bindings/source`)).body as { destination: string }[]).map((b) => `-> ${b.destination}`),
      ...((await api("GET", `/api/exchanges/${vh(async)}/topo.mp.generation/bindings/destination`)).body as { source: string }[]).map((b) => `<- ${b.source}`),
    ];

    const plan = await runCli(["plan", "-f", file, "--cluster", "async", "--detailed-exitcode"]);
    expect(plan.code).toBe(2);
    expect(plan.stdout).toContain("- delete binding topo.mp.generation -> audit [#]");
    expect(plan.stdout).toContain("- delete binding fx -> exchange topo.mp.generation [k]");
    expect(plan.stdout).toMatch(/on topo\.mp\.generation, topo's apply mark, which every apply that writes deletes and declares again/);
    // Not also warned of as a binding topo "neither changes nor deletes" (rv2).
    expect(plan.stdout).not.toMatch(/topo neither changes nor deletes/);
    const json = JSON.parse((await runCli(["plan", "-f", file, "--cluster", "async", "--json"])).stdout);
    expect(json.clusters[0].actions.filter((a: { why?: string }) => a.why?.includes("topo's apply mark"))).toHaveLength(4);

    // Without --allow-destructive apply writes nothing: before, it re-created the queue and, with
    // the mark, took both bindings without a word.
    const refused = await runCli(["apply", "-f", file, "--cluster", "async"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("- delete binding topo.mp.generation -> audit [#]");
    expect(refused.stderr).toContain("hint: a binding on topo's apply mark goes with the mark at every apply that writes");
    expect((await onMark()).sort()).toEqual(["-> audit", "-> mpbilling.async", "<- fx", "<- mpbilling"]);
    expect((await api("GET", `/api/queues/${vh(async)}/mplogin.async`)).status).toBe(404);

    expect((await runCli(["apply", "-f", file, "--cluster", "async", "--allow-destructive"])).code).toBe(0);
    expect(await onMark()).toEqual([]);
    // The user's queue and exchange stay.
    expect((await api("GET", `/api/queues/${vh(async)}/audit`)).status).toBe(200);
    expect((await api("GET", `/api/exchanges/${vh(async)}/fx`)).status).toBe(200);
    expect((await runCli(["plan", "-f", file, "--cluster", "async", "--detailed-exitcode"])).code).toBe(0);
  });
});
