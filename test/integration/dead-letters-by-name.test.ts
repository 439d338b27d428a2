// A queue that dead-letters into a replaced queue by its name (x-dead-letter-exchange "" and
// x-dead-letter-routing-key naming it) goes past the bindings a replace moves onto its holding
// queue: what it sends reaches the old queue during the move, and no queue in the moment between
// the old queue's delete and the new one's declare, where RabbitMQ drops it. Plan names the
// sender under the replace, and apply's refusal to delete the old queue names it as the cause
// (it blamed "a client publishing straight to its name").

import amqplib from "amqplib";
import { afterEach, describe, expect, it } from "vitest";
import { amqpUrl, deleteVhost, runCli, uniqueName, withChannel, writeTopology } from "../helpers/broker.js";

const vhosts: string[] = [];
afterEach(async () => {
  await Promise.all(vhosts.splice(0).map(deleteVhost));
});

const Q = "mplogin.async";
const RETRY = "retry.mplogin";

function files(): { async: string; file: (args: Record<string, unknown>) => string } {
  const sync = uniqueName("sync");
  const async = uniqueName("async");
  vhosts.push(sync, async);
  return { async, file: (args) => writeTopology({ sync, async, services: [{ name: "mplogin", sync: false, async: { arguments: args } }] }) };
}

describe("a queue that dead-letters into a replaced queue by name", () => {
  it("plan names it under the replace; apply, with its dead letters flowing, stops naming it, and finishes once they stop", async () => {
    const f = files();
    const first = await runCli(["apply", "-f", f.file({ "x-max-length": 1000 })]);
    expect(first.code, first.stderr).toBe(0);
    await withChannel(f.async, (ch) => ch.assertQueue(RETRY, { durable: true, arguments: { "x-message-ttl": 1, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": Q } }));
    const after = f.file({ "x-max-length": 100000 });

    const plan = await runCli(["plan", "-f", after]);
    expect(plan.code, plan.stderr).toBe(0);
    const said = plan.stdout.replace(/\s*\n\s*/g, " ");
    expect(said).toContain(`-/+ replace queue ${Q} because arguments.x-max-length: 1000 -> 100000`);
    expect(said).toContain(
      `! dead letters by name: queue ${RETRY} dead-letters into it by name (x-dead-letter-exchange "" and x-dead-letter-routing-key "${Q}"): what is dead-lettered by name goes to the queue of that name, not through the bindings the replace moves onto topo.hold.${Q}`,
    );
    const json = JSON.parse((await runCli(["plan", "-f", after, "--json"])).stdout);
    const replace = json.clusters.flatMap((c: { actions: { op: string; notes?: string[] }[] }) => c.actions).find((a: { op: string }) => a.op === "replace");
    expect(replace.notes).toEqual([expect.stringMatching(new RegExp(`^dead letters by name: queue ${RETRY.replace(".", "\\.")} dead-letters into it by name`))]);

    // Messages expire out of the retry queue into mplogin.async by name, about 300 a second.
    const conn = await amqplib.connect(amqpUrl(f.async));
    const ch = await conn.createConfirmChannel();
    let sent = 0;
    let stop = false;
    const feeding = (async () => {
      while (!stop) {
        for (let i = 0; i < 3; i++) ch.publish("", RETRY, Buffer.from(String(sent)), { messageId: `m${sent++}`, persistent: true });
        await ch.waitForConfirms();
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    try {
      await new Promise((r) => setTimeout(r, 500));
      const stopped = await runCli(["apply", "-f", after, "--allow-destructive"]);
      expect(stopped.code, stopped.stderr).not.toBe(0);
      expect(stopped.stderr).toMatch(new RegExp(`replace queue ${Q.replace(".", "\\.")}: .*queue ${RETRY.replace(".", "\\.")}, which dead-letters into it by name|dead-lettered into it by name by queue ${RETRY.replace(".", "\\.")}`));
      expect(stopped.stderr).toContain("no message was lost");
    } finally {
      stop = true;
      await feeding;
      await conn.close();
    }
    // Once the retry queue sends nothing more, the next apply finishes the replace.
    const finished = await runCli(["apply", "-f", after, "--allow-destructive"]);
    expect(finished.code, finished.stderr).toBe(0);
    expect(finished.stderr).toContain(`queue ${Q} replaced`);
    const left = await withChannel(f.async, async (c) => (await c.checkQueue(Q)).messageCount);
    // The moment between the delete and the declare can drop one (docs/safety.md), never more than a few.
    expect(left).toBeLessThanOrEqual(sent);
    expect(left).toBeGreaterThan(sent - 5);
  });
});

/**
 * The file applied, then its exchange made transient by hand (a user's re-declare), so that plan
 * replaces it, and `more` done on the vhost: the file's path.
 */
async function withTransientExchange(more: (ch: amqplib.Channel) => Promise<unknown>): Promise<string> {
  const f = files();
  const file = f.file({});
  const first = await runCli(["apply", "-f", file]);
  expect(first.code, first.stderr).toBe(0);
  await withChannel(f.async, async (ch) => {
    await ch.deleteExchange("mplogin");
    await ch.assertExchange("mplogin", "topic", { durable: false });
    await ch.bindQueue(Q, "mplogin", `${Q}.#`);
    await more(ch);
  });
  return file;
}

// An exchange replace deletes the exchange and declares it again with its bindings: what a queue
// dead-letters to it, and what an exchange whose alternate exchange it is cannot route, is dropped
// in that moment, and nobody publishes those (measured on 3.10.8: 114 of 3,366 in 10 replaces).
describe("the queues and exchanges that send to a replaced exchange", () => {
  it("plan names them under the replace, as the broker reports their arguments, in text and --json", async () => {
    const file = await withTransientExchange(async (ch) => {
      await ch.assertQueue("retry.x", { durable: true, arguments: { "x-message-ttl": 1, "x-dead-letter-exchange": "mplogin", "x-dead-letter-routing-key": `${Q}.dl` } });
      await ch.assertExchange("front", "direct", { durable: true, arguments: { "alternate-exchange": "mplogin" } });
    });
    const plan = await runCli(["plan", "-f", file]);
    expect(plan.code, plan.stderr).toBe(0);
    const said = plan.stdout.replace(/\s*\n\s*/g, " ");
    expect(said).toContain("-/+ replace exchange mplogin because durable: false -> true");
    expect(said).toContain(
      "! dead letters and unroutable messages: exchange front sends what it cannot route to it (alternate-exchange); queue retry.x dead-letters to it (x-dead-letter-exchange): in the moment between its delete and its re-creation with its bindings RabbitMQ drops what those send it, without a word",
    );
    const json = JSON.parse((await runCli(["plan", "-f", file, "--json"])).stdout);
    const replace = json.clusters.flatMap((c: { actions: { op: string; notes?: string[] }[] }) => c.actions).find((a: { op: string }) => a.op === "replace");
    expect(replace.notes).toEqual([expect.stringMatching(/^dead letters and unroutable messages: exchange front .*queue retry\.x/), expect.stringMatching(/^publishers: /)]);
  });
});

// A quorum queue that dead-letters at least once (with x-overflow reject-publish) keeps what it
// dead-letters while the exchange is missing and sends it on at the broker's next retry: nothing
// of it is dropped (measured on 3.10.8 and 4.3.6: 20 of 20 kept, delivered 174 s after the
// exchange came back). Plan names it apart, read from the broker as it holds the queue.
describe("a quorum queue that dead-letters at least once to a replaced exchange", () => {
  it("plan says it keeps its dead letters, beside a queue that drops them", async () => {
    const keeps = { "x-queue-type": "quorum", "x-dead-letter-exchange": "mplogin", "x-dead-letter-strategy": "at-least-once", "x-message-ttl": 1 };
    const file = await withTransientExchange(async (ch) => {
      await ch.assertQueue("retry.kept", { durable: true, arguments: { ...keeps, "x-overflow": "reject-publish" } });
      // Without reject-publish RabbitMQ dead-letters it at most once.
      await ch.assertQueue("retry.dropped", { durable: true, arguments: keeps });
    });
    const plan = await runCli(["plan", "-f", file]);
    expect(plan.code, plan.stderr).toBe(0);
    const said = plan.stdout.replace(/\s*\n\s*/g, " ");
    expect(said).toContain(
      "! dead letters and unroutable messages: queue retry.dropped dead-letters to it (x-dead-letter-exchange): in the moment between its delete and its re-creation with its bindings RabbitMQ drops what that sends it, without a word (no publisher hears of it; measured: tens of milliseconds of that flow a replace); stop what makes those queues dead-letter (a message TTL, workers that reject) for the apply (docs/safety.md); queue retry.kept dead-letters to it (x-dead-letter-exchange, at least once): it keeps what it dead-letters while it is re-created (quorum, x-dead-letter-strategy at-least-once), and RabbitMQ sends it on once the exchange routes it again",
    );
  });
});
