// A node's memory or disk alarm against a plan's replaces (plan/alarms.ts): only a replace that
// moves messages publishes, and only publishing is blocked.

import { describe, expect, it } from "vitest";
import { alarmHint, alarmProblem, blockedKind, sizeText, type NodeAlarm } from "../../src/plan/alarms.js";
import type { Action, ActualCluster, ClusterPlan, Queue } from "../../src/model.js";

const queue = (name: string, type: Queue["type"] = "classic", args: Record<string, number> = {}): Queue => ({ kind: "queue", name, type, durable: true, autoDelete: false, exclusive: false, arguments: args });
const replace = (name: string, type: Queue["type"] = "classic"): Action => ({ op: "replace", key: `queue|${name}`, before: queue(name, type), after: queue(name, type, { "x-max-length": 10 }), because: [], rebind: [] });

function plan(...actions: Action[]): ClusterPlan {
  return { cluster: "async", endpoint: "amqp://x", vhost: "async", actions, degraded: [], warnings: [] };
}

function actual(messages: Record<string, number>): ActualCluster {
  return { vhostExists: true, version: "4.0.5", nodes: [], resources: [], queueFacts: Object.fromEntries(Object.entries(messages).map(([q, n]) => [q, { messages: n }])) };
}

const disk: NodeAlarm = { node: "rabbit@a", kind: "disk", value: 84_510_000_000, limit: 1e15 };
const memory: NodeAlarm = { node: "rabbit@b", kind: "memory", value: 120_000_000, limit: 100_000_000 };

describe("alarmProblem", () => {
  it("names the node, its figures against the limit, the queues whose messages a replace moves, and the fix for that kind of alarm", () => {
    const p = alarmProblem(plan(replace("mpa.async")), actual({ "mpa.async": 40 }), [disk]);
    expect(p?.cause).toBe(
      "node rabbit@a has a disk alarm (free disk space 84.5 GB, below its disk_free_limit of 1 PB): the broker blocks every publisher while it lasts, and replacing queue mpa.async (40 messages) moves 40 messages by publishing them, so apply would stop part-way (the bindings moved to a holding queue, the messages not)",
    );
    expect(p?.hints).toEqual([alarmHint("disk", "rabbit@a")]);
    expect(p?.hints[0]).toContain("rabbitmqctl set_disk_free_limit");
    expect(p?.hints[0]).toContain("rabbitmq-diagnostics alarms");
  });

  it("counts what an interrupted replace left in the holding queue, and gives one hint per kind of alarm", () => {
    const p = alarmProblem(plan(replace("mpa.async"), replace("mpb.async")), actual({ "mpa.async": 0, "topo.hold.mpa.async": 3, "mpb.async": 2 }), [disk, memory]);
    expect(p?.cause).toContain("node rabbit@b has a memory alarm (memory used 120 MB, above its vm_memory_high_watermark of 100 MB)");
    expect(p?.cause).toContain("replacing queues mpa.async (3 messages), mpb.async (2 messages) moves 5 messages");
    expect(p?.hints).toHaveLength(2);
    expect(p?.hints[1]).toContain("vm_memory_high_watermark");
  });

  it("is no problem without an alarm, for a replace of an empty queue (it publishes nothing), or of a stream (it moves nothing)", () => {
    expect(alarmProblem(plan(replace("mpa.async")), actual({ "mpa.async": 40 }), [])).toBeUndefined();
    expect(alarmProblem(plan(replace("mpa.async")), actual({ "mpa.async": 0 }), [disk])).toBeUndefined();
    expect(alarmProblem(plan(replace("mpa.async", "stream")), actual({ "mpa.async": 40 }), [disk])).toBeUndefined();
  });

  it("words an alarm without figures by its setting", () => {
    expect(alarmProblem(plan(replace("q")), actual({ q: 1 }), [{ node: "n", kind: "disk" }])?.cause).toMatch(/^node n has a disk alarm \(disk_free_limit passed\)/);
  });

  it("leaves out figures, seconds behind the alarm list, that say the opposite of the alarm", () => {
    // Right after set_vm_memory_high_watermark lowered the limit: "memory used 407 MB, above its
    // vm_memory_high_watermark of 10.1 GB".
    const stale: NodeAlarm = { node: "n", kind: "memory", value: 407_000_000, limit: 10_100_000_000 };
    expect(alarmProblem(plan(replace("q")), actual({ q: 1 }), [stale])?.cause).toMatch(/^node n has a memory alarm \(vm_memory_high_watermark passed\)/);
    const staleDisk: NodeAlarm = { node: "n", kind: "disk", value: 84_510_000_000, limit: 50_000_000 };
    expect(alarmProblem(plan(replace("q")), actual({ q: 1 }), [staleDisk])?.cause).toMatch(/^node n has a disk alarm \(disk_free_limit passed\)/);
  });
});

describe("blockedKind and sizeText", () => {
  it("reads RabbitMQ's connection.blocked reasons", () => {
    expect(blockedKind("low on disk")).toBe("disk");
    expect(blockedKind("low on memory")).toBe("memory");
    expect(blockedKind("something else")).toBeUndefined();
    expect(alarmHint(undefined)).toContain("memory or disk alarm");
  });

  it("prints sizes in decimal units, three figures at most", () => {
    expect(sizeText(999)).toBe("999 bytes");
    expect(sizeText(50_000_000)).toBe("50 MB");
    expect(sizeText(1_234_567)).toBe("1.23 MB");
    expect(sizeText(123_456_789_012)).toBe("123 GB");
  });
});
