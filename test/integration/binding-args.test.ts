// A binding with arguments is reproduced and removed exactly, AMQP types included. The management
// API shows arguments without their types; RabbitMQ tells bindings apart by them, and a headers
// exchange matches a header only against a value of the same type. Each test compares the
// broker's properties_key (routing key plus a hash of the typed arguments) before and after.

import { describe, expect, it } from "vitest";
import amqplib from "amqplib";
import { amqpUrl, api, broker, listBindings, runCli, testVhosts, vh, withChannel, writeTopology, type FreshTopology } from "../helpers/broker.js";

const { fresh } = testVhosts();

/** POST a binding through the management API, as rabbitmqadmin or a definitions file makes it (integers are longs); the JSON text as given. */
async function postBinding(v: string, source: string, queue: string, argsJson: string): Promise<void> {
  const b = broker();
  const r = await fetch(`${b.mgmtBase}/api/bindings/${vh(v)}/e/${encodeURIComponent(source)}/q/${encodeURIComponent(queue)}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Basic ${Buffer.from(`${b.user}:${b.password}`).toString("base64")}` },
    body: `{"routing_key":"","arguments":${argsJson}}`,
  });
  expect(r.status).toBe(201);
}

/** The user's bindings to `queue`, by properties_key: what tells them apart. */
async function keysTo(v: string, queue: string): Promise<string[]> {
  return (await listBindings(v)).filter((b) => b.destination === queue && b.source !== queue && !String(b.source).startsWith("mp")).map((b) => `${b.source} ${b.properties_key}`).sort();
}

/** A file with service mpa on the async cluster, its queue with or without x-max-priority. */
function mpa(t: Pick<FreshTopology, "sync" | "async">, priority?: number): string {
  return writeTopology({ sync: t.sync, async: t.async, services: [{ name: "mpa", sync: false, ...(priority ? { async: { arguments: { "x-max-priority": priority } } } : {}) }] });
}

/**
 * Service mpa applied, and a user's headers exchange audit2 bound to its queue through the
 * management API with `argsJson`; `before`: the queue's user bindings by properties_key.
 */
async function appliedWithAuditBinding(argsJson: string): Promise<{ t: FreshTopology; before: string[] }> {
  const t = fresh([]);
  expect((await runCli(["apply", "-f", mpa(t)])).code).toBe(0);
  await withChannel(t.async, (ch) => ch.assertExchange("audit2", "headers", { durable: true }));
  await postBinding(t.async, "audit2", "mpa.async", argsJson);
  return { t, before: await keysTo(t.async, "mpa.async") };
}

describe("bindings with arguments", () => {
  it("a queue replace re-creates a user's bindings with the types the broker held, and they still route", async () => {
    const t = fresh([]);
    expect((await runCli(["apply", "-f", mpa(t)])).code).toBe(0);
    const uuid = Buffer.from("9f00c3a1e2b74d5e8f1a2b3c4d5e6f70", "hex");
    await withChannel(t.async, async (ch) => {
      await ch.assertExchange("audit2", "headers", { durable: true });
      await ch.assertExchange("tenants", "headers", { durable: true });
      // A Java client's int, and a byte array.
      await ch.bindQueue("mpa.async", "tenants", "", { "x-match": "any", uuid, seat: { "!": "int", value: 3 } });
    });
    await postBinding(t.async, "audit2", "mpa.async", `{"x-match":"all","tenant":9}`);
    const before = await keysTo(t.async, "mpa.async");
    expect(before).toHaveLength(2);

    const r = await runCli(["apply", "-f", mpa(t, 5), "--allow-destructive"]);
    expect(r.code, r.stderr).toBe(0);
    expect(await keysTo(t.async, "mpa.async")).toEqual(before);
    expect((await runCli(["plan", "-f", mpa(t, 5), "--detailed-exitcode"])).code).toBe(0);

    // What routed before routes now: a long header to the long binding, a byte array to the other.
    const conn = await amqplib.connect(amqpUrl(t.async));
    try {
      const ch = await conn.createConfirmChannel();
      let returned = 0;
      ch.on("return", () => returned++);
      ch.publish("audit2", "", Buffer.from("a"), { mandatory: true, headers: { tenant: { "!": "long", value: 9 } } });
      ch.publish("tenants", "", Buffer.from("b"), { mandatory: true, headers: { uuid } });
      await ch.waitForConfirms();
      expect(returned).toBe(0);
    } finally {
      await conn.close();
    }
  });

  it("a binding whose integer JSON cannot carry (above 2^53) makes plan say so, and apply refuse the replace", async () => {
    const { t, before } = await appliedWithAuditBinding(`{"x-match":"all","tenant":9007199254740993}`);
    const plan = await runCli(["plan", "-f", mpa(t, 5)]);
    expect(plan.stdout).toMatch(/! cannot re-create binding audit2 -> mpa.async \[\] .*: argument tenant is an integer beyond 2\^53/);
    const r = await runCli(["apply", "-f", mpa(t, 5), "--allow-destructive"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/refusing to replace 1 object whose 1 binding topo cannot re-create exactly/);
    expect(await keysTo(t.async, "mpa.async")).toEqual(before);
    expect((await api("GET", `/api/queues/${vh(t.async)}/mpa.async`)).body.arguments).toEqual({});
  });

  it("a lossless replace takes a long-typed binding off the old queue: no message published meanwhile arrives twice", async () => {
    const { t, before } = await appliedWithAuditBinding(`{"x-match":"all","tenant":1}`);

    const conn = await amqplib.connect(amqpUrl(t.async));
    const ch = await conn.createConfirmChannel();
    let published = 0;
    let stop = false;
    const publisher = (async () => {
      while (!stop) {
        ch.publish("audit2", "", Buffer.from(`m${published}`), { messageId: `m${published}`, headers: { tenant: { "!": "long", value: 1 } } });
        published++;
        await new Promise((r) => setTimeout(r, 5));
      }
      await ch.waitForConfirms();
    })();
    await new Promise((r) => setTimeout(r, 300));
    const r = await runCli(["apply", "-f", mpa(t, 5), "--allow-destructive"]);
    stop = true;
    await publisher;
    await conn.close();
    expect(r.code, r.stderr).toBe(0);
    expect(await keysTo(t.async, "mpa.async")).toEqual(before);

    const seen = new Map<string, number>();
    await withChannel(t.async, async (c) => {
      for (let m = await c.get("mpa.async", { noAck: true }); m; m = await c.get("mpa.async", { noAck: true })) {
        const id = String(m.properties.messageId);
        seen.set(id, (seen.get(id) ?? 0) + 1);
      }
    });
    expect(seen.size).toBe(published);
    expect([...seen.values()].filter((n) => n > 1)).toHaveLength(0);
  });

  it("bindings that JSON shows alike but the broker holds apart (byte 1 and long 1; a table's keys in another order) are each kept by a replace, and each deleted where topo's", async () => {
    const t = fresh([]);
    expect((await runCli(["apply", "-f", mpa(t)])).code).toBe(0);
    await withChannel(t.async, async (ch) => {
      await ch.bindQueue("mpa.async", "amq.headers", "", { "x-match": "all", a: { "!": "byte", value: 1 } });
      await ch.bindQueue("mpa.async", "amq.headers", "", { "x-match": "all", a: { "!": "long", value: 1 } });
      await ch.bindQueue("mpa.async", "amq.headers", "", { "x-match": "all", t: { a: "1", b: "2" } });
      await ch.bindQueue("mpa.async", "amq.headers", "", { "x-match": "all", t: { b: "2", a: "1" } });
      // Twins in topo's own namespace: neither is in the file.
      await ch.bindQueue("mpa.async", "mpa", "extra", { x: { "!": "byte", value: 1 } });
      await ch.bindQueue("mpa.async", "mpa", "extra", { x: { "!": "long", value: 1 } });
    });
    const before = await keysTo(t.async, "mpa.async");
    expect(before).toHaveLength(4);

    const planned = await runCli(["plan", "-f", mpa(t, 5)]);
    // Its own binding, the user's four; topo's two twins go.
    expect(planned.stdout).toContain("then re-creates its 5 bindings");
    expect(planned.stdout.match(/- delete binding mpa -> mpa\.async \[extra\]/g)).toHaveLength(2);
    const r = await runCli(["apply", "-f", mpa(t, 5), "--allow-destructive"]);
    expect(r.code, r.stderr).toBe(0);
    expect(await keysTo(t.async, "mpa.async")).toEqual(before);
    expect((await listBindings(t.async)).filter((x) => x.source === "mpa").map((x) => x.routing_key)).toEqual(["mpa.async.#"]);
    expect((await runCli(["plan", "-f", mpa(t, 5), "--detailed-exitcode"])).code).toBe(0);
  });

  it("a replace takes bindings with arguments from exchanges named . and .. (which no API path can name) off the holding queue, and reads them back", async () => {
    const t = fresh([]);
    expect((await runCli(["apply", "-f", mpa(t)])).code).toBe(0);
    await withChannel(t.async, async (ch) => {
      for (const x of [".", ".."]) {
        await ch.assertExchange(x, "direct", { durable: true });
        await ch.bindQueue("mpa.async", x, "k", { i: 1 });
      }
    });
    const before = await keysTo(t.async, "mpa.async");
    expect(before).toEqual([". k~Thse6A", ".. k~Thse6A"]);
    const r = await runCli(["apply", "-f", mpa(t, 5), "--allow-destructive"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("every cluster matches the file");
    expect(await keysTo(t.async, "mpa.async")).toEqual(before);
    // The holding queue is gone, and nothing is bound to it.
    expect((await listBindings(t.async)).filter((b) => String(b.destination).startsWith("topo.hold."))).toEqual([]);
    expect((await api("GET", `/api/queues/${vh(t.async)}/topo.hold.mpa.async`)).status).toBe(404);
    expect((await runCli(["plan", "-f", mpa(t, 5), "--detailed-exitcode"])).code).toBe(0);
  });

  it("topo deletes its own binding that drift gave numeric arguments", async () => {
    const t = fresh([]);
    const file = mpa(t);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    const b = broker();
    const r0 = await fetch(`${b.mgmtBase}/api/bindings/${vh(t.async)}/e/mpa/q/mpa.async`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Basic ${Buffer.from(`${b.user}:${b.password}`).toString("base64")}` },
      body: `{"routing_key":"mpa.async.#","arguments":{"x-a":1}}`,
    });
    expect(r0.status).toBe(201);
    const r = await runCli(["apply", "-f", file, "--allow-destructive"]);
    expect(r.code, r.stderr).toBe(0);
    expect((await listBindings(t.async)).filter((x) => x.source === "mpa").map((x) => x.arguments)).toEqual([{}]);
    expect((await runCli(["plan", "-f", file, "--detailed-exitcode"])).code).toBe(0);
  });
});
