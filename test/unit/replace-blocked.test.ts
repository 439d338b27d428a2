// A replace asks, before it writes anything, whether the AMQP user may publish through the default
// exchange (its move back does): with an empty publish on a short connection of its own. A broker
// under a memory or disk alarm never confirms it (it blocks the connection and reads nothing more
// from it). The ask must give up after the grace every other publish of a replace has, and leave
// the replace's own connection unblocked: asked there, the replace's next step waited for ever (a
// deploy job then hung until its own time-out: the disk-alarm test of rabbitmq4.test.ts).

import { EventEmitter } from "node:events";
import { afterEach, describe, expect, it, vi } from "vitest";
import { AmqpSession, PUBLISH_BLOCKED_GRACE_MS } from "../../src/broker/amqp.js";
import { publishByDefaultQuestion, replaceQueueLossless } from "../../src/broker/replace.js";
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
    close: async () => {
      calls.push("session closed");
    },
  });
}

/** The replace's own session: its first step is recorded, then stops the replace. */
function ownSession(calls: string[]): AmqpSession {
  return Object.assign(Object.create(AmqpSession.prototype) as AmqpSession, {
    cluster: "async",
    user: "guest",
    rpcs: 0,
    lost: undefined,
    channel: async () => {
      calls.push("own channel");
      throw new Error("stopped here by the test");
    },
  });
}

afterEach(() => {
  vi.useRealTimers();
});

describe("a replace's first ask under a memory alarm", () => {
  it("gives up after the grace on its own connection, and the replace goes on over an unblocked one", async () => {
    vi.useFakeTimers();
    const asked: string[] = [];
    const own: string[] = [];
    const old = queue({ name: "mplogin.async" });
    const after = queue({ name: "mplogin.async", arguments: { "x-max-length": 1000 } });
    let outcome: unknown = "pending";
    void replaceQueueLossless(ownSession(own), { report: async () => undefined, after, old, bindings: [], holdBindings: [], queueDone: false, mayPublishByDefault: publishByDefaultQuestion(async () => blockedSession(asked)) }, () => undefined).then(
      (v) => (outcome = v),
      (e: unknown) => (outcome = e),
    );
    await vi.advanceTimersByTimeAsync(PUBLISH_BLOCKED_GRACE_MS - 1_000);
    expect(outcome).toBe("pending");
    expect(own).toEqual([]);
    await vi.advanceTimersByTimeAsync(2_000);
    // The ask's connection is closed; the replace's own goes on to its first step.
    expect(asked).toEqual(['publish "" ""', "connection closed", "session closed"]);
    expect(own).toEqual(["own channel"]);
    expect(outcome).toBeInstanceOf(BrokerError);
    expect((outcome as BrokerError).message).toContain("stopped here by the test");
  });

  it("is asked once for all the replaces of a cluster: one connection, and one grace waited out, not one per queue", async () => {
    vi.useFakeTimers();
    const asked: string[] = [];
    const own: string[] = [];
    let opened = 0;
    const question = publishByDefaultQuestion(async () => {
      opened++;
      return blockedSession(asked);
    });
    const outcomes: unknown[] = [];
    for (const name of ["mplogin.async", "mpshop.async"]) {
      const old = queue({ name });
      const after = queue({ name, arguments: { "x-max-length": 1000 } });
      void replaceQueueLossless(ownSession(own), { report: async () => undefined, after, old, bindings: [], holdBindings: [], queueDone: false, mayPublishByDefault: question }, () => undefined).then(
        (v) => outcomes.push(v),
        (e: unknown) => outcomes.push(e),
      );
    }
    await vi.advanceTimersByTimeAsync(PUBLISH_BLOCKED_GRACE_MS + 1_000);
    expect(opened).toBe(1);
    expect(asked).toEqual(['publish "" ""', "connection closed", "session closed"]);
    expect(own).toEqual(["own channel", "own channel"]);
    expect(outcomes).toHaveLength(2);
  });
});
