// The nodes' alarm flags (GET /api/nodes) are statistics, a few seconds behind the broker: an
// alarm just cleared still showed there, and apply refused a replace for about 5 s after
// `rabbitmq-diagnostics alarms` said none. topo asks the broker's own alarm list (the health
// check) before it takes a node's flag for an alarm. A proxy in front of the management API
// plays the lagging statistics; the health check is the broker's own, or the proxy's 503.

import { describe, expect, it, onTestFinished } from "vitest";
import type { IncomingMessage, ServerResponse } from "node:http";
import { api, publish, runCli, testVhosts, vh, writeTopology } from "../helpers/broker.js";
import { managementProxy } from "../helpers/proxy.js";

const { fresh } = testVhosts();

/** Answers GET /api/nodes with every node in a memory alarm, and the health check as `health` says (undefined: the broker answers). */
function lagging(health?: { status: number; body: unknown }) {
  return (req: IncomingMessage, res: ServerResponse): boolean => {
    const url = req.url ?? "";
    if (url.startsWith("/api/nodes?") && url.includes("mem_alarm")) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify([{ name: "rabbit@stats", mem_alarm: true, disk_free_alarm: false, mem_used: 2e9, mem_limit: 1e9, disk_free: 5e10, disk_free_limit: 5e7 }]));
      return true;
    }
    if (health && url.startsWith("/api/health/checks/alarms")) {
      res.writeHead(health.status, { "content-type": "application/json" });
      res.end(JSON.stringify(health.body));
      return true;
    }
    return false;
  };
}

describe("a node's alarm flag", () => {
  async function replacing(answer: (req: IncomingMessage, res: ServerResponse) => boolean): Promise<string> {
    const proxy = await managementProxy({ answer });
    onTestFinished(() => proxy.close());
    const t = fresh([{ name: "mplogin", sync: false }], { clusterExtra: { async: { management: proxy.url } } });
    const first = await runCli(["apply", "-f", t.file]);
    expect(first.stderr).not.toMatch(/Error/);
    expect(first.code).toBe(0);
    await publish(t.async, "mplogin", "mplogin.async.x", ["a", "b", "c"]);
    // Plan asks about alarms only for a replace that moves messages, by the statistics' counts: a
    // new queue's come within a statistics interval (on a loaded machine it read 0, and plan
    // rightly asked nothing).
    for (let i = 0; i < 150 && (await api("GET", `/api/queues/${vh(t.async)}/mplogin.async`)).body?.messages !== 3; i++) await new Promise((r) => setTimeout(r, 100));
    const after = writeTopology({ sync: t.sync, async: t.async, services: [{ name: "mplogin", sync: false, async: { arguments: { "x-max-length": 1000 } } }], clusterExtra: { async: { management: proxy.url } } });
    const plan = await runCli(["plan", "-f", after]);
    expect(plan.stderr).toBe("");
    expect(plan.code).toBe(0);
    return plan.stdout;
  }

  it("is no alarm when the broker's own alarm list is empty", async () => {
    const out = await replacing(lagging());
    expect(out).toContain("-/+ replace queue mplogin.async");
    expect(out).not.toMatch(/memory alarm|until the alarm has cleared/);
  });

  it("is an alarm when the broker's alarm list has one too", async () => {
    const out = await replacing(lagging({ status: 503, body: { status: "failed", reason: "There are alarms in effect in the cluster", alarms: [{ node: "rabbit@stats", resource: "memory" }] } }));
    expect(out).toMatch(/node rabbit@stats has a memory alarm/);
    expect(out).toContain("apply refuses it until the alarm has cleared");
  });

  it("is an alarm when the broker's alarm list has one it names in words topo does not know", async () => {
    const out = await replacing(lagging({ status: 503, body: { status: "failed", reason: "There are alarms in effect in the cluster", alarms: [{ node: "rabbit@stats", resource: "a resource of a later version" }] } }));
    expect(out).toMatch(/node rabbit@stats has a memory alarm/);
  });

  it("is no sign of no alarm while the broker's alarm list has one: an alarm just raised is not in the flags yet", async () => {
    // The flags say none (disk_free_alarm false for 4.7 s after the disk alarm was raised), the
    // broker's list names it: apply had unbound a queue and stopped at its first move.
    const fresh = (req: IncomingMessage, res: ServerResponse): boolean => {
      const url = req.url ?? "";
      if (url.startsWith("/api/nodes?") && url.includes("mem_alarm")) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify([{ name: "rabbit@stats", mem_alarm: false, disk_free_alarm: false, mem_used: 1e8, mem_limit: 1e9, disk_free: 5e10, disk_free_limit: 5e7 }]));
        return true;
      }
      if (url.startsWith("/api/health/checks/alarms")) {
        res.writeHead(503, { "content-type": "application/json" });
        res.end(JSON.stringify({ status: "failed", reason: "There are alarms in effect in the cluster", alarms: [{ node: "rabbit@stats", resource: "disk space" }] }));
        return true;
      }
      return false;
    };
    const out = await replacing(fresh);
    expect(out).toMatch(/node rabbit@stats has a disk alarm/);
    expect(out).toContain("apply refuses it until the alarm has cleared");
  });
});
