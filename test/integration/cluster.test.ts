// Mirroring on a real 3-node RabbitMQ 3.10 cluster (scripts/cluster.sh): after apply every sync
// queue has synchronised mirrors; when the node holding a queue's master stops, the queue and its
// messages live on, plan says what is degraded, and once the node is back plan is clean again.
// TOPO_SKIP_CLUSTER=1 skips this file on machines that cannot start extra nodes; CI runs it. The
// ports come from the script (TOPO_CLUSTER_AMQP_PORT...); when they belong to something else the
// tests skip with the script's reason, and fail under CI=true.

import { execFileSync } from "node:child_process";
import { join } from "node:path";
import amqplib from "amqplib";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ROOT, runCli, scriptEnv, skipWhenUnavailable, startTestBroker, uniqueName, writeFile, type TestBroker } from "../helpers/broker.js";

const SCRIPT = join(ROOT, "scripts/cluster.sh");
// Filled in from `scripts/cluster.sh env` once the cluster runs.
let NODES: string[] = [];
let AMQP_PORTS: number[] = [];
let MGMT_PORTS: number[] = [];
const AUTH = `Basic ${Buffer.from("guest:guest").toString("base64")}`;

async function api(node: number, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const r = await fetch(`http://127.0.0.1:${MGMT_PORTS[node]}${path}`, {
    method,
    headers: { authorization: AUTH, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : undefined };
}

/** The topology, reaching the cluster through node `via`. */
function topology(sync: string, async: string, via: number): string {
  const url = (v: string) => `amqp://guest:guest@127.0.0.1:${AMQP_PORTS[via]}/${v}`;
  const management = `http://127.0.0.1:${MGMT_PORTS[via]}`;
  return writeFile(
    "topology.yaml",
    JSON.stringify({ version: 1, clusters: { sync: { url: url(sync), management }, async: { url: url(async), management } }, services: ["mplogin", "mpwallet"] }),
  );
}

/** An AMQP URL of vhost `v` on node 1. */
const node1 = (v: string) => `amqp://guest:guest@127.0.0.1:${AMQP_PORTS[0]}/${v}`;

/** A file whose async cluster is vhost `v` on node 1 (its sync cluster's vhost is never made), with these async-only services. */
function asyncOnly(v: string, services: unknown[]): string {
  const management = `http://127.0.0.1:${MGMT_PORTS[0]}`;
  return writeFile("topology.yaml", JSON.stringify({ version: 1, clusters: { sync: { url: node1(`${v}_unused`), management }, async: { url: node1(v), management } }, services }));
}

/** rabbitmqctl against node 1 of the cluster. */
const ctl = (...args: string[]) => execFileSync(SCRIPT, ["ctl", "1", ...args], { encoding: "utf8", timeout: 60_000 });

async function eventually<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

describe.runIf(!process.env.TOPO_SKIP_CLUSTER)("3-node cluster", () => {
  let cluster: TestBroker | undefined;
  const sync = uniqueName("csync");
  const async = uniqueName("casync");

  beforeAll(async () => {
    // Running means all three nodes: status exits 0 only then.
    cluster = await startTestBroker(SCRIPT, 300_000);
    if (cluster.unavailable) return;
    const env = scriptEnv(SCRIPT);
    NODES = env.TOPO_CLUSTER_NODES!.split(",");
    AMQP_PORTS = env.TOPO_CLUSTER_AMQP_PORTS!.split(",").map(Number);
    MGMT_PORTS = env.TOPO_CLUSTER_MGMT_PORTS!.split(",").map(Number);
  }, 300_000);

  beforeEach(skipWhenUnavailable(() => cluster));

  afterAll(async () => {
    if (!cluster || cluster.unavailable) return;
    for (const v of [sync, async]) await api(1, "DELETE", `/api/vhosts/${v}`).catch(() => undefined);
  }, 300_000);

  it("mirrors every sync queue, survives the loss of the master's node, reports it, and heals", async () => {
    const viaA = topology(sync, async, 0);
    const applied = await runCli(["apply", "-f", viaA]);
    expect(applied.stderr).not.toMatch(/Error/);
    expect(applied.code).toBe(0);

    // Every sync queue has synchronised mirrors on the two other nodes.
    for (const q of ["mplogin.sync", "mpwallet.sync"]) {
      const info = await eventually(`mirrors of ${q}`, async () => {
        const r = (await api(0, "GET", `/api/queues/${sync}/${q}`)).body;
        // The policy name is reported with the queue's stats, a few seconds after the declare.
        return r?.synchronised_slave_nodes?.length === 2 && r.policy ? r : undefined;
      });
      expect(info.policy).toBe("topo.mp.mirror.sync");
      expect([info.node, ...info.synchronised_slave_nodes].sort()).toEqual(NODES);
    }
    // The async queues are durable and not mirrored.
    expect((await api(0, "GET", `/api/queues/${async}/mplogin.async`)).body.slave_nodes).toBeUndefined();
    expect((await runCli(["plan", "-f", viaA, "--detailed-exitcode"])).code).toBe(0);

    // The holding queue a replace parks mplogin.sync's messages in is mirrored by the same policy,
    // as the broker reads its pattern: unmirrored, the transient messages it held were lost with
    // its one node (18,944 of 60,000 when that node stopped during a replace).
    {
      const c = await amqplib.connect(`amqp://guest:guest@127.0.0.1:${AMQP_PORTS[0]}/${sync}`);
      const hc = await c.createChannel();
      await hc.assertQueue("topo.hold.mplogin.sync", { durable: true });
      const hold = await eventually("mirrors of the holding queue", async () => {
        const r = (await api(0, "GET", `/api/queues/${sync}/topo.hold.mplogin.sync`)).body;
        return r?.synchronised_slave_nodes?.length === 2 && r.policy ? r : undefined;
      });
      expect(hold.policy).toBe("topo.mp.mirror.sync");
      await hc.deleteQueue("topo.hold.mplogin.sync");
      await c.close();
    }

    // Messages in a transient, mirrored queue.
    const conn = await amqplib.connect(`amqp://guest:guest@127.0.0.1:${AMQP_PORTS[0]}/${sync}`);
    const ch = await conn.createConfirmChannel();
    for (let i = 0; i < 10; i++) ch.publish("mplogin", "mplogin.sync.register", Buffer.from(`m${i}`));
    await ch.waitForConfirms();
    await conn.close();

    const master = (await api(0, "GET", `/api/queues/${sync}/mplogin.sync`)).body.node as string;
    const index = NODES.indexOf(master);
    expect(index).toBeGreaterThanOrEqual(0);
    // Reach the cluster through a node that stays up.
    const survivor = index === 0 ? 1 : 0;
    const via = topology(sync, async, survivor);
    execFileSync(SCRIPT, ["stop-node", String(index + 1)], { stdio: "inherit", timeout: 120_000 });
    try {
      // The queue moved to another node and kept its messages.
      const moved = await eventually("the queue on a surviving node", async () => {
        const r = await api(survivor, "GET", `/api/queues/${sync}/mplogin.sync`);
        return r.status === 200 && r.body.node !== master ? r.body : undefined;
      });
      expect(moved.node).not.toBe(master);
      const c2 = await amqplib.connect(`amqp://guest:guest@127.0.0.1:${AMQP_PORTS[survivor]}/${sync}`);
      try {
        const ch2 = await c2.createChannel();
        expect((await ch2.checkQueue("mplogin.sync")).messageCount).toBe(10);
      } finally {
        await c2.close();
      }
      // A replace of a queue whose node is down: plan says apply refuses it, and apply does,
      // before writing (it had declared a holding queue, then stopped at the broker's 404).
      const limited = writeFile(
        "topology.yaml",
        JSON.stringify({
          version: 1,
          clusters: {
            sync: { url: `amqp://guest:guest@127.0.0.1:${AMQP_PORTS[survivor]}/${sync}`, management: `http://127.0.0.1:${MGMT_PORTS[survivor]}` },
            async: { url: `amqp://guest:guest@127.0.0.1:${AMQP_PORTS[survivor]}/${async}`, management: `http://127.0.0.1:${MGMT_PORTS[survivor]}` },
          },
          services: [{ name: "mplogin", async: { arguments: { "x-max-length": 1000 } } }, "mpwallet"],
        }),
      );
      const warned = await runCli(["plan", "-f", limited]);
      expect(warned.stdout).toContain(`this plan replaces or deletes queue mplogin.async, whose node ${master} is down`);
      const refused = await runCli(["apply", "-f", limited, "--allow-destructive"]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain("topo refuses before anything is written; nothing was changed");
      expect((await api(survivor, "GET", `/api/queues/${async}/topo.hold.mplogin.async`)).status).toBe(404);

      // plan says what is degraded, and that is drift.
      const degraded = await runCli(["plan", "-f", via, "--detailed-exitcode"]);
      expect(degraded.code).toBe(2);
      expect(degraded.stdout).toContain(`! degraded: node ${master} is down`);
      // The async queues are durable, not mirrored: they wait for their node, and plan says so
      // instead of planning their bindings again.
      expect(degraded.stdout).toMatch(/! degraded: 2 queues are unavailable because their nodes are down \(mplogin\.async, mpwallet\.async\)/);
      expect(degraded.stdout).toMatch(/No changes\. 2 degraded/);
    } finally {
      execFileSync(SCRIPT, ["start-node", String(index + 1)], { stdio: "inherit", timeout: 180_000 });
    }
    // Back: mirrors are re-added and synchronised, and plan is clean again.
    const clean = await eventually("a clean plan", async () => {
      const r = await runCli(["plan", "-f", via, "--detailed-exitcode"]);
      return r.code === 0 ? r : undefined;
    });
    expect(clean.stdout).toContain("No changes.");
  });

  it("a user policy that shadows topo's is left alone and reported", async () => {
    const file = topology(sync, async, 0);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    const put = await api(0, "PUT", `/api/policies/${sync}/team-limits`, { pattern: "^mplogin\\.", definition: { "max-length": 1000 }, "apply-to": "queues", priority: 10 });
    expect([201, 204]).toContain(put.status);
    try {
      const r = await eventually("the shadowing policy to take effect", async () => {
        const p = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
        return p.code === 2 ? p : undefined;
      });
      expect(r.stdout).toMatch(/! warning: policy "team-limits" \(priority 10\) shadows topo's mirroring policy/);
      expect(r.stdout).toMatch(/! degraded: 1 queue is not mirrored because another policy applies to it: mplogin\.sync/);
      // apply neither changes nor deletes the user's policy.
      const applied = await runCli(["apply", "-f", file]);
      expect(applied.code).toBe(0);
      expect((await api(0, "GET", `/api/policies/${sync}/team-limits`)).body.priority).toBe(10);
    } finally {
      await api(0, "DELETE", `/api/policies/${sync}/team-limits`);
    }
  });

  it("the url on one node and the management API on another: refused while the cluster has no name set, which the hint says to set; one broker once it has", async () => {
    // Without a cluster name set, each node answers with a name of its own.
    const names = [(await api(0, "GET", "/api/cluster-name")).body.name, (await api(2, "GET", "/api/cluster-name")).body.name];
    expect(names[0]).not.toBe(names[1]);
    const url = (v: string) => `amqp://guest:guest@127.0.0.1:${AMQP_PORTS[0]}/${v}`;
    const management = `http://127.0.0.1:${MGMT_PORTS[2]}`;
    const file = writeFile("topology.yaml", JSON.stringify({ version: 1, clusters: { sync: { url: url(sync), management }, async: { url: url(async), management } }, services: ["mplogin", "mpwallet"] }));
    const refused = await runCli(["plan", "-f", file]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("if both are nodes of one cluster, it has no cluster name set, so each node gives a name of its own: set one (rabbitmqctl set_cluster_name NAME)");
    ctl("set_cluster_name", "topo-test-cluster");
    try {
      const applied = await runCli(["apply", "-f", file]);
      expect(applied.stderr).not.toMatch(/Error|different brokers/);
      expect(applied.code).toBe(0);
      expect((await runCli(["plan", "-f", file, "--detailed-exitcode"])).code).toBe(0);
    } finally {
      ctl("clear_global_parameter", "cluster_name");
    }
  });

  // Here, not on the machine's broker: channel_max is read by every new connection of the node, and
  // this file's tests run one after another, so no other test opens channels meanwhile.
  it("a broker whose channel_max is below --parallelism: apply writes within it, says so, and a lossless replace keeps every message", async () => {
    const v = uniqueName("cchmax");
    // 120 services: 8 batches of 16 declares in each phase, more than the channels the node allows.
    const services = Array.from({ length: 120 }, (_, i) => `mpch${String.fromCharCode(97 + Math.floor(i / 26))}${String.fromCharCode(97 + (i % 26))}`);
    const file = (args: Record<string, number>) => asyncOnly(v, services.map((name, i) => ({ name, sync: false, ...(i === 0 ? { async: { arguments: args } } : {}) })));
    const before = /\{ok,(\d+)\}/.exec(ctl("eval", "application:get_env(rabbit, channel_max)."))?.[1] ?? "2047";
    try {
      ctl("eval", "application:set_env(rabbit, channel_max, 3).");
      const created = await runCli(["apply", "-f", file({}), "--cluster", "async"]);
      expect(created.stderr).not.toMatch(/Error|No channels left/);
      expect(created.code).toBe(0);
      // One of the three is the lock's consumer (it keeps a policy's expires off the lock), one is spare.
      expect(created.stderr).toContain("cluster async: the broker lets a connection open 3 channels (its channel_max), so topo writes over 1 channel at once, not 64");

      // The replace moves messages over two channels at once, beside the idle pool's.
      const conn = await amqplib.connect(node1(v));
      const ch = await conn.createConfirmChannel();
      for (let i = 0; i < 50; i++) ch.sendToQueue("mpchaa.async", Buffer.from(`m${i}`), { persistent: true, messageId: `m${i}` });
      await ch.waitForConfirms();
      await conn.close();
      const replaced = await runCli(["apply", "-f", file({ "x-max-length": 1000 }), "--cluster", "async", "--allow-destructive"]);
      expect(replaced.stderr).not.toMatch(/Error|No channels left/);
      expect(replaced.code).toBe(0);
      expect(replaced.stderr).toMatch(/queue mpchaa\.async replaced; 50 messages moved back through topo\.hold\.mpchaa\.async; the broker counts 50 messages in it now/);

      // One channel: the writes still fit, one at a time; a move, which needs two, is refused with
      // the setting named before anything is written (it stopped after moving the queue's bindings
      // to its holding queue).
      ctl("eval", "application:set_env(rabbit, channel_max, 1).");
      const one = await runCli(["apply", "-f", file({ "x-max-length": 2000 }), "--cluster", "async", "--allow-destructive"]);
      expect(one.code).toBe(1);
      expect(one.stderr).toContain("cluster async: the broker lets a connection open 1 channel (its channel_max), and replacing queue mpchaa.async without losing its messages moves them over 2 at once; nothing was written");
      expect(one.stderr).toContain("hint: raise channel_max in the broker's rabbitmq.conf (2047 by default) to 2 or more");
      expect(one.stderr).not.toMatch(/\n\s+at /);
      expect((await api(0, "GET", `/api/queues/${v}/topo.hold.mpchaa.async`)).status).toBe(404);
    } finally {
      ctl("eval", `application:set_env(rabbit, channel_max, ${before}).`);
    }
    const finished = await runCli(["apply", "-f", file({ "x-max-length": 2000 }), "--cluster", "async", "--allow-destructive"]);
    expect(finished.code).toBe(0);
    expect(finished.stderr).toMatch(/queue mpchaa\.async replaced; 50 messages moved back through topo\.hold\.mpchaa\.async; the broker counts 50 messages in it now/);
    const q = await api(0, "GET", `/api/queues/${v}/mpchaa.async`);
    expect(q.body.arguments).toEqual({ "x-max-length": 2000 });
    expect((await runCli(["plan", "-f", file({ "x-max-length": 2000 }), "--cluster", "async", "--detailed-exitcode"])).code).toBe(0);
    await api(0, "DELETE", `/api/vhosts/${v}`);
  }, 240_000);

  // Here, not on the machine's broker: a memory alarm blocks every publisher of the cluster, and
  // this file's tests run one after another, so no other test publishes meanwhile.
  // A user that may read the nodes (guest, an administrator) sees the alarm before it writes: apply
  // refuses at once, naming the node; the mid-move case (a user that cannot read the nodes) is in
  // rabbitmq4.test.ts.
  it("a memory alarm on one node before a lossless replace: apply refuses before writing, names the node and the alarm, keeps every message; the next apply finishes", async () => {
    const v = uniqueName("calarm");
    const file = (args: Record<string, number>) => asyncOnly(v, [{ name: "mpalarm", sync: false, async: { arguments: args } }]);
    const alarm = async (on: boolean) =>
      eventually(`the memory alarm ${on ? "on" : "off"}`, async () => ((await api(0, "GET", `/api/nodes/${NODES[0]}?columns=mem_alarm`)).body?.mem_alarm === on ? true : undefined), 60_000);
    const messages = async (q: string) => (await api(0, "GET", `/api/queues/${v}/${encodeURIComponent(q)}?columns=messages`)).body?.messages as number | undefined;
    try {
      expect((await runCli(["apply", "-f", file({}), "--cluster", "async"])).code).toBe(0);
      const conn = await amqplib.connect(node1(v));
      const ch = await conn.createConfirmChannel();
      for (let i = 0; i < 300; i++) ch.sendToQueue("mpalarm.async", Buffer.from(`m${i}`), { persistent: true, messageId: `m${i}` });
      await ch.waitForConfirms();
      await conn.close();
      await eventually("300 messages counted", async () => ((await messages("mpalarm.async")) === 300 ? true : undefined));

      const watermark = ctl("eval", "vm_memory_monitor:get_vm_memory_high_watermark().").trim();
      ctl("set_vm_memory_high_watermark", "0.00001");
      try {
        await alarm(true);
        const started = Date.now();
        const stopped = await runCli(["apply", "-f", file({ "x-max-length": 100000 }), "--cluster", "async", "--allow-destructive"]);
        expect(stopped.code).toBe(1);
        expect(stopped.stderr).toContain(`node ${NODES[0]} has a memory alarm (memory used `);
        expect(stopped.stderr).toMatch(/replacing queue mpalarm\.async \(300 messages\) moves 300 messages by publishing them, so apply would stop part-way .*; topo refuses before anything is written; nothing was changed/);
        expect(stopped.stderr).toContain("rabbitmq-diagnostics alarms");
        expect(stopped.stderr).toContain("vm_memory_high_watermark");
        expect((await api(0, "GET", `/api/queues/${v}/topo.hold.mpalarm.async`)).status).toBe(404);
        // Not hung until a CI job's timeout, nor the 10 s a blocked publish is waited out.
        expect(Date.now() - started).toBeLessThan(10_000);
      } finally {
        // The node's own watermark again (a relative one prints as {relative,F} on some versions).
        const m = /([\d.]+)/.exec(watermark);
        ctl("set_vm_memory_high_watermark", m ? m[1]! : "0.4");
        await alarm(false);
      }
      // Nothing was written under the alarm; the next apply makes the whole replace: every one of the 300 messages.
      const finished = await runCli(["apply", "-f", file({ "x-max-length": 100000 }), "--cluster", "async", "--allow-destructive"]);
      expect(finished.stderr).not.toMatch(/Error/);
      expect(finished.code).toBe(0);
      expect(finished.stderr).toMatch(/queue mpalarm\.async replaced; \d+ messages moved back through topo\.hold\.mpalarm\.async/);
      expect((await api(0, "GET", `/api/queues/${v}/topo.hold.mpalarm.async`)).status).toBe(404);
      const got = new Set<string>();
      const drain = await amqplib.connect(node1(v));
      try {
        const dch = await drain.createChannel();
        for (let m = await dch.get("mpalarm.async", { noAck: true }); m; m = await dch.get("mpalarm.async", { noAck: true })) got.add(String(m.properties.messageId));
      } finally {
        await drain.close();
      }
      expect(Array.from({ length: 300 }, (_, i) => `m${i}`).filter((id) => !got.has(id))).toEqual([]);
    } finally {
      await api(0, "DELETE", `/api/vhosts/${v}`);
    }
  }, 180_000);
});
