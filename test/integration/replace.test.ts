// Lossless replace: a queue whose immutable properties change keeps every message, even while a
// publisher keeps publishing, and an interrupted replace is finished by the next apply.

import amqplib from "amqplib";
import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, onTestFinished } from "vitest";
import { amqpProxy, type AmqpProxy } from "../helpers/proxy.js";
import { amqpUrl, api, broker, CLI, deleteVhost, getQueue, listBindings, messageCount, publish, runCli, uniqueName, vh, withChannel, writeTopology } from "../helpers/broker.js";

const vhosts: string[] = [];
afterEach(async () => {
  await Promise.all(vhosts.splice(0).map(deleteVhost));
});

function files(): { sync: string; async: string; before: string; after: string } {
  const sync = uniqueName("sync");
  const async = uniqueName("async");
  vhosts.push(sync, async);
  return {
    sync,
    async,
    before: writeTopology({ sync, async, services: [{ name: "mplogin", sync: false }] }),
    after: writeTopology({ sync, async, services: [{ name: "mplogin", sync: false, async: { arguments: { "x-max-length": 1000000 } } }] }),
  };
}

/**
 * Fresh vhosts whose async cluster is reached through an AMQP proxy that can cut the connection
 * at a chosen frame; `file` writes the topology of service mplogin (async only) with these
 * arguments. The proxy closes when the test ends.
 */
async function throughProxy(): Promise<{ sync: string; async: string; proxy: AmqpProxy; file: (args?: Record<string, unknown>) => string }> {
  const { sync, async } = files();
  const proxy = await amqpProxy();
  onTestFinished(proxy.close);
  const through = new URL(amqpUrl(async));
  through.hostname = "127.0.0.1";
  through.port = String(proxy.port);
  const file = (args: Record<string, unknown> = {}) =>
    writeTopology({ sync, async, services: [{ name: "mplogin", sync: false, async: { arguments: args } }], clusterExtra: { async: { url: through.toString() } } });
  return { sync, async, proxy, file };
}

/** Drain a queue and return the message ids it held. */
async function drainIds(v: string, queue: string): Promise<string[]> {
  return withChannel(v, async (ch) => {
    const ids: string[] = [];
    for (;;) {
      const m = await ch.get(queue, { noAck: true });
      if (!m) return ids;
      ids.push(String(m.properties.messageId));
    }
  });
}

/** Publish persistent messages with ids, with confirms, until stopped. */
/** The test broker's user may read everything in `v` but `exchange` (so binding from it is refused), until the test ends. */
async function refuseRead(v: string, exchange: string): Promise<void> {
  const user = encodeURIComponent(broker().user);
  await api("PUT", `/api/permissions/${vh(v)}/${user}`, { configure: ".*", write: ".*", read: `^(?!${exchange}$).*` });
  onTestFinished(async () => void (await api("PUT", `/api/permissions/${vh(v)}/${user}`, { configure: ".*", write: ".*", read: ".*" })));
}

function startPublisher(v: string, exchange: string, routingKey: string, pauseMs = 5) {
  const published: string[] = [];
  let stop = false;
  const done = (async () => {
    const conn = await amqplib.connect(amqpUrl(v));
    const ch = await conn.createConfirmChannel();
    let n = 0;
    while (!stop) {
      const batch: string[] = [];
      for (let i = 0; i < 20; i++) {
        const id = `live-${n++}`;
        ch.publish(exchange, routingKey, Buffer.from(id), { persistent: true, messageId: id });
        batch.push(id);
      }
      await ch.waitForConfirms();
      published.push(...batch);
      await new Promise((r) => setTimeout(r, pauseMs));
    }
    await conn.close();
  })();
  return {
    published,
    stop: async () => {
      stop = true;
      await done;
    },
  };
}

describe("lossless replace", () => {
  it("keeps every message exactly once while a publisher keeps publishing", async () => {
    const { async, before, after } = files();
    expect((await runCli(["apply", "-f", before])).code).toBe(0);
    await withChannel(async, (ch) => ch.assertExchange("edge", "topic", { durable: true }));
    await withChannel(async, (ch) => ch.bindQueue("mplogin.async", "edge", "login.#"));
    const preload = Array.from({ length: 500 }, (_, i) => `old-${i}`);
    await publish(async, "mplogin", "mplogin.async.register", preload);

    const refused = await runCli(["apply", "-f", after]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/without --allow-destructive/);

    const pub = startPublisher(async, "mplogin", "mplogin.async.live");
    await new Promise((r) => setTimeout(r, 200));
    const r = await runCli(["apply", "-f", after, "--allow-destructive"]);
    await new Promise((r) => setTimeout(r, 200));
    await pub.stop();
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("-/+ replace queue mplogin.async");

    const q = await getQueue(async, "mplogin.async");
    expect(q.arguments).toEqual({ "x-max-length": 1000000 });
    expect(await getQueue(async, "topo.hold.mplogin.async")).toBeUndefined();
    const bindings = (await listBindings(async)).map((b) => `${b.source}>${b.destination}:${b.routing_key}`).sort();
    expect(bindings).toEqual(["edge>mplogin.async:login.#", "mplogin>mplogin.async:mplogin.async.#"]);

    const ids = await drainIds(async, "mplogin.async");
    const expected = [...preload, ...pub.published];
    expect(pub.published.length).toBeGreaterThan(20);
    expect(ids.length).toBe(expected.length);
    expect(new Set(ids).size).toBe(ids.length);
    expect(new Set(ids)).toEqual(new Set(expected));
    expect((await runCli(["plan", "-f", after, "--detailed-exitcode"])).code).toBe(0);
  }, 120_000); // two applies, and a replace waits one statistics interval (5 s) before it deletes the old queue

  it("a routing key changed by hand on a queue the file replaces: under a publisher whose key both match, every message is kept", async () => {
    const { async, before, after } = files();
    expect((await runCli(["apply", "-f", before])).code).toBe(0);
    // Someone rebinds the queue with a key of their own; the file's key goes.
    await withChannel(async, async (ch) => {
      await ch.bindQueue("mplogin.async", "mplogin", "#");
      await ch.unbindQueue("mplogin.async", "mplogin", "mplogin.async.#");
    });
    const preload = Array.from({ length: 500 }, (_, i) => `old-${i}`);
    await publish(async, "mplogin", "mplogin.async.register", preload);
    const pub = startPublisher(async, "mplogin", "mplogin.async.live");
    await new Promise((r) => setTimeout(r, 200));
    const r = await runCli(["apply", "-f", after, "--allow-destructive"]);
    await new Promise((r) => setTimeout(r, 200));
    await pub.stop();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/1 to create, 0 to update, 1 to replace, 1 to delete/);
    const bindings = (await listBindings(async)).filter((b) => b.source !== "").map((b) => `${b.source}>${b.destination}:${b.routing_key}`);
    expect(bindings).toEqual(["mplogin>mplogin.async:mplogin.async.#"]);
    // Before a6b0ac2 the old key was unbound first and the new one bound after the replace: the
    // queue had neither while the replace ran, and what the publisher sent meanwhile was confirmed
    // and dropped (2,020 of 8,880 messages kept, and apply said it was complete).
    const ids = await drainIds(async, "mplogin.async");
    const expected = [...preload, ...pub.published];
    expect(pub.published.length).toBeGreaterThan(20);
    expect(ids.length).toBe(expected.length);
    expect(new Set(ids)).toEqual(new Set(expected));
    expect((await runCli(["plan", "-f", after, "--detailed-exitcode"])).code).toBe(0);
  }, 120_000);

  it("a priority queue replaced under a publisher keeps every message, and apply says how many may come twice", async () => {
    const sync = uniqueName("sync");
    const async = uniqueName("async");
    vhosts.push(sync, async);
    const file = (priority: number) => writeTopology({ sync, async, services: [{ name: "mplogin", sync: false, async: { arguments: { "x-max-priority": priority } } }] });
    const made = await runCli(["apply", "-f", file(10)]);
    expect(made.code, made.stderr).toBe(0);
    const preload = Array.from({ length: 300 }, (_, i) => `old-${i}`);
    await publish(async, "mplogin", "mplogin.async.register", preload);
    const pub = startPublisher(async, "mplogin", "mplogin.async.live");
    await new Promise((r) => setTimeout(r, 200));
    const r = await runCli(["apply", "-f", file(3), "--allow-destructive"]);
    await pub.stop();
    expect(r.code, r.stderr).toBe(0);
    const ids = await drainIds(async, "mplogin.async");
    expect(new Set(ids)).toEqual(new Set([...preload, ...pub.published]));
    // A priority queue's copies of the first switch are not searched: before, apply said nothing
    // of them (1 of 2,730 came twice in a measured run).
    const said = /up to (\d+) messages? published while the bindings switched to topo\.hold\.mplogin\.async may have reached both queues, and so be delivered twice \(at least once\): a priority queue/.exec(r.stderr);
    expect(said, r.stderr).not.toBeNull();
    expect(Number(said![1])).toBeGreaterThanOrEqual(ids.length - new Set(ids).size);
  }, 120_000);

  it("a re-run finishes a replace that stopped half-way, and plan shows the half-done state", async () => {
    const { async, before, after } = files();
    expect((await runCli(["apply", "-f", before])).code).toBe(0);
    // What a replace interrupted after step 2 leaves: the queue gone, its messages and its
    // bindings on the holding queue.
    await withChannel(async, async (ch) => {
      await ch.assertQueue("topo.hold.mplogin.async", { durable: true });
      await ch.bindQueue("topo.hold.mplogin.async", "mplogin", "mplogin.async.#");
    });
    await api("DELETE", `/api/queues/${vh(async)}/mplogin.async`);
    await publish(async, "mplogin", "mplogin.async.x", ["a", "b", "c"]);
    expect(await messageCount(async, "topo.hold.mplogin.async")).toBe(3);

    const plan = await runCli(["plan", "-f", after, "--detailed-exitcode"]);
    expect(plan.code).toBe(2);
    expect(plan.stdout).toContain("-/+ replace queue mplogin.async");
    expect(plan.stdout).toMatch(/because finishing an interrupted replace: \d+ messages? waits? in topo\.hold\.mplogin\.async|because finishing an interrupted replace: some messages wait/);

    // The queue is gone: what is left declares it and moves the messages back, deleting nothing
    // but the emptied holding queue, so no --allow-destructive is needed.
    const r = await runCli(["apply", "-f", after]);
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    expect(await getQueue(async, "topo.hold.mplogin.async")).toBeUndefined();
    expect((await getQueue(async, "mplogin.async")).arguments).toEqual({ "x-max-length": 1000000 });
    expect((await drainIds(async, "mplogin.async")).sort()).toEqual(["a", "b", "c"]);
    expect((await runCli(["plan", "-f", after, "--detailed-exitcode"])).code).toBe(0);
  });

  it("finishing a replace stopped before the old queue lost its bindings drops the copies both queues got meanwhile", async () => {
    const { async, before, after } = files();
    expect((await runCli(["apply", "-f", before])).code).toBe(0);
    const held = Array.from({ length: 50 }, (_, i) => `held-${i}`);
    await publish(async, "mplogin", "mplogin.async.x", held);
    // What a replace cut, killed or interrupted right after step 1's bind leaves: the holding
    // queue bound, and the old queue still bound too, so each publish since reached both.
    await withChannel(async, async (ch) => {
      await ch.assertQueue("topo.hold.mplogin.async", { durable: true });
      await ch.bindQueue("topo.hold.mplogin.async", "mplogin", "mplogin.async.#");
    });
    const meanwhile = Array.from({ length: 300 }, (_, i) => `meanwhile-${i}`);
    await publish(async, "mplogin", "mplogin.async.x", meanwhile);
    expect(await messageCount(async, "topo.hold.mplogin.async")).toBe(300);
    expect(await messageCount(async, "mplogin.async")).toBe(350);

    const r = await runCli(["apply", "-f", after, "--allow-destructive"]);
    expect(r.code, r.stderr).toBe(0);
    // Before, the copies were moved too: each of the 300 came out of the new queue twice.
    expect(r.stderr).toContain("300 duplicate copies dropped");
    const ids = await drainIds(async, "mplogin.async");
    expect(ids.length).toBe(350);
    expect(new Set(ids)).toEqual(new Set([...held, ...meanwhile]));
    expect(await getQueue(async, "topo.hold.mplogin.async")).toBeUndefined();
    expect((await runCli(["plan", "-f", after, "--detailed-exitcode"])).code).toBe(0);
  });

  it("a replace cut right after it bound its holding queue, under a publisher: the retry that finishes it keeps every message exactly once", async () => {
    const { async, proxy, file: viaProxy } = await throughProxy();
    expect((await runCli(["apply", "-f", viaProxy()])).code).toBe(0);
    await publish(async, "mplogin", "mplogin.async.x", Array.from({ length: 50 }, (_, i) => `held-${i}`));
    // Slower than the other tests' publisher: enough to reach both queues while apply
    // reconnects, not so many that the move takes minutes on a loaded machine.
    const pub = startPublisher(async, "mplogin", "mplogin.async.live", 50);
    // queue.bind (class 50, method 20): the first is step 1's bind of the holding queue; the
    // broker makes it, then the connection is gone with the old queue still bound. apply
    // reconnects and finishes the replace, the publisher reaching both queues meanwhile.
    const cut = proxy.cutAfter(50, 20);
    const r = await runCli(["apply", "-f", viaProxy({ "x-max-length": 1000000 }), "--allow-destructive"]);
    await cut;
    await pub.stop();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/connection lost|reconnecting/);
    const ids = await drainIds(async, "mplogin.async");
    const expected = [...Array.from({ length: 50 }, (_, i) => `held-${i}`), ...pub.published];
    expect(new Set(ids)).toEqual(new Set(expected));
    // Before, every message published between the cut and the retry's unbind came out twice.
    expect(ids.length).toBe(expected.length);
  }, 180_000);

  it("finishing a replace stopped while both the new queue and the holding queue were bound says how many messages may come twice", async () => {
    const { async, before, after } = files();
    expect((await runCli(["apply", "-f", before])).code).toBe(0);
    // What a replace cut, killed or interrupted inside step 4 leaves: the queue with its new
    // shape bound again, and the holding queue, which still holds messages, not yet unbound.
    await api("DELETE", `/api/queues/${vh(async)}/mplogin.async`);
    await withChannel(async, async (ch) => {
      await ch.assertQueue("topo.hold.mplogin.async", { durable: true });
      await ch.bindQueue("topo.hold.mplogin.async", "mplogin", "mplogin.async.#");
      await ch.assertQueue("mplogin.async", { durable: true, arguments: { "x-max-length": 1000000 } });
    });
    await publish(async, "mplogin", "mplogin.async.x", ["waiting-1", "waiting-2"]);
    await withChannel(async, (ch) => ch.bindQueue("mplogin.async", "mplogin", "mplogin.async.#"));
    const meanwhile = Array.from({ length: 100 }, (_, i) => `meanwhile-${i}`);
    await publish(async, "mplogin", "mplogin.async.x", meanwhile);
    expect(await messageCount(async, "topo.hold.mplogin.async")).toBe(102);

    const r = await runCli(["apply", "-f", after]);
    expect(r.code, r.stderr).toBe(0);
    const ids = await drainIds(async, "mplogin.async");
    const twice = ids.length - new Set(ids).size;
    expect(new Set(ids)).toEqual(new Set(["waiting-1", "waiting-2", ...meanwhile]));
    expect(twice).toBe(100);
    // Before, apply said nothing of them: only what its own switch added was counted (none).
    const said = /up to (\d+) messages published while the bindings switched back may have reached both queues, and so be delivered twice \(at least once\): the apply that left this replace half-way stopped with both mplogin\.async and topo\.hold\.mplogin\.async bound/.exec(r.stderr);
    expect(said, r.stderr).not.toBeNull();
    expect(Number(said![1])).toBeGreaterThanOrEqual(twice);
  });

  it("finishing a replace whose queue already has its new shape leaves what the queue holds unread: none of it comes redelivered", async () => {
    const { async, before, after } = files();
    expect((await runCli(["apply", "-f", before])).code).toBe(0);
    // What a replace interrupted during the move back leaves: the queue with its new shape and
    // its binding, holding some messages; the rest and a binding on the holding queue.
    await api("DELETE", `/api/queues/${vh(async)}/mplogin.async`);
    await withChannel(async, async (ch) => {
      await ch.assertQueue("mplogin.async", { durable: true, arguments: { "x-max-length": 1000000 } });
      await ch.bindQueue("mplogin.async", "mplogin", "mplogin.async.#");
      await ch.assertQueue("topo.hold.mplogin.async", { durable: true });
      await ch.bindQueue("topo.hold.mplogin.async", "mplogin", "mplogin.async.#");
      await ch.unbindQueue("mplogin.async", "mplogin", "mplogin.async.#");
      ch.sendToQueue("mplogin.async", Buffer.from("in-queue"), { messageId: "in-queue" });
      ch.sendToQueue("topo.hold.mplogin.async", Buffer.from("held"), { messageId: "held" });
      // A round trip after the publishes: the channel closes only once the broker has them.
      await ch.checkQueue("topo.hold.mplogin.async");
    });
    await withChannel(async, (ch) => ch.bindQueue("mplogin.async", "mplogin", "mplogin.async.#"));
    expect(await messageCount(async, "mplogin.async")).toBe(1);
    expect(await messageCount(async, "topo.hold.mplogin.async")).toBe(1);
    expect((await runCli(["plan", "-f", after])).stdout).toMatch(/because finishing an interrupted replace/);
    const r = await runCli(["apply", "-f", after]);
    expect(r.code, r.stderr).toBe(0);
    expect(await getQueue(async, "topo.hold.mplogin.async")).toBeUndefined();
    const got = await withChannel(async, async (ch) => {
      const out: string[] = [];
      for (let m = await ch.get("mplogin.async", { noAck: true }); m; m = await ch.get("mplogin.async", { noAck: true })) out.push(`${m.properties.messageId}${m.fields.redelivered ? " redelivered" : ""}`);
      return out;
    });
    // Before, the finishing apply peeked the whole queue (45,408 messages in advl's run), and each
    // came redelivered to the workers.
    expect(got.sort()).toEqual(["held", "in-queue"]);
  });

  it("an exchange already named as the replace's holding exchange, declared otherwise, makes plan say so and apply refuse before anything is written", async () => {
    const { async, before, after } = files();
    expect((await runCli(["apply", "-f", before])).code).toBe(0);
    await withChannel(async, (ch) => ch.assertExchange("topo.hold.mplogin.async", "topic", { durable: true }));
    await publish(async, "mplogin", "mplogin.async.x", ["a"]);

    const plan = await runCli(["plan", "-f", after]);
    expect(plan.stdout).toMatch(/! messages at risk: an exchange topo\.hold\.mplogin\.async \(topic, durable\) exists/);
    const r = await runCli(["apply", "-f", after, "--allow-destructive"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/refusing to replace 1 queue/);
    expect(r.stderr).toContain("delete exchange topo.hold.mplogin.async first");
    // Nothing written: the queue keeps its route and its message, no holding queue was made.
    expect((await listBindings(async)).filter((b) => b.source === "mplogin").map((b) => b.destination)).toEqual(["mplogin.async"]);
    expect(await messageCount(async, "mplogin.async")).toBe(1);
    expect(await getQueue(async, "topo.hold.mplogin.async")).toBeUndefined();

    // Once it is deleted, the replace runs and keeps the message.
    await api("DELETE", `/api/exchanges/${vh(async)}/topo.hold.mplogin.async`);
    expect((await runCli(["apply", "-f", after, "--allow-destructive"])).code).toBe(0);
    expect(await drainIds(async, "mplogin.async")).toEqual(["a"]);
  });

  it("the holding exchange declared as topo declares it but bound to a user's queue: plan says so and apply refuses, so no moved message is copied there", async () => {
    const { async, before, after } = files();
    expect((await runCli(["apply", "-f", before])).code).toBe(0);
    await withChannel(async, async (ch) => {
      await ch.assertExchange("topo.hold.mplogin.async", "fanout", { durable: false, autoDelete: true });
      await ch.assertQueue("spy", { durable: true });
      await ch.bindQueue("spy", "topo.hold.mplogin.async", "");
    });
    await publish(async, "mplogin", "mplogin.async.x", ["a", "b"]);

    const plan = await runCli(["plan", "-f", after]);
    expect(plan.stdout).toMatch(/! messages at risk: exchange topo\.hold\.mplogin\.async is bound elsewhere than its holding queue \(topo\.hold\.mplogin\.async -> spy \[\]\)/);
    const r = await runCli(["apply", "-f", after, "--allow-destructive"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/refusing to replace 1 queue/);
    expect(r.stderr).toContain("remove that binding, or delete exchange topo.hold.mplogin.async");
    expect(await messageCount(async, "mplogin.async")).toBe(2);
    expect(await messageCount(async, "spy")).toBe(0);

    // Once the binding is gone (the exchange goes with it: auto-delete), the replace runs, and the
    // user's queue got nothing.
    await withChannel(async, (ch) => ch.unbindQueue("spy", "topo.hold.mplogin.async", ""));
    expect((await runCli(["apply", "-f", after, "--allow-destructive"])).code).toBe(0);
    expect((await drainIds(async, "mplogin.async")).sort()).toEqual(["a", "b"]);
    expect(await messageCount(async, "spy")).toBe(0);
  });

  it("an exchange replaced by delete and re-create gets every binding back at once: a failure further on leaves it bound, the user's bindings too", async () => {
    const { sync, async, before } = files();
    expect((await runCli(["apply", "-f", before])).code).toBe(0);
    // A Celery that declared the service exchange transient, and a user's audit queue bound to it.
    const b = broker();
    await api("DELETE", `/api/exchanges/${vh(async)}/mplogin`);
    await api("PUT", `/api/exchanges/${vh(async)}/mplogin`, { type: "topic", durable: false });
    await api("PUT", `/api/queues/${vh(async)}/audit`, { durable: true });
    await api("POST", `/api/bindings/${vh(async)}/e/mplogin/q/mplogin.async`, { routing_key: "mplogin.async.#" });
    await api("POST", `/api/bindings/${vh(async)}/e/mplogin/q/audit`, { routing_key: "#" });
    // The new service's queue is refused by the broker (configure permission), after the replace.
    const user = encodeURIComponent(b.user);
    await api("PUT", `/api/permissions/${vh(async)}/${user}`, { configure: "^(?!mpwallet\\.).*", write: ".*", read: ".*" });
    // Read through a management user that may not read permissions: an administrator's read would
    // refuse the plan before the replace, and this test needs the broker to refuse after it.
    const operator = uniqueName("operator");
    onTestFinished(async () => void (await api("DELETE", `/api/users/${operator}`)));
    expect((await api("PUT", `/api/users/${operator}`, { password: "op-pw", tags: "policymaker,monitoring" })).status).toBeLessThan(300);
    expect((await api("PUT", `/api/permissions/${vh(async)}/${operator}`, { configure: ".*", write: ".*", read: ".*" })).status).toBeLessThan(300);
    const management = `http://${operator}:op-pw@${b.host}:${new URL(b.mgmtBase).port}`;
    const grown = writeTopology({ sync, async, services: [{ name: "mplogin", sync: false }, { name: "mpwallet", sync: false }], clusterExtra: { async: { management } } });
    const bindings = async () => (await listBindings(async)).map((x) => `${x.source}>${x.destination}:${x.routing_key}`).sort();

    const failed = await runCli(["apply", "-f", grown, "--allow-destructive"]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/declare queue mpwallet\.async -> 403 ACCESS_REFUSED/);
    expect((await api("GET", `/api/exchanges/${vh(async)}/mplogin`)).body).toMatchObject({ type: "topic", durable: true });
    expect(await bindings()).toEqual(expect.arrayContaining(["mplogin>audit:#", "mplogin>mplogin.async:mplogin.async.#"]));

    await api("PUT", `/api/permissions/${vh(async)}/${user}`, { configure: ".*", write: ".*", read: ".*" });
    const r = await runCli(["apply", "-f", grown, "--allow-destructive"]);
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    expect(await bindings()).toEqual(["mplogin>audit:#", "mplogin>mplogin.async:mplogin.async.#", "mpwallet>mpwallet.async:mpwallet.async.#"]);
    expect((await runCli(["plan", "-f", grown, "--detailed-exitcode"])).code).toBe(0);
  });

  it("a replaced exchange gets back foreign bindings whose names and keys run into each other through \"|\"", async () => {
    const { async, before } = files();
    expect((await runCli(["apply", "-f", before])).code).toBe(0);
    // Someone re-made the service exchange as a direct one, and bound two queues of their own:
    // audit with key "x|k", and "audit|x" with key "k".
    await api("DELETE", `/api/exchanges/${vh(async)}/mplogin`);
    await api("PUT", `/api/exchanges/${vh(async)}/mplogin`, { type: "direct", durable: true });
    for (const q of ["audit", "audit|x"]) await api("PUT", `/api/queues/${vh(async)}/${encodeURIComponent(q)}`, { durable: true });
    await api("POST", `/api/bindings/${vh(async)}/e/mplogin/q/audit`, { routing_key: "x|k" });
    await api("POST", `/api/bindings/${vh(async)}/e/mplogin/q/${encodeURIComponent("audit|x")}`, { routing_key: "k" });
    await api("POST", `/api/bindings/${vh(async)}/e/mplogin/q/mplogin.async`, { routing_key: "mplogin.async.#" });
    const bindings = async () => (await listBindings(async)).filter((x) => x.source === "mplogin").map((x) => `${x.destination}:${x.routing_key}`).sort();
    const had = await bindings();
    expect(had).toEqual(["audit:x|k", "audit|x:k", "mplogin.async:mplogin.async.#"]);

    const plan = await runCli(["plan", "-f", before]);
    expect(plan.stdout).toMatch(/mplogin -> audit \[x\|k\]/);
    expect(plan.stdout).toMatch(/mplogin -> audit\|x \[k\]/);
    const r = await runCli(["apply", "-f", before, "--allow-destructive"]);
    expect(r.code).toBe(0);
    expect((await api("GET", `/api/exchanges/${vh(async)}/mplogin`)).body).toMatchObject({ type: "topic" });
    expect(await bindings()).toEqual(had);
  });

  it.each([
    ["SIGTERM", 1],
    ["a double Ctrl-C (SIGINT twice)", 2],
  ])("%s while a replaced exchange gets its bindings back: the step finishes first, so no binding of a user's is lost", async (_what, signals) => {
    const { sync, async, before } = files();
    expect((await runCli(["apply", "-f", before])).code).toBe(0);
    // A transient service exchange with many bindings of a user's: putting them back takes a while.
    await api("DELETE", `/api/exchanges/${vh(async)}/mplogin`);
    await api("PUT", `/api/exchanges/${vh(async)}/mplogin`, { type: "topic", durable: false });
    await api("PUT", `/api/queues/${vh(async)}/audit`, { durable: true });
    const keys = Array.from({ length: 3000 }, (_, i) => `audit.${i}`);
    await withChannel(async, async (ch) => {
      await ch.bindQueue("mplogin.async", "mplogin", "mplogin.async.#");
      for (const k of keys) await ch.bindQueue("audit", "mplogin", k);
    });
    const expected = (await listBindings(async)).map((x) => `${x.source}>${x.destination}:${x.routing_key}`).sort();
    expect(expected).toHaveLength(3001);
    // A new service too: what comes after the replace, which an interrupted apply does not start.
    const file = writeTopology({ sync, async, services: [{ name: "mplogin", sync: false }, { name: "mpwallet", sync: false }] });

    const child = execFile(process.execPath, [CLI, "apply", "-f", file, "--allow-destructive"]);
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((res) => child.on("exit", (code) => res(code)));
    // The exchange gone, or back with only some of its bindings: the replace is under way.
    let midway = false;
    for (const deadline = Date.now() + 30_000; !midway && Date.now() < deadline; ) {
      const x = await api("GET", `/api/exchanges/${vh(async)}/mplogin`);
      const bound = x.status === 200 ? ((await api("GET", `/api/exchanges/${vh(async)}/mplogin/bindings/source`)).body as unknown[]).length : 0;
      midway = x.status === 404 || (x.body.durable === true && bound < 3001);
      if (midway && signals === 1) child.kill("SIGTERM");
      if (midway && signals === 2) {
        child.kill("SIGINT");
        await new Promise((r) => setTimeout(r, 100));
        child.kill("SIGINT");
      }
    }
    expect(midway).toBe(true);
    expect(await exited).toBe(130);
    if (signals === 2) expect(stderr).toMatch(/SIGINT again: waiting for 3001 bindings of the exchanges \(or queues\) being replaced to be put back/);
    expect((await api("GET", `/api/exchanges/${vh(async)}/mplogin`)).body).toMatchObject({ durable: true });
    expect((await listBindings(async)).map((x) => `${x.source}>${x.destination}:${x.routing_key}`).filter((b) => b.startsWith("mplogin>")).sort()).toEqual(expected);
    const again = await runCli(["apply", "-f", file, "--allow-destructive"]);
    expect(again.code).toBe(0);
    expect((await runCli(["plan", "-f", file, "--detailed-exitcode"])).code).toBe(0);
    expect(await listBindings(async)).toHaveLength(3002);
  });

  it("--allow-data-loss replaces by delete and re-create, for a user who truly wants it", async () => {
    const { async, before, after } = files();
    expect((await runCli(["apply", "-f", before])).code).toBe(0);
    await publish(async, "mplogin", "mplogin.async.x", ["a", "b"]);
    const r = await runCli(["apply", "-f", after, "--allow-destructive", "--allow-data-loss"]);
    expect(r.code).toBe(0);
    expect(await messageCount(async, "mplogin.async")).toBe(0);
    expect((await getQueue(async, "mplogin.async")).arguments).toEqual({ "x-max-length": 1000000 });
  });
});

describe("bindings a replace cannot put back", () => {
  const edges = async (v: string) => (await listBindings(v)).map((x) => `${x.source}>${x.destination}:${x.routing_key}`).sort();
  /** The service exchange as a Celery worker declared it (direct), where the file wants topic. */
  async function celeryExchange(v: string): Promise<void> {
    await api("DELETE", `/api/exchanges/${vh(v)}/mplogin`);
    await api("PUT", `/api/exchanges/${vh(v)}/mplogin`, { type: "direct", durable: true });
    await api("POST", `/api/bindings/${vh(v)}/e/mplogin/q/mplogin.async`, { routing_key: "mplogin.async.#" });
    await api("PUT", `/api/queues/${vh(v)}/audit`, { durable: true });
    await api("POST", `/api/bindings/${vh(v)}/e/mplogin/q/audit`, { routing_key: "mplogin.async" });
  }
  /**
   * A management user that may not read permissions: an administrator's read would refuse the
   * plan before anything is written, and these tests need the broker to refuse a bind after the
   * replace. Returns the cluster's `management` key.
   */
  async function operator(v: string): Promise<string> {
    const b = broker();
    const name = uniqueName("operator");
    onTestFinished(async () => void (await api("DELETE", `/api/users/${name}`)));
    expect((await api("PUT", `/api/users/${name}`, { password: "op-pw", tags: "policymaker,monitoring" })).status).toBeLessThan(300);
    expect((await api("PUT", `/api/permissions/${vh(v)}/${name}`, { configure: ".*", write: ".*", read: ".*" })).status).toBeLessThan(300);
    return `http://${name}:op-pw@${b.host}:${new URL(b.mgmtBase).port}`;
  }

  it("a connection lost during a replace's move, and no reconnect: the error says the queue was being replaced, and a re-run finishes it", async () => {
    const { sync, async, proxy, file: viaProxy } = await throughProxy();
    const after = writeTopology({ sync, async, services: [{ name: "mplogin", sync: false, async: { arguments: { "x-max-length": 1000000 } } }] });
    expect((await runCli(["apply", "-f", viaProxy()])).code).toBe(0);
    await publish(async, "mplogin", "mplogin.async.x", ["a", "b", "c"]);
    // The move's first publish reaches the broker; then the connection goes, and the proxy with it.
    // (The first publish is the replace's question whether it may publish through amq.default.)
    const cut = proxy.cutAfter(60, 40, 1);
    const run = runCli(["apply", "-f", viaProxy({ "x-max-length": 1000000 }), "--allow-destructive"]);
    await cut;
    const closed = proxy.close();
    proxy.cut();
    const r = await run;
    await closed;
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("queue mplogin.async was being replaced: its bindings and messages may be on topo.hold.mplogin.async");
    const done = await runCli(["apply", "-f", after, "--allow-destructive"]);
    expect(done.stderr).not.toMatch(/Error/);
    expect(done.code).toBe(0);
    // At least once: the message under way when the connection went may be there twice, and the
    // apply that finishes says so (the one cut may have said nothing: killed with SIGKILL).
    expect(done.stderr).toContain("this finished a replace an earlier apply left half-way: if that apply stopped during a move (killed, or its connection lost), up to 256 messages of its batch under way may be in mplogin.async twice");
    expect(new Set(await drainIds(async, "mplogin.async"))).toEqual(new Set(["a", "b", "c"]));
  });

  it("a connection lost just after an exchange replace's delete: the retry puts back the user's bindings only the cut plan knew", async () => {
    const { async, proxy, file: viaProxy } = await throughProxy();
    const file = viaProxy();
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    await celeryExchange(async);
    // exchange.delete (class 40, method 20): the first is the renewal of topo's apply mark, the
    // second the replace's own; the broker deletes the exchange, with the binding to audit.
    proxy.cutAfter(40, 20, 1);
    const r = await runCli(["apply", "-f", file, "--allow-destructive"]);
    expect(r.stderr).toMatch(/connection lost|reconnecting/);
    expect(r.code).toBe(0);
    expect((await api("GET", `/api/exchanges/${vh(async)}/mplogin`)).body).toMatchObject({ type: "topic" });
    const audit = (await api("GET", `/api/bindings/${vh(async)}/e/mplogin/q/audit`)).body;
    expect(audit.map((b: { routing_key: string }) => b.routing_key)).toEqual(["mplogin.async"]);
    expect((await runCli(["plan", "-f", file, "--detailed-exitcode"])).code).toBe(0);
  });

  it("a saved plan's exchange replace cut just after its delete: the retry carries on with the plan, puts back the user's binding and counts the replace", async () => {
    const { async, proxy, file: viaProxy } = await throughProxy();
    const file = viaProxy();
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    await celeryExchange(async);
    const out = join(mkdtempSync(join(tmpdir(), "topo-test-")), "plan.json");
    expect((await runCli(["plan", "-f", file, "-o", out])).code).toBe(0);
    proxy.cutAfter(40, 20, 1);
    const r = await runCli(["apply", out, "--allow-destructive"]);
    expect(r.stderr).toMatch(/connection lost|reconnecting/);
    expect(r.stderr).not.toMatch(/stale|no longer as the plan left it/);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Apply complete: \d+ changes? made/);
    expect(r.stdout).not.toMatch(/Apply complete: 0 changes/);
    expect((await api("GET", `/api/exchanges/${vh(async)}/mplogin`)).body).toMatchObject({ type: "topic" });
    const audit = (await api("GET", `/api/bindings/${vh(async)}/e/mplogin/q/audit`)).body;
    expect(audit.map((b: { routing_key: string }) => b.routing_key)).toEqual(["mplogin.async"]);
    expect((await runCli(["plan", "-f", file, "--detailed-exitcode"])).code).toBe(0);
  });

  it("a connection lost just after a queue's delete in a replace by delete and re-create: the retry puts back the user's binding to it", async () => {
    const { async, proxy, file } = await throughProxy();
    expect((await runCli(["apply", "-f", file()])).code).toBe(0);
    // A user's exchange feeding the service's queue: only the replace's plan knows that binding.
    await withChannel(async, async (ch) => {
      await ch.assertExchange("feed", "topic", { durable: true });
      await ch.bindQueue("mplogin.async", "feed", "audit.#");
    });
    // queue.delete (class 50, method 40): the broker deletes the queue, with the user's binding.
    proxy.cutAfter(50, 40);
    const r = await runCli(["apply", "-f", file({ "x-max-length": 1000 }), "--allow-destructive", "--allow-data-loss"]);
    expect(r.stderr).toMatch(/connection lost|reconnecting/);
    expect(r.code).toBe(0);
    expect((await getQueue(async, "mplogin.async")).arguments).toEqual({ "x-max-length": 1000 });
    const feed = (await api("GET", `/api/bindings/${vh(async)}/e/feed/q/mplogin.async`)).body;
    expect(feed.map((b: { routing_key: string }) => b.routing_key)).toEqual(["audit.#"]);
  });

  it("an exchange replace that would lose an auto-delete exchange's last binding and an exclusive tap's is refused before anything is written, and made with --allow-unmanaged-deletes", async () => {
    const { sync, async, before } = files();
    expect((await runCli(["apply", "-f", before])).code).toBe(0);
    await celeryExchange(async);
    // A user's auto-delete exchange whose only binding is to the service's, and a live tap.
    await withChannel(async, async (ch) => {
      await ch.assertExchange("feeder", "topic", { durable: true, autoDelete: true });
      await ch.bindExchange("mplogin", "feeder", "#");
    });
    const conn = await amqplib.connect(amqpUrl(async));
    onTestFinished(async () => void (await conn.close().catch(() => undefined)));
    const ch = await conn.createChannel();
    const tap = (await ch.assertQueue("", { exclusive: true })).queue;
    await ch.bindQueue(tap, "mplogin", "mplogin.async");
    const had = await edges(async);

    const plan = await runCli(["plan", "-f", before]);
    expect(plan.stdout).toContain(`! cannot re-create 2 bindings: feeder -> exchange mplogin [#] (exchange feeder is auto-delete, and this is its last binding: RabbitMQ deletes it with the binding), mplogin -> ${tap} [mplogin.async] (queue ${tap} is exclusive`);
    const refused = await runCli(["apply", "-f", before, "--allow-destructive", "--allow-data-loss"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/refusing to replace 1 object whose 2 bindings topo cannot put back/);
    expect(refused.stderr).toContain("feeder -> exchange mplogin [#]: exchange feeder is auto-delete");
    expect((await api("GET", `/api/exchanges/${vh(async)}/mplogin`)).body).toMatchObject({ type: "direct" });
    expect(await edges(async)).toEqual(had);

    const r = await runCli(["apply", "-f", before, "--allow-destructive", "--allow-unmanaged-deletes"]);
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    expect(r.stderr + r.stdout).toMatch(/binding feeder -> exchange mplogin \[#\] of exchange mplogin not put back, as plan said \(--allow-unmanaged-deletes\)/);
    expect(r.stderr + r.stdout).toContain(`binding mplogin -> ${tap} [mplogin.async] of exchange mplogin not put back, as plan said`);
    expect((await api("GET", `/api/exchanges/${vh(async)}/mplogin`)).body).toMatchObject({ type: "topic" });
    expect(await edges(async)).toEqual(["mplogin>audit:mplogin.async", "mplogin>mplogin.async:mplogin.async.#"]);
    expect((await runCli(["plan", "-f", before, "--detailed-exitcode"])).code).toBe(0);
    void sync;
  });

  it("a bind the broker refuses after the delete costs no other binding: every one that can be is put back, and the refusal is named", async () => {
    const { sync, async, before } = files();
    expect((await runCli(["apply", "-f", before])).code).toBe(0);
    await celeryExchange(async);
    await withChannel(async, async (ch) => {
      await ch.assertExchange("feeder", "topic", { durable: true });
      await ch.bindExchange("mplogin", "feeder", "#");
    });
    // The broker refuses the bind from feeder (read on the source), and nothing else.
    await refuseRead(async, "feeder");
    const file = writeTopology({ sync, async, services: [{ name: "mplogin", sync: false }], clusterExtra: { async: { management: await operator(async) } } });

    const r = await runCli(["apply", "-f", file, "--allow-destructive"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/binding feeder -> exchange mplogin \[#\] of exchange mplogin not put back: 403 ACCESS_REFUSED/);
    expect(r.stderr).toMatch(/1 of 1 change was confirmed made before the failure/);
    expect(r.stderr).toMatch(/make them again by hand/);
    expect((await api("GET", `/api/exchanges/${vh(async)}/mplogin`)).body).toMatchObject({ type: "topic" });
    expect(await edges(async)).toEqual(["mplogin>audit:mplogin.async", "mplogin>mplogin.async:mplogin.async.#"]);
  });

  it("a queue replaced by a plain delete and re-create is counted made, with every binding that can be put back", async () => {
    const { sync, async, before } = files();
    expect((await runCli(["apply", "-f", before])).code).toBe(0);
    await withChannel(async, async (ch) => {
      await ch.assertExchange("userx", "direct", { durable: true });
      await ch.bindQueue("mplogin.async", "userx", "k");
    });
    await refuseRead(async, "userx");
    const file = writeTopology({ sync, async, services: [{ name: "mplogin", sync: false, async: { arguments: { "x-max-length": 1000000 } } }], clusterExtra: { async: { management: await operator(async) } } });

    const r = await runCli(["apply", "-f", file, "--allow-destructive", "--allow-data-loss"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/binding userx -> mplogin\.async \[k\] of queue mplogin\.async not put back: 403 ACCESS_REFUSED/);
    expect(r.stderr).toMatch(/1 of 1 change was confirmed made before the failure/);
    expect((await getQueue(async, "mplogin.async")).arguments).toEqual({ "x-max-length": 1000000 });
    expect(await edges(async)).toEqual(["mplogin>mplogin.async:mplogin.async.#"]);
  });

  it("a queue replace keeps an auto-delete exchange's only binding without loss, and refuses to lose it with --allow-data-loss alone", async () => {
    const { async, before, after } = files();
    expect((await runCli(["apply", "-f", before])).code).toBe(0);
    await withChannel(async, async (ch) => {
      await ch.assertExchange("ad_x", "direct", { durable: true, autoDelete: true });
      await ch.bindQueue("mplogin.async", "ad_x", "k");
    });
    const had = await edges(async);

    const refused = await runCli(["apply", "-f", after, "--allow-destructive", "--allow-data-loss"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/refusing to replace 1 object whose 1 binding topo cannot put back:[\s\S]*ad_x -> mplogin\.async \[k\]: exchange ad_x is auto-delete/);
    expect(await edges(async)).toEqual(had);

    const r = await runCli(["apply", "-f", after, "--allow-destructive"]);
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    expect((await getQueue(async, "mplogin.async")).arguments).toEqual({ "x-max-length": 1000000 });
    expect((await api("GET", `/api/exchanges/${vh(async)}/ad_x`)).status).toBe(200);
    expect(await edges(async)).toEqual(had);
  });
});
