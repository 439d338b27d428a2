// Names that a JavaScript object already has a member by (toString, constructor, __proto__): a
// user or queue so named is one more name. topo kept the broker's facts by name on plain objects,
// so a user named toString with rights on any vhost crashed apply after its writes (its read
// back), and every plan after it, with "userVhosts[p.user].push is not a function".

import { afterEach, describe, expect, it } from "vitest";
import { amqpUrl, api, broker, createVhost, deleteVhost, runCli, uniqueName, vh, withChannel, writeFile } from "../helpers/broker.js";

const vhosts: string[] = [];
const users: string[] = [];
afterEach(async () => {
  await Promise.all([...vhosts.splice(0).map(deleteVhost), ...users.splice(0).map((u) => api("DELETE", `/api/users/${encodeURIComponent(u)}`))]);
});

const NAMES = ["toString", "constructor"];

/** A file of prefix mn on two new vhosts (removed after the test), with these services and more lines. */
function topology(services: string, more: string[] = []): { file: string; sync: string; async: string } {
  const sync = uniqueName("mnsync");
  const async = uniqueName("mnasync");
  vhosts.push(sync, async);
  const b = broker();
  const clusters = [`  sync: { url: "${amqpUrl(sync)}", management: "${b.mgmtBase}" }`, `  async: { url: "${amqpUrl(async)}", management: "${b.mgmtBase}" }`];
  const file = writeFile("topology.yaml", ["version: 1", "prefix: mn", "clusters:", ...clusters, `services: ${services}`, ...more, ""].join("\n"));
  return { file, sync, async };
}

describe("users and queues named as an object's members", () => {
  it("users toString and constructor are applied, planned with no changes, and a changed password is an update", async (ctx) => {
    // Users are the broker's, not a vhost's: another program's user of the same name is left alone.
    for (const u of NAMES) {
      if ((await api("GET", `/api/users/${u}`)).status !== 404) ctx.skip(`user ${u} exists on the test broker already, and it is not this test's`);
    }
    users.push(...NAMES);
    const { file, sync, async } = topology("[mnsvc]", [
      "users:",
      '  toString: { password: "${MN_PASSWORD}", consumes: [mnsvc] }',
      '  constructor: { password: "${MN_PASSWORD}", publishes: all }',
    ]);
    const env = { MN_PASSWORD: "mn-secret-1" };

    const applied = await runCli(["apply", "-f", file], env);
    expect(applied.stderr).not.toMatch(/Error|bug/);
    expect(applied.code, applied.stderr).toBe(0);
    for (const u of NAMES) expect((await api("GET", `/api/users/${u}`)).body.tags).toEqual(["topo.mn"]);
    const rights = (await api("GET", `/api/users/toString/permissions`)).body as { vhost: string; read: string }[];
    expect(rights.map((r) => r.vhost).sort()).toEqual([async, sync].sort());

    const planned = await runCli(["plan", "-f", file, "--detailed-exitcode"], env);
    expect(planned.stdout + planned.stderr).toContain("No changes.");
    expect(planned.code).toBe(0);

    const changed = await runCli(["plan", "-f", file, "--detailed-exitcode"], { MN_PASSWORD: "mn-secret-2" });
    expect(changed.stdout).toMatch(/~ update user toString \(password\)/);
    expect(changed.stdout).toMatch(/~ update user constructor \(password\)/);
    expect(changed.code).toBe(2);
  });

  it("a queue named __proto__ counts against the vhost's queue limit like any other", async () => {
    // Its facts set the prototype of the plan's record, so Object.keys left it out: plan counted
    // one queue too few, passed, and the broker refused a declare part-way through apply.
    const { file, async } = topology("[mna, mnb]");
    await createVhost(async);
    await withChannel(async, async (ch) => void (await ch.assertQueue("__proto__", { durable: true })));
    expect((await api("PUT", `/api/vhost-limits/${vh(async)}/max-queues`, { value: 3 })).status).toBeLessThan(300);
    // Two queues to create, the lock, and __proto__: four, over the limit of three.
    const planned = await runCli(["plan", "-f", file]);
    expect(planned.stderr).toMatch(/may hold at most 3 queues \(max-queues\), and apply would need 4 at once: the 1 it holds now/);
    expect(planned.code).toBe(1);
    const queues = (await api("GET", `/api/queues/${vh(async)}?columns=name`)).body as { name: string }[];
    expect(queues.map((q) => q.name)).toEqual(["__proto__"]);
  });

  it("import of a queue with an argument named constructor says the file cannot hold it", async () => {
    // The argument table was read by name on a plain object: `constructor` found Object's
    // constructor, taken for a rule, and import crashed ("reading 'includes'").
    const async = uniqueName("mnasync");
    vhosts.push(async);
    await createVhost(async);
    await withChannel(async, async (ch) => {
      await ch.assertExchange("mnsvc", "topic", { durable: true });
      await ch.assertQueue("mnsvc.async", { durable: true, arguments: { constructor: 1 } });
      await ch.bindQueue("mnsvc.async", "mnsvc", "mnsvc.async.#");
    });
    const b = broker();
    const url = `amqp://${b.user}@${b.host}:${b.amqpPort}/${encodeURIComponent(async)}`;
    const r = await runCli(["import", "--prefix", "mn", "--url", url, "--management", b.mgmtBase], { RABBITMQ_PASSWORD: encodeURIComponent(b.password) });
    expect(r.stderr).not.toMatch(/bug/);
    expect(r.code, r.stderr).toBe(0);
    // The note is wrapped as a comment of the file: the words may break at "argument".
    expect(r.stdout.replace(/\n#\s+/g, " ")).toMatch(/argument constructor=1 cannot be written in the file \(topo does not know argument constructor\)/);
  });
});
