// A replace keeps every message the queue held (ready and unacknowledged) and every message
// published during it, or refuses before writing anything and says why. Each class of loss from
// issue #9 against the real broker: counts and ids are read from the broker, and a refused apply
// must leave the broker as it found it.

import amqplib from "amqplib";
import { execFile } from "node:child_process";
import { createServer, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { AmqpSession, closeChannel } from "../../src/broker/amqp.js";
import { BATCH_BYTES, replaceQueueLossless } from "../../src/broker/replace.js";
import { ManagementClient } from "../../src/broker/http.js";
import { heldNow } from "../../src/broker/read.js";
import type { Binding, Queue } from "../../src/model.js";
import { amqpUrl, api, broker, CLI, clusterTarget, createVhost, deleteVhost, getQueue, listBindings, messageCount, runCli, uniqueName, vh, withChannel, writeTopology, type CliResult, quorumReportFor } from "../helpers/broker.js";
import type { BrokerError } from "../../src/errors.js";
import { stoppedQuorumMove, straightAfterMove } from "../helpers/quorum-move.js";
import { amqpProxy, managementProxy } from "../helpers/proxy.js";
import { PY_AMQP, PYTHON } from "../helpers/celery.js";

const vhosts: string[] = [];
afterEach(async () => {
  await Promise.all(vhosts.splice(0).map(deleteVhost));
});

const Q = "mplogin.async";
const HOLD = "topo.hold.mplogin.async";
type Args = Record<string, unknown>;

/** A topology with one async queue, before and after a change of its arguments. */
/** `after(args, management)`: the async cluster's management API at that URL (a proxy), not the broker's. */
function files(before: Args, after: Args): { async: string; before: string; after: (args: Args, management?: string) => string } {
  const sync = uniqueName("sync");
  const async = uniqueName("async");
  vhosts.push(sync, async);
  const file = (args: Args, management?: string) =>
    writeTopology({ sync, async, services: [{ name: "mplogin", sync: false, ...(Object.keys(args).length ? { async: { arguments: args } } : {}) }], ...(management ? { clusterExtra: { async: { management } } } : {}) });
  const b = file(before);
  file(after);
  return { async, before: b, after: file };
}

/**
 * The file's mplogin.async dead-lettering to exchange dlx, applied, with queue "dead" bound to dlx
 * by `key` (and `more` bindings, queue -> key).
 */
async function appliedWithDeadLetters(type: "fanout" | "topic", key: string, more: Record<string, string> = {}): Promise<ReturnType<typeof files>> {
  const f = files({ "x-dead-letter-exchange": "dlx" }, {});
  expect((await runCli(["apply", "-f", f.before])).code).toBe(0);
  await withChannel(f.async, async (ch) => {
    await ch.assertExchange("dlx", type, { durable: true });
    for (const [queue, k] of Object.entries({ dead: key, ...more })) {
      await ch.assertQueue(queue, { durable: true });
      await ch.bindQueue(queue, "dlx", k);
    }
  });
  return f;
}

/** Publish messages whose body and message-id are the id, padded to `size` bytes (each with `expiration`, if given). */
async function publishIds(v: string, ids: string[], size = 0, expiration?: string): Promise<void> {
  const conn = await amqplib.connect(amqpUrl(v));
  try {
    const ch = await conn.createConfirmChannel();
    for (const id of ids) ch.publish("mplogin", "mplogin.async.x", Buffer.from(id.padEnd(size, ".")), { persistent: true, messageId: id, ...(expiration !== undefined ? { expiration } : {}) });
    await ch.waitForConfirms();
  } finally {
    await conn.close().catch(() => undefined);
  }
}

/** Take every ready message out of a queue (missing queue: none) and return their ids; `keep`: leave them there. */
async function drainIds(v: string, queue: string, keep = false): Promise<string[]> {
  return withChannel(v, async (ch) => {
    const ids: string[] = [];
    try {
      await ch.checkQueue(queue);
    } catch {
      return ids;
    }
    for (let m = await ch.get(queue, { noAck: !keep }); m; m = await ch.get(queue, { noAck: !keep })) ids.push(String(m.properties.messageId));
    if (keep) ch.nackAll(true);
    return ids;
  });
}

/** Publish messages with ids that expire one second after they are enqueued (each move counts again). */
async function publishExpiring(v: string, ids: string[]): Promise<void> {
  await withChannel(v, async (ch) => {
    for (const id of ids) ch.publish("mplogin", "mplogin.async.x", Buffer.from(id), { persistent: true, messageId: id, expiration: "1000" });
    await ch.checkQueue(Q);
  });
}

/** `topo apply --allow-destructive` of `file`, which must succeed; what it printed. */
async function replaced(file: string): Promise<CliResult> {
  const r = await runCli(["apply", "-f", file, "--allow-destructive"]);
  expect(r.stderr).not.toMatch(/Error/);
  expect(r.code).toBe(0);
  return r;
}

/** Each id exactly once. */
function expectExactlyOnce(got: string[], expected: string[]): void {
  const dup = got.filter((id, i) => got.indexOf(id) !== i);
  expect(dup, "message ids found twice").toEqual([]);
  expect([...got].sort()).toEqual([...expected].sort());
}

/** What a refused command must not change: exchanges, queues with their properties and counts, bindings. */
async function brokerState(v: string) {
  const queues = ((await api("GET", `/api/queues/${vh(v)}?disable_stats=true&columns=name,type,durable,auto_delete,arguments`)).body as any[])
    .map((q) => ({ name: q.name, type: q.type, durable: q.durable, autoDelete: q.auto_delete, arguments: q.arguments }))
    .sort((a, b) => a.name.localeCompare(b.name));
  const counts = await withChannel(v, async (ch) => {
    const out: Record<string, { messages: number; consumers: number }> = {};
    for (const q of queues) {
      const c = await ch.checkQueue(q.name);
      out[q.name] = { messages: c.messageCount, consumers: c.consumerCount };
    }
    return out;
  });
  const exchanges = ((await api("GET", `/api/exchanges/${vh(v)}?disable_stats=true&columns=name,type,durable`)).body as any[]).map((e) => `${e.name}:${e.type}:${e.durable}`).sort();
  const bindings = (await listBindings(v)).map((b) => `${b.source}>${b.destination}:${b.routing_key}`).sort();
  return { queues, counts, exchanges, bindings };
}

/** Wait until the management API's statistics (emitted every 5 s) show what the queue holds. */
async function statsShow(v: string, queue: string, ok: (q: { messages?: number; message_bytes?: number; messages_unacknowledged?: number; consumers?: number }) => boolean): Promise<void> {
  for (let i = 0; i < 60; i++) {
    const r = await api("GET", `/api/queues/${vh(v)}/${encodeURIComponent(queue)}?columns=messages,message_bytes,messages_unacknowledged,consumers`);
    if (r.status === 200 && ok(r.body)) return;
    await new Promise((res) => setTimeout(res, 500));
  }
  throw new Error(`the statistics of ${queue} never showed the expected count`);
}

/** A worker that takes up to `prefetch` messages and never acknowledges them (Celery's reserved tasks). */
async function stuckConsumer(v: string, prefetch: number) {
  const conn = await amqplib.connect(amqpUrl(v));
  const ch = await conn.createChannel();
  await ch.prefetch(prefetch);
  const held: string[] = [];
  await ch.consume(Q, (m) => {
    if (m) held.push(String(m.properties.messageId));
  });
  return { held, close: () => conn.close().catch(() => undefined) };
}

/** Publishes ids with confirms until `max` are confirmed or it is stopped. */
function startPublisher(v: string, prefix: string, max: number, size = 0) {
  const confirmed: string[] = [];
  let stop = false;
  const done = (async () => {
    const conn = await amqplib.connect(amqpUrl(v));
    const ch = await conn.createConfirmChannel();
    let n = 0;
    while (!stop && n < max) {
      const batch: string[] = [];
      for (let i = 0; i < 5 && n < max; i++) batch.push(`${prefix}-${n++}`);
      const acks = await Promise.all(
        batch.map((id) => new Promise<boolean>((res) => ch.publish("mplogin", "mplogin.async.live", Buffer.from(id.padEnd(size, ".")), { persistent: true, messageId: id }, (e) => res(!e)))),
      );
      batch.forEach((id, i) => acks[i] && confirmed.push(id));
      await new Promise((r) => setTimeout(r, 10));
    }
    await conn.close();
  })();
  return {
    confirmed,
    stop: async () => {
      stop = true;
      await done;
    },
  };
}

const ids = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

/** A queue applied as the file has it before, holding `n` messages "old-0".. (of `size` bytes). */
async function appliedHolding(n: number, size = 0, expiration?: string) {
  const f = files({}, {});
  expect((await runCli(["apply", "-f", f.before])).code).toBe(0);
  const held = ids("old", n);
  await publishIds(f.async, held, size, expiration);
  return { f, held };
}
/**
 * A replace left half-way because a client held 4 of 10 messages: 6 wait in the holding queue.
 * The client lets go, its 4 are back in the old queue, and apply again finishes the replace with
 * all 10, each once.
 */
async function finishAfterRelease(f: ReturnType<typeof files>, held: string[], release: () => Promise<unknown>, args: Record<string, unknown>) {
  expect(await messageCount(f.async, HOLD)).toBe(6);
  await release();
  expect(await messageCount(f.async, Q)).toBe(4);
  await finishesWithAll(f, held, args);
}
/** Apply of the file with `args` finishes the replace: the queue holds every one of `held`, once. */
async function finishesWithAll(f: ReturnType<typeof files>, held: string[], args: Record<string, unknown>) {
  const r = await runCli(["apply", "-f", f.after(args), "--allow-destructive"]);
  expect(r.stderr).not.toMatch(/Error/);
  expect(r.code).toBe(0);
  expectExactlyOnce(await drainIds(f.async, Q), held);
}
/**
 * The dead letters waiting in quorum queue Q for their target: its messages neither ready nor
 * unacknowledged. Not the statistics' messages_dlx, which RabbitMQ 3.10 reports as 0 when the
 * queue does not answer in time (a busy CI machine).
 */
async function deadLettersWaiting(vhost: string): Promise<number | undefined> {
  const q = (await api("GET", `/api/queues/${vh(vhost)}/${Q}?columns=messages,messages_ready,messages_unacknowledged`)).body;
  return typeof q?.messages === "number" ? q.messages - q.messages_ready - q.messages_unacknowledged : undefined;
}

/**
 * `n` messages published to quorum queue Q and rejected without requeue, dead-lettered at least once
 * to exchange mpdlq, which nothing is bound to: each waits in Q for its target, neither ready nor
 * unacknowledged. Returns once the broker counts them (within seconds; later on a busy machine).
 */
async function deadLetteredInto(vhost: string, n: number): Promise<void> {
  await withChannel(vhost, (ch) => ch.assertExchange("mpdlq", "topic", { durable: true }));
  await publishIds(vhost, ids("dead", n));
  await withChannel(vhost, async (ch) => {
    for (let m = await ch.get(Q); m; m = await ch.get(Q)) ch.nack(m, false, false);
    await ch.checkQueue(Q);
  });
  for (let i = 0; i < 240 && (await deadLettersWaiting(vhost)) !== n; i++) await new Promise((r) => setTimeout(r, 500));
  expect(await deadLettersWaiting(vhost)).toBe(n);
}

/** At-least-once dead-lettering to exchange mpdlq, as the quorum tests of waiting dead letters declare it. */
const DEAD_LETTERS = { "x-dead-letter-exchange": "mpdlq", "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish" };

/** A sync and an async vhost of this test's own, removed after it. */
function vhostPair(): { sync: string; async: string } {
  const sync = uniqueName("sync");
  const async = uniqueName("async");
  vhosts.push(sync, async);
  return { sync, async };
}

/**
 * A topology of service mpkeep, and, while `keep`, of mplogin with a quorum async queue of `args`;
 * the async cluster reached through `management` or `url` where given (a proxy).
 */
function quorumFile(sync: string, async: string, o: { keep: boolean; args: Args; management?: string; url?: string }): string {
  const through = { ...(o.management ? { management: o.management } : {}), ...(o.url ? { url: o.url } : {}) };
  return writeTopology({
    sync,
    async,
    services: [...(o.keep ? [{ name: "mplogin", sync: false, async: { type: "quorum", arguments: o.args } }] : []), { name: "mpkeep", sync: false }],
    ...(Object.keys(through).length ? { clusterExtra: { async: through } } : {}),
  });
}

const refusedBeforeWriting = (r: CliResult) => {
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/refusing to replace 1 queue that could lose messages/);
  expect(r.stderr).toMatch(/nothing was changed/);
  expect(r.stderr).not.toMatch(/applying \d+ change/);
};

/**
 * A proxy to the test broker's management API that answers the statistics of queue Q of vhost `v`
 * itself, with `answer(n)` for the n-th request (undefined: the broker's), as a busy broker's lag.
 */
async function statsProxy(v: string, answer: (n: number) => string | undefined): Promise<{ url: string; close: () => void }> {
  const mgmt = new URL(broker().mgmtBase);
  let n = 0;
  const proxy = createServer((req, res) => {
    const own = req.method === "GET" && req.url?.startsWith(`/api/queues/${vh(v)}/${encodeURIComponent(Q)}?`) ? answer(++n) : undefined;
    if (own !== undefined) {
      res.writeHead(200, { "content-type": "application/json" }).end(own);
      return;
    }
    const up = httpRequest({ host: mgmt.hostname, port: mgmt.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    req.pipe(up);
  });
  await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`, close: () => proxy.close() };
}

/** A client that fetched `n` messages of `queue` (Q) of vhost `v` with basic.get and holds them unacknowledged. */
async function fetchedBy(v: string, n: number, queue = Q): Promise<amqplib.ChannelModel> {
  const conn = await amqplib.connect(amqpUrl(v));
  const poller = await conn.createChannel();
  for (let i = 0; i < n; i++) expect(await poller.get(queue, { noAck: false })).toBeTruthy();
  return conn;
}

/** Whether a GET of `path` is the listing of the queue totals of vhost `v` (what topo counts held messages by). */
const totalsOf = (v: string, path: string) => path.startsWith(`/api/queues/${vh(v)}?`) && path.includes("enable_queue_totals=true");

describe("replace refuses what would lose messages", () => {
  it("x-max-length below what the queue holds: plan shows it, apply refuses, and the broker is as it was", async () => {
    const f = files({ "x-max-length": 1000 }, { "x-max-length": 10 });
    expect((await runCli(["apply", "-f", f.before])).code).toBe(0);
    const held = ids("old", 100);
    await publishIds(f.async, held);
    await statsShow(f.async, Q, (q) => q.messages === 100);

    const plan = await runCli(["plan", "-f", f.after({ "x-max-length": 10 })]);
    expect(plan.stdout).toContain(
      "  -/+ replace queue mplogin.async [holds 100 messages]\n      because arguments.x-max-length: 1000 -> 10\n      ! messages at risk: x-max-length 10 is below the 100 messages it holds: drop-head would discard the oldest 90",
    );
    const json = JSON.parse((await runCli(["plan", "-f", f.after({ "x-max-length": 10 }), "--json"])).stdout);
    expect(json.clusters[1].actions[0].risks).toEqual([expect.objectContaining({ rule: "x-max-length" })]);

    const before = await brokerState(f.async);
    const r = await runCli(["apply", "-f", f.after({ "x-max-length": 10 }), "--allow-destructive"]);
    refusedBeforeWriting(r);
    expect(r.stderr).toContain("cluster async: queue mplogin.async (holds 100 messages):\n    x-max-length 10 is below the 100 messages it holds: drop-head would discard the oldest 90");
    expect(r.stderr).toContain("hint: raise x-max-length to at least 100, or let the workers drain the queue first (below 10)");
    expect(r.stderr).toContain("hint: or pass --allow-data-loss");
    expect(await brokerState(f.async)).toEqual(before);

    // A limit that holds them: every message kept, and the count said is the broker's (not twice it).
    const ok = await runCli(["apply", "-f", f.after({ "x-max-length": 100 }), "--allow-destructive"]);
    expect(ok.code).toBe(0);
    expect(ok.stderr).toContain("queue mplogin.async replaced; 100 messages moved back through topo.hold.mplogin.async; the broker counts 100 messages in it now");
    expect((await getQueue(f.async, Q)).arguments).toEqual({ "x-max-length": 100 });
    expectExactlyOnce(await drainIds(f.async, Q), held);
  });

  it("a quorum queue's at-least-once dead letters waiting for their target: refused, since no move takes them and the delete would drop them", async () => {
    // Dead-lettered at least once to an exchange nothing is bound to: each waits in the queue
    // (messages_dlx), neither ready nor unacknowledged. A replace said it moved 0 back and that the
    // broker matched the file, and they were gone (the if-empty delete does not count them).
    const sync = uniqueName("sync");
    const async = uniqueName("async");
    vhosts.push(sync, async);
    const dl = { "x-dead-letter-exchange": "mpdlq", "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish" };
    const file = (limit: number) => writeTopology({ sync, async, services: [{ name: "mplogin", sync: false, async: { type: "quorum", arguments: { ...dl, "x-delivery-limit": limit } } }] });
    expect((await runCli(["apply", "-f", file(5)])).code).toBe(0);
    await deadLetteredInto(async, 4);

    const before = await brokerState(async);
    const r = await runCli(["apply", "-f", file(6), "--allow-destructive"]);
    refusedBeforeWriting(r);
    expect(r.stderr).toContain("4 messages it dead-lettered at least once wait in it for the dead-letter target to take them (the statistics' messages_dlx): a replace cannot move them, and deleting the old queue drops them");
    expect(await brokerState(async)).toEqual(before);
    expect(await deadLettersWaiting(async)).toBe(4);
  }, 180_000);

  it("a quorum queue's at-least-once dead letters waiting for their target count as what a delete drops: plan shows them, apply refuses without --allow-data-loss", async () => {
    const sync = uniqueName("sync");
    const async = uniqueName("async");
    vhosts.push(sync, async);
    const dl = { "x-dead-letter-exchange": "mpdlq", "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish" };
    const both = writeTopology({ sync, async, services: [{ name: "mplogin", sync: false, async: { type: "quorum", arguments: dl } }, { name: "mpkeep", sync: false }] });
    expect((await runCli(["apply", "-f", both])).code).toBe(0);
    await deadLetteredInto(async, 3);
    // The service goes from the file: its queue, ready and unacknowledged counts 0, is deleted.
    const without = writeTopology({ sync, async, services: [{ name: "mpkeep", sync: false }] });
    const plan = await runCli(["plan", "-f", without]);
    expect(plan.stdout).toMatch(new RegExp(`- delete queue ${Q.replace(/\./g, "\\.")} \\[holds 3 messages\\]`));
    const before = await brokerState(async);
    const r = await runCli(["apply", "-f", without, "--allow-destructive"]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`refusing to drop messages: 1 queue[^\\n]*\\n[^\\n]*${Q.replace(/\./g, "\\.")}[^\\n]*3 messages`));
    expect(r.stderr).toMatch(/--allow-data-loss/);
    expect(r.stderr).not.toMatch(/applying \d+ change/);
    expect(await brokerState(async)).toEqual(before);
    expect(await deadLettersWaiting(async)).toBe(3);
  }, 180_000);

  // Found by trying: with --allow-data-loss, a replace dropped 5 such dead letters and logged
  // nothing, and a delete logged "2 ready messages dropped" of the 6 it dropped.
  it("--allow-data-loss counts a quorum queue's dead letters waiting for their target among what a delete or a replace by delete and re-create dropped", async () => {
    const { sync, async } = vhostPair();
    const file = (o: { keep: boolean; limit?: number }) => quorumFile(sync, async, { ...o, args: { ...DEAD_LETTERS, ...(o.limit ? { "x-delivery-limit": o.limit } : {}) } });
    expect((await runCli(["apply", "-f", file({ keep: true, limit: 5 })])).code).toBe(0);
    await deadLetteredInto(async, 3);
    await publishIds(async, ids("ready", 2));
    const replaced = await runCli(["apply", "-f", file({ keep: true, limit: 6 }), "--allow-destructive", "--allow-data-loss"]);
    expect(replaced.code, replaced.stderr).toBe(0);
    expect(replaced.stderr).toContain(`queue ${Q} deleted to be re-created; 2 ready messages dropped, and 3 messages neither ready nor unacknowledged (dead letters waiting for their target, or retries RabbitMQ 4.3 delays) when apply counted them (--allow-data-loss)`);
    expect(await messageCount(async, Q)).toBe(0);

    await deadLetteredInto(async, 4);
    const deleted = await runCli(["apply", "-f", file({ keep: false }), "--allow-destructive", "--allow-data-loss"]);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(deleted.stderr).toContain(`queue ${Q} deleted; 0 ready messages dropped, and 4 messages neither ready nor unacknowledged (dead letters waiting for their target, or retries RabbitMQ 4.3 delays) when apply counted them (--allow-data-loss)`);
  }, 180_000);

  // Found by trying: a quorum queue takes its policy's overflow over its own x-overflow, and topo
  // took the argument's: finishing a replace into a quorum queue of x-overflow reject-publish
  // under a user's policy overflow drop-head moved 8 messages back without counting the bytes it
  // held already, drop-head dropped 6, and apply said 8 were moved back.
  it("a quorum queue whose policy's overflow drop-head overrides its own reject-publish: a move into it counts the bytes it holds, and stops rather than let drop-head take what it moves", async () => {
    const { sync, async } = vhostPair();
    const file = quorumFile(sync, async, { keep: true, args: { "x-max-length-bytes": 1000, "x-overflow": "reject-publish" } });
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    expect((await api("PUT", `/api/policies/${vh(async)}/userdrop`, { pattern: "^mplogin\\.async$", definition: { overflow: "drop-head" }, "apply-to": "queues" })).status).toBeLessThan(300);
    // An interrupted replace, its queue new already: 8 messages of 100 bytes in it, 8 waiting in its quorum holding queue.
    const conn = await amqplib.connect(amqpUrl(async));
    try {
      const ch = await conn.createConfirmChannel();
      await ch.assertQueue(HOLD, { durable: true, arguments: { "x-queue-type": "quorum" } });
      for (const id of ids("in", 8)) ch.sendToQueue(Q, Buffer.from(id.padEnd(100, ".")), { persistent: true, messageId: id });
      for (const id of ids("held", 8)) ch.sendToQueue(HOLD, Buffer.from(id.padEnd(100, ".")), { persistent: true, messageId: id });
      await ch.waitForConfirms();
    } finally {
      await conn.close();
    }
    const r = await runCli(["apply", "-f", file]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`${Q} holds 8 messages topo did not put there or could not read, whose bytes it cannot count against ${Q}'s x-max-length-bytes 1000, which drops its oldest messages (the moved ones) past it`);
    expect((await drainIds(async, Q)).length + (await drainIds(async, HOLD)).length).toBe(16);
  }, 120_000);

  // CI on a busy broker: the statistics counted the 3 dead letters, then 0 five seconds later, and
  // plan showed the delete as holding nothing. RabbitMQ 3.10 asks messages_dlx of the queue apart
  // and reports 0 when the queue does not answer in time; its `messages` counts them with the rest.
  // Here a proxy answers every read of the queue's statistics with messages_dlx 0.
  it("a quorum queue's dead letters waiting for their target are counted when the statistics' messages_dlx says 0, as a busy RabbitMQ 3.10 reports it: plan shows them, and neither a delete nor a replace drops them", async () => {
    const { sync, async } = vhostPair();
    const file = (o: { keep: boolean; limit?: number; management?: string }) => quorumFile(sync, async, { ...o, args: { ...DEAD_LETTERS, ...(o.limit ? { "x-delivery-limit": o.limit } : {}) } });
    expect((await runCli(["apply", "-f", file({ keep: true, limit: 5 })])).code).toBe(0);
    await deadLetteredInto(async, 3);
    const own = `/api/queues/${vh(async)}/${Q}?`;
    const proxy = await managementProxy({
      change: (path, body) => (path.startsWith(own) && body && typeof body === "object" && "messages_dlx" in body ? { ...body, messages_dlx: 0 } : undefined),
    });
    try {
      const plan = await runCli(["plan", "-f", file({ keep: false, management: proxy.url })]);
      expect(plan.code, plan.stderr).toBe(0);
      expect(plan.stdout).toMatch(new RegExp(`- delete queue ${Q.replace(/\./g, "\\.")} \\[holds 3 messages\\]`));
      const before = await brokerState(async);
      const gone = await runCli(["apply", "-f", file({ keep: false, management: proxy.url }), "--allow-destructive"]);
      expect(gone.code, gone.stderr).toBe(1);
      expect(gone.stderr).toMatch(new RegExp(`refusing to drop messages: 1 queue[^\\n]*\\n[^\\n]*${Q.replace(/\./g, "\\.")}[^\\n]*3 messages`));
      const replaced = await runCli(["apply", "-f", file({ keep: true, limit: 6, management: proxy.url }), "--allow-destructive"]);
      refusedBeforeWriting(replaced);
      expect(replaced.stderr).toContain("3 messages it dead-lettered at least once wait in it for the dead-letter target to take them");
      expect(await brokerState(async)).toEqual(before);
    } finally {
      proxy.close();
    }
    expect(await deadLettersWaiting(async)).toBe(3);
  }, 180_000);

  // A quorum queue whose leader has not reported yet has no statistics and no totals: what it
  // holds in dead letters waiting for their target has no count. Apply waits for them within its
  // bound (15 s), then refuses the delete as uncounted, rather than take none for 0. A proxy
  // answers every read of the queue's own statistics as the broker does before that report.
  it("a quorum queue with no statistics within apply's bound is not deleted: its waiting dead letters have no count", async () => {
    const { sync, async } = vhostPair();
    const file = (keep: boolean, management?: string) => quorumFile(sync, async, { keep, args: DEAD_LETTERS, management });
    expect((await runCli(["apply", "-f", file(true)])).code).toBe(0);
    await deadLetteredInto(async, 2);
    const proxy = await statsProxy(async, () => JSON.stringify({ name: Q }));
    try {
      const before = await brokerState(async);
      const r = await runCli(["apply", "-f", file(false, `http://${broker().user}:${broker().password}@${new URL(proxy.url).host}`), "--allow-destructive", "--json"]);
      expect(r.code, r.stderr).toBe(1);
      const err = JSON.parse(r.stdout).error;
      expect(err.message).toContain(`refusing to drop messages: 1 queue to delete has no count:\n  cluster async: - delete queue ${Q} [holds 0 messages and an unknown number of dead letters waiting for their target]`);
      expect(await brokerState(async)).toEqual(before);
    } finally {
      proxy.close();
    }
    expect(await deadLettersWaiting(async)).toBe(2);
  }, 180_000);

  // RabbitMQ answers a passive declare of a quorum queue with 0 messages and 0 consumers when its
  // leader does not answer within 250 ms, or has none (rabbit_quorum_queue:stat/1 in 3.10.8, 4.0.5
  // and 4.3.5 maps the timeout or error to {ok, 0, 0}): on a busy broker a queue holding messages
  // looks empty and idle. Here an AMQP proxy answers every passive declare of the queue so.
  it("a quorum queue whose passive declare says 0 messages, as a busy broker answers when the leader did not answer in time: neither a delete nor a replace drops what it holds", async () => {
    const { sync, async } = vhostPair();
    const proxy = await amqpProxy({ declareOk: (queue) => (queue === Q ? { messages: 0, consumers: 0 } : undefined) });
    try {
      const through = new URL(amqpUrl(async));
      through.hostname = "127.0.0.1";
      through.port = String(proxy.port);
      const file = (o: { keep: boolean; limit?: number; proxied: boolean }) =>
        quorumFile(sync, async, { keep: o.keep, args: o.limit ? { "x-delivery-limit": o.limit } : {}, url: o.proxied ? through.toString() : undefined });
      expect((await runCli(["apply", "-f", file({ keep: true, limit: 5, proxied: false })])).code).toBe(0);
      const held = ids("held", 3);
      await publishIds(async, held);
      // The queue's own report (its tick, through the statistics, or the totals where the broker keeps none) counts them.
      const reported = async () => {
        const path = `/api/queues/${vh(async)}/${Q}`;
        const stats = (await api("GET", `${path}?columns=messages`)).body as { messages?: number };
        return stats.messages ?? ((await api("GET", `${path}?disable_stats=true&enable_queue_totals=true&columns=messages`)).body as { messages?: number }).messages;
      };
      for (let i = 0; i < 60 && (await reported()) !== 3; i++) await new Promise((r) => setTimeout(r, 500));
      expect(await reported()).toBe(3);
      const before = await brokerState(async);

      const plan = await runCli(["plan", "-f", file({ keep: false, proxied: true })]);
      expect(plan.code, plan.stderr).toBe(0);
      expect(plan.stdout).toMatch(new RegExp(`- delete queue ${Q.replace(/\./g, "\\.")} \\[holds 3 messages\\]`));
      const gone = await runCli(["apply", "-f", file({ keep: false, proxied: true }), "--allow-destructive"]);
      expect(gone.code, gone.stderr).toBe(1);
      expect(gone.stderr).toMatch(new RegExp(`refusing to drop messages: 1 queue[^\\n]*\\n[^\\n]*${Q.replace(/\./g, "\\.")}[^\\n]*3 messages`));
      expect(await brokerState(async)).toEqual(before);

      // A replace moves what the queue holds with basic.get, which the proxy leaves alone: kept, whatever it says.
      await runCli(["apply", "-f", file({ keep: true, limit: 6, proxied: true }), "--allow-destructive"]);
      expectExactlyOnce([...(await drainIds(async, Q)), ...(await drainIds(async, HOLD))], held);
    } finally {
      await proxy.close();
    }
  }, 180_000);

  it("x-overflow reject-publish below what the queue holds: refused on the broker's live count, nothing in two places", async () => {
    const { f, held } = await appliedHolding(15);
    const before = await brokerState(f.async);
    // No waiting for statistics: apply counts with a passive declare.
    const r = await runCli(["apply", "-f", f.after({ "x-max-length": 5, "x-overflow": "reject-publish" }), "--allow-destructive"]);
    refusedBeforeWriting(r);
    expect(r.stderr).toContain("x-max-length 5 is below the 15 messages it holds: with x-overflow reject-publish the queue would refuse 10 of them");
    expect(await brokerState(f.async)).toEqual(before);
    expect(await getQueue(f.async, HOLD)).toBeUndefined();
    expectExactlyOnce(await drainIds(f.async, Q), held);
  });

  it("x-message-ttl new while the queue holds messages (0 included): refused until the workers drained it", async () => {
    const f = files({}, {});
    expect((await runCli(["apply", "-f", f.before])).code).toBe(0);
    await publishIds(f.async, ids("old", 20));
    const before = await brokerState(f.async);
    for (const [ttl, says] of [
      [0, "x-message-ttl 0 is new: the 20 messages it holds would expire as they are moved back, with no consumer to take them"],
      [60000, "x-message-ttl 60000 is new: the 20 messages it holds expire unless consumed within 60 s of the replace"],
    ] as const) {
      const r = await runCli(["apply", "-f", f.after({ "x-message-ttl": ttl }), "--allow-destructive"]);
      refusedBeforeWriting(r);
      expect(r.stderr).toContain(says);
      expect(r.stderr).toContain("hint: let the workers drain the queue first");
      expect(await brokerState(f.async)).toEqual(before);
    }
    // The workers drained it: nothing to expire, so the replace goes ahead.
    expect(await drainIds(f.async, Q)).toHaveLength(20);
    const ok = await runCli(["apply", "-f", f.after({ "x-message-ttl": 0 }), "--allow-destructive"]);
    expect(ok.code).toBe(0);
    expect((await getQueue(f.async, Q)).arguments).toEqual({ "x-message-ttl": 0 });
  });

  it("x-max-length-bytes below the bytes the queue holds: refused; a limit that holds them keeps them all", async () => {
    const { f, held } = await appliedHolding(10, 100);
    // Bytes have no live count: apply judges on the statistics, so let them catch up. The
    // broker fills in a new queue's message_bytes and messages separately, in either order.
    await statsShow(f.async, Q, (q) => q.messages === 10 && q.message_bytes === 1000);
    const before = await brokerState(f.async);
    const r = await runCli(["apply", "-f", f.after({ "x-max-length-bytes": 500 }), "--allow-destructive"]);
    refusedBeforeWriting(r);
    expect(r.stderr).toContain("x-max-length-bytes 500 is below the 1000 bytes it holds: drop-head would discard the oldest messages");
    expect(await brokerState(f.async)).toEqual(before);

    const ok = await runCli(["apply", "-f", f.after({ "x-max-length-bytes": 1000 }), "--allow-destructive"]);
    expect(ok.code).toBe(0);
    expectExactlyOnce(await drainIds(f.async, Q), held);
  });

  it("into a stream with a max-age (argument or policy): refused while the queue holds messages, whose age would count from the move", async () => {
    // Measured on 3.10.8: 1,000 messages moved into a stream with x-max-age 2s and 2000-byte
    // segments were all there after the move; 600 publishes 5 s later, none were.
    const { f, held } = await appliedHolding(200);
    const sync = uniqueName("sync");
    vhosts.push(sync);
    const stream = (args: Args) => writeTopology({ sync, async: f.async, services: [{ name: "mplogin", sync: false, async: { type: "stream", arguments: args } }] });
    await statsShow(f.async, Q, (q) => q.messages === 200);
    const args = { "x-max-age": "2s", "x-stream-max-segment-size-bytes": 2000 };
    const risk =
      "x-max-age 2s of the stream: the 200 messages it holds are written into it as they are moved back, and its retention deletes them once they are older than 2 s (counted from the move) and a later publish starts a new segment: a consumer that has not read them within 2 s of the replace never gets them";
    const plan = await runCli(["plan", "-f", stream(args)]);
    expect(plan.stdout).toContain(`  -/+ replace queue mplogin.async [holds 200 messages]\n      because type: "classic" -> "stream"`);
    expect(plan.stdout).toContain(`      ! messages at risk: ${risk}`);
    const json = JSON.parse((await runCli(["plan", "-f", stream(args), "--json"])).stdout);
    expect(json.clusters[1].actions[0].risks).toEqual([expect.objectContaining({ rule: "x-max-age" })]);

    const before = await brokerState(f.async);
    const r = await runCli(["apply", "-f", stream(args), "--allow-destructive"]);
    refusedBeforeWriting(r);
    expect(r.stderr).toContain(`cluster async: queue mplogin.async (holds 200 messages):\n    ${risk}`);
    expect(r.stderr).toContain("hint: let the workers drain the queue first");
    expect(await brokerState(f.async)).toEqual(before);

    // A user's policy gives streams their max-age, whatever the file says.
    expect((await api("PUT", `/api/policies/${vh(f.async)}/retain`, { pattern: "^mplogin\\.", "apply-to": "queues", definition: { "max-age": "1h" } })).status).toBe(201);
    const byPolicy = await runCli(["apply", "-f", stream({ "x-max-age": "7D" }), "--allow-destructive"]);
    refusedBeforeWriting(byPolicy);
    expect(byPolicy.stderr).toContain("policy retain's max-age 1h of the stream: the 200 messages it holds are written into it as they are moved back");
    expect(await brokerState(f.async)).toEqual(before);

    // The workers drained it: nothing to delete, so the replace goes ahead.
    expectExactlyOnce(await drainIds(f.async, Q), held);
    const ok = await runCli(["apply", "-f", stream({ "x-max-age": "1h" }), "--allow-destructive"]);
    expect(ok.code).toBe(0);
    expect((await getQueue(f.async, Q)).type).toBe("stream");
  });

  it("into a stream whose max-length-bytes only the messages' bodies fit: refused, since the stream stores their properties and headers too", async () => {
    // Measured on 3.10.8: 1,000 bodies of 100 bytes moved into a stream with x-max-length-bytes
    // 100000 and 2000-byte segments: it kept 450, and apply said all 1,000 were moved back.
    const { f } = await appliedHolding(1000, 100);
    await statsShow(f.async, Q, (q) => q.messages === 1000 && q.message_bytes === 100_000);
    const sync = uniqueName("sync");
    vhosts.push(sync);
    const file = writeTopology({ sync, async: f.async, services: [{ name: "mplogin", sync: false, async: { type: "stream", arguments: { "x-max-length-bytes": 100_000, "x-stream-max-segment-size-bytes": 2000 } } }] });
    const before = await brokerState(f.async);
    const r = await runCli(["apply", "-f", file, "--allow-destructive"]);
    refusedBeforeWriting(r);
    expect(r.stderr).toContain("x-max-length-bytes 100000 of the stream may not keep the 1000 messages it holds: their bodies are 100000 bytes by the broker's statistics");
    expect(r.stderr).toContain("hint: raise x-max-length-bytes to at least 131172000, or let the workers drain the queue first");
    expect(await brokerState(f.async)).toEqual(before);
  });

  it("a policy's message-ttl set after the queue's messages: it never expired them in place, a move would, so the replace is refused and they are kept", async () => {
    // RabbitMQ sets a message's expiry as it enqueues it: 5 messages stayed under a policy's
    // 1000 ms, and a replace that moved them back enqueued them under it, and they expired, while
    // plan (the same TTL before and after) had said nothing.
    for (const kind of ["policies", "operator-policies"]) {
      const { f, held } = await appliedHolding(5);
      expect((await api("PUT", `/api/${kind}/${vh(f.async)}/ttl1s`, { pattern: "^mplogin\\.async$", definition: { "message-ttl": 1000 }, "apply-to": "queues", priority: 0 })).status).toBeLessThan(300);
      await new Promise((r) => setTimeout(r, 2000));
      expect(await messageCount(f.async, Q)).toBe(5);
      const before = await brokerState(f.async);
      const plan = await runCli(["plan", "-f", f.after({ "x-max-length": 100000 })]);
      const who = kind === "policies" ? "policy" : "operator policy";
      expect(plan.stdout).toContain(`! messages at risk: ${who} ttl1s's message-ttl 1000 counts from the move: it applies to the queue now, but RabbitMQ sets a message's expiry as it enqueues it`);
      const r = await runCli(["apply", "-f", f.after({ "x-max-length": 100000 }), "--allow-destructive"]);
      refusedBeforeWriting(r);
      expect(await brokerState(f.async)).toEqual(before);
      expectExactlyOnce(await drainIds(f.async, Q), held);
    }
  });

  it("a policy whose pattern JavaScript does not read as RabbitMQ does still counts for the holding queue: refused, nothing expires", async () => {
    const { f, held } = await appliedHolding(5);
    // PCRE (RabbitMQ) reads both; JavaScript throws on (?i) and reads [[:alnum:]] as another class.
    for (const [name, pattern] of [
      ["nocase", "(?i)^TOPO\\.HOLD\\."],
      ["posix", "^topo\\.hold\\.[[:alnum:]._]+$"],
    ]) {
      expect((await api("PUT", `/api/policies/${vh(f.async)}/${name}`, { pattern, definition: { "message-ttl": 1 }, "apply-to": "queues", priority: 5 })).status).toBeLessThan(300);
      const before = await brokerState(f.async);
      const r = await runCli(["apply", "-f", f.after({ "x-queue-version": 2 }), "--allow-destructive"]);
      refusedBeforeWriting(r);
      expect(r.stderr).toContain(`policy ${name}'s message-ttl (topo cannot read its pattern "${pattern}", so it counts it as matching) 1 applies to topo.hold.mplogin.async`);
      expect(await brokerState(f.async)).toEqual(before);
      await api("DELETE", `/api/policies/${vh(f.async)}/${name}`);
    }
    expectExactlyOnce(await drainIds(f.async, Q), held);
  });

  it("a length limit on the holding queue alone is refused while the queue holds less than it: live publishes could fill the holding queue past it", async () => {
    const { f, held } = await appliedHolding(500);
    expect((await api("PUT", `/api/policies/${vh(f.async)}/holdcap`, { pattern: "^topo\\.hold\\.", definition: { "max-length": 700 }, "apply-to": "queues", priority: 1 })).status).toBeLessThan(300);
    // 500 held and a publisher running: before the fix, the holding queue passed 700 during the
    // move with 2,000 live messages, and drop-head discarded confirmed ones while apply said none
    // was lost. Here the publisher stops at 190, so the queue never reaches 700 while apply counts
    // it: the refusal must come from the limit alone, not from a count already over it (a count
    // over it is refused with other words, which a faster publisher made this test see at times).
    const pub = startPublisher(f.async, "live", 190);
    const r = await runCli(["apply", "-f", f.after({ "x-queue-version": 2 }), "--allow-destructive"]);
    await pub.stop();
    refusedBeforeWriting(r);
    expect(r.stderr).toContain("policy holdcap's max-length 700 applies to topo.hold.mplogin.async and is below the limit of mplogin.async (none)");
    expect(await getQueue(f.async, HOLD)).toBeUndefined();
    expectExactlyOnce(await drainIds(f.async, Q), [...held, ...pub.confirmed]);
  });

  it("a length limit on the holding queue alone is refused for an empty queue too: what is published during the replace waits there", async () => {
    // The queue was empty when apply counted it, so the holding queue was not judged: 94 to 162
    // of 4,000 confirmed messages published during the replace were dropped there by drop-head,
    // and apply said the broker matched the file.
    const f = files({}, {});
    expect((await runCli(["apply", "-f", f.before])).code).toBe(0);
    expect((await api("PUT", `/api/policies/${vh(f.async)}/holdcap`, { pattern: "^topo\\.hold\\.", definition: { "max-length": 5 }, "apply-to": "queues", priority: 1 })).status).toBeLessThan(300);
    const plan = await runCli(["plan", "-f", f.after({ "x-max-length": 100000 })]);
    // Judged whether or not the broker's statistics have counted the new queue yet.
    expect(plan.stdout).toMatch(/! messages at risk: policy holdcap's max-length 5 applies to topo\.hold\.mplogin\.async and is below the limit of mplogin\.async \(none\): (the queue holds no message now, but )?topo\.hold\.mplogin\.async takes every message published during the replace/);
    const r = await runCli(["apply", "-f", f.after({ "x-max-length": 100000 }), "--allow-destructive"]);
    refusedBeforeWriting(r);
    expect(r.stderr).toContain("policy holdcap's max-length 5 applies to topo.hold.mplogin.async");
    expect(await getQueue(f.async, HOLD)).toBeUndefined();
    expect((await getQueue(f.async, Q)).arguments).toEqual({});
  });

  it("x-max-length-bytes when the statistics counted other messages: the bytes are unknown, so refused before writing", async () => {
    const f = files({}, {});
    expect((await runCli(["apply", "-f", f.before])).code).toBe(0);
    await publishIds(f.async, ids("small", 10));
    await statsShow(f.async, Q, (q) => q.messages === 10);
    // Ten large messages the statistics have not counted yet: an average of the small ones
    // would put the queue far below the limit.
    await publishIds(f.async, ids("big", 10), 100_000);
    const before = await brokerState(f.async);
    const r = await runCli(["apply", "-f", f.after({ "x-max-length-bytes": 300_000 }), "--allow-destructive"]);
    refusedBeforeWriting(r);
    expect(r.stderr).toMatch(/do not count the bytes of the 20 messages it holds now/);
    expect(await brokerState(f.async)).toEqual(before);
  });

  it("a consumer holding unacknowledged messages: refused until the workers stop, then all of them kept", async () => {
    const { f, held } = await appliedHolding(10);
    const worker = await stuckConsumer(f.async, 4);
    await statsShow(f.async, Q, () => worker.held.length === 4);
    const before = await brokerState(f.async);
    expect(before.counts[Q]).toEqual({ messages: 6, consumers: 1 });

    const r = await runCli(["apply", "-f", f.after({ "x-max-length": 1000 }), "--allow-destructive"]);
    refusedBeforeWriting(r);
    expect(r.stderr).toMatch(/1 consumer is attached(, holding 4 unacknowledged messages)?: a consumer takes messages while they are moved, and what it has not acknowledged is lost with the old queue/);
    expect(r.stderr).toContain("hint: stop the workers that consume from mplogin.async first");
    expect(await brokerState(f.async)).toEqual(before);

    // The worker stops: its 4 reserved messages are ready again, and the replace keeps all 10.
    await worker.close();
    const ok = await runCli(["apply", "-f", f.after({ "x-max-length": 1000 }), "--allow-destructive"]);
    expect(ok.code).toBe(0);
    expect(ok.stderr).toContain("10 messages moved back");
    expectExactlyOnce(await drainIds(f.async, Q), held);
  });

  it("a consumer cancelled on a channel still open keeps its unacknowledged messages: refused, though the statistics are older than the cancel", async () => {
    const { f, held } = await appliedHolding(10);
    // A worker's warm shutdown: its consumer is cancelled, and the messages it reserved stay
    // unacknowledged on its channel until it exits. The statistics still count the consumer.
    const conn = await amqplib.connect(amqpUrl(f.async));
    const ch = await conn.createChannel();
    await ch.prefetch(4);
    const reserved: string[] = [];
    const { consumerTag } = await ch.consume(Q, (m) => void (m && reserved.push(String(m.properties.messageId))));
    try {
      await statsShow(f.async, Q, (q) => reserved.length === 4 && q.consumers === 1);
      await ch.cancel(consumerTag);
      const r = await runCli(["apply", "-f", f.after({ "x-max-priority": 5 }), "--allow-destructive"]);
      refusedBeforeWriting(r);
      expect(r.stderr).toContain("4 messages are fetched but not acknowledged: they are lost with the old queue");
    } finally {
      await conn.close().catch(() => undefined);
    }
    // The worker exits: its 4 are ready again, and the replace keeps all 10.
    const ok = await runCli(["apply", "-f", f.after({ "x-max-priority": 5 }), "--allow-destructive"]);
    expect(ok.stderr).not.toMatch(/Error/);
    expect(ok.code).toBe(0);
    expectExactlyOnce(await drainIds(f.async, Q), held);
  }, 120_000);

  it("a client holding messages it fetched with basic.get: refused while it holds them; once it gives them back, an apply run at once keeps them all", async () => {
    const { f, held } = await appliedHolding(10);
    const conn = await amqplib.connect(amqpUrl(f.async));
    const ch = await conn.createChannel();
    for (let i = 0; i < 4; i++) expect(await ch.get(Q, { noAck: false })).not.toBe(false);
    // The statistics see the 4 fetched messages only at the queue's next emission (every 5 s).
    for (let i = 0; ; i++) {
      const r = await api("GET", `/api/queues/${vh(f.async)}/${Q}?columns=messages_unacknowledged`);
      if ((r.body as { messages_unacknowledged?: number }).messages_unacknowledged === 4) break;
      if (i === 60) throw new Error("the statistics never counted the 4 fetched messages");
      await new Promise((res) => setTimeout(res, 500));
    }
    const refused = await runCli(["apply", "-f", f.after({ "x-max-length": 1000 }), "--allow-destructive"]);
    refusedBeforeWriting(refused);
    expect(refused.stderr).toContain("4 messages are fetched but not acknowledged: they are lost with the old queue");

    // Given back: the 4 are ready again at once, while the statistics go on counting them as
    // fetched until their next emission. Apply reads them again rather than refuse on them.
    await conn.close();
    const ok = await runCli(["apply", "-f", f.after({ "x-max-length": 1000 }), "--allow-destructive"]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toContain("10 messages moved back");
    expectExactlyOnce(await drainIds(f.async, Q), held);
  }, 120_000);

  it("a publisher running during the replace under a new limit: every confirmed message kept exactly once", async () => {
    const { f, held } = await appliedHolding(50);
    // 50 held + at most 150 published stay within 300: nothing the queue itself would drop.
    const pub = startPublisher(f.async, "live", 150);
    const r = await runCli(["apply", "-f", f.after({ "x-max-length": 300, "x-overflow": "reject-publish" }), "--allow-destructive"]);
    await pub.stop();
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    expect(pub.confirmed.length).toBeGreaterThan(0);
    expect(await getQueue(f.async, HOLD)).toBeUndefined();
    expectExactlyOnce(await drainIds(f.async, Q), [...held, ...pub.confirmed]);
  });
});

/**
 * Wait (60 s at most) until a replace of mplogin.async has begun (its holding queue is there), the
 * old queue has been emptied or deleted, and the move back has put `atLeast` messages into the
 * new queue. A passive declare of a missing queue closes its channel: one channel per look.
 */
async function moveBackUnderWay(conn: amqplib.ChannelModel, atLeast: number): Promise<void> {
  const count = (name: string) => lookCount(conn, name);
  const deadline = Date.now() + 60_000;
  await waitUntil(async () => (await count(HOLD)) >= 0, deadline);
  await waitUntil(async () => (await count(Q)) < Math.min(100, atLeast), deadline);
  await waitUntil(async () => (await count(Q)) >= atLeast, deadline);
}

/** The messages in queue `name`, or -1 where it is not there: a channel for each look, as a passive declare of a missing queue closes its channel. */
async function lookCount(conn: amqplib.ChannelModel, name: string): Promise<number> {
  const look = await conn.createChannel();
  look.on("error", () => undefined);
  const q = await look.checkQueue(name).catch(() => undefined);
  await look.close().catch(() => undefined);
  return q ? q.messageCount : -1;
}

/** Looks every 10 ms until `done`, or until `deadline` (a Date.now() time) has passed. */
async function waitUntil(done: () => Promise<boolean>, deadline: number): Promise<void> {
  while (!(await done()) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
}

describe("a byte limit that drops the oldest, and publishers during the move back", () => {
  // The move counted the target's bytes once, from its peek, plus what it moved itself: what
  // publishers sent meanwhile went uncounted, the queue passed its x-max-length-bytes, and
  // drop-head dropped its oldest messages, the moved ones (1,000 of 10,000 in a user's test), while
  // apply said the replace was done. Messages topo cannot size now stop the move.
  it("every confirmed message is kept exactly once, in the queue or the holding queue; a stop says why and what to do", async () => {
    const { f, held } = await appliedHolding(3000, 200);
    // Bytes have no live count: apply judges on the statistics, so let them catch up.
    await statsShow(f.async, Q, (q) => q.messages === 3000 && q.message_bytes === 600_000);
    // 3,000 held (600 kB) fit the new limit; with a burst of 1,000 more (200 kB), published once the
    // move back is under way (the new queue holds 300 or more), they do not.
    const applying = runCli(["apply", "-f", f.after({ "x-max-length-bytes": 650_000 }), "--allow-destructive"]);
    const burst = ids("burst", 1000);
    const conn = await amqplib.connect(amqpUrl(f.async));
    try {
      await moveBackUnderWay(conn, 300);
      const ch = await conn.createConfirmChannel();
      for (const id of burst) ch.publish("mplogin", "mplogin.async.x", Buffer.from(id.padEnd(200, ".")), { persistent: true, messageId: id });
      await ch.waitForConfirms();
    } finally {
      await conn.close().catch(() => undefined);
    }
    const r = await applying;
    if (r.code !== 0) {
      // Full by what it counted, or stopped at messages it cannot size (published during the move back).
      const unsized = /published to it during the move\), whose bytes it cannot count against mplogin\.async's x-max-length-bytes 650000, which drops its oldest messages \(the moved ones\) past it/;
      expect(r.stderr).toMatch(new RegExp(`(mplogin\\.async is full at x-max-length-bytes 650000|${unsized.source}); \\d+ messages? could not be moved and they wait in topo\\.hold\\.mplogin\\.async; none was lost or copied`));
      if (unsized.test(r.stderr)) expect(r.stderr).toMatch(/hint: while publishers send to it, topo cannot count its bytes and the move stops again: pause them while topo apply( -f \S+)? runs again/);
    }
    expectExactlyOnce([...(await drainIds(f.async, Q)), ...(await drainIds(f.async, HOLD))], [...held, ...burst]);
  });
});

/** Delete the holding queue under `applying` (an apply --json), which must then fail with messages_lost: its error. */
async function lostWithHold(vhost: string, applying: Promise<{ code: number | null; stdout: string }>): Promise<{ code: string; message: string }> {
  await api("DELETE", `/api/queues/${vh(vhost)}/${encodeURIComponent(HOLD)}`);
  const r = await applying;
  expect(r.code).toBe(1);
  const err = JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('{"error"'))).error;
  expect(err.code, err.message).toBe("messages_lost");
  // Not beneath it that the messages "may be on" the holding queue, "where new messages wait".
  expect(err.message).not.toContain(`may be on ${HOLD}`);
  return err;
}

describe("the holding queue deleted under the move back", () => {
  // By hand or by a cleanup script: what it held went with it, and apply said only "404 ... the
  // object does not exist (yet)", then "No changes." on the next run.
  it("is said as a loss (messages_lost), naming the holding queue, not as a missing object", async () => {
    const { f } = await appliedHolding(3000, 100);
    const applying = runCli(["apply", "-f", f.after({ "x-queue-mode": "lazy" }), "--allow-destructive", "--json"]);
    const conn = await amqplib.connect(amqpUrl(f.async));
    try {
      await moveBackUnderWay(conn, 300);
    } finally {
      await conn.close().catch(() => undefined);
    }
    const err = await lostWithHold(f.async, applying);
    expect(err.message).toMatch(/replace queue mplogin\.async: topo\.hold\.mplogin\.async was deleted during the move back, by something other than topo; the messages it still held \(this apply had moved 3000 messages into it\) were lost with it/);
  });
});

describe("the holding queue deleted under the move out", () => {
  // By hand or by a cleanup script: what it held went with it (11,264 of 30,000 messages), and so
  // did the bindings it had taken over; apply said only "404 NOT_FOUND - no exchange", that the
  // messages "may be on" the holding queue, and "the object does not exist (yet)".
  it("is said as a loss (messages_lost), with the bindings gone, and the next apply replaces the queue anew with what is left", async () => {
    const { f, held } = await appliedHolding(20_000);
    const applying = runCli(["apply", "-f", f.after({ "x-queue-mode": "lazy" }), "--allow-destructive", "--json"]);
    const conn = await amqplib.connect(amqpUrl(f.async));
    try {
      await waitUntil(async () => (await lookCount(conn, HOLD)) >= 300, Date.now() + 60_000);
    } finally {
      await conn.close().catch(() => undefined);
    }
    const err = await lostWithHold(f.async, applying);
    expect(err.message).toMatch(/replace queue mplogin\.async: topo\.hold\.mplogin\.async was deleted during the move out of mplogin\.async, by something other than topo; what it held was lost with it \(\d+ messages this apply had moved there from mplogin\.async, and what was published meanwhile\), and so were the bindings it had taken over/);
    const left = await messageCount(f.async, Q);
    expect(left).toBeLessThan(held.length);
    const done = await runCli(["apply", "-f", f.after({ "x-queue-mode": "lazy" }), "--allow-destructive"]);
    expect(done.code, done.stderr).toBe(0);
    expect(await messageCount(f.async, Q)).toBe(left);
    expect((await listBindings(f.async)).some((b: { source: string; destination: string }) => b.source === "mplogin" && b.destination === Q)).toBe(true);
  }, 180_000);
});

describe("a priority queue's copies", () => {
  // basic.get hands out a priority queue's messages by priority, so "among its last" said nothing
  // of when a message came: one published 500 messages deep was dropped as the copy of an
  // identical one published during the switch.
  it("no message of a priority queue is taken for a copy: one published long before, alike in every way to one sent during the switch, is kept", async () => {
    const f = files({ "x-max-priority": 10 }, {});
    expect((await runCli(["apply", "-f", f.before])).code).toBe(0);
    const twin = { persistent: true, messageId: "nightly-report", priority: 0 };
    const conn = await amqplib.connect(amqpUrl(f.async));
    try {
      const ch = await conn.createConfirmChannel();
      ch.publish("mplogin", "mplogin.async.report", Buffer.from("report"), twin);
      for (const id of ids("busy", 500)) ch.publish("mplogin", "mplogin.async.x", Buffer.from(id), { persistent: true, messageId: id, priority: 5 });
      await ch.waitForConfirms();
      await statsShow(f.async, Q, (q) => q.messages === 501);
      const applying = runCli(["apply", "-f", f.after({ "x-max-priority": 10, "x-queue-mode": "lazy" }), "--allow-destructive"]);
      // The same message again once the holding queue is there: routed to it (and maybe the old queue too).
      const deadline = Date.now() + 60_000;
      for (;;) {
        const there = (await lookCount(conn, HOLD)) >= 0;
        if (there || Date.now() > deadline) break;
        await new Promise((res) => setTimeout(res, 5));
      }
      ch.publish("mplogin", "mplogin.async.report", Buffer.from("report"), twin);
      await ch.waitForConfirms();
      const r = await applying;
      expect(r.stderr).not.toMatch(/Error/);
      expect(r.code).toBe(0);
    } finally {
      await conn.close().catch(() => undefined);
    }
    const got = await drainIds(f.async, Q);
    // Both sends of the report are kept (one of them perhaps twice: a copy of the switch, at least once).
    expect(got.filter((id) => id === "nightly-report").length).toBeGreaterThanOrEqual(2);
    expect(got.filter((id) => id !== "nightly-report").sort()).toEqual(ids("busy", 500).sort());
  });
});

describe("a queue apply deletes keeps what it holds unless data loss was allowed", () => {
  /**
   * mplogin.async applied, holding `n` messages; file(false) is the file without it (apply deletes
   * it), file(true) the one applied.
   */
  async function appliedForDelete(n: number) {
    const sync = uniqueName("sync");
    const async = uniqueName("async");
    vhosts.push(sync, async);
    // `management`: the async cluster's management API at that URL (a proxy), not the broker's.
    const file = (withAsync: boolean, management?: string) =>
      writeTopology({ sync, async, services: [{ name: "mplogin", sync: false, ...(withAsync ? {} : { async: false }) }, "mpwallet"], ...(management ? { clusterExtra: { async: { management } } } : {}) });
    expect((await runCli(["apply", "-f", file(true)])).code).toBe(0);
    const held = ids("old", n);
    await publishIds(async, held);
    return { async, file, held };
  }

  it("--allow-data-loss says what went with a queue in use: its ready messages and its consumers' unacknowledged ones, not the ready ones alone", async () => {
    const { async, file } = await appliedForDelete(10);
    const worker = await stuckConsumer(async, 4);
    try {
      await statsShow(async, Q, (q) => worker.held.length === 4 && q.messages === 10);
      const r = await runCli(["apply", "-f", file(false), "--allow-destructive", "--allow-data-loss"]);
      expect(r.code).toBe(0);
      expect(r.stderr).toContain("queue mplogin.async deleted; 6 ready messages dropped, and what its 1 consumer had not acknowledged (10 messages in all when apply counted them) (--allow-data-loss)");
    } finally {
      await worker.close();
    }
  });

  it("a queue whose consumer holds every message unacknowledged is refused before anything is written; the messages are kept", async () => {
    const { async, file, held } = await appliedForDelete(5);
    const worker = await stuckConsumer(async, 10);
    try {
      // Held by the worker, and counted by the statistics: apply reads them, and under load they
      // lag (the statistics showed the consumer but not yet its 5, and the wording below differed).
      await statsShow(async, Q, (q) => worker.held.length === 5 && q.messages_unacknowledged === 5 && q.consumers === 1);
      const before = await brokerState(async);
      const r = await runCli(["apply", "-f", file(false), "--allow-destructive"]);
      expect(r.code).toBe(1);
      // The 5 its consumer holds are counted: a passive declare's 0 ready messages are not all it holds.
      expect(r.stderr).toContain("refusing to drop messages: 1 queue to delete holds messages or has consumers:\n  cluster async: - delete queue mplogin.async [holds 5 messages] [1 consumer]\n");
      expect(r.stderr).toContain("hint: a consumer's unacknowledged messages would go with the queue: stop the workers that consume from mplogin.async, then run topo apply again");
      expect(r.stderr).not.toMatch(/applying \d+ change/);
      // Nothing was written: the exchange, the queue and its binding are all still there.
      expect(await brokerState(async)).toEqual(before);
    } finally {
      await worker.close();
    }
    // The worker gone, its 5 messages are ready again: nothing went with the queue.
    expect(await messageCount(async, Q)).toBe(5);
    const refused = await runCli(["apply", "-f", file(false), "--allow-destructive"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/refusing to drop messages/);
    expectExactlyOnce(await drainIds(async, Q), held);
    const done = await runCli(["apply", "-f", file(false), "--allow-destructive"]);
    expect(done.stderr).not.toMatch(/Error/);
    expect(done.code).toBe(0);
    expect(await getQueue(async, Q)).toBeUndefined();
  });

  /**
   * A client fetches every message of `held` with basic.get and holds them unacknowledged (once
   * the statistics count them, with `statsFirst`) while apply runs: apply must refuse the delete
   * and write nothing, and once the client closes its channel, all of them are back in the queue.
   * Returns apply's stderr.
   */
  async function refusedWhileFetched(async: string, file: string, held: string[], statsFirst: boolean): Promise<string> {
    const conn = await amqplib.connect(amqpUrl(async));
    let stderr: string;
    try {
      const ch = await conn.createChannel();
      for (const _ of held) expect(await ch.get(Q, { noAck: false })).toBeTruthy();
      if (statsFirst) await statsShow(async, Q, (q) => q.messages_unacknowledged === held.length);
      const before = await brokerState(async);
      const r = await runCli(["apply", "-f", file, "--allow-destructive"]);
      expect(r.code, r.stdout).toBe(1);
      expect(r.stderr).toContain(`hint: ${held.length} messages of mplogin.async are fetched but not acknowledged (basic.get without ack, or a consumer cancelled on a channel still open, as a Celery worker in warm shutdown holds its reserved tasks until it exits)`);
      expect(r.stderr).not.toMatch(/applying \d+ change/);
      expect(await brokerState(async)).toEqual(before);
      stderr = r.stderr;
    } finally {
      await conn.close().catch(() => undefined);
    }
    // The client closed its channel without acknowledging: all of them are back in the queue.
    expectExactlyOnce(await drainIds(async, Q), held);
    return stderr;
  }

  it("a queue whose messages a client fetched with basic.get and has not acknowledged is refused: no consumer, no ready message, yet they would go with it", async () => {
    const { async, file, held } = await appliedForDelete(3);
    const stderr = await refusedWhileFetched(async, file(false), held, true);
    expect(stderr).toContain("refusing to drop messages: 1 queue to delete still holds messages:\n  cluster async: - delete queue mplogin.async [holds 3 messages]\n");
  }, 120_000);

  // The statistics lag by up to 5 s: published and fetched just before apply, the messages were
  // in none of them yet, the passive declare found none ready and no consumer, and the delete
  // took the 3 with the queue.
  it("a queue whose messages a client fetched a moment before apply, before the statistics counted them, is refused too", async () => {
    const { async, file } = await appliedForDelete(0);
    // Idle for more than a statistics interval, the queue emits none until it works again, and
    // then only an interval later: after apply's read, here.
    await new Promise((r) => setTimeout(r, 7000));
    const held = ids("late", 3);
    await publishIds(async, held);
    await refusedWhileFetched(async, file(false), held, false);
  }, 120_000);

  // CI on a busy machine: statistics the queue emitted before the publish reached the management
  // database after apply's first read of them; they differed from it, said 0 ready and 0
  // unacknowledged like the passive declare, were taken for statistics after the fetch, and the
  // delete took the 3 with the queue. Here a proxy answers the queue's statistics so, each with
  // more reductions; the queue's own count (the listing's totals) is what apply must go by.
  it("a queue whose messages a client fetched is refused when its statistics lag behind the fetch yet change, as on a busy broker", async () => {
    const { async, file } = await appliedForDelete(0);
    const held = ids("late", 3);
    await publishIds(async, held);
    const proxy = await statsProxy(async, (n) => JSON.stringify({ name: Q, messages: 0, messages_ready: 0, messages_unacknowledged: 0, consumers: 0, message_bytes: 0, reductions: 1000 + n }));
    try {
      const stderr = await refusedWhileFetched(async, file(false, `http://${broker().user}:${broker().password}@${new URL(proxy.url).host}`), held, false);
      expect(stderr).toContain("refusing to drop messages: 1 queue to delete still holds messages:\n  cluster async: - delete queue mplogin.async [holds 3 messages]\n");
    } finally {
      proxy.close();
    }
  }, 120_000);

  it("a classic queue the broker lists without a count (its process did not answer) is not deleted: nobody can say what a client holds of it", async () => {
    const { async, file } = await appliedForDelete(0);
    // The listing's totals for the queue gone, as when its process does not answer in time.
    const proxy = await managementProxy({
      change: (path, body) =>
        totalsOf(async, path) && Array.isArray(body)
          ? body.map((q: Record<string, unknown>) => {
              if (q.name !== Q) return q;
              const { messages: _, messages_ready: __, messages_unacknowledged: ___, ...rest } = q;
              return rest;
            })
          : undefined,
    });
    try {
      const before = await brokerState(async);
      const r = await runCli(["apply", "-f", file(false, proxy.url), "--allow-destructive"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("refusing to drop messages: 1 queue to delete has no count:\n  cluster async: - delete queue mplogin.async [holds 0 ready messages and an unknown number unacknowledged]\n");
      expect(r.stderr).toContain("hint: the broker listed mplogin.async without a count of what it holds");
      expect(r.stderr).not.toMatch(/applying \d+ change/);
      expect(await brokerState(async)).toEqual(before);
    } finally {
      proxy.close();
    }
    // Counted again, the empty queue goes.
    const done = await runCli(["apply", "-f", file(false), "--allow-destructive"]);
    expect(done.stderr).not.toMatch(/Error/);
    expect(done.code).toBe(0);
    expect(await getQueue(async, Q)).toBeUndefined();
  }, 120_000);

  // Found by trying: apply's last count and its delete were up to 1.2 s apart (the other
  // cluster's checks, this one's writes), and a message a client fetched between them went with
  // the queue while apply said every cluster matched the file. The queue is counted again just
  // before its delete; here the client fetches right after apply's count under the lock.
  it("a message a client fetches after apply's count and before the delete is counted again just before it: the queue is left, nothing is lost", async () => {
    const { async, file } = await appliedForDelete(0);
    let listings = 0;
    let conn: amqplib.ChannelModel | undefined;
    // Listings of the totals: the read's, the count before writing, the count under the lock.
    const proxy = await managementProxy({
      settle: async (path) => {
        if (!totalsOf(async, path) || ++listings !== 3) return;
        await publishIds(async, ["late-1"]);
        conn = await fetchedBy(async, 1);
      },
    });
    try {
      const r = await runCli(["apply", "-f", file(false, proxy.url), "--allow-destructive"]);
      expect(conn).toBeDefined();
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(
        "cluster async: delete queue mplogin.async: not deleted: the broker counts 1 message of it fetched and not acknowledged by a client that is no consumer (basic.get without ack, or a consumer cancelled on a channel still open, as a Celery worker in warm shutdown holds its reserved tasks until it exits), which the delete would take with it; nothing of it was lost",
      );
      expect(await getQueue(async, Q)).toBeDefined();
    } finally {
      proxy.close();
      await conn?.close();
    }
    expectExactlyOnce(await drainIds(async, Q), ["late-1"]);
  }, 120_000);

  it("--allow-data-loss names what a client fetched after apply's read among what went with the queue", async () => {
    const { async, file } = await appliedForDelete(5);
    let conn: amqplib.ChannelModel | undefined;
    // After the read counted 5 ready, a client fetches 3.
    const proxy = await managementProxy({
      settle: async (path) => {
        if (totalsOf(async, path) && !conn) conn = await fetchedBy(async, 3);
      },
    });
    try {
      const r = await runCli(["apply", "-f", file(false, proxy.url), "--allow-destructive", "--allow-data-loss"]);
      expect(r.code).toBe(0);
      expect(r.stderr).toContain("queue mplogin.async deleted; 2 ready messages dropped, and 3 messages fetched but not acknowledged (when apply counted them) (--allow-data-loss)");
    } finally {
      proxy.close();
      await conn?.close();
    }
  }, 120_000);

  /** Service mpquo, its async queue a quorum queue, and mpkeep, applied; `file` writes others for the same vhosts. */
  async function appliedQuorum() {
    const sync = uniqueName("sync");
    const async = uniqueName("async");
    vhosts.push(sync, async);
    const file = (services: unknown[]) => writeTopology({ sync, async, services });
    expect((await runCli(["apply", "-f", file([{ name: "mpquo", sync: false, async: { type: "quorum" } }, "mpkeep"])])).code).toBe(0);
    return { async, file };
  }

  it("plan says what a quorum queue's consumers hold is unknown while its statistics are behind, never its ready messages as all it holds", async () => {
    const { async, file } = await appliedQuorum();
    await withChannel(async, async (ch) => {
      for (let i = 0; i < 5; i++) ch.sendToQueue("mpquo.async", Buffer.from(`m${i}`));
      await ch.checkQueue("mpquo.async");
    });
    // Counted by the statistics once, before the fetch.
    await statsShow(async, "mpquo.async", (q) => q.messages === 5);
    const conn = await fetchedBy(async, 3, "mpquo.async");
    try {
      const r = await runCli(["plan", "-f", file(["mpkeep"])]);
      // Statistics that caught up meanwhile count all 5; older ones leave the 3 unknown.
      expect(r.stdout).toMatch(/- delete queue mpquo\.async \[holds (5 messages|2 ready messages and an unknown number unacknowledged)\] \[3 consumers\]/);
    } finally {
      await conn.close();
    }
  }, 120_000);

  it("a quorum queue whose consumer was cancelled on a channel still open, holding its deliveries, is refused: the queue counts it as a consumer", async () => {
    const { async, file } = await appliedQuorum();
    const conn = await amqplib.connect(amqpUrl(async));
    try {
      const pub = await conn.createConfirmChannel();
      for (let i = 0; i < 3; i++) pub.sendToQueue("mpquo.async", Buffer.from(`m${i}`));
      await pub.waitForConfirms();
      const worker = await conn.createChannel();
      await worker.prefetch(3);
      let got = 0;
      const { consumerTag } = await worker.consume("mpquo.async", () => void got++, { noAck: false });
      for (let i = 0; i < 50 && got < 3; i++) await new Promise((r) => setTimeout(r, 100));
      expect(got).toBe(3);
      await worker.cancel(consumerTag);
      const r = await runCli(["apply", "-f", file(["mpkeep"]), "--allow-destructive"]);
      expect(r.code).toBe(1);
      // The count of what it holds comes from statistics that catch up with the consumer, or is said unknown.
      expect(r.stderr).toMatch(/refusing to drop messages: 1 queue to delete (holds messages or )?has consumers:\n {2}cluster async: - delete queue mpquo\.async .*\[1 consumer\]\n/);
      expect(r.stderr).not.toMatch(/applying \d+ change/);
    } finally {
      await conn.close();
    }
    // The channel closed: its 3 are back in the queue.
    expect(await messageCount(async, "mpquo.async")).toBe(3);
  }, 120_000);

  it("a quorum queue and a stream are deleted with their service (a quorum queue takes no if-empty delete; a stream only with --allow-data-loss)", async () => {
    const sync = uniqueName("sync");
    const async = uniqueName("async");
    vhosts.push(sync, async);
    const file = (services: unknown[]) => writeTopology({ sync, async, services });
    const with_ = [{ name: "mpquo", sync: false, async: { type: "quorum" } }, { name: "mpstr", sync: false, async: { type: "stream" } }, "mpkeep"];
    expect((await runCli(["apply", "-f", file(with_)])).code).toBe(0);
    // Messages confirmed into the stream just now: its passive declare and if-empty delete may
    // see none yet (3.10), and consuming would leave them in it. Only --allow-data-loss deletes it.
    await withChannel(async, async (ch) => {
      for (let i = 0; i < 5; i++) ch.sendToQueue("mpstr.async", Buffer.from(`m${i}`));
      await ch.checkQueue("mpstr.async");
    });
    const refused = await runCli(["apply", "-f", file(["mpkeep"]), "--allow-destructive"]);
    expect(refused.code).toBe(1);
    // Whether the refusal also counts the 5 depends on how soon the stream's statistics catch up.
    expect(refused.stderr).toMatch(
      /refusing to drop messages: 1 queue to delete (holds messages or )?is a stream:\n {2}cluster async: - delete queue mpstr\.async( \[holds 5 messages\])?\n/,
    );
    expect(refused.stderr).not.toMatch(/applying \d+ change/);
    expect(await getQueue(async, "mpquo.async")).toBeDefined();
    expect(await getQueue(async, "mpstr.async")).toBeDefined();
    // Plan counts the stream one by one, once its statistics have the messages.
    let shown = "";
    for (let i = 0; i < 40 && !shown.includes("[holds 5 messages]"); i++) {
      if (i) await new Promise((res) => setTimeout(res, 250));
      shown = (await runCli(["plan", "-f", file(["mpkeep"])])).stdout;
    }
    expect(shown).toContain("- delete queue mpstr.async [holds 5 messages]");
    const r = await runCli(["apply", "-f", file(["mpkeep"]), "--allow-destructive", "--allow-data-loss"]);
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    expect(await getQueue(async, "mpquo.async")).toBeUndefined();
    expect(await getQueue(async, "mpstr.async")).toBeUndefined();
    expect((await runCli(["plan", "-f", file(["mpkeep"]), "--detailed-exitcode"])).code).toBe(0);
  });
});

describe("replace stops rather than lose or copy a message", () => {
  const target = clusterTarget;
  const queue = (args: Queue["arguments"]): Queue => ({ kind: "queue", name: Q, type: "classic", durable: true, autoDelete: false, exclusive: false, arguments: args });
  const route: Binding = { kind: "binding", source: "mplogin", destination: Q, destinationType: "queue", routingKey: "mplogin.async.#", arguments: {} };
  /**
   * A proxy to the broker's management API that answers the `n`th GET of the old queue's
   * statistics with `answer(n)` where it gives one (statistics that lag), and passes the rest on.
   */

  /**
   * The mover alone replaces the queue with x-max-priority 5, counting what it holds unacknowledged
   * through the management API at `mgmt` (the broker's own by default); its error, if it stops.
   */
  // A connection lost while a batch is under way (published to the target, not yet acknowledged
  // at the source): the broker gives the batch back, and the apply that finishes the replace
  // moves it again. A broker restart left 255 twice and the reconnecting apply said the broker
  // matched the file (advl). The error now says how many may be in both, and no more are.
  it("a connection lost with a batch under way: the error says how many may now be in both queues, and no more are there twice", async () => {
    const f = files({}, { "x-max-length": 1_000_000 });
    expect((await runCli(["apply", "-f", f.before])).code).toBe(0);
    const ids = Array.from({ length: 1_000 }, (_, i) => `m${i}`);
    await publishIds(f.async, ids);
    const session = await AmqpSession.open(target(f.async));
    // The socket goes as the 300th message is published: the second batch is then under way.
    const confirmChannel = session.confirmChannel.bind(session);
    let published = 0;
    session.confirmChannel = async () => {
      const ch = await confirmChannel();
      const publish = ch.publish.bind(ch);
      ch.publish = (...args: Parameters<typeof ch.publish>) => {
        const sent = publish(...args);
        if (++published === 300) (session.conn as unknown as { connection: { stream: { destroy: (e: Error) => void } } }).connection.stream.destroy(new Error("the test cut the socket"));
        return sent;
      };
      return ch;
    };
    const error = await replaceQueueLossless(session, { report: quorumReportFor(target(f.async)), after: queue({ "x-max-length": 1_000_000 }), bindings: [route], holdBindings: [], queueDone: false, old: queue({}) }, () => undefined).then(
      () => undefined,
      (e: Error) => e,
    );
    await session.close();
    expect(error?.message).toMatch(/move messages from mplogin\.async to topo\.hold\.mplogin\.async -> .*; no message was lost, but the \d+ messages of the batch under way had been published to topo\.hold\.mplogin\.async and not yet acknowledged at mplogin\.async, which the broker gives back: up to \d+ may now be in both, and be delivered twice \(at least once\)/);
    const said = Number(/up to (\d+) may now be in both/.exec(error?.message ?? "")?.[1]);
    expect(said).toBeGreaterThan(0);
    expect(said).toBeLessThanOrEqual(256);
    const finished = await runCli(["apply", "-f", f.after({ "x-max-length": 1_000_000 }), "--allow-destructive"]);
    expect(finished.code, finished.stderr).toBe(0);
    const got = await drainIds(f.async, Q);
    expect(new Set(got)).toEqual(new Set(ids));
    expect(got.length - ids.length).toBeLessThanOrEqual(said);
  });

  // A batch is held whole in topo's memory until the broker confirms it: 256 messages of 4 MB
  // were a batch of 1 GB (3.4 GB of RSS for a replace of 300 such messages, measured).
  it("a move of large messages goes in batches bounded by bytes, every message moved once", async () => {
    const f = files({}, { "x-max-length": 1_000_000 });
    expect((await runCli(["apply", "-f", f.before])).code).toBe(0);
    const size = 4 * 1024 * 1024;
    const ids = Array.from({ length: 12 }, (_, i) => `big${i}`);
    await publishIds(f.async, ids, size);
    const session = await AmqpSession.open(target(f.async));
    const batches: number[] = [];
    /** The count each move (out, and back) reported last. */
    const last = { out: 0, back: 0 };
    try {
      await replaceQueueLossless(
        session,
        {
          report: quorumReportFor(target(f.async)),
          after: queue({ "x-max-length": 1_000_000 }),
          bindings: [route],
          holdBindings: [],
          queueDone: false,
          old: queue({}),
          moving: (what) => {
            const n = Number(/: (\d+) moved$/.exec(what)?.[1]);
            const move = what.includes(" back from ") ? "back" : "out";
            batches.push(n - last[move]);
            last[move] = n;
          },
        },
        () => undefined,
      );
    } finally {
      await session.close();
    }
    expect(batches.reduce((a, b) => a + b, 0)).toBe(2 * ids.length);
    expect(Math.max(...batches)).toBeLessThanOrEqual(BATCH_BYTES / size);
    expect((await drainIds(f.async, Q)).sort()).toEqual([...ids].sort());
  });

  // orLost raced each fetch with one promise of the connection's loss, which never settles: each
  // race left a reaction on it that held the fetched message, so a replace kept every message it
  // moved in memory until topo exited (2.5 GB of RSS after 300 messages of 4 MB out and back).
  it("a message fetched and moved is not kept in memory by the session", async () => {
    const f = files({}, {});
    expect((await runCli(["apply", "-f", f.before])).code).toBe(0);
    await publishIds(f.async, Array.from({ length: 20 }, (_, i) => `m${i}`), 1024);
    const session = await AmqpSession.open(target(f.async));
    const fetched: WeakRef<Buffer>[] = [];
    try {
      const ch = await session.channel();
      for (;;) {
        const m = await session.orLost(ch.get(Q, { noAck: false }));
        if (!m) break;
        fetched.push(new WeakRef(m.content));
        ch.ack(m);
      }
      await closeChannel(ch);
      expect(fetched).toHaveLength(20);
      // A WeakRef keeps its target until the current job ends.
      await new Promise((r) => setImmediate(r));
      setFlagsFromString("--expose-gc");
      (runInNewContext("gc") as () => void)();
      expect(fetched.filter((w) => w.deref() !== undefined)).toHaveLength(0);
    } finally {
      await session.close();
    }
  });

  async function moverAlone(v: string, mgmt?: string): Promise<Error | undefined> {
    const t = target(v);
    const http = new ManagementClient(t.name, mgmt ? { ...t.management, baseUrl: mgmt } : t.management, {});
    const session = await AmqpSession.open(t);
    try {
      await replaceQueueLossless(
        session,
        { report: quorumReportFor(t), after: queue({ "x-max-priority": 5 }), bindings: [route], holdBindings: [], queueDone: false, old: queue({}), unacked: async (q) => (await heldNow(http, t)).get(q)?.unacked },
        () => undefined,
      );
      return undefined;
    } catch (e) {
      return e as Error;
    } finally {
      await session.close();
    }
  }

  it("a message with a CC header is moved to the new queue alone: the default exchange would route a copy to the queue its CC names", async () => {
    const f = files({}, {});
    expect((await runCli(["apply", "-f", f.before])).code).toBe(0);
    // A user's queue whose name a sender put in CC; the service exchange routes no key to it.
    await withChannel(f.async, (ch) => ch.assertQueue("audit", { durable: true }));
    const held = ids("cc", 3);
    await withChannel(f.async, async (ch) => {
      for (const id of held) ch.publish("mplogin", "mplogin.async.x", Buffer.from(id), { persistent: true, messageId: id, headers: { CC: ["audit"], trace: id } });
      await ch.checkQueue(Q);
    });
    expect(await messageCount(f.async, "audit")).toBe(0);
    await replaced(f.after({ "x-max-priority": 5 }));
    expect(await messageCount(f.async, "audit")).toBe(0);
    const moved = await withChannel(f.async, async (ch) => {
      const out: { id: string; headers: unknown }[] = [];
      for (let m = await ch.get(Q, { noAck: true }); m; m = await ch.get(Q, { noAck: true })) out.push({ id: String(m.properties.messageId), headers: m.properties.headers });
      return out;
    });
    expectExactlyOnce(moved.map((m) => m.id), held);
    // The rest of the headers travel with the message.
    for (const m of moved) expect(m.headers).toEqual({ trace: m.id });
  });

  it("a header amqplib reads but cannot write as it read it (a double of -1e300) is moved as the double it was, no copy left", async () => {
    const f = files({}, {});
    expect((await runCli(["apply", "-f", f.before])).code).toBe(0);
    const held = ids("dbl", 300);
    await withChannel(f.async, async (ch) => {
      held.forEach((id, i) =>
        ch.publish("mplogin", "mplogin.async.x", Buffer.from(id), { persistent: true, messageId: id, headers: i === 150 ? { score: { "!": "double", value: -1e300 }, high: { "!": "double", value: 1e20 }, top: { "!": "double", value: 1e300 } } : { n: i } }),
      );
      await ch.checkQueue(Q);
    });
    await replaced(f.after({ "x-max-priority": 5 }));
    expect(await messageCount(f.async, HOLD).catch(() => 0)).toBe(0);
    const moved = await withChannel(f.async, async (ch) => {
      const out: { id: string; headers: unknown }[] = [];
      for (let m = await ch.get(Q, { noAck: true }); m; m = await ch.get(Q, { noAck: true })) out.push({ id: String(m.properties.messageId), headers: m.properties.headers });
      return out;
    });
    expectExactlyOnce(moved.map((m) => m.id), held);
    // Beyond a 64-bit integer's range either way: moved as the doubles they were, not refused as integers too wide.
    expect(moved.find((m) => m.id === held[150])?.headers).toEqual({ score: -1e300, high: 1e20, top: 1e300 });
  });

  it("a Celery task's header integers are moved in widths py-amqp reads as sent: its worker reads the task, not a table it cannot parse", async (ctx) => {
    PY_AMQP.skipOrFail(ctx);
    const f = files({}, {});
    expect((await runCli(["apply", "-f", f.before])).code).toBe(0);
    const amqpPort = new URL(amqpUrl(f.async)).port || 5672;
    const connect = `import amqp, json, sys
c = amqp.Connection(host="${broker().host}:${amqpPort}", userid="${broker().user}", password="${broker().password}", virtual_host=sys.argv[1])
c.connect(); ch = c.channel()`;
    // What Celery sends (timelimit, retries), and the widths amqplib would have chosen: -3 and 5 a
    // byte, 600 a short (py-amqp reads an `s` as a short string), 70000 an int. (py-amqp writes an integer
    // beyond 32 bits with the tag `L`, which amqplib cannot read: the test above.)
    const headers = { task: "mplogin.async.note", timelimit: [600, 300], retries: 0, neg: -3, five: 5, mid: 70000, half: 2.5, nested: { n: -200, list: [1, -1, 32767] } };
    const py = (body: string) => new Promise<string>((resolve, reject) => execFile(PYTHON, ["-c", `${connect}\n${body}`, f.async], (err, o, e) => (err ? reject(new Error(e)) : resolve(o))));
    await py(`ch.basic_publish(amqp.Message(b"t", message_id="celery-1", application_headers=json.loads(${JSON.stringify(JSON.stringify(headers))}), delivery_mode=2), exchange="mplogin", routing_key="mplogin.async.note")\nch.close(); c.close()`);
    await replaced(f.after({ "x-max-priority": 5 }));
    const read = JSON.parse(await py(`m = ch.basic_get("${Q}", no_ack=True)\nprint(json.dumps({"id": m.properties.get("message_id"), "headers": m.properties.get("application_headers")}))\nch.close(); c.close()`));
    expect(read).toEqual({ id: "celery-1", headers });
  });

  it("a message amqplib cannot write back at all stops the replace at it: none lost, none copied, each try the same", async (ctx) => {
    PY_AMQP.skipOrFail(ctx);
    const f = files({}, {});
    expect((await runCli(["apply", "-f", f.before])).code).toBe(0);
    const held = ids("big", 50);
    await withChannel(f.async, async (ch) => {
      for (const id of held.slice(0, 25)) ch.publish("mplogin", "mplogin.async.x", Buffer.from(id), { persistent: true, messageId: id });
      await ch.checkQueue(Q);
    });
    // Headers larger than amqplib's 64 KiB encoding buffer, within the broker's frame size: another
    // client (py-amqp here) publishes them, amqplib reads them and cannot write them again.
    const py = `import amqp, sys
c = amqp.Connection(host="${broker().host}:${new URL(amqpUrl(f.async)).port || 5672}", userid="${broker().user}", password="${broker().password}", virtual_host=sys.argv[1])
c.connect(); ch = c.channel()
ch.basic_publish(amqp.Message(b"${held[25]}", message_id="${held[25]}", application_headers={"blob": "x" * 70000}, delivery_mode=2), exchange="mplogin", routing_key="mplogin.async.x")
ch.close(); c.close()`;
    await new Promise<void>((resolve, reject) => execFile(PYTHON, ["-c", py, f.async], (err, _o, e) => (err ? reject(new Error(e)) : resolve())));
    await withChannel(f.async, async (ch) => {
      for (const id of held.slice(26)) ch.publish("mplogin", "mplogin.async.x", Buffer.from(id), { persistent: true, messageId: id });
      await ch.checkQueue(Q);
    });
    for (let attempt = 0; attempt < 2; attempt++) {
      const r = await runCli(["apply", "-f", f.after({ "x-max-priority": 5 }), "--allow-destructive"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`replace queue ${Q.replace(".", "\\.")}: a message \\(message_id ${held[25]}\\) cannot be moved: topo's AMQP client cannot write it back \\(.*\\); \\d+ messages? could not be moved and the old queue ${Q.replace(".", "\\.")} keeps them \\(its workers still take them from there\\); meanwhile its bindings route new messages to topo\\.hold\\.${Q.replace(".", "\\.")}, where no worker takes them until an apply finishes the replace; none was lost or copied`));
      expect(r.stderr).toMatch(/hint: topo cannot move that message, so every apply stops at it/);
      // Everything is in the old queue or the holding queue, each message once.
      const all = [...(await drainIds(f.async, Q, true)), ...(await drainIds(f.async, HOLD, true))];
      expectExactlyOnce(all, held);
    }
  });

  // The timestamp property is a 64-bit integer too (a message stamped in nanoseconds): moved, three
  // stamped ...781 to ...783 came back all ...768, and apply said they were moved.
  for (const [what, special, said, shown] of [
    ["header holds an integer beyond 2^53", { headers: { eventid: 1234567890123456789n } }, "its header eventid holds a whole number beyond 2^53 (", '"eventid":1234567890123456789'],
    ["timestamp property is beyond 2^53", { timestamp: 1700000000123456781n }, "its timestamp property is beyond 2^53 (", '"timestamp":1700000000123456781'],
  ] as const)
  it(`a message whose ${what}, which topo's AMQP client would read rounded, is not moved: the replace stops at it, and it stays as it was`, async () => {
    const f = files({}, {});
    expect((await runCli(["apply", "-f", f.before])).code).toBe(0);
    const held = ids("hdr", 30);
    const publishAll = async (special: (id: string) => Promise<void>) => {
      await withChannel(f.async, async (ch) => {
        for (const id of held.slice(0, 10)) ch.publish("mplogin", "mplogin.async.x", Buffer.from(id), { persistent: true, messageId: id });
        await ch.checkQueue(Q);
      });
      await special(held[10]!);
      await withChannel(f.async, async (ch) => {
        for (const id of held.slice(11)) ch.publish("mplogin", "mplogin.async.x", Buffer.from(id), { persistent: true, messageId: id });
        await ch.checkQueue(Q);
      });
    };
    // The management API writes a JSON integer as a signed 64-bit one, exactly.
    await publishAll(async (id) => {
      const body = { properties: { message_id: id, delivery_mode: 2, ...special }, routing_key: "mplogin.async.x", payload: id, payload_encoding: "string" };
      const res = await fetch(`${broker().mgmtBase}/api/exchanges/${vh(f.async)}/mplogin/publish`, {
        method: "POST",
        headers: { authorization: `Basic ${Buffer.from(`${broker().user}:${broker().password}`).toString("base64")}`, "content-type": "application/json" },
        body: JSON.stringify(body, (_k, v: unknown) => (typeof v === "bigint" ? `@@${v}@@` : v)).replace(/"@@(\d+)@@"/g, "$1"),
      });
      expect(await res.json()).toEqual({ routed: true });
    });
    const r = await runCli(["apply", "-f", f.after({ "x-max-priority": 5 }), "--allow-destructive"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`a message (message_id ${held[10]}) cannot be moved: topo's AMQP client cannot write it back (${said}`);
    expect(r.stderr).toMatch(/none was lost or copied/);
    // The message is as it was published: the management API shows the exact integer.
    const got = await fetch(`${broker().mgmtBase}/api/queues/${vh(f.async)}/${encodeURIComponent(Q)}/get`, {
      method: "POST",
      headers: { authorization: `Basic ${Buffer.from(`${broker().user}:${broker().password}`).toString("base64")}`, "content-type": "application/json" },
      body: JSON.stringify({ count: 100, ackmode: "ack_requeue_true", encoding: "auto" }),
    });
    expect(await got.text()).toContain(shown);
    expectExactlyOnce([...(await drainIds(f.async, Q, true)), ...(await drainIds(f.async, HOLD, true))], held);
  });

  it("a message with a header amqplib cannot read at all (py-amqp's 64-bit integer, tag L) stops the replace with what to do, exit 1: never a silent exit 0", async (ctx) => {
    PY_AMQP.skipOrFail(ctx);
    const f = files({}, {});
    expect((await runCli(["apply", "-f", f.before])).code).toBe(0);
    const held = ids("tagL", 12);
    const py = `import amqp, sys
c = amqp.Connection(host="${broker().host}:${new URL(amqpUrl(f.async)).port || 5672}", userid="${broker().user}", password="${broker().password}", virtual_host=sys.argv[1])
c.connect(); ch = c.channel()
for i, id in enumerate(sys.argv[2:]):
    ch.basic_publish(amqp.Message(id.encode(), message_id=id, application_headers={"eventid": 1234567890123456789} if i == 5 else {"n": i}, delivery_mode=2), exchange="mplogin", routing_key="mplogin.async.x")
ch.close(); c.close()`;
    await new Promise<void>((resolve, reject) => execFile(PYTHON, ["-c", py, f.async, ...held], (err, _o, e) => (err ? reject(new Error(e)) : resolve())));
    const r = await runCli(["apply", "-f", f.after({ "x-max-priority": 5 }), "--allow-destructive"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/move messages from mplogin\.async to topo\.hold\.mplogin\.async -> Unexpected type tag "L"/);
    expect(r.stderr).toContain("hint: a message holds a header value that topo's AMQP client (amqplib) cannot read");
    // Nothing lost: what was fetched went back with the connection.
    expect((await messageCount(f.async, Q)) + (await messageCount(f.async, HOLD))).toBe(12);
  });

  it("a message that expires while it waits in the holding queue is dead-lettered as the queue would, not dropped", async () => {
    const f = await appliedWithDeadLetters("fanout", "");
    // Each message's own expiration counts again from its move, and a replace holds them longer:
    // it waits one statistics interval (5 s) before it deletes the old queue.
    const held = ids("ttl", 20);
    await publishExpiring(f.async, held);
    await replaced(f.after({ "x-dead-letter-exchange": "dlx", "x-max-priority": 5 }));
    // What has not expired yet in the queue does so within a second; every one is dead-lettered.
    await until("every message to be dead-lettered", async () => (await messageCount(f.async, "dead")) === held.length);
    expectExactlyOnce(await drainIds(f.async, "dead"), held);
  }, 120_000);

  it("a message that expires in the holding queue is dead-lettered by its own routing key, which a topic dead-letter exchange routes", async () => {
    // "strays": what a dead-letter by the holding queue's name would reach, were it used.
    const f = await appliedWithDeadLetters("topic", "mplogin.async.#", { strays: "topo.#" });
    const held = ids("tkey", 200);
    await publishExpiring(f.async, held);
    const r = await replaced(f.after({ "x-dead-letter-exchange": "dlx", "x-max-priority": 5 }));
    await until("every message to be dead-lettered", async () => (await messageCount(f.async, "dead")) === held.length);
    const dead = await withChannel(f.async, async (ch) => {
      const out: { id: string; key: string; from: unknown }[] = [];
      for (let m = await ch.get("dead", { noAck: true }); m; m = await ch.get("dead", { noAck: true })) {
        out.push({ id: String(m.properties.messageId), key: m.fields.routingKey, from: (m.properties.headers?.["x-death"] as { queue: string }[] | undefined)?.[0]?.queue });
      }
      return out;
    });
    expectExactlyOnce(dead.map((d) => d.id), held);
    // Those that expired while they waited in the holding queue (most, on an idle machine: the
    // replace holds them there for a statistics interval; none where apply started after they
    // expired) went by their own key.
    const inHold = dead.filter((x) => x.from === HOLD);
    for (const d of inHold) expect(d.key).toBe("mplogin.async.x");
    expect(await messageCount(f.async, "strays")).toBe(0);
    // And apply says how many expired there: it said only how many it moved back, and the rest seemed lost.
    const said = /; (\d+) messages? topo had moved into topo\.hold\.mplogin\.async expired there before it moved (?:it|them) back \((?:its|their) own expiration passed during the replace\), and (?:was|were) dead-lettered to exchange "dlx", as in the queue/.exec(r.stderr);
    expect(inHold.length === 0 ? said : Number(said?.[1]), r.stderr).toBe(inHold.length === 0 ? null : inHold.length);
  }, 120_000);

  it("plan says when messages it moves back would be dead-lettered by the queue's name into nothing, as the broker then does", async () => {
    // Task names only, as a retry scheme per task routes them (*.async.* matches no mplogin.async).
    const f = await appliedWithDeadLetters("topic", "*.async.*");
    const held = ids("dlk", 20);
    await publishIds(f.async, held);
    const after = f.after({ "x-dead-letter-exchange": "dlx", "x-max-priority": 5 });
    const plan = await runCli(["plan", "-f", after]);
    expect(plan.stdout).toContain('! dead letters: a message this replace moves back carries routing key mplogin.async (the queue\'s name: it comes in by the default exchange), and exchange "dlx"');
    await replaced(after);
    // What plan said: each moved message the workers reject is dead-lettered by mplogin.async, and dropped.
    const rejected = await withChannel(f.async, async (ch) => {
      let n = 0;
      for (let m = await ch.get(Q); m; m = await ch.get(Q), n++) ch.nack(m, false, false);
      return n;
    });
    expect(rejected).toBe(held.length);
    await new Promise((r) => setTimeout(r, 500));
    expect(await messageCount(f.async, "dead")).toBe(0);
    // Bound with the queue's name too, as the note says: plan is quiet.
    await withChannel(f.async, (ch) => ch.bindQueue("dead", "dlx", Q));
    expect((await runCli(["plan", "-f", f.after({ "x-dead-letter-exchange": "dlx" })])).stdout).not.toContain("dead letters:");
  }, 120_000);

  it("a policy's dead-letter routing key goes to the holding queue too: what expires there reaches the policy's target", async () => {
    const f = files({}, {});
    expect((await runCli(["apply", "-f", f.before])).code).toBe(0);
    await withChannel(f.async, async (ch) => {
      await ch.assertExchange("retry", "direct", { durable: true });
      await ch.assertQueue("retryq", { durable: true });
      await ch.bindQueue("retryq", "retry", "retry");
    });
    await api("PUT", `/api/policies/${vh(f.async)}/userdlx`, { pattern: "^mplogin\\.async$", "apply-to": "queues", definition: { "dead-letter-exchange": "retry", "dead-letter-routing-key": "retry" }, priority: 1 });
    const held = ids("pkey", 200);
    await publishExpiring(f.async, held);
    await replaced(f.after({ "x-max-priority": 5 }));
    await until("every message to be dead-lettered", async () => (await messageCount(f.async, "retryq")) === held.length);
    expectExactlyOnce(await drainIds(f.async, "retryq"), held);
  }, 120_000);

  it("a move the broker refuses stops with its reason, leaves no message in two places, and re-runs finish it", async () => {
    const f = files({}, {});
    const after = { "x-max-length": 5, "x-overflow": "reject-publish" };
    expect((await runCli(["apply", "-f", f.before])).code).toBe(0);
    const held = ids("old", 15);
    await publishIds(f.async, held);

    // The mover alone, without the limits the plan gives it: what a limit set after the plan looks
    // like. The broker nacks 10 of the 15 moved back.
    const session = await AmqpSession.open(target(f.async));
    const err = await replaceQueueLossless(session, { report: quorumReportFor(target(f.async)), after: queue(after), bindings: [route], holdBindings: [], queueDone: false, old: queue({}) }, () => undefined).then(
      () => undefined,
      (e: Error) => e,
    );
    await session.close();
    expect(err?.message).toBe(
      "cluster async: replace queue mplogin.async: queue mplogin.async refused 10 messages (the broker gives no reason with a nack: a limit topo did not foresee, or the broker refusing publishes); 10 messages could not be moved and they wait in topo.hold.mplogin.async; none was lost or copied",
    );
    expect(await messageCount(f.async, Q)).toBe(5);
    expect(await messageCount(f.async, HOLD)).toBe(10);

    // Each re-run moves what fits (and says so), the workers take the rest, until it is done.
    const seen = await drainIds(f.async, Q);
    const plan = await runCli(["plan", "-f", f.after(after)]);
    // Plan reads statistics, which for a queue this new may not count its messages yet.
    expect(plan.stdout).toMatch(/because finishing an interrupted replace: (\d+|some) messages? waits? in topo\.hold\.mplogin\.async/);
    // The queue has its new shape: what is left deletes nothing, so the hint's plain "run topo
    // apply again" is enough (it was refused as a destructive replace).
    const again = await runCli(["apply", "-f", f.after(after)]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("replace queue mplogin.async: mplogin.async is full at x-max-length 5; 5 messages could not be moved and they wait in topo.hold.mplogin.async; none was lost or copied");
    expect(again.stderr).toContain("then run topo apply again: it moves the rest (the queue has its new shape, so this needs no --allow-destructive)");
    seen.push(...(await drainIds(f.async, Q)));
    const last = await runCli(["apply", "-f", f.after(after)]);
    expect(last.stderr).not.toMatch(/Error/);
    expect(last.code).toBe(0);
    expect(await getQueue(f.async, HOLD)).toBeUndefined();
    seen.push(...(await drainIds(f.async, Q)));
    expectExactlyOnce(seen, held);
    expect((await runCli(["plan", "-f", f.after(after), "--detailed-exitcode"])).code).toBe(0);
  });

  it("finishing an interrupted replace drops nothing: what the queues hold may be moved messages, so a copy may stay, never a message go", async () => {
    const f = files({}, {});
    expect((await runCli(["apply", "-f", f.before])).code).toBe(0);
    // An interrupted replace whose new queue exists. The holding queue holds "a" twice and "b";
    // the new queue holds "b". Each may be a copy of the other, or a message of its own with the
    // same id and body: nothing tells them apart, so all are kept. "c" has no id.
    const send = (ch: amqplib.Channel, q: string, body: string, messageId?: string) => ch.sendToQueue(q, Buffer.from(body), { persistent: true, messageId });
    await withChannel(f.async, async (ch) => {
      await ch.assertQueue(HOLD, { durable: true });
      send(ch, HOLD, "a", "a");
      send(ch, HOLD, "b", "b");
      send(ch, HOLD, "a", "a");
      send(ch, HOLD, "c");
      send(ch, Q, "b", "b");
      send(ch, Q, "c");
      await ch.checkQueue(Q);
    });
    const session = await AmqpSession.open(target(f.async));
    const out = await replaceQueueLossless(session, { report: quorumReportFor(target(f.async)), after: queue({}), bindings: [route], holdBindings: [], queueDone: true, old: queue({}) }, () => undefined);
    await session.close();
    expect(out).toEqual({ movedBack: 4, duplicatesDropped: 0, holds: 6 });
    expect(await getQueue(f.async, HOLD)).toBeUndefined();
    const bodies = await withChannel(f.async, async (ch) => {
      const got: string[] = [];
      for (let m = await ch.get(Q, { noAck: true }); m; m = await ch.get(Q, { noAck: true })) got.push(m.content.toString());
      return got;
    });
    expect(bodies.sort()).toEqual(["a", "a", "b", "b", "c", "c"]);
  });

  it("SIGTERM while a batch of moved messages awaits its confirms: the batch finishes, and the next apply keeps every message once, no copies", async () => {
    const { f, held } = await appliedHolding(20000);
    const child = execFile(process.execPath, [CLI, "apply", "-f", f.after({ "x-queue-version": 2 }), "--allow-destructive"]);
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((res) => child.on("close", (code) => res(code)));
    // The move publishes 256 messages at a time, and acknowledges them at the source once all are
    // confirmed: a count of the holding queue between two multiples of 256 is a batch under way.
    const conn = await amqplib.connect(amqpUrl(f.async));
    let midBatch = false;
    for (const deadline = Date.now() + 30_000; !midBatch && Date.now() < deadline; ) {
      const ch = await conn.createChannel();
      ch.on("error", () => undefined);
      const n = (await ch.checkQueue(HOLD).catch(() => undefined))?.messageCount ?? 0;
      midBatch = n % 256 !== 0;
      if (midBatch) child.kill("SIGTERM");
      await ch.close().catch(() => undefined);
    }
    await conn.close();
    expect(midBatch).toBe(true);
    expect(await exited).toBe(130);
    // The queue is left half-way (its bindings on the holding queue): the report says so, not only a count.
    expect(stderr).toMatch(/interrupted: cluster async: \d+ of 1 change was confirmed made \(writes sent when it stopped may have been made too\); run topo apply again now to finish/);
    expect(stderr).toContain(`queue ${Q} was being replaced: its bindings and messages may be on ${HOLD}, where new messages wait and no worker takes them, until apply finishes the replace`);
    const again = await runCli(["apply", "-f", f.after({ "x-queue-version": 2 }), "--allow-destructive"]);
    expect(again.code, again.stderr).toBe(0);
    expectExactlyOnce(await drainIds(f.async, Q), held);
    // 20,000 messages published, moved out and back twice and drained: on a loaded 2-core machine
    // that took more than the default minute (a CI run beside four other test sessions).
  }, 240_000);

  it("a queue with x-expires is kept alive while messages are moved back into it: a publish is no use of it, and none goes with it", async () => {
    // Unused for 3 s the broker deletes the queue with what it holds; moving 12,000 messages back
    // takes longer than that on this machine. A worker's passive declares keep it (as its
    // consumer would) until apply starts writing, and again once the replace is done (on a busy
    // machine apply's read, and its read back, can each outlast the expiry): only topo keeps it
    // alive while it moves the messages, and while it waits for the statistics of the emptied old
    // queue (emitted every 5 s).
    const f = files({ "x-expires": 3000 }, {});
    expect((await runCli(["apply", "-f", f.before])).code).toBe(0);
    const conn = await amqplib.connect(amqpUrl(f.async));
    try {
      const ch = await conn.createChannel();
      const keepAlive = () => setInterval(() => void ch.checkQueue(Q).catch(() => undefined), 300);
      let alive: NodeJS.Timeout | undefined = keepAlive();
      const held = ids("old", 12000);
      await publishIds(f.async, held, 0);
      expect((await ch.checkQueue(Q)).messageCount).toBe(12000);
      const child = execFile(process.execPath, [CLI, "apply", "-f", f.after({ "x-expires": 3000, "x-max-priority": 2 }), "--allow-destructive"]);
      let stderr = "";
      let back = false;
      child.stderr?.on("data", (d: Buffer) => {
        stderr += d.toString();
        if (alive && stderr.includes("cluster async: applying 1 change")) {
          clearInterval(alive);
          alive = undefined;
        }
        if (!back && stderr.includes(`queue ${Q} replaced; `)) {
          back = true;
          alive = keepAlive();
        }
      });
      const code = await new Promise<number | null>((res) => child.on("close", (c) => res(c)));
      clearInterval(alive);
      expect(code, stderr).toBe(0);
      expect(stderr).toContain("12000 messages moved back");
      expectExactlyOnce(await drainIds(f.async, Q), held);
    } finally {
      await conn.close().catch(() => undefined);
    }
  }, 180_000);

  it("messages the queue held before the replace are never taken for copies of one another, however alike", async () => {
    const f = files({}, {});
    expect((await runCli(["apply", "-f", f.before])).code).toBe(0);
    await withChannel(f.async, async (ch) => {
      // Ten distinct messages that look alike (one id, one body), and five others.
      for (let i = 0; i < 10; i++) ch.publish("mplogin", "mplogin.async.x", Buffer.from("ping"), { persistent: true, correlationId: "same" });
      for (let i = 0; i < 5; i++) ch.publish("mplogin", "mplogin.async.x", Buffer.from(`other-${i}`), { persistent: true, messageId: `other-${i}` });
      await ch.checkQueue(Q);
    });
    const r = await runCli(["apply", "-f", f.after({ "x-max-length": 1000 }), "--allow-destructive"]);
    expect(r.stderr).not.toMatch(/Error|duplicate/);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("15 messages moved back");
    expect(await messageCount(f.async, Q)).toBe(15);
  });

  it("a message published again and again with one id and body (a fixed Celery task_id) while the queue is replaced: none is taken for a copy and dropped", async () => {
    // A twin in the holding queue proves nothing when the message is sent more than once: the
    // ones published after the unbind landed there too, and each was taken for a copy of an older
    // one in the queue (14 of 3,753 gone while apply said none was lost).
    const f = files({}, {});
    expect((await runCli(["apply", "-f", f.before])).code).toBe(0);
    const same = { persistent: true, messageId: "refresh-42", correlationId: "refresh-42" };
    await withChannel(f.async, async (ch) => {
      for (let i = 0; i < 3000; i++) ch.publish("mplogin", "mplogin.async.refresh", Buffer.from("refresh"), same);
      await ch.checkQueue(Q);
    });
    let confirmed = 0;
    let stop = false;
    const conn = await amqplib.connect(amqpUrl(f.async));
    const publisher = (async () => {
      const ch = await conn.createConfirmChannel();
      while (!stop) {
        const acks = await Promise.all(
          Array.from({ length: 20 }, () => new Promise<boolean>((res) => ch.publish("mplogin", "mplogin.async.refresh", Buffer.from("refresh"), same, (e) => res(!e)))),
        );
        confirmed += acks.filter(Boolean).length;
        await new Promise((res) => setTimeout(res, 5));
      }
    })();
    try {
      const r = await runCli(["apply", "-f", f.after({ "x-max-length": 1_000_000 }), "--allow-destructive"]);
      stop = true;
      await publisher;
      expect(r.stderr).not.toMatch(/Error/);
      expect(r.code).toBe(0);
    } finally {
      stop = true;
      await publisher.catch(() => undefined);
      await conn.close().catch(() => undefined);
    }
    expect(confirmed).toBeGreaterThan(100);
    // At-least-once: a copy routed to both queues during the switch may stay; none may be missing.
    expect(await messageCount(f.async, Q)).toBeGreaterThanOrEqual(3000 + confirmed);
  }, 120_000);

  it("a client publishing straight to the queue's name during the replace is named as the cause, not a busy broker; a re-run once it stops keeps every message once", async () => {
    // The old queue, unbound and emptied by the move, kept gaining messages: its statistics never
    // matched a count taken once, and apply blamed a busy broker for 20 s.
    const { f, held } = await appliedHolding(2000);
    const conn = await amqplib.connect(amqpUrl(f.async));
    const confirmed: string[] = [];
    let stop = false;
    const publisher = (async () => {
      const ch = await conn.createConfirmChannel();
      for (let n = 0; !stop; ) {
        const batch = Array.from({ length: 5 }, () => `direct-${n++}`);
        const acks = await Promise.all(batch.map((id) => new Promise<boolean>((res) => ch.publish("", Q, Buffer.from(id), { persistent: true, messageId: id }, (e) => res(!e)))));
        batch.forEach((id, i) => acks[i] && confirmed.push(id));
        await new Promise((res) => setTimeout(res, 5));
      }
    })();
    let r: CliResult;
    try {
      r = await runCli(["apply", "-f", f.after({ "x-max-length": 1_000_000 }), "--allow-destructive"]);
    } finally {
      stop = true;
      await publisher.catch(() => undefined);
      await conn.close().catch(() => undefined);
    }
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/reached the old queue during the replace, though it has no binding left \(a client publishing straight to its name|messages arrived in it during the replace \(published straight to its name\)/);
    expect(r.stderr).toContain("no message was lost");
    expect(r.stderr).not.toMatch(/busy/);
    await replaced(f.after({ "x-max-length": 1_000_000 }));
    expectExactlyOnce(await drainIds(f.async, Q), [...held, ...confirmed]);
  }, 120_000);

  it("a move out of a quorum queue that stops half-way gives back what it could not move without counting a delivery: none dropped at its x-delivery-limit", async () => {
    // 3.10.8 counts a requeue as a delivery, as 4.0.5 does (rabbitmq4.test.ts runs the same there).
    const v = uniqueName("async");
    vhosts.push(v);
    await createVhost(v);
    const { error, moved, kept, holdType } = await stoppedQuorumMove(broker().amqpUrl, broker().mgmtUrl, v);
    expect(error).toMatch(/8 messages could not be moved and the old queue mplogin\.async keeps them \(its workers still take them from there\); meanwhile its bindings route new messages to topo\.hold\.mplogin\.async, where no worker takes them until an apply finishes the replace; none was lost or copied/);
    // What waits there is replicated and kept on disk as it was in the quorum queue.
    expect(holdType).toBe("quorum");
    expect([...moved, ...kept].map((m) => m.id).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `m${i}`));
    // The holding queue (a quorum queue) counts its own deliveries: none yet (3.10 writes the
    // count 0), not the old queue's 1 of the two moved first.
    expect(moved.map((m) => m.count ?? 0)).toEqual([0, 0]);
  });

  it("a quorum queue with x-delivery-limit 0 is never peeked, so no message published during its replace is dropped by a requeue", async () => {
    const sync = uniqueName("sync");
    const async = uniqueName("async");
    vhosts.push(sync, async);
    const file = (args: Args) => writeTopology({ sync, async, services: [{ name: "mplogin", sync: false, async: { type: "quorum", arguments: args } }] });
    expect((await runCli(["apply", "-f", file({ "x-delivery-limit": 0 })])).code).toBe(0);
    const held = ids("old", 20);
    await publishIds(async, held);
    const pub = startPublisher(async, "live", 1_000_000);
    const r = await runCli(["apply", "-f", file({ "x-delivery-limit": 0, "x-max-length": 5000 }), "--allow-destructive"]);
    await pub.stop();
    expect(r.stderr, r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    expect(pub.confirmed.length).toBeGreaterThan(0);
    // At-least-once: a copy routed to both queues during the switch may stay; none may be missing.
    const got = new Set(await drainIds(async, Q));
    expect([...held, ...pub.confirmed].filter((id) => !got.has(id))).toEqual([]);
  });

  /** The mover alone, as apply runs it after a plan that saw no policy on the holding queue (no limits given). */
  async function moverAfterPolicy(definition: Record<string, unknown>, expiration?: string): Promise<{ f: ReturnType<typeof files>; held: string[]; err?: BrokerError }> {
    const { f, held } = await appliedHolding(300, 0, expiration);
    expect((await api("PUT", `/api/policies/${vh(f.async)}/holdlim`, { pattern: "^topo\\.hold\\.", definition, "apply-to": "queues", priority: 50 })).status).toBeLessThan(300);
    const session = await AmqpSession.open(target(f.async));
    const err = await replaceQueueLossless(session, { report: quorumReportFor(target(f.async)), after: queue({ "x-max-length": 1000 }), bindings: [route], holdBindings: [], queueDone: false, old: queue({}) }, () => undefined).then(
      () => undefined,
      (e: BrokerError) => e,
    );
    await session.close();
    return { f, held, err };
  }

  it("a length limit a policy puts on the holding queue once plan has judged it (during the replace) stops the move: the holding queue refuses what does not fit, and nothing is lost", async () => {
    const { f, held, err } = await moverAfterPolicy({ "max-length": 100 });
    expect(err?.message).toMatch(/^cluster async: replace queue mplogin\.async: queue topo\.hold\.mplogin\.async refused \d+ messages?.*; 200 messages could not be moved and the old queue mplogin\.async keeps them \(its workers still take them from there\); meanwhile its bindings route new messages to topo\.hold\.mplogin\.async, where no worker takes them until an apply finishes the replace; none was lost or copied$/);
    expect(await messageCount(f.async, Q)).toBe(200);
    expect(await messageCount(f.async, "topo.hold.mplogin.async")).toBe(100);
    expect(held).toHaveLength(300);
  });

  it("a TTL a policy puts on the holding queue during the replace drops what topo moved there: apply says so, exit 1 (messages_lost), never that the broker matches", async () => {
    const { f, err } = await moverAfterPolicy({ "message-ttl": 1 });
    expect(err?.code).toBe("messages_lost");
    expect(err?.message).toMatch(
      /^cluster async: replace queue mplogin\.async: the queue has its new shape, but (\d+) of the 300 messages topo moved into topo\.hold\.mplogin\.async were gone when it moved them back \(\d+ came out\): the broker dropped them there, which a policy or operator policy that came during the replace does \(a length limit, a message TTL without a dead-letter exchange\)$/,
    );
    const gone = Number(/but (\d+) of/.exec(err?.message ?? "")?.[1]);
    expect(gone).toBeGreaterThan(0);
    expect(await messageCount(f.async, Q)).toBe(300 - gone);
  });

  // Every message with an expiration of its own was excused from the count, however far off its
  // expiration: messages that expire in an hour, dropped there by the policy, went with no word.
  it("messages whose own expiration is far off are counted: a TTL a policy puts on the holding queue that drops them is said as a loss", async () => {
    const { f, err } = await moverAfterPolicy({ "message-ttl": 1 }, "3600000");
    expect(err?.code).toBe("messages_lost");
    const gone = Number(/but (\d+) of the 300 messages topo moved into topo\.hold\.mplogin\.async were gone when it moved them back/.exec(err?.message ?? "")?.[1]);
    expect(gone).toBeGreaterThan(0);
    expect(await messageCount(f.async, Q)).toBe(300 - gone);
  });

  it("a consumer that attaches during the replace makes the broker refuse the delete; its messages are kept", async () => {
    const { f, held } = await appliedHolding(10);
    // The mover alone, with a worker attached that the plan's check did not see.
    const worker = await stuckConsumer(f.async, 4);
    await statsShow(f.async, Q, () => worker.held.length === 4);
    const session = await AmqpSession.open(target(f.async));
    const err = await replaceQueueLossless(session, { report: quorumReportFor(target(f.async)), after: queue({ "x-max-length": 1000 }), bindings: [route], holdBindings: [], queueDone: false, old: queue({}) }, () => undefined).then(
      () => undefined,
      (e: Error) => e,
    );
    await session.close();
    expect(err?.message).toMatch(/^cluster async: replace queue mplogin\.async: the broker refused to delete the old queue \(406 PRECONDITION_FAILED - queue 'mplogin\.async' in vhost '[^']+' in use\): a consumer attached to it during the replace; it may have taken a message published while the bindings switched, whose copy waits in topo\.hold\.mplogin\.async and will be delivered again \(at least once\); no message was lost: the ones moved so far wait in topo\.hold\.mplogin\.async$/);
    // The worker stops; its 4 go back to the old queue. A re-run finishes the replace with all 10.
    await finishAfterRelease(f, held, () => worker.close(), { "x-max-length": 1000 });
  });


  const FETCHED_4 =
    "cluster async: replace queue mplogin.async: the broker counts 4 messages of the old queue fetched and not acknowledged by a client that is no consumer (basic.get without ack, or a consumer cancelled on a channel still open, as a Celery worker in warm shutdown holds its reserved tasks until it exits); deleting the queue would lose them, so it was left; no message was lost: the ones moved so far wait in topo.hold.mplogin.async";

  it("plan and apply count what a client fetched a moment before, though the statistics lag behind the fetch: apply refuses before writing, nothing is lost", async () => {
    const { f, held } = await appliedHolding(10);
    const conn = await fetchedBy(f.async, 4);
    const proxy = await statsProxy(f.async, (n) => JSON.stringify({ name: Q, messages: 10, messages_ready: 10, messages_unacknowledged: 0, consumers: 0, message_bytes: 100, reductions: 1000 + n }));
    try {
      const file = f.after({ "x-max-priority": 5 }, `http://${broker().user}:${broker().password}@${new URL(proxy.url).host}`);
      const plan = await runCli(["plan", "-f", file]);
      expect(plan.stdout).toContain("holds 10 messages");
      const before = await brokerState(f.async);
      const r = await runCli(["apply", "-f", file, "--allow-destructive"]);
      refusedBeforeWriting(r);
      expect(r.stderr).toContain("  cluster async: queue mplogin.async (holds 10 messages):\n    4 messages are fetched but not acknowledged: they are lost with the old queue (basic.get without ack, or a consumer cancelled on a channel still open, as a Celery worker in warm shutdown holds its reserved tasks until it exits)\n");
      expect(await brokerState(f.async)).toEqual(before);
    } finally {
      proxy.close();
    }
    await conn.close();
    await finishesWithAll(f, held, { "x-max-priority": 5 });
  }, 120_000);

  it("a client that fetched every message a moment before the replace: the move finds none, yet they are counted, the queue is left, and nothing is lost", async () => {
    // The move found the queue empty, so nothing was counted, and the if-empty delete (ready
    // messages only) took the 10 the client held with the queue.
    const { f, held } = await appliedHolding(10);
    const conn = await fetchedBy(f.async, 10);
    const err = await moverAlone(f.async);
    expect(err?.message).toBe(FETCHED_4.replace("4 messages", "10 messages"));
    expect(await messageCount(f.async, HOLD)).toBe(0);
    await conn.close();
    expect(await messageCount(f.async, Q)).toBe(10);
    await finishesWithAll(f, held, { "x-max-priority": 5 });
  }, 120_000);

  // Found by trying: a client that fetched from the holding queue during the move back lost its
  // message with it, and with publishers sending, apply said the broker matched the file.
  it("a client that fetches from the holding queue during the move back and holds it: the holding queue is left, and an apply once it is back finishes the replace", async () => {
    const { f, held } = await appliedHolding(5000);
    const applying = runCli(["apply", "-f", f.after({ "x-max-priority": 5 }), "--allow-destructive"]);
    const conn = await amqplib.connect(amqpUrl(f.async));
    try {
      await moveBackUnderWay(conn, 300);
      const looker = await conn.createChannel();
      expect(await looker.get(HOLD, { noAck: false })).toBeTruthy();
      const r = await applying;
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(
        `cluster async: replace queue mplogin.async: the queue has its new shape and the rest were moved back into it, but the broker counts 1 message of ${HOLD} fetched and not acknowledged by a client that is no consumer (basic.get without ack, or a consumer cancelled on a channel still open, as a Celery worker in warm shutdown holds its reserved tasks until it exits); deleting ${HOLD} would lose them, so it was left; no message was lost`,
      );
      expect(await messageCount(f.async, Q)).toBe(4999);
    } finally {
      await conn.close();
    }
    expect(await messageCount(f.async, HOLD)).toBe(1);
    await finishesWithAll(f, held, { "x-max-priority": 5 });
  }, 180_000);

  it("--allow-data-loss names the messages a client fetched among what a replace by delete and re-create dropped", async () => {
    const { f } = await appliedHolding(5);
    const conn = await fetchedBy(f.async, 2);
    try {
      const r = await runCli(["apply", "-f", f.after({ "x-max-priority": 5 }), "--allow-destructive", "--allow-data-loss"]);
      expect(r.code).toBe(0);
      expect(r.stderr).toContain("queue mplogin.async deleted to be re-created; 3 ready messages dropped, and 2 messages fetched but not acknowledged (when apply counted them) (--allow-data-loss)");
      // Its exchange routes what is published meanwhile nowhere: said, since no count can say it.
      expect(r.stderr).toContain("(--allow-data-loss); and any message published for it until its bindings are back is routed nowhere and dropped, uncounted");
    } finally {
      await conn.close();
    }
  }, 120_000);

  it("a client that fetched messages with basic.get and holds them unacknowledged when the old queue is to go: it is left, and nothing is lost", async () => {
    const { f, held } = await appliedHolding(10);
    // The mover alone, with a poller holding 4 that the plan's check did not see (it came later).
    const conn = await fetchedBy(f.async, 4);
    const err = await moverAlone(f.async);
    expect(err?.message).toBe(FETCHED_4);
    // The poller closes; its 4 go back to the old queue. A re-run finishes the replace with all 10.
    await finishAfterRelease(f, held, () => conn.close(), { "x-max-priority": 5 });
  }, 120_000);

  it("statistics that lag behind the move (a busy broker) are not taken for a count: the queue is left, and nothing is lost", async () => {
    // CI caught it: under load the queue's statistics 5.5 s after the move still said 0 ready and 0
    // unacknowledged, as when the queue was declared; they looked caught up with its live count
    // (0 ready), and the replace deleted the 4 messages a poller held. Here a proxy to the
    // management API keeps answering the old queue's statistics as they were when it was declared,
    // with more reductions each time (as if emitted since): the queue's own count has the 4.
    const { f, held } = await appliedHolding(10);
    const conn = await fetchedBy(f.async, 4);
    const proxy = await statsProxy(f.async, (n) => JSON.stringify({ messages: 0, messages_ready: 0, messages_unacknowledged: 0, consumers: 0, reductions: 1000 + n }));
    try {
      const err = await moverAlone(f.async, proxy.url);
      expect(err?.message).toBe(FETCHED_4);
    } finally {
      proxy.close();
    }
    await finishAfterRelease(f, held, () => conn.close(), { "x-max-priority": 5 });
  }, 120_000);

  it("statistics read before the move that predate the queue's messages do not stop the replace once later ones come, though their counts say the same", async () => {
    // CI on a busy machine: the statistics read before the move still said 0 messages (as at the
    // declare), and after the move the queue was empty again, so the counts never differed and
    // every such replace stopped. The queue's own count (the listing's totals) is taken instead.
    const { f, held } = await appliedHolding(10);
    const proxy = await statsProxy(f.async, (n) => (n === 1 ? JSON.stringify({ messages: 0, messages_ready: 0, messages_unacknowledged: 0, consumers: 0, reductions: 1 }) : undefined));
    try {
      expect(await moverAlone(f.async, proxy.url)).toBeUndefined();
    } finally {
      proxy.close();
    }
    expectExactlyOnce(await drainIds(f.async, Q), held);
  }, 120_000);
});

// --- property: random limits, consumers and publishers -------------------------------------------

/** A small seeded PRNG (mulberry32): the same seed gives the same cases on every machine. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Case {
  held: number;
  size: number;
  args: Args;
  /** Prefetch of a worker that never acknowledges, if one is attached. */
  consumer?: number;
  /** Messages a publisher sends while apply runs. */
  publish: number;
}

function randomCase(rnd: () => number): Case {
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const held = int(0, 40);
  const size = rnd() < 0.5 ? 16 : 64;
  const args: Args = {};
  if (rnd() < 0.5) args["x-max-length"] = int(0, held * 2 + 4);
  if (rnd() < 0.3) args["x-overflow"] = rnd() < 0.5 ? "drop-head" : "reject-publish";
  if (rnd() < 0.25) args["x-message-ttl"] = 600_000;
  if (rnd() < 0.3) args["x-max-length-bytes"] = int(0, (held * 2 + 4) * size);
  if (Object.keys(args).length === 0) args["x-max-priority"] = 5;
  const consumer = rnd() < 0.25 ? int(1, 5) : undefined;
  // Publishers send no more than the new limits hold with what is there: what a queue drops of
  // its own live traffic at its limit is the queue working as configured, not a replace losing it.
  let publish = rnd() < 0.5 ? int(1, 40) : 0;
  const maxLength = args["x-max-length"] as number | undefined;
  const maxBytes = args["x-max-length-bytes"] as number | undefined;
  if (maxLength !== undefined && held <= maxLength) publish = Math.min(publish, maxLength - held);
  if (maxBytes !== undefined && held * size <= maxBytes) publish = Math.min(publish, Math.floor((maxBytes - held * size) / size));
  return { held, size, args, consumer, publish };
}

async function until(what: string, ok: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`gave up waiting for ${what}`);
}

async function runCase(c: Case): Promise<void> {
  const f = files({}, {});
  expect((await runCli(["apply", "-f", f.before])).code).toBe(0);
  const held = ids("old", c.held);
  await publishIds(f.async, held, c.size);
  const worker = c.consumer === undefined ? undefined : await stuckConsumer(f.async, c.consumer);
  if (worker) await until("the worker to reserve its messages", () => worker.held.length === Math.min(c.consumer ?? 0, c.held));
  const shape = async () => {
    const s = await brokerState(f.async);
    return { queues: s.queues, exchanges: s.exchanges, bindings: s.bindings };
  };
  const before = await shape();

  const pub = c.publish ? startPublisher(f.async, "live", c.publish, c.size) : undefined;
  const r = await runCli(["apply", "-f", f.after(c.args), "--allow-destructive"]);
  await pub?.stop();
  await worker?.close();
  const expected = [...held, ...(pub?.confirmed ?? [])];

  const refused = r.code === 1 && /refusing to replace 1 queue that could lose messages/.test(r.stderr);
  const stopped = r.code === 1 && /none was lost or copied/.test(r.stderr);
  if (r.code !== 0 && !refused && !stopped) throw new Error(`apply neither succeeded, refused nor stopped safely (exit ${r.code}):\n${r.stderr}`);
  // What must be refused whatever the timing: a consumer, more messages than the new length, a new TTL.
  const maxLength = c.args["x-max-length"] as number | undefined;
  if (c.consumer !== undefined || (maxLength !== undefined && c.held > maxLength) || (c.args["x-message-ttl"] !== undefined && c.held > 0)) {
    expect(refused, `apply must refuse:\n${r.stderr}`).toBe(true);
  }
  const got: string[] = [];
  if (refused) {
    expect(r.stderr).not.toMatch(/applying \d+ change/);
    expect(await shape()).toEqual(before);
  } else {
    // Stopped part way (a limit reached with what the statistics did not show): the workers take
    // what the queue holds, and each re-run moves more, until the replace is done.
    for (let run = 0, last = r; last.code !== 0; run++) {
      expect(last.stderr, `a re-run failed otherwise:\n${last.stderr}`).toMatch(/none was lost or copied/);
      expect(run).toBeLessThan(20);
      got.push(...(await drainIds(f.async, Q)));
      last = await runCli(["apply", "-f", f.after(c.args), "--allow-destructive"]);
    }
    expect((await getQueue(f.async, Q)).arguments).toEqual(c.args);
    expect(await getQueue(f.async, HOLD)).toBeUndefined();
  }
  got.push(...(await drainIds(f.async, Q)), ...(await drainIds(f.async, HOLD)));
  expectExactlyOnce(got, expected);
}

describe("replace under random limits, consumers and publishers", () => {
  const seed = Number(process.env.TOPO_REPLACE_SEED ?? 9091);
  const cases = Number(process.env.TOPO_REPLACE_CASES ?? 10);
  it(`keeps every message id exactly once, or refuses before writing (seed ${seed}, ${cases} cases; set TOPO_REPLACE_SEED and TOPO_REPLACE_CASES to vary)`, async () => {
    const rnd = prng(seed);
    for (let i = 0; i < cases; i++) {
      const c = randomCase(rnd);
      try {
        await runCase(c);
      } catch (e) {
        throw new Error(`TOPO_REPLACE_SEED=${seed}, case ${i + 1} of ${cases}: ${JSON.stringify(c)}\n${(e as Error).message}`);
      } finally {
        await Promise.all(vhosts.splice(0).map(deleteVhost));
      }
    }
  }, 180_000);
});

describe("a message published straight to an emptied quorum queue under x-delivery-limit 0", () => {
  // The pass over what a quorum queue gives back requeued the first message that was no copy: on
  // 3.10 that spends a delivery, and with x-delivery-limit 0 the broker dropped a client's message
  // published straight to the old queue, whose delete then found it empty and apply said the
  // replace was done (rv1). Under such a limit the pass does not run, and the delete refuses.
  it("is kept: the old queue stays, and apply says why", async () => {
    const v = uniqueName("async");
    vhosts.push(v);
    await createVhost(v);
    const b = broker();
    const { error, old, hold } = await straightAfterMove(b.amqpUrl, b.mgmtUrl, v);
    expect(error).toMatch(/the broker refused to delete the old queue \(1 message\(s\), not empty\).*no message was lost/);
    expect(old).toEqual(["straight-1"]);
    expect(hold.sort()).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`).sort());
  });
});

describe("a quorum queue's replace under a live publisher", () => {
  // The copies of a message routed to both queues while the bindings switch: stop 48's build let
  // a Celery worker run 1 or 2 tasks twice at each such replace (3 to 5 ids twice in 3 runs of
  // this), and said nothing. The switch into the holding queue is now searched for copies (the
  // holding queue is topo's own); the switch back into the quorum queue cannot be searched
  // without spending a delivery, so apply counts what may be copied and says so. Every id is
  // there, and no more are there twice than apply said.
  it("keeps every message, and delivers none twice but those apply names", async () => {
    const sync = uniqueName("sync");
    const async = uniqueName("async");
    vhosts.push(sync, async);
    const file = (max: number) => writeTopology({ sync, async, services: [{ name: "mplogin", sync: false, async: { type: "quorum", arguments: { "x-max-length": max } } }] });
    expect((await runCli(["apply", "-f", file(600_000)])).code).toBe(0);
    const ids = Array.from({ length: 500 }, (_, i) => `held-${i}`);
    await publishIds(async, ids);
    const conn = await amqplib.connect(amqpUrl(async));
    let live = 0;
    let publishing = true;
    const publisher = (async () => {
      const ch = await conn.createConfirmChannel();
      while (publishing) {
        ch.publish("mplogin", "mplogin.async.x", Buffer.from(`live-${live}`), { persistent: true, messageId: `live-${live}` });
        live++;
        await new Promise((r) => setTimeout(r, 2));
      }
      await ch.waitForConfirms();
    })();
    try {
      await new Promise((r) => setTimeout(r, 300));
      const r = await runCli(["apply", "-f", file(650_000), "--allow-destructive"]);
      expect(r.code, r.stderr).toBe(0);
      publishing = false;
      await publisher;
      const said = /up to (\d+) messages? published while the bindings switched back may have reached both queues/.exec(r.stderr);
      const mayRepeat = said ? Number(said[1]) : 0;
      const got = await drainIds(async, Q);
      const twice = got.length - new Set(got).size;
      expect(new Set(got)).toEqual(new Set([...ids, ...Array.from({ length: live }, (_, i) => `live-${i}`)]));
      expect(twice, r.stderr).toBeLessThanOrEqual(mayRepeat);
    } finally {
      publishing = false;
      await publisher.catch(() => undefined);
      await conn.close().catch(() => undefined);
    }
  }, 240_000);
});
