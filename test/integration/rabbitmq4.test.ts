// RabbitMQ 4.x, each version from its Debian package run in a chroot: 4.0 (trixie) by
// scripts/rabbitmq4.sh and 4.3 (sid) by scripts/rabbitmq43.sh. No classic mirroring, quorum queues
// for sync traffic, x-queue-type reported on classic queues. The same suites run on both: core
// plan/apply, a lossless replace, the classic-to-quorum migration, Celery export with real workers
// and the import round trip.
// TOPO_SKIP_RABBITMQ4=1 skips this file on machines that cannot build the chroots (they need root
// and Debian's mirror), TOPO_SKIP_RABBITMQ43=1 only the 4.3 half; CI runs both. The ports come
// from the scripts (TOPO_RMQ4_AMQP_PORT..., TOPO_RMQ43_AMQP_PORT...); when they belong to something
// else the tests skip with the script's reason, and fail under CI=true.

import { execFile, execFileSync, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import amqplib from "amqplib";
import { afterEach, beforeAll, beforeEach, describe, expect, it, onTestFinished } from "vitest";
import { EXIT_PORT_TAKEN, inCI, ROOT, runCli, scriptEnv, skipWhenUnavailable, startTestBroker, uniqueName, writeFile, type TestBroker, quorumReportFor } from "../helpers/broker.js";
import { CELERY, PYTHON, pyEnv, spawnWorker, stopWorker, until } from "../helpers/celery.js";
import { AmqpSession } from "../../src/broker/amqp.js";
import { ManagementClient } from "../../src/broker/http.js";
import { acquireLock } from "../../src/broker/lock.js";
import { LockError } from "../../src/errors.js";
import { heldNow } from "../../src/broker/read.js";
import { replaceQueueLossless } from "../../src/broker/replace.js";
import type { Binding, ClusterTarget, Queue } from "../../src/model.js";
import { priorityTwins, stoppedQuorumMove } from "../helpers/quorum-move.js";
import { managementProxy } from "../helpers/proxy.js";

const AUTH = `Basic ${Buffer.from("guest:guest").toString("base64")}`;

interface Version {
  version: string;
  script: string;
  /** The prefix of the script's settings: TOPO_RMQ4_EXTRA_CONF, TOPO_RMQ43_EXTRA_CONF. */
  vars: string;
  skip: boolean;
}

const VERSIONS: Version[] = [
  { version: "4.0", script: join(ROOT, "scripts/rabbitmq4.sh"), vars: "TOPO_RMQ4", skip: !!process.env.TOPO_SKIP_RABBITMQ4 },
  { version: "4.3", script: join(ROOT, "scripts/rabbitmq43.sh"), vars: "TOPO_RMQ43", skip: !!(process.env.TOPO_SKIP_RABBITMQ4 || process.env.TOPO_SKIP_RABBITMQ43) },
];

// A worker's startup declares failing, in any of the ways Celery reports it.
const DECLARE_FAILED = /PreconditionFailed|PRECONDITION_FAILED|NOT_IMPLEMENTED|Connection to broker lost|Unrecoverable error/;

const TASKS_SYNC = `
from celery import Celery

app = Celery("tasks_sync")
app.config_from_object("celeryconfig_sync")


@app.task(name="mplogin.sync.register")
def register(user):
    return "registered " + user


@app.task(name="mpwallet.sync.balance")
def balance(user):
    return "balance of " + user
`;

const TASKS_ASYNC = `
import os

from celery import Celery

app = Celery("tasks_async")
app.config_from_object("celeryconfig_async")


@app.task(name="mplogin.async.audit")
def audit(event):
    tmp = os.environ["AUDIT_FILE"] + ".tmp"
    with open(tmp, "w") as f:
        f.write(event)
    os.replace(tmp, os.environ["AUDIT_FILE"])
`;

const EDGE = `
import json

from celery import Celery

sync = Celery("edge_sync")
sync.config_from_object("celeryconfig_sync")
answers = [
    sync.send_task("mplogin.sync.register", args=["alice"]).get(timeout=20),
    sync.send_task("mpwallet.sync.balance", args=["bob"]).get(timeout=20),
]
asynchronous = Celery("edge_async")
asynchronous.config_from_object("celeryconfig_async")
asynchronous.send_task("mplogin.async.audit", args=["login alice"])
print(json.dumps(answers))
`;




for (const { version, script: SCRIPT, vars, skip } of VERSIONS) describe(`RabbitMQ ${version}`, () => {
  // Filled in from `SCRIPT env` once the broker runs, e.g. amqp://guest:guest@127.0.0.1:5690 and
  // http://127.0.0.1:15690 (4.0), :5693 and :15693 (4.3).
  let AMQP = "";
  let MGMT = "";
  const vhosts: string[] = [];
  const workers: ChildProcess[] = [];
  const dirs: string[] = [];
  let broker: TestBroker | undefined;

  async function api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
    // A socket the broker closed ("fetch failed": CI saw it on 4.3 under a memory alarm and while a
    // queue restarted) is tried again, as topo's own client does; a broker that stays away still fails.
    for (let attempt = 1; ; attempt++) {
      try {
        const r = await fetch(`${MGMT}${path}`, { method, headers: { authorization: AUTH, "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
        const text = await r.text();
        return { status: r.status, body: text ? JSON.parse(text) : undefined };
      } catch (e) {
        if (!(e instanceof TypeError) || attempt >= 5) throw e;
        await new Promise((r) => setTimeout(r, 500 * attempt));
      }
    }
  }

  function topology(defaults: unknown, services: unknown[] = ["mplogin", "mpwallet"]): { file: string; sync: string; async: string } {
    const sync = uniqueName("r4sync");
    const async = uniqueName("r4async");
    vhosts.push(sync, async);
    return { file: topologyFile(sync, async, defaults, services), sync, async };
  }

  function topologyFile(sync: string, async: string, defaults: unknown, services: unknown[], on = { amqp: AMQP, mgmt: MGMT }): string {
    const doc = {
      version: 1,
      clusters: { sync: { url: `${on.amqp}/${sync}`, management: on.mgmt }, async: { url: `${on.amqp}/${async}`, management: on.mgmt } },
      ...(defaults ? { defaults } : {}),
      services,
    };
    return writeFile("topology.yaml", JSON.stringify(doc, null, 2));
  }

  async function messageCount(v: string, queue: string): Promise<number> {
    const conn = await amqplib.connect(`${AMQP}/${v}`);
    try {
      return (await (await conn.createChannel()).checkQueue(queue)).messageCount;
    } finally {
      await conn.close();
    }
  }

  async function publish(v: string, exchange: string, routingKey: string, n: number): Promise<void> {
    const conn = await amqplib.connect(`${AMQP}/${v}`);
    try {
      const ch = await conn.createConfirmChannel();
      for (let i = 0; i < n; i++) ch.publish(exchange, routingKey, Buffer.from(String(i)), { persistent: true, messageId: `m${i}` });
      await ch.waitForConfirms();
    } finally {
      await conn.close();
    }
  }

  /** Fetch `n` messages of `queue` and give each back by basic.nack, with requeue. */
  async function nackBack(v: string, queue: string, n: number): Promise<void> {
    const conn = await amqplib.connect(`${AMQP}/${v}`);
    try {
      const ch = await conn.createChannel();
      for (let i = 0; i < n; i++) {
        const m = await ch.get(queue);
        if (!m) throw new Error(`message ${i + 1} of ${queue} was not there to fetch`);
        ch.nack(m, false, true);
      }
      await ch.close();
    } finally {
      await conn.close();
    }
  }

  /** The queue's counts once `delayed` of its messages wait out 4.3's retry delay (statistics come every 5 s). */
  async function delayedStats(v: string, queue: string, delayed: number): Promise<unknown> {
    const stats = async () => (await api("GET", `/api/queues/${encodeURIComponent(v)}/${queue}?columns=messages,messages_ready,messages_delayed`)).body;
    for (let i = 0; i < 60 && (await stats())?.messages_delayed !== delayed; i++) await new Promise((r) => setTimeout(r, 500));
    return stats();
  }

  beforeAll(async () => {
    if (skip) return;
    // The first run builds the chroot (2 to 3 minutes); later runs start in seconds.
    broker = await startTestBroker(SCRIPT, 900_000);
    if (broker.unavailable) return;
    const env = scriptEnv(SCRIPT);
    AMQP = env.RABBITMQ4_URL!;
    MGMT = new URL(env.RABBITMQ4_MANAGEMENT_URL!).origin;
  }, 900_000);

  beforeEach((ctx) => {
    if (skip) ctx.skip(`TOPO_SKIP_RABBITMQ4${version === "4.3" ? " or TOPO_SKIP_RABBITMQ43" : ""} is set`);
  });
  beforeEach(skipWhenUnavailable(() => broker));

  afterEach(async () => {
    await Promise.all(workers.splice(0).map(stopWorker));
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    if (skip || broker?.unavailable) return;
    await Promise.all(vhosts.splice(0).map((v) => api("DELETE", `/api/vhosts/${encodeURIComponent(v)}`)));
  });

  it("runs the version it is named for", async () => {
    const o = (await api("GET", "/api/overview")).body;
    expect(o.rabbitmq_version.startsWith(`${version}.`)).toBe(true);
  });

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

  it("names every key of the file that asks for what the broker refuses, at FILE:LINE:COL: a built-in default, a service's own key", async () => {
    const sync = uniqueName("r4sync");
    const async = uniqueName("r4async");
    vhosts.push(sync, async);
    const lines = [
      "version: 1",
      "clusters:",
      `  sync: { url: "${AMQP}/${sync}", management: "${MGMT}" }`,
      `  async: { url: "${AMQP}/${async}", management: "${MGMT}" }`,
      "services:",
      "  - mplogin",
      "  - mpwallet",
      "  - name: mppay",
      "    sync: { mirrored: true }",
      "    async:",
      "      arguments: { x-consumer-timeout: 60000 }",
    ];
    const file = writeFile("topology.yaml", lines.join("\n") + "\n");
    for (const cmd of ["plan", "apply"]) {
      const r = await runCli([cmd, "-f", file, "--json"]);
      expect(r.code, r.stderr).toBe(1);
      // The built-in default (sync queues are mirrored) at the first service that takes it, the
      // service that writes mirrored: true at its key.
      expect(r.stderr).toContain(`has no classic queue mirroring (removed in 4.0), but the file mirrors 3 classic queues: mplogin.sync, mpwallet.sync, mppay.sync\n    ${file}:6:5: services[0]: mplogin.sync, mpwallet.sync take the built-in default mirrored: true of sync queues (no key of the file sets it)\n    ${file}:9:13: services[2].sync.mirrored (mppay.sync)`);
      const error = JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('{"error"'))).error;
      expect(error.code).toBe("version_unsupported");
      // One cluster's error, or each cluster's under errors.
      const where = [error, ...(error.errors ?? [])].flatMap((e) => e.problems ?? []).map((p: { file: string; line: number; col: number }) => `${p.file}:${p.line}:${p.col}`);
      // 4.3 also refuses x-consumer-timeout on a classic queue (on the async cluster): that refusal too, at its key.
      if (version === "4.3") {
        expect(r.stderr).toContain(`queue mppay.async: x-consumer-timeout: RabbitMQ 4.3.`);
        expect(r.stderr).toContain(`\n    ${file}:11:20: services[2].async.arguments.x-consumer-timeout (mppay.async)`);
        expect(where).toEqual([`${file}:6:5`, `${file}:9:13`, `${file}:11:20`]);
      } else {
        expect(where).toEqual([`${file}:6:5`, `${file}:9:13`]);
      }
    }
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

  it("x-delivery-limit: -1 (no limit, RabbitMQ 4's way off its default of 20) is applied, plans clean, keeps a message requeued 25 times, and imports", async () => {
    const { file, sync } = topology({ sync: { type: "quorum", arguments: { "x-delivery-limit": -1 } } }, ["mplogin"]);
    const r = await runCli(["apply", "-f", file]);
    expect(r.stderr).not.toMatch(/Error|problem/);
    expect(r.code).toBe(0);
    expect((await api("GET", `/api/queues/${sync}/mplogin.sync`)).body.arguments).toMatchObject({ "x-delivery-limit": -1 });
    expect((await runCli(["plan", "-f", file, "--detailed-exitcode"])).code).toBe(0);
    // The default (20 on 4.0) would drop it at its 21st return; -1 keeps it.
    await publish(sync, "mplogin", "mplogin.sync.register", 1);
    const conn = await amqplib.connect(`${AMQP}/${sync}`);
    try {
      for (let i = 0; i < 25; i++) {
        const ch = await conn.createChannel();
        // A quorum queue takes back what a closed channel held through its log: on a busy machine
        // a get right after the close can come before the return (seen at the 6th, in CI). A
        // message dropped at its limit never comes back, so a bounded wait still fails then.
        let got: Awaited<ReturnType<typeof ch.get>> = false;
        for (const until = Date.now() + 5_000; got === false && Date.now() < until; ) {
          got = await ch.get("mplogin.sync", { noAck: false });
          if (got === false) await new Promise((r) => setTimeout(r, 50));
        }
        expect(got, `return ${i}`).not.toBe(false);
        await ch.close();
      }
    } finally {
      await conn.close();
    }
    expect(await messageCount(sync, "mplogin.sync")).toBe(1);
    const out = join(dirname(file), "imported.yaml");
    expect((await runCli(["import", "-f", file, "-o", out])).code).toBe(0);
    expect(readFileSync(out, "utf8")).toMatch(/x-delivery-limit: -1/);
    const plan = await runCli(["plan", "-f", out, "--detailed-exitcode"], { RABBITMQ_PASSWORD: "guest" });
    expect(plan.stdout.trim().endsWith("No changes.")).toBe(true);
    expect(plan.code).toBe(0);
  });

  it("warns that transient non-exclusive queues are deprecated", async () => {
    const { file } = topology({ sync: { mirrored: false } }, ["mplogin"]);
    const r = await runCli(["plan", "-f", file]);
    expect(r.code).toBe(0);
    // 4.0.5 reports the default only, so the warning names the setting a broker may deny them by;
    // 4.3.6 reports what its configuration makes of it.
    expect(r.stdout).toMatch(
      version === "4.3"
        ? /! warning: transient non-exclusive queues are deprecated in RabbitMQ 4 \(mplogin\.sync\): 4\.3\.6 permits them \(as it reports, its configuration included\); make them durable or quorum/
        : /! warning: transient non-exclusive queues are deprecated in RabbitMQ 4 .*deprecated_features\.permit\.transient_nonexcl_queues = true/,
    );
  });

  it("the least users docs/safety.md names: a monitoring user plans, and a policymaker with monitoring applies, a file with durable classic queues", async () => {
    const { file, sync, async } = topology({ sync: { type: "quorum" } }, ["mplogin"]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    // GET /api/vhosts/NAME is refused to any user but an administrator on 4.0 and 4.3 ("Not
    // administrator user"), while the listing answers a monitoring or management user.
    const users = { reader: { tags: "monitoring", rights: ["^$", "^$", ".*"] }, writer: { tags: "policymaker,monitoring", rights: [".*", ".*", ".*"] } };
    const names = { reader: uniqueName("r4reader"), writer: uniqueName("r4writer") };
    try {
      for (const [role, u] of Object.entries(users)) {
        const name = names[role as keyof typeof names];
        expect((await api("PUT", `/api/users/${name}`, { password: `${role}-pw`, tags: u.tags })).status).toBeLessThan(300);
        for (const v of [sync, async]) {
          const [configure, write, read] = u.rights;
          expect((await api("PUT", `/api/permissions/${v}/${name}`, { configure, write, read })).status).toBeLessThan(300);
        }
      }
      const as = (role: keyof typeof names, services: string[]) =>
        writeFile("topology.yaml", readFileSync(topologyFile(sync, async, { sync: { type: "quorum" } }, services), "utf8").replaceAll("guest:guest@", `${names[role]}:\${TOPO_TEST_ROLE_PW}@`));
      // The password from the environment, as docs/safety.md's users would keep it (a literal one is a warning).
      const pw = (role: keyof typeof names) => ({ TOPO_TEST_ROLE_PW: `${role}-pw` });
      const read = await runCli(["plan", "-f", as("reader", ["mplogin"]), "--detailed-exitcode"], pw("reader"));
      expect(read.stderr).toBe("");
      expect(read.stdout).toContain("No changes.");
      expect(read.code).toBe(0);
      const wrote = await runCli(["apply", "-f", as("writer", ["mplogin", "mpwallet"])], pw("writer"));
      expect(wrote.stderr).not.toMatch(/Error/);
      expect(wrote.code).toBe(0);
      expect((await api("GET", `/api/queues/${async}/mpwallet.async`)).body).toMatchObject({ type: "classic", durable: true });
    } finally {
      for (const name of Object.values(names)) await api("DELETE", `/api/users/${name}`);
    }
  });

  it("a management or monitoring user without permissions on a vhost that exists is told so, never shown a plan to create it (4.3 answers its listings 404)", async () => {
    const { file, sync, async } = topology({ sync: { type: "quorum" } }, ["mplogin"]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    const names = { management: uniqueName("r4mgmt"), monitoring: uniqueName("r4mon") };
    try {
      for (const [tags, name] of Object.entries(names)) {
        expect((await api("PUT", `/api/users/${name}`, { password: `${tags}-pw`, tags })).status).toBeLessThan(300);
        // Rights on the sync vhost only: the async one exists, and this user may not read it.
        expect((await api("PUT", `/api/permissions/${sync}/${name}`, { configure: "^$", write: "^$", read: ".*" })).status).toBeLessThan(300);
        const as = writeFile("topology.yaml", readFileSync(file, "utf8").replaceAll(`"management": "${MGMT}"`, `"management": "${MGMT.replace("://", `://${name}:\${TOPO_TEST_ROLE_PW}@`)}"`));
        const r = await runCli(["plan", "-f", as, "--detailed-exitcode"], { TOPO_TEST_ROLE_PW: `${tags}-pw` });
        expect(r.code, r.stdout).toBe(1);
        expect(r.stdout).not.toMatch(/create vhost/);
        expect(r.stderr).toContain(`set_permissions -p ${async} ${name} `);
        if (version === "4.3") expect(r.stderr).toContain(`vhost ${async} exists (the AMQP user guest opened it), but its listings answer 404 to the management user ${name} (tags ${tags})`);
      }
    } finally {
      for (const name of Object.values(names)) await api("DELETE", `/api/users/${name}`);
    }
  });

  it("an exchange replace puts back every user's topic permission on it, which RabbitMQ 4 deletes with the exchange; a management user who cannot read them is refused before any write", async () => {
    const { file, async } = topology({ sync: { type: "quorum" } }, ["mplogin"]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    // A worker declared the exchange direct: the file's topic exchange is a replace.
    expect((await api("DELETE", `/api/exchanges/${async}/mplogin`)).status).toBeLessThan(300);
    expect((await api("PUT", `/api/exchanges/${async}/mplogin`, { type: "direct", durable: true })).status).toBeLessThan(300);
    // A user topo does not manage, who may write to the exchange with one routing key only.
    const names = { hand: uniqueName("r4hand"), writer: uniqueName("r4writer") };
    try {
      expect((await api("PUT", `/api/users/${names.hand}`, { password: "hand-pw", tags: "" })).status).toBeLessThan(300);
      expect((await api("PUT", `/api/permissions/${async}/${names.hand}`, { configure: "^$", write: "^mplogin$", read: "^$" })).status).toBeLessThan(300);
      const kept = { exchange: "mplogin", write: "^mplogin\\.async\\.safe$", read: "^$" };
      expect((await api("PUT", `/api/topic-permissions/${async}/${names.hand}`, kept)).status).toBeLessThan(300);
      const topics = async () => (await api("GET", `/api/topic-permissions/${async}/${names.hand}`)).body;
      expect(await topics()).toMatchObject([kept]);

      // A policymaker may write policies but not read (nor put back) topic permissions.
      expect((await api("PUT", `/api/users/${names.writer}`, { password: "writer-pw", tags: "policymaker,monitoring" })).status).toBeLessThan(300);
      expect((await api("PUT", `/api/permissions/${async}/${names.writer}`, { configure: ".*", write: ".*", read: ".*" })).status).toBeLessThan(300);
      const asWriter = writeFile("writer.yaml", readFileSync(file, "utf8").replaceAll("guest:guest@", `${names.writer}:writer-pw@`));
      const refused = await runCli(["apply", "-f", asWriter, "--allow-destructive", "--cluster", "async"]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/RabbitMQ 4 deletes every user's topic permission on an exchange with it, and topo could not read them to put them back \(the management user \S+r4writer\S+ may not read them: it needs the administrator tag\): replacing exchange mplogin would let any user who may write to it publish any routing key, so topo refuses before anything is written/);
      expect((await api("GET", `/api/exchanges/${async}/mplogin`)).body.type).toBe("direct");
      expect(await topics()).toMatchObject([kept]);

      const plan = await runCli(["plan", "-f", file, "--cluster", "async"]);
      expect(plan.stdout).toContain(`then puts back the topic permission of user ${names.hand} on it (RabbitMQ 4 deletes them with the exchange)`);
      const applied = await runCli(["apply", "-f", file, "--allow-destructive", "--cluster", "async"]);
      expect(applied.stderr).not.toMatch(/Error/);
      expect(applied.code).toBe(0);
      expect((await api("GET", `/api/exchanges/${async}/mplogin`)).body.type).toBe("topic");
      expect(await topics()).toMatchObject([kept]);
      // The restriction holds: a key it does not allow is refused.
      const conn = await amqplib.connect(`${AMQP.replace("guest:guest@", `${names.hand}:hand-pw@`)}/${async}`);
      try {
        const ch = await conn.createConfirmChannel();
        const closed = new Promise<string>((resolve) => ch.on("error", (e: Error) => resolve(e.message)));
        ch.publish("mplogin", "mplogin.async.evil", Buffer.from("x"));
        expect(await closed).toMatch(/ACCESS_REFUSED.*mplogin\.async\.evil/);
      } finally {
        await conn.close().catch(() => undefined);
      }
      expect((await runCli(["plan", "-f", file, "--cluster", "async", "--detailed-exitcode"])).code).toBe(0);
    } finally {
      for (const name of Object.values(names)) await api("DELETE", `/api/users/${name}`);
    }
  });

  it("a vhost whose default queue type is quorum: the file's durable classic queues are refused before any write, existing ones warned about, typed ones applied", async () => {
    const { file, sync, async } = topology({ sync: { mirrored: false } }, ["mplogin"]);
    for (const v of [sync, async]) expect((await api("PUT", `/api/vhosts/${v}`, { default_queue_type: "quorum" })).status).toBeLessThan(300);
    for (const cmd of ["plan", "apply"]) {
      const r = await runCli([cmd, "-f", file]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(
        `cluster async: vhost "${async}" makes a durable queue declared without x-queue-type a quorum queue (its default queue type); topo declares classic queues without it, as workers do, so a queue the file says is classic would be created as quorum and never match the file: mplogin.async`,
      );
      expect(r.stderr).toContain("hint: set type: quorum for them in the file (e.g. defaults: { async: { type: quorum } })");
      expect(r.stderr).toContain(`hint: give the vhost the classic default: rabbitmqctl update_vhost_metadata ${async} --default-queue-type classic`);
      // The transient sync queue stays classic whatever the default: no error for that cluster.
      expect(r.stderr).not.toMatch(/cluster sync: vhost/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    // apply plans every cluster before it writes to any: nothing was written, on either cluster.
    for (const [v, q] of [[async, "mplogin.async"], [sync, "mplogin.sync"]]) expect((await api("GET", `/api/queues/${v}/${q}`)).status).toBe(404);

    // Made classic under a classic default, the queue is kept, and plan warns about the workers.
    expect((await api("PUT", `/api/vhosts/${async}`, { default_queue_type: "classic" })).status).toBeLessThan(300);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    expect((await api("PUT", `/api/vhosts/${async}`, { default_queue_type: "quorum" })).status).toBeLessThan(300);
    const kept = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(kept.code).toBe(0);
    expect(kept.stdout).toContain(`! warning: vhost "${async}" makes a durable queue declared without x-queue-type a quorum queue (its default queue type), but mplogin.async is a classic queue: a worker that declares it without x-queue-type (kombu's default, and topo export celery's module) is refused with 406 PRECONDITION_FAILED`);
    // What the warning says of workers, as kombu declares.
    const conn = await amqplib.connect(`${AMQP}/${async}`);
    try {
      const ch = await conn.createChannel();
      ch.on("error", () => undefined);
      await expect(ch.assertQueue("mplogin.async", { durable: true })).rejects.toThrow(/inequivalent arg 'x-queue-type'/);
    } finally {
      await conn.close().catch(() => undefined);
    }

    // Typed in the file, the queue is replaced as a quorum queue, and plan is clean.
    const typed = topologyFile(sync, async, { sync: { mirrored: false }, async: { type: "quorum" } }, ["mplogin"]);
    const r = await runCli(["apply", "-f", typed, "--allow-destructive"]);
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    expect((await api("GET", `/api/queues/${async}/mplogin.async`)).body).toMatchObject({ type: "quorum" });
    const clean = await runCli(["plan", "-f", typed, "--detailed-exitcode"]);
    expect(clean.code).toBe(0);
    expect(clean.stdout).not.toMatch(/default queue type/);

    // A quorum holding queue, as an earlier topo left one here (it declared it without a type, and
    // a quorum queue refuses the if-empty delete): the next apply finishes the replace with it.
    expect((await api("PUT", `/api/queues/${async}/topo.hold.mplogin.async`, { durable: true, arguments: { "x-queue-type": "quorum" } })).status).toBeLessThan(300);
    await publish(async, "", "topo.hold.mplogin.async", 7);
    const resumed = await runCli(["apply", "-f", typed, "--allow-destructive"]);
    expect(resumed.stderr).not.toMatch(/Error/);
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toContain("queue mplogin.async replaced; 7 messages moved back through topo.hold.mplogin.async");
    expect(await messageCount(async, "mplogin.async")).toBe(7);
    expect((await api("GET", `/api/queues/${async}/topo.hold.mplogin.async`)).status).toBe(404);
  });

  it("names the setting that permits transient queues where the broker denies them, the broker's default queue type a new vhost takes, and sees fetched messages with no statistics", async (ctx) => {
    // A second node of this version with the deprecated features transient_nonexcl_queues and
    // management_metrics_collection denied (4.0 and 4.3.6 permit them by default) and quorum as the default queue type, on the next ports and its own run folder: the
    // shared node is never restarted under the other test files that use it.
    const port = Number(new URL(AMQP).port) + 1;
    const env: Record<string, string | undefined> = {
      ...process.env,
      [`${vars}_AMQP_PORT`]: String(port),
      [`${vars}_MGMT_PORT`]: String(port + 10000),
      [`${vars}_DIST_PORT`]: String(port + 20000),
      [`${vars}_EPMD_PORT`]: String(port - 1300),
      [`${vars}_EXTRA_CONF`]: "deprecated_features.permit.transient_nonexcl_queues = false\ndeprecated_features.permit.management_metrics_collection = false\ndefault_queue_type = quorum",
      // It boots while the rest of the suite runs on two cores.
      [`${vars}_WAIT`]: "180",
    };
    delete env[`${vars}_RUN_DIR`];
    const started = spawnSync(SCRIPT, ["start"], { env, stdio: ["ignore", "inherit", "pipe"], encoding: "utf8", timeout: 300_000 });
    if (started.stderr) process.stderr.write(started.stderr);
    if (started.status === EXIT_PORT_TAKEN && !inCI()) return ctx.skip(started.stderr.trim().split("\n").at(-1));
    try {
      expect(started.status, started.stderr).toBe(0);
      const on = { amqp: `amqp://guest:guest@127.0.0.1:${port}`, mgmt: `http://127.0.0.1:${port + 10000}` };
      // The async queue typed, so that the default queue type does not stop apply before it writes.
      const [tsync, tasync] = [uniqueName("r4sync"), uniqueName("r4async")];
      const file = topologyFile(tsync, tasync, { sync: { mirrored: false }, async: { type: "quorum" } }, ["mplogin"], on);
      const r = await runCli(["apply", "-f", file]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/cluster sync: .*mplogin\.sync/);
      expect(r.stderr).toMatch(/deprecated_features\.permit\.transient_nonexcl_queues = true/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      if (version === "4.3") {
        // 4.3.6 reports the feature's state, its configuration included: plan refuses before
        // apply writes anything, on either cluster (4.0.5 reports the default phase only).
        const p = await runCli(["plan", "-f", file]);
        expect(p.code).toBe(1);
        expect(p.stderr).toContain("cluster sync: queue mplogin.sync: durable: false: RabbitMQ 4.3.6 denies the deprecated feature transient_nonexcl_queues (its configuration denies it: deprecated_features.permit.transient_nonexcl_queues = false)");
        for (const v of [tsync, tasync]) expect((await fetch(`${on.mgmt}/api/vhosts/${v}`, { headers: { authorization: AUTH } })).status).toBe(404);
      }

      // A vhost that does not exist yet takes the broker's default queue type, which the file's
      // durable classic queue would get: refused before anything is written.
      const async = uniqueName("r4async");
      const untyped = topologyFile(uniqueName("r4sync"), async, { sync: { mirrored: false } }, ["mplogin"], on);
      for (const cmd of ["plan", "apply"]) {
        const d = await runCli([cmd, "-f", untyped]);
        expect(d.code).toBe(1);
        expect(d.stderr).toContain(`cluster async: the broker gives the vhost "${async}" apply creates its default queue type, and so makes a durable queue declared without x-queue-type a quorum queue`);
        expect(d.stderr).toContain(`hint: create the vhost with the classic default before apply: rabbitmqctl add_vhost ${async} --default-queue-type classic`);
      }
      const vhost = await fetch(`${on.mgmt}/api/vhosts/${async}`, { headers: { authorization: AUTH } });
      expect(vhost.status).toBe(404);

      // management_metrics_collection denied: a queue has no statistics. A client that fetched
      // messages with basic.get and holds them when the old queue is to go (after plan's check) is
      // still seen, by the queue's totals: the replace leaves the queue, and nothing is lost.
      const cv = uniqueName("r4async");
      const put = await fetch(`${on.mgmt}/api/vhosts/${cv}`, { method: "PUT", headers: { authorization: AUTH, "content-type": "application/json" }, body: JSON.stringify({ default_queue_type: "classic" }) });
      expect(put.status).toBeLessThan(300);
      expect((await runCli(["apply", "-f", topologyFile(uniqueName("r4sync"), cv, { sync: { type: "quorum" } }, ["mplogin"], on)])).code).toBe(0);
      const conn = await amqplib.connect(`${on.amqp}/${cv}`);
      try {
        const pub = await conn.createConfirmChannel();
        for (let i = 0; i < 10; i++) pub.publish("mplogin", "mplogin.async.x", Buffer.from(String(i)), { persistent: true, messageId: `m${i}` });
        await pub.waitForConfirms();
        const poller = await conn.createChannel();
        for (let i = 0; i < 4; i++) expect(await poller.get("mplogin.async", { noAck: false })).toBeTruthy();
        const u = new URL(on.amqp);
        const t: ClusterTarget = {
          name: "async",
          amqp: { protocol: "amqp", hostname: u.hostname, port: Number(u.port), username: "guest", password: "guest", vhost: cv, display: `amqp://***@${u.host}/${cv}` },
          management: { baseUrl: on.mgmt, username: "guest", password: "guest", display: on.mgmt },
          tls: {},
        };
        const http = new ManagementClient(t.name, t.management, {});
        const session = await AmqpSession.open(t);
        const old: Queue = { kind: "queue", name: "mplogin.async", type: "classic", durable: true, autoDelete: false, exclusive: false, arguments: {} };
        const route: Binding = { kind: "binding", source: "mplogin", destination: "mplogin.async", destinationType: "queue", routingKey: "mplogin.async.#", arguments: {} };
        const err = await replaceQueueLossless(
          session,
          { report: quorumReportFor(t), after: { ...old, arguments: { "x-max-priority": 5 } }, bindings: [route], holdBindings: [], queueDone: false, old, unacked: async (q) => (await heldNow(http, t)).get(q)?.unacked },
          () => undefined,
        ).then(
          () => undefined,
          (e: Error) => e,
        );
        await session.close();
        expect(err?.message).toMatch(/counts 4 messages of the old queue fetched and not acknowledged .* so it was left; no message was lost/);
        await poller.close();
        const check = await conn.createChannel();
        expect((await check.checkQueue("mplogin.async")).messageCount + (await check.checkQueue("topo.hold.mplogin.async")).messageCount).toBe(10);
      } finally {
        await conn.close().catch(() => undefined);
      }
    } finally {
      execFileSync(SCRIPT, ["stop"], { env, stdio: "inherit", timeout: 120_000 });
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

  it("replaces a queue whose arguments changed without losing its messages, then plans clean", async () => {
    const sync = uniqueName("r4sync");
    const async = uniqueName("r4async");
    vhosts.push(sync, async);
    const before = topologyFile(sync, async, undefined, [{ name: "mplogin", sync: false }]);
    const after = topologyFile(sync, async, undefined, [{ name: "mplogin", sync: false, async: { arguments: { "x-max-length": 1000000 } } }]);
    expect((await runCli(["apply", "-f", before])).code).toBe(0);
    await publish(async, "mplogin", "mplogin.async.audit", 30);
    expect(await messageCount(async, "mplogin.async")).toBe(30);
    const refused = await runCli(["apply", "-f", after]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/--allow-destructive/);
    const plan = await runCli(["plan", "-f", after]);
    expect(plan.stdout).toMatch(/-\/\+ replace queue mplogin\.async/);
    const r = await runCli(["apply", "-f", after, "--allow-destructive"]);
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    expect((await api("GET", `/api/queues/${async}/mplogin.async`)).body.arguments).toMatchObject({ "x-max-length": 1000000 });
    expect(await messageCount(async, "mplogin.async")).toBe(30);
    // The binding came back with the queue: a new message is routed to it.
    await publish(async, "mplogin", "mplogin.async.audit", 1);
    expect(await messageCount(async, "mplogin.async")).toBe(31);
    expect((await runCli(["plan", "-f", after, "--detailed-exitcode"])).code).toBe(0);
  });

  const ctl = (...args: string[]) => execFileSync(SCRIPT, ["ctl", ...args], { encoding: "utf8", timeout: 60_000 });
  /** Waits (up to 60 s) until the node reports the alarm `on` or off: the disk monitor checks every few seconds. */
  async function alarmed(kind: "mem_alarm" | "disk_free_alarm", on: boolean): Promise<void> {
    for (let i = 0; i < 120 && (await api("GET", `/api/nodes?columns=${kind}`)).body[0]?.[kind] !== on; i++) await new Promise((r) => setTimeout(r, 500));
    expect((await api("GET", `/api/nodes?columns=${kind}`)).body[0]?.[kind]).toBe(on);
  }
  /**
   * Runs `fn` while the node has a memory or disk alarm, then restores the node's own limit and waits
   * for the alarm to clear. Each takes up to 10 s on a busy machine (the disk monitor polls), so the
   * tests that use it get 180 s.
   */
  async function underAlarm<T>(kind: "memory" | "disk", fn: () => Promise<T>): Promise<T> {
    const [get, set, alarm, high] =
      kind === "memory"
        ? (["vm_memory_monitor:get_vm_memory_high_watermark().", "set_vm_memory_high_watermark", "mem_alarm", "0.00001"] as const)
        : (["rabbit_disk_monitor:get_disk_free_limit().", "set_disk_free_limit", "disk_free_alarm", "1000000000000000"] as const);
    // The node's own limit again afterwards (a relative watermark prints as {relative,F} on some versions).
    const own = /([\d.]+)/.exec(ctl("eval", get))?.[1] ?? (kind === "memory" ? "0.4" : "50000000");
    ctl(set, high);
    try {
      await alarmed(alarm, true);
      return await fn();
    } finally {
      ctl(set, own);
      await alarmed(alarm, false);
    }
  }
  /** A management-tagged user with every right on the vhosts: it may not read GET /api/nodes, so topo cannot see an alarm before it publishes. */
  /**
   * The broker's management API, but for its alarm list (the health check), which it refuses as a
   * broker does to a user who may not read it: with a user who may not read the nodes either, apply
   * cannot see an alarm before it writes, and meets it in the move. Without credentials in the URL:
   * the file's url gives them. Closed when the test ends.
   */
  async function alarmsUnreadable(): Promise<string> {
    const proxy = await managementProxy({
      upstream: MGMT,
      answer: (req, res) => {
        if (!(req.url ?? "").startsWith("/api/health/checks/alarms")) return false;
        res.writeHead(403, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: "not_authorised", reason: "Not monitor user" }));
        return true;
      },
    });
    onTestFinished(() => proxy.close());
    return `http://127.0.0.1:${proxy.port}`;
  }

  async function unmonitored(vs: string[]): Promise<{ name: string; url: string; drop: () => Promise<unknown> }> {
    const name = uniqueName("r4nomon");
    expect((await api("PUT", `/api/users/${name}`, { password: "nomon-pw", tags: "management" })).status).toBeLessThan(300);
    for (const v of vs) expect((await api("PUT", `/api/permissions/${v}/${name}`, { configure: ".*", write: ".*", read: ".*" })).status).toBeLessThan(300);
    expect((await api("GET", `/api/nodes`)).status).toBe(200);
    return { name, url: AMQP.replace("guest:guest@", `${name}:nomon-pw@`), drop: () => api("DELETE", `/api/users/${name}`) };
  }

  /**
   * Services whose async queues exist (applied as guest), the first holding `messages`, and the file
   * that replaces them all (x-max-length), as guest (`after`) or through other endpoints (`replacing`).
   */
  async function queuesToReplace(names: string[], messages: number) {
    const sync = uniqueName("r4sync");
    const async = uniqueName("r4async");
    vhosts.push(sync, async);
    const services = (args: Record<string, number>) => names.map((name) => ({ name, sync: false, async: { arguments: args } }));
    expect((await runCli(["apply", "-f", topologyFile(sync, async, undefined, services({}))])).code).toBe(0);
    await publish(async, names[0]!, `${names[0]}.async.x`, messages);
    const replacing = (on?: { amqp: string; mgmt: string }) => topologyFile(sync, async, undefined, services({ "x-max-length": 100000 }), on);
    return { sync, async, after: replacing(), replacing };
  }

  // A consumer holds messages unacknowledged: a passive declare counts only the ready ones, and the
  // statistics, the only count of the others, lag (quorum queues' on 4.x by more than 5 s). Apply
  // once printed "[holds 2 messages]" for a queue holding 5: statistics from before the consumer
  // took its 3 were taken as fresh, since a live consumer skipped the check.
  it("a replace refused for a consumer counts what the queue holds, the consumer's unacknowledged messages included", async () => {
    const sync = uniqueName("r4sync");
    const async = uniqueName("r4async");
    vhosts.push(sync, async);
    const services = (args: Record<string, number>) => [{ name: "mplogin", sync: false, async: { type: "quorum", arguments: args } }];
    expect((await runCli(["apply", "-f", topologyFile(sync, async, undefined, services({}))])).code).toBe(0);
    await publish(async, "mplogin", "mplogin.async.audit", 5);
    const conn = await amqplib.connect(`${AMQP}/${async}`);
    try {
      const ch = await conn.createChannel();
      await ch.prefetch(3);
      let got = 0;
      await ch.consume("mplogin.async", () => void got++, { noAck: false });
      await until("the consumer takes 3 messages", () => got === 3, 10_000, () => `it took ${got}`);
      const r = await runCli(["apply", "-f", topologyFile(sync, async, undefined, services({ "x-max-length": 1000 })), "--allow-destructive"]);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/-\/\+ replace queue mplogin\.async \[holds 5 messages\]\n/);
      // A quorum queue's count says how it counts: a client's unacknowledged basic.get is a consumer too.
      expect(r.stderr).toMatch(/queue mplogin\.async \(holds 5 messages\):\n\s+1 consumer is attached \(as the quorum queue counts them: [^)]*\), holding 3 unacknowledged messages/);
    } finally {
      await conn.close();
    }
    expect(await messageCount(async, "mplogin.async")).toBe(5);
  });

  // RabbitMQ 4.3 can hold a returned message back for a delay before it delivers it again
  // (delayed-retry-type). Such a message is neither ready nor unacknowledged: no move takes it, and
  // the old queue's delete drops it. Plan called them "dead-lettered at least once" and told the
  // user to let the dead-letter target take them, which no target ever does.
  // RabbitMQ 4.3 only: earlier versions delay no retry (registered for it alone, not skipped elsewhere).
  if (version === "4.3") it("a replace of a quorum queue whose returned messages wait out 4.3's retry delay says so, refuses and loses none, and counts them where told to drop them", async () => {
    const sync = uniqueName("r4sync");
    const async = uniqueName("r4async");
    vhosts.push(sync, async);
    const services = (args: Record<string, number>) => [{ name: "mplogin", sync: false, async: { type: "quorum", arguments: args } }];
    expect((await runCli(["apply", "-f", topologyFile(sync, async, undefined, services({}))])).code).toBe(0);
    // The operator's own policy delays every returned message by 120 s.
    const policy = { pattern: "^mplogin\\.async$", "apply-to": "quorum_queues", definition: { "delayed-retry-type": "all", "delayed-retry-min": 120_000, "delayed-retry-max": 120_000 } };
    expect((await api("PUT", `/api/policies/${encodeURIComponent(async)}/delay-returns`, policy)).status).toBeLessThan(300);
    await publish(async, "mplogin", "mplogin.async.audit", 3);
    await nackBack(async, "mplogin.async", 2);
    const stats = () => delayedStats(async, "mplogin.async", 2);
    expect(await stats()).toMatchObject({ messages: 3, messages_ready: 1, messages_delayed: 2 });
    const file = topologyFile(sync, async, undefined, services({ "x-delivery-limit": 50 }));
    const plan = await runCli(["plan", "-f", file]);
    expect(plan.stdout).toContain(
      "! messages at risk: 2 returned messages wait in it for the retry delay RabbitMQ 4.3 gives them (x-delayed-retry-type; the statistics' messages_delayed) before they are ready again: a replace cannot move them, and deleting the old queue drops them",
    );
    expect(plan.stdout).not.toContain("dead-lettered");
    const r = await runCli(["apply", "-f", file, "--allow-destructive"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("let the delay end (at most the queue's delayed-retry-max)");
    expect(await stats()).toMatchObject({ messages: 3, messages_delayed: 2 });
    // Dropped on purpose, they are counted: it said "deleted with the 1 message it holds" and
    // "1 ready message dropped", and 3 were gone.
    const lost = await runCli(["apply", "-f", file, "--allow-destructive", "--allow-data-loss"]);
    expect(lost.code, lost.stderr).toBe(0);
    const said = `${lost.stdout}${lost.stderr}`;
    expect(said).toContain("-/+ replace queue mplogin.async [holds 3 messages]");
    expect(said).toContain("--allow-data-loss: queue mplogin.async is deleted with the 3 messages it holds, and re-created empty");
    expect(said).toContain(
      "queue mplogin.async deleted to be re-created; 1 ready message dropped, and 2 messages neither ready nor unacknowledged (dead letters waiting for their target, or retries RabbitMQ 4.3 delays) when apply counted them (--allow-data-loss)",
    );
  });

  // A message topo cannot publish unchanged stops the replace, and goes back to its queue by
  // requeue. RabbitMQ 4.0 counts that as a delivery: the third apply that stopped at it, in a queue
  // of x-delivery-limit 2, dropped it while saying the old queue kept it, and the fourth finished.
  // (4.3 counts no requeue; registered for 4.0 alone.)
  if (version === "4.0") it("a message topo cannot move unchanged is never dropped by the requeues of the applies that stop at it: at its delivery limit it goes back changed, and apply says so", async () => {
    const sync = uniqueName("r4sync");
    const async = uniqueName("r4async");
    vhosts.push(sync, async);
    const file = (args: Record<string, number>) => topologyFile(sync, async, undefined, [{ name: "mplogin", sync: false, async: { type: "quorum", arguments: { "x-delivery-limit": 2, ...args } } }]);
    expect((await runCli(["apply", "-f", file({})])).code).toBe(0);
    const conn = await amqplib.connect(`${AMQP}/${async}`);
    try {
      const ch = await conn.createConfirmChannel();
      ch.publish("mplogin", "mplogin.async.t", Buffer.from("nanoseconds"), { messageId: "ns-1", timestamp: 1700000000123456781 });
      await ch.waitForConfirms();
    } finally {
      await conn.close();
    }
    const replaced = file({ "x-max-length": 100000 });
    const said: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await runCli(["apply", "-f", replaced, "--allow-destructive"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("a message (message_id ns-1) cannot be moved");
      said.push(r.stderr);
      expect(await messageCount(async, "mplogin.async"), `after apply ${i + 1}`).toBe(1);
    }
    // The third requeue would have passed the limit: that apply gave it back changed, and said so.
    expect(said.filter((s) => s.includes("went back changed"))).toHaveLength(1);
    expect(said[2]).toContain(
      "none was lost or copied; but message (message_id ns-1) went back changed, as topo's AMQP client reads it (published anew): a requeue would have passed the queue's delivery limit, and RabbitMQ would have dropped it",
    );
  });

  // A move out of a quorum queue that stops half-way gives back what it fetched and could not
  // move. Given back by a requeue, each counted as a delivery (4.0.5; 4.3.6 counts a closed channel
  // only), and a message already at its x-delivery-limit was dropped, though apply said "none was
  // lost". And a moved message carried the old queue's x-delivery-count header, a count the new
  // queue does not go by (4.0.5 ignored a published one, 4.3.6 kept it beside its own).
  it("a move out of a quorum queue that stops half-way gives back what it could not move without counting a delivery: none dropped at its x-delivery-limit", async () => {
    const v = uniqueName("r4async");
    vhosts.push(v);
    expect((await api("PUT", `/api/vhosts/${v}`)).status).toBeLessThan(300);
    const { error, moved, kept, holdType } = await stoppedQuorumMove(AMQP, MGMT, v);
    expect(holdType).toBe("quorum");
    expect(error).toMatch(/topo\.hold\.mplogin\.async is full at policy p's max-length-bytes 250; 8 messages could not be moved and the old queue mplogin\.async keeps them \(its workers still take them from there\); meanwhile its bindings route new messages to topo\.hold\.mplogin\.async, where no worker takes them until an apply finishes the replace; none was lost or copied/);
    expect([...moved, ...kept].map((m) => m.id).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `m${i}`));
    // What was moved carries no delivery count of the old queue's.
    // The holding queue (a quorum queue) counts its own deliveries: none yet (3.10 writes the
    // count 0), not the old queue's 1 of the two moved first.
    expect(moved.map((m) => m.count ?? 0)).toEqual([0, 0]);
  });

  // RabbitMQ 4 serves a quorum queue's messages of priority above 4 first, whatever its arguments:
  // a task of priority 0 published long before the switch came out of the old queue last, as a
  // copy's would, and was dropped as the copy of the same task published again after the switch
  // (rv1, on 4.3.6). Both are kept now.
  it("a quorum queue's move keeps a task that only looks like a copy because priority 9 went first", async () => {
    const v = uniqueName("r4async");
    vhosts.push(v);
    expect((await api("PUT", `/api/vhosts/${v}`)).status).toBeLessThan(300);
    const { error, ids } = await priorityTwins(AMQP, MGMT, v);
    expect(error).toBeUndefined();
    expect(ids.filter((id) => id === "task-X")).toHaveLength(2);
    expect(ids).toHaveLength(302);
  });

  // A memory alarm blocks publishing; a replace whose move is blocked past its grace closes the
  // connection, and the other replaces under way on it fail with "Channel ended". That is no
  // restart to reconnect after: the broker reads nothing from the blocked connection, so it holds
  // topo's lock until the alarm clears, and a reconnect waited for its own lock, then blamed
  // "another apply". Here, not on the machine's broker: an alarm blocks every publisher. As a user
  // that may not read the nodes' alarms (management tag) nor, through a proxy, the broker's alarm
  // list (which a management user may read on 4.x), so apply finds the alarm by publishing.
  it("a memory alarm during two replaces: apply names the alarm at once, does not wait for its own lock; the next apply finishes", async () => {
    const { sync, async, after, replacing } = await queuesToReplace(["mplogin", "mpwallet"], 50);
    const user = await unmonitored([sync, async]);
    try {
      const blind = replacing({ amqp: user.url, mgmt: await alarmsUnreadable() });
      await underAlarm("memory", async () => {
        const r = await runCli(["apply", "-f", blind, "--allow-destructive", "--json", "--lock-timeout", "20"]);
        expect(r.code).toBe(1);
        expect(r.stderr).not.toMatch(/reconnecting|waiting for the apply lock/);
        const err = JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('{"error"'))).error;
        expect(err.code).not.toBe("lock_timeout");
        // Whichever replace stops first names the reason: its own move, or the connection the other's closed.
        expect(err.message).toMatch(/blocked (topo's publishing|publishing on topo's connection) \(low on memory\)/);
        expect(err.hints.join("\n")).toContain("rabbitmq-diagnostics alarms");
        expect(err.hints.join("\n")).toContain("vm_memory_high_watermark");
        expect(err.hints.join("\n")).not.toContain("disk");
      });
    } finally {
      await user.drop();
    }
    const finished = await runCli(["apply", "-f", after, "--allow-destructive"]);
    expect(finished.code, finished.stderr).toBe(0);
    expect(await messageCount(async, "mplogin.async")).toBeGreaterThanOrEqual(50);
  }, 180_000);

  // A disk alarm blocks publishers as a memory alarm does. An apply that replaced a queue holding
  // messages under one moved the queue's bindings to its holding queue, waited 10 s for confirms
  // that never came and stopped with a hint that could not say which alarm, nor what to do about
  // it; the next apply then found copies of the messages whose move was under way. A user that may
  // read the nodes (monitoring, administrator) sees the alarm before anything is written: plan
  // warns, apply refuses at once, naming the node, its free space and its disk_free_limit.
  it("a disk alarm before a replace that moves messages: plan warns, apply refuses before writing, naming the alarm and the fix; the next apply finishes, every message once", async () => {
    const { async, after } = await queuesToReplace(["mplogin"], 40);
    const alarm = /node \S+ has a disk alarm \(free disk space [\d.]+ [KMGT]?B, below its disk_free_limit of 1 PB\): the broker blocks every publisher while it lasts, and replacing queue mplogin\.async \(40 messages\) moves 40 messages by publishing them/;
    await underAlarm("disk", async () => {
      const plan = await runCli(["plan", "-f", after, "--detailed-exitcode"]);
      expect(plan.code, plan.stderr).toBe(2);
      expect(plan.stdout).toMatch(alarm);
      expect(plan.stdout).toContain("apply refuses it until the alarm has cleared");
      const started = Date.now();
      const r = await runCli(["apply", "-f", after, "--allow-destructive", "--json"]);
      expect(r.code).toBe(1);
      // Refused at once, not after the 10 s a blocked publish is waited out.
      expect(Date.now() - started).toBeLessThan(9_000);
      const err = JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('{"error"'))).error;
      expect(err.code).toBe("broker_refused");
      expect(err.message).toMatch(alarm);
      expect(err.message).toContain("topo refuses before anything is written; nothing was changed");
      const hints = err.hints.join("\n");
      expect(hints).toContain("free disk space on");
      expect(hints).toContain("rabbitmqctl set_disk_free_limit");
      expect(hints).toContain("rabbitmq-diagnostics alarms");
      expect(hints).not.toContain("vm_memory_high_watermark");
      // Nothing was written: no holding queue, the queue as it was, still bound.
      expect((await api("GET", `/api/queues/${async}/topo.hold.mplogin.async`)).status).toBe(404);
      expect((await api("GET", `/api/queues/${async}/mplogin.async`)).body.arguments).not.toHaveProperty("x-max-length");
      expect(((await api("GET", `/api/queues/${async}/mplogin.async/bindings`)).body as { source: string }[]).map((b) => b.source)).toContain("mplogin");
    });
    expect(await messageCount(async, "mplogin.async")).toBe(40);
    const finished = await runCli(["apply", "-f", after, "--allow-destructive"]);
    expect(finished.code, finished.stderr).toBe(0);
    expect((await api("GET", `/api/queues/${async}/mplogin.async`)).body.arguments).toMatchObject({ "x-max-length": 100000 });
    // Every message once: none was in flight when the alarm struck.
    expect(await messageCount(async, "mplogin.async")).toBe(40);
  }, 180_000);

  // The same alarm struck where topo could not see it before publishing (a user that may not read
  // the nodes): the move is blocked, apply stops after its grace and names the disk alarm, with
  // what to do about a disk alarm, not a memory one; the next apply finishes and keeps every message.
  it("a disk alarm met by the move itself: apply names low on disk and its fix, exits 1, loses nothing; the next apply finishes", async () => {
    const { sync, async, after, replacing } = await queuesToReplace(["mplogin"], 40);
    const user = await unmonitored([sync, async]);
    try {
      const blind = replacing({ amqp: user.url, mgmt: await alarmsUnreadable() });
      await underAlarm("disk", async () => {
        const r = await runCli(["apply", "-f", blind, "--allow-destructive", "--json", "--lock-timeout", "20"]);
        expect(r.code).toBe(1);
        const err = JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('{"error"'))).error;
        expect(err.code).not.toBe("lock_timeout");
        expect(err.message).toMatch(/move messages from mplogin\.async to topo\.hold\.mplogin\.async: the broker blocked topo's publishing \(low on disk\) for more than 10 s, so topo closed its connection; no message was lost/);
        const hints = err.hints.join("\n");
        expect(hints).toContain("rabbitmqctl set_disk_free_limit");
        expect(hints).toContain("rabbitmq-diagnostics alarms");
        expect(hints).not.toContain("vm_memory_high_watermark");
      });
    } finally {
      await user.drop();
    }
    const finished = await runCli(["apply", "-f", after, "--allow-destructive"]);
    expect(finished.code, finished.stderr).toBe(0);
    // At-least-once: a message whose move was under way may be there twice, none is missing.
    const ids = new Set<string>();
    const conn = await amqplib.connect(`${AMQP}/${async}`);
    try {
      const ch = await conn.createChannel();
      for (let m = await ch.get("mplogin.async", { noAck: true }); m; m = await ch.get("mplogin.async", { noAck: true })) ids.add(String(m.properties.messageId));
    } finally {
      await conn.close();
    }
    expect(Array.from({ length: 40 }, (_, i) => `m${i}`).filter((id) => !ids.has(id))).toEqual([]);
  }, 180_000);

  // The lock is an exclusive queue with a consumer, so that a policy's expires (an operator's clean-up
  // of idle queues) never finds it unused. The consumer was left out below channel_max 16: at
  // channel_max 8 on 4.0.5, a policy's expires 1500 deleted the lock of an apply that was still
  // writing (1,500 services), and another apply could then take it too. channel_max is read by each
  // new connection: set on the running node, as cluster.test.ts does, and set back.
  it("channel_max 8: a policy's expires does not take the lock from the apply that holds it", async () => {
    const v = uniqueName("r4lock");
    vhosts.push(v);
    expect((await api("PUT", `/api/vhosts/${v}`)).status).toBeLessThan(300);
    expect((await api("PUT", `/api/policies/${v}/idle`, { pattern: "^topo\\.", definition: { expires: 1000 }, "apply-to": "queues" })).status).toBeLessThan(300);
    const own = /\{ok,(\d+)\}/.exec(ctl("eval", "application:get_env(rabbit, channel_max)."))?.[1] ?? "2047";
    ctl("eval", "application:set_env(rabbit, channel_max, 8).");
    const u = new URL(AMQP);
    const t: ClusterTarget = {
      name: "async",
      amqp: { protocol: "amqp", hostname: u.hostname, port: Number(u.port), username: "guest", password: "guest", vhost: v, display: `amqp://***@${u.host}/${v}` },
      management: { baseUrl: MGMT, username: "guest", password: "guest", display: MGMT },
      tls: {},
    };
    const http = new ManagementClient(t.name, t.management, {});
    const lock = { queue: "topo.mp.lock", log: () => undefined };
    let holder: AmqpSession | undefined;
    try {
      holder = await AmqpSession.open(t);
      expect(holder.channelMax).toBe(8);
      await acquireLock(holder, http, v, { ...lock, timeoutMs: 5_000 });
      // Three times the policy's expiry: an unused queue would be gone.
      await new Promise((r) => setTimeout(r, 3_000));
      expect((await api("GET", `/api/queues/${v}/topo.mp.lock`)).status).toBe(200);
      const other = await AmqpSession.open(t);
      try {
        await expect(acquireLock(other, http, v, { ...lock, timeoutMs: 500, pollMs: 100 })).rejects.toBeInstanceOf(LockError);
      } finally {
        await other.close();
      }
      // The lock's consumer holds one of the 8: the writes keep within the other seven, one spare.
      expect(holder.writers(64)).toBe(6);
    } finally {
      await holder?.close();
      ctl("eval", `application:set_env(rabbit, channel_max, ${own}).`);
    }
  });

  // RabbitMQ applies the lowest of a quorum queue's x-delivery-limit (20 by default on 4.x) and
  // its policies' delivery-limit: plan said "No changes." for a queue that dropped a message at its
  // fourth return where the file gives it ten.
  it("an operator policy's delivery-limit below the file's is degraded, as the broker reports it", async () => {
    const sync = uniqueName("r4sync");
    const async = uniqueName("r4async");
    vhosts.push(sync, async);
    const file = topologyFile(sync, async, { async: { type: "quorum" } }, [
      { name: "mpten", sync: false, async: { arguments: { "x-delivery-limit": 10 } } },
      { name: "mpdefault", sync: false },
    ]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    const put = await api("PUT", `/api/operator-policies/${async}/retries`, { pattern: "^mp", definition: { "delivery-limit": 3 }, "apply-to": "queues", priority: 0 });
    expect(put.status).toBeLessThan(300);
    // The broker's own figure (its statistics, emitted every 5 s).
    for (let i = 0; i < 60; i++) {
      const qs = (await api("GET", `/api/queues/${async}?columns=name,delivery_limit`)).body as { name: string; delivery_limit?: number }[];
      if (qs.length === 2 && qs.every((q) => q.delivery_limit === 3)) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect((await api("GET", `/api/queues/${async}/mpten.async?columns=delivery_limit`)).body).toEqual({ delivery_limit: 3 });

    const plan = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(plan.code, plan.stderr).toBe(2);
    expect(plan.stdout).toMatch(/! degraded: operator policy "retries" sets delivery-limit 3 on 1 queue \(mpdefault\.async\) and the file gives it no x-delivery-limit \(RabbitMQ 4\.\d+\.\d+'s default is 20\): the queue drops \(or dead-letters\) a message returned more than 3 times/);
    expect(plan.stdout).toMatch(/! degraded: operator policy "retries" sets delivery-limit 3 on 1 queue \(mpten\.async\) and the file gives x-delivery-limit 10:/);
  });

  // From RabbitMQ 3.12.7 an operator policy may set overflow, and its value wins over a user's
  // policy's and a quorum queue's own. Plan took operator policies to set none: it said "No
  // changes." of a capped queue that refused what the file says it makes room for, and said a
  // quorum queue keeps its dead letters where it drops them.
  it("an operator policy's overflow is degraded where it acts, and the broker does refuse", async () => {
    const sync = uniqueName("r4sync");
    const async = uniqueName("r4async");
    vhosts.push(sync, async);
    const file = topologyFile(sync, async, undefined, [
      { name: "mpcapped", sync: false, async: { arguments: { "x-max-length": 2 } } },
      { name: "mpkept", sync: false, async: { type: "quorum", arguments: { "x-dead-letter-exchange": "mpcapped", "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish" } } },
    ]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    const refuse = { pattern: "^mpcapped\\.", definition: { overflow: "reject-publish" }, "apply-to": "queues", priority: 0 };
    const dropHead = { pattern: "^mpkept\\.", definition: { overflow: "drop-head" }, "apply-to": "queues", priority: 0 };
    for (const [name, body] of [["refuse", refuse], ["drophead", dropHead]] as const) {
      const put = await api("PUT", `/api/operator-policies/${async}/${name}`, body);
      expect(put.status, JSON.stringify(put.body)).toBeLessThan(300);
    }
    const plan = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(plan.code, plan.stderr).toBe(2);
    expect(plan.stdout).toContain(
      '! degraded: operator policy "refuse" sets overflow reject-publish on 1 queue (mpcapped.async) and the file gives it no x-overflow (drop-head): a full queue refuses new messages (a publisher without confirms loses them without knowing), instead of dropping its oldest message as the file says;',
    );
    expect(plan.stdout).toMatch(/! degraded: \S+topology\.yaml:\d+:\d+: x-dead-letter-strategy: "at-least-once" \(queue mpkept\.async\): operator policy "drophead" sets overflow "drop-head", which RabbitMQ applies over the queue's own x-overflow and its policy's, so the queue dead-letters at most once/);
    // Its dead letters to an exchange that routes none of them are dropped, not kept.
    expect(plan.stdout).toMatch(/x-dead-letter-exchange: "mpcapped" \(queue mpkept\.async\): .*, so RabbitMQ drops every message it dead-letters, without a word/);
    // What plan says is what the broker does: the third of three publishes is refused.
    const conn = await amqplib.connect(`${AMQP}/${async}`);
    try {
      const ch = await conn.createConfirmChannel();
      const confirms = [];
      for (let i = 0; i < 3; i++) confirms.push(await new Promise((ok) => ch.publish("mpcapped", "mpcapped.async.audit", Buffer.from(String(i)), {}, (err) => ok(err ? "nack" : "ack"))));
      expect(confirms).toEqual(["ack", "ack", "nack"]);
    } finally {
      await conn.close();
    }
  });

  // RabbitMQ times a consumer out at the lower of a queue's x-consumer-timeout and its policy's
  // consumer-timeout: plan said "No changes." of a quorum queue the file gives an hour, whose
  // workers a policy of 5 s cut off (4.3.6).
  it("a policy's consumer-timeout below the file's is degraded", async () => {
    const sync = uniqueName("r4sync");
    const async = uniqueName("r4async");
    vhosts.push(sync, async);
    const file = topologyFile(sync, async, { async: { type: "quorum" } }, [{ name: "mphour", sync: false, async: { arguments: { "x-consumer-timeout": 3_600_000 } } }]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    const put = await api("PUT", `/api/policies/${async}/short`, { pattern: "^mphour\\.", definition: { "consumer-timeout": 5000 }, "apply-to": "queues", priority: 0 });
    expect(put.status, JSON.stringify(put.body)).toBeLessThan(300);
    const plan = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(plan.code, plan.stderr).toBe(2);
    expect(plan.stdout).toContain(
      '! degraded: policy "short" sets consumer-timeout 5000 on 1 queue (mphour.async) and the file gives x-consumer-timeout 3600000: the queue cuts off a consumer that holds a delivery unacknowledged for more than 5 s (RabbitMQ closes its channel, or from 4.3 cancels it, and delivers the message again), not as the file says;',
    );
    // What plan says is what the broker does. 4.3 cancels the consumer on time; 4.0 closes the
    // channel at its next check, up to a minute later (measured: 59 s), too long to wait for here.
    if (version !== "4.3") return;
    await publish(async, "mphour", "mphour.async.report", 1);
    const conn = await amqplib.connect(`${AMQP}/${async}`);
    // 4.3.6 may deliver again to the cancelled consumer's tag, which amqplib reports as an error.
    conn.on("error", () => undefined);
    try {
      const ch = await conn.createChannel();
      ch.on("error", () => undefined);
      await ch.prefetch(1);
      const started = Date.now();
      const cancelled = new Promise<number>((resolve) => {
        void ch.consume("mphour.async", (m) => {
          if (m === null) resolve(Date.now() - started);
        });
      });
      const after = await Promise.race([cancelled, new Promise<number>((r) => setTimeout(() => r(-1), 20_000))]);
      expect(after, "the broker did not cancel the consumer within 20 s").toBeGreaterThanOrEqual(4_000);
      expect(after).toBeLessThan(20_000);
    } finally {
      await conn.close().catch(() => undefined);
    }
  });

  // RabbitMQ 4.3 holds a returned message back where a policy says (delayed-retry-type, -min and
  // -max), over the queue's own arguments: plan said "No changes." of a queue the file declares
  // with x-delayed-retry-type: disabled, whose every requeue waited 30 s.
  if (version === "4.3") it("a policy's delayed retries over the file's are degraded, and the broker does delay a returned message", async () => {
    const sync = uniqueName("r4sync");
    const async = uniqueName("r4async");
    vhosts.push(sync, async);
    const file = topologyFile(sync, async, { async: { type: "quorum" } }, [{ name: "mpnow", sync: false, async: { arguments: { "x-delayed-retry-type": "disabled" } } }]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    const policy = { pattern: "^mpnow\\.", "apply-to": "quorum_queues", priority: 0, definition: { "delayed-retry-type": "all", "delayed-retry-min": 120_000 } };
    expect((await api("PUT", `/api/policies/${async}/delay`, policy)).status).toBeLessThan(300);
    const plan = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(plan.code, plan.stderr).toBe(2);
    expect(plan.stdout).toContain(
      '! degraded: policy "delay" sets delayed-retry-type all, delayed-retry-min 120000 on 1 queue (mpnow.async) and the file gives x-delayed-retry-type disabled: the queue holds a message given back (rejected, nacked, or left unacknowledged by a closed channel) for 2 min before delivering it again, where the file says it delivers a message given back again at once;',
    );
    // What plan says is what the broker does: a nacked message waits.
    await publish(async, "mpnow", "mpnow.async.audit", 1);
    await nackBack(async, "mpnow.async", 1);
    expect(await delayedStats(async, "mpnow.async", 1)).toMatchObject({ messages: 1, messages_ready: 0, messages_delayed: 1 });
    // The file that writes what the broker does plans clean.
    const fixed = topologyFile(sync, async, { async: { type: "quorum" } }, [{ name: "mpnow", sync: false, async: { arguments: { "x-delayed-retry-type": "all", "x-delayed-retry-min": 120_000 } } }]);
    const clean = await runCli(["plan", "-f", fixed, "--detailed-exitcode"]);
    expect(clean.stdout).not.toContain("degraded");
  });

  // A queue whose process failed until its supervisor gave up is listed with its properties and
  // bindings as if it worked, and plan said "No changes." (exit 0), apply "the broker matches the
  // file", while every publish routed to it was nacked.
  it("a queue RabbitMQ reports crashed is degraded: plan does not say No changes, nor apply that the broker matches the file", async () => {
    const sync = uniqueName("r4sync");
    const async = uniqueName("r4async");
    vhosts.push(sync, async);
    const file = topologyFile(sync, async, undefined, [
      { name: "mpcrash", sync: false },
      { name: "mpfine", sync: false },
    ]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    // Exit signals (not kill, which skips the queue's terminate and leaves it "running" in the
    // listing) until its supervisor gives up: RabbitMQ then marks it crashed.
    const crash = `[begin case rabbit_amqqueue:lookup(rabbit_misc:r(<<"${async}">>, queue, <<"mpcrash.async">>)) of {ok, Q} -> exit(amqqueue:get_pid(Q), boom); _ -> ok end, timer:sleep(200) end || _ <- lists:seq(1, 10)], ok.`;
    execFileSync(SCRIPT, ["ctl", "eval", crash], { stdio: ["ignore", "pipe", "inherit"], timeout: 120_000 });
    // While the supervisor restarts the queue, the listing may fail (CI saw the management API
    // close the connection, on 4.0 and 4.3): read it until it says crashed.
    let listed: { name: string; state: string }[] = [];
    for (let i = 0; i < 60 && !listed.some((q) => q.name === "mpcrash.async" && q.state === "crashed"); i++) {
      if (i) await new Promise((r) => setTimeout(r, 500));
      listed = await api("GET", `/api/queues/${async}?disable_stats=true&columns=name,state`).then(
        (r) => r.body as typeof listed,
        () => [],
      );
    }
    expect(listed).toContainEqual({ name: "mpcrash.async", state: "crashed" });
    // The broker agrees that it does not work: a passive declare is refused.
    const conn = await amqplib.connect(`${AMQP}/${async}`);
    try {
      const ch = await conn.createChannel();
      ch.on("error", () => undefined);
      await expect(ch.checkQueue("mpcrash.async")).rejects.toThrow(/404.*has crashed/);
    } finally {
      await conn.close().catch(() => undefined);
    }

    const plan = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(plan.code, plan.stderr).toBe(2);
    expect(plan.stdout).toMatch(/! degraded: 1 queue has crashed and RabbitMQ gave up restarting it \(mpcrash\.async\): it refuses declares and publishes routed to it are nacked/);
    expect(plan.stdout).toMatch(/^No changes\. 1 degraded/m);
    const json = JSON.parse((await runCli(["plan", "-f", file, "--json"])).stdout);
    expect(json.summary.degraded).toBe(1);

    expect((await api("DELETE", `/api/bindings/${async}/e/mpfine/q/mpfine.async/mpfine.async.%23`)).status).toBe(204);
    const applied = await runCli(["apply", "-f", file]);
    expect(applied.code, applied.stderr).toBe(0);
    expect(`${applied.stdout}${applied.stderr}`).not.toMatch(/matches the file/);
    expect(applied.stdout).toMatch(/Apply complete: 1 change made; 1 degraded/);

    // route --live said the broker delivers the task there, exit 0.
    const routed = await runCli(["route", "mpcrash.async.audit", "-f", file, "--live"]);
    expect(routed.code).toBe(1);
    expect(routed.stderr).toContain("cluster async: mpcrash.async.audit is routed only to queue mpcrash.async, which RabbitMQ lists as crashed: no queue takes it");
    expect((await runCli(["route", "mpfine.async.audit", "-f", file, "--live"])).code).toBe(0);
  });

  it("warns, at its place in the file, of what RabbitMQ 4 accepts and ignores; applies it as written, and plans clean", async () => {
    const { file, sync, async } = topology(
      { sync: { type: "quorum", arguments: { "x-max-in-memory-length": 0 } }, async: { arguments: { "x-queue-mode": "lazy", ...(version === "4.0" ? { "x-queue-version": 1 } : {}) } } },
      ["mplogin", "mpwallet"],
    );
    const at = (key: string) => {
      // The line and column of the key in the file topology() wrote (JSON, two-space indent).
      const lines = readFileSync(file, "utf8").split("\n");
      const line = lines.findIndex((l) => l.includes(`"${key}"`));
      return `${file}:${line + 1}:${(lines[line] as string).indexOf('"') + 1}`;
    };
    const esc = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const plan = await runCli(["plan", "-f", file]);
    expect(plan.code).toBe(0);
    expect(plan.stdout).toMatch(
      new RegExp(`! warning: ${esc(at("x-queue-mode"))}: x-queue-mode: "lazy" \\(queues mplogin\\.async, mpwallet\\.async\\): RabbitMQ ${esc(version)}\\.\\d+ accepts x-queue-mode: lazy and ignores it: .*; fix: drop x-queue-mode`),
    );
    expect(plan.stdout).toMatch(
      new RegExp(`! warning: ${esc(at("x-max-in-memory-length"))}: x-max-in-memory-length: 0 \\(queues mplogin\\.sync, mpwallet\\.sync\\): RabbitMQ ${esc(version)}\\.\\d+ accepts x-max-in-memory-length and ignores it`),
    );
    if (version === "4.0") expect(plan.stdout).toMatch(new RegExp(`! warning: ${esc(at("x-queue-version"))}: x-queue-version: 1 \\(queues mplogin\\.async, mpwallet\\.async\\): RabbitMQ 4\\.0\\.\\d+ accepts x-queue-version: 1 and ignores it`));
    // A warning, not a refusal: the queues are declared as written, and the broker keeps the arguments.
    const apply = await runCli(["apply", "-f", file]);
    expect(apply.code).toBe(0);
    expect((await api("GET", `/api/queues/${async}/mplogin.async`)).body.arguments).toMatchObject({ "x-queue-mode": "lazy" });
    expect((await api("GET", `/api/queues/${sync}/mplogin.sync`)).body.arguments).toMatchObject({ "x-max-in-memory-length": 0 });
    const again = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/no changes/);
    expect(again.stdout).toMatch(/! warning: .*x-queue-mode: "lazy"/);
  });

  it("warns where RabbitMQ 4's default delivery limit drops what a quorum queue without a dead-letter exchange holds, and the broker does drop it", async () => {
    const { file, async } = topology({ sync: { mirrored: false }, async: { type: "quorum" } }, [
      "mplogin",
      { name: "mpkept", async: { type: "quorum", arguments: { "x-delivery-limit": -1 } } },
      { name: "mpdead", async: { type: "quorum", arguments: { "x-dead-letter-exchange": "amq.fanout" } } },
    ]);
    const lines = readFileSync(file, "utf8").split("\n");
    const typeLine = lines.findIndex((l) => l.includes('"type": "quorum"'));
    const at = `${file}:${typeLine + 1}:${(lines[typeLine] as string).indexOf('"') + 1}`;
    const plan = await runCli(["plan", "-f", file]);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toContain(
      `! warning: ${at}: type: quorum (queue mplogin.async): RabbitMQ ${version}.`,
    );
    expect(plan.stdout).toMatch(/gives a quorum queue a delivery limit of 20 where the file gives no x-delivery-limit, and this one has no dead-letter exchange, so it drops a message returned to it more than 20 times: a worker that dies holding it returns it/);
    expect(plan.stdout).not.toMatch(/\((queue|queues) [^)]*mp(kept|dead)\.async/);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);

    // A worker that dies holding the message: after its 21st return it is gone.
    await publish(async, "mplogin", "mplogin.async.task", 1);
    let deliveries = 0;
    for (let i = 0; i < 25; i++) {
      const conn = await amqplib.connect(`${AMQP}/${async}`);
      const ch = await conn.createChannel();
      const got = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 3000);
        void ch.consume("mplogin.async", () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      await conn.close();
      if (!got) break;
      deliveries++;
    }
    expect(deliveries).toBe(21);
    expect(await messageCount(async, "mplogin.async")).toBe(0);
  }, 120_000);

  it("imports what topo made into a file that plans no changes", async () => {
    const { file } = topology({ sync: { mirrored: false } }, [
      "mplogin",
      { name: "mppayment", sync: false, async: { arguments: { "x-max-length": 100000, "x-dead-letter-exchange": "dlx" } } },
      { name: "mpquorum", sync: { type: "quorum", arguments: { "x-delivery-limit": 5 } } },
    ]);
    const applied = await runCli(["apply", "-f", file]);
    expect(applied.stderr).not.toMatch(/Error/);
    expect(applied.code).toBe(0);
    const out = join(dirname(file), "imported.yaml");
    const imported = await runCli(["import", "-f", file, "-o", out]);
    expect(imported.stderr).toMatch(/^Imported 3 services \(5 queues\) from clusters sync, async into .*imported\.yaml\./m);
    expect(imported.code).toBe(0);
    const text = readFileSync(out, "utf8");
    expect(text).toMatch(/ {2}- name: mpquorum\n {4}sync: \{ type: quorum, arguments: \{ x-delivery-limit: 5 \} \}\n/);
    // 4.x reports x-queue-type: classic on classic queues; the import does not write it back.
    expect(text).not.toContain("x-queue-type");
    // guest/guest, no secret (it logs in from the local machine only), stays as written: the
    // imported file plans as the file it came from did, without a variable to export.
    expect(text).toContain("amqp://guest:guest@");
    expect(text).not.toContain("RABBITMQ_PASSWORD");
    const plan = await runCli(["plan", "-f", out, "--detailed-exitcode"], { RABBITMQ_PASSWORD: "" });
    expect(plan.stderr).toBe("");
    expect(plan.stdout.trim().endsWith("No changes.")).toBe(true);
    expect(plan.code).toBe(0);
  });

  // Debian's python3-celery (5.2.6), as in celery.test.ts: skipped without it, failing under CI.
  it.skipIf(CELERY.skip)(`Celery workers on the exported modules answer sync tasks and consume async ones; plan stays clean${CELERY.titleNote}`, async () => {
    CELERY.require();
    const { file, sync, async } = topology({ sync: { mirrored: false } }, [
      { name: "mplogin", async: { arguments: { "x-max-length": 100000 } } },
      // A quorum sync queue: Celery 5.2's global QoS is refused there, and the module handles it.
      { name: "mpwallet", sync: { type: "quorum", arguments: { "x-delivery-limit": 5 } }, async: false },
    ]);
    const applied = await runCli(["apply", "-f", file]);
    expect(applied.stderr).not.toMatch(/Error/);
    expect(applied.code).toBe(0);
    const dir = mkdtempSync(join(tmpdir(), "topo-celery4-"));
    dirs.push(dir);
    for (const cluster of ["sync", "async"]) {
      const r = await runCli(["export", "celery", "-f", file, "--cluster", cluster, "-o", join(dir, `celeryconfig_${cluster}.py`)]);
      expect(r.code).toBe(0);
    }
    writeFileSync(join(dir, "tasks_sync.py"), TASKS_SYNC);
    writeFileSync(join(dir, "tasks_async.py"), TASKS_ASYNC);
    writeFileSync(join(dir, "edge.py"), EDGE);
    const audit = join(dir, "audit.txt");
    const env = { TOPO_BROKER_URL_SYNC: `${AMQP}/${sync}`, TOPO_BROKER_URL_ASYNC: `${AMQP}/${async}`, AUDIT_FILE: audit };

    const start = (app: string, queues: string[]) => {
      const w = spawnWorker(dir, app, queues, env);
      workers.push(w.proc);
      return w;
    };
    const syncWorker = start("tasks_sync", ["mplogin.sync", "mpwallet.sync"]);
    const asyncWorker = start("tasks_async", ["mplogin.async"]);
    for (const w of [syncWorker, asyncWorker]) {
      // A worker whose consumer fails keeps retrying and never says ready: stop at the first failure.
      await until("the worker to be ready", () => / ready\.\s*$/m.test(w.log()) || DECLARE_FAILED.test(w.log()) || w.proc.exitCode !== null, 60_000, w.log);
      expect(w.log()).not.toMatch(DECLARE_FAILED);
      expect(w.proc.exitCode).toBeNull();
    }

    const edge = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(PYTHON, ["edge.py"], { cwd: dir, env: pyEnv(dir, env), timeout: 90_000 }, (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr });
      });
    });
    expect(edge.stderr, syncWorker.log()).toBe("");
    expect(edge.code).toBe(0);
    expect(JSON.parse(edge.stdout)).toEqual(["registered alice", "balance of bob"]);
    await until("the async task to run", () => existsSync(audit), 30_000, asyncWorker.log);
    expect(readFileSync(audit, "utf8")).toBe("login alice");

    for (const w of [syncWorker, asyncWorker]) {
      expect(w.log()).not.toMatch(DECLARE_FAILED);
      expect(w.proc.exitCode).toBeNull();
    }
    await Promise.all([stopWorker(syncWorker.proc), stopWorker(asyncWorker.proc)]);
    // The workers' declares (and Celery's own objects: pidbox, reply queues) changed nothing topo owns.
    const plan = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(plan.stdout).toMatch(/No changes\./);
    expect(plan.code).toBe(0);
  }, 180_000);
});
