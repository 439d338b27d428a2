// Least privilege, end to end: apply a topology of three services on two clusters (two vhosts),
// give each service's user and the edge exactly the rights core/permissions.ts derives, export the
// Celery modules, and, connected as those users only, run real Celery 5.2 workers and an edge
// client: a sync round trip (rpc:// replies) and an async task per service. Then show each thing
// the rules refuse with the broker's own answer (ACCESS_REFUSED), read from amqplib or the
// worker's log, never from an exit code alone (a Celery worker refused at start exits 0).
//
// On the suite's broker (3.10), and on RabbitMQ 4.0 and 4.3 as rabbitmq4.test.ts reaches them:
// scripts/rabbitmq4.sh and scripts/rabbitmq43.sh (started unless they run; CI starts them), or
// RABBITMQ4_URL + RABBITMQ4_MANAGEMENT_URL / RABBITMQ43_URL + RABBITMQ43_MANAGEMENT_URL naming a
// running node. Where a node's ports belong to something else the tests skip with the script's
// reason (and fail under CI=true); TOPO_SKIP_RABBITMQ4=1 skips both 4.x, TOPO_SKIP_RABBITMQ43=1 4.3.

import { execFile, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import amqplib from "amqplib";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { normalize, type RawConfig } from "../../src/config/normalize.js";
import { queueDeclareArgs } from "../../src/model.js";
import { rightsOn, type Grant, type VhostRights } from "../../src/core/permissions.js";
import { broker as suiteBroker, ROOT, runCli, scriptEnv, startTestBroker, uniqueName, writeFile, type TestBroker } from "../helpers/broker.js";
import { CELERY, PYTHON, pyEnv, spawnWorker, stopWorker, until, type Worker } from "../helpers/celery.js";

interface Endpoint {
  /** amqp://guest:guest@host:port, no vhost */
  amqp: string;
  /** http://host:port */
  mgmt: string;
}

interface Target {
  version: string;
  /** The node's endpoints, or why it is not here (stop: what startTestBroker started). */
  find: () => Promise<Endpoint | { unavailable: string }>;
  /** Defaults for the file: mirrored classic sync queues do not exist on 4.x. */
  defaults?: RawConfig["defaults"];
}

/** A 4.x node: the named running one, else the project's script (started unless it runs). */
function node4(script: string, urlVar: string): Target["find"] {
  return async () => {
    const amqp = process.env[urlVar];
    const mgmt = process.env[urlVar.replace(/_URL$/, "_MANAGEMENT_URL")];
    if (amqp && mgmt) return { amqp, mgmt: new URL(mgmt).origin };
    const started: TestBroker = await startTestBroker(script, 900_000);
    if (started.unavailable) return { unavailable: started.unavailable };
    const env = scriptEnv(script);
    return { amqp: env.RABBITMQ4_URL!, mgmt: new URL(env.RABBITMQ4_MANAGEMENT_URL!).origin };
  };
}

const skip4 = !!process.env.TOPO_SKIP_RABBITMQ4;
const TARGETS: Target[] = [
  { version: "3.10", find: async () => ({ amqp: suiteBroker().amqpUrl.replace(/\/+$/, ""), mgmt: new URL(suiteBroker().mgmtUrl).origin }) },
  ...(skip4 ? [] : [{ version: "4.0", find: node4(join(ROOT, "scripts/rabbitmq4.sh"), "RABBITMQ4_URL"), defaults: { sync: { type: "quorum" as const } } }]),
  ...(skip4 || process.env.TOPO_SKIP_RABBITMQ43 ? [] : [{ version: "4.3", find: node4(join(ROOT, "scripts/rabbitmq43.sh"), "RABBITMQ43_URL"), defaults: { sync: { type: "quorum" as const } } }]),
];

// mplogin: sync and async, calls mpwallet (sync) and mpaudit (async). mpwallet: sync only, calls
// nothing. mpaudit: async only, calls nothing. The edge sends everything.
const SERVICES = ["mplogin", { name: "mpwallet", async: false }, { name: "mpaudit", sync: false }];
const ROLES = { mplogin: { consumes: ["mplogin"], publishes: ["mpwallet", "mpaudit"] }, mpwallet: { consumes: ["mpwallet"], publishes: [] }, mpaudit: { consumes: ["mpaudit"], publishes: [] }, edge: { consumes: [], publishes: "all" } } as const;
type Role = keyof typeof ROLES;

const TASKS = {
  // A worker that calls another service synchronously needs a reply queue of its own. Inside a
  // task, Celery declares it before sending only under allow_join_result(); without it the queue
  // is declared when get() starts, and a quick answer is lost (seen here: a 20 s timeout).
  tasks_login_sync: `
from celery import Celery
from celery.result import allow_join_result
app = Celery("login_sync")
app.config_from_object("celeryconfig_sync")

@app.task(name="mplogin.sync.register")
def register(user):
    with allow_join_result():
        balance = app.send_task("mpwallet.sync.balance", args=[user]).get(timeout=20)
    return "registered " + user + ", " + balance
`,
  tasks_wallet_sync: `
from celery import Celery
app = Celery("wallet_sync")
app.config_from_object("celeryconfig_sync")

# Retried once: Task.retry() sends the task again by the exchange and routing key it came by,
# under the worker's own rights (refused, the worker drops the task).
@app.task(name="mpwallet.sync.balance", bind=True, max_retries=2)
def balance(self, user):
    if self.request.retries == 0:
        raise self.retry(countdown=0.2)
    return "balance of " + user
`,
  tasks_login_async: `
from celery import Celery
app = Celery("login_async")
app.config_from_object("celeryconfig_async")

@app.task(name="mplogin.async.audit")
def audit(event):
    app.send_task("mpaudit.async.record", args=["mplogin: " + event])
`,
  tasks_audit_async: `
import os
from celery import Celery
app = Celery("audit_async")
app.config_from_object("celeryconfig_async")

@app.task(name="mpaudit.async.record", bind=True, max_retries=2)
def record(self, event):
    if self.request.retries == 0:
        raise self.retry(countdown=0.2)
    with open(os.environ["AUDIT_FILE"], "a") as f:
        f.write(event + "\\n")
`,
  edge: `
import json
from celery import Celery
sync = Celery("edge_sync")
sync.config_from_object("celeryconfig_sync")
answers = {
    "register": sync.send_task("mplogin.sync.register", args=["alice"]).get(timeout=30),
    "balance": sync.send_task("mpwallet.sync.balance", args=["bob"]).get(timeout=30),
}
asynchronous = Celery("edge_async")
asynchronous.config_from_object("celeryconfig_async")
asynchronous.send_task("mplogin.async.audit", args=["login alice"])
asynchronous.send_task("mpaudit.async.record", args=["edge: direct"])
print(json.dumps({"answers": answers, "reply_queue": sync.thread_oid}))
`,
};

// RabbitMQ 3.x says "access to queue ...", 4.x "read access to queue ..." (configure, write).
const refused = (what: "queue" | "exchange", name: string, vhost: string, user: string, right: "configure" | "write" | "read") =>
  new RegExp(`403.*ACCESS_REFUSED - (?:${right} )?access to ${what} '${name.replace(/\./g, "\\.")}' in vhost '${vhost}' refused for user '${user}'`);
const refusedTopic = (key: string, exchange: string, vhost: string, user: string) =>
  new RegExp(`403.*ACCESS_REFUSED - (?:write )?access to topic '${key.replace(/\./g, "\\.")}' in exchange '${exchange}' in vhost '${vhost}' refused for user '${user}'`);

for (const target of TARGETS) {
  describe.skipIf(CELERY.skip)(`least privilege on RabbitMQ ${target.version}${CELERY.titleNote}`, () => {
    let found: Awaited<ReturnType<Target["find"]>> | undefined;
    const vhosts: string[] = [];
    const users: string[] = [];
    const workers: ChildProcess[] = [];
    const dirs: string[] = [];

    beforeAll(async () => {
      CELERY.require();
      found = await target.find();
    }, 900_000);
    afterEach(async () => {
      await Promise.all(workers.splice(0).map(stopWorker));
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
      if (!found || "unavailable" in found) return;
      const ep = found;
      await Promise.all([...vhosts.splice(0).map((v) => mgmt(ep, "DELETE", `/api/vhosts/${encodeURIComponent(v)}`)), ...users.splice(0).map((u) => mgmt(ep, "DELETE", `/api/users/${encodeURIComponent(u)}`))]);
    });

    /** The node, checked to be the version named, or a skip with the reason it is not here. */
    async function node(ctx: { skip: (why?: string) => void }): Promise<Endpoint | undefined> {
      if (!found || "unavailable" in found) {
        ctx.skip(found && "unavailable" in found ? found.unavailable : "no broker");
        return undefined;
      }
      const overview = (await mgmt(found, "GET", "/api/overview")).body;
      expect(overview.rabbitmq_version, `${found.mgmt} is not RabbitMQ ${target.version}`).toMatch(new RegExp(`^${target.version.replace(".", "\\.")}\\.`));
      return found;
    }

    /**
     * Write the file with a fresh vhost per cluster and a users section (every user's password
     * from $LP_PASSWORD), topo apply it as guest, and normalise it.
     */
    async function apply(ep: Endpoint, clusters: string[], defaults: RawConfig["defaults"], services: RawConfig["services"], grants: Grant[]) {
      const vhost: Record<string, string> = {};
      for (const c of clusters) vhosts.push((vhost[c] = uniqueName(`lp${c}`)));
      users.push(...grants.map((g) => g.user));
      const doc: RawConfig = {
        version: 1,
        clusters: Object.fromEntries(clusters.map((c) => [c, { url: `${ep.amqp}/${vhost[c]}`, management: ep.mgmt }])),
        ...(defaults ? { defaults } : {}),
        services,
        users: Object.fromEntries(grants.map((g) => [g.user, { password: "${LP_PASSWORD}", consumes: [...g.consumes], publishes: g.publishes === "all" ? "all" : [...g.publishes] }])),
      };
      const file = writeFile("topology.yaml", JSON.stringify(doc, null, 2));
      const applied = await runCli(["apply", "-f", file], { LP_PASSWORD: password });
      expect(applied.stderr).not.toMatch(/Error/);
      expect(applied.code).toBe(0);
      const { desired, problems } = normalize(doc);
      expect(problems).toEqual([]);
      // topo gave each user exactly rightsOn's rights on each vhost, and none where it has none.
      for (const c of desired.clusters) {
        const v = vhost[c.target.name]!;
        const perms = (await mgmt(ep, "GET", `/api/vhosts/${encodeURIComponent(v)}/permissions`)).body as { user: string; configure: string; write: string; read: string }[];
        const topics = (await mgmt(ep, "GET", `/api/vhosts/${encodeURIComponent(v)}/topic-permissions`)).body as { user: string; exchange: string; write: string; read: string }[];
        for (const g of grants) {
          const rights = rightsOn(c, g, desired.prefix);
          const p = perms.find((x) => x.user === g.user);
          expect(p && { configure: p.configure, write: p.write, read: p.read }).toEqual(rights && { configure: rights.configure, write: rights.write, read: rights.read });
          const t = topics.filter((x) => x.user === g.user).map(({ exchange, write, read }) => ({ exchange, write, read }));
          expect(t.sort((a, b) => a.exchange.localeCompare(b.exchange))).toEqual(rights?.topics ?? []);
        }
      }
      const dir = mkdtempSync(join(tmpdir(), "topo-lp-"));
      dirs.push(dir);
      for (const c of clusters) expect((await runCli(["export", "celery", "-f", file, "--cluster", c, "-o", join(dir, `celeryconfig_${c}.py`)], { LP_PASSWORD: password })).code).toBe(0);
      return { file, dir, vhost, desired, cluster: (name: string) => desired.clusters.find((c) => c.target.name === name)! };
    }

    const tag = randomBytes(3).toString("hex");
    const password = randomBytes(12).toString("hex");
    const userUrl = (ep: Endpoint, name: string, vhost: string) => `${ep.amqp.replace(/\/\/[^@]*@/, `//${encodeURIComponent(name)}:${password}@`)}/${vhost}`;

    /** The node, a user that only sends tasks (`publishes`), and the topology applied with it. */
    async function withSender(ctx: { skip: (why?: string) => void }, suffix: string, publishes: Grant["publishes"], clusters: string[], defaults: RawConfig["defaults"], services: RawConfig["services"]) {
      const ep = await node(ctx);
      if (!ep) return undefined;
      const grant: Grant = { user: `topo-test-lp-${tag}-${suffix}`, consumes: [], publishes };
      return { ep, grant, ...(await apply(ep, clusters, defaults, services, [grant])) };
    }

    it("each role works end to end under exactly its rights, and everything else is refused by the broker", async (ctx) => {
      const ep = await node(ctx);
      if (!ep) return;
      // --- apply the topology, as guest, and export a module per cluster
      // --- the users section: topo applies exactly rightsOn's rights on each cluster
      const user = (role: Role) => `topo-test-lp-${tag}-${role}`;
      const grants: Grant[] = (Object.keys(ROLES) as Role[]).map((role) => ({ user: user(role), ...ROLES[role] }));
      const { file, dir, vhost, desired, cluster } = await apply(ep, ["sync", "async"], target.defaults, SERVICES as RawConfig["services"], grants);
      const { sync, async } = vhost as { sync: string; async: string };
      const granted: Record<string, Partial<Record<Role, VhostRights>>> = { sync: {}, async: {} };
      for (const role of Object.keys(ROLES) as Role[]) {
        for (const name of ["sync", "async"]) {
          const rights = rightsOn(cluster(name), { user: user(role), ...ROLES[role] }, desired.prefix);
          if (rights) granted[name]![role] = rights;
        }
      }
      // mpwallet has no queue on the async cluster, mpaudit none on the sync one: no rights there.
      expect(Object.keys(granted.sync!).sort()).toEqual(["edge", "mplogin", "mpwallet"]);
      expect(Object.keys(granted.async!).sort()).toEqual(["edge", "mpaudit", "mplogin"]);
      const url = (role: Role, v: string) => userUrl(ep, user(role), v);
      const envOf = (role: Role) => ({ TOPO_BROKER_URL_SYNC: url(role, sync), TOPO_BROKER_URL_ASYNC: url(role, async) });

      // --- run the services' workers as their own users
      for (const [name, text] of Object.entries(TASKS)) writeFileSync(join(dir, `${name}.py`), text);
      const auditFile = join(dir, "audit.txt");
      const start = (app: string, role: Role, queue: string) => {
        const w = spawnWorker(dir, app, [queue], { ...envOf(role), AUDIT_FILE: auditFile });
        workers.push(w.proc);
        return w;
      };
      const running = [
        start("tasks_login_sync", "mplogin", "mplogin.sync"),
        start("tasks_wallet_sync", "mpwallet", "mpwallet.sync"),
        start("tasks_login_async", "mplogin", "mplogin.async"),
        start("tasks_audit_async", "mpaudit", "mpaudit.async"),
      ];
      await Promise.all(running.map((w) => ready(w)));

      // --- the edge: a sync round trip per sync service, an async task per async service
      const edge = await python(dir, ["edge.py"], envOf("edge"));
      expect(edge.stderr, running.map((w) => w.log()).join("\n")).toBe("");
      expect(edge.code).toBe(0);
      const out = JSON.parse(edge.stdout) as { answers: Record<string, string>; reply_queue: string };
      // mplogin's task called mpwallet's and waited for it: a worker is a sync caller too.
      expect(out.answers).toEqual({ register: "registered alice, balance of alice", balance: "balance of bob" });
      expect(out.reply_queue).toMatch(new RegExp(granted.sync!.edge!.read));
      await until("both async tasks to run", () => existsSync(auditFile) && readFileSync(auditFile, "utf8").split("\n").length >= 3, 20_000, () => running.map((w) => w.log()).join("\n"));
      expect(readFileSync(auditFile, "utf8").split("\n").filter(Boolean).sort()).toEqual(["edge: direct", "mplogin: login alice"]);
      for (const w of running) {
        expect(w.log()).not.toMatch(/ACCESS_REFUSED|Unrecoverable error|Traceback/);
        expect(w.proc.exitCode).toBeNull();
      }

      // --- what the rules refuse, in the broker's words
      const [S, A] = [sync, async];
      const login = cluster("sync").queues.find((q) => q.queue.name === "mplogin.sync")!.queue;
      const tries: [string, Promise<string>, RegExp][] = [
        ["a worker consumes another service's queue", attempt(url("mpwallet", S), (ch) => ch.consume("mplogin.sync", () => undefined)), refused("queue", "mplogin.sync", S, user("mpwallet"), "read")],
        ["a worker deletes another service's queue", attempt(url("mpwallet", S), (ch) => ch.deleteQueue("mplogin.sync")), refused("queue", "mplogin.sync", S, user("mpwallet"), "configure")],
        ["a worker purges another service's queue", attempt(url("mpwallet", S), (ch) => ch.purgeQueue("mplogin.sync")), refused("queue", "mplogin.sync", S, user("mpwallet"), "read")],
        [
          "a worker re-declares another service's queue, as topo declares it",
          attempt(url("mpwallet", S), (ch) => ch.assertQueue(login.name, { durable: login.durable, autoDelete: login.autoDelete, exclusive: false, arguments: queueDeclareArgs(login) })),
          refused("queue", "mplogin.sync", S, user("mpwallet"), "configure"),
        ],
        ["a worker re-declares its own queue", attempt(url("mpaudit", A), (ch) => ch.assertQueue("mpaudit.async", { durable: true })), refused("queue", "mpaudit.async", A, user("mpaudit"), "configure")],
        ["a worker deletes another service's exchange", attempt(url("mplogin", S), (ch) => ch.deleteExchange("mpwallet")), refused("exchange", "mpwallet", S, user("mplogin"), "configure")],
        ["a worker publishes to a service it does not list", attempt(url("mpwallet", S), (ch) => ch.publish("mplogin", "mplogin.sync.register", Buffer.from("{}"))), refused("exchange", "mplogin", S, user("mpwallet"), "write")],
        ["a worker publishes a routing key that is no task name", attempt(url("mplogin", S), (ch) => ch.publish("mpwallet", "mpwallet.sync", Buffer.from("{}"))), refusedTopic("mpwallet.sync", "mpwallet", S, user("mplogin"))],
        ["a worker publishes the other kind's task name", attempt(url("mplogin", S), (ch) => ch.publish("mpwallet", "mpwallet.async.credit", Buffer.from("{}"))), refusedTopic("mpwallet.async.credit", "mpwallet", S, user("mplogin"))],
        ["a worker binds its queue to another exchange", attempt(url("mplogin", S), (ch) => ch.bindQueue("mplogin.sync", "mpwallet", "#")), refused("queue", "mplogin.sync", S, user("mplogin"), "write")],
        ["an async worker publishes to another service", attempt(url("mpaudit", A), (ch) => ch.publish("mplogin", "mplogin.async.audit", Buffer.from("{}"))), refused("exchange", "mplogin", A, user("mpaudit"), "write")],
        ["a worker publishes its own service's other kind", attempt(url("mpwallet", S), (ch) => ch.publish("mpwallet", "mpwallet.async.credit", Buffer.from("{}"))), refusedTopic("mpwallet.async.credit", "mpwallet", S, user("mpwallet"))],
        ["the edge consumes a sync service queue", attempt(url("edge", S), (ch) => ch.consume("mplogin.sync", () => undefined)), refused("queue", "mplogin.sync", S, user("edge"), "read")],
        ["the edge consumes an async service queue", attempt(url("edge", A), (ch) => ch.consume("mpaudit.async", () => undefined)), refused("queue", "mpaudit.async", A, user("edge"), "read")],
        ["the edge publishes straight into a queue by the default exchange", attempt(url("edge", S), (ch) => ch.publish("", "mplogin.sync", Buffer.from("{}"))), refused("exchange", "amq.default", S, user("edge"), "write")],
        ["the edge publishes a routing key that is no task name", attempt(url("edge", S), (ch) => ch.publish("mplogin", "mplogin.sync", Buffer.from("{}"))), refusedTopic("mplogin.sync", "mplogin", S, user("edge"))],
        ["the edge publishes to amq.topic", attempt(url("edge", S), (ch) => ch.publish("amq.topic", "mplogin.sync.register", Buffer.from("{}"))), refused("exchange", "amq.topic", S, user("edge"), "write")],
      ];
      const answers = await Promise.all(tries.map(([, p]) => p));
      tries.forEach(([what, , want], i) => expect(answers[i], what).toMatch(want));

      // The control: the same calls within the rights are allowed, so the refusals are the rules'.
      expect(await attempt(url("mplogin", S), (ch) => ch.publish("mpwallet", "mpwallet.sync.balance", Buffer.from("{}"), { expiration: "1" }))).toBe("allowed");
      expect(await attempt(url("mpaudit", A), (ch) => ch.purgeQueue("mpaudit.async"))).toBe("allowed");

      // A residual risk the docs name: write on amq.default (to answer sync callers) lets a sync
      // worker publish straight into any queue of its vhost by name. Topic permissions do not apply
      // to the default exchange.
      expect(await attempt(url("mpwallet", S), (ch) => ch.publish("", "mplogin.sync", Buffer.from("{}"), { expiration: "1" }))).toBe("allowed");

      // A worker of mpwallet started on mplogin's queue is refused at start, and exits 0.
      const intruder = start("tasks_wallet_sync", "mpwallet", "mplogin.sync");
      await until("the intruding worker to exit", () => intruder.proc.exitCode !== null, 30_000, intruder.log);
      expect(intruder.log()).toMatch(/Unrecoverable error: AccessRefused\(403, "ACCESS_REFUSED - (?:read )?access to queue 'mplogin\.sync'/);
      expect(intruder.log()).not.toMatch(/ ready\./);
      expect(intruder.proc.exitCode).toBe(0);

      for (const w of running) await stopWorker(w.proc);
      expect(running[1]!.log()).toMatch(/Task mpwallet\.sync\.balance\[[0-9a-f-]+\] succeeded/);
      // Each retried once, under its worker's own rights.
      expect(running[1]!.log()).toMatch(/Task mpwallet\.sync\.balance\[[0-9a-f-]+\] retry: Retry in/);
      expect(running[3]!.log()).toMatch(/Task mpaudit\.async\.record\[[0-9a-f-]+\] retry: Retry in/);
      // The workers declared nothing of their own: no pidbox, no celeryev, on either vhost
      // (topo.mp.generation is apply's mark).
      for (const v of [S, A]) {
        const exchanges = (await mgmt(ep, "GET", `/api/exchanges/${encodeURIComponent(v)}?columns=name`)).body.map((e: { name: string }) => e.name);
        expect(exchanges.filter((n: string) => !n.startsWith("amq.") && n !== "").sort()).toEqual(v === S ? ["mplogin", "mpwallet", "topo.mp.generation"] : ["mpaudit", "mplogin", "topo.mp.generation"]);
      }
      expect((await runCli(["plan", "-f", file, "--detailed-exitcode"], { LP_PASSWORD: password })).code).toBe(0);
    }, 180_000);

    it("a service dropped from the file: its exchange goes, and the edge's topic permission on it is revoked first, while the exchange exists", async (ctx) => {
      const s = await withSender(ctx, "edge2", "all", ["sync", "async"], target.defaults, SERVICES as RawConfig["services"]);
      if (!s) return;
      const { ep, file, vhost } = s;
      const edge = s.grant.user;
      const topics = async () =>
        ((await mgmt(ep, "GET", `/api/vhosts/${encodeURIComponent(vhost.async!)}/topic-permissions`)).body as { user: string; exchange: string; write: string }[])
          .filter((t) => t.user === edge)
          .map((t) => `${t.exchange} ${t.write}`)
          .sort();
      expect(await topics()).toEqual(["mpaudit ^mpaudit\\.async\\.[A-Za-z0-9_]+$", "mplogin ^mplogin\\.async\\.[A-Za-z0-9_]+$"]);
      const without = writeFile("topology.yaml", readFileSync(file, "utf8").replace(/,\s*\{\s*"name": "mpaudit",\s*"sync": false\s*\}/, ""));
      expect(readFileSync(without, "utf8")).not.toContain("mpaudit");
      const r = await runCli(["apply", "-f", without, "--allow-destructive"], { LP_PASSWORD: password });
      expect(r.stderr).not.toMatch(/Error/);
      expect(r.code).toBe(0);
      // The API cannot delete one exchange's entry: it is left allowing nothing. RabbitMQ 4.3
      // removes a topic permission together with its exchange (measured), 3.10 and 4.0 keep it.
      const kept = target.version === "4.3" ? [] : ["mpaudit ^$"];
      expect(await topics()).toEqual([...kept, "mplogin ^mplogin\\.async\\.[A-Za-z0-9_]+$"]);
      expect((await runCli(["plan", "-f", without, "--detailed-exitcode"], { LP_PASSWORD: password })).code).toBe(0);
    }, 120_000);

    it("where one cluster holds both kinds, a sender of async tasks only still declares a reply queue, and its rights cover that alone", async (ctx) => {
      const s = await withSender(ctx, "sender", ["mpaudit"], ["main"], { sync: { ...target.defaults?.sync, cluster: "main" }, async: { cluster: "main" } }, ["mplogin", { name: "mpaudit", sync: false }]);
      if (!s) return;
      const { ep, grant, dir, vhost, desired, cluster } = s;
      const name = grant.user;
      const main = vhost.main!;
      const rights = rightsOn(cluster("main"), grant, desired.prefix)!;
      // rpc:// results on this cluster: Celery's send_task declares the reply queue even for a
      // task whose result nobody waits for (it reads ignore_result before routing).
      expect([rights.configure, rights.read]).toEqual([expect.stringMatching(/^\^\[0-9a-f\]/), "^$"]);
      writeFileSync(
        join(dir, "send.py"),
        ["import json", "from celery import Celery", 'app = Celery("sender")', 'app.config_from_object("celeryconfig_main")', "for i in range(2):", '    app.send_task("mpaudit.async.record", args=[i])', "print(json.dumps(app.thread_oid))", ""].join("\n"),
      );
      const sent = await python(dir, ["send.py"], { TOPO_BROKER_URL_MAIN: userUrl(ep, name, main) });
      expect(sent.stderr).toBe("");
      expect(sent.code).toBe(0);
      const replyQueue = JSON.parse(sent.stdout) as string;
      // Both tasks arrived (a refused first publish would have failed the second send).
      const conn = await amqplib.connect(`${ep.amqp}/${main}`);
      try {
        expect((await (await conn.createChannel()).checkQueue("mpaudit.async")).messageCount).toBe(2);
      } finally {
        await conn.close();
      }
      // The reply queue it declared is left behind until x-expires (a day): nobody consumes it.
      const left = await mgmt(ep, "GET", `/api/queues/${encodeURIComponent(main)}/${replyQueue}`);
      expect(left.status).toBe(200);
      expect(left.body.arguments).toMatchObject({ "x-expires": 86400000 });
      // It may declare that queue, not read it.
      expect(await attempt(userUrl(ep, name, main), (ch) => ch.consume(replyQueue, () => undefined))).toMatch(refused("queue", replyQueue, main, name, "read"));
    }, 120_000);
  });
}

/** The management API as the node's admin (guest). */
async function mgmt(ep: Endpoint, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const admin = new URL(ep.amqp);
  const auth = Buffer.from(`${decodeURIComponent(admin.username || "guest")}:${decodeURIComponent(admin.password || "guest")}`).toString("base64");
  const r = await fetch(`${ep.mgmt}${path}`, { method, headers: { authorization: `Basic ${auth}`, "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : undefined };
}

/**
 * Run `fn` on a fresh channel as a user, and say what the broker answered: "allowed", or the
 * server's error text. A refused publish closes the channel only after the fact, so a basic.qos
 * round trip (which needs no permission) follows every call to collect it.
 */
async function attempt(url: string, fn: (ch: amqplib.Channel) => unknown): Promise<string> {
  const conn = await amqplib.connect(url);
  conn.on("error", () => undefined);
  let closed: string | undefined;
  try {
    const ch = await conn.createChannel();
    ch.on("error", (e: Error) => (closed ??= e.message));
    try {
      await fn(ch);
      await ch.prefetch(1);
    } catch (e) {
      return closed ?? (e as Error).message;
    }
    return closed ?? "allowed";
  } finally {
    await conn.close().catch(() => undefined);
  }
}

function python(dir: string, argv: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(PYTHON, argv, { cwd: dir, env: pyEnv(dir, env), timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

async function ready(w: Worker): Promise<void> {
  await until("the worker to be ready", () => / ready\.\s*$/m.test(w.log()) || w.proc.exitCode !== null, 30_000, w.log);
  if (w.proc.exitCode !== null) throw new Error(`the worker exited with ${w.proc.exitCode} before it was ready:\n${w.log()}`);
}
