// route --live against what the broker really does: each task is published to its service's
// exchange with the task name as routing key, and the queues that received it are what route must
// say. Exchange-to-exchange bindings, alternate exchanges and awkward binding keys included.

import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { amqpUrl, api, createVhost, publish, runCli, testVhosts, vh, withChannel } from "../helpers/broker.js";
import { PYTHON, pyEnv } from "../helpers/celery.js";

const { fresh } = testVhosts();

/** The queues of the vhost that receive one message published to `exchange` with `key` (confirmed). */
async function brokerRoutes(v: string, exchange: string, key: string): Promise<string[]> {
  const names = ((await api("GET", `/api/queues/${vh(v)}?columns=name`)).body as { name: string }[]).map((q) => q.name);
  await withChannel(v, async (ch) => {
    for (const n of names) await ch.purgeQueue(n);
  });
  await publish(v, exchange, key, ["x"]);
  return withChannel(v, async (ch) => {
    const got: string[] = [];
    for (const n of names) if ((await ch.checkQueue(n)).messageCount > 0) got.push(n);
    for (const n of got) await ch.purgeQueue(n);
    return got.sort();
  });
}

async function liveRoute(file: string, task: string): Promise<{ code: number; queues: string[] | undefined; stdout: string; stderr: string }> {
  const r = await runCli(["route", task, "-f", file, "--live", "--json"]);
  const body = r.stdout ? JSON.parse(r.stdout) : undefined;
  return { code: r.code, queues: body?.live?.queues, stdout: r.stdout, stderr: r.stderr };
}

describe("route --live says where the broker delivers a task", () => {
  it("follows exchange-to-exchange bindings, as the broker does, and names them", async () => {
    const { async, file } = fresh([{ name: "mplogin", sync: false }]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    await withChannel(async, async (ch) => {
      await ch.assertExchange("fanx", "fanout", { durable: true });
      await ch.assertQueue("fanq", { durable: true });
      await ch.bindQueue("fanq", "fanx", "");
      await ch.bindExchange("fanx", "mplogin", "mplogin.async.e2e");
      await ch.assertExchange("dx", "direct", { durable: true });
      await ch.assertQueue("dq", { durable: true });
      await ch.bindQueue("dq", "dx", "mplogin.async.direct");
      await ch.bindExchange("dx", "mplogin", "#");
      // A cycle back to the service exchange: the broker visits each exchange once.
      await ch.bindExchange("mplogin", "fanx", "");
    });
    for (const task of ["mplogin.async.e2e", "mplogin.async.direct", "mplogin.async.other"]) {
      const truth = await brokerRoutes(async, "mplogin", task);
      const r = await liveRoute(file, task);
      expect({ task, queues: r.queues }).toEqual({ task, queues: truth });
      expect(r.code).toBe(0);
    }
    expect(await brokerRoutes(async, "mplogin", "mplogin.async.e2e")).toEqual(["fanq", "mplogin.async"]);

    const text = await runCli(["route", "mplogin.async.e2e", "-f", file, "--live"]);
    expect(text.stdout).toMatch(/live: {8}the broker routes it to fanq, mplogin\.async, not as the file says \(/);
    expect(text.stdout).toContain("mplogin -> exchange fanx [mplogin.async.e2e]");
    expect(text.stdout).not.toMatch(/bindings agree/);
  });

  it("a hint to plan or apply names the file route was given, so pasted it plans that file", async () => {
    const { file } = fresh([{ name: "mplogin", sync: false }]);
    // Nothing applied: the exchange is missing. "topo plan shows what is missing" planned topology.yaml.
    const r = await liveRoute(file, "mplogin.async.register");
    expect(r.code).toBe(1);
    const error = JSON.parse(r.stdout).error as { code: string; hints: string[] };
    expect(error.code).toBe("unroutable");
    expect(error.hints).toContain(`topo plan -f ${file} shows what is missing; topo apply -f ${file} creates it`);
  });

  // The broker passes a message to an exchange's alternate only when no binding matched: one that
  // matched and led nowhere drops it. route said "no binding of exchange mplogin matches".
  it("says which bindings matched a task the broker drops because they lead to no queue", async () => {
    const { async, file } = fresh([{ name: "mplogin", sync: false }]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    await withChannel(async, async (ch) => {
      await ch.unbindQueue("mplogin.async", "mplogin", "mplogin.async.#");
      await ch.assertExchange("tie", "direct", { durable: true });
      await ch.bindExchange("tie", "mplogin", "#.charge");
    });
    expect(await brokerRoutes(async, "mplogin", "mplogin.async.charge")).toEqual([]);
    const r = await runCli(["route", "mplogin.async.charge", "-f", file, "--live"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("1 binding on its way matches mplogin.async.charge (mplogin -> exchange tie [#.charge]), but it leads to no queue: the exchanges it reaches route it nowhere");
    expect(r.stderr).not.toContain("no binding of exchange mplogin matches");
  });

  it("says what it cannot tell: a headers exchange bound to the service exchange routes by the message's headers", async () => {
    const { async, file } = fresh([{ name: "mplogin", sync: false }]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    await withChannel(async, async (ch) => {
      await ch.assertExchange("hx", "headers", { durable: true });
      await ch.assertQueue("hq", { durable: true });
      await ch.bindQueue("hq", "hx", "", { "x-match": "all", task: "mplogin.async.charge" });
      await ch.bindExchange("hx", "mplogin", "#");
    });
    const text = await runCli(["route", "mplogin.async.charge", "-f", file, "--live"]);
    expect(text.code).toBe(0);
    expect(text.stdout).not.toMatch(/bindings agree/);
    expect(text.stdout).toMatch(/live: {8}the broker routes it to mplogin\.async, not as the file says \(mplogin -> exchange hx \[#\] is a binding topo does not manage: topo plan lists it and leaves it alone; topo cannot tell all of it: exchange hx \(type headers\) routes by what topo cannot see/);
  });

  it("follows the alternate exchange a policy gives a service exchange when no binding takes the task", async () => {
    const { async, file } = fresh([{ name: "mplogin", sync: false }]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    const policy = { pattern: "^mplogin$", "apply-to": "exchanges", priority: 3, definition: { "alternate-exchange": "ae" } };
    expect((await api("PUT", `/api/policies/${vh(async)}/hr-ae`, policy)).status).toBeLessThan(300);
    await withChannel(async, async (ch) => {
      await ch.assertExchange("ae", "fanout", { durable: true });
      await ch.assertQueue("aeq", { durable: true });
      await ch.bindQueue("aeq", "ae", "");
      await ch.unbindQueue("mplogin.async", "mplogin", "mplogin.async.#");
    });
    const truth = await brokerRoutes(async, "mplogin", "mplogin.async.charge");
    expect(truth).toEqual(["aeq"]);
    const r = await liveRoute(file, "mplogin.async.charge");
    expect(r.queues).toEqual(truth);
    expect(r.code).toBe(0);
    const text = await runCli(["route", "mplogin.async.charge", "-f", file, "--live"]);
    expect(text.stdout).toMatch(/the broker routes it to aeq, not as the file says/);
    expect(text.stdout).toMatch(/alternate exchange ae of exchange mplogin \(policy hr-ae\)/);
    expect(text.stdout).toMatch(/topo plan shows the drift/);
  });

  it("routes by the type the service exchange has on the broker, when someone made it other than topic", async () => {
    const { async, file } = fresh([{ name: "mplogin", sync: false }, { name: "mpwallet", sync: false }]);
    await createVhost(async);
    await withChannel(async, async (ch) => {
      for (const [x, type] of [["mplogin", "direct"], ["mpwallet", "fanout"]] as const) {
        await ch.assertExchange(x, type, { durable: true });
        await ch.assertQueue(`${x}.async`, { durable: true });
        await ch.bindQueue(`${x}.async`, x, `${x}.async.#`);
      }
    });
    for (const task of ["mplogin.async.charge", "mpwallet.async.charge"]) {
      const truth = await brokerRoutes(async, task.split(".")[0] as string, task);
      const r = await liveRoute(file, task);
      expect({ task, queues: r.code === 0 ? r.queues : [] }).toEqual({ task, queues: truth });
    }
    const direct = await runCli(["route", "mplogin.async.charge", "-f", file, "--live"]);
    expect(direct.code).toBe(1);
    expect(direct.stderr).toMatch(/no binding of exchange mplogin matches mplogin\.async\.charge \(exchange mplogin is a direct exchange on the broker, not the topic exchange the file makes/);
    // A pipeline tells a task the broker would drop from a wrong command line, and learns where.
    const json = JSON.parse((await runCli(["route", "mplogin.async.charge", "-f", file, "--live", "--json"])).stdout);
    expect(json.error).toMatchObject({ code: "unroutable", cluster: "async", object: "exchange mplogin" });
    const notInFile = JSON.parse((await runCli(["route", "mpnobody.async.charge", "-f", file, "--json"])).stdout);
    expect(notInFile.error.code).toBe("unroutable");
    const badName = JSON.parse((await runCli(["route", "mplogin.async.log-in", "-f", file, "--json"])).stdout);
    expect(badName.error.code).toBe("usage");
    const fanout = await runCli(["route", "mpwallet.async.charge", "-f", file, "--live"]);
    expect(fanout.stdout).toMatch(/live: {8}the broker routes it to mpwallet\.async, not as the file says \(exchange mpwallet is a fanout exchange on the broker/);
  });

  it("matches binding keys with empty words, leading and trailing dots, # and * as the broker does", async () => {
    const { async, file } = fresh([{ name: "mplogin", sync: false }]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    const keys = ["#.#.charge", "mplogin.async.charge.#", "mplogin.async.charge.", ".mplogin.async.charge", "*.*.*.#", "mplogin..charge", "mplogin.#.#.charge", "#.*.*.*", "*.#.*.*.*", "", "#", "MPLOGIN.async.charge", "mplogin.*.charge.*", "#.mplogin.#", "*.#.*", "mplogin.async.#.#", "#.charge.#", "*", "#.#", "mplogin.#.async.#.charge", "*.async", "mplogin.async.charge.#.#", "mplogin.async.#.charge"];
    await withChannel(async, async (ch) => {
      for (const [i, k] of keys.entries()) {
        await ch.assertQueue(`k${i}`, { durable: true });
        await ch.bindQueue(`k${i}`, "mplogin", k);
      }
    });
    const truth = await brokerRoutes(async, "mplogin", "mplogin.async.charge");
    // Some of the keys take it and some do not, so the comparison says something.
    expect(truth.length).toBeGreaterThan(5);
    expect(truth.length).toBeLessThan(keys.length);
    const r = await liveRoute(file, "mplogin.async.charge");
    expect(r.queues).toEqual(truth);
  });
});

describe("route and the exported Celery router agree on every name", () => {
  const ROUTER = `
import importlib, json, sys
from kombu import Connection, Exchange, Producer
m = importlib.import_module("celeryconfig_async")
out = {}
with Connection(m.broker_url) as conn:
    for name in json.loads(sys.argv[1]):
        try:
            r = m.route_task(name)
        except m.TopoRouteError as e:
            out[name] = {"refused": str(e)}
            continue
        try:
            # What Celery then does with the route: publish with the task name as routing key.
            Producer(conn.channel()).publish("x", exchange=Exchange(r["exchange"], type="topic", no_declare=True), routing_key=r["routing_key"], declare=[])
            out[name] = {"queue": r["queue"]}
        except Exception as e:
            out[name] = {"unpublishable": repr(e)}
print(json.dumps(out))
`;

  it("a name topo route says lands in a queue is one the router sends there and a client can publish; every other name route refuses", async () => {
    const { async, file } = fresh([{ name: "mplogin", sync: false }]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    const dir = mkdtempSync(join(tmpdir(), "topo-route-"));
    const mod = await runCli(["export", "celery", "-f", file, "--cluster", "async", "-o", join(dir, "celeryconfig_async.py")]);
    expect(mod.code).toBe(0);
    const names = ["mplogin.async.register", "mplogin.async.log-in", "mplogin.async.a.b", "mplogin.async.#", "mplogin.async.*", "mplogin.async.caf\u00e9", `mplogin.async.${"a".repeat(241)}`, `mplogin.async.${"a".repeat(242)}`];
    const router = await new Promise<Record<string, { queue?: string; refused?: string; unpublishable?: string }>>((resolve, reject) =>
      execFile(PYTHON, ["-c", ROUTER, JSON.stringify(names)], { cwd: dir, env: pyEnv(dir, { TOPO_BROKER_URL_ASYNC: amqpUrl(async) }) }, (e, stdout, stderr) => (e ? reject(new Error(stderr)) : resolve(JSON.parse(stdout)))),
    );
    for (const name of names) {
      const r = await runCli(["route", name, "-f", file, "--json"]);
      const says = r.code === 0 ? { queue: JSON.parse(r.stdout).queues.join(",") } : { refused: true };
      const truth = router[name]?.queue !== undefined ? { queue: router[name]?.queue } : { refused: true };
      expect({ name, says }).toEqual({ name, says: truth });
    }
    // Both sides of the length limit are there: the longest name a client can publish routes.
    expect(router[`mplogin.async.${"a".repeat(241)}`]).toEqual({ queue: "mplogin.async" });
    // One byte more: the router says why, rather than py-amqp's struct.error from the publish.
    expect(router[`mplogin.async.${"a".repeat(242)}`]).toEqual({ refused: expect.stringMatching(/a routing key is at most 255 bytes/) });
  });
});
