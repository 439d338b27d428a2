// Concurrency and faults: one apply at a time per cluster, a connection closed mid-apply, and
// which failures are retried.

import { createServer as createHttpServer, type RequestListener } from "node:http";
import { createServer as createTcpServer, type Server, type Socket } from "node:net";
import type { ClusterPlan, ClusterTarget } from "../../src/model.js";
import { executePlan, ExecutionStopped } from "../../src/broker/execute.js";
import amqplib from "amqplib";
import { describe, expect, it } from "vitest";
import { AmqpSession } from "../../src/broker/amqp.js";
import { amqpIdentity, managementIdentity } from "../../src/broker/identity.js";
import { amqplibModule } from "../../src/broker/raw-amqp.js";
import { ManagementClient } from "../../src/broker/http.js";
import { BrokerError, LockError } from "../../src/errors.js";
import { acquireLock } from "../../src/broker/lock.js";
import { adminManagementUrl, amqpUrl, api, broker, createVhost, messageCount, publish, runCli, uniqueName, vh, withChannel, writeTopology, testVhosts } from "../helpers/broker.js";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
// @ts-expect-error: a plain ESM module of the benchmark, without type declarations
import { serviceNames } from "../../bench/services.mjs";
import { CLI } from "../helpers/broker.js";
import { fragments } from "../helpers/fragments.js";
import { managementProxy } from "../helpers/proxy.js";

const { fresh } = testVhosts();

const names = serviceNames as (n: number) => string[];

describe("one apply at a time", () => {
  it("two applies started together both end cleanly and the broker ends as the file says", async () => {
    const { file } = fresh(names(150));
    // Two applies that wait on each other give up after --lock-timeout with "gave up", well
    // before the test's own timeout.
    const [a, b] = await Promise.all([runCli(["apply", "-f", file, "--lock-timeout", "30"]), runCli(["apply", "-f", file, "--lock-timeout", "30"])]);
    expect(a.stderr + b.stderr).not.toMatch(/Error|gave up/);
    expect([a.code, b.code]).toEqual([0, 0]);
    expect((await runCli(["plan", "-f", file, "--detailed-exitcode"])).code).toBe(0);
  });

  it("two saved plans applied together: one applies, the other finds the broker changed; neither waits out the lock", async () => {
    const { file } = fresh(names(50));
    const dir = mkdtempSync(join(tmpdir(), "topo-test-"));
    const outs = [join(dir, "a.json"), join(dir, "b.json")];
    for (const out of outs) expect((await runCli(["plan", "-f", file, "-o", out])).code).toBe(0);
    const runs = await Promise.all(outs.map((out) => runCli(["apply", out, "--lock-timeout", "30"])));
    const all = runs.map((r) => r.stderr).join("\n");
    expect(all).not.toMatch(/gave up/);
    expect(runs.map((r) => r.code).sort()).toEqual([0, 1]);
    expect(all).toMatch(/the saved plan is stale/);
    expect((await runCli(["plan", "-f", file, "--detailed-exitcode"])).code).toBe(0);
  });

  it("a policy that expires idle queues does not take the lock from the apply that holds it", async () => {
    const { sync } = fresh(["mplogin"]);
    await createVhost(sync);
    // A vhost-wide clean-up of idle queues, as operators set one, that matches topo's lock queue.
    expect((await api("PUT", `/api/policies/${encodeURIComponent(sync)}/idle`, { pattern: "^topo\\.", definition: { expires: 1000 }, "apply-to": "queues" })).status).toBeLessThan(300);
    const u = new URL(broker().amqpUrl);
    const user = decodeURIComponent(u.username || "guest");
    const password = decodeURIComponent(u.password || "guest");
    const management = { baseUrl: broker().mgmtBase, username: user, password, display: broker().mgmtBase };
    const target: ClusterTarget = {
      name: "sync",
      amqp: { protocol: "amqp", hostname: u.hostname, port: Number(u.port || 5672), username: user, password, vhost: sync, display: `amqp://***@${u.hostname}/${sync}` },
      management,
      tls: {},
    };
    const http = new ManagementClient("sync", management, {});
    const lock = { queue: "topo.mp.lock", log: () => undefined };
    const holder = await AmqpSession.open(target);
    try {
      await acquireLock(holder, http, sync, { ...lock, timeoutMs: 5_000 });
      // Three times the policy's expiry: an unused queue would be gone.
      await new Promise((r) => setTimeout(r, 3_000));
      expect((await api("GET", `/api/queues/${encodeURIComponent(sync)}/topo.mp.lock`)).status).toBe(200);
      const other = await AmqpSession.open(target);
      try {
        await expect(acquireLock(other, http, sync, { ...lock, timeoutMs: 500, pollMs: 100 })).rejects.toBeInstanceOf(LockError);
      } finally {
        await other.close();
      }
    } finally {
      await holder.close();
    }
  });

  it("a lock held past --lock-timeout is lock_timeout, with the cluster and the lock queue in --json", async () => {
    const { sync, file } = fresh(["mplogin"]);
    await createVhost(sync);
    const other = await holdLock(sync);
    try {
      const r = await runCli(["apply", "-f", file, "--cluster", "sync", "--lock-timeout", "1", "--json"]);
      expect(r.code).toBe(1);
      expect(JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('{"error"'))).error).toMatchObject({ code: "lock_timeout", cluster: "sync", object: "queue topo.mp.lock" });
    } finally {
      await other.release();
    }
  });

  it("a lock deleted under a running apply (rabbitmqctl delete_queue) stops its writes: it takes the lock again and plans anew before writing more", async (ctx) => {
    const ctl = await localCtl();
    if (!ctl) {
      console.warn("skipped: the suite's broker is not this machine's rabbitmqctl node, so the test cannot delete the lock queue");
      return ctx.skip();
    }
    const { async, file: small } = fresh(["mpkeep"]);
    const big = writeTopology({ sync: uniqueName("unused"), async, services: ["mpkeep", ...names(2000).map((name) => ({ name, sync: false }))] });
    expect((await runCli(["apply", "-f", small])).code).toBe(0);
    // Two channels, not 64: rabbitmqctl takes a second or more to start, several beside other
    // suites, and at full speed the apply could finish its writes before the lock is gone.
    const child = startCli(["apply", "-f", big, "--cluster", "async", "--parallelism", "2"]);
    await child.waitFor(/applying/);
    ctl("delete_queue", "-p", async, "topo.mp.lock");
    const code = await child.exited;
    expect(child.stderr()).toMatch(/the apply lock \(queue topo\.mp\.lock in vhost \S+\) was deleted while this apply held it/);
    expect(child.stderr()).toMatch(/cluster async: reconnecting in/);
    expect(code, child.stderr()).toBe(0);
    expect((await runCli(["plan", "-f", big, "--cluster", "async", "--detailed-exitcode"])).code).toBe(0);
  });

  it("a vhost deleted under a running apply is named as deleted, not as a permission to grant, also while RabbitMQ still lists it", async () => {
    // RabbitMQ removes a vhost's permissions at once, and lists the vhost until it has deleted
    // what it held: a vhost of a few thousand objects was still listed when apply looked, and
    // apply told to grant guest the rights it had.
    const held = names(1500).map((name) => ({ name: `${name}_held`, sync: false }));
    const { async, file: small } = fresh(["mpkeep", ...held]);
    const big = writeTopology({ sync: uniqueName("unused"), async, services: ["mpkeep", ...held, ...names(2000).map((name) => ({ name, sync: false }))] });
    expect((await runCli(["apply", "-f", small])).code).toBe(0);
    const child = startCli(["apply", "-f", big, "--cluster", "async"]);
    await child.waitFor(/applying/);
    expect((await api("DELETE", `/api/vhosts/${vh(async)}`)).status).toBe(204);
    expect(await child.exited).toBe(1);
    expect(child.stderr()).toMatch(new RegExp(`cluster async: vhost ${async} no longer exists: it was deleted while apply ran`));
    expect(child.stderr()).toMatch(/hint: if the vhost was meant to go, remove cluster async from the file; otherwise topo apply -f \S+ --cluster async creates it again/);
    expect(child.stderr()).not.toMatch(/set_permissions/);
  });

  it("a vhost deleted while a replace moves its messages is named as deleted, with the messages gone with it, not as a replace stopped half-way with them in a holding queue", async () => {
    const { async, file } = fresh([{ name: "mpkeep", sync: false }]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    await publish(async, "mpkeep", "mpkeep.async.t", Array.from({ length: 3000 }, (_, i) => `m${i}`));
    const changed = writeTopology({ sync: uniqueName("unused"), async, services: [{ name: "mpkeep", sync: false, async: { arguments: { "x-max-priority": 3 } } }] });
    const child = startCli(["apply", "-f", changed, "--cluster", "async", "--allow-destructive"]);
    await child.waitFor(/moving its messages back/);
    expect((await api("DELETE", `/api/vhosts/${vh(async)}`)).status).toBe(204);
    expect(await child.exited).toBe(1);
    expect(child.stderr()).toMatch(new RegExp(`cluster async: vhost ${async} no longer exists: it was deleted while apply ran, with everything it held`));
    expect(child.stderr()).not.toMatch(/stopped half-way|may be on topo\.hold/);
  });

  it("a queue of the lock's name that is not exclusive (something else declared it) is named at once, in plan and by apply: no waiting for an apply that does not exist", async () => {
    const { sync, file } = fresh(["mplogin"]);
    await createVhost(sync);
    await withChannel(sync, (ch) => ch.assertQueue("topo.mp.lock", { durable: false, exclusive: false }));
    const plan = await runCli(["plan", "-f", file, "--cluster", "sync"]);
    expect(plan.stdout).toContain("! warning: queue topo.mp.lock is not exclusive, so it is no apply's lock, and apply cannot take its lock while it is there");
    const started = Date.now();
    const r = await runCli(["apply", "-f", file, "--cluster", "sync", "--lock-timeout", "60", "--json"]);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('{"error"'))).error).toMatchObject({ code: "broker_refused", cluster: "sync", object: "queue topo.mp.lock" });
    expect(r.stderr).toMatch(/queue topo\.mp\.lock in vhost \S+ is not exclusive, so it is no apply's lock/);
    expect(r.stderr).not.toMatch(/held by another topo apply|gave up/);
    expect(r.stderr).toMatch(/hint: something other than topo declared it: once nothing uses it, delete it \(rabbitmqadmin -V \S+ delete queue name=topo\.mp\.lock\)/);
  });

  // Two applies of one file each took one cluster's lock first and then waited for the other's,
  // until --lock-timeout. Every apply of several clusters now takes their locks one after another
  // in one order (and writes only once it holds them all), and lets go of each as soon as that
  // cluster is done: two applies cannot each hold a lock the other waits for.
  it("an apply of two clusters waits for the first lock in the order without writing or holding the second, and lets go of each when done", async () => {
    const { sync, async, file } = fresh(["mplogin"]);
    await createVhost(sync);
    await createVhost(async);
    // The vhosts sort async before sync (same broker), so async's lock is the first.
    const other = await holdLock(async);
    const a = startCli(["apply", "-f", file]);
    try {
      await a.waitFor(/cluster async: waiting for the apply lock held by the other apply/);
      await new Promise((r) => setTimeout(r, 1000));
      expect(a.stderr()).not.toMatch(/applying|applied/);
      // Nothing written on sync, and its lock is free: another apply of sync alone runs at once.
      expect((await api("GET", `/api/queues/${encodeURIComponent(sync)}/topo.mp.lock`)).status).toBe(404);
      const b = await runCli(["apply", "-f", file, "--cluster", "sync", "--lock-timeout", "5"]);
      expect(b.stderr).not.toMatch(/waiting for the apply lock/);
      expect(b.code).toBe(0);
    } finally {
      await other.release();
    }
    expect(await a.exited).toBe(0);
    // By then the other apply had made sync's changes: this one found nothing left there.
    expect(a.stderr()).toMatch(/cluster sync: nothing left to do/);
    expect((await runCli(["plan", "-f", file, "--detailed-exitcode"])).code).toBe(0);
  });

  // A saved plan holds every cluster's lock until every cluster has been checked under its lock,
  // so it must take them in one order that every apply agrees on, or two would deadlock.
  it("a saved plan takes the locks one after another in one order, holding none while it waits for the first", async () => {
    const { sync, async, file } = fresh(["mplogin"]);
    await createVhost(sync);
    await createVhost(async);
    const out = join(mkdtempSync(join(tmpdir(), "topo-test-")), "plan.json");
    expect((await runCli(["plan", "-f", file, "-o", out])).code).toBe(0);
    // The vhosts sort async before sync (same broker), so async's lock is the first.
    const other = await holdLock(async);
    const a = startCli(["apply", out]);
    try {
      await a.waitFor(/cluster async: waiting for the apply lock held by the other apply/);
      await new Promise((r) => setTimeout(r, 1000));
      expect(a.stderr()).not.toMatch(/cluster sync: waiting/);
      expect((await api("GET", `/api/queues/${encodeURIComponent(sync)}/topo.mp.lock`)).status).toBe(404);
    } finally {
      await other.release();
    }
    expect(await a.exited).toBe(0);
    expect((await runCli(["plan", "-f", file, "--detailed-exitcode"])).code).toBe(0);
  });

  // Two applies of one file started together both create its vhosts: the second PUT answers at
  // once, before the vhost runs, and RabbitMQ 3.10 refused the second apply's connection with
  // 541 "vhost ... is down" (and topo called it a missing permission). A vhost stopped on the
  // node gives the same refusal, deterministically.
  it("a connection refused because the vhost is not running yet is retried, and not blamed on permissions", async (ctx) => {
    const ctl = await localCtl();
    if (!ctl) {
      console.warn("skipped: the suite's broker is not this machine's rabbitmqctl node, so the test cannot stop a vhost on it");
      ctx.skip();
      return;
    }
    const { sync, async, file } = fresh(["mplogin"]);
    await createVhost(sync);
    await createVhost(async);
    ctl("eval", `rabbit_vhost_sup_sup:stop_and_delete_vhost(<<"${async}">>).`);
    expect(ctl("list_vhosts", "name", "cluster_state")).toMatch(new RegExp(`${async}\\s+\\[\\{[^,]+,\\s*stopped\\}\\]`));
    const a = startCli(["apply", "-f", file]);
    await new Promise((r) => setTimeout(r, 1000));
    ctl("restart_vhost", "-p", async);
    expect(await a.exited, a.stderr()).toBe(0);
    expect(a.stderr()).not.toMatch(/has no permissions/);
    expect((await runCli(["plan", "-f", file, "--detailed-exitcode"])).code).toBe(0);
  });

  // The other window of the same race: the vhost exists, but its creator has not been granted
  // rights on it yet, and RabbitMQ answers 530 "refused for user".
  it("a vhost that refuses the user at first and then lets it in (its creator's rights came late) is waited for", async () => {
    const name = uniqueName("late");
    expect((await api("PUT", `/api/users/${name}`, { password: "pw-late", tags: "" })).status).toBeLessThan(300);
    try {
      const { async, file } = fresh(["mplogin"], { credentials: { user: name, password: "pw-late" }, clusterExtra: { async: { management: adminManagementUrl() } } });
      await createVhost(async);
      const a = startCli(["apply", "-f", file, "--cluster", "async"]);
      // Rights are granted once apply has been refused and waits, not after a fixed sleep: on a
      // loaded machine apply could reach the vhost only after the grant, and never be refused.
      await a.waitFor(/refused the connection \(530 .*\); trying again/);
      expect(a.stderr()).not.toMatch(/Error/);
      await api("PUT", `/api/permissions/${encodeURIComponent(async)}/${name}`, { configure: ".*", write: ".*", read: ".*" });
      expect(await a.exited, a.stderr()).toBe(0);
      expect(a.stderr()).toContain(`cluster async: vhost "${async}" refused the connection (530 NOT_ALLOWED - access to vhost '${async}' refused for user '${name}'); trying again for up to 11 s`);
    } finally {
      await api("DELETE", `/api/users/${name}`);
    }
  });

  it("a second apply waits for the lock, says who holds it since when, then gives up; plan takes no lock", async () => {
    const { sync, async, file } = fresh(["mplogin"]);
    await createVhost(sync);
    await createVhost(async);
    const holder = await amqplib.connect(amqpUrl(async));
    try {
      const ch = await holder.createChannel();
      await ch.assertQueue("topo.mp.lock", { exclusive: true, arguments: { "x-topo-holder": "ci-runner-7 pid 42", "x-topo-since": "2026-11-24T01:02:03.000Z" } });
      const plan = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
      expect(plan.code).toBe(2);
      const started = Date.now();
      const r = await runCli(["apply", "-f", file, "--cluster", "async", "--lock-timeout", "2"]);
      expect(r.code).toBe(1);
      expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
      expect(r.stderr).toMatch(/waiting for the apply lock held by ci-runner-7 pid 42 since 2026-11-24T01:02:03.000Z/);
      expect(r.stderr).toMatch(/gave up after 2 s/);
      expect(r.stderr).toMatch(/hint: .*--lock-timeout/);
    } finally {
      await holder.close();
    }
    // The lock went with its connection: nothing stale is left.
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
  });
});

/** A cluster "async" (vhost v) whose management API is `server`, started here; its AMQP port answers nothing. */
async function fakeManagement(server: import("node:http").Server): Promise<{ http: ManagementClient; target: ClusterTarget }> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const management = { baseUrl: `http://127.0.0.1:${port}`, username: "u", password: "p", display: `http://127.0.0.1:${port}` };
  const target: ClusterTarget = {
    name: "async",
    amqp: { protocol: "amqp", hostname: "127.0.0.1", port: 1, username: "u", password: "p", vhost: "v", display: "amqp://u:***@127.0.0.1:1/v" },
    management,
    tls: {},
  };
  return { http: new ManagementClient("async", management, {}), target };
}

/**
 * rabbitmqctl for the suite's broker, when it is this machine's node (not a testcontainers
 * fallback); undefined otherwise.
 */
async function localCtl(): Promise<((...args: string[]) => string) | undefined> {
  const ctl = (...args: string[]) => execFileSync("rabbitmqctl", ["-q", ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 });
  try {
    const node = ctl("eval", "node().").trim();
    const overview = (await api("GET", "/api/overview")).body as { node?: string };
    return overview.node === node ? ctl : undefined;
  } catch {
    return undefined;
  }
}

/** A CLI run in the background, whose stderr can be waited on while it runs. */
function startCli(args: string[]): { stderr: () => string; waitFor: (re: RegExp) => Promise<void>; exited: Promise<number> } {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  child.stdout.resume();
  const exited = new Promise<number>((r) => child.on("exit", (code) => r(code ?? -1)));
  const waitFor = async (re: RegExp) => {
    const deadline = Date.now() + 30_000;
    while (!re.test(stderr)) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`never printed ${re}; stderr:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return { stderr: () => stderr, waitFor, exited };
}

/** Holds the apply lock of a vhost, as another apply would, until released. */
async function holdLock(vhost: string): Promise<{ release: () => Promise<void> }> {
  const conn = await amqplib.connect(amqpUrl(vhost));
  const ch = await conn.createChannel();
  await ch.assertQueue("topo.mp.lock", { exclusive: true, arguments: { "x-topo-holder": "the other apply" } });
  return { release: () => conn.close() };
}

/**
 * Start a large apply on the async cluster and close its AMQP connection through the management
 * API as soon as it starts writing. Returns the exit code and stderr.
 *
 * The management API lists a new connection only with its next statistics round (every 5 s by
 * default), and a busy machine can finish the apply before that. So the test holds the apply
 * lock until the apply's connection is listed, then lets it go: the apply is caught writing.
 */
async function applyAndCloseConnection(
  args: string[],
  vhost: string,
  reason?: string,
  afterClose?: () => Promise<void>,
  /** What apply's stderr shows when the connection is closed: once it writes, by default. */
  when: RegExp = /applying/,
): Promise<{ code: number; stderr: string; closed: boolean }> {
  const holder = await holdLock(vhost);
  const child = startCli(["apply", ...args]);

  // Other test files run applies on clusters named "async" at the same time: the vhost tells this
  // test's connection from theirs.
  const findConnection = async (): Promise<string | undefined> => {
    const conns = (await api("GET", "/api/connections?columns=name,vhost,client_properties")).body as any[];
    return conns.find((c) => c.vhost === vhost && c.client_properties?.connection_name === "topo async")?.name;
  };
  let connection: string | undefined;
  const deadline = Date.now() + 30_000;
  try {
    while (!(connection = await findConnection()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  } finally {
    await holder.release();
  }

  let closed = false;
  while (connection && !closed && Date.now() < deadline) {
    if (when.test(child.stderr())) {
      const headers: Record<string, string> = reason ? { "x-reason": reason } : {};
      closed = (await api("DELETE", `/api/connections/${encodeURIComponent(connection)}`, undefined, headers)).status === 204;
      if (!closed) break;
      await afterClose?.();
    } else {
      await new Promise((r) => setTimeout(r, 5));
    }
  }
  return { code: await child.exited, stderr: child.stderr(), closed };
}

/** The reason a shutting-down node gives its clients: apply takes it for a restart and reconnects. */
const SHUTDOWN = "broker forced connection closure with reason 'shutdown'";

describe("faults mid-apply", () => {
  function bigTopology() {
    const { async, file: small } = fresh(["mpkeep"]);
    const big = writeTopology({ sync: uniqueName("unused"), async, services: ["mpkeep", ...names(2000).map((name) => ({ name, sync: false }))] });
    return { async, small, big };
  }

  it("a connection closed by an operator stops apply with what was and was not done; a re-run converges and no message is lost", async () => {
    const { async, small, big } = bigTopology();
    expect((await runCli(["apply", "-f", small])).code).toBe(0);
    await publish(async, "mpkeep", "mpkeep.async.job", ["k1", "k2", "k3", "k4"]);
    const { code, stderr, closed } = await applyAndCloseConnection(["-f", big, "--cluster", "async"], async);
    expect(closed).toBe(true);
    expect(code).toBe(1);
    expect(stderr).toMatch(/CONNECTION_FORCED - Closed via management plugin/);
    expect(stderr).toMatch(/cluster async: \d+ of \d+ changes were confirmed made before the failure; not confirmed \(writes sent before it may have been made too: topo plan --cluster async shows what is left\):/);
    expect(stderr).toMatch(/hint: every step is idempotent/);
    expect(stderr).not.toMatch(/\n\s+at /);
    expect(await messageCount(async, "mpkeep.async")).toBe(4);

    const again = await runCli(["apply", "-f", big, "--cluster", "async"]);
    expect(again.code).toBe(0);
    expect((await runCli(["plan", "-f", big, "--cluster", "async", "--detailed-exitcode"])).code).toBe(0);
    expect(await messageCount(async, "mpkeep.async")).toBe(4);
  });

  it("a connection an operator closes with a reason of their own (as the management UI's form and rabbitmqctl close_connection send) also stops apply", async () => {
    const { async, small, big } = bigTopology();
    expect((await runCli(["apply", "-f", small])).code).toBe(0);
    const { code, stderr, closed } = await applyAndCloseConnection(["-f", big, "--cluster", "async"], async, "incident 4711: stop the deploy");
    expect(closed).toBe(true);
    expect(stderr).toMatch(/CONNECTION_FORCED - incident 4711: stop the deploy/);
    expect(stderr).not.toMatch(/reconnecting in/);
    expect(stderr).toMatch(/cluster async: \d+ of \d+ changes were confirmed made before the failure; not confirmed \(writes sent before it may have been made too: topo plan --cluster async shows what is left\):/);
    expect(code).toBe(1);
  });

  it("a connection lost to a broker restart is retried: apply reconnects, takes the lock again and finishes", async () => {
    const { async, small, big } = bigTopology();
    expect((await runCli(["apply", "-f", small])).code).toBe(0);
    await publish(async, "mpkeep", "mpkeep.async.job", ["k1", "k2"]);
    const { code, stderr, closed } = await applyAndCloseConnection(["-f", big, "--cluster", "async"], async, SHUTDOWN);
    expect(closed).toBe(true);
    expect(stderr).toMatch(/CONNECTION_FORCED - broker forced connection closure/);
    expect(stderr).toMatch(/cluster async: reconnecting in \d+\.\d s \(attempt 2 of 3\)/);
    expect(stderr).not.toMatch(/cluster async: cluster async:/);
    expect(code).toBe(0);
    expect((await runCli(["plan", "-f", big, "--cluster", "async", "--detailed-exitcode"])).code).toBe(0);
    expect(await messageCount(async, "mpkeep.async")).toBe(2);
  });
});

describe("a reconnect that fails", () => {
  // A node that went down mid-apply and refuses the reconnect: the error is the reconnect's (a
  // refused login here, a refused connect for a node still down), but the changes made before the
  // connection was lost are counted all the same, and the apply is incomplete, not unreachable.
  it("still counts the changes made before the connection was lost (apply_incomplete)", async () => {
    const { async, file: small } = fresh(["mpkeep"]);
    const big = writeTopology({ sync: uniqueName("unused"), async, services: ["mpkeep", ...names(2000).map((name) => ({ name, sync: false }))] });
    expect((await runCli(["apply", "-f", small])).code).toBe(0);
    // The test broker's guest loses its rights on this test's own vhost: the reconnect is refused.
    const refuse = async () => void (await api("DELETE", `/api/permissions/${vh(async)}/guest`));
    const { code, stderr, closed } = await applyAndCloseConnection(["-f", big, "--cluster", "async"], async, SHUTDOWN, refuse, /changes made \(25%\)/);
    expect(closed).toBe(true);
    expect(stderr).toMatch(/cluster async: reconnecting in/);
    expect(code).toBe(1);
    // A floor, with what was not confirmed listed: writes in flight may have landed.
    const m = /cluster async: (\d+) of (\d+) changes were confirmed made before apply stopped \(writes sent when the connection was lost may have been made too: topo plan --cluster async shows what is left\); not confirmed:\n {4}[+~-]/.exec(stderr);
    expect(m, stderr).not.toBeNull();
    expect(stderr).toMatch(/hint: every step is idempotent/);
    await api("PUT", `/api/permissions/${vh(async)}/guest`, { configure: ".*", write: ".*", read: ".*" });
    const left = JSON.parse((await runCli(["plan", "-f", big, "--cluster", "async", "--json"])).stdout).clusters[0].actions.length;
    expect(Number(m![2]) - left).toBeGreaterThanOrEqual(Number(m![1]));
  });
});

describe("a saved plan across a lost connection", () => {
  function bigPlan() {
    const { async, file: small } = fresh(["mpkeep"]);
    const big = writeTopology({ sync: uniqueName("unused"), async, services: ["mpkeep", ...names(2000).map((name) => ({ name, sync: false }))] });
    const out = join(mkdtempSync(join(tmpdir(), "topo-test-")), "plan.json");
    return { async, small, big, out };
  }

  it("reconnects and finishes what is left of the saved plan", async () => {
    const { async, small, big, out } = bigPlan();
    expect((await runCli(["apply", "-f", small])).code).toBe(0);
    expect((await runCli(["plan", "-f", big, "--cluster", "async", "-o", out])).code).toBe(0);
    const { code, stderr, closed } = await applyAndCloseConnection([out], async, SHUTDOWN);
    expect(closed).toBe(true);
    expect(stderr).toMatch(/cluster async: reconnecting in/);
    expect(code, stderr).toBe(0);
    expect((await runCli(["plan", "-f", big, "--cluster", "async", "--detailed-exitcode"])).code).toBe(0);
  });

  it("stops when what is left after the reconnect holds a change the saved plan does not", async () => {
    const { async, small, big, out } = bigPlan();
    expect((await runCli(["apply", "-f", small])).code).toBe(0);
    expect((await runCli(["plan", "-f", big, "--cluster", "async", "-o", out])).code).toBe(0);
    // While apply waits to reconnect, someone deletes a binding the plan did not touch.
    const unbind = async () => {
      expect((await api("DELETE", `/api/bindings/${encodeURIComponent(async)}/e/mpkeep/q/mpkeep.async/${encodeURIComponent("mpkeep.async.#")}`)).status).toBe(204);
    };
    const { code, stderr, closed } = await applyAndCloseConnection([out], async, SHUTDOWN, unbind);
    expect(closed).toBe(true);
    expect(code).toBe(1);
    expect(stderr).toMatch(/cluster async: the connection was lost after \d+ changes? of the saved plan (was|were) made, and the broker is no longer as the plan left it:\n(.*\n)*  cluster async: not in the plan: create binding mpkeep -> mpkeep\.async/);
    expect(stderr).toMatch(/nothing more was written to cluster async/);
    expect(stderr).toMatch(/hint: run topo plan -o FILE again, review what is left, and apply that/);
    // The binding stays deleted: the retry wrote nothing.
    expect((await api("GET", `/api/bindings/${encodeURIComponent(async)}/e/mpkeep/q/mpkeep.async`)).body).toEqual([]);
  });

  it("stops when, after the reconnect, an object apply had made is gone again: what the broker confirmed must be as apply made it", async () => {
    const { async, small, big, out } = bigPlan();
    expect((await runCli(["apply", "-f", small])).code).toBe(0);
    expect((await runCli(["plan", "-f", big, "--cluster", "async", "-o", out])).code).toBe(0);
    // A quarter of the changes are made (queues are declared first): the first of them, long
    // confirmed, is deleted by another hand while apply waits to reconnect.
    let gone = "";
    const undo = async () => {
      const queues = ((await api("GET", `/api/queues/${vh(async)}?columns=name`)).body as { name: string }[]).map((q) => q.name).filter((n) => n.startsWith("mpsvc_"));
      gone = queues.sort()[0] as string;
      expect((await api("DELETE", `/api/queues/${vh(async)}/${encodeURIComponent(gone)}`)).status).toBe(204);
    };
    const { code, stderr, closed } = await applyAndCloseConnection([out], async, SHUTDOWN, undo, /changes made \(25%\)/);
    expect(closed).toBe(true);
    expect(stderr).toMatch(/cluster async: reconnecting in/);
    expect(code, stderr).toBe(1);
    expect(stderr).toContain(`    queue ${gone}: deleted since apply made it`);
    expect(stderr).toMatch(/nothing more was written to cluster async/);
  });

  it("stops when, after the reconnect, an object the plan does not touch changed, though what is left of the plan is the same", async () => {
    const { async, small, big, out } = bigPlan();
    expect((await runCli(["apply", "-f", small])).code).toBe(0);
    expect((await runCli(["plan", "-f", big, "--cluster", "async", "-o", out])).code).toBe(0);
    // While apply waits to reconnect, someone caps every service queue with a policy of their own.
    const cap = async () => {
      expect((await api("PUT", `/api/policies/${vh(async)}/cap`, { pattern: "^mp", definition: { "max-length": 1 }, "apply-to": "queues", priority: 9 })).status).toBeLessThan(300);
    };
    const { code, stderr, closed } = await applyAndCloseConnection([out], async, SHUTDOWN, cap);
    expect(closed).toBe(true);
    expect(stderr).toMatch(/cluster async: reconnecting in/);
    expect(code, stderr).toBe(1);
    expect(stderr).toMatch(/cluster async: the connection was lost after \d+ changes? of the saved plan (was|were) made, and the broker is no longer as the plan left it:\n  cluster async: the broker's objects changed since the plan was made \(1 object\):\n    policy cap: created since the plan/);
    expect(stderr).toMatch(/nothing more was written to cluster async/);
  });
});

describe("brokers that look alike", () => {
  // Two brokers alike in cluster name, version and Erlang pass the identity check. Here the
  // management API is a proxy that shows another vhost of the test broker in place of the url's:
  // to topo it is a look-alike broker that holds the same vhost name.
  it("apply refuses before any AMQP write when the management API does not see the lock AMQP took", async () => {
    const { async, file } = fresh(["mplogin"]);
    const shadow = uniqueName("shadow");
    await createVhost(async);
    await createVhost(shadow);
    const proxy = await managementProxy({ rewrite: (path) => path.split(encodeURIComponent(async)).join(encodeURIComponent(shadow)) });
    try {
      const text = readFileSync(file, "utf8").replace(new RegExp(`("async": \\{\\s*"url": "[^"]+",\\s*"management": )"[^"]+"`), `$1"${proxy.url}"`);
      expect(text).toContain(`127.0.0.1:${proxy.port}`);
      writeFileSync(file, text);
      const r = await runCli(["apply", "-f", file, "--cluster", "async", "--json"]);
      expect(r.code).toBe(1);
      // Each item of a listing names its vhost: the look-alike's are not the url's vhost's, and
      // apply stops at its first read, before it takes the lock or writes.
      expect(JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('{"error"'))).error.code).toBe("broker_unreachable");
      expect(r.stderr).toMatch(/cluster async: GET http:\/\/127\.0\.0\.1:\d+\/api\/\w+\/topo-test-async-\w+ -> not a management API answer: its item \d+ of \d+ \("[^"]*"\) is of vhost topo-test-shadow-\w+, so it is none of the \w+ of vhost topo-test-async-\w+ asked for \(another request's answer, another vhost's, or one changed on the way\)/);
      // The url's vhost holds nothing of the topology: no exchange, no queue.
      const exchanges = (await api("GET", `/api/exchanges/${encodeURIComponent(async)}`)).body as { name: string }[];
      expect(exchanges.map((e) => e.name).filter((n) => n !== "" && !n.startsWith("amq."))).toEqual([]);
      expect((await api("GET", `/api/queues/${encodeURIComponent(async)}`)).body).toEqual([]);
    } finally {
      proxy.close();
      await api("DELETE", `/api/vhosts/${encodeURIComponent(shadow)}`);
    }
  });
});

describe("a management API that fails part-way", () => {
  /**
   * A proxy to the test broker's management API that answers `status` to the first request `fails`
   * matches, once a request `after` matches has passed.
   */
  async function failingProxy(fails: RegExp, status: number, after?: RegExp): Promise<{ url: string; close: () => void }> {
    let failed = false;
    let armed = after === undefined;
    return managementProxy({
      answer: (req, res) => {
        if (after?.test(`${req.method} ${req.url}`)) armed = true;
        else if (armed && !failed && fails.test(`${req.method} ${req.url}`)) {
          failed = true;
          req.resume();
          res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify({ error: "internal", reason: "injected by the test" }));
          return true;
        }
        return false;
      },
    });
  }

  /** Point a cluster's management URL at `url`. */
  function manageThrough(file: string, cluster: string, url: string): void {
    writeFileSync(file, readFileSync(file, "utf8").replace(new RegExp(`("${cluster}": \\{\\s*"url": "[^"]+",\\s*"management": )"[^"]+"`), `$1"${url}"`));
  }

  it("a read back that fails after every change was made says that the changes were made and not confirmed, and what shows it", async () => {
    // The mirroring policy is the last write over HTTP; the read back follows the AMQP writes.
    const { file } = fresh(["mplogin", "mpwallet"]);
    const proxy = await failingProxy(/^GET \/api\/bindings\//, 500, /^PUT \/api\/policies\//);
    const direct = readFileSync(file, "utf8");
    try {
      manageThrough(file, "sync", proxy.url);
      const r = await runCli(["apply", "-f", file, "--cluster", "sync", "--json"]);
      expect(r.code, r.stderr).toBe(1);
      expect(JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('{"error"'))).error.code).toBe("apply_incomplete");
      expect(r.stderr).toMatch(/cluster sync: GET http:\/\/127\.0\.0\.1:\d+\/api\/bindings\/.* -> 500 internal: injected by the test\n  cluster sync: apply made all \d+ changes, but this failure stopped it reading the cluster back to confirm that the broker matches the file/);
      expect(r.stderr).toMatch(/hint: topo plan -f \S+ --cluster sync shows whether anything is left, and topo apply -f \S+ --cluster sync finishes it/);
    } finally {
      proxy.close();
    }
    writeFileSync(file, direct);
    expect((await runCli(["plan", "-f", file, "--cluster", "sync", "--detailed-exitcode"])).code).toBe(0);
  });

  it("a failure outside the writes, after the vhost was created, counts the vhost and says a re-run finishes", async () => {
    // The lock is looked up over HTTP once apply holds it, after the vhost it lives in was made.
    const { async, file } = fresh(["mplogin"]);
    const proxy = await failingProxy(/^GET \/api\/queues\/[^/]+\/topo\.mp\.lock/, 500, /^PUT \/api\/vhosts\//);
    try {
      manageThrough(file, "async", proxy.url);
      const r = await runCli(["apply", "-f", file, "--cluster", "async", "--json"]);
      expect(r.code, r.stderr).toBe(1);
      expect(JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('{"error"'))).error.code).toBe("apply_incomplete");
      expect(r.stderr).toMatch(/cluster async: GET http:\/\/127\.0\.0\.1:\d+\/api\/queues\/.*\/topo\.mp\.lock -> 500 internal: injected by the test\n  cluster async: 1 of \d+ changes were confirmed made before apply stopped/);
      expect(r.stderr).toMatch(/hint: every step is idempotent: once the cause is fixed, run topo apply again and it does only what is left/);
      expect((await api("GET", `/api/vhosts/${encodeURIComponent(async)}`)).status).toBe(200);
    } finally {
      proxy.close();
    }
  });

  it("a grant refused after the vhost was created counts the vhost as made, lists the rest as not done, and says how to grant by hand", async () => {
    const { async, file } = fresh(["mplogin", "mpwallet"]);
    const proxy = await failingProxy(/^PUT \/api\/permissions\//, 500);
    try {
      manageThrough(file, "async", proxy.url);
      const r = await runCli(["apply", "-f", file, "--cluster", "async", "--json"]);
      expect(r.code, r.stderr).toBe(1);
      const e = JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('{"error"'))).error;
      // The vhost was written: the apply is incomplete, not refused before any write.
      expect(e.code).toBe("apply_incomplete");
      expect(r.stderr).toMatch(/cluster async: PUT http:\/\/127\.0\.0\.1:\d+\/api\/permissions\/.* -> 500 internal: injected by the test/);
      expect(r.stderr).toMatch(/cluster async: 1 of \d+ changes were confirmed made before the failure; not confirmed \(writes sent before it may have been made too: topo plan --cluster async shows what is left\):\n {4}\+ create exchange mplogin/);
      expect(r.stderr).not.toMatch(/shows what is left\):\n {4}\+ create vhost/);
      expect(r.stderr).toMatch(new RegExp(`hint: vhost "${async}" was created, but user ".*" was not granted its rights on it; if the next apply cannot connect to it, grant them: rabbitmqctl set_permissions -p ${async} `));
      expect((await api("GET", `/api/vhosts/${encodeURIComponent(async)}`)).status).toBe(200);
    } finally {
      proxy.close();
    }
  });
});

describe("retries", () => {
  it("HTTP 503 is retried with backoff; 403 is not, and says what to do", async () => {
    let calls = 0;
    const server = createHttpServer((req, res) => {
      calls++;
      if (req.url?.startsWith("/api/flaky")) {
        res.writeHead(calls < 3 ? 503 : 200, { "content-type": "application/json" });
        res.end(calls < 3 ? JSON.stringify({ error: "unavailable" }) : JSON.stringify({ ok: true }));
      } else {
        res.writeHead(403, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: "not_authorised", reason: "Access refused." }));
      }
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    const client = new ManagementClient("sync", { baseUrl: `http://127.0.0.1:${port}`, username: "u", password: "p", display: `http://127.0.0.1:${port}` }, {});
    try {
      expect(await client.get("/api/flaky")).toEqual({ ok: true });
      expect(calls).toBe(3);
      calls = 0;
      const err = await client.get("/api/forbidden").catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BrokerError);
      expect(calls).toBe(1);
      expect((err as BrokerError).message).toMatch(/cluster sync: GET .*\/api\/forbidden -> 403 not_authorised: Access refused\./);
      expect((err as BrokerError).hints.join(" ")).toMatch(/monitoring tag/);
    } finally {
      client.close();
      server.close();
    }
  });

  it("a refusal whose page echoes the Authorization header shows no piece of it, wherever the page is cut short", async () => {
    // A proxy's or a debug server's error page quotes the request; topo quotes 300 characters of a
    // page that is not JSON. The credentials straddled that cut for some lengths of what came first.
    let pad = 0;
    let decoded = false;
    const server = createHttpServer((req, res) => {
      const auth = req.headers.authorization ?? "";
      res.writeHead(500, { "content-type": "text/html" });
      // Or a page that says which user and password it refused, decoded.
      res.end(`${"x".repeat(pad)} Authorization: ${decoded ? Buffer.from(auth.slice("Basic ".length), "base64").toString() : auth}`);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    const password = "Secret-Password-4711";
    const client = new ManagementClient("sync", { baseUrl: `http://127.0.0.1:${port}`, username: "svc", password, display: `http://127.0.0.1:${port}` }, {}, { attempts: 1 });
    try {
      for (pad = 250; pad <= 300; pad++) {
        const err = (await client.get("/api/vhosts").catch((e: unknown) => e)) as BrokerError;
        expect(err).toBeInstanceOf(BrokerError);
        expect(err.message).toMatch(/cluster sync: GET .*\/api\/vhosts -> 500 x+/);
        const echoed = /Basic (\S+)/.exec(err.message)?.[1] ?? "";
        expect(Buffer.from(echoed, "base64").toString("latin1"), err.message).not.toMatch(/Secr/);
      }
      decoded = true;
      for (pad = 250; pad <= 300; pad++) {
        const err = (await client.get("/api/vhosts").catch((e: unknown) => e)) as BrokerError;
        for (const f of fragments(password)) expect(err.message).not.toContain(f);
      }
    } finally {
      client.close();
      server.close();
    }
  });

  it("a request's time limit runs from when it has a connection, not while it waits for one of the client's eight", async () => {
    // Each answer takes 150 ms; 48 requests over 8 connections take about 900 ms in all, so the
    // last ones wait far longer than the 500 ms limit before they are sent.
    let calls = 0;
    const server = createHttpServer((_req, res) => {
      calls++;
      setTimeout(() => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end("{}");
      }, 150);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    const endpoint = { baseUrl: `http://127.0.0.1:${port}`, username: "u", password: "p", display: `http://127.0.0.1:${port}` };
    const client = new ManagementClient("sync", endpoint, {}, { timeoutMs: 500, attempts: 1 });
    try {
      const started = Date.now();
      await Promise.all(Array.from({ length: 48 }, (_, i) => client.get(`/api/queues/v/q${i}`)));
      expect(Date.now() - started).toBeGreaterThan(800);
      expect(calls).toBe(48);
      /** What a client with a 0.3 s limit meets at a server of its own that answers with `handler`. */
      const metAt = async (handler: RequestListener, path: string): Promise<unknown> => {
        const other = createHttpServer(handler);
        await new Promise<void>((r) => other.listen(0, "127.0.0.1", r));
        const p = (other.address() as { port: number }).port;
        const c = new ManagementClient("sync", { ...endpoint, baseUrl: `http://127.0.0.1:${p}`, display: `http://127.0.0.1:${p}` }, {}, { timeoutMs: 300, attempts: 1 });
        const e = await c.get(path).catch((x: unknown) => x);
        c.close();
        other.closeAllConnections();
        other.close();
        return e;
      };
      // A request that has its connection and gets no answer still fails at the limit.
      const err = await metAt(() => undefined, "/api/overview");
      expect(err).toBeInstanceOf(BrokerError);
      expect((err as BrokerError).message).toMatch(/no answer within 0\.3 s/);

      // One that answers and never finishes did answer: the error says its answer was cut off.
      const err3 = await metAt((_req, res) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.write("[");
      }, "/api/queues/v");
      expect(err3).toBeInstanceOf(BrokerError);
      expect((err3 as BrokerError).message).toMatch(/GET http:\/\/127\.0\.0\.1:\d+\/api\/queues\/v -> 200, but the answer did not end within 0\.3 s/);
      expect((err3 as BrokerError).message).not.toMatch(/no answer/);
    } finally {
      client.close();
      server.close();
    }
  });

  // RabbitMQ 3.10 answers 500 to a permission's DELETE when the user is deleted while the request
  // runs (seen on the test broker: 213 of 1,200 such deletes raced with the user's). One apply
  // does that when a dropped user had rights on two clusters of one broker: one cluster revokes
  // its rights while the other deletes the user.
  it("a permission delete answered 500 because its user was deleted meanwhile is done; while the user exists the 500 stands", async () => {
    let userExists = false;
    const seen: string[] = [];
    const server = createHttpServer((req, res) => {
      // Without the parameter that makes each GET its own (http.ts FRESH_PARAM).
      seen.push(`${req.method} ${(req.url ?? "").replace(/[?&]topo_fresh=[^&]*$/, "")}`);
      if (req.method === "DELETE") {
        res.writeHead(500);
        res.end();
      } else {
        res.writeHead(userExists ? 200 : 404, { "content-type": "application/json" });
        res.end(JSON.stringify(userExists ? { name: "login", tags: [] } : { error: "Object Not Found", reason: "Not Found" }));
      }
    });
    const { http, target } = await fakeManagement(server);
    const plan: ClusterPlan = {
      cluster: "async",
      endpoint: target.amqp.display,
      vhost: "v",
      degraded: [],
      warnings: [],
      actions: [
        { op: "delete", key: "topic-permission login amq.topic", before: { kind: "topic-permission", user: "login", exchange: "amq.topic", write: ".*", read: ".*" } },
        { op: "delete", key: "permission login", before: { kind: "permission", user: "login", configure: ".*", write: ".*", read: ".*" } },
      ],
    };
    const ctx = { target, http, amqp: () => Promise.reject(new Error("no AMQP for rights")), log: () => undefined };
    try {
      await executePlan(plan, ctx, { allowDataLoss: false, concurrency: 1 });
      // The permission first, then the topic permissions (a user without the first cannot publish at all).
      expect(seen).toEqual(["DELETE /api/permissions/v/login", "GET /api/users/login", "DELETE /api/topic-permissions/v/login", "GET /api/users/login"]);
      userExists = true;
      const err = await executePlan(plan, ctx, { allowDataLoss: false, concurrency: 1 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ExecutionStopped);
      expect((err as ExecutionStopped).failure.status).toBe(500);
      expect((err as ExecutionStopped).message).toMatch(/DELETE .*\/api\/permissions\/v\/login -> 500/);
      expect((err as ExecutionStopped).left).toHaveLength(2);
    } finally {
      http.close();
      server.close();
    }
  });

  // Seen in a CI run: one cluster revoked a dropped user's rights in its vhost while the other
  // deleted the user, and RabbitMQ answered the user's DELETE with 500.
  it("a user delete answered 500 is done if the user is gone, sent again (twice at most) while it exists", async () => {
    let deletes = 0;
    let failFirst = 1;
    const seen: string[] = [];
    const server = createHttpServer((req, res) => {
      // Without the parameter that makes each GET its own (http.ts FRESH_PARAM).
      seen.push(`${req.method} ${(req.url ?? "").replace(/[?&]topo_fresh=[^&]*$/, "")}`);
      if (req.method === "DELETE") {
        deletes++;
        res.writeHead(deletes <= failFirst ? 500 : 204);
        res.end();
      } else {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ name: "pay", tags: [] }));
      }
    });
    const { http, target } = await fakeManagement(server);
    const plan: ClusterPlan = { cluster: "async", endpoint: target.amqp.display, vhost: "v", degraded: [], warnings: [], actions: [{ op: "delete", key: "user|pay", before: { kind: "user", name: "pay", tags: ["topo.mp"] } }] };
    const ctx = { target, http, amqp: () => Promise.reject(new Error("no AMQP for users")), log: () => undefined };
    try {
      // 500 once, the user still there: sent again, and done.
      await executePlan(plan, ctx, { allowDataLoss: false, concurrency: 1 });
      expect(seen).toEqual(["DELETE /api/users/pay", "GET /api/users/pay", "DELETE /api/users/pay"]);
      // 500 every time: the third stands.
      seen.length = 0;
      deletes = 0;
      failFirst = 99;
      const err = await executePlan(plan, ctx, { allowDataLoss: false, concurrency: 1 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ExecutionStopped);
      expect((err as ExecutionStopped).message).toMatch(/DELETE .*\/api\/users\/pay -> 500/);
      expect(seen.filter((x) => x.startsWith("DELETE"))).toHaveLength(3);
    } finally {
      http.close();
      server.close();
    }
  });

  it("an AMQP connection refused while a node boots is retried within a bound", async () => {
    let accepted = 0;
    const { server, target } = await fakeAmqpPort((sock) => {
      accepted++;
      sock.destroy();
    });
    try {
      const err = await AmqpSession.open(target, { connectAttempts: 3 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BrokerError);
      expect(accepted).toBe(3);
      expect((err as BrokerError).message).toMatch(/cluster async: connect amqp:\/\/u:\*\*\*@127\.0\.0\.1/);
    } finally {
      server.close();
    }
  });

  it("a broker that takes the connection and says nothing (paused, stopped) is given up on after two connects, each try said", async () => {
    let accepted = 0;
    const held: import("node:net").Socket[] = [];
    const { server, target } = await fakeAmqpPort((sock) => {
      accepted++;
      held.push(sock);
    });
    const logged: string[] = [];
    try {
      const began = Date.now();
      // A reconnect's eight tries, each up to 15 s, were two silent minutes before this failed.
      const err = await AmqpSession.open(target, { connectAttempts: 8, log: (m) => logged.push(m) }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BrokerError);
      expect((err as BrokerError).message).toMatch(/cluster async: connect amqp:\/\/u:\*\*\*@127\.0\.0\.1:\d+\S* -> connect ETIMEDOUT/);
      expect(accepted).toBe(2);
      expect(Date.now() - began).toBeLessThan(45_000);
      expect(logged).toHaveLength(1);
      expect(logged[0]).toMatch(/^cluster async: connect amqp:\/\/u:\*\*\*@127\.0\.0\.1:\d+\S* -> connect ETIMEDOUT; trying again in \d\.\d s \(connect 2 of 8\)$/);
    } finally {
      for (const s of held) s.destroy();
      server.close();
    }
  }, 60_000);

  it("a port that answers with a connection.start amqplib cannot decode is refused with a message, not a crash", async () => {
    const defs = amqplibModule<{ encodeMethod(id: number, ch: number, f: object): Buffer; ConnectionStart: number }>("defs.js");
    const frame = defs.encodeMethod(defs.ConnectionStart, 0, {
      versionMajor: 0,
      versionMinor: 9,
      serverProperties: { product: "not quite RabbitMQ" },
      mechanisms: Buffer.from("PLAIN"),
      locales: Buffer.from("en_US"),
    });
    // The first property's type tag (after its name) becomes one no AMQP table uses.
    frame.writeUInt8("Z".charCodeAt(0), 7 + 10 + 1 + frame.readUInt8(7 + 10));
    const { server, target, port } = await fakeAmqpPort((sock) => sock.once("data", () => sock.write(frame)));
    try {
      const err = await amqpIdentity(target).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BrokerError);
      expect((err as BrokerError).message).toBe(`cluster async: connect amqp://u:***@127.0.0.1:${port} -> not an AMQP broker: its connection.start is malformed`);
    } finally {
      server.close();
    }
  });
});

describe("ports of other protocols and refusals of other kinds are named, with what to do", () => {
  // An MQTT broker (port 1883) resets the connection on AMQP's header, and on an HTTP request:
  // topo printed a bare "read ECONNRESET" (and "ECONNRESET read ECONNRESET") with no next step.
  it("a port that resets the connection on AMQP's protocol header is no AMQP broker, and one that resets an HTTP request no management API", async () => {
    const { server, target, port } = await fakeAmqpPort((sock) => sock.once("data", () => sock.resetAndDestroy()));
    try {
      const err = await amqpIdentity(target).catch((e: unknown) => e);
      expect((err as BrokerError).message).toBe(`cluster async: connect amqp://u:***@127.0.0.1:${port} -> not an AMQP broker: it reset the connection when sent AMQP's protocol header (read ECONNRESET)`);
      expect((err as BrokerError).hints[0]).toMatch(/^check the port in .*AMQP is 5672/);
      const client = new ManagementClient("sync", { baseUrl: `http://127.0.0.1:${port}`, username: "u", password: "p", display: `http://127.0.0.1:${port}` }, {});
      const m = await managementIdentity(client).catch((e: unknown) => e);
      expect((m as BrokerError).message).toBe(`cluster sync: GET http://127.0.0.1:${port}/api/cluster-name -> the port accepted the connection and closed it without an HTTP answer (read ECONNRESET); is this a management API?`);
      expect((m as BrokerError).hints[0]).toMatch(/^set clusters\.sync\.management to the management API/);
    } finally {
      server.close();
    }
  });

  it("an answer that began and was cut off is said to have begun, with its status, not as no answer", async () => {
    const server = createHttpServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json", "content-length": "100" });
      res.write('{"name":"rab');
      setTimeout(() => res.socket?.destroy(), 50);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const port = (server.address() as { port: number }).port;
    try {
      const client = new ManagementClient("sync", { baseUrl: `http://127.0.0.1:${port}`, username: "u", password: "p", display: `http://127.0.0.1:${port}` }, {});
      const m = await managementIdentity(client).catch((e: unknown) => e);
      expect((m as BrokerError).message).toMatch(new RegExp(`^cluster sync: GET http://127\\.0\\.0\\.1:${port}/api/cluster-name -> the port began an answer \\(HTTP 200\\) and closed the connection before its end \\(aborted\\); is this a management API\\?$`));
    } finally {
      server.close();
    }
  });

  // A valid password of 6,000 characters: RabbitMQ's HTTP listener answers 431, and topo took it
  // for a wrong URL ("not a management API"), sending the user to change a URL that was right.
  it("credentials too long for the management API (431) are named as such, not a wrong URL", async () => {
    const server = createHttpServer((req, res) => {
      res.writeHead((req.headers.authorization?.length ?? 0) > 4096 ? 431 : 200, { "content-type": "application/json" }).end(JSON.stringify({ name: "rabbit@x" }));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    try {
      const long = new ManagementClient("sync", { baseUrl: `http://127.0.0.1:${port}`, username: "u", password: "p".repeat(6000), display: `http://127.0.0.1:${port}` }, {});
      const err = await managementIdentity(long).catch((e: unknown) => e);
      expect((err as BrokerError).message).toBe(`cluster sync: GET http://127.0.0.1:${port}/api/cluster-name -> 431 Request Header Fields Too Large: the management API refuses the credentials topo sends (an Authorization header of 8010 bytes) as longer than it accepts`);
      expect((err as BrokerError).code).toBe("auth_failed");
      expect((err as BrokerError).hints[0]).toMatch(/^use a shorter password \(or user name\) for the management API/);
      const short = new ManagementClient("sync", { baseUrl: `http://127.0.0.1:${port}`, username: "u", password: "p", display: `http://127.0.0.1:${port}` }, {});
      expect(await managementIdentity(short)).toEqual({ clusterName: "rabbit@x" });
    } finally {
      server.close();
    }
  });
});

/** A TCP server on a free port of 127.0.0.1, and a cluster whose AMQP url points at it. */
async function fakeAmqpPort(onConnection: (sock: Socket) => void): Promise<{ server: Server; port: number; target: ClusterTarget }> {
  const server = createTcpServer(onConnection);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const target: ClusterTarget = {
    name: "async",
    amqp: { protocol: "amqp", hostname: "127.0.0.1", port, username: "u", password: "p", vhost: "/", display: `amqp://u:***@127.0.0.1:${port}` },
    management: { baseUrl: "http://127.0.0.1:1", username: "u", password: "p", display: "http://127.0.0.1:1" },
    tls: {},
  };
  return { server, port, target };
}
