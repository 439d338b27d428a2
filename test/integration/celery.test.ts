// topo export celery, end to end: apply a topology, export a module per cluster, start real Celery
// workers on them, and have an edge client (a second Python process) send a sync task and get its
// answer and an async task that a worker consumes. The module's queues are no_declare (topo apply
// declares them); were a worker to declare them anyway, its declare must be equivalent, and
// topo plan must still find nothing to change after them.

import { execFile, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { normalize } from "../../src/config/normalize.js";
import { celeryModule } from "../../src/export/celery.js";
import { amqpUrl, api, deleteVhost, getQueue, messageCount, runCli, uniqueName, vh, writeTopology, type TopologyOptions } from "../helpers/broker.js";
import { CELERY, PYTHON, pyEnv, spawnWorker, stopWorker, until, type Worker } from "../helpers/celery.js";

const vhosts: string[] = [];
const workers: ChildProcess[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map(stopWorker));
  await Promise.all(vhosts.splice(0).map(deleteVhost));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A directory of the test's own for the exported modules and the Python files. */
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "topo-celery-"));
  dirs.push(d);
  return d;
}

function fresh(services: unknown[], extra: Partial<TopologyOptions> = {}) {
  const sync = uniqueName("sync");
  const async = uniqueName("async");
  vhosts.push(sync, async);
  return { file: writeTopology({ sync, async, services, ...extra }), sync, async };
}


function python(dir: string, argv: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(PYTHON, argv, { cwd: dir, env: pyEnv(dir, env), timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** Start `celery worker` and wait (bounded) until it says it is ready, or has exited. */
function startWorker(dir: string, app: string, queues: string[], env: Record<string, string>): Worker {
  const w = spawnWorker(dir, app, queues, env);
  workers.push(w.proc);
  return w;
}


async function ready(w: Worker, timeoutMs = 30_000): Promise<void> {
  // A worker whose consumer fails keeps retrying and never says ready: stop at the first failure.
  await until("the worker to be ready", () => / ready\.\s*$/m.test(w.log()) || DECLARE_FAILED.test(w.log()) || w.proc.exitCode !== null, timeoutMs, w.log);
  if (DECLARE_FAILED.test(w.log()) || w.proc.exitCode !== null) throw new Error(`the worker did not start cleanly (exit code ${w.proc.exitCode}):\n${w.log()}`);
}


// A worker's startup declares failing, in any of the ways Celery reports it.
const DECLARE_FAILED = /PreconditionFailed|PRECONDITION_FAILED|NOT_IMPLEMENTED|Connection to broker lost|Unrecoverable error/;

const SERVICES = [
  {
    name: "mplogin",
    sync: { arguments: { "x-max-length": 1000, "x-message-ttl": 60000, "x-overflow": "reject-publish" } },
    async: { arguments: { "x-max-length": 100000, "x-single-active-consumer": true, "x-dead-letter-exchange": "mpdead" } },
  },
  // Quorum queues refuse the global QoS Celery 5.2 asks for: the module has to handle it.
  { name: "mpwallet", sync: { type: "quorum", arguments: { "x-delivery-limit": 5 } }, async: false },
];

const TASKS_SYNC = `
from celery import Celery

app = Celery("tasks_sync")
app.config_from_object("celeryconfig_sync")


def seen(request, value):
    return {
        "echo": value,
        "exchange": request.delivery_info.get("exchange"),
        "routing_key": request.delivery_info.get("routing_key"),
        "delivery_mode": (request.properties or {}).get("delivery_mode"),
    }


@app.task(name="mplogin.sync.register", bind=True, ignore_result=True)  # the annotation overrides it
def register(self, user):
    return seen(self.request, "registered " + user)


@app.task(name="mpwallet.sync.balance", bind=True)
def balance(self, user):
    return seen(self.request, "balance of " + user)


@app.task(name="health.ping", bind=True)
def ping(self):
    return seen(self.request, "pong")
`;

const TASKS_ASYNC = `
import json
import os

from celery import Celery

app = Celery("tasks_async")
app.config_from_object("celeryconfig_async")


@app.task(name="mplogin.async.audit", bind=True)
def audit(self, event):
    info = {
        "echo": event,
        "exchange": self.request.delivery_info.get("exchange"),
        "routing_key": self.request.delivery_info.get("routing_key"),
        "delivery_mode": (self.request.properties or {}).get("delivery_mode"),
        "ignore_result": self.ignore_result,
    }
    tmp = os.environ["AUDIT_FILE"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(info, f)
    os.replace(tmp, os.environ["AUDIT_FILE"])
    return "nobody waits for this"
`;

const EDGE = `
import json

from celery import Celery

import celeryconfig_sync

sync = Celery("edge_sync")
sync.config_from_object("celeryconfig_sync")
answers = {
    "register": sync.send_task("mplogin.sync.register", args=["alice"]).get(timeout=20),
    "balance": sync.send_task("mpwallet.sync.balance", args=["bob"]).get(timeout=20),
    # Not a topology name: Celery's default applies, the cluster's first queue.
    "ping": sync.send_task("health.ping").get(timeout=20),
}
refused = {}
for name in ("mplogin.async.audit", "mpnobody.sync.x", "mplogin.sync.log-in"):
    try:
        sync.send_task(name)
        refused[name] = None
    except celeryconfig_sync.TopoRouteError as e:
        refused[name] = str(e)

asynchronous = Celery("edge_async")
asynchronous.config_from_object("celeryconfig_async")
sent = asynchronous.send_task("mplogin.async.audit", args=["login alice"])
print(json.dumps({"answers": answers, "refused": refused, "async_id": sent.id}))
`;

/** What the exported module holds, read back by Python itself: types included. */
const DUMP = `
import importlib
import json
import sys

m = importlib.import_module(sys.argv[1])
typed = lambda v: {k: [type(x).__name__, x] for k, x in v.items()}
print(json.dumps({
    q.name: {
        "durable": q.durable, "auto_delete": q.auto_delete, "exclusive": q.exclusive,
        "routing_key": q.routing_key, "arguments": typed(q.queue_arguments or {}),
        "exchange": [q.exchange.name, q.exchange.type, q.exchange.durable, q.exchange.auto_delete, q.exchange.delivery_mode],
    }
    for q in m.task_queues
}))
`;

// Skipped with its reason in the title where Celery is missing, except under CI, which must have it.
if (CELERY.skip) console.warn(`celery.test.ts: the Celery worker tests are skipped: ${CELERY.missing}`);
describe.skipIf(CELERY.skip)(`export celery with a real Celery worker (${CELERY.found ? `celery ${CELERY.found}` : CELERY.skip ? `skipped: ${CELERY.missing}` : "celery missing"})`, () => {
  // Under CI a missing Celery is a broken set-up, not a reason to skip (.ci/run installs it).
  beforeAll(() => CELERY.require());

  it("workers start cleanly on the exported modules, answer sync tasks and consume async ones; plan stays clean", async () => {
    const { file, sync, async } = fresh(SERVICES);
    const applied = await runCli(["apply", "-f", file]);
    expect(applied.stderr).not.toMatch(/Error/);
    expect(applied.code).toBe(0);

    const dir = tempDir();
    for (const cluster of ["sync", "async"]) {
      const r = await runCli(["export", "celery", "-f", file, "--cluster", cluster, "-o", join(dir, `celeryconfig_${cluster}.py`)]);
      expect(r.stderr).toMatch(new RegExp(`wrote .*celeryconfig_${cluster}\\.py: cluster ${cluster}, .*\\$TOPO_BROKER_URL_${cluster.toUpperCase()}`));
      expect(r.stdout).toBe("");
      expect(r.code).toBe(0);
    }
    writeFileSync(join(dir, "tasks_sync.py"), TASKS_SYNC);
    writeFileSync(join(dir, "tasks_async.py"), TASKS_ASYNC);
    writeFileSync(join(dir, "edge.py"), EDGE);
    writeFileSync(join(dir, "dump.py"), DUMP);
    const audit = join(dir, "audit.json");
    const env = { TOPO_BROKER_URL_SYNC: amqpUrl(sync), TOPO_BROKER_URL_ASYNC: amqpUrl(async), AUDIT_FILE: audit };

    // The module holds the queues with Python types matching what the broker was given.
    const dump = async (module: string) => {
      const r = await python(dir, ["dump.py", module], env);
      expect(r.stderr).toBe("");
      return JSON.parse(r.stdout);
    };
    const [syncQueues, asyncQueues] = await Promise.all([dump("celeryconfig_sync"), dump("celeryconfig_async")]);
    expect(Object.keys(syncQueues)).toEqual(["mplogin.sync", "mpwallet.sync"]);
    expect(syncQueues["mplogin.sync"]).toEqual({
      durable: false, auto_delete: false, exclusive: false, routing_key: "mplogin.sync.#",
      arguments: { "x-max-length": ["int", 1000], "x-message-ttl": ["int", 60000], "x-overflow": ["str", "reject-publish"] },
      exchange: ["mplogin", "topic", true, false, 1],
    });
    expect(syncQueues["mpwallet.sync"]).toMatchObject({ durable: true, arguments: { "x-delivery-limit": ["int", 5], "x-queue-type": ["str", "quorum"] } });
    expect(asyncQueues).toEqual({
      "mplogin.async": {
        durable: true, auto_delete: false, exclusive: false, routing_key: "mplogin.async.#",
        arguments: { "x-dead-letter-exchange": ["str", "mpdead"], "x-max-length": ["int", 100000], "x-single-active-consumer": ["bool", true] },
        exchange: ["mplogin", "topic", true, false, 2],
      },
    });

    const syncWorker = startWorker(dir, "tasks_sync", ["mplogin.sync", "mpwallet.sync"], env);
    const asyncWorker = startWorker(dir, "tasks_async", ["mplogin.async"], env);
    await Promise.all([ready(syncWorker), ready(asyncWorker)]);

    const edge = await python(dir, ["edge.py"], env);
    expect(edge.stderr, syncWorker.log()).toBe("");
    expect(edge.code).toBe(0);
    const { answers, refused } = JSON.parse(edge.stdout) as { answers: Record<string, unknown>; refused: Record<string, string | null> };
    // Routed by name: the service's exchange, the task name as routing key, transient messages.
    expect(answers.register).toEqual({ echo: "registered alice", exchange: "mplogin", routing_key: "mplogin.sync.register", delivery_mode: 1 });
    expect(answers.balance).toEqual({ echo: "balance of bob", exchange: "mpwallet", routing_key: "mpwallet.sync.balance", delivery_mode: 1 });
    // Celery sends it with the default queue's own routing key, not task_default_routing_key (docs/celery.md).
    expect(answers.ping).toEqual({ echo: "pong", exchange: "mplogin", routing_key: "mplogin.sync.#", delivery_mode: 1 });
    expect(refused["mplogin.async.audit"]).toBe(
      "task 'mplogin.async.audit' goes to queue 'mplogin.async' on cluster 'async', not on cluster 'sync': send it with a Celery app configured from the module of cluster 'async'",
    );
    expect(refused["mpnobody.sync.x"]).toMatch(/^task 'mpnobody\.sync\.x': the topology '.*topology\.yaml' has no queue 'mpnobody\.sync'$/);
    // The users topo makes may publish no other routing key: the router says so before the broker does.
    expect(refused["mplogin.sync.log-in"]).toBe(
      "task 'mplogin.sync.log-in': the part after 'mplogin.sync.' must be letters, digits and _ (name tasks <service>.<kind>.<task>); the broker users topo makes may publish no other name",
    );

    await until("the async task to run", () => existsSync(audit), 20_000, asyncWorker.log);
    expect(JSON.parse(readFileSync(audit, "utf8"))).toEqual({
      echo: "login alice",
      exchange: "mplogin",
      routing_key: "mplogin.async.audit",
      delivery_mode: 2,
      ignore_result: true,
    });

    for (const w of [syncWorker, asyncWorker]) {
      expect(w.log()).not.toMatch(DECLARE_FAILED);
      expect(w.proc.exitCode).toBeNull();
    }
    await Promise.all([stopWorker(syncWorker.proc), stopWorker(asyncWorker.proc)]);
    expect(syncWorker.log()).toMatch(/Task mplogin\.sync\.register\[[0-9a-f-]+\] succeeded/);
    expect(asyncWorker.log()).toMatch(/Task mplogin\.async\.audit\[[0-9a-f-]+\] succeeded/);

    // The workers (and Celery's own objects: reply queues) changed nothing topo owns.
    expect((await getQueue(sync, "mplogin.sync")).durable).toBe(false);
    const plan = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(plan.stdout).toMatch(/No changes\./);
    expect(plan.code).toBe(0);
  });

  it("a worker whose declare differs from topo's (a float where topo sent an integer) fails, and the check above sees it", async () => {
    // The control for DECLARE_FAILED: without it, a log check that can never match would pass.
    const { file, sync } = fresh(SERVICES);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    const dir = tempDir();
    expect((await runCli(["export", "celery", "-f", file, "--cluster", "sync", "-o", join(dir, "celeryconfig_sync.py")])).code).toBe(0);
    writeFileSync(
      join(dir, "drifted.py"),
      [
        "from celeryconfig_sync import *  # noqa: F401,F403",
        "from kombu import Queue",
        "task_queues = tuple(",
        "    Queue(q.name, q.exchange, routing_key=q.routing_key, durable=q.durable,",
        "          queue_arguments=dict(q.queue_arguments, **{'x-max-length': float(q.queue_arguments['x-max-length'])}))",
        "    for q in task_queues if q.name == 'mplogin.sync'",
        ")",
        "",
      ].join("\n"),
    );
    writeFileSync(join(dir, "tasks_drifted.py"), `from celery import Celery\napp = Celery("drifted")\napp.config_from_object("drifted")\n`);
    const w = startWorker(dir, "tasks_drifted", ["mplogin.sync"], { TOPO_BROKER_URL_SYNC: amqpUrl(sync) });
    await until("the worker to fail", () => DECLARE_FAILED.test(w.log()), 30_000, w.log);
    expect(w.log()).toMatch(/PRECONDITION_FAILED - inequivalent arg 'x-max-length'/);
    expect(w.log()).not.toMatch(/ ready\./);
  });

  it("after a task the broker refused (its exchange gone), the next send_task returns: py-amqp's reopened channel waited for ever", async () => {
    const { file, async } = fresh([{ name: "mplogin", sync: false }, { name: "mpwallet", sync: false }]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    const dir = tempDir();
    expect((await runCli(["export", "celery", "-f", file, "--cluster", "async", "-o", join(dir, "celeryconfig_async.py")])).code).toBe(0);
    // A service retired while an edge still runs the old module: its exchange is gone.
    await api("DELETE", `/api/exchanges/${vh(async)}/mpwallet`);
    writeFileSync(
      join(dir, "sender.py"),
      [
        "import json, os, threading",
        "from celery import Celery",
        "app = Celery('edge')",
        "app.config_from_object('celeryconfig_async')",
        "threading.Timer(30, lambda: (print(json.dumps({'hung': True})), os._exit(3))).start()",
        "out = {'first': str(bool(app.send_task('mplogin.async.a', args=[1])))}",
        "try:",
        "    app.send_task('mpwallet.async.a', args=[2])",
        "    out['refused'] = None",
        "except Exception as e:",
        "    out['refused'] = type(e).__name__",
        "out['after'] = str(bool(app.send_task('mplogin.async.b', args=[3])))",
        "print(json.dumps(out))",
        "os._exit(0)",
        "",
      ].join("\n"),
    );
    const r = await python(dir, ["sender.py"], { TOPO_BROKER_URL_ASYNC: amqpUrl(async) }, 60_000);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ first: "True", refused: "NotFound", after: "True" });
    expect(await messageCount(async, "mplogin.async")).toBe(2);
  });

  it("writes every argument value as the Python literal of the same value and type", async () => {
    // Values no broker would take, to prove the literals: quotes, escapes, non-ASCII, floats, nesting.
    const strange = `q"uote 'single' \\back\nline\ttab é 日本 😀 \u2028`;
    const args = { "x-dead-letter-exchange": strange, "x-message-ttl": 1.5, "x-max-length": 2 ** 40, "x-expires": 1e21, "x-single-active-consumer": false, "x-max-priority": null, "x-queue-mode": [1, "a", { b: 0.25 }] };
    const n = normalize({ version: 1, clusters: { sync: { url: "amqp://u:p@h/s" } }, services: [{ name: "mplogin", sync: { arguments: args as never }, async: { cluster: "sync" } }] });
    const dir = tempDir();
    writeFileSync(join(dir, "celeryconfig_sync.py"), celeryModule(n.desired, { source: "strange.yaml" }).text);
    writeFileSync(join(dir, "dump.py"), DUMP);
    const r = await python(dir, ["dump.py", "celeryconfig_sync"], { TOPO_BROKER_URL_SYNC: "amqp://u@h/s" });
    expect(r.stderr).toBe("");
    const q = JSON.parse(r.stdout)["mplogin.sync"];
    expect(q.arguments).toEqual({
      "x-dead-letter-exchange": ["str", strange],
      "x-expires": ["float", 1e21],
      "x-max-length": ["int", 2 ** 40],
      "x-max-priority": ["NoneType", null],
      "x-message-ttl": ["float", 1.5],
      "x-queue-mode": ["list", [1, "a", { b: 0.25 }]],
      "x-single-active-consumer": ["bool", false],
    });
  });

  // A task the broker did not take must not look sent: the edge would report success for a task
  // nobody will run. Without publisher confirms and mandatory, both cases below returned a task id.
  const SEND = `
import json
import sys

from celery import Celery

app = Celery("edge")
app.config_from_object(sys.argv[1])
out = []
for name in sys.argv[2:]:
    try:
        app.send_task(name, args=[1])
        out.append("sent")
    except Exception as e:
        out.append("%s: %s" % (type(e).__name__, e))
print(json.dumps(out))
`;
  it.each([
    {
      why: "a full queue that rejects publishes (x-overflow: reject-publish) nacks the task",
      cluster: "async",
      tasks: ["mpfull.async.a", "mpfull.async.b"],
      expected: ["sent", "MessageNacked: "],
      before: async (_v: string) => {},
    },
    {
      why: "a sync queue of x-max-length 0 nacks the request at once, instead of the caller waiting out its timeout",
      cluster: "sync",
      tasks: ["mpfull.sync.a"],
      expected: ["MessageNacked: "],
      before: async (_v: string) => {},
    },
    {
      why: "a queue that is gone (x-expires, or deleted) leaves the task unroutable: the broker returns it",
      cluster: "async",
      tasks: ["mpfull.async.a"],
      expected: ["ChannelError: Basic.return: (312) NO_ROUTE"],
      before: async (v: string) => {
        expect((await api("DELETE", `/api/queues/${vh(v)}/mpfull.async`)).status).toBe(204);
      },
    },
  ])("send_task fails when the broker did not take the task: $why", async ({ cluster, tasks, expected, before }) => {
    const { file, sync, async } = fresh([
      { name: "mpfull", sync: { arguments: { "x-max-length": 0, "x-overflow": "reject-publish" } }, async: { arguments: { "x-max-length": 1, "x-overflow": "reject-publish" } } },
    ]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    const dir = tempDir();
    expect((await runCli(["export", "celery", "-f", file, "--cluster", cluster, "-o", join(dir, `celeryconfig_${cluster}.py`)])).code).toBe(0);
    writeFileSync(join(dir, "send.py"), SEND);
    const v = cluster === "sync" ? sync : async;
    await before(v);
    const r = await python(dir, ["send.py", `celeryconfig_${cluster}`, ...tasks], { [`TOPO_BROKER_URL_${cluster.toUpperCase()}`]: amqpUrl(v) }, 30_000);
    expect(r.stderr).toBe("");
    expect(JSON.parse(r.stdout)).toEqual(expected);
  });

  it("refuses to load without the broker URL variable, and says which one to set", async () => {
    const { file } = fresh(["mplogin"]);
    const dir = tempDir();
    expect((await runCli(["export", "celery", "-f", file, "--cluster", "async", "-o", join(dir, "celeryconfig_async.py")])).code).toBe(0);
    writeFileSync(join(dir, "load.py"), `from celery import Celery\napp = Celery("x")\napp.config_from_object("celeryconfig_async")\nprint(app.conf.broker_url)\n`);
    const r = await python(dir, ["load.py"], {});
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/RuntimeError: TOPO_BROKER_URL_ASYNC is not set: export it as the AMQP URL of cluster async, amqp:\/\/<user>:<password>@/);
  });
});

describe("export celery on the command line", () => {
  it("asks for --cluster when the file has queues on two clusters, listing them", async () => {
    const { file } = fresh(["mplogin"]);
    const r = await runCli(["export", "celery", "-f", file]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("has queues on 2 clusters (sync, async), and a Celery app connects to one broker; choose one with --cluster");
    expect(r.stderr).toContain(`hint: topo export celery -f ${file} --cluster sync -o celeryconfig_sync.py`);
    expect(r.stderr).toContain(`hint: topo export celery -f ${file} --cluster async -o celeryconfig_async.py`);
  });

  it("prints the module to stdout, with no password or user from the file", async () => {
    const { file } = fresh(["mplogin"], { credentials: { user: "celery_user", password: "pw-S3cret/x" } });
    const r = await runCli(["export", "celery", "-f", file, "--cluster", "sync"]);
    // The file holds its passwords written out: said for each URL, never shown.
    expect(r.stderr.trim().split("\n")).toEqual([
      expect.stringMatching(/^warning: .*:\d+:\d+: clusters\.sync\.url: the URL's password is written in the file/),
      expect.stringMatching(/^warning: .*:\d+:\d+: clusters\.async\.url: the URL's password is written in the file/),
    ]);
    for (const s of ["pw-S3cret", encodeURIComponent("pw-S3cret/x")]) expect(r.stderr).not.toContain(s);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^# Celery configuration for cluster "sync" of /);
    expect(r.stdout).toContain(`broker_url = os.environ.get("TOPO_BROKER_URL_SYNC")`);
    for (const s of ["pw-S3cret", encodeURIComponent("pw-S3cret/x"), "celery_user"]) expect(r.stdout).not.toContain(s);
  });

  it("warns when -o names a file Python cannot import by that name, and fails clearly when it cannot write", async () => {
    const { file } = fresh(["mplogin"]);
    const dir = tempDir();
    const hyphen = await runCli(["export", "celery", "-f", file, "--cluster", "sync", "-o", join(dir, "celery-sync.py")]);
    expect(hyphen.code).toBe(0);
    expect(hyphen.stderr).toContain("warning: celery-sync.py cannot be imported by config_from_object under that name");
    expect(readFileSync(join(dir, "celery-sync.py"), "utf8")).toMatch(/^# Celery configuration/);
    const missing = await runCli(["export", "celery", "-f", file, "--cluster", "sync", "-o", join(dir, "no/such/dir/c.py")]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`Error: cannot write ${join(dir, "no/such/dir/c.py")}: no such directory ${join(dir, "no/such/dir")}`);
  });
});
