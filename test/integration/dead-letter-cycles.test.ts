// A dead-letter cycle through two queues, against the real broker: RabbitMQ drops a message on its
// way back into a queue it was dead-lettered from, unless a client rejected it somewhere since.
// The retry pattern (a work queue dead-lettering to a retry queue whose TTL sends them back) keeps
// what a worker rejects and loses what expires in the work queue; plan said "No changes.".

import { describe, expect, it } from "vitest";
import { runCli, testVhosts, withChannel } from "../helpers/broker.js";

const { fresh } = testVhosts();

const viaDefault = (to: string, more: Record<string, unknown> = {}) => ({ arguments: { "x-dead-letter-exchange": "", "x-dead-letter-routing-key": to, ...more } });

/** Wait until `check` holds, or `ms` have passed; the last answer either way. */
async function until<T>(ms: number, read: () => Promise<T>, check: (v: T) => boolean): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (check(v) || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("dead letters that come round again through another queue", () => {
  it("plan warns of the retry pattern's cycle; a message that expires in the work queue is gone from both, one a worker rejects comes round", async () => {
    const { file, async } = fresh([
      { name: "mpwork", sync: false, async: viaDefault("mpretry.async") },
      { name: "mpretry", sync: false, async: viaDefault("mpwork.async", { "x-message-ttl": 2000 }) },
    ]);
    const applied = await runCli(["apply", "-f", file]);
    expect(applied.code, applied.stderr).toBe(0);
    const plan = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(plan.code, plan.stderr).toBe(0);
    const said = plan.stdout.replace(/\s*\n\s*/g, " ");
    expect(said).toMatch(/! warning: .*x-dead-letter-routing-key: "mpretry\.async" \(queue mpwork\.async\): its dead letters go to queue mpretry\.async \(through the default exchange, with the key "mpretry\.async"\), and come round to it again \(mpwork\.async → mpretry\.async → mpwork\.async\), and RabbitMQ drops a message that comes back to a queue it was dead-lettered from unless a client rejected it somewhere on the way round/);

    await withChannel(async, async (ch) => {
      // Rejected by a worker in mpwork: to mpretry, back after 2 s, and kept.
      ch.publish("mpwork", "mpwork.async.kept", Buffer.from("kept"));
      const got = await until(5000, () => ch.get("mpwork.async", { noAck: false }), (m) => m !== false);
      expect(got && got.content.toString()).toBe("kept");
      if (got) ch.nack(got, false, false);
      const back = await until(10_000, () => ch.get("mpwork.async", { noAck: false }), (m) => m !== false);
      expect(back && back.content.toString()).toBe("kept");
      const deaths = back ? (back.properties.headers?.["x-death"] as { queue: string; reason: string }[]) : [];
      expect(deaths.map((d) => `${d.queue}:${d.reason}`).sort()).toEqual(["mpretry.async:expired", "mpwork.async:rejected"]);
      if (back) ch.ack(back);

      // Expiring in mpwork: to mpretry, and dropped on its way back.
      ch.publish("mpwork", "mpwork.async.lost", Buffer.from("lost"), { expiration: "200" });
      const count = async (q: string) => (await ch.checkQueue(q)).messageCount;
      // It reaches mpretry (it waits 2 s there)...
      expect(await until(10_000, () => count("mpretry.async"), (n) => n === 1)).toBe(1);
      // ...and is then gone: neither queue holds it, however long one waits.
      const left = async () => (await count("mpwork.async")) + (await count("mpretry.async"));
      expect(await until(10_000, left, (n) => n === 0)).toBe(0);
      await new Promise((r) => setTimeout(r, 3000));
      expect(await left()).toBe(0);
    });
  });
});
