// A replace asks, before it writes anything, whether the AMQP user may publish through the default
// exchange (its move back does): with an empty publish, whose confirm a broker under a memory or
// disk alarm never sends (it blocks the connection and reads nothing more from it). That ask must
// give up after the grace every other publish of a replace has, and say why, not wait for ever
// with nothing of the replace written (a deploy job then hung until its own time-out).

import { EventEmitter } from "node:events";
import { afterEach, describe, expect, it, vi } from "vitest";
import { AmqpSession, PUBLISH_BLOCKED_GRACE_MS } from "../../src/broker/amqp.js";
import { replaceQueueLossless } from "../../src/broker/replace.js";
import { BrokerError } from "../../src/errors.js";
import { queue } from "../helpers/builders.js";

/** A channel whose publishes are never confirmed (a blocked connection), recording what is asked. */
function blockedChannel(calls: string[]) {
  const ch = new EventEmitter() as EventEmitter & Record<string, unknown>;
  ch.publish = (ex: string, key: string) => {
    calls.push(`publish ${JSON.stringify(ex)} ${JSON.stringify(key)}`);
    return true;
  };
  ch.assertQueue = async (name: string) => {
    calls.push(`declare ${name}`);
    return { queue: name, messageCount: 0, consumerCount: 0 };
  };
  ch.close = async () => {
    ch.emit("close");
  };
  return ch;
}

function blockedSession(calls: string[]): AmqpSession {
  const conn = new EventEmitter() as EventEmitter & { close: () => Promise<void> };
  conn.close = async () => {
    calls.push("connection closed");
  };
  // The real unlessBlocked, over a connection the broker has blocked.
  return Object.assign(Object.create(AmqpSession.prototype) as AmqpSession, {
    cluster: "async",
    user: "guest",
    rpcs: 0,
    lost: undefined,
    conn,
    blockedBy: "low on memory",
    channel: async () => blockedChannel(calls),
    confirmChannel: async () => blockedChannel(calls),
  });
}

afterEach(() => {
  vi.useRealTimers();
});

describe("a replace's first ask under a memory alarm", () => {
  it("gives up after the grace, names the alarm, and writes nothing", async () => {
    vi.useFakeTimers();
    const calls: string[] = [];
    const old = queue({ name: "mplogin.async" });
    const after = queue({ name: "mplogin.async", arguments: { "x-max-length": 1000 } });
    let outcome: unknown = "pending";
    void replaceQueueLossless(blockedSession(calls), { after, old, bindings: [], holdBindings: [], queueDone: false }, () => undefined).then(
      (v) => (outcome = v),
      (e: unknown) => (outcome = e),
    );
    await vi.advanceTimersByTimeAsync(PUBLISH_BLOCKED_GRACE_MS + 1_000);
    expect(outcome).toBeInstanceOf(BrokerError);
    const e = outcome as BrokerError;
    expect(e.message).toContain("asked before the replace writes anything -> the broker blocked publishing on topo's connection (low on memory)");
    expect(e.transient).toBe(false);
    expect(e.hints.join("\n")).toContain("rabbitmq-diagnostics memory_breakdown");
    expect(calls).toEqual(['publish "" ""', "connection closed"]);
  });
});
