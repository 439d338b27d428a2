// plan / apply end to end against the real broker: round trip, drift, the destructive guard,
// the namespace, Celery compatibility and routing of the edge's task names.

import { describe, expect, it } from "vitest";
import {
  api,
  getQueue,
  listBindings,
  messageCount,
  publish,
  runCli,
  uniqueName,
  vh,
  withChannel,
  writeTopology,
  testVhosts,
} from "../helpers/broker.js";

const { vhosts, fresh } = testVhosts();

const EXAMPLE_SERVICES = ["mplogin", "mpwallet", { name: "mppayment", sync: false, async: { arguments: { "x-max-length": 100000 } } }];

describe("apply then plan", () => {
  it("creates exactly the model, then plans no changes, and a second apply writes nothing", async () => {
    const { file, sync, async } = fresh(EXAMPLE_SERVICES);
    const first = await runCli(["apply", "-f", file]);
    expect(first.stderr).not.toMatch(/Error/);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/Plan: 18 to create, 0 to update, 0 to replace, 0 to delete\./);

    // The broker holds what a kombu worker declares.
    const ls = await getQueue(sync, "mplogin.sync");
    expect(ls).toMatchObject({ durable: false, auto_delete: false, exclusive: false, arguments: {} });
    const la = await getQueue(async, "mplogin.async");
    expect(la).toMatchObject({ durable: true, auto_delete: false, arguments: {} });
    const pa = await getQueue(async, "mppayment.async");
    expect(pa.arguments).toEqual({ "x-max-length": 100000 });
    expect(typeof pa.arguments["x-max-length"]).toBe("number");
    expect(await getQueue(sync, "mppayment.sync")).toBeUndefined();
    const ex = await api("GET", `/api/exchanges/${vh(sync)}/mplogin`);
    expect(ex.body).toMatchObject({ type: "topic", durable: true, auto_delete: false, internal: false });
    const noPaymentOnSync = await api("GET", `/api/exchanges/${vh(sync)}/mppayment`);
    expect(noPaymentOnSync.status).toBe(404);
    const bindings = await listBindings(async);
    expect(bindings.map((b) => `${b.source}>${b.destination}:${b.routing_key}`).sort()).toEqual([
      "mplogin>mplogin.async:mplogin.async.#",
      "mppayment>mppayment.async:mppayment.async.#",
      "mpwallet>mpwallet.async:mpwallet.async.#",
    ]);
    const policies = (await api("GET", `/api/policies/${vh(sync)}`)).body as any[];
    expect(policies).toEqual([
      expect.objectContaining({ name: "topo.mp.mirror.sync", definition: { "ha-mode": "all", "ha-sync-mode": "automatic" }, "apply-to": "queues" }),
    ]);
    expect((await api("GET", `/api/policies/${vh(async)}`)).body).toEqual([]);

    const plan = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(plan.code).toBe(0);
    expect(plan.stdout.trim().endsWith("No changes.")).toBe(true);

    const second = await runCli(["apply", "-f", file]);
    expect(second.code).toBe(0);
    expect(second.stdout.trim().endsWith("No changes.")).toBe(true);
    // No lock taken, no AMQP connection, nothing applied.
    expect(second.stderr).toBe("");
  });

  it("prints the plan as JSON with the documented shape", async () => {
    const { file } = fresh(["mplogin"]);
    const r = await runCli(["plan", "-f", file, "--json", "--detailed-exitcode"]);
    expect(r.code).toBe(2);
    const j = JSON.parse(r.stdout);
    expect(j.summary).toEqual({ create: 9, update: 0, replace: 0, delete: 0, degraded: 0 });
    expect(j.clusters.map((c: any) => c.name)).toEqual(["sync", "async"]);
    expect(j.clusters[0].actions[0]).toMatchObject({ op: "create", kind: "vhost" });
    for (const c of j.clusters) for (const a of c.actions) expect(Object.keys(a)).toEqual(expect.arrayContaining(["op", "kind", "name"]));
  });

  it("--cluster limits plan and apply to one cluster", async () => {
    const { file, sync, async } = fresh(["mplogin"]);
    expect((await runCli(["apply", "-f", file, "--cluster", "async"])).code).toBe(0);
    expect(await getQueue(async, "mplogin.async")).toBeDefined();
    expect(await getQueue(sync, "mplogin.sync")).toBeUndefined();
    const r = await runCli(["plan", "-f", file, "--cluster", "nope"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no cluster named "nope"/);
  });
});

describe("drift", () => {
  it("a queue, binding and exchange removed by hand show in plan (exit 2) and apply repairs them", async () => {
    const { file, sync, async } = fresh(["mplogin", "mpwallet"]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    await api("DELETE", `/api/queues/${vh(sync)}/mplogin.sync`);
    await api("DELETE", `/api/bindings/${vh(async)}/e/mpwallet/q/mpwallet.async/${encodeURIComponent("mpwallet.async.#")}`);
    await api("DELETE", `/api/exchanges/${vh(async)}/mplogin`);
    const plan = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(plan.code).toBe(2);
    expect(plan.stdout).toContain("+ create queue mplogin.sync");
    expect(plan.stdout).toContain("+ create binding mpwallet -> mpwallet.async [mpwallet.async.#]");
    expect(plan.stdout).toContain("+ create exchange mplogin");
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    expect((await runCli(["plan", "-f", file, "--detailed-exitcode"])).code).toBe(0);
  });

  it("sees an argument RabbitMQ never compares on redeclare (x-consumer-timeout)", async () => {
    const { file, async } = fresh([{ name: "mplogin", sync: false, async: { arguments: { "x-consumer-timeout": 60000 } } }]);
    const applied = await runCli(["apply", "-f", file]);
    expect(applied.code).toBe(0);
    // Before 3.11.15 the broker keeps the argument and times no consumer out by it: plan says so.
    const version = ((await api("GET", "/api/overview")).body as { rabbitmq_version: string }).rabbitmq_version;
    const [maj, min, patch] = version.split(".").map(Number) as [number, number, number];
    if (maj * 1e6 + min * 1e3 + patch < 3_011_015) expect(applied.stdout + applied.stderr).toMatch(/accepts x-consumer-timeout and ignores it: a queue's own consumer timeout came in 3\.11\.15/);
    // A client redeclare with another value "succeeds" and changes nothing: only read-and-diff sees it.
    await withChannel(async, (ch) => ch.assertQueue("mplogin.async", { durable: true, arguments: { "x-consumer-timeout": 999 } }));
    expect((await runCli(["plan", "-f", file, "--detailed-exitcode"])).code).toBe(0);
    // Recreated by hand with another value: drift, and a replace (arguments are immutable).
    await api("DELETE", `/api/queues/${vh(async)}/mplogin.async`);
    await withChannel(async, (ch) => ch.assertQueue("mplogin.async", { durable: true, arguments: { "x-consumer-timeout": 999 } }));
    await withChannel(async, (ch) => ch.bindQueue("mplogin.async", "mplogin", "mplogin.async.#"));
    const plan = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(plan.code).toBe(2);
    expect(plan.stdout).toContain("-/+ replace queue mplogin.async");
    expect(plan.stdout).toContain("because arguments.x-consumer-timeout: 999 -> 60000");
  });

  it("a changed mirror policy is an update, not a replace, and needs no flag", async () => {
    const { file, sync } = fresh(["mplogin"]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    await api("PUT", `/api/policies/${vh(sync)}/topo.mp.mirror.sync`, { pattern: "^nothing$", definition: { "ha-mode": "all" }, "apply-to": "queues", priority: 0 });
    const plan = await runCli(["plan", "-f", file]);
    expect(plan.stdout).toContain("~ update policy topo.mp.mirror.sync");
    expect(plan.stdout).toMatch(/Plan: 0 to create, 1 to update, 0 to replace, 0 to delete\./);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    expect((await runCli(["plan", "-f", file, "--detailed-exitcode"])).code).toBe(0);
  });
});

describe("destructive changes", () => {
  it("refuses a replace without --allow-destructive, then replaces and re-creates every binding", async () => {
    const services = [{ name: "mplogin", sync: false }];
    const { file, async } = fresh(services);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    // A binding topo does not own, from a user's exchange: a replace must keep it.
    await withChannel(async, async (ch) => {
      await ch.assertExchange("edge", "topic", { durable: true });
      await ch.bindQueue("mplogin.async", "edge", "mplogin.async.#");
    });
    const changed = writeTopology({ sync: uniqueName("unused"), async, services: [{ name: "mplogin", sync: false, async: { arguments: { "x-message-ttl": 60000 } } }] });
    const refused = await runCli(["apply", "-f", changed, "--cluster", "async"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/refusing to apply 1 destructive change without --allow-destructive/);
    expect((await getQueue(async, "mplogin.async")).arguments).toEqual({});

    const ok = await runCli(["apply", "-f", changed, "--cluster", "async", "--allow-destructive"]);
    expect(ok.stderr).not.toMatch(/Error/);
    expect(ok.code).toBe(0);
    expect((await getQueue(async, "mplogin.async")).arguments).toEqual({ "x-message-ttl": 60000 });
    const bindings = (await listBindings(async)).map((b) => `${b.source}>${b.destination}:${b.routing_key}`).sort();
    expect(bindings).toEqual(["edge>mplogin.async:mplogin.async.#", "mplogin>mplogin.async:mplogin.async.#"]);
    expect((await runCli(["plan", "-f", changed, "--cluster", "async", "--detailed-exitcode"])).code).toBe(0);
  });

  it("never deletes a queue that holds messages without --allow-data-loss", async () => {
    const { file, sync, async } = fresh(["mplogin", "mpold"]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    await publish(async, "mpold", "mpold.async.cleanup", ["m1", "m2", "m3"]);
    const smaller = writeTopology({ sync, async, services: ["mplogin"] });
    const plan = await runCli(["plan", "-f", smaller]);
    expect(plan.stdout).toContain("- delete queue mpold.async");
    expect(plan.stdout).toContain("- delete exchange mpold");

    const refused = await runCli(["apply", "-f", smaller, "--allow-destructive"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/refusing to drop messages/);
    expect(refused.stderr).toMatch(/mpold\.async \[holds 3 messages\]/);
    expect(await messageCount(async, "mpold.async")).toBe(3);
    // Nothing at all was changed on any cluster.
    expect(await getQueue(sync, "mpold.sync")).toBeDefined();

    const lossy = await runCli(["apply", "-f", smaller, "--allow-destructive", "--allow-data-loss"]);
    expect(lossy.code).toBe(0);
    expect(await getQueue(async, "mpold.async")).toBeUndefined();
    expect((await runCli(["plan", "-f", smaller, "--detailed-exitcode"])).code).toBe(0);
  });

  it("only touches its own namespace: other objects are neither deleted nor reported", async () => {
    const { file, sync } = fresh(["mplogin"]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    await withChannel(sync, async (ch) => {
      await ch.assertExchange("billing", "direct", { durable: true });
      await ch.assertQueue("billing.jobs", { durable: true });
      await ch.assertQueue("MPupper.sync", { durable: true });
      await ch.bindQueue("billing.jobs", "billing", "x");
      await ch.bindQueue("billing.jobs", "amq.topic", "mplogin.sync.#");
      await ch.bindQueue("mplogin.sync", "billing", "mplogin");
    });
    await api("PUT", `/api/policies/${vh(sync)}/user-limits`, { pattern: "^billing", definition: { "max-length": 10 }, "apply-to": "queues", priority: 1 });
    const plan = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(plan.stdout).toContain("No changes.");
    expect(plan.code).toBe(0);
  });
});

describe("what workers and the edge see", () => {
  it("a Celery/kombu worker's own declares match what topo made", async () => {
    const { file, sync, async } = fresh(["mplogin"]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    // kombu: Exchange('mplogin', 'topic') is durable, not auto-delete; Queue(durable=...) with no arguments.
    await withChannel(sync, async (ch) => {
      await ch.assertExchange("mplogin", "topic", { durable: true, autoDelete: false });
      await ch.assertQueue("mplogin.sync", { durable: false, autoDelete: false, exclusive: false });
      await ch.bindQueue("mplogin.sync", "mplogin", "mplogin.sync.#");
    });
    await withChannel(async, async (ch) => {
      await ch.assertExchange("mplogin", "topic", { durable: true, autoDelete: false });
      await ch.assertQueue("mplogin.async", { durable: true, autoDelete: false, exclusive: false });
      await ch.bindQueue("mplogin.async", "mplogin", "mplogin.async.#");
    });
    expect((await runCli(["plan", "-f", file, "--detailed-exitcode"])).code).toBe(0);
  });

  it("a task published by the edge reaches the right queue", async () => {
    const { file, sync, async } = fresh(["mplogin", "mpwallet"]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    await publish(sync, "mplogin", "mplogin.sync.register", ["a"], false);
    await publish(async, "mplogin", "mplogin.async.send_welcome_mail", ["b", "c"]);
    await publish(async, "mpwallet", "mpwallet.async.credit", ["d"]);
    expect(await messageCount(sync, "mplogin.sync")).toBe(1);
    expect(await messageCount(async, "mplogin.async")).toBe(2);
    expect(await messageCount(async, "mpwallet.async")).toBe(1);
    expect(await messageCount(sync, "mpwallet.sync")).toBe(0);
  });
});

describe("errors", () => {
  it("a wrong password names the cluster, says what to do and never prints the password", async () => {
    const sync = uniqueName("sync");
    const async = uniqueName("async");
    vhosts.push(sync, async);
    const secret = "Wr0ng-Pa55-Zebra";
    const file = writeTopology({ sync, async, services: ["mplogin"], credentials: { user: "guest", password: secret }, clusterExtra: {} });
    for (const cmd of ["plan", "apply"]) {
      const r = await runCli([cmd, "-f", file]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/cluster (sync|async):/);
      expect(r.stderr).toMatch(/401/);
      expect(r.stderr).toMatch(/hint: .*credentials/);
      expect(`${r.stdout}${r.stderr}`).not.toContain(secret);
    }
  });
});
