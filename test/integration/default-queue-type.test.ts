// A vhost's default queue type on the suite's broker (RabbitMQ 3.10). 3.10 already has it: a vhost
// created with it makes a durable queue declared without x-queue-type a quorum queue. topo read it
// only from 3.11, so on 3.10 apply created the exchange, the queue (quorum) and the binding, then
// failed its read back, and every later plan showed the same replace for ever. rabbitmq4.test.ts
// covers 4.x, where the type of a vhost that exists can be changed.

import { describe, expect, it } from "vitest";
import { api, broker, runCli, testVhosts, vh, writeTopology } from "../helpers/broker.js";

const { vhosts } = testVhosts();

/** A vhost whose default queue type is quorum, as 3.10 (defaultqueuetype) and later (default_queue_type) take it. */
async function quorumDefaultVhost(name: string): Promise<void> {
  expect((await api("PUT", `/api/vhosts/${vh(name)}`, { defaultqueuetype: "quorum", default_queue_type: "quorum" })).status).toBeLessThan(300);
  const user = broker().user;
  expect((await api("PUT", `/api/permissions/${vh(name)}/${encodeURIComponent(user)}`, { configure: ".*", write: ".*", read: ".*" })).status).toBeLessThan(300);
  expect((await api("GET", `/api/vhosts?columns=name,default_queue_type`)).body).toContainEqual({ name, default_queue_type: "quorum" });
}

describe("a vhost whose default queue type is quorum, on the suite's broker", () => {
  it("refuses the file's durable classic queues before any write, names what the version can do, and applies them typed", async () => {
    const [sync, async] = [`dqt-sync-${process.pid}-${Date.now()}`, `dqt-async-${process.pid}-${Date.now()}`];
    vhosts.push(sync, async);
    await quorumDefaultVhost(async);
    const version = String((await api("GET", "/api/overview")).body.rabbitmq_version);
    const file = writeTopology({ sync, async, services: ["mplogin"] });

    for (const cmd of ["plan", "apply"]) {
      const r = await runCli([cmd, "-f", file]);
      expect(r.stderr).toContain(
        `cluster async: vhost "${async}" makes a durable queue declared without x-queue-type a quorum queue (its default queue type); topo declares classic queues without it, as workers do, so a queue the file says is classic would be created as quorum and never match the file: mplogin.async`,
      );
      expect(r.stderr).toContain("hint: set type: quorum for them in the file (e.g. defaults: { async: { type: quorum } })");
      if (version.startsWith("3.10.")) {
        // 3.10 has no update_vhost_metadata, and keeps the type of a vhost that exists.
        expect(r.stderr).toContain(`hint: RabbitMQ ${version} cannot give a vhost that exists another default queue type`);
        expect(r.stderr).not.toContain(`rabbitmqctl update_vhost_metadata ${async}`);
      }
      expect(r.code).toBe(1);
    }
    // Nothing was written to either cluster.
    expect((await api("GET", `/api/exchanges/${vh(async)}/mplogin`)).status).toBe(404);
    expect((await api("GET", `/api/queues/${vh(async)}/mplogin.async`)).status).toBe(404);
    expect((await api("GET", `/api/vhosts/${vh(sync)}`)).status).toBe(404);

    // Typed in the file, the queue is made a quorum queue, and plan is clean.
    const typed = writeTopology({ sync, async, services: ["mplogin"], defaults: { async: { type: "quorum" } } });
    const applied = await runCli(["apply", "-f", typed]);
    expect(applied.stderr).not.toMatch(/Error/);
    expect(applied.code).toBe(0);
    expect((await api("GET", `/api/queues/${vh(async)}/mplogin.async`)).body).toMatchObject({ type: "quorum", durable: true });
    const clean = await runCli(["plan", "-f", typed, "--detailed-exitcode"]);
    expect(clean.stdout).toContain("No changes.");
    expect(clean.code).toBe(0);
  });
});
