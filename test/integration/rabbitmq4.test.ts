// RabbitMQ 4.0 (Debian trixie's package, run in a chroot by scripts/rabbitmq4.sh): no classic
// mirroring, quorum queues for sync traffic, x-queue-type reported on classic queues.
// TOPO_SKIP_RABBITMQ4=1 skips this file on machines that cannot build the chroot (it needs root
// and Debian's mirror); CI runs it. The ports come from the script (TOPO_RMQ4_AMQP_PORT...); when
// they belong to something else the tests skip with the script's reason, and fail under CI=true.

import { execFileSync } from "node:child_process";
import { join } from "node:path";
import amqplib from "amqplib";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ROOT, runCli, scriptEnv, skipWhenUnavailable, startTestBroker, uniqueName, writeFile, type TestBroker } from "../helpers/broker.js";

const SCRIPT = join(ROOT, "scripts/rabbitmq4.sh");
// Filled in from `scripts/rabbitmq4.sh env` once the broker runs, e.g. amqp://guest:guest@127.0.0.1:5690
// and http://127.0.0.1:15690.
let AMQP = "";
let MGMT = "";
const AUTH = `Basic ${Buffer.from("guest:guest").toString("base64")}`;

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const r = await fetch(`${MGMT}${path}`, { method, headers: { authorization: AUTH, "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : undefined };
}

const vhosts: string[] = [];
let broker: TestBroker | undefined;

function topology(defaults: unknown, services: unknown[] = ["mplogin", "mpwallet"]): { file: string; sync: string; async: string } {
  const sync = uniqueName("r4sync");
  const async = uniqueName("r4async");
  vhosts.push(sync, async);
  const doc = {
    version: 1,
    clusters: { sync: { url: `${AMQP}/${sync}`, management: MGMT }, async: { url: `${AMQP}/${async}`, management: MGMT } },
    ...(defaults ? { defaults } : {}),
    services,
  };
  return { file: writeFile("topology.yaml", JSON.stringify(doc, null, 2)), sync, async };
}

describe.runIf(!process.env.TOPO_SKIP_RABBITMQ4)("RabbitMQ 4.0", () => {
  beforeAll(() => {
    // The first run builds the chroot (about 2 minutes); later runs start in seconds.
    broker = startTestBroker(SCRIPT, 900_000);
    if (broker.unavailable) return;
    const env = scriptEnv(SCRIPT);
    AMQP = env.RABBITMQ4_URL!;
    MGMT = new URL(env.RABBITMQ4_MANAGEMENT_URL!).origin;
  }, 900_000);

  beforeEach(skipWhenUnavailable(() => broker));

  afterEach(async () => {
    if (broker?.unavailable) return;
    await Promise.all(vhosts.splice(0).map((v) => api("DELETE", `/api/vhosts/${encodeURIComponent(v)}`)));
  });

  afterAll(() => {
    broker?.stop();
  }, 120_000);

  it("refuses mirrored classic queues at plan time, says why and names quorum queues", async () => {
    const { file, sync } = topology(undefined);
    for (const cmd of ["plan", "apply"]) {
      const r = await runCli([cmd, "-f", file]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/cluster sync: RabbitMQ 4\.\d+\.\d+ has no classic queue mirroring \(removed in 4\.0\), but the file mirrors 2 classic queues: mplogin\.sync, mpwallet\.sync/);
      expect(r.stderr).toMatch(/hint: use quorum queues/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    // Nothing was written.
    expect((await api("GET", `/api/vhosts/${sync}`)).status).toBe(404);
  });

  it("quorum sync queues: apply, plan clean, and a Celery-style declare matches", async () => {
    const { file, sync, async } = topology({ sync: { type: "quorum", arguments: { "x-delivery-limit": 5 } } });
    const r = await runCli(["apply", "-f", file]);
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    const q = (await api("GET", `/api/queues/${sync}/mplogin.sync`)).body;
    expect(q).toMatchObject({ type: "quorum", durable: true, arguments: { "x-queue-type": "quorum", "x-delivery-limit": 5 } });
    // 4.x reports x-queue-type: classic on the classic async queues: normalised, so no drift.
    const a = (await api("GET", `/api/queues/${async}/mplogin.async`)).body;
    expect(a.arguments).toMatchObject({ "x-queue-type": "classic" });
    const plan = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(plan.stdout).toContain("No changes.");
    expect(plan.code).toBe(0);

    // kombu: Queue('mplogin.sync', Exchange('mplogin', 'topic'), routing_key='mplogin.sync.#',
    //   queue_arguments={'x-queue-type': 'quorum', 'x-delivery-limit': 5})
    const conn = await amqplib.connect(`${AMQP}/${sync}`);
    try {
      const ch = await conn.createChannel();
      await ch.assertExchange("mplogin", "topic", { durable: true, autoDelete: false });
      await ch.assertQueue("mplogin.sync", { durable: true, autoDelete: false, exclusive: false, arguments: { "x-queue-type": "quorum", "x-delivery-limit": 5 } });
      await ch.bindQueue("mplogin.sync", "mplogin", "mplogin.sync.#");
      const conf = await conn.createConfirmChannel();
      conf.publish("mplogin", "mplogin.sync.register", Buffer.from("hi"));
      await conf.waitForConfirms();
      expect((await ch.checkQueue("mplogin.sync")).messageCount).toBe(1);
    } finally {
      await conn.close();
    }
    const async4 = await amqplib.connect(`${AMQP}/${async}`);
    try {
      const ch = await async4.createChannel();
      await ch.assertQueue("mplogin.async", { durable: true, autoDelete: false, exclusive: false });
    } finally {
      await async4.close();
    }
    expect((await runCli(["plan", "-f", file, "--detailed-exitcode"])).code).toBe(0);
  });

  it("warns that transient non-exclusive queues are deprecated", async () => {
    const { file } = topology({ sync: { mirrored: false } }, ["mplogin"]);
    const r = await runCli(["plan", "-f", file]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/! warning: transient non-exclusive queues are deprecated in RabbitMQ 4 .*deprecated_features\.permit\.transient_nonexcl_queues = true/);
  });

  it("names the setting that permits transient queues where the broker denies them", async () => {
    // Restart the node with the deprecated feature denied (the default from 4.3 on), then restore it.
    execFileSync(SCRIPT, ["stop"], { stdio: "inherit", timeout: 120_000 });
    try {
      execFileSync(SCRIPT, ["start"], {
        stdio: "inherit",
        timeout: 300_000,
        env: { ...process.env, TOPO_RMQ4_EXTRA_CONF: "deprecated_features.permit.transient_nonexcl_queues = false" },
      });
      const { file } = topology({ sync: { mirrored: false } }, ["mplogin"]);
      const r = await runCli(["apply", "-f", file]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/cluster sync: .*mplogin\.sync/);
      expect(r.stderr).toMatch(/deprecated_features\.permit\.transient_nonexcl_queues = true/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    } finally {
      execFileSync(SCRIPT, ["stop"], { stdio: "inherit", timeout: 120_000 });
      execFileSync(SCRIPT, ["start"], { stdio: "inherit", timeout: 300_000 });
    }
  }, 600_000);

  it("migrates a sync queue from classic to quorum without losing its messages", async () => {
    const { file: classic, sync, async } = topology({ sync: { mirrored: false, durable: true } }, ["mplogin"]);
    expect((await runCli(["apply", "-f", classic])).code).toBe(0);
    const conn = await amqplib.connect(`${AMQP}/${sync}`);
    try {
      const ch = await conn.createConfirmChannel();
      for (let i = 0; i < 50; i++) ch.publish("mplogin", "mplogin.sync.task", Buffer.from(String(i)), { persistent: true, messageId: `m${i}` });
      await ch.waitForConfirms();
    } finally {
      await conn.close();
    }
    const quorum = writeFile(
      "topology.yaml",
      JSON.stringify({
        version: 1,
        clusters: { sync: { url: `${AMQP}/${sync}`, management: MGMT }, async: { url: `${AMQP}/${async}`, management: MGMT } },
        defaults: { sync: { type: "quorum" } },
        services: ["mplogin"],
      }),
    );
    const plan = await runCli(["plan", "-f", quorum]);
    // The management API's message totals lag by a few seconds, so the count may not show yet.
    expect(plan.stdout).toMatch(/-\/\+ replace queue mplogin\.sync( \[holds \d+ messages?\])?\n\s+because type: "classic" -> "quorum"/);
    const r = await runCli(["apply", "-f", quorum, "--allow-destructive"]);
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    const q = (await api("GET", `/api/queues/${sync}/mplogin.sync`)).body;
    expect(q.type).toBe("quorum");
    const check = await amqplib.connect(`${AMQP}/${sync}`);
    try {
      const ch = await check.createChannel();
      expect((await ch.checkQueue("mplogin.sync")).messageCount).toBe(50);
    } finally {
      await check.close();
    }
    expect((await runCli(["plan", "-f", quorum, "--detailed-exitcode"])).code).toBe(0);
  });
});
